//! The golden-record store: one golden record per real party across the source systems.
//!
//! Contract:
//! - `ingest` takes a canonical party from one system. A known source record (system +
//!   source id) at a version no newer than the stored one changes nothing. Otherwise the
//!   record is matched (blocking and id keys → candidates → `score_pair`), joins the best
//!   golden record it merges with or gets a new one, and the golden values are re-chosen by
//!   `survivorship::apply`. Every changed value is written to the field history with its
//!   provenance, and the changed golden ids go to the outbox.
//! - Joining is refused, and a review opened instead (`refused: <rule>`), when a keep-apart
//!   pair or a hard non-match (without a shared key) exists between the members of the two
//!   sides. Pairs between the review and auto-merge thresholds open a `probable` review.
//!   At most one open review exists per pair, and none for a pair kept apart.
//! - When golden records merge, the smaller (older) id survives; the other stays as a
//!   `merged` id pointing at it. Golden ids (`G` + 10 digits) are never reused.
//! - A data steward's merge (`merge`, or a review decided `merge`) overrides the hard
//!   non-match rules and lifts keep-apart pairs between the two; `unmerge` detaches one
//!   source record into a new golden id and keeps it apart from the remaining members.
//! - A golden record's `absorbed` ids are the golden ids its source records first belonged
//!   to, other than its own: a merge adds the loser's (and what the loser had absorbed); an
//!   unmerge moves the detached record's origin to its new golden id, so an absorbed id goes
//!   away once none of its records remain.
//! - A newer version of a known record updates its golden record and is matched again
//!   against the others (it may now share an INN with one); it is not re-checked against
//!   the members of its own golden record — splitting is a data steward's `unmerge`.
//! - Survivorship keeps only each source record's latest event; a recomputation (unmerge)
//!   folds those latest events, so a value a record sent once and later emptied is gone.
//! - Every mutating call is one transaction, outbox rows included: SQLite `BEGIN IMMEDIATE`,
//!   PostgreSQL with an advisory lock (see `postgres`), so several hub processes sharing
//!   one PostgreSQL schema serialise their writes.
//! - Calls block. Async callers use `tokio::task::spawn_blocking` (required for PostgreSQL,
//!   whose client runs a runtime of its own).
//! - Errors and logs name ids and field names, never values.

mod rotate;
mod types;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use mapping::mdm::mastership::EntityRules;
use mapping::mdm::matching::{
    BlockingKey, Decision, MatchRecord, SourceRef, blocking_keys, score_pair,
};
use mapping::mdm::survivorship::{
    FieldChange, GoldenRecord, Provenance, SourceEvent, SourcedValue, apply, party_fields,
};
use mapping::validate;

use crate::crypto::fields::{FieldCipher, open_opt, seal_opt};
use crate::sql::{Db, Param, Row, TxKind, postgres, sqlite};

/// First key of the advisory lock that serialises golden-store writers ("Gold").
const GOLDEN_LOCK_CLASS: i32 = 0x476f_6c64;
pub use types::{
    GoldenOut, GoldenState, GoldenStats, GoldenView, HistoryEntry, IngestAction, IngestOutcome,
    MdmSettings, PartyEvent, Review, ReviewDecision, ReviewStatus, StoreError, XrefView,
};

/// The schema, applied (idempotently) on open.
const SCHEMA: &str = include_str!("schema.sql");

/// Rows per multi-row INSERT: bounds the number of distinct statements kept prepared.
const INSERT_CHUNK: usize = 16;

/// Row ids (history, outbox, reviews, key sequence) reserved by a transaction's first
/// counter round trip; each further reservation doubles, up to [`ID_BLOCK_MAX`]. Ids left
/// unused when a transaction ends are skipped: ids grow, they need not be dense.
const ID_BLOCK: i64 = 16;
const ID_BLOCK_MAX: i64 = 4096;

/// Longest merged_into chain followed before the data is declared inconsistent.
const MAX_CHAIN: usize = 10_000;

/// History reasons.
const REASON_EVENT: &str = "event";
const REASON_MERGE: &str = "merge";
const REASON_UNMERGE: &str = "unmerge";
const REASON_REVIEW: &str = "review";

/// The rule name of a keep-apart refusal.
const RULE_KEEP_APART: &str = "keep_apart";

/// The golden-record store.
pub struct GoldenStore {
    db: Mutex<Box<dyn Db>>,
    settings: MdmSettings,
    rules: EntityRules,
    /// Encrypts the personal columns (golden record, source event and match record, history
    /// values) when `[encryption]` is configured.
    cipher: Option<Arc<FieldCipher>>,
}

impl std::fmt::Debug for GoldenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoldenStore")
            .field("max_candidates", &self.settings.max_candidates)
            .finish_non_exhaustive()
    }
}

impl GoldenStore {
    /// Opens (creating if needed) a store in an SQLite file.
    pub fn open_sqlite(path: &Path, settings: MdmSettings) -> Result<Self, StoreError> {
        let db = sqlite::SqliteDb::open(path)?;
        GoldenStore::with_db(Box::new(db), settings)
    }

    /// Opens (creating the tables if needed) a store in a PostgreSQL database; the schema is
    /// the connection's `search_path` (`?options=-c%20search_path%3D<schema>` in the URL).
    /// Blocks: call it from `spawn_blocking` in async code.
    pub fn open_postgres(url: &str, settings: MdmSettings) -> Result<Self, StoreError> {
        let db = postgres::PgDb::connect(url, GOLDEN_LOCK_CLASS)?;
        GoldenStore::with_db(Box::new(db), settings)
    }

    fn with_db(mut db: Box<dyn Db>, settings: MdmSettings) -> Result<Self, StoreError> {
        settings
            .mastership
            .validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let rules = settings
            .mastership
            .entity("party")
            .cloned()
            .ok_or_else(|| StoreError::Invalid("mastership: no rules for entity party".into()))?;
        settings
            .model
            .check()
            .map_err(|e| StoreError::Invalid(format!("matching model: {e}")))?;
        let m = &settings.matching;
        let p = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
        if !p(m.auto_merge) || !p(m.review) || m.review > m.auto_merge {
            return Err(StoreError::Invalid(
                "matching: auto_merge and review must be probabilities with review <= auto_merge"
                    .into(),
            ));
        }
        if settings.max_candidates == 0 {
            return Err(StoreError::Invalid(
                "max_candidates must be at least 1".into(),
            ));
        }
        // Under the write lock, so two processes creating the schema do not race.
        db.begin(TxKind::Write)?;
        if let Err(e) = db.batch(SCHEMA) {
            let _ = db.rollback();
            return Err(e.into());
        }
        db.commit()?;
        Ok(GoldenStore {
            db: Mutex::new(db),
            settings,
            rules,
            cipher: None,
        })
    }

