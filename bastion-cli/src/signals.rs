//! Termination signals: SIGINT (Ctrl-C), SIGTERM and SIGHUP all start the same clean shutdown;
//! a second Ctrl-C skips the wait.

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::exit::{CliError, CliResult, Code};

/// Which signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// SIGINT.
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP.
    Hangup,
}

impl Received {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Received::Interrupt => "SIGINT",
            Received::Terminate => "SIGTERM",
            Received::Hangup => "SIGHUP",
        }
    }

    /// The conventional exit status after this signal (128 + its number).
    pub fn exit_status(self) -> u8 {
        match self {
            Received::Interrupt => 130,
            Received::Terminate => 143,
            Received::Hangup => 129,
        }
    }
}

/// The process's termination signals. Creating this replaces their default action (exit) with
/// delivery here, for the rest of the process's life: that is how SIGINT is "ignored" while a
/// child owns the terminal.
pub struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signals")
    }
}

impl Signals {
    /// Installs the handlers.
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next termination signal.
    pub async fn recv(&mut self) -> Received {
        tokio::select! {
            _ = self.int.recv() => Received::Interrupt,
            _ = self.term.recv() => Received::Terminate,
            _ = self.hup.recv() => Received::Hangup,
        }
    }

    /// The next SIGTERM or SIGHUP (SIGINT is swallowed: the child in the foreground gets it).
    pub async fn recv_ignoring_interrupt(&mut self) -> Received {
        loop {
            tokio::select! {
                _ = self.int.recv() => continue,
                _ = self.term.recv() => return Received::Terminate,
                _ = self.hup.recv() => return Received::Hangup,
            }
        }
    }

    /// Runs `fut` unless a termination signal comes first, in which case it is dropped and the
    /// command ends with the signal's conventional status (setup steps hold nothing to clean up
    /// beyond what their drop releases).
    pub async fn interruptible<T>(
        &mut self,
        fut: impl std::future::Future<Output = CliResult<T>>,
    ) -> CliResult<T> {
        tokio::select! {
            r = fut => r,
            sig = self.recv() => Err(CliError::new(
                Code::Interrupted(sig.exit_status()),
                format!("interrupted by {}", sig.name()),
            )
            .hint("nothing was left behind")),
        }
    }

    /// After the first signal: a second SIGINT (or any further signal) exits at once, without
    /// waiting for the sessions to be deleted.
    pub fn exit_on_next(mut self, quiet: bool) {
        tokio::spawn(async move {
            let sig = self.recv().await;
            if !quiet {
                eprintln!(
                    "{}: exiting without waiting for the sessions to be deleted",
                    sig.name()
                );
            }
            std::process::exit(i32::from(sig.exit_status()));
        });
    }
}
