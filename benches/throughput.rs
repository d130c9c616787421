//! Benchmarks against the built-in Bastion emulator over real TLS on loopback:
//! - throughput of one tunnelled connection (echo, both directions at once) per frame size;
//! - connection setup latency (token exchange + WebSocket + first echoed byte);
//! - resident memory per idle tunnelled connection.
//!
//! Run: `cargo bench -p bastion-benches` (release build). Timings are printed, never asserted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bastion_core::{Endpoint, LocalListener, StaticTokenCredential, Target, Tunnel, TunnelConfig};
use bastion_emulator::{self, BastionFixture, Emulator, EmulatorConfig, TargetFixture, TestClaims};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Bench {
    _emulator: Emulator,
    config: TunnelConfig,
}

async fn setup() -> Bench {
    let (echo, _) = bastion_emulator::spawn_echo_target()
        .await
        .expect("echo target");
    let bastion = BastionFixture::standard(bastion_emulator::TEST_TENANT);
    let vm = bastion_emulator::vm_resource_id("bench");
    let emu = Emulator::start(
        EmulatorConfig::single(bastion.clone()).with_target(TargetFixture::new(&vm, 22, echo)),
    )
    .await
    .expect("emulator");
    let mut config = TunnelConfig::new(
        Endpoint::parse(&emu.endpoint_for(&bastion.dns_name)).expect("endpoint"),
        Target::resource(vm, 22).expect("target"),
    );
    config.http.extra_root_ca_pem = Some(emu.ca_pem().into_bytes());
    config.http.resolve = emu.resolve_overrides();
    Bench {
        _emulator: emu,
        config,
    }
}

fn credential() -> Arc<StaticTokenCredential> {
    Arc::new(StaticTokenCredential::from_jwt(
        bastion_emulator::jwt::mint(&TestClaims::new(bastion_emulator::TEST_TENANT, "bench")),
    ))
}

async fn serve(config: TunnelConfig) -> (u16, Tunnel, tokio::sync::oneshot::Sender<()>) {
    let tunnel = Tunnel::new(config, credential()).expect("tunnel");
    let listener = LocalListener::bind_loopback(0).await.expect("bind");
    let port = listener.port();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let t = tunnel.clone();
    tokio::spawn(async move {
        t.serve(listener, async {
            let _ = rx.await;
        })
        .await
    });
    (port, tunnel, tx)
}

async fn throughput(bench: &Bench, frame: usize, total: usize) -> f64 {
    let mut config = bench.config.clone();
    config.stream.max_frame_size = frame;
    let (port, _tunnel, stop) = serve(config).await;
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut r, mut w) = stream.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        let chunk = vec![0xa5u8; 256 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            w.write_all(&chunk[..n]).await.expect("write");
            sent += n;
        }
        w
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < total {
        let n = r.read(&mut buf).await.expect("read");
        assert!(n > 0, "tunnel closed early");
        got += n;
    }
    let elapsed = start.elapsed();
    drop(writer.await);
    let _ = stop.send(());
    // Bytes moved each way per second.
    total as f64 / elapsed.as_secs_f64() / (1 << 20) as f64
}

async fn setup_latency(bench: &Bench, n: usize) -> (Duration, Duration) {
    let (port, _tunnel, stop) = serve(bench.config.clone()).await;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"x").await.expect("write");
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("read");
        samples.push(start.elapsed());
    }
    let _ = stop.send(());
    samples.sort();
    (samples[n / 2], samples[n * 95 / 100])
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn memory_per_connection(bench: &Bench, n: usize) -> f64 {
    let (port, _tunnel, stop) = serve(bench.config.clone()).await;
    // Warm up allocator pools with one connection.
    let mut warm = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    warm.write_all(b"x").await.expect("write");
    let mut b = [0u8; 1];
    warm.read_exact(&mut b).await.expect("read");
    let before = rss_kib();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        s.write_all(b"x").await.expect("write");
        s.read_exact(&mut b).await.expect("read");
        conns.push(s);
    }
    let after = rss_kib();
    drop(conns);
    let _ = stop.send(());
    // Includes the emulator's side of each connection (same process).
    (after.saturating_sub(before)) as f64 / n as f64
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let bench = setup().await;
        println!("| benchmark | result |");
        println!("|---|---|");
        for frame in [4096usize, 16 * 1024, 64 * 1024] {
            let mibs = throughput(&bench, frame, 256 << 20).await;
            println!("| echo throughput, {} KiB frames, each way | {mibs:.0} MiB/s |", frame / 1024);
        }
        let (p50, p95) = setup_latency(&bench, 200).await;
        println!(
            "| connection setup to first echoed byte (token + WebSocket), p50 / p95 | {:.2} ms / {:.2} ms |",
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0
        );
        let kib = memory_per_connection(&bench, 200).await;
        println!("| resident memory per idle connection (client + emulator side) | {kib:.0} KiB |");
    });
}
