//! Role checks through the permissions API (see docs/arm-and-aks.md#role-checks): ARM's action
//! matching rules, the table of required actions, and the evaluation into report rows. The
//! permissions themselves are [`crate::model::Permission`].

use std::collections::HashMap;

use crate::model::Permission;
use crate::report::{Finding, Status};
use crate::resource_id::ResourceId;

impl Permission {
    /// Whether this entry alone allows `action`: some `actions` pattern matches and no
    /// `notActions` pattern of the same entry does.
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|p| action_matches(p, action))
            && !self.not_actions.iter().any(|p| action_matches(p, action))
    }
}

/// Whether any entry allows `action` (`notActions` subtract only within their own entry).
pub fn is_allowed(entries: &[Permission], action: &str) -> bool {
    entries.iter().any(|e| e.allows(action))
}

/// ARM action matching: whole string, case-insensitive, `*` matches any run of characters
/// (`/` included), everything else literal. Runs in O(len(pattern) × len(action)) at worst.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    matches_counting_steps(pattern, action).0
}

/// [`action_matches`], and the number of steps the match took (the test of its bound counts
/// them rather than timing them).
fn matches_counting_steps(pattern: &str, action: &str) -> (bool, usize) {
    let p: Vec<char> = pattern.trim().to_lowercase().chars().collect();
    let s: Vec<char> = action.trim().to_lowercase().chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    // Position of the last `*` seen and the text position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    let mut steps = 0usize;
    while si < s.len() {
        steps += 1;
        if p.get(pi) == Some(&'*') {
            star = Some((pi, si));
            pi += 1;
        } else if p.get(pi) == Some(&s[si]) {
            pi += 1;
            si += 1;
        } else if let Some((sp, ss)) = star {
            // Let the last `*` swallow one more character and retry after it.
            star = Some((sp, ss + 1));
            pi = sp + 1;
            si = ss + 1;
        } else {
            return (false, steps);
        }
    }
    (p[pi..].iter().all(|&c| c == '*'), steps)
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// Some entry allows the action at the scope.
    Allowed,
    /// No entry allows it.
    Denied,
    /// The check itself could not be made (the permissions call was refused, the scope unknown…).
    Unknown(String),
}

/// Which resource a required action is checked on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScopeKind {
    /// The AKS cluster.
    Cluster,
    /// The Bastion host.
    Bastion,
    /// The cluster's VNet (checked when the Bastion sits in a peered VNet).
    ClusterVnet,
    /// The Bastion's public IP (pre-flight reads only).
    BastionPublicIp,
    /// The API server's private DNS zone (pre-flight reads only).
    PrivateDnsZone,
    /// A VM target (VM tunnels).
    VirtualMachine,
    /// A VM's NIC (VM tunnels).
    NetworkInterface,
}

impl ScopeKind {
    /// A human name for the scope.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Cluster => "the AKS cluster",
            Self::Bastion => "the Bastion",
            Self::ClusterVnet => "the cluster's virtual network",
            Self::BastionPublicIp => "the Bastion's public IP",
            Self::PrivateDnsZone => "the cluster's private DNS zone",
            Self::VirtualMachine => "the virtual machine",
            Self::NetworkInterface => "the virtual machine's network interface",
        }
    }
}

/// One required action (a row of the table in docs/arm-and-aks.md#required-actions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequiredAction {
    /// Report id (`R1`…).
    pub id: &'static str,
    /// What the check is, in words.
    pub check: &'static str,
    /// The ARM action.
    pub action: &'static str,
    /// Where it is checked.
    pub scope: ScopeKind,
    /// Built-in roles that grant it.
    pub granting_roles: &'static [&'static str],
    /// The least-privileged built-in role to ask for.
    pub smallest_role: &'static str,
}

/// Role names used by the table.
pub mod roles {
    /// `acdd72a7-3385-48ef-bd42-f606fba81ae7`.
    pub const READER: &str = "Reader";
    /// `b24988ac-6180-42a0-ab88-20f7382dd24c`.
    pub const CONTRIBUTOR: &str = "Contributor";
    /// `8e3af657-a8ff-443c-a75c-2fe8c4bcb635`.
    pub const OWNER: &str = "Owner";
    /// `4abbcc35-e782-43d8-92c5-2d3f1bd2253f`.
    pub const AKS_CLUSTER_USER: &str = "Azure Kubernetes Service Cluster User Role";
    /// `0ab0b1a8-8aac-4efd-b8c2-3ee1fb270be8`.
    pub const AKS_CLUSTER_ADMIN: &str = "Azure Kubernetes Service Cluster Admin Role";
    /// `3498e952-d568-435e-9b2c-8d77e338d7f7`.
    pub const AKS_RBAC_ADMIN: &str = "Azure Kubernetes Service RBAC Admin";
    /// `b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b`.
    pub const AKS_RBAC_CLUSTER_ADMIN: &str = "Azure Kubernetes Service RBAC Cluster Admin";
}

