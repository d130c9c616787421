//! The native-client decision for a Bastion host (see docs/arm-and-aks.md#native-client-decision
//! and docs/protocol.md#endpoints-and-skus); the host itself is [`crate::model::BastionHost`]
//! (see docs/arm-and-aks.md#bastion-hosts).

use bastion_core::{Endpoint, EndpointKind, HttpsConfig, Target, TunnelConfig};

use crate::model::{BastionHost, Sku};
use crate::resource_id::ResourceId;

/// The reference CLI's rejection text, kept verbatim at the start of every SKU/flag error.
pub const REFERENCE_GATE_MESSAGE: &str =
    "Bastion Host SKU must be Standard or Premium and Native Client must be enabled.";

/// The ports a Developer SKU Bastion (and IP connect) tunnels to unless the user opts in.
pub const DEFAULT_ALLOWED_PORTS: [u16; 2] = [22, 3389];

/// What the Bastion is going to be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A tunnel to a VM (or other resource) port.
    Tunnel {
        /// The target port.
        port: u16,
        /// Target by IP address (IP connect) rather than by resource id.
        ip_connect: bool,
        /// The user opted in to ports other than 22/3389 where the SKU restricts them.
        allow_custom_port: bool,
    },
    /// `aks bastion`: a tunnel to an AKS API server (port 443), possibly from a peered VNet.
    Aks,
}

/// How to reach a Bastion that passed the gate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointPlan {
    /// The Bastion's resource id.
    pub bastion_id: ResourceId,
    /// The Bastion's display name.
    pub bastion: String,
    /// `properties.dnsName`, verbatim.
    pub host: String,
    /// Which URL family the endpoint speaks.
    pub kind: EndpointKind,
    /// `Some(1)` for Developer-kind Bastions (one connection at a time), `None` otherwise.
    pub max_concurrent_connections: Option<u32>,
    /// Things the user should know that do not block the tunnel.
    pub warnings: Vec<String>,
}

