//! Dead letters an operator can see, replay and discard (`hub dlq …` and `/api/dlq…`).
//!
//! A record a sink or stage cannot apply for good is published to `<prefix>.dlq` with its
//! original key and payload and headers saying why and where it came from
//! ([`FAILURE_HEADERS`]). This module reads that topic into [`DeadLetter`] views and acts on
//! them; the CLI (`cli`) and the admin API (`api`) are thin layers over [`Dlq`].
//!
//! Contract:
//! - A dead letter's id is `<partition>-<offset>` on the DLQ topic. The topic itself is never
//!   changed: what an operator did is recorded in the state store (`dlq_actions`), keyed by
//!   that id together with the letter's envelope id, so an action never attaches to another
//!   letter that later takes the same position (a DLQ topic deleted and re-created).
//! - Reading never disturbs the pipeline (see `read`): a consumer group of its own, never
//!   committed.
//! - A replay publishes the original key and payload to the letter's `origin_topic`, with
//!   the original headers minus the failure headers, plus `replayed_from=dlq:<id>`; it is
//!   recorded only after the bus acknowledged it. A crash between the two leaves the letter
//!   pending, and replaying it again is harmless: the sinks skip versions the CRM already has.
//! - Replaying a letter already replayed, or a discarded one, is refused unless forced;
//!   discarding a replayed letter is refused (the record was already sent again).
//! - Views never hold customer fields: only ids, headers, key and the payload's size. The
//!   payload itself is returned by [`Dlq::get`] for `show --payload` / `?payload=true` only.

pub mod api;
pub mod cli;
mod read;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use read::{LogEnd, STALL_TIMEOUT};

use crate::bus::embedded::EmbeddedBus;
use crate::bus::kafka::KafkaBus;
use crate::bus::{Bus, OutMessage, Record};
use crate::config::{BusKind, Config};
use crate::store::{DlqAction, Store, StoreError};
use crate::telemetry;

/// Headers the failing component adds to say why and where; a replay drops them.
pub const FAILURE_HEADERS: &[&str] = &[
    "error",
    "attempts",
    "first_failure",
    "last_failure",
    "origin_topic",
    "origin_partition",
    "origin_offset",
    "sink",
    "stage",
];

/// The header a replayed record carries: `dlq:<id>`.
pub const REPLAYED_FROM: &str = "replayed_from";

/// Longest discard reason kept.
const MAX_REASON_CHARS: usize = 2000;
/// Longest operator name kept.
const MAX_BY_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// An id that is not `<partition>-<offset>`.
    #[error("{0}")]
    BadId(String),
    /// No dead letter with this id on the topic.
    #[error("no dead letter {0}")]
    NotFound(String),
    /// A request that cannot be carried out as given (empty reason, missing bus file…).
    #[error("{0}")]
    Invalid(String),
    /// The bus failed or is unreachable.
    #[error("{0}")]
    Bus(String),
    /// The topic could not be read to its end in time.
    #[error("{0}")]
    Incomplete(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A dead letter's position on the DLQ topic, written `<partition>-<offset>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LetterId {
    pub partition: i32,
    pub offset: i64,
}

impl LetterId {
    pub fn parse(s: &str) -> Result<LetterId, DlqError> {
        let bad = || {
            DlqError::BadId(format!(
                "`{s}` is not a dead-letter id: expected <partition>-<offset>, e.g. 2-1045"
            ))
        };
        let (p, o) = s.trim().split_once('-').ok_or_else(bad)?;
        let partition: i32 = p.parse().map_err(|_| bad())?;
        let offset: i64 = o.parse().map_err(|_| bad())?;
        if partition < 0 || offset < 0 {
            return Err(bad());
        }
        Ok(LetterId { partition, offset })
    }

    fn of(r: &Record) -> LetterId {
        LetterId {
            partition: r.partition,
            offset: r.offset,
        }
    }
}

impl fmt::Display for LetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.partition, self.offset)
    }
}

/// Where a dead letter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Replayed,
    Discarded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Replayed => "replayed",
            Status::Discarded => "discarded",
        }
    }
}

/// Which letters a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusFilter {
    #[default]
    Pending,
    Replayed,
    Discarded,
    All,
}

impl StatusFilter {
    pub fn parse(s: &str) -> Option<StatusFilter> {
        match s {
            "pending" => Some(StatusFilter::Pending),
            "replayed" => Some(StatusFilter::Replayed),
            "discarded" => Some(StatusFilter::Discarded),
            "all" => Some(StatusFilter::All),
            _ => None,
        }
    }

