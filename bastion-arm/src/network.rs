//! The network pre-flight checks N2–N5 as pure functions over fetched models (see
//! docs/arm-and-aks.md#network-checks), and the read of the cluster's VNets that they and the
//! Bastion discovery share.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::ArmError;
use crate::model::{ManagedCluster, PublicIpAddress, VirtualNetwork, VirtualNetworkLink};
use crate::read::ArmRead;
use crate::report::{Finding, Status};
use crate::resource_id::ResourceId;

/// A resource that was looked up for a check: found, absent, or unreadable (with the reason).
#[derive(Debug, Clone)]
pub enum Lookup<T> {
    /// Read successfully.
    Found(T),
    /// There is none (e.g. a private-only Bastion has no public IP).
    Absent,
    /// The read failed (403, 404, …): the check becomes UNKNOWN.
    Unreadable(String),
}

impl<T> Lookup<T> {
    /// The result of a read: `Found`, `Absent` on not-found, `Unreadable` on any other error.
    pub(crate) fn from_read(read: Result<T, ArmError>) -> Self {
        match read {
            Ok(v) => Lookup::Found(v),
            Err(e) if e.is_not_found() => Lookup::Absent,
            Err(e) => Lookup::Unreadable(e.brief()),
        }
    }
}

/// The cluster's VNets, each with how its read went: from the agent pools, else the managed
/// VNet(s) of the node resource group. What could not be read is also said in `notes`.
pub(crate) async fn cluster_vnets<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    notes: &mut Vec<String>,
) -> Vec<(ResourceId, Lookup<VirtualNetwork>)> {
    let ids = cluster.vnet_ids();
    if !ids.is_empty() {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let read = arm.get_vnet(&id).await;
            if let Err(e) = &read {
                notes.push(format!(
                    "cluster VNet {} could not be read: {}",
                    id.name(),
                    e.brief()
                ));
            }
            let lookup = Lookup::from_read(read);
            out.push((id, lookup));
        }
        return out;
    }
    let Some(nrg) = cluster.properties.node_resource_group.as_deref() else {
        notes.push("the cluster has no node resource group, so its VNet is unknown".into());
        return Vec::new();
    };
    match arm
        .list_vnets_in_group(cluster.id.subscription(), nrg)
        .await
    {
        Ok(vnets) => {
            if vnets.is_empty() {
                notes.push(format!("no VNet found in the node resource group {nrg}"));
            }
            vnets
                .into_iter()
                .map(|v| (v.id.clone(), Lookup::Found(v)))
                .collect()
        }
        Err(e) => {
            notes.push(format!(
                "the managed VNet in {nrg} could not be listed: {}",
                e.brief()
            ));
            Vec::new()
        }
    }
}

/// How two VNets relate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VnetRelation {
    /// The same VNet.
    Same,
    /// A `Connected` peering exists (seen from either side).
    Peered,
    /// Not the same and no `Connected` peering; the text says what was seen.
    NotPeered(String),
    /// Neither VNet could be read.
    Unknown(String),
}

/// Relates the AKS VNet to the Bastion VNet. One readable side is enough: a peering is only
/// `Connected` when both sides exist.
pub fn vnet_relation(
    aks_vnet_id: &ResourceId,
    aks_vnet: &Lookup<VirtualNetwork>,
    bastion_vnet_id: &ResourceId,
    bastion_vnet: &Lookup<VirtualNetwork>,
) -> VnetRelation {
    if aks_vnet_id == bastion_vnet_id {
        return VnetRelation::Same;
    }
    let mut seen = Vec::new();
    let mut reasons = Vec::new();
    for (lookup, id, remote) in [
        (aks_vnet, aks_vnet_id, bastion_vnet_id),
        (bastion_vnet, bastion_vnet_id, aks_vnet_id),
    ] {
        match lookup {
            Lookup::Found(v) => {
                if v.connected_peers().contains(&remote) {
                    return VnetRelation::Peered;
                }
                seen.push(match v.peering_state_to(remote) {
                    Some(state) => format!(
                        "the peering from {} to {} is {state}, not Connected",
                        id.name(),
                        remote.name()
                    ),
                    None => format!("{} has no peering to {}", id.name(), remote.name()),
                });
            }
            Lookup::Absent => reasons.push(format!("{} does not exist", id.name())),
            Lookup::Unreadable(r) => reasons.push(format!("{} could not be read: {r}", id.name())),
        }
    }
    if seen.is_empty() {
        VnetRelation::Unknown(reasons.join("; "))
    } else {
        VnetRelation::NotPeered(seen.join("; "))
    }
}

