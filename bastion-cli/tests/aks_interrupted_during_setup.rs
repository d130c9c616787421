//! Ctrl-C, SIGTERM or SIGHUP while `bastion aks` is still talking to ARM ends it at once with
//! 128 + the signal, instead of being swallowed until a slow call returns.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use bastion_emulator::Fault;
use common::{ArmSandbox, Running, WAIT};
use rustix::process::Signal;

/// Sends `signal` while the cluster GET is in flight, and checks the exit: `status`, the
/// error line naming the signal, and nothing left behind.
async fn interrupt_a_slow_arm_call(signal: Signal, status: i32, name: &str) {
    let s = ArmSandbox::start().await;
    // The cluster GET is answered only after an hour: if bastion exits at all within the hang
    // guard, the signal ended it before the call returned (order of events, not a timing).
    s.sandbox.arm().inject(Fault::latency(
        "managedClusters/myaks",
        Duration::from_secs(3600),
    ));
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&["--", "true"]);
    cmd.env("TMPDIR", tmp.path())
        .env("RUST_LOG", "typespec_client_core=debug")
        .stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    // Wait (bounded) until the cluster GET is in flight: the HTTP pipeline logs each request
    // at debug level as it sends it.
    run.wait_for_line(
        |l| l.contains("Request") && l.contains("managedClusters/myaks"),
        WAIT,
    )
    .await;
    run.signal(signal);
    // A hang guard only: a bastion that waited for the GET would not exit for an hour.
    let exit = run.wait(WAIT).await;
    assert_eq!(exit.code(), Some(status), "{}", run.stderr());
    run.assert_stderr_contains(&format!("error: interrupted by {name} — "));
    assert!(!run.stderr().contains("panicked"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    s.sandbox.bastion().assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_arm_call_exits_promptly() {
    interrupt_a_slow_arm_call(Signal::TERM, 143, "SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_during_a_slow_arm_call_exits_with_129() {
    interrupt_a_slow_arm_call(Signal::HUP, 129, "SIGHUP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_slow_arm_call_exits_with_130() {
    interrupt_a_slow_arm_call(Signal::INT, 130, "SIGINT").await;
}
