//! A ready-made offline Azure: the Bastion data-plane emulator, the ARM emulator and the
//! Kubernetes API stand-in, sharing one test CA and wired into a hub-spoke layout.
//!
//! | Subscription | Resource group | Resources |
//! |---|---|---|
//! | hub `1111…` | `hub-rg` | `hub-vnet` (peered, Connected, with `spoke-vnet`), `hub-bastion` (Standard, tunneling) and its public IP `hub-bastion-pip` (20.1.2.3) |
//! | hub `1111…` | `lab-rg` | `lab-vnet`; Bastions `basic-bastion` (Basic), `std-notunnel-bastion` (Standard, tunneling off), `dev-bastion` (Developer), `premium-bastion` (Premium, tunneling + IP connect) |
//! | spoke `2222…` | `spoke-rg` | `spoke-vnet` (peered with `hub-vnet`) |
//! | spoke `2222…` | `aks-rg` | `myaks` (private, public FQDN on), `pubaks` (public, authorized IP ranges incl. the hub Bastion's IP), `privaks` (private, public FQDN off), `aadaks` (private, AAD only: local accounts disabled, its user credentials are kubelogin's, its API server takes AKS AAD tokens only) |
//! | spoke `2222…` | `MC_aks-rg_*_eastus` | the private DNS zones of `myaks`/`privaks`, linked to `hub-vnet` and `spoke-vnet` |
//!
//! Principals: [`FULL_ACCESS_USER`] (Owner on both subscriptions, the default token) and
//! [`NO_BASTION_READER`] (AKS Cluster User on `myaks`, Reader on the spoke subscription, nothing
//! on the hub: it cannot read the Bastion). Every cluster's `id` port 443 is relayed by the
//! Bastion emulator to the Kubernetes stand-in (`aadaks` to one of its own, in AAD mode).
//!
//! The identity emulator ([`Sandbox::identity`]) issues tokens to three more principals, each
//! Owner on both subscriptions: the managed identity [`MANAGED_IDENTITY_CLIENT_ID`] (and a
//! system-assigned one), the service principal [`SP_CLIENT_ID`] with the secret
//! [`SP_CLIENT_SECRET`], and the workload identity [`WORKLOAD_CLIENT_ID`], which trusts the
//! federated token [`WORKLOAD_FEDERATED_TOKEN`]. [`Sandbox::identity_env`] gives the variables
//! each `--auth` method reads.
//!
//! In the sandbox a Bastion's `dnsName` is `{dns name}:{port}` (the data-plane emulator's port),
//! because the emulator cannot listen on 443.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::jwt::TestClaims;
use crate::{BastionFixture, Emulator, EmulatorConfig, EmulatorError, TargetFixture, TestCa};
use bastion_core::StaticTokenCredential;
use serde_json::{Value, json};
use url::Url;

use crate::arm::{ArmEmulator, ArmEmulatorConfig, Fixtures};
use crate::identity::{ClientSecretApp, FederatedApp, IdentityEmulator, ManagedIdentity};
use crate::kube::{KubeApiServer, KubeApiServerConfig};
use bastion_arm::{ArmClient, ArmClientConfig, ArmError};

/// The tenant of both subscriptions.
pub const TENANT: &str = "33333333-3333-3333-3333-333333333333";
/// The hub subscription (Bastions, hub VNet).
pub const HUB_SUBSCRIPTION: &str = "11111111-1111-1111-1111-111111111111";
/// The spoke subscription (clusters, spoke VNet).
pub const SPOKE_SUBSCRIPTION: &str = "22222222-2222-2222-2222-222222222222";
/// Object id of the user with full access (Owner on both subscriptions).
pub const FULL_ACCESS_USER: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
/// Object id of a user who may use `myaks` but cannot read the Bastion.
pub const NO_BASTION_READER: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";

