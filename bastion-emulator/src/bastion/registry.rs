//! The observable session registry: every minted session, counters and an event log.
//!
//! One `std::sync::Mutex` guards the bookkeeping; it is never held across an `.await`.
//! Per-connection byte and frame counters are atomics shared with the relay so the data path
//! does not take the lock per frame.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc};

/// How many events are kept (oldest dropped first).
const MAX_EVENTS: usize = 10_000;

/// Lifecycle state of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// `POST /api/tokens` succeeded; no WebSocket yet.
    Minted,
    /// A WebSocket is relaying.
    Connected,
    /// The WebSocket ended; the session was not deleted (yet).
    Closed,
    /// `DELETE /api/tokens/{authToken}` succeeded.
    Deleted,
    /// A WebSocket attempt came after the `websocketToken` TTL; the session was not deleted.
    Expired,
}

/// One minted session, as `GET /_emulator/sessions` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRecord {
    /// Sequential id (1-based, in mint order, unique for the emulator's lifetime, not reset);
    /// events refer to sessions by it.
    pub id: u64,
    /// The `authToken` (a test fixture value).
    pub auth_token: String,
    /// The session's one-time WebSocket token (a test fixture: shown so tests can prove it
    /// never leaks into logs).
    pub websocket_token: String,
    /// The node holding the session.
    pub node_id: String,
    /// The Bastion resource id the session was minted on.
    pub bastion_id: String,
    /// The requested `resourceId`.
    pub resource_id: String,
    /// The `hostname` form field (IP connect).
    pub hostname: Option<String>,
    /// `workloadHostPort`.
    pub port: u16,
    /// Which token POST (1-based) minted it.
    pub token_request: u64,
    /// When it was minted.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When its WebSocket opened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub ws_connected_at: Option<OffsetDateTime>,
    /// When its WebSocket ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
    /// When it was deleted.
    #[serde(with = "time::serde::rfc3339::option")]
    pub deleted_at: Option<OffsetDateTime>,
    /// Current state.
    pub state: SessionState,
    /// Payload bytes received from the client.
    pub bytes_up: u64,
    /// Payload bytes sent to the client.
    pub bytes_down: u64,
    /// Data frames received from the client.
    pub frames_up: u64,
    /// Data frames sent to the client.
    pub frames_down: u64,
    /// Largest client data-frame payload, bytes.
    pub max_frame_up: u64,
    /// Client continuation frames.
    pub continuation_frames_up: u64,
    /// The close code of the client's Close frame (1005 when it carried none).
    pub close_code: Option<u16>,
    /// The close code the server sent, if it sent a Close.
    pub server_close_code: Option<u16>,
    /// Pongs received from the client.
    pub pongs_received: u64,
    /// Payload bytes received from the client before the first payload byte was sent to it
    /// (`None` while none has been sent): what a client sends before the far side answers,
    /// such as its replay window (docs/protocol.md#replay-once-retry).
    #[serde(default)]
    pub bytes_up_before_first_down: Option<u64>,
    /// When the WebSocket was answered by an in-band HTTP error: the payload bytes the client
    /// had sent in data frames before it (see [`crate::Faults::in_band_after_client_bytes`]).
    #[serde(default)]
    pub bytes_before_in_band: Option<u64>,
}

