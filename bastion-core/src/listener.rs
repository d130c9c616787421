//! The local side: a listener on loopback (127.0.0.1 and, when available, ::1 on the same port),
//! bound once and held, so the port printed is the port served.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};

use crate::{Error, Result};

/// One or two bound listeners sharing a port.
#[derive(Debug)]
pub struct LocalListener {
    primary: TcpListener,
    secondary: Option<TcpListener>,
}

impl LocalListener {
    /// Binds `127.0.0.1:port` and `[::1]:port` (port 0 picks a port free on both), so
    /// `localhost` works whichever address a client tries first. Only a machine without IPv6
    /// loopback gets 127.0.0.1 alone; `[::1]:port` held by another process is an error, never
    /// a silent half (a client trying `::1` first would reach that other process).
    pub async fn bind_loopback(port: u16) -> Result<Self> {
        for _ in 0..16 {
            let primary = bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await?;
            let bound = primary.local_addr()?.port();
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), bound);
            match TcpListener::bind(v6).await {
                Ok(secondary) => {
                    return Ok(Self {
                        primary,
                        secondary: Some(secondary),
                    });
                }
                // A picked port that another process holds on ::1: pick another.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && port == 0 => continue,
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    return Err(Error::LocalPortInUse {
                        ip: v6.ip(),
                        port: bound,
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "no IPv6 loopback here; listening on 127.0.0.1 only");
                    return Ok(Self {
                        primary,
                        secondary: None,
                    });
                }
            }
        }
        Err(Error::Config(
            "no port is free on both 127.0.0.1 and ::1 after 16 tries".into(),
        ))
    }

    /// Binds exactly `addr`.
    pub async fn bind(addr: SocketAddr) -> Result<Self> {
        Ok(Self {
            primary: bind(addr).await?,
            secondary: None,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.primary.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        [Some(&self.primary), self.secondary.as_ref()]
            .into_iter()
            .flatten()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Accepts the next connection on any of the bound addresses.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match &self.secondary {
            None => self.primary.accept().await,
            Some(second) => tokio::select! {
                r = self.primary.accept() => r,
                r = second.accept() => r,
            },
        }
    }
}

impl From<TcpListener> for LocalListener {
    fn from(primary: TcpListener) -> Self {
        Self {
            primary,
            secondary: None,
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        io::ErrorKind::AddrInUse => Error::LocalPortInUse {
            ip: addr.ip(),
            port: addr.port(),
        },
        io::ErrorKind::PermissionDenied => Error::Config(format!(
            "not allowed to listen on {addr}: ports below 1024 need privileges; choose a port from 1024 to 65535"
        )),
        io::ErrorKind::AddrNotAvailable => Error::Config(format!(
            "cannot listen on {}: it is not an address of this machine",
            addr.ip()
        )),
        _ => Error::Io(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_taken_on_ipv6_loopback_is_an_error_not_a_silent_half() {
        let Ok(other) = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await else {
            eprintln!("no IPv6 loopback on this machine: nothing to check");
            return;
        };
        let port = other.local_addr().unwrap().port();
        match LocalListener::bind_loopback(port).await {
            Err(Error::LocalPortInUse { ip, port: p }) => {
                assert_eq!((ip, p), (IpAddr::V6(Ipv6Addr::LOCALHOST), port));
            }
            other => panic!("expected LocalPortInUse, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn port_zero_picks_a_port_free_on_both_loopbacks() {
        let l = LocalListener::bind_loopback(0).await.unwrap();
        let addrs = l.local_addrs();
        assert!(addrs.iter().all(|a| a.port() == l.port()), "{addrs:?}");
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).await.is_ok() {
            assert_eq!(addrs.len(), 2, "{addrs:?}");
        }
    }
}
