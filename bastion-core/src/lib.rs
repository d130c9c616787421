//! # bastion-core
//!
//! Azure Bastion "native client" tunnels in Rust: the data-plane protocol, a transport-agnostic
//! `AsyncRead + AsyncWrite` adapter over WebSocket messages ([`TunnelStream`]), the session
//! lifecycle (token exchange, WebSocket, guaranteed DELETE), a local listener, stdin/stdout mode,
//! and (feature `emulator`) a real HTTPS + WSS emulator of the Bastion data plane.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

pub mod error;
pub mod http;
pub mod listener;
pub mod protocol;
mod proxy;
mod secret;
pub mod session;
pub mod stream;
pub mod tls;
pub mod token;
pub mod tunnel;
pub mod websocket;

pub use error::{Error, Operation, Result};
pub use listener::LocalListener;
pub use protocol::{Endpoint, EndpointKind, Target, TokenResponse};
pub use secret::Secret;
pub use stream::{StreamConfig, TunnelStream};
pub use token::{StaticTokenCredential, TokenSource};
pub use tunnel::{
    ConnectionEvent, RelayStats, ServeSummary, Tunnel, TunnelConfig, TunnelConnection,
};
