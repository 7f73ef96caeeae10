//! The hub's own durable state: the file ledger and the delivered versions per sink.
//!
//! - The **file ledger** records, per source, the SHA-256 of every file whose events the bus
//!   acknowledged. A file whose checksum is in the ledger is not ingested again.
//! - **Delivered versions** record, per sink and entity key, the highest version the target
//!   acknowledged. A sink writes here after the target's acknowledgement and before it
//!   commits its bus offset, so an event re-delivered after a crash, or an older version
//!   arriving late, is recognised and skipped: effects stay exactly-once and an older
//!   version never overwrites a newer one.
//! - **Source cursors** and **webhook ids seen** let polling and push sources resume.
//! - **Dead-letter actions** record, per dead letter (`<partition>-<offset>` on the DLQ
//!   topic), whether an operator replayed or discarded it, when and who (`crate::dlq`).
//!
//! Two backends, one schema and one set of statements (`crate::sql`):
//! - **SQLite** (`[state] store = "sqlite"`, the default): `<data_dir>/state.db`, WAL,
//!   `synchronous=FULL`; one hub process.
//! - **PostgreSQL** (`[state] store = "postgres"`): shared by several hub processes in one
//!   Kafka consumer group (docs/scale-out.md). Every write is a single statement that is
//!   correct under concurrency by itself — above all the delivered-version upsert, which
//!   only ever raises a version (`WHERE excluded.version > delivered.version` in the
//!   `ON CONFLICT` clause: PostgreSQL evaluates it against the latest committed row, under
//!   the row lock) — so writers do not serialise on a store-wide lock. Polling sources are
//!   run by one instance at a time through a [`SourceLease`].
//!
//! Calls are blocking; async callers go through `tokio::task::spawn_blocking` (required for
//! PostgreSQL, whose client runs a runtime of its own).

mod source_lease;
#[cfg(test)]
mod tests;

pub use source_lease::{SourceLease, run_as_leader};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::config::{Config, StateBackend};
use crate::sql::{Db, DbError, Param, Row, TxKind, postgres, sqlite};

/// First key of the advisory lock that serialises schema creation by several hubs ("Stat").
const STATE_LOCK_CLASS: i32 = 0x5374_6174;

/// Keys per lookup statement. The last chunk is padded by repeating a key, so one statement
/// serves every lookup.
const LOOKUP_CHUNK: usize = 64;

/// Rows per multi-row INSERT: bounds the number of distinct statements kept prepared.
const INSERT_CHUNK: usize = 16;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS file_ledger (
    source TEXT NOT NULL, sha256 TEXT NOT NULL, file_name TEXT NOT NULL,
    rows BIGINT NOT NULL, events BIGINT NOT NULL, quarantined BIGINT NOT NULL,
    completed_at TEXT NOT NULL,
    PRIMARY KEY (source, sha256));
CREATE TABLE IF NOT EXISTS delivered (
    sink TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,
    version BIGINT NOT NULL, envelope_id TEXT NOT NULL, delivered_at TEXT NOT NULL,
    PRIMARY KEY (sink, entity, key));
CREATE TABLE IF NOT EXISTS dead_lettered (
    sink TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,
    version BIGINT NOT NULL, lettered_at TEXT NOT NULL,
    PRIMARY KEY (sink, entity, key));
CREATE TABLE IF NOT EXISTS source_cursors (
    source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_seen (
    source TEXT NOT NULL, event_id TEXT NOT NULL, seen_at BIGINT NOT NULL,
    PRIMARY KEY (source, event_id));
CREATE INDEX IF NOT EXISTS webhook_seen_at ON webhook_seen (source, seen_at);
CREATE TABLE IF NOT EXISTS dlq_actions (
    id TEXT PRIMARY KEY, action TEXT NOT NULL, at TEXT NOT NULL, by TEXT NOT NULL,
    replayed_to TEXT, reason TEXT, envelope_id TEXT NOT NULL DEFAULT '');
";

#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StoreError(String);

impl StoreError {
    pub fn new(message: String) -> StoreError {
        StoreError(message)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        StoreError(e.0)
    }
}

/// One file's entry in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub source: String,
    pub sha256: String,
    pub file_name: String,
    pub rows: u64,
    pub events: u64,
    pub quarantined: u64,
}

