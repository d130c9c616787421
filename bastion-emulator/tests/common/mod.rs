//! The data-plane test's client and set-up: a bare-bones HTTPS + WebSocket client for the
//! emulator, an emulator with a VM behind it, and the "mint a session, then upgrade" steps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use bastion_emulator::{
    BastionFixture, Emulator, EmulatorConfig, Faults, TEST_TENANT, TestClaims, spawn_echo_target,
    vm_resource_id,
};

/// Every wait in these tests is bounded by this.
pub const T: Duration = Duration::from_secs(5);

/// The client side of a session's WebSocket.
pub type ClientWs = WebSocketStream<TokioIo<Upgraded>>;

/// A reply, read to the end.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Reads `resp` to the end.
    pub async fn read(resp: Response<Incoming>) -> Self {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// The body as JSON (Null if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A bare-bones HTTPS client trusting the emulator's CA and resolving every name to it.
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
}

impl Client {
    /// A client for `emu`.
    pub fn new(emu: &Emulator) -> Self {
        Client {
            addr: emu.local_addr(),
            tls: emu.ca().client_config().unwrap(),
        }
    }

    /// A new TLS + HTTP/1 connection to the emulator as `host`.
    async fn sender(&self, host: &str) -> http1::SendRequest<Full<Bytes>> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls))
            .connect(name, tcp)
            .await
            .unwrap();
        let (sender, conn) = http1::handshake(TokioIo::new(tls)).await.unwrap();
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        sender
    }

    /// `host:port` for the Host header.
    pub fn authority(&self, host: &str) -> String {
        format!("{host}:{}", self.addr.port())
    }

    /// Sends `req` on a new connection to `host` (bounded) and returns the response head.
    async fn request(&self, host: &str, req: Request<Full<Bytes>>) -> Response<Incoming> {
        let mut sender = self.sender(host).await;
        tokio::time::timeout(T, sender.send_request(req))
            .await
            .unwrap()
            .unwrap()
    }

    /// Sends `req` to `host` and reads the reply to the end.
    pub async fn send(&self, host: &str, req: Request<Full<Bytes>>) -> Reply {
        Reply::read(self.request(host, req).await).await
    }

    /// `POST /api/tokens` with `form` as the body and `extra` headers.
    pub async fn post_form(&self, host: &str, form: &str, extra: &[(&str, &str)]) -> Reply {
        let mut b = Request::post("/api/tokens")
            .header(HOST, self.authority(host))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in extra {
            b = b.header(*k, *v);
        }
        self.send(
            host,
            b.body(Full::new(Bytes::from(form.to_owned()))).unwrap(),
        )
        .await
    }

    /// `POST /api/tokens` for `resource_id`:`port` with `token`.
    pub async fn mint(&self, host: &str, resource_id: &str, port: u16, token: &str) -> Reply {
        self.post_form(host, &form(resource_id, port, token), &[])
            .await
    }

    /// `DELETE /api/tokens/{auth}` with `X-Node-Id: node`: the status.
    pub async fn delete(&self, host: &str, auth: &str, node: &str) -> u16 {
        let req = Request::delete(format!("/api/tokens/{}", enc(auth)))
            .header(HOST, self.authority(host))
            .header("X-Node-Id", node)
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(host, req).await.status
    }

    /// `DELETE /api/tokens/{auth}` without an `X-Node-Id` header; the status.
    pub async fn delete_without_node(&self, host: &str, auth: &str) -> u16 {
        let req = Request::delete(format!("/api/tokens/{}", enc(auth)))
            .header(HOST, self.authority(host))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(host, req).await.status
    }

    /// A WebSocket upgrade request for `path`: the upgraded connection and the 101's headers, or
    /// the reply if it was not 101.
    pub async fn upgrade(&self, host: &str, path: &str) -> Result<(Upgraded, HeaderMap), Reply> {
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let req = Request::get(path)
            .header(HOST, self.authority(host))
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header("Sec-WebSocket-Key", &key)
            .header("Sec-WebSocket-Version", "13")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = self.request(host, req).await;
        if resp.status().as_u16() != 101 {
            return Err(Reply::read(resp).await);
        }
        let headers = resp.headers().clone();
        let up = tokio::time::timeout(T, hyper::upgrade::on(resp))
            .await
            .unwrap()
            .unwrap();
        Ok((up, headers))
    }

    /// [`Client::upgrade`], then WebSocket framing on the connection.
    pub async fn websocket(&self, host: &str, path: &str) -> Result<ClientWs, Reply> {
        let (up, _) = self.upgrade(host, path).await?;
        Ok(WebSocketStream::from_raw_socket(TokioIo::new(up), Role::Client, None).await)
    }
}

/// Percent-encodes a token for a URL path or query.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The form body of `POST /api/tokens`.
pub fn form(resource_id: &str, port: u16, token: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair("resourceId", resource_id)
        .append_pair("protocol", "tcptunnel")
        .append_pair("workloadHostPort", &port.to_string())
        .append_pair("aztoken", token)
        .finish()
}

