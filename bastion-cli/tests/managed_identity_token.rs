//! `--auth managed-identity` gets its token from the local identity endpoint over plain http
//! (here an App Service style endpoint on loopback), and the tunnel works with it.

use crate::common;

use std::net::IpAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use common::{CoreSandbox, WAIT, exit_status, read_stderr, spawn_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A fake App Service identity endpoint on loopback: checks the secret header, answers with
/// `token`.
async fn identity_endpoint(token: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    identity_endpoint_on("127.0.0.1".parse().unwrap(), token).await
}

/// [`identity_endpoint`] on `ip`; every request head it receives is recorded.
async fn identity_endpoint_on(ip: IpAddr, token: String) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            // One entry per connection, from its accept: its request head once read.
            let index = {
                let mut seen = seen2.lock().unwrap();
                seen.push(String::new());
                seen.len() - 1
            };
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
                seen.lock().unwrap()[index] = head.clone();
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

/// `IDENTITY_ENDPOINT=http://localhost:PORT/...` with `--resolve localhost=ADDR`: the name is a
/// local one, the address is not, so the identity request (and its secret header) must not be
/// sent, and `ADDR:PORT` must see no connection at all.
async fn identity_request_is_refused_for(addr: IpAddr, listen: IpAddr) {
    let sandbox = CoreSandbox::start().await;
    let (port, seen) = identity_endpoint_on(listen, sandbox.token.clone()).await;
    let resolve = format!("localhost={addr}");
    let mut cmd = sandbox.command(
        &["--auth", "managed-identity", "--resolve", &resolve, "proxy"],
        &[],
    );
    cmd.env_remove("BASTION_TOKEN")
        .env_remove("BASTION_AUTH")
        .env(
            "IDENTITY_ENDPOINT",
            format!("http://localhost:{port}/msi/token"),
        )
        .env("IDENTITY_HEADER", "not-a-secret")
        .stderr(Stdio::piped());
    let (mut child, mut stdin, mut stdout) = spawn_proxy(cmd);
    let _ = stdin.write_all(b"never relayed").await;
    drop(stdin);
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, stdout.read_to_end(&mut out)).await;
    let status = exit_status(&mut child, "proxy exited in time").await;
    let stderr = read_stderr(&mut child).await;
    assert!(!status.success(), "{stderr}");
    assert!(out.is_empty(), "relayed {out:?}");
    assert!(
        stderr.contains("refusing plain http to localhost") && stderr.contains(&addr.to_string()),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.is_empty(),
        "the identity endpoint at {listen} was reached: {seen:?}"
    );
    assert!(sandbox.emu.sessions().is_empty());
}

/// 0.0.0.0 is not loopback, but Linux connects it to this machine, where the endpoint listens
/// on 127.0.0.1: without the address check the request would get there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_override_to_a_non_loopback_address_is_refused() {
    identity_request_is_refused_for("0.0.0.0".parse().unwrap(), "127.0.0.1".parse().unwrap()).await;
}

/// As the finding was reproduced: `--resolve localhost=<this machine's network address>`, with
/// the endpoint listening there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_override_to_this_machines_network_address_is_refused() {
    // The address the default route would use (connecting a UDP socket sends nothing).
    let own = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|u| u.connect("192.0.2.1:9").map(|()| u))
        .and_then(|u| u.local_addr())
        .map(|a| a.ip());
    match own {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => {
            identity_request_is_refused_for(ip, ip).await;
        }
        other => eprintln!("no non-loopback address here ({other:?}); skipped"),
    }
}
