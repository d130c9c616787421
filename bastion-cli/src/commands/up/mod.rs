//! `bastion up -f FILE`: several named tunnels from one file (VMs, IP connect, AKS clusters with
//! their kubeconfigs), sharing one credential, one token cache, one ARM client and one Bastion
//! client per endpoint. SIGHUP re-reads the file: added tunnels start, removed ones stop (their
//! sessions deleted), changed ones restart, unchanged ones keep running and keep their
//! connections; a file that no longer reads is reported and the running set kept. SIGINT and
//! SIGTERM close every tunnel, delete every session and undo every kubeconfig.
//! See the README's "Many tunnels from one file".

pub mod config;
mod entry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bastion_arm::{ArmClient, SessionDir};
use bastion_core::{BastionClient, TokenSource};
use serde_json::json;

use crate::cli::UpArgs;
use crate::commands::kubefile;
use crate::context::Context;
use crate::exit::{CliError, CliResult, Code, Outcome};
use crate::output::Output;
use crate::signals::{Received, Signals};

use self::config::{TunnelSpec, UpFile};
use self::entry::Live;

/// The prefix of the private temporary directory holding the kubeconfigs of AKS tunnels that
/// name no `kubeconfig-out`.
const SESSION_DIR_PREFIX: &str = "bastion-up-";

/// Runs `bastion up`.
pub async fn run(ctx: &Context, args: &UpArgs) -> CliResult<Outcome> {
    let out = ctx.out;
    let mut signals = Signals::install()
        .map_err(|e| CliError::new(Code::Other, format!("cannot handle signals: {e}")))?;
    // The whole file is checked before any network call.
    let file = config::load(&args.file)?;
    // What a run killed outright left behind is cleaned up first (as `bastion aks` does).
    super::sweep_temp_dirs(&out, SESSION_DIR_PREFIX, "bastion up");
    if let Ok(store) = kubefile::store() {
        let _ = kubefile::recover(&out, &store);
    }

    let mut up = Up::new(ctx, &args.file)?;
    // Signed in once, up front: a credential problem is one error, not one per tunnel.
    signals
        .interruptible(async { up.tokens.token().await.map_err(CliError::from) })
        .await?;
    let mut reload = false;
    for spec in &file.tunnels {
        match up.start_guarded(spec, &mut signals, &mut reload).await {
            Ok(live) => up.live.push(live),
            Err(stop) => {
                up.stop_all().await;
                return Err(match stop {
                    Stop::Failed(e) => e,
                    Stop::Signal(sig) => CliError::new(
                        Code::Interrupted(sig.exit_status()),
                        format!("interrupted by {}", sig.name()),
                    )
                    .hint("the tunnels started so far were closed and their sessions deleted"),
                });
            }
        }
    }
    let names: Vec<&str> = up.live.iter().map(|l| l.spec.name.as_str()).collect();
    out.essential(
        format!(
            "{} ready. SIGHUP re-reads {}; Ctrl-C or SIGTERM closes {}.",
            match names.len() {
                1 => "The tunnel is".to_owned(),
                n => format!("All {n} tunnels are"),
            },
            up.shown,
            if names.len() == 1 { "it" } else { "them" }
        ),
        json!({"event": "up", "tunnels": names, "file": up.shown}),
    );

    let sig = loop {
        if reload {
            reload = false;
            if let Some(sig) = up.reload(&mut signals, &mut reload).await {
                break sig;
            }
            continue;
        }
        match signals.recv().await {
            Received::Hangup => reload = true,
            sig => break sig,
        }
    };
    out.info(format!(
        "{}: closing {} tunnel(s) and deleting their sessions (press Ctrl-C again to exit at once)",
        sig.name(),
        up.live.len()
    ));
    signals.exit_on_next(out.quiet);
    let undeleted = up.stop_all().await;
    if undeleted > 0 {
        return Err(CliError::new(
            Code::Tunnel,
            format!("{undeleted} Bastion session(s) could not be deleted"),
        )
        .hint("they expire on the service's idle timeout; check the network path to the Bastion"));
    }
    Ok(Outcome::Success)
}

/// Why starting a tunnel did not finish.
enum Stop {
    /// It failed.
    Failed(CliError),
    /// SIGINT or SIGTERM came first.
    Signal(Received),
}

/// What the tunnels share, and the running set.
struct Up<'a> {
    ctx: &'a Context,
    path: PathBuf,
    shown: String,
    arm: ArmClient,
    tokens: TokenSource,
    /// One Bastion client per endpoint (`host[:port]`), kept across reloads so its warm
    /// connection and pool serve every tunnel through that Bastion.
    clients: Mutex<HashMap<String, BastionClient>>,
    session_dir: Mutex<Option<SessionDir>>,
    live: Vec<Live>,
}

impl<'a> Up<'a> {
    fn new(ctx: &'a Context, path: &Path) -> CliResult<Self> {
        Ok(Self {
            ctx,
            path: path.to_path_buf(),
            shown: path.display().to_string(),
            arm: ctx.arm_client()?,
            tokens: TokenSource::new(ctx.credential()?, ctx.scope()),
            clients: Mutex::new(HashMap::new()),
            session_dir: Mutex::new(None),
            live: Vec::new(),
        })
    }

