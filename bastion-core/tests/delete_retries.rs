//! A DELETE that fails is not forgotten: answered 500 it is retried in the background while
//! the tunnel runs; never answered at all it times out and is retried; and whatever is still
//! undeleted at shutdown is counted in `undeleted_sessions`. Shutdown while a session is
//! being set up (token POST in flight, or the upgrade done but nothing relayed) deletes it.

use crate::common;

use std::time::Duration;

use bastion_emulator::Faults;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every wait here is bounded by this (a hang guard, never a timing claim).
const GUARD: Duration = Duration::from_secs(30);

/// Waits (bounded) until the emulator has answered a DELETE with something other than 2xx.
async fn refused_delete(h: &Harness) {
    tokio::time::timeout(GUARD, async {
        while !h.emulator.events().iter().any(|e| {
            e.kind == bastion_emulator::EventKind::DeleteRequest
                && e.status.is_some_and(|s| !(200..300).contains(&s))
        }) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("no refused DELETE");
}

/// One echoed connection, then closed: its session's DELETE follows.
async fn one_connection(served: &Served) {
    let data = random_bytes(2000, 5);
    assert_eq!(echo_round_trip(served.connect().await, &data).await, data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_answered_500_is_retried_while_the_tunnel_runs() {
    let h = Harness::start().await;
    h.emulator.set_faults(Faults {
        delete_status: Some(500),
        ..Faults::none()
    });
    let served = Served::start(h.tunnel()).await;
    one_connection(&served).await;
    // The DELETE came and was answered 500: the session is still live.
    refused_delete(&h).await;
    assert_eq!(h.emulator.stats().live_sessions, 1);
    // The service recovers: a background retry deletes the session, before any shutdown.
    h.emulator.set_faults(Faults::none());
    assert!(
        h.emulator
            .wait_until(|s| s.live_sessions == 0 && s.deletes == 1, GUARD)
            .await,
        "not retried: {:?}",
        h.emulator.stats()
    );
    assert!(h.emulator.stats().delete_requests >= 2);
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.undeleted_sessions), (1, 0));
    h.emulator.assert_no_orphans();
}

/// Runs one connection against `faults` on DELETE, stops the tunnel, and returns the number
/// of sessions it reports undeleted.
async fn undeleted_at_shutdown(faults: Faults) -> (Harness, usize) {
    let h = Harness::start().await;
    h.emulator.set_faults(faults);
    let served = Served::start(h.tunnel_with(|c| {
        c.delete_timeout = Duration::from_secs(1);
        c.shutdown_timeout = Duration::from_secs(4);
    }))
    .await;
    one_connection(&served).await;
    assert!(
        h.emulator
            .wait_until(|s| s.delete_requests >= 1, GUARD)
            .await
    );
    let summary = served.stop().await;
    // The DELETE was tried again (in the background, or at shutdown), and still failed.
    assert!(
        h.emulator.stats().delete_requests >= 2,
        "{:?}",
        h.emulator.stats()
    );
    assert_eq!(h.emulator.stats().live_sessions, 1);
    (h, summary.undeleted_sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_keeps_failing_is_reported_undeleted() {
    let (_h, undeleted) = undeleted_at_shutdown(Faults {
        delete_status: Some(500),
        ..Faults::none()
    })
    .await;
    assert_eq!(undeleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_that_is_never_answered_is_reported_undeleted() {
    let (_h, undeleted) = undeleted_at_shutdown(Faults {
        delete_no_response: true,
        ..Faults::none()
    })
    .await;
    assert_eq!(undeleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_the_token_post_deletes_the_session_it_creates() {
    let h = Harness::start().await;
    // The token POST is answered late: shutdown comes while it is in flight.
    h.emulator.set_faults(Faults {
        post_latency: Some(Duration::from_secs(1)),
        ..Faults::none()
    });
    let served = Served::start(h.tunnel()).await;
    let mut conn = served.connect().await;
    conn.write_all(b"early").await.unwrap();
    assert!(
        h.emulator
            .wait_until(|s| s.token_requests >= 1, GUARD)
            .await
    );
    assert_eq!(h.emulator.stats().tokens_issued, 0, "still in flight");
    let summary = served.stop().await;
    assert_eq!(summary.undeleted_sessions, 0);
    // The session the POST created once it was answered was deleted, not abandoned.
    assert!(
        h.emulator
            .wait_until(|s| s.tokens_issued == 1 && s.deletes == 1, GUARD)
            .await,
        "{:?}",
        h.emulator.stats()
    );
    h.emulator.assert_no_orphans();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(GUARD, conn.read_to_end(&mut rest))
        .await
        .expect("the local connection was ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_right_after_the_upgrade_deletes_the_session() {
    let h = Harness::start().await;
    // The Bastion upgrades, then says nothing: the connection is set up but has relayed
    // nothing when shutdown comes.
    h.emulator.set_faults(Faults {
        hang_after_upgrade: true,
        ..Faults::none()
    });
    let served = Served::start(h.tunnel()).await;
    let mut conn = served.connect().await;
    conn.write_all(b"hello?").await.unwrap();
    assert!(
        h.emulator
            .wait_until(
                |s| s.websocket_upgrades == 1 && s.live_websockets == 1,
                GUARD
            )
            .await
    );
    let summary = served.stop().await;
    assert_eq!(summary.undeleted_sessions, 0);
    h.assert_all_sessions_deleted().await;
    h.emulator.assert_no_orphans();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(GUARD, conn.read_to_end(&mut rest))
        .await
        .expect("the local connection was ended");
    assert!(rest.is_empty());
}
