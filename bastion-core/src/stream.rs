//! [`TunnelStream`]: `AsyncRead + AsyncWrite` over WebSocket messages.
//!
//! The adapter works over any `Stream<Item = Result<Message, E>> + Sink<Message>`: a
//! tokio-tungstenite `WebSocketStream` in production, an in-memory channel ([`memory_pair`]) in
//! tests or in-process embeddings. Writes become binary frames of at most `max_frame_size` bytes;
//! a large write is split and all its frames are fed before one flush. A write does not wait for
//! the previous flush to finish: the transport's own bounded buffer (`poll_ready`) is the
//! backpressure, so a peer that stops reading stops the writer while a reading peer is never
//! starved between writes. Reads hand over as many received frames as fit the caller's buffer.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::Error;

/// The frame payload size the reference client uses and the service is known to accept.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 4096;
/// The largest configurable frame payload.
pub const MAX_FRAME_SIZE_LIMIT: usize = 1 << 20;
/// How many bytes one `poll_write` accepts at most (before its single flush).
const WRITE_BATCH: usize = 256 * 1024;

/// Settings of a [`TunnelStream`].
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Largest binary frame payload sent (1 to [`MAX_FRAME_SIZE_LIMIT`]).
    pub max_frame_size: usize,
    /// Send a ping after this long without a received frame; `None` disables pings.
    pub ping_interval: Option<Duration>,
    /// After a ping, how long without any frame before the peer is declared dead, when
    /// [`StreamConfig::liveness`] says the timeout applies.
    pub dead_peer_timeout: Duration,
    /// When an unanswered ping counts as a dead peer (whether the service answers pings is
    /// unverified; see docs/protocol.md#keepalive-and-pings).
    pub liveness: Liveness,
    /// Shared by the connections of one tunnel: set once any of them has seen a pong.
    pub pongs_seen: Arc<AtomicBool>,
    /// Answer pings from this adapter. tokio-tungstenite answers pings itself, so the
    /// WebSocket path turns this off; in-memory transports keep it on.
    pub answer_pings: bool,
}

/// When a peer that does not answer pings is declared dead.
///
/// A tunnel's connections are silent while nothing is sent, so only pings tell a legitimately
/// idle session from a Bastion that went silent. A peer that answers pings is kept alive by
/// them however long the session idles; the question is what to make of no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Liveness {
    /// Once the service has answered a ping, on this connection or an earlier one of the same
    /// tunnel, an unanswered ping ends a connection after the dead-peer timeout; before that,
    /// unanswered pings are tolerated (the default: safe with a service that never answers
    /// pings, and catches a silent Bastion once the service has shown it answers).
    #[default]
    Learned,
    /// An unanswered ping always ends a connection after the dead-peer timeout: catches a
    /// Bastion that goes silent right after the upgrade, but with a service that never answers
    /// pings an idle session is closed after the ping interval plus the dead-peer timeout.
    Always,
    /// Never: a silent peer is left to TCP keepalive, which only notices a dead network path.
    Never,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            ping_interval: Some(Duration::from_secs(30)),
            dead_peer_timeout: Duration::from_secs(90),
            liveness: Liveness::default(),
            pongs_seen: Arc::default(),
            answer_pings: true,
        }
    }
}

impl StreamConfig {
    /// Checks the settings.
    pub fn validate(&self) -> crate::Result<()> {
        if self.max_frame_size == 0 || self.max_frame_size > MAX_FRAME_SIZE_LIMIT {
            return Err(Error::Config(format!(
                "max frame size {} is out of range: use 1 to {MAX_FRAME_SIZE_LIMIT} bytes (default {DEFAULT_MAX_FRAME_SIZE})",
                self.max_frame_size
            )));
        }
        Ok(())
    }
}

/// The Close frame the peer sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code (1005 when the frame carried none).
    pub code: u16,
    /// The close reason.
    pub reason: String,
}

impl CloseInfo {
    /// Whether the code is a normal closure (1000) or "no status" (1005).
    pub fn is_normal(&self) -> bool {
        matches!(self.code, 1000 | 1005)
    }

    /// The close as an error, for reporting an abnormal closure.
    pub fn to_error(&self) -> Error {
        Error::Closed {
            code: self.code,
            reason: self.reason.clone(),
        }
    }
}

