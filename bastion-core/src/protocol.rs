//! The Bastion data-plane protocol without I/O: request bodies, response parsing, URL builders.
//!
//! Everything here is a pure function of its inputs, so the wire format is unit-tested without
//! sockets. The format is described in docs/protocol.md (#token-exchange, #websocket-url,
//! #session-delete and #data-pod-lookup).

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;
use url::Url;

use crate::Secret;

/// The OAuth scope of the ARM token that the Bastion accepts as `aztoken` (public cloud).
pub const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The `protocol` form value: the tunnel carries raw TCP bytes whatever runs on top.
pub const TUNNEL_PROTOCOL: &str = "tcptunnel";
/// Path of the token exchange.
pub const TOKENS_PATH: &str = "/api/tokens";
/// Path of the Developer SKU data-pod lookup.
pub const CONNECTION_PATH: &str = "/api/connection";
/// The `connectionType` the Developer SKU lookup sends.
pub const NATIVE_CLIENT_CONNECTION_TYPE: &str = "nativeclient";
/// The header (and WebSocket query key) that names the node holding a session.
pub const NODE_ID_HEADER: &str = "X-Node-Id";
/// Longest excerpt of a non-JSON error body kept for an error message.
pub const ERROR_EXCERPT_CHARS: usize = 200;

/// A protocol-level problem: bad input to a builder, or a reply that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The Bastion endpoint is not `host` or `host:port`.
    #[error(
        "invalid Bastion endpoint {input:?}: {reason}; expected HOST or HOST:PORT, e.g. bst-1234.bastion.azure.com"
    )]
    InvalidEndpoint {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A target resource id that is not an ARM resource id.
    #[error(
        "invalid target resource id {input:?}: {reason}; expected /subscriptions/{{sub}}/resourceGroups/{{rg}}/providers/{{Namespace}}/{{type}}/{{name}}"
    )]
    InvalidResourceId {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A target port of 0.
    #[error("invalid target port 0: use a port from 1 to 65535")]
    InvalidPort,
    /// The token response lacks a required field or is not JSON.
    #[error("the Bastion token response is invalid: {0}")]
    InvalidTokenResponse(String),
    /// The Developer SKU lookup did not return a DNS host name.
    #[error("the Bastion data-pod lookup returned {0:?}, which is not a DNS host name")]
    InvalidDataPodHost(String),
}

/// Which URL family a Bastion endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum EndpointKind {
    /// Basic/Standard/Premium: `wss://{dnsName}/webtunnelv2/{websocketToken}?X-Node-Id={nodeId}`.
    #[default]
    Standard,
    /// Developer/QuickConnect: a data pod found through `POST /api/connection`, then
    /// `wss://{dataPod}/omni/webtunnel/{websocketToken}`.
    Developer,
}

