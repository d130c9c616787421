//! A Kubernetes API server stand-in: HTTPS with a certificate from the test CA, bearer-token
//! authentication, and just enough API for `kubectl get pods` and `kubectl get nodes`
//! (discovery, `PodList`/`NodeList`, and server-side `Table` output).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{EmulatorError, TestCa};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::respond::{self, Resp};
use crate::server::{Handler, HandlerFuture, Req, TlsServer};

/// The Kubernetes version the stand-in reports.
pub const KUBERNETES_VERSION: &str = "v1.33.2";

/// How to start a [`KubeApiServer`].
#[derive(Debug, Clone)]
pub struct KubeApiServerConfig {
    /// Names in the server certificate (`fqdn`, `privateFQDN`, …); `localhost` and `127.0.0.1`
    /// are always added.
    pub host_names: Vec<String>,
    /// Where to listen (loopback, port 0 by default).
    pub bind: SocketAddr,
    /// An AAD-enabled cluster's tenant: the server then accepts only bearer JWTs for the AKS
    /// AAD server (`aud` = [`crate::jwt::AKS_SERVER_APP_ID`]) from this tenant, unexpired, and
    /// nothing else (ARM tokens and static tokens get 401). `None`: static tokens only
    /// ([`KubeApiServer::accept_token`]).
    pub aad_tenant: Option<String>,
}

impl Default for KubeApiServerConfig {
    fn default() -> Self {
        KubeApiServerConfig {
            host_names: Vec::new(),
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            aad_tenant: None,
        }
    }
}

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeRequest {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The user the bearer token belongs to, if it was accepted.
    pub user: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Why a bearer token was refused (`None` when accepted or absent).
    pub refused: Option<String>,
}

#[derive(Debug)]
struct KubeState {
    aad_tenant: Option<String>,
    tokens: Mutex<Vec<(String, String)>>,
    log: Mutex<Vec<KubeRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running Kubernetes API stand-in. Dropping it stops the server.
#[derive(Debug)]
pub struct KubeApiServer {
    server: TlsServer,
    state: Arc<KubeState>,
}

impl KubeApiServer {
    /// Starts the server.
    pub async fn start(
        ca: &TestCa,
        config: KubeApiServerConfig,
    ) -> Result<KubeApiServer, EmulatorError> {
        let mut names = config.host_names.clone();
        names.push("localhost".into());
        names.push("127.0.0.1".into());
        let tls = ca.server_config(&names)?;
        let listener = TcpListener::bind(config.bind).await?;
        let state = Arc::new(KubeState {
            aad_tenant: config.aad_tenant.clone(),
            tokens: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
        });
        let server = TlsServer::spawn(listener, tls, state.clone())?;
        Ok(KubeApiServer { server, state })
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Accepts `token` as user `user` from now on.
    pub fn accept_token(&self, token: &str, user: &str) {
        lock(&self.state.tokens).push((token.to_owned(), user.to_owned()));
    }

    /// Stops accepting `token`.
    pub fn revoke_token(&self, token: &str) {
        lock(&self.state.tokens).retain(|(t, _)| t != token);
    }

    /// Every request answered so far.
    pub fn requests(&self) -> Vec<KubeRequest> {
        lock(&self.state.log).clone()
    }
}

impl Handler for KubeState {
    fn handle(self: Arc<Self>, req: Req, _peer: SocketAddr) -> HandlerFuture {
        Box::pin(async move { Some(self.serve(&req)) })
    }
}

fn status(code: u16, reason: &str, message: &str) -> Resp {
    respond::json(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code
        }),
    )
}

const CREATED: &str = "2025-06-01T08:00:00Z";

struct PodFixture {
    namespace: &'static str,
    name: &'static str,
    node: &'static str,
    ip: &'static str,
    restarts: u32,
    image: &'static str,
}

