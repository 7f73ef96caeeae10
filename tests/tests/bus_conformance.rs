//! The bus contract (see `integration_hub::bus`), checked against both backends.
//!
//! Every case is written once, over [`Backend`], and instantiated for the embedded bus (a file
//! in a temporary directory) and for Kafka (the real broker at `KAFKA_BOOTSTRAP`, default
//! `127.0.0.1:9092`, started by `scripts/kafka.sh start`). The Kafka cases fail when no broker
//! answers. Topic and group names are unique per run, so reruns against a broker that kept its
//! data do not interfere. Waiting is always a bounded polling loop.
//!
//! `kafka_offsets_survive_broker_restart` restarts the broker; the other Kafka cases hold a
//! shared lock that it takes exclusively, so they never see it go away.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hub_tests::kafka::{bootstrap, run_script, unique, wait_reachable};
use integration_hub::bus::embedded::EmbeddedBus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::bus::{Bus, Consumer, OutMessage, Record, offsets_after};
use tempfile::TempDir;
use tokio::sync::{RwLock, RwLockReadGuard};
use tokio::time::Instant;

const PARTITIONS: u32 = 4;

/// Held shared by every Kafka case, exclusively by the broker restart.
static BROKER: RwLock<()> = RwLock::const_new(());

/// A way to get a bus; `open` again gives a fresh instance on the same storage, as a restarted
/// process would.
enum Backend {
    Embedded {
        _dir: TempDir,
        path: PathBuf,
    },
    Kafka {
        bootstrap: String,
        _shared: RwLockReadGuard<'static, ()>,
    },
}

impl Backend {
    async fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bus.db");
        Backend::Embedded { _dir: dir, path }
    }

    async fn kafka() -> Backend {
        let shared = BROKER.read().await;
        let backend = Backend::Kafka {
            bootstrap: bootstrap(),
            _shared: shared,
        };
        // Fails the case, with the reason, when no broker answers.
        drop(backend.open().await);
        backend
    }

    async fn open(&self) -> Arc<dyn Bus> {
        match self {
            Backend::Embedded { path, .. } => {
                Arc::new(EmbeddedBus::open(path, PARTITIONS).expect("open embedded bus"))
            }
            Backend::Kafka { bootstrap, .. } => {
                open_kafka(bootstrap, Duration::from_secs(15)).await
            }
        }
    }

    /// How long records may take to arrive (Kafka: includes the group's first assignment).
    fn deadline(&self) -> Duration {
        match self {
            Backend::Embedded { .. } => Duration::from_secs(10),
            Backend::Kafka { .. } => Duration::from_secs(60),
        }
    }

    /// How long to keep polling to be confident that nothing more comes.
    fn quiet(&self) -> Duration {
        match self {
            Backend::Embedded { .. } => Duration::from_millis(300),
            Backend::Kafka { .. } => Duration::from_secs(3),
        }
    }

    /// Messages of `topic` on disk, counted through a connection of its own (embedded only).
    fn stored_count(&self, topic: &str) -> Option<usize> {
        match self {
            Backend::Embedded { path, .. } => {
                let conn = rusqlite::Connection::open(path).expect("open bus file");
                let n: i64 = conn
                    .query_row(
                        "SELECT COUNT(*) FROM messages WHERE topic = ?1",
                        [topic],
                        |row| row.get(0),
                    )
                    .expect("count rows");
                Some(usize::try_from(n).expect("row count"))
            }
            Backend::Kafka { .. } => None,
        }
    }
}

async fn open_kafka(bootstrap: &str, within: Duration) -> Arc<dyn Bus> {
    let mut cfg = KafkaConfig::new(bootstrap);
    cfg.client_id = "bus-conformance".into();
    cfg.default_partitions = PARTITIONS;
    let bus = KafkaBus::new(&cfg).expect("create kafka bus");
    if let Err(e) = wait_reachable(&bus, within).await {
        panic!(
            "no Kafka broker reachable at {bootstrap}: {e:#}; start one with `scripts/kafka.sh start`"
        );
    }
    Arc::new(bus)
}