/// An ARM token the emulator accepts.
pub fn arm_token() -> String {
    TestClaims::new(TEST_TENANT, "oid-1").mint()
}

/// An emulator with one Standard Bastion and a VM whose port 22 is an echo server, and a
/// client for it.
pub struct Setup {
    /// The emulator.
    pub emu: Emulator,
    /// A client for it.
    pub client: Client,
    /// The Bastion's DNS name.
    pub dns: String,
    /// The VM's resource id.
    pub vm: String,
    _echo: tokio::task::JoinHandle<()>,
}

/// Starts a [`Setup`], its emulator configured by `config`.
pub async fn setup_with(config: impl FnOnce(EmulatorConfig) -> EmulatorConfig) -> Setup {
    let (echo, task) = spawn_echo_target().await.unwrap();
    let bastion = BastionFixture::standard(TEST_TENANT);
    let dns = bastion.dns_name.clone();
    let vm = vm_resource_id("vm1");
    let cfg = config(EmulatorConfig::single(bastion).target(vm.clone(), 22, echo));
    let emu = Emulator::start(cfg).await.unwrap();
    let client = Client::new(&emu);
    Setup {
        emu,
        client,
        dns,
        vm,
        _echo: task,
    }
}

/// Starts a [`Setup`].
pub async fn setup() -> Setup {
    setup_with(|c| c).await
}

/// Starts a [`Setup`] and sets `faults` on its emulator.
pub async fn setup_with_faults(faults: Faults) -> Setup {
    let s = setup().await;
    s.emu.set_faults(faults);
    s
}

impl Setup {
    /// `POST /api/tokens` for port 22 of `resource_id` with a valid ARM token.
    pub async fn mint_for(&self, resource_id: &str) -> Reply {
        self.client
            .mint(&self.dns, resource_id, 22, &arm_token())
            .await
    }

    /// `POST /api/tokens` for port 22 of the VM with a valid ARM token.
    pub async fn mint(&self) -> Reply {
        self.mint_for(&self.vm).await
    }

    /// Upgrades `path` to a WebSocket, which must succeed (101).
    pub async fn websocket_at(&self, path: &str) -> ClientWs {
        self.client
            .websocket(&self.dns, path)
            .await
            .map_err(|r| r.status)
            .unwrap()
    }

    /// Upgrades to a minted session's WebSocket (`v`: the POST's JSON), which must succeed.
    pub async fn websocket_for(&self, v: &Value) -> ClientWs {
        self.websocket_at(&ws_path(v)).await
    }

    /// Tries to upgrade to a minted session's WebSocket, which must be refused: the status.
    pub async fn websocket_refused(&self, v: &Value) -> u16 {
        self.client
            .websocket(&self.dns, &ws_path(v))
            .await
            .unwrap_err()
            .status
    }

    /// Mints a session for port 22 of `resource_id`, then opens its WebSocket.
    pub async fn mint_then_websocket(&self, resource_id: &str) -> ClientWs {
        let v = self.mint_for(resource_id).await.json();
        self.websocket_for(&v).await
    }

    /// Mints a session for the VM, then upgrades its connection (101 expected) without
    /// WebSocket framing: the raw upgraded connection and the 101's headers.
    pub async fn mint_then_upgrade(&self) -> (Upgraded, HeaderMap) {
        let v = self.mint().await.json();
        self.client
            .upgrade(&self.dns, &ws_path(&v))
            .await
            .map_err(|r| r.status)
            .unwrap()
    }

    /// Mints a session for the VM (200 expected), then opens its WebSocket: the session's
    /// (authToken, nodeId) and the socket.
    pub async fn tunnel(&self) -> (String, String, ClientWs) {
        let r = self.mint().await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let v = r.json();
        let socket = self.websocket_for(&v).await;
        (
            v["authToken"].as_str().unwrap().to_owned(),
            v["nodeId"].as_str().unwrap().to_owned(),
            socket,
        )
    }
}

/// A loopback address where nothing listens (bound, then released).
pub async fn unused_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// Reads (bounded) up to the peer's Close frame; its code, or None if the socket just ended.
pub async fn next_close(ws: &mut ClientWs) -> Option<u16> {
    tokio::time::timeout(T, async {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Close(f)) => {
                    // Reading on flushes tungstenite's Close reply, like a real client.
                    let _ = ws.next().await;
                    return f.map(|f| u16::from(f.code));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .unwrap()
}

/// The next message (bounded), which must be there.
pub async fn recv(ws: &mut ClientWs) -> Message {
    tokio::time::timeout(T, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// The WebSocket path of a minted session (`v`: the POST's JSON), escaped.
pub fn ws_path(v: &Value) -> String {
    format!(
        "/webtunnelv2/{}?X-Node-Id={}",
        enc(v["websocketToken"].as_str().unwrap()),
        enc(v["nodeId"].as_str().unwrap())
    )
}
