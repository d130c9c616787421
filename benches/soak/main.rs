//! `bastion-soak`: the chaos soak (README, "Hardening proof"). Runs the real `bastion` binary's
//! tunnels against the emulators, in this process, with hundreds of concurrent client
//! connections checking every echoed byte while every fault knob cycles, and signals the CLI in
//! the middle; then checks what must hold and prints a summary. Exit code 1 on any violation.
//!
//! - Two tunnel processes serve the load: the survivor runs from start to end (its file
//!   descriptors and memory are measured), the victim is stopped with SIGINT, SIGTERM and
//!   SIGKILL during the chaos, each time restarted. Each process (incarnation) tunnels to a
//!   target resource id of its own, so the emulator's sessions say whose they are.
//! - Meanwhile `bastion aks --kubeconfig-path FILE --write-kubeconfig-in-place` is SIGKILLed
//!   while it has FILE edited, and the next `bastion aks` must put FILE back.
//! - At the end: no byte echoed back differed from what was sent, at its offset, and none came
//!   past the end (`load`); every connection started after the chaos completed; every session
//!   of every process that was not SIGKILLed was deleted (the sessions of the SIGKILLed one
//!   are counted apart: the real service expires them); the survivor's descriptors and memory
//!   are back near their baseline; FILE is byte-identical with its mode; no `bastion` panicked.
//!
//! Run it through `scripts/soak.sh` (`--short` for CI). `--help` lists the options.

mod chaos;
mod load;
mod procs;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bastion_emulator::sandbox::{FULL_ACCESS_USER, TENANT};
use bastion_emulator::{
    BastionFixture, Emulator, EmulatorConfig, Faults, Sandbox, TargetFixture, TestClaims,
    vm_resource_id,
};
use tokio::sync::watch;

use chaos::Profile;
use load::{Tally, Worker};
use procs::Bastion;

const HELP: &str = "\
bastion-soak: the chaos soak of the `bastion` binary against the emulators.

Usage: bastion-soak [OPTIONS]   (normally through scripts/soak.sh)

Options:
  --short            the CI form: about 30 s, 120 connections (default: about 2.5 min, 300)
  --bastion PATH     the bastion binary (default: `bastion` next to this binary)
  --logs DIR         child process logs (default target/soak)
  --connections N    concurrent client connections (two thirds on the survivor)
  --chaos-seconds N  how long the faults cycle (default 108; short 16)
  -h, --help         this text
";

/// What the run is asked to do.
struct Options {
    bastion: PathBuf,
    logs: PathBuf,
    connections: u64,
    chaos: Duration,
    calm: Duration,
    step: Duration,
}

impl Options {
    fn parse() -> Result<Option<Self>, String> {
        let mut args = std::env::args().skip(1);
        let mut short = false;
        let mut bastion = None;
        let mut logs = PathBuf::from("target/soak");
        let mut connections = None;
        let mut chaos_secs = None;
        let number = |v: Option<String>, what: &str| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{what} needs a positive number — see --help"))
        };
        while let Some(a) = args.next() {
            match a.as_str() {
                "--short" => short = true,
                "--bastion" => bastion = args.next().map(PathBuf::from),
                "--logs" => logs = args.next().map(PathBuf::from).unwrap_or(logs),
                "--connections" => connections = Some(number(args.next(), "--connections")?),
                "--chaos-seconds" => chaos_secs = Some(number(args.next(), "--chaos-seconds")?),
                "-h" | "--help" => {
                    print!("{HELP}");
                    return Ok(None);
                }
                other => return Err(format!("unknown option {other:?} — see --help")),
            }
        }
        let bastion = match bastion {
            Some(b) => b,
            None => std::env::current_exe()
                .map_err(|e| e.to_string())?
                .with_file_name("bastion"),
        };
        if !bastion.is_file() {
            return Err(format!(
                "no bastion binary at {} — build it (cargo build -p bastion-cli) or pass --bastion PATH",
                bastion.display()
            ));
        }
        let chaos = Duration::from_secs(chaos_secs.unwrap_or(if short { 16 } else { 108 }));
        // Nine profiles: each comes up at least once.
        let steps = (chaos.as_secs() / 2).clamp(9, 18) as u32;
        Ok(Some(Self {
            bastion,
            logs,
            connections: connections.unwrap_or(if short { 120 } else { 300 }),
            chaos,
            calm: Duration::from_secs(if short { 4 } else { 10 }),
            step: chaos / steps,
        }))
    }
}

