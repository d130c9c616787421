//! `bastion tunnel --timeout SECONDS` (az's `--timeout`): the tunnel ends that long after it is
//! ready, even with a connection open; the connection is closed, every session deleted, the exit
//! code is 0, and a status line (a `timeout` JSON event) says why it ended.

use crate::common;

use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, connect, round_trip};
use tokio::io::AsyncReadExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_ends_after_its_timeout_with_a_connection_open() {
    let sandbox = CoreSandbox::start().await;
    let mut tunnel = Running::spawn(sandbox.tunnel(&["--timeout", "2"]));
    let port = tunnel.ready_port().await;

    // A connection that stays open (and busy enough to never be idle) until the timeout.
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"before").await, b"before");
    tunnel
        .wait_for_line(|l| l.starts_with("Timed out after 2 s (--timeout)"), WAIT)
        .await;
    // The open connection is closed by the tunnel: EOF (or a reset), never a hang.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, conn.read_to_end(&mut rest))
        .await
        .expect("the tunnel closed the open connection");
    assert!(read.is_err() || rest.is_empty(), "{rest:?}");

    let status = tunnel.wait(WAIT).await;
    assert!(status.success(), "exit {status:?}:\n{}", tunnel.stderr());
    tunnel.assert_stderr_contains("Tunnel closed: 1 connection");
    assert!(
        !tunnel.stderr().contains("could not be deleted"),
        "{}",
        tunnel.stderr()
    );
    let sessions = sandbox.emu.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_a_timeout_event_before_the_closing_summary() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = sandbox.command(
        &["--output", "json", "tunnel"],
        &["--resource-port", "22", "--timeout", "1"],
    );
    cmd.stdout(std::process::Stdio::piped());
    let mut tunnel = Running::spawn(cmd);
    let status = tunnel.wait(WAIT).await;
    assert!(status.success(), "exit {status:?}:\n{}", tunnel.stderr());
    let mut stdout = String::new();
    tunnel
        .child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["ready", "timeout", "closed"], "{stdout}");
    assert_eq!(events[1]["seconds"], 1);
    assert_eq!(events[2]["undeleted_sessions"], 0);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_timeout_means_none() {
    let sandbox = CoreSandbox::start().await;
    let mut tunnel = Running::spawn(sandbox.tunnel(&["--timeout", "0"]));
    let port = tunnel.ready_port().await;
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"still here").await, b"still here");
    drop(conn);
    tunnel
        .wait_for_line(|l| l.starts_with("connection 1 closed"), WAIT)
        .await;
    // Still running: only the signal ends it, and nothing says it timed out.
    assert!(
        tunnel.child.try_wait().unwrap().is_none(),
        "{}",
        tunnel.stderr()
    );
    tunnel.signal(rustix::process::Signal::INT);
    let status = tunnel.wait(Duration::from_secs(15)).await;
    assert!(status.success(), "{}", tunnel.stderr());
    assert!(
        !tunnel.stderr().contains("Timed out"),
        "{}",
        tunnel.stderr()
    );
    sandbox.emu.assert_no_orphans();
}
