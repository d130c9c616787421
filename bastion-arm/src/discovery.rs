//! Which Bastion serves a cluster (see docs/arm-and-aks.md#bastion-discovery).
//!
//! Order: the Bastion the caller names, by id (its own subscription) or by name (node resource
//! group, cluster resource group, then subscription-wide; several → ask for the id; none →
//! error, never a substitute) → the AKS-managed Bastion (`bastionProfile.bastionId`) → a search
//! of the node RG, the cluster RG, the RGs of the cluster's VNets and of the VNets peered with
//! them (hub/spoke), then the subscription, for Bastions whose VNet equals or is peered with the
//! cluster's VNet. Native-client-capable Bastions are preferred; a tie is an error listing them.

use std::collections::HashSet;
use std::fmt;

use crate::bastion::Usage;
use crate::error::ArmError;
use crate::model::{BastionHost, ManagedCluster};
use crate::network::{self, Lookup};
use crate::read::ArmRead;
use crate::resource_id::{ResourceId, ResourceIdError};

/// Why no single Bastion could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The Bastion was named by something that looks like an id but is not a valid one.
    #[error("{input:?} is not a valid Bastion resource id: {source}")]
    InvalidBastionId {
        /// What was given.
        input: String,
        /// The parse error.
        #[source]
        source: ResourceIdError,
    },
    /// The Bastion was named by the id of another resource type.
    #[error("{id} is not a Bastion: expected a Microsoft.Network/bastionHosts id, got type {kind}")]
    NotABastionId {
        /// The id.
        id: String,
        /// Its type.
        kind: String,
    },
    /// The given id does not exist (in its own subscription).
    #[error(
        "Bastion {id} was not found in subscription {subscription}; check the id (the Bastion's subscription and resource group come from it)"
    )]
    BastionIdNotFound {
        /// The id.
        id: String,
        /// Its subscription.
        subscription: String,
    },
    /// No Bastion has the given name in any searched scope.
    #[error(
        "no Bastion named '{name}' was found; searched: {}. Name it by its full resource id if it is elsewhere",
        .searched.join("; ")
    )]
    BastionNameNotFound {
        /// The name.
        name: String,
        /// Scopes searched (with failures).
        searched: Vec<String>,
    },
    /// Several Bastions have the given name.
    #[error(
        "several Bastions are named '{name}': {}; name the one to use by its full resource id",
        .ids.join(", ")
    )]
    AmbiguousName {
        /// The name.
        name: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// `bastionProfile.bastionId` does not exist.
    #[error(
        "the cluster's AKS-managed Bastion {id} was not found; name a Bastion to use by its id or name"
    )]
    ManagedBastionNotFound {
        /// The id.
        id: String,
    },
    /// Nothing found anywhere.
    #[error(
        "No Bastion found for cluster '{cluster}' whose virtual network is the cluster's or peered with it ({vnets}). Searched: {}. \
         Create a Standard or Premium Bastion with native client support in the cluster's VNet or a peered hub VNet, or name the Bastion to use",
        .searched.join("; ")
    )]
    NoBastionFound {
        /// Cluster name.
        cluster: String,
        /// The cluster's VNets (names).
        vnets: String,
        /// Scopes searched (with failures).
        searched: Vec<String>,
        /// Scopes the caller may not read (403): a Bastion may hide there.
        denied: Vec<String>,
    },
    /// Several equally good candidates.
    #[error(
        "several Bastions could serve cluster '{cluster}': {}; choose one by its resource id",
        .candidates.join("; ")
    )]
    Ambiguous {
        /// Cluster name.
        cluster: String,
        /// `id (why)` per candidate.
        candidates: Vec<String>,
    },
    /// An ARM call failed in a way discovery cannot work around.
    #[error(transparent)]
    Arm(Box<ArmError>),
}

impl From<ArmError> for DiscoveryError {
    fn from(e: ArmError) -> Self {
        Self::Arm(Box::new(e))
    }
}

