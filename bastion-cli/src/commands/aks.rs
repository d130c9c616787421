//! `bastion aks`: the whole `az aks bastion` flow in one process (see
//! docs/arm-and-aks.md#the-bastion-aks-flow): cluster, Bastion, pre-flight, listener bound and
//! held, credentials, kubeconfig, tunnel, probe, then a command or a shell with `KUBECONFIG` set.
//! Every exit path closes the tunnel, deletes the sessions and removes the temporary kubeconfig
//! (or puts the user's file back byte for byte, see [`kubefile`]). A run killed outright is
//! cleaned up after by the next one: it restores what an interrupted in-place edit left and
//! removes temporary directories whose process is gone.

use std::ffi::OsStr;
use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use bastion_arm::model::ManagedCluster;
use bastion_arm::{
    EndpointPlan, Kubeconfig, Report, Status, Usage, fetch_kubeconfig, run_aks_preflight,
};
use bastion_core::{ConnectionEvent, LocalListener, Target, Tunnel, TunnelConfig};
use serde_json::json;
use tokio::process::Command;
use tokio::sync::broadcast;

use crate::cli::{AksArgs, AksTargetArgs, ConnectionArgs, KubeAuth};
use crate::commands::cluster::{self, BastionFailure};
use crate::commands::kubefile::{self, Destination, KubeFile};
use crate::commands::{check, child, tunnel};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome, child_status};
use crate::signals::Signals;

/// An in-process replacement for the child command (the demo's built-in HTTPS client): gets
/// the kubeconfig path and returns an exit status.
pub type InProcess<'a> =
    Box<dyn FnOnce(PathBuf) -> Pin<Box<dyn Future<Output = CliResult<u8>> + 'a>> + 'a>;

/// What runs once the tunnel is up.
pub enum Action<'a> {
    /// `-- COMMAND ARGS...`.
    Command(Vec<String>),
    /// The user's shell (or `--shell`).
    Shell(Option<String>),
    /// `--no-shell`: the tunnel in the foreground until Ctrl-C.
    Foreground,
    /// A built-in step instead of a child process.
    InProcess(InProcess<'a>),
}

/// Everything the flow needs (from `bastion aks` arguments, or built by `bastion demo`).
pub struct Flow<'a> {
    /// Cluster and Bastion.
    pub cluster: AksTargetArgs,
    /// Local port (0: a free one).
    pub port: u16,
    /// `--bind`, `--idle-timeout`, `--max-frame-size`, `--max-connections`, `--exit-after-idle`.
    pub conn: ConnectionArgs,
    /// `--context`: the name of the kubeconfig's context and cluster.
    pub context: Option<String>,
    /// `--public-fqdn`: credentials naming the cluster's public FQDN.
    pub public_fqdn: bool,
    /// `--kubeconfig-path`.
    pub kubeconfig_path: Option<PathBuf>,
    /// `--write-kubeconfig-in-place`.
    pub write_in_place: bool,
    /// `--kubeconfig-out`.
    pub kubeconfig_out: Option<PathBuf>,
    /// `--skip-checks`.
    pub skip_checks: bool,
    /// `--no-probe`.
    pub no_probe: bool,
    /// `--kube-auth`: how kubectl authenticates to an AAD cluster.
    pub kube_auth: KubeAuth,
    /// What to run.
    pub action: Action<'a>,
}

impl From<&AksArgs> for Flow<'static> {
    fn from(args: &AksArgs) -> Self {
        let action = if !args.command.is_empty() {
            Action::Command(args.command.clone())
        } else if args.no_shell {
            Action::Foreground
        } else {
            Action::Shell(args.shell.clone())
        };
        Flow {
            cluster: args.cluster.clone(),
            port: args.port,
            conn: args.conn.clone(),
            context: args.context.clone(),
            public_fqdn: args.public_fqdn,
            kubeconfig_path: args.kubeconfig_path.clone(),
            write_in_place: args.write_kubeconfig_in_place,
            kubeconfig_out: args.kubeconfig_out.clone(),
            skip_checks: args.skip_checks,
            no_probe: args.no_probe,
            kube_auth: args.kube_auth,
            action,
        }
    }
}

