//! The seam between the checks and ARM: [`ArmRead`], the reads that discovery, the pre-flight
//! checks and the credential fetch make.

use async_trait::async_trait;

use crate::error::ArmError;
use crate::model::{
    BastionHost, CredentialResults, ManagedCluster, Permission, PublicIpAddress, VirtualNetwork,
    VirtualNetworkLink,
};
use crate::resource_id::ResourceId;

/// The ARM reads used by discovery, the pre-flight checks and the credential fetch.
/// Implemented by [`crate::ArmClient`]; `bastion_arm::testing::FakeArm` (feature `testing`) is
/// an in-memory one for tests.
#[async_trait]
pub trait ArmRead: Send + Sync {
    /// GET a Bastion host.
    async fn get_bastion(&self, id: &ResourceId) -> Result<BastionHost, ArmError>;
    /// List the Bastion hosts of a resource group.
    async fn list_bastions_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<BastionHost>, ArmError>;
    /// List the Bastion hosts of a subscription.
    async fn list_bastions_in_subscription(
        &self,
        subscription: &str,
    ) -> Result<Vec<BastionHost>, ArmError>;
    /// GET a managed cluster.
    async fn get_cluster(&self, id: &ResourceId) -> Result<ManagedCluster, ArmError>;
    /// GET a virtual network.
    async fn get_vnet(&self, id: &ResourceId) -> Result<VirtualNetwork, ArmError>;
    /// List the virtual networks of a resource group.
    async fn list_vnets_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<VirtualNetwork>, ArmError>;
    /// GET a public IP address.
    async fn get_public_ip(&self, id: &ResourceId) -> Result<PublicIpAddress, ArmError>;
    /// The caller's permissions at a scope.
    async fn permissions(&self, scope: &ResourceId) -> Result<Vec<Permission>, ArmError>;
    /// The ids of the private DNS zones of a resource group.
    async fn list_private_dns_zones(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<ResourceId>, ArmError>;
    /// The virtual network links of a private DNS zone.
    async fn list_zone_links(&self, zone: &ResourceId)
    -> Result<Vec<VirtualNetworkLink>, ArmError>;
    /// `listClusterUserCredential` (or `listClusterAdminCredential` with `admin`), with the
    /// optional `server-fqdn` query (`public`/`private`).
    async fn list_cluster_credential(
        &self,
        cluster: &ResourceId,
        admin: bool,
        server_fqdn: Option<&str>,
    ) -> Result<CredentialResults, ArmError>;
    /// [`ArmRead::list_cluster_credential`] with the `format` query of
    /// `listClusterUserCredential` (`exec` or `azure`, for AAD clusters; not sent for admin
    /// credentials). The default sends no `format` and refuses one.
    async fn list_cluster_credential_in_format(
        &self,
        cluster: &ResourceId,
        admin: bool,
        server_fqdn: Option<&str>,
        format: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        if format.is_some() && !admin {
            return Err(ArmError::InvalidArgument(
                "this ARM reader cannot ask for a credential format".into(),
            ));
        }
        self.list_cluster_credential(cluster, admin, server_fqdn)
            .await
    }
}
