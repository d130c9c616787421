//! A session the Bastion refuses to delete is reported when the tunnel ends: the `closed`
//! event counts it in `undeleted_sessions`, and a warning says what becomes of it.

use crate::common;

use std::process::Stdio;

use bastion_emulator::Faults;
use common::{CoreSandbox, Running, WAIT, connect, round_trip};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_cannot_be_deleted_is_reported() {
    let sandbox = CoreSandbox::start().await;
    sandbox.emu.set_faults(Faults {
        delete_status: Some(500),
        ..Faults::none()
    });
    let mut cmd = sandbox.command(&["--output", "json", "tunnel"], &["--resource-port", "22"]);
    cmd.stdout(Stdio::piped());
    let mut run = Running::spawn(cmd);
    let mut lines = BufReader::new(run.child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let ready: Value = serde_json::from_str(&first).unwrap();
    let port = ready["port"].as_u64().unwrap() as u16;
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, b"x").await, b"x");
    drop(conn);
    // Its DELETE was tried and refused before the tunnel is stopped.
    assert!(
        sandbox
            .emu
            .wait_until(|s| s.delete_requests >= 1, WAIT)
            .await
    );

    run.signal(rustix::process::Signal::TERM);
    let mut events = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            events.push(serde_json::from_str::<Value>(&line).unwrap());
        }
    })
    .await
    .expect("stdout closed in time");
    let status = run.wait(WAIT).await;
    assert!(status.success(), "{}", run.stderr());
    let closed = events
        .iter()
        .find(|e| e["event"] == "closed")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(closed["undeleted_sessions"], 1, "{closed}");
    let warning = events
        .iter()
        .find(|e| e["event"] == "warning")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("1 Bastion session(s) could not be deleted"),
        "{warning}"
    );
    // Retried before giving up, and really still there.
    let stats = sandbox.emu.stats();
    assert!(stats.delete_requests >= 2, "{stats:?}");
    assert_eq!(stats.live_sessions, 1, "{stats:?}");
}
