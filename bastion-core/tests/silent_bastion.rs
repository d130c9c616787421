//! A Bastion that goes silent right after the upgrade (no frames, no pong) is detected: once
//! the service has answered a ping on an earlier connection of the tunnel (`Liveness::Learned`,
//! the default) or always (`Liveness::Always`), instead of holding the connection for minutes.
use crate::common;

use std::time::Duration;

use bastion_core::{Error, Liveness};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn quick_pings(liveness: Liveness) -> impl FnOnce(&mut bastion_core::TunnelConfig) {
    move |c| {
        c.stream.ping_interval = Some(Duration::from_millis(100));
        c.stream.dead_peer_timeout = Duration::from_millis(300);
        c.stream.liveness = liveness;
    }
}

/// Reads until the connection ends: the error it ends with, if any.
async fn read_to_end(conn: &mut bastion_core::TunnelConnection) -> Option<Error> {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut sink)).await;
    match read.expect("the silent connection was never given up") {
        Ok(_) => None,
        Err(e) => Some(Error::from_io(e)),
    }
}

#[tokio::test]
async fn learned_liveness_gives_up_on_a_silent_bastion_after_the_service_answered_a_ping() {
    let h = Harness::start().await;
    let tunnel = h.tunnel_with(quick_pings(Liveness::Learned));

    // An idle connection that lives through several pings: the emulator answers them.
    let mut first = tunnel.connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    first.write_all(b"still here").await.unwrap();
    let mut echo = [0u8; 10];
    first.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"still here", "an idle, answering peer is kept");
    first.close().await.unwrap();

    // Now the Bastion goes silent after the upgrade: no frames, no pongs.
    h.faults(|f| f.hang_after_upgrade = true);
    let mut second = tunnel.connect().await.unwrap();
    let err = read_to_end(&mut second).await.expect("an error");
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("keepalive"), "{err}");
    drop(second);
    tunnel.close().await;
    h.assert_all_sessions_deleted().await;
}

#[tokio::test]
async fn always_liveness_gives_up_on_a_silent_bastion_without_any_pong_history() {
    let h = Harness::start().await;
    h.faults(|f| f.hang_after_upgrade = true);
    let tunnel = h.tunnel_with(quick_pings(Liveness::Always));
    let mut conn = tunnel.connect().await.unwrap();
    let err = read_to_end(&mut conn).await.expect("an error");
    assert!(err.is_timeout(), "{err}");
    drop(conn);
    tunnel.close().await;
    h.assert_all_sessions_deleted().await;
}

#[tokio::test]
async fn learned_liveness_tolerates_a_service_that_never_answered_a_ping() {
    let h = Harness::start().await;
    h.faults(|f| f.hang_after_upgrade = true);
    let tunnel = h.tunnel_with(quick_pings(Liveness::Learned));
    let mut conn = tunnel.connect().await.unwrap();
    // Well past ping interval + dead-peer timeout, the connection is still open.
    let mut one = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(1000), conn.read(&mut one)).await;
    assert!(
        read.is_err(),
        "closed a connection to a service never seen answering pings"
    );
    drop(conn);
    tunnel.close().await;
    h.assert_all_sessions_deleted().await;
}