/// `AsyncRead + AsyncWrite` over a WebSocket-like message transport.
pub struct TunnelStream<S> {
    inner: S,
    config: StreamConfig,
    read_buf: Bytes,
    /// A non-data message met while handing over several frames, processed on the next read.
    deferred: Option<Message>,
    /// A transport error met while handing over several frames, returned on the next read.
    deferred_error: Option<io::Error>,
    read_done: bool,
    peer_close: Option<CloseInfo>,
    flush_pending: bool,
    pong: Option<Bytes>,
    close_sent: bool,
    ping_timer: Option<Pin<Box<Sleep>>>,
    ping_outstanding: bool,
    pong_seen: bool,
    bytes_read: u64,
    bytes_written: u64,
}

impl<S> std::fmt::Debug for TunnelStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TunnelStream")
            .field("max_frame_size", &self.config.max_frame_size)
            .field("read_done", &self.read_done)
            .field("peer_close", &self.peer_close)
            .field("bytes_read", &self.bytes_read)
            .field("bytes_written", &self.bytes_written)
            .finish_non_exhaustive()
    }
}

impl<S, E> TunnelStream<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    /// Wraps a message transport. `config` must be valid (see [`StreamConfig::validate`]); an
    /// out-of-range frame size is clamped.
    pub fn new(inner: S, mut config: StreamConfig) -> Self {
        config.max_frame_size = config.max_frame_size.clamp(1, MAX_FRAME_SIZE_LIMIT);
        let ping_timer = config
            .ping_interval
            .filter(|d| !d.is_zero())
            .map(|d| Box::pin(tokio::time::sleep(d)));
        Self {
            inner,
            config,
            read_buf: Bytes::new(),
            deferred: None,
            deferred_error: None,
            read_done: false,
            peer_close: None,
            flush_pending: false,
            pong: None,
            close_sent: false,
            ping_timer,
            ping_outstanding: false,
            pong_seen: false,
            bytes_read: 0,
            bytes_written: 0,
        }
    }

    /// The Close frame the peer sent, once one has arrived.
    pub fn peer_close(&self) -> Option<&CloseInfo> {
        self.peer_close.as_ref()
    }

    /// Whether a Close frame has been sent to the peer.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Payload bytes received from the peer so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Payload bytes sent to the peer so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The transport.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The transport, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the transport.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// Sends a Close frame with `code` and `reason` (once) and flushes it.
    pub fn poll_close_with(
        &mut self,
        cx: &mut Context<'_>,
        code: u16,
        reason: &str,
    ) -> Poll<io::Result<()>> {
        if !self.close_sent {
            if let Err(e) = ready!(self.poll_drain_flush(cx)) {
                // The transport is already gone; there is nobody to send a Close to.
                self.close_sent = true;
                return Poll::Ready(Err(e));
            }
            ready!(Pin::new(&mut self.inner).poll_ready(cx)).map_err(convert_error)?;
            let frame = CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            };
            Pin::new(&mut self.inner)
                .start_send(Message::Close(Some(frame)))
                .map_err(convert_error)?;
            self.close_sent = true;
            self.flush_pending = true;
        }
        self.poll_drain_flush(cx)
    }

    fn poll_drain_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.flush_pending {
            ready!(Pin::new(&mut self.inner).poll_flush(cx)).map_err(convert_error)?;
            self.flush_pending = false;
        }
        Poll::Ready(Ok(()))
    }

    /// Sends a queued pong and a due ping without blocking the reader.
    fn poll_control(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.close_sent {
            return Ok(());
        }
        if let Some(timer) = self.ping_timer.as_mut()
            && timer.as_mut().poll(cx).is_ready()
        {
            let enforced = match self.config.liveness {
                Liveness::Always => true,
                Liveness::Learned => {
                    self.pong_seen || self.config.pongs_seen.load(Ordering::Relaxed)
                }
                Liveness::Never => false,
            };
            if self.ping_outstanding && enforced {
                return Err(Error::Timeout {
                    what: "WebSocket keepalive (no frame from the Bastion after a ping)",
                    after: self.config.dead_peer_timeout,
                }
                .into_io());
            }
            let next = if self.ping_outstanding {
                self.config
                    .ping_interval
                    .unwrap_or(self.config.dead_peer_timeout)
            } else {
                self.config.dead_peer_timeout
            };
            if let Poll::Ready(Ok(())) = Pin::new(&mut self.inner).poll_ready(cx) {
                Pin::new(&mut self.inner)
                    .start_send(Message::Ping(Bytes::from_static(b"bastion")))
                    .map_err(convert_error)?;
                self.flush_pending = true;
                self.ping_outstanding = true;
            }
            timer.as_mut().reset(Instant::now() + next);
            // Register the timer's waker for the new deadline.
            let _ = timer.as_mut().poll(cx);
        }
        if self.pong.is_some()
            && let Poll::Ready(Ok(())) = Pin::new(&mut self.inner).poll_ready(cx)
            && let Some(payload) = self.pong.take()
        {
            Pin::new(&mut self.inner)
                .start_send(Message::Pong(payload))
                .map_err(convert_error)?;
            self.flush_pending = true;
        }
        if self.flush_pending
            && let Poll::Ready(r) = Pin::new(&mut self.inner).poll_flush(cx)
        {
            r.map_err(convert_error)?;
            self.flush_pending = false;
        }
        Ok(())
    }

    fn frame_received(&mut self) {
        if let (Some(timer), Some(interval)) = (self.ping_timer.as_mut(), self.config.ping_interval)
        {
            timer.as_mut().reset(Instant::now() + interval);
        }
        self.ping_outstanding = false;
    }
}

