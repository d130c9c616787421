//! [`Emulator`]: start, observe, steer and stop the data-plane emulator.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::{BastionFixture, EmulatorConfig};
use super::faults::Faults;
use super::registry::{Event, SessionRecord, SessionState, Stats};
use super::server;
use super::state::Shared;
use crate::ca::TestCa;
use crate::error::EmulatorError;

/// A running emulator. Owns the server: dropping it (or [`Emulator::shutdown`]) stops
/// accepting, closes live WebSockets with 1001 and ends the relays.
pub struct Emulator {
    shared: Arc<Shared>,
    ca: TestCa,
    shutdown: watch::Sender<bool>,
    accept_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("local_addr", &self.shared.local_addr)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts the emulator: generates (or reuses) the CA, issues the server certificate for
    /// every served name and listens on `config.bind`.
    pub async fn start(mut config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        config.validate()?;
        let mut names = config.served_names();
        if !config.bind.ip().is_unspecified() && !config.bind.ip().is_loopback() {
            names.push(config.bind.ip().to_string());
        }
        // A CA of our own permits exactly the names served (see `TestCa`); a given one must
        // already permit them.
        let ca = match config.ca.take() {
            Some(ca) => ca,
            None => TestCa::permitting(&names.iter().map(String::as_str).collect::<Vec<_>>())?,
        };
        let tls = ca.server_config(&names)?;
        let server = server::start(config, tls).await?;
        Ok(Emulator {
            shared: server.shared,
            ca,
            shutdown: server.shutdown,
            accept_task: Some(server.accept_task),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// The CA that issued the server certificate.
    pub fn ca(&self) -> &TestCa {
        &self.ca
    }

    /// The CA certificate (PEM) a client must trust.
    pub fn ca_pem(&self) -> String {
        self.ca.ca_pem()
    }

    /// The configuration the emulator runs with (its `ca` is `None`; see [`Emulator::ca`]).
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// The per-run secret the `/_emulator/*` control API requires in the
    /// [`super::CONTROL_SECRET_HEADER`] header (requests without it get a 401).
    pub fn control_secret(&self) -> &str {
        &self.shared.control_secret
    }

    /// The GUID-like node ids sessions are spread over.
    pub fn nodes(&self) -> &[String] {
        &self.shared.nodes
    }

    /// The fixture whose `dns_name` is `dns_name` (case-insensitive).
    pub fn bastion(&self, dns_name: &str) -> Option<&BastionFixture> {
        self.shared
            .config
            .bastions
            .iter()
            .find(|b| b.dns_name.eq_ignore_ascii_case(dns_name))
    }

    /// `"{dns_name}:{port}"`: the endpoint to give a client for a served name (resolve it
    /// with [`Emulator::resolve_overrides`]).
    pub fn endpoint_for(&self, dns_name: &str) -> String {
        format!("{dns_name}:{}", self.local_addr().port())
    }

    /// The data-pod endpoint `"{data_pod_host}:{port}"` (what `POST /api/connection` returns).
    pub fn data_pod_endpoint(&self) -> String {
        self.endpoint_for(&self.shared.config.data_pod_host)
    }

    /// Every served host name mapped to the address the server is reachable at (loopback
    /// when bound to an unspecified address), for a `curl --resolve`-style override.
    pub fn resolve_overrides(&self) -> Vec<(String, IpAddr)> {
        let bind = self.local_addr().ip();
        let ip = if bind.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            bind
        };
        self.shared
            .config
            .served_names()
            .into_iter()
            .filter(|n| n.parse::<IpAddr>().is_err())
            .map(|n| (n, ip))
            .collect()
    }

    /// Replaces the fault knobs (takes effect for new requests; also restarts 429 counting).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.set_faults(faults);
    }

    /// The current fault knobs.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Every minted session, in mint order.
    pub fn sessions(&self) -> Vec<SessionRecord> {
        self.shared.registry.sessions()
    }

    /// Sessions minted and not deleted.
    pub fn active_sessions(&self) -> Vec<SessionRecord> {
        let mut s = self.sessions();
        s.retain(|r| r.deleted_at.is_none());
        s
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.shared.registry.stats()
    }

    /// The highest number of simultaneously relaying WebSockets.
    pub fn max_concurrent_websockets(&self) -> u64 {
        self.stats().max_concurrent_websockets
    }

    /// Waits until `what` holds for the counters, at most `timeout`. Returns whether it held.
    pub async fn wait_until(&self, what: impl Fn(&Stats) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.registry.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if what(&self.stats()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // Byte counters change without notifications: poll them too.
            let poll = tokio::time::Instant::now() + Duration::from_millis(10);
            let _ = tokio::time::timeout_at(deadline.min(poll), notified).await;
        }
    }

    /// Waits until `what` holds for the session list, at most `timeout`.
    pub async fn wait_for_sessions(
        &self,
        what: impl Fn(&[SessionRecord]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if what(&self.sessions()) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Panics, listing them, if any minted session was not deleted.
    #[track_caller]
    pub fn assert_no_orphans(&self) {
        let orphans = self.active_sessions();
        if orphans.is_empty() {
            return;
        }
        let list: Vec<String> = orphans
            .iter()
            .map(|s| {
                format!(
                    "  session #{} on node {} for {} port {} ({})",
                    s.id,
                    s.node_id,
                    s.resource_id,
                    s.port,
                    state_name(s.state)
                )
            })
            .collect();
        panic!(
            "{} Bastion session(s) minted but never deleted:\n{}",
            orphans.len(),
            list.join("\n")
        );
    }

    /// The ordered event log.
    pub fn events(&self) -> Vec<Event> {
        self.shared.registry.events()
    }

    /// Forgets sessions, counters and events, and clears the faults.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Stops the server and waits (bounded) for connections and relays to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.accept_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Minted => "minted, never connected",
        SessionState::Connected => "WebSocket still open",
        SessionState::Closed => "WebSocket closed",
        SessionState::Deleted => "deleted",
        SessionState::Expired => "websocketToken expired",
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
