//! A built-in `kubectl get pods` for the demo when kubectl is not installed: reads the
//! kubeconfig `bastion aks` wrote (through [`Kubeconfig::api_server_access`]) and asks the API
//! server through the tunnel over HTTPS, verifying its certificate against the kubeconfig's CA
//! and `tls-server-name`, with the user's token or client certificate.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bastion_arm::{ClientCertificate, Kubeconfig};
use bastion_core::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rustls::SignatureScheme;
use rustls::client::ResolvesClientCert;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use rustls::sign::CertifiedKey;
use serde_json::Value as Json;
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
    tls: Arc<rustls::ClientConfig>,
    token: Option<Secret>,
}

impl Target {
    /// The current context's server, trust and credentials, from the library's reading of the
    /// kubeconfig; the TLS configuration from bastion-core's, plus the client certificate.
    fn from_kubeconfig(path: &Path) -> CliResult<Self> {
        let access = Kubeconfig::read(path)?.api_server_access()?;
        let host = access
            .server
            .host_str()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = access.server.port_or_known_default().unwrap_or(443);
        let ca_pem = access.certificate_authority.ok_or_else(|| {
            CliError::new(
                Code::Other,
                "the kubeconfig has no certificate-authority-data",
            )
        })?;
        let credentials = access.credentials;
        if credentials.token.is_none() && credentials.client_certificate.is_none() {
            return Err(CliError::new(
                Code::Other,
                "the built-in client supports bearer-token and client-certificate users only; install kubectl",
            ));
        }
        let mut tls = bastion_core::tls::client_config(Some(&ca_pem))
            .map_err(|e| CliError::new(Code::Other, e.to_string()))?;
        if let Some(cert) = &credentials.client_certificate {
            tls.client_auth_cert_resolver = Arc::new(ClientCert::new(cert)?);
        }
        Ok(Self {
            host,
            port,
            server_name: access.tls_server_name,
            tls: Arc::new(tls),
            token: credentials.token,
        })
    }

    async fn get(&self, path: &str) -> CliResult<Bytes> {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
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
        let mut req = http::Request::get(path)
            .header(http::header::HOST, self.server_name.as_str())
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = &self.token {
            req = req.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
        let req = req
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

/// Presents the kubeconfig user's client certificate whenever the API server asks for one.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ClientCert {
    fn new(cert: &ClientCertificate) -> CliResult<Self> {
        let unusable = |e: String| {
            CliError::new(
                Code::Other,
                format!("the kubeconfig's client certificate is unusable: {e}"),
            )
        };
        let chain = bastion_core::tls::parse_pem_certs(&cert.certificate_pem)
            .map_err(|e| unusable(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(cert.key_pem.expose().as_bytes())
            .map_err(|e| unusable(e.to_string()))?;
        let key = CertifiedKey::from_der(chain, key, &bastion_core::tls::crypto_provider())
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Self(Arc::new(key)))
    }
}

impl ResolvesClientCert for ClientCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    fn kubeconfig(user: &str) -> tempfile::NamedTempFile {
        let ca = base64::engine::general_purpose::STANDARD
            .encode(bastion_emulator::TestCa::new().unwrap().ca_pem());
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{{name: k, cluster: {{server: 'https://localhost:6443/', tls-server-name: api.test, certificate-authority-data: {ca}}}}}]\n\
             contexts: [{{name: c, context: {{cluster: k, user: u}}}}]\n\
             users: [{{name: u, user: {user}}}]\n"
        );
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    #[test]
    fn token_and_client_certificate_users_are_read_from_the_kubeconfig() {
        let file = kubeconfig("{token: t0k3n}");
        let target = Target::from_kubeconfig(file.path()).unwrap();
        assert_eq!((target.host.as_str(), target.port), ("localhost", 6443));
        assert_eq!(target.server_name, "api.test");
        assert_eq!(target.token.as_ref().map(Secret::expose), Some("t0k3n"));
        assert!(!target.tls.client_auth_cert_resolver.has_certs());

        let ca = bastion_emulator::TestCa::new().unwrap();
        let (cert, key) = ca.issue(&["cluster-admin.test".to_owned()]).unwrap();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let file = kubeconfig(&format!(
            "{{client-certificate-data: {}, client-key-data: {}}}",
            b64(&cert),
            b64(&key)
        ));
        let target = Target::from_kubeconfig(file.path()).unwrap();
        assert!(target.token.is_none());
        assert!(target.tls.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn unusable_users_are_refused_up_front() {
        let file = kubeconfig("{exec: {command: kubelogin}}");
        let err = Target::from_kubeconfig(file.path()).err().unwrap();
        assert!(err.to_string().contains("install kubectl"), "{err}");
        let file = kubeconfig("{client-certificate-data: Q0VSVA==, client-key-data: S0VZ}");
        let err = Target::from_kubeconfig(file.path()).err().unwrap();
        assert!(
            err.to_string().contains("client certificate is unusable"),
            "{err}"
        );
    }
}
