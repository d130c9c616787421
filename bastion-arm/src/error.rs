//! The error type of bastion-arm.
//!
//! ARM answers errors with `{"error":{"code","message","target"?,"details"?}}`, some resource
//! providers with the bare inner object (see docs/arm-and-aks.md#arm-errors).
//! [`ArmError::Service`] keeps the HTTP status, the ARM `code`, the `message` and the request
//! ids; callers branch on the predicates ([`ArmError::is_not_found`],
//! [`ArmError::is_authorization_failed`], …), never on message text.

use std::fmt;

use serde::Deserialize;

/// Errors of bastion-arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArmError {
    /// ARM (or a resource provider) answered with an error status.
    #[error(transparent)]
    Service(Box<ServiceError>),

    /// A response body that should be JSON of a known shape did not parse.
    #[error(
        "ARM returned a malformed response (HTTP {status}) for {method} {resource}: {cause}; body starts with {excerpt:?}{}",
        request_id_suffix(request_id.as_deref())
    )]
    MalformedResponse {
        /// The HTTP status of the response.
        status: u16,
        /// `GET` or `POST`.
        method: String,
        /// The request path (no query string).
        resource: String,
        /// The start of the body (at most 200 characters).
        excerpt: String,
        /// What the JSON parser said.
        cause: String,
        /// `x-ms-request-id` of the response, if any.
        request_id: Option<String>,
    },

    /// The request could not be sent or its response not read (connection refused, TLS failure,
    /// timeout), after the configured retries.
    #[error("cannot reach ARM at {endpoint}: {cause}")]
    Transport {
        /// The URL that was being requested (no query string).
        endpoint: String,
        /// The underlying cause, flattened to text.
        cause: String,
    },

    /// The credential could not produce an access token.
    #[error(
        "could not get an Azure access token for {scope}: {cause}; sign in (e.g. `az login`) or choose another credential"
    )]
    Credential {
        /// The scope that was requested.
        scope: String,
        /// Why the credential failed.
        cause: String,
    },

    /// A list did not end within the page limit (a `nextLink` loop or an unexpectedly huge list).
    #[error(
        "listing {resource} did not finish after {pages} pages; giving up (is the server returning a nextLink loop?)"
    )]
    TooManyPages {
        /// The first page's path.
        resource: String,
        /// Pages fetched before giving up.
        pages: usize,
    },

    /// A string that should be an ARM resource id is not one.
    #[error(transparent)]
    ResourceId(#[from] crate::resource_id::ResourceIdError),

    /// An argument does not make sense (bad URL, path without a leading `/`, foreign nextLink).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The client or credential configuration is invalid (CA file, endpoint, environment).
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// An error status from ARM, with the parsed ARM error body.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServiceError {
    /// The HTTP status code.
    pub status: u16,
    /// The ARM error `code` (e.g. `ResourceNotFound`), if the body had one.
    pub code: Option<String>,
    /// The ARM error `message`, or an excerpt of a non-JSON body.
    pub message: String,
    /// The ARM error `target`, if any.
    pub target: Option<String>,
    /// Nested `details[]` as `(code, message)` pairs.
    pub details: Vec<(String, String)>,
    /// `GET` or `POST`.
    pub method: String,
    /// The request path (no query string); for 404s this is the id that was not found.
    pub resource: String,
    /// `x-ms-request-id` of the response.
    pub request_id: Option<String>,
    /// `x-ms-correlation-request-id` of the response.
    pub correlation_id: Option<String>,
    /// `x-ms-client-request-id` that was sent.
    pub client_request_id: Option<String>,
}

fn request_id_suffix(request_id: Option<&str>) -> String {
    match request_id {
        Some(id) => format!(" (x-ms-request-id {id})"),
        None => String::new(),
    }
}

/// The subscription id of an ARM path, if it has one (`/subscriptions/{sub}/…`).
fn subscription_of(path: &str) -> Option<&str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    loop {
        let seg = segments.next()?;
        if seg.eq_ignore_ascii_case("subscriptions") {
            return segments.next();
        }
    }
}

