//! `bastion --auth METHOD aks -- kubectl get pods` against the sandbox's AAD cluster, for each
//! credential the emulators can issue: the kubeconfig's user is `bastion kube-token` with the
//! same `--auth`, whose AKS token (and only that: the cluster refuses ARM tokens) lists the
//! pods; no `az`, no kubelogin. No Bastion session and nothing in TMPDIR is left behind. Under
//! `CI=true` a missing kubectl fails.

use crate::aad;
use crate::common;

use aad::{AuthEnv, METHODS, aadaks_args, kubectl, principal_of};
use bastion_emulator::{GrantKind, is_aks_audience};
use common::{ArmSandbox, assert_nothing_left_in, assert_success, in_ci, run_command};

async fn kubectl_lists_the_pods_with(method: &str) {
    let Some(kubectl) = kubectl() else {
        assert!(
            !in_ci(),
            "kubectl is not installed, and CI is set: install kubectl (see .ci/run)"
        );
        eprintln!("\n*** kubectl is NOT installed: skipped ***\n");
        return;
    };
    let s = ArmSandbox::start().await;
    let auth = AuthEnv::new(&s, method);
    let tmp = tempfile::tempdir().unwrap();
    let args = aadaks_args(&["aks"], &["--", kubectl, "get", "pods"]);
    let mut cmd = auth.command(method, &args);
    cmd.env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let (stdout, stderr) = assert_success(&out);
    assert!(
        stdout.contains("hello-web-7c9d8f6b5d-x2x7q"),
        "pods listed:\n{stdout}\n{stderr}"
    );

    // The API server saw the method's principal, with a token it accepted; nothing refused.
    let requests = s.sandbox.aad_kube().requests();
    let pods = requests
        .iter()
        .find(|r| r.path.contains("/pods"))
        .unwrap_or_else(|| panic!("no pods request: {requests:?}"));
    assert_eq!(pods.status, 200, "{requests:?}");
    assert_eq!(pods.user.as_deref(), Some(principal_of(method)));
    assert!(requests.iter().all(|r| r.refused.is_none()), "{requests:?}");
    // The token came from the method's own source, for the AKS scope.
    match method {
        "cli" => {
            let calls = auth.az.as_ref().unwrap().calls();
            assert!(
                calls
                    .iter()
                    .any(|c| c.contains("--scope 6dae42f8-4368-4678-94ff-3960e28e3630/.default")),
                "{calls:?}"
            );
        }
        _ => {
            let issued = s.sandbox.identity().requests();
            let kind = match method {
                "managed-identity" => GrantKind::ManagedIdentity,
                "client-secret" => GrantKind::ClientSecret,
                _ => GrantKind::ClientAssertion,
            };
            assert!(
                issued.iter().any(|r| r.kind == kind
                    && r.status == 200
                    && r.audience.as_deref().is_some_and(is_aks_audience)),
                "{issued:?}"
            );
        }
    }
    s.sandbox.bastion().assert_no_orphans();
    assert_nothing_left_in(tmp.path());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_pods_with_a_managed_identity() {
    kubectl_lists_the_pods_with(METHODS[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_pods_with_a_client_secret() {
    kubectl_lists_the_pods_with(METHODS[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_pods_with_a_workload_identity() {
    kubectl_lists_the_pods_with(METHODS[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_pods_with_the_azure_cli() {
    kubectl_lists_the_pods_with(METHODS[3]).await;
}
