//! Entry points for the fuzz targets in the repository's `fuzz/` directory (feature `fuzzing`;
//! not part of the supported API). Each runs one of the crate-private parsers exactly as the
//! tunnel runs it, on bytes a server could send, and checks what must hold whatever the input:
//! no panic, no unbounded wait, and the invariants listed on each function. A violated
//! invariant panics, which the fuzzer reports as a crash.

// Panicking on a broken invariant is what a fuzz entry point is for.
#![allow(clippy::expect_used)]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::StreamExt as _;
use http::{Request, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::Error;
use crate::chunked::Chunked;
use crate::error::Operation;
use crate::protocol::{self, is_dns_name};
use crate::transport::{finish_upgrade, http_error};
use crate::websocket::{InBandHttpDetector, WsOptions, check_upgrade_response, ws_config};

/// The token response parsers (`POST /api/tokens`): never panic; whenever the full parse
/// succeeds, the lenient one (which names the session to DELETE) agrees with it; and the
/// error text never carries a token.
pub fn token_response(body: &[u8]) {
    let full = protocol::parse_token_response(body);
    let minted = protocol::minted_session(body);
    match &full {
        Ok(parsed) => {
            let (session, node) = minted.expect("a parsed token response names its session");
            assert_eq!(session.expose(), parsed.auth_token.expose());
            assert_eq!(node, parsed.node_id);
        }
        Err(e) => {
            let text = e.to_string();
            if let Some((session, _)) = &minted {
                let token = session.expose();
                // A token long enough to be recognisable must not be echoed in the error.
                assert!(
                    token.len() < 8 || !text.contains(token),
                    "the error repeats the authToken: {text}"
                );
            }
        }
    }
    let _ = protocol::error_message(body);
    let _ = protocol::excerpt(body);
}

/// The Developer SKU data-pod reply (`POST /api/connection`): never panics, and what it accepts
/// is a DNS host name with a non-zero port that round-trips through `Endpoint::parse`.
pub fn connection_reply(body: &[u8]) {
    if let Ok(endpoint) = protocol::parse_connection_reply(body) {
        assert!(is_dns_name(endpoint.host()), "{endpoint:?}");
        assert_ne!(endpoint.port(), 0);
        let again = crate::Endpoint::parse(&endpoint.authority()).expect("round trip");
        assert_eq!(again, endpoint);
    }
}

/// The in-band HTTP detector over the server's first bytes after the `101`. The first bytes of
/// `input` choose how the stream is cut into reads (chunk and buffer sizes); the rest is the
/// stream. Holds: a stream that does not start with `HTTP/` comes through byte for byte in any
/// chunking; one that does is an in-band HTTP error with no byte passed on and a status line
/// free of control characters; and the detector always reaches EOF or an error.
pub fn in_band_detector(input: &[u8]) {
    let (shape, data) = input.split_at(input.len().min(4));
    let pick = |i: usize, max: usize| 1 + shape.get(i).map_or(max - 1, |&b| usize::from(b)) % max;
    let chunks = vec![pick(0, 64), pick(1, 700)];
    let reads = [pick(2, 16), pick(3, 900)];
    let mut detector = InBandHttpDetector::new(Chunked::new(data, chunks));
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut outcome = None;
    // Every chunk is at least one byte, so this many polls always reach EOF.
    for turn in 0..4 * (data.len() + 8) * 2 {
        let mut storage = vec![0u8; reads[turn % reads.len()]];
        let mut buf = ReadBuf::new(&mut storage);
        match Pin::new(&mut detector).poll_read(&mut cx, &mut buf) {
            Poll::Pending => continue,
            Poll::Ready(Err(e)) => {
                outcome = Some(Some(Error::from_io(e)));
                break;
            }
            Poll::Ready(Ok(())) if buf.filled().is_empty() => {
                outcome = Some(None);
                break;
            }
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
        }
    }
    let outcome = outcome.expect("the detector reaches EOF or an error");
    // It decides once it has a whole line, or 1 KiB of one; a stream that ends before that is
    // handed over as it is.
    let decided = data.contains(&b'\n') || data.len() >= 1024;
    if data.starts_with(b"HTTP/") && decided {
        assert!(
            out.is_empty(),
            "{} bytes of an HTTP reply passed on",
            out.len()
        );
        match outcome {
            Some(Error::InBandHttp { status_line, .. }) => {
                assert!(
                    !status_line.chars().any(char::is_control),
                    "{status_line:?}"
                );
            }
            other => panic!("an in-band HTTP reply gave {other:?}"),
        }
    } else {
        assert!(outcome.is_none(), "{outcome:?}");
        assert_eq!(out, data, "frames were altered");
    }
}

/// Reads the answer to a WebSocket upgrade as the tunnel does: `response` is everything the
/// server sends on the connection (the `101` head, then frames or an in-band HTTP page),
/// parsed by the same hyper client connection, the same `101` checks, the in-band detector and
/// the frame codec with the tunnel's limits. Holds: no panic, and it finishes (every message
/// read is bounded by the input, which then ends).
pub fn websocket_handshake(response: &[u8]) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(_) => return,
    };
    runtime.block_on(handshake_over_memory(response));
}

async fn handshake_over_memory(response: &[u8]) {
    let (client_io, mut server_io) = tokio::io::duplex(64 << 10);
    let server = async move {
        let _ = server_io.write_all(response).await;
        let _ = server_io.shutdown().await;
        // Take whatever the client writes (the request, frames, a Close) until it is done.
        let mut sink = [0u8; 4096];
        while matches!(server_io.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let client = async move {
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(client_io)).await
        else {
            return;
        };
        // A fixed key (RFC 6455's example) so that the fuzzer can learn the matching accept
        // value, `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`; the tunnel sends a random one.
        let key = "dGhlIHNhbXBsZSBub25jZQ==".to_owned();
        let Ok(req) = Request::get("/webtunnelv2/token?X-Node-Id=node")
            .header(header::HOST, "bst.bastion.test")
            .header(header::UPGRADE, "websocket")
            .header(header::CONNECTION, "Upgrade")
            .header(header::SEC_WEBSOCKET_KEY, &key)
            .header(header::SEC_WEBSOCKET_VERSION, "13")
            .body(Full::new(Bytes::new()))
        else {
            return;
        };
        let exchange = async move {
            let Ok(resp) = sender.send_request(req).await else {
                return;
            };
            let Ok((resp, upgraded)) = finish_upgrade(resp).await else {
                return;
            };
            let Some(upgraded) = upgraded else {
                let err = http_error(Operation::WebSocketUpgrade, &resp);
                assert!(!err.to_string().chars().any(|c| c.is_control() && c != '\n'));
                return;
            };
            let options = WsOptions::default();
            if check_upgrade_response(resp.headers(), &key, &options).is_err() {
                return;
            }
            let io = InBandHttpDetector::new(TokioIo::new(upgraded));
            let mut ws =
                WebSocketStream::from_raw_socket(io, Role::Client, Some(ws_config(&options))).await;
            while let Some(Ok(_message)) = ws.next().await {}
        };
        // The connection task ends once the upgrade is handed over or the server is done.
        let _ = tokio::join!(conn.with_upgrades(), exchange);
    };
    tokio::join!(server, client);
}
