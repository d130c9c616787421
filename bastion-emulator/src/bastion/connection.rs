//! `POST /api/connection`: the Developer/QuickConnect data-pod lookup (see
//! docs/protocol.md#data-pod-lookup).

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde_json::Value;

use super::registry::EventKind;
use super::state::Shared;
use super::tokens::check_arm_token;
use crate::respond::{self, Resp};

pub(crate) async fn post(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    shared.registry.count(|s| s.connection_lookups += 1);
    let (resp, detail) = inner(&shared, req).await;
    let status = resp.status().as_u16();
    tracing::debug!(status, "emulator POST /api/connection");
    shared
        .registry
        .event(EventKind::ConnectionLookup, None, Some(status), detail);
    resp
}

fn bad_request(message: &str) -> (Resp, String) {
    (
        respond::error(400, message, Some("BAD_REQUEST")),
        message.to_owned(),
    )
}

async fn inner(shared: &Shared, req: Request<Incoming>) -> (Resp, String) {
    let body = match respond::read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return bad_request(&e),
    };
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body must be a JSON object");
    };
    let text = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let faults = shared.faults_for(text("resourceId"), None);
    for key in [
        "resourceId",
        "bastionResourceId",
        "azToken",
        "connectionType",
    ] {
        if text(key).is_none() {
            return bad_request(&format!("Missing required field: {key}"));
        }
    }
    let port = match obj.get("vmPort") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    if !port.is_some_and(|p| (1..=65535).contains(&p)) {
        return bad_request("vmPort must be an integer between 1 and 65535");
    }
    if text("connectionType") != Some("nativeclient") {
        return bad_request("connectionType must be nativeclient");
    }
    let bastion_id = text("bastionResourceId").unwrap_or_default();
    let Some((index, bastion)) = shared.bastion_by_id(bastion_id) else {
        let msg = "Bastion not found";
        return (
            respond::error(404, msg, Some("NOT_FOUND")),
            format!("{msg}: {bastion_id}"),
        );
    };
    if let Err(msg) = check_arm_token(text("azToken").unwrap_or_default(), &bastion.tenant_id) {
        return (respond::error(401, &msg, Some("INVALID_CREDENTIALS")), msg);
    }
    if !bastion.is_developer() {
        return bad_request("The Bastion is not a Developer or QuickConnect SKU");
    }
    if let Some(msg) = &faults.connection_error_200 {
        return (
            respond::error(200, msg, None),
            "fault: error body with status 200".into(),
        );
    }
    shared.set_data_pod_bastion(index);
    let port = shared.local_addr.port();
    let host = &shared.config.data_pod_host;
    let mut reply = if port == 443 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    if faults.connection_whitespace {
        reply = format!("  \r\n\t{reply} \r\n");
    }
    (
        respond::text(200, reply),
        format!("data pod for {}", bastion.id),
    )
}
