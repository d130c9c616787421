//! The first Ctrl-C closes the tunnel and waits for its sessions to be deleted; a second one
//! exits at once (status 130) without waiting.

use crate::common;

use std::time::Duration;

use bastion_emulator::Faults;
use common::{CoreSandbox, WAIT, connect, round_trip, spawn_tunnel};
use rustix::process::Signal;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_skips_the_wait() {
    let sandbox = CoreSandbox::start().await;
    // Deleting sessions hangs: the first Ctrl-C has something to wait for.
    let mut faults = Faults::none();
    faults.delete_latency = Some(Duration::from_secs(60));
    sandbox.emu.set_faults(faults);

    let (mut run, port) = spawn_tunnel(&sandbox, &[]).await;
    let mut conn = connect(port).await;
    round_trip(&mut conn, b"hi").await;

    run.signal(Signal::INT);
    run.wait_for_line(|l| l.starts_with("SIGINT: closing the tunnel"), WAIT)
        .await;
    run.signal(Signal::INT);
    let status = run.wait(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(130), "{}", run.stderr());
    run.assert_stderr_contains("exiting without waiting for the sessions to be deleted");
}