    fn admits(self, s: Status) -> bool {
        match self {
            StatusFilter::All => true,
            StatusFilter::Pending => s == Status::Pending,
            StatusFilter::Replayed => s == Status::Replayed,
            StatusFilter::Discarded => s == Status::Discarded,
        }
    }
}

/// What was done with a letter, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionView {
    pub at: String,
    pub by: String,
    /// For a replay: the topic it went to.
    pub replayed_to: Option<String>,
    /// For a discard: why.
    pub reason: Option<String>,
}

/// A dead letter as shown to an operator: never the payload's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub status: Status,
    pub error: String,
    /// Delivery attempts before giving up (0: the record could not even be decoded).
    pub attempts: Option<u32>,
    pub first_failure: Option<String>,
    pub last_failure: Option<String>,
    pub origin_topic: Option<String>,
    pub origin_partition: Option<i32>,
    pub origin_offset: Option<i64>,
    /// The sink that gave up on it …
    pub sink: Option<String>,
    /// … or the stage (`golden`).
    pub stage: Option<String>,
    pub source: Option<String>,
    pub entity: Option<String>,
    /// The record's key (the source's id of the record, or a golden id).
    pub key: String,
    pub envelope_id: Option<String>,
    pub payload_bytes: usize,
    /// The recorded replay or discard, if any.
    pub action: Option<ActionView>,
}

impl DeadLetter {
    /// `sink:<name>` or `stage:<name>`: the component that gave up on the record.
    pub fn failed_in(&self) -> String {
        match (&self.sink, &self.stage) {
            (Some(s), _) => format!("sink:{s}"),
            (None, Some(s)) => format!("stage:{s}"),
            (None, None) => "unknown".into(),
        }
    }

    /// Whether the letter came from sink (or stage) `name`.
    pub fn from_component(&self, name: &str) -> bool {
        self.sink.as_deref() == Some(name) || self.stage.as_deref() == Some(name)
    }

    fn last_failure_time(&self) -> Option<DateTime<Utc>> {
        parse_time(self.last_failure.as_deref())
    }

    fn first_failure_time(&self) -> Option<DateTime<Utc>> {
        parse_time(self.first_failure.as_deref())
    }
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// A dead letter with everything it carries.
#[derive(Debug, Clone)]
pub struct Letter {
    pub view: DeadLetter,
    pub headers: Vec<(String, String)>,
    pub key: String,
    /// The original record: may hold personal data.
    pub payload: Vec<u8>,
}

impl Letter {
    fn of(r: Record, action: Option<DlqAction>) -> Letter {
        let h = |name: &str| r.header(name).map(str::to_string);
        let envelope_id = h("id");
        // An action recorded for another letter at this position does not count.
        let action = action.filter(|a| a.envelope_id == envelope_id.as_deref().unwrap_or(""));
        let status = match action.as_ref().map(|a| a.action.as_str()) {
            Some(REPLAYED) => Status::Replayed,
            Some(DISCARDED) => Status::Discarded,
            _ => Status::Pending,
        };
        let view = DeadLetter {
            id: LetterId::of(&r).to_string(),
            status,
            error: h("error").unwrap_or_else(|| "(no error header)".into()),
            attempts: r.header("attempts").and_then(|v| v.parse().ok()),
            first_failure: h("first_failure"),
            last_failure: h("last_failure"),
            origin_topic: h("origin_topic").filter(|t| !t.is_empty()),
            origin_partition: r.header("origin_partition").and_then(|v| v.parse().ok()),
            origin_offset: r.header("origin_offset").and_then(|v| v.parse().ok()),
            sink: h("sink"),
            stage: h("stage"),
            source: h("source"),
            entity: h("entity"),
            key: r.key.clone(),
            envelope_id,
            payload_bytes: r.payload.len(),
            action: action.map(|a| ActionView {
                at: a.at,
                by: a.by,
                replayed_to: a.replayed_to,
                reason: a.reason,
            }),
        };
        Letter {
            view,
            headers: r.headers,
            key: r.key,
            payload: r.payload,
        }
    }

