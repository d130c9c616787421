//! Fixtures shared by the discovery and pre-flight tests.

use serde_json::json;

use crate::model::{BastionHost, ManagedCluster, VirtualNetwork};
use crate::resource_id::ResourceId;
use crate::testing::FakeArm;

pub const CLUSTER_SUB: &str = "22222222-2222-2222-2222-222222222222";
pub const HUB_SUB: &str = "11111111-1111-1111-1111-111111111111";
pub const NRG: &str = "MC_aks-rg_myaks_eastus";

pub fn rid(s: &str) -> ResourceId {
    s.parse().unwrap()
}

/// Runs a future to completion on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

pub fn vnet_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}"
    )
}

pub fn spoke() -> String {
    vnet_id(CLUSTER_SUB, "spoke-rg", "spoke-vnet")
}

pub fn hub() -> String {
    vnet_id(HUB_SUB, "hub-rg", "hub-vnet")
}

/// The spoke (cluster subscription) and the hub (other subscription), peered both ways.
pub fn hub_and_spoke() -> FakeArm {
    FakeArm {
        vnets: vec![
            vnet(&spoke(), &[(&hub(), "Connected")]),
            vnet(&hub(), &[(&spoke(), "Connected")]),
        ],
        ..FakeArm::default()
    }
}

pub fn cluster(private: bool) -> ManagedCluster {
    let mut v = json!({
      "id": format!("/subscriptions/{CLUSTER_SUB}/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks"),
      "name": "myaks", "location": "eastus", "sku": {"name": "Base", "tier": "Free"},
      "properties": {
        "fqdn": "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io",
        "agentPoolProfiles": [{"name": "nodepool1", "vnetSubnetID": format!("{}/subnets/aks-nodes", spoke())}],
        "apiServerAccessProfile": {},
        "nodeResourceGroup": NRG,
        "disableLocalAccounts": false
      }
    });
    if private {
        v["properties"]["privateFQDN"] = json!(
            "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io"
        );
        v["properties"]["apiServerAccessProfile"] = json!({
            "enablePrivateCluster": true, "enablePrivateClusterPublicFQDN": true, "privateDNSZone": "system"
        });
    }
    serde_json::from_value(v).unwrap()
}

pub fn bastion(
    sub: &str,
    rg: &str,
    name: &str,
    vnet: &str,
    sku: &str,
    tunneling: bool,
) -> BastionHost {
    serde_json::from_value(json!({
        "id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/bastionHosts/{name}"),
        "name": name, "location": "eastus", "sku": {"name": sku},
        "properties": {
            "provisioningState": "Succeeded",
            "dnsName": format!("bst-{name}.bastion.azure.com"),
            "enableTunneling": tunneling,
            "ipConfigurations": [{"name": "ipconf", "properties": {
                "subnet": {"id": format!("{vnet}/subnets/AzureBastionSubnet")},
                "publicIPAddress": {"id": format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/publicIPAddresses/{name}-pip")}
            }}]
        }
    }))
    .unwrap()
}

/// `hub-bastion` in the hub VNet.
pub fn hub_bastion(sku: &str, tunneling: bool) -> BastionHost {
    bastion(HUB_SUB, "hub-rg", "hub-bastion", &hub(), sku, tunneling)
}

/// A Standard Bastion with native client support in the spoke VNet, in resource group `rg` of
/// the cluster subscription.
pub fn spoke_bastion(rg: &str, name: &str) -> BastionHost {
    bastion(CLUSTER_SUB, rg, name, &spoke(), "Standard", true)
}

pub fn vnet(id: &str, peers: &[(&str, &str)]) -> VirtualNetwork {
    let peerings: Vec<_> = peers
        .iter()
        .map(|(r, s)| json!({"name": "p", "properties": {"peeringState": s, "remoteVirtualNetwork": {"id": r}}}))
        .collect();
    serde_json::from_value(json!({"id": id, "properties": {"virtualNetworkPeerings": peerings}}))
        .unwrap()
}