/// Aggregate counters since start or the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// TCP connections accepted.
    pub tcp_connections: u64,
    /// HTTP requests received (all paths).
    pub http_requests: u64,
    /// `POST /api/tokens` received, failed ones included.
    pub token_requests: u64,
    /// Sessions minted (token POSTs answered 200).
    pub tokens_issued: u64,
    /// `POST /api/connection` received.
    pub connection_lookups: u64,
    /// WebSocket upgrade requests received.
    pub websocket_requests: u64,
    /// `101` responses sent.
    pub websocket_upgrades: u64,
    /// WebSockets relaying now.
    pub live_websockets: u64,
    /// Highest number of simultaneously relaying WebSockets.
    pub max_concurrent_websockets: u64,
    /// `DELETE /api/tokens/...` received.
    pub delete_requests: u64,
    /// Successful deletes.
    pub deletes: u64,
    /// Sessions minted and not deleted.
    pub live_sessions: u64,
    /// Payload bytes from clients.
    pub bytes_up: u64,
    /// Payload bytes to clients.
    pub bytes_down: u64,
    /// Client data frames.
    pub frames_up: u64,
    /// Server data frames.
    pub frames_down: u64,
    /// Largest client data-frame payload seen.
    pub largest_frame_up: u64,
    /// Client continuation frames.
    pub continuation_frames_up: u64,
    /// Client text frames.
    pub text_frames_up: u64,
    /// Close frames received from clients.
    pub close_frames_received: u64,
    /// Close frames sent by the server.
    pub close_frames_sent: u64,
    /// Pings sent by the server.
    pub pings_sent: u64,
    /// Pongs received from clients.
    pub pongs_received: u64,
    /// Times a WebSocket reader found its queue toward the target full and waited for the
    /// target to take bytes: the relay pushing back on the client (through TCP).
    #[serde(default)]
    pub up_queue_full_waits: u64,
}

/// What an [`Event`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A TCP connection was accepted.
    TcpAccepted,
    /// `POST /api/tokens` answered (`status`).
    TokenRequest,
    /// `POST /api/connection` answered (`status`).
    ConnectionLookup,
    /// A WebSocket upgrade request answered (`status`: 101 or the error).
    WebSocketRequest,
    /// A WebSocket started relaying.
    WebSocketOpened,
    /// A WebSocket ended (`status` = the client's close code, if any).
    WebSocketClosed,
    /// The server sent a Close (`status` = its code).
    ServerClose,
    /// The server dropped the connection without a Close.
    ServerReset,
    /// The target could not be connected.
    TargetConnectFailed,
    /// `DELETE /api/tokens/...` answered (`status`).
    DeleteRequest,
    /// A control-API request.
    Control,
}

/// One entry of the ordered event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Sequence number (1-based).
    pub seq: u64,
    /// Milliseconds since the emulator started.
    pub elapsed_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The session's [`SessionRecord::id`], when there is one.
    pub session: Option<u64>,
    /// An HTTP status or close code, when relevant.
    pub status: Option<u16>,
    /// Free text (never a token).
    pub detail: String,
}

/// A command to a live relay.
#[derive(Debug, Clone)]
pub(crate) enum RelayCommand {
    /// Send Close with this code and reason.
    Close(u16, String),
}

/// Counters the relay updates without the registry lock.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub frames_up: AtomicU64,
    pub frames_down: AtomicU64,
    pub max_frame_up: AtomicU64,
    pub continuation_up: AtomicU64,
    pub text_up: AtomicU64,
    pub close_received: AtomicU64,
    pub close_sent: AtomicU64,
    pub pings_sent: AtomicU64,
    pub pongs_received: AtomicU64,
    /// `bytes_up` when the first data byte went down, plus one (0: none went down yet).
    pub up_before_first_down: AtomicU64,
    /// Times the WebSocket reader waited for room in its queue toward the target.
    pub up_queue_full_waits: AtomicU64,
}

impl Traffic {
    fn get(a: &AtomicU64) -> u64 {
        a.load(Ordering::Relaxed)
    }

    pub(crate) fn add(a: &AtomicU64, n: u64) {
        a.fetch_add(n, Ordering::Relaxed);
    }

