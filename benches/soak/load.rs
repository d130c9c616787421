//! The client load: workers that each open connection after connection to a local tunnel port,
//! send a deterministic pseudo-random byte stream (one seed per connection), and check every
//! byte the echo target sends back against the same stream, at the same offset. A byte that
//! differs, or a byte past the end, is a violation: data corrupted, reordered, duplicated (by
//! a replay) or invented. A connection that ends early (an injected fault, a signalled tunnel)
//! is allowed; what it got back before that must still match.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

/// A reproducible byte stream (xorshift64*), so the reader can check what the writer sent
/// without keeping it.
#[derive(Clone)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed` (any value: it is mixed first, splitmix64).
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Self {
            // xorshift must not start at zero.
            state: if z == 0 { 1 } else { z },
            word: [0; 8],
            used: 8,
        }
    }

    /// The next `out.len()` bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.word = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
                self.used = 0;
            }
            *b = self.word[self.used];
            self.used += 1;
        }
    }
}

/// Counters shared by every worker.
#[derive(Default)]
pub struct Tally {
    /// Connections that echoed every byte and then closed cleanly.
    pub completed: AtomicU64,
    /// Connections that ended early (reset, EOF, error) after an injected fault or a signal.
    pub failed: AtomicU64,
    /// Connections the worker gave up on after the per-connection limit (a stall).
    pub abandoned: AtomicU64,
    /// Connects refused (the victim tunnel between a signal and its restart).
    pub refused: AtomicU64,
    /// Bytes echoed back and checked: the acknowledged bytes.
    pub verified: AtomicU64,
    /// Bytes written by the clients.
    pub sent: AtomicU64,
    /// Violations (corrupted, reordered or extra bytes), with a description each.
    pub violations: std::sync::Mutex<Vec<String>>,
    /// Connections open right now.
    pub open: AtomicU64,
    /// Connections started in the calm phase (no fault) that did not complete.
    pub calm_failures: AtomicU64,
}

impl Tally {
    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        if let Ok(mut v) = self.violations.lock() {
            v.push(what);
        }
    }
}

/// What one worker does.
#[derive(Clone)]
pub struct Worker {
    /// Its number (part of each connection's seed).
    pub id: u64,
    /// The port of the tunnel it uses (`None` while that tunnel is down).
    pub port: watch::Receiver<Option<u16>>,
    /// The shared counters.
    pub tally: Arc<Tally>,
    /// Set when the load must stop.
    pub stop: Arc<AtomicBool>,
    /// The longest a connection may take before the worker gives up on it.
    pub limit: Duration,
    /// Which tunnel (for messages).
    pub tunnel: &'static str,
    /// The fault profile now active (for messages).
    pub profile: watch::Receiver<&'static str>,
}

