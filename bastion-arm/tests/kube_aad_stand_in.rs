//! The sandbox's AAD cluster: ARM reports it with `aadProfile` and hands out kubelogin (never a
//! token) as its user credentials; its API server accepts only AKS AAD tokens (audience
//! `6dae42f8-…`) and refuses ARM tokens with 401; the identity emulator mints the audience of
//! the scope it is asked for, for each credential that speaks HTTP.

use crate::common;

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use bastion_arm::{
    AKS_AAD_SCOPE, AKS_AAD_SERVER_ID, Cloud, Kubeconfig, ResourceId, fetch_kubeconfig,
};
use bastion_core::HttpsClient;
use bastion_emulator::sandbox::{
    AAD_CLUSTER, AAD_PRIVATE_FQDN, FULL_ACCESS_USER, SP_CLIENT_ID, SP_CLIENT_SECRET, TENANT,
};
use bastion_emulator::{GrantKind, Sandbox, TestClaims, jwt};

async fn pods(client: &HttpsClient, port: u16, token: &str) -> u16 {
    let req = http::Request::builder()
        .uri(format!(
            "https://{AAD_PRIVATE_FQDN}:{port}/api/v1/namespaces/default/pods"
        ))
        .header("authorization", format!("Bearer {token}"))
        .body(bytes::Bytes::new())
        .unwrap();
    client.send(req).await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aad_cluster_takes_aks_tokens_only() {
    let sandbox = Sandbox::start().await.unwrap();
    let client = common::https_client(&sandbox.ca_pem(), sandbox.resolve());
    let port = sandbox.aad_kube().addr().port();

    // ARM describes the cluster as AAD-managed with Azure RBAC, local accounts off.
    let arm = sandbox.arm_client(FULL_ACCESS_USER).unwrap();
    let id = ResourceId::parse(AAD_CLUSTER).unwrap();
    let cluster = arm.get_cluster(&id).await.unwrap();
    let doc = sandbox.arm().fixtures().find(&id).cloned().unwrap();
    assert_eq!(doc["properties"]["aadProfile"]["managed"], true, "{doc}");
    assert_eq!(doc["properties"]["aadProfile"]["enableAzureRBAC"], true);
    // Its user credentials are kubelogin with devicecode, as AKS hands them out.
    let fetched = fetch_kubeconfig(&arm, &cluster, false, None).await.unwrap();
    let kc = Kubeconfig::parse(&fetched).unwrap();
    assert_eq!(kc.kubelogin_users(), ["clusterUser_aks-rg_aadaks"]);
    assert_eq!(kc.kubelogin_mode().as_deref(), Some("devicecode"));
    assert!(fetched.contains(AKS_AAD_SERVER_ID), "{fetched}");
    assert!(fetched.contains(TENANT), "{fetched}");

    let aks = TestClaims::new(TENANT, "alice")
        .audience(AKS_AAD_SERVER_ID)
        .mint();
    assert_eq!(pods(&client, port, &aks).await, 200);
    // An ARM token is refused, and so are an expired AKS token and one of another tenant.
    let arm_token = sandbox.default_token();
    assert_eq!(pods(&client, port, &arm_token).await, 401);
    let expired = TestClaims::new(TENANT, "alice")
        .audience(AKS_AAD_SERVER_ID)
        .expired()
        .mint();
    assert_eq!(pods(&client, port, &expired).await, 401);
    let other_tenant = TestClaims::new("44444444-4444-4444-4444-444444444444", "eve")
        .audience(AKS_AAD_SERVER_ID)
        .mint();
    assert_eq!(pods(&client, port, &other_tenant).await, 401);
    let log = sandbox.aad_kube().requests();
    let refused: Vec<_> = log.iter().filter_map(|r| r.refused.clone()).collect();
    assert_eq!(refused.len(), 3, "{log:?}");
    assert!(refused[0].contains("not the AKS AAD server"), "{refused:?}");
    // And the static-token clusters do not take an AAD token.
    let kube_port = sandbox.kube_addr().port();
    let req = http::Request::builder()
        .uri(format!(
            "https://{}:{kube_port}/api/v1/nodes",
            bastion_emulator::sandbox::PRIVATE_FQDN
        ))
        .header("authorization", format!("Bearer {aks}"))
        .body(bytes::Bytes::new())
        .unwrap();
    assert_eq!(client.send(req).await.unwrap().status().as_u16(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_emulator_mints_the_audience_of_the_scope() {
    let sandbox = Sandbox::start().await.unwrap();
    let cloud = Cloud::Custom {
        arm_endpoint: sandbox.arm_endpoint(),
        scope: Cloud::AzureCloud.scope(),
        authority: Some(sandbox.identity().authority()),
    };
    let http: Arc<dyn azure_core::http::HttpClient> =
        Arc::new(sandbox.arm_client_config().transport().unwrap());
    let env: std::collections::HashMap<String, String> = sandbox
        .identity_env("client-secret", None)
        .into_iter()
        .collect();
    assert_eq!(env["AZURE_CLIENT_ID"], SP_CLIENT_ID);
    assert_eq!(env["AZURE_CLIENT_SECRET"], SP_CLIENT_SECRET);
    // The client-secret credential through the library, without the process environment:
    // azure_identity's own credential, pointed at the emulator's authority.
    let sp = azure_identity::ClientSecretCredential::new(
        TENANT,
        SP_CLIENT_ID.to_owned(),
        azure_core::credentials::Secret::new(SP_CLIENT_SECRET),
        Some(azure_identity::ClientSecretCredentialOptions {
            client_options: azure_core::http::ClientOptions {
                transport: Some(azure_core::http::Transport::new(http.clone())),
                cloud: Some(Arc::new(cloud.cloud_configuration())),
                ..Default::default()
            },
        }),
    )
    .unwrap();
    let aks = sp.get_token(&[AKS_AAD_SCOPE], None).await.unwrap();
    let claims = jwt::decode(aks.token.secret()).unwrap();
    assert!(jwt::is_aks_audience(&claims.aud), "{}", claims.aud);
    let arm = sp.get_token(&[&cloud.scope()], None).await.unwrap();
    let claims = jwt::decode(arm.token.secret()).unwrap();
    assert!(jwt::is_arm_audience(&claims.aud), "{}", claims.aud);
    // A wrong secret is refused.
    let bad = azure_identity::ClientSecretCredential::new(
        TENANT,
        SP_CLIENT_ID.to_owned(),
        azure_core::credentials::Secret::new("wrong"),
        Some(azure_identity::ClientSecretCredentialOptions {
            client_options: azure_core::http::ClientOptions {
                transport: Some(azure_core::http::Transport::new(http.clone())),
                cloud: Some(Arc::new(cloud.cloud_configuration())),
                ..Default::default()
            },
        }),
    )
    .unwrap();
    let err = bad.get_token(&[AKS_AAD_SCOPE], None).await.unwrap_err();
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
    let log = sandbox.identity().requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 401],
        "{log:?}"
    );
    assert!(log.iter().all(|r| r.kind == GrantKind::ClientSecret));
}
