//! The ARM emulator: an HTTPS server answering the reads bastion makes (see
//! docs/arm-and-aks.md#arm-emulator), with authentication, role-based authorization driven by
//! one assignment table, paging, fault injection and a request log.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::jwt::{self, TestClaims};
use crate::{EmulatorError, TestCa};
use base64::Engine as _;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use url::Url;

use super::faults::{self, Fault, FaultKind};
use super::fixtures::{CredentialKind, Fixtures, kubeconfig_for_format};
use crate::respond::{self, Resp};
use crate::server::{Handler, HandlerFuture, Reply, Req, TlsServer};
use bastion_arm::{ArmClientConfig, Cloud, ResourceId, ResourceScope};
use bastion_core::{HttpsConfig, RetryPolicy};

/// The host name the emulator's endpoint uses by default (resolved to loopback by overrides).
pub const DEFAULT_ARM_HOST: &str = "management.emulator.test";

/// How to start an [`ArmEmulator`].
#[derive(Debug, Clone)]
pub struct ArmEmulatorConfig {
    /// Names in the server certificate; the first is the endpoint's host. IP literals are fine.
    pub host_names: Vec<String>,
    /// Where to listen (loopback, port 0 by default).
    pub bind: SocketAddr,
    /// Items per list page; `None` returns every item on one page.
    pub page_size: Option<usize>,
}

impl Default for ArmEmulatorConfig {
    fn default() -> Self {
        ArmEmulatorConfig {
            host_names: vec![
                DEFAULT_ARM_HOST.to_owned(),
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
            ],
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            page_size: None,
        }
    }
}

/// One request the emulator answered (or dropped), for assertions on call order, the
/// subscription used, retries, and the absence of writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path as sent.
    pub path: String,
    /// The query string as sent.
    pub query: String,
    /// The `api-version` parameter.
    pub api_version: Option<String>,
    /// The `oid` of the bearer token, if it decoded.
    pub principal: Option<String>,
    /// The subscription in the path, if any.
    pub subscription: Option<String>,
    /// The status answered; `0` when the connection was dropped.
    pub status: u16,
    /// `x-ms-client-request-id` as sent.
    pub client_request_id: Option<String>,
}

#[derive(Debug, Default)]
struct Knobs {
    faults: Vec<Fault>,
    page_size: Option<usize>,
    bare_errors: bool,
    api_versions: Vec<(String, Vec<String>)>,
}

#[derive(Debug)]
struct ArmState {
    fixtures: RwLock<Fixtures>,
    initial: Fixtures,
    knobs: Mutex<Knobs>,
    log: Mutex<Vec<RequestRecord>>,
    ca_pem: String,
    host: String,
    endpoint: Url,
    default_page_size: Option<usize>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

/// A running ARM emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct ArmEmulator {
    server: TlsServer,
    state: Arc<ArmState>,
}

impl ArmEmulator {
    /// Starts an emulator with the default configuration.
    pub async fn start(ca: &TestCa, fixtures: Fixtures) -> Result<ArmEmulator, EmulatorError> {
        Self::start_with(ca, fixtures, ArmEmulatorConfig::default()).await
    }

    /// Starts an emulator.
    pub async fn start_with(
        ca: &TestCa,
        fixtures: Fixtures,
        config: ArmEmulatorConfig,
    ) -> Result<ArmEmulator, EmulatorError> {
        let host =
            config.host_names.first().cloned().ok_or_else(|| {
                EmulatorError::Config("the ARM emulator needs a host name".into())
            })?;
        let tls = ca.server_config(&config.host_names)?;
        let listener = TcpListener::bind(config.bind).await?;
        let port = listener.local_addr()?.port();
        let endpoint = Url::parse(&format!("https://{}:{port}/", url_host(&host)))
            .map_err(|e| EmulatorError::Config(format!("bad ARM emulator host {host:?}: {e}")))?;
        let state = Arc::new(ArmState {
            fixtures: RwLock::new(fixtures.clone()),
            initial: fixtures,
            knobs: Mutex::new(Knobs {
                page_size: config.page_size,
                ..Knobs::default()
            }),
            log: Mutex::new(Vec::new()),
            ca_pem: ca.ca_pem(),
            host,
            endpoint,
            default_page_size: config.page_size,
        });
        let server = TlsServer::spawn(listener, tls, state.clone())?;
        Ok(ArmEmulator { server, state })
    }