impl<S, E> AsyncRead for TunnelStream<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.read_buf.is_empty() {
                let n = this.read_buf.len().min(buf.remaining());
                buf.put_slice(&this.read_buf.split_to(n));
                // Hand over more frames that have already arrived, so one local write carries
                // many of them (never waiting for one that has not).
                while this.read_buf.is_empty() && buf.remaining() > 0 && !this.read_done {
                    match Pin::new(&mut this.inner).poll_next(cx) {
                        Poll::Ready(Some(Ok(Message::Binary(data)))) => {
                            this.frame_received();
                            this.bytes_read += data.len() as u64;
                            let n = data.len().min(buf.remaining());
                            buf.put_slice(&data[..n]);
                            this.read_buf = data.slice(n..);
                        }
                        Poll::Ready(Some(Ok(other))) => {
                            this.deferred = Some(other);
                            break;
                        }
                        Poll::Ready(Some(Err(e))) => {
                            this.deferred_error = Some(convert_error(e));
                            break;
                        }
                        Poll::Ready(None) => {
                            this.read_done = true;
                            break;
                        }
                        Poll::Pending => break,
                    }
                }
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = this.deferred_error.take() {
                this.read_done = true;
                return Poll::Ready(Err(e));
            }
            if this.read_done {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = this.poll_control(cx) {
                this.read_done = true;
                return Poll::Ready(Err(e));
            }
            let next = match this.deferred.take() {
                Some(msg) => Poll::Ready(Some(Ok(msg))),
                None => Pin::new(&mut this.inner).poll_next(cx),
            };
            let msg = match ready!(next) {
                None => {
                    this.read_done = true;
                    continue;
                }
                Some(Err(e)) => {
                    this.read_done = true;
                    return Poll::Ready(Err(convert_error(e)));
                }
                Some(Ok(msg)) => msg,
            };
            this.frame_received();
            match msg {
                Message::Binary(data) => {
                    this.bytes_read += data.len() as u64;
                    this.read_buf = data;
                }
                Message::Text(text) => {
                    this.read_done = true;
                    let excerpt = crate::protocol::sanitize(text.as_str(), 80);
                    tracing::warn!(%excerpt, "the Bastion sent a text frame; closing the tunnel");
                    let _ = this.poll_close_with(cx, 1003, "binary frames only");
                    return Poll::Ready(Err(Error::TextFrame { excerpt }.into_io()));
                }
                Message::Ping(payload) => {
                    if this.config.answer_pings {
                        this.pong = Some(payload);
                    }
                }
                Message::Pong(_) => {
                    this.pong_seen = true;
                    this.config.pongs_seen.store(true, Ordering::Relaxed);
                }
                Message::Close(frame) => {
                    let info = match frame {
                        Some(f) => CloseInfo {
                            code: u16::from(f.code),
                            reason: crate::protocol::sanitize(f.reason.as_str(), 123),
                        },
                        None => CloseInfo {
                            code: 1005,
                            reason: String::new(),
                        },
                    };
                    tracing::debug!(code = info.code, reason = %info.reason, "the Bastion closed the tunnel");
                    this.peer_close = Some(info);
                    this.read_done = true;
                }
                Message::Frame(_) => {}
            }
        }
    }
}

