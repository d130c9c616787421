//! Running a child program (ssh, kubectl, a shell) in the foreground: SIGINT goes to the child
//! (we ignore it), SIGTERM/SIGHUP are forwarded to it, and its status is returned.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Command;

use crate::exit::{CliError, CliResult, Code};
use crate::signals::{Received, Signals};

/// How long a child gets to exit after a forwarded SIGTERM before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(5);

/// Spawns `cmd` and waits for it. Returns its status and the termination signal that arrived
/// meanwhile, if any.
pub async fn run(
    mut cmd: Command,
    what: &str,
    signals: &mut Signals,
) -> CliResult<(ExitStatus, Option<Received>)> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    let mut child = cmd.kill_on_drop(true).spawn().map_err(|e| {
        let err = CliError::new(Code::Usage, format!("cannot start {what} `{program}`: {e}"));
        if e.kind() == std::io::ErrorKind::NotFound {
            err.hint(format!("install `{program}` or put it on PATH"))
        } else {
            err.hint("check the program and its permissions")
        }
    })?;
    tokio::select! {
        status = child.wait() => Ok((status.map_err(wait_error)?, None)),
        sig = signals.recv_ignoring_interrupt() => {
            tracing::info!(signal = sig.name(), "forwarding SIGTERM to {what}");
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let status = match tokio::time::timeout(CHILD_GRACE, child.wait()).await {
                Ok(s) => s.map_err(wait_error)?,
                Err(_) => {
                    let _ = child.start_kill();
                    child.wait().await.map_err(wait_error)?
                }
            };
            Ok((status, Some(sig)))
        }
    }
}

fn wait_error(e: std::io::Error) -> CliError {
    CliError::new(
        Code::Other,
        format!("waiting for the child process failed: {e}"),
    )
}

/// Where `program` would be run from: itself when it has a `/`, else the first executable of
/// that name on PATH.
pub fn find_program(program: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let executable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = std::path::PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}