impl ServiceError {
    fn code_is(&self, codes: &[&str]) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| codes.iter().any(|x| x.eq_ignore_ascii_case(c)))
    }

    fn hint(&self) -> Option<String> {
        let code = self.code.as_deref().unwrap_or_default();
        match self.status {
            400 if code.eq_ignore_ascii_case("BadRequest")
                && self.message.contains("disable local accounts") =>
            {
                Some("the cluster has local accounts disabled: use the user credentials instead of the admin ones".into())
            }
            400 if code.eq_ignore_ascii_case("MissingApiVersionParameter")
                || code.eq_ignore_ascii_case("InvalidApiVersionParameter") =>
            {
                Some("this is a bug in bastion: the api-version it sent was refused".into())
            }
            401 => Some(
                "the access token was refused: sign in again (e.g. `az login`, with `--tenant` for the subscription's tenant)"
                    .into(),
            ),
            403 => Some(
                "ask for a role assignment that grants this action at this scope (e.g. Reader for reads), then sign in again"
                    .into(),
            ),
            404 => Some(match subscription_of(&self.resource) {
                Some(sub) => format!(
                    "check the name, the resource group and the subscription ({sub}) used for {}",
                    self.resource
                ),
                None => format!("check the id {}", self.resource),
            }),
            429 => Some("ARM is throttling requests; wait a minute and try again".into()),
            500..=599 => Some("ARM had a server-side failure; try again later".into()),
            _ => None,
        }
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.status {
            401 => "authentication failed",
            403 => "not authorized",
            404 => "not found",
            429 => "throttled",
            500..=599 => "server error",
            _ => "request failed",
        };
        write!(
            f,
            "ARM {what}: {} {} returned HTTP {}",
            self.method, self.resource, self.status
        )?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        for (code, message) in &self.details {
            write!(f, " [{code}: {message}]")?;
        }
        if let Some(hint) = self.hint() {
            write!(f, ". Hint: {hint}")?;
        }
        f.write_str(&request_id_suffix(self.request_id.as_deref()))
    }
}

impl std::error::Error for ServiceError {}

impl ArmError {
    /// The ARM error, if this is an error status from ARM.
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            ArmError::Service(e) => Some(e),
            _ => None,
        }
    }

    /// The HTTP status, if ARM answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ArmError::Service(e) => Some(e.status),
            ArmError::MalformedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The short form for report rows and search notes: `HTTP 403 AuthorizationFailed`,
    /// `HTTP 500`, or the whole message when ARM did not answer.
    pub(crate) fn brief(&self) -> String {
        match (self.status(), self.code()) {
            (Some(s), Some(c)) => format!("HTTP {s} {c}"),
            (Some(s), None) => format!("HTTP {s}"),
            _ => self.to_string(),
        }
    }

    /// The ARM error `code`, if ARM sent one.
    pub fn code(&self) -> Option<&str> {
        self.service().and_then(|e| e.code.as_deref())
    }

    /// The ARM error `message`, if ARM sent one.
    pub fn message(&self) -> Option<&str> {
        self.service().map(|e| e.message.as_str())
    }

    /// `x-ms-request-id` of the failing response, if any.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ArmError::Service(e) => e.request_id.as_deref(),
            ArmError::MalformedResponse { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// 404, or one of the not-found codes (`ResourceNotFound`, `ResourceGroupNotFound`,
    /// `SubscriptionNotFound`, `ParentResourceNotFound`, …).
    pub fn is_not_found(&self) -> bool {
        self.service().is_some_and(|e| {
            e.status == 404
                || e.code_is(&[
                    "ResourceNotFound",
                    "ResourceGroupNotFound",
                    "SubscriptionNotFound",
                    "ParentResourceNotFound",
                    "NotFound",
                ])
        })
    }

    /// 403 `AuthorizationFailed` / `LinkedAuthorizationFailed` (or any 403).
    pub fn is_authorization_failed(&self) -> bool {
        self.service().is_some_and(|e| {
            e.status == 403 || e.code_is(&["AuthorizationFailed", "LinkedAuthorizationFailed"])
        })
    }

    /// 401: the token was missing, invalid, expired, for the wrong audience or tenant.
    pub fn is_authentication_failed(&self) -> bool {
        self.service().is_some_and(|e| e.status == 401)
    }

    /// 401 `ExpiredAuthenticationToken`.
    pub fn is_token_expired(&self) -> bool {
        self.service()
            .is_some_and(|e| e.code_is(&["ExpiredAuthenticationToken"]))
    }

    /// 429: ARM throttled the caller (after the retries were used up).
    pub fn is_throttled(&self) -> bool {
        self.service().is_some_and(|e| e.status == 429)
    }

    /// Any 5xx.
    pub fn is_server_error(&self) -> bool {
        self.service().is_some_and(|e| e.status >= 500)
    }

    /// 400 `BadRequest` for admin credentials because the cluster has local accounts disabled.
    pub fn is_local_accounts_disabled(&self) -> bool {
        self.service().is_some_and(|e| {
            e.status == 400
                && e.code_is(&["BadRequest"])
                && e.message.to_ascii_lowercase().contains("local accounts")
        })
    }

    /// The connection failed (no HTTP status at all).
    pub fn is_transport(&self) -> bool {
        matches!(self, ArmError::Transport { .. })
    }

    /// The response body did not parse.
    pub fn is_malformed(&self) -> bool {
        matches!(self, ArmError::MalformedResponse { .. })
    }
}

