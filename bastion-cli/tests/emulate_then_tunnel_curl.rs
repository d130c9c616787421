//! `bastion emulate`, then `bastion tunnel` with the environment it printed, then `curl`
//! through the local port to the sandbox VM's HTTP server; Ctrl-C stops both cleanly.

use crate::common;

use std::time::Duration;

use bastion_emulator::sandbox_vm::VM_BASTION;
use common::{WAIT, spawn_emulated_vm_tunnel, start_emulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_reaches_the_sandbox_vm_through_the_tunnel() {
    let (mut emulate, env) = start_emulate().await;
    for name in [
        "BASTION_ARM_ENDPOINT",
        "BASTION_CA_FILE",
        "BASTION_RESOLVE",
        "BASTION_AUTH",
        "BASTION_TOKEN",
    ] {
        assert!(
            env.iter().any(|(k, _)| k == name),
            "{name} missing from {env:?}"
        );
    }

    let (mut tunnel, port) = spawn_emulated_vm_tunnel(&env, VM_BASTION, "80").await;

    for _ in 0..2 {
        let curl = tokio::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output();
        let curl = tokio::time::timeout(WAIT, curl)
            .await
            .expect("curl finished")
            .expect("curl is installed");
        let body = String::from_utf8_lossy(&curl.stdout);
        assert!(
            curl.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&curl.stderr)
        );
        assert_eq!(body, "Hello from vm1 behind the sandbox Bastion\n");
    }
    tunnel
        .wait_for_line(|l| l.starts_with("connection 2 closed after"), WAIT)
        .await;

    tunnel.signal(rustix::process::Signal::INT);
    let status = tunnel.wait(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "tunnel exit {status:?}:\n{}",
        tunnel.stderr()
    );
    let log = tunnel.stderr();
    assert!(
        log.contains("Tunnel closed: 2 connections, 0 failed"),
        "{log}"
    );
    assert!(!log.contains("could not be deleted"), "{log}");

    emulate.signal(rustix::process::Signal::INT);
    let status = emulate.wait(Duration::from_secs(15)).await;
    assert!(
        status.success(),
        "emulate exit {status:?}:\n{}",
        emulate.stderr()
    );
}
