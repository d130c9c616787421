//! `bastion demo` (in progress).

use crate::context::Context;
use crate::exit::{CliError, CliResult, Outcome};

/// Runs the command.
pub async fn run(_ctx: &Context) -> CliResult<Outcome> {
    Err(CliError::new(crate::exit::Code::Other, "not implemented yet"))
}