impl<S, E> AsyncWrite for TunnelStream<S>
where
    S: Stream<Item = Result<Message, E>> + Sink<Message, Error = E> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.close_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the tunnel's write side is closed",
            )));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let frame = this.config.max_frame_size;
        let batch = WRITE_BATCH.max(frame) / frame * frame;
        let n = buf.len().min(batch);
        let mut sent = 0;
        for chunk in buf[..n].chunks(frame) {
            match Pin::new(&mut this.inner).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(convert_error(e))),
                Poll::Pending if sent == 0 => return Poll::Pending,
                Poll::Pending => break,
            }
            Pin::new(&mut this.inner)
                .start_send(Message::Binary(Bytes::copy_from_slice(chunk)))
                .map_err(convert_error)?;
            sent += chunk.len();
        }
        this.bytes_written += sent as u64;
        this.flush_pending = true;
        if let Poll::Ready(r) = Pin::new(&mut this.inner).poll_flush(cx) {
            r.map_err(convert_error)?;
            this.flush_pending = false;
        }
        Poll::Ready(Ok(sent))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.flush_pending = true;
        this.poll_drain_flush(cx)
    }

    /// Sends a Close (1000) and flushes it. Reading may go on until the peer's Close arrives.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_with(cx, 1000, "")
    }
}

/// Turns a transport error into an `io::Error`, keeping bastion-core errors carried inside
/// tungstenite's I/O errors (such as the in-band HTTP status after the upgrade).
fn convert_error<E: Into<Box<dyn std::error::Error + Send + Sync>>>(e: E) -> io::Error {
    let boxed: Box<dyn std::error::Error + Send + Sync> = e.into();
    match boxed.downcast::<tungstenite::Error>() {
        Ok(ws) => match *ws {
            tungstenite::Error::Io(io) => io,
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                io::Error::new(io::ErrorKind::BrokenPipe, "the WebSocket is closed")
            }
            tungstenite::Error::Capacity(c) => {
                Error::WebSocket(format!("frame too large: {c}")).into_io()
            }
            other => Error::WebSocket(other.to_string()).into_io(),
        },
        Err(other) => match other.downcast::<io::Error>() {
            Ok(io) => *io,
            Err(other) => Error::WebSocket(other.to_string()).into_io(),
        },
    }
}

/// One end of an in-memory message transport (see [`memory_pair`]).
pub struct MemoryTransport {
    tx: tokio_util::sync::PollSender<Message>,
    rx: tokio::sync::mpsc::Receiver<Message>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryTransport")
    }
}

