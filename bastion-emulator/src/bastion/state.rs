//! The state every connection and handler of one Bastion emulator shares: configuration,
//! session registry, fault knobs, node ids and the task group that shutdown waits for.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::{BastionFixture, EmulatorConfig};
use super::faults::Faults;
use super::registry::Registry;
use crate::ids;

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

    pub(crate) async fn drain(&self, grace: Duration) {
        let mut set = std::mem::take(&mut *self.lock());
        let _ =
            tokio::time::timeout(grace, async { while set.join_next().await.is_some() {} }).await;
        set.abort_all();
        while set.join_next().await.is_some() {}
    }
}

/// A fresh control API secret: 32 random bytes from the OS-seeded generator, base64url.
fn control_secret() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
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
    /// What a control API request must carry in [`super::CONTROL_SECRET_HEADER`]: random per
    /// run (never from the seeded RNG), known only to whoever started the emulator.
    pub(crate) control_secret: String,
}

impl Shared {
    pub(crate) fn new(
        config: EmulatorConfig,
        local_addr: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        let nodes = (0..config.nodes).map(|_| ids::guid(&mut rng)).collect();
        Self {
            config,
            registry: Registry::new(),
            faults: Mutex::new(Faults::default()),
            rate_limited: AtomicU64::new(0),
            rng: Mutex::new(rng),
            nodes,
            next_node: AtomicUsize::new(0),
            local_addr,
            shutdown,
            tasks: TaskGroup::default(),
            data_pod_bastion: Mutex::new(None),
            control_secret: control_secret(),
        }
    }

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

    /// A receiver that turns `true` when shutdown is requested.
    pub(crate) fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
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
