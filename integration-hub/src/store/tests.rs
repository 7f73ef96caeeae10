//! The state store's suite, run on SQLite and on PostgreSQL (`HUB_TEST_POSTGRES`, started by
//! `scripts/postgres.sh start`). Each PostgreSQL test works in a schema of its own, so the
//! tests run in parallel; without the variable the PostgreSQL tests fail, never skip.

use std::sync::Arc;

use super::*;
use crate::sql::test_schema::{self, PgSchema};

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database for one test; dropping it removes the database.
struct Fixture {
    /// How to open another store on the same database (a restart, another instance).
    target: Target,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg_schema: Option<PgSchema>,
}

enum Target {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

impl Fixture {
    fn open(&self) -> Store {
        match &self.target {
            Target::Sqlite(path) => Store::open(path).expect("open sqlite store"),
            Target::Postgres(url) => Store::open_postgres(url).expect("open postgres store"),
        }
    }
}

fn postgres_url() -> String {
    test_schema::postgres_url("the state store")
}

fn fixture(backend: Backend) -> Fixture {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            Fixture {
                target: Target::Sqlite(dir.path().join("state.db")),
                _sqlite_dir: Some(dir),
                _pg_schema: None,
            }
        }
        Backend::Postgres => {
            let schema = PgSchema::create("the state store", "s");
            Fixture {
                target: Target::Postgres(schema.store_url()),
                _sqlite_dir: None,
                _pg_schema: Some(schema),
            }
        }
    }
}

fn delivered(key: &str, version: i64) -> Delivered {
    Delivered {
        entity: "party".into(),
        key: key.into(),
        version,
        envelope_id: format!("{key}-v{version}"),
    }
}

fn party(key: &str) -> (String, String) {
    ("party".to_string(), key.to_string())
}

// ------------------------------------------------------------------- tests ----

fn delivered_version_never_goes_down(b: Backend) {
    let f = fixture(b);
    let s = f.open();
    s.record_delivered("crm", &[delivered("k1", 5)]).unwrap();
    s.record_delivered("crm", &[delivered("k1", 3)]).unwrap();
    let keys = vec![party("k1")];
    assert_eq!(s.delivered_versions("crm", &keys).unwrap(), vec![Some(5)]);
    s.record_delivered("crm", &[delivered("k1", 9)]).unwrap();
    assert_eq!(s.delivered_versions("crm", &keys).unwrap(), vec![Some(9)]);
    assert_eq!(s.delivered_versions("other", &keys).unwrap(), vec![None]);
    // The same key twice in one call: the newer wins, whatever the order.
    s.record_delivered("crm", &[delivered("k2", 8), delivered("k2", 4)])
        .unwrap();
    assert_eq!(
        s.delivered_versions("crm", &[party("k2")]).unwrap(),
        vec![Some(8)]
    );
    assert_eq!(s.delivered_count("crm").unwrap(), 2);
}

/// Dead-lettered versions are kept apart from delivered ones, per sink, never going down.
fn dead_lettered_versions_are_kept_per_sink(b: Backend) {
    let f = fixture(b);
    let s = f.open();
    s.record_dead_lettered("crm", &[delivered("k1", 4), delivered("k1", 2)])
        .unwrap();
    s.record_dead_lettered("crm", &[delivered("k1", 3)])
        .unwrap();
    let keys = vec![party("k1"), party("k2")];
    assert_eq!(
        s.dead_lettered_versions("crm", &keys).unwrap(),
        vec![Some(4), None]
    );
    assert_eq!(
        s.dead_lettered_versions("other", &keys).unwrap(),
        vec![None, None]
    );
    assert_eq!(
        s.delivered_versions("crm", &keys).unwrap(),
        vec![None, None]
    );
}

/// Lookups and writes larger than one statement's chunk, with missing and repeated keys.
fn large_batches_round_trip(b: Backend) {
    let f = fixture(b);
    let s = f.open();
    let items: Vec<Delivered> = (0..150)
        .map(|i| delivered(&format!("K{i:04}"), i))
        .collect();
    s.record_delivered("crm", &items).unwrap();
    let mut keys: Vec<(String, String)> = (0..200).map(|i| party(&format!("K{i:04}"))).collect();
    keys.push(party("K0007"));
    keys.push(("account".into(), "K0001".into()));
    let got = s.delivered_versions("crm", &keys).unwrap();
    assert_eq!(got.len(), keys.len());
    for (i, v) in got.iter().take(200).enumerate() {
        let want = (i < 150).then_some(i as i64);
        assert_eq!(*v, want, "key {i}");
    }
    assert_eq!(got[200], Some(7));
    assert_eq!(got[201], None, "another entity with the same key");
    assert_eq!(
        s.delivered_versions("crm", &[]).unwrap(),
        Vec::<Option<i64>>::new()
    );
}

