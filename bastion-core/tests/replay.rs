//! The replay-once retry over real TLS (docs/protocol.md#replay-once-retry): an in-band HTTP
//! error that comes after the client has already sent data is retried on a new session with
//! those bytes replayed, and a far side that answers only after more than the replay window
//! slows the local side down instead of failing the connection.

use crate::common;

use bastion_core::Target;
use bastion_emulator::{BastionFixture, Faults, SessionRecord, TargetFixture};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The relay's replay window: `REPLAY_LIMIT`, 1 MiB (docs/protocol.md#replay-once-retry).
const REPLAY_WINDOW: usize = 1 << 20;

/// Every wait here is bounded by this (a hang guard, never a timing claim).
const GUARD: std::time::Duration = std::time::Duration::from_secs(60);

fn sessions_by_mint_order(h: &Harness) -> Vec<SessionRecord> {
    let mut sessions = h.emulator.sessions();
    sessions.sort_by_key(|s| s.id);
    sessions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_attempt_carried_the_bytes_and_the_retry_delivered_them_intact() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    // The first session's Bastion answers in-band only after 100 KB of payload has reached
    // it: the error comes in the middle of the client's stream, as reported in the field.
    h.emulator.set_faults(
        Faults {
            in_band_http_after_upgrade: true,
            in_band_after_client_bytes: Some(100_000),
            ..Faults::none()
        }
        .for_nth_token(1),
    );
    let data = random_bytes(300_000, 21);
    let echoed = tokio::time::timeout(GUARD, echo_round_trip(served.connect().await, &data))
        .await
        .expect("hang guard");
    assert!(echoed == data, "the echo differs from what was sent");
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (1, 0));
    h.assert_all_sessions_deleted().await;

    let sessions = sessions_by_mint_order(&h);
    assert_eq!(
        sessions.len(),
        2,
        "one retry on a new session: {sessions:?}"
    );
    // The first attempt really carried the bytes before its error...
    let first = sessions[0]
        .bytes_before_in_band
        .expect("the first session was answered in-band");
    assert!(
        (100_000..=REPLAY_WINDOW as u64).contains(&first),
        "the first attempt carried {first} bytes"
    );
    assert_eq!(sessions[0].bytes_down, 0);
    // ...and the second got them again, then the rest: everything, once, intact (the echo).
    assert_eq!(sessions[1].bytes_before_in_band, None);
    assert_eq!(sessions[1].bytes_up, data.len() as u64);
    assert_eq!(sessions[1].bytes_down, data.len() as u64);
}

/// An echo target that keeps its answer until it has received `hold` bytes, then echoes
/// everything: the far side of a protocol where the client speaks first and at length.
async fn spawn_late_echo(hold: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let mut held = vec![0u8; hold];
                if r.read_exact(&mut held).await.is_err() {
                    return;
                }
                // What was held goes back first, then the rest is echoed as it comes.
                if w.write_all(&held).await.is_err() {
                    return;
                }
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    addr
}

/// Sends `len` bytes through a tunnel to a late echo holding `hold` bytes, checks the echo,
/// the clean stop and that every session was deleted, and returns the one session it used.
async fn through_a_late_echo(
    hold: usize,
    len: usize,
    seed: u64,
    configure: impl FnOnce(&mut bastion_core::TunnelConfig),
    stalled: &str,
) -> SessionRecord {
    let late = spawn_late_echo(hold).await;
    let vm = bastion_emulator::vm_resource_id("late-echo");
    let fixture = BastionFixture::standard(TENANT);
    let h = Harness::start_with(fixture, |c| {
        c.with_target(TargetFixture::new(&vm, 22, late))
    })
    .await;
    let mut config = h.config(Target::resource(&vm, 22).unwrap());
    configure(&mut config);
    let tunnel = bastion_core::Tunnel::new(config, credential()).unwrap();
    let served = Served::start(tunnel).await;
    let data = random_bytes(len, seed);
    let echoed = tokio::time::timeout(GUARD, echo_round_trip(served.connect().await, &data))
        .await
        .unwrap_or_else(|_| panic!("hang guard: {stalled}"));
    assert!(echoed == data, "the echo differs from what was sent");
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (1, 0));
    h.assert_all_sessions_deleted().await;

    let mut sessions = sessions_by_mint_order(&h);
    assert_eq!(sessions.len(), 1, "no retry: {sessions:?}");
    let session = sessions.remove(0);
    assert_eq!(session.bytes_up, len as u64);
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_the_replay_window_before_the_far_side_answers_waits_and_arrives_intact() {
    // Three windows' worth, written at once: the first byte back comes only once a full
    // window has gone out, so the relay must hold the rest back (not fail) until then.
    let session = through_a_late_echo(
        REPLAY_WINDOW,
        3 * REPLAY_WINDOW,
        22,
        |_| {},
        "the relay did not resume after the far side answered",
    )
    .await;
    // The far side needed a full window before answering, and the client sent no more than
    // the window until the answer came: exactly the window.
    assert_eq!(
        session.bytes_up_before_first_down,
        Some(REPLAY_WINDOW as u64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_far_side_that_needs_more_than_the_window_before_answering_is_not_stalled() {
    // An upload-like protocol: the far side answers only after two windows' worth. The relay
    // waits `replay_wait` with a full window, then gives the retry up and sends on.
    let session = through_a_late_echo(
        2 * REPLAY_WINDOW,
        3 * REPLAY_WINDOW,
        23,
        |c| c.replay_wait = std::time::Duration::from_millis(200),
        "the relay stalled behind its full replay window",
    )
    .await;
    // The far side got its two windows before it said anything: more than the replay window
    // went out with no answer, which the relay used to refuse to do.
    assert!(
        session.bytes_up_before_first_down >= Some(2 * REPLAY_WINDOW as u64),
        "{:?}",
        session.bytes_up_before_first_down
    );
}
