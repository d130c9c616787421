//! `bastion aks -- COMMAND`: SIGINT is left to the child while it runs; SIGTERM is forwarded to
//! it and the same cleanup runs (tunnel closed, sessions deleted, kubeconfig removed), and the
//! exit status is the child's.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{ArmSandbox, Running, WAIT, assert_nothing_left_in};
use rustix::process::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_command_cleans_up_everything() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&["--", "sleep", "60"]);
    cmd.env("TMPDIR", tmp.path()).stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    run.wait_for_line(|l| l.starts_with("Running sleep 60"), WAIT)
        .await;
    // The probe's session is gone; the kubeconfig exists while the command runs.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    // Ctrl-C belongs to the child (in a terminal it gets it directly): we keep running.
    run.signal(Signal::INT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "SIGINT must not stop bastion while the child runs"
    );

    run.signal(Signal::TERM);
    let status = run.wait(Duration::from_secs(20)).await;
    // sleep was terminated by the forwarded SIGTERM: 128 + 15.
    assert_eq!(status.code(), Some(143), "{}", run.stderr());
    run.assert_stderr_contains("Tunnel closed, every session deleted");
    s.sandbox.bastion().assert_no_orphans();
    assert_nothing_left_in(tmp.path());
}
