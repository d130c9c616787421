//! `bastion aks --skip-checks` skips the role and network checks (a cluster they would stop
//! gets its tunnel, with a warning), but never the SKU and native-client gate.

use crate::common;

use bastion_arm::ResourceId;
use bastion_emulator::sandbox::{BASIC_BASTION, PRIVATE_CLUSTER_NO_PUBLIC_FQDN};
use common::{ArmSandbox, assert_clean_error, assert_nothing_left_in, run_command};

/// Unlinks privaks' private DNS zone from the hub VNet, where the Bastion is: check N3 fails
/// (in Azure the Bastion could not resolve the API server; the emulator still relays).
fn unlink_privaks_zone(s: &ArmSandbox) {
    let cluster = ResourceId::parse(PRIVATE_CLUSTER_NO_PUBLIC_FQDN).unwrap();
    let removed = s.sandbox.arm().with_fixtures(|f| {
        let links: Vec<ResourceId> = f
            .resources()
            .map(|(id, _)| id.clone())
            .filter(|id| {
                id.as_str().contains("/virtualNetworkLinks/hub-link")
                    && id
                        .as_str()
                        .contains(&format!("MC_aks-rg_{}_eastus", cluster.name()))
            })
            .collect();
        links.iter().filter(|id| f.remove_resource(id)).count()
    });
    assert_eq!(removed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_network_check_stops_aks_unless_skipped() {
    let s = ArmSandbox::start().await;
    unlink_privaks_zone(&s);
    let tmp = tempfile::tempdir().unwrap();
    let privaks = |extra: &[&str]| {
        let mut args = vec!["aks", "-n", "privaks", "-g", "aks-rg"];
        args.extend_from_slice(extra);
        args.extend(["--", "true"]);
        let mut cmd = common::command(&args, &s.env());
        cmd.env("TMPDIR", tmp.path());
        cmd
    };

    // Without --skip-checks: N3 fails, exit 4, nothing written, no session.
    let out = run_command(privaks(&[])).await;
    let line = assert_clean_error(&out, 4);
    assert!(line.contains("pre-flight check failed: N3"), "{line}");
    assert_nothing_left_in(tmp.path());
    assert_eq!(s.sandbox.bastion().stats().token_requests, 0);

    // With it: a warning, no report, and the command runs through the tunnel.
    let out = run_command(privaks(&["--skip-checks"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: pre-flight checks skipped (--skip-checks)"),
        "{stderr}"
    );
    assert!(!stderr.contains("Pre-flight checks"), "{stderr}");
    assert!(stderr.contains("Probe session"), "{stderr}");
    assert_nothing_left_in(tmp.path());
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_checks_does_not_skip_the_native_client_gate() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&["--bastion", BASIC_BASTION, "--skip-checks", "--", "true"]);
    cmd.env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 4);
    assert!(line.contains("Basic SKU"), "{line}");
    assert!(
        line.contains(" — upgrade it: az network bastion update"),
        "{line}"
    );
    assert_nothing_left_in(tmp.path());
    assert_eq!(s.sandbox.bastion().stats().token_requests, 0);
}
