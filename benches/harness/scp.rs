//! The scp phase: `scp` of one large file (random data) to and from a private OpenSSH server
//! on 127.0.0.1, direct and through `bastion proxy` as ssh's `ProxyCommand` (default and 64 KiB
//! frames), a few runs each; medians, the ratio to direct, and every copy checked by SHA-256.
//!
//! The server is `bastion_emulator::openssh::PrivateSshd`; the proxy reaches it through the
//! sandbox VM's Bastion by IP connect (`--target-ip-address 127.0.0.1 --resource-port PORT
//! --allow-any-port`): the emulator dials the address it is given.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::process::Command;

use bastion_emulator::openssh::{OpenSsh, PrivateSshd};

use crate::procs::SCRUBBED_ENV;
use crate::{Ctx, Error, note};

/// Timed runs per case (the median is reported).
const RUNS: usize = 3;

/// Finds the OpenSSH programs; `Err` says the phase is skipped and what is missing.
pub fn tools() -> Result<OpenSsh, String> {
    OpenSsh::find().map_err(|e| format!("scp: skipped: {e}"))
}

/// One case: a direction and a path (direct, or the proxy with a frame size).
#[derive(Debug, Clone)]
pub struct ScpRow {
    /// `upload` (scp put) or `download` (scp get).
    pub direction: &'static str,
    /// `direct`, `proxy default frames` or `proxy 64 KiB frames`.
    pub path: &'static str,
    /// Each run's wall time, in seconds.
    pub seconds: Vec<f64>,
}

impl ScpRow {
    fn median(&self) -> f64 {
        let mut s = self.seconds.clone();
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    }
}

/// What the phase measured.
#[derive(Debug, Default)]
pub struct ScpResults {
    /// The file's size.
    pub bytes: u64,
    /// Every case, direct first within each direction.
    pub rows: Vec<ScpRow>,
    /// Every copy matched the source's SHA-256.
    pub verified: bool,
    /// Why the phase did not run, if it did not.
    pub skipped: Option<String>,
}

impl ScpResults {
    fn direct_median(&self, direction: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.direction == direction && r.path == "direct")
            .map(ScpRow::median)
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        json!({
            "bytes": self.bytes,
            "runs": RUNS,
            "sha256_verified": self.verified,
            "skipped": self.skipped,
            "rows": self.rows.iter().map(|r| {
                let median = r.median();
                json!({
                    "direction": r.direction,
                    "path": r.path,
                    "seconds": r.seconds,
                    "median_seconds": median,
                    "mb_per_s": self.bytes as f64 / median / 1e6,
                    "ratio_to_direct": self.direct_median(r.direction).map(|d| median / d),
                })
            }).collect::<Vec<_>>(),
        })
    }

    /// The table section.
    pub fn render(&self, t: &mut String) {
        use std::fmt::Write as _;
        if let Some(why) = &self.skipped {
            let _ = writeln!(t, "\n{why}");
            return;
        }
        let _ = writeln!(
            t,
            "\nscp of a {} MB file (OpenSSH on 127.0.0.1; median of {RUNS} runs; ratio = time / direct time; SHA-256 {})",
            self.bytes / 1_000_000,
            if self.verified {
                "verified"
            } else {
                "MISMATCH"
            }
        );
        let _ = writeln!(
            t,
            "{:<40} {:>9} {:>9} {:>9} {:>7}",
            "case", "median s", "min s", "MB/s", "ratio"
        );
        for r in &self.rows {
            let median = r.median();
            let min = r.seconds.iter().copied().fold(f64::INFINITY, f64::min);
            let _ = writeln!(
                t,
                "{:<40} {:>9.2} {:>9.2} {:>9.1} {:>7}",
                format!("{} {}", r.direction, r.path),
                median,
                min,
                self.bytes as f64 / median / 1e6,
                crate::opt(self.direct_median(r.direction).map(|d| median / d), 3),
            );
        }
    }
}