/// The hub Bastion (Standard, tunneling on).
pub const HUB_BASTION: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion";
/// A Basic Bastion.
pub const BASIC_BASTION: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/lab-rg/providers/Microsoft.Network/bastionHosts/basic-bastion";
/// A Standard Bastion with tunneling off.
pub const NO_TUNNELING_BASTION: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/lab-rg/providers/Microsoft.Network/bastionHosts/std-notunnel-bastion";
/// A Developer Bastion.
pub const DEVELOPER_BASTION: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/lab-rg/providers/Microsoft.Network/bastionHosts/dev-bastion";
/// A Premium Bastion with tunneling and IP connect.
pub const PREMIUM_BASTION: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/lab-rg/providers/Microsoft.Network/bastionHosts/premium-bastion";
/// The hub VNet.
pub const HUB_VNET: &str = "/subscriptions/11111111-1111-1111-1111-111111111111/resourceGroups/hub-rg/providers/Microsoft.Network/virtualNetworks/hub-vnet";
/// The spoke VNet.
pub const SPOKE_VNET: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/spoke-vnet";
/// The private cluster with a public FQDN (id as the AKS RP returns it).
pub const PRIVATE_CLUSTER: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks";
/// The public cluster with authorized IP ranges.
pub const PUBLIC_CLUSTER: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/pubaks";
/// The private cluster without a public FQDN.
pub const PRIVATE_CLUSTER_NO_PUBLIC_FQDN: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/privaks";
/// `privateFQDN` of `myaks`.
pub const PRIVATE_FQDN: &str =
    "myaks-dns-aae7e0f0.5cef6058-b6b5-414d-8cb1-4bd14eb0b15c.privatelink.eastus.azmk8s.io";
/// `fqdn` of `myaks`.
pub const PRIVATE_CLUSTER_PUBLIC_FQDN: &str = "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io";
/// `fqdn` of `pubaks`.
pub const PUBLIC_FQDN: &str = "pubaks-dns-3c1d9f2e.hcp.eastus.azmk8s.io";
/// `privateFQDN` of `privaks`.
pub const PRIVATE_ONLY_FQDN: &str =
    "privaks-dns-71b0c3d4.9a8b7c6d-1e2f-4a3b-8c4d-5e6f7a8b9c0d.privatelink.eastus.azmk8s.io";
/// The AAD-only private cluster (local accounts disabled, kubelogin credentials).
pub const AAD_CLUSTER: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/aadaks";
/// `privateFQDN` of `aadaks`.
pub const AAD_PRIVATE_FQDN: &str =
    "aadaks-dns-4f2a9c1e.0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e.privatelink.eastus.azmk8s.io";
/// `fqdn` of `aadaks`.
pub const AAD_PUBLIC_FQDN: &str = "aadaks-dns-8e7d6c5b.hcp.eastus.azmk8s.io";
/// The client id of the sandbox's user-assigned managed identity.
pub const MANAGED_IDENTITY_CLIENT_ID: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";
/// The object id of that identity.
pub const MANAGED_IDENTITY_OID: &str = "cccccccc-0000-4ccc-8ccc-000000000001";
/// The object id of the system-assigned managed identity.
pub const SYSTEM_IDENTITY_OID: &str = "cccccccc-0000-4ccc-8ccc-000000000002";
/// The client id of the sandbox's service principal.
pub const SP_CLIENT_ID: &str = "dddddddd-dddd-4ddd-8ddd-dddddddddddd";
/// Its client secret (a test value).
pub const SP_CLIENT_SECRET: &str = "emulator-sp-secret";
/// The object id of the service principal.
pub const SP_OID: &str = "dddddddd-0000-4ddd-8ddd-000000000001";
/// The client id of the workload identity's application.
pub const WORKLOAD_CLIENT_ID: &str = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee";
/// The object id of the workload identity.
pub const WORKLOAD_OID: &str = "eeeeeeee-0000-4eee-8eee-000000000001";
/// The federated (service-account) token the workload identity's application trusts.
pub const WORKLOAD_FEDERATED_TOKEN: &str =
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDp3b3JrbG9hZCJ9.c2E";

/// The public IP of the hub Bastion.
pub const HUB_BASTION_IP: &str = "20.1.2.3";

