//! What the ARM emulator knows: tenants and subscriptions, resource groups, resources stored as
//! JSON documents by id, principals, role assignments, and the credentials each cluster hands
//! out (and the Kubernetes stand-in accepts).

use base64::Engine as _;
use serde_json::{Value, json};

use bastion_arm::ResourceId;
use bastion_arm::access;
use bastion_arm::model::Permission;

/// A user or service principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Object id (`oid` claim).
    pub oid: String,
    /// Home tenant (`tid` claim).
    pub tenant: String,
    /// User principal name, shown in 403 messages.
    pub upn: Option<String>,
}

/// A role assignment: one permissions-API entry at `scope` for `principal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleAssignment {
    /// Object id of the principal.
    pub principal: String,
    /// The scope (subscription, resource group or resource id).
    pub scope: ResourceId,
    /// The role's actions and notActions.
    pub permission: Permission,
}

/// A subscription and its tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Subscription id.
    pub id: String,
    /// The tenant whose tokens it accepts.
    pub tenant: String,
}

/// The bearer tokens a cluster's user and admin kubeconfigs carry.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterAccess {
    /// Token in the `clusterUser` kubeconfig.
    pub user_token: String,
    /// Token in the `clusterAdmin` kubeconfig.
    pub admin_token: String,
}

impl std::fmt::Debug for ClusterAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterAccess").finish_non_exhaustive()
    }
}

impl ClusterAccess {
    /// Fresh random tokens.
    pub fn random() -> Self {
        ClusterAccess {
            user_token: random_token("user"),
            admin_token: random_token("admin"),
        }
    }
}

fn random_token(kind: &str) -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "emu-{kind}-{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The emulator's world. Build it with the chaining methods; ids are matched case-insensitively
/// and returned exactly as stored.
#[derive(Debug, Clone, Default)]
pub struct Fixtures {
    subscriptions: Vec<Subscription>,
    resource_groups: Vec<ResourceId>,
    resources: Vec<(ResourceId, Value)>,
    principals: Vec<Principal>,
    assignments: Vec<RoleAssignment>,
    cluster_access: Vec<(ResourceId, ClusterAccess)>,
}

/// A fixture that cannot be added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid emulator fixture: {0}")]
pub struct FixtureError(pub String);

impl Fixtures {
    /// An empty world.
    pub fn new() -> Self {
        Fixtures::default()
    }

    /// Adds (or re-homes) a subscription in `tenant`.
    pub fn subscription(&mut self, id: &str, tenant: &str) -> &mut Self {
        self.subscriptions
            .retain(|s| !s.id.eq_ignore_ascii_case(id));
        self.subscriptions.push(Subscription {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
        });
        self
    }

    /// Adds a resource group (its subscription must be added separately).
    pub fn resource_group(
        &mut self,
        subscription: &str,
        name: &str,
    ) -> Result<&mut Self, FixtureError> {
        let id = ResourceId::for_resource_group(subscription, name)
            .map_err(|e| FixtureError(e.to_string()))?;
        if !self.resource_groups.contains(&id) {
            self.resource_groups.push(id);
        }
        Ok(self)
    }