/// Why a Bastion cannot serve a native-client tunnel. Each variant is one failed condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NativeClientError {
    /// Basic SKU.
    #[error(
        "{REFERENCE_GATE_MESSAGE} Bastion '{bastion}' is Basic SKU, which has no native client support \
         — upgrade it: az network bastion update --name {bastion} --resource-group {resource_group} --sku Standard --enable-tunneling true"
    )]
    BasicSku {
        /// Bastion name.
        bastion: String,
        /// Bastion resource group.
        resource_group: String,
    },
    /// Standard/Premium with `enableTunneling` false or absent.
    #[error(
        "{REFERENCE_GATE_MESSAGE} Bastion '{bastion}' is {sku} SKU but native client support (enableTunneling) is off \
         — enable it: az network bastion update --name {bastion} --resource-group {resource_group} --enable-tunneling true \
         (or in the Azure portal: the Bastion's Configuration page, 'Native client support')"
    )]
    TunnelingDisabled {
        /// Bastion name.
        bastion: String,
        /// Bastion resource group.
        resource_group: String,
        /// `Standard` or `Premium`.
        sku: Sku,
    },
    /// Developer/QuickConnect used for an AKS cluster.
    #[error(
        "{REFERENCE_GATE_MESSAGE} Bastion '{bastion}' is {sku} SKU, which does not support AKS clusters \
         (no native client support for clusters and no peered virtual networks) \
         — use a Standard or Premium Bastion with native client support enabled"
    )]
    DeveloperNotForAks {
        /// Bastion name.
        bastion: String,
        /// `Developer` or `QuickConnect`.
        sku: Sku,
    },
    /// Developer/QuickConnect tunnel to a port other than 22/3389 without the opt-in.
    #[error(
        "Bastion '{bastion}' is {sku} SKU, which only tunnels to ports 22 and 3389; port {port} is not supported \
         — use a Standard or Premium Bastion with native client support enabled, \
         or opt in to custom ports explicitly (the service may still refuse them)"
    )]
    DeveloperPortNotAllowed {
        /// Bastion name.
        bastion: String,
        /// `Developer` or `QuickConnect`.
        sku: Sku,
        /// The requested port.
        port: u16,
    },
    /// IP connect on a Developer/QuickConnect Bastion.
    #[error(
        "Bastion '{bastion}' is {sku} SKU, which does not support IP connect \
         — target the VM by its resource id, or use a Standard or Premium Bastion with IP connect enabled"
    )]
    DeveloperIpConnect {
        /// Bastion name.
        bastion: String,
        /// `Developer` or `QuickConnect`.
        sku: Sku,
    },
    /// IP connect requested but `enableIpConnect` false or absent.
    #[error(
        "IP connect is not enabled on Bastion '{bastion}' (enableIpConnect is off) \
         — enable it: az network bastion update --name {bastion} --resource-group {resource_group} --enable-ip-connect true \
         (or in the Azure portal: the Bastion's Configuration page, 'IP-based connection'), or target the VM by its resource id"
    )]
    IpConnectDisabled {
        /// Bastion name.
        bastion: String,
        /// Bastion resource group.
        resource_group: String,
    },
    /// IP connect to a port other than 22/3389 without the opt-in.
    #[error(
        "Custom ports are not allowed. Allowed ports for Tunnel with IP connect is 22, 3389. \
         Port {port} was requested \
         — use port 22 or 3389, or opt in to custom ports explicitly (the service may still refuse them)"
    )]
    IpConnectPortNotAllowed {
        /// The requested port.
        port: u16,
    },
    /// A SKU this tool does not know (or none at all).
    #[error(
        "{REFERENCE_GATE_MESSAGE} Bastion '{bastion}' reports SKU '{sku}', which this tool does not know \
         — use a Standard or Premium Bastion with native client support enabled"
    )]
    UnknownSku {
        /// Bastion name.
        bastion: String,
        /// The SKU text (`(none)` when absent).
        sku: String,
    },
    /// The Bastion has no `dnsName`, so there is no endpoint to connect to.
    #[error(
        "Bastion '{bastion}' has no dnsName, so its endpoint is unknown (provisioning state: {state}) \
         — wait for provisioning to finish or check the Bastion in the Azure portal"
    )]
    MissingDnsName {
        /// Bastion name.
        bastion: String,
        /// `properties.provisioningState` or `unknown`.
        state: String,
    },
    /// A target port of 0.
    #[error("port 0 is not a valid target port — use a port from 1 to 65535")]
    InvalidPort,
    /// The `dnsName` is not a host name (or `HOST:PORT`) a tunnel can connect to.
    #[error(
        "Bastion '{bastion}' reports an unusable dnsName: {reason} \
         — check the Bastion's dnsName and provisioning state in the Azure portal"
    )]
    InvalidDnsName {
        /// Bastion name.
        bastion: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl EndpointPlan {
    /// The tunnel configuration for `target` through this Bastion: its endpoint and URL family,
    /// its id (the Developer SKU's data-pod lookup needs it), its connection limit, the token
    /// `scope` (the cloud's ARM scope, e.g. [`crate::ArmClient::scope`]) and the `https`
    /// settings of the data plane. Everything else keeps [`TunnelConfig::new`]'s defaults.
    pub fn tunnel_config(
        &self,
        target: Target,
        scope: &str,
        https: HttpsConfig,
    ) -> Result<TunnelConfig, NativeClientError> {
        let endpoint =
            Endpoint::parse(&self.host).map_err(|e| NativeClientError::InvalidDnsName {
                bastion: self.bastion.clone(),
                reason: e.to_string(),
            })?;
        let mut config = TunnelConfig::new(endpoint, target);
        config.kind = self.kind;
        config.bastion_resource_id = Some(self.bastion_id.as_str().to_owned());
        config.max_concurrent = self
            .max_concurrent_connections
            .and_then(|max| usize::try_from(max).ok());
        config.scope = scope.to_owned();
        config.http = https;
        Ok(config)
    }
}

impl NativeClientError {
    /// The command or setting that fixes this condition, when there is one.
    pub fn fix(&self) -> Option<String> {
        match self {
            Self::BasicSku {
                bastion,
                resource_group,
            } => Some(format!(
                "az network bastion update --name {bastion} --resource-group {resource_group} --sku Standard --enable-tunneling true"
            )),
            Self::TunnelingDisabled {
                bastion,
                resource_group,
                ..
            } => Some(format!(
                "az network bastion update --name {bastion} --resource-group {resource_group} --enable-tunneling true"
            )),
            Self::IpConnectDisabled {
                bastion,
                resource_group,
            } => Some(format!(
                "az network bastion update --name {bastion} --resource-group {resource_group} --enable-ip-connect true"
            )),
            Self::DeveloperNotForAks { .. } | Self::UnknownSku { .. } => {
                Some("use a Standard or Premium Bastion with native client support".into())
            }
            _ => None,
        }
    }
}

impl BastionHost {
    /// Non-blocking observations: provisioning not `Succeeded`, private-only endpoint.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.properties.provisioning_state.as_deref() {
            Some(s) if s.eq_ignore_ascii_case("Succeeded") => {}
            state => out.push(format!(
                "Bastion '{}' provisioning state is {}, not Succeeded; the tunnel may fail until it finishes",
                self.display_name(),
                state.unwrap_or("unknown")
            )),
        }
        if self.properties.enable_private_only_bastion {
            out.push(format!(
                "Bastion '{}' is private-only: its endpoint {} must be reachable from this machine over a private network",
                self.display_name(),
                self.properties.dns_name.as_deref().unwrap_or("(no dnsName)")
            ));
        }
        out
    }

    /// Decides whether this Bastion can carry a native-client tunnel for `usage`, and how.
    pub fn native_client_support(&self, usage: Usage) -> Result<EndpointPlan, NativeClientError> {
        let bastion = self.display_name().to_owned();
        let resource_group = self.resource_group().to_owned();
        let sku = match self.sku() {
            Some(s) => s.clone(),
            None => {
                return Err(NativeClientError::UnknownSku {
                    bastion,
                    sku: "(none)".into(),
                });
            }
        };
        let (kind, max) = match &sku {
            Sku::Basic => {
                return Err(NativeClientError::BasicSku {
                    bastion,
                    resource_group,
                });
            }
            Sku::Standard | Sku::Premium => {
                if !self.properties.enable_tunneling {
                    return Err(NativeClientError::TunnelingDisabled {
                        bastion,
                        resource_group,
                        sku,
                    });
                }
                if let Usage::Tunnel {
                    port,
                    ip_connect: true,
                    allow_custom_port,
                } = usage
                {
                    if !self.properties.enable_ip_connect {
                        return Err(NativeClientError::IpConnectDisabled {
                            bastion,
                            resource_group,
                        });
                    }
                    if !allow_custom_port && !DEFAULT_ALLOWED_PORTS.contains(&port) {
                        return Err(NativeClientError::IpConnectPortNotAllowed { port });
                    }
                }
                (EndpointKind::Standard, None)
            }
            Sku::Developer | Sku::QuickConnect => match usage {
                Usage::Aks => return Err(NativeClientError::DeveloperNotForAks { bastion, sku }),
                Usage::Tunnel {
                    ip_connect: true, ..
                } => return Err(NativeClientError::DeveloperIpConnect { bastion, sku }),
                Usage::Tunnel {
                    port,
                    allow_custom_port,
                    ..
                } => {
                    if !allow_custom_port && !DEFAULT_ALLOWED_PORTS.contains(&port) {
                        return Err(NativeClientError::DeveloperPortNotAllowed {
                            bastion,
                            sku,
                            port,
                        });
                    }
                    (EndpointKind::Developer, Some(1))
                }
            },
            Sku::Other(s) => {
                return Err(NativeClientError::UnknownSku {
                    bastion,
                    sku: s.clone(),
                });
            }
        };
        if let Usage::Tunnel { port: 0, .. } = usage {
            return Err(NativeClientError::InvalidPort);
        }
        let host = match self.properties.dns_name.as_deref().map(str::trim) {
            Some(h) if !h.is_empty() => h.to_owned(),
            _ => {
                return Err(NativeClientError::MissingDnsName {
                    bastion,
                    state: self
                        .properties
                        .provisioning_state
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                });
            }
        };
        let warnings = self.warnings();
        for w in &warnings {
            tracing::warn!("{w}");
        }
        Ok(EndpointPlan {
            bastion_id: self.id.clone(),
            bastion,
            host,
            kind,
            max_concurrent_connections: max,
            warnings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUB: &str = "11111111-1111-1111-1111-111111111111";

    fn standard_json() -> serde_json::Value {
        json!({
          "name": "hub-bastion",
          "id": format!("/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion"),
          "type": "Microsoft.Network/bastionHosts", "location": "eastus", "etag": "W/\"6a2c\"",
          "tags": {}, "zones": [], "sku": { "name": "Standard" },
          "properties": {
            "provisioningState": "Succeeded",
            "dnsName": "bst-9d89d361-100e-4c01-b92d-466548c476dc.bastion.azure.com",
            "scaleUnits": 2, "enableTunneling": true, "enableIpConnect": false, "enableShareableLink": false,
            "enableKerberos": false, "enableSessionRecording": false, "enablePrivateOnlyBastion": false,
            "enableFileCopy": false, "disableCopyPaste": false, "someFutureFlag": {"x": 1},
            "ipConfigurations": [{
              "name": "bastionHostIpConfiguration",
              "id": format!("/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion/bastionHostIpConfigurations/bastionHostIpConfiguration"),
              "type": "Microsoft.Network/bastionHosts/bastionHostIpConfigurations",
              "properties": {
                "provisioningState": "Succeeded", "privateIPAllocationMethod": "Dynamic",
                "subnet": { "id": format!("/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/virtualNetworks/hub-vnet/subnets/AzureBastionSubnet") },
                "publicIPAddress": { "id": format!("/subscriptions/{SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/publicIPAddresses/hub-bastion-pip") }
              }
            }]
          }
        })
    }

    fn host(v: serde_json::Value) -> BastionHost {
        serde_json::from_value(v).unwrap()
    }

    fn with(sku: &str, tunneling: Option<bool>, ip: Option<bool>) -> BastionHost {
        let mut v = standard_json();
        v["sku"]["name"] = json!(sku);
        let p = v["properties"].as_object_mut().unwrap();
        p.remove("enableTunneling");
        p.remove("enableIpConnect");
        if let Some(t) = tunneling {
            p.insert("enableTunneling".into(), json!(t));
        }
        if let Some(i) = ip {
            p.insert("enableIpConnect".into(), json!(i));
        }
        host(v)
    }

    fn developer() -> BastionHost {
        host(json!({
            "id": format!("/subscriptions/{SUB}/resourceGroups/app-rg/providers/Microsoft.Network/bastionHosts/dev-bastion"),
            "name": "dev-bastion", "location": "westus",
            "sku": {"name": "Developer"},
            "properties": {"provisioningState": "Succeeded", "dnsName": "omnibrain.uswest.bastionglobal.azure.com",
              "virtualNetwork": {"id": format!("/subscriptions/{SUB}/resourceGroups/app-rg/providers/Microsoft.Network/virtualNetworks/vnet1")},
              "networkAcls": {"ipRules": [{"addressPrefix": "1.1.1.1/16"}]}, "ipConfigurations": []}
        }))
    }

    const SSH: Usage = Usage::Tunnel {
        port: 22,
        ip_connect: false,
        allow_custom_port: false,
    };
    const IP_SSH: Usage = Usage::Tunnel {
        port: 22,
        ip_connect: true,
        allow_custom_port: false,
    };

    #[test]
    fn parses_realistic_standard_host() {
        let h = host(standard_json());
        assert_eq!(h.display_name(), "hub-bastion");
        assert_eq!(h.resource_group(), "hub-rg");
        assert_eq!(h.sku(), Some(&Sku::Standard));
        assert!(h.properties.enable_tunneling);
        assert_eq!(h.properties.scale_units, Some(2));
        assert_eq!(h.vnet_id().unwrap().name(), "hub-vnet");
        assert_eq!(h.public_ip_id().unwrap().name(), "hub-bastion-pip");
        assert!(h.warnings().is_empty());
    }

    #[test]
    fn sku_is_case_insensitive_and_keeps_unknown() {
        assert_eq!(Sku::parse("standard"), Sku::Standard);
        assert_eq!(Sku::parse("PREMIUM"), Sku::Premium);
        assert_eq!(Sku::parse("quickconnect"), Sku::QuickConnect);
        assert_eq!(Sku::parse("Enterprise"), Sku::Other("Enterprise".into()));
        assert!(Sku::Developer.is_developer_kind());
        let h = with("sTaNdArD", Some(true), None);
        assert!(h.native_client_support(Usage::Aks).is_ok());
    }

    #[test]
    fn standard_and_premium_with_tunneling_are_allowed() {
        for sku in ["Standard", "Premium"] {
            let h = with(sku, Some(true), None);
            for usage in [Usage::Aks, SSH] {
                let plan = h.native_client_support(usage).unwrap();
                assert_eq!(
                    plan.host,
                    "bst-9d89d361-100e-4c01-b92d-466548c476dc.bastion.azure.com"
                );
                assert_eq!(plan.kind, EndpointKind::Standard);
                assert_eq!(plan.max_concurrent_connections, None);
            }
            // Any port is fine on Standard/Premium without IP connect.
            let custom = Usage::Tunnel {
                port: 8443,
                ip_connect: false,
                allow_custom_port: false,
            };
            assert!(h.native_client_support(custom).is_ok());
        }
    }

    #[test]
    fn basic_is_rejected_with_reference_wording_and_fix() {
        let e = with("Basic", Some(true), None)
            .native_client_support(Usage::Aks)
            .unwrap_err();
        assert!(matches!(e, NativeClientError::BasicSku { .. }));
        let m = e.to_string();
        assert!(m.starts_with(REFERENCE_GATE_MESSAGE), "{m}");
        assert!(m.contains("is Basic SKU"), "{m}");
        assert!(m.contains("--resource-group hub-rg --sku Standard"), "{m}");
    }

    #[test]
    fn standard_without_tunneling_says_how_to_enable() {
        for flag in [None, Some(false)] {
            let e = with("Premium", flag, None)
                .native_client_support(SSH)
                .unwrap_err();
            assert!(matches!(e, NativeClientError::TunnelingDisabled { .. }));
            let m = e.to_string();
            assert!(m.starts_with(REFERENCE_GATE_MESSAGE), "{m}");
            assert!(m.contains("Premium SKU but native client support (enableTunneling) is off"));
            assert!(m.contains(
                "az network bastion update --name hub-bastion --resource-group hub-rg --enable-tunneling true"
            ));
            assert!(m.contains("Configuration page"));
        }
    }

    #[test]
    fn null_booleans_are_false() {
        let mut v = standard_json();
        v["properties"]["enableTunneling"] = serde_json::Value::Null;
        let e = host(v).native_client_support(Usage::Aks).unwrap_err();
        assert!(matches!(e, NativeClientError::TunnelingDisabled { .. }));
    }

    #[test]
    fn plans_become_tunnel_configs() {
        let vm = format!(
            "/subscriptions/{SUB}/resourceGroups/vm-rg/providers/Microsoft.Compute/virtualMachines/vm1"
        );
        let https = HttpsConfig {
            application: Some("test/1".into()),
            ..HttpsConfig::default()
        };
        let plan = host(standard_json()).native_client_support(SSH).unwrap();
        let config = plan
            .tunnel_config(
                Target::resource(&vm, 22).unwrap(),
                "https://management.usgovcloudapi.net/.default",
                https.clone(),
            )
            .unwrap();
        assert_eq!(
            config.endpoint.host(),
            "bst-9d89d361-100e-4c01-b92d-466548c476dc.bastion.azure.com"
        );
        assert_eq!(config.kind, EndpointKind::Standard);
        assert_eq!(
            config.bastion_resource_id.as_deref(),
            Some(plan.bastion_id.as_str())
        );
        assert_eq!(config.max_concurrent, None);
        assert_eq!(
            config.scope,
            "https://management.usgovcloudapi.net/.default"
        );
        assert_eq!(config.http.application.as_deref(), Some("test/1"));
        assert_eq!(config.target.resource_id(), vm);

        let dev = developer().native_client_support(SSH).unwrap();
        let config = dev
            .tunnel_config(Target::resource(&vm, 22).unwrap(), "s", https.clone())
            .unwrap();
        assert_eq!(config.kind, EndpointKind::Developer);
        assert_eq!(config.max_concurrent, Some(1));
        assert!(config.validate().is_ok());

        let mut bad = plan;
        bad.host = "bst.example.test/path".into();
        let e = bad
            .tunnel_config(Target::resource(&vm, 22).unwrap(), "s", https)
            .unwrap_err();
        assert!(matches!(e, NativeClientError::InvalidDnsName { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("Bastion 'hub-bastion' reports an unusable dnsName: "),
            "{e}"
        );
    }

    #[test]
    fn developer_allowed_for_ssh_with_one_connection() {
        let h = developer();
        assert_eq!(h.vnet_id().unwrap().name(), "vnet1");
        assert!(h.public_ip_id().is_none());
        for port in [22, 3389] {
            let plan = h
                .native_client_support(Usage::Tunnel {
                    port,
                    ip_connect: false,
                    allow_custom_port: false,
                })
                .unwrap();
            assert_eq!(plan.kind, EndpointKind::Developer);
            assert_eq!(plan.host, "omnibrain.uswest.bastionglobal.azure.com");
            assert_eq!(plan.max_concurrent_connections, Some(1));
        }
        let mut v = serde_json::to_value(&h).unwrap();
        v["sku"]["name"] = json!("QuickConnect");
        let plan = host(v).native_client_support(SSH).unwrap();
        assert_eq!(plan.kind, EndpointKind::Developer);
    }

    #[test]
    fn developer_rejected_for_aks() {
        let e = developer().native_client_support(Usage::Aks).unwrap_err();
        assert!(matches!(e, NativeClientError::DeveloperNotForAks { .. }));
        let m = e.to_string();
        assert!(m.starts_with(REFERENCE_GATE_MESSAGE));
        assert!(
            m.contains("Developer SKU, which does not support AKS clusters"),
            "{m}"
        );
    }

    #[test]
    fn developer_custom_port_needs_opt_in() {
        let h = developer();
        let e = h
            .native_client_support(Usage::Tunnel {
                port: 8080,
                ip_connect: false,
                allow_custom_port: false,
            })
            .unwrap_err();
        assert!(matches!(
            e,
            NativeClientError::DeveloperPortNotAllowed { port: 8080, .. }
        ));
        assert!(
            e.to_string()
                .contains("only tunnels to ports 22 and 3389; port 8080")
        );
        let ok = h.native_client_support(Usage::Tunnel {
            port: 8080,
            ip_connect: false,
            allow_custom_port: true,
        });
        assert_eq!(ok.unwrap().max_concurrent_connections, Some(1));
    }

    #[test]
    fn developer_ip_connect_rejected() {
        let e = developer().native_client_support(IP_SSH).unwrap_err();
        assert!(matches!(e, NativeClientError::DeveloperIpConnect { .. }));
        assert!(e.to_string().contains("does not support IP connect"));
    }

    #[test]
    fn ip_connect_needs_flag_and_default_ports() {
        let e = with("Standard", Some(true), None)
            .native_client_support(IP_SSH)
            .unwrap_err();
        assert!(matches!(e, NativeClientError::IpConnectDisabled { .. }));
        assert!(e.to_string().contains("--enable-ip-connect true"));

        let h = with("Standard", Some(true), Some(true));
        assert!(h.native_client_support(IP_SSH).is_ok());
        let e = h
            .native_client_support(Usage::Tunnel {
                port: 5432,
                ip_connect: true,
                allow_custom_port: false,
            })
            .unwrap_err();
        assert_eq!(e, NativeClientError::IpConnectPortNotAllowed { port: 5432 });
        assert!(e.to_string().starts_with("Custom ports are not allowed."));
        assert!(
            h.native_client_support(Usage::Tunnel {
                port: 5432,
                ip_connect: true,
                allow_custom_port: true,
            })
            .is_ok()
        );
        // IP connect without tunneling fails on the tunneling flag first.
        let e = with("Standard", Some(false), Some(true))
            .native_client_support(IP_SSH)
            .unwrap_err();
        assert!(matches!(e, NativeClientError::TunnelingDisabled { .. }));
    }

    #[test]
    fn unknown_or_missing_sku_is_named() {
        let e = with("Enterprise", Some(true), None)
            .native_client_support(SSH)
            .unwrap_err();
        assert!(e.to_string().contains("reports SKU 'Enterprise'"));
        assert!(e.to_string().starts_with(REFERENCE_GATE_MESSAGE));
        let mut v = standard_json();
        v.as_object_mut().unwrap().remove("sku");
        let e = host(v).native_client_support(SSH).unwrap_err();
        assert!(e.to_string().contains("reports SKU '(none)'"));
    }

    #[test]
    fn missing_dns_name_and_port_zero() {
        let mut v = standard_json();
        v["properties"].as_object_mut().unwrap().remove("dnsName");
        v["properties"]["provisioningState"] = json!("Updating");
        let e = host(v).native_client_support(Usage::Aks).unwrap_err();
        assert!(matches!(e, NativeClientError::MissingDnsName { .. }));
        assert!(e.to_string().contains("provisioning state: Updating"));
        let e = host(standard_json())
            .native_client_support(Usage::Tunnel {
                port: 0,
                ip_connect: false,
                allow_custom_port: false,
            })
            .unwrap_err();
        assert_eq!(e, NativeClientError::InvalidPort);
    }

    #[test]
    fn warnings_for_provisioning_and_private_only() {
        let mut v = standard_json();
        v["sku"]["name"] = json!("Premium");
        v["properties"]["provisioningState"] = json!("Updating");
        v["properties"]["enablePrivateOnlyBastion"] = json!(true);
        v["properties"]["ipConfigurations"][0]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("publicIPAddress");
        let h = host(v);
        assert!(h.public_ip_id().is_none());
        let plan = h.native_client_support(Usage::Aks).unwrap();
        assert_eq!(plan.warnings.len(), 2);
        assert!(plan.warnings[0].contains("provisioning state is Updating"));
        assert!(plan.warnings[1].contains("private-only"));
    }

    #[test]
    fn minimal_host_deserialises() {
        let h = host(
            json!({"id": format!("/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Network/bastionHosts/b"), "properties": null}),
        );
        assert_eq!(h.display_name(), "b");
        assert!(!h.properties.enable_tunneling);
        assert!(h.vnet_id().is_none());
    }
}
