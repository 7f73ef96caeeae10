//! Telemetry as typed events: each function here is one thing worth logging or counting.
//! It writes the structured log line, bumps the Prometheus metric and updates the in-process
//! [`Stats`] (read by `hub demo` and `hub bench` for their summaries), so metric names live
//! in this one module. No event carries personal data: keys are source ids, never names,
//! phones or document numbers.
//!
//! Most metrics are kept by the `metrics` recorder as events happen. The gauges that describe
//! a state *now* (the oldest undelivered event, consumer lag, open cases, list ages) are
//! computed when `/metrics` is scraped ([`render`]) and appended to the recorder's output,
//! so none is a value set once and left to go stale, and a series whose subject is gone
//! (a consumer dropped, a partition revoked) simply stops being reported.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use chrono::{DateTime, Utc};

use metrics::{counter, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const SYNC_LAG: &str = "hub_sync_lag_seconds";

/// Buckets of the sync-lag histogram, in seconds.
const LAG_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once; returns its handle.
pub fn prometheus() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(SYNC_LAG.to_string()), LAG_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

/// The HELP text of every metric (the table in docs/metrics.md says the same).
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "hub_source_records_read_total",
        "Data rows read from source files."
    );
    describe_counter!(
        "hub_source_records_mapped_total",
        "Records a source mapped into canonical events, per source and entity (before publishing)."
    );
    describe_counter!(
        "hub_source_events_published_total",
        "Events the bus acknowledged, per source."
    );
    describe_counter!(
        "hub_source_records_quarantined_total",
        "Rows sent to quarantine, by the field that failed."
    );
    describe_counter!(
        "hub_source_files_total",
        "Files handled, by outcome (ingested, duplicate, failed)."
    );
    describe_counter!(
        "hub_sink_records_delivered_total",
        "Upserts the target acknowledged."
    );
    describe_counter!(
        "hub_sink_records_skipped_total",
        "Events not sent because the same or a newer version is or was delivered."
    );
    describe_counter!(
        "hub_sink_records_failed_total",
        "Deliveries that failed after their in-place retries, by kind."
    );
    describe_counter!(
        "hub_sink_records_committed_total",
        "Events whose bus offsets a sink committed."
    );
    describe_counter!(
        "hub_sink_retries_total",
        "Extra attempts spent on transient delivery errors."
    );
    describe_counter!(
        "hub_dead_letters_total",
        "Events published to the dead-letter topic."
    );
    describe_counter!(
        "hub_sink_auth_failures_total",
        "Delivery passes the target refused for bad credentials (the sink waits)."
    );
    describe_counter!(
        "hub_task_restarts_total",
        "Supervised tasks restarted after a failure."
    );
    describe_counter!(
        "hub_screening_results_total",
        "Parties screened, by result (clear, potential, confirmed)."
    );
    describe_counter!(
        "hub_compliance_alerts_total",
        "115-FZ monitoring alerts raised, by rule."
    );
    describe_counter!(
        "hub_compliance_decisions_total",
        "Compliance officers' decisions, by outcome."
    );
    metrics::describe_gauge!(
        "hub_sanctions_list_entries",
        "Entries of each loaded sanctions/PEP list."
    );
    metrics::describe_gauge!(
        "hub_sanctions_list_loaded_timestamp_seconds",
        "When each list was last loaded (Unix time); its age is time() minus this."
    );
    describe_histogram!(
        SYNC_LAG,
        metrics::Unit::Seconds,
        "Target acknowledgement time minus source event time."
    );
}

/// Counters of one hub process, for summaries.
#[derive(Default)]
pub struct Stats {
    pub rows_read: AtomicU64,
    pub events_published: AtomicU64,
    pub quarantined: AtomicU64,
    pub files_ingested: AtomicU64,
    pub files_duplicate: AtomicU64,
    pub files_failed: AtomicU64,
    pub delivered: AtomicU64,
    pub skipped: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub retries: AtomicU64,
    /// Events whose bus offsets a sink committed.
    pub committed: AtomicU64,
    /// Quarantined rows by field.
    pub quarantine_reasons: Mutex<BTreeMap<String, u64>>,
    /// Sync lag of every delivered event, in seconds.
    pub lags: Mutex<Vec<f64>>,
}