const PODS: &[PodFixture] = &[
    PodFixture {
        namespace: "default",
        name: "hello-web-7c9d8f6b5d-x2x7q",
        node: "aks-nodepool1-31718369-vmss000000",
        ip: "10.244.0.12",
        restarts: 0,
        image: "mcr.microsoft.com/azuredocs/aks-helloworld:v1",
    },
    PodFixture {
        namespace: "kube-system",
        name: "coredns-789789675-7nbtw",
        node: "aks-nodepool1-31718369-vmss000000",
        ip: "10.244.0.5",
        restarts: 0,
        image: "mcr.microsoft.com/oss/v2/kubernetes/coredns:v1.11.3-8",
    },
    PodFixture {
        namespace: "kube-system",
        name: "konnectivity-agent-5f8c9d7b6-jq2lz",
        node: "aks-nodepool1-31718369-vmss000001",
        ip: "10.244.1.3",
        restarts: 1,
        image: "mcr.microsoft.com/oss/kubernetes/apiserver-network-proxy/agent:v0.30.3",
    },
    PodFixture {
        namespace: "kube-system",
        name: "metrics-server-5dfc656944-8xk6j",
        node: "aks-nodepool1-31718369-vmss000002",
        ip: "10.244.2.4",
        restarts: 0,
        image: "mcr.microsoft.com/oss/v2/kubernetes/metrics-server:v0.7.2-3",
    },
];

const NODES: &[(&str, &str)] = &[
    ("aks-nodepool1-31718369-vmss000000", "10.224.0.4"),
    ("aks-nodepool1-31718369-vmss000001", "10.224.0.5"),
    ("aks-nodepool1-31718369-vmss000002", "10.224.0.6"),
];

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({
        "name": name,
        "uid": format!("00000000-0000-4000-8000-{:012x}", fnv(name)),
        "resourceVersion": "1",
        "creationTimestamp": CREATED,
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// A stable small hash for fake uids.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) & 0xffff_ffff_ffff
}

fn pod_object(p: &PodFixture) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": metadata(p.name, Some(p.namespace)),
        "spec": {
            "nodeName": p.node,
            "containers": [{ "name": "main", "image": p.image }]
        },
        "status": {
            "phase": "Running", "podIP": p.ip, "hostIP": "10.224.0.4", "startTime": CREATED,
            "conditions": [{ "type": "Ready", "status": "True" }],
            "containerStatuses": [{
                "name": "main", "ready": true, "started": true, "restartCount": p.restarts,
                "image": p.image, "imageID": "",
                "state": { "running": { "startedAt": CREATED } }
            }]
        }
    })
}

fn node_object(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name,
            "uid": format!("00000000-0000-4000-8000-{:012x}", fnv(name)),
            "resourceVersion": "1",
            "creationTimestamp": CREATED,
            "labels": { "kubernetes.io/hostname": name, "kubernetes.azure.com/agentpool": "nodepool1", "kubernetes.io/role": "agent" }
        },
        "spec": {},
        "status": {
            "addresses": [{ "type": "InternalIP", "address": ip }, { "type": "Hostname", "address": name }],
            "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady" }],
            "nodeInfo": { "kubeletVersion": KUBERNETES_VERSION, "osImage": "Ubuntu 22.04.5 LTS",
                          "kernelVersion": "5.15.0-1089-azure", "containerRuntimeVersion": "containerd://1.7.27-1",
                          "operatingSystem": "linux", "architecture": "amd64" }
        }
    })
}

fn column(name: &str, ty: &str, format: &str, priority: u8) -> Value {
    json!({ "name": name, "type": ty, "format": format, "description": name, "priority": priority })
}

/// How much of each object a `Table` row carries (`includeObject`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Include {
    None,
    Metadata,
    Object,
}

fn row(cells: Value, object: &Value, include: Include) -> Value {
    match include {
        Include::None => json!({ "cells": cells }),
        Include::Object => json!({ "cells": cells, "object": object }),
        Include::Metadata => json!({ "cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(Value::Null)
        }}),
    }
}

