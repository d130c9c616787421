//! The pre-warm pool against the in-memory Bastion, through [`Tunnel::serve`] on a loopback
//! listener: the hand-over of what the target sent before a client attached, the bound on it,
//! replacement at the maximum age (paused clock) and after a failure, the session cap (the
//! Developer SKU's one session included), and a DELETE for every pre-warmed session at
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use super::*;
use crate::api::BastionApi;
use crate::fake::{BANNER, FLOOD_BYTES, FakeBastion, Ws};
use crate::token::{StaticTokenCredential, TokenSource};
use crate::{
    ARM_SCOPE, Endpoint, EndpointKind, LocalListener, ServeSummary, Target, Tunnel, TunnelConfig,
};

/// Every wait in these tests is bounded by this (virtual time in the paused-clock tests).
const BOUND: Duration = Duration::from_secs(90);

const VM: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
const BASTION: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b";

fn config(kind: EndpointKind, prewarm: usize) -> TunnelConfig {
    let mut config = TunnelConfig::new(
        Endpoint::parse("bst.bastion.test").unwrap(),
        Target::resource(VM, 22).unwrap(),
    );
    config.kind = kind;
    config.bastion_resource_id = Some(BASTION.into());
    config.drain_timeout = Duration::from_millis(200);
    config.prewarm = prewarm;
    config
}

fn tunnel(config: TunnelConfig, api: &Arc<FakeBastion>) -> Tunnel {
    let credential = Arc::new(StaticTokenCredential::new(
        "arm-token",
        OffsetDateTime::now_utc() + Duration::from_secs(24 * 3600),
    ));
    let tokens = TokenSource::new(credential, ARM_SCOPE);
    Tunnel::with_api(config, tokens, Arc::clone(api) as Arc<dyn BastionApi>).unwrap()
}

async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("the test hung")
}

