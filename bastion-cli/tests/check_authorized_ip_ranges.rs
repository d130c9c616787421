//! Check N4 through the ARM emulator and the CLI: a public cluster whose authorized IP ranges
//! include the Bastion's public IP passes; once they leave it out, the row fails with the
//! `az aks update` that adds it, and `bastion aks` stops (exit 4) before writing anything.

use crate::common;

use bastion_arm::ResourceId;
use bastion_emulator::sandbox::{HUB_BASTION, HUB_BASTION_IP, PUBLIC_CLUSTER};
use common::{
    ArmSandbox, assert_check_failed, assert_check_passed, assert_clean_error,
    assert_nothing_left_in, check, run_command,
};

fn pubaks_args() -> [&'static str; 7] {
    [
        "aks",
        "-n",
        "pubaks",
        "-g",
        "aks-rg",
        "--bastion",
        HUB_BASTION,
    ]
}

/// Replaces pubaks' `authorizedIPRanges` in the emulator's ARM.
fn set_authorized_ranges(s: &ArmSandbox, ranges: &[&str]) {
    let id = ResourceId::parse(PUBLIC_CLUSTER).unwrap();
    s.sandbox.arm().with_fixtures(|f| {
        let mut doc = f
            .resources()
            .find(|(k, _)| **k == id)
            .map(|(_, v)| v.clone())
            .expect("pubaks in the sandbox");
        doc["properties"]["apiServerAccessProfile"]["authorizedIPRanges"] =
            serde_json::json!(ranges);
        f.resource(doc).unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bastions_ip_in_the_ranges_passes() {
    let s = ArmSandbox::start().await;
    let (out, stdout) = check(&pubaks_args(), &s.env()).await;
    assert_check_passed(&out, &stdout, &["PASS    N4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_without_the_bastions_ip_fail_with_the_fix() {
    let s = ArmSandbox::start().await;
    set_authorized_ranges(&s, &["198.51.100.0/24"]);
    let (out, stdout) = check(&pubaks_args(), &s.env()).await;
    let (row, error) = assert_check_failed(&out, &stdout, "N4");
    assert!(row.contains(HUB_BASTION_IP), "{row}");
    assert!(
        row.contains("--api-server-authorized-ip-ranges 198.51.100.0/24,20.1.2.3/32"),
        "{row}"
    );
    assert!(error.contains("pre-flight check failed: N4"), "{error}");

    // `bastion aks` stops on the same failure: exit 4, no tunnel, nothing written.
    let tmp = tempfile::tempdir().unwrap();
    let mut args = pubaks_args().to_vec();
    args.extend(["--", "true"]);
    let mut cmd = common::command(&args, &s.env());
    cmd.env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 4);
    assert!(line.contains("N4"), "{line}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("Listening on"));
    assert_nothing_left_in(tmp.path());
    assert_eq!(s.sandbox.bastion().stats().token_requests, 0);
}