/// The three emulators, running.
#[derive(Debug)]
pub struct Sandbox {
    ca: TestCa,
    bastion: Emulator,
    arm: ArmEmulator,
    kube: KubeApiServer,
    aad_kube: KubeApiServer,
    identity: IdentityEmulator,
}

fn subnet(vnet: &str, name: &str, prefix: &str) -> Value {
    json!({ "id": format!("{vnet}/subnets/{name}"), "name": name,
            "properties": { "addressPrefix": prefix, "provisioningState": "Succeeded" } })
}

fn vnet(id: &str, prefix: &str, subnets: Vec<Value>, peer: Option<(&str, &str)>) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    let peerings: Vec<Value> = peer
        .map(|(peering, remote)| {
            json!({
                "id": format!("{id}/virtualNetworkPeerings/{peering}"), "name": peering,
                "properties": { "peeringState": "Connected", "peeringSyncLevel": "FullyInSync",
                                "allowVirtualNetworkAccess": true, "provisioningState": "Succeeded",
                                "remoteVirtualNetwork": { "id": remote } }
            })
        })
        .into_iter()
        .collect();
    json!({
        "id": id, "name": name, "type": "Microsoft.Network/virtualNetworks", "location": "eastus",
        "properties": { "provisioningState": "Succeeded",
                        "addressSpace": { "addressPrefixes": [prefix] },
                        "subnets": subnets, "virtualNetworkPeerings": peerings }
    })
}

fn bastion_doc(fixture: &BastionFixture, port: u16, vnet: &str, pip: Option<&str>) -> Value {
    let name = fixture.id.rsplit('/').next().unwrap_or_default();
    let dns = format!("{}:{port}", fixture.dns_name);
    if fixture.is_developer() {
        return json!({
            "id": fixture.id, "name": name, "type": "Microsoft.Network/bastionHosts",
            "location": "eastus", "sku": { "name": fixture.sku },
            "properties": { "provisioningState": "Succeeded", "dnsName": dns,
                            "virtualNetwork": { "id": vnet },
                            "networkAcls": { "ipRules": [] }, "ipConfigurations": [] }
        });
    }
    let mut ip_config = json!({
        "name": "bastionHostIpConfiguration",
        "id": format!("{}/bastionHostIpConfigurations/bastionHostIpConfiguration", fixture.id),
        "type": "Microsoft.Network/bastionHosts/bastionHostIpConfigurations",
        "properties": { "provisioningState": "Succeeded", "privateIPAllocationMethod": "Dynamic",
                        "subnet": { "id": format!("{vnet}/subnets/AzureBastionSubnet") } }
    });
    if let Some(pip) = pip {
        ip_config["properties"]["publicIPAddress"] = json!({ "id": pip });
    }
    json!({
        "id": fixture.id, "name": name, "type": "Microsoft.Network/bastionHosts",
        "location": "eastus", "etag": "W/\"6a2c1f0e-0000-0000-0000-000000000000\"", "tags": {},
        "sku": { "name": fixture.sku },
        "properties": {
            "provisioningState": "Succeeded", "dnsName": dns, "scaleUnits": 2,
            "enableTunneling": fixture.enable_tunneling, "enableIpConnect": fixture.enable_ip_connect,
            "enableShareableLink": false, "enableKerberos": false, "enableSessionRecording": false,
            "enablePrivateOnlyBastion": false, "enableFileCopy": false, "disableCopyPaste": false,
            "ipConfigurations": [ip_config]
        }
    })
}

fn pip_doc(id: &str, ip: &str) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    json!({ "id": id, "name": name, "type": "Microsoft.Network/publicIPAddresses", "location": "eastus",
            "sku": { "name": "Standard" },
            "properties": { "ipAddress": ip, "publicIPAllocationMethod": "Static", "provisioningState": "Succeeded" } })
}

struct ClusterSpec<'a> {
    id: &'a str,
    aad_only: bool,
    fqdn: Option<&'a str>,
    private_fqdn: Option<&'a str>,
    private: bool,
    public_fqdn: bool,
    authorized: &'a [&'a str],
    subnet: String,
}