/// `key:seq` messages, carrying the sequence number in a header too.
fn message(key: &str, seq: usize) -> OutMessage {
    OutMessage {
        key: key.to_owned(),
        headers: vec![
            ("seq".to_owned(), seq.to_string()),
            ("origin".to_owned(), "conformance".to_owned()),
        ],
        payload: format!("{key}:{seq}").into_bytes(),
    }
}

/// `keys` × `seqs`, interleaved: every key's message for one sequence number, then the next.
fn interleaved(keys: &[String], seqs: std::ops::Range<usize>) -> Vec<OutMessage> {
    seqs.flat_map(|s| keys.iter().map(move |k| message(k, s)))
        .collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

fn seq_of(r: &Record) -> usize {
    r.header("seq")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("record without seq header: {r:?}"))
}

/// Identity of a record: where it is and what it holds.
fn ids(records: &[Record]) -> BTreeSet<(i32, i64, String, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.partition, r.offset, r.key.clone(), r.payload.clone()))
        .collect()
}

/// Polls until exactly `n` records arrived, failing after `within`.
async fn consume(c: &mut dyn Consumer, n: usize, within: Duration) -> Vec<Record> {
    let deadline = Instant::now() + within;
    let mut out: Vec<Record> = Vec::with_capacity(n);
    while out.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "only {} of {n} records arrived within {within:?}",
            out.len()
        );
        let batch = c
            .poll(n - out.len(), left.min(Duration::from_secs(1)))
            .await
            .expect("poll");
        assert!(
            batch.len() <= n - out.len(),
            "poll returned more than asked"
        );
        out.extend(batch);
    }
    out
}

/// Polls for `quiet` and fails if anything arrives.
async fn assert_nothing_more(c: &mut dyn Consumer, quiet: Duration) {
    let extra = c.poll(100, quiet).await.expect("poll");
    assert!(
        extra.is_empty(),
        "unexpected records: {:?}",
        extra
            .iter()
            .map(|r| (r.partition, r.offset, r.key.as_str()))
            .collect::<Vec<_>>()
    );
}

/// Same key → same partition, and within a partition strictly increasing offsets.
fn assert_partition_order(records: &[Record]) {
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut partition_of: BTreeMap<&str, i32> = BTreeMap::new();
    for r in records {
        if let Some(prev) = last.insert(r.partition, r.offset) {
            assert!(
                r.offset > prev,
                "partition {} went from {prev} to {}",
                r.partition,
                r.offset
            );
        }
        let p = *partition_of.entry(&r.key).or_insert(r.partition);
        assert_eq!(p, r.partition, "key {} on two partitions", r.key);
    }
}

// ------------------------------------------------------------------------------- the cases ----

async fn per_key_order(b: Backend) {
    let bus = b.open().await;
    let topic = unique("bus-order");
    let keys = keys(10);
    // 50 sequence numbers per key, in five publish calls.
    for chunk in 0..5 {
        bus.publish(&topic, interleaved(&keys, chunk * 10..chunk * 10 + 10))
            .await
            .expect("publish");
    }
    let mut c = bus
        .subscribe(&unique("g-order"), &topic)
        .await
        .expect("subscribe");
    let got = consume(c.as_mut(), 500, b.deadline()).await;
    assert_partition_order(&got);

    let mut per_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for r in &got {
        assert_eq!(r.topic, topic);
        assert_eq!(r.header("origin"), Some("conformance"));
        let seq = seq_of(r);
        assert_eq!(r.payload, format!("{}:{seq}", r.key).into_bytes());
        per_key.entry(r.key.clone()).or_default().push(seq);
    }
    assert_eq!(per_key.len(), 10);
    for (key, seqs) in &per_key {
        assert_eq!(seqs, &(0..50).collect::<Vec<_>>(), "order of {key}");
    }
    assert_nothing_more(c.as_mut(), b.quiet()).await;
}

