//! 429 with Retry-After is retried after the advertised delay; persistent throttling ends in a
//! typed throttled error after the bounded retries.

mod common;

use std::time::{Duration, Instant};

use bastion_emulator::Fault;
use common::*;

#[tokio::test]
async fn throttled_once_then_success_waits_for_retry_after() {
    let emu = start().await;
    emu.inject(Fault::throttle("/bastionhosts/bastion-1", Duration::from_secs(1)).times(1));
    let arm = client(&emu, ALICE);
    let started = Instant::now();
    let bastion = arm
        .get_bastion(&id(&bastion_id("bastion-1")))
        .await
        .unwrap();
    assert_eq!(bastion.name, "bastion-1");
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
    let log = emu.requests();
    assert_eq!(log.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    // Both attempts carry the same client request id.
    assert!(log[0].client_request_id.is_some());
    assert_eq!(log[0].client_request_id, log[1].client_request_id);
}

#[tokio::test]
async fn persistent_throttling_gives_a_throttled_error_after_bounded_retries() {
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
}
