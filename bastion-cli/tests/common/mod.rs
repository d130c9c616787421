//! Helpers shared by the integration tests: the real `bastion` binary, emulators on loopback,
//! and bounded waits on a running command's stderr.
#![allow(dead_code)]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bastion_emulator::{
    self, BastionFixture, Emulator, EmulatorConfig, TEST_TENANT, TargetFixture, TestClaims,
};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_bastion");

/// Every wait in these tests is bounded by this unless stated otherwise.
pub const WAIT: Duration = Duration::from_secs(30);

/// `bastion` with a clean environment: no inherited BASTION_* / AZURE_* settings, backtraces
/// on (so a panic would show), no colours.
pub fn bastion() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("BASTION_") || k.starts_with("AZURE_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Runs `bastion args...` to completion (bounded) and returns its output.
pub async fn run(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut cmd = bastion();
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn bastion");
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("bastion {args:?} did not finish within {WAIT:?}"))
        .expect("wait for bastion")
}

/// Asserts a clean failure: the exit code, exactly one `error:` line on stderr, no panic and
/// no backtrace. Returns the error line.
#[track_caller]
pub fn assert_clean_error(output: &std::process::Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("stack backtrace"),
        "bastion panicked:\n{stderr}"
    );
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line expected; stderr:\n{stderr}"
    );
    let line = errors[0].to_owned();
    assert!(
        line.contains(" — ") || line.contains("; ") || line.contains(": "),
        "the error should say what to do: {line}"
    );
    line
}

/// The Bastion data-plane emulator with a Standard Bastion and a VM whose port 22 is an echo
/// server, plus the environment that points `bastion` at it.
pub struct CoreSandbox {
    /// The emulator.
    pub emu: Emulator,
    /// The Bastion fixture.
    pub bastion: BastionFixture,
    /// The VM's resource id.
    pub vm: String,
    /// The CA certificate file.
    pub ca_file: tempfile::NamedTempFile,
    /// An ARM token the emulator accepts.
    pub token: String,
    _echo: tokio::task::JoinHandle<()>,
}

impl CoreSandbox {
    /// Starts it.
    pub async fn start() -> Self {
        Self::start_with(BastionFixture::standard(TEST_TENANT)).await
    }

    /// Starts it with a given Bastion.
    pub async fn start_with(bastion: BastionFixture) -> Self {
        let (echo, task) = bastion_emulator::spawn_echo_target()
            .await
            .expect("echo target");
        let vm = bastion_emulator::vm_resource_id("vm1");
        let emu = Emulator::start(
            EmulatorConfig::single(bastion.clone()).with_target(TargetFixture::new(&vm, 22, echo)),
        )
        .await
        .expect("emulator");
        let ca_file = tempfile::NamedTempFile::new().expect("ca file");
        std::fs::write(ca_file.path(), emu.ca_pem()).expect("write ca");
        let token = TestClaims::new(TEST_TENANT, "test-user").mint();
        Self {
            emu,
            bastion,
            vm,
            ca_file,
            token,
            _echo: task,
        }
    }

    /// `HOST:PORT` of the Bastion endpoint.
    pub fn endpoint(&self) -> String {
        self.emu.endpoint_for(&self.bastion.dns_name)
    }

    /// BASTION_CA_FILE, BASTION_RESOLVE, BASTION_AUTH=token, BASTION_TOKEN.
    pub fn env(&self) -> Vec<(String, String)> {
        let resolve: Vec<String> = self
            .emu
            .resolve_overrides()
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect();
        vec![
            (
                "BASTION_CA_FILE".into(),
                self.ca_file.path().display().to_string(),
            ),
            ("BASTION_RESOLVE".into(), resolve.join(",")),
            ("BASTION_AUTH".into(), "token".into()),
            ("BASTION_TOKEN".into(), self.token.clone()),
        ]
    }
}

