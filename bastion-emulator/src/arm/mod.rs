//! The ARM emulator: an HTTPS ARM that serves [`Fixtures`] with real authentication,
//! role-based authorization, paging, [`Fault`] injection and a request log.

mod faults;
mod fixtures;
mod service;

pub use faults::{Fault, FaultKind};
pub use fixtures::{
    ClusterAccess, CredentialKind, FixtureError, Fixtures, Principal, RoleAssignment, Subscription,
    is_aad_only, kubeconfig_for, kubeconfig_for_format,
};
pub use service::{ArmEmulator, ArmEmulatorConfig, DEFAULT_ARM_HOST, RequestRecord};
