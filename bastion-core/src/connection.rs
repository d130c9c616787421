//! One tunnelled connection ([`TunnelConnection`]) and the events a tunnel reports about its
//! connections ([`ConnectionEvent`]). Below both `tunnel` (which opens connections) and
//! `prewarm` (which keeps some open ahead of need), so neither imports the other's internals.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use crate::Result;
use crate::api::Transport;
use crate::session::Session;
use crate::stream::{CloseInfo, TunnelStream};

/// What happened to one tunnelled connection, or to a pre-warmed session;
/// [`Tunnel::subscribe`](crate::Tunnel::subscribe) delivers these.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A local connection was accepted.
    Opened {
        /// Connection number, unique within the tunnel.
        id: u64,
        /// The local peer, when there is one.
        peer: Option<SocketAddr>,
    },
    /// A connection ended.
    Closed {
        /// Connection number.
        id: u64,
        /// The local peer, when there is one.
        peer: Option<SocketAddr>,
        /// Bytes from the local side to the target.
        bytes_up: u64,
        /// Bytes from the target to the local side.
        bytes_down: u64,
        /// How long the connection lasted.
        duration: Duration,
        /// Why it failed, if it did (with its cause).
        error: Option<String>,
    },
    /// A pre-warmed session ([`TunnelConfig::prewarm`](crate::TunnelConfig::prewarm)) is connected and waiting.
    Prewarmed {
        /// Pre-warmed sessions now ready.
        ready: usize,
    },
    /// A pre-warmed session was closed and deleted before use, and is being replaced.
    PrewarmRetired {
        /// Why: it reached [`TunnelConfig::prewarm_max_age`](crate::TunnelConfig::prewarm_max_age), or the Bastion or the target
        /// ended it.
        reason: String,
    },
    /// Opening a pre-warmed session failed; it is tried again after a pause.
    PrewarmFailed {
        /// The error, with its cause.
        error: String,
        /// The pause before the next attempt.
        retry_in: Duration,
    },
}

/// One tunnelled connection as an in-process byte stream. Its session is deleted by
/// [`TunnelConnection::close`], or in the background when it is dropped.
pub struct TunnelConnection {
    pub(crate) stream: TunnelStream<Transport>,
    pub(crate) session: Option<Session>,
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
    pub(crate) drain_timeout: Duration,
    /// What the target sent before a local connection took this (pre-warmed) session, read
    /// before the stream.
    pub(crate) pre_attach: Bytes,
    pub(crate) prewarmed: bool,
}

impl std::fmt::Debug for TunnelConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelConnection")
            .field("stream", &self.stream)
            .field("session", &self.session)
            .finish()
    }
}

impl TunnelConnection {
    /// The node holding this connection's session.
    pub fn node_id(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.node_id())
    }

    /// The Close frame the Bastion sent, if any.
    pub fn peer_close(&self) -> Option<&CloseInfo> {
        self.stream.peer_close()
    }

    /// Whether this connection's session was pre-warmed ([`TunnelConfig::prewarm`](crate::TunnelConfig::prewarm)).
    pub fn is_prewarmed(&self) -> bool {
        self.prewarmed
    }

    /// Marks a pre-warmed connection as handed over, with the bytes its target sent meanwhile.
    pub(crate) fn hand_over(&mut self, pre_attach: Bytes) {
        self.pre_attach = pre_attach;
        self.prewarmed = true;
    }

    /// Closes cleanly: Close frame, drain the Bastion's last bytes (bounded), DELETE the session.
    /// Reports an abnormal close code from the Bastion as an error.
    pub async fn close(mut self) -> Result<()> {
        let drain = self.drain_timeout;
        let _ = tokio::time::timeout(drain, async {
            self.stream.shutdown().await?;
            let mut sink = [0u8; 8192];
            while self.stream.read(&mut sink).await? > 0 {}
            Ok::<(), io::Error>(())
        })
        .await;
        let abnormal = self
            .stream
            .peer_close()
            .filter(|c| !c.is_normal())
            .map(CloseInfo::to_error);
        if let Some(session) = self.session.take() {
            session.delete().await?;
        }
        abnormal.map_or(Ok(()), Err)
    }
}

impl AsyncRead for TunnelConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre_attach.is_empty() && buf.remaining() > 0 {
            let n = self.pre_attach.len().min(buf.remaining());
            let head = self.pre_attach.split_to(n);
            buf.put_slice(&head);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TunnelConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