fn cluster_doc(spec: &ClusterSpec<'_>) -> Value {
    let name = spec.id.rsplit('/').next().unwrap_or_default();
    let mut access = json!({});
    if spec.private {
        access = json!({ "enablePrivateCluster": true,
                         "enablePrivateClusterPublicFQDN": spec.public_fqdn,
                         "privateDNSZone": "system" });
    }
    if !spec.authorized.is_empty() {
        access["authorizedIPRanges"] = json!(spec.authorized);
    }
    let mut props = json!({
        "provisioningState": "Succeeded", "powerState": { "code": "Running" },
        "kubernetesVersion": "1.33.2", "dnsPrefix": format!("{name}-dns"),
        "agentPoolProfiles": [{ "name": "nodepool1", "count": 3, "mode": "System", "osType": "Linux",
                                "vmSize": "Standard_D4ds_v5", "vnetSubnetID": spec.subnet }],
        "apiServerAccessProfile": access,
        "nodeResourceGroup": format!("MC_aks-rg_{name}_eastus"),
        "aadProfile": { "managed": true, "enableAzureRBAC": true, "tenantID": TENANT },
        "disableLocalAccounts": false,
        "networkProfile": { "networkPlugin": "azure", "networkPluginMode": "overlay", "outboundType": "loadBalancer" }
    });
    if spec.aad_only {
        props["disableLocalAccounts"] = json!(true);
    }
    if let Some(f) = spec.fqdn {
        props["fqdn"] = json!(f);
    }
    if let Some(f) = spec.private_fqdn {
        props["privateFQDN"] = json!(f);
    }
    json!({ "id": spec.id, "name": name, "type": "Microsoft.ContainerService/ManagedClusters",
            "location": "eastus", "sku": { "name": "Base", "tier": "Free" }, "properties": props })
}

/// The private DNS zone of a private cluster (its `privateFQDN` minus the first label) in the
/// node resource group, linked to the hub and spoke VNets.
fn dns_zone_docs(cluster: &str, private_fqdn: &str) -> Vec<Value> {
    let name = cluster.rsplit('/').next().unwrap_or_default();
    let zone_name = private_fqdn
        .split_once('.')
        .map_or(private_fqdn, |(_, z)| z);
    let zone = format!(
        "/subscriptions/{SPOKE_SUBSCRIPTION}/resourceGroups/MC_aks-rg_{name}_eastus/providers/Microsoft.Network/privateDnsZones/{zone_name}"
    );
    let link = |link: &str, vnet: &str| {
        json!({ "id": format!("{zone}/virtualNetworkLinks/{link}"), "name": link,
                "type": "Microsoft.Network/privateDnsZones/virtualNetworkLinks", "location": "global",
                "properties": { "registrationEnabled": false, "virtualNetwork": { "id": vnet },
                                "virtualNetworkLinkState": "Completed", "provisioningState": "Succeeded" } })
    };
    vec![
        json!({ "id": zone, "name": zone_name, "type": "Microsoft.Network/privateDnsZones", "location": "global",
                "properties": { "provisioningState": "Succeeded", "numberOfRecordSets": 2 } }),
        link("hub-link", HUB_VNET),
        link("spoke-link", SPOKE_VNET),
    ]
}