/// N2 (private clusters): the Bastion VNet equals or is directly peered with every AKS VNet.
/// `aks_vnets` pairs each AKS VNet id with its lookup. `None` for public clusters.
pub fn check_vnet_peering(
    cluster: &ManagedCluster,
    aks_vnets: &[(ResourceId, Lookup<VirtualNetwork>)],
    bastion_vnet_id: Option<&ResourceId>,
    bastion_vnet: &Lookup<VirtualNetwork>,
) -> Option<Finding> {
    if !cluster.is_private() {
        return None;
    }
    let title = "Bastion VNet reaches the private cluster's VNet";
    let unknown = |detail: String| Some(Finding::new("N2", title, Status::Unknown, detail));
    let Some(bastion_vnet_id) = bastion_vnet_id else {
        return unknown(
            "the Bastion's VNet could not be determined from its ipConfigurations".into(),
        );
    };
    if aks_vnets.is_empty() {
        return unknown("the cluster's VNet could not be determined".into());
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    let mut unknowns = Vec::new();
    for (id, lookup) in aks_vnets {
        match vnet_relation(id, lookup, bastion_vnet_id, bastion_vnet) {
            VnetRelation::Same => {
                ok.push(format!("the Bastion is in the cluster VNet {}", id.name()))
            }
            VnetRelation::Peered => ok.push(format!(
                "{} is peered (Connected) with the Bastion VNet {}",
                id.name(),
                bastion_vnet_id.name()
            )),
            VnetRelation::NotPeered(why) => bad.push((id, why)),
            VnetRelation::Unknown(why) => unknowns.push(why),
        }
    }
    let fix = |vnet: &ResourceId| {
        format!(
            "peer the VNets in both directions: az network vnet peering create --name to-{b} --resource-group {arg} --vnet-name {a} --remote-vnet {bid} --allow-vnet-access \
             and az network vnet peering create --name to-{a} --resource-group {brg} --vnet-name {b} --remote-vnet {aid} --allow-vnet-access",
            a = vnet.name(),
            arg = vnet.resource_group().unwrap_or_default(),
            aid = vnet.as_str(),
            b = bastion_vnet_id.name(),
            brg = bastion_vnet_id.resource_group().unwrap_or_default(),
            bid = bastion_vnet_id.as_str(),
        )
    };
    if let Some((first, _)) = bad.first() {
        let details: Vec<String> = bad.iter().map(|(_, w)| w.clone()).collect();
        let status = if ok.is_empty() {
            Status::Fail
        } else {
            Status::Warn
        };
        let mut detail = format!(
            "Bastion VNet not peered with the cluster VNet: {} (direct peering is required)",
            details.join("; ")
        );
        if !ok.is_empty() {
            detail.push_str(&format!(
                "; but {} (the API server endpoint may be in that VNet)",
                ok.join("; ")
            ));
        }
        return Some(Finding::new("N2", title, status, detail).with_fix(fix(first)));
    }
    if !unknowns.is_empty() {
        return unknown(unknowns.join("; "));
    }
    Some(Finding::new("N2", title, Status::Pass, ok.join("; ")))
}

/// N3 (private clusters with the public FQDN disabled): the API server's private DNS zone is
/// linked to the Bastion VNet, so the Bastion can resolve `privateFQDN`. `links` are the zone's
/// links (`Absent` when the zone could not be located). `None` when the check does not apply.
pub fn check_private_dns(
    cluster: &ManagedCluster,
    bastion_vnet_id: Option<&ResourceId>,
    links: &Lookup<Vec<VirtualNetworkLink>>,
) -> Option<Finding> {
    if !cluster.public_fqdn_disabled() {
        return None;
    }
    let title = "Bastion VNet resolves the private API server name (public FQDN disabled)";
    let name = cluster.display_name();
    let rg = cluster.resource_group();
    let zone = cluster.private_dns_zone_id();
    let public_fix =
        format!("az aks update --name {name} --resource-group {rg} --enable-public-fqdn");
    let link_fix = |vnet: &ResourceId| match &zone {
        Some(z) => format!(
            "link the private DNS zone to the Bastion VNet: az network private-dns link vnet create --resource-group {} --zone-name {} --name {}-link --virtual-network {} --registration-enabled false{}; or re-enable the public FQDN: {public_fix}",
            z.resource_group().unwrap_or_default(),
            z.name(),
            vnet.name(),
            vnet.as_str(),
            if z.subscription() != vnet.subscription() {
                format!(" --subscription {}", z.subscription())
            } else {
                String::new()
            }
        ),
        None => format!(
            "make {} resolvable from the Bastion VNet {}, or re-enable the public FQDN: {public_fix}",
            cluster
                .properties
                .private_fqdn
                .as_deref()
                .unwrap_or("the private FQDN"),
            vnet.name()
        ),
    };
    let unsupported = "a private cluster with the public FQDN disabled is only reachable through a Bastion whose VNet can resolve the private FQDN";
    let private_dns_none = cluster
        .properties
        .api_server_access_profile
        .private_dns_zone
        .as_deref()
        .is_some_and(|z| z.trim().eq_ignore_ascii_case("none"));
    if private_dns_none {
        return Some(
            Finding::new(
                "N3",
                title,
                Status::Unknown,
                format!("{unsupported}; privateDNSZone is 'none' (custom DNS), which this tool cannot check"),
            )
            .with_fix(format!(
                "make sure the Bastion VNet's DNS resolves {}, or re-enable the public FQDN: {public_fix}",
                cluster.properties.private_fqdn.as_deref().unwrap_or("the private FQDN")
            )),
        );
    }
    let Some(vnet) = bastion_vnet_id else {
        return Some(
            Finding::new(
                "N3",
                title,
                Status::Unknown,
                format!("{unsupported}; the Bastion's VNet could not be determined"),
            )
            .with_fix(public_fix),
        );
    };
    let links = match links {
        Lookup::Found(l) => l,
        Lookup::Absent => {
            return Some(
                Finding::new(
                    "N3",
                    title,
                    Status::Unknown,
                    format!("{unsupported}; the cluster's private DNS zone could not be located"),
                )
                .with_fix(link_fix(vnet)),
            );
        }
        Lookup::Unreadable(r) => {
            return Some(
                Finding::new(
                    "N3",
                    title,
                    Status::Unknown,
                    format!("{unsupported}; the private DNS zone links could not be read: {r}"),
                )
                .with_fix(link_fix(vnet)),
            );
        }
    };
    let link = links.iter().find(|l| {
        l.properties
            .virtual_network
            .as_ref()
            .is_some_and(|v| &v.id == vnet)
    });
    match link {
        Some(l)
            if l.properties
                .virtual_network_link_state
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("Completed")) =>
        {
            // Reachable, but outside what Microsoft supports for Bastion + AKS: say so.
            Some(
                Finding::new(
                    "N3",
                    title,
                    Status::Warn,
                    format!(
                        "Microsoft documents private clusters with the public FQDN disabled as unsupported through Bastion; this one can work because its private DNS zone is linked to the Bastion VNet {} (link {})",
                        vnet.name(),
                        l.name.as_deref().unwrap_or("?")
                    ),
                )
                .with_fix(format!(
                    "for the supported configuration, re-enable the public FQDN: {public_fix}"
                )),
            )
        }
        Some(l) => Some(
            Finding::new(
                "N3",
                title,
                Status::Fail,
                format!(
                    "{unsupported}; the zone link to {} is {}, not Completed",
                    vnet.name(),
                    l.properties
                        .virtual_network_link_state
                        .as_deref()
                        .unwrap_or("in an unknown state")
                ),
            )
            .with_fix(format!(
                "wait for the link to complete, or re-enable the public FQDN: {public_fix}"
            )),
        ),
        None => Some(
            Finding::new(
                "N3",
                title,
                Status::Fail,
                format!(
                    "{unsupported}; the cluster's private DNS zone has no link to the Bastion VNet {}, so the Bastion cannot resolve the API server (unsupported configuration)",
                    vnet.name()
                ),
            )
            .with_fix(link_fix(vnet)),
        ),
    }
}

