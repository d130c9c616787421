//! A first run on a machine without az and without any credential reads like a guide: which
//! credentials were tried and why, then the fixes, in a few short lines (exit 5); the SDK's
//! full message stays in `--output json`.

use crate::common;

use common::{ArmSandbox, command, run_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_gives_a_short_guide_not_a_wall_of_sdk_errors() {
    let s = ArmSandbox::start().await;
    // The sandbox's environment without any credential: the default chain (az, azd) is tried,
    // with a PATH that has neither.
    let env: Vec<(String, String)> = s
        .env()
        .into_iter()
        .filter(|(k, _)| !k.contains("TOKEN") && k != "BASTION_AUTH")
        .chain([("PATH".to_owned(), "/nonexistent".to_owned())])
        .collect();
    let args = ["aks", "-n", "myaks", "-g", "aks-rg", "--no-shell"];
    let out = run_command(command(&args, &env)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.starts_with("error: no Azure credential"), "{stderr}");
    for needle in [
        "tried:",
        "Azure CLI (az)",
        "az login",
        "--auth managed-identity",
        "bastion demo",
    ] {
        assert!(stderr.contains(needle), "{needle} missing:\n{stderr}");
    }
    assert!(
        !stderr.contains("https://"),
        "troubleshooting links in:\n{stderr}"
    );
    assert!(stderr.lines().count() <= 12, "too long:\n{stderr}");

    let mut json_args = vec!["--output", "json"];
    json_args.extend(args);
    let out = run_command(command(&json_args, &env)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let event: serde_json::Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|v: &serde_json::Value| v["event"] == "error")
        .expect("an error event");
    assert!(
        event["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("AzureCliCredential"),
        "{event}"
    );
}
