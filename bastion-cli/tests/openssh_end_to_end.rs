//! The real OpenSSH client through the tunnel to a real sshd (the VM's port 22 in the
//! emulator is a private sshd on 127.0.0.1): `ssh -o ProxyCommand="bastion proxy ..."`, and
//! `bastion ssh` running ssh itself. Data goes both ways intact, the remote command's exit
//! code comes back, and no session is left on the Bastion.
//!
//! Without OpenSSH installed these tests say so and pass, except under `CI=true`, where
//! `.ci/run` installs it and a missing one fails.

use crate::common;

use std::ffi::OsString;
use std::process::Stdio;

use bastion_emulator::openssh::{OpenSsh, PrivateSshd};
use common::{BIN, CoreSandbox, WAIT, in_ci};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// Bytes sent up through ssh and hashed on the far side.
const UPLOAD: usize = 4 << 20;

/// OpenSSH's programs, or `None` (the test then passes, saying so) outside CI.
fn openssh() -> Option<OpenSsh> {
    match OpenSsh::find() {
        Ok(tools) => Some(tools),
        Err(e) => {
            assert!(!in_ci(), "{e}; CI is set: .ci/run installs OpenSSH");
            eprintln!("\n*** OpenSSH is NOT installed ({e}): skipped ***\n");
            None
        }
    }
}

/// A private sshd and a sandbox whose VM's port 22 it serves.
async fn sshd_behind_a_bastion(
    tools: &OpenSsh,
    dir: &tempfile::TempDir,
) -> (PrivateSshd, CoreSandbox) {
    let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
    let sshd = PrivateSshd::start(tools, dir.path(), log)
        .await
        .unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default();
            panic!("{e}\nsshd's log:\n{log}")
        });
    let addr = ([127, 0, 0, 1], sshd.port()).into();
    let sandbox = CoreSandbox::start_with_ssh(addr).await;
    (sshd, sandbox)
}

fn hex_sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `cmd` with `input` on its stdin; its exit code, stdout and stderr (bounded by WAIT).
async fn run_with_input(mut cmd: Command, input: Vec<u8>) -> (Option<i32>, String, String) {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        // Dropped here: end of input.
    });
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("finished in time")
        .expect("wait");
    writer.await.unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_with_bastion_proxy_as_its_proxy_command() {
    let Some(tools) = openssh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sshd, sandbox) = sshd_behind_a_bastion(&tools, &dir).await;

    let proxy = format!(
        "'{BIN}' proxy --bastion-endpoint {} --target-resource-id {}",
        sandbox.endpoint(),
        sandbox.vm
    );
    let data = bastion_emulator::random_bytes(UPLOAD, 0x2545_F491_4F6C_DD1D);
    let mut cmd = Command::new(&tools.ssh);
    cmd.envs(sandbox.env())
        .args(sshd.client_options())
        .arg("-o")
        .arg(format!("ProxyCommand={proxy}"))
        .arg("-l")
        .arg(sshd.user())
        .arg("vm1")
        // Up: the payload, hashed there; down: the hash and a line, then exit code 3.
        .arg("sha256sum; echo down-the-tunnel; exit 3");
    let (code, stdout, stderr) = run_with_input(cmd, data.clone()).await;

    assert_eq!(
        code,
        Some(3),
        "ssh's exit code is the remote command's: {stderr}"
    );
    let mut lines = stdout.lines();
    let remote_hash = lines.next().unwrap_or_default();
    assert!(
        remote_hash.starts_with(&hex_sha256(&data)),
        "the far side got the {UPLOAD} bytes intact: {stdout}\n{stderr}"
    );
    assert_eq!(lines.next(), Some("down-the-tunnel"), "{stdout}");
    // ssh ends its ProxyCommand with SIGHUP as it exits; the proxy then deletes its session.
    let all_deleted = |s: &[bastion_emulator::SessionRecord]| {
        s.len() == 1 && s[0].port == 22 && s[0].deleted_at.is_some()
    };
    assert!(
        sandbox.emu.wait_for_sessions(all_deleted, WAIT).await,
        "one session, deleted: {:?}",
        sandbox.emu.sessions()
    );
    sshd.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bastion_ssh_runs_openssh_through_its_tunnel() {
    let Some(tools) = openssh() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sshd, sandbox) = sshd_behind_a_bastion(&tools, &dir).await;

    let mut args: Vec<OsString> = vec!["--ssh-command".into(), tools.ssh.clone().into()];
    args.extend(["-u".into(), sshd.user().into(), "--".into()]);
    // OpenSSH reads options after the host too: `bastion ssh` puts these after its own.
    args.extend(sshd.client_options());
    args.push("head -c 1000000 /dev/zero | sha256sum; exit 5".into());
    let args: Vec<&str> = args.iter().map(|a| a.to_str().unwrap()).collect();
    let cmd = sandbox.command(&["ssh"], &args);
    let (code, stdout, stderr) = run_with_input(cmd, Vec::new()).await;

    assert_eq!(code, Some(5), "bastion ssh exits with ssh's code: {stderr}");
    assert_eq!(sandbox.emu.sessions().len(), 1);
    assert!(
        stdout.starts_with(&hex_sha256(&vec![0u8; 1_000_000])),
        "a megabyte came down intact: {stdout}\n{stderr}"
    );
    sandbox.emu.assert_no_orphans();
    sshd.stop().await;
}