    /// Encrypts personal columns from now on with `cipher` (None: stored as they are).
    /// Plain values written before stay readable; `hub keys rotate` encrypts them.
    pub fn with_cipher(mut self, cipher: Option<Arc<FieldCipher>>) -> Self {
        self.cipher = cipher;
        self
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

    fn run<T>(
        &self,
        kind: TxKind,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.lock();
        let db: &mut dyn Db = &mut **guard;
        if let Err(e) = db.begin(kind) {
            // A transaction that started but could not take its lock must not stay open.
            let _ = db.rollback();
            return Err(e.into());
        }
        let mut tx = Tx {
            db,
            settings: &self.settings,
            rules: &self.rules,
            cipher: self.cipher.as_deref(),
            now: Utc::now(),
            ids: None,
        };
        match f(&mut tx) {
            Ok(v) => match tx.db.commit() {
                Ok(()) => Ok(v),
                Err(e) => {
                    let _ = tx.db.rollback();
                    Err(e.into())
                }
            },
            Err(e) => {
                let _ = tx.db.rollback();
                Err(e)
            }
        }
    }

    /// Matches and stores one source record. Idempotent by (system, source id, version).
    pub fn ingest(&self, ev: &PartyEvent) -> Result<IngestOutcome, StoreError> {
        check_event(ev).map_err(StoreError::Invalid)?;
        self.run(TxKind::Write, |tx| tx.ingest(ev))
    }

    /// Ingests several events in one transaction (one commit): the same result as calling
    /// `ingest` for each in order. A malformed event refuses the whole batch before anything
    /// is written; the error names its position and event id.
    pub fn ingest_many(&self, events: &[PartyEvent]) -> Result<Vec<IngestOutcome>, StoreError> {
        for (i, ev) in events.iter().enumerate() {
            check_event(ev).map_err(|e| {
                StoreError::Invalid(format!("event {i} (event id {}): {e}", ev.event_id))
            })?;
        }
        self.run(TxKind::Write, |tx| {
            events.iter().map(|ev| tx.ingest(ev)).collect()
        })
    }

    /// Pending outbox entries, oldest first, rendered as the golden records are now.
    pub fn outbox(&self, limit: usize) -> Result<Vec<GoldenOut>, StoreError> {
        self.run(TxKind::Read, |tx| tx.outbox(limit))
    }

    /// Removes published outbox entries. Unknown ids are ignored (already done).
    pub fn outbox_done(&self, outbox_ids: &[i64]) -> Result<(), StoreError> {
        self.run(TxKind::Write, |tx| {
            for id in outbox_ids {
                tx.db.execute(
                    "DELETE FROM golden_outbox WHERE outbox_id = $1",
                    &[Param::from(*id)],
                )?;
            }
            Ok(())
        })
    }

    /// A golden record by id (a merged id shows its state and survivor).
    pub fn golden(&self, golden_id: &str) -> Result<Option<GoldenView>, StoreError> {
        self.run(TxKind::Read, |tx| tx.view(golden_id))
    }

    /// The live golden id of a source record, following merges.
    pub fn golden_by_xref(
        &self,
        system: &str,
        source_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.run(TxKind::Read, |tx| match tx.xref(system, source_id)? {
            Some(x) => tx.live(&x.golden_id).map(Some),
            None => Ok(None),
        })
    }

    /// Field history of a golden id, newest first, optionally of one field.
    pub fn history(
        &self,
        golden_id: &str,
        field: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.run(TxKind::Read, |tx| tx.history(golden_id, field, limit))
    }

    /// Reviews, oldest first, optionally of one status.
    pub fn reviews(
        &self,
        status: Option<ReviewStatus>,
        limit: usize,
    ) -> Result<Vec<Review>, StoreError> {
        self.run(TxKind::Read, |tx| tx.reviews(status, None, limit))
    }

    /// One review.
    pub fn review(&self, id: i64) -> Result<Option<Review>, StoreError> {
        self.run(TxKind::Read, |tx| {
            Ok(tx.reviews(None, Some(id), 1)?.into_iter().next())
        })
    }

    /// Decides an open review: `Merge` merges the two golden records (the smaller id
    /// survives); `KeepApart` records that matching must never join the pair. A review
    /// decided already is a `Conflict`.
    pub fn decide_review(
        &self,
        id: i64,
        decision: ReviewDecision,
        by: &str,
    ) -> Result<Review, StoreError> {
        check_actor(by)?;
        self.run(TxKind::Write, |tx| tx.decide_review(id, decision, by))
    }

    /// Merges `loser` into `survivor` on a data steward's word: hard non-match rules do not
    /// apply and keep-apart pairs between the two are lifted.
    pub fn merge(&self, survivor: &str, loser: &str, by: &str) -> Result<(), StoreError> {
        check_actor(by)?;
        self.run(TxKind::Write, |tx| {
            let s = tx.active(survivor)?;
            let l = tx.active(loser)?;
            if s.golden_id == l.golden_id {
                return Err(StoreError::Invalid(format!(
                    "cannot merge golden {survivor} into itself"
                )));
            }
            tx.lift_apart(&s.golden_id, &l.golden_id)?;
            tx.merge(s, l, REASON_MERGE, Some(by))
        })
    }

    /// Detaches one source record from a golden record into a new golden id (returned) and
    /// keeps it apart from the remaining members, so matching never joins them again
    /// automatically. Both golden records are recomputed from their members' latest events
    /// and go to the outbox; their history entries have reason `unmerge`.
    pub fn unmerge(
        &self,
        golden_id: &str,
        system: &str,
        source_id: &str,
        by: &str,
    ) -> Result<String, StoreError> {
        check_actor(by)?;
        self.run(TxKind::Write, |tx| {
            tx.unmerge(golden_id, system, source_id, by)
        })
    }

    /// Counts of golden ids, source records, open reviews and pending outbox entries.
    pub fn stats(&self) -> Result<GoldenStats, StoreError> {
        self.run(TxKind::Read, |tx| {
            let rows = tx.db.query(
                "SELECT (SELECT COUNT(*) FROM golden WHERE state = 'active'), \
                 (SELECT COUNT(*) FROM golden WHERE state = 'merged'), \
                 (SELECT COUNT(*) FROM golden_xref), \
                 (SELECT COUNT(*) FROM golden_review WHERE status = 'open'), \
                 (SELECT COUNT(*) FROM golden_outbox)",
                &[],
            )?;
            let row = one(rows, "stats")?;
            let n = |i: usize| -> Result<u64, StoreError> {
                Ok(u64::try_from(row.int(i)?).unwrap_or(0))
            };
            Ok(GoldenStats {
                goldens_active: n(0)?,
                goldens_merged: n(1)?,
                xrefs: n(2)?,
                reviews_open: n(3)?,
                outbox: n(4)?,
            })
        })
    }
}

fn check_event(ev: &PartyEvent) -> Result<(), String> {
    for (name, value) in [
        ("system", &ev.system),
        ("source_id", &ev.source_id),
        ("event_id", &ev.event_id),
    ] {
        if value.trim().is_empty() {
            return Err(format!("{name} is empty"));
        }
    }
    Ok(())
}

fn check_actor(by: &str) -> Result<(), StoreError> {
    if by.trim().is_empty() {
        return Err(StoreError::Invalid("the acting user is empty".into()));
    }
    Ok(())
}

/// A golden id from the counter: `G` and ten digits.
fn golden_id_of(n: i64) -> String {
    format!("G{n:010}")
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn parse_ts(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| StoreError::Db(format!("{what}: stored time is not RFC 3339")))
}

fn to_json<T: Serialize>(v: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Db(format!("{what}: cannot encode: {e}")))
}

