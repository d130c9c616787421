//! One module per command, plus the shared pieces (`target` resolution, `child` processes).

pub mod aks;
pub mod check;
pub mod child;
pub mod cluster;
pub mod completions;
pub mod credentials;
#[cfg(feature = "emulator")]
pub mod demo;
#[cfg(feature = "emulator")]
pub mod emulate;
pub mod kube_token;
pub mod kubeclient;
pub mod kubefile;
pub mod proxy;
pub mod rdp;
pub mod ssh;
pub mod target;
pub mod tunnel;
pub mod up;
