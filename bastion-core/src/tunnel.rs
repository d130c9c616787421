//! [`Tunnel`]: everything needed to reach one target through one Bastion.
//!
//! - [`Tunnel::connect`] opens one tunnelled connection as an in-process stream (for embedding).
//! - [`Tunnel::serve`] accepts local TCP connections concurrently and relays each one through its
//!   own Bastion session; one failure never stops the listener.
//! - [`Tunnel::relay`] relays any local `AsyncRead + AsyncWrite` (stdin/stdout for ssh's
//!   `ProxyCommand` through [`Tunnel::serve_stdio`]).
//!
//! Shutdown stops accepting, sends a Close frame on every WebSocket and DELETEs every live
//! session, within [`TunnelConfig::shutdown_timeout`].

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use azure_core::credentials::TokenCredential;
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{BastionApi, HttpsBastion, Transport};
use crate::connection::{ConnectionEvent, TunnelConnection};
use crate::listener::LocalListener;
use crate::prewarm::{DEFAULT_PREWARM_MAX_AGE, Opening, Pool, SessionSource};
use crate::protocol::{self, ARM_SCOPE, Endpoint, EndpointKind, Target};
use crate::session::{Registry, Session};
use crate::stream::{CloseInfo, StreamConfig, TunnelStream};
use crate::token::TokenSource;
use crate::transport::{HttpsClient, HttpsConfig};
use crate::websocket::WsOptions;
use crate::{Error, Result, Secret};
use read_buffer::{MIN_READ_BUFFER, ReadBuffer};

/// Ports a Developer SKU Bastion or an IP-connect target allows unless the user opts in.
pub const DEFAULT_RESTRICTED_PORTS: [u16; 2] = [22, 3389];
/// Sessions (and so tunnelled connections) open at once unless configured otherwise: each is a
/// Bastion session under the user's identity, so many idle local connections must not become
/// as many sessions without bound.
pub const DEFAULT_MAX_SESSIONS: usize = 256;
/// Developer data-pod lookups are redone after this many consecutive connection failures.
const DATA_POD_MAX_FAILURES: u32 = 3;
/// The largest read buffers of a relay, per direction (see [`ReadBuffer`]).
const UP_BUFFER: usize = 256 * 1024;
const DOWN_BUFFER: usize = 256 * 1024;

/// Everything a [`Tunnel`] needs besides the credential.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    /// The Bastion endpoint (`properties.dnsName`, `HOST[:PORT]`).
    pub endpoint: Endpoint,
    /// Standard (webtunnelv2) or Developer (data pod + omni) URLs.
    pub kind: EndpointKind,
    /// What to reach behind the Bastion.
    pub target: Target,
    /// The Bastion's ARM id: required for the Developer SKU's `/api/connection`.
    pub bastion_resource_id: Option<String>,
    /// The OAuth scope of the ARM token sent as `aztoken`.
    pub scope: String,
    /// HTTPS settings (extra CA, timeouts, retries, resolve overrides).
    pub http: HttpsConfig,
    /// Frame size and keepalive of each tunnel.
    pub stream: StreamConfig,
    /// WebSocket handshake settings.
    pub websocket: WsOptions,
    /// At most this many tunnelled connections (Bastion sessions) at once; more wait their
    /// turn ([`Tunnel::serve`] stops accepting until one ends, so they wait in the listener's
    /// backlog). `None`: [`DEFAULT_MAX_SESSIONS`], or 1 for the Developer SKU.
    pub max_concurrent: Option<usize>,
    /// Close a connection after this long with no bytes in either direction.
    pub idle_timeout: Option<Duration>,
    /// The linger after a half-close: when the local side ends its sending (EOF), the far
    /// side's data keeps being relayed until it ends or this long has passed, then the tunnel
    /// closes (a WebSocket cannot carry a half-close, so the target does not see the EOF).
    pub drain_timeout: Duration,
    /// How long local data waits once the replay window (1 MiB, kept for the retry after an
    /// in-band HTTP error) is full and the far side has sent nothing yet. Then the retry is
    /// given up and the data flows on, so that a protocol whose client sends more than the
    /// window before any answer (an upload) is not stalled; an in-band error after that ends
    /// the connection instead of being retried (docs/protocol.md#replay-once-retry).
    pub replay_wait: Duration,
    /// Budget for closing every WebSocket and deleting every session at shutdown.
    pub shutdown_timeout: Duration,
    /// Limit for one DELETE.
    pub delete_timeout: Duration,
    /// Allow ports other than 22/3389 for the Developer SKU and IP connect (the service may
    /// still refuse them).
    pub allow_any_port: bool,
    /// Sessions to keep fully connected ahead of need (token exchanged, WebSocket open, the
    /// target dialled) while [`Tunnel::serve`] runs; 0, the default, mints a session only when
    /// a connection comes. A new local connection then takes a ready session and costs only
    /// its data round trip; what the target sent before (an ssh banner) is handed over first,
    /// and the session is replaced in the background. [`Tunnel::connect`] and
    /// [`Tunnel::relay`] take one too while `serve` runs. Pre-warmed sessions count against
    /// [`TunnelConfig::max_concurrent`], so this may not exceed it (at most 1 for the
    /// Developer SKU). Each is a live Bastion session under the user's identity, deleted on
    /// replacement and at shutdown.
    pub prewarm: usize,
    /// A pre-warmed session not taken within this long is closed, deleted and replaced
    /// (default [`DEFAULT_PREWARM_MAX_AGE`], 60 s: well under the idle limits of the target and
    /// the network path, such as sshd's 120 s `LoginGraceTime`).
    pub prewarm_max_age: Duration,
}