    /// The listening address (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The endpoint host name.
    pub fn host(&self) -> &str {
        &self.state.host
    }

    /// The ARM endpoint: `https://{host}:{port}/`.
    pub fn endpoint(&self) -> Url {
        self.state.endpoint.clone()
    }

    /// Resolve overrides sending the endpoint host to loopback (empty when it is an IP).
    pub fn resolve(&self) -> Vec<(String, IpAddr)> {
        if self.state.host.parse::<IpAddr>().is_ok() {
            Vec::new()
        } else {
            vec![(self.state.host.clone(), self.addr().ip())]
        }
    }

    /// The CA certificate (PEM) the server certificate chains to.
    pub fn ca_pem(&self) -> &str {
        &self.state.ca_pem
    }

    /// An [`ArmClientConfig`] for this emulator: custom cloud, the test CA, resolve overrides and
    /// quick retries.
    pub fn client_config(&self) -> ArmClientConfig {
        ArmClientConfig {
            cloud: Cloud::custom(self.endpoint()),
            https: HttpsConfig {
                extra_root_ca_pem: Some(self.state.ca_pem.clone().into_bytes()),
                resolve: self.resolve(),
                connect_timeout: Duration::from_secs(5),
                request_timeout: Duration::from_secs(20),
                ..HttpsConfig::default()
            },
            retry: RetryPolicy {
                max_retries: 3,
                initial_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
                max_retry_after: Duration::from_secs(5),
                max_total: Duration::from_secs(30),
                ..ArmClientConfig::default_retry()
            },
            ..ArmClientConfig::default()
        }
    }

    /// A valid ARM token for a principal of the fixtures (its home tenant, one hour).
    pub fn token_for(&self, oid: &str) -> Option<String> {
        let fixtures = read(&self.state.fixtures);
        let p = fixtures.find_principal(oid)?;
        let mut claims = TestClaims::new(p.tenant.clone(), p.oid.clone());
        if let Some(upn) = &p.upn {
            claims = claims.upn(upn.clone());
        }
        Some(claims.mint())
    }

    /// Every request answered since the start or the last reset.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.state.log).clone()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        lock(&self.state.log).clear();
    }

    /// Back to the starting state: fixtures as started, no faults, default knobs, empty log.
    pub fn reset(&self) {
        self.state.reset();
    }

    /// Adds a fault (faults are checked in the order added).
    pub fn inject(&self, fault: Fault) {
        lock(&self.state.knobs).faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state.knobs).faults.clear();
    }

    /// Items per list page (`None`: one page).
    pub fn set_page_size(&self, size: Option<usize>) {
        lock(&self.state.knobs).page_size = size.map(|s| s.max(1));
    }

    /// Answer errors with the bare inner object instead of `{"error":{…}}`.
    pub fn set_bare_errors(&self, bare: bool) {
        lock(&self.state.knobs).bare_errors = bare;
    }

    /// Accept only `versions` for `resource_type` (`Microsoft.Network/bastionHosts`,
    /// `Microsoft.Authorization/permissions`, …); others get 400 `InvalidApiVersionParameter`.
    pub fn allow_api_versions(&self, resource_type: &str, versions: &[&str]) {
        let key = resource_type.to_ascii_lowercase();
        let mut knobs = lock(&self.state.knobs);
        knobs.api_versions.retain(|(k, _)| *k != key);
        knobs
            .api_versions
            .push((key, versions.iter().map(|v| (*v).to_owned()).collect()));
    }

    /// Reads or changes the fixtures while running.
    pub fn with_fixtures<R>(&self, f: impl FnOnce(&mut Fixtures) -> R) -> R {
        f(&mut write(&self.state.fixtures))
    }

    /// A copy of the current fixtures.
    pub fn fixtures(&self) -> Fixtures {
        read(&self.state.fixtures).clone()
    }
}

/// `[v6]` for IPv6 literals, the text otherwise.
fn url_host(host: &str) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("[{host}]"),
        _ => host.to_owned(),
    }
}

/// A supported resource type.
#[derive(Debug)]
struct ResourceType {
    /// Lowercase `namespace/type[/child]`.
    key: &'static str,
    /// Canonical casing, used in action names.
    canonical: &'static str,
}

