//! The dashboard's memory of the recent past: a ring buffer of samples taken from the
//! metrics every few seconds (an hour at 5 s by default), so the page can draw lag and
//! throughput over time without a time-series database. Memory is bounded by the capacity;
//! the oldest sample is dropped first. Only cumulative totals and gauges are kept; rates and
//! interval means are computed when the history is served.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;

use super::prom::{self, Series};

/// The totals and gauges of one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Unix time, seconds.
    pub t: f64,
    pub delivered: f64,
    pub published: f64,
    /// Failed deliveries plus dead letters plus quarantined rows.
    pub errors: f64,
    pub lag_sum: f64,
    pub lag_count: f64,
    /// Largest `hub_sink_oldest_undelivered_age_seconds` over the sinks, when exported.
    pub oldest_undelivered: Option<f64>,
    /// Largest `hub_kafka_consumer_lag_seconds`, when exported.
    pub consumer_lag_seconds: Option<f64>,
    /// Sum of `hub_kafka_consumer_lag_messages`, when exported.
    pub consumer_lag_messages: Option<f64>,
}

impl Sample {
    pub fn of(t: f64, series: &[Series]) -> Sample {
        let total = |name: &str| prom::sum(series, name, &[]).unwrap_or(0.0);
        Sample {
            t,
            delivered: total("hub_sink_records_delivered_total"),
            published: total("hub_source_events_published_total"),
            errors: total("hub_sink_records_failed_total")
                + total("hub_dead_letters_total")
                + total("hub_source_records_quarantined_total"),
            lag_sum: total("hub_sync_lag_seconds_sum"),
            lag_count: total("hub_sync_lag_seconds_count"),
            oldest_undelivered: prom::max(series, "hub_sink_oldest_undelivered_age_seconds"),
            consumer_lag_seconds: prom::max(series, "hub_kafka_consumer_lag_seconds"),
            consumer_lag_messages: prom::sum(series, "hub_kafka_consumer_lag_messages", &[]),
        }
    }
}

/// One point of the served history: rates and means over the interval ending at `t`, and
/// the gauges at `t`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    pub t: f64,
    pub delivered_per_sec: f64,
    pub published_per_sec: f64,
    pub errors_per_sec: f64,
    /// Mean sync lag of the events delivered in the interval; `None` when none was.
    pub mean_lag_seconds: Option<f64>,
    pub oldest_undelivered_seconds: Option<f64>,
    pub consumer_lag_seconds: Option<f64>,
    pub consumer_lag_messages: Option<f64>,
}

/// The ring buffer, plus when each supervised task was last seen restarting.
#[derive(Debug)]
pub struct History {
    capacity: usize,
    samples: VecDeque<Sample>,
    /// Task name → (last `hub_task_restarts_total`, time it last grew).
    restarts: BTreeMap<String, (f64, f64)>,
}

impl History {
    /// A history keeping at most `capacity` samples (at least 2, to have one interval).
    pub fn new(capacity: usize) -> History {
        let capacity = capacity.max(2);
        History {
            capacity,
            samples: VecDeque::with_capacity(capacity),
            restarts: BTreeMap::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Adds the sample of `series` taken at `t`, dropping the oldest one when full.
    pub fn record(&mut self, t: f64, series: &[Series]) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample::of(t, series));
        for s in series
            .iter()
            .filter(|s| s.name == "hub_task_restarts_total")
        {
            let Some(task) = s.labels.get("task") else {
                continue;
            };
            match self.restarts.get_mut(task) {
                Some((last, at)) => {
                    if s.value > *last {
                        *at = t;
                    }
                    *last = s.value;
                }
                // First seen with restarts already counted: it restarted at most one
                // interval ago as far as this history knows.
                None => {
                    self.restarts.insert(task.clone(), (s.value, t));
                }
            }
        }
    }

    /// Whether the supervisor restarted `task` within `secs` seconds before `now`.
    pub fn restarted_within(&self, task: &str, now: f64, secs: f64) -> bool {
        self.restarts
            .get(task)
            .is_some_and(|(n, at)| *n > 0.0 && now - at <= secs)
    }

