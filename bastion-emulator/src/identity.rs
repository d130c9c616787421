//! An Entra ID token issuer for the credentials that speak HTTP (see
//! docs/arm-and-aks.md#identity-emulator): the client-credentials grant of
//! `POST /{tenant}/oauth2/v2.0/token` over HTTPS (a client secret, or a client assertion for
//! workload identity), and an App Service style managed-identity endpoint over plain http on
//! loopback (`GET /msi/token?resource=…`, with the `X-IDENTITY-HEADER` secret).
//!
//! Each token is a test JWT (see [`crate::jwt`]) whose `aud` follows the scope asked for, as
//! Entra ID sets it: the ARM scope gives an ARM audience, the AKS scope
//! (`6dae42f8-…/.default`) the AKS server's app id. So the ARM emulator accepts the first and
//! refuses the second, and an AAD cluster's API server the other way round.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use url::Url;

use crate::jwt::{TestClaims, audience_for_scope};
use crate::respond::{self, Resp};
use crate::server::{Handler, HandlerFuture, Req, TlsServer};
use crate::{EmulatorError, TestCa};

/// The host name of the Entra ID endpoint (resolve it to loopback).
pub const DEFAULT_LOGIN_HOST: &str = "login.emulator.test";

/// The secret the managed-identity endpoint expects in `X-IDENTITY-HEADER` (the
/// `IDENTITY_HEADER` variable of App Service); not a secret in the emulator.
pub const IDENTITY_HEADER: &str = "emulator-identity-header";

/// The default lifetime of the tokens issued.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// A service principal with a client secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecretApp {
    /// The tenant it lives in.
    pub tenant: String,
    /// Its client (application) id.
    pub client_id: String,
    /// Its secret.
    pub secret: String,
    /// The object id its tokens carry (the ARM principal).
    pub oid: String,
}

impl std::fmt::Debug for ClientSecretApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecretApp")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("oid", &self.oid)
            .finish_non_exhaustive()
    }
}

/// An application trusting a federated (workload identity) token.
#[derive(Clone, PartialEq, Eq)]
pub struct FederatedApp {
    /// The tenant it lives in.
    pub tenant: String,
    /// Its client (application) id.
    pub client_id: String,
    /// The client assertion accepted (the content of the projected service-account token).
    pub assertion: String,
    /// The object id its tokens carry.
    pub oid: String,
}

impl std::fmt::Debug for FederatedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedApp")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("oid", &self.oid)
            .finish_non_exhaustive()
    }
}

/// A managed identity the local endpoint hands out tokens for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedIdentity {
    /// The tenant.
    pub tenant: String,
    /// The client id of a user-assigned identity; `None` for the system-assigned one.
    pub client_id: Option<String>,
    /// The object id its tokens carry.
    pub oid: String,
}

/// Which grant a token request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantKind {
    /// Client credentials with a client secret.
    ClientSecret,
    /// Client credentials with a client assertion (workload identity).
    ClientAssertion,
    /// The managed-identity endpoint.
    ManagedIdentity,
    /// Anything else (malformed requests).
    Other,
}

/// One token request the issuer answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The grant.
    pub kind: GrantKind,
    /// The client id asked for (`None`: the system-assigned identity or none given).
    pub client_id: Option<String>,
    /// The scope (or the managed-identity `resource`).
    pub scope: String,
    /// The status answered.
    pub status: u16,
    /// The audience of the token issued, when one was.
    pub audience: Option<String>,
}

#[derive(Debug)]
struct IdentityState {
    apps: Mutex<Vec<ClientSecretApp>>,
    federated: Mutex<Vec<FederatedApp>>,
    identities: Mutex<Vec<ManagedIdentity>>,
    ttl: Mutex<Duration>,
    log: Mutex<Vec<TokenRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running token issuer: Entra ID over HTTPS and a managed-identity endpoint over http.
/// Dropping it stops both.
#[derive(Debug)]
pub struct IdentityEmulator {
    login: TlsServer,
    msi: TlsServer,
    host: String,
    authority: Url,
    state: Arc<IdentityState>,
}

/// The Entra ID side (HTTPS).
struct Login(Arc<IdentityState>);
/// The managed-identity side (plain http on loopback).
struct Msi(Arc<IdentityState>);

impl IdentityEmulator {
    /// Starts both endpoints on loopback; the HTTPS one with a certificate for
    /// [`DEFAULT_LOGIN_HOST`] from `ca`.
    pub async fn start(ca: &TestCa) -> Result<IdentityEmulator, EmulatorError> {
        let host = DEFAULT_LOGIN_HOST.to_owned();
        let tls = ca.server_config(&[host.clone(), "localhost".into(), "127.0.0.1".into()])?;
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
        let state = Arc::new(IdentityState {
            apps: Mutex::new(Vec::new()),
            federated: Mutex::new(Vec::new()),
            identities: Mutex::new(Vec::new()),
            ttl: Mutex::new(DEFAULT_TOKEN_TTL),
            log: Mutex::new(Vec::new()),
        });
        let login = TlsServer::spawn(
            TcpListener::bind(loopback).await?,
            tls,
            Arc::new(Login(state.clone())),
        )?;
        let msi = TlsServer::spawn_plain(
            TcpListener::bind(loopback).await?,
            Arc::new(Msi(state.clone())),
        )?;
        let authority = Url::parse(&format!("https://{host}:{}", login.addr().port()))
            .map_err(|e| EmulatorError::Config(format!("bad identity emulator host: {e}")))?;
        Ok(IdentityEmulator {
            login,
            msi,
            host,
            authority,
            state,
        })
    }

