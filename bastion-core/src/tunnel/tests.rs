//! The tunnel's own logic against the in-memory Bastion: the replay-once retry after an in-band
//! HTTP error, the Developer data-pod reset, the one-at-a-time rule, and a DELETE on every exit
//! path. No sockets, no TLS.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use super::*;
use crate::fake::{FakeBastion, Ws};
use crate::token::StaticTokenCredential;

/// Every test finishes well within this; a hang fails instead of blocking the suite.
const BOUND: Duration = Duration::from_secs(10);

const VM: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1";
const BASTION: &str =
    "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b";

fn config(kind: EndpointKind) -> TunnelConfig {
    let mut config = TunnelConfig::new(
        Endpoint::parse("bst.bastion.test").unwrap(),
        Target::resource(VM, 22).unwrap(),
    );
    config.kind = kind;
    config.bastion_resource_id = Some(BASTION.into());
    config.drain_timeout = Duration::from_millis(200);
    config
}

fn tunnel(config: TunnelConfig, api: &Arc<FakeBastion>) -> Tunnel {
    let credential = Arc::new(StaticTokenCredential::new(
        "arm-token",
        OffsetDateTime::now_utc() + Duration::from_secs(3600),
    ));
    let tokens = TokenSource::new(credential, ARM_SCOPE);
    Tunnel::with_api(config, tokens, Arc::clone(api) as Arc<dyn BastionApi>).unwrap()
}

/// Relays `local`'s far end through `tunnel` in the background.
fn relay(tunnel: &Tunnel) -> (DuplexStream, tokio::task::JoinHandle<Result<RelayStats>>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let tunnel = tunnel.clone();
    (
        ours,
        tokio::spawn(async move { tunnel.relay(theirs).await }),
    )
}

async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("the test hung")
}

/// Every session minted was deleted (each once, unless a DELETE failed), with its own node id.
fn assert_all_deleted(api: &FakeBastion) {
    let r = api.record();
    assert!(r.live.is_empty(), "sessions left: {:?}", r.live);
    assert!(r.deletes.len() >= r.token_posts, "{:?}", r.deletes);
    for (auth, node) in &r.deletes {
        assert_eq!(auth.strip_prefix("auth-"), node.strip_prefix("node-"));
    }
}