/// The prefix of the session's private temporary directory.
const SESSION_DIR_PREFIX: &str = "bastion-aks-";

/// Runs `bastion aks`.
pub async fn run(ctx: &Context, args: &AksArgs) -> CliResult<Outcome> {
    if args.restore_kubeconfig {
        sweep_session_dirs(&ctx.out);
        kubefile::restore_only(&ctx.out)?;
        return Ok(Outcome::Success);
    }
    // What a run killed outright (SIGKILL, power loss) left behind is cleaned up first.
    sweep_session_dirs(&ctx.out);
    if let Ok(store) = kubefile::store() {
        let _ = kubefile::recover(&ctx.out, &store);
    }
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    run_flow(ctx, Flow::from(args), &mut signals).await
}

/// Removes the temporary directories (and the kubeconfigs in them) of `bastion aks` runs that
/// were killed before they could.
fn sweep_session_dirs(out: &crate::output::Output) {
    super::sweep_temp_dirs(out, SESSION_DIR_PREFIX, "bastion aks");
}

/// What the steps before the kubeconfig produce.
struct Prepared {
    cluster: ManagedCluster,
    plan: EndpointPlan,
    listener: LocalListener,
    fetched: Kubeconfig,
}

/// Cluster, Bastion, gate, pre-flight, listener, credentials: nothing to clean up yet.
async fn prepare(ctx: &Context, flow: &Flow<'_>) -> CliResult<Prepared> {
    let out = &ctx.out;
    check_flow(flow)?;
    let arm = ctx.arm_client()?;
    let admin = flow.cluster.admin;

    let step = out.step("cluster");
    let cluster = cluster::get_cluster(&arm, &flow.cluster).await?;
    step.done(format!(
        "Cluster {} ({}, {})",
        cluster.display_name(),
        if cluster.is_private() {
            "private"
        } else {
            "public"
        },
        cluster.location
    ));
    // Before any Bastion call: credentials naming a public FQDN need the cluster to have one.
    if flow.public_fqdn && (cluster.properties.fqdn.is_none() || cluster.public_fqdn_disabled()) {
        return Err(CliError::usage(format!(
            "the cluster {} has no public FQDN",
            cluster.display_name()
        ))
        .hint("leave out --public-fqdn (the kubeconfig then names its private FQDN)"));
    }

    let step = out.step("bastion");
    let found = match cluster::find_bastion(&arm, &cluster, flow.cluster.bastion.as_deref()).await {
        Ok(found) => found,
        Err(BastionFailure::Unreadable(row)) => {
            let report = cluster::unreadable_report(row);
            show_failed_report(
                ctx,
                &cluster,
                flow.cluster.bastion.as_deref().unwrap_or("?"),
                &report,
            );
            return Err(cluster::preflight_error(&report, "bastion check aks"));
        }
        Err(BastionFailure::Error(e)) => return Err(e),
    };
    for note in &found.notes {
        tracing::info!("{note}");
    }
    let bastion = found.bastion;
    // The SKU / native-client gate applies even with --skip-checks: without it there is no tunnel.
    let plan = bastion.native_client_support(Usage::Aks)?;
    step.done(format!(
        "Bastion {} ({} SKU, {})",
        bastion.display_name(),
        bastion.sku().map_or("unknown", |s| s.as_str()),
        found.source
    ));
    for w in &plan.warnings {
        out.warn(w);
    }

    if flow.skip_checks {
        out.warn("pre-flight checks skipped (--skip-checks)");
    } else {
        let step = out.step("preflight");
        let report = run_aks_preflight(&arm, &cluster, &bastion, admin).await;
        if !report.passed() {
            show_failed_report(ctx, &cluster, bastion.id.as_str(), &report);
            return Err(cluster::preflight_error(&report, "bastion check aks"));
        }
        step.done(format!(
            "Pre-flight checks: {}",
            cluster::report_counts(&report)
        ));
        warn_rows(ctx, &report);
    }

    // Bound once and held from here on: the port in the kubeconfig is the port served.
    let step = out.step("listen");
    let listener = tunnel::bind(out, flow.conn.bind, flow.port).await?;
    let port = listener.port();
    step.done(format!(
        "Listening on {}",
        host_port(&kubeconfig_host(flow.conn.bind), port)
    ));

    let step = out.step("credentials");
    let fetched = fetch_kubeconfig(&arm, &cluster, admin, flow.public_fqdn.then_some("public"))
        .await
        .map_err(cluster::credential_error)?;
    let fetched = kubefile::prepare(
        &fetched,
        admin,
        flow.context.as_deref(),
        Some((ctx, flow.kube_auth)),
        out,
    )?;
    step.done(format!(
        "{} credentials of {}",
        if admin { "Admin" } else { "User" },
        cluster.display_name()
    ));
    Ok(Prepared {
        cluster,
        plan,
        listener,
        fetched,
    })
}

