//! `bastion tunnel --exit-after-idle N` closes the tunnel by itself once no connection has been
//! open for N seconds (no more never-ending background tunnels), and not while one is open.

use crate::common;

use std::process::Stdio;
use std::time::Duration;

use common::{CoreSandbox, Running, WAIT, connect, round_trip};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_exits_by_itself() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = sandbox.command(
        &["--output", "json", "tunnel"],
        &["--resource-port", "22", "--exit-after-idle", "1"],
    );
    cmd.stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let ready: Value = serde_json::from_str(
        &tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("ready in time")
            .unwrap()
            .expect("stdout open"),
    )
    .unwrap();
    assert_eq!(ready["event"], "ready");
    let port = ready["port"].as_u64().unwrap() as u16;

    // An open connection keeps the tunnel up past the limit: held for twice the limit (which
    // only gives a wrong exit the chance to happen; the assertions are on what happened and in
    // which order, whatever the timing), it still relays.
    let mut conn = connect(port).await;
    round_trip(&mut conn, b"x").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    round_trip(&mut conn, b"still relaying").await;
    drop(conn);

    // Then the tunnel ends by itself: every event up to the end of stdout, under a hang guard.
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            events.push(serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}")));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the idle tunnel did not exit; stderr:\n{}", run.stderr()));
    let status = run.wait(WAIT).await;
    assert!(status.success(), "{}", run.stderr());

    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        kinds,
        [
            "connection_opened",
            "connection_closed",
            "idle_exit",
            "closed"
        ],
        "{events:?}"
    );
    let closed = &events[1];
    assert_eq!(closed["bytes_up"], 15, "{closed}");
    assert_eq!(closed["bytes_down"], 15, "{closed}");
    assert!(closed["error"].is_null(), "{closed}");
    assert_eq!(events[2]["idle_seconds"], 1);
    assert_eq!(events[3]["undeleted_sessions"], 0);
    sandbox.emu.assert_no_orphans();
}
