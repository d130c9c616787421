//! The memory phase: resident memory (VmRSS) of the `bastion tunnel` process per idle
//! tunnelled connection at each count, and of the emulator beside it; a hold at the largest
//! count, after which every connection must still echo and none may have failed; then what
//! both processes give back once every connection is closed, and whether the emulator has any
//! session left.
//!
//! Ten thousand connections need about twenty thousand descriptors in this process (client and
//! target ends), in the tunnel (local and Bastion ends) and in the emulator (Bastion and target
//! ends): [`raise_open_files`] lifts this process's limits before the children start, and they
//! inherit them (`bastion` raises its own soft limit to the hard one at start).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bastion_core::{HttpsClient, HttpsConfig, ProxySetting};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::procs::TunnelProc;
use crate::{Ctx, Error, net, note, opt};

/// How many connections are being opened at once.
const OPEN_CONCURRENCY: usize = 64;
/// How many connections are checked at once after the hold.
const CHECK_CONCURRENCY: usize = 256;
/// "Given back": resident memory after close within this factor of the baseline.
const GIVEN_BACK: f64 = 1.25;

/// Descriptors this process, the tunnel and the emulator each need for `max_connections`
/// idle connections: two per connection (client and target ends here, local and Bastion ends
/// in the tunnel, Bastion and target ends in the emulator), plus a few for everything else.
/// So a hard limit of 20,000 allows about 9,900 connections.
pub fn descriptors_needed(max_connections: usize) -> u64 {
    2 * max_connections as u64 + 200
}

/// Raises this process's open-file limits so that `needed` descriptors fit: the hard limit
/// first if it is lower (allowed for root, or with CAP_SYS_RESOURCE), then the soft limit to
/// the hard one. Children started afterwards inherit both. Returns the soft limit in force,
/// and a note when it is still short of `needed`.
pub fn raise_open_files(needed: u64) -> (Option<u64>, Option<String>) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let mut hard = limit.maximum;
    if hard.is_some_and(|h| h < needed) {
        let raised = Rlimit {
            current: Some(needed),
            maximum: Some(needed),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            hard = Some(needed);
        }
    }
    // An unlimited hard limit is capped (some systems refuse an infinite soft limit).
    let soft = hard.unwrap_or(1 << 20).min(1 << 20);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: hard,
        },
    );
    let now = getrlimit(Resource::Nofile).current;
    let short = now.filter(|n| *n < needed).map(|n| {
        format!(
            "the open-file limit is {n}, and {needed} descriptors are needed per process for the \
             largest memory count — raise the hard limit (`ulimit -Hn {needed}` as root) or pass \
             a smaller --connections"
        )
    });
    (now, short)
}

/// A measurement at one count of open idle connections.
#[derive(Debug)]
pub struct MemPoint {
    wanted: usize,
    open: usize,
    rss_kib: u64,
    emulator_rss_kib: Option<u64>,
}

/// The hold at the largest count.
#[derive(Debug, Default)]
pub struct Hold {
    connections: usize,
    seconds: f64,
    /// Connections that did not echo a byte after the hold.
    echo_failures: usize,
    first_echo_failure: Option<String>,
    /// Connections the tunnel reported closed (or failed) before the harness closed any.
    closed_by_tunnel: u64,
    failed_in_tunnel: u64,
}

impl Hold {
    fn ok(&self) -> bool {
        self.echo_failures == 0 && self.closed_by_tunnel == 0 && self.failed_in_tunnel == 0
    }
}

/// What the memory phase measured.
#[derive(Debug, Default)]
pub struct MemoryResults {
    baseline_kib: u64,
    emulator_baseline_kib: Option<u64>,
    points: Vec<MemPoint>,
    hold: Option<Hold>,
    /// 2 s after the last connection was reported closed.
    after_close_kib: u64,
    /// The last reading while waiting (up to the settle time) for the memory to come back.
    settled_kib: u64,
    settle_seconds: f64,
    emulator_after_close_kib: Option<u64>,
    all_closed: bool,
    limit: Option<String>,
    open_seconds: f64,
    /// `live_sessions` and `live_websockets` of the emulator once every connection closed.
    sessions_left: Option<(u64, u64)>,
    sessions_error: Option<String>,
}

impl MemoryResults {
    fn per_conn(&self, p: &MemPoint) -> f64 {
        p.rss_kib.saturating_sub(self.baseline_kib) as f64 / p.open.max(1) as f64
    }

    fn emulator_per_conn(&self, p: &MemPoint) -> Option<f64> {
        let (now, base) = (p.emulator_rss_kib?, self.emulator_baseline_kib?);
        Some(now.saturating_sub(base) as f64 / p.open.max(1) as f64)
    }

