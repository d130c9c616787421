//! When the far side ends the session (sshd hanging up), `bastion proxy` exits even though its
//! stdin is still open, as ssh's ProxyCommand must.

use crate::common;

use bastion_emulator::Faults;
use common::{CoreSandbox, exit_status, spawn_proxy};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_normal_close_from_the_bastion_ends_the_proxy() {
    let sandbox = CoreSandbox::start().await;
    sandbox
        .emu
        .set_faults(Faults::none().close_after_bytes(8, 1000, "session ended"));
    let (mut child, mut stdin, _stdout) = spawn_proxy(sandbox.proxy(&[]));
    stdin.write_all(b"0123456789abcdef").await.unwrap();
    stdin.flush().await.unwrap();
    // stdin stays open: only the Bastion's close can end the process.
    let status = exit_status(
        &mut child,
        "the proxy exited after the Bastion closed the session",
    )
    .await;
    assert!(status.success(), "{status:?}");
    drop(stdin);
    sandbox.emu.assert_no_orphans();
}