impl Stats {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Events the sinks have finished with (delivered, skipped as already applied, or
    /// dead-lettered).
    pub fn settled(&self) -> u64 {
        Self::get(&self.delivered) + Self::get(&self.skipped) + Self::get(&self.dead_lettered)
    }

    /// The `q`-quantile (0..=1) of sync lag, seconds.
    pub fn lag_quantile(&self, q: f64) -> Option<f64> {
        let mut v = self.lags.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let idx = ((v.len() - 1) as f64 * q).round() as usize;
        v.get(idx).copied()
    }
}

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub fn file_claimed(stats: &Stats, source: &str, file: &str, size: u64) {
    let _ = stats;
    tracing::info!(
        event = "file_claimed",
        source,
        file,
        size,
        "file claimed for processing"
    );
}

pub fn file_duplicate(stats: &Stats, source: &str, file: &str, sha256: &str, first_name: &str) {
    bump(&stats.files_duplicate, 1);
    counter!("hub_source_files_total", "source" => source.to_string(), "outcome" => "duplicate")
        .increment(1);
    tracing::info!(
        event = "file_duplicate",
        source,
        file,
        sha256,
        first_ingested_as = first_name,
        "file already ingested (same sha-256); nothing to do"
    );
}

pub fn file_ingested(
    stats: &Stats,
    source: &str,
    file: &str,
    rows: u64,
    events: u64,
    quarantined: u64,
) {
    bump(&stats.files_ingested, 1);
    counter!("hub_source_files_total", "source" => source.to_string(), "outcome" => "ingested")
        .increment(1);
    tracing::info!(
        event = "file_ingested",
        source,
        file,
        rows,
        events,
        quarantined,
        "file ingested and archived"
    );
}

pub fn file_failed(stats: &Stats, source: &str, file: &str, reason: &str) {
    bump(&stats.files_failed, 1);
    counter!("hub_source_files_total", "source" => source.to_string(), "outcome" => "failed")
        .increment(1);
    tracing::error!(
        event = "file_failed",
        source,
        file,
        reason,
        "file moved to failed/"
    );
}

pub fn file_progress(source: &str, file: &str, rows: u64) {
    tracing::info!(
        event = "file_progress",
        source,
        file,
        rows,
        "rows mapped so far"
    );
}

pub fn rows_read(stats: &Stats, source: &str, n: u64) {
    bump(&stats.rows_read, n);
    counter!("hub_source_records_read_total", "source" => source.to_string()).increment(n);
}

pub fn row_quarantined(
    stats: &Stats,
    source: &str,
    file: &str,
    line: u64,
    field: &str,
    reason: &str,
) {
    bump(&stats.quarantined, 1);
    if let Ok(mut m) = stats.quarantine_reasons.lock() {
        *m.entry(field.to_string()).or_default() += 1;
    }
    counter!("hub_source_records_quarantined_total", "source" => source.to_string(), "field" => field.to_string())
        .increment(1);
    tracing::debug!(
        event = "row_quarantined",
        source,
        file,
        line,
        field,
        reason,
        "row quarantined"
    );
}

pub fn events_published(stats: &Stats, source: &str, topic: &str, n: u64) {
    bump(&stats.events_published, n);
    counter!("hub_source_events_published_total", "source" => source.to_string()).increment(n);
    tracing::debug!(
        event = "events_published",
        source,
        topic,
        n,
        "bus acknowledged events"
    );
}

pub fn delivered(stats: &Stats, sink: &str, source: &str, entity: &str, lag_seconds: f64) {
    bump(&stats.delivered, 1);
    if let Ok(mut l) = stats.lags.lock() {
        l.push(lag_seconds);
    }
    counter!("hub_sink_records_delivered_total", "sink" => sink.to_string(), "source" => source.to_string(), "entity" => entity.to_string())
        .increment(1);
    histogram!(SYNC_LAG, "source" => source.to_string(), "entity" => entity.to_string())
        .record(lag_seconds);
}

pub fn skipped(stats: &Stats, sink: &str, reason: &'static str, n: u64) {
    bump(&stats.skipped, n);
    counter!("hub_sink_records_skipped_total", "sink" => sink.to_string(), "reason" => reason)
        .increment(n);
}

pub fn committed(stats: &Stats, sink: &str, n: u64) {
    bump(&stats.committed, n);
    counter!("hub_sink_records_committed_total", "sink" => sink.to_string()).increment(n);
}

pub fn retried(stats: &Stats, sink: &str, n: u64) {
    bump(&stats.retries, n);
    counter!("hub_sink_retries_total", "sink" => sink.to_string()).increment(n);
}

pub fn delivery_failed(sink: &str, key: &str, transient: bool, reason: &str) {
    let kind = if transient { "transient" } else { "permanent" };
    counter!("hub_sink_records_failed_total", "sink" => sink.to_string(), "kind" => kind)
        .increment(1);
    tracing::warn!(
        event = "delivery_failed",
        sink,
        key,
        kind,
        reason,
        "delivery failed"
    );
}

pub fn sink_credentials_rejected(sink: &str) {
    counter!("hub_sink_auth_failures_total", "sink" => sink.to_string()).increment(1);
    tracing::error!(
        event = "sink_credentials_rejected",
        sink,
        "the target rejected the hub's credentials (401/403); delivery waits until they are fixed"
    );
}

pub fn dead_lettered(stats: &Stats, sink: &str, key: &str, reason: &str) {
    bump(&stats.dead_lettered, 1);
    counter!("hub_dead_letters_total", "sink" => sink.to_string()).increment(1);
    tracing::error!(
        event = "dead_lettered",
        sink,
        key,
        reason,
        "event sent to the dead-letter topic"
    );
}

pub fn task_restarted(task: &str, reason: &str, attempt: u32) {
    counter!("hub_task_restarts_total", "task" => task.to_string()).increment(1);
    tracing::error!(
        event = "task_restarted",
        task,
        reason,
        attempt,
        "task failed; restarting"
    );
}

/// A party screened: counts only, never names.
pub fn screened(source: &str, result: &str) {
    counter!("hub_screening_results_total", "source" => source.to_string(), "result" => result.to_string())
        .increment(1);
}

pub fn alert_raised(source: &str, rule: &str) {
    counter!("hub_compliance_alerts_total", "source" => source.to_string(), "rule" => rule.to_string())
        .increment(1);
    tracing::warn!(
        event = "compliance_alert",
        source,
        rule,
        "115-FZ monitoring alert raised"
    );
}

pub fn compliance_decision(outcome: &str) {
    counter!("hub_compliance_decisions_total", "outcome" => outcome.to_string()).increment(1);
}

pub fn list_loaded(list: &str, entries: usize) {
    metrics::gauge!("hub_sanctions_list_entries", "list" => list.to_string()).set(entries as f64);
    metrics::gauge!("hub_sanctions_list_loaded_timestamp_seconds", "list" => list.to_string())
        .set(chrono::Utc::now().timestamp() as f64);
}

/// A record of a non-file source quarantined (see `pipeline::quarantine`).
pub fn record_quarantined(stats: &Stats, source: &str, location: &str, field: &str, reason: &str) {
    bump(&stats.quarantined, 1);
    if let Ok(mut m) = stats.quarantine_reasons.lock() {
        *m.entry(field.to_string()).or_default() += 1;
    }
    counter!("hub_source_records_quarantined_total", "source" => source.to_string(), "field" => field.to_string())
        .increment(1);
    tracing::warn!(
        event = "record_quarantined",
        source,
        location,
        field,
        reason,
        "record quarantined"
    );
}

/// A party matched into the golden-record store; `action` says what it did.
pub fn golden_ingested(source: &str, action: &str) {
    counter!("hub_golden_events_total", "source" => source.to_string(), "action" => action.to_string())
        .increment(1);
}

/// Golden records published to the golden topic.
pub fn golden_published(n: u64) {
    counter!("hub_golden_published_total").increment(n);
}

/// A party the golden stage cannot apply, sent to the dead-letter topic.
pub fn golden_rejected(source: &str, reason: &str) {
    counter!("hub_golden_rejected_total", "source" => source.to_string()).increment(1);
    tracing::warn!(
        event = "golden_rejected",
        source,
        reason,
        "party sent to the dead-letter topic by the golden stage"
    );
}

/// A CRM contact merged into another because their golden records merged.
pub fn crm_merged(sink: &str, applied: bool) {
    counter!("hub_sink_merges_total", "sink" => sink.to_string(), "applied" => applied.to_string())
        .increment(1);
}

/// The HELP text of the dead-letter metrics, registered once (docs/metrics.md says the same).
fn describe_dlq() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        metrics::describe_gauge!(
            "hub_dlq_depth",
            "Pending dead letters (neither replayed nor discarded), as of the last count."
        );
        metrics::describe_counter!(
            "hub_dlq_replays_total",
            "Dead letters published again to their origin topic, by where they failed."
        );
        metrics::describe_counter!(
            "hub_dlq_discards_total",
            "Dead letters an operator discarded, by where they failed."
        );
    });
}

