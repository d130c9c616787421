//! [`ReadAhead`]: a socket read buffer under TLS that grows only while bulk data flows.
//!
//! rustls asks its transport for one record at a time (at most about 16 KiB), so a bulk
//! transfer costs one `recvfrom` per record, each with its own TCP window update. While reads
//! keep filling what rustls asks for, this adapter reads up to [`MAX_AHEAD`] bytes per system
//! call instead and hands them over from memory; once the data stops streaming, the buffer is
//! released, so an idle connection holds none of it (see docs/architecture.md#tls-read-ahead).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BytesMut};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first read-ahead size, once reads fill what the caller asks for.
const MIN_AHEAD: usize = 64 * 1024;
/// The largest read-ahead size.
const MAX_AHEAD: usize = 256 * 1024;

/// Reads ahead of its caller while reads come back full; writes pass through.
#[derive(Debug)]
pub struct ReadAhead<T> {
    inner: T,
    /// What was read ahead and not yet handed over; no allocation unless reading ahead.
    buf: BytesMut,
    /// How much the next read ahead asks for; 0 when not reading ahead.
    ahead: usize,
    /// The size `buf` was allocated with.
    allocated: usize,
}

impl<T> ReadAhead<T> {
    /// Wraps a transport.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            ahead: 0,
            allocated: 0,
        }
    }

    /// The wrapped transport.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ReadAhead<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.buf.is_empty() {
            if this.ahead == 0 {
                // Not reading ahead: straight into the caller's buffer.
                let want = out.remaining();
                let before = out.filled().len();
                ready!(Pin::new(&mut this.inner).poll_read(cx, out))?;
                if want > 0 && out.filled().len() - before == want {
                    // The transport had at least what was asked: data is streaming.
                    this.ahead = MIN_AHEAD;
                }
                return Poll::Ready(Ok(()));
            }
            if this.allocated < this.ahead {
                // A fresh allocation: growing the old one would copy its old contents.
                this.buf = BytesMut::with_capacity(this.ahead);
                this.allocated = this.ahead;
            } else {
                // Everything was handed over: this takes the allocation back from the start.
                this.buf.reserve(this.ahead);
            }
            let n =
                match tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf) {
                    Poll::Ready(r) => r?,
                    Poll::Pending => {
                        // Drained: an idle connection keeps no buffer.
                        this.buf = BytesMut::new();
                        this.ahead = 0;
                        this.allocated = 0;
                        return Poll::Pending;
                    }
                };
            if n >= this.ahead {
                this.ahead = (this.ahead * 2).min(MAX_AHEAD);
            }
        }
        let take = this.buf.len().min(out.remaining());
        out.put_slice(&this.buf[..take]);
        this.buf.advance(take);
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ReadAhead<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: Connection> Connection for ReadAhead<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;
    use tokio::io::AsyncReadExt as _;

    use super::*;

    /// A socket: hands out what has "arrived" (at most what is asked), `Pending` when nothing
    /// has, then EOF or an error once closed; records the size of every read asked of it.
    #[derive(Default)]
    struct Socket {
        arrived: VecDeque<u8>,
        /// Bytes that arrive, one batch each time the socket answers `Pending`.
        batches: VecDeque<Vec<u8>>,
        end: Option<io::ErrorKind>,
        asked: Vec<usize>,
    }

    impl AsyncRead for Socket {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            out: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = &mut *self;
            this.asked.push(out.remaining());
            if this.arrived.is_empty() {
                if let Some(batch) = this.batches.pop_front() {
                    this.arrived.extend(batch);
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                return match this.end {
                    Some(io::ErrorKind::UnexpectedEof) | None => Poll::Ready(Ok(())),
                    Some(kind) => Poll::Ready(Err(io::Error::new(kind, "reset"))),
                };
            }
            let n = this.arrived.len().min(out.remaining());
            let chunk: Vec<u8> = this.arrived.drain(..n).collect();
            out.put_slice(&chunk);
            Poll::Ready(Ok(()))
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Reads everything as rustls does: `ask` bytes at a time.
    async fn read_all(r: &mut ReadAhead<Socket>, ask: usize) -> io::Result<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = vec![0; ask];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(got);
            }
            got.extend_from_slice(&buf[..n]);
        }
    }

    #[tokio::test]
    async fn a_bulk_stream_is_read_ahead_in_large_reads_and_arrives_intact() {
        let sent = data(4 << 20);
        let socket = Socket {
            arrived: sent.iter().copied().collect(),
            ..Socket::default()
        };
        let mut r = ReadAhead::new(socket);
        let got = read_all(&mut r, 16 * 1024 + 22).await.unwrap();
        assert!(got == sent, "the bytes changed on the way");
        let asked = &r.get_ref().asked;
        // The first read goes straight through; once it came back full, the socket is asked
        // for at least MIN_AHEAD and at most MAX_AHEAD (plus the allocation's rounding).
        assert_eq!(asked[0], 16 * 1024 + 22);
        assert!(asked[1..].iter().all(|&a| a >= MIN_AHEAD), "{asked:?}");
        assert!(asked.iter().any(|&a| a >= MAX_AHEAD), "{asked:?}");
        assert!(
            asked.len() < 4 * (4 << 20) / MAX_AHEAD,
            "{} socket reads",
            asked.len()
        );
    }

    #[tokio::test]
    async fn a_drained_socket_releases_the_buffer_and_small_reads_go_straight_through() {
        let socket = Socket {
            arrived: data(100_000).into_iter().collect(),
            batches: [vec![1; 10], vec![2; 10], vec![3; 10]].into(),
            ..Socket::default()
        };
        let mut r = ReadAhead::new(socket);
        let mut buf = vec![0; 16_406];
        // Full reads switch reading ahead on.
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(r.ahead, MIN_AHEAD);
        let mut rest = vec![0; 100_000 - 16_406];
        r.read_exact(&mut rest).await.unwrap();
        assert!(r.buf.capacity() > 0);
        // The socket is drained (Pending): nothing is kept while the connection idles.
        assert_eq!(r.read(&mut buf).await.unwrap(), 10);
        assert_eq!((r.ahead, r.buf.capacity()), (0, 0));
        // Small reads ask the socket for exactly what the caller asked, and keep nothing.
        let before = r.get_ref().asked.len();
        assert_eq!(r.read(&mut buf).await.unwrap(), 10);
        assert_eq!(r.read(&mut buf).await.unwrap(), 10);
        assert!(r.get_ref().asked[before..].iter().all(|&a| a == buf.len()));
        assert_eq!((r.ahead, r.buf.capacity()), (0, 0));
        assert_eq!(r.read(&mut buf).await.unwrap(), 0, "EOF");
    }

    #[tokio::test]
    async fn errors_and_eof_pass_through_after_reading_ahead() {
        let sent = data(300_000);
        for end in [None, Some(io::ErrorKind::ConnectionReset)] {
            let socket = Socket {
                arrived: sent.iter().copied().collect(),
                end,
                ..Socket::default()
            };
            let mut r = ReadAhead::new(socket);
            let mut got = vec![0; sent.len()];
            r.read_exact(&mut got).await.unwrap();
            assert!(got == sent);
            let mut buf = [0; 100];
            match (end, r.read(&mut buf).await) {
                (None, Ok(0)) => {}
                (Some(kind), Err(e)) => assert_eq!(e.kind(), kind),
                (end, other) => panic!("{end:?}: {other:?}"),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Whatever the arrivals and the caller's read sizes, the bytes arrive intact.
        #[test]
        fn any_arrivals_and_read_sizes_keep_the_bytes(
            arrivals in prop::collection::vec(1usize..200_000, 1..12),
            ask in 1usize..70_000,
        ) {
            let total: usize = arrivals.iter().sum();
            let sent = data(total);
            let mut batches = VecDeque::new();
            let mut at = 0;
            for a in &arrivals {
                batches.push_back(sent[at..at + a].to_vec());
                at += a;
            }
            let socket = Socket { batches, ..Socket::default() };
            let mut r = ReadAhead::new(socket);
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let got = rt.block_on(read_all(&mut r, ask)).unwrap();
            prop_assert!(got == sent);
        }
    }
}
