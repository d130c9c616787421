//! The real `kubectl get pods` / `kubectl get nodes` work against the Kubernetes stand-in with
//! the kubeconfig the ARM emulator hands out (server rewritten to loopback with
//! `tls-server-name`, as the tunnel does). Skipped when kubectl is not installed.

use std::time::Duration;

use bastion_arm::resource_id::ResourceId;
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::{FULL_ACCESS_USER, PRIVATE_CLUSTER, PRIVATE_FQDN};

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Option<(bool, String)> {
    let child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("kubectl did not finish within 60 s")
        .ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}

#[tokio::test]
async fn kubectl_get_pods_and_nodes() {
    let sandbox = Sandbox::start().await.unwrap();
    let arm = sandbox.arm_client(FULL_ACCESS_USER).unwrap();
    let yaml = arm
        .list_cluster_user_credential(&ResourceId::parse(PRIVATE_CLUSTER).unwrap(), None)
        .await
        .unwrap()
        .decode_first()
        .unwrap();
    let mut config: serde_yaml_ng::Value = serde_yaml_ng::from_str(&yaml).unwrap();
    let cluster = &mut config["clusters"][0]["cluster"];
    cluster["server"] = format!("https://127.0.0.1:{}/", sandbox.kube_addr().port()).into();
    cluster["tls-server-name"] = PRIVATE_FQDN.into();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();

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
    config["users"][0]["user"]["token"] = "wrong".into();
    std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
    let (ok, out) = kubectl(&path, &["get", "nodes"]).await.unwrap();
    assert!(!ok);
    assert!(
        out.contains("Unauthorized") || out.contains("logged in"),
        "{out}"
    );
}