/// The HTTPS endpoint of a Bastion host (`properties.dnsName`, or a Developer data pod).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// Parses `HOST` or `HOST:PORT` (port defaults to 443). A scheme (`https://`) and a trailing
    /// `/` are tolerated; IPv6 literals go in brackets.
    pub fn parse(input: &str) -> Result<Self, ProtocolError> {
        let err = |reason| ProtocolError::InvalidEndpoint {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        let rest = trimmed
            .strip_prefix("https://")
            .or_else(|| trimmed.strip_prefix("wss://"))
            .unwrap_or(trimmed);
        if rest.contains("://") {
            return Err(err("only https endpoints are supported"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Err(err("it is empty"));
        }
        if rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('@') {
            return Err(err("it must not contain a path, query or user"));
        }
        let url = Url::parse(&format!("https://{rest}")).map_err(|_| err("not a host name"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => {
                if !is_dns_name(d) {
                    return Err(err("not a valid DNS host name"));
                }
                d.to_owned()
            }
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            None => return Err(err("no host")),
        };
        if rest.ends_with(':') {
            return Err(err("the port is empty"));
        }
        let port = url.port().unwrap_or(443);
        if port == 0 {
            return Err(err("port 0 is not a valid port"));
        }
        Ok(Self { host, port })
    }

    /// The host name (IPv6 literals in brackets), also the TLS server name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The TCP port (443 unless given).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host` when the port is 443, `host:port` otherwise: the `Host` header value.
    pub fn authority(&self) -> String {
        if self.port == 443 {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `https://{authority}/`.
    pub fn https_url(&self) -> Url {
        url_for(&self.authority(), "https")
    }

    /// `wss://{authority}/`.
    pub fn wss_url(&self) -> Url {
        url_for(&self.authority(), "wss")
    }

    /// The host name without IPv6 brackets, as used for TLS SNI / verification.
    pub fn server_name(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }
}

fn url_for(authority: &str, scheme: &str) -> Url {
    // The authority was validated by `Endpoint::parse`, so this parse cannot fail; fall back to a
    // harmless URL rather than panic if that invariant is ever broken.
    Url::parse(&format!("{scheme}://{authority}/")).unwrap_or_else(|_| {
        Url::parse("https://invalid.invalid/").unwrap_or_else(|_| unreachable!())
    })
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority())
    }
}

impl std::str::FromStr for Endpoint {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `name` is a syntactically valid DNS host name (letters, digits, `-`, dots).
pub fn is_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// What a tunnel connects to behind the Bastion.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    resource_id: String,
    port: u16,
    ip: Option<IpAddr>,
}

impl Target {
    /// A target ARM resource (VM, VMSS instance, AKS cluster, ...) and the port on it. The id is
    /// sent exactly as given (the AKS RP's lowercase `resourcegroups` included) after a shape check.
    pub fn resource(resource_id: impl Into<String>, port: u16) -> Result<Self, ProtocolError> {
        let resource_id = resource_id.into();
        check_resource_id(&resource_id)?;
        if port == 0 {
            return Err(ProtocolError::InvalidPort);
        }
        let resource_id = match resource_id.strip_suffix('/') {
            Some(s) => s.to_owned(),
            None => resource_id,
        };
        Ok(Self {
            resource_id,
            port,
            ip: None,
        })
    }

    /// An IP-connect target: the `bh-hostConnect/{ip}` pseudo-id in the Bastion's own
    /// subscription and resource group, plus the `hostname` form field.
    pub fn ip_connect(
        bastion_resource_id: &str,
        ip: IpAddr,
        port: u16,
    ) -> Result<Self, ProtocolError> {
        check_resource_id(bastion_resource_id)?;
        if port == 0 {
            return Err(ProtocolError::InvalidPort);
        }
        let segs: Vec<&str> = bastion_resource_id.trim_matches('/').split('/').collect();
        let resource_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/bh-hostConnect/{}",
            segs[1], segs[3], ip
        );
        Ok(Self {
            resource_id,
            port,
            ip: Some(ip),
        })
    }

    /// The `resourceId` form value.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// The `workloadHostPort` form value.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The IP literal for IP connect (sent as `hostname`), `None` otherwise.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{ip} port {} (IP connect)", self.port),
            None => write!(f, "{} port {}", self.resource_id, self.port),
        }
    }
}

/// Checks the shape `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{name}[/{t}/{n}]…`,
/// keywords case-insensitive.
fn check_resource_id(id: &str) -> Result<(), ProtocolError> {
    let err = |reason| ProtocolError::InvalidResourceId {
        input: id.to_owned(),
        reason,
    };
    let Some(body) = id.strip_prefix('/') else {
        return Err(err("it must start with /subscriptions/"));
    };
    let body = body.strip_suffix('/').unwrap_or(body);
    let segs: Vec<&str> = body.split('/').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(err("it has an empty segment"));
    }
    if segs
        .iter()
        .any(|s| s.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(err("it contains white space"));
    }
    if !segs[0].eq_ignore_ascii_case("subscriptions") || segs.len() < 2 {
        return Err(err("it must start with /subscriptions/"));
    }
    if segs.len() < 4 || !segs[2].eq_ignore_ascii_case("resourceGroups") {
        return Err(err("the resourceGroups segment is missing"));
    }
    if segs.len() < 5 || !segs[4].eq_ignore_ascii_case("providers") {
        return Err(err("the providers segment is missing"));
    }
    if segs.len() < 8 || !segs.len().is_multiple_of(2) {
        return Err(err("the provider namespace, type and name are incomplete"));
    }
    Ok(())
}

