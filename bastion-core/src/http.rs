//! HTTPS to the Bastion endpoint (and, through `bastion-arm`, to ARM): one keep-alive pool over
//! hyper + rustls, TCP_NODELAY and keepalive on every socket, connect and request timeouts,
//! bounded retries for 429/502/503/504 that honour `Retry-After`, and host-to-address overrides
//! (like curl `--resolve`) so a real-looking name can point at a local emulator.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use rand::RngExt;

use crate::error::Operation;
use crate::protocol::{self, Endpoint, TokenResponse};
use crate::proxy::ProxyConnector;
pub use crate::proxy::ProxySetting;
use crate::{Error, Result, Secret};

/// The largest response body read into memory.
const MAX_BODY: usize = 4 << 20;

/// Settings of an [`HttpsClient`].
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// Extra trusted CA certificates (PEM), for private CAs, TLS-inspecting proxies and the emulator.
    pub extra_root_ca_pem: Option<Vec<u8>>,
    /// Host-to-address overrides: connections to `host` go to this address (the port is kept).
    pub resolve: Vec<(String, IpAddr)>,
    /// TCP + TLS connect limit.
    pub connect_timeout: Duration,
    /// Whole-request limit (send, status, body).
    pub request_timeout: Duration,
    /// How many times a 429/502/503/504 or a failed connection is retried.
    pub max_retries: u32,
    /// The longest `Retry-After` honoured; longer waits are cut to this.
    pub max_retry_after: Duration,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// TCP keepalive idle time on every socket.
    pub tcp_keepalive: Option<Duration>,
    /// Whether to go through an HTTPS proxy (default: as `HTTPS_PROXY`/`NO_PROXY` say).
    pub proxy: ProxySetting,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        Self {
            extra_root_ca_pem: None,
            resolve: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_retries: 2,
            max_retry_after: Duration::from_secs(30),
            user_agent: format!("bastion-cli/{}", env!("CARGO_PKG_VERSION")),
            tcp_keepalive: Some(Duration::from_secs(30)),
            proxy: ProxySetting::FromEnv,
        }
    }
}

type Connector = HttpsConnector<ProxyConnector>;

/// A pooled HTTPS/1.1 client. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct HttpsClient {
    inner: Client<Connector, Full<Bytes>>,
    config: Arc<HttpsConfig>,
}

impl std::fmt::Debug for HttpsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsClient")
            .field("resolve", &self.config.resolve)
            .finish_non_exhaustive()
    }
}