use roles::*;

const READ_ROLES: &[&str] = &[READER, CONTRIBUTOR, OWNER];

/// Reader on the AKS cluster.
pub const READ_CLUSTER: RequiredAction = RequiredAction {
    id: "R1",
    check: "Reader on the AKS cluster",
    action: "Microsoft.ContainerService/managedClusters/read",
    scope: ScopeKind::Cluster,
    granting_roles: &[
        READER,
        AKS_CLUSTER_USER,
        AKS_CLUSTER_ADMIN,
        CONTRIBUTOR,
        OWNER,
    ],
    smallest_role: READER,
};

/// The user kubeconfig.
pub const LIST_USER_CREDENTIAL: RequiredAction = RequiredAction {
    id: "R2",
    check: "Fetch the cluster user kubeconfig",
    action: "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
    scope: ScopeKind::Cluster,
    granting_roles: &[
        AKS_CLUSTER_USER,
        AKS_RBAC_ADMIN,
        AKS_RBAC_CLUSTER_ADMIN,
        CONTRIBUTOR,
        OWNER,
    ],
    smallest_role: AKS_CLUSTER_USER,
};

/// The admin kubeconfig.
pub const LIST_ADMIN_CREDENTIAL: RequiredAction = RequiredAction {
    id: "R2",
    check: "Fetch the cluster admin kubeconfig",
    action: "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
    scope: ScopeKind::Cluster,
    granting_roles: &[AKS_CLUSTER_ADMIN, CONTRIBUTOR, OWNER],
    smallest_role: AKS_CLUSTER_ADMIN,
};

