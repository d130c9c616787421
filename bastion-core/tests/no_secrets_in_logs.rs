//! With trace logging on, no token value (ARM token, auth token, WebSocket token) appears in
//! the logs, on success or on failure.
use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use bastion_emulator::Faults;
use common::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_carry_no_token_values() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::start().await;
    let served = Served::start(h.tunnel()).await;
    for _ in 0..3 {
        let data = random_bytes(10_000, 11);
        assert_eq!(echo_round_trip(served.connect().await, &data).await, data);
    }
    // A failing connection logs its error too.
    h.emulator.set_faults(Faults {
        in_band_http_after_upgrade: true,
        ..Faults::none()
    });
    let mut s = served.connect().await;
    let _ = read_until_end(&mut s).await;
    served.stop().await;
    h.assert_all_sessions_deleted().await;

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    assert!(
        logs.contains("connection closed"),
        "trace logging must be on"
    );
    let arm = token();
    let mut secrets = vec![arm.clone()];
    // The JWT's signature-less payload part alone is just as secret.
    secrets.extend(arm.split('.').filter(|p| p.len() > 8).map(str::to_owned));
    for s in h.emulator.sessions() {
        secrets.push(s.auth_token.clone());
        secrets.push(s.websocket_token.clone());
    }
    assert!(secrets.len() > 4);
    for secret in secrets {
        assert!(
            !logs.contains(&secret),
            "a token value leaked into the logs"
        );
    }
}
