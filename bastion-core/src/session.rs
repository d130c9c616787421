//! Bastion sessions: one token exchange, one WebSocket, and a DELETE on every exit path.
//!
//! A session is registered as soon as its `POST /api/tokens` succeeds and leaves the registry
//! only when its DELETE returns 200/204/404 (or shutdown gives up on it). Dropping a [`Session`]
//! without deleting it spawns the DELETE in the background, tracked so that shutdown can wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::task::TaskTracker;

use crate::api::BastionApi;
use crate::protocol::Endpoint;
use crate::{Error, Result, Secret};

/// At most this many DELETEs run at once when many sessions end together (at shutdown, and
/// when a burst of connections closes): they reuse pooled keep-alive connections instead of
/// opening one HTTPS connection each, which costs handshakes and leaves the memory of a
/// thousand TLS connections behind (docs/architecture.md#memory).
const DELETE_CONCURRENCY: usize = 16;
/// A failed DELETE is tried again in the background this many times while the tunnel runs,
/// after 1, 2, 4, … seconds (at most a minute apart); shutdown tries whatever is left.
const DELETE_RETRIES: u32 = 8;
const DELETE_RETRY_MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct LiveSession {
    endpoint: Endpoint,
    auth_token: Secret,
    node_id: String,
}

/// What a tunnel knows about its live sessions.
pub(crate) struct Registry {
    live: Mutex<HashMap<u64, LiveSession>>,
    next_id: AtomicU64,
    api: Arc<dyn BastionApi>,
    delete_timeout: Duration,
    tracker: TaskTracker,
    /// Cancelled at shutdown: background retries stop and leave the rest to it.
    closing: tokio_util::sync::CancellationToken,
    deleted: AtomicU64,
    /// [`DELETE_CONCURRENCY`] permits, one per DELETE in flight.
    deletes_in_flight: tokio::sync::Semaphore,
}

