//! `POST /api/tokens` (see docs/protocol.md#token-exchange, checked in the order of
//! docs/protocol.md#validation-order) and `DELETE /api/tokens/{authToken}` (see
//! docs/protocol.md#session-delete).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::body::Incoming;

use super::config::BastionFixture;
use super::pages;
use super::registry::{DeleteOutcome, EventKind, NewSession, RelayCommand};
use super::state::Shared;
use crate::jwt::{self, TestClaims};
use crate::respond::{self, Resp};

/// The most a "no response" DELETE hangs.
const NO_RESPONSE_LIMIT: Duration = Duration::from_secs(60);

const INTERNAL: &str = "Unexpected internal error";

/// Checks an ARM token for `tenant`: decodes it, then `aud`, `exp`, `tid`.
pub(crate) fn check_arm_token(token: &str, tenant: &str) -> Result<TestClaims, String> {
    let claims = jwt::decode(token).map_err(|e| format!("Invalid token: {e}"))?;
    if !jwt::is_arm_audience(&claims.aud) {
        return Err("Invalid token: the audience is not Azure Resource Manager".into());
    }
    if !claims.is_unexpired() {
        return Err("Invalid token: the token has expired".into());
    }
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err("Invalid token: the token was not issued by the Bastion's tenant".into());
    }
    Ok(claims)
}

fn unauthorized(message: &str) -> Resp {
    respond::error(401, message, Some("INVALID_CREDENTIALS"))
}

fn bad_request(message: &str) -> Resp {
    respond::error(400, message, Some("BAD_REQUEST"))
}

/// Whether the Bastion allows native-client tunnels (step 4).
fn tunneling_allowed(b: &BastionFixture) -> bool {
    if b.is_developer() {
        return true;
    }
    let sku_ok = ["Standard", "Premium"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(&b.sku));
    sku_ok && b.enable_tunneling
}

/// The IP of a `…/providers/Microsoft.Network/bh-hostConnect/{ip}` id, if it is one.
fn ip_connect_target(resource_id: &str) -> Option<&str> {
    let lower = resource_id.to_ascii_lowercase();
    let marker = "/providers/microsoft.network/bh-hostconnect/";
    let at = lower.find(marker)?;
    Some(&resource_id[at + marker.len()..])
}

pub(crate) async fn post(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let n = shared.registry.next_token_request();
    let (resp, session, detail) = post_inner(&shared, req, n).await;
    let status = resp.status().as_u16();
    tracing::debug!(status, request = n, "emulator POST /api/tokens");
    shared
        .registry
        .event(EventKind::TokenRequest, session, Some(status), detail);
    resp
}