const TYPES: &[ResourceType] = &[
    ResourceType {
        key: "microsoft.network/bastionhosts",
        canonical: "Microsoft.Network/bastionHosts",
    },
    ResourceType {
        key: "microsoft.network/virtualnetworks",
        canonical: "Microsoft.Network/virtualNetworks",
    },
    ResourceType {
        key: "microsoft.network/publicipaddresses",
        canonical: "Microsoft.Network/publicIPAddresses",
    },
    ResourceType {
        key: "microsoft.network/privatednszones",
        canonical: "Microsoft.Network/privateDnsZones",
    },
    ResourceType {
        key: "microsoft.network/privatednszones/virtualnetworklinks",
        canonical: "Microsoft.Network/privateDnsZones/virtualNetworkLinks",
    },
    ResourceType {
        key: "microsoft.containerservice/managedclusters",
        canonical: "Microsoft.ContainerService/managedClusters",
    },
];

const PERMISSIONS_TYPE: &str = "microsoft.authorization/permissions";

#[derive(Debug)]
enum Route {
    Permissions {
        scope: ResourceId,
    },
    Get {
        id: ResourceId,
        ty: &'static ResourceType,
    },
    List {
        parent: ResourceId,
        ty: &'static ResourceType,
    },
    Credential {
        cluster: ResourceId,
        kind: CredentialKind,
    },
}

impl Route {
    fn type_key(&self) -> &str {
        match self {
            Route::Permissions { .. } => PERMISSIONS_TYPE,
            Route::Get { ty, .. } | Route::List { ty, .. } => ty.key,
            Route::Credential { .. } => "microsoft.containerservice/managedclusters",
        }
    }
}

/// An error answer: status, ARM code, message.
#[derive(Debug)]
struct Fail(u16, &'static str, String);

fn invalid_type(ns: &str, types: &str, api_version: &str) -> Fail {
    Fail(
        404,
        "InvalidResourceType",
        format!(
            "The resource type '{types}' could not be found in the namespace '{ns}' for api version '{api_version}'."
        ),
    )
}

fn join_id(segs: &[String]) -> Result<ResourceId, Fail> {
    ResourceId::parse(&format!("/{}", segs.join("/")))
        .map_err(|e| Fail(400, "InvalidResourceId", e.to_string()))
}

fn parse_route(method: &str, segs: &[String], api_version: &str) -> Result<Route, Fail> {
    let lc: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let n = segs.len();
    let unsupported = || {
        Fail(
            404,
            "InvalidResourceType",
            format!(
                "The emulator does not serve '/{}' for api version '{api_version}'.",
                segs.join("/")
            ),
        )
    };
    if n < 2 || lc[0] != "subscriptions" {
        return Err(unsupported());
    }
    if n >= 5 && lc[n - 3] == "providers" && lc[n - 2] == "microsoft.authorization" {
        if lc[n - 1] != "permissions" {
            return Err(invalid_type(&segs[n - 2], &segs[n - 1], api_version));
        }
        if method != "GET" {
            return Err(write_refused(method));
        }
        return Ok(Route::Permissions {
            scope: join_id(&segs[..n - 3])?,
        });
    }
    let p = if n >= 4 && lc[2] == "resourcegroups" {
        4
    } else {
        2
    };
    if n <= p + 1 || lc[p] != "providers" {
        return Err(unsupported());
    }
    let ns = &segs[p + 1];
    let mut rest: Vec<&String> = segs[p + 2..].iter().collect();
    let mut action = None;
    if method == "POST" {
        action = rest.pop().map(|a| a.to_ascii_lowercase());
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(write_refused(method));
        }
    }
    if rest.is_empty() {
        return Err(unsupported());
    }
    let types: Vec<String> = rest
        .iter()
        .step_by(2)
        .map(|t| t.to_ascii_lowercase())
        .collect();
    let key = format!("{}/{}", ns.to_ascii_lowercase(), types.join("/"));
    let ty = TYPES
        .iter()
        .find(|t| t.key == key)
        .ok_or_else(|| invalid_type(ns, &types.join("/"), api_version))?;
    if let Some(action) = action {
        let kind = match (ty.key, action.as_str()) {
            ("microsoft.containerservice/managedclusters", "listclusterusercredential") => {
                CredentialKind::User
            }
            ("microsoft.containerservice/managedclusters", "listclusteradmincredential") => {
                CredentialKind::Admin
            }
            _ => return Err(write_refused(method)),
        };
        return Ok(Route::Credential {
            cluster: join_id(&segs[..n - 1])?,
            kind,
        });
    }
    if rest.len().is_multiple_of(2) {
        Ok(Route::Get {
            id: join_id(segs)?,
            ty,
        })
    } else {
        Ok(Route::List {
            parent: if n - 1 == p + 2 {
                // `/subscriptions/{s}[/resourceGroups/{rg}]/providers/{ns}/{type}`
                join_id(&segs[..p])?
            } else {
                join_id(&segs[..n - 1])?
            },
            ty,
        })
    }
}

