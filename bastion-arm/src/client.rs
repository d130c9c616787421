//! The ARM client: reads over an `azure_core` [`Pipeline`] (bearer token, retries, client
//! request id) on our hyper + rustls transport (see docs/arm-and-aks.md#requests-and-paging).
//!
//! Every call is a `GET` or an empty-body `POST` of a read-only action; the client never writes.
//! Errors come back as [`ArmError`] with the ARM `code`, `message` and request ids.

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use azure_core::http::headers::{HeaderName, RETRY_AFTER, RETRY_AFTER_MS, X_MS_RETRY_AFTER_MS};
use azure_core::http::policies::auth::BearerTokenAuthorizationPolicy;
use azure_core::http::policies::{Policy, RetryHeaders, RetryPolicy as PipelineRetryPolicy};
use azure_core::http::{
    ClientOptions, Context, HttpClient, Method, Pipeline, PipelineSendOptions, RawResponse,
    Request, RetryOptions, StatusCode, Transport,
};
use bastion_core::{HttpsConfig, RetryPolicy};
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::credential::Cloud;
use crate::error::{ArmError, ServiceError, excerpt, parse_error_body};
use crate::model::{
    BastionHost, CredentialResults, ManagedCluster, Permission, PublicIpAddress, VirtualNetwork,
    VirtualNetworkLink,
};
use crate::read::ArmRead;
use crate::resource_id::ResourceId;
use crate::transport::HyperTransport;

/// The api-version pinned per resource type (see docs/arm-and-aks.md#api-versions).
pub mod api_version {
    /// `Microsoft.Network/bastionHosts`.
    pub const BASTION_HOSTS: &str = "2024-05-01";
    /// `Microsoft.Network/virtualNetworks`.
    pub const VIRTUAL_NETWORKS: &str = "2024-05-01";
    /// `Microsoft.Network/publicIPAddresses`.
    pub const PUBLIC_IP_ADDRESSES: &str = "2024-05-01";
    /// `Microsoft.Network/privateDnsZones` and their `virtualNetworkLinks`.
    pub const PRIVATE_DNS_ZONES: &str = "2024-06-01";
    /// `Microsoft.ContainerService/managedClusters` and its credential actions.
    pub const MANAGED_CLUSTERS: &str = "2025-10-01";
    /// `Microsoft.Authorization/permissions`.
    pub const PERMISSIONS: &str = "2022-04-01";
}

/// Settings of an [`ArmClient`].
#[derive(Debug, Clone)]
pub struct ArmClientConfig {
    /// The cloud: ARM endpoint and token scope.
    pub cloud: Cloud,
    /// The HTTPS transport: extra trusted CAs (private CAs, TLS-inspecting proxies, the
    /// emulator), host-to-address overrides, connect and per-attempt request timeouts (default
    /// 10 s and 60 s), proxy, and the application named in the `User-Agent` (default
    /// `bastion-arm/{version}`). Its `retry` is not used: the transport sends each attempt
    /// once, and [`ArmClientConfig::retry`] decides what is retried.
    pub https: HttpsConfig,
    /// When failed requests are retried (default [`ArmClientConfig::default_retry`]).
    pub retry: RetryPolicy,
    /// The most pages a list follows before failing with [`ArmError::TooManyPages`].
    pub max_pages: usize,
}

impl Default for ArmClientConfig {
    fn default() -> Self {
        ArmClientConfig {
            cloud: Cloud::default(),
            https: HttpsConfig {
                request_timeout: Duration::from_secs(60),
                ..HttpsConfig::default()
            },
            retry: ArmClientConfig::default_retry(),
            max_pages: 100,
        }
    }
}

impl ArmClientConfig {
    /// A configuration for `cloud` with the defaults otherwise.
    pub fn for_cloud(cloud: Cloud) -> Self {
        ArmClientConfig {
            cloud,
            ..ArmClientConfig::default()
        }
    }

