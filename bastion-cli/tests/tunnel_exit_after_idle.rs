//! `bastion tunnel --exit-after-idle N` closes the tunnel by itself once no connection has been
//! open for N seconds (no more never-ending background tunnels), and not while one is open.

mod common;

use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, bastion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_exits_by_itself() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = bastion();
    cmd.args([
        "tunnel",
        "--bastion-endpoint",
        &sandbox.endpoint(),
        "--target-resource-id",
        &sandbox.vm,
        "--resource-port",
        "22",
        "--exit-after-idle",
        "1",
    ])
    .envs(sandbox.env());
    let mut run = Running::spawn(cmd);
    let port = run.ready_port().await;

    // An open connection keeps the tunnel up past the limit.
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    tokio::time::timeout(WAIT, conn.read_exact(&mut one))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        run.child.try_wait().unwrap().is_none(),
        "exited with a connection open"
    );
    drop(conn);

    let status = run.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", run.stderr());
    assert!(
        run.stderr().contains("--exit-after-idle"),
        "{}",
        run.stderr()
    );
    sandbox.emu.assert_no_orphans();
}
