//! `bastion tunnel`: a local port whose connections each travel through their own Bastion
//! session to the target, until Ctrl-C / SIGTERM / SIGHUP.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bastion_core::TokenSource;
use bastion_core::{ConnectionEvent, LocalListener, ServeSummary, Tunnel, TunnelConfig};
use serde_json::json;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::cli::TunnelArgs;
use crate::commands::target;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Outcome};
use crate::output::{self, Output};
use crate::signals::Signals;

/// Runs `bastion tunnel`.
pub async fn run(ctx: &Context, args: &TunnelArgs) -> CliResult<Outcome> {
    let mut signals = Signals::install().map_err(|e| {
        CliError::new(
            crate::exit::Code::Other,
            format!("cannot handle signals: {e}"),
        )
    })?;
    target::TargetSpec::parse(&args.route.target, args.resource_port)?;
    // Bind first and hold it: a busy port fails before any network call, and the port printed
    // is the port served.
    let listener = bind(&ctx.out, args.conn.bind, args.port).await?;
    let tunnel = signals
        .interruptible(async {
            let mut config = target::resolve(ctx, &args.route, args.resource_port).await?;
            apply_options(
                &mut config,
                args.conn.idle_timeout,
                args.conn.max_frame_size,
                args.conn.max_connections,
            );
            apply_prewarm(&mut config, args.conn.prewarm, args.conn.max_connections)?;
            start(ctx, config).await
        })
        .await?;
    let target = tunnel.config().target.to_string();
    let endpoint = tunnel.config().endpoint.to_string();
    let logger = spawn_event_log(ctx.out, tunnel.subscribe());
    announce_ready(&ctx.out, &listener, &endpoint, &target);
    announce_prewarm(&ctx.out, tunnel.config());

    let out = ctx.out;
    let idle_limit = args
        .conn
        .exit_after_idle
        .filter(|s| *s > 0)
        .map(Duration::from_secs);
    let lifetime = args.timeout.filter(|s| *s > 0).map(Duration::from_secs);
    let watched = tunnel.clone();
    let summary = tunnel
        .serve(listener, async move {
            tokio::select! {
                sig = signals.recv() => {
                    out.info(format!(
                        "{}: closing the tunnel and deleting its sessions (press Ctrl-C again to exit at once)",
                        sig.name()
                    ));
                    signals.exit_on_next(out.quiet);
                }
                limit = idle_exit(&watched, idle_limit) => {
                    out.event(
                        format!(
                            "No connection for {} s (--exit-after-idle): closing the tunnel",
                            limit.as_secs()
                        ),
                        json!({"event": "idle_exit", "idle_seconds": limit.as_secs()}),
                    );
                    signals.exit_on_next(out.quiet);
                }
                limit = timed_out(lifetime) => {
                    out.event(
                        format!(
                            "Timed out after {} s (--timeout): closing the tunnel and deleting its sessions",
                            limit.as_secs()
                        ),
                        json!({"event": "timeout", "seconds": limit.as_secs()}),
                    );
                    signals.exit_on_next(out.quiet);
                }
            }
        })
        .await;
    // The last Closed events may still be queued: let the log drain once the tunnel (the
    // only sender) is gone.
    drop(tunnel);
    if tokio::time::timeout(Duration::from_secs(1), logger)
        .await
        .is_err()
    {
        tracing::debug!("the connection log did not drain in time");
    }
    report_summary(&ctx.out, &summary);
    Ok(Outcome::Success)
}

/// Completes `limit` after the tunnel is ready (never without a limit): az's `--timeout`, the
/// tunnel's whole lifetime, whatever is open (see README.md#tunnels-to-vms-and-other-targets).
async fn timed_out(limit: Option<Duration>) -> Duration {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    tokio::time::sleep(limit).await;
    limit
}

/// Completes once the tunnel has had no open connection for `limit` (never without a limit).
pub async fn idle_exit(tunnel: &Tunnel, limit: Option<Duration>) -> Duration {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    // Polled, not evented: a second of slack is fine for an exit-when-idle timer.
    let tick = Duration::from_millis(250).min(limit);
    let mut idle_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        if tunnel.active_connections() > 0 {
            idle_since = tokio::time::Instant::now();
        } else if idle_since.elapsed() >= limit {
            return limit;
        }
    }
}

