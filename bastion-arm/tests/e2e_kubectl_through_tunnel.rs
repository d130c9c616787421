//! End to end, the whole `az aks bastion` flow in-process: against the ARM emulator, resolve the
//! private cluster and discover its Bastion (hub VNet, another subscription), run the pre-flight
//! checks, fetch the user credentials, open a bastion-core tunnel through the Bastion emulator to
//! the Kubernetes API stand-in, rewrite the kubeconfig for the tunnel, and run the real
//! `kubectl get pods` with it. Afterwards no Bastion session is left.
//!
//! When kubectl is not installed the test says so loudly and makes the same request with an
//! HTTP client through the tunnel instead.

use std::sync::Arc;
use std::time::Duration;

use bastion_arm::aks::fetch_kubeconfig;
use bastion_arm::bastion::Usage;
use bastion_arm::discovery::discover_bastion;
use bastion_arm::kubeconfig::{ClusterSelector, Kubeconfig, write_atomic};
use bastion_arm::resource_id::ResourceId;
use bastion_core::{Endpoint, LocalListener, StaticTokenCredential, Target, Tunnel, TunnelConfig};
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::{FULL_ACCESS_USER, HUB_BASTION, PRIVATE_CLUSTER, PRIVATE_FQDN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pods_through_the_bastion_tunnel() {
    let sandbox = Sandbox::start().await.unwrap();
    let arm = sandbox.arm_client(FULL_ACCESS_USER).unwrap();

    // 1. The cluster, and its Bastion found without being named (hub-spoke peering).
    let cluster = arm
        .get_cluster(&ResourceId::parse(PRIVATE_CLUSTER).unwrap())
        .await
        .unwrap();
    assert!(cluster.is_private());
    let discovery = discover_bastion(&arm, &cluster, None).await.unwrap();
    assert!(
        discovery
            .bastion
            .id
            .is_same(&ResourceId::parse(HUB_BASTION).unwrap()),
        "discovered {} (searched {:?})",
        discovery.bastion.id,
        discovery.searched
    );
    let plan = discovery.bastion.native_client_support(Usage::Aks).unwrap();

    // 2. Pre-flight: SKU, native client, roles, network.
    let report =
        bastion_arm::preflight::run_aks_preflight(&arm, &cluster, &discovery.bastion, false).await;
    assert!(report.passed(), "{}", report.render_text());

    // 3. Credentials, whose server is the private FQDN.
    let yaml = fetch_kubeconfig(&arm, &cluster, false, None).await.unwrap();
    let mut kubeconfig = Kubeconfig::parse(&yaml).unwrap();

    // 4. The tunnel: bound once, before the kubeconfig is written.
    let mut config = TunnelConfig::new(
        Endpoint::parse(&plan.host).unwrap(),
        Target::resource(cluster.id.as_str(), 443).unwrap(),
    );
    config.kind = plan.kind;
    config.http.extra_root_ca_pem = Some(sandbox.ca_pem().into_bytes());
    config.http.resolve = sandbox.resolve();
    let credential = Arc::new(StaticTokenCredential::from_jwt(sandbox.default_token()));
    let tunnel = Tunnel::new(config, credential).unwrap();
    let listener = LocalListener::bind_loopback(0).await.unwrap();
    let port = listener.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = {
        let tunnel = tunnel.clone();
        tokio::spawn(async move {
            tunnel
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        })
    };

    // 5. The kubeconfig for the tunnel: localhost, with tls-server-name = the private FQDN.
    kubeconfig
        .point_at_tunnel(ClusterSelector::CurrentContext, port)
        .unwrap();
    let cluster_name = kubeconfig
        .resolve_cluster(ClusterSelector::CurrentContext)
        .unwrap();
    assert_eq!(
        kubeconfig.server(&cluster_name),
        Some(format!("https://localhost:{port}/").as_str())
    );
    assert_eq!(
        kubeconfig.tls_server_name(&cluster_name),
        Some(PRIVATE_FQDN)
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    write_atomic(&path, &kubeconfig.to_yaml().unwrap()).unwrap();

    // 6. The real kubectl through the tunnel.
    let kubectl = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&path)
        .args(["get", "pods", "-A"])
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(60), kubectl).await {
        Ok(Ok(out)) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.status.success(), "kubectl failed: {text}");
            assert!(text.contains("coredns"), "{text}");
            assert!(text.contains("Running"), "{text}");
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "\n!!!!! kubectl IS NOT INSTALLED: checking with an HTTP client instead !!!!!\n"
            );
            let pods = http_get_pods_through_tunnel(&sandbox, port, &kubeconfig).await;
            assert!(pods.contains("coredns"), "{pods}");
        }
        Ok(Err(e)) => panic!("kubectl could not run: {e}"),
        Err(_) => panic!("kubectl did not finish within 60 s"),
    }
    assert!(
        sandbox.bastion().stats().tokens_issued >= 1,
        "kubectl must have gone through the Bastion"
    );

    // 7. Cleanup: every session deleted.
    let _ = stop.send(());
    let summary = tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(summary.undeleted_sessions, 0);
    assert_eq!(summary.failed, 0, "{summary:?}");
    let stats = sandbox.bastion().stats();
    assert_eq!(stats.live_sessions, 0, "{stats:?}");
    assert_eq!(stats.deletes, stats.tokens_issued);
}

/// `GET /api/v1/pods` through the tunnel with the kubeconfig's token, verifying the API
/// server's certificate for the private FQDN against the cluster CA.
async fn http_get_pods_through_tunnel(
    sandbox: &Sandbox,
    port: u16,
    kubeconfig: &Kubeconfig,
) -> String {
    let token = kubeconfig.as_value()["users"][0]["user"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = bastion_core::HttpsClient::new(bastion_core::HttpsConfig {
        extra_root_ca_pem: Some(sandbox.ca_pem().into_bytes()),
        resolve: vec![(PRIVATE_FQDN.to_owned(), "127.0.0.1".parse().unwrap())],
        ..Default::default()
    })
    .unwrap();
    let req = http::Request::get(format!("https://{PRIVATE_FQDN}:{port}/api/v1/pods"))
        .header("Authorization", format!("Bearer {token}"))
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    String::from_utf8_lossy(resp.body()).into_owned()
}
