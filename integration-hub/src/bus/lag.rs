//! Consumer lag of the Kafka consumer groups this process runs, for the gauges
//! `hub_kafka_consumer_lag_messages` and `hub_kafka_consumer_lag_seconds` (docs/metrics.md).
//!
//! Contract:
//! - Reported per group, topic and partition currently assigned to a consumer of this
//!   process; a dropped consumer or a revoked partition is not reported any more (nothing
//!   lingers from an earlier owner).
//! - Computed when `/metrics` is scraped ([`samples`]), from what is known locally, no broker
//!   round trip: lag in messages = end of the partition − the group's committed offset.
//!   The end is the largest of librdkafka's cached high watermark, the high watermark of its
//!   last statistics (`statistics.interval.ms`, [`LagContext`]) and the last offset this
//!   consumer read + 1. The committed offset is the last one this consumer committed, else
//!   the statistics' `committed_offset`, else the first offset it read (a group reads from
//!   its committed position), else the low watermark (a new group starts at the earliest).
//!   Without statistics yet, the statistics' `consumer_lag` is not needed: the same figure
//!   (high watermark − committed offset) is computed here, and kept current between
//!   statistics by the consumer's own commits and reads.
//! - Lag in seconds: 0 when the lag in messages is 0; otherwise `now −` the Kafka timestamp
//!   of the oldest message read and not yet committed (the message at the committed
//!   position: sinks and stages commit in order), or, when no such message has been read
//!   yet (the consumer is behind in fetching), `now −` when this process first saw the lag
//!   of that partition rise above 0 — a lower bound, documented as such.
//! - The cached high watermark is refreshed by librdkafka's fetcher threads even while the
//!   application does not poll (a sink holding a batch for a stalled CRM): messages
//!   published meanwhile show in the lag without waiting for the next poll.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use chrono::{DateTime, Utc};
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer as _, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::statistics::Statistics;

/// librdkafka's "no offset" marker (`RD_KAFKA_OFFSET_INVALID`) and other negative values.
fn known(offset: i64) -> Option<i64> {
    (offset >= 0).then_some(offset)
}

/// One partition as this consumer knows it.
#[derive(Debug, Default, Clone)]
struct PartLag {
    /// From the last statistics.
    stats_hi: Option<i64>,
    stats_committed: Option<i64>,
    /// Last offset this consumer committed.
    committed: Option<i64>,
    /// First offset read since the partition was last committed from scratch.
    first_read: Option<i64>,
    /// Offset → Kafka timestamp (ms) of messages read and not yet committed.
    uncommitted: BTreeMap<i64, Option<i64>>,
    /// When the lag was first seen above 0 (cleared when it is 0).
    lagging_since: Option<DateTime<Utc>>,
}

/// What the consumer's context and the consumer itself record for one group and topic.
#[derive(Debug)]
pub struct LagState {
    group: String,
    topic: String,
    parts: Mutex<HashMap<i32, PartLag>>,
}

impl LagState {
    pub fn new(group: &str, topic: &str) -> Arc<LagState> {
        Arc::new(LagState {
            group: group.to_owned(),
            topic: topic.to_owned(),
            parts: Mutex::new(HashMap::new()),
        })
    }

    fn parts(&self) -> MutexGuard<'_, HashMap<i32, PartLag>> {
        // Plain values: consistent even if a holder panicked.
        self.parts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The consumer read the message at `offset` of `partition`, stamped `timestamp_ms`.
    pub fn read(&self, partition: i32, offset: i64, timestamp_ms: Option<i64>) {
        let mut parts = self.parts();
        let p = parts.entry(partition).or_default();
        p.first_read.get_or_insert(offset);
        p.uncommitted.insert(offset, timestamp_ms);
    }

    /// The consumer committed `next` (the next offset to read) for `partition`.
    pub fn committed(&self, partition: i32, next: i64) {
        let mut parts = self.parts();
        let p = parts.entry(partition).or_default();
        p.committed = Some(p.committed.map_or(next, |c| c.max(next)));
        p.uncommitted = p.uncommitted.split_off(&next);
    }

