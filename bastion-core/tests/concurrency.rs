//! 200 concurrent connections of 1 MiB each: all intact, and afterwards no live session and as
//! many DELETEs as tokens issued (the reference leaks all but the last under concurrency).
use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections_all_intact_and_all_deleted() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    let port = served.port;
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            tokio::spawn(async move {
                let data = random_bytes(1 << 20, 100 + i);
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .unwrap();
                let out = echo_round_trip(stream, &data).await;
                checksum(&out) == checksum(&data)
            })
        })
        .collect();
    let mut intact = 0;
    for t in tasks {
        if t.await.unwrap() {
            intact += 1;
        }
    }
    assert_eq!(intact, 200);
    h.assert_all_sessions_deleted().await;
    let stats = h.emulator.stats();
    assert_eq!(stats.tokens_issued, 200);
    assert_eq!(stats.deletes, 200);
    assert!(stats.max_concurrent_websockets > 1, "{stats:?}");
    let summary = served.stop().await;
    assert_eq!(
        (summary.accepted, summary.failed, summary.undeleted_sessions),
        (200, 0, 0)
    );
    // Every session had its own node id from its own POST.
    h.emulator.assert_no_orphans();
}
