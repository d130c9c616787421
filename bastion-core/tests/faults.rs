//! Each fault knob of the emulator: the affected connection fails with an error naming the
//! cause, its session is still deleted, and the listener keeps serving the next connection.
//! Quirks the service is known for (101 without upgrade headers, 429 with Retry-After,
//! server pings, latency) simply work.
use crate::common;

use std::time::Duration;

use bastion_core::ConnectionEvent;
use bastion_emulator::{Faults, HttpFault, Trigger};
use common::*;
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast;

/// What one connection writes; the echo target sends it back.
const PING: &[u8] = b"ping through the tunnel";

/// Runs one connection that writes [`PING`] and reads to the end (or the echo); returns what
/// came back and the tunnel's verdict.
async fn one_connection(
    served: &Served,
    events: &mut broadcast::Receiver<ConnectionEvent>,
) -> (Vec<u8>, Option<String>) {
    let mut stream = served.connect().await;
    let _ = stream.write_all(PING).await;
    let echoed = read_until_end_or_echo(&mut stream).await;
    drop(stream);
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(20), events.recv())
            .await
            .expect("a Closed event")
            .expect("event channel open");
        if let ConnectionEvent::Closed { error, .. } = ev {
            return (echoed, error);
        }
    }
}

/// Runs one connection that must succeed: no error, and [`PING`] echoed back intact.
async fn one_good_connection(served: &Served, events: &mut broadcast::Receiver<ConnectionEvent>) {
    let (echoed, error) = one_connection(served, events).await;
    assert_eq!(error, None, "the connection must work");
    assert_eq!(
        String::from_utf8_lossy(&echoed),
        String::from_utf8_lossy(PING),
        "the echo must arrive intact"
    );
}

/// Reads until the echo of [`PING`] came back (then closes) or the connection ends.
async fn read_until_end_or_echo(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while out.len() < PING.len() {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    out
}

/// Sets `faults`, expects one failing connection whose error contains every `needle`, then
/// clears the faults and expects the same listener to serve a good connection.
async fn expect_failure(faults: Faults, needles: &[&str]) {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    let mut events = served.tunnel.subscribe();
    h.emulator.set_faults(faults);
    let (_, error) = one_connection(&served, &mut events).await;
    let error = error.unwrap_or_else(|| panic!("expected a failure naming {needles:?}"));
    for needle in needles {
        assert!(
            error.contains(needle),
            "error {error:?} does not name {needle:?}"
        );
    }
    h.emulator.set_faults(Faults::none());
    // The next connection must work.
    one_good_connection(&served, &mut events).await;
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (2, 1));
    h.assert_all_sessions_deleted().await;
}

/// Sets `faults` and expects a connection to work anyway.
async fn expect_success(faults: Faults) -> Harness {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    let mut events = served.tunnel.subscribe();
    h.emulator.set_faults(faults);
    one_good_connection(&served, &mut events).await;
    served.stop().await;
    h.assert_all_sessions_deleted().await;
    h
}

#[tokio::test]
async fn token_error_reports_status_and_the_services_message() {
    expect_failure(
        Faults::none().token_error(403, "Tunneling is disabled"),
        &[
            "HTTP 403 Forbidden",
            "Tunneling is disabled",
            "POST /api/tokens",
        ],
    )
    .await;
}

#[tokio::test]
async fn non_json_502_reports_status_and_an_excerpt() {
    let faults = Faults {
        token_html_502: true,
        ..Faults::none()
    };
    expect_failure(faults, &["HTTP 502 Bad Gateway"]).await;
}

#[tokio::test]
async fn too_many_requests_with_retry_after_is_retried() {
    let h = expect_success(Faults::none().token_429(1, 1)).await;
    let stats = h.emulator.stats();
    assert_eq!(stats.token_requests, 2, "{stats:?}");
    assert_eq!(stats.tokens_issued, 1);
}

#[tokio::test]
async fn upgrade_without_upgrade_and_connection_headers_simply_works() {
    let faults = Faults {
        upgrade_without_headers: true,
        ..Faults::none()
    };
    expect_success(faults).await;
}

#[tokio::test]
async fn in_band_http_400_after_the_upgrade_is_named() {
    let faults = Faults {
        in_band_http_after_upgrade: true,
        ..Faults::none()
    };
    expect_failure(faults, &["in-band HTTP 400 after upgrade"]).await;
}

#[tokio::test]
async fn close_with_a_code_is_reported_with_the_code() {
    expect_failure(
        Faults::none().close_after_bytes(1, 4001, "session revoked"),
        &["code 4001", "session revoked"],
    )
    .await;
}

#[tokio::test]
async fn text_frames_are_a_protocol_violation() {
    let faults = Faults {
        text_frame: Some("HTTP/1.1 400 Bad Request".into()),
        ..Faults::none()
    };
    expect_failure(faults, &["text frame"]).await;
}

#[tokio::test]
async fn abrupt_reset_is_reported() {
    let faults = Faults {
        reset: Some(Trigger {
            after_bytes: Some(1),
            after: None,
        }),
        ..Faults::none()
    };
    expect_failure(faults, &["connection to the Bastion was lost"]).await;
}

