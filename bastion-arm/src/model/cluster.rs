//! `Microsoft.ContainerService/managedClusters` as ARM returns it, and the result of its
//! credential actions.

use serde::{Deserialize, Serialize};

use crate::resource_id::{ResourceId, lenient_id, null_as_default};

/// A managed cluster as returned by ARM. Unknown fields are ignored; absent ones take defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    /// The ARM id, as returned (lowercase `resourcegroups`); the tunnel target.
    pub id: ResourceId,
    /// Cluster name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Azure region.
    #[serde(default, deserialize_with = "null_as_default")]
    pub location: String,
    /// `sku` (`Base` | `Automatic`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<ClusterSku>,
    /// `properties`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: ClusterProperties,
}

/// `sku` of a managed cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterSku {
    /// `Base` or `Automatic`.
    pub name: Option<String>,
    /// `Free`, `Standard`, `Premium`.
    pub tier: Option<String>,
}

/// `properties` of a managed cluster.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterProperties {
    /// `Succeeded`, `Updating`, …
    pub provisioning_state: Option<String>,
    /// `powerState.code`: `Running` or `Stopped`.
    pub power_state: Option<PowerState>,
    /// Kubernetes version.
    pub kubernetes_version: Option<String>,
    /// DNS prefix.
    pub dns_prefix: Option<String>,
    /// Public FQDN (absent when the public FQDN of a private cluster is disabled).
    pub fqdn: Option<String>,
    /// Private FQDN of a private cluster.
    #[serde(rename = "privateFQDN")]
    pub private_fqdn: Option<String>,
    /// Agent pools.
    #[serde(deserialize_with = "null_as_default")]
    pub agent_pool_profiles: Vec<AgentPoolProfile>,
    /// API server access.
    #[serde(deserialize_with = "null_as_default")]
    pub api_server_access_profile: ApiServerAccessProfile,
    /// The node resource group (`MC_<rg>_<cluster>_<location>` by default).
    pub node_resource_group: Option<String>,
    /// Node resource group lockdown.
    pub node_resource_group_profile: Option<NodeResourceGroupProfile>,
    /// Admin credentials are refused when true.
    #[serde(deserialize_with = "null_as_default")]
    pub disable_local_accounts: bool,
    /// Entra ID integration.
    pub aad_profile: Option<AadProfile>,
    /// Network settings (only `bastionProfile` is used).
    pub network_profile: Option<NetworkProfile>,
}

/// `powerState`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerState {
    /// `Running` or `Stopped`.
    pub code: Option<String>,
}

/// One agent pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AgentPoolProfile {
    /// Pool name.
    pub name: Option<String>,
    /// Node subnet; absent → the managed VNet in the node resource group.
    #[serde(rename = "vnetSubnetID", deserialize_with = "lenient_id")]
    pub vnet_subnet_id: Option<ResourceId>,
}

/// `apiServerAccessProfile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ApiServerAccessProfile {
    /// Private API server (absent = false).
    #[serde(deserialize_with = "null_as_default")]
    pub enable_private_cluster: bool,
    /// Whether a private cluster also gets a public FQDN.
    #[serde(rename = "enablePrivateClusterPublicFQDN")]
    pub enable_private_cluster_public_fqdn: Option<bool>,
    /// `system`, `none`, or a private DNS zone resource id.
    #[serde(rename = "privateDNSZone")]
    pub private_dns_zone: Option<String>,
    /// CIDRs allowed to reach the public API server.
    #[serde(rename = "authorizedIPRanges", deserialize_with = "null_as_default")]
    pub authorized_ip_ranges: Vec<String>,
    /// API server VNet integration (informational).
    pub enable_vnet_integration: Option<bool>,
    /// API server subnet with VNet integration (informational).
    pub subnet_id: Option<String>,
}

/// `nodeResourceGroupProfile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeResourceGroupProfile {
    /// `Unrestricted` or `ReadOnly`.
    pub restriction_level: Option<String>,
}

/// `aadProfile`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AadProfile {
    /// AKS-managed Entra ID.
    pub managed: Option<bool>,
    /// Azure RBAC for Kubernetes authorization.
    #[serde(rename = "enableAzureRBAC")]
    pub enable_azure_rbac: Option<bool>,
    /// Tenant id.
    #[serde(rename = "tenantID")]
    pub tenant_id: Option<String>,
}

/// `networkProfile` (only the parts used here).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkProfile {
    /// `azure`, `kubenet`, `none`.
    pub network_plugin: Option<String>,
    /// Preview: an AKS-managed Bastion.
    pub bastion_profile: Option<BastionProfile>,
}