    /// Why the phase failed its own checks, if it did.
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(h) = self.hold.as_ref().filter(|h| !h.ok()) {
            why.push(format!(
                "after holding {} connections for {:.0} s: {} did not echo{}, {} closed and {} failed in the tunnel",
                h.connections,
                h.seconds,
                h.echo_failures,
                h.first_echo_failure
                    .as_ref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default(),
                h.closed_by_tunnel,
                h.failed_in_tunnel
            ));
        }
        match self.sessions_left {
            Some((0, 0)) => {}
            Some((sessions, sockets)) => why.push(format!(
                "the emulator has {sessions} session(s) and {sockets} WebSocket(s) left after every connection closed"
            )),
            None => why.push(format!(
                "could not ask the emulator for its sessions: {}",
                self.sessions_error.as_deref().unwrap_or("no control API")
            )),
        }
        if !self.all_closed {
            why.push("the tunnel did not report every connection closed within 90 s".to_owned());
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The results as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "target": "the harness's target in echo mode through IP connect; one byte echoed on each connection",
            "baseline_rss_kib": self.baseline_kib,
            "emulator_baseline_rss_kib": self.emulator_baseline_kib,
            "points": self.points.iter().map(|p| json!({
                "wanted": p.wanted,
                "open": p.open,
                "rss_kib": p.rss_kib,
                "per_connection_kib": self.per_conn(p),
                "emulator_rss_kib": p.emulator_rss_kib,
                "emulator_per_connection_kib": self.emulator_per_conn(p),
            })).collect::<Vec<_>>(),
            "hold": self.hold.as_ref().map(|h| json!({
                "connections": h.connections,
                "seconds": h.seconds,
                "echo_failures": h.echo_failures,
                "first_echo_failure": h.first_echo_failure,
                "closed_by_tunnel": h.closed_by_tunnel,
                "failed_in_tunnel": h.failed_in_tunnel,
            })),
            "after_close_rss_kib": self.after_close_kib,
            "settled_rss_kib": self.settled_kib,
            "settled_after_seconds": self.settle_seconds,
            "settled_over_baseline": self.settled_kib as f64 / self.baseline_kib.max(1) as f64,
            "emulator_after_close_rss_kib": self.emulator_after_close_kib,
            "all_closed_before_reading": self.all_closed,
            "emulator_sessions_left": self.sessions_left.map(|s| s.0),
            "emulator_websockets_left": self.sessions_left.map(|s| s.1),
            "emulator_sessions_error": self.sessions_error,
            "open_limit_reached": self.limit,
            "seconds_opening": self.open_seconds,
        })
    }

    /// Appends the table's memory section.
    pub fn render(&self, t: &mut String) {
        let mib = |k: u64| k as f64 / 1024.0;
        let _ = writeln!(
            t,
            "\nMemory: VmRSS with idle connections (tunnel baseline {:.1} MiB, emulator baseline {} MiB)",
            mib(self.baseline_kib),
            opt(self.emulator_baseline_kib.map(mib), 1)
        );
        let _ = writeln!(
            t,
            "{:<30} {:>8} {:>10} {:>13} {:>13} {:>13}",
            "state", "open", "tunnel MiB", "KiB per conn", "emulator MiB", "KiB per conn"
        );
        for p in &self.points {
            let _ = writeln!(
                t,
                "{:<30} {:>8} {:>10.1} {:>13.1} {:>13} {:>13}",
                format!("{} wanted", p.wanted),
                p.open,
                mib(p.rss_kib),
                self.per_conn(p),
                opt(p.emulator_rss_kib.map(mib), 1),
                opt(self.emulator_per_conn(p), 1)
            );
        }
        if let Some(h) = &self.hold {
            let _ = writeln!(
                t,
                "held {} for {:.0} s: {} of them echoed afterwards; {} closed, {} failed in the tunnel",
                h.connections,
                h.seconds,
                h.connections - h.echo_failures,
                h.closed_by_tunnel,
                h.failed_in_tunnel
            );
        }
        let closed = if self.all_closed {
            "all closed"
        } else {
            "close timed out"
        };
        let _ = writeln!(
            t,
            "{:<30} {:>8} {:>10.1} {:>13} {:>13} {:>13}",
            format!("{closed}, +2 s"),
            0,
            mib(self.after_close_kib),
            format!("{:.0}%", pct(self.after_close_kib, self.baseline_kib)),
            opt(self.emulator_after_close_kib.map(mib), 1),
            "-"
        );
        let _ = writeln!(
            t,
            "{:<30} {:>8} {:>10.1} {:>13} {:>13} {:>13}",
            format!("{closed}, +{:.0} s", self.settle_seconds),
            0,
            mib(self.settled_kib),
            format!("{:.0}%", pct(self.settled_kib, self.baseline_kib)),
            "-",
            "-"
        );
        let _ = writeln!(
            t,
            "(% = of the tunnel's baseline; the target is at most {:.0}%)",
            GIVEN_BACK * 100.0
        );
        match (&self.sessions_left, &self.sessions_error) {
            (Some((s, w)), _) => {
                let _ = writeln!(
                    t,
                    "emulator after close: {s} session(s), {w} WebSocket(s) left"
                );
            }
            (None, Some(e)) => {
                let _ = writeln!(t, "emulator sessions: unknown ({e})");
            }
            (None, None) => {}
        }
        if let Some(l) = &self.limit {
            let _ = writeln!(t, "note: {l}");
        }
    }
}