impl Sandbox {
    /// Starts the three emulators on loopback with the hub-spoke layout.
    pub async fn start() -> Result<Sandbox, EmulatorError> {
        // The CA permits the emulators' own names (`*.test`, loopback) and exactly these AKS
        // names, nothing else (see `TestCa`).
        let ca = TestCa::permitting(&[
            PRIVATE_FQDN,
            PRIVATE_CLUSTER_PUBLIC_FQDN,
            PUBLIC_FQDN,
            PRIVATE_ONLY_FQDN,
            AAD_PRIVATE_FQDN,
            AAD_PUBLIC_FQDN,
        ])?;
        let config = |e: crate::FixtureError| EmulatorError::Config(e.to_string());

        let kube = KubeApiServer::start(
            &ca,
            KubeApiServerConfig {
                host_names: vec![
                    PRIVATE_FQDN.into(),
                    PRIVATE_CLUSTER_PUBLIC_FQDN.into(),
                    PUBLIC_FQDN.into(),
                    PRIVATE_ONLY_FQDN.into(),
                ],
                ..KubeApiServerConfig::default()
            },
        )
        .await?;
        let aad_kube = KubeApiServer::start(
            &ca,
            KubeApiServerConfig {
                host_names: vec![AAD_PRIVATE_FQDN.into(), AAD_PUBLIC_FQDN.into()],
                aad_tenant: Some(TENANT.into()),
                ..KubeApiServerConfig::default()
            },
        )
        .await?;
        let identity = IdentityEmulator::start(&ca).await?;
        identity.add_managed_identity(ManagedIdentity {
            tenant: TENANT.into(),
            client_id: Some(MANAGED_IDENTITY_CLIENT_ID.into()),
            oid: MANAGED_IDENTITY_OID.into(),
        });
        identity.add_managed_identity(ManagedIdentity {
            tenant: TENANT.into(),
            client_id: None,
            oid: SYSTEM_IDENTITY_OID.into(),
        });
        identity.add_client_secret_app(ClientSecretApp {
            tenant: TENANT.into(),
            client_id: SP_CLIENT_ID.into(),
            secret: SP_CLIENT_SECRET.into(),
            oid: SP_OID.into(),
        });
        identity.add_federated_app(FederatedApp {
            tenant: TENANT.into(),
            client_id: WORKLOAD_CLIENT_ID.into(),
            assertion: WORKLOAD_FEDERATED_TOKEN.into(),
            oid: WORKLOAD_OID.into(),
        });

        let hub = BastionFixture::new("Standard", TENANT, "hub-bastion").id(HUB_BASTION);
        let basic = BastionFixture::new("Basic", TENANT, "basic-bastion").id(BASIC_BASTION);
        let no_tunnel = BastionFixture::new("Standard", TENANT, "std-notunnel-bastion")
            .id(NO_TUNNELING_BASTION)
            .tunneling(false)
            .ip_connect(false);
        let developer =
            BastionFixture::new("Developer", TENANT, "dev-bastion").id(DEVELOPER_BASTION);
        let premium = BastionFixture::new("Premium", TENANT, "premium-bastion")
            .id(PREMIUM_BASTION)
            .tunneling(true)
            .ip_connect(true);
        let fixtures_list = [&hub, &basic, &no_tunnel, &developer, &premium];
        let mut bastion_config = EmulatorConfig::default().ca(ca.clone());
        for b in fixtures_list {
            bastion_config = bastion_config.with_bastion(b.clone());
        }
        for cluster in [
            PRIVATE_CLUSTER,
            PUBLIC_CLUSTER,
            PRIVATE_CLUSTER_NO_PUBLIC_FQDN,
        ] {
            bastion_config =
                bastion_config.with_target(TargetFixture::new(cluster, 443, kube.addr()));
        }
        bastion_config =
            bastion_config.with_target(TargetFixture::new(AAD_CLUSTER, 443, aad_kube.addr()));
        let bastion = Emulator::start(bastion_config).await?;
        let port = bastion.local_addr().port();

        let mut f = Fixtures::new();
        f.subscription(HUB_SUBSCRIPTION, TENANT)
            .subscription(SPOKE_SUBSCRIPTION, TENANT);
        let lab_vnet = format!(
            "/subscriptions/{HUB_SUBSCRIPTION}/resourceGroups/lab-rg/providers/Microsoft.Network/virtualNetworks/lab-vnet"
        );
        let hub_pip = format!(
            "/subscriptions/{HUB_SUBSCRIPTION}/resourceGroups/hub-rg/providers/Microsoft.Network/publicIPAddresses/hub-bastion-pip"
        );
        let lab_pip = |name: &str| {
            format!(
                "/subscriptions/{HUB_SUBSCRIPTION}/resourceGroups/lab-rg/providers/Microsoft.Network/publicIPAddresses/{name}-pip"
            )
        };
        let docs = vec![
            vnet(
                HUB_VNET,
                "10.0.0.0/16",
                vec![subnet(HUB_VNET, "AzureBastionSubnet", "10.0.1.0/26")],
                Some(("hub-to-spoke", SPOKE_VNET)),
            ),
            vnet(
                SPOKE_VNET,
                "10.1.0.0/16",
                vec![
                    subnet(SPOKE_VNET, "aks-nodes", "10.1.0.0/22"),
                    subnet(SPOKE_VNET, "aks-public", "10.1.4.0/22"),
                    subnet(SPOKE_VNET, "aks-private", "10.1.8.0/22"),
                ],
                Some(("spoke-to-hub", HUB_VNET)),
            ),
            vnet(
                &lab_vnet,
                "10.9.0.0/16",
                vec![subnet(&lab_vnet, "AzureBastionSubnet", "10.9.1.0/26")],
                None,
            ),
            bastion_doc(&hub, port, HUB_VNET, Some(&hub_pip)),
            pip_doc(&hub_pip, HUB_BASTION_IP),
            bastion_doc(&basic, port, &lab_vnet, Some(&lab_pip("basic-bastion"))),
            pip_doc(&lab_pip("basic-bastion"), "20.1.2.10"),
            bastion_doc(
                &no_tunnel,
                port,
                &lab_vnet,
                Some(&lab_pip("std-notunnel-bastion")),
            ),
            pip_doc(&lab_pip("std-notunnel-bastion"), "20.1.2.11"),
            bastion_doc(&developer, port, &lab_vnet, None),
            bastion_doc(&premium, port, &lab_vnet, Some(&lab_pip("premium-bastion"))),
            pip_doc(&lab_pip("premium-bastion"), "20.1.2.12"),
            cluster_doc(&ClusterSpec {
                id: AAD_CLUSTER,
                aad_only: true,
                fqdn: Some(AAD_PUBLIC_FQDN),
                private_fqdn: Some(AAD_PRIVATE_FQDN),
                private: true,
                public_fqdn: true,
                authorized: &[],
                subnet: format!("{SPOKE_VNET}/subnets/aks-nodes"),
            }),
            cluster_doc(&ClusterSpec {
                id: PRIVATE_CLUSTER,
                aad_only: false,
                fqdn: Some(PRIVATE_CLUSTER_PUBLIC_FQDN),
                private_fqdn: Some(PRIVATE_FQDN),
                private: true,
                public_fqdn: true,
                authorized: &[],
                subnet: format!("{SPOKE_VNET}/subnets/aks-nodes"),
            }),
            cluster_doc(&ClusterSpec {
                id: PUBLIC_CLUSTER,
                aad_only: false,
                fqdn: Some(PUBLIC_FQDN),
                private_fqdn: None,
                private: false,
                public_fqdn: true,
                authorized: &["20.1.2.3/32", "198.51.100.0/24"],
                subnet: format!("{SPOKE_VNET}/subnets/aks-public"),
            }),
            cluster_doc(&ClusterSpec {
                id: PRIVATE_CLUSTER_NO_PUBLIC_FQDN,
                aad_only: false,
                fqdn: None,
                private_fqdn: Some(PRIVATE_ONLY_FQDN),
                private: true,
                public_fqdn: false,
                authorized: &[],
                subnet: format!("{SPOKE_VNET}/subnets/aks-private"),
            }),
        ];
        for doc in docs
            .into_iter()
            .chain(dns_zone_docs(PRIVATE_CLUSTER, PRIVATE_FQDN))
            .chain(dns_zone_docs(
                PRIVATE_CLUSTER_NO_PUBLIC_FQDN,
                PRIVATE_ONLY_FQDN,
            ))
            .chain(dns_zone_docs(AAD_CLUSTER, AAD_PRIVATE_FQDN))
        {
            f.resource(doc).map_err(config)?;
        }
        for name in ["myaks", "pubaks", "privaks", "aadaks"] {
            f.resource_group(SPOKE_SUBSCRIPTION, &format!("MC_aks-rg_{name}_eastus"))
                .map_err(config)?;
        }

        f.principal(FULL_ACCESS_USER, TENANT, Some("alice@contoso.test"))
            .principal(NO_BASTION_READER, TENANT, Some("bob@contoso.test"));
        for sub in [HUB_SUBSCRIPTION, SPOKE_SUBSCRIPTION] {
            f.assign_role(FULL_ACCESS_USER, &format!("/subscriptions/{sub}"), "Owner")
                .map_err(config)?;
        }
        f.assign_role(
            NO_BASTION_READER,
            &format!("/subscriptions/{SPOKE_SUBSCRIPTION}"),
            "Reader",
        )
        .map_err(config)?;
        for oid in [
            MANAGED_IDENTITY_OID,
            SYSTEM_IDENTITY_OID,
            SP_OID,
            WORKLOAD_OID,
        ] {
            f.principal(oid, TENANT, None);
            for sub in [HUB_SUBSCRIPTION, SPOKE_SUBSCRIPTION] {
                f.assign_role(oid, &format!("/subscriptions/{sub}"), "Owner")
                    .map_err(config)?;
            }
        }
        f.assign_role(
            NO_BASTION_READER,
            PRIVATE_CLUSTER,
            "Azure Kubernetes Service Cluster User Role",
        )
        .map_err(config)?;

        for (id, access) in f.clusters_with_access() {
            let name = id.name().to_owned();
            kube.accept_token(&access.user_token, &format!("clusterUser_aks-rg_{name}"));
            kube.accept_token(&access.admin_token, &format!("clusterAdmin_aks-rg_{name}"));
        }

        let arm = ArmEmulator::start_with(&ca, f, ArmEmulatorConfig::default()).await?;
        Ok(Sandbox {
            ca,
            bastion,
            arm,
            kube,
            aad_kube,
            identity,
        })
    }

