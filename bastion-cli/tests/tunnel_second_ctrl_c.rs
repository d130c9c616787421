//! The first Ctrl-C closes the tunnel and waits for its sessions to be deleted; a second one
//! exits at once (status 130) without waiting.

mod common;

use std::time::Duration;

use bastion_emulator::Faults;
use common::{CoreSandbox, Running, WAIT, bastion};
use rustix::process::Signal;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_skips_the_wait() {
    let sandbox = CoreSandbox::start().await;
    // Deleting sessions hangs: the first Ctrl-C has something to wait for.
    let mut faults = Faults::none();
    faults.delete_latency = Some(Duration::from_secs(60));
    sandbox.emu.set_faults(faults);

    let mut cmd = bastion();
    cmd.args([
        "tunnel",
        "--bastion-endpoint",
        &sandbox.endpoint(),
        "--target-resource-id",
        &sandbox.vm,
        "--resource-port",
        "22",
    ])
    .envs(sandbox.env());
    let mut run = Running::spawn(cmd);
    let port = run.ready_port().await;
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"hi").await.unwrap();
    let mut buf = [0u8; 2];
    tokio::time::timeout(WAIT, conn.read_exact(&mut buf))
        .await
        .expect("echo")
        .unwrap();

    run.signal(Signal::INT);
    run.wait_for_line(|l| l.starts_with("SIGINT: closing the tunnel"), WAIT)
        .await;
    run.signal(Signal::INT);
    let status = run.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    assert!(
        run.stderr()
            .contains("exiting without waiting for the sessions to be deleted"),
        "{}",
        run.stderr()
    );
}