impl TunnelConfig {
    /// Defaults for `endpoint` and `target`: Standard endpoint, 4 KiB frames, 30 s pings.
    pub fn new(endpoint: Endpoint, target: Target) -> Self {
        Self {
            endpoint,
            kind: EndpointKind::Standard,
            target,
            bastion_resource_id: None,
            scope: ARM_SCOPE.to_owned(),
            http: HttpsConfig::default(),
            stream: StreamConfig::default(),
            websocket: WsOptions::default(),
            max_concurrent: None,
            idle_timeout: None,
            drain_timeout: Duration::from_secs(3),
            replay_wait: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(5),
            delete_timeout: Duration::from_secs(10),
            allow_any_port: false,
            prewarm: 0,
            prewarm_max_age: DEFAULT_PREWARM_MAX_AGE,
        }
    }

    /// Checks the combination of settings; each error says what to change.
    pub fn validate(&self) -> Result<()> {
        self.stream.validate()?;
        let port = self.target.port();
        let restricted = !self.allow_any_port && !DEFAULT_RESTRICTED_PORTS.contains(&port);
        if self.target.ip().is_some() && restricted {
            return Err(Error::PortNotAllowed {
                port,
                by: "IP connect",
            });
        }
        if self.kind == EndpointKind::Developer {
            if self.bastion_resource_id.is_none() {
                return Err(Error::Config(
                    "a Developer SKU Bastion needs its resource id for the data-pod lookup".into(),
                ));
            }
            if self.target.ip().is_some() {
                return Err(Error::Config(
                    "the Developer SKU does not support IP connect: use a Standard or Premium Bastion with IP connect enabled".into(),
                ));
            }
            if restricted {
                return Err(Error::PortNotAllowed {
                    port,
                    by: "the Developer SKU",
                });
            }
        }
        if self.max_concurrent == Some(0) {
            return Err(Error::Config(
                "max concurrent connections must be at least 1".into(),
            ));
        }
        if self.prewarm > 0 {
            if self.prewarm_max_age.is_zero() {
                return Err(Error::Config(
                    "the maximum age of pre-warmed sessions must be more than zero".into(),
                ));
            }
            let cap = self.session_cap();
            if self.prewarm > cap {
                let why = match (self.kind, self.max_concurrent) {
                    (EndpointKind::Developer, None) => " (the Developer SKU allows one)",
                    _ => "",
                };
                return Err(Error::Config(format!(
                    "{} pre-warmed sessions are more than the {cap} session(s) the tunnel may hold at once{why}: pre-warm at most {cap}",
                    self.prewarm
                )));
            }
        }
        Ok(())
    }

    /// The most sessions open at once, pre-warmed ones included:
    /// [`TunnelConfig::max_concurrent`], else [`DEFAULT_MAX_SESSIONS`], or 1 for the Developer
    /// SKU.
    pub fn session_cap(&self) -> usize {
        match (self.max_concurrent, self.kind) {
            (Some(n), _) => n,
            (None, EndpointKind::Developer) => 1,
            (None, _) => DEFAULT_MAX_SESSIONS,
        }
    }
}

/// Byte counts and duration of one relayed connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Bytes from the local side to the target.
    pub bytes_up: u64,
    /// Bytes from the target to the local side.
    pub bytes_down: u64,
    /// How long the relay ran.
    pub duration: Duration,
}

/// The result of [`Tunnel::serve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeSummary {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections that ended with an error.
    pub failed: u64,
    /// Sessions shutdown could not delete (0 when all went well).
    pub undeleted_sessions: usize,
}

/// A Bastion data-plane client (HTTPS pool, and one connection kept warm per endpoint for the
/// next WebSocket upgrade) that several tunnels share through [`Tunnel::with_client`]. Cheap to
/// clone; clones share the pool.
#[derive(Clone)]
pub struct BastionClient {
    api: Arc<dyn BastionApi>,
}

impl std::fmt::Debug for BastionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BastionClient").finish_non_exhaustive()
    }
}

impl BastionClient {
    /// A client with these HTTPS settings and WebSocket options (which connection the upgrade
    /// goes on).
    pub fn new(http: HttpsConfig, websocket: &WsOptions) -> Result<Self> {
        let http = HttpsClient::new(http)?;
        Ok(Self {
            api: Arc::new(HttpsBastion::new(http, websocket.upgrade_connection)),
        })
    }
}

/// A tunnel to one target through one Bastion. Cheap to clone; clones share sessions,
/// the token cache and the connection pool.
#[derive(Clone)]
pub struct Tunnel {
    inner: Arc<Inner>,
}

