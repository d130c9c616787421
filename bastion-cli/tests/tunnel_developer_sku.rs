//! A Developer SKU Bastion through the CLI: the data-pod lookup, one connection at a time, and
//! its port rule (22/3389 only unless --allow-any-port) as a pre-flight failure.

use crate::common;

use std::time::Duration;

use bastion_emulator::sandbox_vm::VM_DEV_BASTION;
use common::{
    assert_clean_error, connect, emulated_vm_tunnel_args, round_trip, run,
    spawn_emulated_vm_tunnel, start_emulate,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_bastion_tunnels_to_port_22_and_refuses_80() {
    let (mut emulate, env) = start_emulate().await;

    let out = run(&emulated_vm_tunnel_args(VM_DEV_BASTION, "80"), &env).await;
    let line = assert_clean_error(&out, 4);
    assert!(line.contains("only tunnels to ports 22 and 3389"), "{line}");
    assert!(line.contains("--allow-any-port"), "{line}");

    let (mut tunnel, port) = spawn_emulated_vm_tunnel(&env, VM_DEV_BASTION, "22").await;
    tunnel.assert_stderr_contains("Developer SKU: one connection at a time");
    let mut conn = connect(port).await;
    let back = round_trip(&mut conn, b"through the data pod").await;
    assert_eq!(&back, b"through the data pod");
    drop(conn);

    tunnel.signal(rustix::process::Signal::TERM);
    let status = tunnel.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", tunnel.stderr());
    tunnel.assert_stderr_contains("Tunnel closed: 1 connection, 0 failed");

    emulate.signal(rustix::process::Signal::TERM);
    assert!(emulate.wait(Duration::from_secs(15)).await.success());
}