/// Pending dead letters, counted by a listing of the whole DLQ topic.
pub fn dlq_depth(pending: u64) {
    describe_dlq();
    metrics::gauge!("hub_dlq_depth").set(pending as f64);
}

/// A dead letter published again to `to`. `failed_in` is `sink:<name>` or `stage:<name>`;
/// `by` is who asked (an operator's name, not a customer's).
pub fn dlq_replayed(id: &str, failed_in: &str, to: &str, by: &str) {
    describe_dlq();
    counter!("hub_dlq_replays_total", "failed_in" => failed_in.to_string()).increment(1);
    tracing::info!(
        event = "dlq_replayed",
        id,
        failed_in,
        to,
        by,
        "dead letter replayed"
    );
}

/// A dead letter discarded by `by` (the reason stays in the state store, not the log).
pub fn dlq_discarded(id: &str, failed_in: &str, by: &str) {
    describe_dlq();
    counter!("hub_dlq_discards_total", "failed_in" => failed_in.to_string()).increment(1);
    tracing::info!(
        event = "dlq_discarded",
        id,
        failed_in,
        by,
        "dead letter discarded"
    );
}

/// A record the CRM refused for a data conflict a person must resolve (several records with
/// one external id, a duplicate rule): parked on the dead-letter topic marked `review`.
pub fn sent_to_review(stats: &Stats, sink: &str, key: &str, reason: &str) {
    bump(&stats.dead_lettered, 1);
    counter!("hub_sink_records_review_total", "sink" => sink.to_string()).increment(1);
    tracing::warn!(
        event = "sent_to_review",
        sink,
        key,
        reason,
        "crm reported a data conflict; record parked for review"
    );
}