/// A soak violation: what went wrong.
#[derive(Default)]
struct Findings {
    violations: Vec<String>,
    notes: Vec<String>,
}

impl Findings {
    fn violation(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("VIOLATION: {what}");
        self.violations.push(what);
    }

    fn note(&mut self, what: impl Into<String>) {
        let what = what.into();
        eprintln!("soak: {what}");
        self.notes.push(what);
    }
}

/// The user's kubeconfig the `bastion aks` run edits in place.
const USERS_KUBECONFIG: &str = "\
apiVersion: v1
kind: Config
clusters:
- cluster: {server: 'https://other.example.test:6443'}
  name: other
contexts:
- context: {cluster: other, user: other-user}
  name: other
current-context: other
preferences: {}
users:
- name: other-user
  user: {token: not-a-real-token}
";

/// A child for `bastion aks -- …` that runs until its parent is gone (so a SIGKILLed bastion
/// leaves no orphan), after saying so on stderr.
const WAIT_FOR_PARENT: &str =
    "echo 'child started' >&2; while kill -0 $PPID 2>/dev/null; do sleep 0.1; done";

/// Everything the run shares.
struct Soak {
    opts: Options,
    sandbox: Sandbox,
    emu: Emulator,
    endpoint: String,
    env: Vec<(String, String)>,
    aks_env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    findings: Findings,
    killed: Vec<String>,
    panicked: Vec<String>,
}

/// Per-tunnel-process limits of the checks (see the README, "Hardening proof").
/// Descriptors: the HTTPS pool may keep up to 8 idle keep-alive connections for 60 s, plus
/// the warm connection and a few more.
const FD_SLACK: u64 = 40;
/// Memory: what the allocator keeps after hundreds of connections came and went.
const RSS_SLACK_KIB: u64 = 48 << 10;

const READY: Duration = Duration::from_secs(60);
const STOP: Duration = Duration::from_secs(30);

fn vm(incarnation: usize) -> String {
    vm_resource_id(&format!("soak-vm-{incarnation}"))
}

