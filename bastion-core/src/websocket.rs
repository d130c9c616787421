//! The WebSocket handshake, done through hyper so the Bastion's known quirks can be tolerated,
//! then a tokio-tungstenite stream over the raw upgraded socket (`from_raw_socket`, client role).
//!
//! Tolerated (see docs/protocol.md#handshake-quirks): a `101` without `Upgrade`/`Connection` headers; a missing
//! `Sec-WebSocket-Accept` (warned, unless strict). Rejected: any other status, a wrong
//! `Sec-WebSocket-Accept`. Detected: an `HTTP/1.1 4xx` status line sent in-band right after the
//! `101` instead of frames (see docs/protocol.md#in-band-http-errors), reported as
//! [`Error::InBandHttp`].

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use url::Url;

use crate::error::Operation;
use crate::protocol::Endpoint;
use crate::stream::MAX_FRAME_SIZE_LIMIT;
use crate::transport::{HttpsClient, OpenConnection, http_error};
use crate::{Error, Result};

/// The WebSocket transport a tunnel runs over in production.
pub(crate) type WsTransport = WebSocketStream<InBandHttpDetector<TokioIo<Upgraded>>>;

/// Which connection the WebSocket upgrade goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UpgradeConnection {
    /// A connection opened ahead of need that has carried no request: the upgrade costs one
    /// round trip, and works whether or not the service accepts an upgrade on a connection
    /// that carried the token POST. One such connection is kept per endpoint in use and
    /// replaced in the background once taken (the default).
    #[default]
    Warm,
    /// A new connection for each upgrade (TCP and TLS handshakes on the critical path; no
    /// connection is held open ahead of need).
    Fresh,
    /// A pooled keep-alive connection, possibly the one that carried the token POST (saves a
    /// connection, if the service accepts the upgrade there).
    Pooled,
}

/// Settings of the handshake and the frame codec.
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// TCP + TLS + upgrade limit.
    pub handshake_timeout: Duration,
    /// Fail when `Sec-WebSocket-Accept` is missing (it is only warned about by default).
    pub strict_accept: bool,
    /// Which connection the upgrade goes on.
    pub upgrade_connection: UpgradeConnection,
    /// Largest incoming message (and frame) accepted, 1 MiB by default; a larger one fails the
    /// connection ("frame too large"; see docs/protocol.md#server-to-client-frames). A
    /// fragmented message is reassembled before it is handed on, so this bounds what one
    /// connection can be made to hold.
    pub max_incoming_message: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(15),
            strict_accept: false,
            upgrade_connection: UpgradeConnection::default(),
            max_incoming_message: 1 << 20,
        }
    }
}

/// Where an upgrade request goes.
pub(crate) enum Via {
    /// The client's pool.
    Pool,
    /// A connection of our own that has carried no request.
    Connection(OpenConnection),
}

/// Opens the WebSocket at `url` (which carries the one-time token: never log it) on `via`.
pub(crate) async fn handshake(
    client: &HttpsClient,
    endpoint: &Endpoint,
    url: &Url,
    options: &WsOptions,
    via: Via,
) -> Result<WsTransport> {
    let key = generate_key();
    let mut target = url.path().to_owned();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let req = Request::builder()
        .method(Method::GET)
        .uri(format!("https://{}{}", endpoint.authority(), target))
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::ORIGIN, format!("https://{}", endpoint.authority()))
        .body(Bytes::new())
        .map_err(|e| Error::Config(format!("cannot build the WebSocket request: {e}")))?;
    let (resp, upgraded) = match via {
        Via::Pool => client.upgrade(req).await?,
        Via::Connection(conn) => client.upgrade_on(conn, req).await?,
    };
    let Some(upgraded) = upgraded else {
        return Err(http_error(Operation::WebSocketUpgrade, &resp));
    };
    check_upgrade_response(resp.headers(), &key, options)?;
    let io = InBandHttpDetector::new(TokioIo::new(upgraded));
    Ok(WebSocketStream::from_raw_socket(io, Role::Client, Some(ws_config(options))).await)
}

/// Checks the headers of a `101` answer to an upgrade sent with `key`: what is tolerated and
/// what is rejected (see docs/protocol.md#handshake-quirks).
pub(crate) fn check_upgrade_response(
    headers: &header::HeaderMap,
    key: &str,
    options: &WsOptions,
) -> Result<()> {
    let has_upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let has_connection = headers
        .get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"));
    if !has_upgrade || !has_connection {
        tracing::debug!("the Bastion's 101 lacks Upgrade/Connection headers; tolerated");
    }
    match headers.get(header::SEC_WEBSOCKET_ACCEPT) {
        Some(accept) => {
            let expected = derive_accept_key(key.as_bytes());
            if accept.as_bytes() != expected.as_bytes() {
                return Err(Error::Handshake(
                    "the server's Sec-WebSocket-Accept does not match the key sent".into(),
                ));
            }
        }
        None if options.strict_accept => {
            return Err(Error::Handshake(
                "the 101 response has no Sec-WebSocket-Accept header".into(),
            ));
        }
        None => tracing::warn!("the Bastion's 101 has no Sec-WebSocket-Accept; proceeding"),
    }
    for h in [
        header::SEC_WEBSOCKET_EXTENSIONS,
        header::SEC_WEBSOCKET_PROTOCOL,
    ] {
        if headers.contains_key(&h) {
            tracing::warn!(header = %h, "ignoring an unrequested WebSocket header in the 101");
        }
    }
    Ok(())
}

