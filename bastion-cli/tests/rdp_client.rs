//! `bastion rdp`: a tunnel to the VM's port 3389, then the RDP client; the tunnel closes (every
//! session deleted) when the client exits, and `bastion` exits with its code. A stand-in client
//! (a shell script) records its arguments and sends bytes through the tunnel to the sandbox's
//! RDP target (an echo server). `--no-launch` writes a `.rdp` file and waits for Ctrl-C.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, assert_clean_error, connect, round_trip, run_command};

/// A stand-in RDP client: records its arguments, then sends a line to the port of its
/// `/v:localhost:PORT` argument with curl's telnet and records what came back; exits 3.
fn stand_in_client(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let client = dir.join("fake-rdp");
    let log = dir.join("argv");
    std::fs::write(
        &client,
        format!(
            "#!/bin/sh\necho \"$@\" > {log}\n\
             port=${{1##*:}}\n\
             printf 'rdp-hello\\n' | curl -sS --max-time 2 telnet://127.0.0.1:$port >> {log} 2>&1\n\
             exit 3\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o755)).unwrap();
    (client, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reaches_port_3389_and_its_exit_code_is_ours() {
    let sandbox = CoreSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (client, log) = stand_in_client(dir.path());
    let out = run_command(sandbox.command(
        &["rdp"],
        &[
            "--username",
            "azureuser",
            "--rdp-command",
            client.to_str().unwrap(),
            "--",
            "/cert:ignore",
        ],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let recorded = std::fs::read_to_string(&log).unwrap();
    let argv = recorded.lines().next().unwrap();
    let port = argv
        .strip_prefix("/v:localhost:")
        .and_then(|r| r.split(' ').next())
        .unwrap_or_else(|| panic!("{argv}"));
    port.parse::<u16>().expect("a port");
    assert!(argv.ends_with(" /u:azureuser /cert:ignore"), "{argv}");
    assert!(
        recorded.contains("rdp-hello"),
        "the RDP target received the bytes and echoed them: {recorded}"
    );
    assert!(stderr.contains("Tunnel closed: 1 connection"), "{stderr}");
    // One session, to the VM's port 3389, deleted.
    let sessions = sandbox.emu.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].port, 3389);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_launch_writes_a_private_rdp_file_and_waits_for_ctrl_c() {
    let sandbox = CoreSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = sandbox.command(&["rdp"], &["--no-launch", "-u", "CONTOSO\\alice"]);
    cmd.env("TMPDIR", tmp.path());
    let mut rdp = Running::spawn(cmd);
    let port = rdp.ready_port().await;
    let line = rdp
        .wait_for_line(|l| l.starts_with("RDP file: "), WAIT)
        .await;
    let file = Path::new(line.strip_prefix("RDP file: ").unwrap()).to_path_buf();
    assert!(file.starts_with(tmp.path()), "{}", file.display());
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!("full address:s:localhost:{port}\r\nusername:s:CONTOSO\\alice\r\n")
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);

    // What a client would do with the file: connect to the port it names.
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"rdp bytes").await, b"rdp bytes");
    drop(conn);
    rdp.wait_for_line(|l| l.starts_with("connection 1 closed"), WAIT)
        .await;

    rdp.signal(rustix::process::Signal::INT);
    let status = rdp.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", rdp.stderr());
    rdp.assert_stderr_contains("Tunnel closed: 1 connection, 0 failed");
    // The file and its directory are gone with the tunnel.
    common::assert_nothing_left_in(tmp.path());
    let sessions = sandbox.emu.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0].port, 3389);
    sandbox.emu.assert_no_orphans();
}

/// Starts `bastion rdp --no-launch` with `TMPDIR=tmp`; the running process and its `.rdp` file.
async fn no_launch_in(sandbox: &CoreSandbox, tmp: &Path) -> (Running, std::path::PathBuf) {
    let mut cmd = sandbox.command(&["rdp"], &["--no-launch"]);
    cmd.env("TMPDIR", tmp);
    let mut rdp = Running::spawn(cmd);
    rdp.ready_port().await;
    let line = rdp
        .wait_for_line(|l| l.starts_with("RDP file: "), WAIT)
        .await;
    let file = Path::new(line.strip_prefix("RDP file: ").unwrap()).to_path_buf();
    (rdp, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_of_a_killed_run_is_removed_by_the_next_one() {
    let sandbox = CoreSandbox::start().await;
    let tmp = tempfile::tempdir().unwrap();
    // A first run, killed outright: it cannot remove its directory.
    let (mut first, first_file) = no_launch_in(&sandbox, tmp.path()).await;
    let first_dir = first_file.parent().unwrap().to_path_buf();
    first.signal(rustix::process::Signal::KILL);
    first.wait(WAIT).await;
    assert!(first_file.exists(), "SIGKILL left it behind");

    // The next run removes it (its lock died with its process), says so, and keeps its own
    // until it ends.
    let (mut second, second_file) = no_launch_in(&sandbox, tmp.path()).await;
    assert!(
        !first_dir.exists(),
        "{} is still there",
        first_dir.display()
    );
    second.assert_stderr_contains(&format!(
        "Removed {}, left by a bastion rdp that was killed",
        first_dir.display()
    ));
    assert!(second_file.exists());

    // A third run while the second is alive leaves the second's directory alone.
    let (mut third, third_file) = no_launch_in(&sandbox, tmp.path()).await;
    assert!(second_file.exists(), "a live run's directory is kept");
    for rdp in [&mut second, &mut third] {
        rdp.signal(rustix::process::Signal::INT);
        let status = rdp.wait(Duration::from_secs(15)).await;
        assert!(status.success(), "{}", rdp.stderr());
    }
    assert!(!third_file.exists());
    common::assert_nothing_left_in(tmp.path());
    // No connection came, so none of the three opened a session.
    assert!(sandbox.emu.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_it_says_what_to_install_and_opens_no_session() {
    let sandbox = CoreSandbox::start().await;
    let empty = tempfile::tempdir().unwrap();
    let mut cmd = sandbox.command(&["rdp"], &[]);
    cmd.env("PATH", empty.path());
    let out = run_command(cmd).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("no RDP client found"), "{line}");
    assert!(line.contains("FreeRDP"), "{line}");
    assert!(line.contains("--no-launch"), "{line}");

    let out =
        run_command(sandbox.command(&["rdp"], &["--rdp-command", "no-such-rdp-client"])).await;
    let line = assert_clean_error(&out, 2);
    assert!(line.contains("no-such-rdp-client"), "{line}");
    assert!(
        sandbox.emu.sessions().is_empty(),
        "{:?}",
        sandbox.emu.sessions()
    );
}