/// The flow, step by step with timings.
pub async fn run_flow(ctx: &Context, flow: Flow<'_>, signals: &mut Signals) -> CliResult<Outcome> {
    let out = &ctx.out;
    let Prepared {
        cluster,
        plan,
        listener,
        fetched,
    } = signals.interruptible(prepare(ctx, &flow)).await?;
    let port = listener.port();

    // A private (0700) directory for the temporary kubeconfig and the shell's rc file, locked
    // while this process lives so that a later run can remove it should this one be killed.
    let session_dir = super::session_dir(SESSION_DIR_PREFIX)?;
    let temp = session_dir.path().join("config");
    let destination = match (&flow.kubeconfig_path, &flow.kubeconfig_out) {
        (Some(p), _) if flow.write_in_place => {
            let store = kubefile::store()?;
            out.warn(format!(
                "editing {} in place (--write-kubeconfig-in-place); it is put back byte for byte on exit, its backup is in {}",
                p.display(),
                store.dir().display()
            ));
            Destination::InPlace {
                path: p.clone(),
                store,
            }
        }
        (Some(p), _) => Destination::Layered {
            temp,
            user: p.clone(),
        },
        (None, Some(p)) => Destination::Persist(p.clone()),
        (None, None) => Destination::Temporary(temp),
    };
    let step = out.step("kubeconfig");
    let host = kubeconfig_host(flow.conn.bind);
    let server = format!("https://{}/", host_port(&host, port));
    let kubefile = KubeFile::write(destination, fetched, &host, port, out)?;
    if kubefile.env.as_os_str() == kubefile.path.as_os_str() {
        step.done(format!(
            "Kubeconfig {} points at {server}",
            kubefile.path.display()
        ));
    } else {
        step.done(format!(
            "Kubeconfig {} points at {server}; KUBECONFIG={} (the tunnel's context first; your file is only read)",
            kubefile.path.display(),
            kubefile.env.to_string_lossy()
        ));
    }

    let result = serve_and_run(
        ctx,
        flow.action,
        &cluster,
        &plan,
        &flow.conn,
        listener,
        &kubefile.env,
        &kubefile.path,
        session_dir.path(),
        flow.no_probe,
        signals,
    )
    .await;
    let step = out.step("cleanup");
    let kept = kubefile.is_kept();
    let summary = kubefile.cleanup_summary();
    kubefile.finish(out);
    drop(session_dir);
    result.map(|(outcome, undeleted)| {
        step.done(format!(
            "Tunnel closed, {}{}",
            if undeleted == 0 {
                "every session deleted".to_owned()
            } else {
                format!("{undeleted} session(s) left undeleted")
            },
            if kept {
                String::new()
            } else {
                format!(", {summary}")
            }
        ));
        outcome
    })
}