    /// Adds or replaces a resource document; its `id` decides where it lives (its resource
    /// group is added when missing). A managed cluster also gets random [`ClusterAccess`]
    /// tokens unless it has some already.
    pub fn resource(&mut self, doc: Value) -> Result<&mut Self, FixtureError> {
        let id_text = doc
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| FixtureError("a resource document needs a string \"id\"".into()))?;
        let id = ResourceId::parse(id_text).map_err(|e| FixtureError(e.to_string()))?;
        if let Some(rg) = id.resource_group_id()
            && !self.resource_groups.contains(&rg)
        {
            self.resource_groups.push(rg);
        }
        if id.is_type("Microsoft.ContainerService/managedClusters")
            && self.cluster_access(&id).is_none()
        {
            self.cluster_access
                .push((id.clone(), ClusterAccess::random()));
        }
        match self.resources.iter_mut().find(|(k, _)| *k == id) {
            Some(slot) => slot.1 = doc,
            None => self.resources.push((id, doc)),
        }
        Ok(self)
    }

    /// Removes a resource; returns whether it existed.
    pub fn remove_resource(&mut self, id: &ResourceId) -> bool {
        let before = self.resources.len();
        self.resources.retain(|(k, _)| k != id);
        before != self.resources.len()
    }

    /// Changes a stored document in place (e.g. to flip `enableTunneling` mid-test).
    pub fn update_resource(&mut self, id: &ResourceId, f: impl FnOnce(&mut Value)) -> bool {
        match self.resources.iter_mut().find(|(k, _)| k == id) {
            Some((_, doc)) => {
                f(doc);
                true
            }
            None => false,
        }
    }

    /// Adds a principal.
    pub fn principal(&mut self, oid: &str, tenant: &str, upn: Option<&str>) -> &mut Self {
        self.principals.retain(|p| p.oid != oid);
        self.principals.push(Principal {
            oid: oid.to_owned(),
            tenant: tenant.to_owned(),
            upn: upn.map(str::to_owned),
        });
        self
    }

    /// Assigns `permission` (a role's actions and notActions) to `principal` at `scope`.
    pub fn assign(
        &mut self,
        principal: &str,
        scope: &str,
        permission: Permission,
    ) -> Result<&mut Self, FixtureError> {
        let scope = ResourceId::parse(scope).map_err(|e| FixtureError(e.to_string()))?;
        self.assignments.push(RoleAssignment {
            principal: principal.to_owned(),
            scope,
            permission,
        });
        Ok(self)
    }

    /// Assigns a built-in role by name (`Reader`, `Owner`, `Contributor`,
    /// `Azure Kubernetes Service Cluster User Role`, …; see [`access::builtin::by_name`]).
    pub fn assign_role(
        &mut self,
        principal: &str,
        scope: &str,
        role: &str,
    ) -> Result<&mut Self, FixtureError> {
        let permission = access::builtin::by_name(role)
            .ok_or_else(|| FixtureError(format!("unknown built-in role {role:?}")))?;
        self.assign(principal, scope, permission)
    }

    /// Removes every assignment of `principal` at exactly `scope`.
    pub fn unassign(&mut self, principal: &str, scope: &ResourceId) -> &mut Self {
        self.assignments
            .retain(|a| !(a.principal == principal && a.scope == *scope));
        self
    }

    /// Sets the tokens of a cluster's kubeconfigs.
    pub fn set_cluster_access(&mut self, cluster: &ResourceId, access: ClusterAccess) -> &mut Self {
        self.cluster_access.retain(|(k, _)| k != cluster);
        self.cluster_access.push((cluster.clone(), access));
        self
    }

    // ----- queries ---------------------------------------------------------------------------

    /// A subscription by id.
    pub fn find_subscription(&self, id: &str) -> Option<&Subscription> {
        self.subscriptions
            .iter()
            .find(|s| s.id.eq_ignore_ascii_case(id))
    }

    /// Whether the resource group exists.
    pub fn has_resource_group(&self, id: &ResourceId) -> bool {
        self.resource_groups.contains(id)
    }

    /// A stored document by id.
    pub fn find(&self, id: &ResourceId) -> Option<&Value> {
        self.resources.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }

    /// Every stored document with its parsed id, in insertion order.
    pub fn resources(&self) -> impl Iterator<Item = (&ResourceId, &Value)> {
        self.resources.iter().map(|(k, v)| (k, v))
    }

    /// A principal by object id.
    pub fn find_principal(&self, oid: &str) -> Option<&Principal> {
        self.principals.iter().find(|p| p.oid == oid)
    }

    /// Every principal.
    pub fn principals(&self) -> &[Principal] {
        &self.principals
    }

    /// The permissions-API entries of `principal` at `scope`: one per assignment whose scope
    /// is `scope` or above it.
    pub fn permissions_at(&self, principal: &str, scope: &ResourceId) -> Vec<Permission> {
        self.assignments
            .iter()
            .filter(|a| a.principal == principal && a.scope.contains(scope))
            .map(|a| a.permission.clone())
            .collect()
    }

    /// Whether `principal` may perform `action` at `scope`.
    pub fn is_allowed(&self, principal: &str, action: &str, scope: &ResourceId) -> bool {
        access::is_allowed(&self.permissions_at(principal, scope), action)
    }

    /// The tokens of a cluster's kubeconfigs.
    pub fn cluster_access(&self, cluster: &ResourceId) -> Option<&ClusterAccess> {
        self.cluster_access
            .iter()
            .find(|(k, _)| k == cluster)
            .map(|(_, a)| a)
    }

    /// Every cluster with its tokens.
    pub fn clusters_with_access(&self) -> impl Iterator<Item = (&ResourceId, &ClusterAccess)> {
        self.cluster_access.iter().map(|(k, a)| (k, a))
    }
}

/// Which kubeconfig `listCluster…Credential` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// `listClusterUserCredential` → `clusterUser`.
    User,
    /// `listClusterAdminCredential` → `clusterAdmin`.
    Admin,
}

