//! The HTTPS transport: one keep-alive pool over hyper + rustls, TCP_NODELAY and keepalive on
//! every socket, connect and request timeouts, an HTTPS proxy when the environment names one,
//! host-to-address overrides, and bounded retries for 429/502/503/504 that honour
//! `Retry-After`. It knows nothing of the Bastion API (see `api.rs`); bastion-arm sends its ARM
//! requests through it too.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::Operation;
use crate::protocol::{self, Endpoint};
use crate::proxy::{ProxyConnector, ProxySetting};
use crate::resolve::{self, OverrideResolver};
use crate::retry::RetryPolicy;
use crate::{Error, Result};

/// The largest response body read into memory.
const MAX_BODY: usize = 4 << 20;
/// How long an idle keep-alive connection stays in the pool.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How many idle keep-alive connections the pool keeps per host.
const POOL_MAX_IDLE: usize = 8;

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
    /// When [`HttpsClient::send_with_retries`] retries (failures to connect, and the statuses
    /// the policy names).
    pub retry: RetryPolicy,
    /// The application using the library, appended to the `User-Agent` after
    /// `bastion-core/{version}` (for example `my-tool/1.2`).
    pub application: Option<String>,
    /// TCP keepalive idle time on every socket.
    pub tcp_keepalive: Option<Duration>,
    /// Whether to go through an HTTPS proxy (default: as `HTTPS_PROXY`/`NO_PROXY` say).
    pub proxy: ProxySetting,
}

impl HttpsConfig {
    /// The `User-Agent` header: `bastion-core/{version}`, then the application when set.
    pub fn user_agent(&self) -> String {
        let library = concat!("bastion-core/", env!("CARGO_PKG_VERSION"));
        match self.application.as_deref().map(str::trim) {
            Some(app) if !app.is_empty() => format!("{library} {app}"),
            _ => library.to_owned(),
        }
    }
}

