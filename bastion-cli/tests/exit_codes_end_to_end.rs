//! Exit codes 1 ("any other failure") and 6 ("tunnel failed") from the real binary, each with
//! its one clean error line (the problem, then what to do) and nothing left behind.

use crate::common;

use std::process::{Output, Stdio};

use bastion_emulator::{Fault, Faults};
use common::{
    ArmSandbox, CoreSandbox, WAIT, assert_clean_error, assert_nothing_left_in, run_command,
    spawn_proxy,
};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bastion_that_refuses_every_tunnel_is_exit_6() {
    let sandbox = CoreSandbox::start().await;
    // Every upgrade is answered by the in-band HTTP 400: the retry fails as well.
    sandbox.emu.set_faults(Faults {
        in_band_http_after_upgrade: true,
        ..Faults::none()
    });
    // stdin stays open (as under ssh): the failure, not an EOF, ends the proxy.
    let (mut child, stdin, mut stdout) = spawn_proxy(sandbox.proxy(&["--resource-port", "22"]));
    let mut payload = Vec::new();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the proxy ended (hang guard)")
        .unwrap();
    drop(stdin);
    stdout.read_to_end(&mut payload).await.unwrap();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .await
        .unwrap();
    let out = Output {
        status,
        stdout: payload,
        stderr,
    };
    let line = assert_clean_error(&out, 6);
    assert!(line.contains("in-band HTTP 400"), "{line}");
    assert!(out.stdout.is_empty(), "nothing but payload on stdout");
    // Both attempts' sessions were deleted.
    assert_eq!(sandbox.emu.stats().tokens_issued, 2);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arm_answer_that_is_not_json_is_exit_1() {
    let s = ArmSandbox::start().await;
    s.sandbox
        .arm()
        .inject(Fault::malformed_json("managedClusters/myaks"));
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = s.aks(&["--", "true"]);
    cmd.env("TMPDIR", tmp.path()).stdin(Stdio::null());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 1);
    assert!(line.contains("malformed"), "{line}");
    assert_nothing_left_in(tmp.path());
    s.sandbox.bastion().assert_no_orphans();
}