impl Soak {
    async fn start(opts: Options) -> Result<Self, String> {
        std::fs::create_dir_all(&opts.logs).map_err(|e| format!("{}: {e}", opts.logs.display()))?;
        let sandbox = Sandbox::start().await.map_err(|e| e.to_string())?;
        let (echo, _task) = bastion_emulator::spawn_echo_target()
            .await
            .map_err(|e| e.to_string())?;
        let fixture = BastionFixture::new("Standard", TENANT, "soak-bastion");
        let mut config = EmulatorConfig::single(fixture.clone()).ca(sandbox.ca().clone());
        for i in 0..16 {
            config = config.with_target(TargetFixture::new(vm(i), 22, echo));
        }
        let emu = Emulator::start(config).await.map_err(|e| e.to_string())?;
        let endpoint = emu.endpoint_for(&fixture.dns_name);
        let dir = tempfile::Builder::new()
            .prefix("bastion-soak-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, sandbox.ca_pem()).map_err(|e| e.to_string())?;
        for sub in ["tmp", "state", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).map_err(|e| e.to_string())?;
        }
        let token = TestClaims::new(TENANT, FULL_ACCESS_USER)
            .upn("alice@contoso.test")
            .mint();
        let resolve = |list: Vec<(String, std::net::IpAddr)>| {
            list.iter()
                .map(|(h, ip)| format!("{h}={ip}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let path = |sub: &str| dir.path().join(sub).display().to_string();
        let base = vec![
            ("BASTION_CA_FILE".to_owned(), ca_file.display().to_string()),
            ("BASTION_AUTH".to_owned(), "token".to_owned()),
            ("BASTION_TOKEN".to_owned(), token),
            ("TMPDIR".to_owned(), path("tmp")),
            ("XDG_STATE_HOME".to_owned(), path("state")),
            ("HOME".to_owned(), path("home")),
        ];
        let mut env = base.clone();
        env.push((
            "BASTION_RESOLVE".to_owned(),
            resolve(emu.resolve_overrides()),
        ));
        let mut aks_env = base;
        aks_env.push(("BASTION_RESOLVE".to_owned(), resolve(sandbox.resolve())));
        aks_env.push((
            "BASTION_ARM_ENDPOINT".to_owned(),
            sandbox.arm_endpoint().to_string(),
        ));
        aks_env.push((
            "AZURE_SUBSCRIPTION_ID".to_owned(),
            bastion_emulator::sandbox::SPOKE_SUBSCRIPTION.to_owned(),
        ));
        Ok(Self {
            opts,
            sandbox,
            emu,
            endpoint,
            env,
            aks_env,
            dir,
            findings: Findings::default(),
            killed: Vec::new(),
            panicked: Vec::new(),
        })
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.opts.logs.join(format!("{name}.log"))
    }

    /// Starts tunnel incarnation `i` and waits for its port.
    async fn tunnel(&self, name: &str, i: usize) -> Result<(Bastion, u16), String> {
        let vm = vm(i);
        let args = [
            "tunnel",
            "--bastion-endpoint",
            &self.endpoint,
            "--target-resource-id",
            &vm,
            "--resource-port",
            "22",
        ];
        let cmd = procs::command(&self.opts.bastion, &args, &self.env);
        let mut p = Bastion::spawn(name, cmd, &self.log_path(name)).await?;
        let port = p.ready_port(READY).await?;
        Ok((p, port))
    }

    /// Sessions of incarnation `i` not deleted.
    fn undeleted(&self, i: usize) -> usize {
        let id = vm(i);
        self.emu
            .active_sessions()
            .iter()
            .filter(|s| s.resource_id.eq_ignore_ascii_case(&id))
            .count()
    }

    /// Waits (bounded) until incarnation `i` has no undeleted session; how many remain.
    async fn drained(&self, i: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.undeleted(i);
            if left == 0 || Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops a tunnel with `signal`, and checks how it went. SIGINT and SIGTERM: exit 0 and
    /// every session of it deleted; SIGKILL: its undeleted sessions are counted apart.
    async fn stop(&mut self, mut p: Bastion, i: usize, signal: &str) {
        if let Err(e) = p.signal(signal) {
            self.findings.violation(e);
            return;
        }
        match p.wait(STOP).await {
            Err(e) => self.findings.violation(e),
            Ok(status) if signal == "KILL" => {
                let left = self.undeleted(i);
                self.killed.push(vm(i));
                self.findings.note(format!(
                    "{} SIGKILLed ({status}): {left} session(s) left for the service to expire",
                    p.name
                ));
            }
            Ok(status) => {
                let left = self.undeleted(i);
                if !status.success() {
                    self.findings.violation(format!(
                        "{} exited with {status} after SIG{signal} (log: {})",
                        p.name,
                        self.log_path(&p.name).display()
                    ));
                }
                if left > 0 {
                    self.findings.violation(format!(
                        "{} left {left} session(s) undeleted after SIGINT/SIGTERM",
                        p.name
                    ));
                }
                self.findings
                    .note(format!("{} stopped by SIGINT/SIGTERM: {status}", p.name));
            }
        }
        if p.panicked() {
            self.panicked.push(p.name.clone());
        }
    }

    /// A few echo round trips through `port` with no fault: all must complete.
    async fn warm_up(&mut self, port: u16) {
        let tally = Arc::new(Tally::default());
        let (_port_tx, port_rx) = watch::channel(Some(port));
        let (_profile_tx, profile_rx) = watch::channel("warm-up");
        let stop = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        for id in 0..8 {
            let w = Worker {
                id: 1_000_000 + id,
                port: port_rx.clone(),
                tally: Arc::clone(&tally),
                stop: Arc::clone(&stop),
                limit: Duration::from_secs(20),
                tunnel: "survivor",
                profile: profile_rx.clone(),
            };
            set.spawn(w.run());
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stop.store(true, Ordering::Relaxed);
        while set.join_next().await.is_some() {}
        let completed = tally.completed.load(Ordering::Relaxed);
        let failed = tally.failed.load(Ordering::Relaxed) + tally.abandoned.load(Ordering::Relaxed);
        if completed == 0 || failed > 0 {
            self.findings.violation(format!(
                "warm-up without faults: {completed} connection(s) completed, {failed} failed"
            ));
        }
    }

    /// `bastion aks --kubeconfig-path FILE --write-kubeconfig-in-place`, SIGKILLed while FILE
    /// is edited; the next run must put FILE back byte for byte, mode included.
    async fn aks_killed_then_restored(&mut self, file: &Path) {
        let path = file.display().to_string();
        let args = [
            "aks",
            "-n",
            "myaks",
            "-g",
            "aks-rg",
            "--kubeconfig-path",
            &path,
            "--write-kubeconfig-in-place",
            "--",
            "sh",
            "-c",
            WAIT_FOR_PARENT,
        ];
        let cmd = procs::command(&self.opts.bastion, &args, &self.aks_env);
        let mut p = match Bastion::spawn("aks-killed", cmd, &self.log_path("aks-killed")).await {
            Ok(p) => p,
            Err(e) => return self.findings.violation(e),
        };
        if let Err(e) = p.wait_for(|l| l == "child started", READY).await {
            return self.findings.violation(format!(
                "{e} (log: {})",
                self.log_path("aks-killed").display()
            ));
        }
        let edited = std::fs::read(file).map(|b| b != USERS_KUBECONFIG.as_bytes());
        if !matches!(edited, Ok(true)) {
            self.findings
                .violation(format!("bastion aks did not edit {path} in place"));
        }
        if let Err(e) = p.signal("KILL") {
            return self.findings.violation(e);
        }
        let _ = p.wait(STOP).await;
        if p.panicked() {
            self.panicked.push(p.name.clone());
        }
        self.findings.note(format!(
            "bastion aks SIGKILLed with {path} edited in place ({})",
            if std::fs::read(file).is_ok_and(|b| b != USERS_KUBECONFIG.as_bytes()) {
                "still edited, as expected"
            } else {
                "not edited"
            }
        ));

        let args = [
            "aks",
            "-n",
            "myaks",
            "-g",
            "aks-rg",
            "--kubeconfig-path",
            &path,
            "--write-kubeconfig-in-place",
            "--",
            "true",
        ];
        let cmd = procs::command(&self.opts.bastion, &args, &self.aks_env);
        let mut next = match Bastion::spawn("aks-next", cmd, &self.log_path("aks-next")).await {
            Ok(p) => p,
            Err(e) => return self.findings.violation(e),
        };
        let restored = next
            .wait_for(
                |l| l.contains("was left edited by a bastion aks that was killed"),
                READY,
            )
            .await;
        match next.wait(READY).await {
            Ok(s) if s.success() => {}
            Ok(s) => self.findings.violation(format!(
                "the bastion aks after the SIGKILL exited with {s} (log: {})",
                self.log_path("aks-next").display()
            )),
            Err(e) => self.findings.violation(e),
        }
        if next.panicked() {
            self.panicked.push(next.name.clone());
        }
        if restored.is_err() {
            self.findings.violation(
                "the bastion aks after the SIGKILL did not say it put the killed run's edit back",
            );
        }
        self.check_kubeconfig(file, "after the SIGKILL and the next run");
        let live = self.sandbox.bastion().active_sessions().len();
        if live > 0 {
            self.findings.violation(format!(
                "{live} session(s) of the bastion aks runs left on the emulator"
            ));
        }
    }

    fn check_kubeconfig(&mut self, file: &Path, when: &str) {
        match std::fs::read(file) {
            Ok(b) if b == USERS_KUBECONFIG.as_bytes() => {}
            Ok(_) => self
                .findings
                .violation(format!("{}: not byte-identical {when}", file.display())),
            Err(e) => self
                .findings
                .violation(format!("{}: {e} {when}", file.display())),
        }
        match std::fs::metadata(file) {
            Ok(m) if m.permissions().mode() & 0o7777 == 0o644 => {}
            Ok(m) => self.findings.violation(format!(
                "{}: mode {:o} {when}, was 644",
                file.display(),
                m.permissions().mode() & 0o7777
            )),
            Err(_) => {}
        }
    }
}

/// Samples of one process.
#[derive(Default, Clone, Copy)]
struct Usage {
    fds: u64,
    rss_kib: u64,
}

fn usage(p: &Bastion) -> Result<Usage, String> {
    Ok(Usage {
        fds: p.fds()?,
        rss_kib: p.rss_kib()?,
    })
}

async fn run(opts: Options) -> Result<(Findings, String), String> {
    let started = Instant::now();
    let connections = opts.connections;
    let (chaos, calm, step) = (opts.chaos, opts.calm, opts.step);
    let mut soak = Soak::start(opts).await?;
    let kubeconfig = soak.dir.path().join("home").join("config");
    std::fs::write(&kubeconfig, USERS_KUBECONFIG).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o644))
        .map_err(|e| e.to_string())?;

    // The survivor: a baseline after a warm-up, with every session deleted.
    let (survivor, survivor_port) = soak.tunnel("survivor", 0).await?;
    soak.warm_up(survivor_port).await;
    if soak.drained(0, Duration::from_secs(10)).await > 0 {
        soak.findings
            .violation("the survivor kept sessions after the warm-up");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = usage(&survivor)?;
    let mut peak = baseline;

    // The victim, and the load on both.
    let mut incarnation = 1;
    let (mut victim, victim_port) = soak.tunnel("victim-1", incarnation).await?;
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (profile_tx, profile_rx) = watch::channel("starting");
    let (_survivor_tx, survivor_rx) = watch::channel(Some(survivor_port));
    let (victim_tx, victim_rx) = watch::channel(Some(victim_port));
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..connections {
        let on_victim = id % 3 == 0;
        let w = Worker {
            id,
            port: if on_victim {
                victim_rx.clone()
            } else {
                survivor_rx.clone()
            },
            tally: Arc::clone(&tally),
            stop: Arc::clone(&stop),
            limit: Duration::from_secs(20),
            tunnel: if on_victim { "victim" } else { "survivor" },
            profile: profile_rx.clone(),
        };
        workers.spawn(w.run());
    }

    // The chaos: a profile per step; the signals at about 20%, 45% and 70% of the steps, never
    // while DELETEs are refused; the aks run at about 35%.
    let steps = (chaos.as_nanos() / step.as_nanos().max(1)) as usize;
    let mut signal_at = Vec::new();
    for (frac, signal) in [(20, "INT"), (45, "TERM"), (70, "KILL")] {
        let mut s = steps * frac / 100;
        while Profile::CYCLE[s % Profile::CYCLE.len()].refuses_deletes()
            || signal_at.iter().any(|(t, _)| *t == s)
        {
            s += 1;
        }
        signal_at.push((s, signal));
    }
    let aks_step = steps * 35 / 100;
    let chaos_start = Instant::now();
    let mut timeline = String::new();
    for s in 0..steps {
        let profile = Profile::CYCLE[s % Profile::CYCLE.len()];
        let issued = soak.emu.stats().token_requests;
        soak.emu.set_faults(profile.faults(issued));
        let _ = profile_tx.send(profile.name());
        let _ = write!(
            timeline,
            "{:>5.1}s {}",
            chaos_start.elapsed().as_secs_f64(),
            profile.name()
        );
        if s == aks_step {
            let _ = write!(timeline, " + aks SIGKILL and restore");
            soak.aks_killed_then_restored(&kubeconfig).await;
        }
        if let Some((_, signal)) = signal_at.iter().find(|(t, _)| *t == s) {
            let _ = write!(timeline, " + victim SIG{signal}");
            let _ = victim_tx.send(None);
            soak.stop(victim, incarnation, signal).await;
            incarnation += 1;
            let name = format!("victim-{incarnation}");
            let (p, port) = soak.tunnel(&name, incarnation).await?;
            victim = p;
            let _ = victim_tx.send(Some(port));
        }
        timeline.push('\n');
        let until = chaos_start + step * (s as u32 + 1);
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(250).min(until - Instant::now())).await;
            if let Ok(u) = usage(&survivor) {
                peak.fds = peak.fds.max(u.fds);
                peak.rss_kib = peak.rss_kib.max(u.rss_kib);
            }
        }
    }

    // Calm: no fault. Connections started now must all complete.
    soak.emu.set_faults(Faults::none());
    let _ = profile_tx.send("calm");
    let before_calm = (
        tally.completed.load(Ordering::Relaxed),
        tally.failed.load(Ordering::Relaxed) + tally.abandoned.load(Ordering::Relaxed),
    );
    tokio::time::sleep(calm).await;
    stop.store(true, Ordering::Relaxed);
    let stopped = tokio::time::timeout(Duration::from_secs(30), async {
        while workers.join_next().await.is_some() {}
    })
    .await;
    if stopped.is_err() {
        soak.findings
            .violation("client connections still running 30 s after the load stopped");
        workers.abort_all();
    }
    let calm_completed = tally.completed.load(Ordering::Relaxed) - before_calm.0;
    let calm_failed = tally.calm_failures.load(Ordering::Relaxed);
    if calm_completed == 0 {
        soak.findings
            .violation("no connection completed in the calm phase after the chaos");
    }
    if calm_failed > 0 {
        soak.findings.violation(format!(
            "{calm_failed} connection(s) started after the chaos failed"
        ));
    }

    // The survivor: every session deleted (DELETEs refused during the chaos are retried in the
    // background), then its descriptors and memory.
    let left = soak.drained(0, Duration::from_secs(30)).await;
    if left > 0 {
        soak.findings.violation(format!(
            "the survivor still has {left} undeleted session(s) 30 s after its connections closed"
        ));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = usage(&survivor)?;
    if end.fds > baseline.fds + FD_SLACK {
        soak.findings.violation(format!(
            "the survivor holds {} file descriptors, baseline {} (+{FD_SLACK} allowed)",
            end.fds, baseline.fds
        ));
    }
    if end.rss_kib > baseline.rss_kib + RSS_SLACK_KIB {
        soak.findings.violation(format!(
            "the survivor's RSS is {} KiB, baseline {} KiB (+{RSS_SLACK_KIB} KiB allowed)",
            end.rss_kib, baseline.rss_kib
        ));
    }

    // Both tunnels stopped; no session of a process that was not SIGKILLed is left.
    soak.stop(victim, incarnation, "TERM").await;
    soak.stop(survivor, 0, "TERM").await;
    let mut killed_left = 0;
    for s in soak.emu.active_sessions() {
        if soak
            .killed
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&s.resource_id))
        {
            killed_left += 1;
        } else {
            soak.findings.violation(format!(
                "session {} ({}, {:?}) was never deleted",
                s.id, s.resource_id, s.state
            ));
        }
    }
    soak.check_kubeconfig(&kubeconfig, "at the end");
    for name in std::mem::take(&mut soak.panicked) {
        soak.findings.violation(format!(
            "{name} panicked (log: {})",
            soak.log_path(&name).display()
        ));
    }
    for v in tally
        .violations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default()
    {
        soak.findings.violations.push(v);
    }

    let stats = soak.emu.stats();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let mut summary = String::new();
    let _ = writeln!(summary, "== bastion soak summary");
    let _ = writeln!(
        summary,
        "time: {:.0} s ({} s of chaos in {steps} steps, {} s calm); {connections} concurrent client connections",
        started.elapsed().as_secs_f64(),
        chaos.as_secs(),
        calm.as_secs()
    );
    let _ = write!(summary, "{timeline}");
    let _ = writeln!(
        summary,
        "connections: {} completed, {} ended early by a fault or signal, {} given up by the client (no end within 20 s), {} connects refused while the victim restarted",
        get(&tally.completed),
        get(&tally.failed),
        get(&tally.abandoned),
        get(&tally.refused)
    );
    let _ = writeln!(
        summary,
        "bytes: {} sent, {} echoed back and checked byte for byte",
        get(&tally.sent),
        get(&tally.verified)
    );
    let _ = writeln!(
        summary,
        "emulator: {} token POSTs, {} sessions minted, {} WebSocket upgrades, {} DELETE requests, {} deleted; {} left by the SIGKILLed process (the service expires them)",
        stats.token_requests,
        stats.tokens_issued,
        stats.websocket_upgrades,
        stats.delete_requests,
        stats.deletes,
        killed_left
    );
    let _ = writeln!(
        summary,
        "survivor: fds {} -> peak {} -> {}; RSS {} -> peak {} -> {} KiB",
        baseline.fds, peak.fds, end.fds, baseline.rss_kib, peak.rss_kib, end.rss_kib
    );
    let _ = writeln!(
        summary,
        "calm phase: {calm_completed} connection(s) completed"
    );
    for n in &soak.findings.notes {
        let _ = writeln!(summary, "note: {n}");
    }
    soak.sandbox.shutdown().await;
    soak.emu.shutdown().await;
    Ok((soak.findings, summary))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> ExitCode {
    let opts = match Options::parse() {
        Ok(Some(o)) => o,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // A hang guard well past the longest run.
    let limit = opts.chaos + opts.calm + Duration::from_secs(150);
    let logs = opts.logs.clone();
    match tokio::time::timeout(limit, run(opts)).await {
        Ok(Ok((findings, summary))) => {
            print!("{summary}");
            if findings.violations.is_empty() {
                println!("PASS: no violation (logs in {})", logs.display());
                ExitCode::SUCCESS
            } else {
                println!("FAIL: {} violation(s):", findings.violations.len());
                for v in &findings.violations {
                    println!("  - {v}");
                }
                println!("logs in {}", logs.display());
                ExitCode::FAILURE
            }
        }
        Ok(Err(e)) => {
            println!(
                "FAIL: the soak could not run: {e} (logs in {})",
                logs.display()
            );
            ExitCode::FAILURE
        }
        Err(_) => {
            println!(
                "FAIL: the soak did not finish within {limit:?} (logs in {})",
                logs.display()
            );
            ExitCode::FAILURE
        }
    }
}