/// The frame codec's settings for a tunnel's WebSocket.
pub(crate) fn ws_config(options: &WsOptions) -> WebSocketConfig {
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(options.max_incoming_message);
    config.max_frame_size = Some(options.max_incoming_message);
    config.read_buffer_size = READ_BUFFER;
    // Frames gather in the write buffer and go out together (full TLS records, one write for
    // many frames); a write that would block leaves the sink not ready until the buffer is
    // flushed, which bounds it to about WRITE_BUFFER plus one batch.
    config.write_buffer_size = WRITE_BUFFER;
    config.max_write_buffer_size = WRITE_BUFFER + 2 * MAX_FRAME_SIZE_LIMIT + (64 << 10);
    config
}

/// Reads through to the inner stream, except that when the very first server bytes are an HTTP
/// status line (`HTTP/…`) it fails with [`Error::InBandHttp`] instead of passing them on.
#[derive(Debug)]
pub struct InBandHttpDetector<S> {
    inner: S,
    state: DetectState,
}

#[derive(Debug)]
enum DetectState {
    /// Nothing decided yet; bytes read so far.
    Sniffing(Vec<u8>),
    /// Replaying sniffed bytes that turned out to be WebSocket frames.
    Replay(Bytes),
    Passthrough,
}

const STATUS_LINE_MAX: usize = 1024;

/// tungstenite zero-fills its whole read buffer before each read, so all of it is resident for
/// every connection, idle or not: small, as the TLS layer below reads in its own chunks. A
/// larger frame grows the buffer to fit it (see docs/architecture.md#memory).
const READ_BUFFER: usize = 4 * 1024;
/// Bytes of frames gathered before they are written to the TLS stream.
const WRITE_BUFFER: usize = 128 * 1024;

impl<S> InBandHttpDetector<S> {
    /// Wraps a freshly upgraded stream.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            state: DetectState::Sniffing(Vec::new()),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for InBandHttpDetector<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                DetectState::Passthrough => return Pin::new(&mut this.inner).poll_read(cx, buf),
                DetectState::Replay(bytes) => {
                    let n = bytes.len().min(buf.remaining());
                    buf.put_slice(&bytes.split_to(n));
                    if bytes.is_empty() {
                        this.state = DetectState::Passthrough;
                    }
                    return Poll::Ready(Ok(()));
                }
                DetectState::Sniffing(seen) => {
                    let mut chunk = [0u8; 512];
                    let mut rb = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    let got = rb.filled();
                    if got.is_empty() {
                        // EOF before anything decisive: hand over what we have, then EOF.
                        let pending = Bytes::from(std::mem::take(seen));
                        this.state = if pending.is_empty() {
                            DetectState::Passthrough
                        } else {
                            DetectState::Replay(pending)
                        };
                        if matches!(this.state, DetectState::Passthrough) {
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    seen.extend_from_slice(got);
                    const PREFIX: &[u8] = b"HTTP/";
                    let k = seen.len().min(PREFIX.len());
                    if seen[..k] != PREFIX[..k] {
                        this.state = DetectState::Replay(Bytes::from(std::mem::take(seen)));
                        continue;
                    }
                    if seen.len() < PREFIX.len() {
                        continue;
                    }
                    let line_end = seen.iter().position(|&b| b == b'\n');
                    if line_end.is_some() || seen.len() >= STATUS_LINE_MAX {
                        let end = line_end.unwrap_or(seen.len()).min(STATUS_LINE_MAX);
                        let status_line = crate::protocol::sanitize(
                            &String::from_utf8_lossy(&seen[..end]),
                            STATUS_LINE_MAX,
                        );
                        tracing::warn!(%status_line, "in-band HTTP response after the WebSocket upgrade");
                        this.state = DetectState::Passthrough;
                        let status = status_line
                            .split_whitespace()
                            .nth(1)
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        return Poll::Ready(Err(Error::InBandHttp {
                            status,
                            status_line,
                        }
                        .into_io()));
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for InBandHttpDetector<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn frames_pass_through_untouched() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut d = InBandHttpDetector::new(client);
        server.write_all(&[0x82, 0x02, b'h', b'i']).await.unwrap();
        drop(server);
        let mut out = Vec::new();
        d.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, [0x82, 0x02, b'h', b'i']);
    }

    #[tokio::test]
    async fn in_band_status_line_is_reported() {
        let (mut server, client) = tokio::io::duplex(4096);
        let mut d = InBandHttpDetector::new(client);
        server.write_all(b"HTT").await.unwrap();
        server
            .write_all(b"P/1.1 400 Bad Request\r\nContent-Type: text/html\r\n\r\n<html>")
            .await
            .unwrap();
        let mut out = [0u8; 16];
        let err = Error::from_io(d.read(&mut out).await.unwrap_err());
        assert!(err.is_in_band_http());
        assert_eq!(
            err.to_string(),
            "Bastion rejected the tunnel: in-band HTTP 400 after upgrade (HTTP/1.1 400 Bad Request)"
        );
    }
}
