//! Local TCP targets for tests: an echo server and a target that never reads. Like the
//! emulators' own servers, a target keeps accepting through accept errors (out of file
//! descriptors, a connection reset before it was accepted): it stops only when its task is
//! aborted.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// The pause after a failed accept before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts with `accept` for ever (until the task is aborted), handing each connection to
/// `serve`. A failed accept is logged and retried after [`ACCEPT_BACKOFF`]: running out of
/// descriptors for a moment must not end the target for the rest of the test.
pub(crate) async fn serve_forever<C, A, F>(mut accept: A, mut serve: impl FnMut(C))
where
    A: FnMut() -> F,
    F: Future<Output = std::io::Result<C>>,
{
    loop {
        match accept().await {
            Ok(conn) => serve(conn),
            Err(e) => {
                tracing::warn!(error = %e, "target accept failed; retrying");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Starts a TCP echo server on `127.0.0.1:0`. Every connection is served concurrently and
/// echoes until the peer half-closes, then closes its side. Abort the handle to stop
/// accepting.
pub async fn spawn_echo_target() -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        serve_forever(|| listener.accept(), |(stream, _)| echo(stream)).await;
    });
    Ok((addr, task))
}

/// Echoes on `stream` (in a task of its own) until the peer half-closes, then closes.
fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    tokio::spawn(async move {
        let (mut r, mut w) = stream.split();
        let _ = tokio::io::copy(&mut r, &mut w).await;
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut w).await;
    });
}

/// A target that accepts connections and never reads from them, so everything sent to it
/// piles up in socket buffers (a small receive buffer makes that happen early). Dropping it
/// stops accepting and closes the connections it holds.
pub struct StalledTarget {
    accepted: Arc<AtomicUsize>,
    held: Arc<Mutex<Vec<TcpStream>>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for StalledTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StalledTarget")
            .field("accepted", &self.accepted())
            .finish_non_exhaustive()
    }
}

impl StalledTarget {
    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections currently held open.
    pub fn open_connections(&self) -> usize {
        self.held.lock().map(|h| h.len()).unwrap_or(0)
    }

    /// Closes every held connection (the emulator then sees EOF from the target).
    pub fn drop_connections(&self) {
        if let Ok(mut held) = self.held.lock() {
            held.clear();
        }
    }

    /// Waits until at least `n` connections were accepted, at most `timeout`.
    pub async fn wait_for_connections(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.accepted() < n {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl Drop for StalledTarget {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_connections();
    }
}

/// Starts a [`StalledTarget`] on `127.0.0.1:0`.
pub async fn spawn_stalled_target() -> std::io::Result<(SocketAddr, StalledTarget)> {
    let socket = TcpSocket::new_v4()?;
    // Accepted sockets inherit the small buffer: backpressure shows after a few KiB.
    let _ = socket.set_recv_buffer_size(4096);
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
    let listener = socket.listen(64)?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let held = Arc::new(Mutex::new(Vec::new()));
    let (a, h) = (Arc::clone(&accepted), Arc::clone(&held));
    let task = tokio::spawn(async move {
        serve_forever(
            || listener.accept(),
            |(stream, _)| {
                if let Ok(mut held) = h.lock() {
                    held.push(stream);
                }
                a.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
    });
    Ok((
        addr,
        StalledTarget {
            accepted,
            held,
            task,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn echo_serves_concurrent_connections() {
        let (addr, task) = spawn_echo_target().await.unwrap();
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        b.write_all(b"bbb").await.unwrap();
        a.write_all(b"aa").await.unwrap();
        let mut buf = [0u8; 3];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"bbb");
        a.read_exact(&mut buf[..2]).await.unwrap();
        assert_eq!(&buf[..2], b"aa");
        task.abort();
    }

    #[tokio::test]
    async fn accept_errors_do_not_stop_a_target() {
        let listener = Arc::new(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap());
        let addr = listener.local_addr().unwrap();
        // The first accepts fail as they do when the process is out of descriptors.
        let failures = Arc::new(AtomicUsize::new(3));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (f, n) = (Arc::clone(&failures), Arc::clone(&attempts));
        let task = tokio::spawn(async move {
            serve_forever(
                move || {
                    let (l, f, n) = (Arc::clone(&listener), Arc::clone(&f), Arc::clone(&n));
                    async move {
                        n.fetch_add(1, Ordering::SeqCst);
                        if f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                            .is_ok()
                        {
                            return Err(std::io::Error::from_raw_os_error(24)); // EMFILE
                        }
                        l.accept().await
                    }
                },
                |(stream, _)| echo(stream),
            )
            .await;
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut buf))
            .await
            .expect("the target stopped serving after an accept error")
            .unwrap();
        assert_eq!(&buf, b"still here");
        assert_eq!(failures.load(Ordering::SeqCst), 0);
        assert!(attempts.load(Ordering::SeqCst) >= 4);
        task.abort();
    }

    #[tokio::test]
    async fn stalled_target_holds_and_drops() {
        let (addr, stalled) = spawn_stalled_target().await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(
            stalled
                .wait_for_connections(1, Duration::from_secs(2))
                .await
        );
        assert_eq!(stalled.open_connections(), 1);
        // Writes eventually block: the target never reads. Bounded: a target that read would
        // take all 64 MiB without a write ever stalling.
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        let blocked = loop {
            if written >= 64 << 20 {
                break false;
            }
            match tokio::time::timeout(Duration::from_millis(200), c.write_all(&chunk)).await {
                Ok(r) => {
                    r.unwrap();
                    written += chunk.len();
                }
                Err(_) => break true,
            }
        };
        assert!(blocked, "{written} bytes written and no write blocked");
        stalled.drop_connections();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)));
    }
}
