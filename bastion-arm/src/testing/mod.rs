//! Test doubles for code that reads ARM through [`ArmRead`] (feature `testing`; always on in
//! this crate's own unit tests).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::error::{ArmError, ServiceError};
use crate::model::{
    BastionHost, CredentialResults, ManagedCluster, Permission, PublicIpAddress, VirtualNetwork,
    VirtualNetworkLink,
};
use crate::read::ArmRead;
use crate::resource_id::ResourceId;

#[cfg(test)]
pub(crate) mod fixtures;

/// A kubeconfig as `listClusterUserCredential` returns it for the private cluster `myaks`: one
/// cluster, context and token user, the current context set.
pub const PRIVATE_CLUSTER_KUBECONFIG: &str = r#"apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://myaks.privatelink.eastus.azmk8s.io:443
  name: myaks
contexts:
- context: {cluster: myaks, user: u}
  name: myaks
current-context: myaks
kind: Config
users:
- name: u
  user: {token: t}
"#;

/// A user's own kubeconfig: cluster `other` (the current context), a stale entry for `myaks`,
/// and preferences; no `apiVersion` or `kind`.
pub const USER_KUBECONFIG: &str = r#"clusters:
- cluster: {server: "https://other.example:6443"}
  name: other
- cluster: {server: "https://old.example:443"}
  name: myaks
contexts:
- context: {cluster: other, user: o}
  name: other
current-context: other
preferences: {colors: true}
users:
- name: o
  user: {token: x}
"#;

/// An ARM error status, as the fake answers it: `code` with a message naming `path`.
pub fn service(status: u16, code: &str, path: &str) -> ArmError {
    service_with(status, code, &format!("{code} for {path}"), path)
}

/// An ARM error status with its own message.
pub fn service_with(status: u16, code: &str, message: &str, path: &str) -> ArmError {
    ServiceError {
        status,
        code: Some(code.to_owned()),
        message: message.to_owned(),
        target: None,
        details: Vec::new(),
        method: "GET".into(),
        resource: path.to_owned(),
        request_id: None,
        correlation_id: None,
        client_request_id: None,
    }
    .into()
}

/// An in-memory [`ArmRead`]: resources by id, plus scopes that answer 403. Reads of anything
/// else answer 404, like ARM.
#[derive(Default)]
pub struct FakeArm {
    /// Bastion hosts.
    pub bastions: Vec<BastionHost>,
    /// Managed clusters.
    pub clusters: Vec<ManagedCluster>,
    /// Virtual networks.
    pub vnets: Vec<VirtualNetwork>,
    /// Public IP addresses.
    pub pips: Vec<PublicIpAddress>,
    /// Permission entries per scope; a read at a scope returns every entry at or above it.
    pub permissions: HashMap<ResourceId, Vec<Permission>>,
    /// Virtual network links per private DNS zone id.
    pub zone_links: HashMap<ResourceId, Vec<VirtualNetworkLink>>,
    /// Private DNS zone ids.
    pub zones: Vec<ResourceId>,
    /// Kubeconfig YAML per cluster id: (user, admin).
    pub kubeconfigs: HashMap<ResourceId, (String, String)>,
    /// Ids or scopes (RG/subscription ids) that answer 403.
    pub forbidden: HashSet<ResourceId>,
    /// Every call made, in order, as `method argument` text.
    pub calls: Mutex<Vec<String>>,
}

impl FakeArm {
    fn log(&self, call: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }

    /// A copy of [`FakeArm::calls`].
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn check(&self, id: &ResourceId) -> Result<(), ArmError> {
        if self.forbidden.iter().any(|f| f.contains(id)) {
            return Err(service(403, "AuthorizationFailed", id.as_str()));
        }
        Ok(())
    }

    fn get<T: Clone>(
        &self,
        items: &[T],
        id: &ResourceId,
        key: impl Fn(&T) -> &ResourceId,
    ) -> Result<T, ArmError> {
        self.check(id)?;
        items
            .iter()
            .find(|x| key(x) == id)
            .cloned()
            .ok_or_else(|| service(404, "ResourceNotFound", id.as_str()))
    }

