//! When the Bastion refuses the tunnel, `bastion aks` fails fast at its probe (before running
//! the command), with the auth exit code, and still removes the kubeconfig and every session.

use crate::common;

use bastion_emulator::Faults;
use common::{ArmSandbox, assert_clean_error, assert_nothing_left_in, run_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_exchange_stops_before_the_command() {
    let s = ArmSandbox::start().await;
    s.sandbox
        .bastion()
        .set_faults(Faults::none().token_error(403, "Forbidden: the target is not reachable"));
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("ran");
    let mut cmd = s.aks(&["--", "touch"]);
    cmd.arg(&marker).env("TMPDIR", tmp.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 5);
    assert!(line.contains("HTTP 403"), "{line}");
    assert!(
        !marker.exists(),
        "the command must not run when the probe fails"
    );
    assert_nothing_left_in(tmp.path());
    s.sandbox.bastion().assert_no_orphans();
}