impl Registry {
    pub(crate) fn new(api: Arc<dyn BastionApi>, delete_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            api,
            delete_timeout,
            tracker: TaskTracker::new(),
            closing: tokio_util::sync::CancellationToken::new(),
            deleted: AtomicU64::new(0),
            deletes_in_flight: tokio::sync::Semaphore::new(DELETE_CONCURRENCY),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LiveSession>> {
        // A poisoned map is still a valid map: a panic elsewhere must not leak sessions.
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a freshly minted session.
    pub(crate) fn register(
        self: &Arc<Self>,
        endpoint: Endpoint,
        auth_token: Secret,
        node_id: String,
    ) -> Session {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(
            id,
            LiveSession {
                endpoint,
                auth_token,
                node_id: node_id.clone(),
            },
        );
        Session {
            id,
            node_id,
            registry: Arc::clone(self),
            done: false,
        }
    }

    /// Runs `fut` (a token exchange) as a task that shutdown waits for before it deletes what
    /// is left, so a session minted after its caller gave up is not missed.
    pub(crate) fn spawn<T: Send + 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.tracker.spawn(fut)
    }

    /// Sessions minted and not yet deleted.
    pub(crate) fn live_count(&self) -> usize {
        self.lock().len()
    }

    /// Sessions this registry has deleted (including ones the service had already dropped).
    pub(crate) fn deleted_count(&self) -> u64 {
        self.deleted.load(Ordering::Relaxed)
    }

    /// Deletes session `id` if it is still live. The session leaves the registry only once the
    /// service confirms (200/204/404), so a failed or cancelled DELETE can be tried again.
    async fn delete(&self, id: u64) -> Result<()> {
        if !self.lock().contains_key(&id) {
            return Ok(());
        }
        // Waiting for a turn is not part of the DELETE's own timeout. The semaphore is never
        // closed, so acquiring only fails if it were.
        let _permit = self.deletes_in_flight.acquire().await.ok();
        let Some(live) = self.lock().get(&id).cloned() else {
            return Ok(());
        };
        let outcome = tokio::time::timeout(
            self.delete_timeout,
            self.api
                .delete_token(&live.endpoint, &live.auth_token, &live.node_id),
        )
        .await
        .unwrap_or(Err(Error::Timeout {
            what: "session delete",
            after: self.delete_timeout,
        }));
        match outcome {
            Ok(existed) => {
                let mut live_sessions = self.lock();
                if live_sessions.remove(&id).is_some() {
                    self.deleted.fetch_add(1, Ordering::Relaxed);
                }
                // After a burst, give the map's capacity back (only once it is less than a
                // quarter full, so the rehashing cost stays amortised).
                if live_sessions.capacity() > 64
                    && live_sessions.len() < live_sessions.capacity() / 4
                {
                    let keep = live_sessions.len() * 2;
                    live_sessions.shrink_to(keep);
                }
                drop(live_sessions);
                if existed {
                    tracing::debug!(node = %live.node_id, "session deleted");
                } else {
                    tracing::debug!(node = %live.node_id, "session already deleted");
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(node = %live.node_id, error = %e, "could not delete a Bastion session; retrying in the background");
                Err(e)
            }
        }
    }

    /// Deletes session `id`, and on failure keeps trying in the background (with backoff)
    /// while the tunnel runs.
    async fn delete_or_retry(self: &Arc<Self>, id: u64) -> Result<()> {
        let result = self.delete(id).await;
        if result.is_err() {
            self.retry_in_background(id);
        }
        result
    }

    fn retry_in_background(self: &Arc<Self>, id: u64) {
        let registry = Arc::clone(self);
        self.spawn_tracked(async move {
            let mut wait = Duration::from_secs(1);
            for _ in 0..DELETE_RETRIES {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = registry.closing.cancelled() => return,
                }
                if registry.delete(id).await.is_ok() {
                    return;
                }
                wait = (wait * 2).min(DELETE_RETRY_MAX_WAIT);
            }
            tracing::warn!("a Bastion session could not be deleted; shutdown will try once more");
        });
    }

    fn delete_in_background(self: &Arc<Self>, id: u64) {
        let registry = Arc::clone(self);
        self.spawn_tracked(async move {
            let _ = registry.delete_or_retry(id).await;
        });
    }

    fn spawn_tracked(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "a Bastion session was dropped outside a runtime; it stays live until shutdown or the service's idle timeout"
            );
            return;
        };
        handle.spawn(self.tracker.track_future(fut));
    }

    /// Waits for background deletes, then deletes every session still live (at most 16 at a time),
    /// retrying each once, all within `budget`. Returns how many sessions are left undeleted.
    pub(crate) async fn delete_all(&self, budget: Duration) -> usize {
        let work = async {
            self.closing.cancel();
            self.tracker.close();
            self.tracker.wait().await;
            for _round in 0..2 {
                let ids: Vec<u64> = self.lock().keys().copied().collect();
                if ids.is_empty() {
                    break;
                }
                futures_util::stream::iter(ids)
                    .for_each_concurrent(DELETE_CONCURRENCY, |id| async move {
                        let _ = self.delete(id).await;
                    })
                    .await;
            }
        };
        if tokio::time::timeout(budget, work).await.is_err() {
            tracing::warn!("shutdown ran out of time deleting Bastion sessions");
        }
        self.tracker.reopen();
        let left = self.live_count();
        if left > 0 {
            tracing::warn!(
                left,
                "Bastion sessions left undeleted; the service ends them at its idle timeout"
            );
        }
        left
    }
}

/// One live Bastion session. Deleted by [`Session::delete`], or in the background when dropped.
pub(crate) struct Session {
    id: u64,
    node_id: String,
    registry: Arc<Registry>,
    done: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("node_id", &self.node_id)
            .finish()
    }
}

impl Session {
    /// The node holding this session.
    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Deletes the session now (a 404 counts as already gone).
    pub(crate) async fn delete(mut self) -> Result<()> {
        // From here on the registry owns the cleanup: a failed or cancelled DELETE leaves the
        // session registered, and shutdown retries it.
        self.done = true;
        self.registry.delete_or_retry(self.id).await
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.done {
            self.registry.delete_in_background(self.id);
        }
    }
}
