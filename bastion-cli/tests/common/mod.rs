//! Helpers shared by the integration tests: the real `bastion` binary, emulators on loopback,
//! and bounded waits on a running command's stderr.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bastion_emulator::{
    self, BastionFixture, Emulator, EmulatorConfig, TEST_TENANT, TargetFixture, TestClaims,
    sandbox_vm,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
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

/// `bastion args...` with `env` on top of the clean environment of [`bastion`].
pub fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = bastion();
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`): there a real
/// client the machine lacks (kubectl, OpenSSH) fails its test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// Runs `bastion args...` to completion (bounded) and returns its output.
pub async fn run(args: &[&str], env: &[(String, String)]) -> Output {
    run_command(command(args, env)).await
}

/// Runs `cmd` to completion (bounded by [`WAIT`]) with stdout and stderr captured.
pub async fn run_command(mut cmd: Command) -> Output {
    let args: Vec<_> = cmd.as_std().get_args().map(|a| a.to_owned()).collect();
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn bastion");
    tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("bastion {args:?} did not finish within {WAIT:?}"))
        .expect("wait for bastion")
}

/// Asserts exit code 0 (showing both streams if not) and returns (stdout, stderr).
#[track_caller]
pub fn assert_success(output: &Output) -> (String, String) {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

/// Asserts `dir` (a private TMPDIR) is empty: nothing was left on disk.
#[track_caller]
pub fn assert_nothing_left_in(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left on disk: {left:?}");
}

/// The `what` of the one error that may carry a guide (see `credential_guide.rs`).
pub const CREDENTIAL_ERROR: &str = "no Azure credential could give an access token";

/// Asserts a clean failure, in the form the README promises: the exit code; no panic and no
/// backtrace; exactly one `error: ` line, which is the last thing on stderr and reads
/// `error: <what> — <what to do>`. Only the credential error may instead be followed by its
/// guide, lines indented under it. Returns the error line.
#[track_caller]
pub fn assert_clean_error(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    for panic_text in ["panicked", "stack backtrace", "RUST_BACKTRACE", "thread '"] {
        assert!(
            !stderr.contains(panic_text),
            "bastion panicked ({panic_text:?}):\n{stderr}"
        );
    }
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    let errors: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].trim_start().starts_with("error"))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line expected; stderr:\n{stderr}"
    );
    let at = errors[0];
    let line = lines[at].to_owned();
    let what = line
        .strip_prefix("error: ")
        .unwrap_or_else(|| panic!("the error line must start with `error: `: {line:?}"));
    let after: Vec<&str> = lines[at + 1..]
        .iter()
        .copied()
        .filter(|l| !l.trim().is_empty())
        .collect();
    if what == CREDENTIAL_ERROR {
        assert!(
            !after.is_empty() && after.iter().all(|l| l.starts_with("  ")),
            "the credential error is followed by its guide, indented; stderr:\n{stderr}"
        );
        return line;
    }
    assert!(
        after.is_empty(),
        "the error must be a single line, the last on stderr; stderr:\n{stderr}"
    );
    // The problem, then ` — ` and what to do: both halves there, neither empty.
    let (problem, fix) = what.split_once(" — ").unwrap_or_else(|| {
        panic!("the error must say the problem, then ` — ` and what to do: {line:?}")
    });
    assert!(
        !problem.trim().is_empty() && !fix.trim().is_empty(),
        "the error must name the problem and what to do: {line:?}"
    );
    line
}

/// Runs `bastion check args...` and returns its output and its stdout (the report).
pub async fn check(args: &[&str], env: &[(String, String)]) -> (Output, String) {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let out = run(&all, env).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, stdout)
}

/// The report row that starts with `status_and_id` (e.g. `FAIL    R3`) with its indented
/// continuation lines (the fix), joined by newlines.
#[track_caller]
pub fn report_row(stdout: &str, status_and_id: &str) -> String {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(status_and_id))
        .unwrap_or_else(|| panic!("no {status_and_id} row in:\n{stdout}"));
    lines[start..]
        .iter()
        .take_while(|l| l.starts_with(status_and_id) || l.starts_with("            "))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// Asserts a passing check report: exit code 0 and each of `rows` (e.g. `PASS    N1`) in it.
#[track_caller]
pub fn assert_check_passed(out: &Output, stdout: &str, rows: &[&str]) {
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in rows {
        assert!(stdout.contains(row), "{row:?} missing:\n{stdout}");
    }
}

/// Asserts a failing check report: the row `FAIL    <id>` is in it, and the command failed
/// cleanly with exit code 4 (pre-flight failed). Returns the row (with its fix lines) and the
/// error line.
#[track_caller]
pub fn assert_check_failed(out: &Output, stdout: &str, id: &str) -> (String, String) {
    let row = report_row(stdout, &format!("FAIL    {id}"));
    let error = assert_clean_error(out, 4);
    (row, error)
}

/// BASTION_CA_FILE, BASTION_RESOLVE (`host=ip,...`), BASTION_AUTH=token and BASTION_TOKEN: what
/// points `bastion` at emulators on loopback.
fn emulator_env(
    ca_file: &Path,
    resolve: &[(String, IpAddr)],
    token: &str,
) -> Vec<(String, String)> {
    let resolve: Vec<String> = resolve.iter().map(|(h, ip)| format!("{h}={ip}")).collect();
    vec![
        ("BASTION_CA_FILE".into(), ca_file.display().to_string()),
        ("BASTION_RESOLVE".into(), resolve.join(",")),
        ("BASTION_AUTH".into(), "token".into()),
        ("BASTION_TOKEN".into(), token.to_owned()),
    ]
}

/// The Bastion data-plane emulator with a Standard Bastion and a VM whose ports 22 and 3389
/// are an echo server, plus the environment that points `bastion` at it.
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
        Self::build(bastion, None).await
    }

    /// Starts it with the VM's port 22 served by `ssh` (a real sshd) instead of the echo
    /// server.
    pub async fn start_with_ssh(ssh: std::net::SocketAddr) -> Self {
        Self::build(BastionFixture::standard(TEST_TENANT), Some(ssh)).await
    }

    async fn build(bastion: BastionFixture, ssh: Option<std::net::SocketAddr>) -> Self {
        let (echo, task) = bastion_emulator::spawn_echo_target()
            .await
            .expect("echo target");
        let vm = bastion_emulator::vm_resource_id("vm1");
        let emu = Emulator::start(
            EmulatorConfig::single(bastion.clone())
                .with_target(TargetFixture::new(&vm, 22, ssh.unwrap_or(echo)))
                // The VM's RDP port, for `bastion rdp`: the same echo server.
                .with_target(TargetFixture::new(&vm, 3389, echo)),
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
        emulator_env(
            self.ca_file.path(),
            &self.emu.resolve_overrides(),
            &self.token,
        )
    }
}

impl CoreSandbox {
    /// `bastion LEADING... --bastion-endpoint ENDPOINT --target-resource-id VM ARGS...` against
    /// this sandbox, with its environment. `leading` is the subcommand and any global options
    /// before it, e.g. `["--output", "json", "tunnel"]`.
    pub fn command(&self, leading: &[&str], args: &[&str]) -> Command {
        let endpoint = self.endpoint();
        let mut all = leading.to_vec();
        all.extend_from_slice(&[
            "--bastion-endpoint",
            &endpoint,
            "--target-resource-id",
            &self.vm,
        ]);
        all.extend_from_slice(args);
        command(&all, &self.env())
    }

    /// `bastion tunnel ... --resource-port 22 ARGS...` to the echo server.
    pub fn tunnel(&self, args: &[&str]) -> Command {
        let mut all = vec!["--resource-port", "22"];
        all.extend_from_slice(args);
        self.command(&["tunnel"], &all)
    }

    /// `bastion proxy ... ARGS...` to the echo server, with stdin, stdout and stderr piped.
    pub fn proxy(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&["proxy"], args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }
}

/// Spawns `bastion tunnel ... --resource-port 22 ARGS...` against `sandbox` and waits for it
/// to be ready: the running tunnel and its local port.
pub async fn spawn_tunnel(sandbox: &CoreSandbox, args: &[&str]) -> (Running, u16) {
    start_tunnel(sandbox.tunnel(args)).await
}

/// Spawns a `bastion tunnel` command and waits for its ready line: the running tunnel and its
/// local port.
pub async fn start_tunnel(cmd: Command) -> (Running, u16) {
    let mut run = Running::spawn(cmd);
    let port = run.ready_port().await;
    (run, port)
}

/// The resource id of the VM that `bastion emulate` adds to its sandbox (`vm1` in `vm-rg`).
pub static EMULATED_VM: LazyLock<String> = LazyLock::new(sandbox_vm::vm_id);

/// `tunnel -n BASTION -g vm-rg --target-resource-id <vm1> --resource-port PORT`: a tunnel to
/// the VM that `bastion emulate` adds to its sandbox.
pub fn emulated_vm_tunnel_args<'a>(bastion: &'a str, port: &'a str) -> [&'a str; 9] {
    [
        "tunnel",
        "-n",
        bastion,
        "-g",
        sandbox_vm::VM_RESOURCE_GROUP,
        "--target-resource-id",
        &EMULATED_VM,
        "--resource-port",
        port,
    ]
}

/// Spawns `bastion tunnel` (stdout discarded) to the `bastion emulate` sandbox's VM through
/// `bastion` and waits for it to be ready: the running tunnel and its local port.
pub async fn spawn_emulated_vm_tunnel(
    env: &[(String, String)],
    bastion: &str,
    port: &str,
) -> (Running, u16) {
    let mut cmd = command(&emulated_vm_tunnel_args(bastion, port), env);
    cmd.stdout(Stdio::null());
    start_tunnel(cmd).await
}

/// Connects to a local tunnel port.
pub async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the tunnel")
}

/// Writes `msg` on `conn` and reads (bounded by [`WAIT`]) as many bytes back.
pub async fn round_trip(conn: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    conn.write_all(msg).await.unwrap();
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    back
}

/// Spawns a `bastion proxy` command (see [`CoreSandbox::proxy`]) and takes its stdin and stdout.
pub fn spawn_proxy(mut cmd: Command) -> (Child, ChildStdin, ChildStdout) {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bastion");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    (child, stdin, stdout)
}

/// Waits up to 15 s for `child` to exit (`what`: the panic message if it does not).
pub async fn exit_status(child: &mut Child, what: &str) -> ExitStatus {
    tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect(what)
        .expect("wait")
}

/// Reads `child`'s piped stderr to the end.
pub async fn read_stderr(child: &mut Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    stderr
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

    /// Asserts that the stderr collected so far contains `text`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) {
        let stderr = self.stderr();
        assert!(
            stderr.contains(text),
            "{text:?} missing from stderr:\n{stderr}"
        );
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

    /// `bastion aks -n myaks -g aks-rg ARGS...` as the full-access user.
    pub fn aks(&self, args: &[&str]) -> Command {
        command(&myaks_args(&["aks"], args), &self.env())
    }

    fn env_for(&self, token: &str) -> Vec<(String, String)> {
        let mut env = vec![(
            "BASTION_ARM_ENDPOINT".into(),
            self.sandbox.arm_endpoint().to_string(),
        )];
        env.extend(emulator_env(
            self.ca_file.path(),
            &self.sandbox.resolve(),
            token,
        ));
        env.push((
            "AZURE_SUBSCRIPTION_ID".into(),
            bastion_emulator::sandbox::SPOKE_SUBSCRIPTION.into(),
        ));
        env
    }
}

/// `LEADING... -n myaks -g aks-rg ARGS...`: arguments naming the sandbox's private cluster.
pub fn myaks_args<'a>(leading: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    let mut all = leading.to_vec();
    all.extend_from_slice(&["-n", "myaks", "-g", "aks-rg"]);
    all.extend_from_slice(args);
    all
}

/// Starts `bastion emulate ARGS` and returns every stdout line it prints up to its
/// `# The sandbox runs until Ctrl-C.` line (included).
pub async fn start_emulate_with(args: &[&std::ffi::OsStr]) -> (Running, Vec<String>) {
    let mut cmd = bastion();
    cmd.arg("emulate").args(args).stdout(Stdio::piped());
    let mut emulate = Running::spawn(cmd);
    let stdout = emulate.child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let read = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let done = line.starts_with("# The sandbox runs until Ctrl-C");
            printed.push(line);
            if done {
                return;
            }
        }
        panic!("emulate closed stdout before printing its environment");
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("emulate printed its environment in time");
    (emulate, printed)
}

/// The `(NAME, value)` of each `export NAME='value'` line of `printed`.
pub fn exports(printed: &[String]) -> Vec<(String, String)> {
    printed
        .iter()
        .filter_map(|l| l.strip_prefix("export "))
        .map(|rest| {
            let (k, v) = rest.split_once('=').expect("NAME=value");
            (k.to_owned(), v.trim_matches('\'').to_owned())
        })
        .collect()
}

/// Starts `bastion emulate` and reads the `export NAME='value'` lines it prints, up to its
/// `# The sandbox runs until Ctrl-C.` line.
pub async fn start_emulate() -> (Running, Vec<(String, String)>) {
    let (emulate, printed) = start_emulate_with(&[]).await;
    (emulate, exports(&printed))
}
