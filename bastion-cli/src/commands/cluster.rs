//! Shared by `aks`, `check aks` and `demo`: the cluster, its Bastion, and the pre-flight report.

use bastion_arm::access::{self, CheckOutcome, RoleCheck};
use bastion_arm::model::ManagedCluster;
use bastion_arm::{
    ArmClient, ArmError, CredentialError, Discovery, DiscoveryError, Finding, Report, ResourceId,
    Status, discover_bastion,
};

use crate::cli::AksTargetArgs;
use crate::exit::{CliError, CliResult, Code};

/// The subscription of the cluster: `--subscription` / AZURE_SUBSCRIPTION_ID.
pub fn subscription(args: &AksTargetArgs) -> CliResult<String> {
    args.subscription
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            CliError::usage("no subscription for the cluster")
                .hint("pass --subscription SUB (or set AZURE_SUBSCRIPTION_ID)")
        })
}

/// GET the cluster; a 404 names what was looked up.
pub async fn get_cluster(arm: &ArmClient, args: &AksTargetArgs) -> CliResult<ManagedCluster> {
    let sub = subscription(args)?;
    let id = ResourceId::for_resource(
        &sub,
        &args.resource_group,
        "Microsoft.ContainerService",
        "managedClusters",
        &args.name,
    )?;
    arm.get_cluster(&id).await.map_err(|e| {
        if e.is_not_found() {
            CliError::new(
                Code::NotFound,
                format!(
                    "AKS cluster '{}' not found in resource group '{}' of subscription '{sub}'",
                    args.name, args.resource_group
                ),
            )
            .hint("check --name, --resource-group and --subscription (`az aks list -o table` lists them)")
        } else {
            CliError::from(e)
        }
    })
}

/// Why discovery did not produce a Bastion: an error, or (for a 403 on the Bastion) a report row.
#[derive(Debug)]
pub enum BastionFailure {
    /// A plain error.
    Error(CliError),
    /// The caller may not read the Bastion: a failed R3 row explains it.
    Unreadable(Finding),
}

/// Finds the Bastion for the cluster (`--bastion` id or name, the managed one, or a search).
pub async fn find_bastion(
    arm: &ArmClient,
    cluster: &ManagedCluster,
    bastion_arg: Option<&str>,
) -> Result<Discovery, BastionFailure> {
    discover_bastion(arm, cluster, bastion_arg)
        .await
        .map_err(|e| discovery_failure(e, bastion_arg))
}

fn discovery_failure(e: DiscoveryError, bastion_arg: Option<&str>) -> BastionFailure {
    if let DiscoveryError::Arm(arm) = e {
        return arm_failure(*arm, bastion_arg);
    }
    let refused = e.to_string().contains("403");
    let err = CliError::from(e);
    BastionFailure::Error(if refused {
        err.hint("some places could not be searched (HTTP 403): you may lack Reader there; pass --bastion with the Bastion's resource id, and `bastion check aks --bastion <id>` shows which role is missing")
    } else {
        err
    })
}

/// A 403 while reading the Bastion becomes a failed "Reader on the Bastion" row.
fn arm_failure(arm: ArmError, bastion_arg: Option<&str>) -> BastionFailure {
    if !arm.is_authorization_failed() {
        return BastionFailure::Error(CliError::from(arm));
    }
    let scope = bastion_arg
        .map(str::trim)
        .filter(|a| a.starts_with('/'))
        .and_then(|a| ResourceId::parse(a).ok());
    let check = RoleCheck {
        required: access::READ_BASTION,
        scope,
        outcome: CheckOutcome::Denied,
    };
    let mut finding = check.to_finding();
    finding.detail = format!(
        "{} (ARM answered {})",
        finding.detail,
        arm.code().unwrap_or("403 AuthorizationFailed")
    );
    BastionFailure::Unreadable(finding)
}

/// The report when the Bastion could not even be read: the R3 row and nothing else to go on.
pub fn unreadable_report(finding: Finding) -> Report {
    let mut report = Report::default();
    report.push(finding);
    report
}

/// Maps a credential failure.
pub fn credential_error(e: CredentialError) -> CliError {
    match e {
        CredentialError::Arm(arm) => {
            let denied = arm.is_authorization_failed();
            let err = CliError::from(*arm);
            if denied {
                err.hint("ask for 'Azure Kubernetes Service Cluster User Role' on the cluster (or Cluster Admin Role with --admin); `bastion check aks` shows every missing role")
            } else {
                err
            }
        }
        CredentialError::Aks(aks) => CliError::from(aks),
        other => CliError::new(Code::Other, other.to_string()),
    }
}

/// `PASS 7, WARN 1, FAIL 0, UNKNOWN 0`.
pub fn report_counts(report: &Report) -> String {
    let n = |s| report.with_status(s).len();
    format!(
        "{} passed, {} warning(s), {} failed, {} unknown",
        n(Status::Pass),
        n(Status::Warn),
        n(Status::Fail),
        n(Status::Unknown)
    )
}

/// The one-line error for a failed report: the failing rows' ids and titles.
pub fn preflight_error(report: &Report, check_command: &str) -> CliError {
    let failed: Vec<String> = report
        .failed()
        .iter()
        .map(|f| format!("{} {}", f.id, f.title))
        .collect();
    CliError::new(
        Code::Preflight,
        format!("pre-flight check failed: {}", failed.join("; ")),
    )
    .hint(format!(
        "apply the fix shown for each FAIL row, then run again (`{check_command}` repeats the checks alone)"
    ))
}
