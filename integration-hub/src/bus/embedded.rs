//! The embedded bus: a durable log in one SQLite file, for single-node deployments and tests.
//!
//! Contract (on top of the one in [`crate::bus`]):
//! - The file runs in WAL mode with `synchronous=FULL`: when `publish` or `commit` returns `Ok`,
//!   the transaction is on disk and survives a crash of the process or a loss of power.
//! - A topic has the partition count the file was created with (stored in the file; opening it
//!   again with another count is a configuration error, since keys would move between
//!   partitions and lose their order). A message goes to partition
//!   `murmur2(key) & 0x7fffffff mod partitions`, the same mapping as the Kafka backend, so a key
//!   lands on the same partition number with either backend.
//! - Offsets are dense per partition and never reused, even after [`EmbeddedBus::compact`]
//!   removed every message of a partition.
//! - A consumer reads every partition of its topic, starting at the group's committed offsets
//!   (or at the start of the log). Records of one partition come in offset order; partitions are
//!   interleaved round robin, starting from a different partition on every poll.
//! - One live consumer per group and topic on one [`EmbeddedBus`] value: a second `subscribe`
//!   with the same group and topic fails with [`BusError::Config`] until the first consumer is
//!   dropped. (Two processes, or two `EmbeddedBus` values on the same file, are not coordinated:
//!   their consumers of one group would both read the same records.)
//! - A consumer dropped without `commit` leaves the group's offsets unchanged, so the next
//!   consumer of the group reads the same records again.
//! - `poll` answers at once when records are there; otherwise it sleeps until a publish on the
//!   same `EmbeddedBus` wakes it, re-checking the file every [`RECHECK_INTERVAL`] for writes made
//!   by another process.
//! - Nothing is deleted automatically: [`EmbeddedBus::compact`] removes what every group that
//!   ever committed on a topic has already committed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Bus, BusError, Consumer, Offsets, OutMessage, Record, deadline_after};

/// How often a waiting `poll` re-reads the file, to see records written by another process.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    topic       TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    "offset"    INTEGER NOT NULL,
    key         TEXT    NOT NULL,
    headers     TEXT    NOT NULL,
    payload     BLOB    NOT NULL,
    PRIMARY KEY (topic, "partition", "offset")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_end (
    topic       TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, "partition")
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    "group"     TEXT    NOT NULL,
    topic       TEXT    NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY ("group", topic, "partition")
) WITHOUT ROWID;
"#;

/// The partition of `key` among `partitions` (murmur2 of the UTF-8 bytes, sign bit cleared).
/// `partitions` of 0 is treated as 1.
pub fn partition_for(key: &str, partitions: u32) -> i32 {
    let positive = murmur2(key.as_bytes()) & 0x7fff_ffff;
    // Both values fit in 31 bits, so the remainder does too.
    (positive % partitions.max(1)) as i32
}

/// 32-bit murmur2 with the seed used by Kafka's default partitioner.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    let mut h = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, b) in tail.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

fn sql_err(e: rusqlite::Error) -> BusError {
    BusError::Io(format!("sqlite: {e}"))
}

struct Inner {
    path: PathBuf,
    partitions: u32,
    conn: Mutex<Connection>,
    /// Woken after every successful publish through this value.
    published: Notify,
    /// (group, topic) pairs that have a live consumer.
    live: Mutex<HashSet<(String, String)>>,
}

impl Inner {
    fn conn(&self) -> Result<MutexGuard<'_, Connection>, BusError> {
        self.conn
            .lock()
            .map_err(|_| BusError::Io("embedded bus connection lock poisoned".into()))
    }

    fn live(&self) -> MutexGuard<'_, HashSet<(String, String)>> {
        // The set stays consistent even if a holder panicked: every update is one call.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `f` with the connection on the blocking thread pool.
async fn with_conn<T, F>(inner: &Arc<Inner>, f: F) -> Result<T, BusError>
where
    T: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<T, BusError> + Send + 'static,
{
    let inner = Arc::clone(inner);
    tokio::task::spawn_blocking(move || {
        let mut conn = inner.conn()?;
        f(&mut conn)
    })
    .await
    .map_err(|e| BusError::Io(format!("embedded bus worker failed: {e}")))?
}

/// A bus stored in one SQLite file. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBus")
            .field("path", &self.inner.path)
            .field("partitions", &self.inner.partitions)
            .finish()
    }
}

