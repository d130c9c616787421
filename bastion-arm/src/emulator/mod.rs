//! ARM + Kubernetes API emulator (feature `emulator`).
//!
//! - [`ArmEmulator`]: an HTTPS ARM that serves [`Fixtures`] with real authentication,
//!   role-based authorization, paging, [`Fault`] injection and a request log (spec §12).
//! - [`KubeApiServer`]: a Kubernetes API server stand-in, enough for `kubectl get pods` and
//!   `kubectl get nodes`, accepting the credentials of the emulated kubeconfigs.
//! - [`Sandbox`]: both of them plus the Bastion data-plane emulator of bastion-core, wired
//!   into a realistic hub-spoke layout.
//!
//! Every certificate comes from one [`TestCa`](bastion_core::emulator::TestCa); everything
//! listens on loopback.

mod arm;
mod faults;
mod fixtures;
mod kube;
pub mod sandbox;
mod server;

pub use arm::{ArmEmulator, ArmEmulatorConfig, DEFAULT_ARM_HOST, RequestRecord};
pub use faults::{Fault, FaultKind};
pub use fixtures::{
    ClusterAccess, CredentialKind, FixtureError, Fixtures, Principal, RoleAssignment, Subscription,
    kubeconfig_for,
};
pub use kube::{KUBERNETES_VERSION, KubeApiServer, KubeApiServerConfig, KubeRequest};
pub use sandbox::Sandbox;
