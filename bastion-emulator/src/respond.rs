//! The response toolkit every emulator shares: canned responses, body reading, path and header
//! parsing.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

/// The response type of every handler.
pub(crate) type Resp = Response<Full<Bytes>>;

/// Request bodies larger than this are refused.
const MAX_BODY: usize = 1 << 20;
/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with `body` and `content_type`.
pub(crate) fn with_body(code: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status(code);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON response.
pub(crate) fn json(code: u16, value: &impl serde::Serialize) -> Resp {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    with_body(code, "application/json", body)
}

/// A Guacamole-style JSON error: `{"message": ..., "type": ...}` (`type` omitted if `None`).
pub(crate) fn error(code: u16, message: &str, kind: Option<&str>) -> Resp {
    let mut v = serde_json::json!({ "message": message });
    if let Some(kind) = kind {
        v["type"] = serde_json::Value::from(kind);
    }
    json(code, &v)
}

/// `text/plain`.
pub(crate) fn text(code: u16, body: impl Into<String>) -> Resp {
    with_body(code, "text/plain", body.into())
}

/// No body.
pub(crate) fn empty(code: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status(code);
    r
}

pub(crate) fn reason(code: u16) -> &'static str {
    status(code).canonical_reason().unwrap_or("Error")
}

/// A front-end proxy's HTML error page (like an Application Gateway 502).
pub(crate) fn html_error(code: u16) -> Resp {
    let title = format!("{code} {}", reason(code));
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>Microsoft-Azure-Application-Gateway/v2</center>\r\n</body>\r\n</html>\r\n"
    );
    with_body(code, "text/html", body)
}

/// Reads a whole request body (≤ 1 MiB, ≤ 10 s).
pub(crate) async fn read_body(body: Incoming) -> Result<Bytes, String> {
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => Err(format!("cannot read the request body: {e}")),
        Err(_) => Err("timed out reading the request body".into()),
    }
}

/// The `Host` header (or URI authority) without a port, lowercased.
pub(crate) fn host_of(parts: &http::request::Parts) -> Option<String> {
    let raw = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))?;
    Some(strip_port(&raw).to_ascii_lowercase())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.contains(':') => h,
        _ => host,
    }
}

/// A header as text.
pub(crate) fn header<'a>(parts: &'a http::request::Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// A query parameter, form-decoded (as a servlet container would).
pub(crate) fn query_param(uri: &http::Uri, name: &str) -> Option<String> {
    let q = uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Percent-decodes one path segment (`+` stays `+`). `None` for invalid escapes or UTF-8.
pub(crate) fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The single path segment after `prefix`, or `None` if the path has more segments.
pub(crate) fn tail_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_plus() {
        assert_eq!(percent_decode("a%2Bb%2F%3D%25+c").unwrap(), "a+b/=%+c");
        assert!(percent_decode("%zz").is_none());
        assert!(percent_decode("%4").is_none());
    }

    #[test]
    fn hosts_lose_ports() {
        assert_eq!(strip_port("bst.example:8443"), "bst.example");
        assert_eq!(strip_port("[::1]:443"), "::1");
        assert_eq!(strip_port("bst.example"), "bst.example");
    }

    #[test]
    fn tail_segments() {
        assert_eq!(tail_segment("/api/tokens/abc", "/api/tokens/"), Some("abc"));
        assert_eq!(tail_segment("/api/tokens/a/b", "/api/tokens/"), None);
        assert_eq!(tail_segment("/api/tokens/", "/api/tokens/"), None);
    }
}
