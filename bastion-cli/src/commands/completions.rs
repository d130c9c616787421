//! `bastion completions SHELL`: shell completion scripts on stdout.

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{CliResult, Outcome};

/// Prints the completion script for the shell.
pub fn run(args: &CompletionsArgs) -> CliResult<Outcome> {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(Outcome::Success)
}
