//! Fault and quirk knobs (see docs/protocol.md#fault-knobs), settable at runtime.
//!
//! A [`Faults`] value is a set of knobs plus a [`Scope`]; more sets with their own scopes go in
//! [`Faults::overrides`]. For a given request the emulator starts from the defaults, applies
//! the base set if its scope matches, then every matching override in order (a later `Some`
//! or `true` wins).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Which requests a knob set applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every request and connection.
    #[default]
    All,
    /// Requests for one target resource id (case-insensitive).
    Resource(String),
    /// Only the Nth `POST /api/tokens` (1-based, counting failed POSTs too, since the last
    /// reset) and the WebSocket/DELETE of the session it minted.
    NthToken(u64),
}

impl Scope {
    /// Whether a request for `resource_id` (if known) that belongs to token request `n` (if
    /// any) is in scope.
    pub(crate) fn matches(&self, resource_id: Option<&str>, n: Option<u64>) -> bool {
        match self {
            Scope::All => true,
            Scope::Resource(id) => resource_id.is_some_and(|r| r.eq_ignore_ascii_case(id)),
            Scope::NthToken(want) => n == Some(*want),
        }
    }
}

/// An HTTP error the emulator answers with instead of the normal reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpFault {
    /// The status code.
    pub status: u16,
    /// The JSON `message` (ignored for HTML bodies).
    pub message: String,
    /// Send an HTML (proxy/Tomcat-like) page instead of a JSON body.
    #[serde(default)]
    pub html: bool,
}

impl HttpFault {
    /// A JSON error `{"message": message}` with `status`.
    pub fn json(status: u16, message: impl Into<String>) -> Self {
        HttpFault {
            status,
            message: message.into(),
            html: false,
        }
    }

    /// An HTML error page with `status`.
    pub fn html(status: u16) -> Self {
        HttpFault {
            status,
            message: String::new(),
            html: true,
        }
    }
}

/// `429 Too Many Requests` for the first `count` matching token POSTs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// How many POSTs get 429 (counted from the last [`super::Emulator::set_faults`]).
    pub count: u64,
    /// The `Retry-After` header value, seconds.
    pub retry_after_secs: u64,
}

/// A trigger after some relayed bytes (both directions together) or some time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    /// Fire once this many payload bytes have been relayed (up + down); `Some(0)` fires at
    /// once after the WebSocket opens.
    #[serde(default)]
    pub after_bytes: Option<u64>,
    /// Fire this long after the WebSocket opened.
    #[serde(default, with = "opt_ms")]
    pub after: Option<Duration>,
}

/// The server closes the WebSocket with `code`/`reason` when `when` fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseAfter {
    /// The close code (1000, 1001, 1011, 4xxx ...).
    pub code: u16,
    /// The close reason.
    #[serde(default)]
    pub reason: String,
    /// When to close.
    #[serde(default)]
    pub when: Trigger,
}

/// What the server does when the target cannot be connected (5 s).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetFailure {
    /// `101`, then Close 1011 (default).
    #[default]
    Close1011,
    /// `502` with a JSON body before the upgrade.
    Status502,
    /// `101`, then an in-band `HTTP/1.1 400 Bad Request` page.
    InBand400,
}

/// What the server does when the `X-Node-Id` query does not match the session's node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeCheck {
    /// `403` before the upgrade (default).
    #[default]
    Reject403,
    /// Accept any (or no) node id.
    Ignore,
}

