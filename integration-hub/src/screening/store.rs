//! The compliance store: screened parties, cases and decisions, monitoring alerts, loaded list
//! versions. A separate SQLite file (`<data_dir>/compliance.db`) from the delivery state, so
//! that compliance data (names of hits, officers' decisions) can be protected and retained on
//! its own terms.
//!
//! Contract: every write is idempotent for a re-delivered envelope (cases are keyed by party,
//! one open case per party; alerts by a deterministic id), so the screening stage can replay a
//! batch after a crash without creating a second case or alert.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::crypto::fields::{FieldCipher, open_opt, seal_opt};
use crate::crypto::rotate::{Batch, Rotatable};
use crate::store::StoreError;

/// The state of a screening case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Hits to review; the party is held back from the CRM.
    Potential,
    /// A compliance officer confirmed a hit; the party stays held back.
    Confirmed,
    /// A compliance officer found every hit false; the party was released to the CRM.
    FalsePositive,
    /// Newer data of the party (or a list change) no longer hits; released automatically.
    Cleared,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Potential => "potential",
            CaseStatus::Confirmed => "confirmed",
            CaseStatus::FalsePositive => "false_positive",
            CaseStatus::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<CaseStatus> {
        Some(match s {
            "potential" => CaseStatus::Potential,
            "confirmed" => CaseStatus::Confirmed,
            "false_positive" => CaseStatus::FalsePositive,
            "cleared" => CaseStatus::Cleared,
            _ => return None,
        })
    }

    /// Whether the party is held back from the CRM while the case is in this state.
    pub fn holds(self) -> bool {
        matches!(self, CaseStatus::Potential | CaseStatus::Confirmed)
    }
}

/// One case: a party with hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub id: i64,
    pub source: String,
    pub party_key: String,
    pub version: i64,
    pub subject_hash: String,
    pub status: CaseStatus,
    /// The hits with their explanations (JSON array of `compliance` hits).
    pub hits: serde_json::Value,
    pub decided_by: Option<String>,
    pub comment: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// What was last screened of one party.
#[derive(Debug, Clone, PartialEq)]
pub struct Screened {
    pub source: String,
    pub party_key: String,
    pub version: i64,
    /// The screened subject as JSON.
    pub subject: String,
    pub subject_hash: String,
}

/// A decision recorded for one list entry against one party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    FalsePositive,
    Confirmed,
}

/// A stored 115-FZ alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAlert {
    pub id: String,
    pub rule: String,
    pub account: String,
    pub body: serde_json::Value,
    pub created_at: String,
}

/// A loaded list version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListVersion {
    pub name: String,
    pub version: String,
    pub published: Option<String>,
    pub loaded_at: String,
    pub entries: u64,
}

pub struct ComplianceStore {
    conn: Mutex<Connection>,
    /// Encrypts the screened subjects and held envelopes when `[encryption]` is configured.
    cipher: Option<Arc<FieldCipher>>,
}

// Encryption at rest: the record named here is the value's additional authenticated data,
// the same when written, read and rotated (crypto::fields).

fn subject_aad(source: &str, party_key: &str) -> String {
    format!("screened.subject {source}/{party_key}")
}

fn envelope_aad(source: &str, party_key: &str) -> String {
    format!("cases.envelope {source}/{party_key}")
}

fn hits_aad(source: &str, party_key: &str) -> String {
    format!("cases.hits {source}/{party_key}")
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339()
}