    /// Records, once, how many client bytes had come before the first byte to the client.
    pub(crate) fn note_first_down(&self) {
        let up = Self::get(&self.bytes_up).saturating_add(1);
        let _ =
            self.up_before_first_down
                .compare_exchange(0, up, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn total_relayed(&self) -> u64 {
        Self::get(&self.bytes_up) + Self::get(&self.bytes_down)
    }
}

/// Everything needed to mint a session.
pub(crate) struct NewSession {
    pub auth_token: String,
    pub websocket_token: String,
    pub node_id: String,
    pub bastion_id: String,
    pub resource_id: String,
    pub hostname: Option<String>,
    pub port: u16,
    pub token_request: u64,
    pub target: std::net::SocketAddr,
}

/// What the WebSocket handler learns about a session from its `websocketToken`.
#[derive(Debug, Clone)]
pub(crate) struct WsTicket {
    pub index: usize,
    pub id: u64,
    pub node_id: String,
    pub resource_id: String,
    pub token_request: u64,
    pub target: std::net::SocketAddr,
}

/// Why a `websocketToken` was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WsTokenError {
    Unknown,
    Used,
    Expired,
    Deleted,
}

/// Result of a DELETE.
pub(crate) enum DeleteOutcome {
    Deleted {
        id: u64,
        relay: Option<mpsc::UnboundedSender<RelayCommand>>,
    },
    NotFound,
    NodeMismatch,
}

struct Entry {
    record: SessionRecord,
    ws_issued: Instant,
    ws_used: bool,
    target: std::net::SocketAddr,
    traffic: Arc<Traffic>,
    relay: Option<mpsc::UnboundedSender<RelayCommand>>,
}

impl Entry {
    fn snapshot(&self) -> SessionRecord {
        let t = &self.traffic;
        let mut r = self.record.clone();
        r.bytes_up = Traffic::get(&t.bytes_up);
        r.bytes_down = Traffic::get(&t.bytes_down);
        r.frames_up = Traffic::get(&t.frames_up);
        r.frames_down = Traffic::get(&t.frames_down);
        r.max_frame_up = Traffic::get(&t.max_frame_up);
        r.continuation_frames_up = Traffic::get(&t.continuation_up);
        r.pongs_received = Traffic::get(&t.pongs_received);
        r.bytes_up_before_first_down = Traffic::get(&t.up_before_first_down).checked_sub(1);
        r
    }
}

/// The entry `ticket` names, unless its slot now holds another session.
fn entry_mut<'a>(st: &'a mut State, ticket: &WsTicket) -> Option<&'a mut Entry> {
    st.sessions
        .get_mut(ticket.index)
        .filter(|e| e.record.id == ticket.id)
}

#[derive(Default)]
struct State {
    sessions: Vec<Entry>,
    by_auth: HashMap<String, usize>,
    by_ws: HashMap<String, usize>,
    stats: Stats,
    events: VecDeque<Event>,
    next_seq: u64,
}