    /// The record to publish again: original key, payload and headers without the failure
    /// headers, plus where it was replayed from.
    pub fn replay_message(&self) -> OutMessage {
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(k, _)| !FAILURE_HEADERS.contains(&k.as_str()) && k != REPLAYED_FROM)
            .cloned()
            .collect();
        headers.push((REPLAYED_FROM.into(), format!("dlq:{}", self.view.id)));
        OutMessage {
            key: self.key.clone(),
            headers,
            payload: self.payload.clone(),
        }
    }
}

const REPLAYED: &str = "replayed";
const DISCARDED: &str = "discarded";

/// Letters per status over the whole topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub pending: u64,
    pub replayed: u64,
    pub discarded: u64,
    /// Second copies of letters, neither listed nor replayed (see [`Copies`]).
    pub copies: u64,
}

/// Finds second copies of a letter. A sink writes a letter, then remembers that it did; a
/// hub stopped between the two writes the letter again after its restart (the topic is
/// at-least-once). A letter for the same original event, from the same component, with the
/// same disposition and the same replay origin is such a copy: readers show and replay the
/// first one only, so each failed record counts once.
#[derive(Default)]
struct Copies(std::collections::HashSet<String>);

impl Copies {
    fn is_copy(&mut self, l: &Letter) -> bool {
        let Some(envelope) = &l.view.envelope_id else {
            return false;
        };
        let header = |name: &str| {
            l.headers
                .iter()
                .find(|(k, _)| k == name)
                .map_or("", |(_, v)| v.as_str())
        };
        let key = [
            envelope.as_str(),
            &l.view.failed_in(),
            header("disposition"),
            header(REPLAYED_FROM),
        ]
        .join("\u{1f}");
        !self.0.insert(key)
    }
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Pending => self.pending += 1,
            Status::Replayed => self.replayed += 1,
            Status::Discarded => self.discarded += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.pending + self.replayed + self.discarded
    }
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only letters of this sink (or stage).
    pub sink: Option<String>,
    pub status: StatusFilter,
    /// At most this many letters, the oldest first.
    pub limit: usize,
}

/// A listing: the oldest `limit` matching letters, how many matched, and the counts of the
/// whole topic.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub dead_letters: Vec<DeadLetter>,
    pub matching: u64,
    pub counts: Counts,
}

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Only letters of this sink (or stage); others are refused.
    pub sink: Option<String>,
    /// Replay letters already replayed or discarded too.
    pub force: bool,
    /// Say what would be replayed, publish nothing, record nothing.
    pub dry_run: bool,
    /// Who replays, recorded with the action.
    pub by: String,
}

/// What happened to one letter asked to be replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ReplayOutcome {
    Replayed {
        id: String,
        to: String,
    },
    WouldReplay {
        id: String,
        to: String,
    },
    /// Not replayed again (no `force`).
    AlreadyReplayed {
        id: String,
        at: String,
        by: String,
    },
    /// Refused: the letter was discarded (no `force`).
    Discarded {
        id: String,
        at: String,
        by: String,
        reason: Option<String>,
    },
    /// Refused: the letter belongs to another sink than the one asked for.
    OtherSink {
        id: String,
        failed_in: String,
    },
    /// Refused: the letter lacks what a replay needs.
    Unreplayable {
        id: String,
        reason: String,
    },
    NotFound {
        id: String,
    },
}

impl ReplayOutcome {
    /// Whether the operator's request for this letter is satisfied (replayed now, before, or
    /// would be).
    pub fn ok(&self) -> bool {
        matches!(
            self,
            ReplayOutcome::Replayed { .. }
                | ReplayOutcome::WouldReplay { .. }
                | ReplayOutcome::AlreadyReplayed { .. }
        )
    }
}

impl fmt::Display for ReplayOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayOutcome::Replayed { id, to } => write!(f, "{id}: replayed to {to}"),
            ReplayOutcome::WouldReplay { id, to } => write!(f, "{id}: would replay to {to}"),
            ReplayOutcome::AlreadyReplayed { id, at, by } => write!(
                f,
                "{id}: already replayed at {at} by {by}; nothing done (--force replays again)"
            ),
            ReplayOutcome::Discarded { id, at, by, reason } => write!(
                f,
                "{id}: discarded at {at} by {by} ({}); not replayed (--force replays it)",
                reason.as_deref().unwrap_or("no reason")
            ),
            ReplayOutcome::OtherSink { id, failed_in } => {
                write!(
                    f,
                    "{id}: failed in {failed_in}, not the sink asked for; not replayed"
                )
            }
            ReplayOutcome::Unreplayable { id, reason } => {
                write!(f, "{id}: cannot be replayed: {reason}")
            }
            ReplayOutcome::NotFound { id } => write!(f, "{id}: no such dead letter"),
        }
    }
}

