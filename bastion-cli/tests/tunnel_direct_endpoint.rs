//! `bastion tunnel --bastion-endpoint` against the data-plane emulator: bytes through the local
//! port, one log line per connection, and SIGTERM closes and deletes every session.

use crate::common;

use std::time::Duration;

use common::{CoreSandbox, WAIT, connect, round_trip, spawn_tunnel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_relays_and_sigterm_deletes_every_session() {
    let sandbox = CoreSandbox::start().await;
    let (mut run, port) = spawn_tunnel(&sandbox, &[]).await;

    // Two connections at once, each echoed through its own session.
    let mut a = connect(port).await;
    let mut b = connect(port).await;
    for (conn, msg) in [
        (&mut a, b"first".as_slice()),
        (&mut b, b"second".as_slice()),
    ] {
        assert_eq!(round_trip(conn, msg).await, msg);
    }
    drop(a);
    run.wait_for_line(
        |l| l.contains("closed after") && l.contains("5 B sent"),
        WAIT,
    )
    .await;

    // b is still open: SIGTERM must close it and delete its session.
    run.signal(rustix::process::Signal::TERM);
    let status = run.wait(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        run.stderr()
    );
    // The process has exited: every session it minted must already be deleted.
    sandbox.emu.assert_no_orphans();
    let log = run.stderr();
    assert!(log.contains("connection 1 opened from 127.0.0.1"), "{log}");
    assert!(
        !log.contains(&sandbox.token),
        "the token must never be printed"
    );
    drop(b);
}
