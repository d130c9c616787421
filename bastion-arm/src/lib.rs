//! # bastion-arm
//!
//! The Azure Resource Manager side of Bastion tunnels: Bastion and AKS lookups, native-client
//! decisions, role and network pre-flight checks, AKS credentials and the kubeconfig rewrite for
//! a tunnel. The tunnel itself is `bastion-core`'s.
//!
//! ## Quick start
//!
//! An AKS private cluster through its Bastion, as `az aks bastion` does it:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use bastion_arm::{
//!     ArmClient, ArmClientConfig, Cloud, ClusterSelector, CredentialKind, Kubeconfig, ResourceId,
//!     Usage, build_credential, discover_bastion, fetch_kubeconfig, run_aks_preflight,
//! };
//! use bastion_core::{HttpsConfig, LocalListener, Target, Tunnel};
//!
//! # async fn run(
//! #     shutdown: impl std::future::Future<Output = ()>,
//! # ) -> Result<(), Box<dyn std::error::Error>> {
//! // ARM, and who we are (here: the Azure CLI's sign-in), over one shared transport.
//! let config = ArmClientConfig::for_cloud(Cloud::AzureCloud);
//! let transport = Arc::new(config.transport()?);
//! let credential = build_credential(&CredentialKind::DeveloperTools, &config.cloud, transport)?;
//! let arm = ArmClient::new(config, Arc::clone(&credential))?;
//!
//! // The cluster, its Bastion (hub/spoke peering included), and every check up front.
//! let cluster_id: ResourceId =
//!     "/subscriptions/.../resourceGroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks"
//!         .parse()?;
//! let cluster = arm.get_cluster(&cluster_id).await?;
//! let bastion = discover_bastion(&arm, &cluster, None).await?.bastion;
//! let plan = bastion.native_client_support(Usage::Aks)?;
//! let report = run_aks_preflight(&arm, &cluster, &bastion, false).await;
//! if !report.passed() {
//!     return Err(report.render_text().into());
//! }
//!
//! // A local port, a kubeconfig pointing at it, and the tunnel to the API server behind it.
//! let listener = LocalListener::bind_loopback(0).await?;
//! let mut kubeconfig = Kubeconfig::parse(&fetch_kubeconfig(&arm, &cluster, false, None).await?)?;
//! kubeconfig.point_at_tunnel(ClusterSelector::CurrentContext, listener.port())?;
//! kubeconfig.write(std::path::Path::new("kubeconfig"))?;
//! let target = Target::resource(cluster.id.as_str(), 443)?;
//! let tunnel = Tunnel::new(
//!     plan.tunnel_config(target, arm.scope(), HttpsConfig::default())?,
//!     credential,
//! )?;
//! let summary = tunnel.serve(listener, shutdown).await; // until `shutdown`, e.g. Ctrl-C
//! assert_eq!(summary.undeleted_sessions, 0);
//! # Ok(()) }
//! ```
//!
//! ## What is here
//!
//! - [`ArmClient`] ([`ArmClientConfig`], [`Cloud`]): ARM reads over an `azure_core` pipeline on
//!   `bastion-core`'s HTTPS transport ([`HyperTransport`]); [`build_credential`] makes the
//!   token credential. Errors are [`ArmError`]s, asked with predicates.
//! - [`model`]: the resources as ARM returns them ([`model::BastionHost`],
//!   [`model::ManagedCluster`], …), behind the [`ArmRead`] seam (`testing::FakeArm`, feature
//!   `testing`, is an in-memory one).
//! - [`discover_bastion`]: which Bastion serves a cluster;
//!   [`model::BastionHost::native_client_support`]: whether it can, as an [`EndpointPlan`].
//! - [`run_aks_preflight`] and [`gate_findings`]: the checks as a [`Report`] of [`Finding`]s,
//!   built from [`access`] (roles) and [`network`] (peering, DNS, authorized ranges).
//! - [`fetch_kubeconfig`] and [`Kubeconfig`]: the cluster credentials, rewritten for the
//!   tunnel, merged with a user's kubeconfig, and read for an API client of your own;
//!   `SessionDir` (a private directory for a temporary kubeconfig, swept once its process is
//!   gone) and `InPlaceStore` (a crash-safe in-place edit of a user's file, restored byte for
//!   byte), on Unix.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod access;
mod aks;
mod bastion;
mod client;
mod credential;
mod discovery;
mod error;
mod kubeconfig;
pub mod model;
pub mod network;
mod preflight;
mod read;
mod report;
mod resource_id;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod transport;

pub use aks::{AksError, CredentialError, CredentialRequest, fetch_credentials, fetch_kubeconfig};
pub use bastion::{
    DEFAULT_ALLOWED_PORTS, EndpointPlan, NativeClientError, REFERENCE_GATE_MESSAGE, Usage,
};
pub use client::{ArmClient, ArmClientConfig, api_version};
pub use credential::{Cloud, CredentialKind, build_credential};
pub use discovery::{Discovery, DiscoveryError, DiscoverySource, discover_bastion};
pub use error::{ArmError, ServiceError};
pub use kubeconfig::{
    AKS_AAD_SCOPE, AKS_AAD_SERVER_ID, ApiServerAccess, ClientCertificate, ClusterSelector,
    EXEC_API_VERSION, ExecPlugin, Kubeconfig, KubeconfigError, KubeloginLogin, RewriteRecord,
    UserCredentials,
};
#[cfg(unix)]
pub use kubeconfig::{InPlaceEdit, InPlaceStore, Recovery, RestoreAction, Restored, SessionDir};
pub use preflight::{gate_findings, run_aks_preflight};
pub use read::ArmRead;
pub use report::{Finding, Report, Status};
pub use resource_id::{ResourceId, ResourceIdError, ResourceScope};
pub use transport::HyperTransport;
