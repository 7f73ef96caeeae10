//! Reads of personal data per caller. A bank's rule: line staff cannot export the customer
//! base, and reading unusually many records raises an alarm. Routes return one record per
//! call (there is no bulk listing of customers); this counts those calls per caller in a
//! sliding window and, when a caller passes the limit, counts an alarm
//! (`hub_mass_read_alarms_total`), logs it and writes it to the audit log.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default: 200 records in 10 minutes.
pub const DEFAULT_LIMIT: u32 = 200;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);

pub struct ReadWatch {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<String, Caller>>,
}

#[derive(Default)]
struct Caller {
    /// Times of the reads inside the window (at most `limit + 1` kept).
    times: VecDeque<Instant>,
    /// Whether the alarm was raised for the current burst: raised once, cleared when the
    /// caller falls back under the limit.
    alarmed: bool,
}

impl Default for ReadWatch {
    fn default() -> Self {
        ReadWatch::new(DEFAULT_LIMIT, DEFAULT_WINDOW)
    }
}

impl ReadWatch {
    pub fn new(limit: u32, window: Duration) -> ReadWatch {
        ReadWatch {
            limit: limit.max(1),
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one record read by `principal`; true when this read raised the alarm.
    pub fn record(&self, principal: &str) -> bool {
        self.record_at(principal, Instant::now())
    }

    fn record_at(&self, principal: &str, now: Instant) -> bool {
        metrics::counter!("hub_personal_data_reads_total", "principal" => principal.to_string())
            .increment(1);
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        let c = seen.entry(principal.to_string()).or_default();
        while c
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            c.times.pop_front();
        }
        c.times.push_back(now);
        let over = c.times.len() > self.limit as usize;
        if over {
            c.times.pop_front();
        }
        let raise = over && !c.alarmed;
        c.alarmed = over || (c.alarmed && c.times.len() >= self.limit as usize);
        drop(seen);
        if raise {
            metrics::counter!("hub_mass_read_alarms_total", "principal" => principal.to_string())
                .increment(1);
            tracing::warn!(
                event = "mass_read_alarm",
                principal,
                limit = self.limit,
                window_secs = self.window.as_secs(),
                "one caller read more personal records than allowed in the window"
            );
            crate::audit::system_event(
                "mass_read_alarm",
                principal,
                &format!(
                    "more than {} records in {} s",
                    self.limit,
                    self.window.as_secs()
                ),
            );
        }
        raise
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alarm_is_raised_once_per_burst_and_per_caller() {
        let w = ReadWatch::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(!w.record_at("ann", at(0)));
        assert!(!w.record_at("ann", at(1)));
        assert!(!w.record_at("ann", at(2)));
        // The fourth read inside a minute raises it, the fifth does not again.
        assert!(w.record_at("ann", at(3)));
        assert!(!w.record_at("ann", at(4)));
        // Another caller has a count of its own.
        assert!(!w.record_at("bob", at(4)));
        // After a quiet window the count starts again.
        assert!(!w.record_at("ann", at(200)));
        assert!(!w.record_at("ann", at(201)));
        assert!(!w.record_at("ann", at(202)));
        assert!(w.record_at("ann", at(203)));
    }
}
