//! 429 with Retry-After is retried after the advertised delay; persistent throttling ends in a
//! typed throttled error after the bounded retries.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bastion_emulator::Fault;
use common::*;

/// The client's debug log, captured: it names the wait chosen before each retry.
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

impl Capture {
    /// The `retrying ARM request` lines logged so far.
    fn retries(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter(|l| l.contains("retrying ARM request"))
            .map(str::to_owned)
            .collect()
    }
}

/// Captures bastion-arm's debug events on this thread (the tests run on a current-thread
/// runtime, so the client's tasks log here too).
fn capture_client_log() -> (Capture, tracing::subscriber::DefaultGuard) {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("bastion_arm=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (capture, tracing::subscriber::set_default(subscriber))
}

// Whether the wait happens is shown by what the client chose to wait (its log, the one place
// the delay is decided) and by the order of the attempts, not by timing the call.
#[tokio::test]
async fn throttled_once_then_success_waits_for_retry_after() {
    let (log, _guard) = capture_client_log();
    let emu = start().await;
    emu.inject(Fault::throttle("/bastionhosts/bastion-1", Duration::from_secs(1)).times(1));
    let arm = client(&emu, ALICE);
    let bastion = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap();
    assert_eq!(bastion.name, "bastion-1");
    // One retry, after exactly the server's Retry-After (no backoff or jitter instead of it).
    let retries = log.retries();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert!(
        retries[0].contains("retry_count=1") && retries[0].contains("wait_ms=1000"),
        "{retries:?}"
    );
    let log = emu.requests();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    // Both attempts carry the same client request id.
    assert!(log[0].client_request_id.is_some());
    assert_eq!(log[0].client_request_id, log[1].client_request_id);
}

#[tokio::test]
async fn persistent_throttling_gives_a_throttled_error_after_bounded_retries() {
    let (log, _guard) = capture_client_log();
    let emu = start().await;
    emu.inject(Fault::throttle("/bastionhosts", Duration::from_secs(0)));
    let arm = client(&emu, ALICE);
    let err = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap_err();
    assert!(err.is_throttled(), "{err}");
    assert_eq!(err.code(), Some("TooManyRequests"));
    // max_retries = 3 in the emulator's client config: 4 attempts in all.
    assert_eq!(emu.requests().len(), 4);
    // Each retry waited for the server's `Retry-After: 0`, not for a backoff of its own.
    let retries = log.retries();
    assert_eq!(retries.len(), 3, "{retries:?}");
    assert!(
        retries.iter().all(|l| l.contains("wait_ms=0")),
        "{retries:?}"
    );
}
