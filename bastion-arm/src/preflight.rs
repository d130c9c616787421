//! The pre-flight run: the native-client gate, the role checks and the network checks, read
//! through [`ArmRead`] into one [`Report`] (see docs/arm-and-aks.md#pre-flight-report).

use std::collections::HashMap;

use crate::access::{self, ScopeKind, ScopePermissions};
use crate::bastion::Usage;
use crate::model::{BastionHost, ManagedCluster, VirtualNetworkLink};
use crate::network::{self, Lookup};
use crate::read::ArmRead;
use crate::report::{Finding, Report, Status};
use crate::resource_id::ResourceId;

/// N1: the native-client gate for `usage`, plus N6 (WARN) for the Bastion's state warnings.
pub fn gate_findings(bastion: &BastionHost, usage: Usage) -> Vec<Finding> {
    let title = "Bastion SKU and native client support";
    let mut out = Vec::new();
    match bastion.native_client_support(usage) {
        Ok(plan) => {
            out.push(Finding::new(
                "N1",
                title,
                Status::Pass,
                format!(
                    "Bastion '{}' is {} SKU with native client support; endpoint {}",
                    bastion.display_name(),
                    bastion.sku().map_or("unknown", |s| s.as_str()),
                    plan.host
                ),
            ));
            if !plan.warnings.is_empty() {
                out.push(Finding::new(
                    "N6",
                    "Bastion state",
                    Status::Warn,
                    plan.warnings.join("; "),
                ));
            }
        }
        Err(e) => {
            let mut f = Finding::new("N1", title, Status::Fail, e.to_string());
            f.fix = e.fix();
            out.push(f);
        }
    }
    out
}

/// The links of the API server's private DNS zone (N3), with the fallback of finding the zone
/// among the node resource group's zones by suffix of `privateFQDN` (see
/// docs/arm-and-aks.md#n3-private-dns-link).
async fn zone_links<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
) -> Lookup<Vec<VirtualNetworkLink>> {
    if let Some(zone) = cluster.private_dns_zone_id() {
        match arm.list_zone_links(&zone).await {
            Ok(l) => return Lookup::Found(l),
            Err(e) if !e.is_not_found() => return Lookup::Unreadable(e.brief()),
            Err(_) => {}
        }
    }
    let (Some(nrg), Some(fqdn)) = (
        cluster.properties.node_resource_group.as_deref(),
        cluster.properties.private_fqdn.as_deref(),
    ) else {
        return Lookup::Absent;
    };
    let fqdn = fqdn.to_ascii_lowercase();
    let zones = match arm
        .list_private_dns_zones(cluster.id.subscription(), nrg)
        .await
    {
        Ok(z) => z,
        Err(e) if e.is_not_found() => return Lookup::Absent,
        Err(e) => return Lookup::Unreadable(e.brief()),
    };
    let Some(zone) = zones
        .into_iter()
        .find(|z| fqdn.ends_with(&format!(".{}", z.name().to_ascii_lowercase())))
    else {
        return Lookup::Absent;
    };
    Lookup::from_read(arm.list_zone_links(&zone).await)
}

