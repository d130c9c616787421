//! The Bastion data-plane emulator: a real HTTPS + WSS server on loopback that behaves like the
//! Bastion data plane described in `docs/protocol.md`: `POST /api/tokens`, the WebSocket tunnel
//! to local TCP targets, `DELETE /api/tokens/{authToken}`, the Developer-SKU
//! `POST /api/connection`, an observable session registry ([`Emulator::sessions`],
//! [`Emulator::stats`], [`Emulator::events`]), a control API (`/_emulator/*`) and runtime fault
//! knobs ([`Faults`]).

mod config;
mod connection;
mod control;
mod faults;
mod handle;
mod io;
mod pages;
mod registry;
mod relay;
mod server;
mod state;
mod targets;
mod tokens;
mod websocket;

pub use config::{
    BastionFixture, DEFAULT_DATA_POD_HOST, EmulatorConfig, TEST_SUBSCRIPTION, TEST_TENANT,
    TargetFixture, vm_resource_id,
};
pub use control::CONTROL_SECRET_HEADER;
pub use faults::{
    CloseAfter, Faults, HttpFault, NodeCheck, RateLimit, Scope, TargetFailure, Trigger,
};
pub use handle::Emulator;
pub use registry::{Event, EventKind, SessionRecord, SessionState, Stats};
pub(crate) use targets::serve_forever;
pub use targets::{StalledTarget, spawn_echo_target, spawn_stalled_target};