struct Inner {
    config: TunnelConfig,
    api: Arc<dyn BastionApi>,
    tokens: TokenSource,
    registry: Arc<Registry>,
    data_pod: tokio::sync::Mutex<Option<Endpoint>>,
    data_pod_failures: AtomicU32,
    limit: Option<Arc<Semaphore>>,
    shutdown: CancellationToken,
    events: broadcast::Sender<ConnectionEvent>,
    next_id: AtomicU64,
    active: AtomicUsize,
    /// The pre-warmed sessions, while [`Tunnel::serve`] runs with [`TunnelConfig::prewarm`].
    prewarm: Mutex<Option<Arc<Pool>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The pool's slots hold only a weak reference: once the last clone of the tunnel is
        // gone they close and delete their sessions instead of replacing them for ever.
        if let Some(pool) = self.prewarm.get_mut().unwrap_or_else(|p| p.into_inner()) {
            pool.cancel();
        }
    }
}

/// A [`Tunnel`] that does not keep it alive (held by the pre-warm pool's slots).
#[derive(Clone)]
pub(crate) struct WeakTunnel(Weak<Inner>);

impl SessionSource for WeakTunnel {
    fn open(&self) -> Option<Opening> {
        let tunnel = Tunnel {
            inner: self.0.upgrade()?,
        };
        Some(Box::pin(async move { tunnel.connect_fresh().await }))
    }

    fn emit(&self, event: ConnectionEvent) {
        if let Some(inner) = self.0.upgrade() {
            let _ = inner.events.send(event);
        }
    }
}

/// Which admission a new connection has under the session cap.
enum Admission {
    /// A pre-warmed session (it carries its own permit).
    Warm(Box<TunnelConnection>),
    /// A permit for a new session (`None` when there is no cap).
    Permit(Option<OwnedSemaphorePermit>),
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("endpoint", &self.inner.config.endpoint)
            .field("target", &self.inner.config.target)
            .finish_non_exhaustive()
    }
}

impl Tunnel {
    /// A tunnel whose ARM tokens come from `credential` (cached; see [`TokenSource`]).
    pub fn new(config: TunnelConfig, credential: Arc<dyn TokenCredential>) -> Result<Self> {
        let tokens = TokenSource::new(credential, config.scope.clone());
        Self::with_token_source(config, tokens)
    }

    /// A tunnel that shares an existing token cache.
    pub fn with_token_source(config: TunnelConfig, tokens: TokenSource) -> Result<Self> {
        config.validate()?;
        let http = HttpsClient::new(config.http.clone())?;
        let api = HttpsBastion::new(http, config.websocket.upgrade_connection);
        Self::with_api(config, tokens, Arc::new(api))
    }

    /// A tunnel that shares an existing token cache and Bastion client (its connection pool and
    /// the warm connection kept per endpoint) with other tunnels. The client's HTTPS settings
    /// apply; `config.http` is not used to build another one.
    pub fn with_client(
        config: TunnelConfig,
        tokens: TokenSource,
        client: &BastionClient,
    ) -> Result<Self> {
        Self::with_api(config, tokens, Arc::clone(&client.api))
    }

