//! When the Bastion refuses the tunnel, `bastion aks` fails fast at its probe (before running
//! the command), with the auth exit code, and still removes the kubeconfig and every session.

mod common;

use std::process::Stdio;

use bastion_emulator::Faults;
use common::{ArmSandbox, WAIT, assert_clean_error, bastion};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_exchange_stops_before_the_command() {
    let s = ArmSandbox::start().await;
    s.sandbox
        .bastion()
        .set_faults(Faults::none().token_error(403, "Forbidden: the target is not reachable"));
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let mut cmd = bastion();
    cmd.args(["aks", "-n", "myaks", "-g", "aks-rg", "--", "touch"])
        .arg(&marker)
        .envs(s.env())
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(WAIT, cmd.spawn().unwrap().wait_with_output())
        .await
        .expect("finished in time")
        .unwrap();
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("HTTP 403"), "{line}");
    assert!(
        !marker.exists(),
        "the command must not run when the probe fails"
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left on disk: {left:?}");
    s.sandbox.bastion().assert_no_orphans();
}