impl Worker {
    /// Runs connections until told to stop.
    pub async fn run(mut self) {
        let mut n: u64 = 0;
        let mut rng = Pattern::new(self.id.wrapping_mul(7919));
        while !self.stop.load(Ordering::Relaxed) {
            let Some(port) = *self.port.borrow_and_update() else {
                // The tunnel is being restarted.
                let _ = tokio::time::timeout(Duration::from_millis(200), self.port.changed()).await;
                continue;
            };
            n += 1;
            let seed = (self.id << 32) | n;
            let mut pick = [0u8; 4];
            rng.fill(&mut pick);
            // Most connections are short (a session each: token POSTs under every fault);
            // one in four carries up to 1 MiB, paced so that it lives across fault changes.
            let (len, paced) = if pick[0] < 192 {
                (1 + u64::from(u16::from_le_bytes([pick[1], pick[2]])), false)
            } else {
                (
                    (256 << 10) + u64::from(u16::from_le_bytes([pick[1], pick[2]])) * 12,
                    true,
                )
            };
            let stream = match TcpStream::connect(("127.0.0.1", port)).await {
                Ok(s) => s,
                Err(_) => {
                    self.tally.refused.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            self.tally.open.fetch_add(1, Ordering::Relaxed);
            let calm = *self.profile.borrow() == "calm";
            let outcome =
                tokio::time::timeout(self.limit, self.connection(stream, seed, len, paced)).await;
            self.tally.open.fetch_sub(1, Ordering::Relaxed);
            match outcome {
                Ok(true) => self.tally.completed.fetch_add(1, Ordering::Relaxed),
                Ok(false) => self.tally.failed.fetch_add(1, Ordering::Relaxed),
                Err(_) => self.tally.abandoned.fetch_add(1, Ordering::Relaxed),
            };
            // A short pause after a failure, so a tunnel that refuses everything is not spun on.
            if !matches!(outcome, Ok(true)) {
                if calm {
                    self.tally.calm_failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!(
                        "soak: {} connection {:#x} started with no fault active failed",
                        self.tunnel,
                        (self.id << 32) | n
                    );
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// One connection: write `len` bytes of the seed's stream (half-closing after them) while
    /// checking what comes back. `true` if all of it came back, then EOF.
    async fn connection(&self, stream: TcpStream, seed: u64, len: u64, paced: bool) -> bool {
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let tally = &self.tally;
        let writer = async {
            let mut pattern = Pattern::new(seed);
            let mut sizes = Pattern::new(seed ^ 0xABCD);
            let mut buf = vec![0u8; 32 << 10];
            let mut left = len;
            while left > 0 {
                let mut s = [0u8; 2];
                sizes.fill(&mut s);
                let n = (1 + usize::from(u16::from_le_bytes(s)) % buf.len()).min(left as usize);
                pattern.fill(&mut buf[..n]);
                if wr.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                tally.sent.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
                if paced {
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }
            // Half-close: the tunnel keeps relaying the echo until the far side closes.
            let _ = wr.shutdown().await;
        };
        let reader = async {
            let mut expected = Pattern::new(seed);
            let mut want = vec![0u8; 64 << 10];
            let mut got = vec![0u8; 64 << 10];
            let mut offset: u64 = 0;
            loop {
                let n = match rd.read(&mut got).await {
                    Ok(0) => return offset == len,
                    Ok(n) => n,
                    Err(_) => return false,
                };
                if offset + n as u64 > len {
                    tally.violation(format!(
                        "{} connection {seed:#x} ({}): {} bytes past the {len} sent",
                        self.tunnel,
                        *self.profile.borrow(),
                        offset + n as u64 - len
                    ));
                    return false;
                }
                expected.fill(&mut want[..n]);
                if let Some(at) = (0..n).find(|&i| want[i] != got[i]) {
                    tally.violation(format!(
                        "{} connection {seed:#x} ({}): byte {} of {len} differs (sent {:#04x}, echoed {:#04x})",
                        self.tunnel,
                        *self.profile.borrow(),
                        offset + at as u64,
                        want[at],
                        got[at]
                    ));
                    return false;
                }
                offset += n as u64;
                tally.verified.fetch_add(n as u64, Ordering::Relaxed);
            }
        };
        let ((), complete) = tokio::join!(writer, reader);
        complete
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::watch;

    use super::{Pattern, Tally, Worker};

    #[test]
    fn the_pattern_is_the_same_whatever_the_chunking() {
        let mut whole = vec![0u8; 1000];
        Pattern::new(42).fill(&mut whole);
        let mut pieces = Pattern::new(42);
        let mut joined = Vec::new();
        for n in [1, 7, 8, 13, 500, 471] {
            let mut part = vec![0u8; n];
            pieces.fill(&mut part);
            joined.extend(part);
        }
        assert_eq!(joined, whole);
        let mut other = vec![0u8; 1000];
        Pattern::new(43).fill(&mut other);
        assert_ne!(other, whole);
    }

    /// An echo server that alters the stream with `mangle` (given the bytes so far).
    async fn bad_echo(mangle: fn(u64, &mut Vec<u8>)) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut at = 0u64;
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let mut out = buf[..n].to_vec();
                        mangle(at, &mut out);
                        at += n as u64;
                        if s.write_all(&out).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        port
    }

    /// Runs one worker against `port` for a moment; the tally.
    async fn run_against(port: u16) -> Arc<Tally> {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (_port_tx, port_rx) = watch::channel(Some(port));
        let (_p, profile) = watch::channel("test");
        let worker = Worker {
            id: 1,
            port: port_rx,
            tally: Arc::clone(&tally),
            stop: Arc::clone(&stop),
            limit: Duration::from_secs(5),
            tunnel: "test",
            profile,
        };
        let task = tokio::spawn(worker.run());
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, Ordering::Relaxed);
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the worker stops")
            .unwrap();
        tally
    }

    #[tokio::test]
    async fn a_faithful_echo_passes_and_an_altered_one_is_a_violation() {
        let honest = run_against(bad_echo(|_, _| {}).await).await;
        assert!(honest.completed.load(Ordering::Relaxed) > 0);
        assert!(honest.violations.lock().unwrap().is_empty());

        // One byte flipped, one byte duplicated (a replay gone wrong), two bytes swapped.
        let mangles: [fn(u64, &mut Vec<u8>); 3] = [
            |at, b| {
                if at == 0 && b.len() > 1 {
                    b[1] ^= 0x40;
                }
            },
            |at, b| {
                if at == 0 {
                    let first = b[0];
                    b.insert(0, first);
                }
            },
            |at, b| {
                if at == 0 && b.len() > 1 {
                    b.swap(0, 1);
                }
            },
        ];
        for mangle in mangles {
            let tally = run_against(bad_echo(mangle).await).await;
            assert!(
                !tally.violations.lock().unwrap().is_empty(),
                "an altered echo went unnoticed"
            );
        }
    }
}