/// The registry shared by all handlers.
pub(crate) struct Registry {
    state: Mutex<State>,
    /// Session ids stay unique across resets, so a relay of a forgotten session can never
    /// touch a new one.
    next_id: AtomicU64,
    notify: Notify,
    started: Instant,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            state: Mutex::new(State::default()),
            next_id: AtomicU64::new(1),
            notify: Notify::new(),
            started: Instant::now(),
        }
    }

    /// Updates the session `ticket` names (if it is still that session) and wakes waiters.
    fn update(&self, ticket: &WsTicket, f: impl FnOnce(&mut Entry)) {
        let mut st = self.lock();
        if let Some(e) = entry_mut(&mut st, ticket) {
            f(e);
        }
        drop(st);
        self.changed();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the bookkeeping inconsistent in a way
        // that matters for a test fixture; keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.notify.notify_waiters();
    }

    /// Something to await for "the registry changed" (see `Emulator::wait_until`).
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Updates scalar counters.
    pub(crate) fn count(&self, f: impl FnOnce(&mut Stats)) {
        f(&mut self.lock().stats);
        self.changed();
    }

    /// Appends an event.
    pub(crate) fn event(
        &self,
        kind: EventKind,
        session: Option<u64>,
        status: Option<u16>,
        detail: impl Into<String>,
    ) {
        let elapsed_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut st = self.lock();
        st.next_seq += 1;
        let seq = st.next_seq;
        if st.events.len() >= MAX_EVENTS {
            st.events.pop_front();
        }
        st.events.push_back(Event {
            seq,
            elapsed_ms,
            kind,
            session,
            status,
            detail: detail.into(),
        });
        drop(st);
        self.changed();
    }

    /// Counts a token POST and returns its 1-based index.
    pub(crate) fn next_token_request(&self) -> u64 {
        let mut st = self.lock();
        st.stats.token_requests += 1;
        let n = st.stats.token_requests;
        drop(st);
        self.changed();
        n
    }

    /// Registers a minted session; returns its id.
    pub(crate) fn mint(&self, s: NewSession) -> u64 {
        let mut st = self.lock();
        let index = st.sessions.len();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        st.by_auth.insert(s.auth_token.clone(), index);
        st.by_ws.insert(s.websocket_token.clone(), index);
        st.sessions.push(Entry {
            record: SessionRecord {
                id,
                auth_token: s.auth_token,
                websocket_token: s.websocket_token,
                node_id: s.node_id,
                bastion_id: s.bastion_id,
                resource_id: s.resource_id,
                hostname: s.hostname,
                port: s.port,
                token_request: s.token_request,
                created_at: OffsetDateTime::now_utc(),
                ws_connected_at: None,
                closed_at: None,
                deleted_at: None,
                state: SessionState::Minted,
                bytes_up: 0,
                bytes_down: 0,
                frames_up: 0,
                frames_down: 0,
                max_frame_up: 0,
                continuation_frames_up: 0,
                close_code: None,
                server_close_code: None,
                pongs_received: 0,
                bytes_up_before_first_down: None,
                bytes_before_in_band: None,
            },
            ws_issued: Instant::now(),
            ws_used: false,
            target: s.target,
            traffic: Arc::new(Traffic::default()),
            relay: None,
        });
        st.stats.tokens_issued += 1;
        drop(st);
        self.changed();
        id
    }

    /// Looks a `websocketToken` up without consuming it.
    pub(crate) fn lookup_ws(
        &self,
        ws_token: &str,
        ttl: Duration,
    ) -> Result<WsTicket, WsTokenError> {
        let mut st = self.lock();
        let Some(&index) = st.by_ws.get(ws_token) else {
            return Err(WsTokenError::Unknown);
        };
        let e = &mut st.sessions[index];
        if e.record.deleted_at.is_some() {
            return Err(WsTokenError::Deleted);
        }
        if e.ws_used {
            return Err(WsTokenError::Used);
        }
        if e.ws_issued.elapsed() > ttl {
            if e.record.state == SessionState::Minted {
                e.record.state = SessionState::Expired;
            }
            return Err(WsTokenError::Expired);
        }
        Ok(WsTicket {
            index,
            id: e.record.id,
            node_id: e.record.node_id.clone(),
            resource_id: e.record.resource_id.clone(),
            token_request: e.record.token_request,
            target: e.target,
        })
    }

    /// Marks the ticket's `websocketToken` used. False if it was used meanwhile or the registry
    /// was reset.
    pub(crate) fn consume_ws(&self, ticket: &WsTicket) -> bool {
        let mut st = self.lock();
        match entry_mut(&mut st, ticket) {
            Some(e) if !e.ws_used => {
                e.ws_used = true;
                true
            }
            _ => false,
        }
    }

    /// The relay started: returns the session's traffic counters.
    pub(crate) fn ws_opened(
        &self,
        ticket: &WsTicket,
        relay: mpsc::UnboundedSender<RelayCommand>,
    ) -> Arc<Traffic> {
        let mut st = self.lock();
        let traffic = match entry_mut(&mut st, ticket) {
            Some(e) => {
                e.record.ws_connected_at = Some(OffsetDateTime::now_utc());
                if e.record.state != SessionState::Deleted {
                    e.record.state = SessionState::Connected;
                }
                e.relay = Some(relay);
                Arc::clone(&e.traffic)
            }
            // Reset while upgrading: count into a detached record.
            _ => Arc::new(Traffic::default()),
        };
        st.stats.live_websockets += 1;
        st.stats.max_concurrent_websockets = st
            .stats
            .max_concurrent_websockets
            .max(st.stats.live_websockets);
        drop(st);
        self.changed();
        traffic
    }

    /// Records the client's close code as soon as its Close arrives.
    pub(crate) fn client_close(&self, ticket: &WsTicket, code: u16) {
        self.update(ticket, |e| e.record.close_code = Some(code));
    }

    /// Records that the WebSocket was answered by an in-band HTTP error after the client had
    /// sent `bytes` payload bytes.
    pub(crate) fn in_band_answered(&self, ticket: &WsTicket, bytes: u64) {
        self.update(ticket, |e| e.record.bytes_before_in_band = Some(bytes));
    }

    /// Records the close code the server sent.
    pub(crate) fn server_close(&self, ticket: &WsTicket, code: u16) {
        self.update(ticket, |e| e.record.server_close_code = Some(code));
    }

    /// A WebSocket that never relayed (in-band error, target failure) or a relay ended.
    pub(crate) fn ws_ended(&self, ticket: &WsTicket, was_live: bool) {
        let mut st = self.lock();
        if let Some(e) = entry_mut(&mut st, ticket) {
            e.record.closed_at = Some(OffsetDateTime::now_utc());
            if e.record.state != SessionState::Deleted {
                e.record.state = SessionState::Closed;
            }
            e.relay = None;
        }
        if was_live {
            st.stats.live_websockets = st.stats.live_websockets.saturating_sub(1);
        }
        drop(st);
        self.changed();
    }

    /// The client's close code for a session, if it sent a Close.
    pub(crate) fn close_code_of(&self, ticket: &WsTicket) -> Option<u16> {
        let mut st = self.lock();
        entry_mut(&mut st, ticket).and_then(|e| e.record.close_code)
    }

    /// Deletes a session by `authToken`.
    pub(crate) fn delete(
        &self,
        auth_token: &str,
        node: Option<&str>,
        require_node: bool,
    ) -> DeleteOutcome {
        let mut st = self.lock();
        let Some(&index) = st.by_auth.get(auth_token) else {
            return DeleteOutcome::NotFound;
        };
        let e = &mut st.sessions[index];
        if e.record.deleted_at.is_some() {
            return DeleteOutcome::NotFound;
        }
        if require_node && node != Some(e.record.node_id.as_str()) {
            return DeleteOutcome::NodeMismatch;
        }
        e.record.deleted_at = Some(OffsetDateTime::now_utc());
        e.record.state = SessionState::Deleted;
        let id = e.record.id;
        let relay = e.relay.clone();
        st.stats.deletes += 1;
        drop(st);
        self.changed();
        DeleteOutcome::Deleted { id, relay }
    }

    /// `(id, resource id, token request)` of the session with this `authToken`: what fault
    /// scopes match on.
    pub(crate) fn scope_of(&self, auth_token: &str) -> Option<(u64, String, u64)> {
        let st = self.lock();
        st.by_auth.get(auth_token).map(|&i| {
            let r = &st.sessions[i].record;
            (r.id, r.resource_id.clone(), r.token_request)
        })
    }

    /// The live relay of a session, if its WebSocket is open.
    pub(crate) fn relay_of(&self, auth_token: &str) -> Option<mpsc::UnboundedSender<RelayCommand>> {
        let st = self.lock();
        st.by_auth
            .get(auth_token)
            .and_then(|&i| st.sessions[i].relay.clone())
    }

    /// Every session, in mint order.
    pub(crate) fn sessions(&self) -> Vec<SessionRecord> {
        self.lock().sessions.iter().map(Entry::snapshot).collect()
    }

    /// The counters.
    pub(crate) fn stats(&self) -> Stats {
        let st = self.lock();
        let mut s = st.stats.clone();
        for e in &st.sessions {
            let t = &e.traffic;
            s.bytes_up += Traffic::get(&t.bytes_up);
            s.bytes_down += Traffic::get(&t.bytes_down);
            s.frames_up += Traffic::get(&t.frames_up);
            s.frames_down += Traffic::get(&t.frames_down);
            s.largest_frame_up = s.largest_frame_up.max(Traffic::get(&t.max_frame_up));
            s.continuation_frames_up += Traffic::get(&t.continuation_up);
            s.text_frames_up += Traffic::get(&t.text_up);
            s.close_frames_received += Traffic::get(&t.close_received);
            s.close_frames_sent += Traffic::get(&t.close_sent);
            s.pings_sent += Traffic::get(&t.pings_sent);
            s.up_queue_full_waits += Traffic::get(&t.up_queue_full_waits);
            s.pongs_received += Traffic::get(&t.pongs_received);
            if e.record.deleted_at.is_none() {
                s.live_sessions += 1;
            }
        }
        s
    }

    /// The event log.
    pub(crate) fn events(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    /// Forgets every session, counter and event. Live relays keep running but are no longer
    /// counted (except in `live_websockets`, which stays truthful).
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        let live = st.stats.live_websockets;
        let next_seq = st.next_seq;
        *st = State::default();
        st.stats.live_websockets = live;
        st.stats.max_concurrent_websockets = live;
        st.next_seq = next_seq;
        drop(st);
        self.changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_session(n: u64) -> NewSession {
        NewSession {
            auth_token: format!("auth-{n}"),
            websocket_token: format!("ws-{n}"),
            node_id: "node-a".into(),
            bastion_id: "/b".into(),
            resource_id: "/vm".into(),
            hostname: None,
            port: 22,
            token_request: n,
            target: "127.0.0.1:9".parse().unwrap(),
        }
    }

    #[test]
    fn lifecycle_and_counters() {
        let r = Registry::new();
        assert_eq!(r.next_token_request(), 1);
        let id = r.mint(new_session(1));
        assert_eq!(id, 1);
        let ticket = r.lookup_ws("ws-1", Duration::from_secs(60)).unwrap();
        assert!(r.consume_ws(&ticket));
        assert_eq!(
            r.lookup_ws("ws-1", Duration::from_secs(60)).unwrap_err(),
            WsTokenError::Used
        );
        let (tx, _rx) = mpsc::unbounded_channel();
        let traffic = r.ws_opened(&ticket, tx);
        Traffic::add(&traffic.bytes_up, 10);
        traffic.max_frame_up.fetch_max(10, Ordering::Relaxed);
        assert_eq!(r.stats().live_websockets, 1);
        assert_eq!(r.sessions()[0].state, SessionState::Connected);
        r.client_close(&ticket, 1000);
        r.ws_ended(&ticket, true);
        let s = r.stats();
        assert_eq!((s.live_websockets, s.max_concurrent_websockets), (0, 1));
        assert_eq!(
            (s.bytes_up, s.largest_frame_up, s.live_sessions),
            (10, 10, 1)
        );
        assert!(matches!(
            r.delete("auth-1", None, false),
            DeleteOutcome::Deleted { id: 1, .. }
        ));
        assert!(matches!(
            r.delete("auth-1", None, false),
            DeleteOutcome::NotFound
        ));
        let rec = &r.sessions()[0];
        assert_eq!(
            (rec.state, rec.close_code),
            (SessionState::Deleted, Some(1000))
        );
        assert_eq!(r.stats().live_sessions, 0);
    }

    #[test]
    fn expiry_node_check_and_reset() {
        let r = Registry::new();
        r.mint(new_session(1));
        assert_eq!(
            r.lookup_ws("ws-1", Duration::ZERO).unwrap_err(),
            WsTokenError::Expired
        );
        assert_eq!(r.sessions()[0].state, SessionState::Expired);
        assert!(matches!(
            r.delete("auth-1", Some("x"), true),
            DeleteOutcome::NodeMismatch
        ));
        assert!(matches!(
            r.delete("auth-1", Some("node-a"), true),
            DeleteOutcome::Deleted { .. }
        ));
        assert_eq!(
            r.lookup_ws("ws-1", Duration::from_secs(1)).unwrap_err(),
            WsTokenError::Deleted
        );
        r.event(EventKind::Control, None, None, "x");
        r.reset();
        assert!(r.sessions().is_empty() && r.events().is_empty());
        assert_eq!(r.stats(), Stats::default());
    }
}
