//! Child processes (`bastion emulate`, `bastion tunnel`), the sandbox environment they share,
//! and the `/proc` readings (CPU ticks, resident memory).

use std::collections::BTreeMap;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

use crate::Error;

/// Environment variables a child must not inherit from the caller (they would change what
/// `bastion` does or how much it logs).
pub const SCRUBBED_ENV: &[&str] = &[
    "RUST_LOG",
    "BASTION_OUTPUT",
    "BASTION_CLOUD",
    "BASTION_TENANT",
    "BASTION_IDENTITY_CLIENT_ID",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A child process that is killed when dropped (SIGKILL), or stopped politely with
/// [`Proc::stop`] (SIGTERM, then SIGKILL after a grace period).
pub struct Proc {
    /// A short name for messages and log files.
    pub name: String,
    /// The process id.
    pub pid: u32,
    child: Child,
}

impl Proc {
    /// Wraps a spawned child (fails if it has already exited).
    pub fn new(name: &str, child: Child) -> Result<Self, Error> {
        let pid = child
            .id()
            .ok_or_else(|| Error::new(format!("{name}: the child exited at once")))?;
        Ok(Self {
            name: name.to_owned(),
            pid,
            child,
        })
    }

    /// `VmRSS` of the process in KiB (`/proc/PID/status`).
    pub fn rss_kib(&self) -> Result<u64, Error> {
        rss_kib(self.pid)
    }

    /// Fails if the process has exited.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::new(format!(
                "{} (pid {}) exited: {status}",
                self.name, self.pid
            ))),
            Err(e) => Err(Error::new(format!("{}: cannot poll: {e}", self.name))),
        }
    }

    /// SIGTERM (through the `kill` program: no unsafe code here), up to `grace` to exit,
    /// then SIGKILL. Never fails.
    pub async fn stop(mut self, grace: Duration) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let term = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if term.is_ok_and(|s| s.success())
            && tokio::time::timeout(grace, self.child.wait()).await.is_ok()
        {
            return;
        }
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // On every error path and on Ctrl-C: no child outlives the harness. SIGTERM first, so
        // the emulator removes its temporary CA directory and a tunnel deletes its sessions;
        // SIGKILL if that takes more than 3 s. (Blocking, but only while tearing down.)
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        let termed = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if termed {
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // `kill_on_drop` is set too.
        let _ = self.child.start_kill();
    }
}