/// Parses an `authorizedIPRanges` entry: a CIDR, or a bare address (as /32 or /128).
pub fn parse_range(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `ip` is inside any of `ranges` (unparseable entries are skipped).
pub fn ip_in_ranges(ip: IpAddr, ranges: &[String]) -> bool {
    ranges
        .iter()
        .filter_map(|r| parse_range(r))
        .any(|net| net.contains(&ip))
}

/// N4 (public clusters with `authorizedIPRanges`): the Bastion's public IP is allowed.
/// `None` when the check does not apply.
pub fn check_authorized_ip_ranges(
    cluster: &ManagedCluster,
    bastion_pip: &Lookup<PublicIpAddress>,
) -> Option<Finding> {
    let ranges = &cluster
        .properties
        .api_server_access_profile
        .authorized_ip_ranges;
    if cluster.is_private() || ranges.is_empty() {
        return None;
    }
    let title = "Bastion public IP is in the cluster's authorized IP ranges";
    let unknown = |detail: String| Some(Finding::new("N4", title, Status::Unknown, detail));
    let pip = match bastion_pip {
        Lookup::Found(p) => p,
        Lookup::Absent => {
            return unknown(
                "the Bastion has no public IP (private-only), so its source address is unknown"
                    .into(),
            );
        }
        Lookup::Unreadable(r) => {
            return unknown(format!("the Bastion public IP could not be read: {r}"));
        }
    };
    let Some(text) = pip.properties.ip_address.as_deref() else {
        return unknown(format!(
            "public IP {} has no address allocated",
            pip.id.name()
        ));
    };
    let Ok(ip) = text.trim().parse::<IpAddr>() else {
        return unknown(format!(
            "public IP {} has an unparseable address {text:?}",
            pip.id.name()
        ));
    };
    let bad: Vec<&str> = ranges
        .iter()
        .filter(|r| parse_range(r).is_none())
        .map(String::as_str)
        .collect();
    let note = if bad.is_empty() {
        String::new()
    } else {
        format!(" (ignored unparseable entries: {})", bad.join(", "))
    };
    if ip_in_ranges(ip, ranges) {
        return Some(Finding::new(
            "N4",
            title,
            Status::Pass,
            format!("{ip} is inside {}{note}", ranges.join(",")),
        ));
    }
    let prefix = if ip.is_ipv4() { 32 } else { 128 };
    Some(
        Finding::new(
            "N4",
            title,
            Status::Fail,
            format!(
                "the Bastion public IP {ip} is not in the authorized IP ranges {}{note}; you need to add the public IP address of the Bastion to the list of authorized IP ranges of your cluster",
                ranges.join(",")
            ),
        )
        .with_fix(format!(
            "az aks update --resource-group {} --name {} --api-server-authorized-ip-ranges {},{ip}/{prefix}",
            cluster.resource_group(),
            cluster.display_name(),
            ranges.iter().map(|r| r.trim()).collect::<Vec<_>>().join(",")
        )),
    )
}

/// N5: AKS Automatic or a read-only node resource group (reported unsupported, unverified).
pub fn check_cluster_kind(cluster: &ManagedCluster) -> Option<Finding> {
    let mut reasons = Vec::new();
    if cluster.is_automatic() {
        reasons.push("the cluster is AKS Automatic");
    }
    if cluster.node_resource_group_read_only() {
        reasons.push("the node resource group is locked down (restrictionLevel ReadOnly)");
    }
    if reasons.is_empty() {
        return None;
    }
    Some(Finding::new(
        "N5",
        "Cluster configuration known to work with Bastion",
        Status::Warn,
        format!(
            "{}; Bastion tunnels to such clusters have been reported not to work (unverified), and a Bastion cannot be created in a read-only node resource group",
            reasons.join(" and ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HUB: &str = "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/virtualNetworks/hub-vnet";
    const SPOKE: &str = "/subscriptions/2222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/spoke-vnet";

    fn rid(s: &str) -> ResourceId {
        s.parse().unwrap()
    }

    fn vnet(id: &str, peers: &[(&str, &str)]) -> VirtualNetwork {
        let peerings: Vec<_> = peers
            .iter()
            .map(|(remote, state)| json!({"name": "p", "properties": {"peeringState": state, "remoteVirtualNetwork": {"id": remote}}}))
            .collect();
        serde_json::from_value(json!({"id": id, "name": rid(id).name(), "properties": {
            "addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
            "subnets": [{"id": format!("{id}/subnets/aks-nodes"), "name": "aks-nodes"}],
            "virtualNetworkPeerings": peerings}}))
        .unwrap()
    }

    fn cluster(private: bool) -> ManagedCluster {
        let mut v = json!({
          "id": "/subscriptions/2222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks",
          "name": "myaks",
          "properties": {
            "fqdn": "myaks-dns-ee788a1f.hcp.eastus.azmk8s.io",
            "nodeResourceGroup": "MC_aks-rg_myaks_eastus",
            "agentPoolProfiles": [{"name": "np", "vnetSubnetID": format!("{SPOKE}/subnets/aks-nodes")}],
            "apiServerAccessProfile": {}
          }
        });
        if private {
            v["properties"]["privateFQDN"] =
                json!("myaks-dns-aae7e0f0.5cef6058.privatelink.eastus.azmk8s.io");
            v["properties"]["apiServerAccessProfile"] = json!({"enablePrivateCluster": true, "enablePrivateClusterPublicFQDN": true, "privateDNSZone": "system"});
        }
        serde_json::from_value(v).unwrap()
    }

    fn pip(ip: Option<&str>) -> PublicIpAddress {
        serde_json::from_value(json!({"id": "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/publicIPAddresses/hub-bastion-pip",
            "properties": {"ipAddress": ip, "publicIPAllocationMethod": "Static"}}))
        .unwrap()
    }

    fn aks_vnets(l: Lookup<VirtualNetwork>) -> Vec<(ResourceId, Lookup<VirtualNetwork>)> {
        vec![(rid(SPOKE), l)]
    }

    #[test]
    fn spec_vnet_shape_parses() {
        let v: VirtualNetwork = serde_json::from_value(json!({"id": SPOKE,"properties":{"addressSpace":{"addressPrefixes":["10.1.0.0/16"]},
            "subnets":[{"id": format!("{SPOKE}/subnets/aks-nodes"),"name":"aks-nodes"}],
            "virtualNetworkPeerings":[{"name":"spoke-to-hub","properties":{"peeringState":"Connected",
            "remoteVirtualNetwork":{"id": HUB}}}]}})).unwrap();
        assert_eq!(v.properties.address_space.address_prefixes, ["10.1.0.0/16"]);
        assert_eq!(v.connected_peers(), vec![&rid(HUB)]);
        let link: VirtualNetworkLink = serde_json::from_value(json!({"id": "/subscriptions/2222/resourceGroups/MC/providers/Microsoft.Network/privateDnsZones/z/virtualNetworkLinks/hub-link","name":"hub-link","properties":{"registrationEnabled":false,
            "virtualNetwork":{"id": HUB},"virtualNetworkLinkState":"Completed","provisioningState":"Succeeded"}})).unwrap();
        assert_eq!(link.properties.virtual_network.unwrap().id, rid(HUB));
    }

    #[test]
    fn n2_same_vnet_passes_case_insensitively() {
        let f = check_vnet_peering(
            &cluster(true),
            &aks_vnets(Lookup::Unreadable("403".into())),
            Some(&rid(&SPOKE
                .to_uppercase()
                .replace("/SUBSCRIPTIONS", "/subscriptions"))),
            &Lookup::Unreadable("403".into()),
        )
        .unwrap();
        assert_eq!(f.status, Status::Pass, "{f:?}");
    }

    #[test]
    fn n2_peering_either_direction() {
        let c = cluster(true);
        // Peering seen on the AKS side only.
        let f = check_vnet_peering(
            &c,
            &aks_vnets(Lookup::Found(vnet(SPOKE, &[(HUB, "Connected")]))),
            Some(&rid(HUB)),
            &Lookup::Unreadable("403".into()),
        )
        .unwrap();
        assert_eq!(f.status, Status::Pass);
        // Seen on the Bastion side only, with different casing of the remote id.
        let f = check_vnet_peering(
            &c,
            &aks_vnets(Lookup::Unreadable("403".into())),
            Some(&rid(HUB)),
            &Lookup::Found(vnet(
                HUB,
                &[(&SPOKE.replace("spoke-vnet", "SPOKE-VNET"), "Connected")],
            )),
        )
        .unwrap();
        assert_eq!(f.status, Status::Pass);
    }

    #[test]
    fn n2_not_connected_fails_with_fix() {
        let f = check_vnet_peering(
            &cluster(true),
            &aks_vnets(Lookup::Found(vnet(SPOKE, &[(HUB, "Initiated")]))),
            Some(&rid(HUB)),
            &Lookup::Found(vnet(HUB, &[])),
        )
        .unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail
                .contains("Bastion VNet not peered with the cluster VNet")
        );
        assert!(f.detail.contains("is Initiated, not Connected"));
        assert!(f.detail.contains("hub-vnet has no peering to spoke-vnet"));
        assert!(f.fix.unwrap().contains("az network vnet peering create"));
    }

    #[test]
    fn n2_unknown_and_not_applicable() {
        let f = check_vnet_peering(
            &cluster(true),
            &aks_vnets(Lookup::Unreadable("AuthorizationFailed".into())),
            Some(&rid(HUB)),
            &Lookup::Unreadable("AuthorizationFailed".into()),
        )
        .unwrap();
        assert_eq!(f.status, Status::Unknown);
        assert!(f.detail.contains("AuthorizationFailed"));
        assert!(
            check_vnet_peering(&cluster(false), &[], Some(&rid(HUB)), &Lookup::Absent).is_none()
        );
        let f = check_vnet_peering(&cluster(true), &[], Some(&rid(HUB)), &Lookup::Absent).unwrap();
        assert_eq!(f.status, Status::Unknown);
    }

    #[test]
    fn n2_partial_reachability_warns() {
        let other = "/subscriptions/2222/resourceGroups/spoke-rg/providers/Microsoft.Network/virtualNetworks/other";
        let vnets = vec![
            (
                rid(SPOKE),
                Lookup::Found(vnet(SPOKE, &[(HUB, "Connected")])),
            ),
            (rid(other), Lookup::Found(vnet(other, &[]))),
        ];
        let f =
            check_vnet_peering(&cluster(true), &vnets, Some(&rid(HUB)), &Lookup::Absent).unwrap();
        assert_eq!(f.status, Status::Warn);
    }

    fn fqdn_disabled(zone: &str) -> ManagedCluster {
        let mut c = cluster(true);
        c.properties
            .api_server_access_profile
            .enable_private_cluster_public_fqdn = Some(false);
        c.properties.api_server_access_profile.private_dns_zone = Some(zone.into());
        c
    }

    fn link(vnet: &str, state: &str) -> VirtualNetworkLink {
        serde_json::from_value(json!({"name": "hub-link", "properties": {"virtualNetwork": {"id": vnet}, "virtualNetworkLinkState": state}})).unwrap()
    }

    #[test]
    fn n3_only_for_public_fqdn_disabled() {
        assert!(check_private_dns(&cluster(true), Some(&rid(HUB)), &Lookup::Absent).is_none());
        assert!(check_private_dns(&cluster(false), Some(&rid(HUB)), &Lookup::Absent).is_none());
    }

    #[test]
    fn n3_link_to_bastion_vnet_works_but_is_flagged_as_unsupported() {
        let f = check_private_dns(
            &fqdn_disabled("system"),
            Some(&rid(HUB)),
            &Lookup::Found(vec![link(SPOKE, "Completed"), link(HUB, "Completed")]),
        )
        .unwrap();
        assert_eq!(f.status, Status::Warn, "{f:?}");
        assert!(f.detail.contains("unsupported"), "{f:?}");
        assert!(f.fix.unwrap().contains("--enable-public-fqdn"));
    }

    #[test]
    fn n3_missing_link_is_unsupported_with_both_fixes() {
        let f = check_private_dns(
            &fqdn_disabled("system"),
            Some(&rid(HUB)),
            &Lookup::Found(vec![link(SPOKE, "Completed")]),
        )
        .unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.contains("unsupported configuration"));
        let fix = f.fix.unwrap();
        assert!(fix.contains("az network private-dns link vnet create --resource-group MC_aks-rg_myaks_eastus --zone-name 5cef6058.privatelink.eastus.azmk8s.io"), "{fix}");
        assert!(fix.contains(&format!("--virtual-network {HUB}")));
        assert!(fix.contains("--subscription 2222"));
        assert!(
            fix.contains("az aks update --name myaks --resource-group aks-rg --enable-public-fqdn")
        );
    }

    #[test]
    fn n3_incomplete_link_none_zone_and_unreadable() {
        let f = check_private_dns(
            &fqdn_disabled("system"),
            Some(&rid(HUB)),
            &Lookup::Found(vec![link(HUB, "InProgress")]),
        )
        .unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.contains("is InProgress, not Completed"));
        let f =
            check_private_dns(&fqdn_disabled("none"), Some(&rid(HUB)), &Lookup::Absent).unwrap();
        assert_eq!(f.status, Status::Unknown);
        assert!(f.detail.contains("'none'"));
        assert!(f.fix.unwrap().contains("--enable-public-fqdn"));
        let f = check_private_dns(
            &fqdn_disabled("system"),
            Some(&rid(HUB)),
            &Lookup::Unreadable("403 AuthorizationFailed".into()),
        )
        .unwrap();
        assert_eq!(f.status, Status::Unknown);
        assert!(f.detail.contains("403"));
    }

    #[test]
    fn range_parsing_and_containment() {
        let ranges: Vec<String> = ["20.1.2.3", "198.51.100.0/24", "2001:db8::/32", "junk"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(ip_in_ranges("20.1.2.3".parse().unwrap(), &ranges));
        assert!(!ip_in_ranges("20.1.2.4".parse().unwrap(), &ranges));
        assert!(ip_in_ranges("198.51.100.200".parse().unwrap(), &ranges));
        assert!(ip_in_ranges("2001:db8:1::5".parse().unwrap(), &ranges));
        assert!(!ip_in_ranges("2001:db9::5".parse().unwrap(), &ranges));
        assert_eq!(
            parse_range(" 10.0.0.0/8 ").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(parse_range("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert!(parse_range("10.0.0.0/33").is_none());
    }

    fn with_ranges(ranges: &[&str]) -> ManagedCluster {
        let mut c = cluster(false);
        c.properties.api_server_access_profile.authorized_ip_ranges =
            ranges.iter().map(|s| s.to_string()).collect();
        c
    }

    #[test]
    fn n4_pass_fail_and_exact_fix() {
        let c = with_ranges(&["20.1.2.3/32", "198.51.100.0/24"]);
        let f = check_authorized_ip_ranges(&c, &Lookup::Found(pip(Some("20.1.2.3")))).unwrap();
        assert_eq!(f.status, Status::Pass);
        let f = check_authorized_ip_ranges(&c, &Lookup::Found(pip(Some("20.9.9.9")))).unwrap();
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail
                .contains("add the public IP address of the Bastion")
        );
        assert_eq!(
            f.fix.unwrap(),
            "az aks update --resource-group aks-rg --name myaks --api-server-authorized-ip-ranges 20.1.2.3/32,198.51.100.0/24,20.9.9.9/32"
        );
        let c6 = with_ranges(&["2001:db8::/64"]);
        let f = check_authorized_ip_ranges(&c6, &Lookup::Found(pip(Some("2001:db9::1")))).unwrap();
        assert!(f.fix.unwrap().ends_with("2001:db8::/64,2001:db9::1/128"));
    }

    #[test]
    fn n4_unknown_and_not_applicable() {
        let c = with_ranges(&["20.1.2.3/32"]);
        let f = check_authorized_ip_ranges(&c, &Lookup::Absent).unwrap();
        assert_eq!(f.status, Status::Unknown);
        assert!(f.detail.contains("private-only"));
        let f = check_authorized_ip_ranges(&c, &Lookup::Found(pip(None))).unwrap();
        assert_eq!(f.status, Status::Unknown);
        let f = check_authorized_ip_ranges(&c, &Lookup::Unreadable("403".into())).unwrap();
        assert_eq!(f.status, Status::Unknown);
        assert!(check_authorized_ip_ranges(&with_ranges(&[]), &Lookup::Absent).is_none());
        // Ignored for private clusters.
        let mut p = cluster(true);
        p.properties.api_server_access_profile.authorized_ip_ranges = vec!["1.2.3.4/32".into()];
        assert!(check_authorized_ip_ranges(&p, &Lookup::Found(pip(Some("9.9.9.9")))).is_none());
    }

    #[test]
    fn n5_warns_for_automatic_or_read_only() {
        assert!(check_cluster_kind(&cluster(true)).is_none());
        let mut c = cluster(true);
        c.sku = serde_json::from_value(json!({"name": "Automatic"})).unwrap();
        let f = check_cluster_kind(&c).unwrap();
        assert_eq!(f.status, Status::Warn);
        assert!(f.detail.contains("AKS Automatic"));
        let mut c = cluster(true);
        c.properties.node_resource_group_profile =
            serde_json::from_value(json!({"restrictionLevel": "ReadOnly"})).unwrap();
        assert!(check_cluster_kind(&c).unwrap().detail.contains("ReadOnly"));
    }
}
