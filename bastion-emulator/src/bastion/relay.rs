//! After the `101`: the WebSocket ⇄ TCP relay, and the post-upgrade quirks (in-band HTTP,
//! hang, unreachable target).
//!
//! Four loops per tunnel: WebSocket reader → target writer (two tasks), target reader →
//! WebSocket writer (the coordinator; one task, so a bulk download's hand-overs wake no other
//! worker). Queues between them are bounded in bytes, so a slow target slows the
//! WebSocket reader and, through TCP, the client (backpressure end to end). An optional
//! one-way latency is applied per chunk by timestamping it on entry and holding it until its
//! due time on exit, so the delay does not cap throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::{Instant, Interval};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::faults::{Faults, TargetFailure};
use super::io::{RawIo, Sniffer};
use super::pages;
use super::registry::{EventKind, RelayCommand, Traffic, WsTicket};

use super::state::Shared;

type Ws = WebSocketStream<Sniffer<RawIo>>;

/// Default largest server frame: what the target sends is cut into frames of at most this.
const DEFAULT_READ_SIZE: usize = 16 * 1024;
/// Bytes asked of the target socket per read (at least the frame size): several frames per
/// system call, so a bulk download costs a quarter of the reads it did at one frame per read.
const TARGET_READ_BYTES: usize = 64 * 1024;
/// Upper bound for the `server_read_size` knob.
const MAX_READ_SIZE: usize = 32 * 1024 * 1024;
/// Bytes queued per direction before backpressure, without latency.
const QUEUE_BYTES: usize = 256 * 1024;
/// Bytes queued per direction with latency (keeps the delay from capping throughput).
const QUEUE_BYTES_WITH_LATENCY: usize = 16 * 1024 * 1024;
/// tungstenite's read size from the TLS stream. It zero-fills this much before every read,
/// and one read returns at most about one TLS record (16 KiB) of plaintext: its 128 KiB
/// default zeroed several times the payload, and was held by every idle tunnel. A larger frame
/// grows the buffer to fit it.
const WS_READ_BUFFER: usize = 16 * 1024;
/// Largest client frame accepted when not in strict mode.
const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// How long the server waits for the client's Close reply.
const CLOSE_DRAIN: Duration = Duration::from_secs(3);
/// How long a control frame write may take.
const CONTROL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Records the end of a WebSocket even if the relay task panics or is aborted at shutdown.
struct EndGuard {
    shared: Arc<Shared>,
    ticket: WsTicket,
    live: bool,
    detail: &'static str,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let registry = &self.shared.registry;
        registry.ws_ended(&self.ticket, self.live);
        let code = registry.close_code_of(&self.ticket);
        registry.event(
            EventKind::WebSocketClosed,
            Some(self.ticket.id),
            code,
            self.detail,
        );
    }
}

/// Serves an upgraded connection according to the knobs.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    ticket: WsTicket,
    faults: Faults,
    io: RawIo,
    target: Option<TcpStream>,
) {
    let in_band = faults.in_band_http_after_upgrade
        || (target.is_none() && faults.target_failure == TargetFailure::InBand400);
    if in_band {
        let _guard = EndGuard {
            shared: Arc::clone(&shared),
            ticket: ticket.clone(),
            live: false,
            detail: "in-band HTTP/1.1 400 after upgrade",
        };
        match faults.in_band_after_client_bytes.filter(|&n| n > 0) {
            Some(at_least) => {
                let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
                let received = read_client_payload(&shared, &mut ws, at_least).await;
                shared.registry.in_band_answered(&ticket, received);
                write_in_band(ws.get_mut()).await;
            }
            None => {
                shared.registry.in_band_answered(&ticket, 0);
                let mut io = io;
                write_in_band(&mut io).await;
            }
        }
        return;
    }

    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let traffic = shared.registry.ws_opened(&ticket, cmd_tx.clone());
    shared
        .registry
        .event(EventKind::WebSocketOpened, Some(ticket.id), None, "");
    let _guard = EndGuard {
        shared: Arc::clone(&shared),
        ticket: ticket.clone(),
        live: true,
        detail: "relay ended",
    };

    if faults.hang_after_upgrade {
        hang(&shared, io, cmd_rx).await;
        return;
    }
    let mut config = WebSocketConfig::default();
    config.max_frame_size = Some(faults.max_frame_size.unwrap_or(DEFAULT_MAX_FRAME));
    config.max_message_size = Some(64 << 20);
    config.read_buffer_size = WS_READ_BUFFER;
    let ws = WebSocketStream::from_raw_socket(
        Sniffer::new(io, Arc::clone(&traffic)),
        Role::Server,
        Some(config),
    )
    .await;
    let ctx = Arc::new(Ctx {
        shared: Arc::clone(&shared),
        ticket,
        traffic,
        faults,
        fired: AtomicBool::new(false),
    });
    match target {
        Some(target) => run(ctx, ws, target, cmd_tx, cmd_rx).await,
        None => close_unreachable(&ctx, ws).await,
    }
}

