//! HTTPS proxies: connections to the Bastion (POST, DELETE and the WebSocket alike) go through
//! an HTTP `CONNECT` tunnel when `HTTPS_PROXY`/`ALL_PROXY` say so and `NO_PROXY` does not
//! exempt the host, as the reference client does. Hosts given an explicit address override
//! (`--resolve`) always connect directly.

use std::future::Future;
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

use crate::resolve::{OverrideResolver, Overrides};

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
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.direct.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let host = dst.host().unwrap_or_default().to_ascii_lowercase();
        // Plain http goes only to this machine's identity endpoints: never through a proxy.
        let intercept = if self.overridden.contains_key(&host) || dst.scheme_str() == Some("http") {
            None
        } else {
            self.matcher.as_ref().and_then(|m| m.intercept(&dst))
        };
        match intercept {
            None => {
                let fut = self.direct.call(dst);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
            Some(proxy) => {
                tracing::debug!(proxy = %redact(proxy.uri()), "connecting through the HTTPS proxy");
                let mut tunnel = Tunnel::new(proxy.uri().clone(), self.direct.clone());
                if let Some(auth) = proxy.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                Box::pin(async move {
                    tunnel.call(dst).await.map_err(|e| -> BoxError {
                        format!("through the proxy {}: {e}", redact(proxy.uri())).into()
                    })
                })
            }
        }
    }
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
