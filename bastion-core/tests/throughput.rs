//! 64 MiB of random data each way through the tunnel to an echo target, with 4 KiB and 64 KiB
//! frames: what comes back is what went in, and no frame exceeds the configured size.
use crate::common;

use common::*;

async fn round_trip_64_mib(frame: usize, seed: u64) {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel_with(|c| c.stream.max_frame_size = frame)).await;
    let data = random_bytes(64 << 20, seed);
    let stream = served.connect().await;
    let out = echo_round_trip(stream, &data).await;
    assert_eq!(out.len(), data.len());
    assert_eq!(checksum(&out), checksum(&data), "echoed bytes differ");
    let summary = served.stop().await;
    assert_eq!((summary.accepted, summary.failed), (1, 0));
    h.assert_all_sessions_deleted().await;
    let stats = h.emulator.stats();
    assert_eq!(stats.largest_frame_up, frame as u64, "{stats:?}");
    assert!(stats.bytes_up >= 64 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_with_4k_frames() {
    round_trip_64_mib(4096, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_mib_each_way_with_64k_frames() {
    round_trip_64_mib(64 * 1024, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_stream_round_trip_without_a_local_port() {
    let h = Harness::start().await;
    let tunnel = h.tunnel();
    let conn = tunnel.connect().await.unwrap();
    assert!(conn.node_id().is_some());
    let data = random_bytes(4 << 20, 3);
    let (r, w) = tokio::io::split(conn);
    let out = echo_round_trip(tokio::io::join(r, w), &data).await;
    assert_eq!(checksum(&out), checksum(&data));
    // Dropping the stream deletes its session in the background.
    h.assert_all_sessions_deleted().await;
}