/// Runs the `aks bastion` pre-flight: N1 gate (and N6 Bastion state), role checks R1–R4 through
/// the permissions API, then network checks N2–N5. Reads only; never fails: unreadable
/// resources become UNKNOWN rows.
pub async fn run_aks_preflight<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    bastion: &BastionHost,
    admin: bool,
) -> Report {
    let mut report = Report::default();
    for f in gate_findings(bastion, Usage::Aks) {
        report.push(f);
    }

    // Notes are for discovery; every unreadable VNet shows in the report rows.
    let aks_vnets = network::cluster_vnets(arm, cluster, &mut Vec::new()).await;
    let bastion_vnet_id = bastion.vnet_id();
    let bastion_vnet = match &bastion_vnet_id {
        None => Lookup::Absent,
        Some(id) => match aks_vnets.iter().find(|(a, _)| a == id) {
            Some((_, l)) => l.clone(),
            None => Lookup::from_read(arm.get_vnet(id).await),
        },
    };
    let peered_case = bastion_vnet_id
        .as_ref()
        .is_some_and(|b| !aks_vnets.iter().any(|(a, _)| a == b));

    // Role checks.
    let required = access::aks_required_actions(admin, peered_case);
    let mut scopes: Vec<(ScopeKind, ResourceId)> = vec![
        (ScopeKind::Cluster, cluster.id.clone()),
        (ScopeKind::Bastion, bastion.id.clone()),
    ];
    if let Some((vnet, _)) = aks_vnets.first() {
        scopes.push((ScopeKind::ClusterVnet, vnet.clone()));
    }
    let mut perms = HashMap::new();
    for (kind, scope) in scopes {
        if !required.iter().any(|r| r.scope == kind) {
            continue;
        }
        let permissions = arm.permissions(&scope).await.map_err(|e| e.brief());
        perms.insert(kind, ScopePermissions { scope, permissions });
    }
    for check in access::evaluate(&required, &perms) {
        report.push(check.to_finding());
    }

    // Network checks.
    if let Some(f) =
        network::check_vnet_peering(cluster, &aks_vnets, bastion_vnet_id.as_ref(), &bastion_vnet)
    {
        report.push(f);
    }
    if cluster.public_fqdn_disabled() {
        let links = zone_links(arm, cluster).await;
        if let Some(f) = network::check_private_dns(cluster, bastion_vnet_id.as_ref(), &links) {
            report.push(f);
        }
    }
    if !cluster.is_private()
        && !cluster
            .properties
            .api_server_access_profile
            .authorized_ip_ranges
            .is_empty()
    {
        let pip = match bastion.public_ip_id() {
            None => Lookup::Absent,
            Some(id) => match arm.get_public_ip(id).await {
                Ok(p) => Lookup::Found(p),
                Err(e) => Lookup::Unreadable(e.brief()),
            },
        };
        if let Some(f) = network::check_authorized_ip_ranges(cluster, &pip) {
            report.push(f);
        }
    }
    if let Some(f) = network::check_cluster_kind(cluster) {
        report.push(f);
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::access::builtin;
    use crate::model::PublicIpAddress;
    use crate::testing::FakeArm;
    use crate::testing::fixtures::*;

    /// Hub/spoke peered; Reader on both subscriptions and AKS Cluster User on the cluster.
    fn good_world(cluster: &ManagedCluster) -> FakeArm {
        let mut arm = hub_and_spoke();
        arm.permissions.insert(
            rid(&format!("/subscriptions/{HUB_SUB}")),
            vec![builtin::reader()],
        );
        arm.permissions.insert(
            rid(&format!("/subscriptions/{CLUSTER_SUB}")),
            vec![builtin::reader()],
        );
        arm.permissions
            .insert(cluster.id.clone(), vec![builtin::aks_cluster_user()]);
        arm
    }

    /// The checks of `bastion aks` for `c` through a Standard hub Bastion.
    fn through_hub(arm: &FakeArm, c: &ManagedCluster) -> Report {
        block_on(run_aks_preflight(
            arm,
            c,
            &hub_bastion("Standard", true),
            false,
        ))
    }

    fn statuses(r: &Report) -> Vec<(String, Status)> {
        r.findings
            .iter()
            .map(|f| (f.id.clone(), f.status))
            .collect()
    }

    #[test]
    fn everything_passes_for_peered_hub() {
        let c = cluster(true);
        let arm = good_world(&c);
        let r = through_hub(&arm, &c);
        assert!(r.passed(), "{r}");
        let ids: Vec<_> = statuses(&r);
        assert_eq!(
            ids,
            [
                ("N1".to_owned(), Status::Pass),
                ("R1".to_owned(), Status::Pass),
                ("R2".to_owned(), Status::Pass),
                ("R3".to_owned(), Status::Pass),
                ("R4".to_owned(), Status::Pass),
                ("N2".to_owned(), Status::Pass),
            ]
        );
        // The permissions API was asked at the cluster, the Bastion and the cluster VNet.
        let calls = arm.calls();
        assert!(calls.contains(&format!("permissions {}", c.id)));
        assert!(
            calls
                .iter()
                .any(|x| x.starts_with("permissions") && x.contains("bastionHosts/hub-bastion"))
        );
        assert!(calls.contains(&format!("permissions {}", spoke())));
    }

    #[test]
    fn failures_are_reported_with_fixes() {
        let c = cluster(true);
        let mut arm = good_world(&c);
        arm.permissions.clear();
        arm.vnets = vec![vnet(&spoke(), &[]), vnet(&hub(), &[])];
        let r = block_on(run_aks_preflight(
            &arm,
            &c,
            &hub_bastion("Standard", false),
            true,
        ));
        assert!(!r.passed());
        let n1 = r.get("N1").unwrap();
        assert_eq!(n1.status, Status::Fail);
        assert!(
            n1.fix
                .as_deref()
                .unwrap()
                .contains("--enable-tunneling true")
        );
        let r2 = r.get("R2").unwrap();
        assert_eq!(r2.status, Status::Fail);
        assert!(r2.title.contains("listClusterAdminCredential"));
        assert!(
            r2.fix
                .as_deref()
                .unwrap()
                .contains("Azure Kubernetes Service Cluster Admin Role")
        );
        assert_eq!(r.get("N2").unwrap().status, Status::Fail);
        let text = r.render_text();
        assert!(text.contains("FAIL    N2"));
        assert!(text.contains("fix: peer the VNets"));
    }

    #[test]
    fn same_vnet_skips_vnet_reader_check_and_unreadable_permissions_are_unknown() {
        let c = cluster(true);
        let mut arm = good_world(&c);
        arm.forbidden.insert(rid(&format!(
            "/subscriptions/{CLUSTER_SUB}/resourceGroups/{NRG}"
        )));
        let b = bastion(CLUSTER_SUB, NRG, "nb", &spoke(), "Premium", true);
        let r = block_on(run_aks_preflight(&arm, &c, &b, false));
        assert!(r.get("R4").is_none());
        assert_eq!(r.get("R3").unwrap().status, Status::Unknown);
        assert_eq!(r.get("N2").unwrap().status, Status::Pass);
        assert!(r.passed(), "UNKNOWN does not block: {r}");
    }

    fn public_with_ranges(ranges: &[&str]) -> ManagedCluster {
        let mut c = cluster(false);
        c.properties.api_server_access_profile.authorized_ip_ranges =
            ranges.iter().map(|s| s.to_string()).collect();
        c
    }

    fn pip(ip: &str) -> PublicIpAddress {
        serde_json::from_value(serde_json::json!({
            "id": format!("/subscriptions/{HUB_SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/publicIPAddresses/hub-bastion-pip"),
            "properties": {"ipAddress": ip}
        }))
        .unwrap()
    }

    #[test]
    fn authorized_ranges_check_reads_the_bastion_pip() {
        let c = public_with_ranges(&["20.1.2.3/32", "198.51.100.0/24"]);
        let mut arm = good_world(&c);
        arm.pips.push(pip("20.1.2.3"));
        let r = through_hub(&arm, &c);
        assert_eq!(r.get("N4").unwrap().status, Status::Pass);
        assert!(r.get("N2").is_none(), "public cluster: no peering check");

        arm.pips = vec![pip("20.9.9.9")];
        let r = through_hub(&arm, &c);
        let n4 = r.get("N4").unwrap();
        assert_eq!(n4.status, Status::Fail);
        assert_eq!(
            n4.fix.as_deref(),
            Some(
                "az aks update --resource-group aks-rg --name myaks --api-server-authorized-ip-ranges 20.1.2.3/32,198.51.100.0/24,20.9.9.9/32"
            )
        );

        arm.forbidden.insert(rid(&format!(
            "/subscriptions/{HUB_SUB}/resourceGroups/hub-rg"
        )));
        let r = through_hub(&arm, &c);
        assert_eq!(r.get("N4").unwrap().status, Status::Unknown);
    }

    fn fqdn_disabled() -> ManagedCluster {
        let mut c = cluster(true);
        c.properties
            .api_server_access_profile
            .enable_private_cluster_public_fqdn = Some(false);
        c
    }

    fn link_to(vnet: &str) -> VirtualNetworkLink {
        serde_json::from_value(serde_json::json!({
            "name": "hub-link",
            "properties": {"virtualNetwork": {"id": vnet}, "virtualNetworkLinkState": "Completed"}
        }))
        .unwrap()
    }

    #[test]
    fn public_fqdn_disabled_checks_zone_links() {
        let c = fqdn_disabled();
        let zone = c.private_dns_zone_id().unwrap();
        let mut arm = good_world(&c);
        arm.zone_links.insert(zone.clone(), vec![link_to(&spoke())]);
        let r = through_hub(&arm, &c);
        let n3 = r.get("N3").unwrap();
        assert_eq!(n3.status, Status::Fail, "{r}");
        assert!(n3.fix.as_deref().unwrap().contains("--enable-public-fqdn"));
        assert!(
            n3.fix
                .as_deref()
                .unwrap()
                .contains("az network private-dns link vnet create")
        );

        arm.zone_links
            .insert(zone, vec![link_to(&spoke()), link_to(&hub())]);
        let r = through_hub(&arm, &c);
        assert_eq!(r.get("N3").unwrap().status, Status::Warn);
        assert!(r.passed(), "a warning does not stop the flow");
    }

    #[test]
    fn zone_found_by_suffix_when_the_guess_is_wrong() {
        let mut c = fqdn_disabled();
        // A zone named differently from the privateFQDN-minus-first-label guess.
        c.properties.private_fqdn =
            Some("myaks-dns-aae7e0f0.abc.privatelink.eastus.azmk8s.io".into());
        let zone = rid(&format!(
            "/subscriptions/{CLUSTER_SUB}/resourceGroups/{NRG}/providers/Microsoft.Network/privateDnsZones/privatelink.eastus.azmk8s.io"
        ));
        let mut arm = good_world(&c);
        arm.zones.push(zone.clone());
        arm.zone_links.insert(zone, vec![link_to(&hub())]);
        let r = through_hub(&arm, &c);
        assert_eq!(r.get("N3").unwrap().status, Status::Warn, "{r}");
        // No zone at all: UNKNOWN, with the fix.
        let arm = good_world(&c);
        let r = through_hub(&arm, &c);
        let n3 = r.get("N3").unwrap();
        assert_eq!(n3.status, Status::Unknown);
        assert!(n3.fix.is_some());
    }

    #[test]
    fn automatic_sku_and_bastion_state_warn() {
        let mut c = cluster(true);
        c.sku = serde_json::from_value(serde_json::json!({"name": "Automatic"})).unwrap();
        let arm = good_world(&c);
        let mut b = hub_bastion("Premium", true);
        b.properties.provisioning_state = Some("Updating".into());
        let r = block_on(run_aks_preflight(&arm, &c, &b, false));
        assert_eq!(r.get("N5").unwrap().status, Status::Warn);
        assert_eq!(r.get("N6").unwrap().status, Status::Warn);
        assert!(r.passed());
    }

    #[test]
    fn developer_bastion_fails_the_aks_gate() {
        let mut b = hub_bastion("Developer", false);
        b.properties.ip_configurations.clear();
        let f = gate_findings(&b, Usage::Aks);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].detail.contains("does not support AKS clusters"));
    }
}
