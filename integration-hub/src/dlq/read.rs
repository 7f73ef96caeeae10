//! Reading the dead-letter topic from its start to its end without disturbing anyone.
//!
//! Every read joins a consumer group of its own (a unique name) and never commits, so:
//! - the sinks' and stages' groups and their positions are untouched;
//! - the embedded bus's compaction, which only weighs groups that ever committed on a topic,
//!   does not see the reader (and never compacts the DLQ topic anyway);
//! - Kafka keeps no offsets for the group, and forgets it once the reader leaves.
//!
//! Where the end is: on the embedded bus a poll answers at once from the file, so the first
//! empty poll is the end. On Kafka an empty poll may only mean the group is still being
//! assigned its partitions, so the end is the high watermark of every partition, taken when
//! the read starts; records published after that are left for the next read. A Kafka read
//! that makes no progress for [`STALL_TIMEOUT`] fails rather than return a partial list.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::types::RDKafkaErrorCode;
use tokio::time::Instant;

use super::DlqError;
use crate::bus::kafka::KafkaConfig;
use crate::bus::{Bus, Consumer, Record};

/// Records asked for per poll.
const POLL_MAX: usize = 1000;
/// How long a Kafka poll waits for its first record.
const KAFKA_POLL_WAIT: Duration = Duration::from_millis(500);
/// How long a Kafka read may go without a record before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a Kafka metadata or watermark request may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// How a read knows it reached the end of the topic.
#[derive(Debug, Clone)]
pub enum LogEnd {
    /// The embedded bus: the first empty poll.
    FirstEmptyPoll,
    /// Kafka: the high watermarks, asked of the cluster with these settings.
    KafkaWatermarks(KafkaConfig),
}

/// A read of one topic in progress.
pub struct Reader {
    consumer: Option<Box<dyn Consumer>>,
    topic: String,
    /// Kafka: per partition, the offset at which the read ends (the high watermark when it
    /// started), and the next offset still to read.
    bounds: Option<BTreeMap<i32, Bound>>,
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    end: i64,
    next: i64,
}

impl Bound {
    fn done(&self) -> bool {
        self.next >= self.end
    }
}

/// A consumer-group name no other reader or component uses.
fn reader_group(topic: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{topic}-reader-{}-{nanos:x}-{n}", std::process::id())
}

impl Reader {
    /// Starts reading `topic` of `bus` from its start.
    pub async fn open(bus: &dyn Bus, topic: &str, end: &LogEnd) -> Result<Reader, DlqError> {
        let bounds = match end {
            LogEnd::FirstEmptyPoll => None,
            LogEnd::KafkaWatermarks(cfg) => {
                let (cfg, t) = (cfg.clone(), topic.to_owned());
                let marks = tokio::task::spawn_blocking(move || kafka_watermarks(&cfg, &t))
                    .await
                    .map_err(|e| DlqError::Bus(format!("watermark worker failed: {e}")))??;
                let bounds: BTreeMap<i32, Bound> = marks
                    .into_iter()
                    .filter(|(_, (low, high))| high > low)
                    .map(|(p, (low, high))| {
                        (
                            p,
                            Bound {
                                end: high,
                                next: low,
                            },
                        )
                    })
                    .collect();
                Some(bounds)
            }
        };
        // Nothing to read on Kafka: no need to join a group (which takes a moment).
        let consumer = match &bounds {
            Some(b) if b.values().all(Bound::done) => None,
            _ => Some(
                bus.subscribe(&reader_group(topic), topic)
                    .await
                    .map_err(|e| DlqError::Bus(format!("cannot read {topic}: {e}")))?,
            ),
        };
        Ok(Reader {
            consumer,
            topic: topic.to_owned(),
            bounds,
        })
    }

    /// The next records, or `None` at the end of the topic. Records of one partition come in
    /// offset order; a batch is never empty.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<Record>>, DlqError> {
        let Some(consumer) = self.consumer.as_mut() else {
            return Ok(None);
        };
        let Some(bounds) = self.bounds.as_mut() else {
            let batch = consumer
                .poll(POLL_MAX, Duration::ZERO)
                .await
                .map_err(|e| DlqError::Bus(format!("cannot read {}: {e}", self.topic)))?;
            if batch.is_empty() {
                self.consumer = None;
                return Ok(None);
            }
            return Ok(Some(batch));
        };
        let mut stalled_since = Instant::now();
        loop {
            if bounds.values().all(Bound::done) {
                self.consumer = None;
                return Ok(None);
            }
            let batch = consumer
                .poll(POLL_MAX, KAFKA_POLL_WAIT)
                .await
                .map_err(|e| DlqError::Bus(format!("cannot read {}: {e}", self.topic)))?;
            let mut kept = Vec::with_capacity(batch.len());
            let mut advanced = false;
            for r in batch {
                let Some(b) = bounds.get_mut(&r.partition) else {
                    // A partition added after the read started: not part of this read.
                    continue;
                };
                if b.done() || r.offset < b.next {
                    // Past this partition's end, or seen already (a repeat after a rebalance).
                    continue;
                }
                advanced = true;
                if r.offset >= b.end {
                    // Published after the read started: left for the next read.
                    b.next = b.end;
                    continue;
                }
                b.next = b.next.max(r.offset + 1);
                kept.push(r);
            }
            if !kept.is_empty() {
                return Ok(Some(kept));
            }
            if advanced {
                stalled_since = Instant::now();
            } else if stalled_since.elapsed() >= STALL_TIMEOUT {
                let open: Vec<String> = bounds
                    .iter()
                    .filter(|(_, b)| !b.done())
                    .map(|(p, b)| format!("partition {p} at offset {} of {}", b.next, b.end))
                    .collect();
                return Err(DlqError::Incomplete(format!(
                    "reading {} made no progress for {} s ({}); is the Kafka cluster reachable?",
                    self.topic,
                    STALL_TIMEOUT.as_secs(),
                    open.join(", ")
                )));
            }
        }
    }
}

/// Per partition of `topic`: (low, high) watermarks. A topic that does not exist has none.
fn kafka_watermarks(cfg: &KafkaConfig, topic: &str) -> Result<BTreeMap<i32, (i64, i64)>, DlqError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.bootstrap_servers)
        .set("client.id", &cfg.client_id);
    // Security settings (TLS, SASL) live in `extra`.
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    let client: BaseConsumer = c
        .create()
        .map_err(|e| DlqError::Bus(format!("cannot create a kafka client: {e}")))?;
    let md = client
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
        .map_err(|e| DlqError::Bus(format!("cannot fetch metadata of {topic}: {e}")))?;
    let mut out = BTreeMap::new();
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(out);
    };
    if let Some(err) = t.error() {
        let code = RDKafkaErrorCode::from(err);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Ok(out);
        }
        return Err(DlqError::Bus(format!("metadata of {topic}: {code}")));
    }
    for p in t.partitions() {
        let marks = client
            .fetch_watermarks(topic, p.id(), METADATA_TIMEOUT)
            .map_err(|e| {
                DlqError::Bus(format!(
                    "cannot fetch the offsets of {topic} partition {}: {e}",
                    p.id()
                ))
            })?;
        out.insert(p.id(), marks);
    }
    Ok(out)
}