impl Default for HttpsConfig {
    fn default() -> Self {
        Self {
            extra_root_ca_pem: None,
            resolve: Vec::new(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            application: None,
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
    connector: Connector,
    config: Arc<HttpsConfig>,
    user_agent: Option<HeaderValue>,
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
        Self::with_pool(config, POOL_IDLE_TIMEOUT, POOL_MAX_IDLE)
    }

    /// [`HttpsClient::new`] with the pool's idle timeout and per-host cap of idle connections.
    fn with_pool(config: HttpsConfig, idle_timeout: Duration, max_idle: usize) -> Result<Self> {
        let tls = crate::tls::client_config(config.extra_root_ca_pem.as_deref())?;
        let overrides = resolve::overrides(&config.resolve);
        let mut http =
            HttpConnector::new_with_resolver(OverrideResolver::new(Arc::clone(&overrides)));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_keepalive(config.tcp_keepalive);
        http.set_keepalive_interval(Some(Duration::from_secs(10)));
        http.set_keepalive_retries(Some(3));
        // Built from the parts so the ALPN list (http/1.1 only) of our TLS config is kept.
        let tcp = ProxyConnector::new(http, &config.proxy, overrides);
        // Plain http is refused in `prepare` except to this machine's identity endpoints, and
        // again in the connector unless the address it dials is one of them.
        let https = HttpsConnector::from((tcp, Arc::new(tls)));
        // Idle keep-alive connections are closed after POOL_IDLE_TIMEOUT by the pool's timer
        // (without one, hyper-util checks the timeout only when it hands a connection out, so a
        // burst's connections stayed open for good), and at most POOL_MAX_IDLE are kept per
        // host: a burst of closing connections (16 DELETEs at a time) leaves a few warm
        // connections behind, not one per concurrent request (docs/architecture.md#memory).
        let inner = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle_timeout)
            .pool_max_idle_per_host(max_idle)
            .retry_canceled_requests(true)
            .build(https.clone());
        Ok(Self {
            inner,
            connector: https,
            user_agent: HeaderValue::from_str(&config.user_agent()).ok(),
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
        let authority = authority_of(&req);
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

    /// Sends a request, retrying the statuses the [`RetryPolicy`] names and failures to connect
    /// (never a request that may have reached the server otherwise), with the policy's backoff
    /// or the server's `Retry-After`.
    pub async fn send_with_retries(&self, req: Request<Bytes>) -> Result<Response<Bytes>> {
        let policy = &self.config.retry;
        let started = tokio::time::Instant::now();
        let mut attempt = 0;
        loop {
            let result = self.send(clone_request(&req)).await;
            let retry_after = match &result {
                Ok(resp) if policy.retries_status(resp.status().as_u16()) => retry_after(resp),
                Err(Error::Connect { .. }) => None,
                _ => return result,
            };
            attempt += 1;
            if !policy.allows(attempt, started.elapsed()) {
                return result;
            }
            let wait = policy.delay(attempt, retry_after);
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying request"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Sends a request whose response is expected to be a `101` upgrade, returning the response
    /// head and the upgraded connection (the WebSocket handshake in `websocket.rs`). It goes on
    /// a pooled connection, which may be one that carried an earlier request.
    pub(crate) async fn upgrade(&self, req: Request<Bytes>) -> Result<Upgrade> {
        let authority = authority_of(&req);
        let req = self.prepare(req)?;
        let resp = self
            .inner
            .request(req)
            .await
            .map_err(|e| connect_error(&authority, &e))?;
        finish_upgrade(resp).await
    }

    /// Opens a new TLS connection to `endpoint` (through the proxy when one applies) that has
    /// carried no request yet, for [`HttpsClient::upgrade_on`].
    pub(crate) async fn open_connection(&self, endpoint: &Endpoint) -> Result<OpenConnection> {
        let authority = endpoint.authority();
        let fail = |cause: String| Error::Connect {
            endpoint: authority.clone(),
            cause,
        };
        let uri: http::Uri = format!("https://{authority}/")
            .parse()
            .map_err(|e: http::uri::InvalidUri| fail(e.to_string()))?;
        let mut connector = self.connector.clone();
        let open = async {
            std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx))
                .await?;
            tower_service::Service::call(&mut connector, uri).await
        };
        let limit = self.config.connect_timeout;
        let io = tokio::time::timeout(limit, open)
            .await
            .map_err(|_| fail(format!("no TCP and TLS connection within {limit:?}")))?
            .map_err(|e| fail(flatten(&*e)))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| fail(flatten(&e)))?;
        // The connection task ends when the sender is dropped or the connection closes; an
        // upgrade hands the socket over to the WebSocket.
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(OpenConnection {
            sender,
            opened: tokio::time::Instant::now(),
        })
    }

    /// Like [`HttpsClient::upgrade`], on a connection of [`HttpsClient::open_connection`]: no
    /// TCP or TLS handshake on the way.
    pub(crate) async fn upgrade_on(
        &self,
        mut conn: OpenConnection,
        req: Request<Bytes>,
    ) -> Result<Upgrade> {
        let authority = authority_of(&req);
        let (mut parts, body) = self.prepare(req)?.into_parts();
        // A connection of our own speaks origin-form with a Host header, as the pool would.
        if let Ok(host) = HeaderValue::from_str(&authority) {
            parts.headers.entry(header::HOST).or_insert(host);
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".to_owned());
        parts.uri = path
            .parse()
            .map_err(|e| Error::Config(format!("cannot build the request: {e}")))?;
        let transport = |e: hyper::Error| Error::Transport {
            endpoint: authority.clone(),
            cause: flatten(&e),
        };
        conn.sender.ready().await.map_err(transport)?;
        let resp = conn
            .sender
            .send_request(Request::from_parts(parts, body))
            .await
            .map_err(transport)?;
        finish_upgrade(resp).await
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
            && let Some(v) = &self.user_agent
        {
            parts.headers.insert(header::USER_AGENT, v.clone());
        }
        Ok(Request::from_parts(parts, Full::new(body)))
    }
}

/// A first filter on plain-http URLs, before any lookup: loopback and IPv4 link-local literals
/// (IMDS at 169.254.169.254) and `localhost`, where managed identity endpoints listen. It is not
/// what decides: a name can be sent anywhere (`--resolve localhost=192.0.2.2`), so the connector
/// checks the address it actually dials ([`resolve::is_local_identity_addr`]) and refuses any
/// other before connecting.
fn is_local_identity_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => resolve::is_local_identity_addr(ip),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// An [`Error::Http`] from a non-success response: status, reason and the service's message.
pub(crate) fn http_error(operation: Operation, resp: &Response<Bytes>) -> Error {
    Error::Http {
        operation,
        status: resp.status().as_u16(),
        reason: resp.status().canonical_reason().unwrap_or("").to_owned(),
        message: protocol::error_message(resp.body()),
    }
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

fn clone_request(req: &Request<Bytes>) -> Request<Bytes> {
    let mut out = Request::new(req.body().clone());
    *out.method_mut() = req.method().clone();
    *out.uri_mut() = req.uri().clone();
    *out.version_mut() = req.version();
    *out.headers_mut() = req.headers().clone();
    out
}

/// The answer to an upgrade request: the response head (with the body when it is not a `101`)
/// and, for a `101`, the upgraded connection.
pub(crate) type Upgrade = (Response<Bytes>, Option<hyper::upgrade::Upgraded>);

pub(crate) async fn finish_upgrade(mut resp: Response<hyper::body::Incoming>) -> Result<Upgrade> {
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

/// A TLS connection of our own that has carried no request yet.
pub(crate) struct OpenConnection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    opened: tokio::time::Instant,
}

impl OpenConnection {
    /// Whether it is still open and younger than `max_age`.
    pub(crate) fn is_fresh(&self, max_age: Duration) -> bool {
        !self.sender.is_closed() && self.opened.elapsed() < max_age
    }
}

/// An error and its sources, flattened to one line.
fn flatten(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    cause
}

/// `host:port` of a request, for error messages.
fn authority_of(req: &Request<Bytes>) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn connect_error(authority: &str, err: &hyper_util::client::legacy::Error) -> Error {
    // Plain http refused by the connector for the address it would dial: a configuration
    // problem, not a network one (and never retried).
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<resolve::PlainHttpRefused>() {
            return Error::Config(refused.to_string());
        }
        source = s.source();
    }
    let cause = flatten(err);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_library_then_the_application() {
        let mut config = HttpsConfig::default();
        assert!(config.user_agent().starts_with("bastion-core/"));
        config.application = Some("my-tool/1.2".into());
        assert!(config.user_agent().ends_with(" my-tool/1.2"));
    }

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

    /// A plain-http server on `listener` that records each request head and answers 200.
    fn http_server(
        listener: tokio::net::TcpListener,
    ) -> (
        Arc<std::sync::Mutex<Vec<String>>>,
        tokio::task::JoinHandle<()>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf).into_owned());
                    let _ = s
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                        )
                        .await;
                });
            }
        });
        (seen, task)
    }

    fn client_resolving(host: &str, ip: IpAddr) -> HttpsClient {
        HttpsClient::new(HttpsConfig {
            resolve: vec![(host.to_owned(), ip)],
            connect_timeout: Duration::from_secs(5),
            proxy: ProxySetting::Direct,
            ..HttpsConfig::default()
        })
        .unwrap()
    }

    fn identity_request(port: u16) -> Request<Bytes> {
        Request::get(format!(
            "http://localhost:{port}/msi/token?resource=https://management.azure.com/"
        ))
        .header("x-identity-header", "the-identity-secret")
        .body(Bytes::new())
        .unwrap()
    }

    #[tokio::test]
    async fn plain_http_to_a_local_identity_endpoint_goes_through() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen, task) = http_server(listener);
        let client = client_resolving("localhost", "127.0.0.1".parse().unwrap());
        let resp = client.send(identity_request(port)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(&resp.body()[..], b"ok");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        // Dialled by address, but the request still names the host it was meant for.
        assert!(
            seen[0]
                .to_ascii_lowercase()
                .contains(&format!("host: localhost:{port}")),
            "{}",
            seen[0]
        );
        task.abort();
    }

    /// `localhost` pointed at 0.0.0.0, which Linux connects to this machine: the name passes
    /// the name check, the address is not loopback, so nothing may be sent.
    #[tokio::test]
    async fn plain_http_to_a_name_overridden_to_a_non_loopback_address_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (seen, task) = http_server(listener);
        let client = client_resolving("localhost", "0.0.0.0".parse().unwrap());
        let err = client.send(identity_request(port)).await.unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("refusing plain http to localhost") && text.contains("0.0.0.0"),
            "{text}"
        );
        // Not retried as a network failure either.
        let err = client
            .send_with_retries(identity_request(port))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(seen.lock().unwrap().is_empty(), "a request was sent");
        task.abort();
    }

    /// The finding as reproduced: `--resolve localhost=<this machine's non-loopback address>`.
    /// A listener on that address must see no connection at all.
    #[tokio::test]
    async fn plain_http_to_this_machines_network_address_is_refused_before_connecting() {
        // The address of the interface the default route would use (connecting a UDP socket
        // sends nothing).
        let own = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|u| u.connect("192.0.2.1:9").map(|()| u))
            .and_then(|u| u.local_addr())
            .map(|a| a.ip());
        let Ok(own) = own.map_err(|e| eprintln!("no network address here ({e}); skipped")) else {
            return;
        };
        if own.is_loopback() || own.is_unspecified() {
            eprintln!("no non-loopback address here; skipped");
            return;
        }
        let listener = tokio::net::TcpListener::bind((own, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let client = client_resolving("localhost", own);
        let err = client.send(identity_request(port)).await.unwrap_err();
        let text = err.to_string();
        assert!(text.contains("refusing plain http"), "{text}");
        assert!(text.contains(&own.to_string()), "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "a connection was made"
        );
        task.abort();
    }

    /// A keep-alive plain-http server: answers every request with 200 and keeps the
    /// connection; reports each connection the client closes.
    fn keep_alive_server(
        listener: tokio::net::TcpListener,
    ) -> (
        Arc<std::sync::atomic::AtomicUsize>,
        tokio::sync::mpsc::UnboundedReceiver<()>,
        tokio::task::JoinHandle<()>,
    ) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let (closed_tx, closed) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let closed_tx = closed_tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                            if s.write_all(ok).await.is_err() {
                                break;
                            }
                        }
                    }
                    let _ = closed_tx.send(());
                });
            }
        });
        (accepted, closed, task)
    }

    fn pooled_client(idle_timeout: Duration, max_idle: usize) -> HttpsClient {
        HttpsClient::with_pool(
            HttpsConfig {
                resolve: vec![("localhost".to_owned(), "127.0.0.1".parse().unwrap())],
                proxy: ProxySetting::Direct,
                ..HttpsConfig::default()
            },
            idle_timeout,
            max_idle,
        )
        .unwrap()
    }

    /// Without the pool's timer, hyper-util checks the idle timeout only when it hands a
    /// connection out: an idle connection stayed open for good.
    #[tokio::test]
    async fn an_idle_pooled_connection_is_closed_after_the_idle_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, mut closed, task) = keep_alive_server(listener);
        let client = pooled_client(Duration::from_millis(200), 8);
        for _ in 0..2 {
            let resp = client.send(identity_request(port)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "kept alive"
        );
        // A hang guard, not a timing: the client keeps no reference that would close it.
        let closed_by_pool = tokio::time::timeout(Duration::from_secs(30), closed.recv()).await;
        assert!(
            closed_by_pool.is_ok(),
            "the idle connection was never closed"
        );
        drop(client);
        task.abort();
    }

    #[tokio::test]
    async fn the_pool_keeps_at_most_its_cap_of_idle_connections() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (accepted, mut closed, task) = keep_alive_server(listener);
        let client = pooled_client(Duration::from_secs(3600), 2);
        // Concurrent requests on an empty pool: one connection each.
        let sends = (0..6).map(|_| client.send(identity_request(port)));
        for resp in futures_util::future::join_all(sends).await {
            assert_eq!(resp.unwrap().status(), StatusCode::OK);
        }
        let opened = accepted.load(std::sync::atomic::Ordering::SeqCst);
        assert!(opened > 2, "only {opened} connections were opened");
        for _ in 0..opened - 2 {
            let one = tokio::time::timeout(Duration::from_secs(30), closed.recv()).await;
            assert!(one.is_ok(), "a connection beyond the cap stayed open");
        }
        // The two within the cap stay (an hour's idle timeout).
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            closed.try_recv().is_err(),
            "a connection within the cap was closed"
        );
        drop(client);
        task.abort();
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