impl EmbeddedBus {
    /// Opens (creating if needed) the bus file at `path` with `partitions` partitions per topic.
    pub fn open(path: &Path, partitions: u32) -> Result<EmbeddedBus, BusError> {
        if partitions == 0 || partitions > i32::MAX as u32 {
            return Err(BusError::Config(format!(
                "embedded bus partitions must be between 1 and {}, got {partitions}",
                i32::MAX
            )));
        }
        let mut conn = Connection::open(path)
            .map_err(|e| BusError::Io(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
            .map_err(sql_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(BusError::Io(format!(
                "cannot switch {} to WAL mode (got {mode})",
                path.display()
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql_err)?;
        conn.execute_batch(SCHEMA).map_err(sql_err)?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql_err)?;
        let stored: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = 'partitions'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        match stored {
            Some(v) if v != partitions.to_string() => {
                return Err(BusError::Config(format!(
                    "{} was created with {v} partitions, not {partitions}",
                    path.display()
                )));
            }
            Some(_) => {}
            None => {
                tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('partitions', ?1)",
                    params![partitions.to_string()],
                )
                .map_err(sql_err)?;
            }
        }
        tx.commit().map_err(sql_err)?;

        Ok(EmbeddedBus {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                partitions,
                conn: Mutex::new(conn),
                published: Notify::new(),
                live: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The partition count of every topic in this file.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The file this bus lives in.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Deletes the messages of `topic` that every group which ever committed on it has already
    /// committed (per partition: below the smallest committed offset, a group without an offset
    /// for a partition counting as 0). Does nothing for a topic no group committed on. Returns
    /// the number of deleted messages.
    pub async fn compact(&self, topic: &str) -> Result<u64, BusError> {
        let topic = topic.to_owned();
        with_conn(&self.inner, move |conn| {
            let deleted = conn
                .execute(
                    r#"
                    DELETE FROM messages
                    WHERE topic = ?1
                      AND "offset" < (
                        SELECT MIN(COALESCE(o.next_offset, 0))
                        FROM (SELECT DISTINCT "group" FROM offsets WHERE topic = ?1) AS g
                        LEFT JOIN offsets AS o
                          ON o."group" = g."group"
                         AND o.topic = ?1
                         AND o."partition" = messages."partition"
                      )
                    "#,
                    params![topic],
                )
                .map_err(sql_err)?;
            Ok(deleted as u64)
        })
        .await
    }

    /// The committed offsets of `group` on `topic` (partitions without a commit are absent).
    pub async fn committed(&self, group: &str, topic: &str) -> Result<Offsets, BusError> {
        let (group, topic) = (group.to_owned(), topic.to_owned());
        with_conn(&self.inner, move |conn| {
            load_committed(conn, &group, &topic)
        })
        .await
    }
}

fn load_committed(conn: &Connection, group: &str, topic: &str) -> Result<Offsets, BusError> {
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT "partition", next_offset FROM offsets WHERE "group" = ?1 AND topic = ?2"#,
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![group, topic], |row| {
            Ok((row.get::<_, i32>(0)?, row.get::<_, i64>(1)?))
        })
        .map_err(sql_err)?;
    let mut out = Offsets::new();
    for row in rows {
        let (p, o) = row.map_err(sql_err)?;
        out.insert(p, o);
    }
    Ok(out)
}

fn insert_messages(
    conn: &mut Connection,
    partitions: u32,
    topic: &str,
    messages: &[OutMessage],
) -> Result<(), BusError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    {
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut read_end = tx
            .prepare_cached(
                r#"SELECT next_offset FROM log_end WHERE topic = ?1 AND "partition" = ?2"#,
            )
            .map_err(sql_err)?;
        let mut insert = tx
            .prepare_cached(
                r#"INSERT INTO messages (topic, "partition", "offset", key, headers, payload)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
            )
            .map_err(sql_err)?;
        for m in messages {
            let partition = partition_for(&m.key, partitions);
            let offset = match next.get(&partition) {
                Some(o) => *o,
                None => read_end
                    .query_row(params![topic, partition], |row| row.get::<_, i64>(0))
                    .optional()
                    .map_err(sql_err)?
                    .unwrap_or(0),
            };
            let headers = serde_json::to_string(&m.headers)
                .map_err(|e| BusError::Io(format!("cannot encode headers: {e}")))?;
            insert
                .execute(params![topic, partition, offset, m.key, headers, m.payload])
                .map_err(sql_err)?;
            next.insert(partition, offset + 1);
        }
        let mut write_end = tx
            .prepare_cached(
                r#"INSERT INTO log_end (topic, "partition", next_offset) VALUES (?1, ?2, ?3)
                   ON CONFLICT (topic, "partition") DO UPDATE SET next_offset = excluded.next_offset"#,
            )
            .map_err(sql_err)?;
        for (partition, offset) in &next {
            write_end
                .execute(params![topic, partition, offset])
                .map_err(sql_err)?;
        }
    }
    tx.commit().map_err(sql_err)
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, topic: &str, messages: Vec<OutMessage>) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let partitions = self.inner.partitions;
        let topic = topic.to_owned();
        with_conn(&self.inner, move |conn| {
            insert_messages(conn, partitions, &topic, &messages)
        })
        .await?;
        self.inner.published.notify_waiters();
        Ok(())
    }

    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        let key = (group.to_owned(), topic.to_owned());
        if !self.inner.live().insert(key.clone()) {
            return Err(BusError::Config(format!(
                "group {group} already has a live consumer on topic {topic}"
            )));
        }
        // From here on the registration is released by the consumer's Drop, also on error.
        let mut consumer = EmbeddedConsumer {
            inner: Arc::clone(&self.inner),
            group: key.0,
            topic: key.1,
            positions: BTreeMap::new(),
            rotation: 0,
        };
        let committed = self.committed(group, topic).await?;
        for p in 0..self.inner.partitions as i32 {
            consumer
                .positions
                .insert(p, committed.get(&p).copied().unwrap_or(0));
        }
        Ok(Box::new(consumer))
    }

    async fn ping(&self) -> Result<(), BusError> {
        with_conn(&self.inner, |conn| {
            conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))
                .map_err(sql_err)
                .map(|_| ())
        })
        .await
    }
}

