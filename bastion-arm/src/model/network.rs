//! Networking resources as ARM returns them: virtual networks with their peerings, public IP
//! addresses and private DNS zone links.

use serde::{Deserialize, Serialize};

use super::SubResource;
use crate::resource_id::{ResourceId, lenient_id, null_as_default};

/// A virtual network.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualNetwork {
    /// The VNet id.
    pub id: ResourceId,
    /// The VNet name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Azure region.
    #[serde(default, deserialize_with = "null_as_default")]
    pub location: String,
    /// `properties`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: VirtualNetworkProperties,
}

/// `properties` of a VNet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualNetworkProperties {
    /// Address space.
    #[serde(deserialize_with = "null_as_default")]
    pub address_space: AddressSpace,
    /// Subnets.
    #[serde(deserialize_with = "null_as_default")]
    pub subnets: Vec<Subnet>,
    /// Peerings from this VNet.
    #[serde(deserialize_with = "null_as_default")]
    pub virtual_network_peerings: Vec<VirtualNetworkPeering>,
}

/// `addressSpace`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AddressSpace {
    /// CIDR prefixes.
    #[serde(deserialize_with = "null_as_default")]
    pub address_prefixes: Vec<String>,
}

/// A subnet reference inside a VNet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subnet {
    /// Subnet id.
    #[serde(deserialize_with = "lenient_id")]
    pub id: Option<ResourceId>,
    /// Subnet name.
    pub name: Option<String>,
}

/// One peering of a VNet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualNetworkPeering {
    /// Peering name.
    pub name: Option<String>,
    /// `properties`.
    #[serde(deserialize_with = "null_as_default")]
    pub properties: PeeringProperties,
}

/// `properties` of a peering.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PeeringProperties {
    /// `Initiated`, `Connected` or `Disconnected`.
    pub peering_state: Option<String>,
    /// The other VNet.
    pub remote_virtual_network: Option<SubResource>,
}

/// A public IP address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublicIpAddress {
    /// The PIP id.
    pub id: ResourceId,
    /// The PIP name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// `properties`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: PublicIpProperties,
}

/// `properties` of a public IP.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PublicIpProperties {
    /// The address (absent while a dynamic IP is unallocated).
    pub ip_address: Option<String>,
    /// `Static` or `Dynamic`.
    #[serde(rename = "publicIPAllocationMethod")]
    pub public_ip_allocation_method: Option<String>,
}

/// A private DNS zone's virtual network link.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualNetworkLink {
    /// The link id.
    #[serde(deserialize_with = "lenient_id")]
    pub id: Option<ResourceId>,
    /// The link name.
    pub name: Option<String>,
    /// `properties`.
    #[serde(deserialize_with = "null_as_default")]
    pub properties: VirtualNetworkLinkProperties,
}

/// `properties` of a VNet link.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct VirtualNetworkLinkProperties {
    /// The linked VNet.
    pub virtual_network: Option<SubResource>,
    /// `InProgress` or `Completed`.
    pub virtual_network_link_state: Option<String>,
    /// Auto-registration.
    pub registration_enabled: Option<bool>,
    /// Provisioning state.
    pub provisioning_state: Option<String>,
}

impl VirtualNetwork {
    /// The VNets this one has a `Connected` peering to.
    pub fn connected_peers(&self) -> Vec<&ResourceId> {
        self.properties
            .virtual_network_peerings
            .iter()
            .filter(|p| {
                p.properties
                    .peering_state
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("Connected"))
            })
            .filter_map(|p| p.properties.remote_virtual_network.as_ref().map(|r| &r.id))
            .collect()
    }

    /// The state of this VNet's peering to `remote`, if there is one.
    pub fn peering_state_to(&self, remote: &ResourceId) -> Option<&str> {
        self.properties
            .virtual_network_peerings
            .iter()
            .find(|p| {
                p.properties
                    .remote_virtual_network
                    .as_ref()
                    .is_some_and(|r| &r.id == remote)
            })
            .map(|p| p.properties.peering_state.as_deref().unwrap_or("unknown"))
    }
}
