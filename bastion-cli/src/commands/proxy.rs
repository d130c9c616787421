//! `bastion proxy`: stdin/stdout through one Bastion session, for
//! `ssh -o ProxyCommand='bastion proxy ...'`. Nothing but payload is written to stdout.

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

    // Pipes are relayed on the reactor and put back in blocking mode when the relay ends
    // (docs/architecture.md#stdio-of-bastion-proxy).
    let relay = tunnel.serve_stdio();
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