/// Every knob. `Default` = the emulator's normal behaviour (see docs/protocol.md#the-emulator).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Which requests the knobs of this set apply to.
    pub scope: Scope,

    // --- POST /api/tokens ---
    /// Answer token POSTs with this error instead of minting a session.
    pub token_error: Option<HttpFault>,
    /// Answer token POSTs with `502 Bad Gateway` and an HTML body.
    pub token_html_502: bool,
    /// The first N token POSTs get 429 with `Retry-After`.
    pub token_429: Option<RateLimit>,
    /// Delay before answering a token POST.
    #[serde(with = "opt_ms")]
    pub post_latency: Option<Duration>,
    /// Tokens use an alphabet with `+ / = %` (tests the client's escaping).
    pub unsafe_tokens: bool,
    /// The 200 reply omits `websocketToken`.
    pub omit_websocket_token: bool,
    /// Principals (`oid`) refused with 403 and [`Faults::deny_message`].
    pub deny_oids: Vec<String>,
    /// The 403 message for [`Faults::deny_oids`]; default `java.lang.NullPointerException`.
    pub deny_message: Option<String>,

    // --- WebSocket handshake ---
    /// Refuse the upgrade with this status/body (the token is not consumed).
    pub ws_reject: Option<HttpFault>,
    /// `101` without `Upgrade` and `Connection` headers (still with `Sec-WebSocket-Accept`).
    pub upgrade_without_headers: bool,
    /// `101` with a wrong `Sec-WebSocket-Accept`.
    pub wrong_accept: bool,
    /// `101` without `Sec-WebSocket-Accept`.
    pub omit_accept: bool,
    /// After the `101`, write a raw `HTTP/1.1 400 Bad Request` + Tomcat-like HTML page on the
    /// upgraded socket, then close.
    pub in_band_http_after_upgrade: bool,
    /// With [`Faults::in_band_http_after_upgrade`]: the in-band page waits until the client
    /// has sent at least this many payload bytes in data frames (or has closed), as a service
    /// that failed mid-stream would; without it the page is written right after the `101`.
    /// What was received first is in [`crate::SessionRecord::bytes_before_in_band`].
    pub in_band_after_client_bytes: Option<u64>,
    /// After the `101`, send nothing and never close (client bytes are read and discarded).
    pub hang_after_upgrade: bool,
    /// Behaviour on an `X-Node-Id` mismatch.
    pub node_check: NodeCheck,
    /// Behaviour when the target cannot be connected.
    pub target_failure: TargetFailure,

    // --- relay ---
    /// Strict mode: a client frame with a payload over N bytes gets Close 1009.
    pub max_frame_size: Option<usize>,
    /// Strict mode: a client continuation frame gets Close 1002.
    pub reject_continuation: bool,
    /// The server sends a Ping this often (and counts pongs).
    #[serde(with = "opt_ms")]
    pub server_ping_interval: Option<Duration>,
    /// The server closes the WebSocket when the trigger fires.
    pub close_after: Option<CloseAfter>,
    /// The server drops the TCP connection (RST, no Close frame) when the trigger fires.
    pub reset: Option<Trigger>,
    /// Send this Text frame right after the WebSocket opens.
    pub text_frame: Option<String>,
    /// One-way delay applied to every chunk in each direction, pipelined (throughput is not
    /// limited by the delay).
    #[serde(with = "opt_ms")]
    pub relay_latency: Option<Duration>,
    /// Send target data as fragmented messages with fragments of this many bytes.
    pub fragment_size: Option<usize>,
    /// Set RSV1 on server data frames.
    pub rsv1_on_data: bool,
    /// Send an empty binary frame before every data frame.
    pub empty_frames: bool,
    /// Send an unsolicited Pong right after the WebSocket opens.
    pub unsolicited_pong: bool,
    /// Read size on the target socket, i.e. the largest server frame (default 16 KiB).
    pub server_read_size: Option<usize>,

    // --- DELETE /api/tokens/{authToken} ---
    /// Answer DELETE with this status. 2xx counts as deleted; anything else leaves the
    /// session in place (e.g. 500). `None` = 204.
    pub delete_status: Option<u16>,
    /// Delay before answering DELETE.
    #[serde(with = "opt_ms")]
    pub delete_latency: Option<Duration>,
    /// Never answer DELETE (until shutdown, at most 60 s).
    pub delete_no_response: bool,
    /// Accept DELETE with a missing or wrong `X-Node-Id`. By default, as the service routes
    /// DELETE by node, such a DELETE gets 404 and the session stays live.
    pub delete_ignores_node: bool,
    /// DELETE closes the session's live WebSocket (Close 1000).
    pub delete_closes_websocket: bool,

    // --- POST /api/connection ---
    /// Surround the data-pod host with whitespace and newlines.
    pub connection_whitespace: bool,
    /// Answer `/api/connection` with status 200 and this JSON error message.
    pub connection_error_200: Option<String>,

    /// More knob sets, each with its own scope, applied after this one.
    pub overrides: Vec<Faults>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Faults::default()
    }

    /// Restricts this knob set to `scope`.
    pub fn scoped(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Restricts this knob set to one target resource id.
    pub fn for_resource(self, resource_id: impl Into<String>) -> Self {
        self.scoped(Scope::Resource(resource_id.into()))
    }

    /// Restricts this knob set to the Nth token POST (1-based) and its session.
    pub fn for_nth_token(self, n: u64) -> Self {
        self.scoped(Scope::NthToken(n))
    }

    /// Adds another (separately scoped) knob set.
    pub fn and(mut self, other: Faults) -> Self {
        self.overrides.push(other);
        self
    }

    /// Token POSTs answer `status` with JSON `{"message": message}`.
    pub fn token_error(mut self, status: u16, message: impl Into<String>) -> Self {
        self.token_error = Some(HttpFault::json(status, message));
        self
    }

    /// The first `count` token POSTs get 429 with `Retry-After: retry_after_secs`.
    pub fn token_429(mut self, count: u64, retry_after_secs: u64) -> Self {
        self.token_429 = Some(RateLimit {
            count,
            retry_after_secs,
        });
        self
    }

    /// The server closes every WebSocket with `code` after `bytes` relayed bytes.
    pub fn close_after_bytes(mut self, bytes: u64, code: u16, reason: impl Into<String>) -> Self {
        self.close_after = Some(CloseAfter {
            code,
            reason: reason.into(),
            when: Trigger {
                after_bytes: Some(bytes),
                after: None,
            },
        });
        self
    }

    /// The server drops the TCP connection after `bytes` relayed bytes.
    pub fn reset_after_bytes(mut self, bytes: u64) -> Self {
        self.reset = Some(Trigger {
            after_bytes: Some(bytes),
            after: None,
        });
        self
    }

    /// The knobs that apply to a request for `resource_id` from token request `n`.
    pub(crate) fn resolve(&self, resource_id: Option<&str>, n: Option<u64>) -> Faults {
        let mut out = Faults::default();
        self.apply_into(&mut out, resource_id, n);
        out.overrides.clear();
        out.scope = Scope::All;
        out
    }

    fn apply_into(&self, out: &mut Faults, resource_id: Option<&str>, n: Option<u64>) {
        if self.scope.matches(resource_id, n) {
            overlay(out, self);
        }
        for o in &self.overrides {
            o.apply_into(out, resource_id, n);
        }
    }
}

