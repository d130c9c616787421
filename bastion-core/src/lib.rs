//! # bastion-core
//!
//! Azure Bastion "native client" tunnels: a local port, stdin/stdout or an in-process byte
//! stream whose bytes travel over a WebSocket to a Bastion host, which relays them to a private
//! resource (a VM's port, an AKS private cluster's API server).
//!
//! A [`Tunnel`] is one target behind one Bastion. Each connection gets its own Bastion session:
//! a token exchange, a WebSocket, and a DELETE on every exit path. The tunnel caches the ARM
//! token, pools HTTPS connections, retries what is safe to retry, and at shutdown closes every
//! WebSocket and deletes every session.
//!
//! ## Quick start
//!
//! ```
//! use std::sync::Arc;
//! use bastion_core::{Endpoint, StaticTokenCredential, Target, Tunnel, TunnelConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use bastion_emulator as emu;
//! # let (echo, _echo) = emu::spawn_echo_target().await?;
//! # let fixture = emu::BastionFixture::standard(emu::TEST_TENANT);
//! # let vm_id = emu::vm_resource_id("vm1");
//! # let bastion = emu::Emulator::start(
//! #     emu::EmulatorConfig::single(fixture.clone())
//! #         .with_target(emu::TargetFixture::new(&vm_id, 22, echo)),
//! # ).await?;
//! # let dns_name = bastion.endpoint_for(&fixture.dns_name);
//! # let arm_token = emu::TestClaims::new(emu::TEST_TENANT, "me").mint();
//! // The Bastion's `properties.dnsName`, and the resource and port to reach behind it.
//! let endpoint = Endpoint::parse(&dns_name)?;
//! let target = Target::resource(&vm_id, 22)?;
//! let mut config = TunnelConfig::new(endpoint, target);
//! # config.http.resolve = bastion.resolve_overrides();
//! # config.http.extra_root_ca_pem = Some(bastion.ca_pem().into_bytes());
//! config.http.application = Some("my-tool/1.0".into()); // appended to the User-Agent
//!
//! // Any azure_core TokenCredential: azure_identity's, or a token you already hold.
//! let tunnel = Tunnel::new(config, Arc::new(StaticTokenCredential::from_jwt(arm_token)))?;
//!
//! // One tunnelled connection as an in-process byte stream...
//! let mut conn = tunnel.connect().await?;
//! conn.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! conn.read_exact(&mut reply).await?;
//! conn.close().await?; // Close frame, then the session's DELETE
//!
//! // ...or a local port: tunnel.serve(LocalListener::bind_loopback(2222).await?, ctrl_c)
//! assert_eq!(tunnel.close().await, 0); // every session deleted
//! # assert_eq!(&reply, b"ping");
//! # Ok(()) }
//! ```
//!
//! ## What is here
//!
//! - [`Tunnel`], [`TunnelConfig`], [`TunnelConnection`]: connect, [`Tunnel::serve`] a
//!   [`LocalListener`], [`Tunnel::relay`] any stream, [`Tunnel::serve_stdio`] for ssh's
//!   `ProxyCommand`; [`ConnectionEvent`]s to watch them. [`TunnelConfig::prewarm`] keeps
//!   sessions connected ahead of need while `serve` runs (what the target sends first is kept
//!   for the connection that takes one; [`DEFAULT_PREWARM_MAX_AGE`]).
//! - [`TunnelStream`]: `AsyncRead + AsyncWrite` over any WebSocket-like message transport, the
//!   adapter the tunnel is built on; [`StreamConfig`] sets its frame size and keepalive.
//! - [`TokenSource`]: the ARM token cache, shareable between tunnels.
//! - [`HttpsClient`]: the HTTPS transport (pool, proxy, resolve overrides, retries) that
//!   bastion-arm uses for ARM too; [`tls`] has the TLS trust configuration.
//! - [`Error`]: one error type whose variants say what failed and what to do.
//!
//! The wire protocol as implemented, its quirks and what is unverified are described in the
//! repository's `docs/protocol.md`.
#![warn(missing_docs)]
#![warn(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod api;
#[cfg(any(test, feature = "fuzzing"))]
mod chunked;
mod connection;
mod error;
#[cfg(test)]
mod fake;
// The fuzz targets' entry points (fuzz/, issue 9): not a supported API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod listener;
mod prewarm;
mod protocol;
mod proxy;
mod read_ahead;
mod resolve;
mod retry;
mod secret;
mod session;
mod stdio;
mod stream;
pub mod tls;
mod token;
mod transport;
mod tunnel;
mod websocket;

pub use connection::{ConnectionEvent, TunnelConnection};
pub use error::{Error, Operation, Result};
pub use listener::LocalListener;
pub use prewarm::DEFAULT_PREWARM_MAX_AGE;
pub use protocol::{ARM_SCOPE, Endpoint, EndpointKind, ProtocolError, Target, is_dns_name};
pub use proxy::ProxySetting;
pub use retry::RetryPolicy;
pub use secret::Secret;
pub use stream::{
    CloseInfo, DEFAULT_MAX_FRAME_SIZE, Liveness, MAX_FRAME_SIZE_LIMIT, MemoryTransport,
    StreamConfig, TunnelStream, memory_pair,
};
pub use token::{StaticTokenCredential, TokenSource};
pub use transport::{HttpsClient, HttpsConfig};
pub use tunnel::{
    BastionClient, DEFAULT_MAX_SESSIONS, DEFAULT_RESTRICTED_PORTS, RelayStats, ServeSummary,
    Tunnel, TunnelConfig,
};
pub use websocket::{UpgradeConnection, WsOptions};