/// The HELP text of the delivery-resilience metrics, registered once (docs/metrics.md says
/// the same).
fn describe_delivery() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        metrics::describe_gauge!(
            "hub_sink_circuit_state",
            "Circuit breaker of a sink: 0 closed, 1 half-open (one probe), 2 open (sending nothing)."
        );
        metrics::describe_counter!(
            "hub_sink_circuit_transitions_total",
            "Circuit breaker state changes, by the state entered."
        );
        metrics::describe_counter!(
            "hub_sink_records_parked_total",
            "Records parked on the sink's retry topic after their in-place retries, by attempt."
        );
        metrics::describe_gauge!(
            "hub_sink_retry_waiting",
            "Parked records the retry task holds, waiting for their retry time."
        );
        metrics::describe_counter!(
            "hub_sink_retry_exhausted_total",
            "Parked records that failed after the last retry delay and went to the dead-letter topic."
        );
    });
}

/// The breaker's state as a gauge (0 closed, 1 half-open, 2 open), without a transition.
pub fn circuit_state(sink: &str, gauge: f64) {
    describe_delivery();
    metrics::gauge!("hub_sink_circuit_state", "sink" => sink.to_string()).set(gauge);
}

/// The breaker of `sink` entered state `to`; `open_for_secs` when it opened.
pub fn circuit_changed(sink: &str, to: &'static str, gauge: f64, open_for_secs: Option<f64>) {
    circuit_state(sink, gauge);
    counter!("hub_sink_circuit_transitions_total", "sink" => sink.to_string(), "to" => to)
        .increment(1);
    match open_for_secs {
        Some(open_for_secs) => tracing::warn!(
            event = "circuit_opened",
            sink,
            open_for_secs,
            "the crm failed as a whole; the sink sends nothing until a probe succeeds"
        ),
        None => tracing::info!(
            event = "circuit_changed",
            sink,
            to,
            "sink circuit breaker changed state"
        ),
    }
}

/// A record parked on the retry topic after its in-place retries, to be tried again at
/// `retry_at` (RFC 3339). `attempt` counts parkings of this record (1 = first).
pub fn record_parked(sink: &str, key: &str, attempt: u32, retry_at: &str, reason: &str) {
    describe_delivery();
    counter!("hub_sink_records_parked_total", "sink" => sink.to_string(), "attempt" => attempt.to_string())
        .increment(1);
    tracing::warn!(
        event = "record_parked",
        sink,
        key,
        attempt,
        retry_at,
        reason,
        "record parked on the retry topic"
    );
}

