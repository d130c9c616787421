//! `bastion check aks` / `bastion check tunnel`: the pre-flight report alone, one row per check
//! (PASS, WARN, FAIL, UNKNOWN) with the fix for each failure, on stdout. Exit 4 when a row
//! fails.

use std::collections::HashMap;

use bastion_arm::access::{self, CheckOutcome, RoleCheck, ScopeKind, ScopePermissions};
use bastion_arm::{Report, ResourceId, Usage, gate_findings, run_aks_preflight};
use serde_json::json;

use crate::cli::{CheckAksArgs, CheckTunnelArgs};
use crate::commands::cluster::{self, BastionFailure};
use crate::commands::target::{self, TargetSpec};
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};

/// Runs `bastion check aks`.
pub async fn run_aks(ctx: &Context, args: &CheckAksArgs) -> CliResult<Outcome> {
    let arm = ctx.arm_client()?;
    let cluster = cluster::get_cluster(&arm, &args.cluster).await?;
    let (bastion_name, report) =
        match cluster::find_bastion(&arm, &cluster, args.cluster.bastion.as_deref()).await {
            Ok(found) => {
                let report =
                    run_aks_preflight(&arm, &cluster, &found.bastion, args.cluster.admin).await;
                (found.bastion.id.to_string(), report)
            }
            Err(BastionFailure::Unreadable(row)) => (
                args.cluster
                    .bastion
                    .clone()
                    .unwrap_or_else(|| "(unreadable)".into()),
                cluster::unreadable_report(row),
            ),
            Err(BastionFailure::Error(e)) => return Err(e),
        };
    print_report(
        ctx,
        &format!(
            "Pre-flight checks for AKS cluster '{}' through Bastion {bastion_name}",
            cluster.display_name()
        ),
        json!({"kind": "aks", "cluster": cluster.id.to_string(), "bastion": bastion_name}),
        &report,
    );
    finish(&report, "bastion check aks")
}

/// Runs `bastion check tunnel`.
pub async fn run_tunnel(ctx: &Context, args: &CheckTunnelArgs) -> CliResult<Outcome> {
    let spec = TargetSpec::parse(&args.route.target, args.resource_port)?;
    if args.route.bastion.bastion_endpoint.is_some() {
        return Err(CliError::usage("`check tunnel` reads the Bastion from ARM")
            .hint("pass --name and --resource-group instead of --bastion-endpoint"));
    }
    let id = target::bastion_id(&args.route.bastion, &spec)?;
    let arm = ctx.arm_client()?;
    let mut report = Report::default();
    match arm.get_bastion(&id).await {
        Ok(bastion) => {
            let usage = Usage::Tunnel {
                port: args.resource_port,
                ip_connect: matches!(spec, TargetSpec::Ip(_)),
                allow_custom_port: args.route.target.allow_any_port,
            };
            for f in gate_findings(&bastion, usage) {
                report.push(f);
            }
        }
        Err(e) if e.is_not_found() => {
            return Err(
                CliError::new(Code::NotFound, format!("Bastion {id} not found"))
                    .hint("check --name, --resource-group and --subscription"),
            );
        }
        Err(e) if e.is_authorization_failed() => {}
        Err(e) => return Err(e.into()),
    }
    // Role rows: Reader on the Bastion, and on a VM target.
    let mut required = vec![access::READ_BASTION];
    let mut perms = HashMap::new();
    perms.insert(
        ScopeKind::Bastion,
        ScopePermissions {
            permissions: arm.permissions(&id).await.map_err(|e| e.to_string()),
            scope: id.clone(),
        },
    );
    if let TargetSpec::Resource(target) = &spec
        && let Ok(vm) = ResourceId::parse(target)
        && vm.is_type("Microsoft.Compute/virtualMachines")
    {
        required.push(access::READ_VM);
        perms.insert(
            ScopeKind::VirtualMachine,
            ScopePermissions {
                permissions: arm.permissions(&vm).await.map_err(|e| e.to_string()),
                scope: vm,
            },
        );
    }
    for check in access::evaluate(&required, &perms) {
        report.push(denied_if_unreadable(check).to_finding());
    }
    let target_text = match &spec {
        TargetSpec::Resource(r) => format!("{r} port {}", args.resource_port),
        TargetSpec::Ip(ip) => format!("{ip} port {} (IP connect)", args.resource_port),
    };
    print_report(
        ctx,
        &format!("Pre-flight checks for a tunnel to {target_text} through Bastion {id}"),
        json!({"kind": "tunnel", "bastion": id.to_string(), "target": target_text}),
        &report,
    );
    finish(&report, "bastion check tunnel")
}

/// A permissions call refused with 403 means the caller cannot even read that scope.
fn denied_if_unreadable(mut check: RoleCheck) -> RoleCheck {
    if let CheckOutcome::Unknown(why) = &check.outcome
        && (why.contains("HTTP 403") || why.contains("AuthorizationFailed"))
    {
        check.outcome = CheckOutcome::Denied;
    }
    check
}

/// The report on stdout: a header, one row per check, a summary (or one JSON object).
pub fn print_report(ctx: &Context, header: &str, mut meta: serde_json::Value, report: &Report) {
    let text = format!(
        "{header}\n\n{}\n{}: {}\n",
        report.render_text(),
        if report.passed() { "PASSED" } else { "FAILED" },
        cluster::report_counts(report)
    );
    meta["event"] = json!("report");
    meta["passed"] = json!(report.passed());
    meta["findings"] = serde_json::to_value(&report.findings).unwrap_or_default();
    ctx.out.result(text, meta);
}

fn finish(report: &Report, check_command: &str) -> CliResult<Outcome> {
    if report.passed() {
        Ok(Outcome::Success)
    } else {
        Err(cluster::preflight_error(report, check_command))
    }
}
