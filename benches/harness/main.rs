//! `bastion-bench`: measures the release `bastion tunnel` against direct TCP, side by side in
//! one run, with `bastion emulate` as the Bastion (its own process) and targets on 127.0.0.1.
//!
//! - Bulk: one connection, upload and download separately, default and 64 KiB frames.
//! - Parallel bulk: aggregate over 1, 10 and 100 connections (default frames).
//! - Setup: connect to first echoed byte, p50/p99, at 0 ms and at an added RTT (a delaying
//!   relay in front of the emulator's Bastion port, and in front of the echo target for direct),
//!   each also with `--prewarm N` (see `setup_prewarm`).
//! - CPU: seconds per GiB of the tunnel process and of the emulator process.
//! - Plain relays: the bulk rows' ceiling, one connection through two plain TCP relay
//!   processes in place of the tunnel and the emulator (same hops, no TLS, no WebSocket; see
//!   `relay`).
//! - Memory: VmRSS of the tunnel process (and, apart, of the emulator) per idle connection, a
//!   hold at the largest count (every connection must still echo, none may fail), what is
//!   given back after they close, and no session left on the emulator (see `memory`).
//! - scp: a 200 MB file to and from a private sshd, direct and through `bastion proxy` (see
//!   `scp`; in the default set when `sshd` and `scp` are installed).
//!
//! Run it through `scripts/bench.sh` (builds release, raises the open-files limit). `--help`
//! lists the options.

mod memory;
mod net;
mod procs;
mod relay;
mod scp;
mod setup_prewarm;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

use net::Direction;
use procs::{Proc, SandboxEnv, TunnelProc};

/// A harness error: a message with optional context.
#[derive(Debug)]
pub struct Error(String);

impl Error {
    /// A new error.
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }

    /// Adds context after the message.
    pub fn context(self, more: impl fmt::Display) -> Self {
        Self(format!("{} ({more})", self.0))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self(e.to_string())
    }
}

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

const HELP: &str = "\
bastion-bench: the release `bastion tunnel` against direct TCP, side by side, on 127.0.0.1.

Usage: bastion-bench [OPTIONS]   (normally through scripts/bench.sh)

Options:
  --quick              smaller sizes and counts (about a minute)
  --out PATH           JSON results (default target/bench/results.json)
  --logs DIR           child process logs (default target/bench/logs)
  --bastion PATH       the bastion binary (default: `bastion` next to this binary)
  --bulk-mib N         bytes per bulk run, in MiB (default 512; quick 192)
  --parallel LIST      parallel connection counts (default 1,10,100)
  --setup-count N      sequential connections per setup series (default 300; quick 200)
  --rtt-ms N           the added round-trip time of the setup relay (default 20)
  --prewarm N          also measure setup with `bastion tunnel --prewarm N` (default 4; 0: not)
  --mem-counts LIST    open idle connections to measure at (default 1000,10000; quick 1000,2000)
  --connections N      the most idle connections: measure at 1000 and N (sets --mem-counts)
  --hold SECONDS       keep the most connections open this long, then check each still echoes
                       (default 60; quick 0)
  --settle SECONDS     after closing, wait up to this long for the memory to come back
                       (default 30)
  --only LIST          phases to run: bulk,setup,memory,scp (default all; scp only when
                       sshd, scp and ssh-keygen are installed)
  --scp-mb N           the scp phase's file size, in MB (10^6 bytes; default 200)
  --target-port N      the harness's target port on 127.0.0.1, reached through IP connect
                       (default 3389: the emulator's IP connect allows only 22 and 3389)
  --relay-process PORT internal: a plain TCP relay to 127.0.0.1:PORT (the bulk phase's children)
  -h, --help           this text
";

/// The command line.
#[derive(Debug, Clone)]
struct Opts {
    quick: bool,
    out: PathBuf,
    logs: PathBuf,
    bastion: PathBuf,
    bulk_bytes: u64,
    parallel: Vec<usize>,
    setup_count: usize,
    rtt: Duration,
    prewarm: usize,
    mem_counts: Vec<usize>,
    hold: Duration,
    settle: Duration,
    phases: Vec<String>,
    target_port: u16,
    scp_bytes: u64,
}

fn list(v: &str, what: &str) -> Result<Vec<usize>, Error> {
    v.split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::new(format!("{what}: {x:?} is not a positive number")))
        })
        .collect()
}