    /// A tunnel over any implementation of the Bastion API (the unit tests' fake).
    pub(crate) fn with_api(
        config: TunnelConfig,
        tokens: TokenSource,
        api: Arc<dyn BastionApi>,
    ) -> Result<Self> {
        config.validate()?;
        let max = Some(config.session_cap());
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            inner: Arc::new(Inner {
                registry: Registry::new(Arc::clone(&api), config.delete_timeout),
                api,
                tokens,
                data_pod: tokio::sync::Mutex::new(None),
                data_pod_failures: AtomicU32::new(0),
                limit: max.map(|n| Arc::new(Semaphore::new(n))),
                shutdown: CancellationToken::new(),
                events,
                next_id: AtomicU64::new(1),
                active: AtomicUsize::new(0),
                prewarm: Mutex::new(None),
                config,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TunnelConfig {
        &self.inner.config
    }

    /// Sessions minted and not yet deleted.
    pub fn live_sessions(&self) -> usize {
        self.inner.registry.live_count()
    }

    /// Sessions deleted so far.
    pub fn deleted_sessions(&self) -> u64 {
        self.inner.registry.deleted_count()
    }

    /// Connections being relayed right now.
    pub fn active_connections(&self) -> usize {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// A receiver of [`ConnectionEvent`]s (opened, closed with bytes/duration/error).
    pub fn subscribe(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.events.subscribe()
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Pre-warmed sessions ready to be taken right now ([`TunnelConfig::prewarm`]).
    pub fn prewarmed_sessions(&self) -> usize {
        self.pool().map_or(0, |p| p.ready_count())
    }

    /// The running pre-warm pool, if any.
    fn pool(&self) -> Option<Arc<Pool>> {
        let slot = self.inner.prewarm.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|p| !p.is_stopped()).cloned()
    }

    /// Starts the pre-warm pool unless it is off or already running; the guard stops it when
    /// dropped (a `serve` future dropped before its shutdown).
    fn start_prewarm(&self) -> Option<PoolGuard> {
        let config = &self.inner.config;
        if config.prewarm == 0 || self.inner.shutdown.is_cancelled() {
            return None;
        }
        let mut slot = self.inner.prewarm.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_some_and(|p| !p.is_stopped()) {
            return None;
        }
        let pool = Pool::start(
            Arc::new(WeakTunnel(Arc::downgrade(&self.inner))),
            config.prewarm,
            config.prewarm_max_age,
            self.inner.shutdown.child_token(),
        );
        *slot = Some(Arc::clone(&pool));
        Some(PoolGuard(pool))
    }

    /// A pre-warmed session if one is ready, else a permit for a new session (waiting for
    /// whichever comes first while the cap is reached).
    async fn admit(&self) -> Result<Admission> {
        loop {
            let pool = self.pool();
            if let Some(pool) = &pool
                && let Some(conn) = pool.take().await
            {
                return Ok(Admission::Warm(Box::new(conn)));
            }
            let Some(sem) = &self.inner.limit else {
                return Ok(Admission::Permit(None));
            };
            tokio::select! {
                p = Arc::clone(sem).acquire_owned() => {
                    return p.map(|p| Admission::Permit(Some(p))).map_err(|_| Error::ShuttingDown);
                }
                _ = wait_prewarmed(pool.as_deref()) => {}
            }
        }
    }

    /// A new session, never a pre-warmed one (for the pool itself), under the session cap.
    pub(crate) async fn connect_fresh(&self) -> Result<TunnelConnection> {
        let permit = match &self.inner.limit {
            Some(sem) => Some(
                Arc::clone(sem)
                    .acquire_owned()
                    .await
                    .map_err(|_| Error::ShuttingDown)?,
            ),
            None => None,
        };
        self.open_connection(permit).await
    }

    /// Opens one tunnelled connection: token exchange, WebSocket, and a [`TunnelConnection`]
    /// that DELETEs its session when closed or dropped. While [`Tunnel::serve`] keeps sessions
    /// pre-warmed ([`TunnelConfig::prewarm`]), a ready one is taken instead; its first reads are
    /// what the target sent before ([`TunnelConnection::is_prewarmed`]).
    pub async fn connect(&self) -> Result<TunnelConnection> {
        self.connect_with(true).await
    }

    /// [`Tunnel::connect`]; `acquire: false` when the caller already holds a session permit
    /// ([`Tunnel::serve`] takes one before it accepts).
    async fn connect_with(&self, acquire: bool) -> Result<TunnelConnection> {
        let permit = if acquire {
            match self.admit().await? {
                Admission::Warm(conn) => return Ok(*conn),
                Admission::Permit(permit) => permit,
            }
        } else {
            None
        };
        self.open_connection(permit).await
    }

    /// Opens a new session and its WebSocket, holding `permit` (if any) for its lifetime.
    async fn open_connection(
        &self,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<TunnelConnection> {
        let inner = &self.inner;
        if inner.shutdown.is_cancelled() {
            return Err(Error::ShuttingDown);
        }
        let aztoken = inner.tokens.token().await?;
        let endpoint = match inner.config.kind {
            EndpointKind::Developer => self.data_pod(&aztoken).await?,
            _ => inner.config.endpoint.clone(),
        };
        let result = self.open_session(&endpoint, &aztoken).await;
        if inner.config.kind == EndpointKind::Developer {
            match &result {
                Ok(_) => inner.data_pod_failures.store(0, Ordering::Relaxed),
                Err(_) => {
                    if inner.data_pod_failures.fetch_add(1, Ordering::Relaxed) + 1
                        >= DATA_POD_MAX_FAILURES
                    {
                        *inner.data_pod.lock().await = None;
                        inner.data_pod_failures.store(0, Ordering::Relaxed);
                    }
                }
            }
        }
        let (stream, session) = result?;
        Ok(TunnelConnection {
            stream,
            session: Some(session),
            _permit: permit,
            drain_timeout: inner.config.drain_timeout,
            pre_attach: Bytes::new(),
            prewarmed: false,
        })
    }

    async fn open_session(
        &self,
        endpoint: &Endpoint,
        aztoken: &Secret,
    ) -> Result<(TunnelStream<Transport>, Session)> {
        let inner = &self.inner;
        let form = protocol::token_request_body(&inner.config.target, aztoken);
        // The POST runs in a task the registry tracks: when this connection is given up while
        // the POST is on its way (shutdown, an interrupted probe), the session the server may
        // already have made is still registered when the answer comes, and deleted.
        let post = {
            let api = Arc::clone(&inner.api);
            let registry = Arc::clone(&inner.registry);
            let endpoint = endpoint.clone();
            inner.registry.spawn(async move {
                let minted = api.post_token(&endpoint, &form).await?;
                let session =
                    registry.register(endpoint, minted.auth_token.clone(), minted.node_id.clone());
                Ok::<_, Error>((minted, session))
            })
        };
        let (minted, session) = post
            .await
            .map_err(|e| Error::WebSocket(format!("the token exchange task failed: {e}")))??;
        let url = protocol::websocket_url(endpoint, inner.config.kind, &minted);
        match inner
            .api
            .open_websocket(endpoint, &url, &inner.config.websocket)
            .await
        {
            Ok(ws) => {
                let mut config = inner.config.stream.clone();
                // tokio-tungstenite answers pings itself.
                config.answer_pings = false;
                Ok((TunnelStream::new(ws, config), session))
            }
            Err(e) => {
                // The handshake failed after a successful POST: the session must not leak.
                let _ = session.delete().await;
                Err(e)
            }
        }
    }

    async fn data_pod(&self, aztoken: &Secret) -> Result<Endpoint> {
        let inner = &self.inner;
        let mut cached = inner.data_pod.lock().await;
        if let Some(ep) = cached.as_ref() {
            return Ok(ep.clone());
        }
        let bastion_id = inner
            .config
            .bastion_resource_id
            .as_deref()
            .unwrap_or_default();
        let body = protocol::connection_request_body(&inner.config.target, bastion_id, aztoken);
        let pod = inner
            .api
            .post_connection(&inner.config.endpoint, &body)
            .await?;
        tracing::debug!(data_pod = %pod, "Developer Bastion data pod");
        *cached = Some(pod.clone());
        Ok(pod)
    }

    /// Relays one local stream through a new session until either side ends, then closes the
    /// WebSocket and deletes the session.
    pub async fn relay<L>(&self, local: L) -> Result<RelayStats>
    where
        L: AsyncRead + AsyncWrite + Unpin,
    {
        let (stats, result) = self
            .relay_inner(local, &self.inner.shutdown, true, None)
            .await;
        result.map(|()| stats)
    }

    /// Relays `local`, over `first` when the caller already took a (pre-warmed) connection.
    /// `acquire: false` when the caller holds a session permit for it.
    async fn relay_inner<L>(
        &self,
        local: L,
        cancel: &CancellationToken,
        acquire: bool,
        first: Option<TunnelConnection>,
    ) -> (RelayStats, Result<()>)
    where
        L: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let mut local = local;
        let mut total = RelayStats::default();
        let mut replay: Option<Vec<u8>> = None;
        let mut first = first;
        // A pre-warmed connection carries its own permit: a retry after it needs one.
        let acquire = acquire || first.is_some();
        loop {
            let conn = match first.take() {
                Some(conn) => Ok(conn),
                None => tokio::select! {
                    c = self.connect_with(acquire) => c,
                    _ = cancel.cancelled() => Err(Error::ShuttingDown),
                },
            };
            let conn = match conn {
                Ok(c) => c,
                Err(e) => {
                    total.duration = started.elapsed();
                    return (total, Err(e));
                }
            };
            self.inner.active.fetch_add(1, Ordering::Relaxed);
            let first_attempt = replay.is_none();
            let outcome = pump(conn, &mut local, replay.take(), cancel, &self.inner.config).await;
            self.inner.active.fetch_sub(1, Ordering::Relaxed);
            total.bytes_up += outcome.stats.bytes_up;
            total.bytes_down += outcome.stats.bytes_down;
            match outcome.retry {
                // The Bastion's proxy layer answered the upgrade with an in-band HTTP error
                // before anything reached the local side: one more session, same local socket.
                Some(bytes) if first_attempt => {
                    if let Err(e) = &outcome.result {
                        tracing::warn!(error = %e, replay_bytes = bytes.len(), "retrying once on a new session");
                    }
                    replay = Some(bytes);
                }
                _ => {
                    if outcome.retry.is_some() {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(1), local.shutdown()).await;
                    }
                    total.duration = started.elapsed();
                    return (total, outcome.result);
                }
            }
        }
    }

    /// Relays stdin/stdout through one session (ssh `ProxyCommand`); nothing but payload is
    /// written to stdout, and each chunk from the target is written at once (stdout is never
    /// line-buffered).
    ///
    /// On Unix, a stdin or stdout that is a pipe is read or written on the runtime's reactor
    /// rather than on a blocking thread, and on Linux its buffer is grown to 1 MiB (see
    /// docs/architecture.md#stdio-of-bastion-proxy). For that the pipe is put in non-blocking
    /// mode, a flag other processes holding the same pipe end share while the relay runs; it
    /// is cleared again when this returns or its future is dropped, whatever the outcome
    /// (not if the process is killed outright with `SIGKILL`).
    ///
    /// Fails with [`Error::Io`] before any session is opened if stdin or stdout cannot be
    /// duplicated (no descriptor left).
    pub async fn serve_stdio(&self) -> Result<RelayStats> {
        let local = crate::stdio::open()?;
        self.relay(local).await
    }

    /// Accepts local connections until `shutdown` completes (or [`Tunnel::close`] is called),
    /// relaying each through its own session. Then stops accepting, closes every WebSocket and
    /// deletes every session within the shutdown budget.
    pub async fn serve(
        &self,
        listener: impl Into<LocalListener>,
        shutdown: impl Future<Output = ()>,
    ) -> ServeSummary {
        let listener = listener.into();
        let tracker = TaskTracker::new();
        let accepted = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let token = self.inner.shutdown.clone();
        let mut out_of_descriptors = false;
        let _prewarm = self.start_prewarm();
        let pool = self.pool();
        tokio::pin!(shutdown);
        loop {
            // The session permit comes first: past the cap, clients wait in the kernel's
            // backlog instead of each holding a socket and a pending session here.
            let permit = match &self.inner.limit {
                Some(sem) => tokio::select! {
                    _ = &mut shutdown => break,
                    _ = token.cancelled() => break,
                    p = Arc::clone(sem).acquire_owned() => match p {
                        Ok(p) => Some(p),
                        Err(_) => break,
                    },
                    // A ready pre-warmed session holds a permit of its own: the connection
                    // takes it, so the cap never keeps it from being used.
                    _ = wait_prewarmed(pool.as_deref()) => None,
                },
                None => None,
            };
            // With pre-warming, the cap is only checked here, not held while waiting to accept:
            // the pool needs that permit to replace a session that was taken, and the
            // connection takes a pre-warmed session or a permit once accepted.
            let permit = permit.filter(|_| pool.is_none());
            let (socket, peer) = tokio::select! {
                _ = &mut shutdown => break,
                _ = token.cancelled() => break,
                r = listener.accept() => match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        if is_out_of_descriptors(&e) {
                            if !out_of_descriptors {
                                tracing::error!(
                                    "out of file descriptors: new local connections wait until open ones close (raise the open-file limit, ulimit -n, or lower the connection cap)"
                                );
                            }
                            out_of_descriptors = true;
                        } else {
                            tracing::warn!(error = %e, "accepting a local connection failed");
                        }
                        // Back off instead of spinning; the listener keeps serving.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            out_of_descriptors = false;
            let _ = socket.set_nodelay(true);
            accepted.fetch_add(1, Ordering::Relaxed);
            let tunnel = self.clone();
            let failed = Arc::clone(&failed);
            let cancel = token.child_token();
            tracker.spawn(async move {
                if tunnel.handle(socket, peer, &cancel, permit).await.is_err() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        drop(listener);
        let undeleted = self.finish(Some(tracker)).await;
        ServeSummary {
            accepted: accepted.load(Ordering::Relaxed),
            failed: failed.load(Ordering::Relaxed),
            undeleted_sessions: undeleted,
        }
    }

    /// Relays one accepted connection; `permit` is its place under the session cap, unless it
    /// was accepted because a pre-warmed session was ready.
    async fn handle(
        &self,
        socket: tokio::net::TcpStream,
        peer: SocketAddr,
        cancel: &CancellationToken,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<()> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        tracing::info!(conn = id, %peer, "connection opened");
        let _ = self.inner.events.send(ConnectionEvent::Opened {
            id,
            peer: Some(peer),
        });
        let warm = match self.pool() {
            Some(pool) => pool.take().await,
            None => None,
        };
        // A pre-warmed session brings its own permit: the one taken to accept is given back.
        let permit = permit.filter(|_| warm.is_none());
        if let Some(conn) = &warm {
            tracing::debug!(
                conn = id,
                pre_attach_bytes = conn.pre_attach.len(),
                "using a pre-warmed session"
            );
        }
        let acquire = permit.is_none();
        let (stats, result) = self.relay_inner(socket, cancel, acquire, warm).await;
        match &result {
            Ok(()) => tracing::info!(
                conn = id,
                %peer,
                bytes_up = stats.bytes_up,
                bytes_down = stats.bytes_down,
                duration_ms = stats.duration.as_millis() as u64,
                "connection closed"
            ),
            Err(e) => tracing::error!(
                conn = id,
                %peer,
                bytes_up = stats.bytes_up,
                bytes_down = stats.bytes_down,
                duration_ms = stats.duration.as_millis() as u64,
                error = %e,
                "connection failed"
            ),
        }
        let _ = self.inner.events.send(ConnectionEvent::Closed {
            id,
            peer: Some(peer),
            bytes_up: stats.bytes_up,
            bytes_down: stats.bytes_down,
            duration: stats.duration,
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        // Only now may a waiting connection take this place: under `max_connections` the
        // events never show more connections open at once than the cap.
        drop(permit);
        result
    }

    /// Shuts the tunnel down: no new connections, a Close frame on every relayed WebSocket, and
    /// a DELETE for every live session (including those of [`Tunnel::connect`] streams still
    /// held), within the shutdown budget. Returns how many sessions could not be deleted.
    pub async fn close(&self) -> usize {
        self.finish(None).await
    }

    async fn finish(&self, tracker: Option<TaskTracker>) -> usize {
        let budget = self.inner.config.shutdown_timeout;
        let deadline = tokio::time::Instant::now() + budget;
        self.inner.shutdown.cancel();
        if let Some(sem) = &self.inner.limit {
            sem.close();
        }
        if let Some(tracker) = tracker {
            tracker.close();
            if tokio::time::timeout_at(deadline, tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("some connections did not finish closing in time");
            }
        }
        let pool = self
            .inner
            .prewarm
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(pool) = pool {
            pool.stop(deadline).await;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.inner
            .registry
            .delete_all(left.max(Duration::from_millis(500)))
            .await
    }
}

/// Stops the pre-warm pool when dropped.
struct PoolGuard(Arc<Pool>);

impl Drop for PoolGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Completes once `pool` has a ready session; never without a pool.
async fn wait_prewarmed(pool: Option<&Pool>) {
    match pool {
        Some(pool) => pool.wait_ready().await,
        None => std::future::pending().await,
    }
}

/// EMFILE / ENFILE: the process or the system has no file descriptor left.
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}

/// How a relay ended.
enum Ending {
    /// The local side reached EOF; a Close was sent and the Bastion's last bytes drained.
    LocalEof,
    /// The local side failed (reset, ...).
    LocalError(io::Error),
    /// The Bastion closed the tunnel or the WebSocket ended.
    RemoteEnded,
    /// The tunnel failed (WebSocket error, in-band HTTP error, keepalive).
    TunnelError(io::Error),
    /// No bytes for the idle timeout.
    Idle(Duration),
    /// The tunnel is shutting down.
    Shutdown,
}

/// The result of one relay attempt.
struct PumpOutcome {
    stats: RelayStats,
    result: Result<()>,
    /// Set when the attempt failed with an in-band HTTP error before any byte reached the local
    /// side: the bytes to send again.
    retry: Option<Vec<u8>>,
}

/// The most bytes kept for replaying on a retry after an in-band HTTP error. Until the far side
/// sends its first byte, local data beyond this waits (backpressure) for up to
/// [`TunnelConfig::replay_wait`]; then the retry is given up and the data flows on.
const REPLAY_LIMIT: usize = 1 << 20;

async fn pump<L>(
    conn: TunnelConnection,
    local: &mut L,
    replay_in: Option<Vec<u8>>,
    cancel: &CancellationToken,
    config: &TunnelConfig,
) -> PumpOutcome
where
    L: AsyncRead + AsyncWrite + Unpin,
{
    let up_bytes = AtomicU64::new(0);
    let down_bytes = AtomicU64::new(0);
    let started = Instant::now();
    let last_activity = AtomicU64::new(0);
    let touch = || {
        last_activity.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    };
    // What went upstream before the first byte came back, in case the attempt must be redone
    // (only a first attempt is redone, so only a first attempt keeps it).
    let first_attempt = replay_in.is_none();
    let replay = std::sync::Mutex::new(Vec::new());
    let replaying = std::sync::atomic::AtomicBool::new(first_attempt);
    let (first_reply_tx, first_reply_rx) = tokio::sync::watch::channel(!first_attempt);
    let (mut local_r, mut local_w) = tokio::io::split(local);
    let (mut ws_r, mut ws_w) = tokio::io::split(conn);

    let ending = {
        // Each direction tags its errors with the side they came from.
        let up = async {
            if let Some(bytes) = &replay_in {
                ws_w.write_all(bytes).await.map_err(Side::Tunnel)?;
            }
            let mut first_reply = first_reply_rx.clone();
            // Full size at first: a client that sends a burst right away is read in one go
            // (the in-band error, if any, then reaches us before the socket is reset).
            let mut buf = ReadBuffer::new(UP_BUFFER, UP_BUFFER);
            loop {
                let mut want = usize::MAX;
                if replaying.load(Ordering::Relaxed) {
                    let kept = replay.lock().unwrap_or_else(|p| p.into_inner()).len();
                    if kept >= REPLAY_LIMIT {
                        // The replay buffer is full: wait for the far side's first byte, but
                        // not forever (a client that sends more than the window before any
                        // answer would stall): then the retry is given up and data flows on.
                        let replied = tokio::time::timeout(
                            config.replay_wait,
                            first_reply.wait_for(|replied| *replied),
                        )
                        .await;
                        if replied.is_err() && replaying.swap(false, Ordering::Relaxed) {
                            *replay.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
                            tracing::debug!(
                                window = REPLAY_LIMIT,
                                "no reply while the replay window was full: no retry for this connection"
                            );
                        }
                        continue;
                    }
                    want = want.min(REPLAY_LIMIT - kept);
                }
                let n = buf
                    .read_from(&mut local_r, want)
                    .await
                    .map_err(Side::Local)?;
                if n == 0 {
                    // Half-close: nothing more to send, but the far side's data keeps flowing
                    // (below) until it ends or the linger passes; only then the Close goes out.
                    ws_w.flush().await.map_err(Side::Tunnel)?;
                    return Ok::<(), Side>(());
                }
                if replaying.load(Ordering::Relaxed) {
                    replay
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(buf.filled(n));
                }
                ws_w.write_all(buf.filled(n)).await.map_err(Side::Tunnel)?;
                buf.adapt(n);
                up_bytes.fetch_add(n as u64, Ordering::Relaxed);
                touch();
            }
        };
        let down = async {
            let mut buf = ReadBuffer::new(MIN_READ_BUFFER, DOWN_BUFFER);
            loop {
                let n = buf
                    .read_from(&mut ws_r, usize::MAX)
                    .await
                    .map_err(Side::Tunnel)?;
                if n == 0 {
                    let _ = local_w.shutdown().await;
                    return Ok::<(), Side>(());
                }
                if replaying.swap(false, Ordering::Relaxed) {
                    *replay.lock().unwrap_or_else(|p| p.into_inner()) = Vec::new();
                    let _ = first_reply_tx.send(true);
                }
                local_w
                    .write_all(buf.filled(n))
                    .await
                    .map_err(Side::Local)?;
                // A no-op on sockets; buffered writers (stdout) must not hold tunnel bytes back.
                local_w.flush().await.map_err(Side::Local)?;
                buf.adapt(n);
                down_bytes.fetch_add(n as u64, Ordering::Relaxed);
                touch();
            }
        };
        let idle = async {
            let Some(limit) = config.idle_timeout else {
                return std::future::pending::<Duration>().await;
            };
            loop {
                let last = Duration::from_millis(last_activity.load(Ordering::Relaxed));
                let due = last + limit;
                let now = started.elapsed();
                if now >= due {
                    return limit;
                }
                tokio::time::sleep(due - now).await;
            }
        };
        tokio::pin!(up, down, idle);
        tokio::select! {
            r = &mut up => match r {
                // Local EOF: keep relaying the far side's bytes until it ends, or the linger
                // passes, or shutdown.
                Ok(()) => tokio::select! {
                    r = tokio::time::timeout(config.drain_timeout, &mut down) => match r {
                        Ok(Err(side)) => side.into(),
                        _ => Ending::LocalEof,
                    },
                    _ = cancel.cancelled() => Ending::Shutdown,
                },
                // A failed write to the Bastion is usually a symptom; the read side knows the
                // cause (an in-band HTTP error, a Close code), so give it a moment to say so.
                Err(Side::Tunnel(e)) => {
                    match tokio::time::timeout(Duration::from_millis(500), &mut down).await {
                        Ok(Err(Side::Tunnel(cause))) => Ending::TunnelError(cause),
                        // The Bastion ended the stream (its Close code is reported below).
                        Ok(Ok(())) => Ending::RemoteEnded,
                        _ => Ending::TunnelError(e),
                    }
                }
                Err(side) => side.into(),
            },
            r = &mut down => match r {
                Ok(()) => Ending::RemoteEnded,
                Err(side) => side.into(),
            },
            limit = &mut idle => Ending::Idle(limit),
            _ = cancel.cancelled() => Ending::Shutdown,
        }
    };

    let mut conn = ws_r.unsplit(ws_w);
    let local = local_r.unsplit(local_w);
    let stats = RelayStats {
        bytes_up: up_bytes.load(Ordering::Relaxed),
        bytes_down: down_bytes.load(Ordering::Relaxed),
        duration: started.elapsed(),
    };
    let result = match ending {
        Ending::LocalEof | Ending::RemoteEnded => Ok(()),
        Ending::LocalError(e) => {
            tracing::debug!(error = %e, "local connection failed; closing the tunnel");
            Err(Error::Io(e))
        }
        Ending::TunnelError(e) => Err(match Error::from_io(e) {
            Error::Io(io) => {
                Error::WebSocket(format!("the connection to the Bastion was lost: {io}"))
            }
            other => other,
        }),
        Ending::Idle(limit) => {
            tracing::info!(idle_secs = limit.as_secs(), "closing an idle connection");
            Ok(())
        }
        Ending::Shutdown => Ok(()),
    };
    let retry = match &result {
        Err(e) if e.is_in_band_http() && replaying.load(Ordering::Relaxed) => {
            Some(replay.into_inner().unwrap_or_else(|p| p.into_inner()))
        }
        _ => None,
    };
    // Close the WebSocket (no-op if a Close was already sent) and, unless the attempt is to be
    // redone, the local socket.
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.stream.shutdown()).await;
    if retry.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(1), local.shutdown()).await;
    }
    let abnormal = conn
        .peer_close()
        .filter(|c| !c.is_normal())
        .map(CloseInfo::to_error);
    let delete = match conn.session.take() {
        Some(session) => session.delete().await,
        None => Ok(()),
    };
    let result = match (result, abnormal) {
        (Err(e), _) => Err(e),
        (Ok(()), Some(close)) => Err(close),
        (Ok(()), None) => Ok(()),
    };
    if let Err(e) = &delete {
        tracing::warn!(error = %e, "session delete failed; it will be retried at shutdown");
    }
    PumpOutcome {
        stats,
        result,
        retry,
    }
}

/// Which side of a relay an I/O error came from.
enum Side {
    Local(io::Error),
    Tunnel(io::Error),
}

impl From<Side> for Ending {
    fn from(side: Side) -> Self {
        match side {
            Side::Local(e) => Ending::LocalError(e),
            Side::Tunnel(e) => Ending::TunnelError(e),
        }
    }
}

mod read_buffer;
#[cfg(test)]
mod tests;