    /// ARM's retry policy (see docs/arm-and-aks.md#retry-policy): 3 retries of 408, 429, 500,
    /// 502, 503, 504 and failed connections; a jittered backoff from 1 s doubling up to 8 s, or
    /// the server's `Retry-After` up to 60 s; no retry starts after 120 s.
    pub fn default_retry() -> RetryPolicy {
        RetryPolicy {
            max_retries: 3,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            max_total: Duration::from_secs(120),
            statuses: vec![408, 429, 500, 502, 503, 504],
        }
    }

    /// A transport built from [`ArmClientConfig::https`] that sends each attempt once (the
    /// pipeline retries). Share it between the ARM client and the credential (see
    /// [`crate::build_credential`]), so they use one connection pool.
    pub fn transport(&self) -> Result<HyperTransport, ArmError> {
        let mut https = self.https.clone();
        https.retry = RetryPolicy::none();
        if https
            .application
            .as_deref()
            .is_none_or(|a| a.trim().is_empty())
        {
            https.application = Some(concat!("bastion-arm/", env!("CARGO_PKG_VERSION")).into());
        }
        HyperTransport::from_config(https)
    }
}

/// A resource type the typed helpers read: provider namespace, type name and pinned
/// api-version.
struct ResourceType {
    namespace: &'static str,
    name: &'static str,
    api_version: &'static str,
}

const BASTIONS: ResourceType = ResourceType {
    namespace: "Microsoft.Network",
    name: "bastionHosts",
    api_version: api_version::BASTION_HOSTS,
};
const VNETS: ResourceType = ResourceType {
    namespace: "Microsoft.Network",
    name: "virtualNetworks",
    api_version: api_version::VIRTUAL_NETWORKS,
};
const DNS_ZONES: ResourceType = ResourceType {
    namespace: "Microsoft.Network",
    name: "privateDnsZones",
    api_version: api_version::PRIVATE_DNS_ZONES,
};
const CLUSTERS: ResourceType = ResourceType {
    namespace: "Microsoft.ContainerService",
    name: "managedClusters",
    api_version: api_version::MANAGED_CLUSTERS,
};
const PERMISSIONS: ResourceType = ResourceType {
    namespace: "Microsoft.Authorization",
    name: "permissions",
    api_version: api_version::PERMISSIONS,
};

/// One page of an ARM list.
#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
    #[serde(default, rename = "nextLink")]
    next_link: Option<String>,
}

/// A client for the ARM reads bastion needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ArmClient {
    pipeline: Pipeline,
    endpoint: Url,
    scope: String,
    max_pages: usize,
}

impl ArmClient {
    /// A client with its own transport built from `config`.
    pub fn new(
        config: ArmClientConfig,
        credential: Arc<dyn TokenCredential>,
    ) -> Result<Self, ArmError> {
        let transport = config.transport()?;
        Self::with_http_client(config, credential, Arc::new(transport))
    }

    /// A client sending through `http_client` (`config.https` is then the caller's business).
    pub fn with_http_client(
        config: ArmClientConfig,
        credential: Arc<dyn TokenCredential>,
        http_client: Arc<dyn HttpClient>,
    ) -> Result<Self, ArmError> {
        let endpoint = config.cloud.arm_endpoint();
        if endpoint.scheme() != "https" {
            return Err(ArmError::Config(format!(
                "the ARM endpoint must use https (bearer tokens are never sent in clear text): {endpoint}"
            )));
        }
        if endpoint.cannot_be_a_base() || endpoint.host_str().is_none() {
            return Err(ArmError::Config(format!(
                "the ARM endpoint is not a base URL: {endpoint}"
            )));
        }
        let scope = config.cloud.scope();
        let auth: Arc<dyn Policy> = Arc::new(BearerTokenAuthorizationPolicy::new(
            credential,
            [scope.clone()],
        ));
        let options = ClientOptions {
            transport: Some(Transport::new(http_client)),
            retry: RetryOptions::custom(Arc::new(PipelineRetry::new(config.retry))),
            ..ClientOptions::default()
        };
        let pipeline = Pipeline::new(
            Some(env!("CARGO_PKG_NAME")),
            Some(env!("CARGO_PKG_VERSION")),
            options,
            Vec::new(),
            vec![auth],
            None,
        );
        Ok(ArmClient {
            pipeline,
            endpoint,
            scope,
            max_pages: config.max_pages.max(1),
        })
    }