fn parse_opts() -> Result<Option<Opts>, Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut kv: BTreeMap<String, String> = BTreeMap::new();
    let mut quick = false;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-h" | "--help" => return Ok(None),
            "--quick" => quick = true,
            "--out" | "--logs" | "--bastion" | "--bulk-mib" | "--parallel" | "--setup-count"
            | "--rtt-ms" | "--mem-counts" | "--only" | "--target-port" | "--connections"
            | "--hold" | "--settle" | "--prewarm" | "--scp-mb" => {
                let v = args
                    .get(i + 1)
                    .ok_or_else(|| Error::new(format!("{a} needs a value")))?;
                kv.insert(a.to_owned(), v.clone());
                i += 1;
            }
            _ => {
                if let Some((k, v)) = a.split_once('=')
                    && k.starts_with("--")
                {
                    kv.insert(k.to_owned(), v.to_owned());
                } else {
                    return Err(Error::new(format!("unknown argument {a:?} (see --help)")));
                }
            }
        }
        i += 1;
    }
    let num = |k: &str, default: u64| -> Result<u64, Error> {
        kv.get(k).map_or(Ok(default), |v| {
            v.parse()
                .map_err(|_| Error::new(format!("{k}: {v:?} is not a number")))
        })
    };
    let bastion = match kv.get("--bastion") {
        Some(p) => PathBuf::from(p),
        None => std::env::current_exe()?
            .parent()
            .map(|d| d.join("bastion"))
            .ok_or_else(|| Error::new("cannot locate the bastion binary; pass --bastion"))?,
    };
    let bulk_mib = num("--bulk-mib", if quick { 192 } else { 512 })?.max(1);
    let opts = Opts {
        quick,
        out: PathBuf::from(
            kv.get("--out")
                .map_or("target/bench/results.json", String::as_str),
        ),
        logs: PathBuf::from(kv.get("--logs").map_or("target/bench/logs", String::as_str)),
        bastion,
        bulk_bytes: bulk_mib * MIB,
        parallel: list(
            kv.get("--parallel").map_or("1,10,100", String::as_str),
            "--parallel",
        )?,
        setup_count: num("--setup-count", if quick { 200 } else { 300 })?.max(2) as usize,
        rtt: Duration::from_millis(num("--rtt-ms", 20)?),
        prewarm: num("--prewarm", 4)? as usize,
        mem_counts: {
            let mut v = match kv.get("--connections") {
                Some(n) => {
                    let n = list(n, "--connections")?.into_iter().max().unwrap_or(1);
                    vec![n.min(1000), n]
                }
                None => list(
                    kv.get("--mem-counts").map_or(
                        if quick { "1000,2000" } else { "1000,10000" },
                        String::as_str,
                    ),
                    "--mem-counts",
                )?,
            };
            v.sort_unstable();
            v.dedup();
            v
        },
        hold: Duration::from_secs(num("--hold", if quick { 0 } else { 60 })?),
        settle: Duration::from_secs(num("--settle", 30)?),
        target_port: u16::try_from(num("--target-port", 3389)?)
            .map_err(|_| Error::new("--target-port: not a port"))?,
        scp_bytes: num("--scp-mb", 200)?.max(1) * 1_000_000,
        phases: kv
            .get("--only")
            .map_or("bulk,setup,memory,scp", String::as_str)
            .split(',')
            .map(|s| s.trim().to_owned())
            .collect(),
    };
    for p in &opts.phases {
        if !["bulk", "setup", "memory", "scp"].contains(&p.as_str()) {
            return Err(Error::new(format!(
                "--only: unknown phase {p:?} (bulk, setup, memory, scp)"
            )));
        }
    }
    if !opts.bastion.is_file() {
        return Err(Error::new(format!(
            "{} does not exist: build it with `cargo build --release -p bastion-cli` (scripts/bench.sh does)",
            opts.bastion.display()
        )));
    }
    Ok(Some(opts))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--relay-process") {
        return relay::main(&args[1..]);
    }
    let opts = match parse_opts() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("bastion-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bastion-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        // Ctrl-C drops `run`, and with it every child process (killed on drop).
        tokio::select! {
            r = run(&opts) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::new("interrupted")),
        }
    });
    rt.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("bastion-bench: some measurements failed (see `errors` in the results)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bastion-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime of the harness and of its relay processes: two workers, as `bastion` runs.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// Progress on stderr.
fn note(msg: impl fmt::Display) {
    eprintln!("[bench] {msg}");
}

/// The sandbox and the harness's own targets.
struct Ctx {
    opts: Opts,
    env: SandboxEnv,
    emulator: Proc,
    clk_tck: f64,
    /// The harness's sink/source/echo target, reached through IP connect.
    target: net::Server,
}

impl Ctx {
    async fn tunnel(
        &self,
        name: &str,
        global: &[String],
        args: &[String],
    ) -> Result<TunnelProc, Error> {
        note(format!("starting bastion tunnel ({name})"));
        procs::start_tunnel(
            &self.opts.bastion,
            &self.env,
            &self.opts.logs,
            name,
            global,
            args,
        )
        .await
    }

    /// `-n BASTION -g RG --target-ip-address 127.0.0.1 --resource-port PORT` for the harness's
    /// target (`--allow-any-port` too unless the port is 22 or 3389).
    fn ip_connect_args(&self) -> Vec<String> {
        let port = self.target.port;
        let mut args = strings(&[
            "-n",
            &self.env.vm_bastion,
            "-g",
            &self.env.vm_resource_group,
            "--target-ip-address",
            "127.0.0.1",
            "--resource-port",
            &port.to_string(),
        ]);
        if port != 22 && port != 3389 {
            args.push("--allow-any-port".to_owned());
        }
        args
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

async fn run(opts: &Opts) -> Result<bool, Error> {
    std::fs::create_dir_all(&opts.logs)
        .map_err(|e| Error::new(format!("{}: {e}", opts.logs.display())))?;
    let started = Instant::now();
    let clk_tck = procs::clock_ticks_per_second();
    // Before any child starts: they inherit the limits (see `memory`).
    let mut errors: Vec<String> = Vec::new();
    if opts.phases.iter().any(|p| p == "memory") {
        let largest = opts.mem_counts.iter().copied().max().unwrap_or(0);
        let (_, short) = memory::raise_open_files(memory::descriptors_needed(largest));
        if let Some(short) = short {
            note(format!("memory: {short}"));
        }
    }
    // The emulator's IP connect allows only ports 22 and 3389 (whatever --allow-any-port
    // says), and dials the literal address: so the harness's target listens on 127.0.0.1:3389.
    let target = net::spawn_target(opts.target_port).await.map_err(|e| {
        Error::new(format!(
            "cannot listen on 127.0.0.1:{}: {e}; free it or pass --target-port",
            opts.target_port
        ))
    })?;
    note(format!("starting {} emulate", opts.bastion.display()));
    let (emulator, env) = procs::start_emulator(&opts.bastion, &opts.logs).await?;
    let ctx = Ctx {
        opts: opts.clone(),
        env,
        emulator,
        clk_tck: clk_tck as f64,
        target,
    };
    note(format!(
        "emulator pid {}; VM echo server on 127.0.0.1:{}; harness target (sink/source/echo) on 127.0.0.1:{}",
        ctx.emulator.pid, ctx.env.echo_port, ctx.target.port
    ));
    let mut results = Results::default();
    let phase = |name: &str| opts.phases.iter().any(|p| p == name);

    // A failed phase keeps what it measured before the failure.
    if phase("bulk") {
        let mut bulk = BulkResults::default();
        if let Err(e) = bulk_phase(&ctx, &mut bulk).await {
            errors.push(format!("bulk: {e}"));
        }
        results.bulk = Some(bulk);
    }
    if phase("setup") {
        let mut setup = SetupResults::default();
        if let Err(e) = setup_phase(&ctx, &mut setup).await {
            errors.push(format!("setup: {e}"));
        }
        results.setup = Some(setup);
    }
    if phase("memory") {
        match memory::phase(&ctx).await {
            Ok(m) => {
                if let Some(f) = m.failure() {
                    errors.push(format!("memory: {f}"));
                }
                results.memory = Some(m);
            }
            Err(e) => errors.push(format!("memory: {e}")),
        }
    }
    if phase("scp") {
        let mut scp = scp::ScpResults::default();
        match scp::tools() {
            Ok(tools) => {
                if let Err(e) = scp::phase(&ctx, &tools, &mut scp).await {
                    errors.push(format!("scp: {e}"));
                }
            }
            Err(skipped) => {
                note(&skipped);
                scp.skipped = Some(skipped);
            }
        }
        results.scp = Some(scp);
    }
    let Ctx { emulator, .. } = ctx;
    let emulator_rss_end = emulator.rss_kib().ok();
    note("stopping the emulator");
    emulator.stop(Duration::from_secs(10)).await;

    for e in &errors {
        note(format!("ERROR {e}"));
    }
    let meta = json!({
        "quick": opts.quick,
        "bastion_binary": opts.bastion.display().to_string(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "clk_tck": clk_tck,
        "rlimit_nofile_soft": procs::open_files_limit(),
        "bulk_bytes": opts.bulk_bytes,
        "parallel": opts.parallel,
        "setup_count": opts.setup_count,
        "rtt_ms": opts.rtt.as_millis() as u64,
        "mem_counts": opts.mem_counts,
        "hold_seconds": opts.hold.as_secs(),
        "emulator_rss_kib_at_end": emulator_rss_end,
        "wall_seconds": started.elapsed().as_secs_f64(),
        "units": {
            "throughput": "MB/s = 10^6 bytes per second, of payload in one direction",
            "cpu": "seconds of utime+stime per GiB (2^30 bytes) of payload moved; each sample is whole clock ticks (1/clk_tck s)",
            "ratio": "tunnel / direct",
            "latency": "milliseconds from connect() to the first echoed byte",
            "memory": "KiB (VmRSS)"
        },
    });
    let table = render_table(&results, &meta, &errors);
    let doc = json!({
        "meta": meta,
        "bulk": results.bulk.as_ref().map(BulkResults::to_json),
        "setup": results.setup.as_ref().map(SetupResults::to_json),
        "memory": results.memory.as_ref().map(memory::MemoryResults::to_json),
        "scp": results.scp.as_ref().map(scp::ScpResults::to_json),
        "errors": errors,
        "table": table,
    });
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| Error::new(e.to_string()))?;
    std::fs::write(&opts.out, text + "\n")
        .map_err(|e| Error::new(format!("{}: {e}", opts.out.display())))?;
    println!("{table}");
    println!("JSON: {}", opts.out.display());
    Ok(errors.is_empty())
}

// ---------------------------------------------------------------------------------------------
// Bulk

/// One timed transfer.
#[derive(Debug, Clone)]
struct Xfer {
    bytes: u64,
    secs: f64,
    /// CPU seconds of the tunnel and the emulator process during the transfer.
    client_cpu: Option<f64>,
    emulator_cpu: Option<f64>,
    harness_cpu: f64,
}

impl Xfer {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }

    fn per_gib(&self, cpu: Option<f64>) -> Option<f64> {
        cpu.map(|c| c / (self.bytes as f64 / GIB))
    }

    fn to_json(&self) -> Value {
        json!({
            "bytes": self.bytes,
            "seconds": self.secs,
            "mb_per_s": self.mb_s(),
            "client_cpu_seconds": self.client_cpu,
            "emulator_cpu_seconds": self.emulator_cpu,
            "client_cpu_s_per_gib": self.per_gib(self.client_cpu),
            "emulator_cpu_s_per_gib": self.per_gib(self.emulator_cpu),
            "harness_cpu_s_per_gib": self.per_gib(Some(self.harness_cpu)),
        })
    }
}

/// A bulk case: tunnel and direct.
#[derive(Debug, Clone)]
struct BulkRow {
    dir: Direction,
    frame: &'static str,
    conns: usize,
    tunnel: Xfer,
    direct: Xfer,
}

impl BulkRow {
    fn ratio(&self) -> f64 {
        self.tunnel.mb_s() / self.direct.mb_s()
    }

    fn to_json(&self) -> Value {
        json!({
            "direction": self.dir.name(),
            "frame": self.frame,
            "connections": self.conns,
            "tunnel": self.tunnel.to_json(),
            "direct": self.direct.to_json(),
            "ratio_to_direct": self.ratio(),
        })
    }
}

#[derive(Debug, Default)]
struct BulkResults {
    single: Vec<BulkRow>,
    parallel: Vec<BulkRow>,
    /// One connection through two plain TCP relay processes (frame "none"): in `tunnel`, the
    /// relays' figures, relay 1 in the client column and relay 2 in the emulator's.
    plain_relays: Vec<BulkRow>,
}

impl BulkResults {
    /// Each one-connection tunnel row's throughput over the plain relays' in its direction.
    fn to_plain_relays(&self) -> Vec<(&BulkRow, f64)> {
        self.single
            .iter()
            .filter_map(|t| {
                let p = self.plain_relays.iter().find(|p| p.dir == t.dir)?;
                Some((t, t.tunnel.mb_s() / p.tunnel.mb_s()))
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        json!({
            "single": self.single.iter().map(BulkRow::to_json).collect::<Vec<_>>(),
            "parallel": self.parallel.iter().map(BulkRow::to_json).collect::<Vec<_>>(),
            "plain_relays": self.plain_relays.iter().map(BulkRow::to_json).collect::<Vec<_>>(),
            "tunnel_to_plain_relays": self.to_plain_relays().iter().map(|(t, ratio)| json!({
                "direction": t.dir.name(),
                "frame": t.frame,
                "ratio": ratio,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Moves `total` bytes in direction `dir` over `conns` parallel connections to `port`
/// (sessions set up first, then timed together), sampling the CPU of `sampled`: the pids of
/// the client column's process and the emulator column's (none for direct TCP).
async fn transfer(
    ctx: &Ctx,
    port: u16,
    dir: Direction,
    total: u64,
    conns: usize,
    sampled: Option<(u32, u32)>,
) -> Result<Xfer, Error> {
    let per = (total / conns as u64).max(1);
    let mut prepared = JoinSet::new();
    for _ in 0..conns {
        prepared.spawn(net::bulk_prepare(port, dir, per));
    }
    let mut streams = Vec::with_capacity(conns);
    while let Some(r) = prepared.join_next().await {
        streams.push(
            r.map_err(|e| Error::new(e.to_string()))?
                .map_err(|e| Error::new(format!("{} setup: {e}", dir.name())))?,
        );
    }
    let me = std::process::id();
    let ticks = |pid: Option<u32>| pid.map(procs::cpu_ticks).transpose();
    let c0 = ticks(sampled.map(|p| p.0))?;
    let e0 = ticks(sampled.map(|p| p.1))?;
    let h0 = procs::cpu_ticks(me)?;
    // Generous: 1 MB/s at worst.
    let limit = Duration::from_secs(30 + per / 1_000_000);
    let start = Instant::now();
    let mut runs = JoinSet::new();
    for s in streams {
        runs.spawn(net::bulk_run(s, dir, per, limit));
    }
    while let Some(r) = runs.join_next().await {
        r.map_err(|e| Error::new(e.to_string()))?
            .map_err(|e| Error::new(format!("{}: {e}", dir.name())))?;
    }
    let secs = start.elapsed().as_secs_f64();
    let c1 = ticks(sampled.map(|p| p.0))?;
    let e1 = ticks(sampled.map(|p| p.1))?;
    let h1 = procs::cpu_ticks(me)?;
    let delta = |a: Option<u64>, b: Option<u64>| {
        a.zip(b)
            .map(|(a, b)| b.saturating_sub(a) as f64 / ctx.clk_tck)
    };
    Ok(Xfer {
        bytes: per * conns as u64,
        secs,
        client_cpu: delta(c0, c1),
        emulator_cpu: delta(e0, e1),
        harness_cpu: h1.saturating_sub(h0) as f64 / ctx.clk_tck,
    })
}

async fn bulk_phase(ctx: &Ctx, out: &mut BulkResults) -> Result<(), Error> {
    let total = ctx.opts.bulk_bytes;
    let dirs = [Direction::Upload, Direction::Download];

    // Direct first: the same target, no tunnel.
    note(format!("bulk: direct, {} MiB per run", total / MIB));
    let mut direct_single = BTreeMap::new();
    let mut direct_parallel = BTreeMap::new();
    for dir in dirs {
        direct_single.insert(
            dir.name(),
            transfer(ctx, ctx.target.port, dir, total, 1, None).await?,
        );
        for &c in &ctx.opts.parallel {
            direct_parallel.insert(
                (dir.name(), c),
                transfer(ctx, ctx.target.port, dir, total, c, None).await?,
            );
        }
    }

    // The same shape without TLS or WebSocket: relay 1 (in the tunnel's place) -> relay 2 (in
    // the emulator's) -> the target, plain TCP copies with 64 KiB buffers. What no tunnel of
    // this process layout can beat on this machine.
    let relay_2 = relay::start(&ctx.opts.logs, "2", ctx.target.port).await?;
    let relay_1 = relay::start(&ctx.opts.logs, "1", relay_2.port).await?;
    let pids = Some((relay_1.proc.pid, relay_2.proc.pid));
    let r = async {
        for dir in dirs {
            transfer(ctx, relay_1.port, dir, 4 * MIB, 1, pids).await?;
        }
        for dir in dirs {
            note(format!("bulk: two plain TCP relays, {}", dir.name()));
            let t = transfer(ctx, relay_1.port, dir, total, 1, pids).await?;
            out.plain_relays.push(BulkRow {
                dir,
                frame: "none",
                conns: 1,
                tunnel: t,
                direct: direct_single[dir.name()].clone(),
            });
        }
        Ok::<(), Error>(())
    }
    .await;
    relay_1.proc.stop(Duration::from_secs(5)).await;
    relay_2.proc.stop(Duration::from_secs(5)).await;
    r?;

    for (frame, extra) in [("default", None), ("65536", Some("65536"))] {
        let mut args = ctx.ip_connect_args();
        if let Some(f) = extra {
            args.extend(strings(&["--max-frame-size", f]));
        }
        let tunnel = ctx.tunnel(&format!("bulk-{frame}"), &[], &args).await?;
        let pids = Some((tunnel.proc.pid, ctx.emulator.pid));
        let r = async {
            // Warm-up: token, pooled HTTPS connection, allocator.
            for dir in dirs {
                transfer(ctx, tunnel.port, dir, 4 * MIB, 1, pids).await?;
            }
            for dir in dirs {
                note(format!("bulk: tunnel, {frame} frames, {}", dir.name()));
                let t = transfer(ctx, tunnel.port, dir, total, 1, pids).await?;
                out.single.push(BulkRow {
                    dir,
                    frame,
                    conns: 1,
                    tunnel: t,
                    direct: direct_single[dir.name()].clone(),
                });
            }
            if frame == "default" {
                for dir in dirs {
                    for &c in &ctx.opts.parallel {
                        note(format!("bulk: tunnel, {c} parallel, {}", dir.name()));
                        let t = transfer(ctx, tunnel.port, dir, total, c, pids).await?;
                        out.parallel.push(BulkRow {
                            dir,
                            frame,
                            conns: c,
                            tunnel: t,
                            direct: direct_parallel[&(dir.name(), c)].clone(),
                        });
                    }
                }
            }
            Ok::<(), Error>(())
        }
        .await;
        let failed = tunnel
            .events
            .failed
            .load(std::sync::atomic::Ordering::Relaxed);
        tunnel.stop().await;
        r?;
        if failed > 0 {
            return Err(Error::new(format!(
                "the {frame}-frame tunnel reported {failed} failed connection(s)"
            )));
        }
    }
    // Upload then download, default frames first.
    out.single
        .sort_by_key(|r| (r.dir == Direction::Download, r.frame != "default"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Setup latency

#[derive(Debug, Clone)]
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    min: f64,
    max: f64,
}

impl Stats {
    /// Nearest-rank percentiles, in milliseconds.
    fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let n = samples.len();
        let rank = |p: f64| ms(samples[((p * n as f64).ceil() as usize).clamp(1, n) - 1]);
        Self {
            n,
            p50: rank(0.50),
            p99: rank(0.99),
            mean: samples.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
            min: ms(samples[0]),
            max: ms(samples[n - 1]),
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "n": self.n, "p50_ms": self.p50, "p99_ms": self.p99, "mean_ms": self.mean,
            "min_ms": self.min, "max_ms": self.max,
        })
    }
}

#[derive(Debug)]
struct SetupRow {
    rtt_ms: u64,
    /// `--prewarm N` of the tunnel (0: none).
    prewarm: usize,
    tunnel: Stats,
    direct: Stats,
}

#[derive(Debug, Default)]
struct SetupResults {
    rows: Vec<SetupRow>,
    endpoint: String,
}

impl SetupResults {
    fn to_json(&self) -> Value {
        json!({
            "bastion_endpoint": self.endpoint,
            "target": "the sandbox VM's echo server (vm1 port 22)",
            "rows": self.rows.iter().map(|r| json!({
                "rtt_ms": r.rtt_ms,
                "prewarm": r.prewarm,
                "tunnel": r.tunnel.to_json(),
                "direct": r.direct.to_json(),
                "ratio_p50": r.tunnel.p50 / r.direct.p50,
                "ratio_p99": r.tunnel.p99 / r.direct.p99,
            })).collect::<Vec<_>>(),
        })
    }
}

/// `n` sequential connections to `port`, each timed from connect to the first echoed byte.
async fn setup_series(port: u16, n: usize, label: &str) -> Result<Stats, Error> {
    let limit = Duration::from_secs(10);
    for _ in 0..3 {
        net::echo_once(port, limit)
            .await
            .map_err(|e| Error::new(format!("{label} warm-up: {e}")))?;
    }
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let s = net::echo_once(port, limit)
            .await
            .map_err(|e| Error::new(format!("{label}, connection {i}: {e}")))?;
        samples.push(start.elapsed());
        drop(s);
    }
    Ok(Stats::of(samples))
}

async fn setup_phase(ctx: &Ctx, out: &mut SetupResults) -> Result<(), Error> {
    let n = ctx.opts.setup_count;
    let echo = ctx.env.echo_port;
    let vm_target = strings(&[
        "--target-resource-id",
        &ctx.env.vm_id,
        "--resource-port",
        "22",
    ]);
    // 0 ms: straight to the emulator, the Bastion found through ARM as usual.
    let mut args = strings(&["-n", &ctx.env.vm_bastion, "-g", &ctx.env.vm_resource_group]);
    args.extend(vm_target.clone());
    let t0 = ctx.tunnel("setup-0ms", &[], &args).await?;
    let endpoint = t0.endpoint.clone();
    out.endpoint = endpoint.clone();
    note(format!(
        "setup: 0 ms, {n} connections each (tunnel, direct)"
    ));
    let r0 = async {
        Ok::<_, Error>(SetupRow {
            rtt_ms: 0,
            prewarm: 0,
            tunnel: setup_series(t0.port, n, "tunnel 0 ms").await?,
            direct: setup_series(echo, n, "direct 0 ms").await?,
        })
    }
    .await;
    t0.stop().await;
    let r0 = r0?;
    if ctx.opts.prewarm > 0 {
        let row = setup_prewarm::row(ctx, 0, &[], &args, &r0.direct).await;
        out.rows.push(r0);
        out.rows.push(row?);
    } else {
        out.rows.push(r0);
    }

    // RTT: a delaying relay in front of the emulator's Bastion port, and the tunnel pointed at
    // it directly (`--bastion-endpoint HOST:RELAY --resolve HOST=127.0.0.1`).
    let rtt = ctx.opts.rtt;
    if !rtt.is_zero() {
        let (host, port) = endpoint
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
            .ok_or_else(|| {
                Error::new(format!(
                    "the tunnel reported endpoint {endpoint:?}, not HOST:PORT"
                ))
            })?;
        let bastion_relay =
            net::spawn_relay(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), rtt).await?;
        let echo_relay =
            net::spawn_relay(SocketAddr::from((Ipv4Addr::LOCALHOST, echo)), rtt).await?;
        let global = strings(&["--resolve", &format!("{host}=127.0.0.1")]);
        let mut args = strings(&[
            "--bastion-endpoint",
            &format!("{host}:{}", bastion_relay.port),
        ]);
        args.extend(vm_target);
        let ms = rtt.as_millis() as u64;
        let t = ctx.tunnel(&format!("setup-{ms}ms"), &global, &args).await?;
        note(format!(
            "setup: {ms} ms RTT, {n} connections each (tunnel, direct)"
        ));
        let r = async {
            Ok::<_, Error>(SetupRow {
                rtt_ms: ms,
                prewarm: 0,
                tunnel: setup_series(t.port, n, &format!("tunnel {ms} ms")).await?,
                direct: setup_series(echo_relay.port, n, &format!("direct {ms} ms")).await?,
            })
        }
        .await;
        t.stop().await;
        let r = r?;
        if ctx.opts.prewarm > 0 {
            let row = setup_prewarm::row(ctx, ms, &global, &args, &r.direct).await;
            out.rows.push(r);
            out.rows.push(row?);
        } else {
            out.rows.push(r);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Report

#[derive(Debug, Default)]
struct Results {
    bulk: Option<BulkResults>,
    setup: Option<SetupResults>,
    memory: Option<memory::MemoryResults>,
    scp: Option<scp::ScpResults>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"))
}

fn render_table(r: &Results, meta: &Value, errors: &[String]) -> String {
    use std::fmt::Write as _;
    let mut t = String::new();
    let _ = writeln!(
        t,
        "bastion tunnel vs direct TCP — {} run, {} CPUs, CLK_TCK {}, RLIMIT_NOFILE {}",
        if meta["quick"] == true {
            "quick"
        } else {
            "full"
        },
        meta["cpus"],
        meta["clk_tck"],
        meta["rlimit_nofile_soft"]
    );
    let _ = writeln!(
        t,
        "(MB/s = 10^6 B/s of payload; CPU = utime+stime seconds per GiB moved; ratio = tunnel/direct)"
    );
    if let Some(b) = &r.bulk {
        let head = format!(
            "{:<30} {:>11} {:>11} {:>7} {:>12} {:>12}",
            "case", "tunnel MB/s", "direct MB/s", "ratio", "client s/GiB", "emul. s/GiB"
        );
        let row = |t: &mut String, label: String, x: &BulkRow| {
            let _ = writeln!(
                t,
                "{:<30} {:>11.1} {:>11.1} {:>7.3} {:>12} {:>12}",
                label,
                x.tunnel.mb_s(),
                x.direct.mb_s(),
                x.ratio(),
                opt(x.tunnel.per_gib(x.tunnel.client_cpu), 2),
                opt(x.tunnel.per_gib(x.tunnel.emulator_cpu), 2),
            );
        };
        if let Some(first) = b.single.first() {
            let _ = writeln!(
                t,
                "\nBulk, one connection ({} MiB per run)",
                first.tunnel.bytes / MIB
            );
            let _ = writeln!(t, "{head}");
            for x in &b.single {
                let frame = if x.frame == "default" {
                    "default frames"
                } else {
                    "64 KiB frames"
                };
                row(&mut t, format!("{} {frame}", x.dir.name()), x);
            }
        }
        if let Some(first) = b.plain_relays.first() {
            let _ = writeln!(
                t,
                "\nSame shape without TLS or WebSocket: two plain TCP relay processes\n(harness -> relay 1 -> relay 2 -> target; relay 1 in the tunnel's place, relay 2 in the emulator's;\n64 KiB copy buffers), one connection ({} MiB per run)",
                first.tunnel.bytes / MIB
            );
            let _ = writeln!(
                t,
                "{:<30} {:>11} {:>11} {:>7} {:>12} {:>12}",
                "case", "relays MB/s", "direct MB/s", "ratio", "relay1 s/GiB", "relay2 s/GiB"
            );
            for x in &b.plain_relays {
                row(&mut t, x.dir.name().to_owned(), x);
            }
            for x in &b.plain_relays {
                let mut of_dir = b.to_plain_relays();
                of_dir.retain(|(s, _)| s.dir == x.dir);
                // The target is for 64 KiB frames: those first.
                of_dir.sort_by_key(|(s, _)| s.frame == "default");
                let ratios: Vec<String> = of_dir
                    .iter()
                    .map(|(s, r)| {
                        let frame = if s.frame == "default" {
                            "default frames"
                        } else {
                            "64 KiB frames"
                        };
                        format!("{r:.2} ({frame})")
                    })
                    .collect();
                if !ratios.is_empty() {
                    let _ = writeln!(
                        t,
                        "tunnel / plain relays, {}: {}",
                        x.dir.name(),
                        ratios.join(", ")
                    );
                }
            }
        }
        if let Some(first) = b.parallel.first() {
            let _ = writeln!(
                t,
                "\nParallel bulk, default frames (aggregate, {} MiB per run split across the connections)",
                first.tunnel.bytes / MIB
            );
            let _ = writeln!(t, "{head}");
            for x in &b.parallel {
                row(&mut t, format!("{} x {}", x.dir.name(), x.conns), x);
            }
        }
    }
    if let Some(s) = &r.setup {
        let _ = writeln!(
            t,
            "\nSetup: connect to first echoed byte, ms (VM echo server; {} sequential connections)",
            s.rows.first().map_or(0, |r| r.tunnel.n)
        );
        let _ = writeln!(
            t,
            "(RTT > 0: a relay delays each chunk RTT/2 each way and a new connection's first bytes one RTT more;\n it sits in front of the emulator's Bastion port for the tunnel, in front of the echo server for direct;\n a prewarm row is `bastion tunnel --prewarm N`, beside the direct series of the row above it)"
        );
        let _ = writeln!(
            t,
            "{:<18} {:>10} {:>10} {:>10} {:>10} {:>9} {:>9}",
            "RTT", "tunnel p50", "tunnel p99", "direct p50", "direct p99", "ratio p50", "ratio p99"
        );
        for x in &s.rows {
            let _ = writeln!(
                t,
                "{:<18} {:>10.2} {:>10.2} {:>10.2} {:>10.2} {:>9.1} {:>9.1}",
                if x.prewarm > 0 {
                    format!("{} ms, prewarm {}", x.rtt_ms, x.prewarm)
                } else {
                    format!("{} ms", x.rtt_ms)
                },
                x.tunnel.p50,
                x.tunnel.p99,
                x.direct.p50,
                x.direct.p99,
                x.tunnel.p50 / x.direct.p50,
                x.tunnel.p99 / x.direct.p99
            );
        }
    }
    if let Some(m) = &r.memory {
        m.render(&mut t);
    }
    if let Some(s) = &r.scp {
        s.render(&mut t);
    }
    for e in errors {
        let _ = writeln!(t, "\nERROR {e}");
    }
    t
}