#[tokio::test]
async fn in_band_error_is_retried_once_on_a_new_session_replaying_what_was_sent() {
    let api = FakeBastion::scripted([Ws::InBand400AfterFirstData]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (mut local, task) = relay(&tunnel);
    bounded(async {
        local.write_all(b"hello").await.unwrap();
        let mut echoed = [0u8; 5];
        local.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"hello");
        local.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
    let r = api.record();
    assert_eq!(r.token_posts, 2);
    // The first attempt really carried the bytes, and the second got them again.
    assert_eq!(r.received, [b"hello".to_vec(), b"hello".to_vec()]);
    drop(r);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn a_second_in_band_error_is_reported_not_retried_again() {
    let api = FakeBastion::scripted([Ws::InBand400AfterFirstData, Ws::InBand400AfterFirstData]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (mut local, task) = relay(&tunnel);
    let err = bounded(async {
        local.write_all(b"hello").await.unwrap();
        task.await.unwrap().unwrap_err()
    })
    .await;
    assert!(err.is_in_band_http(), "{err}");
    assert_eq!(api.record().token_posts, 2);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn the_replay_covers_what_was_sent_before_the_error_well_past_64_kib() {
    let api = FakeBastion::scripted([Ws::InBand400AfterFirstData]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (mut local, task) = relay(&tunnel);
    let data: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 251) as u8).collect();
    bounded(async {
        local.write_all(&data).await.unwrap();
        let mut echoed = vec![0u8; data.len()];
        local.read_exact(&mut echoed).await.unwrap();
        assert!(echoed == data, "the echo differs");
        local.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    })
    .await;
    let r = api.record();
    assert_eq!(r.token_posts, 2);
    assert!(!r.received[0].is_empty() && data.starts_with(&r.received[0]));
    assert!(
        r.received[1] == data,
        "the second session got everything, in order"
    );
    drop(r);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn local_data_waits_when_the_replay_buffer_is_full_until_the_far_side_answers() {
    let api = FakeBastion::scripted([Ws::Silent]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (mut local, task) = relay(&tunnel);
    let writer = tokio::spawn(async move {
        let _ = local.write_all(&vec![1u8; 3 * REPLAY_LIMIT]).await;
        local
    });
    let received = || api.record().received.first().map_or(0, Vec::len);
    bounded(async {
        while received() < REPLAY_LIMIT {
            tokio::task::yield_now().await;
        }
    })
    .await;
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    // Nothing beyond the replay bound went out while no byte came back.
    assert_eq!(received(), REPLAY_LIMIT);
    task.abort();
    writer.abort();
}

#[tokio::test]
async fn after_a_half_close_the_far_sides_late_reply_still_arrives() {
    let api = FakeBastion::scripted([Ws::DelayedEcho]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (mut local, task) = relay(&tunnel);
    let reply = bounded(async {
        local.write_all(b"x").await.unwrap();
        local.shutdown().await.unwrap();
        let mut reply = Vec::new();
        local.read_to_end(&mut reply).await.unwrap();
        task.await.unwrap().unwrap();
        reply
    })
    .await;
    assert_eq!(reply, b"x");
    assert_all_deleted(&api);
}

#[tokio::test]
async fn a_failed_upgrade_deletes_the_session_it_minted() {
    let api = FakeBastion::scripted([Ws::FailOpen]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let err = bounded(tunnel.connect()).await.unwrap_err();
    assert!(matches!(err, Error::Handshake(_)), "{err}");
    assert_eq!(api.record().token_posts, 1);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn closing_a_connection_deletes_its_session() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    bounded(async {
        let mut conn = tunnel.connect().await.unwrap();
        conn.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        conn.read_exact(&mut one).await.unwrap();
        conn.close().await.unwrap();
    })
    .await;
    assert_eq!(tunnel.live_sessions(), 0);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn dropping_a_connection_deletes_its_session_in_the_background() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let conn = bounded(tunnel.connect()).await.unwrap();
    drop(conn);
    bounded(async {
        while tunnel.live_sessions() > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_all_deleted(&api);
}

#[tokio::test]
async fn a_local_side_that_goes_away_ends_the_relay_and_deletes_the_session() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let (local, task) = relay(&tunnel);
    bounded(async {
        while api.record().token_posts == 0 {
            tokio::task::yield_now().await;
        }
        drop(local);
        let _ = task.await.unwrap();
    })
    .await;
    assert_all_deleted(&api);
}

#[tokio::test]
async fn close_deletes_the_sessions_of_connections_still_held() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let held = bounded(async {
        vec![
            tunnel.connect().await.unwrap(),
            tunnel.connect().await.unwrap(),
        ]
    })
    .await;
    assert_eq!(bounded(tunnel.close()).await, 0);
    assert_all_deleted(&api);
    assert!(matches!(
        bounded(tunnel.connect()).await,
        Err(Error::ShuttingDown)
    ));
    drop(held);
}

#[tokio::test]
async fn developer_data_pod_is_looked_up_again_after_three_failures() {
    let api = FakeBastion::scripted([Ws::FailOpen, Ws::FailOpen, Ws::FailOpen]);
    let tunnel = tunnel(config(EndpointKind::Developer), &api);
    for _ in 0..3 {
        assert!(bounded(tunnel.connect()).await.is_err());
    }
    assert_eq!(api.record().connection_posts, 1, "the pod is cached");
    let conn = bounded(tunnel.connect()).await.unwrap();
    assert_eq!(api.record().connection_posts, 2, "looked up again");
    bounded(conn.close()).await.unwrap();
    assert_all_deleted(&api);
}

#[tokio::test]
async fn developer_allows_one_connection_at_a_time() {
    let api = FakeBastion::scripted([]);
    let tunnel = tunnel(config(EndpointKind::Developer), &api);
    let first = bounded(tunnel.connect()).await.unwrap();
    let second = {
        let tunnel = tunnel.clone();
        tokio::spawn(async move { tunnel.connect().await })
    };
    // The second waits for the first: no second token POST while the first is open.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert_eq!(api.record().token_posts, 1);
    bounded(first.close()).await.unwrap();
    let second = bounded(second).await.unwrap().unwrap();
    bounded(second.close()).await.unwrap();
    let r = api.record();
    assert_eq!((r.token_posts, r.max_live), (2, 1));
    drop(r);
    assert_all_deleted(&api);
}

#[tokio::test]
async fn a_connect_given_up_during_the_token_post_still_deletes_the_session_it_minted() {
    let api = FakeBastion::slow_posts(Duration::from_millis(100));
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let connecting = {
        let tunnel = tunnel.clone();
        tokio::spawn(async move { tunnel.connect().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    connecting.abort();
    // The POST completes after its caller is gone: the session is registered, then deleted.
    bounded(async {
        while api.record().token_posts == 0 || tunnel.live_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert_all_deleted(&api);
}

#[tokio::test]
async fn close_waits_for_a_token_post_on_its_way_and_deletes_its_session() {
    let api = FakeBastion::slow_posts(Duration::from_millis(100));
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let connecting = {
        let tunnel = tunnel.clone();
        tokio::spawn(async move { tunnel.connect().await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(bounded(tunnel.close()).await, 0);
    assert_eq!(api.record().token_posts, 1);
    assert_all_deleted(&api);
    drop(connecting);
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_is_retried_in_the_background_while_the_tunnel_runs() {
    let api = FakeBastion::failing_deletes(3);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let conn = bounded(tunnel.connect()).await.unwrap();
    assert!(
        bounded(conn.close()).await.is_err(),
        "the first DELETE fails"
    );
    assert_eq!(tunnel.live_sessions(), 1);
    // 1 s, then 2 s, then 4 s later (the clock is paused and jumps): deleted before shutdown.
    bounded(async {
        while tunnel.live_sessions() > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(api.record().deletes.len(), 4);
    assert_all_deleted(&api);
    assert_eq!(tunnel.close().await, 0);
}

#[tokio::test(start_paused = true)]
async fn sessions_that_cannot_be_deleted_are_reported_at_shutdown() {
    let api = FakeBastion::failing_deletes(usize::MAX);
    let tunnel = tunnel(config(EndpointKind::Standard), &api);
    let conn = bounded(tunnel.connect()).await.unwrap();
    let _ = bounded(conn.close()).await;
    assert_eq!(
        bounded(tunnel.close()).await,
        1,
        "one session left undeleted"
    );
    assert_eq!(tunnel.live_sessions(), 1);
}

#[tokio::test]
async fn serve_holds_at_most_the_cap_of_sessions_and_the_rest_wait_to_be_accepted() {
    let api = FakeBastion::scripted([]);
    let mut cfg = config(EndpointKind::Standard);
    cfg.max_concurrent = Some(2);
    let tunnel = tunnel(cfg, &api);
    let listener = LocalListener::bind_loopback(0).await.unwrap();
    let port = listener.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
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
    let open = || async {
        let mut c = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        c.write_all(b"x").await.unwrap();
        c
    };
    let mut first = open().await;
    let mut second = open().await;
    let mut third = open().await;
    let mut one = [0u8; 1];
    bounded(first.read_exact(&mut one)).await.unwrap();
    bounded(second.read_exact(&mut one)).await.unwrap();
    // The third waits (in the listener's backlog): no third session, no echo.
    let waited = tokio::time::timeout(Duration::from_millis(200), third.read_exact(&mut one)).await;
    assert!(
        waited.is_err(),
        "the third connection was served beyond the cap"
    );
    assert_eq!(api.record().token_posts, 2);
    drop(first);
    bounded(third.read_exact(&mut one)).await.unwrap();
    assert_eq!(api.record().max_live, 2);
    drop((second, third));
    let _ = stop.send(());
    let summary = bounded(server).await.unwrap();
    assert_eq!((summary.accepted, summary.undeleted_sessions), (3, 0));
    assert_all_deleted(&api);
}
