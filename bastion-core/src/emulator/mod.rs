//! The Bastion data-plane emulator (feature `emulator`).
//!
//! A real HTTPS + WSS server on loopback that behaves like the Bastion data plane of the spec
//! (§5–§8, §14): `POST /api/tokens`, the WebSocket tunnel to local TCP targets,
//! `DELETE /api/tokens/{authToken}`, the Developer-SKU `POST /api/connection`, an observable
//! session registry ([`Emulator::sessions`], [`Emulator::stats`], [`Emulator::events`]), a
//! control API (`/_emulator/*`) and runtime fault knobs ([`Faults`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use bastion_core::emulator::*;
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

mod ca;
mod config;
mod connection;
mod control;
mod error;
mod faults;
mod handle;
mod ids;
mod io;
pub mod jwt;
mod registry;
mod relay;
mod respond;
mod server;
mod targets;
mod tokens;
mod websocket;

#[cfg(test)]
mod tests;

pub use ca::TestCa;
pub use config::{
    BastionFixture, DEFAULT_DATA_POD_HOST, EmulatorConfig, TEST_SUBSCRIPTION, TEST_TENANT,
    TargetFixture, vm_resource_id,
};
pub use error::EmulatorError;
pub use faults::{
    CloseAfter, Faults, HttpFault, NodeCheck, RateLimit, Scope, TargetFailure, Trigger,
};
pub use handle::Emulator;
pub use jwt::{TestClaims, is_arm_audience};
pub use registry::{Event, EventKind, SessionRecord, SessionState, Stats};
pub use targets::{StalledTarget, spawn_echo_target, spawn_stalled_target};
