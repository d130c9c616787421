//! Ctrl-C or SIGTERM while `bastion aks` is still talking to ARM ends it at once with
//! 128 + the signal, instead of being swallowed until a slow call returns.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use bastion_emulator::Fault;
use common::{ArmSandbox, Running};
use rustix::process::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_arm_call_exits_promptly() {
    let s = ArmSandbox::start().await;
    s.sandbox.arm().inject(Fault::latency(
        "managedClusters/myaks",
        Duration::from_secs(20),
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
        Duration::from_secs(15),
    )
    .await;
    let sent = Instant::now();
    run.signal(Signal::TERM);
    let status = run.wait(Duration::from_secs(10)).await;
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "took {:?}",
        sent.elapsed()
    );
    assert_eq!(status.code(), Some(143), "{}", run.stderr());
    run.assert_stderr_contains("error: interrupted by SIGTERM");
    assert!(!run.stderr().contains("panicked"));
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