fn table(columns: Vec<Value>, rows: Vec<Value>) -> Value {
    json!({
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": { "resourceVersion": "1" },
        "columnDefinitions": columns, "rows": rows
    })
}

fn pods_response(namespace: Option<&str>, as_table: bool, include: Include) -> Value {
    let pods: Vec<&PodFixture> = PODS
        .iter()
        .filter(|p| namespace.is_none_or(|ns| ns == p.namespace))
        .collect();
    if !as_table {
        return json!({
            "kind": "PodList", "apiVersion": "v1", "metadata": { "resourceVersion": "1" },
            "items": pods.iter().map(|p| pod_object(p)).collect::<Vec<_>>()
        });
    }
    let columns = vec![
        column("Name", "string", "name", 0),
        column("Ready", "string", "", 0),
        column("Status", "string", "", 0),
        column("Restarts", "string", "", 0),
        column("Age", "string", "", 0),
        column("IP", "string", "", 1),
        column("Node", "string", "", 1),
    ];
    let rows = pods
        .iter()
        .map(|p| {
            row(
                json!([
                    p.name,
                    "1/1",
                    "Running",
                    p.restarts.to_string(),
                    "5d",
                    p.ip,
                    p.node
                ]),
                &pod_object(p),
                include,
            )
        })
        .collect();
    table(columns, rows)
}

fn nodes_response(as_table: bool, include: Include) -> Value {
    if !as_table {
        return json!({
            "kind": "NodeList", "apiVersion": "v1", "metadata": { "resourceVersion": "1" },
            "items": NODES.iter().map(|(n, ip)| node_object(n, ip)).collect::<Vec<_>>()
        });
    }
    let columns = vec![
        column("Name", "string", "name", 0),
        column("Status", "string", "", 0),
        column("Roles", "string", "", 0),
        column("Age", "string", "", 0),
        column("Version", "string", "", 0),
        column("Internal-IP", "string", "", 1),
    ];
    let rows = NODES
        .iter()
        .map(|(n, ip)| {
            row(
                json!([n, "Ready", "<none>", "5d", KUBERNETES_VERSION, ip]),
                &node_object(n, ip),
                include,
            )
        })
        .collect();
    table(columns, rows)
}

fn resource(name: &str, kind: &str, namespaced: bool, short: &[&str]) -> Value {
    json!({
        "name": name, "singularName": kind.to_ascii_lowercase(), "namespaced": namespaced,
        "kind": kind, "verbs": ["get", "list"], "shortNames": short
    })
}

impl KubeState {
    fn serve(&self, req: &Req) -> Resp {
        let path = req.uri().path().trim_end_matches('/').to_owned();
        let query = req.uri().query().unwrap_or("");
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let (user, refused) = match (&bearer, &self.aad_tenant) {
            (None, _) => (None, None),
            (Some(token), Some(tenant)) => match aad_user(token, tenant) {
                Ok(user) => (Some(user), None),
                Err(why) => (None, Some(why)),
            },
            (Some(token), None) => {
                let user = lock(&self.tokens)
                    .iter()
                    .find(|(t, _)| t == token)
                    .map(|(_, u)| u.clone());
                let refused = user.is_none().then(|| "unknown token".to_owned());
                (user, refused)
            }
        };
        let response =
            if user.is_none() && !matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
                status(401, "Unauthorized", "Unauthorized")
            } else if req.method() != http::Method::GET {
                status(405, "MethodNotAllowed", "the stand-in is read-only")
            } else {
                let accept = req
                    .headers()
                    .get(http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let as_table = accept.contains("as=Table");
                let include = match url::form_urlencoded::parse(query.as_bytes())
                    .find(|(k, _)| k == "includeObject")
                    .map(|(_, v)| v.into_owned())
                    .as_deref()
                {
                    Some("None") => Include::None,
                    Some("Object") => Include::Object,
                    _ => Include::Metadata,
                };
                route(&path, as_table, include)
            };
        lock(&self.log).push(KubeRequest {
            method: req.method().as_str().to_owned(),
            path: req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            user,
            status: response.status().as_u16(),
            refused,
        });
        response
    }
}