async fn post_inner(
    shared: &Shared,
    req: Request<Incoming>,
    n: u64,
) -> (Resp, Option<u64>, String) {
    let (parts, body) = req.into_parts();
    let body = match respond::read_body(body).await {
        Ok(b) => b,
        Err(e) => return (bad_request(&e), None, e),
    };
    let mut form: HashMap<String, String> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(&body) {
        form.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let field = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let resource_id = field("resourceId");
    let faults = shared.faults_for(resource_id, Some(n));

    // Injected faults first: they model the service or a proxy failing regardless of input.
    if let Some(d) = faults.post_latency
        && !shared.sleep(d).await
    {
        return (
            respond::error(503, "Shutting down", None),
            None,
            "shutdown".into(),
        );
    }
    if let Some(rl) = &faults.token_429
        && shared.rate_limited.fetch_add(1, Ordering::SeqCst) < rl.count
    {
        let mut r = respond::error(429, "Too many requests", None);
        if let Ok(v) = HeaderValue::from_str(&rl.retry_after_secs.to_string()) {
            r.headers_mut().insert(RETRY_AFTER, v);
        }
        return (r, None, "fault: 429".into());
    }
    if faults.token_html_502 {
        return (respond::html_error(502), None, "fault: HTML 502".into());
    }
    if let Some(f) = &faults.token_error {
        return (pages::fault_response(f), None, "fault: token_error".into());
    }

    let host = respond::host_of(&parts);
    let Some(bastion) = shared.bastion_for_host(host.as_deref()) else {
        let msg = format!("No Bastion is served at host {}", host.unwrap_or_default());
        return (respond::error(404, &msg, Some("NOT_FOUND")), None, msg);
    };

    // 1. Form body only, no Authorization header (both reportedly yield 500).
    let form_ct = respond::header(&parts, CONTENT_TYPE.as_str()).is_some_and(|ct| {
        ct.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form_ct {
        return (
            respond::error(500, INTERNAL, Some("INTERNAL_ERROR")),
            None,
            "Content-Type is not a form".into(),
        );
    }
    if parts.headers.contains_key(AUTHORIZATION) {
        return (
            respond::error(500, INTERNAL, Some("INTERNAL_ERROR")),
            None,
            "Authorization header present".into(),
        );
    }

    // 2. Required fields.
    for key in ["resourceId", "protocol", "workloadHostPort", "aztoken"] {
        if field(key).is_none() {
            let msg = format!("Missing required parameter: {key}");
            return (bad_request(&msg), None, msg);
        }
    }
    let (Some(resource_id), Some(protocol), Some(port), Some(aztoken)) = (
        resource_id,
        field("protocol"),
        field("workloadHostPort"),
        field("aztoken"),
    ) else {
        return (
            bad_request("Missing required parameter"),
            None,
            String::new(),
        );
    };
    if protocol != "tcptunnel" {
        let msg = format!("Unsupported protocol: {protocol}");
        return (bad_request(&msg), None, msg);
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p >= 1 => p,
        _ => {
            let msg = "workloadHostPort must be an integer between 1 and 65535".to_owned();
            return (bad_request(&msg), None, msg);
        }
    };

    // 3. The ARM token.
    let claims = match check_arm_token(aztoken, &bastion.tenant_id) {
        Ok(c) => c,
        Err(msg) => return (unauthorized(&msg), None, msg),
    };

    // 4. SKU and enableTunneling.
    if !tunneling_allowed(bastion) {
        return (
            respond::error(403, "Tunneling is disabled", None),
            None,
            "tunneling disabled".into(),
        );
    }

    // 5. The target: IP connect, or the fixture map.
    let hostname = field("hostname").map(str::to_owned);
    let target: SocketAddr = if let Some(ip_text) = ip_connect_target(resource_id) {
        if bastion.is_developer() || !bastion.enable_ip_connect {
            let msg = "IP-based connection is not enabled on this Bastion";
            return (
                respond::error(403, msg, Some("PERMISSION_DENIED")),
                None,
                msg.into(),
            );
        }
        let Ok(ip) = ip_text.parse::<IpAddr>() else {
            let msg = "The bh-hostConnect resource id does not end in an IP address";
            return (bad_request(msg), None, msg.into());
        };
        if hostname.as_deref() != Some(ip_text) {
            let msg = "hostname must equal the IP address of the bh-hostConnect resource id";
            return (bad_request(msg), None, msg.into());
        }
        if let Some(allowed) = &shared.config.ip_connect_ports
            && !allowed.contains(&port)
        {
            let list: Vec<String> = allowed.iter().map(u16::to_string).collect();
            let msg = format!(
                "Custom ports are not allowed. Allowed ports for Tunnel with IP connect are {}.",
                list.join(", ")
            );
            return (
                respond::error(403, &msg, Some("PERMISSION_DENIED")),
                None,
                msg,
            );
        }
        SocketAddr::new(ip, port)
    } else {
        let found = shared
            .config
            .targets
            .iter()
            .find(|t| t.port == port && t.resource_id.eq_ignore_ascii_case(resource_id));
        match found {
            Some(t) => t.addr,
            None => {
                let msg = "Target resource not found";
                return (
                    respond::error(404, msg, Some("NOT_FOUND")),
                    None,
                    format!("{msg}: {resource_id} port {port}"),
                );
            }
        }
    };

    // 6. Per-principal deny list.
    if faults
        .deny_oids
        .iter()
        .any(|o| o.eq_ignore_ascii_case(&claims.oid))
    {
        let msg = faults
            .deny_message
            .clone()
            .unwrap_or_else(|| "java.lang.NullPointerException".into());
        return (
            respond::error(403, &msg, None),
            None,
            "fault: denied principal".into(),
        );
    }

    // 8. Mint.
    let auth_token = shared.token(faults.unsafe_tokens);
    let websocket_token = shared.token(faults.unsafe_tokens);
    let node_id = shared.next_node();
    let id = shared.registry.mint(NewSession {
        auth_token: auth_token.clone(),
        websocket_token: websocket_token.clone(),
        node_id: node_id.clone(),
        bastion_id: bastion.id.clone(),
        resource_id: resource_id.to_owned(),
        hostname,
        port,
        token_request: n,
        target,
    });
    let mut body = serde_json::json!({
        "authToken": auth_token,
        "username": format!("tunnel-user-{id}"),
        "dataSource": "tcptunnel",
        "nodeId": node_id,
        "availableDataSources": ["tcptunnel"],
        "websocketToken": websocket_token,
    });
    if faults.omit_websocket_token
        && let Some(obj) = body.as_object_mut()
    {
        obj.remove("websocketToken");
    }
    (
        respond::json(200, &body),
        Some(id),
        format!("minted for {resource_id} port {port}"),
    )
}

pub(crate) async fn delete(shared: Arc<Shared>, req: Request<Incoming>, raw_token: &str) -> Resp {
    shared.registry.count(|s| s.delete_requests += 1);
    let (resp, session) = delete_inner(&shared, req, raw_token).await;
    let status = resp.status().as_u16();
    tracing::debug!(status, "emulator DELETE /api/tokens");
    shared.registry.event(
        EventKind::DeleteRequest,
        session,
        Some(status),
        String::new(),
    );
    resp
}

async fn delete_inner(
    shared: &Shared,
    req: Request<Incoming>,
    raw_token: &str,
) -> (Resp, Option<u64>) {
    let not_found = || respond::error(404, "Session not found", Some("NOT_FOUND"));
    let Some(auth_token) = respond::percent_decode(raw_token) else {
        return (not_found(), None);
    };
    let node = req
        .headers()
        .get("X-Node-Id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let scope = shared.registry.scope_of(&auth_token);
    let session = scope.as_ref().map(|s| s.0);
    let faults = shared.faults_for(
        scope.as_ref().map(|s| s.1.as_str()),
        scope.as_ref().map(|s| s.2),
    );
    if let Some(d) = faults.delete_latency
        && !shared.sleep(d).await
    {
        return (respond::error(503, "Shutting down", None), session);
    }
    if faults.delete_no_response {
        shared.sleep(NO_RESPONSE_LIMIT).await;
        return (respond::error(504, "Gateway Timeout", None), session);
    }
    let status = faults.delete_status.unwrap_or(204);
    if !(200..300).contains(&status) {
        return (
            respond::error(status, INTERNAL, Some("INTERNAL_ERROR")),
            session,
        );
    }
    match shared
        .registry
        .delete(&auth_token, node.as_deref(), !faults.delete_ignores_node)
    {
        DeleteOutcome::Deleted { id, relay } => {
            if faults.delete_closes_websocket
                && let Some(relay) = relay
            {
                let _ = relay.send(RelayCommand::Close(1000, "session deleted".into()));
            }
            (respond::empty(status), Some(id))
        }
        DeleteOutcome::NotFound => (not_found(), session),
        DeleteOutcome::NodeMismatch => (
            respond::error(404, "Session not found on this node", Some("NOT_FOUND")),
            session,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_token_checks() {
        let good = TestClaims::new("t1", "o").mint();
        assert!(check_arm_token(&good, "T1").is_ok());
        assert!(check_arm_token(&good, "t2").unwrap_err().contains("tenant"));
        let graph = TestClaims::new("t1", "o")
            .audience("https://graph.microsoft.com")
            .mint();
        assert!(
            check_arm_token(&graph, "t1")
                .unwrap_err()
                .contains("audience")
        );
        let old = TestClaims::new("t1", "o").expired().mint();
        assert!(check_arm_token(&old, "t1").unwrap_err().contains("expired"));
        assert!(check_arm_token("nope", "t1").is_err());
    }

    #[test]
    fn ip_connect_ids() {
        let id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bh-hostConnect/10.0.0.4";
        assert_eq!(ip_connect_target(id), Some("10.0.0.4"));
        assert_eq!(ip_connect_target(&id.to_lowercase()), Some("10.0.0.4"));
        assert_eq!(
            ip_connect_target("/subscriptions/s/x/virtualMachines/vm"),
            None
        );
    }

    #[test]
    fn tunneling_gate() {
        let std = BastionFixture::standard("t");
        assert!(tunneling_allowed(&std));
        assert!(!tunneling_allowed(&std.clone().tunneling(false)));
        assert!(!tunneling_allowed(
            &BastionFixture::new("Basic", "t", "b").tunneling(true)
        ));
        assert!(!tunneling_allowed(
            &BastionFixture::new("Fancy", "t", "b").tunneling(true)
        ));
        assert!(tunneling_allowed(&BastionFixture::developer("t")));
    }
}
