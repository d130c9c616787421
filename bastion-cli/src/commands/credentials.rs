//! `bastion aks credentials`: `az aks get-credentials` without az and without a tunnel. The
//! cluster's credentials are fetched and merged into a kubeconfig (or printed): every other
//! entry is kept, `current-context` becomes the new context (as az does), and the file is
//! replaced atomically, through symlinks, keeping its mode.

use std::path::{Path, PathBuf};

use bastion_arm::{CredentialRequest, Kubeconfig, fetch_credentials};
use serde_json::json;

use crate::cli::{AksCredentialsArgs, AksTargetArgs};
use crate::commands::cluster;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};

/// Runs `bastion aks credentials`.
pub async fn run(ctx: &Context, args: &AksCredentialsArgs) -> CliResult<Outcome> {
    let out = &ctx.out;
    let destination = destination(args)?;
    // A broken existing file fails before any Azure call.
    if let Some(path) = &destination {
        crate::commands::kubefile::read_user_file(path, "--file")?;
    }
    let arm = ctx.arm_client()?;
    let target = AksTargetArgs {
        name: args.name.clone(),
        resource_group: args.resource_group.clone(),
        subscription: args.subscription.clone(),
        bastion: None,
        admin: args.admin,
    };
    let step = out.step("cluster");
    let cluster = cluster::get_cluster(&arm, &target).await?;
    step.done(format!("Cluster {}", cluster.display_name()));

    if args.public_fqdn && (cluster.properties.fqdn.is_none() || cluster.public_fqdn_disabled()) {
        return Err(CliError::usage(format!(
            "the cluster {} has no public FQDN",
            cluster.display_name()
        ))
        .hint("leave out --public-fqdn (the credentials then use its private FQDN)"));
    }
    if args.admin && args.format.is_some() {
        out.warn("--format applies to user credentials only; ignored with --admin");
    }

    let step = out.step("credentials");
    let request = CredentialRequest {
        admin: args.admin,
        server_fqdn: args.public_fqdn.then_some("public"),
        format: args.format.map(|f| f.as_str()),
    };
    let fetched = fetch_credentials(&arm, &cluster, &request)
        .await
        .map_err(cluster::credential_error)?;
    let mut kc = Kubeconfig::parse(&fetched)?;
    // Like az: the context is renamed first, then an admin context gets `-admin`.
    if let Some(name) = &args.context {
        kc.rename_context(name);
    }
    if args.admin {
        kc.rename_admin_contexts();
    }
    // An AAD cluster's kubelogin user: `bastion kube-token`, or kubelogin for this --auth.
    crate::commands::kube_token::configure_aad_users(ctx, args.kube_auth, &mut kc, out)?;
    let context = kc.current_context().unwrap_or("?").to_owned();
    step.done(format!(
        "{} credentials of {}",
        if args.admin { "Admin" } else { "User" },
        cluster.display_name()
    ));

    let Some(path) = destination else {
        let yaml = kc.to_yaml()?;
        out.result(&yaml, json!({ "context": context, "kubeconfig": yaml }));
        return Ok(Outcome::Success);
    };

    let merged = match crate::commands::kubefile::read_user_file(&path, "--file")? {
        Some(mut existing) => {
            let conflicts = existing.conflicts_with(&kc);
            if !conflicts.is_empty() && !args.overwrite_existing {
                return Err(CliError::usage(format!(
                    "{} already has a different {}",
                    path.display(),
                    conflicts.join(", ")
                ))
                .hint(
                    "pass --overwrite-existing to replace it, or --context NAME for another name",
                ));
            }
            existing.merge(&kc);
            existing
        }
        None => kc,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(|e| {
            CliError::new(Code::Other, format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let written = merged.write_over(&path)?;
    out.result(
        format!(
            "Merged \"{context}\" as current context in {}\n",
            path.display()
        ),
        json!({
            "context": context,
            "file": path.display().to_string(),
            "written": written.display().to_string(),
        }),
    );
    Ok(Outcome::Success)
}

/// The file to merge into, `None` for stdout.
fn destination(args: &AksCredentialsArgs) -> CliResult<Option<PathBuf>> {
    if let Some(f) = &args.file {
        return Ok((f.as_os_str() != "-").then(|| f.clone()));
    }
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_ref()
        .and_then(|v| std::env::split_paths(v).find(|p| !p.as_os_str().is_empty()))
    {
        return Ok(Some(first));
    }
    match std::env::var_os("HOME").filter(|h| Path::new(h).is_absolute()) {
        Some(home) => Ok(Some(Path::new(&home).join(".kube").join("config"))),
        None => Err(
            CliError::usage("cannot find the default kubeconfig: HOME is not set")
                .hint("pass --file FILE, or set KUBECONFIG or HOME"),
        ),
    }
}