/// A running `bastion` whose stderr is collected line by line.
pub struct Running {
    /// The child.
    pub child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` with stderr piped (stdout piped too, unless already set up).
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn bastion");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = Arc::clone(&log);
        let reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                eprintln!("[bastion] {line}");
                log2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            log,
            reader: Some(reader),
        }
    }

    /// Waits (bounded) for a stderr line matching `pred`.
    pub async fn wait_for_line(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> String {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if pred(&line) => return line,
                Ok(Some(_)) => continue,
                Ok(None) => panic!(
                    "bastion exited before the expected line; stderr:\n{}",
                    self.stderr()
                ),
                Err(_) => panic!(
                    "no expected line within {timeout:?}; stderr:\n{}",
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for `Tunnel is ready, connect on port N` and returns N.
    pub async fn ready_port(&mut self) -> u16 {
        let line = self
            .wait_for_line(|l| l.starts_with("Tunnel is ready, connect on port "), WAIT)
            .await;
        line.rsplit(' ').next().unwrap().parse().expect("port")
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = self.child.id().expect("pid") as i32;
        rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), sig)
            .expect("kill");
    }

    /// Waits (bounded) for the process to exit and its stderr to be read to the end.
    pub async fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(s) => s.expect("wait"),
            Err(_) => panic!(
                "bastion did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            ),
        };
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        status
    }

    /// The stderr collected so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// bastion-arm's sandbox (ARM, Bastion data plane, Kubernetes stand-in) in this process, and
/// the environment that points `bastion` at it.
pub struct ArmSandbox {
    /// The sandbox.
    pub sandbox: bastion_emulator::Sandbox,
    /// The CA certificate file.
    pub ca_file: tempfile::NamedTempFile,
}

impl ArmSandbox {
    /// Starts it.
    pub async fn start() -> Self {
        let sandbox = bastion_emulator::Sandbox::start().await.expect("sandbox");
        let ca_file = tempfile::NamedTempFile::new().expect("ca file");
        std::fs::write(ca_file.path(), sandbox.ca_pem()).expect("write ca");
        Self { sandbox, ca_file }
    }

    /// The environment for the full-access user.
    pub fn env(&self) -> Vec<(String, String)> {
        self.env_for(&self.sandbox.default_token())
    }

    /// The environment for a sandbox principal.
    pub fn env_as(&self, principal: &str) -> Vec<(String, String)> {
        self.env_for(&self.sandbox.token_for(principal).expect("principal"))
    }

    fn env_for(&self, token: &str) -> Vec<(String, String)> {
        let resolve: Vec<String> = self
            .sandbox
            .resolve()
            .iter()
            .map(|(h, ip)| format!("{h}={ip}"))
            .collect();
        vec![
            (
                "BASTION_ARM_ENDPOINT".into(),
                self.sandbox.arm_endpoint().to_string(),
            ),
            (
                "BASTION_CA_FILE".into(),
                self.ca_file.path().display().to_string(),
            ),
            ("BASTION_RESOLVE".into(), resolve.join(",")),
            ("BASTION_AUTH".into(), "token".into()),
            ("BASTION_TOKEN".into(), token.to_owned()),
            (
                "AZURE_SUBSCRIPTION_ID".into(),
                bastion_emulator::sandbox::SPOKE_SUBSCRIPTION.into(),
            ),
        ]
    }
}

/// Starts `bastion emulate` and reads the `export NAME='value'` lines it prints, up to its
/// `# The sandbox runs until Ctrl-C.` line.
pub async fn start_emulate() -> (Running, Vec<(String, String)>) {
    let mut cmd = bastion();
    cmd.arg("emulate").stdout(Stdio::piped());
    let mut emulate = Running::spawn(cmd);
    let stdout = emulate.child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut env = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(rest) = line.strip_prefix("export ") {
                let (k, v) = rest.split_once('=').expect("NAME=value");
                env.push((k.to_owned(), v.trim_matches('\'').to_owned()));
            }
            if line.starts_with("# The sandbox runs until Ctrl-C") {
                return;
            }
        }
        panic!("emulate closed stdout before printing its environment");
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("emulate printed its environment in time");
    (emulate, env)
}
