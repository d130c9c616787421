//! Fault injection for the ARM emulator: per-route errors, throttling, transient failures,
//! malformed bodies, latency and dropped connections.

use std::time::Duration;

/// What a matching request gets instead of its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FaultKind {
    /// An ARM error response with this status, code and message.
    Error {
        /// HTTP status.
        status: u16,
        /// ARM error code.
        code: String,
        /// ARM error message.
        message: String,
    },
    /// 429 `TooManyRequests` with `Retry-After` (whole seconds).
    Throttle {
        /// The `Retry-After` value.
        retry_after: Duration,
    },
    /// 200 with a body that is not valid JSON.
    MalformedJson,
    /// Answer normally, after this delay.
    Latency(Duration),
    /// Close the connection without answering.
    ResetConnection,
}

/// One injected fault: which requests it hits, what they get, and how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Only this method (`GET`, `POST`); `None` for any.
    pub method: Option<String>,
    /// Case-insensitive substring of the request path; `""` matches every ARM route.
    pub path_contains: String,
    /// What happens.
    pub kind: FaultKind,
    /// How many matching requests it hits; `None` for every one.
    pub remaining: Option<u32>,
}

impl Fault {
    fn new(path_contains: &str, kind: FaultKind) -> Self {
        Fault {
            method: None,
            path_contains: path_contains.to_ascii_lowercase(),
            kind,
            remaining: None,
        }
    }

    /// Every request whose path contains `path_contains` gets this ARM error.
    pub fn error(path_contains: &str, status: u16, code: &str, message: &str) -> Self {
        Self::new(
            path_contains,
            FaultKind::Error {
                status,
                code: code.to_owned(),
                message: message.to_owned(),
            },
        )
    }

    /// The next `times` matching requests get a 5xx (`InternalServerError` style), then the
    /// route answers normally again.
    pub fn transient(path_contains: &str, status: u16, times: u32) -> Self {
        let code = match status {
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            _ => "InternalServerError",
        };
        Self::error(
            path_contains,
            status,
            code,
            "Encountered internal server error. Diagnostic information: timestamp '20250101T000000Z', subscription id '', tracking id '', request correlation id ''.",
        )
        .times(times)
    }

    /// 429 `TooManyRequests` with `Retry-After: {retry_after}`.
    pub fn throttle(path_contains: &str, retry_after: Duration) -> Self {
        Self::new(path_contains, FaultKind::Throttle { retry_after })
    }

    /// 200 with a body that is not JSON.
    pub fn malformed_json(path_contains: &str) -> Self {
        Self::new(path_contains, FaultKind::MalformedJson)
    }

    /// Normal answers, `delay` late.
    pub fn latency(path_contains: &str, delay: Duration) -> Self {
        Self::new(path_contains, FaultKind::Latency(delay))
    }

    /// The connection is closed without an answer.
    pub fn reset_connection(path_contains: &str) -> Self {
        Self::new(path_contains, FaultKind::ResetConnection)
    }

    /// Limits the fault to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Limits the fault to one method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    pub(crate) fn matches(&self, method: &str, path_lower: &str) -> bool {
        self.remaining != Some(0)
            && self
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && path_lower.contains(&self.path_contains)
    }
}

/// Picks the faults for one request: the total latency of matching latency faults, and the first
/// matching non-latency fault. Counted faults are used up.
pub(crate) fn take(
    faults: &mut [Fault],
    method: &str,
    path_lower: &str,
) -> (Duration, Option<FaultKind>) {
    let mut delay = Duration::ZERO;
    let mut hit = None;
    for fault in faults.iter_mut() {
        if !fault.matches(method, path_lower) {
            continue;
        }
        let is_latency = matches!(fault.kind, FaultKind::Latency(_));
        if !is_latency && hit.is_some() {
            continue;
        }
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
        }
        match &fault.kind {
            FaultKind::Latency(d) => delay += *d,
            other => hit = Some(other.clone()),
        }
    }
    (delay, hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_used_up_and_latency_adds_up() {
        let mut faults = vec![
            Fault::latency("", Duration::from_millis(5)),
            Fault::transient("/bastionhosts", 500, 2),
            Fault::error("/bastionhosts", 404, "ResourceNotFound", "gone").method("get"),
        ];
        let (d, k) = take(&mut faults, "GET", "/subscriptions/x/bastionhosts/b");
        assert_eq!(d, Duration::from_millis(5));
        assert!(matches!(k, Some(FaultKind::Error { status: 500, .. })));
        take(&mut faults, "GET", "/x/bastionhosts/b");
        let (_, k) = take(&mut faults, "GET", "/x/bastionhosts/b");
        assert!(matches!(k, Some(FaultKind::Error { status: 404, .. })));
        let (_, k) = take(&mut faults, "POST", "/x/bastionhosts/b");
        assert_eq!(k, None);
    }
}
