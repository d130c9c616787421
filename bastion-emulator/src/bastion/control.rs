//! The control API on the same port: `/_emulator/*` (see docs/protocol.md#control-api).
//!
//! It hands out session tokens and changes the emulator's behaviour, so every request must
//! carry the per-run secret ([`super::Emulator::control_secret`]) in the
//! [`CONTROL_SECRET_HEADER`] header; anything else on loopback gets a 401 and nothing more.
//!
//! | Request | Effect |
//! |---|---|
//! | `GET /_emulator/sessions` | every minted session (JSON list of [`super::SessionRecord`]) |
//! | `GET /_emulator/stats` | [`super::Stats`] |
//! | `GET /_emulator/events` | the ordered event log ([`super::Event`]) |
//! | `POST /_emulator/reset` | forget sessions, counters, events and faults |
//! | `GET /_emulator/config` | the current [`super::Faults`] |
//! | `PUT /_emulator/config` | replace the [`super::Faults`] (JSON body) |
//! | `POST /_emulator/sessions/{authToken}/close?code=N` | close that session's live WebSocket |

use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;

use super::faults::Faults;
use super::registry::{EventKind, RelayCommand};
use super::state::Shared;
use crate::respond::{self, Resp};

/// The header that carries the control API secret.
pub const CONTROL_SECRET_HEADER: &str = "x-emulator-secret";

pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = if authorized(&shared, &req) {
        inner(&shared, req, &method, &path).await
    } else {
        respond::error(
            401,
            &format!("the control API needs the emulator's secret in {CONTROL_SECRET_HEADER}"),
            Some("UNAUTHORIZED"),
        )
    };
    let shown = if path.starts_with("/_emulator/sessions/") {
        "/_emulator/sessions/<redacted>"
    } else {
        path.as_str()
    };
    shared.registry.event(
        EventKind::Control,
        None,
        Some(resp.status().as_u16()),
        format!("{method} {shown}"),
    );
    resp
}

/// Whether `req` carries the secret (compared in constant time).
fn authorized(shared: &Shared, req: &Request<Incoming>) -> bool {
    let Some(given) = req.headers().get(CONTROL_SECRET_HEADER) else {
        return false;
    };
    let (given, want) = (given.as_bytes(), shared.control_secret.as_bytes());
    given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn inner(shared: &Shared, req: Request<Incoming>, method: &Method, path: &str) -> Resp {
    match (method.as_str(), path) {
        ("GET", "/_emulator/sessions") => respond::json(200, &shared.registry.sessions()),
        ("GET", "/_emulator/stats") => respond::json(200, &shared.registry.stats()),
        ("GET", "/_emulator/events") => respond::json(200, &shared.registry.events()),
        ("POST", "/_emulator/reset") => {
            shared.reset();
            respond::empty(204)
        }
        ("GET", "/_emulator/config") => respond::json(200, &shared.faults()),
        ("PUT", "/_emulator/config") => {
            let body = match respond::read_body(req.into_body()).await {
                Ok(b) => b,
                Err(e) => return respond::error(400, &e, Some("BAD_REQUEST")),
            };
            match serde_json::from_slice::<Faults>(&body) {
                Ok(faults) => {
                    shared.set_faults(faults);
                    respond::empty(204)
                }
                Err(e) => respond::error(400, &format!("invalid faults: {e}"), Some("BAD_REQUEST")),
            }
        }
        ("POST", p) => {
            let token = p
                .strip_prefix("/_emulator/sessions/")
                .and_then(|rest| rest.strip_suffix("/close"))
                .filter(|t| !t.is_empty() && !t.contains('/'))
                .and_then(respond::percent_decode);
            let Some(token) = token else {
                return respond::error(404, "Not found", Some("NOT_FOUND"));
            };
            let code = respond::query_param(req.uri(), "code")
                .and_then(|c| c.parse::<u16>().ok())
                .unwrap_or(1000);
            let reason = respond::query_param(req.uri(), "reason").unwrap_or_default();
            match shared.registry.relay_of(&token) {
                Some(relay) if relay.send(RelayCommand::Close(code, reason)).is_ok() => {
                    respond::empty(204)
                }
                _ => respond::error(404, "No live WebSocket for that session", Some("NOT_FOUND")),
            }
        }
        _ => respond::error(404, "Not found", Some("NOT_FOUND")),
    }
}