/// The form body of `POST /api/tokens`: `resourceId`, `protocol`, `workloadHostPort`, `aztoken`,
/// and `hostname` for IP connect, in that order. Never a `token` key.
pub fn token_request_body(target: &Target, aztoken: &Secret) -> Secret {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("resourceId", &target.resource_id)
        .append_pair("protocol", TUNNEL_PROTOCOL)
        .append_pair("workloadHostPort", &target.port.to_string())
        .append_pair("aztoken", aztoken.expose());
    if let Some(ip) = target.ip {
        form.append_pair("hostname", &ip.to_string());
    }
    Secret::new(form.finish())
}

/// A successful token exchange: one Bastion session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenResponse {
    /// The session; needed for DELETE.
    pub auth_token: Secret,
    /// The node holding the session (WebSocket query and DELETE header).
    pub node_id: String,
    /// One-time WebSocket credential.
    pub websocket_token: Secret,
}

/// A non-empty string field of a JSON object; any other type counts as absent.
fn string_field(value: &serde_json::Value, key: &str) -> Option<String> {
    value
        .get(key)?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Parses the JSON body of a 200 from `POST /api/tokens`, whatever its Content-Type. Extra keys
/// are ignored; the three required keys must be non-empty strings.
pub fn parse_token_response(body: &[u8]) -> Result<TokenResponse, ProtocolError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| ProtocolError::InvalidTokenResponse("not a JSON object".into()))?;
    let need = |name: &str| {
        string_field(&value, name).ok_or_else(|| {
            ProtocolError::InvalidTokenResponse(format!(
                "`{name}` is missing, empty or not a string"
            ))
        })
    };
    Ok(TokenResponse {
        auth_token: Secret::new(need("authToken")?),
        node_id: need("nodeId")?,
        websocket_token: Secret::new(need("websocketToken")?),
    })
}

/// The session a malformed token response still names (its `authToken`, and its `nodeId` when
/// readable), so the caller can DELETE it instead of leaking it. Read leniently: a field of the
/// wrong type elsewhere does not hide a usable `authToken`.
pub fn minted_session(body: &[u8]) -> Option<(Secret, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let auth_token = string_field(&value, "authToken")?;
    let node_id = string_field(&value, "nodeId").unwrap_or_default();
    Some((Secret::new(auth_token), node_id))
}

/// The WebSocket URL of a session. The result carries the WebSocket token: never log it.
pub fn websocket_url(endpoint: &Endpoint, kind: EndpointKind, session: &TokenResponse) -> Url {
    let mut url = endpoint.wss_url();
    match kind {
        EndpointKind::Standard => {
            if let Ok(mut segs) = url.path_segments_mut() {
                segs.clear()
                    .push("webtunnelv2")
                    .push(session.websocket_token.expose());
            }
            url.query_pairs_mut()
                .append_pair(NODE_ID_HEADER, &session.node_id);
        }
        EndpointKind::Developer => {
            if let Ok(mut segs) = url.path_segments_mut() {
                segs.clear()
                    .push("omni")
                    .push("webtunnel")
                    .push(session.websocket_token.expose());
            }
        }
    }
    url
}

/// The request target (path) of the DELETE that ends a session: `/api/tokens/{authToken}`.
/// Carries the auth token: never log it.
pub fn delete_path(auth_token: &Secret) -> Secret {
    let mut url = url_for("localhost", "https");
    if let Ok(mut segs) = url.path_segments_mut() {
        segs.clear()
            .push("api")
            .push("tokens")
            .push(auth_token.expose());
    }
    Secret::new(url.path().to_owned())
}

