//! The bus: one trait, two backends.
//!
//! Contract (checked by the conformance suite in `tests/tests/bus_conformance.rs` against both
//! backends):
//! - `publish` returns only once every message is durable (Kafka: `acks=all` on an idempotent
//!   producer; embedded: committed to the on-disk database). A source may advance its own
//!   position only after `publish` returned `Ok`.
//! - Messages with the same key go to the same partition and are consumed in publish order.
//! - A consumer group reads from its committed offsets; what was polled but not committed is
//!   delivered again to the next consumer of the group (after a crash or a drop).
//! - Committed offsets survive a restart of the process and of the broker.
//! - Consumer groups are independent of each other.

pub mod embedded;
pub mod kafka;
pub mod lag;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus io error: {0}")]
    Io(String),
    #[error("bus configuration error: {0}")]
    Config(String),
    #[error("bus timed out: {0}")]
    Timeout(String),
}

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

/// A consumed message with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Positions to commit: partition → offset of the next record to read.
pub type Offsets = BTreeMap<i32, i64>;

/// The offsets that commit everything in `records` (per partition: highest offset + 1).
pub fn offsets_after(records: &[Record]) -> Offsets {
    let mut out = Offsets::new();
    for r in records {
        let next = r.offset + 1;
        let e = out.entry(r.partition).or_insert(next);
        if *e < next {
            *e = next;
        }
    }
    out
}

/// The instant `wait` from now; a wait too long to represent ends in a year.
pub(crate) fn deadline_after(wait: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 60 * 60))
}

#[async_trait]
pub trait Bus: Send + Sync {
    /// Publishes `messages` to `topic`; returns when all are durable. Order per key is kept.
    async fn publish(&self, topic: &str, messages: Vec<OutMessage>) -> Result<(), BusError>;

    /// Joins consumer group `group` on `topic`, starting from the group's committed offsets
    /// (or the beginning of the topic when the group has none).
    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError>;

    /// Checks that the bus is reachable (for `/readyz`).
    async fn ping(&self) -> Result<(), BusError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Returns up to `max` records, waiting at most `wait` for the first one. An empty batch
    /// means nothing arrived in time.
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, BusError>;

    /// Commits `offsets` for this group; they are durable when this returns `Ok`.
    async fn commit(&mut self, offsets: &Offsets) -> Result<(), BusError>;
}
