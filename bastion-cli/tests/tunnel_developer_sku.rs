//! A Developer SKU Bastion through the CLI: the data-pod lookup, one connection at a time, and
//! its port rule (22/3389 only unless --allow-any-port) as a pre-flight failure.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Running, WAIT, assert_clean_error, bastion, run, start_emulate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const VM: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourceGroups/vm-rg/providers/Microsoft.Compute/virtualMachines/vm1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_bastion_tunnels_to_port_22_and_refuses_80() {
    let (mut emulate, env) = start_emulate().await;

    let out = run(
        &[
            "tunnel",
            "-n",
            "vm-dev-bastion",
            "-g",
            "vm-rg",
            "--target-resource-id",
            VM,
            "--resource-port",
            "80",
        ],
        &env,
    )
    .await;
    let line = assert_clean_error(&out, 4);
    assert!(line.contains("only tunnels to ports 22 and 3389"), "{line}");
    assert!(line.contains("--allow-any-port"), "{line}");

    let mut cmd = bastion();
    cmd.args([
        "tunnel",
        "-n",
        "vm-dev-bastion",
        "-g",
        "vm-rg",
        "--target-resource-id",
        VM,
        "--resource-port",
        "22",
    ])
    .envs(env.iter().map(|(k, v)| (k, v)))
    .stdout(Stdio::null());
    let mut tunnel = Running::spawn(cmd);
    let port = tunnel.ready_port().await;
    assert!(
        tunnel
            .stderr()
            .contains("Developer SKU: one connection at a time"),
        "{}",
        tunnel.stderr()
    );
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"through the data pod").await.unwrap();
    let mut back = [0u8; 20];
    tokio::time::timeout(WAIT, conn.read_exact(&mut back))
        .await
        .expect("echo in time")
        .unwrap();
    assert_eq!(&back, b"through the data pod");
    drop(conn);

    tunnel.signal(rustix::process::Signal::TERM);
    let status = tunnel.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", tunnel.stderr());
    assert!(
        tunnel
            .stderr()
            .contains("Tunnel closed: 1 connection, 0 failed"),
        "{}",
        tunnel.stderr()
    );

    emulate.signal(rustix::process::Signal::TERM);
    assert!(emulate.wait(Duration::from_secs(15)).await.success());
}