/// Waits (bounded) until `cond` holds.
async fn until(mut cond: impl FnMut() -> bool) {
    bounded(async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}

/// Waits (bounded) for the next event `pick` accepts, skipping the others.
async fn next_event<T>(
    events: &mut broadcast::Receiver<ConnectionEvent>,
    mut pick: impl FnMut(&ConnectionEvent) -> Option<T>,
) -> T {
    bounded(async {
        loop {
            let event = events.recv().await.expect("the event stream ended");
            if let Some(t) = pick(&event) {
                return t;
            }
        }
    })
    .await
}

/// A tunnel serving a loopback listener in the background.
struct Served {
    tunnel: Tunnel,
    port: u16,
    stop: oneshot::Sender<()>,
    server: JoinHandle<ServeSummary>,
}

impl Served {
    async fn start(tunnel: &Tunnel) -> Self {
        let listener = LocalListener::bind_loopback(0).await.unwrap();
        let port = listener.port();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = {
            let tunnel = tunnel.clone();
            tokio::spawn(async move {
                tunnel
                    .serve(listener, async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        Self {
            tunnel: tunnel.clone(),
            port,
            stop,
            server,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    async fn ready(&self, n: usize) {
        let tunnel = self.tunnel.clone();
        until(move || tunnel.prewarmed_sessions() >= n).await;
    }

    async fn stop(self) -> ServeSummary {
        let _ = self.stop.send(());
        bounded(self.server).await.unwrap()
    }
}

/// Every session minted was deleted, each with its own node id.
fn assert_all_deleted(api: &FakeBastion) {
    let r = api.record();
    assert!(r.live.is_empty(), "sessions left: {:?}", r.live);
    assert!(r.deletes.len() >= r.token_posts, "{:?}", r.deletes);
    for (auth, node) in &r.deletes {
        assert_eq!(auth.strip_prefix("auth-"), node.strip_prefix("node-"));
    }
}

async fn read_exactly(conn: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut got = vec![0u8; n];
    bounded(conn.read_exact(&mut got)).await.unwrap();
    got
}

#[tokio::test]
async fn a_connection_gets_the_banner_its_target_sent_before_it_attached() {
    let api = FakeBastion::scripted_then([], Ws::Banner);
    let tunnel = tunnel(config(EndpointKind::Standard, 1), &api);
    let served = Served::start(&tunnel).await;
    served.ready(1).await;
    // The banner has left the target (and, idle, the pool reads it) before anyone connects.
    until(|| api.record().sent.first() == Some(&BANNER.len())).await;
    assert_eq!(api.record().token_posts, 1);

    let mut local = served.connect().await;
    assert_eq!(read_exactly(&mut local, BANNER.len()).await, BANNER);
    local.write_all(b"hello").await.unwrap();
    assert_eq!(read_exactly(&mut local, 5).await, b"hello");
    // The connection ran over the session minted before it came.
    assert_eq!(api.record().received[0], b"hello");

    // In-process connections take one too while `serve` runs.
    served.ready(1).await;
    let mut conn = bounded(tunnel.connect()).await.unwrap();
    assert!(conn.is_prewarmed());
    let mut banner = vec![0u8; BANNER.len()];
    bounded(conn.read_exact(&mut banner)).await.unwrap();
    assert_eq!(banner, BANNER);
    bounded(conn.close()).await.unwrap();

    drop(local);
    let summary = served.stop().await;
    assert_eq!(summary.undeleted_sessions, 0);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn what_the_target_sends_before_attach_is_kept_up_to_64_kib_then_the_rest_follows_in_order() {
    let api = FakeBastion::scripted_then([], Ws::Flood);
    let tunnel = tunnel(config(EndpointKind::Standard, 1), &api);
    let served = Served::start(&tunnel).await;
    served.ready(1).await;
    let sent = || api.record().sent.first().copied().unwrap_or(0);
    until(|| sent() >= PRE_ATTACH_LIMIT).await;
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The pool stopped reading at its bound: the target is held back by flow control (the
    // 64-message transport), not read into memory without limit.
    let held = sent();
    assert!(
        held <= PRE_ATTACH_LIMIT + 65 * 1024,
        "{held} bytes left the target before attach"
    );

    let mut local = served.connect().await;
    let got = read_exactly(&mut local, FLOOD_BYTES).await;
    for (k, kib) in got.chunks(1024).enumerate() {
        assert!(
            kib.iter().all(|b| *b == (k % 251) as u8),
            "KiB {k} is out of order"
        );
    }
    drop(local);
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    assert_all_deleted(&api);
}

#[tokio::test(start_paused = true)]
async fn a_pre_warmed_session_is_replaced_when_it_reaches_its_maximum_age() {
    let api = FakeBastion::scripted([]);
    let mut cfg = config(EndpointKind::Standard, 1);
    cfg.prewarm_max_age = Duration::from_secs(60);
    let tunnel = tunnel(cfg, &api);
    let mut events = tunnel.subscribe();
    let served = Served::start(&tunnel).await;
    next_event(&mut events, |e| {
        matches!(e, ConnectionEvent::Prewarmed { .. }).then_some(())
    })
    .await;
    let ready_at = tokio::time::Instant::now();
    let reason = next_event(&mut events, |e| match e {
        ConnectionEvent::PrewarmRetired { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(ready_at.elapsed() >= Duration::from_secs(60));
    assert!(reason.contains("maximum age of 60 s"), "{reason}");
    next_event(&mut events, |e| {
        matches!(e, ConnectionEvent::Prewarmed { .. }).then_some(())
    })
    .await;
    {
        let r = api.record();
        assert_eq!(r.token_posts, 2);
        assert_eq!(r.deletes[0].0, "auth-1", "the old session was deleted");
        assert_eq!(r.live.iter().collect::<Vec<_>>(), ["auth-2"]);
    }
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    assert_all_deleted(&api);
}

#[tokio::test(start_paused = true)]
async fn a_pre_warmed_session_the_bastion_closes_while_idle_is_replaced() {
    let api = FakeBastion::scripted_then([Ws::CloseAtOnce], Ws::Banner);
    let tunnel = tunnel(config(EndpointKind::Standard, 1), &api);
    let mut events = tunnel.subscribe();
    let served = Served::start(&tunnel).await;
    let reason = next_event(&mut events, |e| match e {
        ConnectionEvent::PrewarmRetired { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(reason.contains("1011"), "{reason}");
    served.ready(1).await;
    assert_eq!(api.record().deletes[0].0, "auth-1");

    // The replacement serves a connection.
    let mut local = served.connect().await;
    assert_eq!(read_exactly(&mut local, BANNER.len()).await, BANNER);
    drop(local);
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn shutdown_deletes_every_pre_warmed_session() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Standard, 3), &api);
    let served = Served::start(&tunnel).await;
    served.ready(3).await;
    assert_eq!(tunnel.live_sessions(), 3);
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.undeleted_sessions), (0, 0));
    assert_eq!(tunnel.live_sessions(), 0);
    assert_eq!(tunnel.prewarmed_sessions(), 0);
    let r = api.record();
    assert_eq!((r.token_posts, r.deletes.len()), (3, 3));
    drop(r);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn shutdown_deletes_pre_warmed_sessions_still_being_minted() {
    let api = FakeBastion::slow_posts(Duration::from_millis(100));
    let tunnel = tunnel(config(EndpointKind::Standard, 2), &api);
    let served = Served::start(&tunnel).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    assert_eq!(api.record().token_posts, 2, "both POSTs were on their way");
    assert_all_deleted(&api);
}

#[tokio::test]
async fn pre_warmed_sessions_count_against_the_session_cap() {
    let api = FakeBastion::scripted_then([], Ws::Banner);
    let mut cfg = config(EndpointKind::Standard, 2);
    cfg.max_concurrent = Some(2);
    let tunnel = tunnel(cfg, &api);
    let served = Served::start(&tunnel).await;
    served.ready(2).await;
    let mut first = served.connect().await;
    let mut second = served.connect().await;
    assert_eq!(read_exactly(&mut first, BANNER.len()).await, BANNER);
    assert_eq!(read_exactly(&mut second, BANNER.len()).await, BANNER);
    // Both sessions are in use and no replacement may be minted: a third connection waits.
    let mut third = served.connect().await;
    let mut one = [0u8; 1];
    let waited = tokio::time::timeout(Duration::from_millis(200), third.read(&mut one)).await;
    assert!(waited.is_err(), "a third session was opened beyond the cap");
    assert_eq!(api.record().token_posts, 2);
    drop(first);
    assert_eq!(read_exactly(&mut third, BANNER.len()).await, BANNER);
    drop((second, third));
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    assert_eq!(api.record().max_live, 2);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn the_developer_skus_one_session_can_be_pre_warmed_connection_after_connection() {
    let api = FakeBastion::scripted_then([], Ws::Banner);
    let tunnel = tunnel(config(EndpointKind::Developer, 1), &api);
    let served = Served::start(&tunnel).await;
    for round in 0..3 {
        served.ready(1).await;
        let mut local = served.connect().await;
        assert_eq!(read_exactly(&mut local, BANNER.len()).await, BANNER);
        local.write_all(b"x").await.unwrap();
        assert_eq!(read_exactly(&mut local, 1).await, b"x", "round {round}");
        drop(local);
    }
    assert_eq!(served.stop().await.undeleted_sessions, 0);
    let r = api.record();
    assert_eq!(r.max_live, 1, "never two sessions at once");
    assert!(r.token_posts >= 3);
    drop(r);
    assert_all_deleted(&api);
}

#[test]
fn more_pre_warmed_sessions_than_the_cap_are_refused_with_what_to_do() {
    let developer = config(EndpointKind::Developer, 2).validate().unwrap_err();
    assert_eq!(
        developer.to_string(),
        "invalid configuration: 2 pre-warmed sessions are more than the 1 session(s) the tunnel may hold at once (the Developer SKU allows one): pre-warm at most 1"
    );
    let mut capped = config(EndpointKind::Standard, 4);
    capped.max_concurrent = Some(3);
    assert!(
        capped
            .validate()
            .unwrap_err()
            .to_string()
            .ends_with("pre-warm at most 3")
    );
    let mut ageless = config(EndpointKind::Standard, 1);
    ageless.prewarm_max_age = Duration::ZERO;
    assert!(ageless.validate().is_err());
    assert!(config(EndpointKind::Developer, 1).validate().is_ok());
}

#[test]
fn backoff_doubles_from_half_a_second_up_to_thirty() {
    let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_millis() as u64).collect();
    assert_eq!(
        waits,
        [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
    );
    assert_eq!(backoff(u32::MAX), RETRY_MAX);
}
