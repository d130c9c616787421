//! Regression: `bastion proxy` must pass a few bytes to stdout at once, without waiting for a
//! newline or more input (ssh's first packets are small and binary; a line-buffered stdout
//! made the handshake hang).

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{CoreSandbox, exit_status, spawn_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_bytes_come_back_while_stdin_stays_open() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = sandbox.proxy(&[]);
    cmd.stderr(Stdio::null());
    let (mut child, mut stdin, mut stdout) = spawn_proxy(cmd);
    for round in 0..3u8 {
        let msg = [b'S', b'S', b'H', 0, round];
        stdin.write_all(&msg).await.unwrap();
        stdin.flush().await.unwrap();
        let mut back = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), stdout.read_exact(&mut back))
            .await
            .unwrap_or_else(|_| {
                panic!("round {round}: 5 bytes did not come back while stdin is open")
            })
            .unwrap();
        assert_eq!(back, msg);
    }
    drop(stdin);
    let status = exit_status(&mut child, "proxy exited after stdin closed").await;
    assert!(status.success());
    sandbox.emu.assert_no_orphans();
}