impl ComplianceStore {
    pub fn open(path: &Path) -> Result<ComplianceStore, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::new(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS screened (
                source TEXT NOT NULL, party_key TEXT NOT NULL, version INTEGER NOT NULL,
                subject TEXT NOT NULL, subject_hash TEXT NOT NULL, screened_at TEXT NOT NULL,
                PRIMARY KEY (source, party_key));
             CREATE TABLE IF NOT EXISTS cases (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                source TEXT NOT NULL, party_key TEXT NOT NULL, version INTEGER NOT NULL,
                subject_hash TEXT NOT NULL, status TEXT NOT NULL, hits TEXT NOT NULL,
                envelope TEXT, release_pending INTEGER NOT NULL DEFAULT 0,
                decided_by TEXT, comment TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
             CREATE INDEX IF NOT EXISTS cases_party ON cases (source, party_key);
             CREATE INDEX IF NOT EXISTS cases_status ON cases (status);
             CREATE TABLE IF NOT EXISTS marks (
                source TEXT NOT NULL, party_key TEXT NOT NULL, list TEXT NOT NULL,
                entry_id TEXT NOT NULL, subject_hash TEXT NOT NULL, mark TEXT NOT NULL,
                decided_by TEXT NOT NULL, decided_at TEXT NOT NULL,
                PRIMARY KEY (source, party_key, list, entry_id));
             CREATE TABLE IF NOT EXISTS alerts (
                id TEXT PRIMARY KEY, rule TEXT NOT NULL, account TEXT NOT NULL,
                body TEXT NOT NULL, created_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS lists (
                name TEXT PRIMARY KEY, version TEXT NOT NULL, published TEXT,
                loaded_at TEXT NOT NULL, entries INTEGER NOT NULL, snapshot TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS account_owners (
                account TEXT PRIMARY KEY, party TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS party_profiles (
                party TEXT PRIMARY KEY, profile TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS monitor_state (
                id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);",
        )?;
        Ok(ComplianceStore {
            conn: Mutex::new(conn),
            cipher: None,
        })
    }

    /// Encrypts screened subjects and held envelopes from now on with `cipher` (None: stored
    /// as they are). Plain values written before stay readable; `hub keys rotate` encrypts
    /// them.
    pub fn with_cipher(mut self, cipher: Option<Arc<FieldCipher>>) -> Self {
        self.cipher = cipher;
        self
    }

    fn seal(&self, plain: &str, aad: &str) -> Result<String, StoreError> {
        seal_opt(self.cipher.as_deref(), plain.to_string(), aad)
            .map_err(|e| StoreError::new(format!("compliance store: {e}")))
    }

    fn open_value(&self, stored: &str, aad: &str) -> Result<String, StoreError> {
        open_opt(self.cipher.as_deref(), stored, aad)
            .map(std::borrow::Cow::into_owned)
            .map_err(|e| StoreError::new(format!("compliance store: {e}")))
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn
            .lock()
            .map_err(|_| StoreError::new("connection lock poisoned".into()))
    }

    /// Records what was screened for a party (for re-screening on list changes).
    pub fn put_screened(
        &self,
        source: &str,
        party_key: &str,
        version: i64,
        subject: &str,
        subject_hash: &str,
    ) -> Result<(), StoreError> {
        let subject = self.seal(subject, &subject_aad(source, party_key))?;
        self.conn()?.execute(
            "INSERT INTO screened (source, party_key, version, subject, subject_hash, screened_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (source, party_key) DO UPDATE SET version = excluded.version,
               subject = excluded.subject, subject_hash = excluded.subject_hash,
               screened_at = excluded.screened_at
             WHERE excluded.version >= screened.version",
            params![source, party_key, version, subject, subject_hash, now()],
        )?;
        Ok(())
    }

    /// The version last screened for a party, if any.
    pub fn screened_version(
        &self,
        source: &str,
        party_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT version FROM screened WHERE source = ?1 AND party_key = ?2",
                params![source, party_key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every screened party.
    pub fn all_screened(&self) -> Result<Vec<Screened>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT source, party_key, version, subject, subject_hash FROM screened
             ORDER BY source, party_key",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(Screened {
                    source: r.get(0)?,
                    party_key: r.get(1)?,
                    version: r.get(2)?,
                    subject: r.get(3)?,
                    subject_hash: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<Screened>, _>>()?;
        drop(st);
        drop(conn);
        rows.into_iter()
            .map(|mut s| {
                s.subject = self.open_value(&s.subject, &subject_aad(&s.source, &s.party_key))?;
                Ok(s)
            })
            .collect()
    }

    /// Marks recorded for a party: (list, entry id, subject hash, mark).
    pub fn marks(
        &self,
        source: &str,
        party_key: &str,
    ) -> Result<Vec<(String, String, String, Mark)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT list, entry_id, subject_hash, mark FROM marks
             WHERE source = ?1 AND party_key = ?2",
        )?;
        let rows = st
            .query_map(params![source, party_key], |r| {
                let mark: String = r.get(3)?;
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    if mark == "confirmed" {
                        Mark::Confirmed
                    } else {
                        Mark::FalsePositive
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The open (holding) case of a party, if any.
    pub fn open_case(&self, source: &str, party_key: &str) -> Result<Option<Case>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            &format!(
                "{CASE_COLUMNS} WHERE source = ?1 AND party_key = ?2
                 AND status IN ('potential', 'confirmed') ORDER BY id DESC LIMIT 1"
            ),
            params![source, party_key],
            |r| case_from_row(r, self.cipher.as_deref()),
        )
        .optional()
        .map_err(Into::into)
    }

    /// Opens a case for a party, or updates its open case with newer data. Returns the case
    /// id and whether the stored case changed (false on a replay of the same version).
    #[allow(clippy::too_many_arguments)]
    pub fn hold(
        &self,
        source: &str,
        party_key: &str,
        version: i64,
        subject_hash: &str,
        status: CaseStatus,
        hits: &serde_json::Value,
        envelope: &str,
    ) -> Result<(i64, bool), StoreError> {
        let envelope = self.seal(envelope, &envelope_aad(source, party_key))?;
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let open: Option<(i64, i64)> = tx
            .query_row(
                "SELECT id, version FROM cases WHERE source = ?1 AND party_key = ?2
                 AND status IN ('potential', 'confirmed') ORDER BY id DESC LIMIT 1",
                params![source, party_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let hits_text = self.seal(&hits.to_string(), &hits_aad(source, party_key))?;
        let result = match open {
            Some((id, v)) if v >= version => (id, false),
            Some((id, _)) => {
                tx.execute(
                    "UPDATE cases SET version = ?2, subject_hash = ?3, status = ?4, hits = ?5,
                     envelope = ?6, updated_at = ?7 WHERE id = ?1",
                    params![
                        id,
                        version,
                        subject_hash,
                        status.as_str(),
                        hits_text,
                        envelope,
                        now()
                    ],
                )?;
                (id, true)
            }
            None => {
                // A replay of a version whose case was already decided must not reopen it.
                let decided: Option<i64> = tx
                    .query_row(
                        "SELECT id FROM cases WHERE source = ?1 AND party_key = ?2
                         AND version >= ?3 ORDER BY id DESC LIMIT 1",
                        params![source, party_key, version],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(id) = decided {
                    (id, false)
                } else {
                    let t = now();
                    tx.execute(
                        "INSERT INTO cases (source, party_key, version, subject_hash, status, hits,
                         envelope, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                        params![source, party_key, version, subject_hash, status.as_str(), hits_text, envelope, t],
                    )?;
                    (tx.last_insert_rowid(), true)
                }
            }
        };
        tx.commit()?;
        Ok(result)
    }

    /// Opens a case for a party already forwarded to the CRM (a list change made it hit):
    /// nothing is held now, later versions of the party are.
    pub fn hold_without_envelope(
        &self,
        source: &str,
        party_key: &str,
        version: i64,
        subject_hash: &str,
        hits: &serde_json::Value,
    ) -> Result<(i64, bool), StoreError> {
        let conn = self.conn()?;
        let open: Option<i64> = conn
            .query_row(
                "SELECT id FROM cases WHERE source = ?1 AND party_key = ?2
                 AND status IN ('potential', 'confirmed') ORDER BY id DESC LIMIT 1",
                params![source, party_key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = open {
            return Ok((id, false));
        }
        let t = now();
        let hits_text = self.seal(&hits.to_string(), &hits_aad(source, party_key))?;
        conn.execute(
            "INSERT INTO cases (source, party_key, version, subject_hash, status, hits,
             envelope, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 'potential', ?5, NULL, ?6, ?6)",
            params![source, party_key, version, subject_hash, hits_text, t],
        )?;
        Ok((conn.last_insert_rowid(), true))
    }

    /// The subject last screened for a party.
    pub fn screened_subject(
        &self,
        source: &str,
        party_key: &str,
    ) -> Result<Option<compliance::Subject>, StoreError> {
        let text: Option<String> = self
            .conn()?
            .query_row(
                "SELECT subject FROM screened WHERE source = ?1 AND party_key = ?2",
                params![source, party_key],
                |r| r.get(0),
            )
            .optional()?;
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&self.open_value(&t, &subject_aad(source, party_key))?)
                .map(Some)
                .map_err(|e| StoreError::new(format!("stored subject cannot be read: {e}"))),
        }
    }

    /// Closes the open potential case of a party because its data (or the lists) no longer
    /// hit. The held envelope, if any, is released too: when newer clear data is forwarded
    /// at the same time, the sink's version guard keeps the newer state.
    pub fn clear_open_case(
        &self,
        source: &str,
        party_key: &str,
    ) -> Result<Option<i64>, StoreError> {
        let conn = self.conn()?;
        let id: Option<i64> = conn
            .query_row(
                "SELECT id FROM cases WHERE source = ?1 AND party_key = ?2
                 AND status = 'potential' ORDER BY id DESC LIMIT 1",
                params![source, party_key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            conn.execute(
                "UPDATE cases SET status = 'cleared', updated_at = ?2,
                 release_pending = (envelope IS NOT NULL) WHERE id = ?1",
                params![id, now()],
            )?;
        }
        Ok(id)
    }

    /// Records an officer's decision on a case: marks for every hit's list entry, the new
    /// status, and for a false positive a pending release of the held envelope.
    pub fn decide(
        &self,
        id: i64,
        decision: Mark,
        officer: &str,
        comment: Option<&str>,
    ) -> Result<Option<Case>, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        let case = tx
            .query_row(&format!("{CASE_COLUMNS} WHERE id = ?1"), params![id], |r| {
                case_from_row(r, self.cipher.as_deref())
            })
            .optional()?;
        let Some(case) = case else {
            return Ok(None);
        };
        let t = now();
        let (status, mark) = match decision {
            Mark::FalsePositive => (CaseStatus::FalsePositive, "false_positive"),
            Mark::Confirmed => (CaseStatus::Confirmed, "confirmed"),
        };
        for hit in case.hits.as_array().into_iter().flatten() {
            let list = hit.get("list").and_then(|v| v.as_str()).unwrap_or_default();
            let entry = hit
                .get("entry_id")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            tx.execute(
                "INSERT INTO marks (source, party_key, list, entry_id, subject_hash, mark,
                 decided_by, decided_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (source, party_key, list, entry_id) DO UPDATE SET
                 subject_hash = excluded.subject_hash, mark = excluded.mark,
                 decided_by = excluded.decided_by, decided_at = excluded.decided_at",
                params![
                    case.source,
                    case.party_key,
                    list,
                    entry,
                    case.subject_hash,
                    mark,
                    officer,
                    t
                ],
            )?;
        }
        tx.execute(
            "UPDATE cases SET status = ?2, decided_by = ?3, comment = ?4, updated_at = ?5,
             release_pending = ?6 WHERE id = ?1",
            params![
                id,
                status.as_str(),
                officer,
                comment,
                t,
                matches!(decision, Mark::FalsePositive) as i64
            ],
        )?;
        let case = tx.query_row(&format!("{CASE_COLUMNS} WHERE id = ?1"), params![id], |r| {
            case_from_row(r, self.cipher.as_deref())
        })?;
        tx.commit()?;
        Ok(Some(case))
    }

    /// Cases whose held envelope must still be released to the CRM: (case id, envelope JSON).
    pub fn pending_releases(&self) -> Result<Vec<(i64, String)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, envelope, source, party_key FROM cases
             WHERE release_pending = 1 AND envelope IS NOT NULL ORDER BY id",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(st);
        drop(conn);
        rows.into_iter()
            .map(|(id, env, source, key)| {
                Ok((id, self.open_value(&env, &envelope_aad(&source, &key))?))
            })
            .collect()
    }

    /// The held envelope was published to the CRM topic: forget it.
    pub fn released(&self, id: i64) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE cases SET release_pending = 0, envelope = NULL WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    pub fn case(&self, id: i64) -> Result<Option<Case>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(&format!("{CASE_COLUMNS} WHERE id = ?1"), params![id], |r| {
            case_from_row(r, self.cipher.as_deref())
        })
        .optional()
        .map_err(Into::into)
    }

    /// Cases, newest first, optionally of one status.
    pub fn cases(&self, status: Option<CaseStatus>, limit: u32) -> Result<Vec<Case>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "{CASE_COLUMNS} WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![status.map(|s| s.as_str()), limit], |r| {
                case_from_row(r, self.cipher.as_deref())
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Number of cases per status.
    pub fn case_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT status, COUNT(*) FROM cases GROUP BY status")?;
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Stores an alert; returns false when it was already stored (a replay).
    pub fn put_alert(&self, a: &StoredAlert) -> Result<bool, StoreError> {
        let n = self.conn()?.execute(
            "INSERT OR IGNORE INTO alerts (id, rule, account, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![a.id, a.rule, a.account, a.body.to_string(), a.created_at],
        )?;
        Ok(n == 1)
    }

    pub fn alerts(&self, limit: u32) -> Result<Vec<StoredAlert>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, rule, account, body, created_at FROM alerts
             ORDER BY created_at DESC, id LIMIT ?1",
        )?;
        let rows = st
            .query_map(params![limit], |r| {
                let body: String = r.get(3)?;
                Ok(StoredAlert {
                    id: r.get(0)?,
                    rule: r.get(1)?,
                    account: r.get(2)?,
                    body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    created_at: r.get(4)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn list_snapshot(&self, name: &str) -> Result<Option<(ListVersion, String)>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(
            "SELECT name, version, published, loaded_at, entries, snapshot FROM lists WHERE name = ?1",
            params![name],
            |r| {
                Ok((
                    ListVersion {
                        name: r.get(0)?,
                        version: r.get(1)?,
                        published: r.get(2)?,
                        loaded_at: r.get(3)?,
                        entries: r.get::<_, i64>(4)? as u64,
                    },
                    r.get(5)?,
                ))
            },
        )
        .optional()
        .map_err(Into::into)
    }

    pub fn put_list(&self, v: &ListVersion, snapshot: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO lists (name, version, published, loaded_at, entries, snapshot)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO UPDATE SET version = excluded.version,
             published = excluded.published, loaded_at = excluded.loaded_at,
             entries = excluded.entries, snapshot = excluded.snapshot",
            params![
                v.name,
                v.version,
                v.published,
                v.loaded_at,
                v.entries as i64,
                snapshot
            ],
        )?;
        Ok(())
    }

    pub fn list_versions(&self) -> Result<Vec<ListVersion>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT name, version, published, loaded_at, entries FROM lists ORDER BY name",
        )?;
        let rows = st
            .query_map([], |r| {
                Ok(ListVersion {
                    name: r.get(0)?,
                    version: r.get(1)?,
                    published: r.get(2)?,
                    loaded_at: r.get(3)?,
                    entries: r.get::<_, i64>(4)? as u64,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Remembers whose account this is (from account records), for the profile rule.
    pub fn put_account_owner(&self, account: &str, party: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO account_owners (account, party) VALUES (?1, ?2)
             ON CONFLICT (account) DO UPDATE SET party = excluded.party",
            params![account, party],
        )?;
        Ok(())
    }

    /// Remembers a party's monitoring profile (segment, birth date) from party records.
    pub fn put_profile(&self, party: &str, profile: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO party_profiles (party, profile) VALUES (?1, ?2)
             ON CONFLICT (party) DO UPDATE SET profile = excluded.profile",
            params![party, profile],
        )?;
        Ok(())
    }

    /// The profile of the owner of `account`, when both are known.
    pub fn profile_of_account(&self, account: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT p.profile FROM account_owners a JOIN party_profiles p ON p.party = a.party
                 WHERE a.account = ?1",
                params![account],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn monitor_state(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .query_row("SELECT state FROM monitor_state WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()?)
    }

    pub fn put_monitor_state(&self, state: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO monitor_state (id, state) VALUES (1, ?1)
             ON CONFLICT (id) DO UPDATE SET state = excluded.state",
            params![state],
        )?;
        Ok(())
    }
}

const CASE_COLUMNS: &str = "SELECT id, source, party_key, version, subject_hash, status, hits,
    decided_by, comment, created_at, updated_at FROM cases";

fn case_from_row(r: &rusqlite::Row<'_>, cipher: Option<&FieldCipher>) -> rusqlite::Result<Case> {
    let status: String = r.get(5)?;
    let (source, party_key): (String, String) = (r.get(1)?, r.get(2)?);
    let stored: String = r.get(6)?;
    // The hits name the party (the name that matched): encrypted at rest like the envelope.
    let hits = open_opt(cipher, &stored, &hits_aad(&source, &party_key)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, Box::new(e))
    })?;
    Ok(Case {
        id: r.get(0)?,
        source,
        party_key,
        version: r.get(3)?,
        subject_hash: r.get(4)?,
        status: CaseStatus::parse(&status).unwrap_or(CaseStatus::Potential),
        hits: serde_json::from_str(&hits).unwrap_or(serde_json::Value::Null),
        decided_by: r.get(7)?,
        comment: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

/// Key rotation: re-encrypts screened subjects and held envelopes not under the active key,
/// one transaction per batch (SQLite's write lock: the running hub's writes interleave).
impl Rotatable for ComplianceStore {
    fn store_name(&self) -> &'static str {
        "compliance"
    }

    fn parts(&self) -> &'static [&'static str] {
        &["screened.subject", "cases"]
    }

    fn rotate_batch(&self, part: &str, after: Option<&str>, limit: usize) -> Result<Batch, String> {
        let cipher = self
            .cipher
            .clone()
            .ok_or("the compliance store was opened without [encryption] keys")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let fresh = |stored: &str, aad: &str| -> Result<Option<String>, String> {
            if cipher.is_current(stored) {
                return Ok(None);
            }
            let plain = cipher.open(stored, aad).map_err(|e| e.to_string())?;
            cipher
                .seal(&plain, aad)
                .map(Some)
                .map_err(|e| e.to_string())
        };
        let mut conn = self.conn().map_err(|e| e.to_string())?;
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        let mut batch = Batch::default();
        match part {
            "screened.subject" => {
                // The cursor is `source\u{1f}party_key`: a separator no id contains.
                let (src, key) = after
                    .and_then(|a| a.split_once('\u{1f}'))
                    .unwrap_or(("", ""));
                let rows: Vec<(String, String, String)> = {
                    let mut st = tx
                        .prepare(
                            "SELECT source, party_key, subject FROM screened
                             WHERE source > ?1 OR (source = ?1 AND party_key > ?2)
                             ORDER BY source, party_key LIMIT ?3",
                        )
                        .map_err(|e| e.to_string())?;
                    st.query_map(params![src, key, limit], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(|e| e.to_string())?
                };
                for (source, party_key, subject) in rows {
                    batch.scanned += 1;
                    if let Some(new) = fresh(&subject, &subject_aad(&source, &party_key))? {
                        tx.execute(
                            "UPDATE screened SET subject = ?1 WHERE source = ?2 AND party_key = ?3",
                            params![new, source, party_key],
                        )
                        .map_err(|e| e.to_string())?;
                        batch.changed += 1;
                    }
                    batch.next = Some(format!("{source}\u{1f}{party_key}"));
                }
            }
            "cases" => {
                let from: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(i64::MIN);
                type CaseRow = (i64, String, String, String, Option<String>);
                let rows: Vec<CaseRow> = {
                    let mut st = tx
                        .prepare(
                            "SELECT id, source, party_key, hits, envelope FROM cases WHERE id > ?1
                             ORDER BY id LIMIT ?2",
                        )
                        .map_err(|e| e.to_string())?;
                    st.query_map(params![from, limit], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })
                    .and_then(Iterator::collect)
                    .map_err(|e| e.to_string())?
                };
                for (id, source, party_key, hits, envelope) in rows {
                    batch.scanned += 1;
                    let new_hits = fresh(&hits, &hits_aad(&source, &party_key))?;
                    let new_env = match &envelope {
                        Some(env) => fresh(env, &envelope_aad(&source, &party_key))?,
                        None => None,
                    };
                    if new_hits.is_some() || new_env.is_some() {
                        tx.execute(
                            "UPDATE cases SET hits = ?1, envelope = ?2 WHERE id = ?3",
                            params![new_hits.unwrap_or(hits), new_env.or(envelope), id],
                        )
                        .map_err(|e| e.to_string())?;
                        batch.changed += 1;
                    }
                    batch.next = Some(id.to_string());
                }
            }
            other => return Err(format!("no part {other} to rotate")),
        }
        tx.commit().map_err(|e| e.to_string())?;
        Ok(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ComplianceStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ComplianceStore::open(&dir.path().join("compliance.db")).unwrap();
        (dir, s)
    }

    fn hits() -> serde_json::Value {
        serde_json::json!([{"list": "own", "entry_id": "S-1", "score": 0.97}])
    }

    #[test]
    fn a_replayed_version_does_not_open_a_second_case() {
        let (_d, s) = store();
        let (id, changed) = s
            .hold("abs", "C1", 5, "h1", CaseStatus::Potential, &hits(), "{}")
            .unwrap();
        assert!(changed);
        let (again, changed) = s
            .hold("abs", "C1", 5, "h1", CaseStatus::Potential, &hits(), "{}")
            .unwrap();
        assert_eq!((again, changed), (id, false));
        assert_eq!(s.cases(None, 10).unwrap().len(), 1);
    }

    #[test]
    fn a_newer_version_updates_the_open_case() {
        let (_d, s) = store();
        let (id, _) = s
            .hold(
                "abs",
                "C1",
                5,
                "h1",
                CaseStatus::Potential,
                &hits(),
                "{\"v\":5}",
            )
            .unwrap();
        let (id2, changed) = s
            .hold(
                "abs",
                "C1",
                6,
                "h2",
                CaseStatus::Potential,
                &hits(),
                "{\"v\":6}",
            )
            .unwrap();
        assert_eq!((id2, changed), (id, true));
        let case = s.case(id).unwrap().unwrap();
        assert_eq!((case.version, case.subject_hash.as_str()), (6, "h2"));
    }

    #[test]
    fn a_false_positive_is_released_once_and_marks_every_entry() {
        let (_d, s) = store();
        let (id, _) = s
            .hold(
                "abs",
                "C1",
                5,
                "h1",
                CaseStatus::Potential,
                &hits(),
                "{\"v\":5}",
            )
            .unwrap();
        let case = s
            .decide(id, Mark::FalsePositive, "officer-1", Some("other person"))
            .unwrap()
            .unwrap();
        assert_eq!(case.status, CaseStatus::FalsePositive);
        assert_eq!(
            s.pending_releases().unwrap(),
            vec![(id, "{\"v\":5}".to_string())]
        );
        s.released(id).unwrap();
        assert!(s.pending_releases().unwrap().is_empty());
        let marks = s.marks("abs", "C1").unwrap();
        assert_eq!(
            marks,
            vec![("own".into(), "S-1".into(), "h1".into(), Mark::FalsePositive)]
        );
        // A replay of version 5 after the decision does not reopen the case.
        let (again, changed) = s
            .hold("abs", "C1", 5, "h1", CaseStatus::Potential, &hits(), "{}")
            .unwrap();
        assert_eq!((again, changed), (id, false));
        assert!(s.open_case("abs", "C1").unwrap().is_none());
    }

    #[test]
    fn alerts_are_stored_once() {
        let (_d, s) = store();
        let a = StoredAlert {
            id: "a1".into(),
            rule: "mandatory_control".into(),
            account: "40817".into(),
            body: serde_json::json!({"x": 1}),
            created_at: now(),
        };
        assert!(s.put_alert(&a).unwrap());
        assert!(!s.put_alert(&a).unwrap());
        assert_eq!(s.alerts(10).unwrap().len(), 1);
    }

    fn encrypted(active: &str) -> (tempfile::TempDir, ComplianceStore) {
        let (d, s) = store();
        (d, s.with_cipher(Some(cipher(active))))
    }

    fn cipher(active: &str) -> Arc<FieldCipher> {
        Arc::new(
            FieldCipher::new(
                active,
                [("k1".to_string(), [1; 32]), ("k2".to_string(), [2; 32])],
            )
            .unwrap(),
        )
    }

    fn raw_cells(dir: &Path) -> Vec<String> {
        let c = Connection::open(dir.join("compliance.db")).unwrap();
        let mut out = Vec::new();
        for sql in [
            "SELECT subject FROM screened",
            "SELECT hits FROM cases",
            "SELECT envelope FROM cases WHERE envelope IS NOT NULL",
        ] {
            let mut st = c.prepare(sql).unwrap();
            let rows = st.query_map([], |r| r.get::<_, String>(0)).unwrap();
            out.extend(rows.map(Result::unwrap));
        }
        out
    }

    const ENVELOPE: &str = r#"{"party":{"last_name":"Сидоров","inn":"7707083893"}}"#;
    const SUBJECT: &str = r#"{"names":["Сидоров Пётр"]}"#;

    fn name_hits() -> serde_json::Value {
        serde_json::json!([{"list": "own", "entry_id": "S-1", "score": 0.97,
            "query_name": "Сидоров Пётр", "matched_name": "Sidorov Petr"}])
    }

    #[test]
    fn held_envelopes_subjects_and_hits_are_encrypted_and_read_back() {
        let (d, s) = encrypted("k1");
        s.put_screened("abs", "C1", 5, SUBJECT, "h1").unwrap();
        let (id, _) = s
            .hold(
                "abs",
                "C1",
                5,
                "h1",
                CaseStatus::Potential,
                &name_hits(),
                ENVELOPE,
            )
            .unwrap();
        let cells = raw_cells(d.path());
        assert_eq!(cells.len(), 3);
        for c in &cells {
            assert!(c.starts_with("enc:v1:k1:"), "stored in clear");
            assert!(!c.contains("Сидоров") && !c.contains("7707083893"));
        }
        assert_eq!(s.all_screened().unwrap()[0].subject, SUBJECT);
        assert_eq!(s.case(id).unwrap().unwrap().hits, name_hits());
        s.decide(id, Mark::FalsePositive, "officer", None).unwrap();
        assert_eq!(
            s.pending_releases().unwrap(),
            vec![(id, ENVELOPE.to_string())]
        );
        // Without keys: a clear error naming the record, not the value.
        let plain = ComplianceStore::open(&d.path().join("compliance.db")).unwrap();
        let e = plain.pending_releases().unwrap_err().to_string();
        assert!(
            e.contains("cases.envelope abs/C1") && !e.contains("Сидоров"),
            "{e}"
        );
        let e = plain.case(id).unwrap_err().to_string();
        assert!(e.contains("cases.hits abs/C1"), "{e}");
    }

    #[test]
    fn rotation_re_encrypts_plain_and_old_values() {
        let (d, s) = store();
        s.put_screened("abs", "C0", 1, SUBJECT, "h0").unwrap();
        s.hold(
            "abs",
            "C0",
            1,
            "h0",
            CaseStatus::Potential,
            &name_hits(),
            ENVELOPE,
        )
        .unwrap();
        let k1 = ComplianceStore::open(&d.path().join("compliance.db"))
            .unwrap()
            .with_cipher(Some(cipher("k1")));
        for i in 1..5 {
            let key = format!("C{i}");
            k1.put_screened("abs", &key, 1, SUBJECT, "h").unwrap();
            k1.hold(
                "abs",
                &key,
                1,
                "h",
                CaseStatus::Potential,
                &name_hits(),
                ENVELOPE,
            )
            .unwrap();
        }
        let k2 = ComplianceStore::open(&d.path().join("compliance.db"))
            .unwrap()
            .with_cipher(Some(cipher("k2")));
        let mut lines = Vec::new();
        let totals =
            crate::crypto::rotate::run(&[&k2], 2, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(totals.scanned, 10);
        assert_eq!(totals.changed, 10);
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("compliance cases: done")),
            "{lines:?}"
        );
        for c in raw_cells(d.path()) {
            assert!(c.starts_with("enc:v1:k2:"), "not under the active key");
        }
        let only_k2 = ComplianceStore::open(&d.path().join("compliance.db"))
            .unwrap()
            .with_cipher(Some(Arc::new(
                FieldCipher::new("k2", [("k2".to_string(), [2; 32])]).unwrap(),
            )));
        assert!(
            only_k2
                .all_screened()
                .unwrap()
                .iter()
                .all(|s| s.subject == SUBJECT)
        );
        assert!(
            only_k2
                .cases(None, 10)
                .unwrap()
                .iter()
                .all(|c| c.hits == name_hits())
        );
        let again = crate::crypto::rotate::run(&[&k2], 2, &mut |_| {}).unwrap();
        assert_eq!((again.scanned, again.changed), (10, 0));
    }
}
