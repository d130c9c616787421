//! The one HTTPS/1.1 server layer every emulator shares: an accept loop that keeps serving
//! through accept errors, a bounded TLS handshake, and HTTP/1.1 (with upgrades) that shuts down
//! gracefully. On top of it, [`TlsServer`] serves a [`Handler`] that sees fully read requests
//! and returns whole responses, or `None` to drop the connection without answering (a
//! connection reset as the client sees it): the ARM emulator and the Kubernetes stand-in.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bastion_core::tls::ReadAhead;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::respond::Resp;

/// The largest request body read.
const MAX_REQUEST_BODY: usize = 1 << 20;
/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an open connection gets to finish at shutdown.
const CONNECTION_GRACE: Duration = Duration::from_secs(2);
/// The pause after a failed accept (out of descriptors and the like) before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Resolves once `stop` holds `true` (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Accepts connections until `stop` turns `true`, handing each to `on_accept` with TCP_NODELAY
/// set. A failed accept (out of descriptors, ...) is logged and retried after a short pause:
/// the listener never stops on its own.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    stop: watch::Receiver<bool>,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped(stop.clone()) => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                on_accept(tcp, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "emulator accept failed; retrying");
                tokio::select! {
                    _ = stopped(stop.clone()) => return,
                    _ = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    }
}

/// The server side of a TLS handshake, bounded in time; `None` when it fails.
pub(crate) async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
) -> Option<TlsStream<ReadAhead<TcpStream>>> {
    // Read ahead under TLS while bulk data flows (docs/architecture.md#tls-read-ahead).
    let tcp = ReadAhead::new(tcp);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "emulator TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Serves HTTP/1.1 (keep-alive, upgrades allowed) on `tls` (a TLS stream, or plain TCP for
/// the managed-identity endpoint) until the connection ends, or until `stop` fires, when it
/// shuts down gracefully within a short grace period.
pub(crate) async fn serve_http<IO, S>(tls: IO, service: S, stop: watch::Receiver<bool>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming> + Send,
    S::Future: Send,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(tls), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "emulator connection ended with an error");
            }
        }
        _ = stopped(stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CONNECTION_GRACE, conn).await;
        }
    }
}

/// What a handler gets: the request with its body read, and the peer address.
pub(crate) type Req = http::Request<Bytes>;
/// What a handler returns: `None` drops the connection.
pub(crate) type Reply = Option<Resp>;
/// A boxed handler future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A request handler.
pub(crate) trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(self: Arc<Self>, req: Req, peer: SocketAddr) -> HandlerFuture;
}

/// A running server; dropping it stops accepting and closes idle connections.
#[derive(Debug)]
pub(crate) struct TlsServer {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a fault")
    }
}

impl std::error::Error for Dropped {}

/// Reads a request's body (bounded) and hands the whole request to `handler`.
fn handler_service<H: Handler>(
    handler: Arc<H>,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = Resp,
    Error = Dropped,
    Future = impl Future<Output = Result<Resp, Dropped>> + Send,
> + Send {
    hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Err(Dropped),
            };
            handler
                .handle(http::Request::from_parts(parts, body), peer)
                .await
                .ok_or(Dropped)
        }
    })
}

impl TlsServer {
    /// Serves `handler` over plain HTTP on `listener`: only for an endpoint that is plain
    /// http in Azure too (the managed-identity endpoint on the machine itself).
    pub(crate) fn spawn_plain<H: Handler>(
        listener: TcpListener,
        handler: Arc<H>,
    ) -> std::io::Result<TlsServer> {
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let accept = tokio::spawn(accept_loop(listener, stop.clone(), move |tcp, peer| {
            let service = handler_service(handler.clone(), peer);
            tokio::spawn(serve_http(tcp, service, stop.clone()));
        }));
        Ok(TlsServer {
            addr,
            shutdown,
            accept,
        })
    }

    /// Serves `handler` over TLS on `listener`.
    pub(crate) fn spawn<H: Handler>(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        handler: Arc<H>,
    ) -> std::io::Result<TlsServer> {
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let acceptor = TlsAcceptor::from(tls);
        let accept = tokio::spawn(accept_loop(listener, stop.clone(), move |tcp, peer| {
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let Some(tls) = handshake(&acceptor, tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                            Ok(b) => b.to_bytes(),
                            Err(_) => return Err(Dropped),
                        };
                        handler
                            .handle(http::Request::from_parts(parts, body), peer)
                            .await
                            .ok_or(Dropped)
                    }
                });
                serve_http(tls, service, stop).await;
            });
        }));
        Ok(TlsServer {
            addr,
            shutdown,
            accept,
        })
    }

    /// The bound address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        self.accept.abort();
    }
}
