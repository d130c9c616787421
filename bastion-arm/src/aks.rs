//! AKS clusters: the API server host and the cluster credentials (see
//! docs/arm-and-aks.md#cluster-credentials); the cluster itself is
//! [`crate::model::ManagedCluster`] (see docs/arm-and-aks.md#managed-clusters).

use base64::Engine as _;

use crate::error::ArmError;
use crate::model::{CredentialResults, ManagedCluster};
use crate::read::ArmRead;

/// Problems with a cluster's data or its credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AksError {
    /// A private cluster without `privateFQDN`.
    #[error(
        "cluster '{cluster}' is private but ARM returned no privateFQDN; check that the cluster finished provisioning (az aks show -n {cluster} -g {resource_group})"
    )]
    MissingPrivateFqdn {
        /// Cluster name.
        cluster: String,
        /// Cluster resource group.
        resource_group: String,
    },
    /// A public cluster without `fqdn`.
    #[error(
        "cluster '{cluster}' has no fqdn; check that the cluster finished provisioning (az aks show -n {cluster} -g {resource_group})"
    )]
    MissingFqdn {
        /// Cluster name.
        cluster: String,
        /// Cluster resource group.
        resource_group: String,
    },
    /// `kubeconfigs` was empty.
    #[error("No Kubernetes credentials found.")]
    NoCredentials,
    /// `kubeconfigs[0].value` is not standard base64.
    #[error("the credential '{name}' returned by ARM is not valid base64: {reason}")]
    InvalidCredentialEncoding {
        /// `kubeconfigs[0].name`.
        name: String,
        /// The decoder's complaint.
        reason: String,
    },
    /// The decoded kubeconfig is not UTF-8 text.
    #[error("the credential '{name}' returned by ARM is not UTF-8 text")]
    CredentialNotText {
        /// `kubeconfigs[0].name`.
        name: String,
    },
    /// Admin credentials of a cluster with local accounts disabled.
    #[error(
        "cluster '{cluster}' has local accounts disabled, so admin credentials cannot be fetched (ARM: {arm_message}). \
         Use the user credentials instead: your Microsoft Entra ID credentials with Kubernetes RBAC or Azure RBAC"
    )]
    LocalAccountsDisabled {
        /// Cluster name.
        cluster: String,
        /// ARM's message.
        arm_message: String,
    },
}

impl ManagedCluster {
    /// The API server host the tunnel's TLS name is checked against: `privateFQDN` for a private
    /// cluster, `fqdn` otherwise.
    pub fn api_server_host(&self) -> Result<&str, AksError> {
        let (value, private) = if self.is_private() {
            (self.properties.private_fqdn.as_deref(), true)
        } else {
            (self.properties.fqdn.as_deref(), false)
        };
        match value.map(str::trim) {
            Some(h) if !h.is_empty() => Ok(h),
            _ => {
                let cluster = self.display_name().to_owned();
                let resource_group = self.resource_group().to_owned();
                Err(if private {
                    AksError::MissingPrivateFqdn {
                        cluster,
                        resource_group,
                    }
                } else {
                    AksError::MissingFqdn {
                        cluster,
                        resource_group,
                    }
                })
            }
        }
    }
}

impl CredentialResults {
    /// Decodes `kubeconfigs[0]` into kubeconfig YAML text.
    pub fn decode_first(&self) -> Result<String, AksError> {
        let first = self.kubeconfigs.first().ok_or(AksError::NoCredentials)?;
        let compact: String = first
            .value
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|e| AksError::InvalidCredentialEncoding {
                name: first.name.clone(),
                reason: e.to_string(),
            })?;
        String::from_utf8(bytes).map_err(|_| AksError::CredentialNotText {
            name: first.name.clone(),
        })
    }
}

/// Why the cluster's kubeconfig could not be fetched.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// A problem with the returned data, or admin credentials with local accounts disabled.
    #[error(transparent)]
    Aks(#[from] AksError),
    /// Any other ARM failure (403 names the action and a role through the ARM error's hint).
    #[error(transparent)]
    Arm(Box<ArmError>),
}

impl From<ArmError> for CredentialError {
    fn from(e: ArmError) -> Self {
        Self::Arm(Box::new(e))
    }
}

