//! A relay direction's read buffer: grown (up to its maximum) while reads fill it, and back to
//! its 1 KiB floor after a small read or after a quiet spell, so thousands of idle or
//! interactive connections hold little, a connection that goes quiet after a bulk transfer
//! gives its large buffer back, and a bulk transfer still reads large chunks
//! (docs/architecture.md#memory).

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What an idle relay holds per direction.
pub(super) const MIN_READ_BUFFER: usize = 1024;
/// How long a grown buffer may wait for data before it goes back to [`MIN_READ_BUFFER`]. Far
/// above the gaps of a bulk transfer (where the socket drains and refills within
/// milliseconds); well below any idle timeout.
pub(super) const IDLE_RELEASE: Duration = Duration::from_secs(1);

pub(super) struct ReadBuffer {
    buf: Vec<u8>,
    max: usize,
    /// The quiet-spell timer, made the first time a grown buffer waits, then re-armed.
    idle: Option<Pin<Box<Sleep>>>,
}

impl ReadBuffer {
    pub(super) fn new(initial: usize, max: usize) -> Self {
        Self {
            buf: vec![0; initial.min(max)],
            max,
            idle: None,
        }
    }

    /// Reads at most `limit` bytes from `r` into the buffer (then see [`Self::filled`]).
    /// When the buffer is larger than its floor and nothing comes for [`IDLE_RELEASE`], it
    /// goes back to the floor before the read goes on waiting. Cancel-safe: nothing is read
    /// unless it returns.
    pub(super) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        r: &mut R,
        limit: usize,
    ) -> io::Result<usize> {
        let mut armed = false;
        std::future::poll_fn(|cx| {
            loop {
                let n = self.buf.len().min(limit.max(1));
                let mut rb = ReadBuf::new(&mut self.buf[..n]);
                if let Poll::Ready(r) = Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    return Poll::Ready(r.map(|()| rb.filled().len()));
                }
                if self.buf.len() <= MIN_READ_BUFFER {
                    return Poll::Pending;
                }
                // The data is usually there already in a bulk transfer: the timer is only
                // armed once the read has to wait.
                let idle = self
                    .idle
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(IDLE_RELEASE)));
                if !armed {
                    idle.as_mut().reset(Instant::now() + IDLE_RELEASE);
                    armed = true;
                }
                if idle.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // Quiet for a second: give the large buffer back, and wait on the small one.
                self.buf = vec![0; MIN_READ_BUFFER];
            }
        })
        .await
    }

    /// The `n` bytes the last read put in.
    pub(super) fn filled(&self, n: usize) -> &[u8] {
        &self.buf[..n]
    }

    /// After the last read's `n` bytes have been used: grow when it filled the buffer, shrink
    /// when it was small.
    pub(super) fn adapt(&mut self, n: usize) {
        if n == self.buf.len() && self.buf.len() < self.max {
            self.buf = vec![0; (self.buf.len() * 4).min(self.max)];
        } else if n <= MIN_READ_BUFFER && self.buf.len() > MIN_READ_BUFFER {
            self.buf = vec![0; MIN_READ_BUFFER];
        }
    }

    /// The buffer's current size.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    const MAX: usize = 256 * 1024;

    /// A pipe and a buffer grown to `MAX` by filled reads (1, 4, 16 and 64 KiB), then one
    /// full read of `MAX` that empties the pipe.
    async fn grown() -> (tokio::io::DuplexStream, tokio::io::DuplexStream, ReadBuffer) {
        let (mut w, mut r) = tokio::io::duplex(4 * MAX);
        w.write_all(&vec![7; 85 * MIN_READ_BUFFER + MAX])
            .await
            .unwrap();
        let mut buf = ReadBuffer::new(MIN_READ_BUFFER, MAX);
        while buf.len() < MAX {
            let n = buf.read_from(&mut r, usize::MAX).await.unwrap();
            assert_eq!(n, buf.len(), "a filled read");
            buf.adapt(n);
        }
        let n = buf.read_from(&mut r, usize::MAX).await.unwrap();
        assert_eq!(n, MAX, "the rest, in one read");
        (w, r, buf)
    }

    #[tokio::test(start_paused = true)]
    async fn a_grown_buffer_goes_back_to_its_floor_after_a_quiet_spell() {
        let (mut w, mut r, mut buf) = grown().await;

        // Quiet for longer than IDLE_RELEASE, then a few bytes.
        let writer = tokio::spawn(async move {
            tokio::time::sleep(IDLE_RELEASE * 3).await;
            w.write_all(b"later").await.unwrap();
            w
        });
        let n = buf.read_from(&mut r, usize::MAX).await.unwrap();
        assert_eq!(buf.filled(n), b"later");
        assert_eq!(buf.len(), MIN_READ_BUFFER, "released while it waited");
        drop(writer.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_shorter_than_the_quiet_spell_keep_the_buffer() {
        let (mut w, mut r, mut buf) = grown().await;
        for _ in 0..5 {
            let writer = tokio::spawn(async move {
                tokio::time::sleep(IDLE_RELEASE / 2).await;
                w.write_all(&vec![1; 4 * MIN_READ_BUFFER]).await.unwrap();
                w
            });
            let n = buf.read_from(&mut r, usize::MAX).await.unwrap();
            assert_eq!(n, 4 * MIN_READ_BUFFER);
            assert_eq!(buf.len(), MAX, "kept through a short pause");
            w = writer.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_small_read_shrinks_and_a_full_one_grows() {
        let mut buf = ReadBuffer::new(MIN_READ_BUFFER, MAX);
        buf.adapt(MIN_READ_BUFFER);
        assert_eq!(buf.len(), 4 * MIN_READ_BUFFER);
        buf.adapt(4 * MIN_READ_BUFFER);
        assert_eq!(buf.len(), 16 * MIN_READ_BUFFER);
        buf.adapt(100);
        assert_eq!(buf.len(), MIN_READ_BUFFER);
    }
}