/// `networkProfile.bastionProfile` (preview API versions only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BastionProfile {
    /// Whether AKS manages a Bastion for this cluster.
    #[serde(deserialize_with = "null_as_default")]
    pub enabled: bool,
    /// The managed Bastion's id (read-only).
    #[serde(deserialize_with = "lenient_id")]
    pub bastion_id: Option<ResourceId>,
    /// Its SKU.
    pub sku: Option<String>,
    /// Its scale units.
    pub scale_units: Option<u32>,
    /// Its public IP (wire casing unverified; both spellings accepted).
    #[serde(
        alias = "publicIPAddressId",
        alias = "publicIpAddressID",
        deserialize_with = "lenient_id"
    )]
    pub public_ip_address_id: Option<ResourceId>,
}

impl ManagedCluster {
    /// The display name: `name`, else the last segment of `id`.
    pub fn display_name(&self) -> &str {
        super::display_name(&self.name, &self.id)
    }

    /// The cluster resource group from the `id`.
    pub fn resource_group(&self) -> &str {
        self.id.resource_group().unwrap_or_default()
    }

    /// Whether the API server is private.
    pub fn is_private(&self) -> bool {
        self.properties
            .api_server_access_profile
            .enable_private_cluster
    }

    /// A private cluster without a public FQDN (flag explicitly false, or absent with no `fqdn`).
    pub fn public_fqdn_disabled(&self) -> bool {
        self.is_private()
            && match self
                .properties
                .api_server_access_profile
                .enable_private_cluster_public_fqdn
            {
                Some(flag) => !flag,
                None => self.properties.fqdn.as_deref().is_none_or(str::is_empty),
            }
    }

    /// The distinct VNets of the agent pools' subnets, in pool order. Empty → the cluster uses a
    /// managed VNet in its node resource group.
    pub fn vnet_ids(&self) -> Vec<ResourceId> {
        let mut out: Vec<ResourceId> = Vec::new();
        for pool in &self.properties.agent_pool_profiles {
            if let Some(vnet) = pool
                .vnet_subnet_id
                .as_ref()
                .and_then(|s| s.vnet_of_subnet())
                && !out.contains(&vnet)
            {
                out.push(vnet);
            }
        }
        out
    }

    /// The node resource group's id (same subscription as the cluster).
    pub fn node_resource_group_id(&self) -> Option<ResourceId> {
        let nrg = self.properties.node_resource_group.as_deref()?;
        ResourceId::for_resource_group(self.id.subscription(), nrg).ok()
    }

    /// The cluster resource group's id.
    pub fn resource_group_id(&self) -> Option<ResourceId> {
        self.id.resource_group_id()
    }

    /// The AKS-managed Bastion id, when `bastionProfile.enabled`.
    pub fn managed_bastion_id(&self) -> Option<&ResourceId> {
        let profile = self
            .properties
            .network_profile
            .as_ref()?
            .bastion_profile
            .as_ref()?;
        if profile.enabled {
            profile.bastion_id.as_ref()
        } else {
            None
        }
    }

    /// `sku.name == Automatic`.
    pub fn is_automatic(&self) -> bool {
        self.sku
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .is_some_and(|n| n.eq_ignore_ascii_case("Automatic"))
    }

    /// Node resource group `restrictionLevel == ReadOnly`.
    pub fn node_resource_group_read_only(&self) -> bool {
        self.properties
            .node_resource_group_profile
            .as_ref()
            .and_then(|p| p.restriction_level.as_deref())
            .is_some_and(|l| l.eq_ignore_ascii_case("ReadOnly"))
    }

    /// The private DNS zone of the API server (check N3, see
    /// docs/arm-and-aks.md#n3-private-dns-link): a zone resource id from `privateDNSZone`, or
    /// for `system`/absent the zone in the node resource group named `privateFQDN` minus its
    /// first label. `None` for `none`, public clusters, or missing data.
    pub fn private_dns_zone_id(&self) -> Option<ResourceId> {
        if !self.is_private() {
            return None;
        }
        let setting = self
            .properties
            .api_server_access_profile
            .private_dns_zone
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        match setting {
            Some(z) if z.eq_ignore_ascii_case("none") => None,
            Some(z) if z.starts_with('/') => ResourceId::parse(z).ok(),
            _ => {
                let fqdn = self.properties.private_fqdn.as_deref()?;
                let (_, zone) = fqdn.split_once('.')?;
                let nrg = self.properties.node_resource_group.as_deref()?;
                ResourceId::for_resource(
                    self.id.subscription(),
                    nrg,
                    "Microsoft.Network",
                    "privateDnsZones",
                    zone,
                )
                .ok()
            }
        }
    }
}

/// The result of `listClusterUserCredential` / `listClusterAdminCredential`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialResults {
    /// The kubeconfigs (normally one: `clusterUser` or `clusterAdmin`).
    #[serde(deserialize_with = "null_as_default")]
    pub kubeconfigs: Vec<CredentialResult>,
}

/// One returned kubeconfig.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CredentialResult {
    /// `clusterUser`, `clusterAdmin`, …
    pub name: String,
    /// Standard base64 of the kubeconfig YAML (it may hold secrets).
    pub value: String,
}

impl std::fmt::Debug for CredentialResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialResult")
            .field("name", &self.name)
            .field("value", &"<redacted>")
            .finish()
    }
}