fn check_flow(flow: &Flow<'_>) -> CliResult<()> {
    // The tunnel's options are checked before any Azure call, not once the kubeconfig exists.
    // With a shell or a command, the child decides when the tunnel ends.
    if flow.conn.exit_after_idle.is_some() && !matches!(flow.action, Action::Foreground) {
        return Err(CliError::usage(
            "--exit-after-idle applies to the tunnel alone, not to a shell or a command",
        )
        .hint("add --no-shell (and leave out the command after `--`)"));
    }
    if let Some(size) = flow.conn.max_frame_size {
        let stream = bastion_core::StreamConfig {
            max_frame_size: size,
            ..Default::default()
        };
        stream
            .validate()
            .map_err(|e| CliError::from(e).hint("change --max-frame-size"))?;
    }
    if let Action::Command(cmd) = &flow.action
        && cmd.first().is_none_or(|c| c.trim().is_empty())
    {
        return Err(CliError::usage("the command after `--` is empty")
            .hint("write the command after `--`, e.g. `-- kubectl get pods`"));
    }
    // Fail before any Azure call when the command cannot run at all.
    if let Action::Command(cmd) = &flow.action
        && child::find_program(&cmd[0]).is_none()
    {
        return Err(
            CliError::usage(format!("cannot find the command `{}`", cmd[0]))
                .hint("install it, put it on PATH, or give its full path"),
        );
    }
    for p in [&flow.kubeconfig_path, &flow.kubeconfig_out]
        .into_iter()
        .flatten()
    {
        let dir = p
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.is_dir() {
            return Err(CliError::usage(format!(
                "the directory of {} does not exist",
                p.display()
            ))
            .hint("create it, or choose another kubeconfig path"));
        }
    }
    // The user's file is merged by kubectl (or by us, in place): a broken one fails now.
    if let Some(p) = &flow.kubeconfig_path {
        kubefile::read_user_file(p, "--kubeconfig-path")?;
        if flow.write_in_place {
            kubefile::store()?;
        }
    }
    Ok(())
}

/// Starts the tunnel on the held listener, probes it, runs the action, and shuts down.
/// Returns the outcome and the number of sessions left undeleted.
#[allow(clippy::too_many_arguments)]
async fn serve_and_run(
    ctx: &Context,
    action: Action<'_>,
    cluster: &ManagedCluster,
    plan: &EndpointPlan,
    conn: &ConnectionArgs,
    listener: LocalListener,
    kubeconfig: &OsStr,
    kubeconfig_file: &Path,
    session_dir: &Path,
    no_probe: bool,
    signals: &mut Signals,
) -> CliResult<(Outcome, usize)> {
    let out = &ctx.out;
    let step = out.step("tunnel");
    let mut config = tunnel_config(ctx, cluster, plan)?;
    tunnel::apply_options(
        &mut config,
        conn.idle_timeout,
        conn.max_frame_size,
        conn.max_connections,
    );
    tunnel::apply_prewarm(&mut config, conn.prewarm, conn.max_connections)?;
    let tunnel = signals.interruptible(tunnel::start(ctx, config)).await?;
    let port = listener.port();
    let server = tunnel::serve_in_background(&tunnel, listener);
    let failures = spawn_failure_log(*out, tunnel.subscribe());
    step.done(format!(
        "Tunnel to {} port 443 through {}",
        cluster.display_name(),
        tunnel.config().endpoint
    ));
    tunnel::announce_prewarm(out, tunnel.config());

    let outcome = async {
        if !no_probe {
            signals.interruptible(probe(ctx, &tunnel)).await?;
        }
        let idle_exit = conn
            .exit_after_idle
            .filter(|s| *s > 0)
            .map(Duration::from_secs);
        run_action(
            ctx,
            action,
            (&tunnel, idle_exit),
            port,
            kubeconfig,
            kubeconfig_file,
            session_dir,
            signals,
        )
        .await
    }
    .await;

    let summary = server.stop().await;
    drop(tunnel);
    if tokio::time::timeout(Duration::from_secs(1), failures)
        .await
        .is_err()
    {
        tracing::debug!("the connection log did not drain in time");
    }
    tunnel::warn_undeleted(out, &summary);
    outcome.map(|o| (o, summary.undeleted_sessions))
}

/// The tunnel to the cluster's API server (port 443) through the Bastion the gate passed
/// (shared with `bastion up`).
pub fn tunnel_config(
    ctx: &Context,
    cluster: &ManagedCluster,
    plan: &EndpointPlan,
) -> CliResult<TunnelConfig> {
    // The cluster id exactly as ARM returned it (lowercase `resourcegroups` included).
    let target = Target::resource(cluster.id.as_str(), 443)
        .map_err(|e| CliError::new(Code::Other, e.to_string()))?;
    Ok(plan.tunnel_config(target, &ctx.scope(), ctx.https_config())?)
}

