//! Events a sink has taken from the bus and not finished with, for the gauge
//! `hub_sink_oldest_undelivered_age_seconds` (docs/metrics.md).
//!
//! Contract:
//! - An event is *pending* for a sink from the moment the sink (or its retry task) polls it
//!   until the CRM acknowledged it, it was skipped as already delivered or superseded, or it
//!   went to the dead-letter topic. A record parked on `<prefix>.retry.<sink>` stays pending
//!   while it sits on the retry topic and while the retry task holds it for its retry time.
//!   A parked copy this process's retry task has not read back within [`PARKED_GRACE`] is
//!   left to the retry group's consumer lag: with several hubs in the group, another one may
//!   own its partition of the retry topic.
//! - Events are identified by where they first entered the sink: their own topic, partition
//!   and offset, or, on the retry topic, the `origin_*` headers of the parking. So a parked
//!   record handed from the sink to the retry task is one event, never two.
//! - An event's time is its `event_time` header (the time the source system produced it, the
//!   reference of `hub_sync_lag_seconds`); a record without a readable one counts from when
//!   this process first saw it.
//! - The gauge is computed when `/metrics` is scraped ([`oldest_ages`]): `now −` the oldest
//!   pending event's time, exactly 0 when nothing is pending. Nothing is set once and left.
//! - A restarted sink or retry task drops what its previous run held ([`sink_started`],
//!   [`retry_started`]): the new run reads it again from the committed offsets, or another
//!   hub of the group does, so nothing stays pending here for ever.
//!
//! Events still on the topic, not yet polled, are not here: the consumer lag gauges
//! (`hub_kafka_consumer_lag_*`, `bus::lag`) cover them.
//!
//! Memory: one small entry per record in flight (a sink batch of at most 500, at most
//! `retry_topics::HOLD_MAX` held plus those parked and not yet read back).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Utc};

use crate::bus::Record;

/// Where an event first entered a sink: topic, partition, offset.
type Origin = (String, i32, i64);

/// How long a parked copy counts as pending before this process's retry task reads it back.
pub const PARKED_GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug)]
struct Entry {
    /// The event's time (or when first seen, without one).
    since: DateTime<Utc>,
    /// In the sink's current batch, not yet committed.
    in_sink: bool,
    /// Copies the retry task holds.
    in_retry: u32,
    /// Copies parked on the retry topic, not yet read back.
    parked: u32,
    /// When the last copy was parked.
    parked_at: DateTime<Utc>,
}

impl Entry {
    /// Nothing of this event is pending at `now` (see [`PARKED_GRACE`]).
    fn done(&self, now: DateTime<Utc>) -> bool {
        !self.in_sink
            && self.in_retry == 0
            && (self.parked == 0 || now - self.parked_at > PARKED_GRACE)
    }
}

#[derive(Debug, Default)]
struct SinkPending {
    events: HashMap<Origin, Entry>,
}

fn registry() -> MutexGuard<'static, BTreeMap<String, SinkPending>> {
    static PENDING: OnceLock<Mutex<BTreeMap<String, SinkPending>>> = OnceLock::new();
    // Every update is a single map operation: a panicking holder leaves it consistent.
    PENDING
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where `rec` first entered the sink: on the retry topic, the origin named by its parking
/// headers (its own position when they are missing); elsewhere its own position.
fn origin(rec: &Record, retry_topic: &str) -> Origin {
    if rec.topic == retry_topic {
        let topic = rec.header("origin_topic").filter(|t| !t.is_empty());
        let partition = rec
            .header("origin_partition")
            .and_then(|v| v.parse::<i32>().ok());
        let offset = rec
            .header("origin_offset")
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(t), Some(p), Some(o)) = (topic, partition, offset) {
            return (t.to_string(), p, o);
        }
    }
    (rec.topic.clone(), rec.partition, rec.offset)
}

