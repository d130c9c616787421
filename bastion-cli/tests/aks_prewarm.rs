//! `bastion aks --prewarm 2 -- COMMAND`: while the command runs, two sessions to the cluster's
//! API server are kept connected with no client; when it exits, every session is deleted,
//! pre-warmed ones included, and the exit status is the command's.

use crate::common;

use std::process::Stdio;

use common::{ArmSandbox, Running, WAIT};

/// The command: says it is running, then waits for `$GO` to exist and exits 0.
const CHILD: &str =
    "echo child-ready >&2; while [ ! -e \"$GO\" ]; do sleep 0.05; done; echo child-done >&2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aks_keeps_two_sessions_ready_while_the_command_runs_and_deletes_them_after() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let mut cmd = s.aks(&["--prewarm", "2", "--", "sh", "-c", CHILD]);
    cmd.env("GO", &go).stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    run.wait_for_line(|l| l.starts_with("Keeping 2 session(s) pre-warmed"), WAIT)
        .await;
    run.wait_for_line(|l| l == "child-ready", WAIT).await;

    // No client is connected, yet two sessions are open through to the API server.
    let emu = s.sandbox.bastion();
    assert!(
        emu.wait_until(|st| st.live_websockets == 2, WAIT).await,
        "two pre-warmed sessions expected: {:?}; stderr:\n{}",
        emu.stats(),
        run.stderr()
    );

    std::fs::write(&go, b"").unwrap();
    let status = run.wait(WAIT).await;
    assert_eq!(status.code(), Some(0), "{}", run.stderr());
    run.assert_stderr_contains("child-done");
    // bastion has exited: every session it minted (probe, pre-warmed) is deleted.
    emu.assert_no_orphans();
    let stats = emu.stats();
    assert_eq!(stats.deletes, stats.tokens_issued, "{stats:?}");
    assert!(stats.tokens_issued >= 2, "{stats:?}");
}
