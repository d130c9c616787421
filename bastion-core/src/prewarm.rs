//! Pre-warmed sessions ([`crate::TunnelConfig::prewarm`]): N sessions kept fully connected
//! (token exchanged, WebSocket open, the target dialled) ahead of need, so that a new local
//! connection costs only its data round trip.
//!
//! Each of the N slots is a task that opens a session, then idles on it until one of:
//!
//! - a local connection claims it: the connection gets the session, with whatever the target
//!   sent meanwhile (an ssh banner) handed over first, and the slot opens the next one (waiting
//!   for room under the session cap, like any connection);
//! - it reaches its maximum age, or the Bastion or the target ends it (read while idle: a Close,
//!   an error, a failed keepalive): it is closed and deleted, and replaced;
//! - shutdown: it is closed and deleted like every other session.
//!
//! While idle a slot reads the session, so pings and failures are noticed, and keeps what it
//! reads, up to [`PRE_ATTACH_LIMIT`]; past that it stops reading (the Bastion's flow control then
//! holds the rest). Every pre-warmed session holds its permit under the session cap, so the cap
//! counts them. See docs/protocol.md#pre-warmed-sessions.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::connection::{ConnectionEvent, TunnelConnection};

/// Opening a session for the pool: a future that owns what it needs.
pub(crate) type Opening = Pin<Box<dyn Future<Output = crate::Result<TunnelConnection>> + Send>>;

/// Where the pool's sessions come from and where its events go: the tunnel, held weakly so
/// that the pool never keeps it alive (the tunnel implements this; the pool knows nothing else
/// of it).
pub(crate) trait SessionSource: Send + Sync + 'static {
    /// Opens a new session; `None` once the tunnel is gone.
    fn open(&self) -> Option<Opening>;
    /// Reports `event` to the tunnel's subscribers.
    fn emit(&self, event: ConnectionEvent);
}

/// What a pre-warmed session keeps of the bytes the target sends before a local connection
/// takes it; past this it stops reading until it is taken.
pub(crate) const PRE_ATTACH_LIMIT: usize = 64 * 1024;

/// The default [`crate::TunnelConfig::prewarm_max_age`]: well under the idle limits a waiting
/// session meets (sshd drops a client that has not logged in within 120 s, `LoginGraceTime`;
/// Azure's load balancers and NAT drop idle TCP flows after 4 minutes), so a session handed
/// over is one its target still holds open.
pub const DEFAULT_PREWARM_MAX_AGE: Duration = Duration::from_secs(60);

/// The first pause after a pre-warmed session fails to open or dies young, doubled on each
/// further failure up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How read-ahead is done while idle.
const READ_CHUNK: usize = 4096;

/// A claim on an idle session: the slot answers with the connection.
type Claim = oneshot::Sender<TunnelConnection>;

struct Ready {
    id: u64,
    claim: oneshot::Sender<Claim>,
}

/// The pool of pre-warmed sessions of one tunnel.
pub(crate) struct Pool {
    ready: Mutex<VecDeque<Ready>>,
    count: watch::Sender<usize>,
    cancel: CancellationToken,
    tracker: TaskTracker,
    next_id: AtomicU64,
}

impl Pool {
    /// Starts `n` slots keeping sessions of `tunnel` warm, each replaced after `max_age`, until
    /// `cancel` (or [`Pool::stop`]).
    pub(crate) fn start(
        tunnel: Arc<dyn SessionSource>,
        n: usize,
        max_age: Duration,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            ready: Mutex::new(VecDeque::with_capacity(n)),
            count: watch::Sender::new(0),
            cancel,
            tracker: TaskTracker::new(),
            next_id: AtomicU64::new(1),
        });
        for _ in 0..n {
            pool.tracker
                .spawn(slot(Arc::clone(&pool), Arc::clone(&tunnel), max_age));
        }
        tracing::debug!(
            sessions = n,
            max_age_s = max_age.as_secs(),
            "pre-warming sessions"
        );
        pool
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Ready>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Pre-warmed sessions ready to be taken.
    pub(crate) fn ready_count(&self) -> usize {
        *self.count.borrow()
    }

    /// Whether the pool has been stopped.
    pub(crate) fn is_stopped(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Completes once a session is ready (never, once the pool is stopped).
    pub(crate) async fn wait_ready(&self) {
        let mut count = self.count.subscribe();
        let ready = tokio::select! {
            r = count.wait_for(|n| *n > 0) => r.is_ok(),
            _ = self.cancel.cancelled() => false,
        };
        if !ready {
            std::future::pending::<()>().await;
        }
    }

    /// Takes a ready session, with the bytes its target already sent handed over first; `None`
    /// when none is ready.
    pub(crate) async fn take(&self) -> Option<TunnelConnection> {
        loop {
            let ready = {
                let mut queue = self.lock();
                let ready = queue.pop_front();
                self.count.send_replace(queue.len());
                ready?
            };
            let (reply, answer) = oneshot::channel();
            // A slot that has just retired its session no longer listens: try the next one.
            if ready.claim.send(reply).is_err() {
                continue;
            }
            if let Ok(conn) = answer.await {
                return Some(conn);
            }
        }
    }

    /// Stops the slots: each closes its session and deletes it. Waits for them until
    /// `deadline`.
    pub(crate) async fn stop(&self, deadline: tokio::time::Instant) {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some pre-warmed sessions did not close in time");
        }
    }

    /// Signals shutdown without waiting (a tunnel dropped, a `serve` future dropped).
    pub(crate) fn cancel(&self) {
        self.cancel.cancel();
    }

    fn push(&self, claim: oneshot::Sender<Claim>) -> (u64, usize) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut queue = self.lock();
        queue.push_back(Ready { id, claim });
        self.count.send_replace(queue.len());
        (id, queue.len())
    }

    fn remove(&self, id: u64) {
        let mut queue = self.lock();
        queue.retain(|r| r.id != id);
        self.count.send_replace(queue.len());
    }
}