fn write_refused(method: &str) -> Fail {
    Fail(
        405,
        "MethodNotAllowed",
        format!("The ARM emulator is read-only: {method} is not allowed on this route."),
    )
}

/// Decodes `%XX` escapes (ids seldom have any); an invalid escape is kept as written.
fn percent_decode(s: &str) -> String {
    respond::percent_decode(s).unwrap_or_else(|| s.to_owned())
}

const SKIP_PREFIX: &str = "emulator-page:";

fn encode_skip(offset: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{SKIP_PREFIX}{offset}"))
}

fn decode_skip(token: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix(SKIP_PREFIX)?
        .parse()
        .ok()
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// What a request carries, for routing and the log.
struct Incoming<'a> {
    method: &'a str,
    segs: Vec<String>,
    path: &'a str,
    query: Vec<(String, String)>,
    host: String,
    claims: Result<TestClaims, Fail>,
}

impl Incoming<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn authenticate(headers: &http::HeaderMap) -> Result<TestClaims, Fail> {
    let value = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            token.trim()
        }
        _ => {
            return Err(Fail(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.".into(),
            ));
        }
    };
    let claims = jwt::decode(token).map_err(|_| {
        Fail(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.".into(),
        )
    })?;
    if !jwt::is_arm_audience(&claims.aud) {
        return Err(Fail(
            401,
            "InvalidAuthenticationTokenAudience",
            format!(
                "The access token has been obtained for wrong audience or resource '{}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'.",
                claims.aud
            ),
        ));
    }
    if !claims.is_unexpired() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        return Err(Fail(
            401,
            "ExpiredAuthenticationToken",
            format!(
                "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                rfc3339(claims.exp),
                rfc3339(now)
            ),
        ));
    }
    Ok(claims)
}

impl Handler for ArmState {
    fn handle(self: Arc<Self>, req: Req, _peer: SocketAddr) -> HandlerFuture {
        Box::pin(async move { self.serve(req).await })
    }
}

impl ArmState {
    fn reset(&self) {
        *write(&self.fixtures) = self.initial.clone();
        *lock(&self.knobs) = Knobs {
            page_size: self.default_page_size,
            ..Knobs::default()
        };
        lock(&self.log).clear();
    }

    fn error(&self, fail: Fail) -> Resp {
        let Fail(status, code, message) = fail;
        self.error_parts(status, code, &message)
    }