/// Reader on the Bastion.
pub const READ_BASTION: RequiredAction = RequiredAction {
    id: "R3",
    check: "Reader on the Bastion",
    action: "Microsoft.Network/bastionHosts/read",
    scope: ScopeKind::Bastion,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Reader on the cluster VNet (Bastion in a peered VNet).
pub const READ_CLUSTER_VNET: RequiredAction = RequiredAction {
    id: "R4",
    check: "Reader on the cluster's virtual network (Bastion in a peered VNet)",
    action: "Microsoft.Network/virtualNetworks/read",
    scope: ScopeKind::ClusterVnet,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Read the Bastion's public IP (pre-flight only).
pub const READ_PUBLIC_IP: RequiredAction = RequiredAction {
    id: "R5",
    check: "Read the Bastion's public IP (pre-flight)",
    action: "Microsoft.Network/publicIPAddresses/read",
    scope: ScopeKind::BastionPublicIp,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Read the private DNS zone links (pre-flight only).
pub const READ_DNS_LINKS: RequiredAction = RequiredAction {
    id: "R6",
    check: "Read the private DNS zone links (pre-flight)",
    action: "Microsoft.Network/privateDnsZones/virtualNetworkLinks/read",
    scope: ScopeKind::PrivateDnsZone,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Read a VM target (VM tunnels).
pub const READ_VM: RequiredAction = RequiredAction {
    id: "R7",
    check: "Reader on the virtual machine",
    action: "Microsoft.Compute/virtualMachines/read",
    scope: ScopeKind::VirtualMachine,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Read a VM's NIC (VM tunnels).
pub const READ_NIC: RequiredAction = RequiredAction {
    id: "R8",
    check: "Reader on the virtual machine's network interface",
    action: "Microsoft.Network/networkInterfaces/read",
    scope: ScopeKind::NetworkInterface,
    granting_roles: READ_ROLES,
    smallest_role: READER,
};

/// Every row of the table.
pub const ALL_REQUIRED_ACTIONS: &[RequiredAction] = &[
    READ_CLUSTER,
    LIST_USER_CREDENTIAL,
    LIST_ADMIN_CREDENTIAL,
    READ_BASTION,
    READ_CLUSTER_VNET,
    READ_PUBLIC_IP,
    READ_DNS_LINKS,
    READ_VM,
    READ_NIC,
];

/// The actions `aks bastion` needs: Reader on the cluster, the user (or admin) credential,
/// Reader on the Bastion, and Reader on the cluster VNet when the Bastion is in a peered VNet.
pub fn aks_required_actions(admin: bool, bastion_in_peered_vnet: bool) -> Vec<RequiredAction> {
    let mut out = vec![
        READ_CLUSTER,
        if admin {
            LIST_ADMIN_CREDENTIAL
        } else {
            LIST_USER_CREDENTIAL
        },
        READ_BASTION,
    ];
    if bastion_in_peered_vnet {
        out.push(READ_CLUSTER_VNET);
    }
    out
}

/// The permissions read at one scope, or why they could not be read.
#[derive(Debug, Clone)]
pub struct ScopePermissions {
    /// The scope (resource id).
    pub scope: ResourceId,
    /// The entries, or the reason the permissions call failed.
    pub permissions: Result<Vec<Permission>, String>,
}

/// The outcome of one required action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCheck {
    /// What was checked.
    pub required: RequiredAction,
    /// Where (`None` when the scope was not known).
    pub scope: Option<ResourceId>,
    /// The outcome.
    pub outcome: CheckOutcome,
}

/// Checks every required action against the permissions of its scope.
pub fn evaluate(
    required: &[RequiredAction],
    perms_by_scope: &HashMap<ScopeKind, ScopePermissions>,
) -> Vec<RoleCheck> {
    required
        .iter()
        .map(|r| match perms_by_scope.get(&r.scope) {
            None => RoleCheck {
                required: *r,
                scope: None,
                outcome: CheckOutcome::Unknown(format!(
                    "{} could not be determined",
                    r.scope.describe()
                )),
            },
            Some(sp) => RoleCheck {
                required: *r,
                scope: Some(sp.scope.clone()),
                outcome: match &sp.permissions {
                    Err(why) => CheckOutcome::Unknown(format!(
                        "the permissions of {} could not be read: {why}",
                        r.scope.describe()
                    )),
                    Ok(entries) if is_allowed(entries, r.action) => CheckOutcome::Allowed,
                    Ok(_) => CheckOutcome::Denied,
                },
            },
        })
        .collect()
}

impl RoleCheck {
    /// The report row: PASS / FAIL / UNKNOWN with the action, the scope and the role to ask for.
    pub fn to_finding(&self) -> Finding {
        let r = &self.required;
        let title = format!("{} ({})", r.check, r.action);
        let scope = self
            .scope
            .as_ref()
            .map_or_else(|| r.scope.describe().to_owned(), |s| s.to_string());
        let ask = format!(
            "ask for the '{}' role (or one of: {}) on {scope}, e.g. az role assignment create --assignee <your user or principal> --role \"{}\" --scope {scope}",
            r.smallest_role,
            r.granting_roles.join(", "),
            r.smallest_role
        );
        match &self.outcome {
            CheckOutcome::Allowed => Finding::new(
                r.id,
                title,
                Status::Pass,
                format!(
                    "allowed on {scope} (deny assignments and conditions are not visible to this check)"
                ),
            ),
            CheckOutcome::Denied => Finding::new(
                r.id,
                title,
                Status::Fail,
                format!(
                    "you do not have authorization to perform action '{}' over scope '{scope}'",
                    r.action
                ),
            )
            .with_fix(ask),
            CheckOutcome::Unknown(why) => Finding::new(
                r.id,
                title,
                Status::Unknown,
                format!("could not check: {why}"),
            )
            .with_fix(format!("if access is denied later, {ask}")),
        }
    }
}

/// Real built-in role definitions (control-plane part), for tests and the emulator.
pub mod builtin {
    use crate::model::Permission;

    /// `Reader`.
    pub fn reader() -> Permission {
        Permission::new(&["*/read"], &[])
    }

    /// `Owner`.
    pub fn owner() -> Permission {
        Permission::new(&["*"], &[])
    }

    /// `Contributor`.
    pub fn contributor() -> Permission {
        Permission::new(
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
                "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                "Microsoft.Subscription/cancel/action",
                "Microsoft.Subscription/enable/action",
            ],
        )
    }

    /// `Azure Kubernetes Service Cluster User Role`.
    pub fn aks_cluster_user() -> Permission {
        Permission::new(
            &[
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
                "Microsoft.ContainerService/managedClusters/read",
            ],
            &[],
        )
    }

    /// `Azure Kubernetes Service Cluster Admin Role`.
    pub fn aks_cluster_admin() -> Permission {
        Permission::new(
            &[
                "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action",
                "Microsoft.ContainerService/managedClusters/accessProfiles/listCredential/action",
                "Microsoft.ContainerService/managedClusters/read",
                "Microsoft.ContainerService/managedClusters/runcommand/action",
            ],
            &[],
        )
    }

    /// `Azure Kubernetes Service RBAC Cluster Admin` (and, for actions, `RBAC Admin`).
    pub fn aks_rbac_cluster_admin() -> Permission {
        let mut p = Permission::new(
            &[
                "Microsoft.Authorization/*/read",
                "Microsoft.Resources/subscriptions/operationresults/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            ],
            &[],
        );
        p.data_actions = vec!["Microsoft.ContainerService/managedClusters/*".into()];
        p
    }

    /// `Azure Kubernetes Service RBAC Reader` (no credential action).
    pub fn aks_rbac_reader() -> Permission {
        let mut p = Permission::new(
            &[
                "Microsoft.Authorization/*/read",
                "Microsoft.Resources/subscriptions/operationresults/read",
                "Microsoft.Resources/subscriptions/read",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
            ],
            &[],
        );
        p.data_actions = vec!["Microsoft.ContainerService/managedClusters/pods/read".into()];
        p
    }

    /// `Network Contributor`.
    pub fn network_contributor() -> Permission {
        Permission::new(
            &[
                "Microsoft.Authorization/*/read",
                "Microsoft.Insights/alertRules/*",
                "Microsoft.Network/*",
                "Microsoft.ResourceHealth/availabilityStatuses/read",
                "Microsoft.Resources/deployments/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
                "Microsoft.Support/*",
            ],
            &[],
        )
    }

    /// Name → definition, for the roles named in the required-action table.
    pub fn by_name(name: &str) -> Option<Permission> {
        use super::roles::*;
        Some(match name {
            READER => reader(),
            CONTRIBUTOR => contributor(),
            OWNER => owner(),
            AKS_CLUSTER_USER => aks_cluster_user(),
            AKS_CLUSTER_ADMIN => aks_cluster_admin(),
            AKS_RBAC_ADMIN | AKS_RBAC_CLUSTER_ADMIN => aks_rbac_cluster_admin(),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::builtin::*;
    use super::*;
    use crate::model::PermissionPage;

    const READ_VNET: &str = "Microsoft.Network/virtualNetworks/read";
    const READ_AKS: &str = "Microsoft.ContainerService/managedClusters/read";
    const USER_CRED: &str =
        "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action";
    const ADMIN_CRED: &str =
        "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action";
    const READ_BASTION_ACTION: &str = "Microsoft.Network/bastionHosts/read";

    #[test]
    fn spec_test_vectors() {
        assert!(action_matches("*", "anything/at/all"));
        assert!(action_matches("*", ""));
        assert!(action_matches("*/read", READ_VNET));
        assert!(!action_matches("*/read", USER_CRED));
        assert!(action_matches("Microsoft.ContainerService/*", ADMIN_CRED));
        assert!(action_matches(
            "microsoft.network/*/READ",
            READ_BASTION_ACTION
        ));
        let entries = [
            Permission::new(&["*"], &["Microsoft.ContainerService/*"]),
            reader(),
        ];
        assert!(is_allowed(&entries, READ_AKS));
        assert!(!is_allowed(&entries, USER_CRED));
    }

    #[test]
    fn matching_is_whole_string_and_literal() {
        assert!(!action_matches(
            "Microsoft.Network/bastionHosts/read",
            "Microsoft.Network/bastionHosts/readx"
        ));
        assert!(!action_matches(
            "Microsoft.Network/bastionHosts/read",
            "xMicrosoft.Network/bastionHosts/read"
        ));
        assert!(!action_matches(
            "Microsoft.Network/*",
            "Microsoft.NetworkX/foo"
        ));
        assert!(action_matches("Microsoft.Network/*", "Microsoft.Network/"));
        assert!(!action_matches("Microsoft.Network/*", "Microsoft.Network"));
        assert!(action_matches("*/*/read", READ_VNET));
        assert!(action_matches("Microsoft.*/virtualNetworks/*", READ_VNET));
        assert!(!action_matches("Microsoft.*/subnets/*", READ_VNET));
        assert!(action_matches("**", "a"));
        assert!(action_matches("a*b*c", "aXbYbZc"));
        assert!(!action_matches("a*b*c", "aXbYbZ"));
        // `.` and `?` are literal, not regex.
        assert!(!action_matches(
            "Microsoft.Network/.*",
            "Microsoft.Network/x"
        ));
        assert!(!action_matches(
            "Microsoft.Network/?",
            "Microsoft.Network/x"
        ));
        assert!(action_matches("Microsoft.Network/?", "Microsoft.Network/?"));
    }

    #[test]
    fn no_catastrophic_backtracking() {
        let pattern = "*a".repeat(40) + "b";
        let text = "a".repeat(5000);
        let (matched, steps) = matches_counting_steps(&pattern, &text);
        assert!(!matched);
        // Quadratic at worst (a backtracking matcher would take exponentially many steps):
        // counted, not timed.
        let bound = (pattern.len() + 1) * (text.len() + 1);
        assert!(steps <= bound, "{steps} steps, bound {bound}");
        // And the count is a real one: the last `*` is retried at every position.
        assert!(steps > text.len(), "{steps}");
    }

    #[test]
    fn reader_role() {
        let r = [reader()];
        assert!(is_allowed(&r, READ_AKS));
        assert!(is_allowed(&r, READ_BASTION_ACTION));
        assert!(is_allowed(&r, READ_VNET));
        assert!(!is_allowed(&r, USER_CRED));
        assert!(!is_allowed(&r, ADMIN_CRED));
    }

    #[test]
    fn contributor_role_with_real_not_actions() {
        let c = [contributor()];
        assert!(is_allowed(&c, READ_AKS));
        assert!(is_allowed(&c, USER_CRED));
        assert!(is_allowed(&c, ADMIN_CRED));
        assert!(is_allowed(&c, "Microsoft.Network/virtualNetworks/write"));
        // `Microsoft.Authorization/*/Delete` matches `…/delete` case-insensitively.
        assert!(!is_allowed(
            &c,
            "Microsoft.Authorization/roleAssignments/delete"
        ));
        assert!(!is_allowed(
            &c,
            "Microsoft.Authorization/roleAssignments/write"
        ));
        assert!(!is_allowed(
            &c,
            "Microsoft.Authorization/elevateAccess/action"
        ));
        assert!(!is_allowed(
            &c,
            "Microsoft.Blueprint/blueprintAssignments/write"
        ));
        assert!(!is_allowed(&c, "Microsoft.Compute/galleries/share/action"));
        assert!(!is_allowed(&c, "Microsoft.Purview/consents/delete"));
        assert!(is_allowed(
            &c,
            "Microsoft.Authorization/roleAssignments/read"
        ));
        // Contributor + Owner: the second entry restores what the first subtracts.
        assert!(is_allowed(
            &[contributor(), owner()],
            "Microsoft.Authorization/roleAssignments/write"
        ));
    }

    #[test]
    fn owner_role() {
        for a in [
            READ_AKS,
            USER_CRED,
            ADMIN_CRED,
            "Microsoft.Authorization/roleAssignments/write",
        ] {
            assert!(is_allowed(&[owner()], a));
        }
    }

    #[test]
    fn aks_roles() {
        let user = [aks_cluster_user()];
        assert!(is_allowed(&user, READ_AKS));
        assert!(is_allowed(&user, USER_CRED));
        assert!(!is_allowed(&user, ADMIN_CRED));
        assert!(!is_allowed(&user, READ_BASTION_ACTION));

        let admin = [aks_cluster_admin()];
        assert!(is_allowed(&admin, READ_AKS));
        assert!(is_allowed(&admin, ADMIN_CRED));
        assert!(!is_allowed(&admin, USER_CRED));

        // RBAC Cluster Admin grants the user credential but not managedClusters/read.
        let rbac = [aks_rbac_cluster_admin()];
        assert!(is_allowed(&rbac, USER_CRED));
        assert!(!is_allowed(&rbac, READ_AKS));
        assert!(!is_allowed(&rbac, ADMIN_CRED));
        assert!(!is_allowed(&[aks_rbac_reader()], USER_CRED));
        // Data actions never grant control-plane actions.
        let data_only = Permission {
            data_actions: vec!["*".into()],
            ..Permission::default()
        };
        assert!(!data_only.allows(READ_AKS));
    }

    #[test]
    fn custom_roles_with_not_actions() {
        let network_no_bastion = Permission::new(
            &["Microsoft.Network/*"],
            &["Microsoft.Network/bastionHosts/*"],
        );
        assert!(network_no_bastion.allows(READ_VNET));
        assert!(!network_no_bastion.allows(READ_BASTION_ACTION));
        // A second entry with Reader restores bastionHosts/read.
        assert!(is_allowed(
            &[network_no_bastion.clone(), reader()],
            READ_BASTION_ACTION
        ));
        // A `notActions` in one entry never subtracts from another entry.
        let deny_all_reads = Permission::new(&["Microsoft.Compute/*"], &["*/read"]);
        assert!(is_allowed(&[deny_all_reads.clone(), reader()], READ_VNET));
        assert!(!is_allowed(
            &[deny_all_reads],
            "Microsoft.Compute/virtualMachines/read"
        ));
        assert!(is_allowed(&[network_contributor()], READ_BASTION_ACTION));
    }

    #[test]
    fn table_roles_really_grant_their_action() {
        for r in ALL_REQUIRED_ACTIONS {
            assert!(r.granting_roles.contains(&r.smallest_role), "{}", r.action);
            for role in r.granting_roles {
                let def = by_name(role).unwrap_or_else(|| panic!("unknown role {role}"));
                assert!(def.allows(r.action), "{role} should grant {}", r.action);
            }
        }
        assert!(!reader().allows(LIST_ADMIN_CREDENTIAL.action));
    }

    #[test]
    fn deserialises_permissions_page() {
        let page: PermissionPage = serde_json::from_str(
            r#"{"value":[
              {"actions":["*/read"],"notActions":[],"dataActions":[],"notDataActions":[]},
              {"actions":["Microsoft.ContainerService/managedClusters/listClusterUserCredential/action","Microsoft.ContainerService/managedClusters/read"],"notActions":null}
            ],"nextLink":null}"#,
        )
        .unwrap();
        assert_eq!(page.value.len(), 2);
        assert!(is_allowed(&page.value, USER_CRED));
        assert!(is_allowed(&page.value, READ_BASTION_ACTION));
        assert!(page.next_link.is_none());
    }

    fn scope(s: &str) -> ResourceId {
        s.parse().unwrap()
    }

    #[test]
    fn evaluate_reports_allowed_denied_unknown_with_roles() {
        let cluster = scope(
            "/subscriptions/2222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks",
        );
        let bastion = scope(
            "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion",
        );
        let mut perms = HashMap::new();
        perms.insert(
            ScopeKind::Cluster,
            ScopePermissions {
                scope: cluster.clone(),
                permissions: Ok(vec![reader()]),
            },
        );
        perms.insert(
            ScopeKind::Bastion,
            ScopePermissions {
                scope: bastion,
                permissions: Err("403 AuthorizationFailed".into()),
            },
        );
        let checks = evaluate(&aks_required_actions(false, true), &perms);
        assert_eq!(checks.len(), 4);
        assert_eq!(checks[0].outcome, CheckOutcome::Allowed);
        assert_eq!(checks[1].outcome, CheckOutcome::Denied);
        assert!(matches!(&checks[2].outcome, CheckOutcome::Unknown(w) if w.contains("403")));
        assert!(
            matches!(&checks[3].outcome, CheckOutcome::Unknown(w) if w.contains("could not be determined"))
        );

        let f = checks[1].to_finding();
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.contains(USER_CRED));
        assert!(f.detail.contains(cluster.as_str()));
        let fix = f.fix.unwrap();
        assert!(
            fix.contains("'Azure Kubernetes Service Cluster User Role'"),
            "{fix}"
        );
        assert!(fix.contains("--role \"Azure Kubernetes Service Cluster User Role\""));
        assert_eq!(checks[0].to_finding().status, Status::Pass);
        assert_eq!(checks[2].to_finding().status, Status::Unknown);

        let admin = evaluate(&aks_required_actions(true, false), &perms);
        assert_eq!(admin.len(), 3);
        assert_eq!(admin[1].required.action, ADMIN_CRED);
        assert!(
            admin[1]
                .to_finding()
                .fix
                .unwrap()
                .contains("Cluster Admin Role")
        );
    }
}
