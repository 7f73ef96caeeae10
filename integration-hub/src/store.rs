//! The hub's own durable state: the file ledger and the delivered versions per sink.
//!
//! - The **file ledger** records, per source, the SHA-256 of every file whose events the bus
//!   acknowledged. A file whose checksum is in the ledger is not ingested again.
//! - **Delivered versions** record, per sink and entity key, the highest version the target
//!   acknowledged. A sink writes here after the target's acknowledgement and before it
//!   commits its bus offset, so an event re-delivered after a crash, or an older version
//!   arriving late, is recognised and skipped: effects stay exactly-once and an older
//!   version never overwrites a newer one.
//! - **Dead-letter actions** record, per dead letter (`<partition>-<offset>` on the DLQ
//!   topic), whether an operator replayed or discarded it, when and who (`crate::dlq`).
//!
//! Embedded SQLite (WAL, synchronous=FULL). Calls are blocking; async callers go through
//! `tokio::task::spawn_blocking`.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

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

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS file_ledger (
                source TEXT NOT NULL, sha256 TEXT NOT NULL, file_name TEXT NOT NULL,
                rows INTEGER NOT NULL, events INTEGER NOT NULL, quarantined INTEGER NOT NULL,
                completed_at TEXT NOT NULL,
                PRIMARY KEY (source, sha256));
             CREATE TABLE IF NOT EXISTS delivered (
                sink TEXT NOT NULL, entity TEXT NOT NULL, key TEXT NOT NULL,
                version INTEGER NOT NULL, envelope_id TEXT NOT NULL, delivered_at TEXT NOT NULL,
                PRIMARY KEY (sink, entity, key));
             CREATE TABLE IF NOT EXISTS source_cursors (
                source TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS webhook_seen (
                source TEXT NOT NULL, event_id TEXT NOT NULL, seen_at INTEGER NOT NULL,
                PRIMARY KEY (source, event_id));
             CREATE INDEX IF NOT EXISTS webhook_seen_at ON webhook_seen (source, seen_at);
             CREATE TABLE IF NOT EXISTS dlq_actions (
                id TEXT PRIMARY KEY, action TEXT NOT NULL, at TEXT NOT NULL, by TEXT NOT NULL,
                replayed_to TEXT, reason TEXT, envelope_id TEXT NOT NULL DEFAULT '');",
        )?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError("connection lock poisoned".into()))
    }

    pub fn ping(&self) -> Result<(), StoreError> {
        self.conn()?.query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }

    pub fn ledger_get(
        &self,
        source: &str,
        sha256: &str,
    ) -> Result<Option<LedgerEntry>, StoreError> {
        let conn = self.conn()?;
        let row = conn
            .query_row(
                "SELECT file_name, rows, events, quarantined FROM file_ledger
                 WHERE source = ?1 AND sha256 = ?2",
                params![source, sha256],
                |r| {
                    Ok(LedgerEntry {
                        source: source.to_string(),
                        sha256: sha256.to_string(),
                        file_name: r.get(0)?,
                        rows: r.get::<_, i64>(1)? as u64,
                        events: r.get::<_, i64>(2)? as u64,
                        quarantined: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// Records a file as ingested. Call only after the bus acknowledged all of its events.
    pub fn ledger_put(&self, e: &LedgerEntry) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT OR IGNORE INTO file_ledger
             (source, sha256, file_name, rows, events, quarantined, completed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                e.source,
                e.sha256,
                e.file_name,
                e.rows as i64,
                e.events as i64,
                e.quarantined as i64,
                chrono::Utc::now().to_rfc3339()
            ],
        )?;
        Ok(())
    }

    pub fn ledger_len(&self, source: &str) -> Result<u64, StoreError> {
        let n: i64 = self.conn()?.query_row(
            "SELECT COUNT(*) FROM file_ledger WHERE source = ?1",
            params![source],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The delivered version of each `(entity, key)`, or `None`.
    pub fn delivered_versions(
        &self,
        sink: &str,
        keys: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT version FROM delivered WHERE sink = ?1 AND entity = ?2 AND key = ?3",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for (entity, key) in keys {
            out.push(
                stmt.query_row(params![sink, entity, key], |r| r.get(0))
                    .optional()?,
            );
        }
        Ok(out)
    }

    /// Records what the target acknowledged; never lowers a stored version.
    pub fn record_delivered(&self, sink: &str, items: &[Delivered]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let now = chrono::Utc::now().to_rfc3339();
            let mut stmt = tx.prepare_cached(
                "INSERT INTO delivered (sink, entity, key, version, envelope_id, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (sink, entity, key) DO UPDATE SET
                   version = excluded.version, envelope_id = excluded.envelope_id,
                   delivered_at = excluded.delivered_at
                 WHERE excluded.version > delivered.version",
            )?;
            for d in items {
                stmt.execute(params![
                    sink,
                    d.entity,
                    d.key,
                    d.version,
                    d.envelope_id,
                    now
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn delivered_count(&self, sink: &str) -> Result<u64, StoreError> {
        let n: i64 = self.conn()?.query_row(
            "SELECT COUNT(*) FROM delivered WHERE sink = ?1",
            params![sink],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    /// The persisted cursor of a polling source (REST, SOAP), or `None` before its first
    /// acknowledged page.
    pub fn cursor_get(&self, source: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .conn()?
            .query_row(
                "SELECT cursor FROM source_cursors WHERE source = ?1",
                params![source],
                |r| r.get(0),
            )
            .optional()?;
        Ok(row)
    }

    /// Persists a polling source's cursor. Call only after the bus acknowledged every record
    /// up to it.
    pub fn cursor_put(&self, source: &str, cursor: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO source_cursors (source, cursor, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (source) DO UPDATE SET
               cursor = excluded.cursor, updated_at = excluded.updated_at",
            params![source, cursor, chrono::Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    /// For each of `ids`, whether webhook source `source` accepted it before (and it was not
    /// pruned yet).
    pub fn webhook_seen(&self, source: &str, ids: &[String]) -> Result<Vec<bool>, StoreError> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare_cached("SELECT 1 FROM webhook_seen WHERE source = ?1 AND event_id = ?2")?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                stmt.query_row(params![source, id], |_| Ok(()))
                    .optional()?
                    .is_some(),
            );
        }
        Ok(out)
    }

    /// Records webhook event ids as accepted at `at_unix` (seconds); an id already there
    /// keeps its first time. Call only after the events are durable on the bus.
    pub fn webhook_record_seen(
        &self,
        source: &str,
        ids: &[String],
        at_unix: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO webhook_seen (source, event_id, seen_at) VALUES (?1, ?2, ?3)",
            )?;
            for id in ids {
                stmt.execute(params![source, id, at_unix])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The recorded action of each dead letter in `ids`, or `None`.
    pub fn dlq_actions(&self, ids: &[String]) -> Result<Vec<Option<DlqAction>>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT action, at, by, replayed_to, reason, envelope_id FROM dlq_actions
             WHERE id = ?1",
        )?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(
                stmt.query_row(params![id], |r| {
                    Ok(DlqAction {
                        id: id.clone(),
                        action: r.get(0)?,
                        at: r.get(1)?,
                        by: r.get(2)?,
                        replayed_to: r.get(3)?,
                        reason: r.get(4)?,
                        envelope_id: r.get(5)?,
                    })
                })
                .optional()?,
            );
        }
        Ok(out)
    }

    /// Records replays: each replaces whatever was recorded for its letter, since the record
    /// was published again whatever happened before. Call only after the bus acknowledged it.
    pub fn dlq_record_replays(&self, actions: &[DlqAction]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO dlq_actions (id, action, at, by, replayed_to, reason, envelope_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET
                   action = excluded.action, at = excluded.at, by = excluded.by,
                   replayed_to = excluded.replayed_to, reason = excluded.reason,
                   envelope_id = excluded.envelope_id",
            )?;
            for a in actions {
                stmt.execute(params![
                    a.id,
                    a.action,
                    a.at,
                    a.by,
                    a.replayed_to,
                    a.reason,
                    a.envelope_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a discard unless an action for the same letter (same envelope id) is already
    /// recorded; returns whether it was recorded. Atomic, so a discard never hides a replay
    /// that raced with it.
    pub fn dlq_record_discard(&self, action: &DlqAction) -> Result<bool, StoreError> {
        let n = self.conn()?.execute(
            "INSERT INTO dlq_actions (id, action, at, by, replayed_to, reason, envelope_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (id) DO UPDATE SET
               action = excluded.action, at = excluded.at, by = excluded.by,
               replayed_to = excluded.replayed_to, reason = excluded.reason,
               envelope_id = excluded.envelope_id
             WHERE dlq_actions.envelope_id <> excluded.envelope_id",
            params![
                action.id,
                action.action,
                action.at,
                action.by,
                action.replayed_to,
                action.reason,
                action.envelope_id
            ],
        )?;
        Ok(n == 1)
    }

    /// Forgets the webhook ids of `source` accepted before `before_unix`; returns how many.
    pub fn webhook_prune_seen(&self, source: &str, before_unix: i64) -> Result<u64, StoreError> {
        let n = self.conn()?.execute(
            "DELETE FROM webhook_seen WHERE source = ?1 AND seen_at < ?2",
            params![source, before_unix],
        )?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_version_never_goes_down() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("s.db")).unwrap();
        let d = |v: i64| Delivered {
            entity: "party".into(),
            key: "k1".into(),
            version: v,
            envelope_id: format!("id{v}"),
        };
        s.record_delivered("crm", &[d(5)]).unwrap();
        s.record_delivered("crm", &[d(3)]).unwrap();
        let keys = vec![("party".to_string(), "k1".to_string())];
        assert_eq!(s.delivered_versions("crm", &keys).unwrap(), vec![Some(5)]);
        s.record_delivered("crm", &[d(9)]).unwrap();
        assert_eq!(s.delivered_versions("crm", &keys).unwrap(), vec![Some(9)]);
        assert_eq!(s.delivered_versions("other", &keys).unwrap(), vec![None]);
    }

    #[test]
    fn ledger_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let e = LedgerEntry {
            source: "abs".into(),
            sha256: "ab".into(),
            file_name: "f.csv".into(),
            rows: 3,
            events: 2,
            quarantined: 1,
        };
        Store::open(&path).unwrap().ledger_put(&e).unwrap();
        let s = Store::open(&path).unwrap();
        assert_eq!(s.ledger_get("abs", "ab").unwrap(), Some(e));
        assert_eq!(s.ledger_get("abs", "cd").unwrap(), None);
    }

    #[test]
    fn cursors_and_webhook_ids_survive_reopen_and_ids_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(s.cursor_get("abs-rest").unwrap(), None);
            s.cursor_put("abs-rest", "2024-01-01T00:00:00Z").unwrap();
            s.cursor_put("abs-rest", "2024-01-02T00:00:00Z").unwrap();
            s.webhook_record_seen("hook", &["a".into(), "b".into()], 100)
                .unwrap();
            s.webhook_record_seen("hook", &["b".into(), "c".into()], 200)
                .unwrap();
        }
        let s = Store::open(&path).unwrap();
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
}
