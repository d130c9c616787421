//! The listener, TLS, HTTP/1.1 connection handling, routing and the shared state.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::config::{BastionFixture, EmulatorConfig};
use super::faults::Faults;
use super::registry::{EventKind, Registry};
use super::respond::{self, Resp};
use super::{connection, control, ids, tokens, websocket};

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connections and relays get to finish at shutdown before they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Spawned tasks that shutdown waits for (then aborts).
#[derive(Default)]
pub(crate) struct TaskGroup {
    set: Mutex<JoinSet<()>>,
}

impl TaskGroup {
    fn lock(&self) -> MutexGuard<'_, JoinSet<()>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut set = self.lock();
        while set.try_join_next().is_some() {}
        set.spawn(fut);
    }

    async fn drain(&self, grace: Duration) {
        let mut set = std::mem::take(&mut *self.lock());
        let _ =
            tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// State shared by every connection and handler.
pub(crate) struct Shared {
    pub(crate) config: EmulatorConfig,
    pub(crate) registry: Registry,
    faults: Mutex<Faults>,
    /// 429s served since the faults were last set.
    pub(crate) rate_limited: AtomicU64,
    rng: Mutex<StdRng>,
    pub(crate) nodes: Vec<String>,
    next_node: AtomicUsize,
    pub(crate) local_addr: SocketAddr,
    shutdown: watch::Receiver<bool>,
    pub(crate) tasks: TaskGroup,
    /// The Developer Bastion the data pod currently serves (index into `config.bastions`).
    data_pod_bastion: Mutex<Option<usize>>,
}

impl Shared {
    pub(crate) fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = faults;
        self.rate_limited.store(0, Ordering::SeqCst);
    }

    /// The knobs for a request about `resource_id` from token request `n`.
    pub(crate) fn faults_for(&self, resource_id: Option<&str>, n: Option<u64>) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .resolve(resource_id, n)
    }

    pub(crate) fn reset(&self) {
        self.registry.reset();
        self.set_faults(Faults::default());
        *self
            .data_pod_bastion
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn token(&self, unsafe_alphabet: bool) -> String {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        ids::token(&mut *rng, unsafe_alphabet)
    }

    /// Nodes are assigned round-robin.
    pub(crate) fn next_node(&self) -> String {
        let i = self.next_node.fetch_add(1, Ordering::Relaxed) % self.nodes.len().max(1);
        self.nodes.get(i).cloned().unwrap_or_default()
    }

    pub(crate) fn bastion_by_id(&self, id: &str) -> Option<(usize, &BastionFixture)> {
        self.config
            .bastions
            .iter()
            .enumerate()
            .find(|(_, b)| b.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn set_data_pod_bastion(&self, index: usize) {
        *self
            .data_pod_bastion
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(index);
    }

    /// Which Bastion a request is for: by `Host` (its `dns_name`); on the data-pod host, the
    /// Developer Bastion last named in `/api/connection` (or the first Developer/QuickConnect
    /// fixture); on any other host, the only Bastion if there is exactly one.
    pub(crate) fn bastion_for_host(&self, host: Option<&str>) -> Option<&BastionFixture> {
        let bastions = &self.config.bastions;
        if let Some(host) = host {
            if let Some(b) = bastions
                .iter()
                .find(|b| b.dns_name.eq_ignore_ascii_case(host))
            {
                return Some(b);
            }
            if host.eq_ignore_ascii_case(&self.config.data_pod_host) {
                let chosen = *self
                    .data_pod_bastion
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                return chosen
                    .and_then(|i| bastions.get(i))
                    .or_else(|| bastions.iter().find(|b| b.is_developer()));
            }
        }
        match bastions.as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }

    /// Resolves once shutdown has been requested.
    pub(crate) async fn shutdown_requested(&self) {
        let mut rx = self.shutdown.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Sleeps `d`, or less if shutdown is requested. Returns false on shutdown.
    pub(crate) async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = self.shutdown_requested() => false,
        }
    }
}

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
    let mut rng = match config.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => rand::make_rng(),
    };
    let nodes = (0..config.nodes).map(|_| ids::guid(&mut rng)).collect();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        config,
        registry: Registry::new(),
        faults: Mutex::new(Faults::default()),
        rate_limited: AtomicU64::new(0),
        rng: Mutex::new(rng),
        nodes,
        next_node: AtomicUsize::new(0),
        local_addr,
        shutdown: shutdown_rx,
        tasks: TaskGroup::default(),
        data_pod_bastion: Mutex::new(None),
    });
    let accept_task = tokio::spawn(accept_loop(
        Arc::clone(&shared),
        listener,
        TlsAcceptor::from(tls),
    ));
    tracing::debug!(%local_addr, "Bastion emulator listening");
    Ok(Server {
        shared,
        shutdown: shutdown_tx,
        accept_task,
    })
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shared.shutdown_requested() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                shared.registry.count(|s| s.tcp_connections += 1);
                shared
                    .registry
                    .event(EventKind::TcpAccepted, None, None, peer.to_string());
                let s = Arc::clone(&shared);
                let acceptor = acceptor.clone();
                shared.tasks.spawn(serve_connection(s, acceptor, tcp));
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "emulator accept failed");
                if !shared.sleep(Duration::from_millis(50)).await {
                    break;
                }
            }
        }
    }
    drop(listener);
    shared.tasks.drain(SHUTDOWN_GRACE).await;
    tracing::debug!("Bastion emulator stopped");
}

async fn serve_connection(shared: Arc<Shared>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let tls = tokio::select! {
        _ = shared.shutdown_requested() => return,
        r = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)) => match r {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "emulator TLS handshake failed");
                return;
            }
            Err(_) => return,
        },
    };
    let svc_shared = Arc::clone(&shared);
    let service = service_fn(move |req: Request<Incoming>| {
        let s = Arc::clone(&svc_shared);
        async move { Ok::<_, Infallible>(route(s, req).await) }
    });
    let conn = http1::Builder::new()
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
        _ = shared.shutdown_requested() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
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
