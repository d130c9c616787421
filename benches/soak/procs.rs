//! The `bastion` child processes of the soak: spawned with a clean environment, their stderr
//! kept in a log file and watched line by line, signalled, and measured (`/proc`).

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A running `bastion`.
pub struct Bastion {
    /// A short name for messages.
    pub name: String,
    /// The process id.
    pub pid: u32,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    panicked: Arc<AtomicBool>,
    log: tokio::task::JoinHandle<()>,
}

/// `bastion ARGS` with only `env` (and `PATH`) in its environment.
pub fn command(bin: &Path, args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

impl Bastion {
    /// Spawns `cmd`; its stderr goes to `log_path` (appended) and to [`Bastion::wait_for`].
    pub async fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> Result<Self, String> {
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("{name}: cannot start bastion: {e}"))?;
        let pid = child
            .id()
            .ok_or_else(|| format!("{name}: exited at once"))?;
        let stderr = child.stderr.take().ok_or("stderr not piped")?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .await
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let (tx, lines) = mpsc::unbounded_channel();
        let panicked = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&panicked);
        let header = format!("==== {name} (pid {pid})\n");
        let log = tokio::spawn(async move {
            let _ = file.write_all(header.as_bytes()).await;
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if line.contains("panicked") || line.contains("stack backtrace") {
                    flag.store(true, Ordering::SeqCst);
                }
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                let _ = tx.send(line);
            }
            let _ = file.flush().await;
        });
        Ok(Self {
            name: name.to_owned(),
            pid,
            child,
            lines,
            panicked,
            log,
        })
    }

    /// Waits (bounded) for a stderr line matching `pred` and returns it.
    pub async fn wait_for(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if pred(&line) => return Ok(line),
                Ok(Some(_)) => {}
                Ok(None) => return Err(format!("{} exited before the expected line", self.name)),
                Err(_) => {
                    return Err(format!(
                        "{}: no expected line within {timeout:?}",
                        self.name
                    ));
                }
            }
        }
    }

    /// Waits for `Tunnel is ready, connect on port N` and returns N.
    pub async fn ready_port(&mut self, timeout: Duration) -> Result<u16, String> {
        let line = self
            .wait_for(
                |l| l.starts_with("Tunnel is ready, connect on port "),
                timeout,
            )
            .await?;
        line.rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{}: no port in {line:?}", self.name))
    }

    /// Sends `signal` (`INT`, `TERM`, `KILL`) through the `kill` program (no unsafe code).
    pub fn signal(&self, signal: &str) -> Result<(), String> {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("kill -{signal} {}: {e}", self.pid))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{signal} {} failed: {status}", self.pid))
        }
    }

    /// Waits (bounded) for the process to exit, and for its log to be complete.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .map_err(|_| format!("{} did not exit within {timeout:?}", self.name))?
            .map_err(|e| format!("{}: {e}", self.name))?;
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.log).await;
        Ok(status)
    }

    /// Whether its stderr showed a panic.
    pub fn panicked(&self) -> bool {
        self.panicked.load(Ordering::SeqCst)
    }

    /// Open file descriptors (`/proc/PID/fd`).
    pub fn fds(&self) -> Result<u64, String> {
        let dir = format!("/proc/{}/fd", self.pid);
        Ok(std::fs::read_dir(&dir)
            .map_err(|e| format!("{dir}: {e}"))?
            .count() as u64)
    }

    /// Resident memory in KiB (`VmRSS` of `/proc/PID/status`).
    pub fn rss_kib(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.pid);
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{path}: no VmRSS"))
    }
}
