//! Half-close: `printf x | bastion proxy …` against an echo target prints `x`. The local EOF
//! stops the sending only; the far side's reply is still relayed until it ends or the linger
//! passes (docs/protocol.md), as netcat-style and `ssh … < file` use needs.

use crate::common;

use std::process::Stdio;

use common::{BIN, CoreSandbox, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn printf_x_piped_into_proxy_comes_back() {
    let sandbox = CoreSandbox::start().await;
    let endpoint = sandbox.endpoint();
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"printf x | "$0" proxy "$@""#)
        .arg(BIN)
        .args([
            "--bastion-endpoint",
            &endpoint,
            "--target-resource-id",
            &sandbox.vm,
            "--resource-port",
            "22",
        ])
        .envs(sandbox.env())
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .expect("the proxy ended after the reply (hang guard)")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    assert_eq!(out.stdout, b"x", "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    sandbox.emu.assert_no_orphans();
}