/// Parked records the retry task of `sink` holds until their retry time.
pub fn retry_waiting(sink: &str, n: usize) {
    describe_delivery();
    metrics::gauge!("hub_sink_retry_waiting", "sink" => sink.to_string()).set(n as f64);
}

/// A parked record failed after the last retry delay; it goes to the dead-letter topic
/// (counted there by [`dead_lettered`] too).
pub fn retry_exhausted(sink: &str, key: &str, attempts: u32) {
    describe_delivery();
    counter!("hub_sink_retry_exhausted_total", "sink" => sink.to_string()).increment(1);
    tracing::error!(
        event = "retry_exhausted",
        sink,
        key,
        attempts,
        "record failed after its last retry delay"
    );
}

/// A source mapped one record of `entity` into a canonical event (counted before the bus
/// acknowledged it; `hub_source_events_published_total` counts acknowledgements).
pub fn record_mapped(source: &str, entity: &str) {
    counter!("hub_source_records_mapped_total", "source" => source.to_string(), "entity" => entity.to_string())
        .increment(1);
}

/// A supervised task started: its restart counter exists (at 0) from now on, so an alert on
/// its rate has a series before the first restart.
pub fn task_supervised(task: &str) {
    counter!("hub_task_restarts_total", "task" => task.to_string()).increment(0);
}

/// A sink task started: the counters an operator alerts on exist (at 0) from now on.
pub fn sink_started(sink: &str) {
    describe_delivery();
    for name in [
        "hub_dead_letters_total",
        "hub_sink_retries_total",
        "hub_sink_auth_failures_total",
        "hub_sink_records_committed_total",
        "hub_sink_retry_exhausted_total",
        "hub_sink_records_review_total",
    ] {
        counter!(name, "sink" => sink.to_string()).increment(0);
    }
    for kind in ["transient", "permanent"] {
        counter!("hub_sink_records_failed_total", "sink" => sink.to_string(), "kind" => kind)
            .increment(0);
    }
}

// ---- Gauges computed at scrape time -------------------------------------------------------

pub const OLDEST_UNDELIVERED: &str = "hub_sink_oldest_undelivered_age_seconds";
pub const CONSUMER_LAG_MESSAGES: &str = "hub_kafka_consumer_lag_messages";
pub const CONSUMER_LAG_SECONDS: &str = "hub_kafka_consumer_lag_seconds";
pub const OPEN_CASES: &str = "hub_compliance_open_cases";
pub const LIST_INFO: &str = "hub_screening_list_info";
pub const LIST_AGE: &str = "hub_screening_list_age_seconds";

/// The scrape-time gauges with their HELP text (docs/metrics.md says the same).
const SCRAPE_GAUGES: &[(&str, &str)] = &[
    (
        OLDEST_UNDELIVERED,
        "Now minus the event time of the oldest event a sink has taken from the bus and not finished (parked for retry included); 0 when nothing is pending.",
    ),
    (
        CONSUMER_LAG_MESSAGES,
        "Messages between a consumer group's committed offset and the end of an assigned partition.",
    ),
    (
        CONSUMER_LAG_SECONDS,
        "Age of the oldest message not yet committed by a consumer group on an assigned partition; 0 when the lag is 0.",
    ),
    (
        OPEN_CASES,
        "Open compliance cases (parties held back), by status; counts only.",
    ),
    (
        LIST_INFO,
        "The version of each loaded sanctions/PEP list (always 1).",
    ),
    (
        LIST_AGE,
        "Seconds since the hub first loaded the current version of each list.",
    ),
];

/// Counts open compliance cases by status, when screening is configured.
pub type CaseCounter = Box<dyn Fn() -> anyhow::Result<Vec<(String, u64)>> + Send + Sync>;

fn case_counter() -> MutexGuard<'static, Option<CaseCounter>> {
    static COUNTER: OnceLock<Mutex<Option<CaseCounter>>> = OnceLock::new();
    COUNTER
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where the open-cases gauge counts from (set once screening is open).
pub fn count_open_cases_with(counter: CaseCounter) {
    *case_counter() = Some(counter);
}