impl From<ServiceError> for ArmError {
    fn from(e: ServiceError) -> Self {
        ArmError::Service(Box::new(e))
    }
}

/// The start of a body, for error messages: at most 200 characters, lossy UTF-8.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(800)]);
    let mut out: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[derive(Deserialize)]
struct Wrapped {
    error: Inner,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Inner {
    code: Option<String>,
    message: Option<String>,
    target: Option<String>,
    details: Vec<Detail>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Detail {
    code: Option<String>,
    message: Option<String>,
}

/// The fields of an ARM error body: wrapped `{"error":{…}}` or the bare inner object.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ParsedError {
    pub code: Option<String>,
    pub message: String,
    pub target: Option<String>,
    pub details: Vec<(String, String)>,
}

/// Parses an ARM error body. A body that is not an ARM error becomes a message excerpt.
pub(crate) fn parse_error_body(body: &[u8]) -> ParsedError {
    let inner = serde_json::from_slice::<Wrapped>(body)
        .map(|w| w.error)
        .or_else(|_| serde_json::from_slice::<Inner>(body));
    match inner {
        Ok(inner) if inner.code.is_some() || inner.message.is_some() => ParsedError {
            code: inner.code,
            message: inner.message.unwrap_or_default(),
            target: inner.target,
            details: inner
                .details
                .into_iter()
                .map(|d| (d.code.unwrap_or_default(), d.message.unwrap_or_default()))
                .collect(),
        },
        _ => ParsedError {
            code: None,
            message: excerpt(body),
            ..ParsedError::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(status: u16, body: &str, resource: &str) -> ArmError {
        let p = parse_error_body(body.as_bytes());
        ServiceError {
            status,
            code: p.code,
            message: p.message,
            target: p.target,
            details: p.details,
            method: "GET".into(),
            resource: resource.into(),
            request_id: Some("rid-1".into()),
            correlation_id: None,
            client_request_id: None,
        }
        .into()
    }

    #[test]
    fn wrapped_and_bare_error_bodies_parse_alike() {
        let wrapped = parse_error_body(br#"{"error":{"code":"ResourceNotFound","message":"gone","details":[{"code":"X","message":"y"}]}}"#);
        let bare = parse_error_body(
            br#"{"code":"ResourceNotFound","message":"gone","details":[{"code":"X","message":"y"}]}"#,
        );
        assert_eq!(wrapped, bare);
        assert_eq!(wrapped.code.as_deref(), Some("ResourceNotFound"));
        assert_eq!(wrapped.details, vec![("X".into(), "y".into())]);
    }

    #[test]
    fn non_json_error_body_becomes_an_excerpt() {
        let p = parse_error_body(b"<html>Bad gateway</html>");
        assert_eq!(p.code, None);
        assert_eq!(p.message, "<html>Bad gateway</html>");
        let long = "x".repeat(1000);
        assert_eq!(
            parse_error_body(long.as_bytes()).message.chars().count(),
            201
        );
    }

    #[test]
    fn not_found_names_the_id_and_subscription() {
        let e = service(
            404,
            r#"{"error":{"code":"ResourceNotFound","message":"The Resource was not found."}}"#,
            "/subscriptions/1111/resourceGroups/rg/providers/Microsoft.Network/bastionHosts/b",
        );
        assert!(e.is_not_found());
        assert!(!e.is_authorization_failed());
        let text = e.to_string();
        assert!(text.contains("ResourceNotFound"), "{text}");
        assert!(text.contains("subscription (1111)"), "{text}");
        assert!(text.contains("/bastionHosts/b"), "{text}");
        assert!(text.contains("rid-1"), "{text}");
    }

    #[test]
    fn predicates_follow_status_and_code() {
        let e = service(
            403,
            r#"{"error":{"code":"AuthorizationFailed","message":"m"}}"#,
            "/x",
        );
        assert!(e.is_authorization_failed());
        let e = service(
            429,
            r#"{"error":{"code":"TooManyRequests","message":"m"}}"#,
            "/x",
        );
        assert!(e.is_throttled());
        let e = service(
            401,
            r#"{"code":"ExpiredAuthenticationToken","message":"m"}"#,
            "/x",
        );
        assert!(e.is_authentication_failed() && e.is_token_expired());
        let e = service(
            400,
            r#"{"code":"BadRequest","message":"Getting static credential is not allowed because this cluster is set to disable local accounts."}"#,
            "/x",
        );
        assert!(e.is_local_accounts_disabled());
        assert!(e.to_string().contains("use the user credentials instead"));
    }
}