/// The result of replaying every pending letter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Replayed (or, in a dry run, would be).
    pub replayed: u64,
    /// Dead-lettered after the replay started (possibly records of this very replay that
    /// failed again): left pending for the next run, so a replay cannot chase its own tail.
    pub arrived_during: u64,
    /// Pending but lacking an `origin_topic`.
    pub unreplayable: u64,
}

/// What happened to one letter asked to be discarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DiscardOutcome {
    Discarded {
        id: String,
        at: String,
    },
    /// Nothing done: discarded before.
    AlreadyDiscarded {
        id: String,
        at: String,
        by: String,
    },
    /// Refused: the record was already sent again.
    Replayed {
        id: String,
        at: String,
        by: String,
    },
    NotFound {
        id: String,
    },
}

impl DiscardOutcome {
    pub fn ok(&self) -> bool {
        matches!(
            self,
            DiscardOutcome::Discarded { .. } | DiscardOutcome::AlreadyDiscarded { .. }
        )
    }
}

impl fmt::Display for DiscardOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscardOutcome::Discarded { id, .. } => write!(f, "{id}: discarded"),
            DiscardOutcome::AlreadyDiscarded { id, at, by } => {
                write!(f, "{id}: already discarded at {at} by {by}; nothing done")
            }
            DiscardOutcome::Replayed { id, at, by } => write!(
                f,
                "{id}: replayed at {at} by {by}; a replayed letter cannot be discarded"
            ),
            DiscardOutcome::NotFound { id } => write!(f, "{id}: no such dead letter"),
        }
    }
}

/// The dead-letter topic of one hub configuration and the record of what was done with it.
pub struct Dlq {
    bus: Arc<dyn Bus>,
    store: Arc<Store>,
    topic: String,
    end: LogEnd,
}

impl Dlq {
    pub fn new(bus: Arc<dyn Bus>, store: Arc<Store>, topic: String, end: LogEnd) -> Dlq {
        Dlq {
            bus,
            store,
            topic,
            end,
        }
    }

    /// The DLQ of `config` on an already open bus and store (the running hub's).
    pub fn for_config(bus: Arc<dyn Bus>, store: Arc<Store>, config: &Config) -> Dlq {
        let end = match (config.bus.kind, &config.bus.kafka) {
            (BusKind::Kafka, Some(k)) => LogEnd::KafkaWatermarks(k.clone()),
            _ => LogEnd::FirstEmptyPoll,
        };
        Dlq::new(bus, store, config.bus.dlq_topic(), end)
    }

    /// Opens the bus and the state store of `config` for a command-line tool, beside a hub
    /// that may be running on them. Takes no data-folder lock: both files are SQLite in WAL
    /// mode with a busy timeout, the embedded bus writes in immediate transactions, and the
    /// DLQ is read by a consumer group of its own. The embedded bus file must exist (the hub
    /// creates it); it is not created here.
    pub fn open(config: &Config) -> Result<Dlq, DlqError> {
        let bus: Arc<dyn Bus> = match config.bus.kind {
            BusKind::Embedded => {
                let path = config.bus_path();
                if !path.is_file() {
                    return Err(DlqError::Invalid(format!(
                        "no embedded bus at {}: has a hub run with this config?",
                        path.display()
                    )));
                }
                Arc::new(
                    EmbeddedBus::open(&path, config.bus.embedded.partitions).map_err(|e| {
                        DlqError::Bus(format!("cannot open {}: {e}", path.display()))
                    })?,
                )
            }
            BusKind::Kafka => {
                let k = config.bus.kafka.as_ref().ok_or_else(|| {
                    DlqError::Invalid("bus.kind is kafka but [bus.kafka] is missing".into())
                })?;
                Arc::new(
                    KafkaBus::new(k)
                        .map_err(|e| DlqError::Bus(format!("cannot create kafka client: {e}")))?,
                )
            }
        };
        let store = Store::open_for(config)?;
        Ok(Dlq::for_config(bus, Arc::new(store), config))
    }

