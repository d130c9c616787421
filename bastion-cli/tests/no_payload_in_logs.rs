//! The highest verbosity never shows tunnelled bytes: the WebSocket library logs every frame,
//! payload included, and that must not reach stderr (an HTTP request sent through a tunnel
//! carries its `Authorization` header).

use crate::common;

use std::time::Duration;

use common::{CoreSandbox, WAIT, connect, round_trip, start_tunnel};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logging_shows_no_tunnelled_bytes() {
    let sandbox = CoreSandbox::start().await;
    let mut cmd = sandbox.command(&["-vvv", "tunnel"], &["--resource-port", "22"]);
    cmd.env("RUST_LOG", "trace");
    let (mut run, port) = start_tunnel(cmd).await;

    let marker = b"Authorization: Bearer PAYLOAD-MARKER-7f3a9c";
    let mut conn = connect(port).await;
    assert_eq!(round_trip(&mut conn, marker).await, marker);
    drop(conn);
    run.wait_for_line(|l| l.contains("connection closed"), WAIT)
        .await;
    run.signal(rustix::process::Signal::TERM);
    let _ = run.wait(Duration::from_secs(15)).await;

    let log = run.stderr();
    // The log is at trace level (it says so), yet neither the text nor its hex appears.
    assert!(log.contains("TRACE"), "not a trace-level log:\n{log}");
    assert!(
        !log.contains("PAYLOAD-MARKER"),
        "payload in the log:\n{log}"
    );
    let hex: String = b"PAYLOAD-MARKER"
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        !log.to_ascii_lowercase().contains(&hex),
        "payload (hex) in the log"
    );
    let spaced: String = b"PAYLOAD".iter().map(|b| format!("{b:02x} ")).collect();
    assert!(
        !log.to_ascii_lowercase().contains(spaced.trim_end()),
        "payload (hex) in the log"
    );
}