/// How the Bastion was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiscoverySource {
    /// Named by id.
    GivenId,
    /// Named by name, found in this scope.
    GivenName {
        /// Where it was found.
        scope: String,
    },
    /// The AKS-managed Bastion.
    Managed,
    /// Searched and found in this scope.
    Search {
        /// Where it was found.
        scope: String,
    },
}

impl fmt::Display for DiscoverySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::GivenId => f.write_str("given by id"),
            Self::GivenName { scope } => write!(f, "given by name, found in {scope}"),
            Self::Managed => f.write_str("the cluster's AKS-managed Bastion"),
            Self::Search { scope } => write!(f, "found in {scope}"),
        }
    }
}

/// The chosen Bastion.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Discovery {
    /// The Bastion (as read from its own subscription).
    pub bastion: BastionHost,
    /// How it was found.
    pub source: DiscoverySource,
    /// Scopes searched, in order (with failures).
    pub searched: Vec<String>,
    /// Non-fatal observations (unreadable scopes, unfiltered search…).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone)]
enum Scope {
    Group {
        sub: String,
        rg: String,
        label: String,
    },
    Subscription {
        sub: String,
    },
}

impl Scope {
    fn group(sub: &str, rg: &str, what: &str) -> Self {
        Self::Group {
            sub: sub.to_owned(),
            rg: rg.to_owned(),
            label: format!("{what} {rg} (subscription {sub})"),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Group { label, .. } => label.clone(),
            Self::Subscription { sub } => format!("subscription {sub}"),
        }
    }

    fn key(&self) -> String {
        match self {
            Self::Group { sub, rg, .. } => format!("{}/{}", sub.to_lowercase(), rg.to_lowercase()),
            Self::Subscription { sub } => sub.to_lowercase(),
        }
    }

    async fn list<A: ArmRead + ?Sized>(&self, arm: &A) -> Result<Vec<BastionHost>, ArmError> {
        match self {
            Self::Group { sub, rg, .. } => arm.list_bastions_in_group(sub, rg).await,
            Self::Subscription { sub } => arm.list_bastions_in_subscription(sub).await,
        }
    }
}

/// Finds the Bastion for `cluster` (see the module docs for the order).
pub async fn discover_bastion<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    bastion_arg: Option<&str>,
) -> Result<Discovery, DiscoveryError> {
    match bastion_arg.map(str::trim).filter(|s| !s.is_empty()) {
        Some(arg) if arg.starts_with('/') => by_id(arm, arg).await,
        Some(name) => by_name(arm, cluster, name).await,
        None => match cluster.managed_bastion_id() {
            Some(id) => managed(arm, id).await,
            None => search(arm, cluster).await,
        },
    }
}

