//! `az aks bastion` written against the libraries: find the cluster and its Bastion, check
//! everything up front, fetch the credentials, bind the local port, write a kubeconfig that
//! points at it, serve the tunnel, run `kubectl get pods`, and clean up.
//!
//! ```text
//! cargo run -p bastion-examples --example aks_private_cluster
//! # against Azure (Azure CLI sign-in):
//! cargo run -p bastion-examples --example aks_private_cluster -- SUBSCRIPTION RESOURCE_GROUP CLUSTER
//! ```
//!
//! Without arguments it starts the built-in sandbox and uses its private cluster `myaks`.

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use bastion_arm::{
    ArmClient, ArmClientConfig, Cloud, ClusterSelector, CredentialKind, Kubeconfig, ResourceId,
    Usage, build_credential, discover_bastion, fetch_kubeconfig, run_aks_preflight,
};
use bastion_core::{HttpsConfig, LocalListener, StaticTokenCredential, Target, Tunnel};
use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::SPOKE_SUBSCRIPTION;
use bastion_examples::{Error, init_tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_tracing("warn");
    let args: Vec<String> = std::env::args().skip(1).collect();

    // 0. Where ARM is, and who we are.
    let mut sandbox = None;
    let (arm_config, credential, cluster_id) = match args.as_slice() {
        [] => {
            let s = Sandbox::start().await?;
            eprintln!("No arguments: using the built-in sandbox's private cluster myaks.");
            let config = s.arm_client_config();
            let cred: Arc<dyn TokenCredential> =
                Arc::new(StaticTokenCredential::from_jwt(s.default_token()));
            let id = ResourceId::for_resource(
                SPOKE_SUBSCRIPTION,
                "aks-rg",
                "Microsoft.ContainerService",
                "managedClusters",
                "myaks",
            )?;
            sandbox = Some(s);
            (config, cred, id)
        }
        [sub, rg, name] => {
            let config = ArmClientConfig::for_cloud(Cloud::AzureCloud);
            let transport = config.transport()?;
            let cred = build_credential(
                &CredentialKind::DeveloperTools,
                &Cloud::AzureCloud,
                Arc::new(transport),
            )?;
            let id = ResourceId::for_resource(
                sub,
                rg,
                "Microsoft.ContainerService",
                "managedClusters",
                name,
            )?;
            (config, cred, id)
        }
        _ => return Err("usage: aks_private_cluster [SUBSCRIPTION RESOURCE_GROUP CLUSTER]".into()),
    };
    // The data plane trusts what ARM trusts and resolves what ARM resolves.
    let https = HttpsConfig {
        extra_root_ca_pem: arm_config.https.extra_root_ca_pem.clone(),
        resolve: arm_config.https.resolve.clone(),
        ..Default::default()
    };
    let arm = ArmClient::new(arm_config, Arc::clone(&credential))?;

    // 1. The cluster, then its Bastion (by the cluster's network, hub/spoke included).
    let cluster = arm.get_cluster(&cluster_id).await?;
    let found = discover_bastion(&arm, &cluster, None).await?;
    let bastion = found.bastion;
    println!(
        "cluster {} -> Bastion {} ({})",
        cluster.name, bastion.name, found.source
    );

    // 2. The gate and the pre-flight checks, before anything is written.
    let plan = bastion.native_client_support(Usage::Aks)?;
    let report = run_aks_preflight(&arm, &cluster, &bastion, false).await;
    print!("{}", report.render_text());
    if !report.passed() {
        return Err("pre-flight checks failed; see the FAIL rows above".into());
    }

    // 3. Bind the local port once and hold it: the kubeconfig names this exact port.
    let listener = LocalListener::bind_loopback(0).await?;
    let port = listener.port();

    // 4. Credentials, rewritten for the tunnel (server https://localhost:PORT/,
    //    tls-server-name = the private FQDN, CA kept).
    let mut kubeconfig = Kubeconfig::parse(&fetch_kubeconfig(&arm, &cluster, false, None).await?)?;
    kubeconfig.point_at_tunnel(ClusterSelector::CurrentContext, port)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("config");
    kubeconfig.write(&path)?;
    println!("kubeconfig: {}", path.display());

    // 5. The tunnel: cluster id as ARM returned it, port 443.
    let target = Target::resource(cluster.id.as_str(), 443)?;
    let config = plan.tunnel_config(target, arm.scope(), https)?;
    let tunnel = Tunnel::new(config, credential)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let tunnel = tunnel.clone();
        async move {
            tunnel
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
        }
    });
    println!("Tunnel is ready, connect on port {port}");

    // 6. kubectl through the tunnel (the listener is bound, so it is ready: no sleeps).
    match tokio::process::Command::new("kubectl")
        .args(["get", "pods"])
        .env("KUBECONFIG", &path)
        .status()
        .await
    {
        Ok(status) => println!("kubectl exited with {status}"),
        Err(e) => println!(
            "kubectl is not available ({e}); try: KUBECONFIG={} kubectl get pods",
            path.display()
        ),
    }

    // 7. Cleanup: stop accepting, close every WebSocket, DELETE every session, remove the file.
    let _ = stop.send(());
    let summary = server.await?;
    drop(dir);
    println!(
        "closed: {} connection(s), {} session(s) left undeleted",
        summary.accepted, summary.undeleted_sessions
    );
    if let Some(s) = sandbox {
        s.shutdown().await;
    }
    Ok(())
}
