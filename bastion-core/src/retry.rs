//! The one retry policy of the workspace: bounded attempts, a jittered exponential backoff, and
//! the server's `Retry-After` honoured up to a cap. The HTTPS transport applies it to the
//! Bastion's POSTs; bastion-arm applies the same type to ARM reads.

use std::time::Duration;

use rand::RngExt;

/// When and how long to wait before retrying a failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (2 → at most 3 requests).
    pub max_retries: u32,
    /// The first backoff; doubled for each further retry, with ±25 % jitter.
    pub initial_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; longer values are cut to this.
    pub max_retry_after: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_total: Duration,
    /// The HTTP statuses worth retrying (failures to connect always are).
    pub statuses: Vec<u16>,
}

impl Default for RetryPolicy {
    /// The Bastion's defaults: two retries of 429/502/503/504, starting at half a second.
    fn default() -> Self {
        Self {
            max_retries: 2,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(30),
            max_total: Duration::from_secs(60),
            statuses: vec![429, 502, 503, 504],
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// Whether `status` is one to retry.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// Whether retry number `retry` (1 for the first) may start `elapsed` after the first
    /// attempt.
    pub fn allows(&self, retry: u32, elapsed: Duration) -> bool {
        retry <= self.max_retries && elapsed < self.max_total
    }

    /// The jittered exponential backoff before retry number `retry` (1 for the first).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(16);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        // ±25 % so that many clients do not retry in lockstep.
        let factor = rand::rng().random_range(0.75..=1.25);
        base.mul_f64(factor).min(self.max_delay)
    }

    /// How long to wait before retry number `retry`: the server's `Retry-After` (capped) when
    /// it gave one, the backoff otherwise.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) => after.min(self.max_retry_after),
            None => self.backoff(retry),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let p = RetryPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(8),
            ..RetryPolicy::default()
        };
        for (retry, secs) in [(1u32, 1.0f64), (2, 2.0), (3, 4.0)] {
            let d = p.backoff(retry).as_secs_f64();
            assert!(
                d >= secs * 0.75 - 1e-9 && d <= secs * 1.25 + 1e-9,
                "{retry}: {d}"
            );
        }
        assert!(p.backoff(30) <= Duration::from_secs(8));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3600))),
            p.max_retry_after
        );
    }

    #[test]
    fn attempts_and_total_time_are_bounded() {
        let p = RetryPolicy::default();
        assert!(p.allows(2, Duration::ZERO));
        assert!(!p.allows(3, Duration::ZERO));
        assert!(!p.allows(1, p.max_total));
        assert!(!RetryPolicy::none().allows(1, Duration::ZERO));
        assert!(p.retries_status(503) && !p.retries_status(500));
    }
}
