//! # bastion-arm
//!
//! The Azure Resource Manager side of Bastion tunnels: Bastion and AKS lookups, native-client
//! decisions, role and network pre-flight checks, AKS credentials, the kubeconfig rewrite for a
//! tunnel, and (feature `emulator`) an ARM + Kubernetes API emulator.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod access;
pub mod aks;
pub mod bastion;
pub mod client;
pub mod credential;
pub mod discovery;
pub mod error;
pub mod kubeconfig;
pub mod network;
pub mod preflight;
pub mod resource_id;
pub mod transport;