/// Reads the client's data frames until `at_least` payload bytes have come (or the client
/// closed, failed, or the emulator is shutting down) and returns how many came.
async fn read_client_payload(
    shared: &Shared,
    ws: &mut WebSocketStream<RawIo>,
    at_least: u64,
) -> u64 {
    let mut received = 0u64;
    while received < at_least {
        tokio::select! {
            _ = shared.shutdown_requested() => break,
            msg = ws.next() => match msg {
                Some(Ok(Message::Binary(b))) => received += b.len() as u64,
                Some(Ok(Message::Text(t))) => received += t.len() as u64,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    received
}

async fn write_in_band(io: &mut RawIo) {
    let page = pages::tomcat_in_band(400);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        io.write_all(&page).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
    // A lingering close, as a web server makes: what the client still sends is read and
    // dropped (until it closes, at most 2 s), because closing a socket with unread bytes
    // resets the connection, which can destroy the page before the client has read it.
    let mut buf = vec![0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}

/// Sends nothing; reads and discards until the client goes away, a Close command, or shutdown.
async fn hang(shared: &Shared, mut io: RawIo, mut cmd_rx: mpsc::UnboundedReceiver<RelayCommand>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = shared.shutdown_requested() => break,
            _ = cmd_rx.recv() => break,
            r = io.read(&mut buf) => if !matches!(r, Ok(n) if n > 0) { break },
        }
    }
}

/// Per-tunnel state shared by the loops.
struct Ctx {
    shared: Arc<Shared>,
    ticket: WsTicket,
    traffic: Arc<Traffic>,
    faults: Faults,
    /// A byte-count trigger (close/reset) fired already.
    fired: AtomicBool,
}

/// Internal signals to the coordinator.
#[derive(Debug)]
enum Ctl {
    Close(u16, String),
    Reset,
    ClientGone,
}

struct Chunk {
    data: Bytes,
    due: Instant,
    _permit: OwnedSemaphorePermit,
}

enum Up {
    Data(Chunk),
    Eof,
}

enum Down {
    Data(Chunk),
    Eof,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The server sent a Close.
    Closed,
    /// The client closed or vanished.
    ClientGone,
    /// Abortive close requested.
    Reset,
    /// Writing to the client failed.
    Broken,
}

impl Ctx {
    /// Whether queued chunks may be sent together: not when each must wait out a latency, nor
    /// when a byte-count trigger must fire at chunk granularity.
    fn coalesces(&self) -> bool {
        let f = &self.faults;
        f.relay_latency.is_none_or(|d| d.is_zero())
            && f.reset.as_ref().is_none_or(|r| r.after_bytes.is_none())
            && f.close_after
                .as_ref()
                .is_none_or(|c| c.when.after_bytes.is_none())
    }

    /// The byte-count trigger that fires now, if any (each fires once).
    fn byte_trigger(&self) -> Option<Ctl> {
        let total = self.traffic.total_relayed();
        let reset_due = self
            .faults
            .reset
            .as_ref()
            .and_then(|r| r.after_bytes)
            .is_some_and(|n| total >= n);
        let close = self
            .faults
            .close_after
            .as_ref()
            .filter(|c| c.when.after_bytes.is_some_and(|n| total >= n));
        if !reset_due && close.is_none() {
            return None;
        }
        if self.fired.swap(true, Ordering::SeqCst) {
            return None;
        }
        if reset_due {
            return Some(Ctl::Reset);
        }
        close.map(|c| Ctl::Close(c.code, c.reason.clone()))
    }

    fn record_server_close(&self, code: u16) {
        Traffic::add(&self.traffic.close_sent, 1);
        self.shared.registry.server_close(&self.ticket, code);
        self.shared
            .registry
            .event(EventKind::ServerClose, Some(self.ticket.id), Some(code), "");
    }
}

fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.into(),
        reason: reason.to_owned().into(),
    }))
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn acquire(budget: &Arc<Semaphore>, len: usize, cap: usize) -> Option<OwnedSemaphorePermit> {
    let n = u32::try_from(len.clamp(1, cap)).unwrap_or(u32::MAX);
    Arc::clone(budget).acquire_many_owned(n).await.ok()
}