/// The event time of `rec` from its header, or `now`.
fn event_time(rec: &Record, now: DateTime<Utc>) -> DateTime<Utc> {
    rec.header("event_time")
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

fn update(
    sink: &str,
    rec: &Record,
    retry_topic: &str,
    now: DateTime<Utc>,
    f: impl FnOnce(&mut Entry),
) {
    let mut reg = registry();
    let events = &mut reg.entry(sink.to_string()).or_default().events;
    let key = origin(rec, retry_topic);
    let entry = events.entry(key.clone()).or_insert_with(|| Entry {
        since: event_time(rec, now),
        in_sink: false,
        in_retry: 0,
        parked: 0,
        parked_at: now,
    });
    f(entry);
    if entry.done(now) {
        events.remove(&key);
    }
}

/// A sink task (re)starts: it has nothing pending yet (what an earlier run of it held is
/// read again), and its gauge reads 0 from now on.
pub fn sink_started(sink: &str) {
    let now = Utc::now();
    let mut reg = registry();
    let events = &mut reg.entry(sink.to_string()).or_default().events;
    events.retain(|_, e| {
        e.in_sink = false;
        !e.done(now)
    });
}

/// The sink polled `batch`.
pub fn consumed(sink: &str, batch: &[Record]) {
    let now = Utc::now();
    for rec in batch {
        // Records on the sink's own topic never carry a retry origin.
        update(sink, rec, "", now, |e| e.in_sink = true);
    }
}

/// The sink committed `batch`: every record of it is delivered, skipped, dead-lettered or
/// parked (those stay pending through [`parked`]).
pub fn committed(sink: &str, batch: &[Record]) {
    let now = Utc::now();
    for rec in batch {
        update(sink, rec, "", now, |e| e.in_sink = false);
    }
}

/// `rec` was published to the sink's retry topic `retry_topic` (by the sink or, again, by
/// the retry task).
pub fn parked(sink: &str, rec: &Record, retry_topic: &str) {
    let now = Utc::now();
    update(sink, rec, retry_topic, now, |e| {
        e.parked += 1;
        e.parked_at = now;
    });
}

/// The retry task (re)starts: it holds nothing yet.
pub fn retry_started(sink: &str) {
    let now = Utc::now();
    let mut reg = registry();
    let events = &mut reg.entry(sink.to_string()).or_default().events;
    events.retain(|_, e| {
        e.in_retry = 0;
        !e.done(now)
    });
}

/// The retry task read `rec` from `retry_topic` and holds it until its retry time.
pub fn held(sink: &str, rec: &Record, retry_topic: &str) {
    update(sink, rec, retry_topic, Utc::now(), |e| {
        e.parked = e.parked.saturating_sub(1);
        e.in_retry += 1;
    });
}

/// The retry task is done with `rec`: delivered, skipped, dead-lettered, or parked again
/// (then [`parked`] was called first and it stays pending).
pub fn released(sink: &str, rec: &Record, retry_topic: &str) {
    update(sink, rec, retry_topic, Utc::now(), |e| {
        e.in_retry = e.in_retry.saturating_sub(1);
    });
}

/// Per sink that has started: seconds from its oldest pending event's time to `now`
/// (0 when nothing is pending; never negative, even with an event time in the future).
pub fn oldest_ages(now: DateTime<Utc>) -> Vec<(String, f64)> {
    registry()
        .iter_mut()
        .map(|(sink, p)| {
            p.events.retain(|_, e| !e.done(now));
            let age = p
                .events
                .values()
                .map(|e| e.since)
                .min()
                .map_or(0.0, |oldest| {
                    ((now - oldest).num_milliseconds() as f64 / 1000.0).max(0.0)
                });
            (sink.clone(), age)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: &str = "hub.retry.crm";

    fn rec(topic: &str, offset: i64, headers: &[(&str, String)]) -> Record {
        Record {
            topic: topic.into(),
            partition: 1,
            offset,
            key: format!("k{offset}"),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            payload: Vec::new(),
        }
    }

    fn age(sink: &str, now: DateTime<Utc>) -> f64 {
        oldest_ages(now)
            .into_iter()
            .find(|(s, _)| s == sink)
            .map(|(_, a)| a)
            .expect("sink registered")
    }

    fn at(secs_ago: i64, now: DateTime<Utc>) -> String {
        (now - chrono::TimeDelta::seconds(secs_ago)).to_rfc3339()
    }

    #[test]
    fn a_started_idle_sink_reads_zero() {
        sink_started("idle");
        assert_eq!(age("idle", Utc::now()), 0.0);
    }

    #[test]
    fn a_held_batch_ages_until_committed_then_reads_exactly_zero() {
        let sink = "held";
        sink_started(sink);
        let now = Utc::now();
        let batch = vec![
            rec("hub.canonical", 0, &[("event_time", at(30, now))]),
            rec("hub.canonical", 1, &[("event_time", at(10, now))]),
        ];
        consumed(sink, &batch);
        // Stalled: the gauge is the oldest event's age and grows with the clock.
        let first = age(sink, now);
        assert!((first - 30.0).abs() < 0.01, "{first}");
        let later = age(sink, now + chrono::TimeDelta::seconds(5));
        assert!((later - 35.0).abs() < 0.01, "{later}");
        // The same batch sent again is still one set of events.
        consumed(sink, &batch);
        committed(sink, &batch);
        assert_eq!(age(sink, now + chrono::TimeDelta::seconds(60)), 0.0);
    }

    #[test]
    fn a_parked_record_stays_pending_through_the_hand_over_until_settled() {
        let sink = "parking";
        sink_started(sink);
        retry_started(sink);
        let now = Utc::now();
        let original = rec("hub.canonical", 7, &[("event_time", at(20, now))]);
        consumed(sink, std::slice::from_ref(&original));
        parked(sink, &original, RETRY);
        committed(sink, std::slice::from_ref(&original));
        // On the retry topic, not yet read back: still pending.
        assert!(age(sink, now) >= 20.0);
        let copy = |offset| {
            rec(
                RETRY,
                offset,
                &[
                    ("event_time", at(20, now)),
                    ("origin_topic", "hub.canonical".to_string()),
                    ("origin_partition", "1".to_string()),
                    ("origin_offset", "7".to_string()),
                ],
            )
        };
        held(sink, &copy(0), RETRY);
        assert!(age(sink, now) >= 20.0);
        // Failing again: parked again, then the old copy is settled.
        parked(sink, &copy(0), RETRY);
        released(sink, &copy(0), RETRY);
        assert!(age(sink, now) >= 20.0);
        held(sink, &copy(1), RETRY);
        released(sink, &copy(1), RETRY);
        assert_eq!(age(sink, now), 0.0);
    }

    #[test]
    fn a_parked_copy_never_read_back_is_left_to_the_consumer_lag_after_the_grace() {
        let sink = "parked-elsewhere";
        sink_started(sink);
        let now = Utc::now();
        let r = rec("hub.canonical", 2, &[("event_time", at(1, now))]);
        consumed(sink, std::slice::from_ref(&r));
        parked(sink, &r, RETRY);
        committed(sink, &[r]);
        assert!(age(sink, now + PARKED_GRACE) > 0.0);
        let later = now + PARKED_GRACE + chrono::TimeDelta::seconds(2);
        assert_eq!(age(sink, later), 0.0);
    }

    #[test]
    fn a_restart_forgets_what_the_earlier_run_held() {
        let sink = "restarted";
        sink_started(sink);
        retry_started(sink);
        let now = Utc::now();
        consumed(
            sink,
            &[rec("hub.canonical", 3, &[("event_time", at(5, now))])],
        );
        held(sink, &rec(RETRY, 4, &[("event_time", at(9, now))]), RETRY);
        sink_started(sink);
        assert!(age(sink, now) >= 9.0);
        retry_started(sink);
        assert_eq!(age(sink, now), 0.0);
    }

    #[test]
    fn without_an_event_time_the_age_counts_from_first_seen() {
        let sink = "no-time";
        sink_started(sink);
        let r = rec(
            "hub.canonical",
            0,
            &[("event_time", "yesterday".to_string())],
        );
        let before = Utc::now();
        consumed(sink, std::slice::from_ref(&r));
        let a = age(sink, before + chrono::TimeDelta::seconds(3));
        assert!((2.0..=3.5).contains(&a), "{a}");
        committed(sink, &[r]);
    }
}
