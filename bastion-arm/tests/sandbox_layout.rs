//! The sandbox serves a consistent hub-spoke world: the hub Bastion's dnsName reaches the
//! data-plane emulator, the private cluster's kubeconfig is accepted by the Kubernetes
//! stand-in, and the restricted user cannot read the Bastion.

use crate::common;

use bastion_emulator::Sandbox;
use bastion_emulator::sandbox::*;
use common::{https_client, id, sandbox_kubeconfig};

#[tokio::test]
async fn hub_spoke_layout_is_consistent() {
    let sandbox = Sandbox::start().await.unwrap();
    let arm = sandbox.arm_client(FULL_ACCESS_USER).unwrap();

    let hub = arm.get_bastion(&id(HUB_BASTION)).await.unwrap();
    assert_eq!(
        hub.properties.dns_name.as_deref(),
        sandbox.bastion_endpoint(HUB_BASTION).as_deref()
    );
    assert!(hub.properties.enable_tunneling);
    let pip = arm
        .get_public_ip(hub.public_ip_id().unwrap())
        .await
        .unwrap();
    assert_eq!(pip.properties.ip_address.as_deref(), Some(HUB_BASTION_IP));

    let lab = arm
        .list_bastions_in_group(HUB_SUBSCRIPTION, "lab-rg")
        .await
        .unwrap();
    let skus: Vec<String> = lab
        .iter()
        .map(|b| b.sku().map(|s| s.to_string()).unwrap_or_default())
        .collect();
    assert_eq!(skus, ["Basic", "Standard", "Developer", "Premium"]);

    let cluster = arm.get_cluster(&id(PRIVATE_CLUSTER)).await.unwrap();
    assert_eq!(cluster.id.as_str(), PRIVATE_CLUSTER);
    assert!(cluster.is_private());
    let spoke = arm.get_vnet(&cluster.vnet_ids()[0]).await.unwrap();
    assert_eq!(spoke.connected_peers(), vec![&id(HUB_VNET)]);

    let zones = arm
        .list_private_dns_zones(SPOKE_SUBSCRIPTION, "MC_aks-rg_myaks_eastus")
        .await
        .unwrap();
    assert_eq!(zones.len(), 1);
    let zone = id(zones[0]["id"].as_str().unwrap());
    let links = arm.list_zone_links(&zone).await.unwrap();
    assert_eq!(links.len(), 2);

    // The restricted user may use the cluster but cannot read the Bastion.
    let bob = sandbox.arm_client(NO_BASTION_READER).unwrap();
    bob.list_cluster_user_credential(&id(PRIVATE_CLUSTER), None)
        .await
        .unwrap();
    let err = bob.get_bastion(&id(HUB_BASTION)).await.unwrap_err();
    assert!(err.is_authorization_failed(), "{err}");
}

#[tokio::test]
async fn kubeconfig_from_arm_is_accepted_by_the_kubernetes_stand_in() {
    let sandbox = Sandbox::start().await.unwrap();
    let access = sandbox_kubeconfig(&sandbox)
        .await
        .api_server_access()
        .unwrap();
    assert_eq!(
        access.server.as_str(),
        format!("https://{PRIVATE_FQDN}/"),
        "the private FQDN, on port 443"
    );
    assert_eq!(access.tls_server_name, PRIVATE_FQDN);
    assert_eq!(
        access.certificate_authority.as_deref(),
        Some(sandbox.ca_pem().as_bytes())
    );
    let token = access.credentials.token.unwrap();

    // Straight to the stand-in (the tunnel would carry this to the same place).
    let client = https_client(&sandbox.ca_pem(), sandbox.resolve());
    let req = http::Request::builder()
        .uri(format!(
            "https://{PRIVATE_FQDN}:{}/api/v1/nodes",
            sandbox.kube_addr().port()
        ))
        .header("authorization", format!("Bearer {}", token.expose()))
        .body(bytes::Bytes::new())
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        sandbox.kube().requests()[0].user.as_deref(),
        Some("clusterUser_aks-rg_myaks")
    );
}
