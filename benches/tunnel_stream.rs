//! Criterion micro-benchmarks of `TunnelStream` over the in-memory message transport: the
//! adapter's own cost (framing, copies, backpressure) without TLS or sockets, for frame sizes
//! of 4, 16 and 64 KiB and write sizes from 1 KiB to 1 MiB.
//!
//! Run: `cargo bench -p bastion-benches --bench tunnel_stream`.

use std::time::Duration;

use bastion_core::{StreamConfig, TunnelStream, memory_pair};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// Bytes moved per measured iteration.
const TOTAL: usize = 8 << 20;

fn config(frame: usize) -> StreamConfig {
    StreamConfig {
        max_frame_size: frame,
        ping_interval: None,
        ..StreamConfig::default()
    }
}

/// Writes `TOTAL` bytes in `write`-sized calls through a stream with `frame`-sized frames while
/// the other end drains the messages.
async fn move_bytes(frame: usize, write: usize) {
    let (a, mut b) = memory_pair(256);
    let mut stream = TunnelStream::new(a, config(frame));
    let reader = tokio::spawn(async move {
        let mut got = 0;
        while got < TOTAL {
            match b.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Binary(d))) => got += d.len(),
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        got
    });
    let chunk = vec![7u8; write];
    let mut sent = 0;
    while sent < TOTAL {
        let n = write.min(TOTAL - sent);
        stream.write_all(&chunk[..n]).await.expect("write");
        sent += n;
    }
    stream.flush().await.expect("flush");
    assert_eq!(reader.await.expect("reader"), TOTAL);
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("tunnel_stream_write");
    group.throughput(Throughput::Bytes(TOTAL as u64));
    group.measurement_time(Duration::from_secs(3));
    group.sample_size(10);
    for frame in [4 << 10, 16 << 10, 64 << 10] {
        for write in [1 << 10, 16 << 10, 64 << 10, 1 << 20] {
            let id = BenchmarkId::new(
                format!("frame {} KiB", frame >> 10),
                format!("write {} KiB", write >> 10),
            );
            group.bench_with_input(id, &(frame, write), |b, &(frame, write)| {
                b.to_async(&rt).iter(|| move_bytes(frame, write));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
