//! azure_core's [`HttpClient`] over bastion-core's hyper + rustls client, so ARM calls and
//! Entra ID token requests share the one TLS stack of the workspace (no reqwest).
//!
//! Connection failures, resets and timeouts become [`ErrorKind::Connection`] / [`ErrorKind::Io`],
//! which the pipeline's retry policy retries; HTTP error statuses are returned as responses for the pipeline to judge.

use azure_core::error::ErrorKind;
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::{AsyncRawResponse, Body, HttpClient, Request, StatusCode};
use bastion_core::{HttpsClient, HttpsConfig};
use bytes::Bytes;

use crate::error::ArmError;

/// An [`HttpClient`] backed by [`HttpsClient`]. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct HyperTransport {
    client: HttpsClient,
}

impl HyperTransport {
    /// Wraps an existing client (its TLS roots, resolve overrides and timeouts apply).
    pub fn new(client: HttpsClient) -> Self {
        HyperTransport { client }
    }

    /// Builds a client from `config`. Fails only on an unusable CA bundle.
    pub fn from_config(config: HttpsConfig) -> Result<Self, ArmError> {
        let client = HttpsClient::new(config)
            .map_err(|e| ArmError::Config(format!("cannot build the HTTPS client: {e}")))?;
        Ok(HyperTransport { client })
    }

    /// The underlying client.
    pub fn client(&self) -> &HttpsClient {
        &self.client
    }
}

fn to_http_request(request: &Request) -> azure_core::Result<http::Request<Bytes>> {
    let body = match request.body() {
        Body::Bytes(bytes) => bytes.clone(),
        Body::SeekableStream(_) => {
            return Err(azure_core::Error::with_message(
                ErrorKind::DataConversion,
                "streaming request bodies are not supported by this transport",
            ));
        }
    };
    let mut builder = http::Request::builder()
        .method(request.method().as_str())
        .uri(request.url().as_str());
    for (name, value) in request.headers().iter() {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(body).map_err(|e| {
        azure_core::Error::with_message(
            ErrorKind::DataConversion,
            format!("cannot convert the request: {e}"),
        )
    })
}

fn from_http_response(response: http::Response<Bytes>) -> AsyncRawResponse {
    let (parts, body) = response.into_parts();
    let mut headers = Headers::new();
    for (name, value) in &parts.headers {
        // Non-UTF-8 header values carry nothing ARM clients read; they are dropped.
        if let Ok(value) = value.to_str() {
            headers.insert(
                HeaderName::from(name.as_str().to_owned()),
                HeaderValue::from(value.to_owned()),
            );
        }
    }
    AsyncRawResponse::from_bytes(StatusCode::from(parts.status.as_u16()), headers, body)
}

fn transport_error(error: bastion_core::Error) -> azure_core::Error {
    // Both kinds are retried by the pipeline; ARM calls are reads, so a request that may have
    // reached the server is safe to send again.
    let kind = match &error {
        bastion_core::Error::Connect { .. } => ErrorKind::Connection,
        bastion_core::Error::Transport { .. }
        | bastion_core::Error::Timeout { .. }
        | bastion_core::Error::Io(_) => ErrorKind::Io,
        _ => ErrorKind::Other,
    };
    azure_core::Error::with_message(kind, error.to_string())
}

#[async_trait::async_trait]
impl HttpClient for HyperTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let request = to_http_request(request)?;
        let response = self.client.send(request).await.map_err(transport_error)?;
        Ok(from_http_response(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::{Method, Url};

    #[test]
    fn requests_keep_method_url_headers_and_body() {
        let mut req = Request::new(
            Url::parse("https://arm.test/subscriptions/1?api-version=2024-05-01").unwrap(),
            Method::Post,
        );
        req.insert_header("x-ms-client-request-id", "abc");
        req.set_body(Bytes::from_static(b""));
        let out = to_http_request(&req).unwrap();
        assert_eq!(out.method(), http::Method::POST);
        assert_eq!(
            out.uri().to_string(),
            "https://arm.test/subscriptions/1?api-version=2024-05-01"
        );
        assert_eq!(out.headers()["x-ms-client-request-id"], "abc");
        assert!(out.body().is_empty());
    }

    #[test]
    fn responses_keep_status_and_headers() {
        let resp = http::Response::builder()
            .status(429)
            .header("Retry-After", "1")
            .body(Bytes::from_static(b"{}"))
            .unwrap();
        let raw = from_http_response(resp);
        assert_eq!(raw.status(), StatusCode::TooManyRequests);
        assert_eq!(
            raw.headers()
                .get_optional_str(&HeaderName::from_static("retry-after")),
            Some("1")
        );
    }

    #[test]
    fn connection_errors_are_retryable_io_errors() {
        let e = transport_error(bastion_core::Error::Connect {
            endpoint: "arm.test:443".into(),
            cause: "refused".into(),
        });
        assert_eq!(e.kind(), &ErrorKind::Connection);
        let e = transport_error(bastion_core::Error::Transport {
            endpoint: "arm.test:443".into(),
            cause: "reset".into(),
        });
        assert_eq!(e.kind(), &ErrorKind::Io);
    }
}
