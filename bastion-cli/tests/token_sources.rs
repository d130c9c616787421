//! Where `--auth token` takes the ARM token from: a file (`--token-file FILE`,
//! `BASTION_TOKEN_FILE`), standard input (`--token-file -`) or `BASTION_TOKEN`, all without a
//! warning; `--token JWT` still works but warns, even with `-q`, since the process list shows
//! it to every user of the machine.

use crate::common;

use std::process::Stdio;

use common::{
    CoreSandbox, WAIT, assert_clean_error, connect, exit_status, read_stderr, round_trip,
    run_command, spawn_proxy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The warning's fixed part.
const WARNING: &str = "warning: --token puts the access token in the process list";

/// A private file holding `token` (with the newline `az ... -o tsv` leaves).
fn token_file(token: &str) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("{token}\n")).unwrap();
    file
}

/// Runs `bastion proxy` (with `leading` global options) to the echo server, with `BASTION_TOKEN`
/// removed and `env` added; checks a round trip and a clean exit, and returns stderr.
async fn proxy_round_trip(sandbox: &CoreSandbox, leading: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = leading.to_vec();
    all.push("proxy");
    let mut cmd = sandbox.command(&all, &[]);
    cmd.env_remove("BASTION_TOKEN")
        .envs(env.iter().copied())
        .stderr(Stdio::piped());
    let (mut child, mut stdin, mut stdout) = spawn_proxy(cmd);
    stdin.write_all(b"token source").await.unwrap();
    let mut back = [0u8; 12];
    let echoed = tokio::time::timeout(WAIT, stdout.read_exact(&mut back)).await;
    if !matches!(echoed, Ok(Ok(_))) {
        drop(stdin);
        let _ = child.start_kill();
        panic!("no echo; stderr:\n{}", read_stderr(&mut child).await);
    }
    assert_eq!(&back, b"token source");
    drop(stdin);
    let status = exit_status(&mut child, "proxy exited in time").await;
    let stderr = read_stderr(&mut child).await;
    assert!(status.success(), "{status:?}\n{stderr}");
    stderr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_file_works_without_a_warning() {
    let sandbox = CoreSandbox::start().await;
    let file = token_file(&sandbox.token);
    let path = file.path().to_str().unwrap();
    let stderr = proxy_round_trip(&sandbox, &["--token-file", path], &[]).await;
    assert!(!stderr.contains(WARNING), "{stderr}");
    // The same file named by the environment.
    let stderr = proxy_round_trip(&sandbox, &[], &[("BASTION_TOKEN_FILE", path)]).await;
    assert!(!stderr.contains(WARNING), "{stderr}");
    // And the token itself in the environment.
    let stderr = proxy_round_trip(&sandbox, &[], &[("BASTION_TOKEN", &sandbox.token)]).await;
    assert!(!stderr.contains(WARNING), "{stderr}");
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_standard_input_works() {
    let sandbox = CoreSandbox::start().await;
    let file = token_file(&sandbox.token);
    let mut cmd = sandbox.tunnel(&[]);
    cmd.arg("--token-file")
        .arg("-")
        .env_remove("BASTION_TOKEN")
        .stdin(std::fs::File::open(file.path()).unwrap());
    let mut tunnel = common::Running::spawn(cmd);
    let port = tunnel.ready_port().await;
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"from stdin").await, b"from stdin");
    drop(conn);
    tunnel.signal(rustix::process::Signal::TERM);
    let status = tunnel.wait(WAIT).await;
    assert!(status.success(), "{status:?}\n{}", tunnel.stderr());
    assert!(!tunnel.stderr().contains(WARNING), "{}", tunnel.stderr());
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_the_command_line_works_with_a_warning_that_quiet_does_not_hide() {
    let sandbox = CoreSandbox::start().await;
    let token = sandbox.token.clone();
    for leading in [
        vec!["--token", token.as_str()],
        vec!["-q", "--token", &token],
    ] {
        let stderr = proxy_round_trip(&sandbox, &leading, &[]).await;
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with(WARNING)).collect();
        assert_eq!(
            warnings.len(),
            1,
            "{leading:?}: one warning expected:\n{stderr}"
        );
        assert!(warnings[0].contains("--token-file"), "{}", warnings[0]);
        assert!(!stderr.contains(&token), "the token was printed:\n{stderr}");
    }
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_sources_fail_cleanly_before_any_network() {
    let sandbox = CoreSandbox::start().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let cases: [(Vec<&str>, &str); 4] = [
        (
            vec!["--token-file", missing.to_str().unwrap(), "tunnel"],
            "cannot read the token",
        ),
        (
            vec!["--token-file", empty.to_str().unwrap(), "tunnel"],
            "it is empty",
        ),
        (
            vec!["--token-file", "-", "proxy"],
            "cannot be used with `proxy`",
        ),
        (
            vec!["--token", "t", "--token-file", "f", "tunnel"],
            "cannot be used with",
        ),
    ];
    for (leading, expected) in cases {
        let args: &[&str] = if leading.last() == Some(&"proxy") {
            &[]
        } else {
            &["--resource-port", "22"]
        };
        let mut cmd = sandbox.command(&leading, args);
        cmd.env_remove("BASTION_TOKEN").stdin(Stdio::piped());
        let out = run_command(cmd).await;
        let line = assert_clean_error(&out, 2);
        assert!(line.contains(expected), "{leading:?}: {line}");
    }
    // Nothing reached the Bastion.
    assert!(sandbox.emu.sessions().is_empty());
}