/// How an idle session ended.
enum Idle {
    /// A local connection took it.
    Taken,
    /// It is to be closed, deleted and (unless shutting down) replaced.
    Retire(Box<TunnelConnection>, Retirement),
}

enum Retirement {
    MaxAge(Duration),
    /// The Bastion or the target ended it, or it failed (with the reason).
    Ended(String),
    /// A taker gave up between claiming it and receiving it.
    Abandoned,
    Shutdown,
}

/// One slot: open a session, idle on it until it is taken or retired, repeat.
async fn slot(pool: Arc<Pool>, tunnel: Arc<dyn SessionSource>, max_age: Duration) {
    // Consecutive sessions that failed to open or died before being taken or reaching their age.
    let mut failures: u32 = 0;
    loop {
        if failures > 0 {
            let wait = backoff(failures);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = pool.cancel.cancelled() => return,
            }
        }
        let Some(opening) = tunnel.open() else {
            return;
        };
        let opened = tokio::select! {
            r = opening => r,
            _ = pool.cancel.cancelled() => return,
        };
        let conn = match opened {
            Ok(conn) => conn,
            Err(Error::ShuttingDown) => return,
            Err(e) => {
                failures += 1;
                let retry_in = backoff(failures);
                tracing::warn!(error = %e, retry_in_ms = retry_in.as_millis() as u64, "could not open a pre-warmed session");
                tunnel.emit(ConnectionEvent::PrewarmFailed {
                    error: e.to_string(),
                    retry_in,
                });
                continue;
            }
        };
        let (claim, claimed) = oneshot::channel();
        let (id, ready) = pool.push(claim);
        tracing::debug!(ready, "pre-warmed session ready");
        tunnel.emit(ConnectionEvent::Prewarmed { ready });
        let outcome = idle(conn, claimed, max_age, &pool.cancel).await;
        pool.remove(id);
        let (conn, why) = match outcome {
            Idle::Taken => {
                failures = 0;
                continue;
            }
            Idle::Retire(conn, why) => (*conn, why),
        };
        let reason = match why {
            Retirement::Shutdown => None,
            Retirement::MaxAge(age) => {
                failures = 0;
                Some(format!("reached its maximum age of {} s", age.as_secs()))
            }
            Retirement::Abandoned => Some("its taker went away".to_owned()),
            Retirement::Ended(reason) => {
                failures += 1;
                Some(reason)
            }
        };
        if let Some(reason) = &reason {
            tracing::debug!(%reason, "replacing a pre-warmed session");
            tunnel.emit(ConnectionEvent::PrewarmRetired {
                reason: reason.clone(),
            });
        }
        // Close frame, then the DELETE (a failed DELETE stays registered for shutdown).
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "a retired pre-warmed session closed with an error");
        }
        if reason.is_none() {
            return;
        }
    }
}

/// Idles on `conn`: keeps what the target sends (bounded), notices its end, and hands it over
/// when claimed.
async fn idle(
    mut conn: TunnelConnection,
    mut claimed: oneshot::Receiver<Claim>,
    max_age: Duration,
    cancel: &CancellationToken,
) -> Idle {
    let retire_at = tokio::time::Instant::now() + max_age;
    let mut pre_attach = BytesMut::new();
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let room = PRE_ATTACH_LIMIT - pre_attach.len();
        let want = room.min(READ_CHUNK);
        // A pending read consumes nothing when another branch wins (AsyncRead), so no byte is
        // lost between the read-ahead and the hand-over.
        let wake = tokio::select! {
            biased;
            _ = cancel.cancelled() => Wake::Shutdown,
            claim = &mut claimed => Wake::Claimed(claim.ok()),
            _ = tokio::time::sleep_until(retire_at) => Wake::Aged,
            r = conn.read(&mut chunk[..want]), if want > 0 => Wake::Read(r),
        };
        match wake {
            Wake::Shutdown => return Idle::Retire(Box::new(conn), Retirement::Shutdown),
            Wake::Claimed(Some(reply)) => {
                conn.hand_over(pre_attach.freeze());
                return match reply.send(conn) {
                    Ok(()) => Idle::Taken,
                    Err(conn) => Idle::Retire(Box::new(conn), Retirement::Abandoned),
                };
            }
            // The pool dropped its claim without using it: it is going away.
            Wake::Claimed(None) => return Idle::Retire(Box::new(conn), Retirement::Shutdown),
            Wake::Aged => return Idle::Retire(Box::new(conn), Retirement::MaxAge(max_age)),
            Wake::Read(Ok(0)) => {
                let reason = match conn.peer_close() {
                    Some(close) if !close.is_normal() => {
                        format!("the Bastion closed it ({})", close.to_error())
                    }
                    _ => "the Bastion or the target ended it".to_owned(),
                };
                return Idle::Retire(Box::new(conn), Retirement::Ended(reason));
            }
            Wake::Read(Ok(n)) => pre_attach.extend_from_slice(&chunk[..n]),
            Wake::Read(Err(e)) => {
                let reason = format!("it failed: {}", Error::from_io(e));
                return Idle::Retire(Box::new(conn), Retirement::Ended(reason));
            }
        }
    }
}

/// What woke an idle slot.
enum Wake {
    Shutdown,
    Claimed(Option<Claim>),
    Aged,
    Read(std::io::Result<usize>),
}

/// The pause before the next attempt after `failures` consecutive failures (at least 1).
fn backoff(failures: u32) -> Duration {
    let doubled = RETRY_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    doubled.min(RETRY_MAX)
}

#[cfg(test)]
mod tests;
