//! `bastion ssh`: a tunnel to the target's ssh port on an ephemeral loopback port, and `ssh`
//! run against it with the extra arguments passed through; exits with ssh's code.

use bastion_core::LocalListener;
use tokio::process::Command;

use crate::cli::SshArgs;
use crate::commands::target::TargetSpec;
use crate::commands::{child, target, tunnel};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome, child_status};
use crate::signals::Signals;

/// Runs `bastion ssh`.
pub async fn run(ctx: &Context, args: &SshArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    let spec = TargetSpec::parse(&args.route.target, args.resource_port)?;
    let listener = LocalListener::bind_loopback(0).await?;
    let port = listener.port();
    let tunnel = signals
        .interruptible(async {
            let config = target::resolve(ctx, &args.route, args.resource_port).await?;
            tunnel::start(ctx, config).await
        })
        .await?;
    let server = tunnel::serve_in_background(&tunnel, listener);
    tracing::info!(port, "tunnel ready for ssh");

    let mut cmd = Command::new(&args.ssh_command);
    cmd.arg("-p")
        .arg(port.to_string())
        // known_hosts entries belong to the target, not to a random local port.
        .arg("-o")
        .arg(format!("HostKeyAlias={}", host_key_alias(&spec)));
    if let Some(key) = &args.ssh_key {
        cmd.arg("-i").arg(key);
    }
    if let Some(user) = &args.user {
        cmd.arg("-l").arg(user);
    }
    cmd.arg("127.0.0.1").args(&args.ssh_args);
    let result = child::run(cmd, "ssh", &mut signals).await;

    // A second signal while the sessions are being deleted exits at once.
    signals.exit_on_next(ctx.out.quiet);
    tunnel::warn_undeleted(&ctx.out, &server.stop().await);
    let (status, _) = result?;
    Ok(Outcome::Status(child_status(status)))
}

/// A stable name for the target's host key: its IP for IP connect, else the resource name.
fn host_key_alias(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Ip(ip) => ip.to_string(),
        TargetSpec::Resource(id) => {
            let name = id
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("target");
            format!("{}.bastion", name.to_ascii_lowercase())
        }
    }
}