/// Fetches the user (or, with `admin`, the admin) credentials of `cluster` and decodes the first
/// kubeconfig. `server_fqdn` is sent as `server-fqdn` when given (`public`/`private`); the
/// default (none) matches the reference. Admin credentials of a cluster with local accounts
/// disabled fail with [`AksError::LocalAccountsDisabled`].
pub async fn fetch_kubeconfig<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    admin: bool,
    server_fqdn: Option<&str>,
) -> Result<String, CredentialError> {
    fetch_credentials(
        arm,
        cluster,
        &CredentialRequest {
            admin,
            server_fqdn,
            format: None,
        },
    )
    .await
}

/// What `az aks get-credentials` asks for: user or admin credentials, which FQDN the server
/// entry uses, and the credential format of an AAD cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CredentialRequest<'a> {
    /// `listClusterAdminCredential` instead of `listClusterUserCredential`.
    pub admin: bool,
    /// `server-fqdn`: `public` or `private` (none: the API's default).
    pub server_fqdn: Option<&'a str>,
    /// `format` of the user credential: `exec` or `azure` (AAD clusters; not sent for admin).
    pub format: Option<&'a str>,
}

/// [`fetch_kubeconfig`] with every option of [`CredentialRequest`].
pub async fn fetch_credentials<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    request: &CredentialRequest<'_>,
) -> Result<String, CredentialError> {
    let admin = request.admin;
    let format = if admin { None } else { request.format };
    match arm
        .list_cluster_credential_in_format(&cluster.id, admin, request.server_fqdn, format)
        .await
    {
        Ok(results) => Ok(results.decode_first()?),
        Err(e) => {
            if admin && let Some(mapped) = admin_credential_error(cluster.display_name(), &e) {
                return Err(mapped.into());
            }
            Err(e.into())
        }
    }
}

/// [`map_admin_credential_error`] for an [`ArmError`].
fn admin_credential_error(cluster: &str, e: &ArmError) -> Option<AksError> {
    let service = e.service()?;
    map_admin_credential_error(
        cluster,
        service.status,
        service.code.as_deref().unwrap_or_default(),
        &service.message,
    )
}

/// Whether an ARM error is the "local accounts disabled" refusal of `listClusterAdminCredential`:
/// HTTP 400 `BadRequest` whose message mentions local accounts.
fn is_local_accounts_disabled(status: u16, code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    status == 400
        && code.eq_ignore_ascii_case("BadRequest")
        && (m.contains("local account") || m.contains("static credential"))
}

