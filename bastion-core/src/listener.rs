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
    /// Binds `127.0.0.1:port` and, best effort, `[::1]:port` (port 0 picks a free port, the same
    /// on both), so `localhost` works whichever address a client tries first.
    pub async fn bind_loopback(port: u16) -> Result<Self> {
        let primary = bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)).await?;
        let port = primary.local_addr()?.port();
        let secondary = TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port))
            .await
            .ok();
        Ok(Self { primary, secondary })
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