/// A consumer of one group on one topic of an [`EmbeddedBus`].
pub struct EmbeddedConsumer {
    inner: Arc<Inner>,
    group: String,
    topic: String,
    /// Next offset to read, per partition.
    positions: BTreeMap<i32, i64>,
    /// Partition the next poll starts interleaving with.
    rotation: usize,
}

impl EmbeddedConsumer {
    /// Reads up to `max` records from the current positions and advances them.
    async fn fetch(&mut self, max: usize) -> Result<Vec<Record>, BusError> {
        let topic = self.topic.clone();
        let positions = self.positions.clone();
        let per_partition = with_conn(&self.inner, move |conn| {
            read_partitions(conn, &topic, &positions, max)
        })
        .await?;

        let n = per_partition.len();
        let mut queues: Vec<std::collections::VecDeque<Record>> = per_partition
            .into_iter()
            .map(std::collections::VecDeque::from)
            .collect();
        let mut out = Vec::new();
        if n > 0 {
            let start = self.rotation % n;
            self.rotation = (start + 1) % n;
            let mut idle = 0;
            let mut i = start;
            while out.len() < max && idle < n {
                match queues[i].pop_front() {
                    Some(r) => {
                        idle = 0;
                        out.push(r);
                    }
                    None => idle += 1,
                }
                i = (i + 1) % n;
            }
        }
        for r in &out {
            self.positions.insert(r.partition, r.offset + 1);
        }
        Ok(out)
    }
}