    /// The ARM endpoint (`https://management.emulator.test:{port}/`).
    pub fn arm_endpoint(&self) -> Url {
        self.arm.endpoint()
    }

    /// The CA certificate (PEM) every emulator's certificate chains to.
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The shared test CA.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// Every emulator host name → loopback: the ARM host, the Bastion DNS names and the data
    /// pod, and the clusters' FQDNs (which the stand-in serves on [`Sandbox::kube_addr`]).
    pub fn resolve(&self) -> Vec<(String, IpAddr)> {
        let mut out = self.arm.resolve();
        out.extend(self.bastion.resolve_overrides());
        for name in [
            PRIVATE_FQDN,
            PRIVATE_CLUSTER_PUBLIC_FQDN,
            PUBLIC_FQDN,
            PRIVATE_ONLY_FQDN,
        ] {
            out.push((name.to_owned(), self.kube_addr().ip()));
        }
        for name in [AAD_PRIVATE_FQDN, AAD_PUBLIC_FQDN] {
            out.push((name.to_owned(), self.aad_kube.addr().ip()));
        }
        out.extend(self.identity.resolve());
        let mut seen = Vec::new();
        out.retain(|(n, _)| {
            let key = n.to_ascii_lowercase();
            let fresh = !seen.contains(&key);
            seen.push(key);
            fresh
        });
        out
    }