impl HttpsClient {
    /// Builds a client. Fails only on an unusable CA bundle.
    pub fn new(config: HttpsConfig) -> Result<Self> {
        let tls = crate::tls::client_config(config.extra_root_ca_pem.as_deref())?;
        let overrides: Arc<HashMap<String, IpAddr>> = Arc::new(
            config
                .resolve
                .iter()
                .map(|(h, ip)| (h.to_ascii_lowercase(), *ip))
                .collect(),
        );
        let resolver = OverrideResolver {
            overrides: Arc::clone(&overrides),
        };
        let mut http = HttpConnector::new_with_resolver(resolver);
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(config.tcp_keepalive);
        http.set_keepalive_interval(Some(Duration::from_secs(10)));
        http.set_keepalive_retries(Some(3));
        // Built from the parts so the ALPN list (http/1.1 only) of our TLS config is kept.
        let tcp = ProxyConnector::new(http, &config.proxy, overrides);
        // Plain http is refused in `prepare` except to this machine's identity endpoints.
        let https = HttpsConnector::from((tcp, Arc::new(tls)));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .retry_canceled_requests(true)
            .build(https);
        Ok(Self {
            inner,
            config: Arc::new(config),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &HttpsConfig {
        &self.config
    }

    /// Sends one request (no retries) and reads the whole response body, within the request
    /// timeout. Non-2xx statuses are returned as responses, not errors.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Bytes>> {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let req = self.prepare(req)?;
        let timeout = self.config.request_timeout;
        let fut = async {
            let resp = self
                .inner
                .request(req)
                .await
                .map_err(|e| connect_error(&authority, &e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_BODY)
                .collect()
                .await
                .map_err(|e| Error::Transport {
                    endpoint: authority.clone(),
                    cause: format!("reading the response failed: {e}"),
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| Error::Timeout {
                what: "HTTPS request",
                after: timeout,
            })?
    }

    /// Sends a request, retrying 429/502/503/504 and failures to connect (never a request that
    /// may have reached the server) up to `max_retries` times, with a jittered backoff or the
    /// server's `Retry-After`.
    pub async fn send_with_retries(&self, req: Request<Bytes>) -> Result<Response<Bytes>> {
        let mut attempt = 0;
        loop {
            let result = self.send(clone_request(&req)).await;
            let wait = match &result {
                Ok(resp) if is_retryable_status(resp.status()) => retry_after(resp)
                    .map(|d| d.min(self.config.max_retry_after))
                    .unwrap_or_else(jitter),
                Err(Error::Connect { .. }) => jitter(),
                _ => return result,
            };
            if attempt >= self.config.max_retries {
                return result;
            }
            attempt += 1;
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends a request whose response is expected to be a `101` upgrade, returning the response
    /// head and the upgraded connection. Used by [`crate::websocket`].
    pub(crate) async fn upgrade(
        &self,
        req: Request<Bytes>,
    ) -> Result<(Response<Bytes>, Option<hyper::upgrade::Upgraded>)> {
        let authority = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let req = self.prepare(req)?;
        let mut resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| connect_error(&authority, &e))?;
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            let upgraded = hyper::upgrade::on(&mut resp).await.map_err(|e| {
                Error::Handshake(format!("the 101 response could not be upgraded: {e}"))
            })?;
            let (parts, _) = resp.into_parts();
            return Ok((Response::from_parts(parts, Bytes::new()), Some(upgraded)));
        }
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok((Response::from_parts(parts, body), None))
    }

    fn prepare(&self, req: Request<Bytes>) -> Result<Request<Full<Bytes>>> {
        let uri = req.uri();
        match uri.scheme_str() {
            Some("https") => {}
            Some("http") if uri.host().is_some_and(is_local_identity_host) => {}
            _ => {
                return Err(Error::Config(format!(
                    "refusing {}://{}: only https is allowed (plain http only to this machine's identity endpoints: loopback or 169.254.x.x)",
                    uri.scheme_str().unwrap_or(""),
                    uri.authority().map(|a| a.as_str()).unwrap_or("")
                )));
            }
        }
        let (mut parts, body) = req.into_parts();
        if !parts.headers.contains_key(header::USER_AGENT)
            && let Ok(v) = HeaderValue::from_str(&self.config.user_agent)
        {
            parts.headers.insert(header::USER_AGENT, v);
        }
        Ok(Request::from_parts(parts, Full::new(body)))
    }

    /// `POST /api/tokens`: exchanges the ARM token for a Bastion session. Success is status 200
    /// exactly; anything else is an [`Error::Http`] carrying the service's message.
    pub async fn post_token(&self, endpoint: &Endpoint, form: &Secret) -> Result<TokenResponse> {
        let req = post_request(
            endpoint,
            protocol::TOKENS_PATH,
            "application/x-www-form-urlencoded",
            form,
        )?;
        let resp = self.send_with_retries(req).await?;
        if resp.status() != StatusCode::OK {
            return Err(http_error(Operation::TokenExchange, &resp));
        }
        match protocol::parse_token_response(resp.body()) {
            Ok(session) => Ok(session),
            Err(e) => {
                // A session was minted even though the reply is unusable: do not leak it.
                if let Some((auth_token, node_id)) = protocol::minted_session(resp.body()) {
                    let _ = self.delete_token(endpoint, &auth_token, &node_id).await;
                }
                Err(e.into())
            }
        }
    }

    /// `DELETE /api/tokens/{authToken}` with `X-Node-Id`. Returns `true` when deleted and `false`
    /// when the service says it was already gone (404).
    pub async fn delete_token(
        &self,
        endpoint: &Endpoint,
        auth_token: &Secret,
        node_id: &str,
    ) -> Result<bool> {
        let path = protocol::delete_path(auth_token);
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(format!("https://{}{}", endpoint.authority(), path.expose()))
            .header(protocol::NODE_ID_HEADER, node_id)
            .header(header::CONTENT_LENGTH, "0")
            .body(Bytes::new())
            .map_err(|e| Error::Config(format!("cannot build the delete request: {e}")))?;
        let resp = self.send(req).await?;
        match resp.status().as_u16() {
            200 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(http_error(Operation::DeleteSession, &resp)),
        }
    }

    /// The Developer SKU data-pod lookup, `POST /api/connection`.
    pub async fn post_connection(&self, endpoint: &Endpoint, body: &Secret) -> Result<Endpoint> {
        let req = post_request(
            endpoint,
            protocol::CONNECTION_PATH,
            "application/json",
            body,
        )?;
        let resp = self.send_with_retries(req).await?;
        if !resp.status().is_success() {
            return Err(http_error(Operation::DataPodLookup, &resp));
        }
        Ok(protocol::parse_connection_reply(resp.body())?)
    }
}

/// Loopback (IPv4, IPv6, `localhost`) and IPv4 link-local (IMDS at 169.254.169.254): where
/// managed identity endpoints listen over plain http. Tokens travel in clear text nowhere else.
fn is_local_identity_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback() || ip.is_link_local(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// A POST of `body` to `path` on the endpoint.
fn post_request(
    endpoint: &Endpoint,
    path: &str,
    content_type: &str,
    body: &Secret,
) -> Result<Request<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("https://{}{path}", endpoint.authority()))
        .header(header::ACCEPT, "*/*")
        .header(header::CONTENT_TYPE, content_type)
        .body(Bytes::copy_from_slice(body.expose().as_bytes()))
        .map_err(|e| Error::Config(format!("cannot build the request to {path}: {e}")))
}

/// An [`Error::Http`] from a non-success response: status, reason and the service's message.
pub fn http_error(operation: Operation, resp: &Response<Bytes>) -> Error {
    Error::Http {
        operation,
        status: resp.status().as_u16(),
        reason: resp.status().canonical_reason().unwrap_or("").to_owned(),
        message: protocol::error_message(resp.body()),
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// The `Retry-After` delay in seconds, if the header holds a number.
fn retry_after(resp: &Response<Bytes>) -> Option<Duration> {
    let v = resp.headers().get(header::RETRY_AFTER)?.to_str().ok()?;
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn jitter() -> Duration {
    Duration::from_millis(rand::rng().random_range(250..=1000))
}

fn clone_request(req: &Request<Bytes>) -> Request<Bytes> {
    let mut out = Request::new(req.body().clone());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.version_mut() = req.version();
    *out.headers_mut() = req.headers().clone();
    out
}

fn connect_error(authority: &str, err: &hyper_util::client::legacy::Error) -> Error {
    use std::error::Error as _;
    let mut cause = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    if err.is_connect() {
        Error::Connect {
            endpoint: authority.to_owned(),
            cause,
        }
    } else {
        Error::Transport {
            endpoint: authority.to_owned(),
            cause,
        }
    }
}

/// Resolves names through the override table first, then the system resolver.
#[derive(Clone)]
pub(crate) struct OverrideResolver {
    overrides: Arc<HashMap<String, IpAddr>>,
}

impl tower_service::Service<Name> for OverrideResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_ascii_lowercase();
        if let Some(ip) = self.overrides.get(&host) {
            let addrs = vec![SocketAddr::new(*ip, 0)];
            return Box::pin(async move { Ok(addrs.into_iter()) });
        }
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_local_identity_endpoints() {
        for host in ["127.0.0.1", "169.254.169.254", "[::1]", "localhost"] {
            assert!(is_local_identity_host(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "example.com",
            "management.azure.com",
            "[fd00::1]",
        ] {
            assert!(!is_local_identity_host(host), "{host}");
        }
    }

    #[tokio::test]
    async fn plain_http_elsewhere_is_refused_before_connecting() {
        let client = HttpsClient::new(HttpsConfig::default()).unwrap();
        let req = Request::get("http://management.azure.com/subscriptions")
            .body(Bytes::new())
            .unwrap();
        let err = client.send(req).await.unwrap_err();
        assert!(err.to_string().contains("only https is allowed"), "{err}");
    }
}