/// `utime + stime` of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| Error::new(format!("{path}: {e}")))?;
    // The command name (field 2) may contain spaces: count fields after its closing ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| Error::new(format!("{path}: unexpected format")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime field 15.
    let field = |i: usize| -> Result<u64, Error> {
        fields
            .get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::new(format!("{path}: no field {}", i + 3)))
    };
    Ok(field(11)? + field(12)?)
}

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64, Error> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| Error::new(format!("{path}: {e}")))?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::new(format!("{path}: no VmRSS")))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that fails).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The soft `RLIMIT_NOFILE` of this process (`/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files")
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What `bastion emulate` printed: the environment and the ready-made commands.
#[derive(Debug, Clone)]
pub struct SandboxEnv {
    /// `BASTION_*` and `AZURE_SUBSCRIPTION_ID`.
    pub vars: BTreeMap<String, String>,
    /// The VM's Bastion name (`-n`) and resource group (`-g`), from the IP-connect command.
    pub vm_bastion: String,
    /// The VM's Bastion's resource group.
    pub vm_resource_group: String,
    /// The VM's resource id (its port 22 is the echo server).
    pub vm_id: String,
    /// The VM's echo server port on 127.0.0.1 (from the IP-connect command).
    pub echo_port: u16,
    /// Each Bastion emulator's control API: its stats URL and the secret it requires.
    pub control: Vec<(String, String)>,
}

impl SandboxEnv {
    /// Parses the `--env-file` text.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut vars = BTreeMap::new();
        let mut ip_cmd = None;
        let mut vm_id = None;
        let mut control = Vec::new();
        for line in text.lines() {
            // "# Control API: URL with header X-Emulator-Secret: SECRET"
            if let Some(rest) = line.strip_prefix("# Control API: ") {
                let words: Vec<&str> = rest.split_whitespace().collect();
                if let (Some(url), Some(secret)) = (words.first(), words.last()) {
                    control.push(((*url).to_owned(), (*secret).to_owned()));
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("export ") {
                if let Some((k, v)) = rest.split_once('=') {
                    let v = v.trim().trim_matches('\'').to_owned();
                    vars.insert(k.trim().to_owned(), v);
                }
                continue;
            }
            // "#   bastion tunnel ... # comment"
            let Some(cmd) = line
                .trim_start_matches('#')
                .trim()
                .strip_prefix("bastion tunnel ")
            else {
                continue;
            };
            let cmd = cmd.split(" #").next().unwrap_or(cmd);
            let flags = parse_flags(cmd);
            if flags.contains_key("--target-ip-address") {
                ip_cmd = Some(flags);
            } else if flags.get("--resource-port").map(String::as_str) == Some("22")
                && flags.contains_key("--port")
                && let Some(id) = flags.get("--target-resource-id")
            {
                vm_id = Some(id.clone());
            }
        }
        for k in [
            "BASTION_ARM_ENDPOINT",
            "BASTION_CA_FILE",
            "BASTION_RESOLVE",
            "BASTION_TOKEN",
        ] {
            if !vars.contains_key(k) {
                return Err(Error::new(format!("the emulator's environment lacks {k}")));
            }
        }
        let ip_cmd = ip_cmd.ok_or_else(|| {
            Error::new("the emulator printed no IP-connect `bastion tunnel` command")
        })?;
        let get = |k: &str| {
            ip_cmd
                .get(k)
                .cloned()
                .ok_or_else(|| Error::new(format!("the IP-connect command lacks {k}")))
        };
        let echo_port = get("--resource-port")?
            .parse()
            .map_err(|_| Error::new("the IP-connect command's --resource-port is not a port"))?;
        Ok(Self {
            vm_bastion: get("-n")?,
            vm_resource_group: get("-g")?,
            vm_id: vm_id.ok_or_else(|| {
                Error::new("the emulator printed no vm1 `--resource-port 22` command")
            })?,
            echo_port,
            vars,
            control,
        })
    }
}

/// `--flag value` pairs of a command line (flags without a value map to "").
fn parse_flags(cmd: &str) -> BTreeMap<String, String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        if w.starts_with('-') {
            match words.get(i + 1) {
                Some(v) if !v.starts_with('-') => {
                    flags.insert(w.to_owned(), (*v).to_owned());
                    i += 2;
                    continue;
                }
                _ => {
                    flags.insert(w.to_owned(), String::new());
                }
            }
        }
        i += 1;
    }
    flags
}

fn base_command(bastion: &Path, env: Option<&SandboxEnv>) -> Command {
    let mut cmd = Command::new(bastion);
    for k in SCRUBBED_ENV {
        cmd.env_remove(k);
    }
    if let Some(env) = env {
        cmd.envs(&env.vars);
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

fn log_file(dir: &Path, name: &str) -> Result<(std::fs::File, PathBuf), Error> {
    let path = dir.join(name);
    let f =
        std::fs::File::create(&path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    Ok((f, path))
}

/// Starts `bastion emulate --env-file F` and waits (bounded) for the environment.
pub async fn start_emulator(bastion: &Path, logs: &Path) -> Result<(Proc, SandboxEnv), Error> {
    let env_file = logs.join("sandbox.env");
    let _ = std::fs::remove_file(&env_file);
    let (out, _) = log_file(logs, "emulate.stdout.log")?;
    let (err, err_path) = log_file(logs, "emulate.stderr.log")?;
    let child = base_command(bastion, None)
        .arg("emulate")
        .arg("--env-file")
        .arg(&env_file)
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {}: {e}", bastion.display())))?;
    let mut proc = Proc::new("bastion emulate", child)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Err(e) = proc.check_alive() {
            return Err(e.context(tail(&err_path)));
        }
        if let Ok(text) = std::fs::read_to_string(&env_file)
            && text.contains("runs until")
        {
            return Ok((proc, SandboxEnv::parse(&text)?));
        }
        if Instant::now() > deadline {
            return Err(Error::new(format!(
                "bastion emulate wrote no {} within 60 s",
                env_file.display()
            ))
            .context(tail(&err_path)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Counts of the tunnel's per-connection events (from its JSON output).
#[derive(Debug, Default)]
pub struct TunnelEvents {
    /// `connection_opened` events.
    pub opened: AtomicU64,
    /// `connection_closed` events.
    pub closed: AtomicU64,
    /// `connection_closed` events with an error.
    pub failed: AtomicU64,
    /// `warning` events.
    pub warnings: AtomicU64,
    /// `prewarmed` events (a pre-warmed session became ready).
    pub prewarmed: AtomicU64,
    /// The error of the first failed connection.
    pub first_error: std::sync::Mutex<Option<String>>,
}

/// A running `bastion tunnel`.
pub struct TunnelProc {
    /// The process.
    pub proc: Proc,
    /// Its local port.
    pub port: u16,
    /// The Bastion endpoint it uses (`host:port`).
    pub endpoint: String,
    /// Its connection events so far.
    pub events: Arc<TunnelEvents>,
    drain: tokio::task::JoinHandle<()>,
}

impl TunnelProc {
    /// Waits (bounded) until every opened connection has been reported closed.
    pub async fn wait_all_closed(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let opened = self.events.opened.load(Ordering::Relaxed);
            let closed = self.events.closed.load(Ordering::Relaxed);
            if closed >= opened {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the tunnel (SIGTERM: it closes and deletes its sessions), then SIGKILL.
    pub async fn stop(self) {
        self.proc.stop(Duration::from_secs(10)).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.drain).await;
    }
}

/// Starts `bastion --output json [global...] tunnel ARGS` and waits (bounded) for its ready
/// event. Its stdout is then drained into a log file, counting connection events.
pub async fn start_tunnel(
    bastion: &Path,
    env: &SandboxEnv,
    logs: &Path,
    name: &str,
    global: &[String],
    args: &[String],
) -> Result<TunnelProc, Error> {
    let (err, err_path) = log_file(logs, &format!("tunnel-{name}.stderr.log"))?;
    let (out, _) = log_file(logs, &format!("tunnel-{name}.stdout.log"))?;
    let mut cmd = base_command(bastion, Some(env));
    cmd.arg("--output")
        .arg("json")
        .args(global)
        .arg("tunnel")
        .args(args);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {}: {e}", bastion.display())))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::new("no stdout pipe"))?;
    let proc = Proc::new(&format!("bastion tunnel ({name})"), child)?;
    let mut lines = BufReader::new(stdout).lines();
    let mut log = BufWriter::new(out);
    let ready = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = writeln!(log, "{line}");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["event"] == "ready" {
                let port = v["port"].as_u64().and_then(|p| u16::try_from(p).ok());
                let endpoint = v["bastion_endpoint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                return port.map(|p| (p, endpoint));
            }
        }
        None
    })
    .await;
    let (port, endpoint) = match ready {
        Ok(Some(r)) => r,
        Ok(None) => {
            return Err(
                Error::new(format!("{} exited before it was ready", proc.name))
                    .context(tail(&err_path)),
            );
        }
        Err(_) => {
            return Err(
                Error::new(format!("{} not ready within 60 s", proc.name)).context(tail(&err_path))
            );
        }
    };
    let events = Arc::new(TunnelEvents::default());
    let drain = tokio::spawn(drain_events(lines, log, Arc::clone(&events)));
    Ok(TunnelProc {
        proc,
        port,
        endpoint,
        events,
        drain,
    })
}

async fn drain_events(
    mut lines: tokio::io::Lines<BufReader<ChildStdout>>,
    mut log: BufWriter<std::fs::File>,
    events: Arc<TunnelEvents>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let _ = writeln!(log, "{line}");
        // Cheap classification: the event name is near the start of each line.
        if line.contains("\"event\":\"connection_opened\"") {
            events.opened.fetch_add(1, Ordering::Relaxed);
        } else if line.contains("\"event\":\"connection_closed\"") {
            events.closed.fetch_add(1, Ordering::Relaxed);
            if !line.contains("\"error\":null") {
                events.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = events.first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.is_none() {
                    *first = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["error"].as_str().map(str::to_owned));
                }
            }
        } else if line.contains("\"event\":\"warning\"") {
            events.warnings.fetch_add(1, Ordering::Relaxed);
        } else if line.contains("\"event\":\"prewarmed\"") {
            events.prewarmed.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = log.flush();
}

/// The last lines of a log file, for an error message.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(5);
    format!("{}: {}", path.display(), lines[start..].join(" | "))
}