    /// The authority host (`https://login.emulator.test:{port}`): `AZURE_AUTHORITY_HOST`.
    pub fn authority(&self) -> Url {
        self.authority.clone()
    }

    /// The managed-identity endpoint (`http://127.0.0.1:{port}/msi/token`): `IDENTITY_ENDPOINT`.
    pub fn identity_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/msi/token", self.msi.addr().port())
    }

    /// The Entra host name → loopback, for the client's resolve overrides.
    pub fn resolve(&self) -> Vec<(String, IpAddr)> {
        vec![(self.host.clone(), self.login.addr().ip())]
    }

    /// Registers a service principal with a client secret.
    pub fn add_client_secret_app(&self, app: ClientSecretApp) {
        let mut apps = lock(&self.state.apps);
        apps.retain(|a| a.client_id != app.client_id);
        apps.push(app);
    }

    /// Registers an application that trusts the federated token `assertion`.
    pub fn add_federated_app(&self, app: FederatedApp) {
        let mut apps = lock(&self.state.federated);
        apps.retain(|a| a.client_id != app.client_id);
        apps.push(app);
    }

    /// Registers a managed identity of this "machine".
    pub fn add_managed_identity(&self, identity: ManagedIdentity) {
        let mut ids = lock(&self.state.identities);
        ids.retain(|i| i.client_id != identity.client_id);
        ids.push(identity);
    }

    /// Sets the lifetime of the tokens issued from now on.
    pub fn set_token_ttl(&self, ttl: Duration) {
        *lock(&self.state.ttl) = ttl;
    }

    /// Every token request answered so far.
    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }
}

impl IdentityState {
    fn issue(&self, tenant: &str, oid: &str, scope: &str) -> (String, String, u64) {
        let ttl = *lock(&self.ttl);
        let aud = audience_for_scope(scope);
        let token = TestClaims::new(tenant, oid)
            .audience(aud.clone())
            .expires_in(ttl)
            .mint();
        (token, aud, ttl.as_secs())
    }

    fn record(&self, kind: GrantKind, client_id: Option<String>, scope: &str, status: u16) {
        self.record_issued(kind, client_id, scope, status, None);
    }

    fn record_issued(
        &self,
        kind: GrantKind,
        client_id: Option<String>,
        scope: &str,
        status: u16,
        audience: Option<String>,
    ) {
        lock(&self.log).push(TokenRequest {
            kind,
            client_id,
            scope: scope.to_owned(),
            status,
            audience,
        });
    }
}

/// An Entra ID error body (`error`, `error_description` with an AADSTS code, `error_codes`).
fn entra_error(status: u16, error: &str, code: u32, description: &str) -> Resp {
    respond::json(
        status,
        &json!({
            "error": error,
            "error_description": format!("AADSTS{code}: {description}"),
            "error_codes": [code],
            "timestamp": "2026-01-01 00:00:00Z",
            "trace_id": "00000000-0000-0000-0000-000000000000",
            "correlation_id": "00000000-0000-0000-0000-000000000000",
        }),
    )
}

impl Handler for Login {
    fn handle(self: Arc<Self>, req: Req, _peer: SocketAddr) -> HandlerFuture {
        Box::pin(async move { Some(self.serve(&req)) })
    }
}

