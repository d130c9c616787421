//! The WebSocket upgrade: `GET /webtunnelv2/{wsToken}?X-Node-Id=` and
//! `GET /omni/webtunnel/{wsToken}` (see docs/protocol.md#websocket-upgrade, checked in the
//! order of docs/protocol.md#validation-order).
//!
//! The upgrade is done by hand (not by a library) so the handshake quirks of
//! docs/protocol.md#handshake-quirks can be produced on demand.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::Request;
use http::header::{CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::body::Incoming;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::faults::{NodeCheck, TargetFailure};
use super::io::RawIo;
use super::pages;
use super::registry::{EventKind, WsTokenError};
use super::relay;
use super::state::Shared;
use crate::respond::{self, Resp};

/// How long connecting the target may take.
const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long hyper may take to hand over the upgraded connection.
const UPGRADE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which tunnel URL was used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// `/webtunnelv2/{token}?X-Node-Id=` (Basic/Standard/Premium).
    NodeAffine,
    /// `/omni/webtunnel/{token}` (Developer data pod): no node check.
    DataPod,
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    mut req: Request<Incoming>,
    raw_token: &str,
    flavor: Flavor,
) -> Resp {
    shared.registry.count(|s| s.websocket_requests += 1);
    let (resp, session, detail) = inner(&shared, &mut req, raw_token, flavor).await;
    let status = resp.status().as_u16();
    if status == 101 {
        shared.registry.count(|s| s.websocket_upgrades += 1);
    }
    tracing::debug!(status, ?flavor, "emulator WebSocket request");
    shared
        .registry
        .event(EventKind::WebSocketRequest, session, Some(status), detail);
    resp
}

fn header_has_token(req: &Request<Incoming>, name: http::header::HeaderName, token: &str) -> bool {
    req.headers().get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

async fn inner(
    shared: &Arc<Shared>,
    req: &mut Request<Incoming>,
    raw_token: &str,
    flavor: Flavor,
) -> (Resp, Option<u64>, String) {
    // RFC 6455 request checks.
    if !header_has_token(req, UPGRADE, "websocket") || !header_has_token(req, CONNECTION, "upgrade")
    {
        let msg = "Expected a WebSocket upgrade request";
        return (
            respond::error(400, msg, Some("BAD_REQUEST")),
            None,
            msg.into(),
        );
    }
    let version = req
        .headers()
        .get("Sec-WebSocket-Version")
        .and_then(|v| v.to_str().ok());
    if version != Some("13") {
        let mut r = respond::error(426, "Unsupported WebSocket version", None);
        r.headers_mut()
            .insert("Sec-WebSocket-Version", HeaderValue::from_static("13"));
        return (r, None, "bad Sec-WebSocket-Version".into());
    }
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| STANDARD.decode(k).is_ok_and(|b| b.len() == 16))
        .map(str::to_owned);
    let Some(key) = key else {
        let msg = "Missing or invalid Sec-WebSocket-Key";
        return (
            respond::error(400, msg, Some("BAD_REQUEST")),
            None,
            msg.into(),
        );
    };

    // The one-time token.
    let Some(ws_token) = respond::percent_decode(raw_token) else {
        return (
            respond::error(404, "Not found", Some("NOT_FOUND")),
            None,
            "undecodable token".into(),
        );
    };
    let ticket = match shared
        .registry
        .lookup_ws(&ws_token, shared.config.websocket_token_ttl)
    {
        Ok(t) => t,
        Err(e) => {
            let why = match e {
                WsTokenError::Unknown => "unknown websocketToken",
                WsTokenError::Used => "websocketToken already used",
                WsTokenError::Expired => "websocketToken expired",
                WsTokenError::Deleted => "session deleted",
            };
            return (
                respond::error(404, "Not found", Some("NOT_FOUND")),
                None,
                why.into(),
            );
        }
    };
    let session = Some(ticket.id);
    let faults = shared.faults_for(Some(&ticket.resource_id), Some(ticket.token_request));

    if flavor == Flavor::NodeAffine && faults.node_check == NodeCheck::Reject403 {
        let node = respond::query_param(req.uri(), "X-Node-Id");
        if node.as_deref() != Some(ticket.node_id.as_str()) {
            let detail = if node.is_some() {
                "X-Node-Id does not match the session's node"
            } else {
                "X-Node-Id missing"
            };
            return (
                respond::error(403, "Forbidden", Some("PERMISSION_DENIED")),
                session,
                detail.into(),
            );
        }
    }
    if let Some(f) = &faults.ws_reject {
        return (pages::fault_response(f), session, "fault: ws_reject".into());
    }

    // Connect the target before answering, so a failure can be reported either way.
    let target =
        match tokio::time::timeout(TARGET_CONNECT_TIMEOUT, TcpStream::connect(ticket.target)).await
        {
            Ok(Ok(t)) => {
                let _ = t.set_nodelay(true);
                Some(t)
            }
            Ok(Err(e)) => {
                shared.registry.event(
                    EventKind::TargetConnectFailed,
                    session,
                    None,
                    format!("{}: {e}", ticket.target),
                );
                None
            }
            Err(_) => {
                shared.registry.event(
                    EventKind::TargetConnectFailed,
                    session,
                    None,
                    format!("{}: timed out", ticket.target),
                );
                None
            }
        };
    if target.is_none() && faults.target_failure == TargetFailure::Status502 {
        return (
            respond::error(502, "Target unreachable", None),
            session,
            "target unreachable".into(),
        );
    }
    if !shared.registry.consume_ws(&ticket) {
        return (
            respond::error(404, "Not found", Some("NOT_FOUND")),
            session,
            "websocketToken already used".into(),
        );
    }

    let on_upgrade = hyper::upgrade::on(&mut *req);
    let mut resp = respond::empty(101);
    let headers = resp.headers_mut();
    if !faults.upgrade_without_headers {
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    if !faults.omit_accept {
        let accept = if faults.wrong_accept {
            derive_accept_key(b"not the client's key")
        } else {
            derive_accept_key(key.as_bytes())
        };
        if let Ok(v) = HeaderValue::from_str(&accept) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, v);
        }
    }

    let task_shared = Arc::clone(shared);
    shared.tasks.spawn(async move {
        let upgraded = tokio::select! {
            _ = task_shared.shutdown_requested() => None,
            r = tokio::time::timeout(UPGRADE_TIMEOUT, on_upgrade) => r.ok().and_then(Result::ok),
        };
        match upgraded {
            Some(up) => {
                relay::serve(
                    task_shared,
                    ticket,
                    faults,
                    RawIo::from_upgraded(up),
                    target,
                )
                .await;
            }
            None => task_shared.registry.ws_ended(&ticket, false),
        }
    });
    (resp, session, "upgraded".into())
}
