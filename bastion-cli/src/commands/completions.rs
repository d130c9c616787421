//! `bastion completions SHELL`: shell completion scripts on stdout.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{CliError, CliResult, Code, Outcome};

/// Prints the completion script for the shell. A reader that stops early (`| head`) is not an
/// error: the rest is dropped quietly.
pub fn run(args: &CompletionsArgs) -> CliResult<Outcome> {
    let script = script(args.shell);
    write_quietly(&mut std::io::stdout().lock(), &script)?;
    Ok(Outcome::Success)
}

/// The completion script, generated in memory (clap_complete panics on a failed write).
fn script(shell: clap_complete::Shell) -> Vec<u8> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    script
}

/// Writes `bytes`; a closed pipe ends the output without an error.
fn write_quietly(out: &mut impl std::io::Write, bytes: &[u8]) -> CliResult<()> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::new(
            Code::Other,
            format!("cannot write the completion script: {e}"),
        )
        .hint("check where standard output goes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct ClosedPipe;

    impl std::io::Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    struct Full;

    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(28)) // ENOSPC
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_not_an_error_but_a_full_disk_is() {
        let script = script(clap_complete::Shell::Bash);
        assert!(script.len() > 1000);
        assert!(write_quietly(&mut ClosedPipe, &script).is_ok());
        let err = write_quietly(&mut Full, &script).unwrap_err();
        assert_eq!(err.code, Code::Other);
    }
}
