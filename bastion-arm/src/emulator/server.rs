//! A small HTTPS/1.1 server (hyper over tokio-rustls) shared by the ARM emulator and the
//! Kubernetes API stand-in. Handlers see fully-read requests and return whole responses, or
//! `None` to drop the connection without answering (a connection reset as the client sees it).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The largest request body read.
const MAX_REQUEST_BODY: usize = 1 << 20;
/// A TLS handshake that takes longer than this is abandoned.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler gets: the request with its body read, and the peer address.
pub(crate) type Req = http::Request<Bytes>;
/// What a handler returns: `None` drops the connection.
pub(crate) type Resp = Option<http::Response<Bytes>>;
/// A boxed handler future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Resp> + Send>>;

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

impl TlsServer {
    /// Serves `handler` over TLS on `listener`.
    pub(crate) fn spawn<H: Handler>(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        handler: Arc<H>,
    ) -> std::io::Result<TlsServer> {
        let addr = listener.local_addr()?;
        let (shutdown, stop) = watch::channel(false);
        let acceptor = TlsAcceptor::from(tls);
        let accept = tokio::spawn(accept_loop(listener, acceptor, handler, stop));
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

async fn accept_loop<H: Handler>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Arc<H>,
    stop: watch::Receiver<bool>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "emulator accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, %peer, "emulator TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(_) => return Err(Dropped),
                    };
                    match handler
                        .handle(http::Request::from_parts(parts, body), peer)
                        .await
                    {
                        Some(resp) => Ok(resp.map(Full::new)),
                        None => Err(Dropped),
                    }
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(tls), service);
            tokio::pin!(conn);
            let stopped = async move {
                let _ = stop.wait_for(|s| *s).await.is_ok();
            };
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        });
    }
}

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &serde_json::Value) -> http::Response<Bytes> {
    bytes_response(
        status,
        "application/json; charset=utf-8",
        Bytes::from(serde_json::to_vec(body).unwrap_or_default()),
    )
}

/// A response with a body of the given content type.
pub(crate) fn bytes_response(
    status: u16,
    content_type: &str,
    body: Bytes,
) -> http::Response<Bytes> {
    let mut resp = http::Response::new(body);
    *resp.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}