/// Parses stored JSON; the message gives the position, not the text.
fn from_json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| {
        StoreError::Db(format!(
            "{what}: stored JSON unreadable ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

// Encryption at rest: the record named here is the value's additional authenticated data
// (crypto::fields), so it must be the same when written, read and rotated.

fn golden_aad(golden_id: &str) -> String {
    format!("golden.record {golden_id}")
}

fn event_aad(system: &str, source_id: &str) -> String {
    format!("golden_xref.event {system}/{source_id}")
}

fn match_aad(system: &str, source_id: &str) -> String {
    format!("golden_xref.match_record {system}/{source_id}")
}

fn history_aad(column: &str, id: i64) -> String {
    format!("golden_history.{column} {id}")
}

fn seal(cipher: Option<&FieldCipher>, plain: String, aad: &str) -> Result<String, StoreError> {
    seal_opt(cipher, plain, aad).map_err(|e| StoreError::Db(e.to_string()))
}

fn open<'s>(
    cipher: Option<&FieldCipher>,
    stored: &'s str,
    aad: &str,
) -> Result<Cow<'s, str>, StoreError> {
    open_opt(cipher, stored, aad).map_err(|e| StoreError::Db(e.to_string()))
}

fn one(rows: Vec<Row>, what: &str) -> Result<Row, StoreError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| StoreError::Db(format!("{what}: query returned no row")))
}