/// Case statuses that hold a party back, always reported.
const OPEN_STATUSES: &[&str] = &["potential", "confirmed"];

/// List name → (version, when the hub first loaded that version).
type ListVersions = BTreeMap<String, (String, DateTime<Utc>)>;

fn lists() -> MutexGuard<'static, ListVersions> {
    static LISTS: OnceLock<Mutex<ListVersions>> = OnceLock::new();
    LISTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The lists in use now: name, version, and when the hub first loaded that version.
/// Replaces what was reported before (a list dropped from the config stops being reported).
pub fn screening_lists(current: impl IntoIterator<Item = (String, String, DateTime<Utc>)>) {
    let mut l = lists();
    l.clear();
    for (name, version, loaded_at) in current {
        l.insert(name, (version, loaded_at));
    }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The scrape-time gauges at `now`, in the Prometheus text format. Every family has its
/// HELP and TYPE lines even without samples.
pub fn scrape_gauges(now: DateTime<Utc>) -> String {
    let mut families: BTreeMap<&str, Vec<(String, f64)>> = BTreeMap::new();
    for (sink, age) in crate::pipeline::pending::oldest_ages(now) {
        families
            .entry(OLDEST_UNDELIVERED)
            .or_default()
            .push((format!("sink=\"{}\"", label(&sink)), age));
    }
    for s in crate::bus::lag::samples(now) {
        let labels = format!(
            "group=\"{}\",topic=\"{}\",partition=\"{}\"",
            label(&s.group),
            label(&s.topic),
            s.partition
        );
        families
            .entry(CONSUMER_LAG_MESSAGES)
            .or_default()
            .push((labels.clone(), s.lag.messages as f64));
        families
            .entry(CONSUMER_LAG_SECONDS)
            .or_default()
            .push((labels, s.lag.seconds));
    }
    if let Some(count) = case_counter().as_ref() {
        match count() {
            Ok(counts) => {
                for status in OPEN_STATUSES {
                    let n = counts
                        .iter()
                        .filter(|(s, _)| s == status)
                        .map(|(_, n)| *n)
                        .sum::<u64>();
                    families
                        .entry(OPEN_CASES)
                        .or_default()
                        .push((format!("status=\"{status}\""), n as f64));
                }
            }
            // Not reported rather than reported wrong; the scrape still answers.
            Err(e) => {
                tracing::warn!(event = "open_cases_unavailable", error = %e, "cannot count open compliance cases")
            }
        }
    }
    for (list, (version, loaded_at)) in lists().iter() {
        let list = label(list);
        families.entry(LIST_INFO).or_default().push((
            format!("list=\"{list}\",version=\"{}\"", label(version)),
            1.0,
        ));
        let age = ((now - *loaded_at).num_milliseconds() as f64 / 1000.0).max(0.0);
        families
            .entry(LIST_AGE)
            .or_default()
            .push((format!("list=\"{list}\""), age));
    }
    let mut out = String::new();
    for (name, help) in SCRAPE_GAUGES {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in families.get(name).map(Vec::as_slice).unwrap_or_default() {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        out.push('\n');
    }
    out
}

/// `/metrics`: the recorder's metrics, then the gauges computed now.
pub fn render(handle: &PrometheusHandle) -> String {
    let mut out = handle.render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&scrape_gauges(Utc::now()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_gauges_always_carry_help_and_type_and_escape_labels() {
        crate::pipeline::pending::sink_started("crm \"main\"");
        screening_lists([(
            "eu".to_string(),
            "2026-01-15".to_string(),
            Utc::now() - chrono::TimeDelta::seconds(90),
        )]);
        let text = scrape_gauges(Utc::now());
        for (name, _) in SCRAPE_GAUGES {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
            assert!(
                text.contains(&format!("# TYPE {name} gauge\n")),
                "{name}\n{text}"
            );
        }
        assert!(
            text.contains("hub_sink_oldest_undelivered_age_seconds{sink=\"crm \\\"main\\\"\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("hub_screening_list_info{list=\"eu\",version=\"2026-01-15\"} 1\n"),
            "{text}"
        );
        let age = text
            .lines()
            .find(|l| l.starts_with("hub_screening_list_age_seconds{list=\"eu\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        assert!((90.0..100.0).contains(&age), "{age}");
    }
}