    /// The DLQ topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Reads the whole topic; returns the oldest `limit` letters matching `q` (by first
    /// failure, then id), how many matched and the counts per status. Updates the
    /// `hub_dlq_depth` gauge.
    pub async fn list(&self, q: &ListQuery) -> Result<Listing, DlqError> {
        let mut reader = read::Reader::open(&*self.bus, &self.topic, &self.end).await?;
        let mut counts = Counts::default();
        let mut matching = 0u64;
        type Order = (Option<DateTime<Utc>>, LetterId);
        let mut kept: BTreeMap<Order, DeadLetter> = BTreeMap::new();
        let mut copies = Copies::default();
        while let Some(batch) = reader.next_batch().await? {
            for letter in self.annotate(batch).await? {
                if copies.is_copy(&letter) {
                    counts.copies += 1;
                    continue;
                }
                let v = letter.view;
                counts.add(v.status);
                if !q.status.admits(v.status)
                    || q.sink.as_deref().is_some_and(|s| !v.from_component(s))
                {
                    continue;
                }
                matching += 1;
                let id = LetterId::parse(&v.id)?;
                kept.insert((v.first_failure_time(), id), v);
                if kept.len() > q.limit {
                    kept.pop_last();
                }
            }
        }
        telemetry::dlq_depth(counts.pending);
        Ok(Listing {
            dead_letters: kept.into_values().collect(),
            matching,
            counts,
        })
    }