    /// One point per interval between consecutive samples, oldest first.
    pub fn points(&self) -> Vec<Point> {
        let mut out = Vec::with_capacity(self.samples.len());
        let mut prev: Option<&Sample> = None;
        for s in &self.samples {
            if let Some(p) = prev {
                let dt = s.t - p.t;
                if dt > 0.0 {
                    let dlag = increase(p.lag_count, s.lag_count);
                    out.push(Point {
                        t: s.t,
                        delivered_per_sec: increase(p.delivered, s.delivered) / dt,
                        published_per_sec: increase(p.published, s.published) / dt,
                        errors_per_sec: increase(p.errors, s.errors) / dt,
                        mean_lag_seconds: (dlag > 0.0)
                            .then(|| increase(p.lag_sum, s.lag_sum) / dlag),
                        oldest_undelivered_seconds: s.oldest_undelivered,
                        consumer_lag_seconds: s.consumer_lag_seconds,
                        consumer_lag_messages: s.consumer_lag_messages,
                    });
                }
            }
            prev = Some(s);
        }
        out
    }
}

/// How much a counter grew from `a` to `b`; a counter that went down was reset (a
/// restarted process), so all of `b` is new.
fn increase(a: f64, b: f64) -> f64 {
    if b >= a { b - a } else { b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(delivered: f64, lag_sum: f64, lag_count: f64, restarts: f64) -> Vec<Series> {
        prom::parse(&format!(
            "hub_sink_records_delivered_total{{sink=\"crm\",source=\"a\",entity=\"party\"}} {delivered}\n\
             hub_sync_lag_seconds_sum{{source=\"a\",entity=\"party\"}} {lag_sum}\n\
             hub_sync_lag_seconds_count{{source=\"a\",entity=\"party\"}} {lag_count}\n\
             hub_task_restarts_total{{task=\"sink:crm\"}} {restarts}\n"
        ))
        .unwrap()
    }

    #[test]
    fn keeps_at_most_capacity_samples() {
        let mut h = History::new(3);
        for i in 0..10 {
            h.record(i as f64 * 5.0, &series(i as f64, 0.0, 0.0, 0.0));
        }
        assert_eq!(h.len(), 3);
        let p = h.points();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].t, 40.0);
        assert_eq!(p[1].t, 45.0);
    }

    #[test]
    fn rates_and_interval_mean_lag() {
        let mut h = History::new(10);
        h.record(100.0, &series(10.0, 1.0, 10.0, 0.0));
        h.record(105.0, &series(60.0, 6.0, 30.0, 0.0));
        h.record(110.0, &series(60.0, 6.0, 30.0, 0.0));
        let p = h.points();
        assert_eq!(p[0].delivered_per_sec, 10.0);
        assert_eq!(p[0].mean_lag_seconds, Some(0.25));
        assert_eq!(p[1].delivered_per_sec, 0.0);
        assert_eq!(p[1].mean_lag_seconds, None, "nothing delivered, no mean");
        assert_eq!(p[0].oldest_undelivered_seconds, None, "not exported");
    }

    #[test]
    fn a_counter_reset_counts_the_new_value() {
        let mut h = History::new(10);
        h.record(0.0, &series(100.0, 0.0, 0.0, 0.0));
        h.record(10.0, &series(20.0, 0.0, 0.0, 0.0));
        assert_eq!(h.points()[0].delivered_per_sec, 2.0);
    }

    #[test]
    fn a_restart_is_recent_for_the_window_only() {
        let mut h = History::new(10);
        h.record(0.0, &series(0.0, 0.0, 0.0, 0.0));
        assert!(!h.restarted_within("sink:crm", 0.0, 60.0));
        h.record(5.0, &series(0.0, 0.0, 0.0, 1.0));
        assert!(h.restarted_within("sink:crm", 30.0, 60.0));
        h.record(70.0, &series(0.0, 0.0, 0.0, 1.0));
        assert!(!h.restarted_within("sink:crm", 70.0, 60.0));
        assert!(!h.restarted_within("source:abs", 70.0, 60.0));
    }
}
