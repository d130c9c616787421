//! HTTPS proxies: connections to the Bastion (POST, DELETE and the WebSocket alike) go through
//! an HTTP `CONNECT` tunnel when `HTTPS_PROXY`/`ALL_PROXY` say so and `NO_PROXY` does not
//! exempt the host, as the reference client does. Hosts given an explicit address override
//! (`--resolve`) always connect directly. Plain http (managed identity endpoints only) never
//! goes through a proxy, and only to an address of this machine's identity endpoints: the
//! address it dials is checked, not the name.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::read_ahead::ReadAhead;
use crate::resolve::{self, OverrideResolver, Overrides, PlainHttpRefused, is_local_identity_addr};

/// Where HTTPS connections go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxySetting {
    /// `HTTPS_PROXY`/`https_proxy`, `ALL_PROXY`, `NO_PROXY` from the environment (the default).
    #[default]
    FromEnv,
    /// Always connect directly.
    Direct,
    /// This proxy (`http://[user:pass@]host:port`), with `no_proxy` exemptions (comma-separated).
    Url {
        /// The proxy URL.
        url: String,
        /// Hosts, domains and CIDRs to reach directly, as in `NO_PROXY`.
        no_proxy: String,
    },
}

impl ProxySetting {
    fn matcher(&self) -> Option<Matcher> {
        match self {
            ProxySetting::FromEnv => Some(Matcher::from_env()),
            ProxySetting::Direct => None,
            ProxySetting::Url { url, no_proxy } => Some(
                Matcher::builder()
                    .https(url.as_str())
                    .no(no_proxy.as_str())
                    .build(),
            ),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A TCP connector that tunnels through a proxy when the proxy rules say so.
#[derive(Clone)]
pub(crate) struct ProxyConnector {
    direct: HttpConnector<OverrideResolver>,
    matcher: Option<Arc<Matcher>>,
    overridden: Overrides,
}

impl ProxyConnector {
    pub(crate) fn new(
        direct: HttpConnector<OverrideResolver>,
        setting: &ProxySetting,
        overridden: Overrides,
    ) -> Self {
        Self {
            direct,
            matcher: setting.matcher().map(Arc::new),
            overridden,
        }
    }
}

impl Service<Uri> for ProxyConnector {
    type Response = TokioIo<ReadAhead<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let host = dst.host().unwrap_or_default().to_ascii_lowercase();
        // Plain http goes only to this machine's identity endpoints, never through a proxy, and
        // only once the address it would dial is known to be one.
        if dst.scheme_str() == Some("http") {
            return Box::pin(read_ahead(connect_plain_http(
                self.direct.clone(),
                Arc::clone(&self.overridden),
                host,
                dst.port_u16().unwrap_or(80),
            )));
        }
        let intercept = if self.overridden.contains_key(&host) {
            None
        } else {
            self.matcher.as_ref().and_then(|m| m.intercept(&dst))
        };
        match intercept {
            None => {
                let fut = self.direct.call(dst);
                Box::pin(read_ahead(async move { fut.await.map_err(Into::into) }))
            }
            Some(proxy) => {
                tracing::debug!(proxy = %redact(proxy.uri()), "connecting through the HTTPS proxy");
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(read_ahead(async move {
                    tunnel.call(dst).await.map_err(|e| -> BoxError {
                        format!("through the proxy {}: {e}", redact(proxy.uri())).into()
                    })
                }))
            }
        }
    }
}

/// The connection with a read-ahead buffer under TLS (docs/architecture.md#tls-read-ahead).
async fn read_ahead(
    connect: impl Future<Output = Result<TokioIo<TcpStream>, BoxError>>,
) -> Result<TokioIo<ReadAhead<TcpStream>>, BoxError> {
    Ok(TokioIo::new(ReadAhead::new(connect.await?.into_inner())))
}

/// A plain-http connection to `host:port`, only to an address that [`is_local_identity_addr`]
/// allows: the name is resolved here (overrides first), every other address is dropped, and
/// the allowed ones are dialled by address, so that what is checked is what is dialled. No
/// connection is attempted when none is allowed, and the socket's peer is checked again before
/// it is handed over (no byte has been written yet).
async fn connect_plain_http(
    mut direct: HttpConnector<OverrideResolver>,
    overrides: Overrides,
    host: String,
    port: u16,
) -> Result<TokioIo<TcpStream>, BoxError> {
    let resolved = resolve::lookup(&overrides, &host).await?;
    let allowed = resolve::plain_http_addrs(&host, resolved)?;
    let mut last = None;
    for ip in allowed {
        let uri: Uri = format!("http://{}/", SocketAddr::new(ip, port)).parse()?;
        std::future::poll_fn(|cx| direct.poll_ready(cx)).await?;
        match direct.call(uri).await {
            Ok(io) => {
                let peer = io.inner().peer_addr()?.ip();
                if !is_local_identity_addr(peer) {
                    return Err(PlainHttpRefused {
                        host,
                        addrs: vec![peer],
                    }
                    .into());
                }
                return Ok(io);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => e.into(),
        None => format!("{host} has no address").into(),
    })
}

/// The proxy URI without credentials, for messages.
fn redact(uri: &Uri) -> String {
    format!(
        "{}://{}",
        uri.scheme_str().unwrap_or("http"),
        uri.authority()
            .map(|a| a.as_str().rsplit('@').next().unwrap_or_default().to_owned())
            .unwrap_or_default()
    )
}