fn pct(now: u64, base: u64) -> f64 {
    now as f64 / base.max(1) as f64 * 100.0
}

/// Runs the memory phase on its own `bastion tunnel`.
pub async fn phase(ctx: &Ctx) -> Result<MemoryResults, Error> {
    let mut args = ctx.ip_connect_args();
    // Every idle connection is to hold a session: lift the default session cap.
    args.extend(["--max-connections".to_owned(), "100000".to_owned()]);
    let tunnel = ctx.tunnel("memory", &[], &args).await?;
    let r = measure(ctx, &tunnel).await;
    tunnel.stop().await;
    r
}

async fn measure(ctx: &Ctx, tunnel: &TunnelProc) -> Result<MemoryResults, Error> {
    let limit = Duration::from_secs(15);
    // Warm-up: one connection, closed.
    drop(net::echo_once(tunnel.port, limit).await?);
    tunnel.wait_all_closed(Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The warm-up's own events are not the hold's.
    let closed_before = tunnel.events.closed.load(Ordering::Relaxed);
    let failed_before = tunnel.events.failed.load(Ordering::Relaxed);
    let mut out = MemoryResults {
        baseline_kib: tunnel.proc.rss_kib()?,
        emulator_baseline_kib: ctx.emulator.rss_kib().ok(),
        ..MemoryResults::default()
    };
    let largest = ctx.opts.mem_counts.iter().copied().max().unwrap_or(0);
    // About 40 connections a second on a loaded 2-core machine, and never less than a minute.
    let budget = Duration::from_secs(60.max(largest as u64 / 40));
    let started = Instant::now();
    let deadline = started + budget;
    let mut conns: Vec<TcpStream> = Vec::new();
    let mut failure: Option<String> = None;
    for &wanted in &ctx.opts.mem_counts {
        note(format!("memory: opening up to {wanted} idle connections"));
        let mut inflight = JoinSet::new();
        loop {
            while failure.is_none()
                && inflight.len() < OPEN_CONCURRENCY
                && conns.len() + inflight.len() < wanted
                && Instant::now() < deadline
            {
                inflight.spawn(net::echo_once(tunnel.port, limit));
            }
            match inflight.join_next().await {
                None => break,
                Some(Ok(Ok(s))) => conns.push(s),
                Some(Ok(Err(e))) => {
                    failure.get_or_insert_with(|| e.to_string());
                }
                Some(Err(e)) => {
                    failure.get_or_insert_with(|| e.to_string());
                }
            }
        }
        if conns.len() < wanted && failure.is_none() {
            failure = Some(format!("time budget of {} s spent", budget.as_secs()));
        }
        // Let the last sessions settle into idle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        out.points.push(MemPoint {
            wanted,
            open: conns.len(),
            rss_kib: tunnel.proc.rss_kib()?,
            emulator_rss_kib: ctx.emulator.rss_kib().ok(),
        });
        if let Some(f) = &failure {
            let tunnel_said = tunnel
                .events
                .first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .map(|e| format!("; the tunnel reported: {e}"))
                .unwrap_or_default();
            let msg = format!(
                "opened {} of {wanted} connections; first failure: {f}{tunnel_said}",
                conns.len()
            );
            note(format!("memory: {msg}"));
            out.limit = Some(msg);
            break;
        }
    }
    out.open_seconds = started.elapsed().as_secs_f64();

    let hold = ctx.opts.hold;
    if !hold.is_zero() && failure.is_none() {
        note(format!(
            "memory: holding {} connections for {} s",
            conns.len(),
            hold.as_secs()
        ));
        let held_from = Instant::now();
        tokio::time::sleep(hold).await;
        let (back, echo_failures, first) = echo_all(conns, limit).await;
        conns = back;
        out.hold = Some(Hold {
            connections: conns.len() + echo_failures,
            seconds: held_from.elapsed().as_secs_f64(),
            echo_failures,
            first_echo_failure: first,
            closed_by_tunnel: tunnel.events.closed.load(Ordering::Relaxed) - closed_before,
            failed_in_tunnel: tunnel.events.failed.load(Ordering::Relaxed) - failed_before,
        });
    }

    note(format!("memory: closing {} connections", conns.len()));
    drop(conns);
    out.all_closed = tunnel.wait_all_closed(Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    out.after_close_kib = tunnel.proc.rss_kib()?;
    out.emulator_after_close_kib = ctx.emulator.rss_kib().ok();
    match sessions_left(ctx, &tunnel.endpoint).await {
        Ok(s) => out.sessions_left = Some(s),
        Err(e) => out.sessions_error = Some(e.to_string()),
    }
    // Memory given back later (an allocator's decay) counts too: wait for it, bounded.
    let closed_at = Instant::now();
    let target = (out.baseline_kib as f64 * GIVEN_BACK) as u64;
    out.settled_kib = tunnel.proc.rss_kib()?;
    while out.settled_kib > target && closed_at.elapsed() < ctx.opts.settle {
        tokio::time::sleep(Duration::from_secs(1)).await;
        out.settled_kib = tunnel.proc.rss_kib()?;
    }
    out.settle_seconds = 2.0 + closed_at.elapsed().as_secs_f64();
    Ok(out)
}