/// One end-to-end session (token exchange + WebSocket), closed and deleted at once: fails fast
/// instead of leaving kubectl to time out.
async fn probe(ctx: &Context, tunnel: &Tunnel) -> CliResult<()> {
    let step = ctx.out.step("probe");
    let conn = tunnel.connect().await.map_err(|e| {
        CliError::from(e).or_hint("the Bastion did not open a tunnel to the cluster; run `bastion check aks` for the pre-flight report, or retry with -v")
    })?;
    let node = conn.node_id().unwrap_or("?").to_owned();
    conn.close().await.map_err(CliError::from)?;
    step.done(format!(
        "Probe session through node {node} opened and deleted"
    ));
    Ok(())
}

/// `kubeconfig`: the value of `KUBECONFIG` (one file, or the tunnel's then the user's);
/// `kubeconfig_file`: the file whose current context is the tunnel's.
/// `idle`: the tunnel, and how long it may go without a connection (`--exit-after-idle`,
/// which only the foreground tunnel of `--no-shell` honours).
#[allow(clippy::too_many_arguments)]
async fn run_action(
    ctx: &Context,
    action: Action<'_>,
    idle: (&Tunnel, Option<Duration>),
    port: u16,
    kubeconfig: &OsStr,
    kubeconfig_file: &Path,
    session_dir: &Path,
    signals: &mut Signals,
) -> CliResult<Outcome> {
    let out = &ctx.out;
    let shown = kubeconfig.to_string_lossy();
    match action {
        Action::Command(cmd) => {
            let mut command = Command::new(&cmd[0]);
            command.args(&cmd[1..]).env("KUBECONFIG", kubeconfig);
            out.info(format!("Running {} with KUBECONFIG={shown}", cmd.join(" ")));
            let step = out.step("command");
            let (status, _) = child::run(command, "the command", signals).await?;
            let code = child_status(status);
            step.done(format!("{} exited with code {code}", cmd.join(" ")));
            Ok(Outcome::Status(code))
        }
        Action::Shell(shell) => {
            let command = shell_command(shell.as_deref(), kubeconfig, session_dir)?;
            out.essential(
                format!(
                    "Starting a shell with KUBECONFIG={shown} (tunnel on port {port}). Use exit or Ctrl-D (i.e. EOF) to exit the subshell."
                ),
                json!({"event": "shell", "kubeconfig": shown, "port": port}),
            );
            let (status, _) = child::run(command, "the shell", signals).await?;
            Ok(Outcome::Status(child_status(status)))
        }
        Action::Foreground => {
            out.essential(
                format!("Tunnel is ready, connect on port {port}"),
                json!({"event": "ready", "port": port, "kubeconfig": shown}),
            );
            out.info(format!(
                "export KUBECONFIG={}\nPress Ctrl-C to close the tunnel.",
                shell_quote(&shown)
            ));
            tokio::select! {
                sig = signals.recv() => {
                    out.info(format!("{}: closing the tunnel", sig.name()));
                }
                limit = tunnel::idle_exit(idle.0, idle.1) => {
                    out.info(format!(
                        "No connection for {} s (--exit-after-idle): closing the tunnel",
                        limit.as_secs()
                    ));
                }
            }
            Ok(Outcome::Success)
        }
        Action::InProcess(run) => {
            let step = out.step("command");
            let code = run(kubeconfig_file.to_path_buf()).await?;
            step.done(format!(
                "Built-in `kubectl get pods` finished with code {code}"
            ));
            Ok(Outcome::Status(code))
        }
    }
}

/// The host the kubeconfig names for a tunnel listening on `bind`: `localhost` for the
/// default (127.0.0.1 and ::1 are both bound), a loopback address for a wildcard one, else the
/// address itself. The `tls-server-name` keeps the certificate check on the cluster's name.
pub fn kubeconfig_host(bind: IpAddr) -> String {
    match bind {
        IpAddr::V4(ip) if ip == std::net::Ipv4Addr::LOCALHOST => "localhost".into(),
        IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(ip) if ip.is_unspecified() => "::1".into(),
        ip => ip.to_string(),
    }
}