/// Applies the per-command tuning options.
pub fn apply_options(
    config: &mut TunnelConfig,
    idle_timeout: Option<u64>,
    max_frame_size: Option<usize>,
    max_connections: Option<usize>,
) {
    if let Some(secs) = idle_timeout.filter(|s| *s > 0) {
        config.idle_timeout = Some(Duration::from_secs(secs));
    }
    if let Some(n) = max_frame_size {
        config.stream.max_frame_size = n;
    }
    if let Some(n) = max_connections {
        config.max_concurrent = Some(n);
    }
}

/// Sets `--prewarm N`, which may not exceed the sessions the tunnel may hold at once
/// (`max_connections`, when given, is what the user can raise).
pub fn apply_prewarm(
    config: &mut TunnelConfig,
    prewarm: usize,
    max_connections: Option<usize>,
) -> CliResult<()> {
    let cap = config.session_cap();
    if prewarm > cap {
        let why =
            if config.kind == bastion_core::EndpointKind::Developer && max_connections.is_none() {
                " (a Developer SKU Bastion allows one)"
            } else {
                ""
            };
        let raise = if max_connections.is_some() {
            ", or raise --max-connections"
        } else {
            ""
        };
        return Err(CliError::usage(format!(
            "--prewarm {prewarm} is more than the {cap} session(s) this tunnel may hold at once{why} — use --prewarm {cap} or less{raise}"
        )));
    }
    config.prewarm = prewarm;
    Ok(())
}

/// Says that sessions are kept pre-warmed, and for how long each waits.
pub fn announce_prewarm(out: &Output, config: &TunnelConfig) {
    if config.prewarm > 0 {
        out.info(format!(
            "Keeping {} session(s) pre-warmed: each is replaced after {} s unused, and deleted on exit.",
            config.prewarm,
            config.prewarm_max_age.as_secs()
        ));
    }
}

/// Builds the tunnel and gets the first access token, so a sign-in problem fails now rather
/// than on the first connection.
pub async fn start(ctx: &Context, config: TunnelConfig) -> CliResult<Tunnel> {
    config.validate().map_err(CliError::from)?;
    let tokens = TokenSource::new(ctx.credential()?, config.scope.clone());
    // The credential error already says how to sign in.
    tokens.token().await.map_err(CliError::from)?;
    Ok(Tunnel::with_token_source(config, tokens)?)
}

/// A tunnel serving its listener on a task of its own, while the command does something else
/// (see [`serve_in_background`]).
pub struct Background {
    stop: oneshot::Sender<()>,
    server: JoinHandle<ServeSummary>,
}

/// Serves `tunnel` on `listener` in a spawned task until [`Background::stop`] (or until the
/// [`Background`] is dropped).
pub fn serve_in_background(tunnel: &Tunnel, listener: LocalListener) -> Background {
    let (stop, stopped) = oneshot::channel::<()>();
    let tunnel = tunnel.clone();
    let server = tokio::spawn(async move {
        tunnel
            .serve(listener, async {
                let _ = stopped.await;
            })
            .await
    });
    Background { stop, server }
}

impl Background {
    /// Stops accepting connections and waits until the open ones have ended and their sessions
    /// are deleted. The summary is empty if the serving task failed.
    pub async fn stop(self) -> ServeSummary {
        let _ = self.stop.send(());
        self.server.await.unwrap_or_default()
    }
}

/// The warning for sessions [`Background::stop`] could not delete, if any.
pub fn warn_undeleted(out: &Output, summary: &ServeSummary) {
    if summary.undeleted_sessions > 0 {
        out.warn(format!(
            "{} Bastion session(s) could not be deleted",
            summary.undeleted_sessions
        ));
    }
}

/// Binds the local listener: loopback (127.0.0.1 and ::1) by default; any other address only
/// when asked, with a warning that `-q` does not hide.
pub async fn bind(out: &Output, addr: IpAddr, port: u16) -> CliResult<LocalListener> {
    if addr == IpAddr::V4(std::net::Ipv4Addr::LOCALHOST) {
        return Ok(LocalListener::bind_loopback(port).await?);
    }
    if !addr.is_loopback() {
        out.warn_always(format!(
            "listening on {addr}: anyone who can reach this machine on that address can use the tunnel with your Azure identity"
        ));
    }
    Ok(LocalListener::bind(SocketAddr::new(addr, port)).await?)
}

/// The ready line, in the reference's wording.
pub fn announce_ready(out: &Output, listener: &LocalListener, endpoint: &str, target: &str) {
    let addrs: Vec<String> = listener
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();
    out.essential(
        format!("Tunnel is ready, connect on port {}", listener.port()),
        json!({
            "event": "ready",
            "port": listener.port(),
            "addresses": addrs,
            "bastion_endpoint": endpoint,
            "target": target,
        }),
    );
    out.info("Press Ctrl-C to close the tunnel.");
}

