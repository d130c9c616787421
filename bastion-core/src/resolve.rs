//! Host-to-address overrides, like curl's `--resolve`: a real-looking name can point at a local
//! emulator or a private address. Names without an override go to the system resolver.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// The override table, keyed by lowercase host name.
pub(crate) type Overrides = Arc<HashMap<String, IpAddr>>;

/// Builds the table from `(host, address)` pairs.
pub(crate) fn overrides(pairs: &[(String, IpAddr)]) -> Overrides {
    Arc::new(
        pairs
            .iter()
            .map(|(h, ip)| (h.to_ascii_lowercase(), *ip))
            .collect(),
    )
}

/// Resolves names through the override table first, then the system resolver.
#[derive(Clone)]
pub(crate) struct OverrideResolver {
    overrides: Overrides,
}

impl OverrideResolver {
    pub(crate) fn new(overrides: Overrides) -> Self {
        Self { overrides }
    }
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
