//! Host-to-address overrides, like curl's `--resolve`: a real-looking name can point at a local
//! emulator or a private address. Names without an override go to the system resolver.
//!
//! It is also where the "plain http only to this machine's identity endpoints" rule is decided:
//! by the address that is actually dialled ([`is_local_identity_addr`]), never by the host name,
//! since an override or the system resolver can send any name anywhere.

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

/// Where plain http may go: loopback (127.0.0.0/8, `::1`) and IPv4 link-local (169.254.0.0/16,
/// where the instance metadata service answers at 169.254.169.254). Managed identity endpoints
/// listen there over plain http; tokens and identity secrets travel in clear text nowhere else.
/// IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
pub(crate) fn is_local_identity_addr(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

/// The addresses of `host`: an IP literal as it is, else its override, else the system
/// resolver's answer.
pub(crate) async fn lookup(overrides: &Overrides, host: &str) -> std::io::Result<Vec<IpAddr>> {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    if let Some(ip) = overrides.get(&host) {
        return Ok(vec![*ip]);
    }
    Ok(tokio::net::lookup_host((host.as_str(), 0))
        .await?
        .map(|a| a.ip())
        .collect())
}

/// Plain http to an address that is not one of this machine's identity endpoints: refused
/// before any connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlainHttpRefused {
    /// The host of the URL.
    pub(crate) host: String,
    /// What it resolved to.
    pub(crate) addrs: Vec<IpAddr>,
}

impl std::fmt::Display for PlainHttpRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        let addrs = if addrs.is_empty() {
            "no address".to_owned()
        } else {
            addrs.join(", ")
        };
        write!(
            f,
            "refusing plain http to {}: it resolves to {addrs}, which is not this machine's identity endpoint (plain http goes only to loopback or the link-local 169.254.x.x; check --resolve / BASTION_RESOLVE and the identity endpoint variables)",
            self.host
        )
    }
}

impl std::error::Error for PlainHttpRefused {}

/// The addresses plain http may dial for `host`, in resolver order: those of `addrs` that are
/// [`is_local_identity_addr`]; an error when there is none.
pub(crate) fn plain_http_addrs(
    host: &str,
    addrs: Vec<IpAddr>,
) -> Result<Vec<IpAddr>, PlainHttpRefused> {
    let allowed: Vec<IpAddr> = addrs
        .iter()
        .copied()
        .filter(|ip| is_local_identity_addr(*ip))
        .collect();
    if allowed.is_empty() {
        return Err(PlainHttpRefused {
            host: host.to_owned(),
            addrs,
        });
    }
    Ok(allowed)
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
        let overrides = Arc::clone(&self.overrides);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = lookup(&overrides, name.as_str())
                .await?
                .into_iter()
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn identity_addresses_are_loopback_and_link_local_only() {
        for a in [
            "127.0.0.1",
            "127.0.0.53",
            "::1",
            "169.254.169.254",
            "169.254.1.2",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_local_identity_addr(ip(a)), "{a}");
        }
        for a in [
            "192.0.2.2",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:192.0.2.2",
            "20.50.1.1",
        ] {
            assert!(!is_local_identity_addr(ip(a)), "{a}");
        }
    }

    #[test]
    fn plain_http_keeps_only_local_addresses() {
        assert_eq!(
            plain_http_addrs("localhost", vec![ip("::1"), ip("127.0.0.1")]).unwrap(),
            vec![ip("::1"), ip("127.0.0.1")]
        );
        // A name that resolves to both keeps only the local one.
        assert_eq!(
            plain_http_addrs("mixed.test", vec![ip("192.0.2.2"), ip("127.0.0.1")]).unwrap(),
            vec![ip("127.0.0.1")]
        );
        let err = plain_http_addrs("localhost", vec![ip("192.0.2.2")]).unwrap_err();
        assert_eq!(err.addrs, vec![ip("192.0.2.2")]);
        let text = err.to_string();
        assert!(
            text.contains("refusing plain http to localhost") && text.contains("192.0.2.2"),
            "{text}"
        );
        assert!(plain_http_addrs("nowhere.test", Vec::new()).is_err());
    }

    #[tokio::test]
    async fn lookup_takes_literals_then_overrides() {
        let table = overrides(&[("LocalHost".into(), ip("192.0.2.2"))]);
        assert_eq!(
            lookup(&table, "localhost").await.unwrap(),
            vec![ip("192.0.2.2")]
        );
        assert_eq!(
            lookup(&table, "LOCALHOST").await.unwrap(),
            vec![ip("192.0.2.2")]
        );
        assert_eq!(lookup(&table, "[::1]").await.unwrap(), vec![ip("::1")]);
        assert_eq!(
            lookup(&table, "169.254.169.254").await.unwrap(),
            vec![ip("169.254.169.254")]
        );
    }
}