async fn redelivery_after_crash(b: Backend) {
    let topic = unique("bus-redeliver");
    let group = unique("g-redeliver");
    let first = {
        let bus = b.open().await;
        bus.publish(&topic, interleaved(&keys(4), 0..10))
            .await
            .expect("publish");
        let mut c = bus.subscribe(&group, &topic).await.expect("subscribe");
        let got = consume(c.as_mut(), 40, b.deadline()).await;
        // Polling on does not hand out the same records twice.
        assert_nothing_more(c.as_mut(), b.quiet()).await;
        got
        // Consumer and bus dropped without a commit: a crash.
    };
    let bus = b.open().await;
    let mut c = bus
        .subscribe(&group, &topic)
        .await
        .expect("subscribe again");
    let again = consume(c.as_mut(), 40, b.deadline()).await;
    assert_eq!(ids(&again), ids(&first));
    assert_partition_order(&again);
    assert_nothing_more(c.as_mut(), b.quiet()).await;
}

async fn committed_offsets_survive_restart(b: Backend) {
    let topic = unique("bus-commit");
    let group = unique("g-commit");
    let all = {
        let bus = b.open().await;
        bus.publish(&topic, interleaved(&keys(10), 0..10))
            .await
            .expect("publish");
        // A fresh group of its own sees everything that was published.
        let mut reader = bus
            .subscribe(&unique("g-all"), &topic)
            .await
            .expect("subscribe");
        consume(reader.as_mut(), 100, b.deadline()).await
    };
    let committed = {
        let bus = b.open().await;
        let mut c = bus.subscribe(&group, &topic).await.expect("subscribe");
        let part = consume(c.as_mut(), 40, b.deadline()).await;
        c.commit(&offsets_after(&part)).await.expect("commit");
        part
    };
    let bus = b.open().await;
    let mut c = bus
        .subscribe(&group, &topic)
        .await
        .expect("subscribe again");
    let rest = consume(c.as_mut(), 60, b.deadline()).await;
    let expected: BTreeSet<_> = ids(&all).difference(&ids(&committed)).cloned().collect();
    assert_eq!(ids(&rest), expected);
    assert_nothing_more(c.as_mut(), b.quiet()).await;
}

async fn groups_are_independent(b: Backend) {
    let topic = unique("bus-groups");
    let (group_a, group_b) = (unique("g-a"), unique("g-b"));
    let first_b = {
        let bus = b.open().await;
        bus.publish(&topic, interleaved(&keys(3), 0..10))
            .await
            .expect("publish");

        let mut a = bus.subscribe(&group_a, &topic).await.expect("subscribe a");
        let got_a = consume(a.as_mut(), 30, b.deadline()).await;
        a.commit(&offsets_after(&got_a)).await.expect("commit a");

        // B starts from the beginning although A committed everything.
        let mut bb = bus.subscribe(&group_b, &topic).await.expect("subscribe b");
        let got_b = consume(bb.as_mut(), 30, b.deadline()).await;
        assert_eq!(ids(&got_b), ids(&got_a));
        // B commits only the first ten it saw (a prefix of every partition).
        let first_b = got_b[..10].to_vec();
        bb.commit(&offsets_after(&first_b)).await.expect("commit b");
        (ids(&got_b), first_b)
    };
    let (all, b_done) = first_b;

    let bus = b.open().await;
    bus.publish(&topic, interleaved(&keys(3), 10..12))
        .await
        .expect("publish more");

    // A resumes after everything it committed: only the new records.
    let mut a = bus
        .subscribe(&group_a, &topic)
        .await
        .expect("subscribe a again");
    let new_a = consume(a.as_mut(), 6, b.deadline()).await;
    assert!(
        new_a.iter().all(|r| seq_of(r) >= 10),
        "a re-read old records"
    );
    assert_nothing_more(a.as_mut(), b.quiet()).await;

    // B resumes after its own commit.
    let mut bb = bus
        .subscribe(&group_b, &topic)
        .await
        .expect("subscribe b again");
    let rest_b = consume(bb.as_mut(), 20 + 6, b.deadline()).await;
    let expected: BTreeSet<_> = all
        .difference(&ids(&b_done))
        .cloned()
        .chain(ids(&new_a))
        .collect();
    assert_eq!(ids(&rest_b), expected);
    assert_nothing_more(bb.as_mut(), b.quiet()).await;
}