impl Login {
    fn serve(&self, req: &Req) -> Resp {
        let state = &self.0;
        let segs: Vec<&str> = req
            .uri()
            .path()
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let tenant = match segs.as_slice() {
            [tenant, "oauth2", "v2.0", "token"] if req.method() == http::Method::POST => *tenant,
            _ => {
                state.record(GrantKind::Other, None, "", 404);
                return entra_error(404, "invalid_request", 90002, "no such endpoint");
            }
        };
        let form: Vec<(String, String)> = url::form_urlencoded::parse(req.body())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let field = |k: &str| {
            form.iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.as_str())
        };
        let scope = field("scope").unwrap_or_default().to_owned();
        let client_id = field("client_id").map(str::to_owned);
        let kind = if field("client_secret").is_some() {
            GrantKind::ClientSecret
        } else if field("client_assertion").is_some() {
            GrantKind::ClientAssertion
        } else {
            GrantKind::Other
        };
        let fail = |status: u16, error: &str, code: u32, text: &str| {
            state.record(kind, client_id.clone(), &scope, status);
            entra_error(status, error, code, text)
        };
        if field("grant_type") != Some("client_credentials") {
            return fail(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            );
        }
        let scopes: Vec<&str> = scope.split_whitespace().collect();
        if scopes.len() != 1 || !scopes[0].ends_with("/.default") {
            return fail(
                400,
                "invalid_scope",
                1002012,
                "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
            );
        }
        let Some(cid) = client_id.clone() else {
            return fail(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            );
        };
        let found = match kind {
            GrantKind::ClientSecret => {
                let apps = lock(&state.apps);
                match apps
                    .iter()
                    .find(|a| a.client_id == cid && a.tenant == tenant)
                {
                    None => None,
                    Some(a) if Some(a.secret.as_str()) != field("client_secret") => {
                        drop(apps);
                        return fail(
                            401,
                            "invalid_client",
                            7000215,
                            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                        );
                    }
                    Some(a) => Some((a.tenant.clone(), a.oid.clone())),
                }
            }
            GrantKind::ClientAssertion => {
                let apps = lock(&state.federated);
                match apps
                    .iter()
                    .find(|a| a.client_id == cid && a.tenant == tenant)
                {
                    None => None,
                    Some(a) if Some(a.assertion.as_str()) != field("client_assertion") => {
                        drop(apps);
                        return fail(
                            400,
                            "invalid_client",
                            700213,
                            "No matching federated identity record found for presented assertion.",
                        );
                    }
                    Some(a) => Some((a.tenant.clone(), a.oid.clone())),
                }
            }
            _ => {
                return fail(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'client_assertion', 'client_secret' or 'client_certificate'.",
                );
            }
        };
        let Some((tenant, oid)) = found else {
            return fail(
                400,
                "unauthorized_client",
                700016,
                &format!(
                    "Application with identifier '{cid}' was not found in the directory '{tenant}'."
                ),
            );
        };
        let (token, aud, ttl) = state.issue(&tenant, &oid, scopes[0]);
        state.record_issued(kind, Some(cid), &scope, 200, Some(aud));
        respond::json(
            200,
            &json!({
                "token_type": "Bearer",
                "expires_in": ttl,
                "ext_expires_in": ttl,
                "access_token": token,
            }),
        )
    }
}

impl Handler for Msi {
    fn handle(self: Arc<Self>, req: Req, peer: SocketAddr) -> HandlerFuture {
        Box::pin(async move { Some(self.serve(&req, peer)) })
    }
}

impl Msi {
    fn serve(&self, req: &Req, peer: SocketAddr) -> Resp {
        let state = &self.0;
        let resource = respond::query_param(req.uri(), "resource").unwrap_or_default();
        let client_id = respond::query_param(req.uri(), "client_id");
        let fail = |status: u16, message: &str| {
            state.record(
                GrantKind::ManagedIdentity,
                client_id.clone(),
                &resource,
                status,
            );
            respond::json(status, &json!({ "statusCode": status, "message": message }))
        };
        if !peer.ip().is_loopback() {
            return fail(403, "the identity endpoint answers this machine only");
        }
        if req.uri().path() != "/msi/token" || req.method() != http::Method::GET {
            return fail(404, "no such endpoint");
        }
        let header = req
            .headers()
            .get("x-identity-header")
            .and_then(|v| v.to_str().ok());
        if header != Some(IDENTITY_HEADER) {
            return fail(401, "missing or wrong X-IDENTITY-HEADER");
        }
        if resource.is_empty() {
            return fail(400, "the resource parameter is required");
        }
        let identity = lock(&state.identities)
            .iter()
            .find(|i| i.client_id == client_id)
            .cloned();
        let Some(identity) = identity else {
            return fail(
                400,
                "No managed identity found for the specified ClientId/ResourceId/PrincipalId.",
            );
        };
        // The endpoint takes a v1 resource: the audience is the resource itself.
        let (token, aud, ttl) = state.issue(&identity.tenant, &identity.oid, &resource);
        state.record_issued(
            GrantKind::ManagedIdentity,
            client_id.clone(),
            &resource,
            200,
            Some(aud),
        );
        let expires_on = time::OffsetDateTime::now_utc().unix_timestamp()
            + i64::try_from(ttl).unwrap_or(i64::MAX / 2);
        respond::json(
            200,
            &json!({
                "access_token": token,
                "expires_on": expires_on.to_string(),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": identity.client_id.unwrap_or_default(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{AKS_SERVER_APP_ID, decode, is_aks_audience, is_arm_audience};

    fn state() -> IdentityState {
        IdentityState {
            apps: Mutex::new(Vec::new()),
            federated: Mutex::new(Vec::new()),
            identities: Mutex::new(Vec::new()),
            ttl: Mutex::new(DEFAULT_TOKEN_TTL),
            log: Mutex::new(Vec::new()),
        }
    }

    #[test]
    fn tokens_carry_the_audience_of_their_scope() {
        let s = state();
        let (arm, aud, _) = s.issue("t", "o", "https://management.azure.com/.default");
        assert!(is_arm_audience(&aud));
        assert!(is_arm_audience(&decode(&arm).unwrap().aud));
        let (aks, aud, ttl) = s.issue("t", "o", &format!("{AKS_SERVER_APP_ID}/.default"));
        assert!(is_aks_audience(&aud));
        let claims = decode(&aks).unwrap();
        assert_eq!(claims.aud, AKS_SERVER_APP_ID);
        assert_eq!(claims.oid, "o");
        assert_eq!(ttl, 3600);
    }
}
