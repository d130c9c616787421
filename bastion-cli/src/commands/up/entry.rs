//! One tunnel of `bastion up`: started (resolved, bound, served; for AKS also checked, its
//! credentials fetched, probed and its kubeconfig written) and stopped (sessions deleted,
//! kubeconfig removed or put back).

use std::time::Duration;

use bastion_arm::{Usage, fetch_kubeconfig, run_aks_preflight};
use bastion_core::{ServeSummary, Tunnel, TunnelConfig};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::cli::{AksTargetArgs, BastionArgs, RouteArgs, TargetArgs};
use crate::commands::cluster::{self, BastionFailure};
use crate::commands::kubefile::{Destination, KubeFile};
use crate::commands::{aks, kubefile, target, tunnel};
use crate::exit::{CliError, CliResult};
use crate::output::Output;

use super::Up;
use super::config::{AksSpec, Kind, RouteSpec, TunnelSpec};

/// A running tunnel of the set.
pub struct Live {
    /// What it was started from (compared on reload).
    pub spec: TunnelSpec,
    tunnel: Tunnel,
    server: tunnel::Background,
    log: JoinHandle<()>,
    kubefile: Option<KubeFile>,
}

/// Starts one tunnel. Nothing is left behind if this future is dropped before it completes:
/// the kubeconfig is written last, with no await after it.
pub async fn start(up: &Up<'_>, spec: &TunnelSpec) -> CliResult<Live> {
    let ctx = up.ctx;
    let out = &ctx.out;
    // Bound first and held: a busy port fails before any network call.
    let listener = tunnel::bind(out, spec.bind, spec.port)
        .await
        .map_err(|e| match e.code {
            crate::exit::Code::Usage => {
                e.hint("change the tunnel's port in the file (port = 0 for a free one)")
            }
            _ => e,
        })?;
    let (config, aks) = match &spec.kind {
        Kind::Route(route) => {
            let config =
                target::resolve_with(ctx, Some(&up.arm), &route_args(route), route.resource_port)
                    .await?;
            (config, None)
        }
        Kind::Aks(spec) => {
            let (config, kubeconfig) = prepare_aks(up, spec).await?;
            (config, Some(kubeconfig))
        }
    };
    let mut config = config;
    tunnel::apply_options(
        &mut config,
        spec.idle_timeout,
        spec.max_frame_size,
        spec.max_connections,
    );
    tunnel::apply_prewarm(&mut config, spec.prewarm, spec.max_connections).map_err(|e| {
        CliError::usage(format!("tunnel '{}': prewarm: {}", spec.name, e.what))
            .hint("lower the tunnel's prewarm in the file, or raise its max-connections")
    })?;
    target::check_config(&config)?;
    // One token cache for every tunnel; the first call signs in, so a credential problem fails
    // here rather than on the first connection.
    up.tokens.token().await.map_err(CliError::from)?;
    let client = up.client(&config)?;
    let tunnel = Tunnel::with_client(config, up.tokens.clone(), &client)?;
    let port = listener.port();
    let addresses: Vec<String> = listener
        .local_addrs()
        .iter()
        .map(ToString::to_string)
        .collect();

    let kubefile = match aks {
        None => None,
        Some((aks_spec, fetched)) => {
            // One session opened and deleted: a tunnel that cannot reach the API server fails
            // now, not in kubectl.
            let conn = tunnel.connect().await.map_err(|e| {
                CliError::from(e).or_hint("the Bastion did not open a tunnel to the cluster; run `bastion check aks` for the pre-flight report, or retry with -v")
            })?;
            conn.close().await.map_err(CliError::from)?;
            let destination = destination(up, &spec.name, aks_spec)?;
            let host = aks::kubeconfig_host(spec.bind);
            Some(KubeFile::write(destination, fetched, &host, port, out)?)
        }
    };
    let log = tunnel::spawn_tagged_event_log(*out, tunnel.subscribe(), Some(spec.name.clone()));
    let server = tunnel::serve_in_background(&tunnel, listener);

    let shown = addresses
        .first()
        .cloned()
        .unwrap_or_else(|| port.to_string());
    let target = tunnel.config().target.to_string();
    let endpoint = tunnel.config().endpoint.to_string();
    let mut value = json!({
        "event": "ready",
        "tunnel": spec.name,
        "port": port,
        "addresses": addresses,
        "bastion_endpoint": endpoint,
        "target": target,
    });
    let text = match (&spec.kind, &kubefile) {
        (Kind::Aks(a), Some(k)) => {
            value["kubeconfig"] = json!(k.path.to_string_lossy());
            format!(
                "{}: ready on {shown} → AKS cluster {} (kubeconfig {})",
                spec.name,
                a.name,
                k.path.display()
            )
        }
        _ => format!(
            "{}: ready on {shown} → {target} through {endpoint}",
            spec.name
        ),
    };
    out.essential(text, value);
    Ok(Live {
        spec: spec.clone(),
        tunnel,
        server,
        log,
        kubefile,
    })
}

