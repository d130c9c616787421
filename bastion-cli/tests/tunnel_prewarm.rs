//! `bastion tunnel --prewarm 2` against the data-plane emulator: two sessions are connected
//! through to the target before any client comes, each client receives the banner its target
//! sent before it attached, and SIGTERM deletes every session, pre-warmed ones included. Also
//! the error for more pre-warmed sessions than the cap, and `proxy --prewarm` accepted.

use crate::common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bastion_emulator::{BastionFixture, Emulator, EmulatorConfig, TEST_TENANT, TargetFixture};
use common::{
    WAIT, assert_clean_error, command, connect, exit_status, read_stderr, round_trip, spawn_proxy,
    start_tunnel,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6 emulated\r\n";

/// A target that sends [`BANNER`] as soon as a connection comes, then echoes.
async fn spawn_banner_target() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if stream.write_all(BANNER).await.is_ok() {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    (addr, accepted)
}

/// The emulator with a Standard Bastion and a VM whose port 22 is `target`, and the
/// environment that points `bastion` at it.
struct Sandbox {
    emu: Emulator,
    dns_name: String,
    vm: String,
    _ca_file: tempfile::NamedTempFile,
    env: Vec<(String, String)>,
}

impl Sandbox {
    async fn start(target: SocketAddr) -> Self {
        let bastion = BastionFixture::standard(TEST_TENANT);
        let vm = bastion_emulator::vm_resource_id("vm1");
        let emu = Emulator::start(
            EmulatorConfig::single(bastion.clone())
                .with_target(TargetFixture::new(&vm, 22, target)),
        )
        .await
        .expect("emulator");
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), emu.ca_pem()).unwrap();
        let resolve: Vec<String> = emu
            .resolve_overrides()
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect();
        let env = vec![
            (
                "BASTION_CA_FILE".into(),
                ca_file.path().display().to_string(),
            ),
            ("BASTION_RESOLVE".into(), resolve.join(",")),
            ("BASTION_AUTH".into(), "token".into()),
            (
                "BASTION_TOKEN".into(),
                bastion_emulator::TestClaims::new(TEST_TENANT, "test-user").mint(),
            ),
        ];
        Self {
            emu,
            dns_name: bastion.dns_name,
            vm,
            _ca_file: ca_file,
            env,
        }
    }

    /// `bastion tunnel ... --resource-port 22 ARGS...`.
    fn tunnel(&self, args: &[&str]) -> tokio::process::Command {
        self.command("tunnel", args)
    }

    /// `bastion proxy ... --resource-port 22 ARGS...`, stdio piped.
    fn proxy(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = self.command("proxy", args);
        cmd.stderr(std::process::Stdio::piped());
        cmd
    }

    fn command(&self, subcommand: &str, args: &[&str]) -> tokio::process::Command {
        let endpoint = self.emu.endpoint_for(&self.dns_name);
        let mut all = vec![
            subcommand,
            "--bastion-endpoint",
            &endpoint,
            "--target-resource-id",
            &self.vm,
            "--resource-port",
            "22",
        ];
        all.extend_from_slice(args);
        command(&all, &self.env)
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for {what}");
}

async fn read_banner(conn: &mut TcpStream) -> Vec<u8> {
    let mut got = vec![0u8; BANNER.len()];
    tokio::time::timeout(WAIT, conn.read_exact(&mut got))
        .await
        .expect("the banner in time")
        .unwrap();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prewarm_2_serves_clients_with_ready_sessions_and_sigterm_deletes_them_all() {
    let (target, accepted) = spawn_banner_target().await;
    let sandbox = Sandbox::start(target).await;
    let (mut run, port) = start_tunnel(sandbox.tunnel(&["--prewarm", "2"])).await;
    run.wait_for_line(|l| l.starts_with("Keeping 2 session(s) pre-warmed"), WAIT)
        .await;

    // Before any client: two sessions, each with the target already dialled.
    until("two pre-warmed sessions", || {
        sandbox.emu.stats().live_websockets == 2 && accepted.load(Ordering::SeqCst) == 2
    })
    .await;
    let warm: Vec<String> = sandbox
        .emu
        .active_sessions()
        .into_iter()
        .map(|s| s.auth_token)
        .collect();
    assert_eq!(warm.len(), 2);

    // Each client is greeted by its target without sending anything, then talks as usual.
    let mut clients = Vec::new();
    for i in 0..2 {
        let mut conn = connect(port).await;
        assert_eq!(read_banner(&mut conn).await, BANNER, "client {i}");
        let hello = format!("SSH-2.0-client-{i}\r\n");
        assert_eq!(
            round_trip(&mut conn, hello.as_bytes()).await,
            hello.as_bytes()
        );
        clients.push(conn);
    }
    // They ran over the two sessions opened before they came.
    let carried: Vec<u64> = sandbox
        .emu
        .sessions()
        .into_iter()
        .filter(|s| warm.contains(&s.auth_token))
        .map(|s| s.bytes_up)
        .collect();
    assert_eq!(carried, ["SSH-2.0-client-0\r\n".len() as u64; 2]);
    // And the pool is refilled behind them.
    until("two replacements", || accepted.load(Ordering::SeqCst) == 4).await;

    // Two clients open, two sessions waiting: SIGTERM deletes all four.
    run.signal(rustix::process::Signal::TERM);
    let status = run.wait(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        run.stderr()
    );
    sandbox.emu.assert_no_orphans();
    assert_eq!(sandbox.emu.stats().deletes, 4);
    assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    drop(clients);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_pre_warmed_sessions_than_max_connections_is_a_usage_error() {
    let (target, _) = spawn_banner_target().await;
    let sandbox = Sandbox::start(target).await;
    let out =
        common::run_command(sandbox.tunnel(&["--prewarm", "3", "--max-connections", "2"])).await;
    let line = assert_clean_error(&out, 2);
    assert_eq!(
        line,
        "error: --prewarm 3 is more than the 2 session(s) this tunnel may hold at once — use --prewarm 2 or less, or raise --max-connections"
    );
    assert_eq!(
        sandbox.emu.stats().tokens_issued,
        0,
        "no session was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_accepts_prewarm_and_passes_the_banner_on_before_stdin_is_read() {
    let (target, accepted) = spawn_banner_target().await;
    let sandbox = Sandbox::start(target).await;
    let (mut child, mut stdin, mut stdout) = spawn_proxy(sandbox.proxy(&["--prewarm", "2"]));
    // Nothing written yet: the one session is open at start and the banner comes through.
    let mut banner = vec![0u8; BANNER.len()];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut banner))
        .await
        .expect("the banner in time")
        .unwrap();
    assert_eq!(banner, BANNER);
    stdin.write_all(b"SSH-2.0-client\r\n").await.unwrap();
    let mut back = vec![0u8; 16];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut back))
        .await
        .expect("the echo in time")
        .unwrap();
    assert_eq!(back, b"SSH-2.0-client\r\n");
    drop(stdin);
    let status = exit_status(&mut child, "proxy exited in time").await;
    let stderr = read_stderr(&mut child).await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    // One connection, one session: nothing is pre-warmed beside it.
    assert_eq!(sandbox.emu.stats().tokens_issued, 1, "{stderr}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    sandbox.emu.assert_no_orphans();
}