#[tokio::test]
async fn frames_larger_than_the_server_accepts_get_close_1009() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel_with(|c| c.stream.max_frame_size = 64 * 1024)).await;
    let mut events = served.tunnel.subscribe();
    h.emulator.set_faults(Faults {
        max_frame_size: Some(4096),
        ..Faults::none()
    });
    let mut stream = served.connect().await;
    stream.write_all(&random_bytes(64 * 1024, 5)).await.unwrap();
    let _ = read_until_end(&mut stream).await;
    let error = loop {
        if let ConnectionEvent::Closed { error, .. } = events.recv().await.unwrap() {
            break error;
        }
    };
    assert!(error.unwrap_or_default().contains("code 1009"));
    served.stop().await;
    // With the default 4 KiB frames the same server is happy: the 64 KiB come back intact.
    let served = Served::start(h.tunnel()).await;
    let data = random_bytes(64 * 1024, 5);
    let out = echo_round_trip(served.connect().await, &data).await;
    assert_eq!(checksum(&out), checksum(&data));
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (1, 0));
    h.assert_all_sessions_deleted().await;
}

#[tokio::test]
async fn websocket_rejection_before_upgrade_reports_the_status() {
    let faults = Faults {
        ws_reject: Some(HttpFault::json(403, "node mismatch")),
        ..Faults::none()
    };
    expect_failure(
        faults,
        &["WebSocket upgrade failed: HTTP 403", "node mismatch"],
    )
    .await;
}

#[tokio::test]
async fn wrong_sec_websocket_accept_is_rejected() {
    let faults = Faults {
        wrong_accept: true,
        ..Faults::none()
    };
    expect_failure(faults, &["Sec-WebSocket-Accept"]).await;
}

#[tokio::test]
async fn token_response_without_websocket_token_is_named() {
    let faults = Faults {
        omit_websocket_token: true,
        ..Faults::none()
    };
    expect_failure(faults, &["websocketToken"]).await;
}

#[tokio::test]
async fn server_pings_are_answered_and_the_tunnel_keeps_working() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    h.emulator.set_faults(Faults {
        server_ping_interval: Some(Duration::from_millis(50)),
        ..Faults::none()
    });
    let stream = served.connect().await;
    let (mut r, mut w) = stream.into_split();
    // Keep the tunnel open while the server pings a few times.
    assert!(
        h.emulator
            .wait_until(|s| s.pongs_received >= 3, Duration::from_secs(10))
            .await,
        "pings must be answered: {:?}",
        h.emulator.stats()
    );
    let data = random_bytes(100_000, 6);
    let out = echo_round_trip(tokio::io::join(&mut r, &mut w), &data).await;
    assert_eq!(out, data);
    drop((r, w));
    served.stop().await;
    h.assert_all_sessions_deleted().await;
}

#[tokio::test]
async fn per_direction_latency_delays_but_does_not_corrupt() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    h.emulator.set_faults(Faults {
        relay_latency: Some(Duration::from_millis(20)),
        post_latency: Some(Duration::from_millis(20)),
        ..Faults::none()
    });
    let data = random_bytes(2 << 20, 7);
    let out = echo_round_trip(served.connect().await, &data).await;
    assert_eq!(checksum(&out), checksum(&data));
    served.stop().await;
    h.assert_all_sessions_deleted().await;
}

#[tokio::test]
async fn unreachable_target_is_reported_with_close_1011() {
    let h = Harness::start_with(bastion_emulator::BastionFixture::standard(TENANT), |c| {
        c.with_target(bastion_emulator::TargetFixture::new(
            bastion_emulator::vm_resource_id("down"),
            22,
            // Nothing listens on port 1 of loopback.
            "127.0.0.1:1".parse().unwrap(),
        ))
    })
    .await;
    let target =
        bastion_core::Target::resource(bastion_emulator::vm_resource_id("down"), 22).unwrap();
    let tunnel = bastion_core::Tunnel::new(h.config(target), credential()).unwrap();
    let served = Served::start(tunnel).await;
    let mut events = served.tunnel.subscribe();
    let (echoed, error) = one_connection(&served, &mut events).await;
    let error = error.expect("a failure");
    assert!(error.contains("code 1011"), "{error}");
    assert!(
        echoed.is_empty(),
        "nothing can come back from a dead target"
    );
    served.stop().await;
    h.assert_all_sessions_deleted().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_off_in_band_error_is_retried_on_a_new_session_with_the_bytes_replayed() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    h.emulator.set_faults(
        Faults {
            in_band_http_after_upgrade: true,
            ..Faults::none()
        }
        .for_nth_token(1),
    );
    let data = random_bytes(30_000, 8);
    let out = echo_round_trip(served.connect().await, &data).await;
    assert_eq!(
        out, data,
        "the bytes sent before the failure must be replayed"
    );
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (1, 0));
    h.assert_all_sessions_deleted().await;
    assert_eq!(
        h.emulator.stats().tokens_issued,
        2,
        "one retry on a new session"
    );
}
