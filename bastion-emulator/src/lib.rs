//! # bastion-emulator
//!
//! Offline stand-ins for everything a Bastion tunnel talks to, each a real HTTPS server on
//! loopback with certificates from one test CA:
//!
//! - [`Emulator`]: the Bastion data plane (token exchange, WebSocket tunnel to local TCP
//!   targets, session DELETE, the Developer SKU's data-pod lookup), with an observable session
//!   registry and runtime fault knobs ([`Faults`]).
//! - [`ArmEmulator`]: Azure Resource Manager serving [`Fixtures`] with authentication,
//!   role-based authorization, paging and [`Fault`] injection.
//! - [`KubeApiServer`]: enough of a Kubernetes API server for `kubectl get pods`.
//! - [`Sandbox`]: all three wired into a hub-spoke layout, plus a VM ([`SandboxVm`]).
//! - [`TestCa`] and [`TestClaims`]: the CA behind every certificate, and ARM access tokens.
//! - [`openssh::PrivateSshd`]: a private OpenSSH server, for the real `ssh` and `scp`.
//!
//! The `bastion emulate` and `bastion demo` commands run on this crate, and the libraries'
//! tests use it as a dev-dependency.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bastion_emulator::*;
//! let (echo, _task) = spawn_echo_target().await?;
//! let bastion = BastionFixture::standard(TEST_TENANT);
//! let dns = bastion.dns_name.clone();
//! let emu = Emulator::start(
//!     EmulatorConfig::single(bastion).with_target(TargetFixture::vm("vm1", 22, echo)),
//! )
//! .await?;
//! // Point the client at emu.endpoint_for(&dns), resolve names with emu.resolve_overrides(),
//! // trust emu.ca_pem(), and use TestClaims::new(TEST_TENANT, "oid").mint() as the ARM token.
//! # let _ = dns; emu.assert_no_orphans();
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod arm;
mod bastion;
mod ca;
mod data;
mod error;
mod identity;
mod ids;
pub mod jwt;
mod kube;
pub mod openssh;
mod respond;
pub mod sandbox;
pub mod sandbox_vm;
mod server;
mod test_layout;

pub use arm::{
    ArmEmulator, ArmEmulatorConfig, ClusterAccess, CredentialKind, DEFAULT_ARM_HOST, Fault,
    FaultKind, FixtureError, Fixtures, Principal, RequestRecord, RoleAssignment, Subscription,
    is_aad_only, kubeconfig_for, kubeconfig_for_format,
};
pub use bastion::{
    BastionFixture, CONTROL_SECRET_HEADER, CloseAfter, DEFAULT_DATA_POD_HOST, Emulator,
    EmulatorConfig, Event, EventKind, Faults, HttpFault, NodeCheck, RateLimit, Scope,
    SessionRecord, SessionState, StalledTarget, Stats, TEST_SUBSCRIPTION, TEST_TENANT,
    TargetFailure, TargetFixture, Trigger, spawn_echo_target, spawn_stalled_target, vm_resource_id,
};
pub use ca::TestCa;
pub use data::random_bytes;
pub use error::EmulatorError;
pub use identity::{
    ClientSecretApp, DEFAULT_LOGIN_HOST, DEFAULT_TOKEN_TTL, FederatedApp, GrantKind,
    IDENTITY_HEADER, IdentityEmulator, ManagedIdentity, TokenRequest,
};
pub use jwt::{AKS_SERVER_APP_ID, TestClaims, is_aks_audience, is_arm_audience};
pub use kube::{KUBERNETES_VERSION, KubeApiServer, KubeApiServerConfig, KubeRequest};
pub use sandbox::Sandbox;
pub use sandbox_vm::SandboxVm;
pub use test_layout::assert_test_files_declared;
