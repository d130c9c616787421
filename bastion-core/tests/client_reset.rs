//! A local client that resets its connection mid-transfer: the tunnel sends a Close frame,
//! deletes the session, and keeps serving.
use crate::common;

use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_transfer_still_closes_and_deletes() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    let mut stream = served.connect().await;
    stream
        .write_all(&random_bytes(256 * 1024, 9))
        .await
        .unwrap();
    assert!(
        h.emulator
            .wait_until(|s| s.bytes_up > 0, Duration::from_secs(10))
            .await
    );
    // SO_LINGER 0 turns the close into a TCP reset.
    stream.set_zero_linger().unwrap();
    drop(stream);
    h.assert_all_sessions_deleted().await;
    assert!(
        h.emulator
            .wait_until(|s| s.close_frames_received >= 1, Duration::from_secs(10))
            .await,
        "the tunnel must send a Close frame: {:?}",
        h.emulator.stats()
    );
    // The listener still serves.
    let data = random_bytes(64 * 1024, 10);
    let out = echo_round_trip(served.connect().await, &data).await;
    assert_eq!(out, data);
    let summary = served.stop().await;
    assert_eq!(summary.accepted, 2);
    h.assert_all_sessions_deleted().await;
}
