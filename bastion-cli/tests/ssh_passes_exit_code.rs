//! `bastion ssh` runs ssh against its own tunnel, passes extra arguments through and exits with
//! ssh's code. A stand-in "ssh" (a shell script) talks to the echo target through the port.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;

use common::{CoreSandbox, run_command};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_gets_the_port_and_arguments_and_its_exit_code_is_ours() {
    let sandbox = CoreSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake-ssh");
    let log = dir.path().join("args");
    // Records its arguments, sends a line through the tunnel with curl's telnet, exits 7.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {log}\nport=$2\n\
             printf 'ping\\n' | curl -sS --max-time 2 telnet://127.0.0.1:$port >> {log} 2>&1\nexit 7\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

    let out = run_command(sandbox.command(
        &["ssh"],
        &[
            "-u",
            "azureuser",
            "--ssh-command",
            fake.to_str().unwrap(),
            "--",
            "-v",
            "uname",
            "-a",
        ],
    ))
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let recorded = std::fs::read_to_string(&log).unwrap();
    let first = recorded.lines().next().unwrap();
    assert!(first.starts_with("-p "), "{first}");
    assert!(first.contains("-o HostKeyAlias=vm1.bastion"), "{first}");
    assert!(
        first.contains("-l azureuser 127.0.0.1 -v uname -a"),
        "{first}"
    );
    assert!(
        recorded.contains("ping"),
        "the echo came back through the tunnel: {recorded}"
    );
    sandbox.emu.assert_no_orphans();
}