/// Maps an ARM error from an admin-credential call to [`AksError::LocalAccountsDisabled`] when it
/// is that refusal; `None` for any other error (keep the original).
fn map_admin_credential_error(
    cluster: &str,
    status: u16,
    code: &str,
    message: &str,
) -> Option<AksError> {
    is_local_accounts_disabled(status, code, message).then(|| AksError::LocalAccountsDisabled {
        cluster: cluster.to_owned(),
        arm_message: message.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn private_cluster_json() -> serde_json::Value {
        json!({
          "id": "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks",
          "name": "myaks", "type": "Microsoft.ContainerService/ManagedClusters", "location": "eastus",
          "sku": { "name": "Base", "tier": "Free" },
          "properties": {
            "provisioningState": "Succeeded", "powerState": { "code": "Running" }, "kubernetesVersion": "1.33.2",
            "dnsPrefix": "myaks-dns",
            "fqdn": "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io",
            "privateFQDN": "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io",
            "agentPoolProfiles": [{ "name": "nodepool1", "count": 3, "mode": "System", "osType": "Linux",
              "vnetSubnetID": "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/spoke-vnet/subnets/aks-nodes" },
              { "name": "user1",
              "vnetSubnetID": "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/SPOKE-RG/providers/Microsoft.Network/virtualNetworks/SPOKE-VNET/subnets/user" }],
            "apiServerAccessProfile": { "enablePrivateCluster": true, "enablePrivateClusterPublicFQDN": true, "privateDNSZone": "system" },
            "nodeResourceGroup": "MC_aks-rg_myaks_eastus",
            "aadProfile": { "managed": true, "enableAzureRBAC": true, "tenantID": "33333333-3333-3333-3333-333333333333" },
            "disableLocalAccounts": false,
            "networkProfile": { "networkPlugin": "azure", "networkPluginMode": "overlay", "outboundType": "loadBalancer" }
          }
        })
    }

    fn cluster(v: serde_json::Value) -> ManagedCluster {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn private_cluster_fields() {
        let c = cluster(private_cluster_json());
        assert!(c.id.as_str().contains("/resourcegroups/aks-rg/"));
        assert_eq!(c.resource_group(), "aks-rg");
        assert!(c.is_private());
        assert!(!c.public_fqdn_disabled());
        assert_eq!(
            c.api_server_host().unwrap(),
            "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io"
        );
        let vnets = c.vnet_ids();
        assert_eq!(
            vnets.len(),
            1,
            "pools in the same VNet (any case) count once"
        );
        assert_eq!(vnets[0].name(), "spoke-vnet");
        assert_eq!(
            c.node_resource_group_id().unwrap().as_str(),
            "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/MC_aks-rg_myaks_eastus"
        );
        assert_eq!(
            c.properties.aad_profile.as_ref().unwrap().enable_azure_rbac,
            Some(true)
        );
        assert!(c.managed_bastion_id().is_none());
        assert!(!c.is_automatic());
        assert_eq!(
            c.private_dns_zone_id().unwrap().as_str(),
            "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/MC_aks-rg_myaks_eastus/providers/Microsoft.Network/privateDnsZones/5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io"
        );
    }

    #[test]
    fn public_cluster_uses_fqdn_and_authorized_ranges() {
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"] =
            json!({"authorizedIPRanges": ["20.1.2.3/32", "198.51.100.0/24"]});
        v["properties"]
            .as_object_mut()
            .unwrap()
            .remove("privateFQDN");
        let c = cluster(v);
        assert!(!c.is_private());
        assert_eq!(
            c.api_server_host().unwrap(),
            "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io"
        );
        assert_eq!(
            c.properties
                .api_server_access_profile
                .authorized_ip_ranges
                .len(),
            2
        );
        assert!(c.private_dns_zone_id().is_none());
    }

    #[test]
    fn missing_hosts_are_clear_errors() {
        let mut v = private_cluster_json();
        v["properties"]
            .as_object_mut()
            .unwrap()
            .remove("privateFQDN");
        let e = cluster(v).api_server_host().unwrap_err();
        assert!(
            e.to_string()
                .contains("private but ARM returned no privateFQDN")
        );
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"]["enablePrivateCluster"] = json!(false);
        v["properties"].as_object_mut().unwrap().remove("fqdn");
        let e = cluster(v).api_server_host().unwrap_err();
        assert!(matches!(e, AksError::MissingFqdn { .. }));
        assert!(e.to_string().contains("az aks show -n myaks -g aks-rg"));
    }

    #[test]
    fn public_fqdn_disabled_detection() {
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"]["enablePrivateClusterPublicFQDN"] = json!(false);
        assert!(cluster(v).public_fqdn_disabled());
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"]
            .as_object_mut()
            .unwrap()
            .remove("enablePrivateClusterPublicFQDN");
        v["properties"].as_object_mut().unwrap().remove("fqdn");
        assert!(cluster(v).public_fqdn_disabled());
    }

    #[test]
    fn private_dns_zone_variants() {
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"]["privateDNSZone"] = json!("none");
        assert!(cluster(v).private_dns_zone_id().is_none());
        let zone = "/subscriptions/4444/resourceGroups/dns-rg/providers/Microsoft.Network/privateDnsZones/privatelink.eastus.azmk8s.io";
        let mut v = private_cluster_json();
        v["properties"]["apiServerAccessProfile"]["privateDNSZone"] = json!(zone);
        assert_eq!(cluster(v).private_dns_zone_id().unwrap().as_str(), zone);
    }

    #[test]
    fn managed_bastion_automatic_and_readonly() {
        let mut v = private_cluster_json();
        let bid = "/subscriptions/2222/resourceGroups/MC_x/providers/Microsoft.Network/bastionHosts/aks-bastion";
        v["properties"]["networkProfile"]["bastionProfile"] =
            json!({"enabled": true, "bastionId": bid, "publicIPAddressId": null});
        v["sku"]["name"] = json!("Automatic");
        v["properties"]["nodeResourceGroupProfile"] = json!({"restrictionLevel": "ReadOnly"});
        let c = cluster(v.clone());
        assert_eq!(c.managed_bastion_id().unwrap().as_str(), bid);
        assert!(c.is_automatic());
        assert!(c.node_resource_group_read_only());
        v["properties"]["networkProfile"]["bastionProfile"]["enabled"] = json!(false);
        assert!(cluster(v).managed_bastion_id().is_none());
    }

    #[test]
    fn no_subnet_means_managed_vnet() {
        let mut v = private_cluster_json();
        v["properties"]["agentPoolProfiles"] = json!([{"name": "np"}]);
        assert!(cluster(v).vnet_ids().is_empty());
    }

    #[test]
    fn decode_first_credential() {
        let yaml = "apiVersion: v1\nkind: Config\n";
        let b64 = base64::engine::general_purpose::STANDARD.encode(yaml);
        let r: CredentialResults = serde_json::from_value(
            json!({"kubeconfigs": [{"name": "clusterUser", "value": b64}, {"name": "x", "value": ""}]}),
        )
        .unwrap();
        assert_eq!(r.decode_first().unwrap(), yaml);
        assert!(
            !format!("{r:?}").contains(&b64),
            "secret value not in Debug"
        );

        let empty: CredentialResults = serde_json::from_value(json!({"kubeconfigs": []})).unwrap();
        assert_eq!(
            empty.decode_first().unwrap_err().to_string(),
            "No Kubernetes credentials found."
        );
        let null: CredentialResults = serde_json::from_value(json!({"kubeconfigs": null})).unwrap();
        assert_eq!(null.decode_first().unwrap_err(), AksError::NoCredentials);

        let bad: CredentialResults = serde_json::from_value(
            json!({"kubeconfigs": [{"name": "clusterUser", "value": "!!!"}]}),
        )
        .unwrap();
        assert!(matches!(
            bad.decode_first().unwrap_err(),
            AksError::InvalidCredentialEncoding { .. }
        ));
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn fetch_kubeconfig_user_admin_and_local_accounts_disabled() {
        use crate::testing::FakeArm;
        let c = cluster(private_cluster_json());
        let mut arm = FakeArm::default();
        arm.clusters.push(c.clone());
        arm.kubeconfigs.insert(
            c.id.clone(),
            ("user: yaml\n".into(), "admin: yaml\n".into()),
        );
        assert_eq!(
            block_on(fetch_kubeconfig(&arm, &c, false, None)).unwrap(),
            "user: yaml\n"
        );
        assert_eq!(
            block_on(fetch_kubeconfig(&arm, &c, true, None)).unwrap(),
            "admin: yaml\n"
        );

        let mut locked = c.clone();
        locked.properties.disable_local_accounts = true;
        arm.clusters = vec![locked.clone()];
        let e = block_on(fetch_kubeconfig(&arm, &locked, true, None)).unwrap_err();
        assert!(
            matches!(
                e,
                CredentialError::Aks(AksError::LocalAccountsDisabled { .. })
            ),
            "{e}"
        );
        assert!(e.to_string().contains("Use the user credentials instead"));
        // User credentials still work on that cluster.
        assert!(block_on(fetch_kubeconfig(&arm, &locked, false, None)).is_ok());

        arm.kubeconfigs.clear();
        let e = block_on(fetch_kubeconfig(&arm, &locked, false, None)).unwrap_err();
        assert_eq!(e.to_string(), "No Kubernetes credentials found.");
        arm.clusters.clear();
        let e = block_on(fetch_kubeconfig(&arm, &c, false, None)).unwrap_err();
        assert!(matches!(e, CredentialError::Arm(ref a) if a.is_not_found()));
    }

    #[test]
    fn local_accounts_error_mapping() {
        let msg = "Getting static credential is not allowed because this cluster is set to disable local accounts.";
        assert!(is_local_accounts_disabled(400, "BadRequest", msg));
        assert!(!is_local_accounts_disabled(403, "AuthorizationFailed", msg));
        assert!(!is_local_accounts_disabled(
            400,
            "BadRequest",
            "something else"
        ));
        let e = map_admin_credential_error("myaks", 400, "BadRequest", msg).unwrap();
        let text = e.to_string();
        assert!(text.contains("local accounts disabled"));
        assert!(text.contains("Use the user credentials instead"));
        assert!(map_admin_credential_error("myaks", 404, "ResourceNotFound", "x").is_none());
    }
}