/// Per partition (in partition order): the next records from `positions`, in offset order,
/// about `max` in total (at most one more per partition). Partitions get equal shares; the
/// share of a partition with fewer records goes to the others.
fn read_partitions(
    conn: &Connection,
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    max: usize,
) -> Result<Vec<Vec<Record>>, BusError> {
    let mut stmt = conn
        .prepare_cached(
            r#"SELECT "offset", key, headers, payload FROM messages
               WHERE topic = ?1 AND "partition" = ?2 AND "offset" >= ?3
               ORDER BY "offset" LIMIT ?4"#,
        )
        .map_err(sql_err)?;
    let mut out: Vec<Vec<Record>> = positions.keys().map(|_| Vec::new()).collect();
    let mut from: Vec<(i32, i64)> = positions.iter().map(|(p, o)| (*p, *o)).collect();
    let mut open: Vec<usize> = (0..from.len()).collect();
    let mut wanted = max;
    while wanted > 0 && !open.is_empty() {
        let share = wanted.div_ceil(open.len());
        let limit = i64::try_from(share).unwrap_or(i64::MAX);
        let mut still_open = Vec::with_capacity(open.len());
        for i in open {
            let (partition, start) = from[i];
            let rows = stmt
                .query_map(params![topic, partition, start, limit], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .map_err(sql_err)?;
            let mut got = 0;
            for row in rows {
                let (offset, key, headers, payload) = row.map_err(sql_err)?;
                let headers: Vec<(String, String)> =
                    serde_json::from_str(&headers).map_err(|e| {
                        BusError::Io(format!(
                            "corrupt headers at {topic}/{partition}/{offset}: {e}"
                        ))
                    })?;
                from[i].1 = offset + 1;
                got += 1;
                out[i].push(Record {
                    topic: topic.to_owned(),
                    partition,
                    offset,
                    key,
                    headers,
                    payload,
                });
            }
            wanted = wanted.saturating_sub(got);
            if got == share {
                still_open.push(i);
            }
        }
        open = still_open;
    }
    Ok(out)
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, BusError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = deadline_after(wait);
        let inner = Arc::clone(&self.inner);
        loop {
            // Register for wake-ups before reading, so a publish between the read and the wait
            // is not missed.
            let notified = inner.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let batch = self.fetch(max).await?;
            let now = Instant::now();
            if !batch.is_empty() || now >= deadline {
                return Ok(batch);
            }
            let recheck = (now + RECHECK_INTERVAL).min(deadline);
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(recheck) => {}
            }
        }
    }

    async fn commit(&mut self, offsets: &Offsets) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let partitions = self.inner.partitions as i32;
        for (&p, &o) in offsets {
            if !(0..partitions).contains(&p) || o < 0 {
                return Err(BusError::Config(format!(
                    "cannot commit offset {o} for partition {p} of topic {} ({partitions} partitions)",
                    self.topic
                )));
            }
        }
        let (group, topic, offsets) = (self.group.clone(), self.topic.clone(), offsets.clone());
        with_conn(&self.inner, move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            {
                let mut upsert = tx
                    .prepare_cached(
                        r#"INSERT INTO offsets ("group", topic, "partition", next_offset)
                           VALUES (?1, ?2, ?3, ?4)
                           ON CONFLICT ("group", topic, "partition")
                           DO UPDATE SET next_offset = excluded.next_offset"#,
                    )
                    .map_err(sql_err)?;
                for (p, o) in &offsets {
                    upsert
                        .execute(params![group, topic, p, o])
                        .map_err(sql_err)?;
                }
            }
            tx.commit().map_err(sql_err)
        })
        .await
    }
}

