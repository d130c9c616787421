//! A built-in `kubectl get pods` for the demo when kubectl is not installed: reads the
//! kubeconfig `bastion aks` wrote and asks the API server through the tunnel over HTTPS,
//! verifying its certificate against the kubeconfig's CA and `tls-server-name`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value as Json;
use serde_yaml_ng::Value;
use tokio::net::TcpStream;

use crate::exit::{CliError, CliResult, Code};

/// Whole-request limit.
const TIMEOUT: Duration = Duration::from_secs(20);

/// One row of `kubectl get pods`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRow {
    /// Pod name.
    pub name: String,
    /// `ready/total` containers.
    pub ready: String,
    /// `status.phase`.
    pub status: String,
    /// Container restarts.
    pub restarts: u64,
}

/// The pods of `namespace`, read through the kubeconfig's current context.
pub async fn get_pods(kubeconfig: &Path, namespace: &str) -> CliResult<Vec<PodRow>> {
    let target = Target::from_kubeconfig(kubeconfig)?;
    let body = tokio::time::timeout(
        TIMEOUT,
        target.get(&format!("/api/v1/namespaces/{namespace}/pods")),
    )
    .await
    .map_err(|_| fail("the Kubernetes API did not answer in time"))??;
    let doc: Json = serde_json::from_slice(&body).map_err(|e| {
        fail(format!(
            "the Kubernetes API returned something that is not JSON: {e}"
        ))
    })?;
    Ok(doc["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(pod_row)
        .collect())
}

/// `kubectl get pods`-style text.
pub fn render(rows: &[PodRow]) -> String {
    if rows.is_empty() {
        return "No resources found.\n".to_owned();
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("{:<width$}   READY   STATUS    RESTARTS\n", "NAME");
    for r in rows {
        out.push_str(&format!(
            "{:<width$}   {:<7} {:<9} {}\n",
            r.name, r.ready, r.status, r.restarts
        ));
    }
    out
}

fn pod_row(item: &Json) -> PodRow {
    let statuses = item["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s["ready"].as_bool() == Some(true))
        .count();
    let total = item["spec"]["containers"]
        .as_array()
        .map_or(statuses.len(), Vec::len);
    PodRow {
        name: item["metadata"]["name"].as_str().unwrap_or("?").to_owned(),
        ready: format!("{ready}/{total}"),
        status: item["status"]["phase"]
            .as_str()
            .unwrap_or("Unknown")
            .to_owned(),
        restarts: statuses
            .iter()
            .filter_map(|s| s["restartCount"].as_u64())
            .sum(),
    }
}

fn fail(what: impl Into<String>) -> CliError {
    CliError::new(Code::Tunnel, what)
}

/// Where and how to reach the API server.
struct Target {
    host: String,
    port: u16,
    server_name: String,
    ca_pem: Vec<u8>,
    token: String,
}

impl Target {
    fn from_kubeconfig(path: &Path) -> CliResult<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::new(Code::Other, format!("cannot read {}: {e}", path.display()))
        })?;
        let doc: Value = serde_yaml_ng::from_str(&text)
            .map_err(|e| CliError::new(Code::Other, format!("invalid kubeconfig: {e}")))?;
        let named = |section: &str, name: &str| {
            doc.get(section)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .find(|e| e.get("name").and_then(Value::as_str) == Some(name))
                .cloned()
        };
        let bad = |what: &str| CliError::new(Code::Other, format!("the kubeconfig has no {what}"));
        let current = doc
            .get("current-context")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("current-context"))?;
        let context = named("contexts", current).ok_or_else(|| bad("current context"))?;
        let field = |v: &Value, path: &[&str]| {
            path.iter()
                .try_fold(v, |v, k| v.get(*k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let cluster_name =
            field(&context, &["context", "cluster"]).ok_or_else(|| bad("cluster"))?;
        let user_name = field(&context, &["context", "user"]).ok_or_else(|| bad("user"))?;
        let cluster = named("clusters", &cluster_name).ok_or_else(|| bad("cluster entry"))?;
        let user = named("users", &user_name).ok_or_else(|| bad("user entry"))?;
        let server = field(&cluster, &["cluster", "server"]).ok_or_else(|| bad("server"))?;
        let url = url::Url::parse(&server).map_err(|_| bad("valid server URL"))?;
        let host = url.host_str().ok_or_else(|| bad("server host"))?.to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let server_name =
            field(&cluster, &["cluster", "tls-server-name"]).unwrap_or_else(|| host.clone());
        let ca_pem = field(&cluster, &["cluster", "certificate-authority-data"])
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .ok_or_else(|| bad("certificate-authority-data"))?;
        let token = field(&user, &["user", "token"]).ok_or_else(|| {
            CliError::new(
                Code::Other,
                "the built-in client supports bearer-token users only; install kubectl",
            )
        })?;
        Ok(Self {
            host,
            port,
            server_name,
            ca_pem,
            token,
        })
    }

    async fn get(&self, path: &str) -> CliResult<Bytes> {
        let tls = bastion_core::tls::client_config(Some(&self.ca_pem))
            .map_err(|e| CliError::new(Code::Other, e.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                fail(format!(
                    "cannot connect to {}:{}: {e}",
                    self.host, self.port
                ))
            })?;
        let name = rustls::pki_types::ServerName::try_from(self.server_name.clone())
            .map_err(|_| fail(format!("invalid tls-server-name {}", self.server_name)))?;
        let stream = connector.connect(name, tcp).await.map_err(|e| {
            fail(format!(
                "TLS with the API server ({}) failed: {e}",
                self.server_name
            ))
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail(format!("HTTP with the API server failed: {e}")))?;
        let driver = tokio::spawn(conn);
        let req = http::Request::get(path)
            .header(http::header::HOST, self.server_name.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| CliError::new(Code::Other, e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| fail(format!("the API server request failed: {e}")))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(format!("reading the API server's answer failed: {e}")))?
            .to_bytes();
        driver.abort();
        if !status.is_success() {
            return Err(fail(format!(
                "the API server answered HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            )));
        }
        Ok(body)
    }
}