/// What an operator did with a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DlqAction {
    /// The dead letter: `<partition>-<offset>` on the DLQ topic.
    pub id: String,
    /// `replayed` or `discarded`.
    pub action: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// Who, as given by the operator.
    pub by: String,
    /// For a replay: the topic the record was published to again.
    pub replayed_to: Option<String>,
    /// For a discard: why.
    pub reason: Option<String>,
    /// The envelope id the letter carried ('' if none), so an action is never applied to
    /// another letter that later took the same position (a DLQ topic deleted and re-created).
    pub envelope_id: String,
}

/// A version a sink delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub entity: String,
    pub key: String,
    pub version: i64,
    pub envelope_id: String,
}

/// Where the state lives; the PostgreSQL URL is kept for the source leases' connections.
enum Backend {
    Sqlite,
    Postgres { url: String },
}

pub struct Store {
    db: Mutex<Box<dyn Db>>,
    backend: Backend,
}

impl std::fmt::Debug for Store {
    // The URL can carry a password: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `($n, $n+1, ...), (...)`: `rows` groups of `width` placeholders numbered from `first`.
fn placeholders(first: usize, rows: usize, width: usize) -> String {
    let mut out = String::new();
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..width {
            if c > 0 {
                out.push_str(", ");
            }
            out.push_str(&format!("${n}"));
            n += 1;
        }
        out.push(')');
    }
    out
}

/// `chunk` padded to `LOOKUP_CHUNK` items by repeating its last one.
fn padded<T: Clone>(chunk: &[T]) -> Vec<T> {
    let mut v = chunk.to_vec();
    if let Some(last) = chunk.last() {
        v.resize(LOOKUP_CHUNK, last.clone());
    }
    v
}

