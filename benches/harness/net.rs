//! The harness's own TCP pieces, all on 127.0.0.1: the bulk sink/source target, an echo
//! target, the delaying relay that adds an RTT, and the client side of each measurement.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Size of the harness's read and write buffers.
const BUF: usize = 256 * 1024;

/// A background server task, aborted when dropped.
pub struct Server {
    /// Its port on 127.0.0.1.
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn bind(port: u16) -> io::Result<(TcpListener, u16)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    let port = listener.local_addr()?.port();
    Ok((listener, port))
}

/// Accepts forever, backing off when out of descriptors instead of giving up.
fn serve<F, Fut>(listener: TcpListener, handler: F) -> JoinHandle<()>
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((s, _)) => {
                    let _ = s.set_nodelay(true);
                    tokio::spawn(handler(s));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

/// Which way the bulk bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The client writes N bytes to the sink.
    Upload,
    /// The target streams N bytes to the client.
    Download,
}

impl Direction {
    /// "upload" / "download".
    pub fn name(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// The harness's target. The first byte chooses the mode:
/// - `U` or `D`, then N (u64, big endian): bulk. The server answers `R` (so the tunnel session
///   is known to be up before timing starts). `U`: the client writes N bytes, the server answers
///   `A` once it has read them all. `D`: the client sends `G`, the server writes N bytes and
///   closes its side.
/// - anything else: echo, from that first byte on.
///
/// Listens on 127.0.0.1:`port` (0: any free port).
pub async fn spawn_target(port: u16) -> io::Result<Server> {
    let (listener, port) = bind(port).await?;
    let task = serve(listener, |s| async move {
        let _ = target_session(s).await;
    });
    Ok(Server { port, task })
}

async fn target_session(mut s: TcpStream) -> io::Result<()> {
    let mut mode = [0u8; 1];
    s.read_exact(&mut mode).await?;
    if !matches!(mode[0], b'U' | b'D') {
        s.write_all(&mode).await?;
        return echo(s).await;
    }
    let mut n = [0u8; 8];
    s.read_exact(&mut n).await?;
    let n = u64::from_be_bytes(n);
    s.write_all(b"R").await?;
    if mode[0] == b'U' {
        let mut buf = vec![0u8; BUF];
        let mut got = 0u64;
        while got < n {
            let r = s.read(&mut buf).await?;
            if r == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            got += r as u64;
        }
        s.write_all(b"A").await?;
    } else {
        let mut go = [0u8; 1];
        s.read_exact(&mut go).await?;
        write_n(&mut s, n).await?;
        s.shutdown().await?;
    }
    // Wait for the client to close (bounded), so nothing is reset under it.
    let mut rest = [0u8; 64];
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read(&mut rest)).await;
    Ok(())
}

async fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        s.write_all(&buf[..n]).await?;
    }
}

async fn write_n(s: &mut TcpStream, n: u64) -> io::Result<()> {
    let buf = vec![0xa5u8; BUF];
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(BUF as u64) as usize;
        s.write_all(&buf[..k]).await?;
        sent += k as u64;
    }
    Ok(())
}

/// A TCP relay to `upstream` that delays every chunk by `rtt / 2` each way, and holds each new
/// connection's first client bytes for one more full `rtt` (the TCP handshake a real path
/// would cost: a loopback connect completes at once).
pub async fn spawn_relay(upstream: SocketAddr, rtt: Duration) -> io::Result<Server> {
    let (listener, port) = bind(0).await?;
    let task = serve(listener, move |client| async move {
        let accepted = Instant::now();
        let Ok(Ok(up)) =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(upstream)).await
        else {
            return;
        };
        let _ = up.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (ur, uw) = up.into_split();
        let half = rtt / 2;
        let a = tokio::spawn(delayed_pipe(cr, uw, half, accepted + rtt));
        let b = tokio::spawn(delayed_pipe(ur, cw, half, accepted));
        let _ = tokio::join!(a, b);
    });
    Ok(Server { port, task })
}

