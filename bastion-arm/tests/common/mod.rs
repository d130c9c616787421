//! Shared fixtures for the integration tests: a small world served by the ARM emulator over
//! real HTTPS, clients for its principals, and helpers for the sandbox's private cluster.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bastion_arm::{ArmClient, ArmClientConfig, Kubeconfig, ResourceId, fetch_kubeconfig};
use bastion_core::{HttpsClient, HttpsConfig, StaticTokenCredential};
use bastion_emulator::jwt::TestClaims;
use bastion_emulator::sandbox::{FULL_ACCESS_USER, PRIVATE_CLUSTER};
use bastion_emulator::{ArmEmulator, ArmEmulatorConfig, Fixtures, Sandbox, TestCa};
use serde_json::{Value, json};

pub const TENANT: &str = "33333333-3333-3333-3333-333333333333";
pub const OTHER_TENANT: &str = "44444444-4444-4444-4444-444444444444";
pub const SUB: &str = "11111111-1111-1111-1111-111111111111";
/// Owner of the subscription.
pub const ALICE: &str = "aaaaaaaa-0000-0000-0000-000000000001";
/// Reader on `aks-rg` only.
pub const BOB: &str = "bbbbbbbb-0000-0000-0000-000000000002";

pub const CLUSTER: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks";
pub const PRIVATE_FQDN: &str =
    "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io";
pub const PUBLIC_FQDN: &str = "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io";

pub fn bastion_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/{name}"
    )
}

pub fn bastion_doc(name: &str) -> Value {
    json!({
        "name": name, "id": bastion_id(name), "type": "Microsoft.Network/bastionHosts",
        "location": "eastus", "sku": { "name": "Standard" },
        "properties": { "provisioningState": "Succeeded", "dnsName": format!("bst-{name}.bastion.test"),
                        "enableTunneling": true, "ipConfigurations": [] }
    })
}

pub fn cluster_doc(disable_local_accounts: bool) -> Value {
    json!({
        "id": CLUSTER, "name": "myaks", "type": "Microsoft.ContainerService/ManagedClusters",
        "location": "eastus",
        "properties": {
            "provisioningState": "Succeeded", "fqdn": PUBLIC_FQDN, "privateFQDN": PRIVATE_FQDN,
            "apiServerAccessProfile": { "enablePrivateCluster": true, "enablePrivateClusterPublicFQDN": true },
            "nodeResourceGroup": "MC_aks-rg_myaks_eastus",
            "disableLocalAccounts": disable_local_accounts
        }
    })
}

/// Five Bastions in hub-rg, a private cluster in aks-rg, Alice (Owner on the subscription) and
/// Bob (Reader on aks-rg).
pub fn fixtures() -> Fixtures {
    let mut f = Fixtures::new();
    f.subscription(SUB, TENANT);
    f.resource_group(SUB, "hub-rg").unwrap();
    for i in 1..=5 {
        f.resource(bastion_doc(&format!("bastion-{i}"))).unwrap();
    }
    f.resource(cluster_doc(true)).unwrap();
    f.principal(ALICE, TENANT, Some("alice@contoso.test"));
    f.principal(BOB, TENANT, Some("bob@contoso.test"));
    f.assign_role(ALICE, &format!("/subscriptions/{SUB}"), "Owner")
        .unwrap();
    f.assign_role(
        BOB,
        &format!("/subscriptions/{SUB}/resourceGroups/aks-rg"),
        "Reader",
    )
    .unwrap();
    f
}

pub async fn start() -> ArmEmulator {
    start_with(fixtures(), ArmEmulatorConfig::default()).await
}

pub async fn start_with(fixtures: Fixtures, config: ArmEmulatorConfig) -> ArmEmulator {
    let ca = TestCa::new().unwrap();
    ArmEmulator::start_with(&ca, fixtures, config)
        .await
        .unwrap()
}

pub fn client_with_token(emu: &ArmEmulator, token: String) -> ArmClient {
    client_with(emu, token, emu.client_config())
}

pub fn client_with(emu: &ArmEmulator, token: String, config: ArmClientConfig) -> ArmClient {
    let _ = emu;
    ArmClient::new(config, Arc::new(StaticTokenCredential::from_jwt(token))).unwrap()
}

pub fn client(emu: &ArmEmulator, oid: &str) -> ArmClient {
    client_with_token(emu, emu.token_for(oid).unwrap())
}

pub fn token(tenant: &str, oid: &str) -> String {
    TestClaims::new(tenant, oid).mint()
}

pub fn id(text: &str) -> ResourceId {
    ResourceId::parse(text).unwrap()
}

/// Sends one raw request to the emulator (no retries, no credential): for checking what the
/// emulator itself answers.
pub async fn raw(
    emu: &ArmEmulator,
    method: &str,
    path_and_query: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let client = https_client(emu.ca_pem(), emu.resolve());
    let url = format!(
        "{}{}",
        emu.endpoint().as_str().trim_end_matches('/'),
        path_and_query
    );
    let mut req = http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .send(req.body(bytes::Bytes::new()).unwrap())
        .await
        .unwrap();
    let body = serde_json::from_slice(resp.body()).unwrap_or(Value::Null);
    (resp.status().as_u16(), body)
}

/// An HTTPS client that trusts `ca_pem`, connects as `resolve` says and never retries.
pub fn https_client(ca_pem: &str, resolve: Vec<(String, IpAddr)>) -> HttpsClient {
    HttpsClient::new(HttpsConfig {
        extra_root_ca_pem: Some(ca_pem.as_bytes().to_vec()),
        resolve,
        retry: bastion_core::RetryPolicy::none(),
        ..HttpsConfig::default()
    })
    .unwrap()
}

/// The sandbox's private cluster, read by the full-access user.
pub async fn sandbox_cluster(sandbox: &Sandbox) -> (ArmClient, bastion_arm::model::ManagedCluster) {
    let arm = sandbox.arm_client(FULL_ACCESS_USER).unwrap();
    let cluster = arm.get_cluster(&id(PRIVATE_CLUSTER)).await.unwrap();
    (arm, cluster)
}

/// The user kubeconfig of the sandbox's private cluster, as ARM hands it out (its server is the
/// private FQDN).
pub async fn sandbox_kubeconfig(sandbox: &Sandbox) -> Kubeconfig {
    let (arm, cluster) = sandbox_cluster(sandbox).await;
    let yaml = fetch_kubeconfig(&arm, &cluster, false, None).await.unwrap();
    Kubeconfig::parse(&yaml).unwrap()
}

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`): there a missing
/// kubectl fails the run instead of being skipped or replaced by an HTTP client.
pub fn in_ci() -> bool {
    std::env::var("CI")
        .is_ok_and(|v| !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false"))
}

/// Runs the real `kubectl` with `kubeconfig` (within 60 s): whether it succeeded, and its
/// stdout and stderr. `None` when kubectl is not installed, which panics under `CI=true`.
pub async fn kubectl(kubeconfig: &Path, args: &[&str]) -> Option<(bool, String)> {
    let child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(Duration::from_secs(60), child)
        .await
        .expect("kubectl did not finish within 60 s")
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !in_ci(),
                "kubectl is not installed, and CI is set: install kubectl (see .ci/run)"
            );
            return None;
        }
        Err(e) => panic!("kubectl could not run: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}