/// The kubeconfig YAML a cluster document yields: `server` = `https://{host}:443` where host is
/// `privateFQDN` (private cluster, or `server_fqdn = "private"`) or `fqdn` (public cluster, or
/// `server_fqdn = "public"`); CA = `ca_pem`; the user carries the bearer token of `access`.
/// For an AAD cluster's user credentials see [`kubeconfig_for_format`].
pub fn kubeconfig_for(
    cluster: &Value,
    access: &ClusterAccess,
    kind: CredentialKind,
    server_fqdn: Option<&str>,
    ca_pem: &str,
) -> Result<String, FixtureError> {
    kubeconfig_for_format(cluster, access, kind, server_fqdn, None, ca_pem)
}

/// Whether a cluster document is an AAD cluster without local accounts: its user credentials
/// are then a kubelogin exec plugin (or the legacy `azure` auth provider), never a token.
pub fn is_aad_only(cluster: &Value) -> bool {
    let props = cluster.get("properties");
    let flag = |p: &str| {
        props
            .and_then(|v| v.pointer(p))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    flag("/aadProfile/managed") && flag("/disableLocalAccounts")
}

/// The user entry of an AAD cluster's user credentials, as AKS shapes it: `format` `exec` (or
/// absent) gives kubelogin with `--login devicecode`, `azure` the legacy auth provider.
fn aad_user(cluster: &Value, format: Option<&str>) -> Result<Value, FixtureError> {
    let tenant = cluster
        .pointer("/properties/aadProfile/tenantID")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match format.map(str::to_ascii_lowercase).as_deref() {
        None | Some("exec") => Ok(json!({ "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "args": [
                "get-token", "--environment", "AzurePublicCloud",
                "--server-id", crate::jwt::AKS_SERVER_APP_ID,
                "--client-id", crate::jwt::AKS_CLIENT_APP_ID,
                "--tenant-id", tenant,
                "--login", "devicecode",
            ],
            "command": "kubelogin",
            "env": null,
            "installHint": "\nkubelogin is not installed which is required to connect to AAD enabled cluster.\n\nTo learn more, please go to https://aka.ms/aks/kubelogin\n",
            "provideClusterInfo": false,
        }})),
        Some("azure") => Ok(json!({ "auth-provider": {
            "name": "azure",
            "config": {
                "apiserver-id": crate::jwt::AKS_SERVER_APP_ID,
                "client-id": crate::jwt::AKS_CLIENT_APP_ID,
                "config-mode": "1",
                "environment": "AzurePublicCloud",
                "tenant-id": tenant,
            },
        }})),
        Some(other) => Err(FixtureError(format!(
            "format must be 'exec' or 'azure', not {other:?}"
        ))),
    }
}

