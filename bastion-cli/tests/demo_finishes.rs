//! `bastion demo` runs the whole AKS flow against the built-in sandbox and succeeds.

use crate::common;

use common::{assert_success, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_finishes_successfully() {
    let out = run(&["demo"], &[]).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(
        stdout.contains("hello-web-7c9d8f6b5d-x2x7q"),
        "{stdout}\n{stderr}"
    );
    for step in [
        "✓ Cluster myaks",
        "✓ Bastion hub-bastion",
        "✓ Pre-flight checks",
        "✓ Probe session",
        "Demo finished",
    ] {
        assert!(stderr.contains(step), "missing {step:?} in:\n{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_without_kubectl_uses_the_built_in_client() {
    let out = run(&["demo", "--no-kubectl"], &[]).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(
        stdout.contains("hello-web-7c9d8f6b5d-x2x7q"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("built-in HTTPS client"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_in_json_prints_one_object_per_line() {
    let out = run(&["--output", "json", "demo", "--no-kubectl"], &[]).await;
    let (stdout, _) = assert_success(&out);
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "step" && e["step"] == "probe")
    );
    assert!(events.iter().any(|e| e["event"] == "pods"));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "demo_finished" && e["ok"] == true)
    );
}