/// The JSON body of the Developer SKU `POST /api/connection`.
pub fn connection_request_body(
    target: &Target,
    bastion_resource_id: &str,
    aztoken: &Secret,
) -> Secret {
    let body = serde_json::json!({
        "resourceId": target.resource_id,
        "bastionResourceId": bastion_resource_id,
        "vmPort": target.port,
        "azToken": aztoken.expose(),
        "connectionType": NATIVE_CLIENT_CONNECTION_TYPE,
    });
    Secret::new(body.to_string())
}

/// Parses the plain-text reply of `POST /api/connection`: a data-pod host name, trimmed of ASCII
/// white space (an optional `:port` is accepted).
pub fn parse_connection_reply(body: &[u8]) -> Result<Endpoint, ProtocolError> {
    let text = String::from_utf8_lossy(body);
    let host = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let bad = || ProtocolError::InvalidDataPodHost(excerpt(host.as_bytes()));
    let (name, _) = host.rsplit_once(':').unwrap_or((host, ""));
    if !is_dns_name(name) {
        return Err(bad());
    }
    Endpoint::parse(host).map_err(|_| bad())
}

/// The human-readable part of an error body: the JSON `message` (plus `type` when present), or a
/// sanitised excerpt of at most [`ERROR_EXCERPT_CHARS`] characters of a non-JSON body.
pub fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    if let Ok(ErrorBody {
        message: Some(message),
        kind,
    }) = serde_json::from_slice::<ErrorBody>(body)
    {
        let message = excerpt(message.as_bytes());
        return match kind {
            Some(kind) if !kind.is_empty() => format!("{message} ({kind})"),
            _ => message,
        };
    }
    excerpt(body)
}

