//! `bastion tunnel --idle-timeout` and `--max-connections`: a quiet connection is closed (and
//! its session deleted) while the tunnel keeps serving; connections beyond the limit wait,
//! unaccepted, until one ends, then are served.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, connect, round_trip};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::ChildStdout;

/// `bastion --output json tunnel … ARGS`, its JSON events and its port.
async fn json_tunnel(
    sandbox: &CoreSandbox,
    args: &[&str],
) -> (Running, Lines<BufReader<ChildStdout>>, u16) {
    let mut all = vec!["--resource-port", "22"];
    all.extend_from_slice(args);
    let mut cmd = sandbox.command(&["--output", "json", "tunnel"], &all);
    cmd.stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let ready = next_event(&mut lines).await;
    assert_eq!(ready["event"], "ready", "{ready}");
    let port = ready["port"].as_u64().unwrap() as u16;
    (run, lines, port)
}

async fn next_event(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("an event in time")
        .unwrap()
        .expect("stdout open");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
}

/// Ends the tunnel with SIGTERM and returns the rest of its events, the `closed` one last.
async fn stop(mut run: Running, mut lines: Lines<BufReader<ChildStdout>>) -> Vec<Value> {
    run.signal(rustix::process::Signal::TERM);
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push(serde_json::from_str::<Value>(&line).unwrap());
        }
    })
    .await
    .expect("stdout closed in time");
    let status = run.wait(WAIT).await;
    assert!(status.success(), "{}", run.stderr());
    assert_eq!(rest.last().unwrap()["event"], "closed", "{rest:?}");
    rest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_timeout_closes_a_quiet_connection_and_deletes_its_session() {
    let sandbox = CoreSandbox::start().await;
    let (run, mut lines, port) = json_tunnel(&sandbox, &["--idle-timeout", "1"]).await;
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"ping").await, b"ping");
    // Then silence: bastion ends the connection by itself (a hang guard only; without the
    // timeout the read would never end).
    let mut rest = Vec::new();
    let end = tokio::time::timeout(WAIT, conn.read_to_end(&mut rest))
        .await
        .expect("the quiet connection was not closed");
    assert!(rest.is_empty(), "{rest:?}");
    let _ = end;
    assert_eq!(next_event(&mut lines).await["event"], "connection_opened");
    let closed = next_event(&mut lines).await;
    assert_eq!(closed["event"], "connection_closed", "{closed}");
    assert_eq!(closed["bytes_up"], 4);
    // Its session is gone while the tunnel still runs, and the tunnel still serves.
    assert!(
        sandbox
            .emu
            .wait_until(|s| s.live_sessions == 0 && s.deletes == 1, WAIT)
            .await,
        "{:?}",
        sandbox.emu.stats()
    );
    let mut again = connect(port).await;
    assert_eq!(round_trip(&mut again, b"again").await, b"again");
    drop(again);
    let rest = stop(run, lines).await;
    assert_eq!(rest.last().unwrap()["undeleted_sessions"], 0);
    sandbox.emu.assert_no_orphans();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_connections_wait_for_one_to_end() {
    let sandbox = CoreSandbox::start().await;
    let (run, mut lines, port) = json_tunnel(&sandbox, &["--max-connections", "1"]).await;
    let mut first = connect(port).await;
    assert_eq!(round_trip(&mut first, b"first").await, b"first");
    let opened = next_event(&mut lines).await;
    assert_eq!(opened["event"], "connection_opened", "{opened}");

    // The second one connects (the kernel's backlog takes it) and sends, but is not served
    // while the first is open.
    let mut second = connect(port).await;
    second.write_all(b"second").await.unwrap();
    // Time for a wrong accept to show (not a race: the assertions below are on the order of
    // the events, whatever the timing).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(round_trip(&mut first, b"still").await, b"still");
    assert_eq!(
        sandbox.emu.stats().tokens_issued,
        1,
        "one session at a time"
    );
    drop(first);

    // Once the first ends, the second is served, its early bytes included.
    let mut back = [0u8; 6];
    tokio::time::timeout(WAIT, second.read_exact(&mut back))
        .await
        .expect("the waiting connection was served")
        .unwrap();
    assert_eq!(&back, b"second");
    drop(second);
    let mut events = vec![next_event(&mut lines).await, next_event(&mut lines).await];
    events.extend(stop(run, lines).await);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..2],
        ["connection_closed", "connection_opened"],
        "the second was opened only after the first closed: {events:?}"
    );
    assert_eq!(events[0]["id"], opened["id"]);
    assert_ne!(events[1]["id"], opened["id"]);
    sandbox.emu.assert_no_orphans();
}
