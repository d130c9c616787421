//! `bastion proxy`: stdin/stdout through one Bastion session, for
//! `ssh -o ProxyCommand='bastion proxy ...'`. Nothing but payload is written to stdout.

use std::os::fd::{AsFd as _, BorrowedFd};
use std::os::unix::fs::FileTypeExt as _;

use tokio::io::{AsyncRead, AsyncWrite};

use crate::cli::ProxyArgs;
use crate::commands::{target, tunnel};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::signals::Signals;

/// Runs `bastion proxy`.
pub async fn run(ctx: &Context, args: &ProxyArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    let tunnel = signals
        .interruptible(async {
            let mut config = target::resolve(ctx, &args.route, args.resource_port).await?;
            tunnel::apply_options(&mut config, args.idle_timeout, args.max_frame_size, None);
            tunnel::start(ctx, config).await
        })
        .await?;

    let relay = tunnel.relay(tokio::io::join(local_stdin()?, local_stdout()?));
    tokio::pin!(relay);
    let result = tokio::select! {
        r = &mut relay => r,
        sig = signals.recv() => {
            tracing::info!(signal = sig.name(), "closing the session");
            signals.exit_on_next(true);
            // Closing cancels the relay, which sends its Close frame and deletes the session.
            let (r, _) = tokio::join!(&mut relay, tunnel.close());
            r
        }
    };
    let undeleted = tunnel.close().await;
    if undeleted > 0 {
        tracing::warn!(undeleted, "the Bastion session could not be deleted");
    }
    match result {
        Ok(stats) => {
            tracing::info!(
                bytes_up = stats.bytes_up,
                bytes_down = stats.bytes_down,
                duration_ms = stats.duration.as_millis() as u64,
                "proxy session ended"
            );
            Ok(Outcome::Success)
        }
        Err(e) => Err(CliError::from(e)),
    }
}

/// Stdin as the relay reads it. A pipe (what ssh gives a `ProxyCommand`) is read in
/// non-blocking mode on the runtime's own reactor: tokio's `Stdin` does each read on a blocking
/// thread, a thread hand-off per chunk, which cost scp through the proxy about a third of its
/// speed (docs/architecture.md#stdio-of-bastion-proxy). Anything else (a terminal, a file) keeps
/// tokio's `Stdin`.
fn local_stdin() -> CliResult<Box<dyn AsyncRead + Send + Unpin>> {
    let file = std_file(std::io::stdin().as_fd(), "stdin")?;
    if is_fifo(&file) {
        grow_pipe(&file);
        // Sets O_NONBLOCK on the pipe's read end, which only this process holds (ssh closes
        // its copy after starting the command).
        if let Ok(rx) = tokio::net::unix::pipe::Receiver::from_file(file) {
            return Ok(Box::new(rx));
        }
    }
    Ok(Box::new(tokio::io::stdin()))
}

/// Stdout as the relay writes it, unbuffered: tunnel bytes are binary and must reach ssh as
/// soon as they arrive (tokio's `Stdout` keeps a partial line until the next newline or
/// flush). A pipe is written in non-blocking mode on the runtime's reactor, one `write` per
/// chunk and no thread hand-off (see [`local_stdin`]); anything else is written through
/// `tokio::fs::File`, whose flush (after every chunk, in the relay) hands each chunk over.
fn local_stdout() -> CliResult<Box<dyn AsyncWrite + Send + Unpin>> {
    let file = std_file(std::io::stdout().as_fd(), "stdout")?;
    if is_fifo(&file) {
        grow_pipe(&file);
        let fallback = file
            .try_clone()
            .map_err(|e| CliError::new(Code::Other, format!("cannot use stdout: {e}")))?;
        return Ok(match tokio::net::unix::pipe::Sender::from_file(file) {
            Ok(tx) => Box::new(tx),
            Err(_) => Box::new(tokio::fs::File::from_std(fallback)),
        });
    }
    Ok(Box::new(tokio::fs::File::from_std(file)))
}

/// A duplicate of a standard descriptor as a `File` (the original stays open for the process).
fn std_file(fd: BorrowedFd<'_>, name: &str) -> CliResult<std::fs::File> {
    fd.try_clone_to_owned()
        .map(std::fs::File::from)
        .map_err(|e| CliError::new(Code::Other, format!("cannot use {name}: {e}")))
}

/// The pipe buffer `grow_pipe` asks for: ssh keeps writing while the relay is busy sending
/// the previous chunk (Linux's default of 64 KiB fills in one read).
const PIPE_SIZE: usize = 1 << 20;

/// Grows a pipe's buffer to [`PIPE_SIZE`] where the system allows (Linux; an unprivileged
/// process up to `/proc/sys/fs/pipe-max-size`); otherwise leaves it as it is.
fn grow_pipe(file: &std::fs::File) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) = rustix::pipe::fcntl_setpipe_size(file, PIPE_SIZE) {
        tracing::debug!(error = %e, "cannot grow the pipe's buffer");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = file;
}

fn is_fifo(file: &std::fs::File) -> bool {
    file.metadata().is_ok_and(|m| m.file_type().is_fifo())
}
