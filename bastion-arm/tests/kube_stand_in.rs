//! The Kubernetes API stand-in serves discovery, lists and server-side tables over HTTPS for
//! the cluster's FQDNs, and only to the bearer tokens it was given.

use crate::common;

use std::net::{IpAddr, Ipv4Addr};

use bastion_core::HttpsClient;
use bastion_emulator::TestCa;
use bastion_emulator::{KubeApiServer, KubeApiServerConfig};
use serde_json::Value;

const FQDN: &str = "myaks-dns.privatelink.eastus.azmk8s.io";

async fn get(
    client: &HttpsClient,
    port: u16,
    path: &str,
    token: Option<&str>,
    accept: &str,
) -> (u16, Value) {
    let mut req = http::Request::builder()
        .uri(format!("https://{FQDN}:{port}{path}"))
        .header("accept", accept);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = client
        .send(req.body(bytes::Bytes::new()).unwrap())
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body()).unwrap(),
    )
}

#[tokio::test]
async fn lists_tables_and_authentication() {
    let ca = TestCa::permitting(&[FQDN]).unwrap();
    let kube = KubeApiServer::start(
        &ca,
        KubeApiServerConfig {
            host_names: vec![FQDN.into()],
            ..KubeApiServerConfig::default()
        },
    )
    .await
    .unwrap();
    kube.accept_token("user-token", "clusterUser");
    let client = common::https_client(
        &ca.ca_pem(),
        vec![(FQDN.into(), IpAddr::V4(Ipv4Addr::LOCALHOST))],
    );
    let port = kube.addr().port();

    let (status, body) = get(&client, port, "/api/v1/nodes", None, "application/json").await;
    assert_eq!(status, 401);
    assert_eq!(body["reason"], "Unauthorized");
    let (status, _) = get(
        &client,
        port,
        "/api/v1/nodes",
        Some("wrong"),
        "application/json",
    )
    .await;
    assert_eq!(status, 401);

    let (status, body) = get(
        &client,
        port,
        "/api/v1/nodes",
        Some("user-token"),
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "NodeList");
    assert_eq!(body["items"].as_array().unwrap().len(), 3);

    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (status, body) = get(
        &client,
        port,
        "/api/v1/namespaces/kube-system/pods?limit=500",
        Some("user-token"),
        table,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "Table");
    assert_eq!(body["columnDefinitions"][0]["name"], "Name");
    assert_eq!(body["rows"].as_array().unwrap().len(), 3);
    assert_eq!(body["rows"][0]["object"]["kind"], "PartialObjectMetadata");

    let (_, body) = get(
        &client,
        port,
        "/api/v1",
        Some("user-token"),
        "application/json",
    )
    .await;
    assert!(
        body["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods")
    );

    let log = kube.requests();
    assert_eq!(log.len(), 5);
    assert_eq!(log[2].user.as_deref(), Some("clusterUser"));
}