async fn publish_is_durable(b: Backend) {
    let topic = unique("bus-durable");
    let bus = b.open().await;
    bus.publish(&topic, interleaved(&keys(5), 0..5))
        .await
        .expect("publish");
    // Embedded: on disk, seen through another connection while the bus is still open.
    if let Some(n) = b.stored_count(&topic) {
        assert_eq!(n, 25);
    }
    // Any backend: a fresh instance (another process) reads all of it.
    let other = b.open().await;
    let mut c = other
        .subscribe(&unique("g-durable"), &topic)
        .await
        .expect("subscribe");
    let got = consume(c.as_mut(), 25, b.deadline()).await;
    assert_partition_order(&got);
    assert_nothing_more(c.as_mut(), b.quiet()).await;
    drop(bus);
}

macro_rules! conformance_suite {
    ($module:ident, $backend:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn per_key_order() {
                super::per_key_order($backend.await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redelivery_after_crash() {
                super::redelivery_after_crash($backend.await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn committed_offsets_survive_restart() {
                super::committed_offsets_survive_restart($backend.await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn groups_are_independent() {
                super::groups_are_independent($backend.await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn publish_is_durable() {
                super::publish_is_durable($backend.await).await;
            }
        }
    };
}

conformance_suite!(embedded, Backend::embedded());
conformance_suite!(kafka, Backend::kafka());

/// Committed offsets are kept by the broker across its own restart (`scripts/kafka.sh restart`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_offsets_survive_broker_restart() {
    let _exclusive = BROKER.write().await;
    let bootstrap = bootstrap();
    let deadline = Duration::from_secs(60);
    let topic = unique("bus-broker-restart");
    let group = unique("g-broker-restart");

    let (all, committed) = {
        let bus = open_kafka(&bootstrap, Duration::from_secs(15)).await;
        bus.publish(&topic, interleaved(&keys(6), 0..10))
            .await
            .expect("publish");
        let mut c = bus.subscribe(&group, &topic).await.expect("subscribe");
        let part = consume(c.as_mut(), 25, deadline).await;
        c.commit(&offsets_after(&part)).await.expect("commit");
        let mut reader = bus
            .subscribe(&unique("g-all"), &topic)
            .await
            .expect("subscribe");
        let all = consume(reader.as_mut(), 60, deadline).await;
        (ids(&all), ids(&part))
    };

    let started = Instant::now();
    tokio::task::spawn_blocking(|| run_script("restart"))
        .await
        .expect("join")
        .expect("scripts/kafka.sh restart");
    eprintln!("broker restarted in {:?}", started.elapsed());

    let bus = open_kafka(&bootstrap, Duration::from_secs(90)).await;
    bus.publish(&topic, interleaved(&keys(6), 10..11))
        .await
        .expect("publish after restart");
    let mut c = bus
        .subscribe(&group, &topic)
        .await
        .expect("subscribe after restart");
    let rest = consume(c.as_mut(), 35 + 6, deadline).await;
    let (new, old): (Vec<Record>, Vec<Record>) = rest.into_iter().partition(|r| seq_of(r) >= 10);
    assert_eq!(new.len(), 6);
    let expected: BTreeSet<_> = all.difference(&committed).cloned().collect();
    assert_eq!(ids(&old), expected);
    assert_nothing_more(c.as_mut(), Duration::from_secs(3)).await;
}

/// Random publish / poll / commit / drop / restart / compact sequences on the embedded bus,
/// against a model: a log per partition and a committed offset per group.
mod embedded_model {
    use super::*;
    use integration_hub::bus::Offsets;
    use integration_hub::bus::embedded::partition_for;
    use proptest::prelude::*;

    const P: u32 = 3;
    const GROUPS: usize = 2;

    #[derive(Debug, Clone)]
    enum Op {
        Publish(Vec<u8>),
        Poll { group: usize, max: usize },
        Commit { group: usize },
        Drop { group: usize },
        Restart,
        Compact,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop::collection::vec(0u8..6, 1..8).prop_map(Op::Publish),
            4 => (0..GROUPS, 1usize..12).prop_map(|(group, max)| Op::Poll { group, max }),
            2 => (0..GROUPS).prop_map(|group| Op::Commit { group }),
            1 => (0..GROUPS).prop_map(|group| Op::Drop { group }),
            1 => Just(Op::Restart),
            1 => Just(Op::Compact),
        ]
    }

    #[derive(Default)]
    struct Model {
        /// partition → payloads by offset.
        log: BTreeMap<i32, Vec<String>>,
        /// partition → first offset still stored.
        start: BTreeMap<i32, i64>,
        committed: [Option<Offsets>; GROUPS],
        published: usize,
    }

    impl Model {
        fn len(&self, p: i32) -> i64 {
            self.log.get(&p).map_or(0, |l| l.len() as i64)
        }
        fn start(&self, p: i32) -> i64 {
            self.start.get(&p).copied().unwrap_or(0)
        }
        fn committed(&self, g: usize, p: i32) -> i64 {
            self.committed[g]
                .as_ref()
                .and_then(|o| o.get(&p).copied())
                .unwrap_or(0)
        }
    }

    struct Live {
        consumer: Box<dyn Consumer>,
        positions: BTreeMap<i32, i64>,
    }

    async fn run(ops: Vec<Op>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("bus.db");
        let topic = "model";
        let group_name = |g: usize| format!("group-{g}");
        let mut bus = EmbeddedBus::open(&path, P).expect("open");
        let mut live: [Option<Live>; GROUPS] = [None, None];
        let mut model = Model::default();

        for op in ops {
            match op {
                Op::Publish(keys) => {
                    let mut batch = Vec::new();
                    for k in keys {
                        let key = format!("k{k}");
                        let payload = format!("m{}", model.published);
                        model.published += 1;
                        model
                            .log
                            .entry(partition_for(&key, P))
                            .or_default()
                            .push(payload.clone());
                        batch.push(OutMessage {
                            key,
                            headers: vec![],
                            payload: payload.into_bytes(),
                        });
                    }
                    bus.publish(topic, batch).await.expect("publish");
                }
                Op::Poll { group, max } => {
                    if live[group].is_none() {
                        let consumer = bus
                            .subscribe(&group_name(group), topic)
                            .await
                            .expect("subscribe");
                        let positions = (0..P as i32)
                            .map(|p| (p, model.committed(group, p)))
                            .collect();
                        live[group] = Some(Live {
                            consumer,
                            positions,
                        });
                    }
                    let l = live[group].as_mut().expect("subscribed above");
                    let unread: i64 = (0..P as i32)
                        .map(|p| model.len(p) - l.positions[&p].max(model.start(p)))
                        .sum();
                    let got = l.consumer.poll(max, Duration::ZERO).await.expect("poll");
                    assert_eq!(got.len() as i64, unread.min(max as i64), "batch size");
                    for r in got {
                        let pos = l.positions[&r.partition].max(model.start(r.partition));
                        assert_eq!(r.offset, pos, "next offset of partition {}", r.partition);
                        let expected = &model.log[&r.partition][r.offset as usize];
                        assert_eq!(r.payload, expected.as_bytes());
                        assert_eq!(partition_for(&r.key, P), r.partition);
                        l.positions.insert(r.partition, r.offset + 1);
                    }
                }
                Op::Commit { group } => {
                    if let Some(l) = live[group].as_mut() {
                        l.consumer.commit(&l.positions).await.expect("commit");
                        model.committed[group] = Some(l.positions.clone());
                    }
                }
                Op::Drop { group } => live[group] = None,
                Op::Restart => {
                    live = [None, None];
                    drop(bus);
                    bus = EmbeddedBus::open(&path, P).expect("reopen");
                }
                Op::Compact => {
                    let mut expected_deleted = 0;
                    if model.committed.iter().any(Option::is_some) {
                        for p in 0..P as i32 {
                            let low = (0..GROUPS)
                                .filter(|g| model.committed[*g].is_some())
                                .map(|g| model.committed(g, p))
                                .min()
                                .unwrap_or(0)
                                .min(model.len(p));
                            let start = model.start(p);
                            if low > start {
                                expected_deleted += low - start;
                                model.start.insert(p, low);
                            }
                        }
                    }
                    let deleted = bus.compact(topic).await.expect("compact");
                    assert_eq!(deleted as i64, expected_deleted, "compacted rows");
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn embedded_bus_matches_model(ops in prop::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run(ops));
        }
    }
}