/// Whether `c` could change what a terminal shows beyond the character itself: control
/// characters (escape sequences start with one) and the invisible bidirectional and
/// zero-width formatting characters.
fn is_unsafe_for_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Server-supplied text made safe to print: control and invisible formatting characters (escape
/// sequences included) become spaces, runs of white space fold to one, and at most `max_chars`
/// characters are kept.
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut last_space = true;
    for c in text.chars() {
        if c.is_whitespace() || is_unsafe_for_terminal(c) {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        if out.chars().count() >= max_chars {
            out.push('…');
            break;
        }
        out.push(c);
        last_space = false;
    }
    out.trim_end().to_owned()
}

/// At most [`ERROR_EXCERPT_CHARS`] characters, control characters and runs of white space folded
/// to one space, HTML tags dropped.
pub fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut in_tag = false;
    let mut last_space = true;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            _ if in_tag => {}
            c if c.is_whitespace() || is_unsafe_for_terminal(c) => {
                if !last_space {
                    out.push(' ');
                    last_space = true;
                }
            }
            c => {
                out.push(c);
                last_space = false;
            }
        }
        if out.chars().count() >= ERROR_EXCERPT_CHARS {
            out.push('…');
            break;
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    const AKS: &str = "/subscriptions/22222222-2222-2222-2222-222222222222/resourcegroups/aks-rg/providers/Microsoft.ContainerService/managedClusters/myaks";
    const BASTION: &str = "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/bastionHosts/hub-bastion";

    #[test]
    fn token_form_is_exactly_the_reference_shape() {
        let target = Target::resource(AKS, 443).unwrap();
        let body = token_request_body(&target, &Secret::new("eyJ0eXAi.a b/c"));
        assert_eq!(
            body.expose(),
            "resourceId=%2Fsubscriptions%2F22222222-2222-2222-2222-222222222222%2Fresourcegroups%2Faks-rg%2Fproviders%2FMicrosoft.ContainerService%2FmanagedClusters%2Fmyaks&protocol=tcptunnel&workloadHostPort=443&aztoken=eyJ0eXAi.a+b%2Fc"
        );
        assert!(!body.expose().contains("&token=") && !body.expose().starts_with("token="));
    }

    #[test]
    fn ip_connect_uses_the_bastion_subscription_and_group_and_sends_hostname() {
        let target = Target::ip_connect(BASTION, "10.1.20.110".parse().unwrap(), 22).unwrap();
        assert_eq!(
            target.resource_id(),
            "/subscriptions/1111/resourceGroups/hub-rg/providers/Microsoft.Network/bh-hostConnect/10.1.20.110"
        );
        let body = token_request_body(&target, &Secret::new("t"));
        assert!(body.expose().ends_with("&aztoken=t&hostname=10.1.20.110"));
        let v6 = Target::ip_connect(BASTION, "fd00::1".parse().unwrap(), 22).unwrap();
        assert!(v6.resource_id().ends_with("/bh-hostConnect/fd00::1"));
    }

    #[test]
    fn resource_ids_are_shape_checked() {
        assert!(Target::resource(AKS, 443).is_ok());
        assert!(Target::resource(format!("{AKS}/"), 443).is_ok());
        for bad in [
            "",
            "myaks",
            "/subscriptions/",
            "/subscriptions/x/resourceGroups/rg",
            "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines",
            "/subscriptions/x//rg/providers/a/b/c",
            "/subscriptions/x/resourceGroups/r g/providers/a/b/c",
        ] {
            assert!(
                matches!(
                    Target::resource(bad, 22),
                    Err(ProtocolError::InvalidResourceId { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(Target::resource(AKS, 0), Err(ProtocolError::InvalidPort));
    }

    #[test]
    fn token_response_parses_and_tolerates_extra_keys() {
        let body = br#"{"authToken":"a1","username":"u","dataSource":"d","nodeId":"n1","availableDataSources":["x"],"websocketToken":"w1","future":{"x":1}}"#;
        let r = parse_token_response(body).unwrap();
        assert_eq!(r.auth_token.expose(), "a1");
        assert_eq!(r.node_id, "n1");
        assert_eq!(r.websocket_token.expose(), "w1");
    }

    #[test]
    fn token_response_missing_fields_are_errors() {
        for body in [
            &br#"{"authToken":"a","nodeId":"n"}"#[..],
            br#"{"authToken":"","nodeId":"n","websocketToken":"w"}"#,
            br#"<html>502</html>"#,
            br#"{"authToken":1,"nodeId":"n","websocketToken":"w"}"#,
        ] {
            assert!(parse_token_response(body).is_err());
        }
        let err = parse_token_response(br#"{"authToken":"a","nodeId":"n"}"#).unwrap_err();
        assert!(err.to_string().contains("websocketToken"));
        let err = parse_token_response(br#"{"authToken":"a","nodeId":"n","websocketToken":5}"#)
            .unwrap_err();
        assert!(err.to_string().contains("`websocketToken`"), "{err}");
    }

    #[test]
    fn a_malformed_reply_still_names_its_session_for_the_delete() {
        let (auth, node) =
            minted_session(br#"{"authToken":"a1","nodeId":"n1","websocketToken":5}"#).unwrap();
        assert_eq!((auth.expose(), node.as_str()), ("a1", "n1"));
        let (auth, node) = minted_session(br#"{"authToken":"a1","nodeId":7}"#).unwrap();
        assert_eq!((auth.expose(), node.as_str()), ("a1", ""));
        assert!(minted_session(br#"{"authToken":9,"nodeId":"n"}"#).is_none());
        assert!(minted_session(b"<html>").is_none());
    }

    fn session(ws: &str, node: &str) -> TokenResponse {
        TokenResponse {
            auth_token: Secret::new("a"),
            node_id: node.into(),
            websocket_token: Secret::new(ws),
        }
    }

    #[test]
    fn websocket_urls_per_endpoint_kind() {
        let ep = Endpoint::parse("bst-1.bastion.azure.com").unwrap();
        let url = websocket_url(&ep, EndpointKind::Standard, &session("w1", "n1"));
        assert_eq!(
            url.as_str(),
            "wss://bst-1.bastion.azure.com/webtunnelv2/w1?X-Node-Id=n1"
        );
        let url = websocket_url(&ep, EndpointKind::Developer, &session("w1", "n1"));
        assert_eq!(
            url.as_str(),
            "wss://bst-1.bastion.azure.com/omni/webtunnel/w1"
        );
        let ep = Endpoint::parse("127.0.0.1:8443").unwrap();
        let url = websocket_url(&ep, EndpointKind::Standard, &session("a+b/c=%", "n 1&x"));
        assert_eq!(
            url.as_str(),
            "wss://127.0.0.1:8443/webtunnelv2/a+b%2Fc=%25?X-Node-Id=n+1%26x"
        );
    }

    #[test]
    fn delete_path_encodes_the_token() {
        assert_eq!(delete_path(&Secret::new("abc")).expose(), "/api/tokens/abc");
        assert_eq!(
            delete_path(&Secret::new("a/b%c")).expose(),
            "/api/tokens/a%2Fb%25c"
        );
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("bst-1.bastion.azure.com").unwrap();
        assert_eq!(
            (e.host(), e.port(), e.authority().as_str()),
            ("bst-1.bastion.azure.com", 443, "bst-1.bastion.azure.com")
        );
        let e = Endpoint::parse("https://localhost:8443/").unwrap();
        assert_eq!(e.authority(), "localhost:8443");
        let e = Endpoint::parse("[::1]:9000").unwrap();
        assert_eq!((e.server_name(), e.port()), ("::1", 9000));
        for bad in [
            "",
            "http://x",
            "host:0",
            "host:99999",
            "host:",
            "a/b",
            "bad host",
            "-x.com",
            "user@host",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn developer_connection_request_and_reply() {
        let target = Target::resource(AKS, 22).unwrap();
        let body = connection_request_body(&target, BASTION, &Secret::new("tok"));
        let v: serde_json::Value = serde_json::from_str(body.expose()).unwrap();
        assert_eq!(v["azToken"], "tok");
        assert_eq!(v["vmPort"], 22);
        assert_eq!(v["connectionType"], "nativeclient");
        assert_eq!(v["bastionResourceId"], BASTION);
        assert_eq!(v["resourceId"], AKS);
        assert_eq!(
            parse_connection_reply(b"  pod.example\r\n").unwrap().host(),
            "pod.example"
        );
        assert_eq!(
            parse_connection_reply(b"pod.example:8443").unwrap().port(),
            8443
        );
        assert!(parse_connection_reply(b"{\"message\":\"boom\"}").is_err());
        assert!(parse_connection_reply(b"").is_err());
    }

    #[test]
    fn server_text_loses_escape_sequences_and_invisible_formatting() {
        let evil = "bye\u{1b}[2J\u{1b}]0;pwned\u{7}\u{202e}txt.exe\r\nnext";
        let clean = sanitize(evil, 200);
        assert!(!clean.chars().any(is_unsafe_for_terminal), "{clean:?}");
        assert!(
            clean.starts_with("bye [2J ]0;pwned txt.exe next"),
            "{clean:?}"
        );
        assert_eq!(
            sanitize(&"x".repeat(500), 10),
            format!("{}…", "x".repeat(10))
        );
        assert!(!excerpt("a\u{1b}[31mred".as_bytes()).contains('\u{1b}'));
    }

    #[test]
    fn error_messages_prefer_json_message_and_excerpt_html() {
        assert_eq!(
            error_message(br#"{"message":"Tunneling is disabled"}"#),
            "Tunneling is disabled"
        );
        assert_eq!(
            error_message(br#"{"message":"nope","type":"PERMISSION_DENIED"}"#),
            "nope (PERMISSION_DENIED)"
        );
        let html = b"<html><body><h1>502 Bad Gateway</h1>\n\n<p>nginx</p></body></html>";
        assert_eq!(error_message(html), "502 Bad Gateway nginx");
        let long = vec![b'x'; 1000];
        assert!(error_message(&long).chars().count() <= ERROR_EXCERPT_CHARS + 1);
    }
}