    fn stats(&self, statistics: &Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut parts = self.parts();
        for (id, s) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition.
            if *id < 0 {
                continue;
            }
            let p = parts.entry(*id).or_default();
            p.stats_hi = known(s.hi_offset);
            p.stats_committed = known(s.committed_offset);
        }
    }

    /// The lag of `partition` at `now`, given librdkafka's cached watermarks `(lo, hi)`.
    fn sample(&self, partition: i32, lo: Option<i64>, hi: Option<i64>, now: DateTime<Utc>) -> Lag {
        let mut parts = self.parts();
        let p = parts.entry(partition).or_default();
        let read_end = p.uncommitted.keys().next_back().map(|o| o + 1);
        let end = [hi, p.stats_hi, read_end, p.committed]
            .into_iter()
            .flatten()
            .max();
        let committed = p.committed.or(p.stats_committed).or(p.first_read).or(lo);
        let messages = match (end, committed) {
            (Some(end), Some(committed)) => (end - committed).max(0),
            _ => 0,
        };
        if messages == 0 {
            p.lagging_since = None;
            return Lag {
                messages: 0,
                seconds: 0.0,
            };
        }
        let since = *p.lagging_since.get_or_insert(now);
        let oldest = p
            .uncommitted
            .values()
            .next()
            .copied()
            .flatten()
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let from = oldest.unwrap_or(since);
        Lag {
            messages,
            seconds: ((now - from).num_milliseconds() as f64 / 1000.0).max(0.0),
        }
    }
}

/// The lag of one partition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    pub messages: i64,
    pub seconds: f64,
}

/// One sample of the lag gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct LagSample {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub lag: Lag,
}

/// The client context of hub consumers: keeps librdkafka's statistics for the lag gauges.
pub struct LagContext {
    pub state: Arc<LagState>,
}

impl ClientContext for LagContext {
    fn stats(&self, statistics: Statistics) {
        self.state.stats(&statistics);
    }
}

impl ConsumerContext for LagContext {
    /// Logs every assignment change (an operator sees which instance reads which partition,
    /// and when a dead member's partitions moved), and forgets what was known of revoked
    /// partitions: their next owner commits them, so the figures here would go stale.
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let state = &self.state;
        let partitions_of = |tpl: &TopicPartitionList| -> Vec<i32> {
            let mut ps: Vec<i32> = tpl
                .elements_for_topic(&state.topic)
                .iter()
                .map(|e| e.partition())
                .collect();
            ps.sort_unstable();
            ps
        };
        let (event, ps) = match rebalance {
            Rebalance::Assign(tpl) => ("partitions_assigned", partitions_of(tpl)),
            Rebalance::Revoke(tpl) => {
                let ps = partitions_of(tpl);
                let mut parts = state.parts();
                for p in &ps {
                    parts.remove(p);
                }
                ("partitions_revoked", ps)
            }
            Rebalance::Error(e) => {
                tracing::warn!(group = %state.group, topic = %state.topic, error = %e, "kafka rebalance failed");
                return;
            }
        };
        tracing::info!(
            event,
            group = %state.group,
            topic = %state.topic,
            partitions = %list(&ps),
            "this instance's share of the consumer group changed"
        );
    }
}

/// `0,1,5`.
fn list(partitions: &[i32]) -> String {
    partitions
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

pub type LagConsumer = StreamConsumer<LagContext>;

fn registry() -> MutexGuard<'static, Vec<Weak<LagConsumer>>> {
    static CONSUMERS: OnceLock<Mutex<Vec<Weak<LagConsumer>>>> = OnceLock::new();
    CONSUMERS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Reports the lag of `consumer` until it is dropped.
pub fn register(consumer: &Arc<LagConsumer>) {
    let mut reg = registry();
    reg.retain(|w| w.strong_count() > 0);
    reg.push(Arc::downgrade(consumer));
}

/// The low and high watermarks of `topic`/`partition` as librdkafka last saw them in a
/// fetch response: local, no broker round trip, and refreshed by its fetcher threads even
/// while the application does not poll. `None` when not known yet.
fn cached_watermarks(c: &LagConsumer, topic: &str, partition: i32) -> (Option<i64>, Option<i64>) {
    let Ok(topic) = std::ffi::CString::new(topic) else {
        return (None, None);
    };
    let (mut lo, mut hi) = (-1i64, -1i64);
    // SAFETY: the client handle is valid while `c` is borrowed; `topic` is a NUL-terminated
    // string that outlives the call; `lo` and `hi` are plain out-parameters. The function
    // only reads librdkafka's cached partition state under its own locks.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            c.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut lo,
            &mut hi,
        )
    };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return (None, None);
    }
    (known(lo), known(hi))
}

