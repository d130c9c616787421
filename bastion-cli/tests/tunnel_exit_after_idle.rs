//! `bastion tunnel --exit-after-idle N` closes the tunnel by itself once no connection has been
//! open for N seconds (no more never-ending background tunnels), and not while one is open.

mod common;

use std::time::Duration;

use common::{CoreSandbox, connect, round_trip, spawn_tunnel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_exits_by_itself() {
    let sandbox = CoreSandbox::start().await;
    let (mut run, port) = spawn_tunnel(&sandbox, &["--exit-after-idle", "1"]).await;

    // An open connection keeps the tunnel up past the limit.
    let mut conn = connect(port).await;
    round_trip(&mut conn, b"x").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "exited with a connection open"
    );
    drop(conn);

    let status = run.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", run.stderr());
    run.assert_stderr_contains("--exit-after-idle");
    sandbox.emu.assert_no_orphans();
}
