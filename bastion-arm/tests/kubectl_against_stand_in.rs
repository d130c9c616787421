//! The real `kubectl get pods` / `kubectl get nodes` work against the Kubernetes stand-in with
//! the kubeconfig the ARM emulator hands out (server rewritten to loopback with
//! `tls-server-name`, as the tunnel does). Skipped when kubectl is not installed, except under
//! `CI=true`, where that fails.

use crate::common;

use bastion_arm::{ClusterSelector, Kubeconfig};
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::PRIVATE_FQDN;
use common::*;

#[tokio::test]
async fn kubectl_get_pods_and_nodes() {
    let sandbox = Sandbox::start().await.unwrap();
    let mut config = sandbox_kubeconfig(&sandbox).await;
    let record = config
        .point_at_tunnel(ClusterSelector::CurrentContext, sandbox.kube_addr().port())
        .unwrap();
    assert_eq!(record.tls_server_name, PRIVATE_FQDN);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    config.write(&path).unwrap();

    let Some((ok, out)) = kubectl(&path, &["get", "nodes"]).await else {
        eprintln!("kubectl not installed: skipping");
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("aks-nodepool1-31718369-vmss000000"), "{out}");
    assert!(out.contains("Ready"), "{out}");

    let (ok, out) = kubectl(&path, &["get", "pods", "-n", "kube-system"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("coredns-789789675-7nbtw"), "{out}");
    assert!(out.contains("Running"), "{out}");

    let (ok, out) = kubectl(&path, &["get", "pods", "-A", "-o", "wide"])
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("hello-web"), "{out}");
    assert!(out.contains("10.244.0.12"), "{out}");

    // A wrong token is refused the way a real API server refuses it.
    let access = config.api_server_access().unwrap();
    let token = access.credentials.token.unwrap();
    let yaml = config.to_yaml().unwrap().replace(token.expose(), "wrong");
    Kubeconfig::parse(&yaml).unwrap().write(&path).unwrap();
    let (ok, out) = kubectl(&path, &["get", "nodes"]).await.unwrap();
    assert!(!ok);
    assert!(
        out.contains("Unauthorized") || out.contains("logged in"),
        "{out}"
    );
}