/// `host:port`, with brackets around an IPv6 address.
fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `text` in single quotes for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The user's shell with `KUBECONFIG` set; for bash an rc file that sources `~/.bashrc` first,
/// so it cannot override `KUBECONFIG`.
fn shell_command(
    shell: Option<&str>,
    kubeconfig: &OsStr,
    session_dir: &Path,
) -> CliResult<Command> {
    let shell = shell
        .map(str::to_owned)
        .or_else(|| std::env::var("SHELL").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "/bin/sh".to_owned());
    let mut cmd = Command::new(&shell);
    cmd.env("KUBECONFIG", kubeconfig);
    if shell.rsplit('/').next() == Some("bash") {
        let rc = session_dir.join("bashrc");
        let quoted = shell_quote(&kubeconfig.to_string_lossy());
        std::fs::write(
            &rc,
            format!("[ -f ~/.bashrc ] && . ~/.bashrc\nexport KUBECONFIG={quoted}\n"),
        )
        .map_err(|e| {
            CliError::new(
                Code::Other,
                format!("cannot write the shell's rc file: {e}"),
            )
        })?;
        // bash reads an rc file only when interactive, i.e. on a terminal.
        cmd.arg("--rcfile").arg(rc);
    }
    Ok(cmd)
}

/// The report of a failed pre-flight, on stderr (the result of `aks` is the child's output).
fn show_failed_report(ctx: &Context, cluster: &ManagedCluster, bastion: &str, report: &Report) {
    if ctx.out.is_json() {
        check::print_report(
            ctx,
            "",
            json!({"kind": "aks", "cluster": cluster.id.to_string(), "bastion": bastion}),
            report,
        );
    } else {
        eprintln!(
            "Pre-flight checks for AKS cluster '{}' through Bastion {bastion}:\n\n{}",
            cluster.display_name(),
            report.render_text()
        );
    }
}

fn warn_rows(ctx: &Context, report: &Report) {
    for f in report
        .findings
        .iter()
        .filter(|f| matches!(f.status, Status::Warn | Status::Unknown))
    {
        ctx.out
            .warn(format!("{} {} {}: {}", f.status, f.id, f.title, f.detail));
    }
}

/// Failed tunnel connections are worth a line even while a shell runs.
fn spawn_failure_log(
    out: crate::output::Output,
    mut events: broadcast::Receiver<ConnectionEvent>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ConnectionEvent::Closed {
                    id, error: Some(e), ..
                }) => out.warn(format!("tunnel connection {id} failed: {e}")),
                Ok(ConnectionEvent::PrewarmFailed { error, .. }) => {
                    out.warn(format!("could not pre-warm a session: {error}"));
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kubeconfig_names_a_reachable_address_for_each_bind() {
        let host = |a: &str| kubeconfig_host(a.parse().unwrap());
        assert_eq!(host("127.0.0.1"), "localhost");
        assert_eq!(host("0.0.0.0"), "127.0.0.1");
        assert_eq!(host("::"), "::1");
        assert_eq!(host("127.0.0.2"), "127.0.0.2");
        assert_eq!(host("10.1.2.3"), "10.1.2.3");
        assert_eq!(host_port(&host("::"), 8443), "[::1]:8443");
        assert_eq!(host_port(&host("0.0.0.0"), 8443), "127.0.0.1:8443");
    }

    #[test]
    fn shell_quote_survives_quotes_and_colons() {
        assert_eq!(
            shell_quote("/tmp/a:/home/u/.kube/config"),
            "'/tmp/a:/home/u/.kube/config'"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn bash_gets_an_rc_file_exporting_the_whole_list() {
        let dir = tempfile::tempdir().unwrap();
        let list = std::ffi::OsString::from("/tmp/x/config:/home/u/.kube/config");
        let cmd = shell_command(Some("/bin/bash"), &list, dir.path()).unwrap();
        let rc = std::fs::read_to_string(dir.path().join("bashrc")).unwrap();
        assert!(
            rc.ends_with("export KUBECONFIG='/tmp/x/config:/home/u/.kube/config'\n"),
            "{rc}"
        );
        let env: Vec<_> = cmd.as_std().get_envs().collect();
        assert!(env.contains(&(std::ffi::OsStr::new("KUBECONFIG"), Some(list.as_os_str()))));
    }
}
