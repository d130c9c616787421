//! End to end, the whole `az aks bastion` flow in-process: against the ARM emulator, resolve the
//! private cluster and discover its Bastion (hub VNet, another subscription), run the pre-flight
//! checks, fetch the user credentials, open a bastion-core tunnel through the Bastion emulator to
//! the Kubernetes API stand-in, rewrite the kubeconfig for the tunnel, and run the real
//! `kubectl get pods` with it. Afterwards no Bastion session is left.
//!
//! When kubectl is not installed the test says so loudly and makes the same request with an
//! HTTP client through the tunnel instead; under `CI=true` a missing kubectl fails the test.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bastion_arm::{
    ClusterSelector, Kubeconfig, ResourceId, Usage, discover_bastion, fetch_kubeconfig,
    run_aks_preflight,
};
use bastion_core::{HttpsConfig, LocalListener, StaticTokenCredential, Target, Tunnel};
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::{HUB_BASTION, PRIVATE_FQDN};
use common::{https_client, kubectl, sandbox_cluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pods_through_the_bastion_tunnel() {
    let sandbox = Sandbox::start().await.unwrap();

    // 1. The cluster, and its Bastion found without being named (hub-spoke peering).
    let (arm, cluster) = sandbox_cluster(&sandbox).await;
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
    let report = run_aks_preflight(&arm, &cluster, &discovery.bastion, false).await;
    assert!(report.passed(), "{}", report.render_text());

    // 3. Credentials, whose server is the private FQDN.
    let yaml = fetch_kubeconfig(&arm, &cluster, false, None).await.unwrap();
    let mut kubeconfig = Kubeconfig::parse(&yaml).unwrap();

    // 4. The tunnel: bound once, before the kubeconfig is written.
    let https = HttpsConfig {
        extra_root_ca_pem: Some(sandbox.ca_pem().into_bytes()),
        resolve: sandbox.resolve(),
        ..HttpsConfig::default()
    };
    let target = Target::resource(cluster.id.as_str(), 443).unwrap();
    let config = plan.tunnel_config(target, arm.scope(), https).unwrap();
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
    kubeconfig.write(&path).unwrap();

    // 6. The real kubectl through the tunnel.
    match kubectl(&path, &["get", "pods", "-A"]).await {
        Some((ok, text)) => {
            assert!(ok, "kubectl failed: {text}");
            assert!(text.contains("coredns"), "{text}");
            assert!(text.contains("Running"), "{text}");
        }
        None => {
            eprintln!(
                "\n!!!!! kubectl IS NOT INSTALLED: checking with an HTTP client instead !!!!!\n"
            );
            let pods = http_get_pods_through_tunnel(&sandbox, port, &kubeconfig).await;
            assert!(pods.contains("coredns"), "{pods}");
        }
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
    let access = kubeconfig.api_server_access().unwrap();
    assert_eq!(access.tls_server_name, PRIVATE_FQDN);
    let token = access.credentials.token.unwrap();
    let client = https_client(
        &sandbox.ca_pem(),
        vec![(PRIVATE_FQDN.to_owned(), "127.0.0.1".parse().unwrap())],
    );
    let req = http::Request::get(format!("https://{PRIVATE_FQDN}:{port}/api/v1/pods"))
        .header("Authorization", format!("Bearer {}", token.expose()))
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    String::from_utf8_lossy(resp.body()).into_owned()
}