impl Live {
    /// Stops accepting, closes the open connections, deletes every session, then undoes the
    /// kubeconfig. Returns the sessions left undeleted.
    pub async fn stop(self, out: &Output) -> usize {
        let Live {
            spec,
            tunnel,
            server,
            log,
            kubefile,
        } = self;
        let summary: ServeSummary = server.stop().await;
        drop(tunnel);
        // The last events may still be queued: let the log drain now that the tunnel is gone.
        if tokio::time::timeout(Duration::from_secs(1), log)
            .await
            .is_err()
        {
            tracing::debug!("the connection log did not drain in time");
        }
        out.event(
            format!(
                "{}: closed ({} connection(s), {} failed{})",
                spec.name,
                summary.accepted,
                summary.failed,
                if summary.undeleted_sessions == 0 {
                    ", every session deleted".to_owned()
                } else {
                    format!(", {} session(s) left undeleted", summary.undeleted_sessions)
                }
            ),
            json!({
                "event": "closed",
                "tunnel": spec.name,
                "connections": summary.accepted,
                "failed": summary.failed,
                "undeleted_sessions": summary.undeleted_sessions,
            }),
        );
        if let Some(k) = kubefile {
            k.finish(out);
        }
        summary.undeleted_sessions
    }
}

/// The `bastion tunnel` arguments an entry stands for.
fn route_args(r: &RouteSpec) -> RouteArgs {
    RouteArgs {
        bastion: BastionArgs {
            name: r.bastion.clone(),
            resource_group: r.resource_group.clone(),
            subscription: r.subscription.clone().or_else(env_subscription),
            bastion_endpoint: r.bastion_endpoint.clone(),
        },
        target: TargetArgs {
            target_resource_id: r.target_resource_id.clone(),
            target_ip_address: r.target_ip_address.map(|ip| ip.to_string()),
            allow_any_port: r.allow_any_port,
        },
    }
}

/// AZURE_SUBSCRIPTION_ID, which the command line's `--subscription` defaults to.
fn env_subscription() -> Option<String> {
    std::env::var("AZURE_SUBSCRIPTION_ID")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// What `bastion aks` does up to the tunnel: the cluster, its Bastion and the native-client
/// gate, the pre-flight checks (unless skipped), the credentials.
async fn prepare_aks<'s>(
    up: &Up<'_>,
    spec: &'s AksSpec,
) -> CliResult<(TunnelConfig, (&'s AksSpec, bastion_arm::Kubeconfig))> {
    let ctx = up.ctx;
    let arm = &up.arm;
    let target = AksTargetArgs {
        name: spec.name.clone(),
        resource_group: spec.resource_group.clone(),
        subscription: spec.subscription.clone().or_else(env_subscription),
        bastion: spec.bastion.clone(),
        admin: spec.admin,
    };
    let cluster = cluster::get_cluster(arm, &target).await?;
    let found = match cluster::find_bastion(arm, &cluster, spec.bastion.as_deref()).await {
        Ok(found) => found,
        Err(BastionFailure::Unreadable(row)) => {
            return Err(cluster::preflight_error(
                &cluster::unreadable_report(row),
                "bastion check aks",
            ));
        }
        Err(BastionFailure::Error(e)) => return Err(e),
    };
    // The SKU / native-client gate applies even with skip-checks: without it there is no tunnel.
    let plan = found.bastion.native_client_support(Usage::Aks)?;
    for w in &plan.warnings {
        ctx.out.warn(w);
    }
    if !spec.skip_checks {
        let report = run_aks_preflight(arm, &cluster, &found.bastion, spec.admin).await;
        if !report.passed() {
            return Err(cluster::preflight_error(&report, "bastion check aks"));
        }
    }
    let fetched = fetch_kubeconfig(arm, &cluster, spec.admin, None)
        .await
        .map_err(cluster::credential_error)?;
    let fetched = kubefile::prepare(
        &fetched,
        spec.admin,
        spec.context.as_deref(),
        Some((ctx, spec.kube_auth)),
        &ctx.out,
    )?;
    let config = aks::tunnel_config(ctx, &cluster, &plan)?;
    Ok((config, (spec, fetched)))
}

/// Where an AKS tunnel's kubeconfig goes. `kubeconfig-out` naming an existing file: that
/// file, edited in place through the crash-safe store and put back byte for byte at exit (as
/// `aks --write-kubeconfig-in-place`); naming no file: a new 0600 file,
/// removed at exit; no `kubeconfig-out`: a file in this run's private temporary directory.
fn destination(up: &Up<'_>, name: &str, spec: &AksSpec) -> CliResult<Destination> {
    let Some(path) = &spec.kubeconfig_out else {
        return Ok(Destination::Temporary(up.temporary_kubeconfig(name)?));
    };
    if path.exists() {
        // Checked before it is touched: a broken file is refused, never rewritten.
        kubefile::read_user_file(path, "kubeconfig-out")?;
        Ok(Destination::InPlace {
            path: path.clone(),
            store: kubefile::store()?,
        })
    } else {
        Ok(Destination::Temporary(path.clone()))
    }
}