/// The user of an AAD cluster's bearer token: a JWT whose audience is the AKS AAD server,
/// from `tenant`, unexpired (signatures are not checked, see [`crate::jwt`]). The error says
/// why it is refused (an ARM token, say).
fn aad_user(token: &str, tenant: &str) -> Result<String, String> {
    let claims = crate::jwt::decode(token)?;
    if !crate::jwt::is_aks_audience(&claims.aud) {
        return Err(format!(
            "audience {} is not the AKS AAD server {}",
            claims.aud,
            crate::jwt::AKS_SERVER_APP_ID
        ));
    }
    if !claims.tid.eq_ignore_ascii_case(tenant) {
        return Err(format!(
            "tenant {} is not the cluster's {tenant}",
            claims.tid
        ));
    }
    if !claims.is_unexpired() {
        return Err("the token has expired".into());
    }
    Ok(claims.upn.unwrap_or(claims.oid))
}

fn route(path: &str, as_table: bool, include: Include) -> Resp {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let body = match segs.as_slice() {
        ["healthz"] | ["livez"] | ["readyz"] => {
            return respond::with_body(200, "text/plain", Bytes::from_static(b"ok"));
        }
        ["version"] => json!({
            "major": "1", "minor": "33", "gitVersion": KUBERNETES_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": CREATED, "goVersion": "go1.24.4", "compiler": "gc", "platform": "linux/amd64"
        }),
        ["api"] => json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:443" }]
        }),
        ["apis"] => json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": [] }),
        ["api", "v1"] => json!({
            "kind": "APIResourceList", "groupVersion": "v1",
            "resources": [
                resource("pods", "Pod", true, &["po"]),
                resource("nodes", "Node", false, &["no"]),
                resource("namespaces", "Namespace", false, &["ns"]),
            ]
        }),
        ["api", "v1", "pods"] => pods_response(None, as_table, include),
        ["api", "v1", "namespaces", ns, "pods"] => pods_response(Some(ns), as_table, include),
        ["api", "v1", "namespaces", ns, "pods", name] => {
            match PODS.iter().find(|p| p.namespace == *ns && p.name == *name) {
                Some(p) => pod_object(p),
                None => {
                    return status(404, "NotFound", &format!("pods \"{name}\" not found"));
                }
            }
        }
        ["api", "v1", "nodes"] => nodes_response(as_table, include),
        ["api", "v1", "nodes", name] => match NODES.iter().find(|(n, _)| n == name) {
            Some((n, ip)) => node_object(n, ip),
            None => return status(404, "NotFound", &format!("nodes \"{name}\" not found")),
        },
        ["api", "v1", "namespaces"] => {
            let items: Vec<Value> = ["default", "kube-system"]
                .iter()
                .map(|n| {
                    json!({
                        "apiVersion": "v1", "kind": "Namespace", "metadata": metadata(n, None),
                        "status": { "phase": "Active" }
                    })
                })
                .collect();
            json!({
                "kind": "NamespaceList", "apiVersion": "v1", "metadata": { "resourceVersion": "1" },
                "items": items
            })
        }
        _ => {
            return status(
                404,
                "NotFound",
                "the server could not find the requested resource",
            );
        }
    };
    respond::json(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_one_cell_per_column() {
        for body in [
            pods_response(None, true, Include::Metadata),
            nodes_response(true, Include::Object),
        ] {
            let columns = body["columnDefinitions"].as_array().unwrap().len();
            for row in body["rows"].as_array().unwrap() {
                assert_eq!(row["cells"].as_array().unwrap().len(), columns);
                assert!(row["object"]["metadata"]["name"].is_string());
            }
        }
        let list = pods_response(Some("kube-system"), false, Include::None);
        assert_eq!(list["kind"], "PodList");
        assert_eq!(list["items"].as_array().unwrap().len(), 3);
    }
}