    /// Starts `spec`, unless SIGINT or SIGTERM comes first. A SIGHUP meanwhile is remembered
    /// in `reload` (the file is read again once this start is done).
    async fn start_guarded(
        &self,
        spec: &TunnelSpec,
        signals: &mut Signals,
        reload: &mut bool,
    ) -> Result<Live, Stop> {
        let start = entry::start(self, spec);
        tokio::pin!(start);
        loop {
            tokio::select! {
                r = &mut start => {
                    return r.map_err(|mut e| {
                        e.what = format!("tunnel '{}': {}", spec.name, e.what);
                        Stop::Failed(e)
                    });
                }
                sig = signals.recv() => match sig {
                    Received::Hangup => *reload = true,
                    sig => return Err(Stop::Signal(sig)),
                },
            }
        }
    }

    /// Re-reads the file and applies the difference. Returns the terminating signal that cut
    /// it short, if one did.
    async fn reload(&mut self, signals: &mut Signals, reload: &mut bool) -> Option<Received> {
        let out = self.ctx.out;
        out.info(format!("SIGHUP: re-reading {}", self.shown));
        let file = match config::load(&self.path) {
            Ok(f) => f,
            Err(e) => {
                reload_failed(&out, &e, self.live.len());
                return None;
            }
        };
        let d = config::diff(self.live.iter().map(|l| &l.spec), &file);
        out.event(
            format!(
                "Reloaded {}: {} added, {} removed, {} changed, {} unchanged",
                self.shown,
                d.added.len(),
                d.removed.len(),
                d.changed.len(),
                d.unchanged.len()
            ),
            json!({
                "event": "reloaded",
                "file": self.shown,
                "added": d.added,
                "removed": d.removed,
                "changed": d.changed,
                "unchanged": d.unchanged,
            }),
        );
        // Stopped first: a changed tunnel keeps its port, and a new one may take a freed one.
        let going: Vec<&String> = d.removed.iter().chain(&d.changed).collect();
        let (stopping, kept): (Vec<Live>, Vec<Live>) = std::mem::take(&mut self.live)
            .into_iter()
            .partition(|l| going.contains(&&l.spec.name));
        self.live = kept;
        stop_each(&out, stopping).await;
        for spec in order(&file, &d.added, &d.changed) {
            match self.start_guarded(spec, signals, reload).await {
                Ok(live) => self.live.push(live),
                Err(Stop::Failed(e)) => tunnel_failed(&out, &spec.name, &e),
                Err(Stop::Signal(sig)) => return Some(sig),
            }
        }
        None
    }

    /// Stops every tunnel (concurrently); returns the sessions left undeleted.
    async fn stop_all(&mut self) -> usize {
        let out = self.ctx.out;
        let undeleted = stop_each(&out, std::mem::take(&mut self.live)).await;
        // The temporary kubeconfigs are gone with their tunnels; now their directory.
        drop(
            self.session_dir
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        undeleted
    }

    /// The Bastion client for `config`'s endpoint.
    fn client(&self, config: &bastion_core::TunnelConfig) -> CliResult<BastionClient> {
        let key = config.endpoint.authority();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = BastionClient::new(config.http.clone(), &config.websocket)?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Where an AKS tunnel without `kubeconfig-out` writes its kubeconfig: a 0700 directory
    /// of this process, removed at exit (or by the next run if this one is killed).
    fn temporary_kubeconfig(&self, name: &str) -> CliResult<PathBuf> {
        let mut dir = self.session_dir.lock().unwrap_or_else(|p| p.into_inner());
        if dir.is_none() {
            *dir = Some(super::session_dir(SESSION_DIR_PREFIX)?);
        }
        let dir = dir.as_ref().map(SessionDir::path).unwrap_or(Path::new("."));
        Ok(dir.join(format!("{name}.kubeconfig")))
    }
}

/// The tunnels of `file` named in `added` or `changed`, in file order.
fn order<'f>(file: &'f UpFile, added: &[String], changed: &[String]) -> Vec<&'f TunnelSpec> {
    file.tunnels
        .iter()
        .filter(|t| added.contains(&t.name) || changed.contains(&t.name))
        .collect()
}

/// Stops the tunnels concurrently; returns the sessions left undeleted.
async fn stop_each(out: &Output, tunnels: Vec<Live>) -> usize {
    let mut set = tokio::task::JoinSet::new();
    for live in tunnels {
        let out = *out;
        set.spawn(async move { live.stop(&out).await });
    }
    let mut undeleted = 0;
    while let Some(r) = set.join_next().await {
        undeleted += r.unwrap_or(0);
    }
    undeleted
}

/// A file that does not read on SIGHUP: one line, and the running set is kept.
fn reload_failed(out: &Output, e: &CliError, running: usize) {
    let kept = format!("the {running} running tunnel(s) are kept");
    if out.is_json() {
        out.json(&json!({
            "event": "reload_failed",
            "error": e.what,
            "hint": e.hint,
            "kept": running,
        }));
    } else {
        eprintln!("warning: reload failed: {e}; {kept}");
    }
}

/// A tunnel that could not be started on reload: one line; the others keep running.
fn tunnel_failed(out: &Output, name: &str, e: &CliError) {
    if out.is_json() {
        out.json(&json!({
            "event": "tunnel_failed",
            "tunnel": name,
            "error": e.what,
            "hint": e.hint,
            "kind": e.code.name(),
        }));
    } else {
        eprintln!("warning: {e}; the other tunnels keep running (SIGHUP retries)");
    }
}
