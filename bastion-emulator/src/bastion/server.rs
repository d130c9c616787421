//! The Bastion data-plane emulator's listener and request routing.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::config::EmulatorConfig;
use super::registry::EventKind;
use super::state::Shared;
use super::{connection, control, tokens, websocket};
use crate::respond::{self, Resp};
use crate::server;

/// How long connections and relays get to finish at shutdown before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// A started server: shared state plus the accept-loop task.
pub(crate) struct Server {
    pub(crate) shared: Arc<Shared>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) accept_task: tokio::task::JoinHandle<()>,
}

/// Binds, builds the TLS config and spawns the accept loop.
pub(crate) async fn start(
    config: EmulatorConfig,
    tls: Arc<rustls::ServerConfig>,
) -> std::io::Result<Server> {
    let listener = TcpListener::bind(config.bind).await?;
    let local_addr = listener.local_addr()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared::new(config, local_addr, shutdown_rx));
    let accept_task = tokio::spawn(serve(Arc::clone(&shared), listener, TlsAcceptor::from(tls)));
    tracing::debug!(%local_addr, "Bastion emulator listening");
    Ok(Server {
        shared,
        shutdown: shutdown_tx,
        accept_task,
    })
}

async fn serve(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    let stop = shared.shutdown_signal();
    server::accept_loop(listener, stop, |tcp, peer| {
        shared.registry.count(|s| s.tcp_connections += 1);
        shared
            .registry
            .event(EventKind::TcpAccepted, None, None, peer.to_string());
        let s = Arc::clone(&shared);
        let acceptor = acceptor.clone();
        shared.tasks.spawn(serve_connection(s, acceptor, tcp));
    })
    .await;
    shared.tasks.drain(SHUTDOWN_GRACE).await;
    tracing::debug!("Bastion emulator stopped");
}

async fn serve_connection(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let tls = tokio::select! {
        _ = shared.shutdown_requested() => return,
        tls = server::handshake(&acceptor, tcp) => match tls {
            Some(tls) => tls,
            None => return,
        },
    };
    let svc_shared = Arc::clone(&shared);
    let service = service_fn(move |req: Request<Incoming>| {
        let s = Arc::clone(&svc_shared);
        async move { Ok::<_, Infallible>(route(s, req).await) }
    });
    server::serve_http(tls, service, shared.shutdown_signal()).await;
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    shared.registry.count(|s| s.http_requests += 1);
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    tracing::debug!(%method, path = %redact_path(&path), "emulator request");
    if path.starts_with("/_emulator/") {
        if shared.config.control_api {
            return control::handle(shared, req).await;
        }
        return respond::error(404, "Not found", Some("NOT_FOUND"));
    }
    if path == "/api/tokens" && method == Method::POST {
        return tokens::post(shared, req).await;
    }
    if let Some(token) = respond::tail_segment(&path, "/api/tokens/")
        && method == Method::DELETE
    {
        let token = token.to_owned();
        return tokens::delete(shared, req, &token).await;
    }
    if path == "/api/connection" && method == Method::POST {
        return connection::post(shared, req).await;
    }
    if method == Method::GET {
        if let Some(token) = respond::tail_segment(&path, "/webtunnelv2/") {
            let token = token.to_owned();
            return websocket::handle(shared, req, &token, websocket::Flavor::NodeAffine).await;
        }
        if let Some(token) = respond::tail_segment(&path, "/omni/webtunnel/") {
            let token = token.to_owned();
            return websocket::handle(shared, req, &token, websocket::Flavor::DataPod).await;
        }
    }
    respond::error(404, "Not found", Some("NOT_FOUND"))
}

/// The path with any token segment replaced, for logs.
fn redact_path(path: &str) -> String {
    for prefix in [
        "/api/tokens/",
        "/webtunnelv2/",
        "/omni/webtunnel/",
        "/_emulator/sessions/",
    ] {
        if path.starts_with(prefix) && path.len() > prefix.len() {
            return format!("{prefix}<redacted>");
        }
    }
    path.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_are_redacted() {
        assert_eq!(redact_path("/api/tokens/secret"), "/api/tokens/<redacted>");
        assert_eq!(redact_path("/webtunnelv2/abc"), "/webtunnelv2/<redacted>");
        assert_eq!(redact_path("/api/tokens"), "/api/tokens");
    }
}
