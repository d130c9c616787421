//! Shared set-up for the integration tests: an emulator with an echo target, a tunnel pointed
//! at it over real TLS (trusting the emulator's CA, its names resolved to loopback), and helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bastion_core::{Endpoint, LocalListener, StaticTokenCredential, Target, Tunnel, TunnelConfig};
use bastion_emulator::{
    self, BastionFixture, Emulator, EmulatorConfig, Faults, TargetFixture, TestClaims,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

pub const TENANT: &str = bastion_emulator::TEST_TENANT;

pub struct Harness {
    pub emulator: Emulator,
    pub bastion: BastionFixture,
    pub echo: SocketAddr,
    pub vm: String,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::start_with(BastionFixture::standard(TENANT), |c| c).await
    }

    pub async fn start_with(
        bastion: BastionFixture,
        tweak: impl FnOnce(EmulatorConfig) -> EmulatorConfig,
    ) -> Harness {
        let (echo, _task) = bastion_emulator::spawn_echo_target().await.unwrap();
        let vm = bastion_emulator::vm_resource_id("vm1");
        let config = EmulatorConfig::single(bastion.clone())
            .with_target(TargetFixture::new(&vm, 22, echo))
            .with_target(TargetFixture::new(&vm, 8080, echo));
        let emulator = Emulator::start(tweak(config)).await.unwrap();
        Harness {
            emulator,
            bastion,
            echo,
            vm,
        }
    }

    pub fn faults(&self, f: impl FnOnce(&mut Faults)) {
        let mut faults = Faults::default();
        f(&mut faults);
        self.emulator.set_faults(faults);
    }

    pub fn config(&self, target: Target) -> TunnelConfig {
        let endpoint =
            Endpoint::parse(&self.emulator.endpoint_for(&self.bastion.dns_name)).unwrap();
        let mut config = TunnelConfig::new(endpoint, target);
        config.http.extra_root_ca_pem = Some(self.emulator.ca_pem().into_bytes());
        config.http.resolve = self.emulator.resolve_overrides();
        config.bastion_resource_id = Some(self.bastion.id.clone());
        config
    }

    pub fn vm_target(&self) -> Target {
        Target::resource(&self.vm, 22).unwrap()
    }

    pub fn tunnel(&self) -> Tunnel {
        self.tunnel_with(|_| {})
    }

    pub fn tunnel_with(&self, f: impl FnOnce(&mut TunnelConfig)) -> Tunnel {
        let mut config = self.config(self.vm_target());
        f(&mut config);
        Tunnel::new(config, credential()).unwrap()
    }

    /// Waits (bounded) until the emulator shows no live session and as many deletes as tokens.
    pub async fn assert_all_sessions_deleted(&self) {
        let ok = self
            .emulator
            .wait_until(
                |s| s.live_sessions == 0 && s.deletes == s.tokens_issued,
                Duration::from_secs(10),
            )
            .await;
        let stats = self.emulator.stats();
        assert!(ok, "sessions left: {stats:?}");
    }
}

pub fn token() -> String {
    bastion_emulator::jwt::mint(&TestClaims::new(
        TENANT,
        "00000000-0000-0000-0000-0000000000aa",
    ))
}

pub fn credential() -> Arc<dyn azure_core::credentials::TokenCredential> {
    Arc::new(StaticTokenCredential::from_jwt(token()))
}

/// A served tunnel on an ephemeral loopback port, shut down by `stop`.
pub struct Served {
    pub port: u16,
    pub tunnel: Tunnel,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<bastion_core::ServeSummary>,
}

impl Served {
    pub async fn start(tunnel: Tunnel) -> Served {
        let listener = LocalListener::bind_loopback(0).await.unwrap();
        let port = listener.port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = tunnel.clone();
        let task = tokio::spawn(async move {
            t.serve(listener, async {
                let _ = rx.await;
            })
            .await
        });
        Served {
            port,
            tunnel,
            stop: Some(tx),
            task,
        }
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }

    pub async fn stop(mut self) -> bastion_core::ServeSummary {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve must finish within its shutdown budget")
            .unwrap()
    }
}

/// Sends `data` through `stream` to the echo target and reads it back concurrently.
pub async fn echo_round_trip<S>(stream: S, data: &[u8]) -> Vec<u8>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut r, mut w) = tokio::io::split(stream);
    let len = data.len();
    let writer = async {
        w.write_all(data).await.unwrap();
        w.flush().await.unwrap();
        w
    };
    let reader = async {
        let mut out = vec![0u8; len];
        r.read_exact(&mut out).await.unwrap();
        out
    };
    let (_w, out) = tokio::join!(writer, reader);
    out
}

#[allow(unused_imports)] // Not every test binary uses it.
pub use bastion_emulator::random_bytes;

pub fn checksum(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    sha2::Sha256::digest(data).to_vec()
}

/// Reads until EOF or error, returning what arrived and how it ended.
pub async fn read_until_end(stream: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
            Err(_) => return (out, Err(std::io::Error::other("timed out"))),
            Ok(Ok(0)) => return (out, Ok(())),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => return (out, Err(e)),
        }
    }
}
