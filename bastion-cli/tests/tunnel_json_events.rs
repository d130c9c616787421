//! `bastion --output json tunnel`: one JSON object per event on stdout (ready, each connection
//! opened and closed with its bytes, closed), nothing else.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, connect, round_trip};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_json_lines_on_stdout() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = sandbox.command(&["--output", "json", "tunnel"], &["--resource-port", "22"]);
    cmd.stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stdout open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
    };

    let ready = next().await;
    assert_eq!(ready["event"], "ready");
    let port = ready["port"].as_u64().unwrap() as u16;
    let mut conn = connect(port).await;
    round_trip(&mut conn, b"json!").await;
    drop(conn);
    assert_eq!(next().await["event"], "connection_opened");
    let closed = next().await;
    assert_eq!(closed["event"], "connection_closed");
    assert_eq!(closed["bytes_up"], 5);
    assert_eq!(closed["bytes_down"], 5);
    assert!(closed["error"].is_null());

    run.signal(rustix::process::Signal::TERM);
    let end = next().await;
    assert_eq!(end["event"], "closed");
    assert_eq!(end["undeleted_sessions"], 0);
    let status = run.wait(Duration::from_secs(15)).await;
    assert!(status.success());
    sandbox.emu.assert_no_orphans();
}