/// Copies `r` to `w`, each chunk released `delay` after it arrived (and not before
/// `hold_until + delay`). EOF is forwarded as a write shutdown, with the same delay.
async fn delayed_pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    hold_until: Instant,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(256);
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let chunk = match r.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let eof = chunk.is_none();
            let at = Instant::now().max(hold_until) + delay;
            if tx.send((at, chunk)).await.is_err() || eof {
                return;
            }
        }
    });
    while let Some((at, chunk)) = rx.recv().await {
        sleep_until_precisely(at).await;
        match chunk {
            Some(data) => {
                if w.write_all(&data).await.is_err() {
                    break;
                }
            }
            None => {
                let _ = w.shutdown().await;
                break;
            }
        }
    }
    reader.abort();
}

/// Tokio's timer wakes on whole milliseconds, rounded up: on it alone a chunk is released about
/// 1 ms late, 2 ms per modelled round trip, which the setup figures would count as the
/// tunnel's own (a 3-round-trip setup measured 6-7 ms slower). The runtime timer is used for
/// all but this last stretch before the deadline.
const COARSE_MARGIN: Duration = Duration::from_millis(2);

/// Sleeps until `at` to within a fraction of a millisecond: the timer for all but the last
/// [`COARSE_MARGIN`], then a thread sleep (the kernel's high-resolution timer) on the blocking
/// pool for the rest, so no runtime worker is held.
async fn sleep_until_precisely(at: Instant) {
    if let Some(early) = at.checked_sub(COARSE_MARGIN) {
        tokio::time::sleep_until(early).await;
    }
    let rest = at.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// Connects to 127.0.0.1:`port` (bounded) with Nagle off.
pub async fn connect(port: u16) -> io::Result<TcpStream> {
    let s = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Bounds an I/O future.
pub async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(limit, f).await.map_err(|_| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what}: no answer within {} s", limit.as_secs()),
        )
    })?
}

/// Opens a bulk session through `port` and waits for the target's `R`.
pub async fn bulk_prepare(port: u16, dir: Direction, n: u64) -> io::Result<TcpStream> {
    let mut s = connect(port).await?;
    let mut head = [0u8; 9];
    head[0] = match dir {
        Direction::Upload => b'U',
        Direction::Download => b'D',
    };
    head[1..].copy_from_slice(&n.to_be_bytes());
    s.write_all(&head).await?;
    let mut r = [0u8; 1];
    within(
        Duration::from_secs(30),
        "bulk session setup",
        s.read_exact(&mut r),
    )
    .await?;
    if r[0] != b'R' {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad bulk handshake",
        ));
    }
    Ok(s)
}

/// Moves the N bytes of a prepared session; returns when the last byte has arrived.
pub async fn bulk_run(mut s: TcpStream, dir: Direction, n: u64, limit: Duration) -> io::Result<()> {
    within(limit, "bulk transfer", async {
        match dir {
            Direction::Upload => {
                write_n(&mut s, n).await?;
                let mut a = [0u8; 1];
                s.read_exact(&mut a).await?;
                if a[0] != b'A' {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad ack"));
                }
            }
            Direction::Download => {
                s.write_all(b"G").await?;
                let mut buf = vec![0u8; BUF];
                let mut got = 0u64;
                while got < n {
                    let r = s.read(&mut buf).await?;
                    if r == 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("closed after {got} of {n} bytes"),
                        ));
                    }
                    got += r as u64;
                }
            }
        }
        Ok(())
    })
    .await?;
    let _ = s.shutdown().await;
    Ok(())
}

/// Connects and echoes one byte; returns the open stream.
pub async fn echo_once(port: u16, limit: Duration) -> io::Result<TcpStream> {
    let mut s = connect(port).await?;
    within(limit, "first echoed byte", async {
        s.write_all(b"x").await?;
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await?;
        if b[0] != b'x' {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "wrong echo"));
        }
        Ok(())
    })
    .await?;
    Ok(s)
}