    /// An [`ArmClientConfig`] for the ARM emulator (custom cloud, test CA, every resolve
    /// override, quick retries).
    pub fn arm_client_config(&self) -> ArmClientConfig {
        let mut config = self.arm.client_config();
        config.https.resolve = self.resolve();
        config
    }

    /// An ARM client acting as `principal` (see [`FULL_ACCESS_USER`], [`NO_BASTION_READER`]).
    // The error is `ArmClient::new`'s own, passed through as it is.
    #[allow(clippy::result_large_err)]
    pub fn arm_client(&self, principal: &str) -> Result<ArmClient, ArmError> {
        let token = self.token_for(principal).ok_or_else(|| {
            ArmError::InvalidArgument(format!("no sandbox principal {principal}"))
        })?;
        ArmClient::new(
            self.arm_client_config(),
            Arc::new(StaticTokenCredential::from_jwt(token)),
        )
    }

    /// A valid ARM token (one hour) for a principal of the sandbox.
    pub fn token_for(&self, principal: &str) -> Option<String> {
        self.arm.token_for(principal)
    }

    /// The full-access user's token: what `bastion demo` uses.
    pub fn default_token(&self) -> String {
        TestClaims::new(TENANT, FULL_ACCESS_USER)
            .upn("alice@contoso.test")
            .mint()
    }

