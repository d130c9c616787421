//! `bastion --output json tunnel`: one JSON object per event on stdout (ready, each connection
//! opened and closed with its bytes, closed), nothing else.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{CoreSandbox, WAIT, bastion};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_json_lines_on_stdout() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = bastion();
    cmd.args([
        "--output",
        "json",
        "tunnel",
        "--bastion-endpoint",
        &sandbox.endpoint(),
        "--target-resource-id",
        &sandbox.vm,
        "--resource-port",
        "22",
    ])
    .envs(sandbox.env())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    conn.write_all(b"json!").await.unwrap();
    let mut buf = [0u8; 5];
    tokio::time::timeout(WAIT, conn.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert_eq!(next().await["event"], "connection_opened");
    let closed = next().await;
    assert_eq!(closed["event"], "connection_closed");
    assert_eq!(closed["bytes_up"], 5);
    assert_eq!(closed["bytes_down"], 5);
    assert!(closed["error"].is_null());

    let pid = rustix::process::Pid::from_raw(child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let end = next().await;
    assert_eq!(end["event"], "closed");
    assert_eq!(end["undeleted_sessions"], 0);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    sandbox.emu.assert_no_orphans();
}