async fn by_id<A: ArmRead + ?Sized>(arm: &A, arg: &str) -> Result<Discovery, DiscoveryError> {
    let id = ResourceId::parse(arg).map_err(|source| DiscoveryError::InvalidBastionId {
        input: arg.to_owned(),
        source,
    })?;
    if !id.is_type("Microsoft.Network/bastionHosts") {
        return Err(DiscoveryError::NotABastionId {
            kind: id.full_type().unwrap_or_else(|| "(none)".into()),
            id: id.to_string(),
        });
    }
    match arm.get_bastion(&id).await {
        Ok(bastion) => Ok(Discovery {
            bastion,
            source: DiscoverySource::GivenId,
            searched: Vec::new(),
            notes: Vec::new(),
        }),
        Err(e) if e.is_not_found() => Err(DiscoveryError::BastionIdNotFound {
            subscription: id.subscription().to_owned(),
            id: id.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}

async fn managed<A: ArmRead + ?Sized>(
    arm: &A,
    id: &ResourceId,
) -> Result<Discovery, DiscoveryError> {
    match arm.get_bastion(id).await {
        Ok(bastion) => Ok(Discovery {
            bastion,
            source: DiscoverySource::Managed,
            searched: Vec::new(),
            notes: Vec::new(),
        }),
        Err(e) if e.is_not_found() => {
            Err(DiscoveryError::ManagedBastionNotFound { id: id.to_string() })
        }
        Err(e) => Err(e.into()),
    }
}

/// The node RG and cluster RG scopes, in order, without duplicates.
fn cluster_groups(cluster: &ManagedCluster) -> Vec<Scope> {
    let sub = cluster.id.subscription();
    let mut out = Vec::new();
    if let Some(nrg) = cluster.properties.node_resource_group.as_deref() {
        out.push(Scope::group(sub, nrg, "node resource group"));
    }
    if let Some(rg) = cluster.id.resource_group() {
        out.push(Scope::group(sub, rg, "cluster resource group"));
    }
    out
}

async fn by_name<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
    name: &str,
) -> Result<Discovery, DiscoveryError> {
    let mut searched = Vec::new();
    let mut seen = HashSet::new();
    for scope in cluster_groups(cluster) {
        let Scope::Group { sub, rg, .. } = &scope else {
            continue;
        };
        if !seen.insert(scope.key()) {
            continue;
        }
        let id = ResourceId::for_resource(sub, rg, "Microsoft.Network", "bastionHosts", name)
            .map_err(|source| DiscoveryError::InvalidBastionId {
                input: name.to_owned(),
                source,
            })?;
        match arm.get_bastion(&id).await {
            Ok(bastion) => {
                return Ok(Discovery {
                    bastion,
                    source: DiscoverySource::GivenName {
                        scope: scope.label(),
                    },
                    searched,
                    notes: Vec::new(),
                });
            }
            Err(e) if e.is_not_found() => searched.push(scope.label()),
            Err(e) => searched.push(format!("{} (could not read: {})", scope.label(), e.brief())),
        }
    }
    let sub = Scope::Subscription {
        sub: cluster.id.subscription().to_owned(),
    };
    match sub.list(arm).await {
        Ok(all) => {
            searched.push(sub.label());
            let mut matches: Vec<BastionHost> = all
                .into_iter()
                .filter(|b| b.display_name().eq_ignore_ascii_case(name))
                .collect();
            match matches.len() {
                0 => {}
                1 => {
                    let bastion = matches.remove(0);
                    return Ok(Discovery {
                        bastion,
                        source: DiscoverySource::GivenName { scope: sub.label() },
                        searched,
                        notes: Vec::new(),
                    });
                }
                _ => {
                    return Err(DiscoveryError::AmbiguousName {
                        name: name.to_owned(),
                        ids: matches.iter().map(|b| b.id.to_string()).collect(),
                    });
                }
            }
        }
        Err(e) => searched.push(format!("{} (could not list: {})", sub.label(), e.brief())),
    }
    Err(DiscoveryError::BastionNameNotFound {
        name: name.to_owned(),
        searched,
    })
}

struct Candidate {
    bastion: BastionHost,
    rank: usize,
    scope: String,
    gate: Result<(), String>,
}

async fn search<A: ArmRead + ?Sized>(
    arm: &A,
    cluster: &ManagedCluster,
) -> Result<Discovery, DiscoveryError> {
    let mut notes = Vec::new();
    let vnets = network::cluster_vnets(arm, cluster, &mut notes).await;
    let aks_ids: Vec<ResourceId> = vnets.iter().map(|(id, _)| id.clone()).collect();
    let mut peered: Vec<ResourceId> = Vec::new();
    for (_, v) in &vnets {
        if let Lookup::Found(v) = v {
            for p in v.connected_peers() {
                if !peered.contains(p) && !aks_ids.contains(p) {
                    peered.push(p.clone());
                }
            }
        }
    }
    let aks_side_unreadable = vnets.iter().any(|(_, v)| !matches!(v, Lookup::Found(_)));
    let unfiltered = aks_ids.is_empty();
    if unfiltered {
        notes.push("the cluster's VNet is unknown, so Bastions were not filtered by VNet".into());
    }

    let mut scopes = cluster_groups(cluster);
    for id in aks_ids.iter() {
        if let Some(rg) = id.resource_group() {
            scopes.push(Scope::group(
                id.subscription(),
                rg,
                "cluster VNet resource group",
            ));
        }
    }
    for id in &peered {
        if let Some(rg) = id.resource_group() {
            scopes.push(Scope::group(
                id.subscription(),
                rg,
                "peered VNet resource group",
            ));
        }
    }
    scopes.push(Scope::Subscription {
        sub: cluster.id.subscription().to_owned(),
    });

    let mut searched = Vec::new();
    let mut denied = Vec::new();
    let mut seen_scopes = HashSet::new();
    let mut seen_ids: HashSet<ResourceId> = HashSet::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut rank = 0;
    for scope in scopes {
        if !seen_scopes.insert(scope.key()) {
            continue;
        }
        let list = match scope.list(arm).await {
            Ok(l) => l,
            Err(e) => {
                if e.is_authorization_failed() {
                    denied.push(scope.label());
                }
                searched.push(format!("{} (could not list: {})", scope.label(), e.brief()));
                continue;
            }
        };
        searched.push(scope.label());
        for b in list {
            if !seen_ids.insert(b.id.clone()) {
                continue;
            }
            let related =
                unfiltered || is_related(arm, &b, &aks_ids, &peered, aks_side_unreadable).await;
            if !related {
                continue;
            }
            let gate = b
                .native_client_support(Usage::Aks)
                .map(|_| ())
                .map_err(|e| e.to_string());
            candidates.push(Candidate {
                bastion: b,
                rank,
                scope: scope.label(),
                gate,
            });
        }
        if candidates.iter().any(|c| c.gate.is_ok()) {
            break;
        }
        rank += 1;
    }
    choose(cluster, candidates, searched, denied, notes, &aks_ids)
}

/// Whether a Bastion's VNet is an AKS VNet or directly peered with one.
async fn is_related<A: ArmRead + ?Sized>(
    arm: &A,
    b: &BastionHost,
    aks_ids: &[ResourceId],
    peered: &[ResourceId],
    aks_side_unreadable: bool,
) -> bool {
    let Some(vnet) = b.vnet_id() else {
        return false;
    };
    if aks_ids.contains(&vnet) || peered.contains(&vnet) {
        return true;
    }
    if !aks_side_unreadable {
        return false;
    }
    // The cluster's VNet could not be read: look at the peering from the Bastion side.
    match arm.get_vnet(&vnet).await {
        Ok(v) => v.connected_peers().iter().any(|p| aks_ids.contains(p)),
        Err(_) => false,
    }
}

fn describe(c: &Candidate) -> String {
    match &c.gate {
        Ok(()) => format!("{} (in {}, native client enabled)", c.bastion.id, c.scope),
        Err(why) => format!("{} (in {}, not usable: {why})", c.bastion.id, c.scope),
    }
}

fn choose(
    cluster: &ManagedCluster,
    candidates: Vec<Candidate>,
    searched: Vec<String>,
    denied: Vec<String>,
    notes: Vec<String>,
    aks_ids: &[ResourceId],
) -> Result<Discovery, DiscoveryError> {
    let capable: Vec<&Candidate> = candidates.iter().filter(|c| c.gate.is_ok()).collect();
    let pool: Vec<&Candidate> = if capable.is_empty() {
        candidates.iter().collect()
    } else {
        capable
    };
    let Some(best_rank) = pool.iter().map(|c| c.rank).min() else {
        let vnets = if aks_ids.is_empty() {
            "unknown".to_owned()
        } else {
            aks_ids
                .iter()
                .map(|v| v.name().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(DiscoveryError::NoBastionFound {
            cluster: cluster.display_name().to_owned(),
            vnets,
            searched,
            denied,
        });
    };
    let best: Vec<&Candidate> = pool.into_iter().filter(|c| c.rank == best_rank).collect();
    if best.len() > 1 {
        return Err(DiscoveryError::Ambiguous {
            cluster: cluster.display_name().to_owned(),
            candidates: best.iter().map(|c| describe(c)).collect(),
        });
    }
    let Some(&winner) = best.first() else {
        return Err(DiscoveryError::NoBastionFound {
            cluster: cluster.display_name().to_owned(),
            vnets: String::new(),
            searched,
            denied,
        });
    };
    Ok(Discovery {
        bastion: winner.bastion.clone(),
        source: DiscoverySource::Search {
            scope: winner.scope.clone(),
        },
        searched,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FakeArm;
    use crate::testing::fixtures::*;

    fn run(
        arm: &FakeArm,
        cluster: &ManagedCluster,
        arg: Option<&str>,
    ) -> Result<Discovery, DiscoveryError> {
        block_on(discover_bastion(arm, cluster, arg))
    }

    #[test]
    fn given_id_in_another_subscription() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(hub_bastion("Standard", true));
        let id = format!(
            "/subscriptions/{HUB_SUB}/resourceGroups/HUB-RG/providers/Microsoft.Network/bastionHosts/hub-bastion"
        );
        let d = run(&arm, &cluster(true), Some(&id)).unwrap();
        assert_eq!(d.source, DiscoverySource::GivenId);
        assert_eq!(d.bastion.id.subscription(), HUB_SUB);
        assert_eq!(arm.calls(), vec![format!("get_bastion {id}")]);
    }

    #[test]
    fn given_id_not_found_or_wrong_type_or_invalid() {
        let arm = hub_and_spoke();
        let id = format!(
            "/subscriptions/{HUB_SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/gone"
        );
        let e = run(&arm, &cluster(true), Some(&id)).unwrap_err();
        assert!(matches!(e, DiscoveryError::BastionIdNotFound { .. }));
        assert!(
            e.to_string()
                .contains(&format!("not found in subscription {HUB_SUB}"))
        );
        let e = run(&arm, &cluster(true), Some(&hub())).unwrap_err();
        assert!(
            e.to_string()
                .contains("got type Microsoft.Network/virtualNetworks"),
            "{e}"
        );
        let e = run(&arm, &cluster(true), Some("/subscriptions/x/bad")).unwrap_err();
        assert!(matches!(e, DiscoveryError::InvalidBastionId { .. }));
    }

    #[test]
    fn given_id_forbidden_is_an_arm_error() {
        let mut arm = hub_and_spoke();
        arm.forbidden
            .insert(rid(&format!("/subscriptions/{HUB_SUB}")));
        let id = format!(
            "/subscriptions/{HUB_SUB}/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion"
        );
        let e = run(&arm, &cluster(true), Some(&id)).unwrap_err();
        assert!(matches!(e, DiscoveryError::Arm(ref a) if a.is_authorization_failed()));
    }

    #[test]
    fn given_name_node_rg_then_cluster_rg_then_subscription() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion("aks-rg", "b1"));
        let d = run(&arm, &cluster(true), Some("b1")).unwrap();
        assert!(
            matches!(&d.source, DiscoverySource::GivenName { scope } if scope.contains("cluster resource group aks-rg"))
        );
        assert_eq!(
            d.searched.len(),
            1,
            "node RG searched first: {:?}",
            d.searched
        );

        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion(NRG, "b1"));
        arm.bastions.push(spoke_bastion("aks-rg", "b1"));
        let d = run(&arm, &cluster(true), Some("b1")).unwrap();
        assert_eq!(d.bastion.resource_group(), NRG);

        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion("shared-rg", "B1"));
        let d = run(&arm, &cluster(true), Some("b1")).unwrap();
        assert!(
            matches!(&d.source, DiscoverySource::GivenName { scope } if scope.starts_with("subscription"))
        );
        assert_eq!(d.bastion.resource_group(), "shared-rg");
    }

    #[test]
    fn given_name_ambiguous_or_missing_never_substitutes() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion("rg1", "b1"));
        arm.bastions.push(spoke_bastion("rg2", "b1"));
        let e = run(&arm, &cluster(true), Some("b1")).unwrap_err();
        assert!(matches!(&e, DiscoveryError::AmbiguousName { ids, .. } if ids.len() == 2));
        assert!(e.to_string().contains("full resource id"));

        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion(NRG, "other"));
        let e = run(&arm, &cluster(true), Some("b1")).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DiscoveryError::BastionNameNotFound { .. }));
        assert!(
            msg.contains("node resource group MC_aks-rg_myaks_eastus"),
            "{msg}"
        );
        assert!(msg.contains("cluster resource group aks-rg"));
        assert!(msg.contains(&format!("subscription {CLUSTER_SUB}")));
    }

    #[test]
    fn managed_bastion_profile() {
        let mut arm = hub_and_spoke();
        let b = spoke_bastion(NRG, "aks-managed");
        let mut c = cluster(true);
        c.properties.network_profile = serde_json::from_value(serde_json::json!({
            "bastionProfile": {"enabled": true, "bastionId": b.id.as_str()}
        }))
        .unwrap();
        arm.bastions.push(b);
        arm.bastions.push(spoke_bastion(NRG, "other"));
        let d = run(&arm, &c, None).unwrap();
        assert_eq!(d.source, DiscoverySource::Managed);
        assert_eq!(d.bastion.display_name(), "aks-managed");
        arm.bastions.remove(0);
        let e = run(&arm, &c, None).unwrap_err();
        assert!(matches!(e, DiscoveryError::ManagedBastionNotFound { .. }));
    }

    #[test]
    fn search_finds_node_group_bastion_first() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion(NRG, "nrg-bastion"));
        arm.bastions.push(hub_bastion("Standard", true));
        let d = run(&arm, &cluster(true), None).unwrap();
        assert_eq!(d.bastion.display_name(), "nrg-bastion");
        assert!(
            matches!(&d.source, DiscoverySource::Search { scope } if scope.contains("node resource group"))
        );
        // Stopped after the first scope with a usable Bastion.
        assert!(!arm.calls().iter().any(|c| c.contains("hub-rg")));
    }

    #[test]
    fn search_finds_hub_bastion_through_peering() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(hub_bastion("Standard", true));
        // An unrelated Bastion in the cluster subscription is ignored.
        let lonely = vnet_id(CLUSTER_SUB, "x-rg", "lonely");
        arm.vnets.push(vnet(&lonely, &[]));
        arm.bastions.push(bastion(
            CLUSTER_SUB,
            "x-rg",
            "lonely-bastion",
            &lonely,
            "Standard",
            true,
        ));
        let d = run(&arm, &cluster(true), None).unwrap();
        assert_eq!(d.bastion.display_name(), "hub-bastion");
        assert!(
            matches!(&d.source, DiscoverySource::Search { scope } if scope.contains("peered VNet resource group hub-rg"))
        );
        assert!(
            arm.calls()
                .contains(&format!("list_bastions {HUB_SUB}/hub-rg"))
        );
    }

    #[test]
    fn search_peering_not_connected_is_not_a_candidate() {
        let mut arm = FakeArm {
            vnets: vec![vnet(&spoke(), &[(&hub(), "Initiated")])],
            ..FakeArm::default()
        };
        arm.bastions.push(bastion(
            CLUSTER_SUB,
            "hub-rg",
            "hub-bastion",
            &hub(),
            "Standard",
            true,
        ));
        let e = run(&arm, &cluster(true), None).unwrap_err();
        assert!(matches!(e, DiscoveryError::NoBastionFound { .. }));
    }

    #[test]
    fn search_prefers_native_client_capable() {
        let mut arm = hub_and_spoke();
        arm.bastions
            .push(bastion(CLUSTER_SUB, NRG, "basic", &spoke(), "Basic", false));
        arm.bastions.push(hub_bastion("Premium", true));
        let d = run(&arm, &cluster(true), None).unwrap();
        assert_eq!(d.bastion.display_name(), "hub-bastion");
        // Only an incapable one: it is returned so the gate can say what to change.
        let mut arm = hub_and_spoke();
        arm.bastions.push(bastion(
            CLUSTER_SUB,
            NRG,
            "std-off",
            &spoke(),
            "Standard",
            false,
        ));
        let d = run(&arm, &cluster(true), None).unwrap();
        assert_eq!(d.bastion.display_name(), "std-off");
        assert!(d.bastion.native_client_support(Usage::Aks).is_err());
    }

    #[test]
    fn search_ambiguity_lists_candidates() {
        let mut arm = hub_and_spoke();
        arm.bastions.push(spoke_bastion(NRG, "a"));
        arm.bastions
            .push(bastion(CLUSTER_SUB, NRG, "b", &spoke(), "Premium", true));
        let e = run(&arm, &cluster(true), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(&e, DiscoveryError::Ambiguous { candidates, .. } if candidates.len() == 2)
        );
        assert!(
            msg.contains("bastionHosts/a") && msg.contains("bastionHosts/b"),
            "{msg}"
        );
        assert!(msg.contains("choose one by its resource id"));
    }

    #[test]
    fn search_none_found_lists_every_scope() {
        let mut arm = hub_and_spoke();
        arm.forbidden.insert(rid(&format!(
            "/subscriptions/{CLUSTER_SUB}/resourceGroups/aks-rg"
        )));
        let e = run(&arm, &cluster(true), None).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("No Bastion found for cluster 'myaks'"),
            "{msg}"
        );
        for scope in [
            "node resource group MC_aks-rg_myaks_eastus",
            "cluster resource group aks-rg (subscription 22222222-2222-2222-2222-222222222222) (could not list: HTTP 403 AuthorizationFailed)",
            "cluster VNet resource group spoke-rg",
            "peered VNet resource group hub-rg (subscription 11111111-1111-1111-1111-111111111111)",
            "subscription 22222222-2222-2222-2222-222222222222",
        ] {
            assert!(msg.contains(scope), "missing {scope:?} in {msg}");
        }
        // The refused scope is named as such, so callers can report an access problem.
        match &e {
            DiscoveryError::NoBastionFound { denied, .. } => assert_eq!(
                denied,
                &[
                    "cluster resource group aks-rg (subscription 22222222-2222-2222-2222-222222222222)"
                ]
            ),
            other => panic!("{other:?}"),
        }
        // Completely empty world: still an error, not a crash, and nothing was refused.
        let e = run(&FakeArm::default(), &cluster(false), None).unwrap_err();
        assert!(
            matches!(&e, DiscoveryError::NoBastionFound { denied, .. } if denied.is_empty()),
            "{e:?}"
        );
    }

    #[test]
    fn search_uses_bastion_side_peering_when_cluster_vnet_unreadable() {
        let mut arm = hub_and_spoke();
        arm.forbidden.insert(rid(&spoke()));
        arm.bastions.push(bastion(
            CLUSTER_SUB,
            "hub2-rg",
            "hub-bastion",
            &hub(),
            "Standard",
            true,
        ));
        let d = run(&arm, &cluster(true), None).unwrap();
        assert_eq!(d.bastion.display_name(), "hub-bastion");
        assert!(d.notes.iter().any(|n| n.contains("could not be read")));
    }

    #[test]
    fn search_managed_vnet_in_node_group() {
        let managed = vnet_id(CLUSTER_SUB, NRG, "aks-vnet-12345678");
        let mut arm = FakeArm {
            vnets: vec![vnet(&managed, &[])],
            ..FakeArm::default()
        };
        arm.bastions
            .push(bastion(CLUSTER_SUB, NRG, "nb", &managed, "Standard", true));
        let mut c = cluster(true);
        c.properties.agent_pool_profiles[0].vnet_subnet_id = None;
        let d = run(&arm, &c, None).unwrap();
        assert_eq!(d.bastion.display_name(), "nb");
    }
}
