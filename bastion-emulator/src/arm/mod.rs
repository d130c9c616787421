//! The ARM emulator: an HTTPS ARM that serves [`Fixtures`] with real authentication,
//! role-based authorization, paging, [`Fault`] injection and a request log.

mod faults;
mod fixtures;
mod service;

pub use faults::{Fault, FaultKind};
pub use fixtures::{
    ClusterAccess, CredentialKind, FixtureError, Fixtures, Principal, RoleAssignment, Subscription,
    kubeconfig_for,
};
pub use service::{ArmEmulator, ArmEmulatorConfig, DEFAULT_ARM_HOST, RequestRecord};