/// A private directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the phase; the results keep what was measured before a failure.
pub async fn phase(ctx: &Ctx, tools: &OpenSsh, out: &mut ScpResults) -> Result<(), Error> {
    let dir =
        TempDir(std::env::temp_dir().join(format!("bastion-bench-scp-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).map_err(|e| Error::new(format!("{}: {e}", dir.0.display())))?;
    let d = &dir.0;

    let bytes = ctx.opts.scp_bytes;
    note(format!(
        "scp: writing a {} MB file of random data",
        bytes / 1_000_000
    ));
    let src = d.join("source.bin");
    let want = write_random(&src, bytes)?;
    out.bytes = bytes;

    let log = std::fs::File::create(ctx.opts.logs.join("sshd.log"))?;
    let sshd = PrivateSshd::start(tools, d, log).await.map_err(|e| {
        Error::new(format!(
            "{e} (sshd's log: {})",
            ctx.opts.logs.join("sshd.log").display()
        ))
    })?;
    note(format!(
        "scp: sshd pid {} on 127.0.0.1:{}",
        sshd.pid().unwrap_or_default(),
        sshd.port()
    ));

    let r = cases(ctx, tools, &sshd, d, &src, &want, out).await;
    sshd.stop().await;
    r
}

async fn cases(
    ctx: &Ctx,
    tools: &OpenSsh,
    sshd: &PrivateSshd,
    d: &Path,
    src: &Path,
    want: &str,
    out: &mut ScpResults,
) -> Result<(), Error> {
    let port = sshd.port();
    let proxy = |frame: Option<&str>| {
        let mut cmd = format!(
            "'{}' proxy -n {} -g {} --target-ip-address 127.0.0.1 --resource-port {port} --allow-any-port",
            ctx.opts.bastion.display(),
            ctx.env.vm_bastion,
            ctx.env.vm_resource_group
        );
        if let Some(f) = frame {
            cmd.push_str(&format!(" --max-frame-size {f}"));
        }
        cmd
    };
    let paths: [(&'static str, Option<String>); 3] = [
        ("direct", None),
        ("proxy default frames", Some(proxy(None))),
        ("proxy 64 KiB frames", Some(proxy(Some("65536")))),
    ];
    let user = sshd.user();
    let remote = |p: &Path| format!("{user}@127.0.0.1:{}", p.display());
    out.verified = true;
    for direction in ["upload", "download"] {
        for (path, proxy_cmd) in &paths {
            let mut row = ScpRow {
                direction,
                path,
                seconds: Vec::new(),
            };
            // One untimed run first (page cache, the token and the pooled HTTPS connection).
            for run in 0..=RUNS {
                let dst = d.join(format!("copy-{direction}.bin"));
                let _ = std::fs::remove_file(&dst);
                let (from, to) = match direction {
                    "upload" => (src.display().to_string(), remote(&dst)),
                    _ => (remote(src), dst.display().to_string()),
                };
                if run > 0 {
                    note(format!("scp: {direction} {path}, run {run} of {RUNS}"));
                }
                let mut cmd = Command::new(&tools.scp);
                for k in SCRUBBED_ENV {
                    cmd.env_remove(k);
                }
                cmd.envs(&ctx.env.vars)
                    .args(["-q", "-B"])
                    .args(sshd.client_options())
                    .args(["-P", &port.to_string()]);
                if let Some(p) = proxy_cmd {
                    cmd.arg("-o").arg(format!("ProxyCommand={p}"));
                }
                cmd.arg(&from).arg(&to);
                let start = Instant::now();
                run_quiet(&mut cmd, &format!("scp {direction} {path}")).await?;
                let secs = start.elapsed().as_secs_f64();
                let got = sha256_file(&dst)?;
                let _ = std::fs::remove_file(&dst);
                if got != want {
                    out.verified = false;
                    return Err(Error::new(format!(
                        "scp {direction} {path}: the copy's SHA-256 {got} differs from the source's {want}"
                    )));
                }
                if run > 0 {
                    row.seconds.push(secs);
                }
            }
            out.rows.push(row);
        }
    }
    Ok(())
}

/// Runs a command to completion (bounded), its output captured; fails with its stderr.
async fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), Error> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| Error::new(format!("cannot start {what}: {e}")))?;
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .map_err(|_| Error::new(format!("{what} did not finish within 300 s")))?
        .map_err(|e| Error::new(format!("{what}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&output.stderr);
        Err(Error::new(format!(
            "{what} failed ({}): {}",
            output.status,
            err.trim().lines().last().unwrap_or("no message")
        )))
    }
}

/// Writes `bytes` of pseudo-random data (xorshift; incompressible for ssh) to `path`; returns
/// its SHA-256 in hex.
fn write_random(path: &Path, bytes: u64) -> Result<String, Error> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?,
    );
    let mut hash = Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id());
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        for w in chunk.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            w.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n])?;
        hash.update(&chunk[..n]);
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex(&hash.finalize()))
}

/// The SHA-256 of a file, in hex.
fn sha256_file(path: &Path) -> Result<String, Error> {
    let mut f =
        std::fs::File::open(path).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex(&hash.finalize()))
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
