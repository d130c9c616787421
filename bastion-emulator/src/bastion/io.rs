//! The upgraded socket: direct access to the TLS stream (for abortive resets) and a passive
//! frame-header sniffer that measures client frames exactly.
//!
//! tungstenite only hands out whole messages, so frame-level facts (each frame's payload size,
//! continuation frames) are taken from the bytes as they pass to tungstenite.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bastion_core::tls::ReadAhead;
use bytes::{Buf, Bytes};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::registry::Traffic;

/// The IO type the HTTP server runs on.
pub(crate) type ServerIo = TokioIo<TlsStream<ReadAhead<TcpStream>>>;

enum Kind {
    Tls(Box<TlsStream<ReadAhead<TcpStream>>>),
    Other(TokioIo<Upgraded>),
}

/// An upgraded connection: bytes hyper had already read, then the TLS stream.
pub(crate) struct RawIo {
    kind: Kind,
    prefix: Bytes,
}

impl RawIo {
    /// Unwraps hyper's upgraded connection down to the TLS stream when possible.
    pub(crate) fn from_upgraded(upgraded: Upgraded) -> Self {
        match upgraded.downcast::<ServerIo>() {
            Ok(parts) => RawIo {
                kind: Kind::Tls(Box::new(parts.io.into_inner())),
                prefix: parts.read_buf,
            },
            Err(upgraded) => RawIo {
                kind: Kind::Other(TokioIo::new(upgraded)),
                prefix: Bytes::new(),
            },
        }
    }

    /// Makes the coming drop send a TCP RST instead of a FIN (no TLS close_notify, no
    /// WebSocket Close): an abrupt connection loss.
    pub(crate) fn prepare_abort(&self) {
        if let Kind::Tls(tls) = &self.kind {
            // A zero linger never blocks on drop, which is the concern behind the deprecation.
            #[allow(deprecated)]
            let _ = tls
                .get_ref()
                .0
                .get_ref()
                .set_linger(Some(std::time::Duration::ZERO));
        }
    }
}

impl AsyncRead for RawIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        match &mut this.kind {
            Kind::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Kind::Other(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for RawIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().kind {
            Kind::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
            Kind::Other(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().kind {
            Kind::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Kind::Other(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().kind {
            Kind::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Kind::Other(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Incremental parser of WebSocket frame headers over the client-to-server byte stream.
#[derive(Debug, Default)]
pub(crate) struct FrameParser {
    header: [u8; 14],
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
}

/// One client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub opcode: u8,
    pub fin: bool,
    pub payload_len: u64,
}

impl FrameParser {
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let ext = match self.header[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if self.header[1] & 0x80 != 0 { 4 } else { 0 };
        2 + ext + mask
    }

    /// Feeds bytes; calls `on_frame` for every complete frame header.
    pub(crate) fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(FrameInfo)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let need = self.header_len();
            let n = (need - self.have).min(data.len());
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have < need || need != self.header_len() {
                // Either more bytes are needed, or the length byte just arrived and the
                // header turned out longer.
                continue;
            }
            let len7 = u64::from(self.header[1] & 0x7f);
            let payload_len = match len7 {
                126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&self.header[2..10]);
                    u64::from_be_bytes(b)
                }
                n => n,
            };
            on_frame(FrameInfo {
                opcode: self.header[0] & 0x0f,
                fin: self.header[0] & 0x80 != 0,
                payload_len,
            });
            self.have = 0;
            self.skip = payload_len;
        }
    }
}

/// Wraps the upgraded socket and records client data frames into [`Traffic`].
pub(crate) struct Sniffer<T> {
    inner: T,
    parser: FrameParser,
    traffic: Arc<Traffic>,
}

impl<T> Sniffer<T> {
    pub(crate) fn new(inner: T, traffic: Arc<Traffic>) -> Self {
        Sniffer {
            inner,
            parser: FrameParser::default(),
            traffic,
        }
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniffer<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let traffic = &this.traffic;
            this.parser.feed(&buf.filled()[before..], |f| {
                // Data frames only: continuation (0), text (1), binary (2).
                if f.opcode <= 2 {
                    traffic.frames_up.fetch_add(1, Ordering::Relaxed);
                    traffic
                        .max_frame_up
                        .fetch_max(f.payload_len, Ordering::Relaxed);
                    if f.opcode == 0 {
                        traffic.continuation_up.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniffer<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
        let mut v = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match len {
            0..=125 => v.push(0x80 | len as u8),
            126..=65535 => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&[1, 2, 3, 4]);
        v.extend(std::iter::repeat_n(0xAA, len));
        v
    }

    #[test]
    fn parses_frames_split_at_every_byte() {
        let mut stream = Vec::new();
        stream.extend(frame(2, true, 21));
        stream.extend(frame(2, true, 4096));
        stream.extend(frame(2, false, 0));
        stream.extend(frame(0, true, 70_000));
        stream.extend(frame(8, true, 2));
        for chunk in [1, 3, 7, 1000, stream.len()] {
            let mut p = FrameParser::default();
            let mut seen = Vec::new();
            for c in stream.chunks(chunk) {
                p.feed(c, |f| seen.push((f.opcode, f.fin, f.payload_len)));
            }
            assert_eq!(
                seen,
                vec![
                    (2, true, 21),
                    (2, true, 4096),
                    (2, false, 0),
                    (0, true, 70_000),
                    (8, true, 2)
                ],
                "chunk size {chunk}"
            );
        }
    }
}