/// Several stores on one database (hub instances) writing the same keys at once: every key
/// ends at the highest version any of them recorded.
fn concurrent_writers_keep_the_highest_version(b: Backend) {
    let f = Arc::new(fixture(b));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let f = f.clone();
            std::thread::spawn(move || {
                let s = f.open();
                for round in 0..25_i64 {
                    // Versions go up and down per writer; each writer's highest is 100 + w.
                    let v = if round == 12 {
                        100 + w
                    } else {
                        (round * 7 + w) % 50
                    };
                    let items: Vec<Delivered> = (0..20)
                        .rev()
                        .map(|k| delivered(&format!("K{k}"), v))
                        .collect();
                    s.record_delivered("crm", &items).expect("record");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer thread");
    }
    let s = f.open();
    let keys: Vec<_> = (0..20).map(|k| party(&format!("K{k}"))).collect();
    let got = s.delivered_versions("crm", &keys).unwrap();
    assert!(got.iter().all(|v| *v == Some(103)), "{got:?}");
}

fn ledger_survives_reopen(b: Backend) {
    let f = fixture(b);
    let e = LedgerEntry {
        source: "abs".into(),
        sha256: "ab".into(),
        file_name: "f.csv".into(),
        rows: 3,
        events: 2,
        quarantined: 1,
    };
    f.open().ledger_put(&e).unwrap();
    let s = f.open();
    // A second put of the same file (another instance finishing it too) changes nothing.
    let mut again = e.clone();
    again.file_name = "g.csv".into();
    s.ledger_put(&again).unwrap();
    assert_eq!(s.ledger_get("abs", "ab").unwrap(), Some(e));
    assert_eq!(s.ledger_get("abs", "cd").unwrap(), None);
    assert_eq!(s.ledger_len("abs").unwrap(), 1);
    assert_eq!(s.ledger_len("other").unwrap(), 0);
}

fn cursors_and_webhook_ids_survive_reopen_and_ids_are_pruned(b: Backend) {
    let f = fixture(b);
    {
        let s = f.open();
        assert_eq!(s.cursor_get("abs-rest").unwrap(), None);
        s.cursor_put("abs-rest", "2024-01-01T00:00:00Z").unwrap();
        s.cursor_put("abs-rest", "2024-01-02T00:00:00Z").unwrap();
        s.webhook_record_seen("hook", &["a".into(), "b".into()], 100)
            .unwrap();
        s.webhook_record_seen("hook", &["b".into(), "c".into(), "c".into()], 200)
            .unwrap();
    }
    let s = f.open();
    assert_eq!(
        s.cursor_get("abs-rest").unwrap().as_deref(),
        Some("2024-01-02T00:00:00Z")
    );
    assert_eq!(s.cursor_get("other").unwrap(), None);
    let ids = ["a".to_string(), "b".into(), "c".into(), "d".into()];
    assert_eq!(
        s.webhook_seen("hook", &ids).unwrap(),
        vec![true, true, true, false]
    );
    assert_eq!(s.webhook_seen("other", &ids[..1]).unwrap(), vec![false]);
    // "b" kept its first time (100): pruning before 150 drops a and b.
    assert_eq!(s.webhook_prune_seen("hook", 150).unwrap(), 2);
    assert_eq!(
        s.webhook_seen("hook", &ids).unwrap(),
        vec![false, false, true, false]
    );
}

fn many_webhook_ids(b: Backend) {
    let f = fixture(b);
    let s = f.open();
    let ids: Vec<String> = (0..140).map(|i| format!("evt-{i}")).collect();
    s.webhook_record_seen("hook", &ids[..100], 10).unwrap();
    let seen = s.webhook_seen("hook", &ids).unwrap();
    assert_eq!(seen.len(), 140);
    assert!(seen[..100].iter().all(|x| *x));
    assert!(seen[100..].iter().all(|x| !*x));
}

fn dlq_actions_replays_and_discards(b: Backend) {
    let f = fixture(b);
    let s = f.open();
    let action = |id: &str, what: &str, envelope: &str| DlqAction {
        id: id.into(),
        action: what.into(),
        at: "2024-01-01T00:00:00Z".into(),
        by: "officer".into(),
        replayed_to: (what == "replayed").then(|| "hub.canonical".to_string()),
        reason: (what == "discarded").then(|| "test".to_string()),
        envelope_id: envelope.into(),
    };
    assert!(
        s.dlq_record_discard(&action("0-1", "discarded", "e1"))
            .unwrap()
    );
    // Same letter, same envelope: the first action stands.
    assert!(
        !s.dlq_record_discard(&action("0-1", "discarded", "e1"))
            .unwrap()
    );
    s.dlq_record_replays(&[action("0-2", "replayed", "e2")])
        .unwrap();
    assert!(
        !s.dlq_record_discard(&action("0-2", "discarded", "e2"))
            .unwrap()
    );
    // The position taken by another letter (a re-created topic): a new action.
    assert!(
        s.dlq_record_discard(&action("0-2", "discarded", "e9"))
            .unwrap()
    );
    let got = s
        .dlq_actions(&["0-1".into(), "0-2".into(), "0-3".into()])
        .unwrap();
    assert_eq!(got[0], Some(action("0-1", "discarded", "e1")));
    assert_eq!(got[1], Some(action("0-2", "discarded", "e9")));
    assert_eq!(got[2], None);
    s.ping().unwrap();
}

/// The store is called from `spawn_blocking` in the hub; dropping it on an async task must
/// not panic (the PostgreSQL client closes on a thread of its own).
async fn from_spawn_blocking(b: Backend) {
    let f = Arc::new(
        tokio::task::spawn_blocking(move || fixture(b))
            .await
            .unwrap(),
    );
    let f2 = f.clone();
    let s = Arc::new(
        tokio::task::spawn_blocking(move || f2.open())
            .await
            .unwrap(),
    );
    let s2 = s.clone();
    tokio::task::spawn_blocking(move || s2.record_delivered("crm", &[delivered("k", 1)]))
        .await
        .unwrap()
        .unwrap();
    let Ok(s) = Arc::try_unwrap(s) else {
        panic!("the store is still shared");
    };
    drop(s);
    tokio::task::spawn_blocking(move || drop(f)).await.unwrap();
}

// ------------------------------------------------------- PostgreSQL only ----

/// A connection the server closed (restart, failover) is replaced at the next call.
fn postgres_reconnects() {
    let f = fixture(Backend::Postgres);
    let s = f.open();
    s.record_delivered("crm", &[delivered("k", 1)]).unwrap();
    let name = f._pg_schema.as_ref().map(|p| p.name.clone()).unwrap();
    let mut admin = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "the store's one connection");
    s.record_delivered("crm", &[delivered("k", 2)]).unwrap();
    assert_eq!(
        s.delivered_versions("crm", &[party("k")]).unwrap(),
        vec![Some(2)]
    );
}

/// One holder per source at a time; the lease moves when the holder's session ends, and
/// sources do not block each other.
fn postgres_source_lease_is_exclusive_and_moves() {
    let f = fixture(Backend::Postgres);
    let (a, b) = (f.open(), f.open());
    let mut first = a
        .source_lease("abs-files")
        .unwrap()
        .expect("a lease on postgres");
    let mut second = b
        .source_lease("abs-files")
        .unwrap()
        .expect("a lease on postgres");
    let mut other = b
        .source_lease("abs-rest")
        .unwrap()
        .expect("a lease on postgres");
    assert!(first.try_acquire().unwrap());
    assert!(first.try_acquire().unwrap(), "taking it again keeps it");
    assert!(first.holds().unwrap());
    assert!(!second.try_acquire().unwrap());
    assert!(!second.holds().unwrap());
    assert!(
        other.try_acquire().unwrap(),
        "another source is independent"
    );
    // The holder goes away (a stop, a crash): its session ends and the lease is free.
    drop(first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !second.try_acquire().unwrap() {
        assert!(std::time::Instant::now() < deadline, "lease not released");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(second.holds().unwrap());
    // The session killed on the server: the holder sees it has lost the lease.
    let mut admin = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls).unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = $1",
            &[&format!("hub {} abs-files", std::process::id())],
        )
        .unwrap();
    assert!(!matches!(second.holds(), Ok(true)));
}

#[test]
fn sqlite_store_has_no_source_lease() {
    let f = fixture(Backend::Sqlite);
    let s = f.open();
    assert!(!s.is_shared());
    assert!(s.source_lease("abs-files").unwrap().is_none());
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn from_spawn_blocking() { super::from_spawn_blocking(super::Backend::Sqlite).await }
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
            #[test] fn reconnects() { super::postgres_reconnects() }
            #[test] fn source_lease_is_exclusive_and_moves() {
                super::postgres_source_lease_is_exclusive_and_moves()
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn from_spawn_blocking() { super::from_spawn_blocking(super::Backend::Postgres).await }
        }
    };
}

suite!(
    delivered_version_never_goes_down,
    dead_lettered_versions_are_kept_per_sink,
    large_batches_round_trip,
    concurrent_writers_keep_the_highest_version,
    ledger_survives_reopen,
    cursors_and_webhook_ids_survive_reopen_and_ids_are_pruned,
    many_webhook_ids,
    dlq_actions_replays_and_discards,
);