/// Echoes one byte on every connection, at most [`CHECK_CONCURRENCY`] at once. Returns the
/// connections that echoed, how many did not, and the first failure.
async fn echo_all(
    conns: Vec<TcpStream>,
    limit: Duration,
) -> (Vec<TcpStream>, usize, Option<String>) {
    let mut pending = conns.into_iter();
    let mut inflight = JoinSet::new();
    let mut ok = Vec::new();
    let mut failures = 0;
    let mut first = None;
    loop {
        while inflight.len() < CHECK_CONCURRENCY {
            let Some(mut s) = pending.next() else { break };
            inflight.spawn(async move {
                let r = net::within(limit, "echo after the hold", async {
                    s.write_all(b"y").await?;
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).await?;
                    if b[0] != b'y' {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            "wrong echo",
                        ));
                    }
                    Ok(())
                })
                .await;
                (s, r)
            });
        }
        match inflight.join_next().await {
            None => break,
            Some(Ok((s, Ok(())))) => ok.push(s),
            Some(Ok((_, Err(e)))) => {
                failures += 1;
                first.get_or_insert_with(|| e.to_string());
            }
            Some(Err(e)) => {
                failures += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (ok, failures, first)
}

/// Asks the emulator serving `endpoint` (`host:port`) for its live sessions and WebSockets,
/// until both are zero or 30 s have passed (the tunnel deletes sessions as connections close).
async fn sessions_left(ctx: &Ctx, endpoint: &str) -> Result<(u64, u64), Error> {
    let (url, secret) = ctx
        .env
        .control
        .iter()
        .find(|(url, _)| url.contains(&format!("//{endpoint}/")))
        .ok_or_else(|| {
            Error::new(format!(
                "`bastion emulate` printed no control API for {endpoint}"
            ))
        })?;
    let client = control_client(ctx)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = http::Request::get(url.as_str())
            .header(bastion_emulator::CONTROL_SECRET_HEADER, secret.as_str())
            .body(bytes::Bytes::new())
            .map_err(|e| Error::new(e.to_string()))?;
        let resp = client
            .send(req)
            .await
            .map_err(|e| Error::new(format!("{url}: {e}")))?;
        if !resp.status().is_success() {
            return Err(Error::new(format!("{url}: HTTP {}", resp.status())));
        }
        let stats: Value =
            serde_json::from_slice(resp.body()).map_err(|e| Error::new(format!("{url}: {e}")))?;
        let field = |k: &str| {
            stats[k]
                .as_u64()
                .ok_or_else(|| Error::new(format!("{url}: no {k} in the stats")))
        };
        let left = (field("live_sessions")?, field("live_websockets")?);
        if left == (0, 0) || Instant::now() > deadline {
            return Ok(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// An HTTPS client that trusts the sandbox's CA and resolves its names as the tunnel does.
fn control_client(ctx: &Ctx) -> Result<HttpsClient, Error> {
    let var = |k: &str| {
        ctx.env
            .vars
            .get(k)
            .ok_or_else(|| Error::new(format!("the emulator's environment lacks {k}")))
    };
    let ca_file = var("BASTION_CA_FILE")?;
    let ca = std::fs::read(ca_file).map_err(|e| Error::new(format!("{ca_file}: {e}")))?;
    let resolve = var("BASTION_RESOLVE")?
        .split(',')
        .filter_map(|pair| {
            let (host, ip) = pair.split_once('=')?;
            Some((host.trim().to_owned(), ip.trim().parse::<IpAddr>().ok()?))
        })
        .collect();
    HttpsClient::new(HttpsConfig {
        extra_root_ca_pem: Some(ca),
        resolve,
        proxy: ProxySetting::Direct,
        ..HttpsConfig::default()
    })
    .map_err(|e| Error::new(format!("cannot build the control API client: {e}")))
}
