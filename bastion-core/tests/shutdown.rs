//! Shutdown with 50 live connections: every WebSocket gets a Close frame and every session is
//! deleted, within the shutdown budget.
use crate::common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_fifty_live_connections_closes_and_deletes_all() {
    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    let mut clients = Vec::new();
    for i in 0..50u64 {
        let mut stream = served.connect().await;
        // One echo each proves the tunnel is up before we shut down.
        let data = random_bytes(1024, i + 1);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(&data).await.unwrap();
        let mut back = vec![0u8; data.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, data);
        clients.push(stream);
    }
    assert_eq!(h.emulator.stats().live_websockets, 50);
    let summary = served.stop().await;
    assert_eq!(summary.undeleted_sessions, 0);
    assert_eq!(summary.accepted, 50);
    let stats = h.emulator.stats();
    assert_eq!(stats.live_sessions, 0, "{stats:?}");
    assert_eq!(stats.deletes, 50);
    assert!(
        h.emulator
            .wait_until(|s| s.close_frames_received >= 50, Duration::from_secs(5))
            .await,
        "every WebSocket must be closed with a Close frame: {:?}",
        h.emulator.stats()
    );
    // Local clients see their connections end (EOF or reset), rather than hang.
    for mut c in clients {
        let (_, end) = read_until_end(&mut c).await;
        if let Err(e) = end {
            assert_ne!(
                e.to_string(),
                "timed out",
                "a local connection was left open"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_deletes_sessions_of_embedded_streams_still_held() {
    let h = Harness::start().await;
    let tunnel = h.tunnel();
    let held: Vec<_> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(tunnel.connect().await.unwrap());
        }
        v
    };
    assert_eq!(tunnel.live_sessions(), 5);
    assert_eq!(tunnel.close().await, 0);
    assert_eq!(h.emulator.stats().live_sessions, 0);
    assert!(
        tunnel.connect().await.is_err(),
        "no new connections after close"
    );
    drop(held);
}
