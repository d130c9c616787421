//! Through an HTTPS proxy (HTTP CONNECT, with basic auth): the token POST, the WebSocket and the
//! DELETE all go through the proxy, TLS is still verified end to end against the Bastion's name,
//! and a wrong proxy password is reported as such.
use crate::common;

use std::sync::{Arc, Mutex};

use bastion_core::ProxySetting;
use bastion_core::{Endpoint, Tunnel};
use common::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A minimal CONNECT proxy that sends every tunnel to `upstream` and records what was asked.
async fn spawn_connect_proxy(
    upstream: std::net::SocketAddr,
    credentials: &'static str,
) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut request_line = String::new();
                client.read_line(&mut request_line).await.unwrap();
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    client.read_line(&mut line).await.unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    use base64::Engine as _;
                    let expected = format!(
                        "proxy-authorization: basic {}",
                        base64::engine::general_purpose::STANDARD.encode(credentials)
                    );
                    if line.trim().eq_ignore_ascii_case(&expected) {
                        authorized = true;
                    }
                }
                log.lock().unwrap().push(request_line.trim().to_owned());
                let mut client = client.into_inner();
                if !authorized {
                    let _ = client
                        .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let mut server = TcpStream::connect(upstream).await.unwrap();
                client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, seen)
}

fn proxied_tunnel(h: &Harness, proxy_url: String) -> Tunnel {
    let mut config = h.config(h.vm_target());
    // No address override: the name must travel to the proxy, which resolves it.
    config.http.resolve.clear();
    config.http.proxy = ProxySetting::Url {
        url: proxy_url,
        no_proxy: String::new(),
    };
    Tunnel::new(config, credential()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_goes_through_the_connect_proxy() {
    let h = Harness::start().await;
    let (port, seen) = spawn_connect_proxy(h.emulator.local_addr(), "alice:s3cret").await;
    let tunnel = proxied_tunnel(&h, format!("http://alice:s3cret@127.0.0.1:{port}"));
    let data = random_bytes(200_000, 40);
    let conn = tunnel.connect().await.unwrap();
    assert_eq!(echo_round_trip(conn, &data).await, data);
    h.assert_all_sessions_deleted().await;
    let endpoint = Endpoint::parse(&h.emulator.endpoint_for(&h.bastion.dns_name)).unwrap();
    let seen = seen.lock().unwrap().clone();
    // One tunnel for the POST (reused by the DELETE when still pooled), one for the WebSocket.
    assert!(seen.len() >= 2, "{seen:?}");
    for line in &seen {
        assert_eq!(line, &format!("CONNECT {} HTTP/1.1", endpoint.authority()));
    }
}

#[tokio::test]
async fn a_rejected_proxy_login_is_reported() {
    let h = Harness::start().await;
    let (port, _) = spawn_connect_proxy(h.emulator.local_addr(), "alice:s3cret").await;
    let tunnel = proxied_tunnel(&h, format!("http://alice:wrong@127.0.0.1:{port}"));
    let err = tunnel.connect().await.unwrap_err().to_string();
    assert!(err.contains("through the proxy http://127.0.0.1:"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the proxy password must not be shown: {err}"
    );
    assert_eq!(h.emulator.stats().tokens_issued, 0);
}
