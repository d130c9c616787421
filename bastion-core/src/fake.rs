//! An in-memory Bastion for unit tests: a [`BastionApi`] whose sessions, DELETEs and WebSocket
//! behaviour are scripted and recorded, so the tunnel's retry, replay and cleanup logic runs
//! without sockets or TLS.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use crate::api::{BastionApi, Transport};
use crate::protocol::{Endpoint, TokenResponse};
use crate::stream::{MemoryTransport, memory_pair};
use crate::websocket::WsOptions;
use crate::{Error, Result, Secret};

/// What the next WebSocket does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Ws {
    /// Echo every binary message; answer a Close with a Close.
    #[default]
    Echo,
    /// Send [`BANNER`] at once, as sshd does when a client connects, then echo.
    Banner,
    /// Send [`FLOOD_BYTES`] at once in 1 KiB messages, message `k` all bytes `k % 251` (as fast
    /// as the client takes them), then echo.
    Flood,
    /// Close with code 1011 at once (the Bastion could not reach the target).
    CloseAtOnce,
    /// Take the first binary message, then answer with an in-band `HTTP/1.1 400` instead of
    /// frames (as the service's proxy layer does).
    InBand400AfterFirstData,
    /// The upgrade fails (after the token POST succeeded).
    FailOpen,
    /// Take every binary message and never answer (a target that only listens).
    Silent,
    /// Echo each binary message after 50 ms, unless the client's Close comes first (then the
    /// echo is lost, as it is behind a real Bastion whose target answers late).
    DelayedEcho,
}

/// What the fake saw.
#[derive(Debug, Default)]
pub(crate) struct Record {
    /// Token POSTs answered.
    pub(crate) token_posts: usize,
    /// Data-pod lookups answered.
    pub(crate) connection_posts: usize,
    /// Sessions minted and not deleted (auth tokens).
    pub(crate) live: HashSet<String>,
    /// The most sessions live at once.
    pub(crate) max_live: usize,
    /// DELETEs: (auth token, node id).
    pub(crate) deletes: Vec<(String, String)>,
    /// Per WebSocket opened, the bytes its server received.
    pub(crate) received: Vec<Vec<u8>>,
    /// Per WebSocket opened, the bytes its server has sent (so far).
    pub(crate) sent: Vec<usize>,
}

/// What a [`Ws::Banner`] target sends first.
pub(crate) const BANNER: &[u8] = b"SSH-2.0-OpenSSH_9.6 fake\r\n";
/// What a [`Ws::Flood`] target sends first.
pub(crate) const FLOOD_BYTES: usize = 1 << 20;

/// The fake Bastion. Minted sessions are `auth-N` on node `node-N`.
#[derive(Default)]
pub(crate) struct FakeBastion {
    script: Mutex<VecDeque<Ws>>,
    /// What WebSockets do once the script is used up.
    then: Ws,
    record: Arc<Mutex<Record>>,
    post_delay: std::time::Duration,
    /// DELETEs still to answer with a 500.
    failing_deletes: std::sync::atomic::AtomicUsize,
}

impl FakeBastion {
    /// A Bastion whose WebSockets behave as `script` says, then echo.
    pub(crate) fn scripted(script: impl IntoIterator<Item = Ws>) -> Arc<Self> {
        Self::scripted_then(script, Ws::Echo)
    }