fn limit_param(limit: usize) -> Param {
    Param::from(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// `$a, $b, ...` groups for a multi-row INSERT of `rows` rows of `cols` columns.
fn values_sql(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| {
            let cells: Vec<String> = (1..=cols).map(|c| format!("${}", r * cols + c)).collect();
            format!("({})", cells.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A pair in canonical order, so (a, b) and (b, a) are one review.
fn ordered(a: SourceRef, b: SourceRef) -> (SourceRef, SourceRef) {
    if a <= b { (a, b) } else { (b, a) }
}

fn sref(system: &str, id: &str) -> SourceRef {
    SourceRef {
        system: system.to_owned(),
        id: id.to_owned(),
    }
}

/// The event a party contributes to survivorship.
fn source_event(ev: &PartyEvent) -> SourceEvent {
    SourceEvent {
        provenance: Provenance {
            system: ev.system.clone(),
            event_id: ev.event_id.clone(),
            time: ev.event_time,
            version: ev.version,
        },
        fields: party_fields(&ev.party),
    }
}

/// The matcher's view of a party: the party's own id is replaced by the source record's.
fn match_record(ev: &PartyEvent) -> MatchRecord {
    let mut r = MatchRecord::from_party(&ev.system, &ev.party);
    r.source_id = ev.source_id.clone();
    r
}

/// Keys to index a record under: its blocking keys, and its valid national ids, hashed so the
/// index holds no personal data.
fn index_keys(r: &MatchRecord) -> Vec<String> {
    type Check = fn(&str) -> Result<String, validate::FieldError>;
    let mut keys = blocking_keys(r, &BlockingKey::ALL);
    let ids: [(&str, &Option<String>, Check); 4] = [
        ("inn", &r.inn, validate::inn),
        ("snils", &r.snils, validate::snils),
        ("passport", &r.passport, validate::passport),
        ("ogrn", &r.ogrn, validate::ogrn),
    ];
    for (name, value, check) in ids {
        let Some(v) = value else { continue };
        // Sources group digits with spaces or hyphens; the INN and OGRN validators do not.
        let compact: String = v
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
            .collect();
        if let Ok(valid) = check(&compact) {
            let digits: String = valid.chars().filter(char::is_ascii_digit).collect();
            let hash = Sha256::digest(format!("{name}:{digits}").as_bytes());
            keys.push(format!("{name}:{}", hex::encode(&hash[..8])));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// The golden-value changes between two records (for a recomputation from scratch).
fn diff(old: &GoldenRecord, new: &GoldenRecord) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    for (field, n) in &new.fields {
        let o = old.fields.get(field);
        if o.map(|o| &o.value) != Some(&n.value) {
            changes.push(FieldChange {
                field: field.clone(),
                old: o.cloned(),
                new: Some(n.clone()),
            });
        }
    }
    for (field, o) in &old.fields {
        if !new.fields.contains_key(field) {
            changes.push(FieldChange {
                field: field.clone(),
                old: Some(o.clone()),
                new: None,
            });
        }
    }
    changes.sort_by(|a, b| a.field.cmp(&b.field));
    changes
}

/// A golden row.
struct Golden {
    golden_id: String,
    version: i64,
    state: GoldenState,
    merged_into: Option<String>,
    record: GoldenRecord,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Reads `golden_id, version, state, merged_into, record, created_at, updated_at`.
fn golden_of(row: &Row, cipher: Option<&FieldCipher>) -> Result<Golden, StoreError> {
    let golden_id = row.text(0)?;
    let what = format!("golden {golden_id}");
    let state = row.text(2)?;
    let record = row.text(4)?;
    Ok(Golden {
        version: row.int(1)?,
        state: GoldenState::parse(&state)
            .ok_or_else(|| StoreError::Db(format!("{what}: unknown state {state}")))?,
        merged_into: row.opt_text(3)?,
        record: from_json(&open(cipher, &record, &golden_aad(&golden_id))?, &what)?,
        created_at: parse_ts(&row.text(5)?, &what)?,
        updated_at: parse_ts(&row.text(6)?, &what)?,
        golden_id,
    })
}

/// A source record (cross-reference) with its latest event.
struct Xref {
    system: String,
    source_id: String,
    source: String,
    golden_id: String,
    version: i64,
    event_id: String,
    event_time: DateTime<Utc>,
    event: SourceEvent,
    updated_at: DateTime<Utc>,
}

impl Xref {
    fn sref(&self) -> SourceRef {
        sref(&self.system, &self.source_id)
    }
}

/// Reads `system, source_id, source, golden_id, version, event_id, event_time, event,
/// updated_at`.
fn xref_of(row: &Row, cipher: Option<&FieldCipher>) -> Result<Xref, StoreError> {
    let (system, source_id) = (row.text(0)?, row.text(1)?);
    let what = format!("xref {system}/{source_id}");
    let event = row.text(7)?;
    Ok(Xref {
        source: row.text(2)?,
        golden_id: row.text(3)?,
        version: row.int(4)?,
        event_id: row.text(5)?,
        event_time: parse_ts(&row.text(6)?, &what)?,
        event: from_json(
            &open(cipher, &event, &event_aad(&system, &source_id))?,
            &what,
        )?,
        updated_at: parse_ts(&row.text(8)?, &what)?,
        system,
        source_id,
    })
}

/// A member of one side of a join: its reference and match record.
struct Member {
    sref: SourceRef,
    record: MatchRecord,
}

/// How a record compares with one golden record.
struct GoldenMatch {
    golden_id: String,
    /// The golden's member that scored best.
    best: SourceRef,
    probability: f64,
    /// The best pair's match weight: ranks pairs whose probabilities both round to 1.
    weight: f64,
    key: bool,
    decision: Decision,
    /// The rule that forbids joining, if any.
    refused: Option<String>,
}

/// One transaction's work.
struct Tx<'a> {
    db: &'a mut dyn Db,
    settings: &'a MdmSettings,
    rules: &'a EntityRules,
    cipher: Option<&'a FieldCipher>,
    now: DateTime<Utc>,
    /// Reserved row ids: the next one, the last one, and the size of the last reservation.
    ids: Option<(i64, i64, i64)>,
}

impl Tx<'_> {
    // ---------------------------------------------------------------- reads ----

    fn golden(&mut self, golden_id: &str) -> Result<Option<Golden>, StoreError> {
        let rows = self.db.query(
            "SELECT golden_id, version, state, merged_into, record, created_at, updated_at \
             FROM golden WHERE golden_id = $1",
            &[Param::from(golden_id)],
        )?;
        rows.first().map(|r| golden_of(r, self.cipher)).transpose()
    }

    /// An active golden record, or NotFound / Conflict (merged).
    fn active(&mut self, golden_id: &str) -> Result<Golden, StoreError> {
        let g = self
            .golden(golden_id)?
            .ok_or_else(|| StoreError::NotFound(format!("golden {golden_id}")))?;
        if g.state != GoldenState::Active {
            return Err(StoreError::Conflict(format!(
                "golden {golden_id} was merged into {}",
                g.merged_into.as_deref().unwrap_or("?")
            )));
        }
        Ok(g)
    }

    /// Follows merged_into to the live golden id.
    fn live(&mut self, golden_id: &str) -> Result<String, StoreError> {
        let mut id = golden_id.to_owned();
        for _ in 0..MAX_CHAIN {
            let rows = self.db.query(
                "SELECT state, merged_into FROM golden WHERE golden_id = $1",
                &[Param::from(&id)],
            )?;
            let Some(row) = rows.first() else {
                return Err(StoreError::Db(format!(
                    "golden {id} is referenced but missing"
                )));
            };
            match (row.text(0)?.as_str(), row.opt_text(1)?) {
                ("merged", Some(next)) => id = next,
                _ => return Ok(id),
            }
        }
        Err(StoreError::Db(format!(
            "golden {golden_id}: merge chain does not end"
        )))
    }

    fn xref(&mut self, system: &str, source_id: &str) -> Result<Option<Xref>, StoreError> {
        let rows = self.db.query(
            "SELECT system, source_id, source, golden_id, version, event_id, event_time, \
             event, updated_at FROM golden_xref \
             WHERE system = $1 AND source_id = $2",
            &[Param::from(system), Param::from(source_id)],
        )?;
        rows.first().map(|r| xref_of(r, self.cipher)).transpose()
    }

    fn members(&mut self, golden_id: &str) -> Result<Vec<Xref>, StoreError> {
        let rows = self.db.query(
            "SELECT system, source_id, source, golden_id, version, event_id, event_time, \
             event, updated_at FROM golden_xref WHERE golden_id = $1 \
             ORDER BY system, source_id",
            &[Param::from(golden_id)],
        )?;
        rows.iter().map(|r| xref_of(r, self.cipher)).collect()
    }

    fn match_members(&mut self, golden_id: &str) -> Result<Vec<Member>, StoreError> {
        let rows = self.db.query(
            "SELECT system, source_id, match_record FROM golden_xref WHERE golden_id = $1",
            &[Param::from(golden_id)],
        )?;
        rows.iter()
            .map(|r| {
                let (system, id) = (r.text(0)?, r.text(1)?);
                let stored = r.text(2)?;
                let plain = open(self.cipher, &stored, &match_aad(&system, &id))?;
                let record = from_json(&plain, &format!("xref {system}/{id}"))?;
                Ok(Member {
                    sref: SourceRef { system, id },
                    record,
                })
            })
            .collect()
    }

    /// Golden ids merged into `golden_id` and not unmerged since: its members' origins.
    fn absorbed(&mut self, golden_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.db.query(
            "SELECT DISTINCT origin_id FROM golden_xref WHERE golden_id = $1 AND origin_id <> $1 \
             ORDER BY origin_id",
            &[Param::from(golden_id)],
        )?;
        rows.iter().map(|r| Ok(r.text(0)?)).collect()
    }

    fn apart_of(&mut self, r: &SourceRef) -> Result<HashSet<SourceRef>, StoreError> {
        let rows = self.db.query(
            "SELECT other_system, other_source_id FROM golden_apart \
             WHERE system = $1 AND source_id = $2",
            &[Param::from(&r.system), Param::from(&r.id)],
        )?;
        rows.iter()
            .map(|row| Ok(sref(&row.text(0)?, &row.text(1)?)))
            .collect()
    }

    // --------------------------------------------------------------- writes ----

    /// Advances a counter by `n` and returns its new value (the last of the `n` taken).
    fn counter(&mut self, name: &str, n: i64) -> Result<i64, StoreError> {
        let rows = self.db.query(
            "UPDATE golden_counter SET value = value + $1 WHERE name = $2 RETURNING value",
            &[Param::from(n), Param::from(name)],
        )?;
        Ok(one(rows, name)?.int(0)?)
    }

    /// The next row id. Writers are serialised, so ids grow across transactions and
    /// processes; one counter update serves a block of them.
    fn next_id(&mut self) -> Result<i64, StoreError> {
        let (next, last, block) = match self.ids {
            Some((next, last, block)) if next <= last => (next, last, block),
            reserved => {
                let block = reserved.map_or(ID_BLOCK, |(_, _, b)| (b * 2).min(ID_BLOCK_MAX));
                let last = self.counter("row_id", block)?;
                (last - block + 1, last, block)
            }
        };
        self.ids = Some((next + 1, last, block));
        Ok(next)
    }

    fn enqueue(&mut self, golden_id: &str) -> Result<(), StoreError> {
        // One pending row per golden id: the entry renders the record as it is when read,
        // so an older pending row adds nothing. The row takes a new id, which moves it to
        // the end of the queue and keeps a publisher that read the old id from marking
        // this change done.
        let id = self.next_id()?;
        self.db.execute(
            "INSERT INTO golden_outbox (outbox_id, golden_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (golden_id) DO UPDATE SET outbox_id = excluded.outbox_id, \
             created_at = excluded.created_at",
            &[
                Param::from(id),
                Param::from(golden_id),
                Param::from(ts(&self.now)),
            ],
        )?;
        Ok(())
    }

    fn write_history(
        &mut self,
        golden_id: &str,
        changes: &[FieldChange],
        reason: &str,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        // A change carries the new value's provenance, or the old one's when the value went
        // away; apply and diff never produce a change with neither.
        let rows: Vec<(&FieldChange, &Provenance)> = changes
            .iter()
            .filter_map(|c| {
                let p = c.new.as_ref().or(c.old.as_ref())?;
                Some((c, &p.provenance))
            })
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        for chunk in rows.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO golden_history (id, golden_id, field, old_value, new_value, system, \
                 event_id, event_time, version, reason, actor, recorded_at) VALUES {}",
                values_sql(chunk.len(), 12)
            );
            let mut params = Vec::with_capacity(chunk.len() * 12);
            for (c, p) in chunk {
                let id = self.next_id()?;
                let what = format!("history of field {}", c.field);
                let cipher = self.cipher;
                let value = |v: &Option<SourcedValue>,
                             column: &str|
                 -> Result<Option<String>, StoreError> {
                    v.as_ref()
                        .map(|v| seal(cipher, to_json(&v.value, &what)?, &history_aad(column, id)))
                        .transpose()
                };
                params.extend([
                    Param::from(id),
                    Param::from(golden_id),
                    Param::from(&c.field),
                    Param::from(value(&c.old, "old_value")?),
                    Param::from(value(&c.new, "new_value")?),
                    Param::from(&p.system),
                    Param::from(&p.event_id),
                    Param::from(ts(&p.time)),
                    Param::from(p.version),
                    Param::from(reason),
                    Param::from(actor),
                    Param::from(ts(&self.now)),
                ]);
            }
            self.db.execute(&sql, &params)?;
        }
        Ok(())
    }

    fn save_golden(&mut self, g: &Golden) -> Result<(), StoreError> {
        let record = seal(
            self.cipher,
            to_json(&g.record, &format!("golden {}", g.golden_id))?,
            &golden_aad(&g.golden_id),
        )?;
        self.db.execute(
            "UPDATE golden SET version = $1, state = $2, merged_into = $3, record = $4, \
             updated_at = $5 WHERE golden_id = $6",
            &[
                Param::from(g.version),
                Param::from(g.state.as_str()),
                Param::from(g.merged_into.clone()),
                Param::from(record),
                Param::from(ts(&g.updated_at)),
                Param::from(&g.golden_id),
            ],
        )?;
        Ok(())
    }

    /// A new golden record made of `events` (history written with `reason`).
    fn create_golden(
        &mut self,
        events: &[&SourceEvent],
        reason: &str,
        actor: Option<&str>,
    ) -> Result<String, StoreError> {
        let golden_id = golden_id_of(self.counter("golden", 1)?);
        let survived = apply(self.rules, &GoldenRecord::default(), events.iter().copied());
        let record = seal(
            self.cipher,
            to_json(&survived.record, &format!("golden {golden_id}"))?,
            &golden_aad(&golden_id),
        )?;
        self.db.execute(
            "INSERT INTO golden (golden_id, version, state, merged_into, record, created_at, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Param::from(&golden_id),
                Param::from(1_i64),
                Param::from(GoldenState::Active.as_str()),
                Param::Text(None),
                Param::from(record),
                Param::from(ts(&self.now)),
                Param::from(ts(&self.now)),
            ],
        )?;
        self.write_history(&golden_id, &survived.changes, reason, actor)?;
        self.enqueue(&golden_id)?;
        Ok(golden_id)
    }

    /// Folds events into an active golden record; bumps its version and queues it when a
    /// value changed or `force` (its membership changed).
    fn fold_into(
        &mut self,
        golden_id: &str,
        events: &[&SourceEvent],
        reason: &str,
        actor: Option<&str>,
        force: bool,
    ) -> Result<(), StoreError> {
        let mut g = self.active(golden_id)?;
        let survived = apply(self.rules, &g.record, events.iter().copied());
        let changed = !survived.changes.is_empty();
        self.write_history(golden_id, &survived.changes, reason, actor)?;
        g.record = survived.record;
        if changed || force {
            g.version += 1;
            g.updated_at = self.now;
        }
        self.save_golden(&g)?;
        if changed || force {
            self.enqueue(golden_id)?;
        }
        Ok(())
    }

    fn store_xref(
        &mut self,
        ev: &PartyEvent,
        event: &SourceEvent,
        record: &MatchRecord,
        golden_id: &str,
        known: bool,
    ) -> Result<(), StoreError> {
        let what = format!("xref {}/{}", ev.system, ev.source_id);
        self.db.execute(
            "INSERT INTO golden_xref (system, source_id, source, golden_id, origin_id, version, \
             event_id, event_time, event, match_record, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (system, source_id) DO UPDATE SET source = excluded.source, \
             version = excluded.version, event_id = excluded.event_id, \
             event_time = excluded.event_time, event = excluded.event, \
             match_record = excluded.match_record, updated_at = excluded.updated_at",
            &[
                Param::from(&ev.system),
                Param::from(&ev.source_id),
                Param::from(&ev.source),
                Param::from(golden_id),
                Param::from(golden_id),
                Param::from(ev.version),
                Param::from(&ev.event_id),
                Param::from(ts(&ev.event_time)),
                Param::from(seal(
                    self.cipher,
                    to_json(event, &what)?,
                    &event_aad(&ev.system, &ev.source_id),
                )?),
                Param::from(seal(
                    self.cipher,
                    to_json(record, &what)?,
                    &match_aad(&ev.system, &ev.source_id),
                )?),
                Param::from(ts(&self.now)),
            ],
        )?;
        self.index(&ev.system, &ev.source_id, record, known)
    }

    /// Replaces a record's index keys (`known`: it may have some already).
    fn index(
        &mut self,
        system: &str,
        source_id: &str,
        record: &MatchRecord,
        known: bool,
    ) -> Result<(), StoreError> {
        if known {
            self.db.execute(
                "DELETE FROM golden_key WHERE system = $1 AND source_id = $2",
                &[Param::from(system), Param::from(source_id)],
            )?;
        }
        let keys = index_keys(record);
        if keys.is_empty() {
            return Ok(());
        }
        let seq = self.next_id()?;
        for chunk in keys.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO golden_key (key, seq, system, source_id) VALUES {}",
                values_sql(chunk.len(), 4)
            );
            let mut params = Vec::with_capacity(chunk.len() * 4);
            for k in chunk {
                params.extend([
                    Param::from(k),
                    Param::from(seq),
                    Param::from(system),
                    Param::from(source_id),
                ]);
            }
            self.db.execute(&sql, &params)?;
        }
        Ok(())
    }

    /// Opens a review unless one is open for the pair or the pair is kept apart. Returns
    /// whether it opened one.
    fn open_review(
        &mut self,
        a: &SourceRef,
        b: &SourceRef,
        probability: f64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        if self.apart_of(a)?.contains(b) {
            return Ok(false);
        }
        let (a, b) = ordered(a.clone(), b.clone());
        let open = self.db.query(
            "SELECT id FROM golden_review WHERE a_system = $1 AND a_source_id = $2 \
             AND b_system = $3 AND b_source_id = $4 AND status = 'open'",
            &[
                Param::from(&a.system),
                Param::from(&a.id),
                Param::from(&b.system),
                Param::from(&b.id),
            ],
        )?;
        if !open.is_empty() {
            return Ok(false);
        }
        let id = self.next_id()?;
        self.db.execute(
            "INSERT INTO golden_review (id, a_system, a_source_id, b_system, b_source_id, \
             probability, status, reason, created_at, decided_by, decided_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                Param::from(id),
                Param::from(&a.system),
                Param::from(&a.id),
                Param::from(&b.system),
                Param::from(&b.id),
                Param::from(probability),
                Param::from(ReviewStatus::Open.as_str()),
                Param::from(reason),
                Param::from(ts(&self.now)),
                Param::Text(None),
                Param::Text(None),
            ],
        )?;
        Ok(true)
    }

    /// Records that two source records must never be joined automatically.
    fn keep_apart(
        &mut self,
        a: &SourceRef,
        b: &SourceRef,
        reason: &str,
        by: Option<&str>,
    ) -> Result<(), StoreError> {
        for (x, y) in [(a, b), (b, a)] {
            self.db.execute(
                "INSERT INTO golden_apart (system, source_id, other_system, other_source_id, \
                 reason, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (system, source_id, other_system, other_source_id) DO NOTHING",
                &[
                    Param::from(&x.system),
                    Param::from(&x.id),
                    Param::from(&y.system),
                    Param::from(&y.id),
                    Param::from(reason),
                    Param::from(by),
                    Param::from(ts(&self.now)),
                ],
            )?;
        }
        Ok(())
    }

    /// Removes keep-apart pairs between the members of two golden records (a steward
    /// joined them).
    fn lift_apart(&mut self, g1: &str, g2: &str) -> Result<(), StoreError> {
        let m1 = self.match_members(g1)?;
        let m2 = self.match_members(g2)?;
        for x in &m1 {
            for y in &m2 {
                for (p, q) in [(&x.sref, &y.sref), (&y.sref, &x.sref)] {
                    self.db.execute(
                        "DELETE FROM golden_apart WHERE system = $1 AND source_id = $2 \
                         AND other_system = $3 AND other_source_id = $4",
                        &[
                            Param::from(&p.system),
                            Param::from(&p.id),
                            Param::from(&q.system),
                            Param::from(&q.id),
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Marks open reviews whose two records now share a golden record: `status`, by `actor`.
    fn settle_reviews(&mut self, golden_id: &str, actor: Option<&str>) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE golden_review SET status = $1, decided_by = $2, decided_at = $3 \
             WHERE status = 'open' AND id IN (SELECT r.id FROM golden_review r \
             JOIN golden_xref xa ON xa.system = r.a_system AND xa.source_id = r.a_source_id \
             JOIN golden_xref xb ON xb.system = r.b_system AND xb.source_id = r.b_source_id \
             WHERE r.status = 'open' AND xa.golden_id = $4 AND xb.golden_id = $4)",
            &[
                Param::from(ReviewStatus::Superseded.as_str()),
                Param::from(actor),
                Param::from(ts(&self.now)),
                Param::from(golden_id),
            ],
        )?;
        Ok(())
    }

    // ------------------------------------------------------------- matching ----

    /// Source records sharing an index key with `record`, outside `exclude` (the record's
    /// own golden), at most `max_candidates` per key, most recently indexed first.
    fn candidates(
        &mut self,
        me: &SourceRef,
        record: &MatchRecord,
        exclude: Option<&str>,
    ) -> Result<Vec<(String, Member)>, StoreError> {
        let keys = index_keys(record);
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for all keys: per key its most recent records, then their rows.
        let per_key: Vec<String> = (0..keys.len())
            .map(|i| {
                format!(
                    "SELECT system, source_id FROM (SELECT system, source_id FROM golden_key \
                     WHERE key = ${} ORDER BY seq DESC LIMIT ${}) AS k{i}",
                    2 * i + 1,
                    2 * i + 2
                )
            })
            .collect();
        // Correlated primary-key lookups rather than a join: a join lets PostgreSQL pick a
        // hash join over the whole table, and keep that plan cached as the table grows.
        let sql = format!(
            "SELECT c.system, c.source_id, \
             (SELECT x.golden_id FROM golden_xref x \
              WHERE x.system = c.system AND x.source_id = c.source_id), \
             (SELECT x.match_record FROM golden_xref x \
              WHERE x.system = c.system AND x.source_id = c.source_id) \
             FROM ({}) AS c",
            per_key.join(" UNION ")
        );
        let limit = limit_param(self.settings.max_candidates);
        let params: Vec<Param> = keys
            .into_iter()
            .flat_map(|k| [Param::from(k), limit.clone()])
            .collect();
        let mut out = Vec::new();
        for row in self.db.query(&sql, &params)? {
            let r = sref(&row.text(0)?, &row.text(1)?);
            // Keys are written with their record, so a key without one is not expected;
            // such a key is simply not a candidate.
            let (Some(golden_id), Some(record)) = (row.opt_text(2)?, row.opt_text(3)?) else {
                continue;
            };
            if r == *me || exclude == Some(golden_id.as_str()) {
                continue;
            }
            let plain = open(self.cipher, &record, &match_aad(&r.system, &r.id))?;
            let record = from_json(&plain, &format!("xref {}/{}", r.system, r.id))?;
            out.push((golden_id, Member { sref: r, record }));
        }
        // Database order is unspecified: sort so matching is deterministic.
        out.sort_by(|a, b| a.1.sref.cmp(&b.1.sref));
        Ok(out)
    }

    /// The rule that forbids joining the records `xs` with `ys`, if any: a keep-apart pair,
    /// or a pair breaking a hard non-match rule without sharing a key.
    fn refusal(&mut self, xs: &[Member], ys: &[Member]) -> Result<Option<String>, StoreError> {
        for x in xs {
            let apart = self.apart_of(&x.sref)?;
            if !apart.is_empty() && ys.iter().any(|y| apart.contains(&y.sref)) {
                return Ok(Some(RULE_KEEP_APART.to_owned()));
            }
        }
        for x in xs {
            for y in ys {
                let s = score_pair(&self.settings.model, &x.record, &y.record);
                if let (None, Some(rule)) = (s.key, s.hard_non_match) {
                    let name = serde_json::to_value(rule)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_else(|| format!("{rule:?}"));
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// Compares a record with the golden records its keys find (other than `own`), and
    /// checks the constraints against joining `side` (the record, or its whole golden
    /// record) with each golden record it would merge with or send to review.
    fn match_goldens(
        &mut self,
        me: &SourceRef,
        record: &MatchRecord,
        own: Option<&str>,
        side: &[Member],
    ) -> Result<Vec<GoldenMatch>, StoreError> {
        let mut best: BTreeMap<String, GoldenMatch> = BTreeMap::new();
        for (golden_id, cand) in self.candidates(me, record, own)? {
            let s = score_pair(&self.settings.model, record, &cand.record);
            let m = GoldenMatch {
                golden_id: golden_id.clone(),
                best: cand.sref,
                probability: s.probability,
                weight: s.weight,
                key: s.key.is_some(),
                decision: s.decide(&self.settings.matching),
                refused: None,
            };
            match best.get(&golden_id) {
                Some(held) if rank(held) >= rank(&m) => {}
                _ => {
                    best.insert(golden_id, m);
                }
            }
        }
        let mut out = Vec::new();
        for (golden_id, mut m) in best {
            if m.decision == Decision::Distinct {
                continue;
            }
            let theirs = self.match_members(&golden_id)?;
            m.refused = self.refusal(side, &theirs)?;
            out.push(m);
        }
        // Strongest first: a key, then weight; ties to the older golden id.
        out.sort_by(|a, b| {
            rank(b)
                .partial_cmp(&rank(a))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.golden_id.cmp(&b.golden_id))
        });
        Ok(out)
    }

    /// Merges golden records the record merges with into `golden_id` (the smaller id
    /// survives each merge) and opens the reviews the matches call for. Returns the live
    /// golden id, the merged ids and the number of reviews opened.
    fn join_matches(
        &mut self,
        me: &SourceRef,
        mut golden_id: String,
        matches: Vec<GoldenMatch>,
        merge_first: bool,
    ) -> Result<(String, Vec<String>, usize), StoreError> {
        let mut merged = Vec::new();
        let mut reviews = 0;
        for (i, mut m) in matches.into_iter().enumerate() {
            // The first match was already joined by attaching the record to it.
            if merge_first && i == 0 {
                continue;
            }
            if m.decision == Decision::Merge && m.refused.is_none() {
                if m.golden_id == golden_id {
                    continue;
                }
                // The side grew with every merge: check the constraints again.
                let ours = self.match_members(&golden_id)?;
                let theirs = self.match_members(&m.golden_id)?;
                m.refused = self.refusal(&ours, &theirs)?;
                if m.refused.is_none() {
                    let (s, l) = if m.golden_id < golden_id {
                        (m.golden_id.clone(), golden_id.clone())
                    } else {
                        (golden_id.clone(), m.golden_id.clone())
                    };
                    let sg = self.active(&s)?;
                    let lg = self.active(&l)?;
                    self.merge(sg, lg, REASON_MERGE, None)?;
                    merged.push(l);
                    golden_id = s;
                    continue;
                }
            }
            let reason = match (&m.refused, m.decision) {
                (Some(rule), Decision::Merge) => format!("refused: {rule}"),
                // The steward kept these golden records apart already.
                (Some(rule), _) if rule == RULE_KEEP_APART => continue,
                _ => "probable".to_owned(),
            };
            if self.open_review(me, &m.best, m.probability, &reason)? {
                reviews += 1;
            }
        }
        Ok((golden_id, merged, reviews))
    }

    // ----------------------------------------------------------- operations ----

    fn ingest(&mut self, ev: &PartyEvent) -> Result<IngestOutcome, StoreError> {
        let me = sref(&ev.system, &ev.source_id);
        let event = source_event(ev);
        let record = match_record(ev);
        if let Some(x) = self.xref(&ev.system, &ev.source_id)? {
            if ev.version <= x.version {
                return Ok(IngestOutcome {
                    golden_id: self.live(&x.golden_id)?,
                    action: IngestAction::Unchanged,
                    merged: Vec::new(),
                    reviews_opened: 0,
                });
            }
            let golden_id = self.live(&x.golden_id)?;
            self.store_xref(ev, &event, &record, &golden_id, true)?;
            self.fold_into(&golden_id, &[&event], REASON_EVENT, None, false)?;
            // The new values (an INN, a phone) may tie it to another golden record.
            let side = self.match_members(&golden_id)?;
            let matches = self.match_goldens(&me, &record, Some(&golden_id), &side)?;
            let (golden_id, merged, reviews_opened) =
                self.join_matches(&me, golden_id, matches, false)?;
            return Ok(IngestOutcome {
                golden_id,
                action: IngestAction::Updated,
                merged,
                reviews_opened,
            });
        }

        let side = [Member {
            sref: me.clone(),
            record: record.clone(),
        }];
        let matches = self.match_goldens(&me, &record, None, &side)?;
        let target = matches
            .iter()
            .position(|m| m.decision == Decision::Merge && m.refused.is_none());
        let (golden_id, action, matches) = match target {
            Some(i) => {
                let mut matches = matches;
                // Put the chosen golden first so join_matches skips it.
                let chosen = matches.remove(i);
                let golden_id = chosen.golden_id.clone();
                matches.insert(0, chosen);
                self.store_xref(ev, &event, &record, &golden_id, false)?;
                self.fold_into(&golden_id, &[&event], REASON_EVENT, None, true)?;
                (golden_id, IngestAction::Attached, matches)
            }
            None => {
                let golden_id = self.create_golden(&[&event], REASON_EVENT, None)?;
                self.store_xref(ev, &event, &record, &golden_id, false)?;
                (golden_id, IngestAction::Created, matches)
            }
        };
        let merge_first = action == IngestAction::Attached;
        let (golden_id, merged, reviews_opened) =
            self.join_matches(&me, golden_id, matches, merge_first)?;
        Ok(IngestOutcome {
            golden_id,
            action,
            merged,
            reviews_opened,
        })
    }

    /// Merges `l` into `s`: members move, `s` takes their events, `l` points at `s`.
    fn merge(
        &mut self,
        s: Golden,
        mut l: Golden,
        reason: &str,
        actor: Option<&str>,
    ) -> Result<(), StoreError> {
        let moved = self.members(&l.golden_id)?;
        self.db.execute(
            "UPDATE golden_xref SET golden_id = $1 WHERE golden_id = $2",
            &[Param::from(&s.golden_id), Param::from(&l.golden_id)],
        )?;
        let events: Vec<&SourceEvent> = moved.iter().map(|x| &x.event).collect();
        self.fold_into(&s.golden_id, &events, reason, actor, true)?;
        l.state = GoldenState::Merged;
        l.merged_into = Some(s.golden_id.clone());
        l.version += 1;
        l.updated_at = self.now;
        self.save_golden(&l)?;
        // The survivor's entry lists the loser as absorbed; the loser is not published.
        self.db.execute(
            "DELETE FROM golden_outbox WHERE golden_id = $1",
            &[Param::from(&l.golden_id)],
        )?;
        self.settle_reviews(&s.golden_id, actor)
    }

    fn decide_review(
        &mut self,
        id: i64,
        decision: ReviewDecision,
        by: &str,
    ) -> Result<Review, StoreError> {
        let review = self
            .reviews(None, Some(id), 1)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("review {id}")))?;
        if review.status != ReviewStatus::Open {
            return Err(StoreError::Conflict(format!(
                "review {id} is already decided ({})",
                review.status.as_str()
            )));
        }
        let status = match decision {
            ReviewDecision::Merge => {
                if review.golden_a != review.golden_b {
                    self.lift_apart(&review.golden_a, &review.golden_b)?;
                    let (s, l) = if review.golden_a < review.golden_b {
                        (&review.golden_a, &review.golden_b)
                    } else {
                        (&review.golden_b, &review.golden_a)
                    };
                    let sg = self.active(s)?;
                    let lg = self.active(l)?;
                    self.merge(sg, lg, REASON_REVIEW, Some(by))?;
                }
                ReviewStatus::Merged
            }
            ReviewDecision::KeepApart => {
                self.keep_apart(&review.a, &review.b, REASON_REVIEW, Some(by))?;
                ReviewStatus::KeptApart
            }
        };
        // After the merge, which marked every open review inside the survivor superseded.
        self.db.execute(
            "UPDATE golden_review SET status = $1, decided_by = $2, decided_at = $3 WHERE id = $4",
            &[
                Param::from(status.as_str()),
                Param::from(by),
                Param::from(ts(&self.now)),
                Param::from(id),
            ],
        )?;
        self.reviews(None, Some(id), 1)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::NotFound(format!("review {id}")))
    }

    fn unmerge(
        &mut self,
        golden_id: &str,
        system: &str,
        source_id: &str,
        by: &str,
    ) -> Result<String, StoreError> {
        let g = self.active(golden_id)?;
        let x = self
            .xref(system, source_id)?
            .ok_or_else(|| StoreError::NotFound(format!("xref {system}/{source_id}")))?;
        if x.golden_id != g.golden_id {
            return Err(StoreError::Invalid(format!(
                "xref {system}/{source_id} belongs to golden {}, not {golden_id}",
                x.golden_id
            )));
        }
        let members = self.members(&g.golden_id)?;
        if members.len() < 2 {
            return Err(StoreError::Conflict(format!(
                "golden {golden_id} has only xref {system}/{source_id}; nothing to detach"
            )));
        }
        let new_id = self.create_golden(&[&x.event], REASON_UNMERGE, Some(by))?;
        self.db.execute(
            "UPDATE golden_xref SET golden_id = $1, origin_id = $1 WHERE system = $2 \
             AND source_id = $3",
            &[
                Param::from(&new_id),
                Param::from(system),
                Param::from(source_id),
            ],
        )?;
        let remaining: Vec<&Xref> = members
            .iter()
            .filter(|m| m.system != system || m.source_id != source_id)
            .collect();
        let rebuilt = apply(
            self.rules,
            &GoldenRecord::default(),
            remaining.iter().map(|m| &m.event),
        )
        .record;
        let changes = diff(&g.record, &rebuilt);
        self.write_history(&g.golden_id, &changes, REASON_UNMERGE, Some(by))?;
        let mut g = g;
        g.record = rebuilt;
        g.version += 1;
        g.updated_at = self.now;
        self.save_golden(&g)?;
        self.enqueue(&g.golden_id)?;
        let detached = x.sref();
        for m in remaining {
            self.keep_apart(&detached, &m.sref(), REASON_UNMERGE, Some(by))?;
        }
        Ok(new_id)
    }

    // -------------------------------------------------------------- views ----

    fn view(&mut self, golden_id: &str) -> Result<Option<GoldenView>, StoreError> {
        let Some(g) = self.golden(golden_id)? else {
            return Ok(None);
        };
        let xrefs = self
            .members(&g.golden_id)?
            .into_iter()
            .map(|x| XrefView {
                system: x.system,
                source: x.source,
                source_id: x.source_id,
                version: x.version,
                event_id: x.event_id,
                event_time: x.event_time,
                updated_at: x.updated_at,
            })
            .collect();
        let absorbed = self.absorbed(&g.golden_id)?;
        let party = match g.state {
            GoldenState::Active => g.record.to_party(&g.golden_id).ok(),
            GoldenState::Merged => None,
        };
        Ok(Some(GoldenView {
            golden_id: g.golden_id,
            version: g.version,
            state: g.state,
            merged_into: g.merged_into,
            record: g.record,
            party,
            xrefs,
            absorbed,
            created_at: g.created_at,
            updated_at: g.updated_at,
        }))
    }

    fn outbox(&mut self, limit: usize) -> Result<Vec<GoldenOut>, StoreError> {
        let rows = self.db.query(
            "SELECT outbox_id, golden_id FROM golden_outbox ORDER BY outbox_id LIMIT $1",
            &[limit_param(limit)],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let outbox_id = row.int(0)?;
            // Merges delete the loser's entry; follow merged_into in case one remains.
            let golden_id = self.live(&row.text(1)?)?;
            let Some(g) = self.golden(&golden_id)? else {
                return Err(StoreError::Db(format!(
                    "outbox {outbox_id}: golden {golden_id} missing"
                )));
            };
            let members = self.members(&golden_id)?;
            let event_time = members
                .iter()
                .map(|m| m.event_time)
                .max()
                .unwrap_or(g.updated_at);
            let party = g.record.to_party(&golden_id).map_err(|e| {
                StoreError::Db(format!(
                    "golden {golden_id}: values do not form a party ({:?})",
                    e.classify()
                ))
            })?;
            out.push(GoldenOut {
                outbox_id,
                version: g.version,
                party,
                xrefs: members.iter().map(Xref::sref).collect(),
                absorbed: self.absorbed(&golden_id)?,
                event_time,
                golden_id,
            });
        }
        Ok(out)
    }

    fn history(
        &mut self,
        golden_id: &str,
        field: Option<&str>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        const COLS: &str = "id, golden_id, field, old_value, new_value, system, event_id, \
                            event_time, version, reason, actor, recorded_at";
        let rows = match field {
            Some(f) => self.db.query(
                &format!(
                    "SELECT {COLS} FROM golden_history WHERE golden_id = $1 AND field = $2 \
                     ORDER BY id DESC LIMIT $3"
                ),
                &[Param::from(golden_id), Param::from(f), limit_param(limit)],
            )?,
            None => self.db.query(
                &format!(
                    "SELECT {COLS} FROM golden_history WHERE golden_id = $1 \
                     ORDER BY id DESC LIMIT $2"
                ),
                &[Param::from(golden_id), limit_param(limit)],
            )?,
        };
        rows.iter()
            .map(|r| {
                let id = r.int(0)?;
                let what = format!("history {id}");
                let cipher = self.cipher;
                let value = |i: usize, column: &str| -> Result<Option<Value>, StoreError> {
                    r.opt_text(i)?
                        .map(|t| from_json(&open(cipher, &t, &history_aad(column, id))?, &what))
                        .transpose()
                };
                Ok(HistoryEntry {
                    id,
                    golden_id: r.text(1)?,
                    field: r.text(2)?,
                    old: value(3, "old_value")?,
                    new: value(4, "new_value")?,
                    system: r.text(5)?,
                    event_id: r.text(6)?,
                    event_time: parse_ts(&r.text(7)?, &what)?,
                    version: r.int(8)?,
                    reason: r.text(9)?,
                    actor: r.opt_text(10)?,
                    recorded_at: parse_ts(&r.text(11)?, &what)?,
                })
            })
            .collect()
    }

    fn reviews(
        &mut self,
        status: Option<ReviewStatus>,
        id: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Review>, StoreError> {
        const SELECT: &str = "SELECT r.id, r.a_system, r.a_source_id, r.b_system, \
             r.b_source_id, r.probability, r.status, r.reason, r.created_at, r.decided_by, \
             r.decided_at, xa.golden_id, xb.golden_id FROM golden_review r \
             JOIN golden_xref xa ON xa.system = r.a_system AND xa.source_id = r.a_source_id \
             JOIN golden_xref xb ON xb.system = r.b_system AND xb.source_id = r.b_source_id";
        let rows = match (id, status) {
            (Some(id), _) => self
                .db
                .query(&format!("{SELECT} WHERE r.id = $1"), &[Param::from(id)])?,
            (None, Some(s)) => self.db.query(
                &format!("{SELECT} WHERE r.status = $1 ORDER BY r.id LIMIT $2"),
                &[Param::from(s.as_str()), limit_param(limit)],
            )?,
            (None, None) => self.db.query(
                &format!("{SELECT} ORDER BY r.id LIMIT $1"),
                &[limit_param(limit)],
            )?,
        };
        rows.iter()
            .map(|r| {
                let id = r.int(0)?;
                let what = format!("review {id}");
                let status = r.text(6)?;
                Ok(Review {
                    id,
                    a: sref(&r.text(1)?, &r.text(2)?),
                    b: sref(&r.text(3)?, &r.text(4)?),
                    probability: r.float(5)?,
                    status: ReviewStatus::parse(&status).ok_or_else(|| {
                        StoreError::Db(format!("{what}: unknown status {status}"))
                    })?,
                    reason: r.text(7)?,
                    created_at: parse_ts(&r.text(8)?, &what)?,
                    decided_by: r.opt_text(9)?,
                    decided_at: r.opt_text(10)?.map(|t| parse_ts(&t, &what)).transpose()?,
                    golden_a: r.text(11)?,
                    golden_b: r.text(12)?,
                })
            })
            .collect()
    }
}

/// Orders matches: merge before review before distinct, then a key, then the match weight
/// (not the probability, which is 1 to the last bit for every strong pair).
fn rank(m: &GoldenMatch) -> (u8, bool, f64) {
    let d = match m.decision {
        Decision::Merge => 2,
        Decision::Review => 1,
        Decision::Distinct => 0,
    };
    (d, m.key, m.weight)
}