fn overlay(out: &mut Faults, f: &Faults) {
    fn opt<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
        if src.is_some() {
            dst.clone_from(src);
        }
    }
    opt(&mut out.token_error, &f.token_error);
    out.token_html_502 |= f.token_html_502;
    opt(&mut out.token_429, &f.token_429);
    opt(&mut out.post_latency, &f.post_latency);
    out.unsafe_tokens |= f.unsafe_tokens;
    out.omit_websocket_token |= f.omit_websocket_token;
    out.deny_oids.extend(f.deny_oids.iter().cloned());
    opt(&mut out.deny_message, &f.deny_message);
    opt(&mut out.ws_reject, &f.ws_reject);
    out.upgrade_without_headers |= f.upgrade_without_headers;
    out.wrong_accept |= f.wrong_accept;
    out.omit_accept |= f.omit_accept;
    out.in_band_http_after_upgrade |= f.in_band_http_after_upgrade;
    opt(
        &mut out.in_band_after_client_bytes,
        &f.in_band_after_client_bytes,
    );
    out.hang_after_upgrade |= f.hang_after_upgrade;
    if f.node_check != NodeCheck::default() {
        out.node_check = f.node_check;
    }
    if f.target_failure != TargetFailure::default() {
        out.target_failure = f.target_failure;
    }
    opt(&mut out.max_frame_size, &f.max_frame_size);
    out.reject_continuation |= f.reject_continuation;
    opt(&mut out.server_ping_interval, &f.server_ping_interval);
    opt(&mut out.close_after, &f.close_after);
    opt(&mut out.reset, &f.reset);
    opt(&mut out.text_frame, &f.text_frame);
    opt(&mut out.relay_latency, &f.relay_latency);
    opt(&mut out.fragment_size, &f.fragment_size);
    out.rsv1_on_data |= f.rsv1_on_data;
    out.empty_frames |= f.empty_frames;
    out.unsolicited_pong |= f.unsolicited_pong;
    opt(&mut out.server_read_size, &f.server_read_size);
    opt(&mut out.delete_status, &f.delete_status);
    opt(&mut out.delete_latency, &f.delete_latency);
    out.delete_no_response |= f.delete_no_response;
    out.delete_ignores_node |= f.delete_ignores_node;
    out.delete_closes_websocket |= f.delete_closes_websocket;
    out.connection_whitespace |= f.connection_whitespace;
    opt(&mut out.connection_error_200, &f.connection_error_200);
}

/// `Option<Duration>` as optional integer milliseconds in JSON.
mod opt_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VM: &str =
        "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm1";

    #[test]
    fn scopes_select_the_right_knobs() {
        let f = Faults::default()
            .token_error(500, "base")
            .and(
                Faults::default()
                    .token_error(403, "vm1")
                    .for_resource(VM.to_uppercase()),
            )
            .and(
                Faults {
                    wrong_accept: true,
                    ..Faults::default()
                }
                .for_nth_token(2),
            );
        let other = f.resolve(Some("/other"), Some(1));
        assert_eq!(other.token_error.unwrap().status, 500);
        assert!(!other.wrong_accept);
        let vm = f.resolve(Some(VM), Some(2));
        assert_eq!(vm.token_error.unwrap().status, 403);
        assert!(vm.wrong_accept);
        assert!(vm.overrides.is_empty());
    }

    #[test]
    fn base_scope_limits_the_base_set_only() {
        let f = Faults::default()
            .token_429(1, 2)
            .for_nth_token(3)
            .and(Faults {
                empty_frames: true,
                ..Faults::default()
            });
        assert!(f.resolve(None, Some(1)).token_429.is_none());
        assert!(f.resolve(None, Some(1)).empty_frames);
        assert!(f.resolve(None, Some(3)).token_429.is_some());
    }

    #[test]
    fn json_round_trip_with_millisecond_durations() {
        let f = Faults {
            post_latency: Some(Duration::from_millis(250)),
            relay_latency: Some(Duration::from_millis(5)),
            ..Faults::default()
        }
        .close_after_bytes(10, 4001, "bye")
        .for_resource("/x");
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["post_latency"], 250);
        assert_eq!(json["scope"]["resource"], "/x");
        let back: Faults = serde_json::from_value(json).unwrap();
        assert_eq!(back, f);
        let partial: Faults =
            serde_json::from_str(r#"{"token_html_502":true,"scope":{"nth_token":2}}"#).unwrap();
        assert!(partial.token_html_502);
        assert_eq!(partial.scope, Scope::NthToken(2));
    }
}