    /// A Bastion whose WebSockets behave as `script` says, then as `then`.
    pub(crate) fn scripted_then(script: impl IntoIterator<Item = Ws>, then: Ws) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            then,
            record: Arc::default(),
            post_delay: std::time::Duration::ZERO,
            failing_deletes: Default::default(),
        })
    }

    /// A Bastion that echoes and answers its first `n` DELETEs with a 500.
    pub(crate) fn failing_deletes(n: usize) -> Arc<Self> {
        Arc::new(Self {
            failing_deletes: n.into(),
            ..Self::default()
        })
    }

    /// A Bastion that echoes and takes `delay` to answer each token POST.
    pub(crate) fn slow_posts(delay: std::time::Duration) -> Arc<Self> {
        Arc::new(Self {
            post_delay: delay,
            ..Self::default()
        })
    }

    /// What was seen so far.
    pub(crate) fn record(&self) -> MutexGuard<'_, Record> {
        lock(&self.record)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl BastionApi for FakeBastion {
    async fn post_token(&self, _endpoint: &Endpoint, _form: &Secret) -> Result<TokenResponse> {
        tokio::time::sleep(self.post_delay).await;
        let mut r = self.record();
        r.token_posts += 1;
        let n = r.token_posts;
        r.live.insert(format!("auth-{n}"));
        r.max_live = r.max_live.max(r.live.len());
        Ok(TokenResponse {
            auth_token: Secret::new(format!("auth-{n}")),
            node_id: format!("node-{n}"),
            websocket_token: Secret::new(format!("ws-{n}")),
        })
    }

    async fn delete_token(
        &self,
        _endpoint: &Endpoint,
        auth_token: &Secret,
        node_id: &str,
    ) -> Result<bool> {
        use std::sync::atomic::Ordering;
        let mut r = self.record();
        r.deletes
            .push((auth_token.expose().to_owned(), node_id.to_owned()));
        let fail = self
            .failing_deletes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            return Err(Error::Http {
                operation: crate::Operation::DeleteSession,
                status: 500,
                reason: "Internal Server Error".into(),
                message: String::new(),
            });
        }
        Ok(r.live.remove(auth_token.expose()))
    }

    async fn post_connection(&self, _endpoint: &Endpoint, _body: &Secret) -> Result<Endpoint> {
        let n = {
            let mut r = self.record();
            r.connection_posts += 1;
            r.connection_posts
        };
        Ok(Endpoint::parse(&format!("pod-{n}.bastion.test"))?)
    }

    async fn open_websocket(
        &self,
        _endpoint: &Endpoint,
        _url: &Url,
        _options: &WsOptions,
    ) -> Result<Transport> {
        let behaviour = lock(&self.script).pop_front().unwrap_or(self.then);
        if behaviour == Ws::FailOpen {
            return Err(Error::Handshake("scripted upgrade failure".into()));
        }
        let index = {
            let mut r = self.record();
            r.received.push(Vec::new());
            r.sent.push(0);
            r.received.len() - 1
        };
        let (client, server) = memory_pair(64);
        tokio::spawn(serve(server, behaviour, Arc::clone(&self.record), index));
        Ok(Box::new(FakeWs { inner: client }))
    }
}

/// The message the server end sends to stand for an in-band HTTP error.
const IN_BAND_MARKER: &str = "\u{0}in-band 400";

async fn serve(mut server: MemoryTransport, behaviour: Ws, record: Arc<Mutex<Record>>, i: usize) {
    let first: Vec<bytes::Bytes> = match behaviour {
        Ws::Banner => vec![bytes::Bytes::from_static(BANNER)],
        Ws::Flood => (0..FLOOD_BYTES / 1024)
            .map(|k| bytes::Bytes::from(vec![(k % 251) as u8; 1024]))
            .collect(),
        Ws::CloseAtOnce => {
            let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
                code: 1011.into(),
                reason: "target unreachable".into(),
            };
            let _ = server.send(Message::Close(Some(close))).await;
            return;
        }
        _ => Vec::new(),
    };
    for chunk in first {
        let n = chunk.len();
        if server.send(Message::Binary(chunk)).await.is_err() {
            return;
        }
        lock(&record).sent[i] += n;
    }
    while let Some(Ok(msg)) = server.next().await {
        match msg {
            Message::Binary(data) => {
                lock(&record).received[i].extend_from_slice(&data);
                match behaviour {
                    Ws::InBand400AfterFirstData => {
                        let _ = server.send(Message::text(IN_BAND_MARKER)).await;
                        return;
                    }
                    Ws::Silent => continue,
                    Ws::DelayedEcho => {
                        tokio::select! {
                            _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
                            next = server.next() => {
                                if let Some(Ok(Message::Close(_))) = next {
                                    let _ = server.send(Message::Close(None)).await;
                                }
                                return;
                            }
                        }
                    }
                    _ => {}
                }
                let n = data.len();
                if server.send(Message::Binary(data)).await.is_err() {
                    return;
                }
                lock(&record).sent[i] += n;
            }
            Message::Close(_) => {
                let _ = server.send(Message::Close(None)).await;
                return;
            }
            Message::Ping(p) => {
                let _ = server.send(Message::Pong(p)).await;
            }
            _ => {}
        }
    }
}

/// The client end: a [`MemoryTransport`] with tungstenite's error type, turning the marker into
/// the error the in-band HTTP detector raises.
struct FakeWs {
    inner: MemoryTransport,
}

fn ws_error(e: io::Error) -> WsError {
    WsError::Io(e)
}

impl Stream for FakeWs {
    type Item = std::result::Result<Message, WsError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx).map(|m| {
            m.map(|r| match r {
                Ok(Message::Text(t)) if t.as_str() == IN_BAND_MARKER => Err(ws_error(
                    Error::InBandHttp {
                        status: 400,
                        status_line: "HTTP/1.1 400 Bad Request".into(),
                    }
                    .into_io(),
                )),
                other => other.map_err(ws_error),
            })
        })
    }
}

impl Sink<Message> for FakeWs {
    type Error = WsError;
    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.inner.poll_ready_unpin(cx).map_err(ws_error)
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        self.inner.start_send_unpin(item).map_err(ws_error)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.inner.poll_flush_unpin(cx).map_err(ws_error)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.inner.poll_close_unpin(cx).map_err(ws_error)
    }
}
