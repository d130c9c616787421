//! `--auth managed-identity` gets its token from the local identity endpoint over plain http
//! (here an App Service style endpoint on loopback), and the tunnel works with it.

mod common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{CoreSandbox, WAIT, exit_status, read_stderr, spawn_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake App Service identity endpoint: checks the secret header, answers with `token`.
async fn identity_endpoint(token: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let token = token.clone();
            let seen = Arc::clone(&seen2);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 2048];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).to_string();
                seen.lock().unwrap().push(head.clone());
                let authorized = head
                    .lines()
                    .any(|l| l.eq_ignore_ascii_case("x-identity-header: not-a-secret"));
                let expires = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
                    + 3600;
                let (status, body) = if authorized {
                    (
                        "200 OK",
                        format!(
                            r#"{{"access_token":"{token}","expires_on":"{expires}","token_type":"Bearer","resource":"https://management.azure.com/"}}"#
                        ),
                    )
                } else {
                    ("401 Unauthorized", r#"{"error":"no header"}"#.to_owned())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tunnel_runs_on_a_managed_identity_token() {
    let sandbox = CoreSandbox::start().await;
    let (port, seen) = identity_endpoint(sandbox.token.clone()).await;
    let mut cmd = sandbox.command(&["--auth", "managed-identity", "proxy"], &[]);
    cmd.env_remove("BASTION_TOKEN")
        .env_remove("BASTION_AUTH")
        .env(
            "IDENTITY_ENDPOINT",
            format!("http://127.0.0.1:{port}/msi/token"),
        )
        .env("IDENTITY_HEADER", "not-a-secret")
        .stderr(Stdio::piped());
    let (mut child, mut stdin, mut stdout) = spawn_proxy(cmd);
    stdin.write_all(b"via managed identity").await.unwrap();
    let mut back = [0u8; 20];
    let echoed = tokio::time::timeout(WAIT, stdout.read_exact(&mut back)).await;
    if echoed.is_err() || echoed.as_ref().is_ok_and(|r| r.is_err()) {
        drop(stdin);
        let err = read_stderr(&mut child).await;
        panic!("no echo; stderr:\n{err}");
    }
    assert_eq!(&back, b"via managed identity");
    drop(stdin);
    let status = exit_status(&mut child, "proxy exited in time").await;
    assert!(status.success());
    let requests = seen.lock().unwrap().clone();
    assert!(
        !requests.is_empty(),
        "the identity endpoint was never asked"
    );
    assert!(
        requests[0].starts_with("GET /msi/token?"),
        "{}",
        requests[0]
    );
    sandbox.emu.assert_no_orphans();
}