impl Drop for EmbeddedConsumer {
    fn drop(&mut self) {
        let key = (
            std::mem::take(&mut self.group),
            std::mem::take(&mut self.topic),
        );
        self.inner.live().remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str, payload: &str) -> OutMessage {
        OutMessage {
            key: key.into(),
            headers: vec![("h".into(), payload.into())],
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn murmur2_matches_known_values() {
        // Reference values of the 32-bit murmur2 with seed 0x9747b28c, as signed integers.
        let cases: [(&str, i32); 5] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            ("abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input.as_bytes()) as i32, expected, "{input}");
        }
    }

    #[test]
    fn partition_is_stable_and_in_range() {
        for i in 0..1000 {
            let key = format!("key-{i}");
            let p = partition_for(&key, 7);
            assert!((0..7).contains(&p));
            assert_eq!(p, partition_for(&key, 7));
        }
        assert_eq!(partition_for("anything", 1), 0);
    }

    #[tokio::test]
    async fn reopening_with_other_partition_count_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.db");
        drop(EmbeddedBus::open(&path, 4).unwrap());
        assert!(matches!(
            EmbeddedBus::open(&path, 3),
            Err(BusError::Config(_))
        ));
        assert!(EmbeddedBus::open(&path, 4).is_ok());
        assert!(matches!(
            EmbeddedBus::open(&path, 0),
            Err(BusError::Config(_))
        ));
    }

    #[tokio::test]
    async fn second_live_consumer_of_a_group_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 2).unwrap();
        let first = bus.subscribe("g", "t").await.unwrap();
        assert!(matches!(
            bus.subscribe("g", "t").await,
            Err(BusError::Config(_))
        ));
        assert!(bus.subscribe("other", "t").await.is_ok());
        drop(first);
        assert!(bus.subscribe("g", "t").await.is_ok());
    }

    #[tokio::test]
    async fn poll_wakes_up_on_publish() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 2).unwrap();
        let mut consumer = bus.subscribe("g", "t").await.unwrap();
        let publisher = bus.clone();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            publisher.publish("t", vec![msg("k", "v")]).await
        });
        let got = consumer.poll(10, Duration::from_secs(10)).await.unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].header("h"), Some("v"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // Nothing more: an empty batch after the wait.
        let started = Instant::now();
        let got = consumer.poll(10, Duration::from_millis(100)).await.unwrap();
        assert!(got.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(100));
        // An unbounded wait still answers at once when records are there.
        bus.publish("t", vec![msg("k", "w")]).await.unwrap();
        let got = consumer.poll(10, Duration::MAX).await.unwrap();
        assert_eq!(got.len(), 1);
    }

    #[tokio::test]
    async fn partitions_are_interleaved() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 4).unwrap();
        // Keys on at least two partitions, 20 messages each.
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        let mut seen = HashSet::new();
        let mut chosen = Vec::new();
        for k in &keys {
            if seen.insert(partition_for(k, 4)) {
                chosen.push(k.clone());
            }
        }
        assert!(chosen.len() >= 2);
        for k in &chosen {
            let batch = (0..20).map(|i| msg(k, &i.to_string())).collect();
            bus.publish("t", batch).await.unwrap();
        }
        let mut consumer = bus.subscribe("g", "t").await.unwrap();
        let got = consumer.poll(chosen.len(), Duration::ZERO).await.unwrap();
        let partitions: HashSet<i32> = got.iter().map(|r| r.partition).collect();
        assert_eq!(partitions.len(), chosen.len());
    }

    #[tokio::test]
    async fn compact_deletes_below_the_slowest_group() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 1).unwrap();
        let batch = (0..10).map(|i| msg("k", &i.to_string())).collect();
        bus.publish("t", batch).await.unwrap();
        bus.publish("other", vec![msg("k", "x")]).await.unwrap();

        // No group committed yet: nothing to delete.
        assert_eq!(bus.compact("t").await.unwrap(), 0);

        let mut a = bus.subscribe("a", "t").await.unwrap();
        let mut b = bus.subscribe("b", "t").await.unwrap();
        a.commit(&Offsets::from([(0, 7)])).await.unwrap();
        b.commit(&Offsets::from([(0, 4)])).await.unwrap();
        assert_eq!(bus.compact("t").await.unwrap(), 4);
        assert_eq!(bus.compact("t").await.unwrap(), 0);

        // A group reading from the start now begins at the first kept offset.
        let mut c = bus.subscribe("c", "t").await.unwrap();
        let got = c.poll(100, Duration::ZERO).await.unwrap();
        let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (4..10).collect::<Vec<_>>());

        // Everything committed by everyone: the partition becomes empty, offsets go on.
        a.commit(&Offsets::from([(0, 10)])).await.unwrap();
        b.commit(&Offsets::from([(0, 10)])).await.unwrap();
        c.commit(&Offsets::from([(0, 10)])).await.unwrap();
        assert_eq!(bus.compact("t").await.unwrap(), 6);
        bus.publish("t", vec![msg("k", "new")]).await.unwrap();
        let got = c.poll(100, Duration::ZERO).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].offset, 10);

        // Other topics are untouched.
        let mut o = bus.subscribe("a", "other").await.unwrap();
        assert_eq!(o.poll(10, Duration::ZERO).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn compact_counts_missing_partition_commits_as_zero() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 2).unwrap();
        let k0 = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| partition_for(k, 2) == 0)
            .unwrap();
        let k1 = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| partition_for(k, 2) == 1)
            .unwrap();
        bus.publish("t", vec![msg(&k0, "a"), msg(&k0, "b"), msg(&k1, "c")])
            .await
            .unwrap();
        let mut a = bus.subscribe("a", "t").await.unwrap();
        let mut b = bus.subscribe("b", "t").await.unwrap();
        a.commit(&Offsets::from([(0, 2), (1, 1)])).await.unwrap();
        // b committed only partition 0: partition 1 counts as offset 0 for b.
        b.commit(&Offsets::from([(0, 1)])).await.unwrap();
        assert_eq!(bus.compact("t").await.unwrap(), 1);
        let mut c = bus.subscribe("c", "t").await.unwrap();
        let got = c.poll(10, Duration::ZERO).await.unwrap();
        let mut positions: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
        positions.sort();
        assert_eq!(positions, vec![(0, 1), (1, 0)]);
    }

    #[tokio::test]
    async fn commit_rejects_unknown_partitions() {
        let dir = tempfile::tempdir().unwrap();
        let bus = EmbeddedBus::open(&dir.path().join("bus.db"), 2).unwrap();
        let mut c = bus.subscribe("g", "t").await.unwrap();
        assert!(matches!(
            c.commit(&Offsets::from([(2, 1)])).await,
            Err(BusError::Config(_))
        ));
        assert!(matches!(
            c.commit(&Offsets::from([(0, -1)])).await,
            Err(BusError::Config(_))
        ));
        c.commit(&Offsets::from([(1, 0)])).await.unwrap();
        assert_eq!(
            bus.committed("g", "t").await.unwrap(),
            Offsets::from([(1, 0)])
        );
        bus.ping().await.unwrap();
    }
}
