//! Pre-warmed sessions against the Bastion emulator over TLS: a local client receives the banner
//! its target sent before the client attached (as sshd sends one on connect), sessions past
//! their maximum age are replaced, and at shutdown no session is left.
use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bastion_core::{ConnectionEvent, Target};
use bastion_emulator::{BastionFixture, TargetFixture};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6 emulated\r\n";
const WAIT: Duration = Duration::from_secs(10);

/// A target that sends [`BANNER`] as soon as a connection comes, then echoes; and how many
/// connections it has accepted.
async fn spawn_banner_target() -> (SocketAddr, Arc<AtomicUsize>, JoinHandle<()>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if stream.write_all(BANNER).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, accepted, task)
}

/// The emulator with a VM `sshvm` whose port 22 is a banner target.
async fn harness() -> (Harness, Target, Arc<AtomicUsize>, JoinHandle<()>) {
    let (addr, accepted, task) = spawn_banner_target().await;
    let vm = bastion_emulator::vm_resource_id("sshvm");
    let fixture = TargetFixture::new(&vm, 22, addr);
    let h = Harness::start_with(BastionFixture::standard(TENANT), |c| c.with_target(fixture)).await;
    (h, Target::resource(&vm, 22).unwrap(), accepted, task)
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

async fn read_banner(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = vec![0u8; BANNER.len()];
    tokio::time::timeout(WAIT, conn.read_exact(&mut got))
        .await
        .expect("the banner in time")
        .unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_client_receives_the_banner_its_target_sent_before_it_attached() {
    let (h, target, accepted, _target_task) = harness().await;
    let mut config = h.config(target);
    config.prewarm = 2;
    let tunnel = bastion_core::Tunnel::new(config, credential()).unwrap();
    let served = Served::start(tunnel.clone()).await;

    // Two sessions connected through to the target, which has sent its banner to each, before
    // any local client exists.
    until("two pre-warmed sessions", || {
        tunnel.prewarmed_sessions() == 2
    })
    .await;
    until("the target to be dialled twice", || {
        accepted.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(h.emulator.stats().live_websockets, 2);
    assert_eq!(served.tunnel.active_connections(), 0);
    let warm: Vec<String> = h
        .emulator
        .active_sessions()
        .into_iter()
        .map(|s| s.auth_token)
        .collect();
    assert_eq!(warm.len(), 2);

    // Clients that send nothing first still get the banner, then talk as usual; a third takes
    // a replacement (or a session of its own), whatever the pool holds by then.
    let mut clients = Vec::new();
    for i in 0..3 {
        let mut conn = served.connect().await;
        assert_eq!(read_banner(&mut conn).await, BANNER, "client {i}");
        let hello = format!("SSH-2.0-client-{i}\r\n");
        assert_eq!(
            echo_round_trip(&mut conn, hello.as_bytes()).await,
            hello.as_bytes()
        );
        clients.push(conn);
    }

    // The first two clients ran over the sessions opened before they came.
    let carried: Vec<u64> = h
        .emulator
        .sessions()
        .into_iter()
        .filter(|s| warm.contains(&s.auth_token))
        .map(|s| s.bytes_up)
        .collect();
    assert_eq!(carried, ["SSH-2.0-client-0\r\n".len() as u64; 2]);

    let summary = served.stop().await;
    assert_eq!(summary.accepted, 3);
    assert_eq!(summary.undeleted_sessions, 0);
    assert_eq!(tunnel.live_sessions(), 0);
    h.assert_all_sessions_deleted().await;
    h.emulator.assert_no_orphans();
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_warmed_session_past_its_maximum_age_is_deleted_and_replaced() {
    let (h, target, _accepted, _target_task) = harness().await;
    let mut config = h.config(target);
    config.prewarm = 1;
    config.prewarm_max_age = Duration::from_millis(300);
    let tunnel = bastion_core::Tunnel::new(config, credential()).unwrap();
    let mut events = tunnel.subscribe();
    let served = Served::start(tunnel.clone()).await;

    // Ready, retired at its age, ready again: in that order.
    let mut seen = Vec::new();
    let order = tokio::time::timeout(WAIT, async {
        while seen.len() < 3 {
            match events.recv().await.unwrap() {
                ConnectionEvent::Prewarmed { .. } => seen.push("ready".to_owned()),
                ConnectionEvent::PrewarmRetired { reason } => seen.push(reason),
                ConnectionEvent::PrewarmFailed { error, .. } => panic!("{error}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(order.is_ok(), "events so far: {seen:?}");
    assert_eq!(seen[0], "ready");
    assert!(seen[1].contains("maximum age"), "{seen:?}");
    assert_eq!(seen[2], "ready");
    // The first session is gone from the Bastion, deleted before its replacement was minted.
    until("the retired session's DELETE", || {
        h.emulator.stats().deletes >= 1
    })
    .await;
    assert!(h.emulator.active_sessions().len() <= 1);

    // The replacement serves a client.
    let mut conn = served.connect().await;
    assert_eq!(read_banner(&mut conn).await, BANNER);
    drop(conn);
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    h.assert_all_sessions_deleted().await;
    h.emulator.assert_no_orphans();
}
