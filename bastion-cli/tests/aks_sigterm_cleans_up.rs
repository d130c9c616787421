//! `bastion aks -- COMMAND`: SIGINT is left to the child while it runs; SIGTERM is forwarded to
//! it and the same cleanup runs (tunnel closed, sessions deleted, kubeconfig removed), and the
//! exit status is the child's.

use crate::common;

use std::process::Stdio;

use common::{ArmSandbox, Running, WAIT, assert_nothing_left_in};
use rustix::process::Signal;
use tokio::io::AsyncWriteExt;

/// The child: traps SIGTERM, writes what it got to `$MARK` and exits 42 (so the exit status
/// shows it is the child's, and the marker that the signal reached it). `wait` returns at
/// once on a trapped signal, unlike a foreground `sleep`.
const CHILD: &str = "trap 'echo TERM > \"$MARK\"; kill $! 2>/dev/null; exit 42' TERM; \
                     echo child-ready >&2; while :; do sleep 60 & wait $!; done";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_the_command_cleans_up_everything() {
    let s = ArmSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    let mark = marks.path().join("child-got");
    let mut cmd = s.aks(&["--", "sh", "-c", CHILD]);
    cmd.env("TMPDIR", tmp.path())
        .env("MARK", &mark)
        .stdout(Stdio::null());
    let mut run = Running::spawn(cmd);
    let listening = run
        .wait_for_line(|l| l.contains("Listening on localhost:"), WAIT)
        .await;
    let port: u16 = listening
        .split("localhost:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {listening:?}"));
    run.wait_for_line(|l| l == "child-ready", WAIT).await;
    // The probe's session is gone; the kubeconfig exists while the command runs.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);

    // Ctrl-C belongs to the child (in a terminal it gets it directly): bastion keeps running.
    // The signal is handled as soon as it is sent (it interrupts bastion's event loop), so a
    // connection made after it shows whether bastion survived it: the tunnel still opens a
    // Bastion session for it.
    let emu = s.sandbox.bastion();
    let before = emu.stats().tokens_issued;
    run.signal(Signal::INT);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the tunnel still listens after SIGINT");
    assert!(
        emu.wait_until(
            |st| st.tokens_issued > before && st.live_websockets >= 1,
            WAIT
        )
        .await,
        "no session for a connection made after SIGINT; stderr:\n{}",
        run.stderr()
    );
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "SIGINT must not stop bastion while the child runs"
    );
    conn.shutdown().await.ok();
    drop(conn);
    assert!(!mark.exists(), "the child got a signal it was not sent");

    run.signal(Signal::TERM);
    let status = run.wait(WAIT).await;
    // The forwarded SIGTERM reached the child (its trap wrote the marker), and bastion exits
    // with the child's own status.
    assert_eq!(
        std::fs::read_to_string(&mark).ok().as_deref(),
        Some("TERM\n"),
        "the child never got SIGTERM; stderr:\n{}",
        run.stderr()
    );
    assert_eq!(status.code(), Some(42), "{}", run.stderr());
    run.assert_stderr_contains("Tunnel closed, every session deleted");
    s.sandbox.bastion().assert_no_orphans();
    assert_nothing_left_in(tmp.path());
}
