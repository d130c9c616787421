//! `bastion`: Azure Bastion native-client tunnels, ssh, ProxyCommand and AKS private clusters
//! without the Azure CLI. Arguments in, library calls, clear output; see `bastion --help`.

mod cli;
mod commands;
mod context;
mod credential_guide;
mod exit;
mod output;
mod signals;

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use crate::cli::{AksCommand, CheckCommand, Cli, Command, OutputFormat};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::output::Output;

/// jemalloc, with a background thread that hands freed pages back to the system: with the
/// system allocator, the memory of a burst of thousands of connections stays resident after
/// they close. Small slabs and small thread caches (options compiled in from the workspace's
/// `.cargo/config.toml`) let it give back nearly all of a burst; see
/// docs/architecture.md#memory. The binary's choice; the libraries use whatever allocator
/// their embedder has.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // stdout of `proxy` is the tunnel's payload: never print anything else there.
    let format = match cli.command {
        // Nor of `kube-token`, whose stdout is kubectl's ExecCredential.
        Command::Proxy(_) | Command::KubeToken(_) => OutputFormat::Text,
        _ => cli.global.output,
    };
    let out = Output::new(format, cli.global.quiet);
    init_tracing(cli.global.verbose, cli.global.quiet);
    raise_open_file_limit();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out.error(&CliError::new(
                Code::Other,
                format!("cannot start the async runtime: {e}"),
            ));
            return ExitCode::from(Code::Other.status());
        }
    };
    let result = runtime.block_on(run(cli, out));
    // A blocking stdin read (proxy) cannot be cancelled; do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(250));
    match result {
        Ok(outcome) => outcome.into(),
        Err(e) => {
            out.error(&e);
            ExitCode::from(e.code.status())
        }
    }
}

async fn run(cli: Cli, out: Output) -> CliResult<Outcome> {
    // These need no Azure settings: stale BASTION_* variables must not get in their way.
    match &cli.command {
        Command::Completions(args) => return commands::completions::run(args),
        #[cfg(feature = "emulator")]
        Command::Emulate(args) => return commands::emulate::run(out, args).await,
        #[cfg(feature = "emulator")]
        Command::Demo(args) => return commands::demo::run(out, args).await,
        _ => {}
    }
    let stdin_is_data = matches!(cli.command, Command::Proxy(_));
    let ctx = Context::new(&cli.global, out, stdin_is_data)?;
    match &cli.command {
        Command::Tunnel(args) => commands::tunnel::run(&ctx, args).await,
        Command::Proxy(args) => commands::proxy::run(&ctx, args).await,
        Command::Ssh(args) => commands::ssh::run(&ctx, args).await,
        Command::Rdp(args) => commands::rdp::run(&ctx, args).await,
        Command::Aks(args) => match &args.step {
            Some(AksCommand::Credentials(c)) => commands::credentials::run(&ctx, c).await,
            None => commands::aks::run(&ctx, args).await,
        },
        Command::Check(CheckCommand::Aks(args)) => commands::check::run_aks(&ctx, args).await,
        Command::Check(CheckCommand::Tunnel(args)) => commands::check::run_tunnel(&ctx, args).await,
        Command::Up(args) => commands::up::run(&ctx, args).await,
        Command::KubeToken(args) => commands::kube_token::run(&ctx, args).await,
        #[cfg(feature = "emulator")]
        Command::Emulate(_) | Command::Demo(_) => Err(CliError::new(
            Code::Other,
            "internal: command dispatched twice",
        )),
        Command::Completions(_) => Err(CliError::new(
            Code::Other,
            "internal: command dispatched twice",
        )),
    }
}

/// Logging on stderr: warnings by default, more with -v, only errors with -q; RUST_LOG wins.
/// Each tunnelled connection holds two descriptors (the local socket and the Bastion's): raise
/// the soft open-file limit to the hard limit, so the connection cap, not a default of 1024,
/// decides how many connections are served.
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit is capped (some systems refuse an infinite soft limit).
    let target = limit.maximum.unwrap_or(1 << 20).min(1 << 20);
    if limit.current.is_some_and(|soft| soft >= target) {
        return;
    }
    let raised = Rlimit {
        current: Some(target),
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::debug!(target, "raised the open-file limit"),
        Err(e) => tracing::debug!(error = %e, "could not raise the open-file limit"),
    }
}

/// The WebSocket library logs every frame, payload included, at debug and trace: tunnelled
/// bytes (an `Authorization` header sent through the tunnel, say) must never reach the log, at
/// any verbosity and whatever `RUST_LOG` says.
fn is_payload_level(meta: &tracing::Metadata<'_>) -> bool {
    let target = meta.target();
    (target.starts_with("tungstenite") || target.starts_with("tokio_tungstenite"))
        && *meta.level() >= tracing::Level::DEBUG
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let default = match (quiet, verbose) {
        (true, _) => "error",
        // The Bastion gate's warnings are printed by the commands themselves.
        (false, 0) => "warn,bastion_arm::bastion=error",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    };
    let from_env = EnvFilter::try_from_default_env().ok();
    let plain = from_env.is_none() && verbose == 0;
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(default));
    // The filter below must pass the level on: without a hint the global maximum stays at
    // TRACE, and every `log` record of the data path (tungstenite logs each frame) is then
    // built and checked against the filter, a tenth of the client's CPU in a bulk download.
    let max_level = filter
        .max_level_hint()
        .unwrap_or(tracing_subscriber::filter::LevelFilter::TRACE);
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(verbose > 0)
        .with_ansi(ansi)
        .with_filter(filter)
        .with_filter(
            tracing_subscriber::filter::filter_fn(move |meta| {
                // Without -v, a connection's end is reported once, by the command's own line
                // (from `Tunnel::subscribe`), not again by the library's log event.
                !(is_payload_level(meta) || plain && is_connection_summary(meta))
            })
            .with_max_level_hint(max_level),
        );
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// bastion-core's per-connection "closed"/"failed" log events.
fn is_connection_summary(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == "bastion_core::tunnel"
        && meta.fields().field("conn").is_some()
        && meta.fields().field("bytes_up").is_some()
}

/// Clap's errors, as one line `error: <what> — <what to do>` with the usual exit code 2
/// (help and version go to stdout with 0).
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            ExitCode::from(Code::Usage.status())
        } else {
            ExitCode::SUCCESS
        };
    }
    let rendered = e.render().to_string();
    let mut what = Vec::new();
    let mut usage = None;
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(u) = line.strip_prefix("Usage:") {
            usage = Some(u.trim().to_owned());
        } else if line.starts_with("For more information") {
            continue;
        } else if usage.is_none() {
            what.push(line.trim_start_matches("error:").trim().to_owned());
        }
    }
    let hint = match usage {
        Some(u) => format!("usage: {u} (see --help)"),
        None => "see --help".to_owned(),
    };
    eprintln!("error: {} — {hint}", what.join(" "));
    ExitCode::from(Code::Usage.status())
}