    fn error_parts(&self, status: u16, code: &str, message: &str) -> Resp {
        let inner = json!({ "code": code, "message": message });
        let body = if lock(&self.knobs).bare_errors {
            inner
        } else {
            json!({ "error": inner })
        };
        let mut resp = respond::json(status, &body);
        if status == 401 {
            let challenge = format!(
                "Bearer authorization_uri=\"https://login.microsoftonline.com/common\", error=\"invalid_token\", error_description=\"{code}\""
            );
            if let Ok(v) = http::HeaderValue::from_str(&challenge) {
                resp.headers_mut().insert(http::header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }

    fn control(&self, method: &str, path: &str) -> Resp {
        match (method, path.trim_end_matches('/')) {
            ("GET", "/_emulator/requests") => {
                let log = lock(&self.log).clone();
                respond::json(200, &serde_json::to_value(log).unwrap_or(Value::Null))
            }
            ("POST", "/_emulator/reset") => {
                self.reset();
                respond::json(200, &json!({ "reset": true }))
            }
            _ => self.error(Fail(
                404,
                "NotFound",
                format!("no emulator control route {path}"),
            )),
        }
    }

    async fn serve(&self, req: Req) -> Reply {
        let path = req.uri().path().to_owned();
        let method = req.method().as_str().to_ascii_uppercase();
        if path.starts_with("/_emulator/") {
            return Some(self.control(&method, &path));
        }
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        let incoming = Incoming {
            method: &method,
            segs: path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(percent_decode)
                .collect(),
            path: &path,
            query: url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect(),
            host: req
                .headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
                .unwrap_or_else(|| self.host.clone()),
            claims: authenticate(req.headers()),
        };
        let principal = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .and_then(|(_, t)| jwt::decode(t.trim()).ok())
            .map(|c| c.oid);
        let mut record = RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: raw_query.clone(),
            api_version: incoming.param("api-version").map(str::to_owned),
            principal,
            subscription: match incoming.segs.as_slice() {
                [first, sub, ..] if first.eq_ignore_ascii_case("subscriptions") => {
                    Some(sub.clone())
                }
                _ => None,
            },
            status: 0,
            client_request_id: req
                .headers()
                .get("x-ms-client-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        };

        let path_lower = path.to_ascii_lowercase();
        let (delay, fault) = faults::take(&mut lock(&self.knobs).faults, &method, &path_lower);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let response = match fault {
            Some(FaultKind::ResetConnection) => None,
            Some(kind) => Some(self.fault_response(kind)),
            None => Some(self.route(&incoming)),
        };
        record.status = response.as_ref().map_or(0, |r| r.status().as_u16());
        lock(&self.log).push(record);
        response.map(|mut r| {
            let headers = r.headers_mut();
            for name in ["x-ms-request-id", "x-ms-correlation-request-id"] {
                if let Ok(v) = http::HeaderValue::from_str(&crate::ids::guid(&mut rand::rng())) {
                    headers.insert(name, v);
                }
            }
            r
        })
    }

    fn fault_response(&self, kind: FaultKind) -> Resp {
        match kind {
            FaultKind::Error {
                status,
                code,
                message,
            } => self.error_parts(status, &code, &message),
            FaultKind::Throttle { retry_after } => {
                let mut resp = self.error(Fail(
                    429,
                    "TooManyRequests",
                    "The request is being throttled as the limit has been reached for operation type - Read_ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits".into(),
                ));
                if let Ok(v) = http::HeaderValue::from_str(&retry_after.as_secs().to_string()) {
                    resp.headers_mut().insert(http::header::RETRY_AFTER, v);
                }
                resp
            }
            FaultKind::MalformedJson => respond::with_body(
                200,
                "application/json; charset=utf-8",
                Bytes::from_static(b"{\"value\": [ {\"id\": \"/subscriptions/"),
            ),
            FaultKind::Latency(_) | FaultKind::ResetConnection => {
                self.error(Fail(500, "InternalServerError", "unexpected fault".into()))
            }
        }
    }

    fn route(&self, inc: &Incoming<'_>) -> Resp {
        match self.route_inner(inc) {
            Ok(resp) => resp,
            Err(fail) => self.error(fail),
        }
    }

    fn route_inner(&self, inc: &Incoming<'_>) -> Result<Resp, Fail> {
        if inc.method != "GET" && inc.method != "POST" {
            return Err(write_refused(inc.method));
        }
        let claims = match &inc.claims {
            Ok(c) => c,
            Err(Fail(s, c, m)) => return Err(Fail(*s, c, m.clone())),
        };
        let api_version = inc.param("api-version").ok_or_else(|| {
            Fail(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests."
                    .into(),
            )
        })?;
        let route = parse_route(inc.method, &inc.segs, api_version)?;
        self.check_api_version(&route, api_version)?;

        let fixtures = read(&self.fixtures);
        let sub_id = inc.segs.get(1).cloned().unwrap_or_default();
        let sub = fixtures.find_subscription(&sub_id).ok_or_else(|| {
            Fail(
                404,
                "SubscriptionNotFound",
                format!("The subscription '{sub_id}' could not be found."),
            )
        })?;
        if !sub.tenant.eq_ignore_ascii_case(&claims.tid) {
            return Err(Fail(
                401,
                "InvalidAuthenticationTokenTenant",
                format!(
                    "The access token is from the wrong issuer 'https://sts.windows.net/{}/'. It must match the tenant 'https://sts.windows.net/{}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{}' to get the token. Note, if the subscription is transferred to another tenant there is no impact to the services, but information about new tenant could take time to propagate (up to an hour). If you just transferred your subscription and see this error message, please try back later.",
                    claims.tid, sub.tenant, sub.tenant
                ),
            ));
        }

        let (action, scope) = match &route {
            Route::Permissions { .. } => (None, None),
            Route::Get { id, ty } => (Some(format!("{}/read", ty.canonical)), Some(id)),
            Route::List { parent, ty } => (Some(format!("{}/read", ty.canonical)), Some(parent)),
            Route::Credential { cluster, kind } => (
                Some(match kind {
                    CredentialKind::User => "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action".to_owned(),
                    CredentialKind::Admin => "Microsoft.ContainerService/managedClusters/listClusterAdminCredential/action".to_owned(),
                }),
                Some(cluster),
            ),
        };
        if let (Some(action), Some(scope)) = (action, scope)
            && !fixtures.is_allowed(&claims.oid, &action, scope)
        {
            let client = fixtures
                .find_principal(&claims.oid)
                .and_then(|p| p.upn.clone())
                .or_else(|| claims.upn.clone())
                .unwrap_or_else(|| claims.oid.clone());
            return Err(Fail(
                403,
                "AuthorizationFailed",
                format!(
                    "The client '{client}' with object id '{}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
                    claims.oid
                ),
            ));
        }

        match route {
            Route::Permissions { scope } => {
                check_group(&fixtures, &scope)?;
                let items: Vec<Value> = fixtures
                    .permissions_at(&claims.oid, &scope)
                    .into_iter()
                    .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
                    .collect();
                self.page(items, inc, api_version)
            }
            Route::Get { id, .. } => {
                check_group(&fixtures, &id)?;
                check_parent(&fixtures, &id)?;
                match fixtures.find(&id) {
                    Some(doc) => Ok(respond::json(200, doc)),
                    None => Err(not_found(&id)),
                }
            }
            Route::List { parent, ty } => {
                check_group(&fixtures, &parent)?;
                if parent.scope() == ResourceScope::Resource && fixtures.find(&parent).is_none() {
                    return Err(parent_not_found(&parent));
                }
                let items: Vec<Value> = fixtures
                    .resources()
                    .filter(|(id, _)| id.is_type(ty.canonical))
                    .filter(|(id, _)| match parent.scope() {
                        ResourceScope::Subscription => id
                            .subscription()
                            .eq_ignore_ascii_case(parent.subscription()),
                        _ => id.parent().as_ref() == Some(&parent),
                    })
                    .map(|(_, doc)| doc.clone())
                    .collect();
                self.page(items, inc, api_version)
            }
            Route::Credential { cluster, kind } => {
                check_group(&fixtures, &cluster)?;
                let doc = fixtures.find(&cluster).ok_or_else(|| not_found(&cluster))?;
                if kind == CredentialKind::Admin
                    && doc
                        .pointer("/properties/disableLocalAccounts")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                {
                    return Err(Fail(
                        400,
                        "BadRequest",
                        "Getting static credential is not allowed because this cluster is set to disable local accounts.".into(),
                    ));
                }
                let access = fixtures.cluster_access(&cluster).ok_or_else(|| {
                    Fail(
                        500,
                        "InternalServerError",
                        "the emulator fixture has no credentials for this cluster".into(),
                    )
                })?;
                let yaml = kubeconfig_for_format(
                    doc,
                    access,
                    kind,
                    inc.param("server-fqdn"),
                    inc.param("format"),
                    &self.ca_pem,
                )
                .map_err(|e| Fail(400, "BadRequest", e.0))?;
                let name = match kind {
                    CredentialKind::User => "clusterUser",
                    CredentialKind::Admin => "clusterAdmin",
                };
                Ok(respond::json(
                    200,
                    &json!({ "kubeconfigs": [{
                        "name": name,
                        "value": base64::engine::general_purpose::STANDARD.encode(yaml.as_bytes()),
                    }]}),
                ))
            }
        }
    }

    fn check_api_version(&self, route: &Route, api_version: &str) -> Result<(), Fail> {
        let knobs = lock(&self.knobs);
        let key = route.type_key();
        match knobs.api_versions.iter().find(|(k, _)| k == key) {
            Some((_, allowed)) if !allowed.iter().any(|v| v == api_version) => Err(Fail(
                400,
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{api_version}' is invalid. The supported versions are '{}'.",
                    allowed.join(",")
                ),
            )),
            _ => Ok(()),
        }
    }

    fn page(&self, items: Vec<Value>, inc: &Incoming<'_>, api_version: &str) -> Result<Resp, Fail> {
        let size = lock(&self.knobs).page_size;
        let skip = match inc.param("$skiptoken") {
            Some(t) => decode_skip(t).ok_or_else(|| {
                Fail(400, "InvalidSkipToken", "The skip token is invalid.".into())
            })?,
            None => 0,
        };
        let start = skip.min(items.len());
        let end = size.map_or(items.len(), |s| start.saturating_add(s).min(items.len()));
        let mut body = json!({ "value": items[start..end].to_vec() });
        if end < items.len() {
            let mut next = Url::parse(&format!("https://{}{}", inc.host, inc.path))
                .map_err(|e| Fail(500, "InternalServerError", e.to_string()))?;
            next.query_pairs_mut()
                .append_pair("api-version", api_version)
                .append_pair("$skiptoken", &encode_skip(end));
            body["nextLink"] = Value::String(next.to_string());
        }
        Ok(respond::json(200, &body))
    }
}

fn check_group(fixtures: &Fixtures, id: &ResourceId) -> Result<(), Fail> {
    match id.resource_group_id() {
        Some(rg) if !fixtures.has_resource_group(&rg) => Err(Fail(
            404,
            "ResourceGroupNotFound",
            format!("Resource group '{}' could not be found.", rg.name()),
        )),
        _ => Ok(()),
    }
}

fn check_parent(fixtures: &Fixtures, id: &ResourceId) -> Result<(), Fail> {
    match id.parent() {
        Some(parent)
            if parent.scope() == ResourceScope::Resource && fixtures.find(&parent).is_none() =>
        {
            Err(parent_not_found(&parent))
        }
        _ => Ok(()),
    }
}

fn parent_not_found(parent: &ResourceId) -> Fail {
    Fail(
        404,
        "ParentResourceNotFound",
        format!(
            "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
            parent.name()
        ),
    )
}

fn not_found(id: &ResourceId) -> Fail {
    Fail(
        404,
        "ResourceNotFound",
        format!(
            "The Resource '{}/{}' under resource group '{}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            id.full_type().unwrap_or_default(),
            id.name(),
            id.resource_group().unwrap_or_default()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(p: &str) -> Vec<String> {
        p.split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn routes_are_recognised_case_insensitively() {
        let r = parse_route(
            "GET",
            &segs("/SUBSCRIPTIONS/s/resourcegroups/rg/providers/microsoft.network/BASTIONHOSTS/b"),
            "v",
        )
        .unwrap();
        assert!(
            matches!(r, Route::Get { ty, .. } if ty.canonical == "Microsoft.Network/bastionHosts")
        );
        let r = parse_route(
            "GET",
            &segs("/subscriptions/s/providers/Microsoft.Network/bastionHosts"),
            "v",
        )
        .unwrap();
        assert!(
            matches!(&r, Route::List { parent, .. } if parent.scope() == ResourceScope::Subscription)
        );
        let r = parse_route("GET", &segs("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/privateDnsZones/z.io/virtualNetworkLinks"), "v").unwrap();
        assert!(matches!(&r, Route::List { parent, .. } if parent.name() == "z.io"));
        let r = parse_route("POST", &segs("/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/c/listClusterAdminCredential"), "v").unwrap();
        assert!(matches!(
            r,
            Route::Credential {
                kind: CredentialKind::Admin,
                ..
            }
        ));
        let r = parse_route("GET", &segs("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b/providers/Microsoft.Authorization/permissions"), "v").unwrap();
        assert!(matches!(r, Route::Permissions { .. }));
        let e = parse_route(
            "GET",
            &segs(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
            ),
            "v",
        )
        .unwrap_err();
        assert_eq!(e.1, "InvalidResourceType");
        let e = parse_route("POST", &segs("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b/delete"), "v").unwrap_err();
        assert_eq!(e.0, 405);
    }

    #[test]
    fn skip_tokens_round_trip_and_reject_garbage() {
        assert_eq!(decode_skip(&encode_skip(42)), Some(42));
        assert_eq!(decode_skip("nope"), None);
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