/// Logs one line per connection event until the channel closes.
pub fn spawn_event_log(
    out: Output,
    events: broadcast::Receiver<ConnectionEvent>,
) -> tokio::task::JoinHandle<()> {
    spawn_tagged_event_log(out, events, None)
}

/// [`spawn_event_log`] for one of several tunnels (`bastion up`): each line starts with
/// `tag: ` and each JSON event has `"tunnel": tag`.
pub fn spawn_tagged_event_log(
    out: Output,
    mut events: broadcast::Receiver<ConnectionEvent>,
    tag: Option<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => log_event(&out, &event, tag.as_deref()),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    out.warn(format!(
                        "{n} connection events were not shown (too many at once)"
                    ));
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

fn log_event(out: &Output, event: &ConnectionEvent, tag: Option<&str>) {
    let emit = |text: String, mut value: serde_json::Value| match tag {
        Some(tag) => {
            value["tunnel"] = json!(tag);
            out.event(format!("{tag}: {text}"), value);
        }
        None => out.event(text, value),
    };
    match event {
        ConnectionEvent::Opened { id, peer } => {
            let from = peer.map(|p| format!(" from {p}")).unwrap_or_default();
            emit(
                format!("connection {id} opened{from}"),
                json!({"event": "connection_opened", "id": id, "peer": peer.map(|p| p.to_string())}),
            );
        }
        ConnectionEvent::Closed {
            id,
            peer,
            bytes_up,
            bytes_down,
            duration,
            error,
        } => {
            let traffic = format!(
                "{} sent, {} received",
                output::bytes(*bytes_up),
                output::bytes(*bytes_down)
            );
            let text = match error {
                None => format!(
                    "connection {id} closed after {}: {traffic}",
                    output::duration(*duration)
                ),
                Some(e) => format!(
                    "connection {id} failed after {} ({traffic}): {e}",
                    output::duration(*duration)
                ),
            };
            emit(
                text,
                json!({
                    "event": "connection_closed",
                    "id": id,
                    "peer": peer.map(|p| p.to_string()),
                    "bytes_up": bytes_up,
                    "bytes_down": bytes_down,
                    "duration_ms": duration.as_millis() as u64,
                    "error": error,
                }),
            );
        }
        // Pool bookkeeping: JSON only (with the tunnel's tag under `bastion up`), never a
        // text line per session.
        ConnectionEvent::Prewarmed { ready } => {
            tracing::debug!(ready, tunnel = tag, "pre-warmed session ready");
            if out.is_json() {
                out.json(&tagged(json!({"event": "prewarmed", "ready": ready}), tag));
            }
        }
        ConnectionEvent::PrewarmRetired { reason } => {
            tracing::debug!(%reason, tunnel = tag, "pre-warmed session replaced");
            if out.is_json() {
                out.json(&tagged(
                    json!({"event": "prewarm_replaced", "reason": reason}),
                    tag,
                ));
            }
        }
        ConnectionEvent::PrewarmFailed { error, retry_in } => {
            let prefix = tag.map(|t| format!("{t}: ")).unwrap_or_default();
            out.warn(format!(
                "{prefix}could not pre-warm a session (trying again in {}): {error}",
                output::duration(*retry_in)
            ))
        }
        other => tracing::debug!(?other, "connection event"),
    }
}

/// `value` with `"tunnel": tag` when there is a tag.
fn tagged(mut value: serde_json::Value, tag: Option<&str>) -> serde_json::Value {
    if let Some(tag) = tag {
        value["tunnel"] = json!(tag);
    }
    value
}

/// The closing summary; undeleted sessions are a warning.
pub fn report_summary(out: &Output, summary: &ServeSummary) {
    out.event(
        format!(
            "Tunnel closed: {} connection{}, {} failed",
            summary.accepted,
            if summary.accepted == 1 { "" } else { "s" },
            summary.failed
        ),
        json!({
            "event": "closed",
            "connections": summary.accepted,
            "failed": summary.failed,
            "undeleted_sessions": summary.undeleted_sessions,
        }),
    );
    if summary.undeleted_sessions > 0 {
        out.warn(format!(
            "{} Bastion session(s) could not be deleted; they expire on the service's idle timeout",
            summary.undeleted_sessions
        ));
    }
}
