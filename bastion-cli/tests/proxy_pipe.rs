//! `bastion proxy` driven through a pipe, as ssh's ProxyCommand drives it: the bytes that come
//! out on stdout are the bytes that went in on stdin, and nothing else.

use crate::common;

use common::{CoreSandbox, WAIT, exit_status, read_stderr, spawn_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_in_equal_bytes_out() {
    let sandbox = CoreSandbox::start().await;
    let (mut child, mut stdin, mut stdout) = spawn_proxy(sandbox.proxy(&["--resource-port", "22"]));

    // 1 MiB of varied bytes, written while reading the echo back.
    let payload: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let to_send = payload.clone();
    let writer = tokio::spawn(async move {
        for chunk in to_send.chunks(8 * 1024) {
            stdin.write_all(chunk).await.unwrap();
        }
        stdin.flush().await.unwrap();
        stdin
    });
    let mut echoed = vec![0u8; payload.len()];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut echoed))
        .await
        .expect("the echo came back in time")
        .unwrap();
    assert!(echoed == payload, "bytes out differ from bytes in");

    // Closing stdin ends the session; nothing else appears on stdout.
    let stdin = writer.await.unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stdout.read_to_end(&mut rest))
        .await
        .expect("stdout closed in time")
        .unwrap();
    assert!(rest.is_empty(), "stdout carried {} extra bytes", rest.len());
    let status = exit_status(&mut child, "proxy exited in time").await;
    let stderr = read_stderr(&mut child).await;
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    sandbox.emu.assert_no_orphans();
}