impl Store {
    /// Opens (creating if needed) the SQLite store at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sqlite::SqliteDb::open(path)?;
        Store::with_db(Box::new(db), Backend::Sqlite)
    }

    /// Opens (creating the tables if needed) the store in a PostgreSQL database; the schema
    /// is the connection's `search_path` (`?options=-c%20search_path%3D<schema>` in the URL).
    /// Callable from anywhere, an async task included: the blocking client's connection and
    /// the schema statements run on a thread of their own (command-line tools open the store
    /// inside their runtime).
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        std::thread::scope(|s| {
            s.spawn(|| {
                let db = postgres::PgDb::connect(url, STATE_LOCK_CLASS)?;
                Store::with_db(
                    Box::new(db),
                    Backend::Postgres {
                        url: url.to_owned(),
                    },
                )
            })
            .join()
            .unwrap_or_else(|_| {
                Err(StoreError::new(
                    "opening the PostgreSQL state store panicked".into(),
                ))
            })
        })
    }

    /// Opens the store `[state]` names: SQLite at `config.store_path()`, or PostgreSQL at
    /// the URL `postgres_url` refers to (resolved here).
    pub fn open_for(config: &Config) -> Result<Store, StoreError> {
        match config.state.store {
            StateBackend::Sqlite => Store::open(&config.store_path()),
            StateBackend::Postgres => {
                let reference = config.state.postgres_url.as_deref().ok_or_else(|| {
                    StoreError::new("state.postgres_url: missing for store = \"postgres\"".into())
                })?;
                let url = crate::config::resolve_secret(reference, &config.base_dir)
                    .map_err(|e| StoreError::new(format!("state.postgres_url: {e}")))?;
                Store::open_postgres(&url)
            }
        }
    }

    fn with_db(mut db: Box<dyn Db>, backend: Backend) -> Result<Store, StoreError> {
        // Under the schema lock, so several hubs starting together do not race on DDL.
        db.begin(TxKind::Write)?;
        if let Err(e) = db.batch(SCHEMA) {
            let _ = db.rollback();
            return Err(e.into());
        }
        if let Err(e) = db.commit() {
            let _ = db.rollback();
            return Err(e.into());
        }
        Ok(Store {
            db: Mutex::new(db),
            backend,
        })
    }

    /// Whether several hub processes can share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres { .. })
    }

    /// A connection of its own for deciding which instance runs polling source `source`;
    /// `None` when the store is one process's (SQLite), where the source simply runs.
    pub fn source_lease(&self, source: &str) -> Result<Option<SourceLease>, StoreError> {
        match &self.backend {
            Backend::Sqlite => Ok(None),
            Backend::Postgres { url } => SourceLease::connect(url, source).map(Some),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Box<dyn Db>> {
        match self.db.lock() {
            Ok(g) => g,
            Err(poisoned) => {
                // A panic mid-call may have left a transaction open: end it before reuse.
                let mut g = poisoned.into_inner();
                let _ = g.rollback();
                self.db.clear_poison();
                g
            }
        }
    }

    /// Runs `f` in one transaction of `kind`. Every call opens one, which is also where the
    /// PostgreSQL connection is replaced after the server closed it.
    fn run<T>(
        &self,
        kind: TxKind,
        f: impl FnOnce(&mut dyn Db) -> Result<T, DbError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let db: &mut dyn Db = &mut **guard;
        if let Err(e) = db.begin(kind) {
            let _ = db.rollback();
            return Err(e.into());
        }
        match f(db) {
            Ok(v) => match db.commit() {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = db.rollback();
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = db.rollback();
                Err(e.into())
            }
        }
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.run(TxKind::Read, |db| db.query("SELECT 1", &[]).map(drop))
    }

    pub fn ledger_get(
        &self,
        source: &str,
        sha256: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let rows = self.run(TxKind::Read, |db| {
            db.query(
                "SELECT file_name, rows, events, quarantined FROM file_ledger
                 WHERE source = $1 AND sha256 = $2",
                &[source.into(), sha256.into()],
            )
        })?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        Ok(Some(LedgerEntry {
            source: source.to_string(),
            sha256: sha256.to_string(),
            file_name: r.text(0)?,
            rows: u64_of(r.int(1)?),
            events: u64_of(r.int(2)?),
            quarantined: u64_of(r.int(3)?),
        }))
    }

    /// Records a file as ingested. Call only after the bus acknowledged all of its events.
    pub fn ledger_put(&self, e: &LedgerEntry) -> Result<(), StoreError> {
        let now = chrono::Utc::now().to_rfc3339();
        self.run(TxKind::Concurrent, |db| {
            db.execute(
                "INSERT INTO file_ledger
                 (source, sha256, file_name, rows, events, quarantined, completed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (source, sha256) DO NOTHING",
                &[
                    e.source.as_str().into(),
                    e.sha256.as_str().into(),
                    e.file_name.as_str().into(),
                    i64_of(e.rows).into(),
                    i64_of(e.events).into(),
                    i64_of(e.quarantined).into(),
                    now.into(),
                ],
            )
        })?;
        Ok(())
    }

    pub fn ledger_len(&self, source: &str) -> Result<u64, StoreError> {
        let rows = self.run(TxKind::Read, |db| {
            db.query(
                "SELECT COUNT(*) FROM file_ledger WHERE source = $1",
                &[source.into()],
            )
        })?;
        count_of(&rows)
    }

    /// The delivered version of each `(entity, key)`, or `None`.
    pub fn delivered_versions(
        &self,
        sink: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        self.versions_in("delivered", sink, keys)
    }

    /// The version per key in `table` (`delivered` or `dead_lettered`) for `sink`.
    fn versions_in(
        &self,
        table: &str,
        sink: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT entity, key, version FROM {table}
             WHERE sink = $1 AND (entity, key) IN (VALUES {})",
            placeholders(2, LOOKUP_CHUNK, 2)
        );
        let found = self.run(TxKind::Read, |db| {
            let mut found: HashMap<(String, String), i64> = HashMap::new();
            for chunk in keys.chunks(LOOKUP_CHUNK) {
                let mut params: Vec<Param> = Vec::with_capacity(1 + 2 * LOOKUP_CHUNK);
                params.push(sink.into());
                for (entity, key) in padded(chunk) {
                    params.push(entity.into());
                    params.push(key.into());
                }
                for r in db.query(&sql, &params)? {
                    found.insert((r.text(0)?, r.text(1)?), r.int(2)?);
                }
            }
            Ok(found)
        })?;
        Ok(keys.iter().map(|k| found.get(k).copied()).collect())
    }

    /// Records what the target acknowledged; never lowers a stored version, whoever else
    /// writes the same key at the same time.
    pub fn record_delivered(&self, sink: &str, items: &[Delivered]) -> Result<(), StoreError> {
        // One row per key (the newest), in key order: a statement may not touch a row twice,
        // and concurrent writers taking row locks in one order cannot deadlock.
        let mut newest: BTreeMap<(&str, &str), &Delivered> = BTreeMap::new();
        for d in items {
            let slot = newest.entry((&d.entity, &d.key)).or_insert(d);
            if d.version > slot.version {
                *slot = d;
            }
        }
        let rows: Vec<&Delivered> = newest.into_values().collect();
        let now = chrono::Utc::now().to_rfc3339();
        self.run(TxKind::Concurrent, |db| {
            for chunk in rows.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO delivered (sink, entity, key, version, envelope_id, delivered_at)
                     VALUES {}
                     ON CONFLICT (sink, entity, key) DO UPDATE SET
                       version = excluded.version, envelope_id = excluded.envelope_id,
                       delivered_at = excluded.delivered_at
                     WHERE excluded.version > delivered.version",
                    placeholders(1, chunk.len(), 6)
                );
                let mut params: Vec<Param> = Vec::with_capacity(6 * chunk.len());
                for d in chunk {
                    params.extend([
                        sink.into(),
                        d.entity.as_str().into(),
                        d.key.as_str().into(),
                        d.version.into(),
                        d.envelope_id.as_str().into(),
                        now.as_str().into(),
                    ]);
                }
                db.execute(&sql, &params)?;
            }
            Ok(())
        })
    }

    /// The newest version of each key the sink sent to the dead-letter topic, if any: a
    /// source that sends the same version again (a re-read file after a crash) does not
    /// make a second dead letter.
    pub fn dead_lettered_versions(
        &self,
        sink: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        self.versions_in("dead_lettered", sink, keys)
    }

    /// Records what the sink dead-lettered; a version never goes down.
    pub fn record_dead_lettered(&self, sink: &str, items: &[Delivered]) -> Result<(), StoreError> {
        let mut newest: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for d in items {
            let v = newest.entry((&d.entity, &d.key)).or_insert(d.version);
            *v = (*v).max(d.version);
        }
        let rows: Vec<((&str, &str), i64)> = newest.into_iter().collect();
        let now = chrono::Utc::now().to_rfc3339();
        self.run(TxKind::Concurrent, |db| {
            for chunk in rows.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO dead_lettered (sink, entity, key, version, lettered_at)
                     VALUES {}
                     ON CONFLICT (sink, entity, key) DO UPDATE SET
                       version = excluded.version, lettered_at = excluded.lettered_at
                     WHERE excluded.version > dead_lettered.version",
                    placeholders(1, chunk.len(), 5)
                );
                let mut params: Vec<Param> = Vec::with_capacity(5 * chunk.len());
                for ((entity, key), version) in chunk {
                    params.extend([
                        sink.into(),
                        (*entity).into(),
                        (*key).into(),
                        (*version).into(),
                        now.as_str().into(),
                    ]);
                }
                db.execute(&sql, &params)?;
            }
            Ok(())
        })
    }

    pub fn delivered_count(&self, sink: &str) -> Result<u64, StoreError> {
        let rows = self.run(TxKind::Read, |db| {
            db.query(
                "SELECT COUNT(*) FROM delivered WHERE sink = $1",
                &[sink.into()],
            )
        })?;
        count_of(&rows)
    }

    /// The persisted cursor of a polling source (REST, SOAP), or `None` before its first
    /// acknowledged page.
    pub fn cursor_get(&self, source: &str) -> Result<Option<String>, StoreError> {
        let rows = self.run(TxKind::Read, |db| {
            db.query(
                "SELECT cursor FROM source_cursors WHERE source = $1",
                &[source.into()],
            )
        })?;
        match rows.first() {
            Some(r) => Ok(Some(r.text(0)?)),
            None => Ok(None),
        }
    }

    /// Persists a polling source's cursor. Call only after the bus acknowledged every record
    /// up to it.
    pub fn cursor_put(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        let now = chrono::Utc::now().to_rfc3339();
        self.run(TxKind::Concurrent, |db| {
            db.execute(
                "INSERT INTO source_cursors (source, cursor, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (source) DO UPDATE SET
                   cursor = excluded.cursor, updated_at = excluded.updated_at",
                &[source.into(), cursor.into(), now.into()],
            )
        })?;
        Ok(())
    }

    /// For each of `ids`, whether webhook source `source` accepted it before (and it was not
    /// pruned yet).
    pub fn webhook_seen(&self, source: &str, ids: &[String]) -> Result<Vec<bool>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (0..LOOKUP_CHUNK).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT event_id FROM webhook_seen WHERE source = $1 AND event_id IN ({})",
            list.join(", ")
        );
        let seen = self.run(TxKind::Read, |db| {
            let mut seen = std::collections::HashSet::new();
            for chunk in ids.chunks(LOOKUP_CHUNK) {
                let mut params: Vec<Param> = Vec::with_capacity(1 + LOOKUP_CHUNK);
                params.push(source.into());
                params.extend(padded(chunk).into_iter().map(Param::from));
                for r in db.query(&sql, &params)? {
                    seen.insert(r.text(0)?);
                }
            }
            Ok(seen)
        })?;
        Ok(ids.iter().map(|id| seen.contains(id)).collect())
    }

    /// Records webhook event ids as accepted at `at_unix` (seconds); an id already there
    /// keeps its first time. Call only after the events are durable on the bus.
    pub fn webhook_record_seen(
        &self,
        source: &str,
        ids: &[String],
        at_unix: i64,
    ) -> Result<(), StoreError> {
        let unique: std::collections::BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let unique: Vec<&str> = unique.into_iter().collect();
        self.run(TxKind::Concurrent, |db| {
            for chunk in unique.chunks(INSERT_CHUNK) {
                let sql = format!(
                    "INSERT INTO webhook_seen (source, event_id, seen_at) VALUES {}
                     ON CONFLICT (source, event_id) DO NOTHING",
                    placeholders(1, chunk.len(), 3)
                );
                let mut params: Vec<Param> = Vec::with_capacity(3 * chunk.len());
                for id in chunk {
                    params.extend([source.into(), (*id).into(), at_unix.into()]);
                }
                db.execute(&sql, &params)?;
            }
            Ok(())
        })
    }

    /// The recorded action of each dead letter in `ids`, or `None`.
    pub fn dlq_actions(&self, ids: &[String]) -> Result<Vec<Option<DlqAction>>, StoreError> {
        let rows = self.run(TxKind::Read, |db| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(db.query(
                    "SELECT action, at, by, replayed_to, reason, envelope_id FROM dlq_actions
                     WHERE id = $1",
                    &[id.into()],
                )?);
            }
            Ok(out)
        })?;
        ids.iter()
            .zip(rows)
            .map(|(id, rows)| match rows.first() {
                Some(r) => Ok(Some(dlq_action(id, r)?)),
                None => Ok(None),
            })
            .collect()
    }

    /// Records replays: each replaces whatever was recorded for its letter, since the record
    /// was published again whatever happened before. Call only after the bus acknowledged it.
    pub fn dlq_record_replays(&self, actions: &[DlqAction]) -> Result<(), StoreError> {
        self.run(TxKind::Concurrent, |db| {
            for a in actions {
                db.execute(
                    "INSERT INTO dlq_actions (id, action, at, by, replayed_to, reason, envelope_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (id) DO UPDATE SET
                       action = excluded.action, at = excluded.at, by = excluded.by,
                       replayed_to = excluded.replayed_to, reason = excluded.reason,
                       envelope_id = excluded.envelope_id",
                    &dlq_params(a),
                )?;
            }
            Ok(())
        })
    }

    /// Records a discard unless an action for the same letter (same envelope id) is already
    /// recorded; returns whether it was recorded. Atomic, so a discard never hides a replay
    /// that raced with it.
    pub fn dlq_record_discard(&self, action: &DlqAction) -> Result<bool, StoreError> {
        let n = self.run(TxKind::Concurrent, |db| {
            db.execute(
                "INSERT INTO dlq_actions (id, action, at, by, replayed_to, reason, envelope_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO UPDATE SET
                   action = excluded.action, at = excluded.at, by = excluded.by,
                   replayed_to = excluded.replayed_to, reason = excluded.reason,
                   envelope_id = excluded.envelope_id
                 WHERE dlq_actions.envelope_id <> excluded.envelope_id",
                &dlq_params(action),
            )
        })?;
        Ok(n == 1)
    }

    /// Forgets the webhook ids of `source` accepted before `before_unix`; returns how many.
    pub fn webhook_prune_seen(&self, source: &str, before_unix: i64) -> Result<u64, StoreError> {
        self.run(TxKind::Concurrent, |db| {
            db.execute(
                "DELETE FROM webhook_seen WHERE source = $1 AND seen_at < $2",
                &[source.into(), before_unix.into()],
            )
        })
    }
}

fn count_of(rows: &[Row]) -> Result<u64, StoreError> {
    match rows.first() {
        Some(r) => Ok(u64_of(r.int(0)?)),
        None => Ok(0),
    }
}

fn dlq_params(a: &DlqAction) -> [Param; 7] {
    [
        a.id.as_str().into(),
        a.action.as_str().into(),
        a.at.as_str().into(),
        a.by.as_str().into(),
        a.replayed_to.clone().into(),
        a.reason.clone().into(),
        a.envelope_id.as_str().into(),
    ]
}

fn dlq_action(id: &str, r: &Row) -> Result<DlqAction, DbError> {
    Ok(DlqAction {
        id: id.to_owned(),
        action: r.text(0)?,
        at: r.text(1)?,
        by: r.text(2)?,
        replayed_to: r.opt_text(3)?,
        reason: r.opt_text(4)?,
        envelope_id: r.text(5)?,
    })
}
