//! The Bastion API as the tunnel uses it: the token exchange, the Developer SKU's data-pod
//! lookup, the session DELETE and opening the WebSocket. [`BastionApi`] is the seam: over HTTPS
//! in production ([`HttpsBastion`]), in memory in the tunnel's unit tests. The wire format is
//! described in `docs/protocol.md`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Sink, Stream};
use http::{Method, Request, StatusCode, header};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use url::Url;

use crate::error::Operation;
use crate::protocol::{self, Endpoint, TokenResponse};
use crate::transport::{HttpsClient, OpenConnection, http_error};
use crate::websocket::{self, UpgradeConnection, Via, WsOptions};
use crate::{Error, Result, Secret};

/// A WebSocket-like message transport: a stream and a sink of messages.
pub(crate) trait MessageTransport:
    Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin
{
}

impl<T> MessageTransport for T where
    T: Stream<Item = Result<Message, WsError>> + Sink<Message, Error = WsError> + Send + Unpin
{
}

/// The transport a tunnelled connection runs over.
pub(crate) type Transport = Box<dyn MessageTransport>;

/// The Bastion calls a tunnel makes.
#[async_trait]
pub(crate) trait BastionApi: Send + Sync + 'static {
    /// `POST /api/tokens`: exchanges the ARM token for a Bastion session.
    async fn post_token(&self, endpoint: &Endpoint, form: &Secret) -> Result<TokenResponse>;

    /// `DELETE /api/tokens/{authToken}` with `X-Node-Id`. `true` when deleted, `false` when the
    /// service says it was already gone.
    async fn delete_token(
        &self,
        endpoint: &Endpoint,
        auth_token: &Secret,
        node_id: &str,
    ) -> Result<bool>;

    /// The Developer SKU data-pod lookup, `POST /api/connection`.
    async fn post_connection(&self, endpoint: &Endpoint, body: &Secret) -> Result<Endpoint>;

    /// Opens the WebSocket at `url` (which carries the one-time token: never log it).
    async fn open_websocket(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        options: &WsOptions,
    ) -> Result<Transport>;
}

/// [`BastionApi`] over the pooled HTTPS transport.
pub(crate) struct HttpsBastion {
    http: HttpsClient,
    upgrade: UpgradeConnection,
    warm: WarmConnections,
}

impl HttpsBastion {
    pub(crate) fn new(http: HttpsClient, upgrade: UpgradeConnection) -> Self {
        Self {
            http,
            upgrade,
            warm: WarmConnections::default(),
        }
    }

    /// The connection the upgrade goes on.
    async fn via(&self, endpoint: &Endpoint) -> Result<Via> {
        Ok(match self.upgrade {
            UpgradeConnection::Warm => Via::Connection(self.warm.take(&self.http, endpoint).await?),
            UpgradeConnection::Fresh => Via::Connection(self.http.open_connection(endpoint).await?),
            UpgradeConnection::Pooled => Via::Pool,
        })
    }
}

/// A warm connection is not used past this age (servers close idle connections; a fresh one
/// is cheaper than a failed upgrade).
const WARM_MAX_AGE: Duration = Duration::from_secs(30);

/// One connection per endpoint, opened ahead of need for the next WebSocket upgrade.
#[derive(Default)]
struct WarmConnections {
    slots: Mutex<HashMap<String, JoinHandle<Result<OpenConnection>>>>,
}

impl WarmConnections {
    /// Starts opening the endpoint's warm connection unless one is there or on its way.
    fn ensure(&self, http: &HttpsClient, endpoint: &Endpoint) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(endpoint.authority()).or_insert_with(|| {
            let http = http.clone();
            let endpoint = endpoint.clone();
            tokio::spawn(async move { http.open_connection(&endpoint).await })
        });
    }

    /// Takes the endpoint's warm connection (waiting for it if it is still opening, or opening
    /// one now if there is none or it went stale), and starts opening the next one.
    async fn take(&self, http: &HttpsClient, endpoint: &Endpoint) -> Result<OpenConnection> {
        let next = {
            let http = http.clone();
            let endpoint = endpoint.clone();
            tokio::spawn(async move { http.open_connection(&endpoint).await })
        };
        let taken = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(endpoint.authority(), next);
        if let Some(pending) = taken
            && let Ok(Ok(conn)) = pending.await
            && conn.is_fresh(WARM_MAX_AGE)
        {
            return Ok(conn);
        }
        http.open_connection(endpoint).await
    }
}