/// [`kubeconfig_for`] with the `format` query of `listClusterUserCredential`: for an AAD
/// cluster without local accounts ([`is_aad_only`]) the user credentials carry no token but
/// kubelogin (`exec`, the default) or the `azure` auth provider.
pub fn kubeconfig_for_format(
    cluster: &Value,
    access: &ClusterAccess,
    kind: CredentialKind,
    server_fqdn: Option<&str>,
    format: Option<&str>,
    ca_pem: &str,
) -> Result<String, FixtureError> {
    let props = cluster.get("properties").cloned().unwrap_or(Value::Null);
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let private = props
        .pointer("/apiServerAccessProfile/enablePrivateCluster")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let host = match server_fqdn.map(str::to_ascii_lowercase).as_deref() {
        Some("public") => text(&props, "fqdn"),
        Some("private") => text(&props, "privateFQDN"),
        Some(other) => {
            return Err(FixtureError(format!(
                "server-fqdn must be 'public' or 'private', not {other:?}"
            )));
        }
        None if private => text(&props, "privateFQDN").or_else(|| text(&props, "fqdn")),
        None => text(&props, "fqdn"),
    }
    .ok_or_else(|| FixtureError("the cluster has no FQDN of the requested kind".into()))?;
    let name = text(cluster, "name").unwrap_or_else(|| "cluster".into());
    let id = text(cluster, "id").unwrap_or_default();
    let rg = ResourceId::parse(&id)
        .ok()
        .and_then(|i| i.resource_group().map(str::to_owned))
        .unwrap_or_default();
    let (user, context, token) = match kind {
        CredentialKind::User => (
            format!("clusterUser_{rg}_{name}"),
            name.clone(),
            access.user_token.clone(),
        ),
        CredentialKind::Admin => (
            format!("clusterAdmin_{rg}_{name}"),
            format!("{name}-admin"),
            access.admin_token.clone(),
        ),
    };
    let ca_b64 = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": name,
            "cluster": {
                "certificate-authority-data": ca_b64,
                "server": format!("https://{host}:443"),
            }
        }],
        "contexts": [{
            "name": context,
            "context": { "cluster": name, "user": user }
        }],
        "current-context": context,
        "preferences": {},
        "users": [{
            "name": user,
            "user": if kind == CredentialKind::User && is_aad_only(cluster) {
                aad_user(cluster, format)?
            } else {
                json!({ "token": token })
            }
        }]
    });
    yaml_serde::to_string(&config).map_err(|e| FixtureError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "/subscriptions/2222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks";

    fn cluster(private: bool) -> Value {
        json!({"id": CLUSTER, "name": "myaks", "properties": {
            "fqdn": "myaks.hcp.test", "privateFQDN": "myaks.privatelink.test",
            "apiServerAccessProfile": {"enablePrivateCluster": private}}})
    }

    #[test]
    fn ids_match_case_insensitively_and_keep_their_text() {
        let mut f = Fixtures::new();
        f.resource(cluster(true)).unwrap();
        let upper = ResourceId::parse(
            &CLUSTER
                .to_uppercase()
                .replace("SUBSCRIPTIONS", "subscriptions"),
        )
        .unwrap();
        let doc = f.find(&upper).unwrap();
        assert_eq!(doc["id"], CLUSTER);
        assert!(f.has_resource_group(&ResourceId::for_resource_group("2222", "AKS-RG").unwrap()));
        assert!(f.cluster_access(&upper).is_some());
    }

    #[test]
    fn assignments_apply_at_and_below_their_scope() {
        let mut f = Fixtures::new();
        f.assign_role(
            "alice",
            "/subscriptions/2222/resourceGroups/aks-rg",
            "Reader",
        )
        .unwrap();
        let id = ResourceId::parse(CLUSTER).unwrap();
        assert!(f.is_allowed(
            "alice",
            "Microsoft.ContainerService/managedClusters/read",
            &id
        ));
        assert!(!f.is_allowed(
            "alice",
            "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
            &id
        ));
        let other = ResourceId::for_resource_group("2222", "other-rg").unwrap();
        assert!(f.permissions_at("alice", &other).is_empty());
        assert!(f.permissions_at("bob", &id).is_empty());
    }

    #[test]
    fn aad_clusters_hand_out_kubelogin() {
        let mut doc = cluster(true);
        doc["properties"]["aadProfile"] =
            json!({"managed": true, "enableAzureRBAC": true, "tenantID": "tid-1"});
        doc["properties"]["disableLocalAccounts"] = json!(true);
        let access = ClusterAccess::random();
        let user =
            kubeconfig_for_format(&doc, &access, CredentialKind::User, None, None, "CA").unwrap();
        assert!(!user.contains(&access.user_token), "{user}");
        for part in [
            "command: kubelogin",
            "- devicecode",
            "- tid-1",
            crate::jwt::AKS_SERVER_APP_ID,
            crate::jwt::AKS_CLIENT_APP_ID,
        ] {
            assert!(user.contains(part), "{part} missing:\n{user}");
        }
        let azure = kubeconfig_for_format(
            &doc,
            &access,
            CredentialKind::User,
            None,
            Some("azure"),
            "CA",
        )
        .unwrap();
        assert!(azure.contains("apiserver-id"), "{azure}");
        assert!(
            kubeconfig_for_format(&doc, &access, CredentialKind::User, None, Some("x"), "CA")
                .is_err()
        );
    }

    #[test]
    fn kubeconfig_server_follows_privacy_and_server_fqdn() {
        let access = ClusterAccess::random();
        let private =
            kubeconfig_for(&cluster(true), &access, CredentialKind::User, None, "CA").unwrap();
        assert!(
            private.contains("server: https://myaks.privatelink.test:443"),
            "{private}"
        );
        assert!(private.contains(&access.user_token));
        assert!(private.contains("clusterUser_aks-rg_myaks"));
        let public = kubeconfig_for(
            &cluster(true),
            &access,
            CredentialKind::Admin,
            Some("public"),
            "CA",
        )
        .unwrap();
        assert!(
            public.contains("server: https://myaks.hcp.test:443"),
            "{public}"
        );
        assert!(public.contains(&access.admin_token));
        assert!(public.contains("myaks-admin"));
        let plain =
            kubeconfig_for(&cluster(false), &access, CredentialKind::User, None, "CA").unwrap();
        assert!(plain.contains("server: https://myaks.hcp.test:443"));
    }
}