/// Waits out a chunk's latency. Without latency the chunk is due now and goes at once: a timer,
/// even one already due, would hold it until the timer wheel's next millisecond tick, which
/// capped each direction at one queue's worth of bytes per millisecond.
async fn wait_until(due: Instant) {
    if due > Instant::now() {
        tokio::time::sleep_until(due).await;
    }
}

async fn until(due: Option<Instant>) {
    match due {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn tick(interval: &mut Option<Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The relay proper.
async fn run(
    ctx: Arc<Ctx>,
    ws: Ws,
    target: TcpStream,
    // Kept so the command channel never reports "closed" while the relay runs.
    _cmd_keep: mpsc::UnboundedSender<RelayCommand>,
    mut cmd_rx: mpsc::UnboundedReceiver<RelayCommand>,
) {
    let (target_r, target_w) = target.into_split();
    let (mut ws_tx, ws_rx) = ws.split();
    let (up_tx, up_rx) = mpsc::unbounded_channel();
    let (down_tx, mut down_rx) = mpsc::unbounded_channel();
    let (ctl_tx, mut ctl_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);

    let latency = ctx.faults.relay_latency.unwrap_or_default();
    let read_size = ctx
        .faults
        .server_read_size
        .unwrap_or(DEFAULT_READ_SIZE)
        .clamp(1, MAX_READ_SIZE);
    let queue = if latency.is_zero() {
        QUEUE_BYTES
    } else {
        QUEUE_BYTES_WITH_LATENCY
    }
    .max(read_size);
    let up_budget = Arc::new(Semaphore::new(queue));
    let down_budget = Arc::new(Semaphore::new(queue));

    let mut reader = tokio::spawn(ws_reader(
        Arc::clone(&ctx),
        ws_rx,
        up_tx,
        ctl_tx.clone(),
        stop_rx.clone(),
        up_budget,
        queue,
        latency,
    ));
    let mut target_writer = tokio::spawn(target_writer(
        target_w,
        up_rx,
        ctl_tx.clone(),
        stop_rx.clone(),
        ctx.coalesces(),
    ));
    let reading = target_reader(
        target_r,
        down_tx,
        stop_rx,
        down_budget,
        queue,
        latency,
        read_size,
    );
    drop(ctl_tx);

    // The target reader runs in this task, beside the write loop it feeds. As a task of its
    // own, the chunks it handed over kept waking the runtime's other worker to run the write
    // loop: about a quarter of the emulator's CPU in a bulk download went to scheduling. It
    // ends with the write loop (nothing would send what it reads after that).
    let end = {
        let writing = write_loop(&ctx, &mut ws_tx, &mut down_rx, &mut ctl_rx, &mut cmd_rx);
        tokio::pin!(writing, reading);
        let mut target_open = true;
        loop {
            tokio::select! {
                end = &mut writing => break end,
                () = &mut reading, if target_open => target_open = false,
            }
        }
    };
    let mut target_writer_done = false;
    match end {
        End::Closed => {
            // Wait for the client's Close reply (the reader ends when it arrives).
            let drain = if ctx.shared.is_shutting_down() {
                Duration::from_secs(1)
            } else {
                CLOSE_DRAIN
            };
            let _ = tokio::time::timeout(drain, async {
                while let Some(c) = ctl_rx.recv().await {
                    if matches!(c, Ctl::ClientGone) {
                        break;
                    }
                }
            })
            .await;
        }
        End::ClientGone => {
            // Let the target writer deliver what the client sent before its Close.
            target_writer_done = tokio::time::timeout(Duration::from_secs(2), &mut target_writer)
                .await
                .is_ok();
        }
        End::Reset | End::Broken => {}
    }
    let _ = stop_tx.send(true);
    let ws_rx = match tokio::time::timeout(Duration::from_secs(1), &mut reader).await {
        Ok(Ok(rx)) => Some(rx),
        _ => {
            reader.abort();
            None
        }
    };
    if !target_writer_done {
        let _ = tokio::time::timeout(Duration::from_secs(1), &mut target_writer).await;
    }
    target_writer.abort();

    let Some(ws_rx) = ws_rx else { return };
    let Ok(mut ws) = ws_rx.reunite(ws_tx) else {
        return;
    };
    if end == End::Reset {
        ctx.shared.registry.event(
            EventKind::ServerReset,
            Some(ctx.ticket.id),
            None,
            "connection dropped without a Close",
        );
        ws.get_ref().get_ref().prepare_abort();
        drop(ws);
    } else {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.get_mut().shutdown()).await;
    }
}

/// Sends a Close; returns how the write loop ends.
async fn send_close(ctx: &Ctx, tx: &mut SplitSink<Ws, Message>, code: u16, reason: &str) -> End {
    match tokio::time::timeout(CONTROL_WRITE_TIMEOUT, tx.send(close_message(code, reason))).await {
        Ok(Ok(())) => {
            ctx.record_server_close(code);
            End::Closed
        }
        // The client closed first; tungstenite already answered its Close.
        Ok(Err(WsError::Protocol(_) | WsError::AlreadyClosed | WsError::ConnectionClosed)) => {
            End::ClientGone
        }
        _ => End::Broken,
    }
}

async fn act(ctx: &Ctx, tx: &mut SplitSink<Ws, Message>, ctl: Ctl) -> End {
    match ctl {
        Ctl::Close(code, reason) => send_close(ctx, tx, code, &reason).await,
        Ctl::Reset => End::Reset,
        Ctl::ClientGone => End::ClientGone,
    }
}

/// Server data with the frame-shape knobs applied, fed to the sink (the caller flushes).
async fn feed_data(ctx: &Ctx, tx: &mut SplitSink<Ws, Message>, data: Bytes) -> Result<(), WsError> {
    let f = &ctx.faults;
    let len = data.len();
    if len > 0 {
        ctx.traffic.note_first_down();
    }
    if f.empty_frames {
        tx.feed(Message::Binary(Bytes::new())).await?;
    }
    let fragment = f.fragment_size.filter(|&s| s > 0 && s < len);
    let mut frames = 0u64;
    if fragment.is_none() && !f.rsv1_on_data {
        tx.feed(Message::Binary(data)).await?;
        frames += 1;
    } else {
        let size = fragment.unwrap_or(len).max(1);
        let mut rest = data;
        let mut first = true;
        loop {
            let piece = rest.split_to(size.min(rest.len()));
            let last = rest.is_empty();
            let opcode = if first {
                OpCode::Data(OpData::Binary)
            } else {
                OpCode::Data(OpData::Continue)
            };
            let mut frame = Frame::message(piece, opcode, last);
            if first && f.rsv1_on_data {
                frame.header_mut().rsv1 = true;
            }
            tx.feed(Message::Frame(frame)).await?;
            frames += 1;
            first = false;
            if last {
                break;
            }
        }
    }
    Traffic::add(&ctx.traffic.frames_down, frames);
    Traffic::add(&ctx.traffic.bytes_down, len as u64);
    Ok(())
}

/// The coordinator: writes to the client and decides when the tunnel ends.
async fn write_loop(
    ctx: &Ctx,
    tx: &mut SplitSink<Ws, Message>,
    down_rx: &mut mpsc::UnboundedReceiver<Down>,
    ctl_rx: &mut mpsc::UnboundedReceiver<Ctl>,
    cmd_rx: &mut mpsc::UnboundedReceiver<RelayCommand>,
) -> End {
    let f = &ctx.faults;
    if f.unsolicited_pong
        && tx
            .send(Message::Pong(Bytes::from_static(b"unsolicited")))
            .await
            .is_err()
    {
        return End::Broken;
    }
    if let Some(text) = &f.text_frame
        && tx.send(Message::Text(text.clone().into())).await.is_err()
    {
        return End::Broken;
    }
    if let Some(c) = ctx.byte_trigger() {
        return act(ctx, tx, c).await;
    }
    let start = Instant::now();
    let close_at = f
        .close_after
        .as_ref()
        .and_then(|c| c.when.after)
        .map(|d| start + d);
    let reset_at = f.reset.as_ref().and_then(|r| r.after).map(|d| start + d);
    let mut ping = f
        .server_ping_interval
        .filter(|d| !d.is_zero())
        .map(|d| tokio::time::interval_at(start + d, d));

    loop {
        tokio::select! {
            biased;
            _ = ctx.shared.shutdown_requested() => {
                return send_close(ctx, tx, 1001, "server shutting down").await;
            }
            c = ctl_rx.recv() => {
                return act(ctx, tx, c.unwrap_or(Ctl::ClientGone)).await;
            }
            Some(RelayCommand::Close(code, reason)) = cmd_rx.recv() => {
                return send_close(ctx, tx, code, &reason).await;
            }
            _ = until(close_at) => {
                let (code, reason) = f
                    .close_after
                    .as_ref()
                    .map(|c| (c.code, c.reason.clone()))
                    .unwrap_or((1000, String::new()));
                return send_close(ctx, tx, code, &reason).await;
            }
            _ = until(reset_at) => return End::Reset,
            _ = tick(&mut ping) => {
                let sent = tokio::time::timeout(
                    CONTROL_WRITE_TIMEOUT,
                    tx.send(Message::Ping(Bytes::from_static(b"emulator"))),
                )
                .await;
                match sent {
                    Ok(Ok(())) => Traffic::add(&ctx.traffic.pings_sent, 1),
                    _ => return End::Broken,
                }
            }
            d = down_rx.recv() => match d {
                Some(Down::Data(chunk)) => {
                    let mut next = None;
                    let sent = tokio::select! {
                        biased;
                        _ = ctx.shared.shutdown_requested() => return End::Broken,
                        r = async {
                            wait_until(chunk.due).await;
                            feed_data(ctx, tx, chunk.data).await?;
                            // Without latency, feed what else is already queued, then flush
                            // once: full TLS records and one write for many frames.
                            while ctx.coalesces() {
                                match down_rx.try_recv() {
                                    Ok(Down::Data(more)) => feed_data(ctx, tx, more.data).await?,
                                    Ok(other) => {
                                        next = Some(other);
                                        break;
                                    }
                                    Err(_) => break,
                                }
                            }
                            tx.flush().await
                        } => r,
                    };
                    match sent {
                        Ok(()) => {}
                        Err(WsError::Protocol(_) | WsError::AlreadyClosed | WsError::ConnectionClosed) => {
                            return End::ClientGone;
                        }
                        Err(_) => return End::Broken,
                    }
                    if let Some(c) = ctx.byte_trigger() {
                        return act(ctx, tx, c).await;
                    }
                    match next {
                        Some(Down::Eof) => return send_close(ctx, tx, 1000, "").await,
                        Some(Down::Error) => {
                            return send_close(ctx, tx, 1011, "target connection failed").await;
                        }
                        Some(Down::Data(_)) | None => {}
                    }
                }
                Some(Down::Eof) | None => return send_close(ctx, tx, 1000, "").await,
                Some(Down::Error) => {
                    return send_close(ctx, tx, 1011, "target connection failed").await;
                }
            },
        }
    }
}

/// Client → target: reads WebSocket messages only as fast as the target accepts them.
#[allow(clippy::too_many_arguments)]
async fn ws_reader(
    ctx: Arc<Ctx>,
    mut rx: SplitStream<Ws>,
    up: mpsc::UnboundedSender<Up>,
    ctl: mpsc::UnboundedSender<Ctl>,
    mut stop: watch::Receiver<bool>,
    budget: Arc<Semaphore>,
    cap: usize,
    latency: Duration,
) -> SplitStream<Ws> {
    let t = &ctx.traffic;
    // Made once: a fresh `stopped` future per frame registered and removed a waiter on the
    // watch channel each time (about 4% of the emulator's CPU with 4 KiB frames). Every branch
    // that sees it complete leaves the function or its loop for good.
    let stopping = stopped(&mut stop);
    tokio::pin!(stopping);
    // Once the server has decided to close, client data is no longer forwarded.
    let mut refusing = false;
    loop {
        let next = tokio::select! {
            biased;
            _ = &mut stopping => {
                read_close_already_sent(&ctx, &mut rx);
                break;
            }
            m = rx.next() => m,
        };
        let msg = match next {
            None => break,
            Some(Ok(m)) => m,
            Some(Err(e)) => {
                let close = match &e {
                    WsError::Capacity(_) => Some((1009, "frame too large")),
                    WsError::Protocol(p) => {
                        use tokio_tungstenite::tungstenite::error::ProtocolError as P;
                        match p {
                            P::ResetWithoutClosingHandshake => None,
                            _ => Some((1002, "protocol error")),
                        }
                    }
                    _ => None,
                };
                if let Some((code, reason)) = close {
                    tracing::debug!(error = %e, code, "emulator: client protocol violation");
                    let _ = ctl.send(Ctl::Close(code, reason.into()));
                }
                break;
            }
        };
        match msg {
            Message::Binary(data) => {
                Traffic::add(&t.bytes_up, data.len() as u64);
                if ctx.faults.reject_continuation && t.continuation_up.load(Ordering::Relaxed) > 0 {
                    if !refusing {
                        let _ = ctl.send(Ctl::Close(
                            1002,
                            "continuation frames are not accepted".into(),
                        ));
                    }
                    refusing = true;
                }
                if refusing || data.is_empty() {
                    continue;
                }
                if budget.available_permits() < data.len().clamp(1, cap) {
                    Traffic::add(&t.up_queue_full_waits, 1);
                }
                let permit = tokio::select! {
                    biased;
                    _ = &mut stopping => break,
                    p = acquire(&budget, data.len(), cap) => match p {
                        Some(p) => p,
                        None => break,
                    },
                };
                let chunk = Chunk {
                    data,
                    due: Instant::now() + latency,
                    _permit: permit,
                };
                if up.send(Up::Data(chunk)).is_err() {
                    refusing = true;
                }
                if let Some(c) = ctx.byte_trigger() {
                    let _ = ctl.send(c);
                }
            }
            Message::Text(_) => {
                Traffic::add(&t.text_up, 1);
                if !refusing {
                    let _ = ctl.send(Ctl::Close(1003, "text frames are not supported".into()));
                }
                refusing = true;
            }
            Message::Pong(_) => Traffic::add(&t.pongs_received, 1),
            Message::Ping(_) | Message::Frame(_) => {}
            Message::Close(frame) => {
                record_client_close(&ctx, frame);
                let _ = up.send(Up::Eof);
                // Keep reading: the next read flushes tungstenite's Close reply, then ends.
            }
        }
    }
    let _ = up.send(Up::Eof);
    let _ = ctl.send(Ctl::ClientGone);
    rx
}

fn record_client_close(ctx: &Ctx, frame: Option<CloseFrame>) {
    Traffic::add(&ctx.traffic.close_received, 1);
    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
    ctx.shared.registry.client_close(&ctx.ticket, code);
}

/// When the relay is stopped (a DELETE, say) while frames the client sent before it are
/// already here, reads those (without waiting) so that a Close sent before the DELETE is seen:
/// a client that closes, then deletes, is recorded as having closed.
fn read_close_already_sent(ctx: &Ctx, rx: &mut SplitStream<Ws>) {
    use futures_util::FutureExt as _;
    for _ in 0..64 {
        match rx.next().now_or_never() {
            Some(Some(Ok(Message::Close(frame)))) => return record_client_close(ctx, frame),
            Some(Some(Ok(_))) => {}
            _ => return,
        }
    }
}

async fn target_writer(
    mut w: OwnedWriteHalf,
    mut up: mpsc::UnboundedReceiver<Up>,
    ctl: mpsc::UnboundedSender<Ctl>,
    mut stop: watch::Receiver<bool>,
    coalesce: bool,
) {
    let mut buf = Vec::new();
    // Made once: a fresh `stopped` future per frame registered and removed a waiter on the
    // watch channel each time (about 4% of the emulator's CPU with 4 KiB frames). Every branch
    // that sees it complete leaves the function or its loop for good.
    let stopping = stopped(&mut stop);
    tokio::pin!(stopping);
    loop {
        let item = tokio::select! {
            biased;
            _ = &mut stopping => return,
            i = up.recv() => i,
        };
        match item {
            Some(Up::Data(chunk)) => {
                let mut eof = false;
                let written = tokio::select! {
                    biased;
                    _ = &mut stopping => return,
                    r = async {
                        wait_until(chunk.due).await;
                        if !coalesce {
                            return w.write_all(&chunk.data).await;
                        }
                        // Gather what else is queued (bounded by the queue's byte budget) into
                        // one write; the chunks' permits are released once it is written.
                        let mut batch = vec![chunk];
                        loop {
                            match up.try_recv() {
                                Ok(Up::Data(more)) => batch.push(more),
                                Ok(Up::Eof) => {
                                    eof = true;
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        if let [one] = batch.as_slice() {
                            return w.write_all(&one.data).await;
                        }
                        buf.clear();
                        for c in &batch {
                            buf.extend_from_slice(&c.data);
                        }
                        w.write_all(&buf).await
                    } => r,
                };
                if written.is_err() {
                    let _ = ctl.send(Ctl::Close(1011, "target connection failed".into()));
                    return;
                }
                if eof {
                    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
                    return;
                }
            }
            Some(Up::Eof) | None => {
                let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
                return;
            }
        }
    }
}

async fn target_reader(
    r: OwnedReadHalf,
    down: mpsc::UnboundedSender<Down>,
    mut stop: watch::Receiver<bool>,
    budget: Arc<Semaphore>,
    cap: usize,
    latency: Duration,
    frame_size: usize,
) {
    // Filled in place (no zeroing, no copy into a frame): each read becomes frames that share
    // its buffer. Reserved once data is readable, so an idle tunnel holds no read buffer.
    let want = TARGET_READ_BYTES.max(frame_size).min(cap);
    let mut buf = BytesMut::new();
    // Made once: a fresh `stopped` future per frame registered and removed a waiter on the
    // watch channel each time (about 4% of the emulator's CPU with 4 KiB frames). Every branch
    // that sees it complete leaves the function or its loop for good.
    let stopping = stopped(&mut stop);
    tokio::pin!(stopping);
    loop {
        let n = tokio::select! {
            biased;
            _ = &mut stopping => return,
            r = read_some(&r, &mut buf, want) => r,
        };
        match n {
            Ok(0) => {
                let _ = down.send(Down::Eof);
                return;
            }
            Ok(n) => {
                let mut data = buf.split().freeze();
                if n < want {
                    // The target has nothing more for now: a quiet tunnel keeps no spare buffer.
                    buf = BytesMut::new();
                }
                while !data.is_empty() {
                    let piece = data.split_to(frame_size.min(data.len()));
                    let permit = tokio::select! {
                        biased;
                        _ = &mut stopping => return,
                        p = acquire(&budget, piece.len(), cap) => match p {
                            Some(p) => p,
                            None => return,
                        },
                    };
                    let chunk = Chunk {
                        data: piece,
                        due: Instant::now() + latency,
                        _permit: permit,
                    };
                    if down.send(Down::Data(chunk)).is_err() {
                        return;
                    }
                }
            }
            Err(_) => {
                let _ = down.send(Down::Error);
                return;
            }
        }
    }
}

/// Reads what the target has sent, up to `want` bytes, into `buf`'s spare capacity; the
/// buffer is only reserved once the socket is readable.
async fn read_some(r: &OwnedReadHalf, buf: &mut BytesMut, want: usize) -> std::io::Result<usize> {
    loop {
        r.readable().await?;
        buf.reserve(want);
        let mut limited = (&mut *buf).limit(want);
        match r.try_read_buf(&mut limited) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

/// The target could not be connected: `101`, then Close 1011.
async fn close_unreachable(ctx: &Ctx, mut ws: Ws) {
    let sent = tokio::time::timeout(
        CONTROL_WRITE_TIMEOUT,
        ws.send(close_message(1011, "target unreachable")),
    )
    .await;
    if matches!(sent, Ok(Ok(()))) {
        ctx.record_server_close(1011);
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Close(frame) = m {
                    Traffic::add(&ctx.traffic.close_received, 1);
                    let code = frame.map(|f| u16::from(f.code)).unwrap_or(1005);
                    ctx.shared.registry.client_close(&ctx.ticket, code);
                }
            }
        })
        .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.get_mut().shutdown()).await;
}