    /// The ARM emulator, for faults and request assertions.
    pub fn arm(&self) -> &ArmEmulator {
        &self.arm
    }

    /// The Bastion data-plane emulator, for session assertions.
    pub fn bastion(&self) -> &Emulator {
        &self.bastion
    }

    /// The Kubernetes API stand-in.
    pub fn kube(&self) -> &KubeApiServer {
        &self.kube
    }

    /// The AAD cluster's Kubernetes stand-in (AKS AAD tokens only).
    pub fn aad_kube(&self) -> &KubeApiServer {
        &self.aad_kube
    }

    /// The token issuer (Entra ID and the managed-identity endpoint).
    pub fn identity(&self) -> &IdentityEmulator {
        &self.identity
    }

    /// The environment variables `--auth METHOD` reads to get tokens from the identity
    /// emulator (`managed-identity`, `client-secret`, `workload-identity`), with
    /// `AZURE_AUTHORITY_HOST` (the authority of the emulated cloud). `federated_token_file`
    /// is where the caller wrote [`WORKLOAD_FEDERATED_TOKEN`] (workload identity only).
    pub fn identity_env(
        &self,
        method: &str,
        federated_token_file: Option<&std::path::Path>,
    ) -> Vec<(String, String)> {
        let mut env = vec![(
            "AZURE_AUTHORITY_HOST".to_owned(),
            self.identity
                .authority()
                .as_str()
                .trim_end_matches('/')
                .to_owned(),
        )];
        let pairs: &[(&str, &str)] = match method {
            "managed-identity" => &[("IDENTITY_HEADER", crate::identity::IDENTITY_HEADER)],
            "client-secret" => &[
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", SP_CLIENT_ID),
                ("AZURE_CLIENT_SECRET", SP_CLIENT_SECRET),
            ],
            "workload-identity" => &[
                ("AZURE_TENANT_ID", TENANT),
                ("AZURE_CLIENT_ID", WORKLOAD_CLIENT_ID),
            ],
            _ => &[],
        };
        env.extend(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        if method == "managed-identity" {
            env.push((
                "IDENTITY_ENDPOINT".to_owned(),
                self.identity.identity_endpoint(),
            ));
        }
        if let (Some(file), "workload-identity") = (federated_token_file, method) {
            env.push((
                "AZURE_FEDERATED_TOKEN_FILE".to_owned(),
                file.display().to_string(),
            ));
        }
        env
    }

    /// Where the Kubernetes stand-in listens (the Bastion relays cluster port 443 here).
    pub fn kube_addr(&self) -> SocketAddr {
        self.kube.addr()
    }

    /// The Bastion data-plane endpoint (`{dns name}:{port}`) of a sandbox Bastion id, as its
    /// ARM `dnsName` carries it.
    pub fn bastion_endpoint(&self, bastion_id: &str) -> Option<String> {
        let fixture = self
            .bastion
            .config()
            .bastions
            .iter()
            .find(|b| b.id.eq_ignore_ascii_case(bastion_id))?;
        Some(self.bastion.endpoint_for(&fixture.dns_name))
    }

    /// Stops the Bastion emulator (bounded wait) and the other servers.
    pub async fn shutdown(self) {
        self.bastion.shutdown().await;
    }
}
