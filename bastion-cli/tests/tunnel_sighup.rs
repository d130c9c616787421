//! SIGHUP (the terminal went away) ends a running tunnel like Ctrl-C and SIGTERM: open
//! connections are closed and every Bastion session is deleted before bastion exits.

use crate::common;

use common::{CoreSandbox, WAIT, connect, round_trip, spawn_tunnel};
use rustix::process::Signal;
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_closes_the_tunnel_and_deletes_every_session() {
    let sandbox = CoreSandbox::start().await;
    let (mut run, port) = spawn_tunnel(&sandbox, &[]).await;
    let mut a = connect(port).await;
    let mut b = connect(port).await;
    assert_eq!(round_trip(&mut a, b"a").await, b"a");
    assert_eq!(round_trip(&mut b, b"b").await, b"b");
    assert_eq!(sandbox.emu.stats().live_sessions, 2);

    run.signal(Signal::HUP);
    run.wait_for_line(|l| l.starts_with("SIGHUP: closing the tunnel"), WAIT)
        .await;
    let status = run.wait(WAIT).await;
    assert!(status.success(), "{status:?}: {}", run.stderr());
    run.assert_stderr_contains("Tunnel closed: 2 connections, 0 failed");
    // The open connections were ended, and no session is left on the Bastion.
    for conn in [&mut a, &mut b] {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, conn.read_to_end(&mut rest))
            .await
            .expect("the connection was closed");
        assert!(rest.is_empty(), "{rest:?}");
    }
    sandbox.emu.assert_no_orphans();
}
