//! `bastion proxy --idle-timeout SECONDS`: a session with no bytes either way for that long is
//! closed and deleted, and the proxy exits although its stdin is still open (ssh then sees the
//! connection end).

use crate::common;

use common::{CoreSandbox, WAIT, exit_status, read_stderr, spawn_proxy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_proxy_session_is_closed_and_deleted() {
    let sandbox = CoreSandbox::start().await;
    let (mut child, mut stdin, mut stdout) =
        spawn_proxy(sandbox.proxy(&["--idle-timeout", "1", "--max-frame-size", "512"]));
    stdin.write_all(b"hello\n").await.unwrap();
    let mut back = [0u8; 6];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&back, b"hello\n");

    // Nothing more is written, stdin stays open: the idle timeout ends the session.
    let status = exit_status(&mut child, "the idle proxy exited").await;
    let stderr = read_stderr(&mut child).await;
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "nothing but payload on stdout: {rest:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.code().is_some(), "exited, not killed: {status:?}");
    drop(stdin);
    let sessions = sandbox.emu.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sandbox.emu.assert_no_orphans();
}