    fn in_group<T: Clone>(
        &self,
        items: &[T],
        sub: &str,
        rg: &str,
        key: impl Fn(&T) -> &ResourceId,
    ) -> Result<Vec<T>, ArmError> {
        let scope = ResourceId::for_resource_group(sub, rg)?;
        self.check(&scope)?;
        Ok(items
            .iter()
            .filter(|x| scope.contains(key(x)))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl ArmRead for FakeArm {
    async fn get_bastion(&self, id: &ResourceId) -> Result<BastionHost, ArmError> {
        self.log(format!("get_bastion {id}"));
        self.get(&self.bastions, id, |b| &b.id)
    }
    async fn list_bastions_in_group(
        &self,
        sub: &str,
        rg: &str,
    ) -> Result<Vec<BastionHost>, ArmError> {
        self.log(format!("list_bastions {sub}/{rg}"));
        self.in_group(&self.bastions, sub, rg, |b| &b.id)
    }
    async fn list_bastions_in_subscription(&self, sub: &str) -> Result<Vec<BastionHost>, ArmError> {
        self.log(format!("list_bastions {sub}"));
        let scope = ResourceId::for_subscription(sub)?;
        self.check(&scope)?;
        Ok(self
            .bastions
            .iter()
            .filter(|b| scope.contains(&b.id))
            .cloned()
            .collect())
    }
    async fn get_cluster(&self, id: &ResourceId) -> Result<ManagedCluster, ArmError> {
        self.log(format!("get_cluster {id}"));
        self.get(&self.clusters, id, |c| &c.id)
    }
    async fn get_vnet(&self, id: &ResourceId) -> Result<VirtualNetwork, ArmError> {
        self.log(format!("get_vnet {id}"));
        self.get(&self.vnets, id, |v| &v.id)
    }
    async fn list_vnets_in_group(
        &self,
        sub: &str,
        rg: &str,
    ) -> Result<Vec<VirtualNetwork>, ArmError> {
        self.log(format!("list_vnets {sub}/{rg}"));
        self.in_group(&self.vnets, sub, rg, |v| &v.id)
    }
    async fn get_public_ip(&self, id: &ResourceId) -> Result<PublicIpAddress, ArmError> {
        self.log(format!("get_public_ip {id}"));
        self.get(&self.pips, id, |p| &p.id)
    }
    async fn permissions(&self, scope: &ResourceId) -> Result<Vec<Permission>, ArmError> {
        self.log(format!("permissions {scope}"));
        self.check(scope)?;
        Ok(self
            .permissions
            .iter()
            .filter(|(s, _)| s.contains(scope))
            .flat_map(|(_, p)| p.clone())
            .collect())
    }
    async fn list_private_dns_zones(
        &self,
        sub: &str,
        rg: &str,
    ) -> Result<Vec<ResourceId>, ArmError> {
        self.log(format!("list_zones {sub}/{rg}"));
        self.in_group(&self.zones, sub, rg, |z| z)
    }
    async fn list_zone_links(
        &self,
        zone: &ResourceId,
    ) -> Result<Vec<VirtualNetworkLink>, ArmError> {
        self.log(format!("list_zone_links {zone}"));
        self.check(zone)?;
        self.zone_links
            .get(zone)
            .cloned()
            .ok_or_else(|| service(404, "ParentResourceNotFound", zone.as_str()))
    }
    async fn list_cluster_credential(
        &self,
        cluster: &ResourceId,
        admin: bool,
        _server_fqdn: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        use base64::Engine as _;
        self.log(format!("list_cluster_credential {cluster} admin={admin}"));
        let c = self.get(&self.clusters, cluster, |c| &c.id)?;
        if admin && c.properties.disable_local_accounts {
            return Err(service_with(
                400,
                "BadRequest",
                "Getting static credential is not allowed because this cluster is set to disable local accounts.",
                cluster.as_str(),
            ));
        }
        let (name, yaml) = match self.kubeconfigs.get(cluster) {
            Some((u, a)) => {
                if admin {
                    ("clusterAdmin", a.clone())
                } else {
                    ("clusterUser", u.clone())
                }
            }
            None => return Ok(CredentialResults::default()),
        };
        Ok(serde_json::from_value(serde_json::json!({"kubeconfigs": [{
            "name": name,
            "value": base64::engine::general_purpose::STANDARD.encode(yaml)
        }]}))
        .map_err(|e| ArmError::InvalidArgument(e.to_string()))?)
    }
}