    /// The ARM endpoint.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The token scope sent to the credential.
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// `GET {arm}{id_or_path}?api-version={api_version}` and parse the body as `T`.
    /// `id_or_path` is a resource id or any ARM path starting with `/` (an absolute URL on the
    /// ARM host is accepted too).
    pub async fn get<T: DeserializeOwned>(
        &self,
        id_or_path: &str,
        api_version: &str,
    ) -> Result<T, ArmError> {
        let url = self.url(id_or_path, api_version, &[])?;
        let resp = self.send(Method::Get, url).await?;
        parse_body(&resp, "GET", id_or_path)
    }

    /// `GET` a list and follow `nextLink` verbatim until it is absent or null (at most
    /// [`ArmClientConfig::max_pages`] pages). Returns the items of every page.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
    ) -> Result<Vec<T>, ArmError> {
        let mut url = self.url(path, api_version, &[])?;
        let mut items = Vec::new();
        for _ in 0..self.max_pages {
            let resp = self.send(Method::Get, url.clone()).await?;
            let page: Page<T> = parse_body(&resp, "GET", url.path())?;
            items.extend(page.value);
            match page.next_link.as_deref().map(str::trim) {
                None | Some("") => return Ok(items),
                Some(next) => url = self.next_link(next, api_version)?,
            }
        }
        Err(ArmError::TooManyPages {
            resource: path.to_owned(),
            pages: self.max_pages,
        })
    }

    /// `POST {arm}{path}?api-version={api_version}&{query}` with an empty body
    /// (`Content-Length: 0`), for read-only actions such as `listClusterUserCredential`.
    pub async fn post_action<T: DeserializeOwned>(
        &self,
        path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ArmError> {
        let url = self.url(path, api_version, query)?;
        let resp = self.send(Method::Post, url).await?;
        parse_body(&resp, "POST", path)
    }

    // ----- typed helpers ---------------------------------------------------------------------

    /// A Bastion host by id.
    pub async fn get_bastion(&self, id: &ResourceId) -> Result<BastionHost, ArmError> {
        self.get(id.as_str(), api_version::BASTION_HOSTS).await
    }

    /// A Bastion host by subscription, resource group and name.
    pub async fn get_bastion_by_name(
        &self,
        subscription: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<BastionHost, ArmError> {
        self.get_by_name(subscription, resource_group, &BASTIONS, name)
            .await
    }

    /// Every Bastion host in a resource group.
    pub async fn list_bastions_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<BastionHost>, ArmError> {
        let rg = ResourceId::for_resource_group(subscription, resource_group)?;
        self.list_of_type(&rg, &BASTIONS).await
    }

    /// Every Bastion host in a subscription.
    pub async fn list_bastions_in_subscription(
        &self,
        subscription: &str,
    ) -> Result<Vec<BastionHost>, ArmError> {
        let sub = ResourceId::for_subscription(subscription)?;
        self.list_of_type(&sub, &BASTIONS).await
    }

    /// A managed cluster by id.
    pub async fn get_cluster(&self, id: &ResourceId) -> Result<ManagedCluster, ArmError> {
        self.get(id.as_str(), api_version::MANAGED_CLUSTERS).await
    }

    /// A managed cluster by subscription, resource group and name.
    pub async fn get_cluster_by_name(
        &self,
        subscription: &str,
        resource_group: &str,
        name: &str,
    ) -> Result<ManagedCluster, ArmError> {
        self.get_by_name(subscription, resource_group, &CLUSTERS, name)
            .await
    }

    /// `listClusterUserCredential`; `server_fqdn` is sent as `server-fqdn` (`public`/`private`)
    /// when given.
    pub async fn list_cluster_user_credential(
        &self,
        cluster: &ResourceId,
        server_fqdn: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        self.credential_action(cluster, "listClusterUserCredential", server_fqdn, None)
            .await
    }

    /// `listClusterAdminCredential`. A cluster with local accounts disabled answers 400
    /// `BadRequest` ([`ArmError::is_local_accounts_disabled`]).
    pub async fn list_cluster_admin_credential(
        &self,
        cluster: &ResourceId,
        server_fqdn: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        self.credential_action(cluster, "listClusterAdminCredential", server_fqdn, None)
            .await
    }

    /// A virtual network by id.
    pub async fn get_vnet(&self, id: &ResourceId) -> Result<VirtualNetwork, ArmError> {
        self.get(id.as_str(), api_version::VIRTUAL_NETWORKS).await
    }

    /// Every virtual network in a resource group (e.g. the AKS-managed VNet in the node RG).
    pub async fn list_vnets_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<VirtualNetwork>, ArmError> {
        let rg = ResourceId::for_resource_group(subscription, resource_group)?;
        self.list_of_type(&rg, &VNETS).await
    }

    /// A public IP address by id.
    pub async fn get_public_ip(&self, id: &ResourceId) -> Result<PublicIpAddress, ArmError> {
        self.get(id.as_str(), api_version::PUBLIC_IP_ADDRESSES)
            .await
    }

    /// The caller's effective permissions at a resource or resource-group scope (one entry per
    /// role assignment at or above the scope).
    pub async fn permissions(&self, scope: &ResourceId) -> Result<Vec<Permission>, ArmError> {
        self.list_of_type(scope, &PERMISSIONS).await
    }

    /// Every private DNS zone in a resource group.
    pub async fn list_private_dns_zones(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<serde_json::Value>, ArmError> {
        let rg = ResourceId::for_resource_group(subscription, resource_group)?;
        self.list_of_type(&rg, &DNS_ZONES).await
    }

    /// The virtual network links of a private DNS zone.
    pub async fn list_zone_links(
        &self,
        zone: &ResourceId,
    ) -> Result<Vec<VirtualNetworkLink>, ArmError> {
        self.list(
            &format!("{zone}/virtualNetworkLinks"),
            api_version::PRIVATE_DNS_ZONES,
        )
        .await
    }

    /// `{subscription}/resourceGroups/{resource_group}/providers/{kind}/{name}`.
    async fn get_by_name<T: DeserializeOwned>(
        &self,
        subscription: &str,
        resource_group: &str,
        kind: &ResourceType,
        name: &str,
    ) -> Result<T, ArmError> {
        let id = ResourceId::for_resource(
            subscription,
            resource_group,
            kind.namespace,
            kind.name,
            name,
        )?;
        self.get(id.as_str(), kind.api_version).await
    }

    /// Every resource of `kind` under `scope` (a subscription, resource group or resource):
    /// `GET {scope}/providers/{kind}`, every page.
    async fn list_of_type<T: DeserializeOwned>(
        &self,
        scope: &ResourceId,
        kind: &ResourceType,
    ) -> Result<Vec<T>, ArmError> {
        self.list(
            &format!("{scope}/providers/{}/{}", kind.namespace, kind.name),
            kind.api_version,
        )
        .await
    }

    /// `listClusterUserCredential` with the `format` query (`exec` or `azure`, for AAD
    /// clusters) and `server-fqdn` when given.
    pub async fn list_cluster_user_credential_in_format(
        &self,
        cluster: &ResourceId,
        server_fqdn: Option<&str>,
        format: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        self.credential_action(cluster, "listClusterUserCredential", server_fqdn, format)
            .await
    }

    /// `POST {cluster}/{action}` (a `listCluster…Credential`), with `server-fqdn` and `format`
    /// when given.
    async fn credential_action(
        &self,
        cluster: &ResourceId,
        action: &str,
        server_fqdn: Option<&str>,
        format: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        let query: Vec<(&str, &str)> = server_fqdn
            .map(|f| ("server-fqdn", f))
            .into_iter()
            .chain(format.map(|f| ("format", f)))
            .collect();
        self.post_action(&format!("{cluster}/{action}"), CLUSTERS.api_version, &query)
            .await
    }

    // ----- plumbing --------------------------------------------------------------------------

    /// `{arm}{path}?api-version=…&query…`, or an absolute URL on the ARM host.
    fn url(
        &self,
        id_or_path: &str,
        api_version: &str,
        query: &[(&str, &str)],
    ) -> Result<Url, ArmError> {
        let text = id_or_path.trim();
        let mut url = if text.starts_with("https://") || text.starts_with("http://") {
            let url = Url::parse(text)
                .map_err(|e| ArmError::InvalidArgument(format!("bad ARM URL {text:?}: {e}")))?;
            self.check_same_origin(&url)?;
            url
        } else if text.starts_with('/') {
            let base = self.endpoint.as_str().trim_end_matches('/');
            let path = normalise_path(text);
            Url::parse(&format!("{base}{path}"))
                .map_err(|e| ArmError::InvalidArgument(format!("bad ARM path {text:?}: {e}")))?
        } else {
            return Err(ArmError::InvalidArgument(format!(
                "an ARM path or resource id must start with '/': {text:?}"
            )));
        };
        {
            let mut pairs = url.query_pairs_mut();
            pairs.append_pair("api-version", api_version);
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// A `nextLink`, followed verbatim; it must stay on the ARM host (the bearer token goes
    /// with it). An `api-version` is added only when the link has none.
    fn next_link(&self, next: &str, api_version: &str) -> Result<Url, ArmError> {
        let mut url = if next.starts_with('/') {
            Url::parse(&format!(
                "{}{next}",
                self.endpoint.as_str().trim_end_matches('/')
            ))
        } else {
            Url::parse(next)
        }
        .map_err(|e| {
            ArmError::InvalidArgument(format!("ARM returned a bad nextLink {next:?}: {e}"))
        })?;
        self.check_same_origin(&url)?;
        if !url.query_pairs().any(|(k, _)| k == "api-version") {
            url.query_pairs_mut()
                .append_pair("api-version", api_version);
        }
        Ok(url)
    }

    fn check_same_origin(&self, url: &Url) -> Result<(), ArmError> {
        let same = url.scheme() == "https"
            && url
                .host_str()
                .zip(self.endpoint.host_str())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            && url.port_or_known_default() == self.endpoint.port_or_known_default();
        if same {
            Ok(())
        } else {
            Err(ArmError::InvalidArgument(format!(
                "refusing to send the ARM token to {}: it is not the ARM endpoint {}",
                url.origin().ascii_serialization(),
                self.endpoint.origin().ascii_serialization()
            )))
        }
    }

    /// Sends one request through the pipeline (retries included). A 401 is retried once with
    /// a fresh token (the bearer policy drops its cached token on 401).
    async fn send(&self, method: Method, url: Url) -> Result<RawResponse, ArmError> {
        let client_request_id = azure_core::Uuid::new_v4().to_string();
        let mut refreshed = false;
        loop {
            let mut request = Request::new(url.clone(), method);
            request.insert_header("accept", "application/json");
            request.insert_header("x-ms-client-request-id", client_request_id.clone());
            if method == Method::Post {
                request.set_body(Bytes::new());
            }
            let options = PipelineSendOptions {
                skip_checks: true,
                ..PipelineSendOptions::default()
            };
            let response = self
                .pipeline
                .send(&Context::new(), &mut request, Some(options))
                .await
                .map_err(|e| self.core_error(e, &url))?;
            let status = response.status();
            let request_id = header(&response, "x-ms-request-id");
            tracing::debug!(
                method = method.as_str(),
                path = url.path(),
                status = u16::from(status),
                request_id = request_id.as_deref().unwrap_or(""),
                correlation_id = header(&response, "x-ms-correlation-request-id")
                    .as_deref()
                    .unwrap_or(""),
                client_request_id = client_request_id.as_str(),
                "ARM call"
            );
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::Unauthorized && !refreshed {
                refreshed = true;
                continue;
            }
            let parsed = parse_error_body(response.body().as_ref());
            return Err(ServiceError {
                status: u16::from(status),
                code: parsed.code,
                message: parsed.message,
                target: parsed.target,
                details: parsed.details,
                method: method.as_str().to_owned(),
                resource: url.path().to_owned(),
                request_id,
                correlation_id: header(&response, "x-ms-correlation-request-id"),
                client_request_id: Some(client_request_id),
            }
            .into());
        }
    }

    fn core_error(&self, error: azure_core::Error, url: &Url) -> ArmError {
        use azure_core::error::ErrorKind;
        let cause = error_chain(&error);
        match error.kind() {
            ErrorKind::Credential => ArmError::Credential {
                scope: self.scope.clone(),
                cause,
            },
            _ => ArmError::Transport {
                endpoint: format!("{}{}", url.origin().ascii_serialization(), url.path()),
                cause,
            },
        }
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

fn header(response: &RawResponse, name: &'static str) -> Option<String> {
    response
        .headers()
        .get_optional_string(&HeaderName::from_static(name))
}

/// Collapses the `//` an empty `parentResourcePath` produces and drops a trailing `/` before
/// the query (see docs/arm-and-aks.md#requests-and-paging).
fn normalise_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut last_slash = false;
    for c in path.chars() {
        if c == '/' && last_slash {
            continue;
        }
        last_slash = c == '/';
        out.push(c);
    }
    if out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

fn parse_body<T: DeserializeOwned>(
    response: &RawResponse,
    method: &str,
    resource: &str,
) -> Result<T, ArmError> {
    let body = response.body().as_ref();
    serde_json::from_slice(body).map_err(|e| ArmError::MalformedResponse {
        status: u16::from(response.status()),
        method: method.to_owned(),
        resource: resource.split('?').next().unwrap_or(resource).to_owned(),
        excerpt: excerpt(body),
        cause: e.to_string(),
        request_id: header(response, "x-ms-request-id"),
    })
}

/// The pipeline's retry hook, a thin adapter over [`RetryPolicy`] (see
/// docs/arm-and-aks.md#retry-policy): the pipeline asks, the policy decides.
#[derive(Debug)]
struct PipelineRetry {
    policy: RetryPolicy,
    headers: RetryHeaders,
    statuses: Vec<StatusCode>,
}

impl PipelineRetry {
    fn new(policy: RetryPolicy) -> Self {
        PipelineRetry {
            headers: RetryHeaders {
                retry_headers: vec![X_MS_RETRY_AFTER_MS, RETRY_AFTER_MS, RETRY_AFTER],
            },
            statuses: policy
                .statuses
                .iter()
                .map(|&s| StatusCode::from(s))
                .collect(),
            policy,
        }
    }
}

fn to_time(d: Duration) -> azure_core::time::Duration {
    azure_core::time::Duration::try_from(d).unwrap_or(azure_core::time::Duration::MAX)
}

fn from_time(d: azure_core::time::Duration) -> Duration {
    Duration::try_from(d).unwrap_or_default()
}

#[async_trait::async_trait]
impl PipelineRetryPolicy for PipelineRetry {
    fn is_expired(
        &self,
        duration_since_start: azure_core::time::Duration,
        retry_count: u32,
    ) -> bool {
        // `retry_count` retries are behind us; the next one is number `retry_count + 1`.
        !self.policy.allows(
            retry_count.saturating_add(1),
            from_time(duration_since_start),
        )
    }

    fn retry_headers(&self) -> Option<&RetryHeaders> {
        Some(&self.headers)
    }

    fn retry_status_codes(&self) -> &[StatusCode] {
        &self.statuses
    }

    fn sleep_duration(&self, retry_count: u32) -> azure_core::time::Duration {
        to_time(self.policy.backoff(retry_count))
    }

    async fn wait(&self, retry_count: u32, retry_after: Option<azure_core::time::Duration>) {
        let wait = self.policy.delay(retry_count, retry_after.map(from_time));
        tracing::debug!(
            retry_count,
            wait_ms = wait.as_millis() as u64,
            "retrying ARM request"
        );
        tokio::time::sleep(wait).await;
    }
}

#[async_trait::async_trait]
impl ArmRead for ArmClient {
    async fn get_bastion(&self, id: &ResourceId) -> Result<BastionHost, ArmError> {
        ArmClient::get_bastion(self, id).await
    }
    async fn list_bastions_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<BastionHost>, ArmError> {
        ArmClient::list_bastions_in_group(self, subscription, resource_group).await
    }
    async fn list_bastions_in_subscription(
        &self,
        subscription: &str,
    ) -> Result<Vec<BastionHost>, ArmError> {
        ArmClient::list_bastions_in_subscription(self, subscription).await
    }
    async fn get_cluster(&self, id: &ResourceId) -> Result<ManagedCluster, ArmError> {
        ArmClient::get_cluster(self, id).await
    }
    async fn get_vnet(&self, id: &ResourceId) -> Result<VirtualNetwork, ArmError> {
        ArmClient::get_vnet(self, id).await
    }
    async fn list_vnets_in_group(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<VirtualNetwork>, ArmError> {
        ArmClient::list_vnets_in_group(self, subscription, resource_group).await
    }
    async fn get_public_ip(&self, id: &ResourceId) -> Result<PublicIpAddress, ArmError> {
        ArmClient::get_public_ip(self, id).await
    }
    async fn permissions(&self, scope: &ResourceId) -> Result<Vec<Permission>, ArmError> {
        ArmClient::permissions(self, scope).await
    }
    async fn list_private_dns_zones(
        &self,
        subscription: &str,
        resource_group: &str,
    ) -> Result<Vec<ResourceId>, ArmError> {
        let zones = ArmClient::list_private_dns_zones(self, subscription, resource_group).await?;
        Ok(zones
            .iter()
            .filter_map(|z| z.get("id").and_then(|v| v.as_str()))
            .filter_map(|s| ResourceId::parse(s).ok())
            .collect())
    }
    async fn list_zone_links(
        &self,
        zone: &ResourceId,
    ) -> Result<Vec<VirtualNetworkLink>, ArmError> {
        ArmClient::list_zone_links(self, zone).await
    }
    async fn list_cluster_credential(
        &self,
        cluster: &ResourceId,
        admin: bool,
        server_fqdn: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        if admin {
            ArmClient::list_cluster_admin_credential(self, cluster, server_fqdn).await
        } else {
            ArmClient::list_cluster_user_credential(self, cluster, server_fqdn).await
        }
    }
    async fn list_cluster_credential_in_format(
        &self,
        cluster: &ResourceId,
        admin: bool,
        server_fqdn: Option<&str>,
        format: Option<&str>,
    ) -> Result<CredentialResults, ArmError> {
        if admin {
            ArmClient::list_cluster_admin_credential(self, cluster, server_fqdn).await
        } else {
            ArmClient::list_cluster_user_credential_in_format(self, cluster, server_fqdn, format)
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn double_slashes_and_trailing_slash_are_normalised() {
        assert_eq!(
            normalise_path(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network//bastionHosts/b/"
            ),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b"
        );
        assert_eq!(normalise_path("/"), "/");
    }

    #[test]
    fn the_pipeline_retries_as_the_arm_policy_says() {
        let p = PipelineRetry::new(ArmClientConfig::default_retry());
        for (count, secs) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0)] {
            let d = from_time(p.sleep_duration(count)).as_secs_f64();
            assert!(
                d >= secs * 0.75 - 1e-9 && d <= secs * 1.25 + 1e-9,
                "{count}: {d}"
            );
        }
        assert!(from_time(p.sleep_duration(30)) <= Duration::from_secs(8));
        assert!(p.is_expired(azure_core::time::Duration::ZERO, 3));
        assert!(!p.is_expired(azure_core::time::Duration::ZERO, 2));
        assert!(p.is_expired(to_time(Duration::from_secs(120)), 0));
        let statuses: Vec<u16> = p
            .retry_status_codes()
            .iter()
            .map(|&s| u16::from(s))
            .collect();
        assert_eq!(statuses, [408, 429, 500, 502, 503, 504]);
    }

    fn client(endpoint: &str) -> ArmClient {
        let cloud = Cloud::custom(Url::parse(endpoint).unwrap());
        let cred = Arc::new(bastion_core::StaticTokenCredential::from_jwt("t"));
        ArmClient::new(ArmClientConfig::for_cloud(cloud), cred).unwrap()
    }

    #[test]
    fn urls_carry_the_api_version_and_query() {
        let c = client("https://arm.test:8443/");
        let u = c
            .url(
                "/subscriptions/s/x",
                "2024-05-01",
                &[("server-fqdn", "public")],
            )
            .unwrap();
        assert_eq!(
            u.as_str(),
            "https://arm.test:8443/subscriptions/s/x?api-version=2024-05-01&server-fqdn=public"
        );
        assert!(c.url("subscriptions/s", "v", &[]).is_err());
    }

    #[test]
    fn next_links_are_followed_verbatim_on_the_arm_host_only() {
        let c = client("https://arm.test:8443/");
        let u = c
            .next_link(
                "https://ARM.test:8443/subscriptions/s/x?api-version=1&$skiptoken=abc",
                "2",
            )
            .unwrap();
        assert_eq!(u.query(), Some("api-version=1&$skiptoken=abc"));
        let u = c
            .next_link("https://arm.test:8443/p?$skiptoken=a", "2")
            .unwrap();
        assert_eq!(u.query(), Some("$skiptoken=a&api-version=2"));
        assert!(c.next_link("https://evil.test/p", "2").is_err());
        assert!(c.next_link("https://arm.test:9999/p", "2").is_err());
    }

    #[derive(Debug)]
    struct NotSignedIn;

    #[async_trait::async_trait]
    impl TokenCredential for NotSignedIn {
        async fn get_token(
            &self,
            _: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Credential,
                "Please run 'az login' to setup account.",
            ))
        }
    }

    #[tokio::test]
    async fn credential_failures_are_credential_errors_naming_the_scope() {
        let cloud = Cloud::custom(Url::parse("https://arm.test:1/").unwrap());
        let config = ArmClientConfig {
            retry: RetryPolicy::none(),
            ..ArmClientConfig::for_cloud(cloud)
        };
        let arm = ArmClient::new(config, Arc::new(NotSignedIn)).unwrap();
        let err = arm
            .get::<serde_json::Value>("/subscriptions/s", "2022-12-01")
            .await
            .unwrap_err();
        assert!(matches!(err, ArmError::Credential { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("https://management.azure.com/.default"),
            "{text}"
        );
        assert!(text.contains("az login"), "{text}");
    }

    #[test]
    fn plain_http_endpoints_are_refused() {
        let cloud = Cloud::custom(Url::parse("http://arm.test/").unwrap());
        let cred = Arc::new(bastion_core::StaticTokenCredential::from_jwt("t"));
        let err = ArmClient::new(ArmClientConfig::for_cloud(cloud), cred).unwrap_err();
        assert!(err.to_string().contains("https"), "{err}");
    }
}