impl Drop for WarmConnections {
    fn drop(&mut self) {
        for (_, pending) in self
            .slots
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            pending.abort();
        }
    }
}

#[async_trait]
impl BastionApi for HttpsBastion {
    /// `POST /api/tokens`: exchanges the ARM token for a Bastion session. Success is status 200
    /// exactly; anything else is an [`Error::Http`] carrying the service's message.
    async fn post_token(&self, endpoint: &Endpoint, form: &Secret) -> Result<TokenResponse> {
        if self.upgrade == UpgradeConnection::Warm {
            // The upgrade's connection opens while the POST is on its way.
            self.warm.ensure(&self.http, endpoint);
        }
        let req = post_request(
            endpoint,
            protocol::TOKENS_PATH,
            "application/x-www-form-urlencoded",
            form,
        )?;
        let resp = self.http.send_with_retries(req).await?;
        if resp.status() != StatusCode::OK {
            return Err(http_error(Operation::TokenExchange, &resp));
        }
        match protocol::parse_token_response(resp.body()) {
            Ok(session) => Ok(session),
            Err(e) => {
                // A session was minted even though the reply is unusable: do not leak it.
                if let Some((auth_token, node_id)) = protocol::minted_session(resp.body()) {
                    let _ = self.delete_token(endpoint, &auth_token, &node_id).await;
                }
                Err(e.into())
            }
        }
    }

    /// `DELETE /api/tokens/{authToken}` with `X-Node-Id`. Returns `true` when deleted and `false`
    /// when the service says it was already gone (404).
    async fn delete_token(
        &self,
        endpoint: &Endpoint,
        auth_token: &Secret,
        node_id: &str,
    ) -> Result<bool> {
        let path = protocol::delete_path(auth_token);
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(format!("https://{}{}", endpoint.authority(), path.expose()))
            .header(protocol::NODE_ID_HEADER, node_id)
            .header(header::CONTENT_LENGTH, "0")
            .body(Bytes::new())
            .map_err(|e| Error::Config(format!("cannot build the delete request: {e}")))?;
        let resp = self.http.send(req).await?;
        match resp.status().as_u16() {
            200 | 204 => Ok(true),
            404 => Ok(false),
            _ => Err(http_error(Operation::DeleteSession, &resp)),
        }
    }

    /// The Developer SKU data-pod lookup, `POST /api/connection`.
    async fn post_connection(&self, endpoint: &Endpoint, body: &Secret) -> Result<Endpoint> {
        let req = post_request(
            endpoint,
            protocol::CONNECTION_PATH,
            "application/json",
            body,
        )?;
        let resp = self.http.send_with_retries(req).await?;
        if !resp.status().is_success() {
            return Err(http_error(Operation::DataPodLookup, &resp));
        }
        Ok(protocol::parse_connection_reply(resp.body())?)
    }

    async fn open_websocket(
        &self,
        endpoint: &Endpoint,
        url: &Url,
        options: &WsOptions,
    ) -> Result<Transport> {
        let limit = options.handshake_timeout;
        let open = async {
            let via = self.via(endpoint).await?;
            websocket::handshake(&self.http, endpoint, url, options, via).await
        };
        let ws = tokio::time::timeout(limit, open)
            .await
            .map_err(|_| Error::Timeout {
                what: "WebSocket connect (TCP + TLS + upgrade)",
                after: limit,
            })??;
        Ok(Box::new(ws))
    }
}

/// A POST of `body` to `path` on the endpoint.
fn post_request(
    endpoint: &Endpoint,
    path: &str,
    content_type: &str,
    body: &Secret,
) -> Result<Request<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(format!("https://{}{path}", endpoint.authority()))
        .header(header::ACCEPT, "*/*")
        .header(header::CONTENT_TYPE, content_type)
        .body(Bytes::copy_from_slice(body.expose().as_bytes()))
        .map_err(|e| Error::Config(format!("cannot build the request to {path}: {e}")))
}
