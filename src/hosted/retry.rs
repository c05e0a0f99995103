//! When to retry a hosted request and how long to wait: exponential backoff with
//! jitter, and the server's own `Retry-After` where it sends one.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

/// Retries of one request and the waits between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// Wait before the first retry, doubled for each later one.
    pub base_delay_ms: u64,
    /// Maximum computed wait.
    pub max_delay_ms: u64,
    /// Maximum `Retry-After` honoured. A server that requests a longer wait ends the
    /// request.
    pub max_retry_after_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 4,
            base_delay_ms: 500,
            max_delay_ms: 20_000,
            max_retry_after_ms: 60_000,
        }
    }
}

/// Returns true for a status worth another attempt: a rate limit (429) or a server
/// error (5xx).
pub fn is_retryable(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// Reads the wait that a server requests, in milliseconds: `retry-after-ms` (OpenAI),
/// else `Retry-After` as seconds or as an HTTP date relative to `now_unix_ms`.
pub fn retry_after_ms(headers: &[(String, String)], now_unix_ms: u64) -> Option<u64> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    };

    if let Some(ms) = find("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(ms.round() as u64);
        }
    }

    let value = find("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).round() as u64);
    }
    let date_ms = parse_http_date(value)?;
    Some(date_ms.saturating_sub(now_unix_ms))
}

/// Parses an IMF-fixdate such as `Wed, 21 Oct 2015 07:28:00 GMT` into Unix milliseconds.
fn parse_http_date(value: &str) -> Option<u64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };

    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| m == month)? as i64 + 1;
    let day: i64 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let clock: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [hour, minute, second] = clock.as_slice() else {
        return None;
    };

    // Days since 1970-01-01 of a proleptic Gregorian date.
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    u64::try_from(seconds).ok().map(|s| s * 1000)
}

/// Computes the waits of one request's retries, with jitter from a seeded generator so
/// that a run can be replayed.
pub struct Backoff {
    policy: RetryPolicy,
    rng: ChaCha8Rng,
}

impl Backoff {
    pub fn new(policy: RetryPolicy, seed: u64) -> Self {
        Self {
            policy,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Computes the wait before retry number `retry` (0 for the first): half of the
    /// doubled base delay, plus a random share of the other half ("equal jitter"), so that
    /// clients that failed together do not retry together. A server's `Retry-After` is a
    /// floor.
    pub fn delay_ms(&mut self, retry: u32, retry_after_ms: Option<u64>) -> u64 {
        let doubled = self
            .policy
            .base_delay_ms
            .saturating_mul(1u64 << retry.min(30))
            .min(self.policy.max_delay_ms);
        let half = doubled / 2;
        let jitter = if half == 0 {
            0
        } else {
            self.rng.next_u64() % (half + 1)
        };
        (half + jitter).max(retry_after_ms.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn retryable_statuses_are_429_and_5xx() {
        assert!(is_retryable(429));
        assert!(is_retryable(500));
        assert!(is_retryable(503));
        assert!(!is_retryable(400));
        assert!(!is_retryable(401));
        assert!(!is_retryable(404));
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        assert_eq!(
            retry_after_ms(&headers(&[("Retry-After", "2")]), 0),
            Some(2000)
        );
        assert_eq!(
            retry_after_ms(
                &headers(&[("retry-after-ms", "150"), ("retry-after", "1")]),
                0
            ),
            Some(150)
        );
        // 2015-10-21T07:28:00Z is 1445412480 s after the epoch, and `now` is 5 s before it.
        let now = 1_445_412_475_000;
        assert_eq!(
            retry_after_ms(
                &headers(&[("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT")]),
                now
            ),
            Some(5000)
        );
        assert_eq!(
            retry_after_ms(&headers(&[("Retry-After", "soon")]), 0),
            None
        );
        assert_eq!(retry_after_ms(&headers(&[]), 0), None);
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let policy = RetryPolicy::default();
        let mut backoff = Backoff::new(policy, 7);
        for retry in 0..8 {
            let doubled = (500u64 << retry).min(policy.max_delay_ms);
            let delay = backoff.delay_ms(retry, None);
            assert!(
                delay >= doubled / 2 && delay <= doubled,
                "retry {retry}: {delay} ms outside {}..={doubled}",
                doubled / 2
            );
        }
        assert_eq!(backoff.delay_ms(0, Some(9000)), 9000);
    }

    #[test]
    fn jitter_differs_between_seeds() {
        let delays = |seed| {
            let mut backoff = Backoff::new(RetryPolicy::default(), seed);
            (0..6)
                .map(|r| backoff.delay_ms(r, None))
                .collect::<Vec<_>>()
        };
        assert_ne!(delays(1), delays(2));
        assert_eq!(delays(3), delays(3));
    }
}
