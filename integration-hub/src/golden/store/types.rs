//! The golden store's public types: settings, the event it ingests, what it answers, and
//! its errors. Every view type is `Serialize`: the admin API returns them as JSON.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use mapping::Party;
use mapping::mdm::mastership::MastershipConfig;
use mapping::mdm::matching::{MatchConfig, Model, SourceRef};
use mapping::mdm::survivorship::GoldenRecord;

/// How the store matches records and builds golden records.
#[derive(Debug, Clone)]
pub struct MdmSettings {
    /// Per field, the master system, fallbacks and survivorship rule (entity `party`).
    pub mastership: MastershipConfig,
    /// The thresholds `auto_merge` and `review` (the batch-only settings are not used).
    pub matching: MatchConfig,
    /// The scoring model.
    pub model: Model,
    /// Candidates taken per blocking key, most recently indexed first.
    pub max_candidates: usize,
}

impl Default for MdmSettings {
    fn default() -> Self {
        MdmSettings {
            mastership: MastershipConfig::default(),
            matching: MatchConfig::default(),
            model: Model::reasoned(),
            max_candidates: 50,
        }
    }
}

/// One canonical party from one source system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartyEvent {
    /// The source system (`abs`, `cards`, `crm`): the name mastership rules use.
    pub system: String,
    /// The configured source the event came through.
    pub source: String,
    /// The record's id in the system.
    pub source_id: String,
    /// The source's version of the record: monotonic per (system, source id).
    pub version: i64,
    /// The envelope id.
    pub event_id: String,
    /// When the record changed at the source.
    pub event_time: DateTime<Utc>,
    /// The record.
    pub party: Party,
}

/// What `ingest` did with the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngestAction {
    /// A new record that matched no golden record: a new golden record.
    Created,
    /// A new record joined an existing golden record.
    Attached,
    /// A newer version of a known record.
    Updated,
    /// A version at or below the stored one: nothing changed.
    Unchanged,
}

/// The result of `ingest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestOutcome {
    /// The live golden record the source record belongs to afterwards.
    pub golden_id: String,
    /// What happened to the source record.
    pub action: IngestAction,
    /// Golden records merged into `golden_id` by this event.
    pub merged: Vec<String>,
    /// Reviews opened by this event.
    pub reviews_opened: usize,
}

impl IngestOutcome {
    /// The live golden id the source record belongs to.
    pub fn golden_id(&self) -> &str {
        &self.golden_id
    }

    /// Golden ids merged into [`IngestOutcome::golden_id`] by this event.
    pub fn merged(&self) -> &[String] {
        &self.merged
    }

    /// The action as a metric label: `created`, `attached`, `updated` or `unchanged`.
    pub fn action_name(&self) -> &'static str {
        self.action.as_str()
    }
}

impl IngestAction {
    /// The action's name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestAction::Created => "created",
            IngestAction::Attached => "attached",
            IngestAction::Updated => "updated",
            IngestAction::Unchanged => "unchanged",
        }
    }
}

/// One pending outbox entry: a golden record to publish, as it is now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldenOut {
    /// Pass to `outbox_done` once published.
    pub outbox_id: i64,
    /// The golden id.
    pub golden_id: String,
    /// The golden record's version: grows with every change.
    pub version: i64,
    /// The golden values as a canonical party whose `source_id` is the golden id.
    pub party: Party,
    /// The source records it is made of.
    pub xrefs: Vec<SourceRef>,
    /// Golden ids merged into this one and not unmerged since (consumers retire them).
    pub absorbed: Vec<String>,
    /// The newest event time among its source records.
    pub event_time: DateTime<Utc>,
}

/// Whether a golden id is in use or was merged into another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoldenState {
    Active,
    Merged,
}

impl GoldenState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            GoldenState::Active => "active",
            GoldenState::Merged => "merged",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<GoldenState> {
        match s {
            "active" => Some(GoldenState::Active),
            "merged" => Some(GoldenState::Merged),
            _ => None,
        }
    }
}

/// A source record of a golden record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct XrefView {
    pub system: String,
    pub source: String,
    pub source_id: String,
    /// The newest version ingested.
    pub version: i64,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A golden record with its sources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GoldenView {
    pub golden_id: String,
    pub version: i64,
    pub state: GoldenState,
    /// For a merged golden id: the one it was merged into (possibly merged further since).
    pub merged_into: Option<String>,
    /// Surviving values and per-system candidates, with provenance.
    pub record: GoldenRecord,
    /// The surviving values as a party; `None` for a merged id.
    pub party: Option<Party>,
    /// Its source records (none for a merged id: they moved to the survivor).
    pub xrefs: Vec<XrefView>,
    /// Golden ids merged into this one and not unmerged since.
    pub absorbed: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One change of a golden value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub id: i64,
    pub golden_id: String,
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
    /// Provenance of the new value (of the old one when the value went away).
    pub system: String,
    pub event_id: String,
    pub event_time: DateTime<Utc>,
    pub version: i64,
    /// `event`, `merge`, `unmerge` or `review`.
    pub reason: String,
    /// The data steward, for merges, unmerges and review decisions.
    pub actor: Option<String>,
    pub recorded_at: DateTime<Utc>,
}

/// Where a review stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for a data steward.
    Open,
    /// The steward merged the two golden records.
    Merged,
    /// The steward kept them apart: matching will not join them again.
    KeptApart,
    /// The two records ended in one golden record some other way.
    Superseded,
}

impl ReviewStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Open => "open",
            ReviewStatus::Merged => "merged",
            ReviewStatus::KeptApart => "kept_apart",
            ReviewStatus::Superseded => "superseded",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<ReviewStatus> {
        match s {
            "open" => Some(ReviewStatus::Open),
            "merged" => Some(ReviewStatus::Merged),
            "kept_apart" => Some(ReviewStatus::KeptApart),
            "superseded" => Some(ReviewStatus::Superseded),
            _ => None,
        }
    }
}

/// A data steward's answer to a review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    Merge,
    KeepApart,
}

/// A pair of source records the matcher could not decide alone.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Review {
    pub id: i64,
    pub a: SourceRef,
    pub b: SourceRef,
    /// The live golden ids of `a` and `b` now.
    pub golden_a: String,
    pub golden_b: String,
    /// The pair's match probability (1 when a deterministic key was refused).
    pub probability: f64,
    pub status: ReviewStatus,
    /// `probable` (between the thresholds) or `refused: <rule>` (a merge a rule forbade).
    pub reason: String,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// Counts for dashboards and health checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GoldenStats {
    pub goldens_active: u64,
    pub goldens_merged: u64,
    pub xrefs: u64,
    pub reviews_open: u64,
    pub outbox: u64,
}

/// A golden-store failure. Messages name ids and fields, never personal data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A golden id, source record or review that does not exist.
    #[error("golden store: not found: {0}")]
    NotFound(String),
    /// The request contradicts the stored state (a decided review, a merged golden id).
    #[error("golden store: conflict: {0}")]
    Conflict(String),
    /// The request or the settings are malformed.
    #[error("golden store: invalid: {0}")]
    Invalid(String),
    /// The database failed or holds something unreadable.
    #[error("golden store: {0}")]
    Db(String),
}

impl From<crate::sql::DbError> for StoreError {
    fn from(e: crate::sql::DbError) -> Self {
        StoreError::Db(e.0)
    }
}