/// A connected pair of in-memory message transports, each side holding at most `capacity`
/// unread messages: a `TunnelStream` over one end talks to whatever holds the other.
pub fn memory_pair(capacity: usize) -> (MemoryTransport, MemoryTransport) {
    let (a_tx, a_rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let (b_tx, b_rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (
        MemoryTransport {
            tx: tokio_util::sync::PollSender::new(a_tx),
            rx: b_rx,
        },
        MemoryTransport {
            tx: tokio_util::sync::PollSender::new(b_tx),
            rx: a_rx,
        },
    )
}

impl Stream for MemoryTransport {
    type Item = Result<Message, io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for MemoryTransport {
    type Error = io::Error;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx
            .poll_reserve(cx)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone"))
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> io::Result<()> {
        self.tx
            .send_item(item)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the peer is gone"))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tx.close();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn cfg(frame: usize) -> StreamConfig {
        StreamConfig {
            max_frame_size: frame,
            ping_interval: None,
            ..StreamConfig::default()
        }
    }

    #[tokio::test]
    async fn writes_are_split_into_frames_of_at_most_max_frame_size() {
        let (a, mut b) = memory_pair(1024);
        let mut s = TunnelStream::new(a, cfg(4096));
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        s.write_all(&data).await.unwrap();
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while got.len() < data.len() {
            match b.next().await.unwrap().unwrap() {
                Message::Binary(d) => {
                    sizes.push(d.len());
                    got.extend_from_slice(&d);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(got, data);
        assert_eq!(sizes, vec![4096, 4096, 1808]);
    }

    #[tokio::test]
    async fn reads_binary_skip_empty_and_close_is_eof_with_code_kept() {
        let (a, mut b) = memory_pair(16);
        let mut s = TunnelStream::new(a, cfg(4096));
        b.send(Message::Binary(Bytes::from_static(b"hello ")))
            .await
            .unwrap();
        b.send(Message::Binary(Bytes::new())).await.unwrap();
        b.send(Message::Binary(Bytes::from_static(b"world")))
            .await
            .unwrap();
        b.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(1011),
            reason: "target gone".into(),
        })))
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
        let close = s.peer_close().unwrap();
        assert_eq!((close.code, close.reason.as_str()), (1011, "target gone"));
        assert!(!close.is_normal());
        assert_eq!(s.bytes_read(), 11);
    }

    #[tokio::test]
    async fn text_frame_is_a_protocol_error_and_sends_close_1003() {
        let (a, mut b) = memory_pair(16);
        let mut s = TunnelStream::new(a, cfg(4096));
        b.send(Message::text("HTTP/1.1 400 Bad Request"))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let err = s.read(&mut buf).await.unwrap_err();
        assert!(matches!(Error::from_io(err), Error::TextFrame { .. }));
        match b.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1003),
            other => panic!("expected close, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn pings_are_answered() {
        let (a, mut b) = memory_pair(16);
        let mut s = TunnelStream::new(a, cfg(4096));
        b.send(Message::Ping(Bytes::from_static(b"p1")))
            .await
            .unwrap();
        b.send(Message::Binary(Bytes::from_static(b"x")))
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
        // The pong goes out when the reader is next polled.
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 1];
            let _ = s.read(&mut buf).await;
        });
        match b.next().await.unwrap().unwrap() {
            Message::Pong(p) => assert_eq!(&p[..], b"p1"),
            other => panic!("expected pong, got {other:?}"),
        }
        drop(b);
        reader.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_sends_close_1000_and_write_after_is_an_error() {
        let (a, mut b) = memory_pair(16);
        let mut s = TunnelStream::new(a, cfg(4096));
        s.shutdown().await.unwrap();
        match b.next().await.unwrap().unwrap() {
            Message::Close(Some(f)) => assert_eq!(u16::from(f.code), 1000),
            other => panic!("expected close, got {other:?}"),
        }
        assert!(s.write_all(b"late").await.is_err());
    }

    #[tokio::test]
    async fn a_peer_that_stops_reading_stops_the_writer() {
        // Capacity 4 messages of 1 KiB: the writer must pend, not buffer 1 MiB.
        let (a, b) = memory_pair(4);
        let mut s = TunnelStream::new(a, cfg(1024));
        let data = vec![7u8; 1 << 20];
        let write = tokio::time::timeout(Duration::from_millis(300), s.write_all(&data)).await;
        assert!(
            write.is_err(),
            "write_all must block while the peer does not read"
        );
        assert!(
            s.bytes_written() <= 8 * 1024,
            "accepted {} bytes",
            s.bytes_written()
        );
        drop(b);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_stream_sends_pings() {
        let (a, mut b) = memory_pair(16);
        let config = StreamConfig {
            ping_interval: Some(Duration::from_secs(30)),
            ..cfg(4096)
        };
        let mut s = TunnelStream::new(a, config);
        let reader = tokio::spawn(async move {
            let mut buf = [0u8; 8];
            s.read(&mut buf).await.map(|_| ())
        });
        tokio::time::advance(Duration::from_secs(31)).await;
        match b.next().await.unwrap().unwrap() {
            Message::Ping(_) => {}
            other => panic!("expected ping, got {other:?}"),
        }
        b.send(Message::Pong(Bytes::new())).await.unwrap();
        // The peer answered once, then goes silent: after the dead-peer timeout the read fails.
        tokio::time::advance(Duration::from_secs(31)).await;
        let _ = b.next().await; // second ping
        tokio::time::advance(Duration::from_secs(91)).await;
        let result = reader.await.unwrap();
        assert!(Error::from_io(result.unwrap_err()).is_timeout());
    }
}