    /// Counts the pending letters every `every` (the first time at once), so `hub_dlq_depth`
    /// is current while nobody lists them. A failed count is logged once until one succeeds.
    pub fn spawn_depth_refresh(self: Arc<Self>, every: Duration) {
        // A router built outside a runtime (a fuzz target) serves nothing, so counts nothing.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if every.is_zero() {
            return;
        }
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let count = ListQuery {
                sink: None,
                status: StatusFilter::Pending,
                limit: 0,
            };
            let mut failing = false;
            loop {
                ticks.tick().await;
                match self.list(&count).await {
                    Ok(_) => failing = false,
                    Err(e) => {
                        if !failing {
                            tracing::warn!(topic = %self.topic, error = %e, "cannot count the dead letters for hub_dlq_depth");
                        }
                        failing = true;
                    }
                }
            }
        });
    }

    /// One letter with its headers and payload.
    pub async fn get(&self, id: LetterId) -> Result<Letter, DlqError> {
        self.find(&[id])
            .await?
            .remove(&id)
            .ok_or_else(|| DlqError::NotFound(id.to_string()))
    }

    /// Replays the letters `ids` (each once, however often given), in the order given.
    pub async fn replay(
        &self,
        ids: &[LetterId],
        opts: &ReplayOptions,
    ) -> Result<Vec<ReplayOutcome>, DlqError> {
        let by = check_by(&opts.by)?;
        let found = self.find(ids).await?;
        let mut outcomes: BTreeMap<LetterId, ReplayOutcome> = BTreeMap::new();
        let mut send = Vec::new();
        for (id, letter) in &found {
            match refusal(letter, opts) {
                Some(o) => {
                    outcomes.insert(*id, o);
                }
                None => send.push(letter),
            }
        }
        // `found` is in id order: per partition in offset order, so a key's letters (one
        // partition) are replayed in the order they failed.
        for o in self.publish(&send, opts, &by).await? {
            let id = match &o {
                ReplayOutcome::Replayed { id, .. } | ReplayOutcome::WouldReplay { id, .. } => {
                    LetterId::parse(id)?
                }
                _ => continue,
            };
            outcomes.insert(id, o);
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            out.push(
                outcomes
                    .remove(id)
                    .unwrap_or_else(|| ReplayOutcome::NotFound { id: id.to_string() }),
            );
        }
        Ok(out)
    }

    /// Replays every pending letter (of `opts.sink`, if given) that failed before this call
    /// started, batch by batch as the topic is read; `progress` gets the running count after
    /// each batch. Discarded and replayed letters are left alone (`force` is ignored).
    pub async fn replay_all_pending(
        &self,
        opts: &ReplayOptions,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<ReplaySummary, DlqError> {
        let by = check_by(&opts.by)?;
        let started = Utc::now();
        let mut summary = ReplaySummary::default();
        let mut reader = read::Reader::open(&*self.bus, &self.topic, &self.end).await?;
        let mut copies = Copies::default();
        while let Some(batch) = reader.next_batch().await? {
            let letters = self.annotate(batch).await?;
            let mut chosen = Vec::new();
            for l in &letters {
                if copies.is_copy(l) {
                    continue;
                }
                let v = &l.view;
                if v.status != Status::Pending
                    || opts.sink.as_deref().is_some_and(|s| !v.from_component(s))
                {
                    continue;
                }
                if v.origin_topic.is_none() {
                    summary.unreplayable += 1;
                    continue;
                }
                if v.last_failure_time().is_some_and(|t| t > started) {
                    summary.arrived_during += 1;
                    continue;
                }
                chosen.push(l);
            }
            if chosen.is_empty() {
                continue;
            }
            let done = self.publish(&chosen, opts, &by).await?;
            summary.replayed += done.len() as u64;
            progress(summary.replayed);
        }
        Ok(summary)
    }

    /// Discards the letters `ids` with `reason`.
    pub async fn discard(
        &self,
        ids: &[LetterId],
        reason: &str,
        by: &str,
    ) -> Result<Vec<DiscardOutcome>, DlqError> {
        let by = check_by(by)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DlqError::Invalid(
                "a discard needs a reason (--reason / \"reason\")".into(),
            ));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(DlqError::Invalid(format!(
                "the reason is longer than {MAX_REASON_CHARS} characters"
            )));
        }
        let found = self.find(ids).await?;
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            let Some(letter) = found.get(id) else {
                out.push(DiscardOutcome::NotFound { id: id.to_string() });
                continue;
            };
            out.push(self.discard_one(letter, reason, &by).await?);
        }
        Ok(out)
    }

    async fn discard_one(
        &self,
        letter: &Letter,
        reason: &str,
        by: &str,
    ) -> Result<DiscardOutcome, DlqError> {
        let v = &letter.view;
        if let Some(o) = discard_refusal(v) {
            return Ok(o);
        }
        let action = DlqAction {
            id: v.id.clone(),
            action: DISCARDED.into(),
            at: Utc::now().to_rfc3339(),
            by: by.to_string(),
            replayed_to: None,
            reason: Some(reason.to_string()),
            envelope_id: v.envelope_id.clone().unwrap_or_default(),
        };
        let store = self.store.clone();
        let a = action.clone();
        if blocking(move || store.dlq_record_discard(&a)).await? {
            telemetry::dlq_discarded(&v.id, &v.failed_in(), by);
            return Ok(DiscardOutcome::Discarded {
                id: v.id.clone(),
                at: action.at,
            });
        }
        // Someone else acted on it meanwhile (the insert only yields to an action recorded
        // for this very letter): report what they did.
        let store = self.store.clone();
        let ids = vec![v.id.clone()];
        let now = blocking(move || store.dlq_actions(&ids)).await?;
        match now.into_iter().flatten().next() {
            Some(a) if a.action == REPLAYED => Ok(DiscardOutcome::Replayed {
                id: v.id.clone(),
                at: a.at,
                by: a.by,
            }),
            Some(a) => Ok(DiscardOutcome::AlreadyDiscarded {
                id: v.id.clone(),
                at: a.at,
                by: a.by,
            }),
            None => Err(DlqError::Store(StoreError::new(format!(
                "the discard of {} was neither recorded nor preceded by another action",
                v.id
            )))),
        }
    }

    /// Publishes `letters` to their origin topics (unless a dry run) and records the replays.
    async fn publish(
        &self,
        letters: &[&Letter],
        opts: &ReplayOptions,
        by: &str,
    ) -> Result<Vec<ReplayOutcome>, DlqError> {
        let mut out = Vec::with_capacity(letters.len());
        // Per origin topic, in the letters' order.
        let mut groups: Vec<(String, Vec<&Letter>)> = Vec::new();
        for l in letters {
            let Some(to) = l.view.origin_topic.clone() else {
                continue;
            };
            match groups.iter_mut().find(|(t, _)| *t == to) {
                Some((_, g)) => g.push(l),
                None => groups.push((to, vec![l])),
            }
        }
        for (to, group) in groups {
            if opts.dry_run {
                out.extend(group.iter().map(|l| ReplayOutcome::WouldReplay {
                    id: l.view.id.clone(),
                    to: to.clone(),
                }));
                continue;
            }
            let msgs: Vec<OutMessage> = group.iter().map(|l| l.replay_message()).collect();
            self.bus
                .publish(&to, msgs)
                .await
                .map_err(|e| DlqError::Bus(format!("cannot publish to {to}: {e}")))?;
            // Durable on the bus: now the replay may be recorded.
            let at = Utc::now().to_rfc3339();
            let actions: Vec<DlqAction> = group
                .iter()
                .map(|l| DlqAction {
                    id: l.view.id.clone(),
                    action: REPLAYED.into(),
                    at: at.clone(),
                    by: by.to_string(),
                    replayed_to: Some(to.clone()),
                    reason: None,
                    envelope_id: l.view.envelope_id.clone().unwrap_or_default(),
                })
                .collect();
            let store = self.store.clone();
            blocking(move || store.dlq_record_replays(&actions)).await?;
            for l in group {
                telemetry::dlq_replayed(&l.view.id, &l.view.failed_in(), &to, by);
                out.push(ReplayOutcome::Replayed {
                    id: l.view.id.clone(),
                    to: to.clone(),
                });
            }
        }
        Ok(out)
    }

    /// The letters `ids` found on the topic; the read stops once all are found.
    async fn find(&self, ids: &[LetterId]) -> Result<BTreeMap<LetterId, Letter>, DlqError> {
        let wanted: BTreeSet<LetterId> = ids.iter().copied().collect();
        let mut found = BTreeMap::new();
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut reader = read::Reader::open(&*self.bus, &self.topic, &self.end).await?;
        while found.len() < wanted.len() {
            let Some(batch) = reader.next_batch().await? else {
                break;
            };
            let hits: Vec<Record> = batch
                .into_iter()
                .filter(|r| wanted.contains(&LetterId::of(r)))
                .collect();
            if hits.is_empty() {
                continue;
            }
            for l in self.annotate(hits).await? {
                found.insert(LetterId::parse(&l.view.id)?, l);
            }
        }
        Ok(found)
    }

    /// Letters for `records`, with their recorded actions.
    async fn annotate(&self, records: Vec<Record>) -> Result<Vec<Letter>, DlqError> {
        let ids: Vec<String> = records
            .iter()
            .map(|r| LetterId::of(r).to_string())
            .collect();
        let store = self.store.clone();
        let actions = blocking(move || store.dlq_actions(&ids)).await?;
        Ok(records
            .into_iter()
            .zip(actions)
            .map(|(r, a)| Letter::of(r, a))
            .collect())
    }
}

