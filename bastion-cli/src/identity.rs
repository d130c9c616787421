//! The HTTP client for managed identity. Managed identity endpoints are plain http on the local
//! machine (IMDS at 169.254.169.254; App Service, Azure Arc and Cloud Shell on loopback), which
//! the shared https-only transport refuses; everything else still goes through it.

use std::net::IpAddr;
use std::time::Duration;

use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode};
use bastion_arm::transport::HyperTransport;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Every identity request (connect, send, body) must finish within this.
const TIMEOUT: Duration = Duration::from_secs(30);

/// https through [`HyperTransport`]; plain http only to local identity endpoints.
#[derive(Debug, Clone)]
pub struct IdentityTransport {
    https: HyperTransport,
    plain: Client<HttpConnector, Full<Bytes>>,
}

impl IdentityTransport {
    /// Wraps the shared transport.
    pub fn new(https: HyperTransport) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(10)));
        connector.set_nodelay(true);
        Self {
            https,
            plain: Client::builder(TokioExecutor::new()).build(connector),
        }
    }
}

/// IMDS (link-local) and loopback: where managed identity endpoints live. Tokens never travel
/// in clear text anywhere else.
fn is_local_identity_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn error(kind: ErrorKind, message: impl Into<String>) -> azure_core::Error {
    azure_core::Error::with_message(kind, message.into())
}

#[async_trait::async_trait]
impl HttpClient for IdentityTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let url = request.url();
        if url.scheme() != "http" {
            return self.https.execute_request(request).await;
        }
        if !is_local_identity_host(url) {
            return Err(error(
                ErrorKind::Other,
                format!(
                    "refusing plain http to {}: only local managed identity endpoints may use it",
                    url.host_str().unwrap_or("?")
                ),
            ));
        }
        let body = match request.body() {
            Body::Bytes(b) => b.clone(),
            Body::SeekableStream(_) => {
                return Err(error(
                    ErrorKind::DataConversion,
                    "streaming request bodies are not supported",
                ));
            }
        };
        let mut builder = http::Request::builder()
            .method(request.method().as_str())
            .uri(url.as_str());
        for (name, value) in request.headers().iter() {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let req = builder
            .body(Full::new(body))
            .map_err(|e| error(ErrorKind::DataConversion, e.to_string()))?;
        let exchange = async {
            let resp = self
                .plain
                .request(req)
                .await
                .map_err(|e| error(ErrorKind::Connection, format!("{url}: {e}")))?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| error(ErrorKind::Io, format!("{url}: {e}")))?
                .to_bytes();
            Ok::<_, azure_core::Error>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(TIMEOUT, exchange)
            .await
            .map_err(|_| {
                error(
                    ErrorKind::Io,
                    format!("{url}: no answer within {TIMEOUT:?}"),
                )
            })??;
        let mut headers = Headers::new();
        for (name, value) in &parts.headers {
            if let Ok(value) = value.to_str() {
                headers.insert(
                    HeaderName::from(name.as_str().to_owned()),
                    HeaderValue::from(value.to_owned()),
                );
            }
        }
        Ok(AsyncRawResponse::from_bytes(
            StatusCode::from(parts.status.as_u16()),
            headers,
            body,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_identity_hosts_get_plain_http() {
        let local = |u: &str| is_local_identity_host(&url::Url::parse(u).unwrap());
        assert!(local(
            "http://169.254.169.254/metadata/identity/oauth2/token"
        ));
        assert!(local("http://127.0.0.1:41741/msi/token"));
        assert!(local(
            "http://localhost:40342/metadata/identity/oauth2/token"
        ));
        assert!(!local("http://login.microsoftonline.com/"));
        assert!(!local("http://10.0.0.4/"));
    }
}