/// The lag of every partition assigned to a live consumer of this process, at `now`.
pub fn samples(now: DateTime<Utc>) -> Vec<LagSample> {
    let consumers: Vec<Arc<LagConsumer>> = {
        let mut reg = registry();
        reg.retain(|w| w.strong_count() > 0);
        reg.iter().filter_map(Weak::upgrade).collect()
    };
    let mut out = Vec::new();
    for c in consumers {
        let state = c.context().state.clone();
        let Ok(assignment) = c.assignment() else {
            continue;
        };
        for el in assignment.elements() {
            if el.topic() != state.topic {
                continue;
            }
            let partition = el.partition();
            let (lo, hi) = cached_watermarks(&c, &state.topic, partition);
            out.push(LagSample {
                group: state.group.clone(),
                topic: state.topic.clone(),
                partition,
                lag: state.sample(partition, lo, hi, now),
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: i64) -> chrono::TimeDelta {
        chrono::TimeDelta::seconds(n)
    }

    #[test]
    fn caught_up_reads_zero_and_stays_zero() {
        let s = LagState::new("g", "t");
        let now = Utc::now();
        let ts = (now - secs(40)).timestamp_millis();
        s.read(0, 10, Some(ts));
        s.read(0, 11, Some(ts));
        s.committed(0, 12);
        for later in [0, 5, 600] {
            let lag = s.sample(0, Some(0), Some(12), now + secs(later));
            assert_eq!(
                lag,
                Lag {
                    messages: 0,
                    seconds: 0.0
                }
            );
        }
    }

    #[test]
    fn a_held_batch_lags_by_its_oldest_message_and_grows() {
        let s = LagState::new("g", "t");
        let now = Utc::now();
        s.committed(0, 10);
        s.read(0, 10, Some((now - secs(30)).timestamp_millis()));
        s.read(0, 11, Some((now - secs(5)).timestamp_millis()));
        // The cached watermark may not have caught up yet: what was read counts.
        let lag = s.sample(0, Some(0), Some(10), now);
        assert_eq!(lag.messages, 2);
        assert!((lag.seconds - 30.0).abs() < 0.01, "{lag:?}");
        let later = s.sample(0, Some(0), Some(15), now + secs(10));
        assert_eq!(later.messages, 5);
        assert!((later.seconds - 40.0).abs() < 0.01, "{later:?}");
        s.committed(0, 12);
        let rest = s.sample(0, Some(0), Some(15), now + secs(11));
        assert_eq!(rest.messages, 3);
    }

    #[test]
    fn lag_not_yet_read_counts_from_when_it_was_first_seen() {
        let s = LagState::new("g", "t");
        let now = Utc::now();
        s.committed(1, 100);
        let first = s.sample(1, Some(0), Some(103), now);
        assert_eq!(
            first,
            Lag {
                messages: 3,
                seconds: 0.0
            }
        );
        let later = s.sample(1, Some(0), Some(103), now + secs(7));
        assert_eq!(later.messages, 3);
        assert!((later.seconds - 7.0).abs() < 0.01);
    }

    #[test]
    fn a_new_group_without_commits_lags_from_the_earliest_offset() {
        let s = LagState::new("g", "t");
        let lag = s.sample(2, Some(4), Some(9), Utc::now());
        assert_eq!(lag.messages, 5);
        // Nothing known at all: no lag is claimed.
        let s = LagState::new("g", "t");
        assert_eq!(s.sample(2, None, None, Utc::now()).messages, 0);
    }
}
