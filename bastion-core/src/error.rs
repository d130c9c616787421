//! The error type of bastion-core. Every variant says what failed and, where it can, what to do.

use std::io;
use std::time::Duration;

use crate::protocol::ProtocolError;

/// What bastion-core was doing when an HTTP error came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `POST /api/tokens`.
    TokenExchange,
    /// `DELETE /api/tokens/{authToken}`.
    DeleteSession,
    /// The Developer SKU `POST /api/connection`.
    DataPodLookup,
    /// The WebSocket upgrade `GET`.
    WebSocketUpgrade,
    /// Any other request sent through [`crate::HttpsClient`].
    Request,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Operation::TokenExchange => "token exchange (POST /api/tokens)",
            Operation::DeleteSession => "session delete (DELETE /api/tokens)",
            Operation::DataPodLookup => "data-pod lookup (POST /api/connection)",
            Operation::WebSocketUpgrade => "WebSocket upgrade",
            Operation::Request => "request",
        })
    }
}

/// Errors of bastion-core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input to the protocol layer, or a reply that does not parse.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),

    /// Invalid configuration (CA file, options).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The credential could not produce an ARM access token.
    #[error(
        "could not get an Azure access token: {0}; sign in (e.g. `az login`) or choose another credential"
    )]
    Credential(String),

    /// The TCP, proxy or TLS connection to an endpoint (the Bastion, ARM) failed.
    #[error("cannot connect to {endpoint}: {cause}")]
    Connect {
        /// `host:port`.
        endpoint: String,
        /// The underlying cause, flattened to text.
        cause: String,
    },

    /// The connection failed after the request was sent (reset, truncated response).
    #[error("the connection to {endpoint} failed during the request: {cause}")]
    Transport {
        /// `host:port`.
        endpoint: String,
        /// The underlying cause, flattened to text.
        cause: String,
    },

    /// A step did not finish in time.
    #[error("{what} timed out after {}s", after.as_secs_f32())]
    Timeout {
        /// What timed out.
        what: &'static str,
        /// The limit that was reached.
        after: Duration,
    },

    /// The Bastion answered with a non-success HTTP status.
    #[error("{operation} failed: HTTP {status} {reason}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    Http {
        /// What was being done.
        operation: Operation,
        /// The status code.
        status: u16,
        /// The canonical reason phrase.
        reason: String,
        /// The service's `message`, or an excerpt of a non-JSON body.
        message: String,
    },

    /// The server sent `101` and then an HTTP response instead of WebSocket frames.
    #[error("Bastion rejected the tunnel: in-band HTTP {status} after upgrade ({status_line})")]
    InBandHttp {
        /// The status code of the in-band response (0 when unreadable).
        status: u16,
        /// The status line, e.g. `HTTP/1.1 400 Bad Request`.
        status_line: String,
    },

    /// The WebSocket handshake response was unacceptable (wrong `Sec-WebSocket-Accept`, ...).
    #[error("WebSocket handshake failed: {0}")]
    Handshake(String),

    /// A WebSocket protocol error on an established tunnel.
    #[error("WebSocket error: {0}")]
    WebSocket(String),

    /// The Bastion closed the tunnel with a close code other than a normal closure.
    #[error("Bastion closed the tunnel with code {code}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") })]
    Closed {
        /// The WebSocket close code.
        code: u16,
        /// The close reason.
        reason: String,
    },

    /// The Bastion sent a text frame; the tunnel carries binary frames only.
    #[error("protocol violation: the Bastion sent a text frame ({excerpt:?})")]
    TextFrame {
        /// The start of the text.
        excerpt: String,
    },

    /// A local I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// The Developer SKU or IP connect allows only ports 22 and 3389 unless any port is allowed
    /// ([`crate::TunnelConfig::allow_any_port`]).
    #[error(
        "{by} allows only ports 22 and 3389 by default, not {port}; a Standard or Premium Bastion with native client support accepts any port"
    )]
    PortNotAllowed {
        /// The port asked for.
        port: u16,
        /// What restricts it: the Developer SKU, or IP connect.
        by: &'static str,
    },

    /// A local address to listen on is taken by another process.
    #[error(
        "local port {port} is already in use on {ip}: choose another port, or 0 for a free one"
    )]
    LocalPortInUse {
        /// The address.
        ip: std::net::IpAddr,
        /// The port.
        port: u16,
    },

    /// The tunnel is shutting down; no new connections are made.
    #[error("the tunnel is shutting down")]
    ShuttingDown,
}

impl Error {
    /// The HTTP status if the Bastion answered with an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The WebSocket close code if the Bastion closed the tunnel abnormally.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            Error::Closed { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the failure is the in-band `HTTP/1.1 4xx` after a `101` (see
    /// docs/protocol.md#in-band-http-errors).
    pub fn is_in_band_http(&self) -> bool {
        matches!(self, Error::InBandHttp { .. })
    }

    /// Whether the failure is an authentication or authorization problem (401/403 or credential).
    pub fn is_auth(&self) -> bool {
        matches!(self, Error::Credential(_)) || matches!(self.status(), Some(401 | 403))
    }

    /// Whether a timeout ended the operation.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout { .. })
    }

    /// Recovers a bastion-core error carried inside an `io::Error` (as `TunnelStream` reports
    /// them), or wraps the `io::Error`.
    pub fn from_io(err: io::Error) -> Self {
        if err.get_ref().is_some_and(|e| e.is::<Error>()) {
            match err.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(e)) => *e,
                Some(Err(other)) => Error::Io(io::Error::other(other)),
                None => Error::Io(io::Error::other("unknown I/O error")),
            }
        } else {
            Error::Io(err)
        }
    }

    /// Wraps this error in an `io::Error` so it can travel through `AsyncRead`/`AsyncWrite`.
    pub fn into_io(self) -> io::Error {
        match self {
            Error::Io(e) => e,
            other => {
                let kind = match &other {
                    Error::Closed { .. } => io::ErrorKind::ConnectionAborted,
                    Error::Timeout { .. } => io::ErrorKind::TimedOut,
                    Error::InBandHttp { .. } | Error::TextFrame { .. } => {
                        io::ErrorKind::InvalidData
                    }
                    _ => io::ErrorKind::Other,
                };
                io::Error::new(kind, other)
            }
        }
    }
}

/// Result alias for bastion-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_names_status_and_message() {
        let e = Error::Http {
            operation: Operation::TokenExchange,
            status: 403,
            reason: "Forbidden".into(),
            message: "Tunneling is disabled".into(),
        };
        assert_eq!(
            e.to_string(),
            "token exchange (POST /api/tokens) failed: HTTP 403 Forbidden: Tunneling is disabled"
        );
        assert!(e.is_auth());
    }

    #[test]
    fn io_round_trip_keeps_the_error() {
        let e = Error::Closed {
            code: 1011,
            reason: "target unreachable".into(),
        };
        let back = Error::from_io(e.into_io());
        assert_eq!(back.close_code(), Some(1011));
        let plain = Error::from_io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(plain, Error::Io(_)));
    }
}
