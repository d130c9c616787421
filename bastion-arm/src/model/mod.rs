//! The ARM resources bastion reads, as serde data types: what ARM returns, with unknown fields
//! ignored and absent (or `null`) ones defaulted. The checks and decisions over them live in the
//! modules that make them.

mod bastion;
mod cluster;
mod network;
mod permission;

use serde::{Deserialize, Serialize};

use crate::resource_id::ResourceId;

pub use bastion::{
    BastionHost, BastionIpConfiguration, BastionIpConfigurationProperties, BastionProperties,
    BastionSku, IpRule, NetworkAcls, Sku,
};
pub use cluster::{
    AadProfile, AgentPoolProfile, ApiServerAccessProfile, BastionProfile, ClusterProperties,
    ClusterSku, CredentialResult, CredentialResults, ManagedCluster, NetworkProfile,
    NodeResourceGroupProfile, PowerState,
};
pub use network::{
    AddressSpace, PeeringProperties, PublicIpAddress, PublicIpProperties, Subnet, VirtualNetwork,
    VirtualNetworkLink, VirtualNetworkLinkProperties, VirtualNetworkPeering,
    VirtualNetworkProperties,
};
pub use permission::{Permission, PermissionPage};

/// A reference to another resource: `{"id": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubResource {
    /// The referenced resource id.
    pub id: ResourceId,
}

/// A resource's display name: `name`, else the last segment of `id`.
fn display_name<'a>(name: &'a str, id: &'a ResourceId) -> &'a str {
    if name.is_empty() { id.name() } else { name }
}
