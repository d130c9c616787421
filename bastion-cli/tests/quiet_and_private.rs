//! `-q` hides progress, never a security warning; files the CLI keeps for a while are private.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;

use common::{CoreSandbox, WAIT, spawn_tunnel, start_emulate};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_still_warns_that_a_non_loopback_bind_exposes_the_tunnel() {
    let sandbox = CoreSandbox::start().await;
    let (mut tunnel, _port) = spawn_tunnel(&sandbox, &["-q", "--bind", "0.0.0.0"]).await;
    tunnel.signal(rustix::process::Signal::TERM);
    let status = tunnel.wait(WAIT).await;
    assert!(status.success(), "{status:?}");
    let stderr = tunnel.stderr();
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: listening on 0.0.0.0"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("anyone who can reach this machine"),
        "{}",
        warnings[0]
    );
    // Quiet otherwise: no progress lines.
    assert!(
        !stderr.contains("closing the tunnel"),
        "-q printed progress:\n{stderr}"
    );
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulate_keeps_its_files_in_a_private_directory() {
    let (mut emulate, env) = start_emulate().await;
    let ca_file = env
        .iter()
        .find(|(k, _)| k == "BASTION_CA_FILE")
        .map(|(_, v)| std::path::PathBuf::from(v))
        .expect("BASTION_CA_FILE");
    let dir = ca_file.parent().unwrap();
    let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
    emulate.signal(rustix::process::Signal::TERM);
    emulate.wait(WAIT).await;
    assert!(!dir.exists(), "{} left behind", dir.display());
}