/// Why `letter` is not replayed under `opts`, if it is not.
fn refusal(letter: &Letter, opts: &ReplayOptions) -> Option<ReplayOutcome> {
    let v = &letter.view;
    let id = v.id.clone();
    if let Some(s) = &opts.sink
        && !v.from_component(s)
    {
        return Some(ReplayOutcome::OtherSink {
            id,
            failed_in: v.failed_in(),
        });
    }
    if v.origin_topic.is_none() {
        return Some(ReplayOutcome::Unreplayable {
            id,
            reason: "the letter has no origin_topic header".into(),
        });
    }
    if opts.force {
        return None;
    }
    match (v.status, v.action.clone()) {
        (Status::Replayed, Some(a)) => Some(ReplayOutcome::AlreadyReplayed {
            id,
            at: a.at,
            by: a.by,
        }),
        (Status::Discarded, Some(a)) => Some(ReplayOutcome::Discarded {
            id,
            at: a.at,
            by: a.by,
            reason: a.reason,
        }),
        _ => None,
    }
}

/// Why a letter in state `v` is not discarded now, if it is not.
fn discard_refusal(v: &DeadLetter) -> Option<DiscardOutcome> {
    let a = v.action.clone()?;
    match v.status {
        Status::Pending => None,
        Status::Discarded => Some(DiscardOutcome::AlreadyDiscarded {
            id: v.id.clone(),
            at: a.at,
            by: a.by,
        }),
        Status::Replayed => Some(DiscardOutcome::Replayed {
            id: v.id.clone(),
            at: a.at,
            by: a.by,
        }),
    }
}

fn check_by(by: &str) -> Result<String, DlqError> {
    let by = by.trim();
    if by.is_empty() {
        return Err(DlqError::Invalid(
            "who acts must be named (--by / \"by\")".into(),
        ));
    }
    if by.chars().count() > MAX_BY_CHARS || by.chars().any(char::is_control) {
        return Err(DlqError::Invalid(format!(
            "\"by\" must be at most {MAX_BY_CHARS} printable characters"
        )));
    }
    Ok(by.to_string())
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, DlqError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| DlqError::Store(StoreError::new(format!("store worker failed: {e}"))))?
        .map_err(DlqError::from)
}

#[cfg(test)]
mod tests;
