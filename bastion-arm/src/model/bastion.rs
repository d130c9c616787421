//! `Microsoft.Network/bastionHosts` as ARM returns it.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::SubResource;
use crate::resource_id::{ResourceId, null_as_default};

/// A Bastion host as returned by ARM. Unknown fields are ignored; absent ones take defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BastionHost {
    /// The ARM id; the Bastion's subscription and resource group come from here.
    pub id: ResourceId,
    /// The resource name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The Azure region.
    #[serde(default, deserialize_with = "null_as_default")]
    pub location: String,
    /// `sku`, absent on very old hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sku: Option<BastionSku>,
    /// `properties`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub properties: BastionProperties,
}

/// `sku` of a Bastion host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BastionSku {
    /// `sku.name`.
    #[serde(default)]
    pub name: Sku,
}

/// `properties` of a Bastion host. Booleans that are absent (or `null`) are `false`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BastionProperties {
    /// The data-plane host name (`bst-<guid>.bastion.azure.com`, Developer `omnibrain.…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Native client support.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_tunneling: bool,
    /// IP-based connection.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_ip_connect: bool,
    /// Private-only deployment (no public IP; the `dnsName` must be privately reachable).
    #[serde(deserialize_with = "null_as_default")]
    pub enable_private_only_bastion: bool,
    /// Shareable links.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_shareable_link: bool,
    /// Kerberos authentication.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_kerberos: bool,
    /// Session recording.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_session_recording: bool,
    /// File copy.
    #[serde(deserialize_with = "null_as_default")]
    pub enable_file_copy: bool,
    /// Copy/paste disabled.
    #[serde(deserialize_with = "null_as_default")]
    pub disable_copy_paste: bool,
    /// IP configurations (one, in `AzureBastionSubnet`; empty for Developer).
    #[serde(deserialize_with = "null_as_default")]
    pub ip_configurations: Vec<BastionIpConfiguration>,
    /// Developer only: the VNet the Bastion serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_network: Option<SubResource>,
    /// Developer only: allowed source prefixes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_acls: Option<NetworkAcls>,
    /// `Succeeded`, `Updating`, `Failed`, …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// 2–50 for Standard/Premium.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scale_units: Option<u32>,
}

/// One entry of `properties.ipConfigurations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BastionIpConfiguration {
    /// The configuration name.
    pub name: Option<String>,
    /// `properties`.
    #[serde(deserialize_with = "null_as_default")]
    pub properties: BastionIpConfigurationProperties,
}

/// `properties` of a Bastion IP configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BastionIpConfigurationProperties {
    /// The `AzureBastionSubnet` the Bastion sits in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// The Bastion's public IP (absent for private-only).
    #[serde(rename = "publicIPAddress", skip_serializing_if = "Option::is_none")]
    pub public_ip_address: Option<SubResource>,
}

/// Developer SKU network ACLs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NetworkAcls {
    /// Allowed source prefixes.
    #[serde(deserialize_with = "null_as_default")]
    pub ip_rules: Vec<IpRule>,
}

/// One Developer SKU IP rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IpRule {
    /// A CIDR prefix.
    pub address_prefix: Option<String>,
}

/// A Bastion SKU, parsed case-insensitively; unknown names are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Sku {
    /// No native client support.
    #[default]
    Basic,
    /// Native client with `enableTunneling`.
    Standard,
    /// Native client with `enableTunneling`; private-only and session recording.
    Premium,
    /// Shared, free; one connection at a time, ports 22/3389, no IP connect.
    Developer,
    /// A CLI-only name, treated like Developer.
    QuickConnect,
    /// Any other value, kept as given.
    Other(String),
}

impl Sku {
    /// Parses a SKU name case-insensitively.
    pub fn parse(name: &str) -> Self {
        match name.trim().to_ascii_lowercase().as_str() {
            "basic" => Self::Basic,
            "standard" => Self::Standard,
            "premium" => Self::Premium,
            "developer" => Self::Developer,
            "quickconnect" => Self::QuickConnect,
            _ => Self::Other(name.to_owned()),
        }
    }

    /// The canonical name (or the unknown text as given).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Basic => "Basic",
            Self::Standard => "Standard",
            Self::Premium => "Premium",
            Self::Developer => "Developer",
            Self::QuickConnect => "QuickConnect",
            Self::Other(s) => s,
        }
    }

    /// Developer or QuickConnect: the shared, restricted kind.
    pub fn is_developer_kind(&self) -> bool {
        matches!(self, Self::Developer | Self::QuickConnect)
    }
}

impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Sku {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Sku {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?))
    }
}

impl BastionHost {
    /// The display name: `name`, else the last segment of `id`.
    pub fn display_name(&self) -> &str {
        super::display_name(&self.name, &self.id)
    }

    /// The resource group from the `id`.
    pub fn resource_group(&self) -> &str {
        self.id.resource_group().unwrap_or_default()
    }

    /// The parsed SKU, `None` when `sku.name` is absent.
    pub fn sku(&self) -> Option<&Sku> {
        self.sku.as_ref().map(|s| &s.name)
    }

    /// The VNet the Bastion sits in: the first IP configuration's subnet → VNet; Developer:
    /// `properties.virtualNetwork.id`.
    pub fn vnet_id(&self) -> Option<ResourceId> {
        self.properties
            .ip_configurations
            .iter()
            .filter_map(|c| c.properties.subnet.as_ref())
            .find_map(|s| s.id.vnet_of_subnet())
            .or_else(|| {
                self.properties
                    .virtual_network
                    .as_ref()
                    .map(|v| v.id.clone())
            })
    }

    /// The Bastion's public IP resource id (absent for private-only and Developer).
    pub fn public_ip_id(&self) -> Option<&ResourceId> {
        self.properties
            .ip_configurations
            .iter()
            .find_map(|c| c.properties.public_ip_address.as_ref())
            .map(|p| &p.id)
    }
}
