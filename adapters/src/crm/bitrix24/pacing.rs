//! The client side of the portal's request limit: a token bucket.
//!
//! Bitrix24 counts requests in a leaky bucket per portal: each request adds one, the count
//! drains at `Y` per second, and a request arriving above `X` gets `503
//! QUERY_LIMIT_EXCEEDED` (X = 50, Y = 2 on most plans; 250 and 5 on Enterprise). A token
//! bucket of `burst` tokens refilled at `rate` per second, with `burst <= X` and
//! `rate <= Y`, never sends more than the portal's bucket holds. Every request of the
//! connector, retries included, takes a token first.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket shared by every task of one connector.
#[derive(Debug)]
pub struct Pacer {
    rate: f64,
    burst: f64,
    /// Tokens (negative: reserved by callers still waiting) and when they were counted.
    state: Mutex<(f64, Instant)>,
}

impl Pacer {
    /// A full bucket of `burst` tokens refilled at `rate` per second (`rate > 0`).
    pub fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Pacer {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes a token, waiting until one is due. Callers are served in the order they came.
    pub async fn acquire(&self) {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
            state.0 = (state.0 + elapsed * self.rate).min(self.burst) - 1.0;
            state.1 = now;
            if state.0 >= 0.0 {
                None
            } else {
                Some(Duration::from_secs_f64(-state.0 / self.rate))
            }
        };
        if let Some(wait) = wait {
            tokio::time::sleep(wait).await;
        }
    }

    /// The portal said its bucket is full: spend what is left, so the next request waits
    /// for a token to be refilled.
    pub fn drain(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        state.0 = (state.0 + elapsed * self.rate).min(self.burst).min(0.0);
        state.1 = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn burst_then_rate() {
        let pacer = Pacer::new(50.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            pacer.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(20),
            "the burst is free"
        );
        for _ in 0..4 {
            pacer.acquire().await;
        }
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(79) && took < Duration::from_millis(400),
            "four more at 50/s take 80 ms: {took:?}"
        );
    }

    #[tokio::test]
    async fn drain_makes_the_next_request_wait() {
        let pacer = Pacer::new(20.0, 10);
        pacer.acquire().await;
        pacer.drain();
        let start = Instant::now();
        pacer.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(49));
    }
}
