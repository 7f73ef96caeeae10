//! A client-side request rate limit: requests are spaced `1 / rate` apart, so the upstream
//! never sees more than `rate` requests in any second from this source (no bursts). Each
//! caller reserves the next free slot under a short lock, then sleeps until it comes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Spaces requests evenly at a fixed rate.
#[derive(Debug)]
pub struct RateLimiter {
    spacing: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// A limiter for `per_sec` requests per second; `None` for 0 (no limit).
    pub fn new(per_sec: f64) -> Option<RateLimiter> {
        if per_sec <= 0.0 || !per_sec.is_finite() {
            return None;
        }
        // At most one request a day even for absurdly small rates.
        let spacing = Duration::from_secs_f64((1.0 / per_sec).min(86_400.0));
        Some(RateLimiter {
            spacing,
            next: Mutex::new(None),
        })
    }

    /// Waits for the next slot.
    pub async fn acquire(&self) {
        let at = {
            let now = Instant::now();
            // A poisoned lock only means another caller panicked mid-update of an Instant;
            // the value is still a valid slot.
            let mut next = self
                .next
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = match *next {
                Some(t) if t > now => t,
                _ => now,
            };
            *next = Some(at + self.spacing);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spaces_requests_at_the_rate() {
        let limiter = RateLimiter::new(50.0).unwrap();
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // The first goes at once, the next five 20 ms apart.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(100), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        assert!(RateLimiter::new(0.0).is_none());
        assert!(RateLimiter::new(f64::NAN).is_none());
    }
}
