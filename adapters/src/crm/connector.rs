//! The interface a CRM sink calls to deliver contacts into a vendor CRM (Salesforce,
//! Dynamics 365 / Dataverse, Bitrix24), and what the connectors share.
//!
//! # Contract
//!
//! [`CrmConnector::write_batch`] takes any number of [`ContactWrite`]s and returns exactly one
//! [`WriteOutcome`] per input, in the same order:
//! - [`WriteOutcome::Written`]: the CRM holds the record (created or updated).
//! - [`WriteOutcome::Review`]: a data conflict a person must resolve (several CRM records
//!   carry the external id, a duplicate rule blocked the save). Not retried, not an error:
//!   trying again gives the same answer until someone merges or cleans the CRM records.
//! - [`WriteOutcome::Failed`]: with [`CrmFailure::transient`] the CRM or the network may
//!   accept it later (the sink keeps the record and tries the batch again); otherwise the
//!   record itself is wrong for this CRM (the sink dead-letters it). [`CrmFailure::auth`]
//!   marks rejected credentials: transient for the sink (the record is fine), but not retried
//!   in place, since the same token would be rejected again.
//!
//! Transient failures are retried in place before `write_batch` returns, by one loop for
//! every connector (`retry_in_place`): the schedule of `crate::transport::backoff`
//! (exponential, jittered, capped attempts), never sooner than a `Retry-After` or a CRM's
//! documented pause asks (cut to [`MAX_RETRY_AFTER`]). Each retry re-sends only the records
//! still failing transiently. Every write is an upsert keyed by the external id, so a
//! retried write is idempotent.
//!
//! A batch larger than a CRM accepts in one request is split ([`unique_chunks`]); a chunk
//! never holds the same external id twice, so two versions of one contact are never raced
//! against each other inside one CRM request (a later one goes into a later chunk).
//!
//! Field mapping: each connector takes a table canonical field path → CRM field name
//! ([`FieldMap`]); canonical fields with no entry are not sent. No message, log line or
//! `Debug` output carries a field value.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backon::Retryable;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

pub use crate::crm::rest::service::MAX_RETRY_AFTER;
use crate::crm::rest::service::error_chain;

/// One contact to upsert, as the sink hands it over.
#[derive(Clone, PartialEq)]
pub struct ContactWrite {
    /// The contact's key in the hub (source key or golden id); the CRM's external id.
    pub external_id: String,
    /// Monotonic per key; the sink's version guard uses it, the CRMs do not store it.
    pub version: i64,
    /// Name of the source the record came from.
    pub source: String,
    /// The envelope the record travelled in; named in logs instead of the record.
    pub envelope_id: String,
    /// The canonical fields (customer data): mapped through the connector's [`FieldMap`].
    pub fields: Value,
}

impl std::fmt::Debug for ContactWrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field_count = self.fields.as_object().map_or(0, Map::len);
        f.debug_struct("ContactWrite")
            .field("external_id", &self.external_id)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("envelope_id", &self.envelope_id)
            .field("fields", &format_args!("<{field_count} fields hidden>"))
            .finish()
    }
}

/// What became of one [`ContactWrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The CRM holds the record.
    Written {
        /// The CRM's own id of the contact.
        crm_id: String,
        /// Whether the write created the contact. `false` when it updated one, or when the
        /// CRM did not say (Dataverse without `return_representation`).
        created: bool,
    },
    /// A data conflict a person must resolve in the CRM; not retried.
    Review {
        /// Why, without customer data (for example which error the CRM gave).
        reason: String,
    },
    /// Not written; see [`CrmFailure::transient`].
    Failed(CrmFailure),
}

impl WriteOutcome {
    /// Whether the CRM holds the record.
    pub fn is_written(&self) -> bool {
        matches!(self, WriteOutcome::Written { .. })
    }

    /// Whether the record waits for a person.
    pub fn is_review(&self) -> bool {
        matches!(self, WriteOutcome::Review { .. })
    }

    /// The failure, when the write failed.
    pub fn failure(&self) -> Option<&CrmFailure> {
        match self {
            WriteOutcome::Failed(f) => Some(f),
            _ => None,
        }
    }
}

/// Why a write failed. The message names the CRM, status, error code and field names, never
/// a value that was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrmFailure {
    /// Whether trying again later may succeed (rate limit, lock, server trouble, network,
    /// rejected credentials); `false` for a record the CRM refuses (dead-letter it).
    pub transient: bool,
    /// The CRM refused the credentials (401, Salesforce `INVALID_SESSION_ID`, Bitrix24
    /// `expired_token`...): `transient` too, not retried in place; the sink should pause.
    pub auth: bool,
    /// The HTTP status of the answer, when the failure came with one (a per-record error
    /// inside a successful Salesforce collection or Bitrix24 batch answer has none).
    pub status: Option<u16>,
    /// The CRM's error code (`UNABLE_TO_LOCK_ROW`, `0x80072322`, `QUERY_LIMIT_EXCEEDED`...).
    pub code: Option<String>,
    /// How long the CRM asked to wait (a `Retry-After`, or the configured pause for limits
    /// that come without one).
    pub retry_after: Option<Duration>,
    /// Attempts made for this record, the first one included.
    pub attempts: u32,
    /// What failed, safe to log.
    pub message: String,
}

impl std::fmt::Display for CrmFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

impl CrmFailure {
    /// A failure that trying again may cure.
    pub fn transient(message: impl Into<String>) -> Self {
        CrmFailure {
            transient: true,
            auth: false,
            status: None,
            code: None,
            retry_after: None,
            attempts: 1,
            message: message.into(),
        }
    }

    /// A failure of the record itself.
    pub fn permanent(message: impl Into<String>) -> Self {
        CrmFailure {
            transient: false,
            ..CrmFailure::transient(message)
        }
    }

    /// Rejected credentials.
    pub fn auth(message: impl Into<String>) -> Self {
        CrmFailure {
            auth: true,
            ..CrmFailure::transient(message)
        }
    }

    /// With the HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With the CRM's error code.
    pub fn with_code(mut self, code: Option<String>) -> Self {
        self.code = code;
        self
    }

    /// With the wait the CRM asked for.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Whether the in-place retry loop tries this record again.
    fn retried_in_place(&self) -> bool {
        self.transient && !self.auth
    }
}

/// How a CRM sink delivers contacts. See the module documentation for the contract.
#[async_trait]
pub trait CrmConnector: Send + Sync {
    /// `"salesforce"`, `"dynamics"` or `"bitrix24"`.
    fn name(&self) -> &'static str;
    /// How many records one CRM request carries at most (a larger batch is split).
    fn max_batch(&self) -> usize;
    /// One outcome per input, same order. Retries transient failures in place (capped,
    /// backoff + jitter, Retry-After) before giving up on them.
    async fn write_batch(&self, batch: &[ContactWrite]) -> Vec<WriteOutcome>;
}

/// A connector could not be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConnectorError {
    /// A configuration value the connector cannot work with.
    #[error("invalid {crm} connector config: field {field}: {reason}")]
    Config {
        /// `salesforce`, `dynamics` or `bitrix24`.
        crm: &'static str,
        /// The config field (a `fields` entry is named `fields.<canonical path>`).
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the {crm} http client: {reason}")]
    Client {
        /// `salesforce`, `dynamics` or `bitrix24`.
        crm: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl ConnectorError {
    pub(crate) fn config(
        crm: &'static str,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ConnectorError::Config {
            crm,
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Timeouts and in-place retries of a connector (the `[retry]` table of its config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Timeout of one request (connect, send, answer), in milliseconds. Default 30000
    /// (a collection of 200 records may take the CRM seconds).
    pub timeout_ms: u64,
    /// Attempts per record, the first one included. Default 6.
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with every retry and gets
    /// a random jitter. Default 500.
    pub initial_backoff_ms: u64,
    /// Upper bound of the doubling delay, in milliseconds (before jitter). Default 30000.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            timeout_ms: 30_000,
            max_attempts: 6,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
        }
    }
}

impl RetryPolicy {
    /// Checks the values the retry loop relies on.
    pub fn validate(&self, crm: &'static str) -> Result<(), ConnectorError> {
        if self.timeout_ms == 0 {
            return Err(ConnectorError::config(
                crm,
                "retry.timeout_ms",
                "must be greater than zero",
            ));
        }
        if self.max_attempts == 0 {
            return Err(ConnectorError::config(
                crm,
                "retry.max_attempts",
                "must be at least 1",
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(ConnectorError::config(
                crm,
                "retry.max_backoff_ms",
                "must not be smaller than retry.initial_backoff_ms",
            ));
        }
        Ok(())
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// One step of a canonical field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Canonical field path → CRM field name, in a stable order.
///
/// A path is a field name, optionally followed by `.name` (a field of an object) and `[n]`
/// (the n-th element of a list, from 0): `last_name`, `phones[0]`, `addresses[0].text`.
/// Names are ASCII letters, digits and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    entries: Vec<(String, Vec<Step>, String)>,
}

impl FieldMap {
    /// Builds the map from a config table; errors name the entry (`fields.<path>`).
    pub fn new(
        crm: &'static str,
        table: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let mut entries = Vec::with_capacity(table.len());
        let mut targets = HashSet::new();
        for (path, target) in table {
            let field = format!("fields.{path}");
            let steps =
                parse_path(path).map_err(|reason| ConnectorError::config(crm, &field, reason))?;
            if !is_identifier(target) {
                return Err(ConnectorError::config(
                    crm,
                    &field,
                    "the crm field name must be ascii letters, digits and _",
                ));
            }
            if !targets.insert(target.clone()) {
                return Err(ConnectorError::config(
                    crm,
                    &field,
                    format!("crm field {target} is the target of more than one entry"),
                ));
            }
            entries.push((path.clone(), steps, target.clone()));
        }
        if entries.is_empty() {
            return Err(ConnectorError::config(crm, "fields", "maps no field"));
        }
        Ok(FieldMap { entries })
    }

    /// The map of built-in pairs (a connector's defaults).
    pub(crate) fn defaults(crm: &'static str, pairs: &[(&str, &str)]) -> Self {
        let table: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        match FieldMap::new(crm, &table) {
            Ok(map) => map,
            // The built-in tables are constants checked by the connectors' tests.
            Err(_) => FieldMap {
                entries: Vec::new(),
            },
        }
    }

    /// The CRM field names, in entry order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, _, t)| t.as_str())
    }

    /// Whether `crm_field` is a target.
    pub fn has_target(&self, crm_field: &str) -> bool {
        self.targets().any(|t| t == crm_field)
    }

    /// The CRM fields of a record. A path the record does not have (or holds `null`) is
    /// left out, or sent as `null` with `clear_missing` (so the CRM clears the field).
    pub fn apply(&self, fields: &Value, clear_missing: bool) -> Map<String, Value> {
        let mut out = Map::new();
        for (_, steps, target) in &self.entries {
            match lookup(fields, steps) {
                Some(v) if !v.is_null() => {
                    out.insert(target.clone(), v.clone());
                }
                _ if clear_missing => {
                    out.insert(target.clone(), Value::Null);
                }
                _ => {}
            }
        }
        out
    }
}

fn lookup<'a>(value: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let mut at = value;
    for step in steps {
        at = match step {
            Step::Key(k) => at.as_object()?.get(k)?,
            Step::Index(i) => at.as_array()?.get(*i)?,
        };
    }
    Some(at)
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let bytes = path.as_bytes();
    let mut i = 0;
    let mut expect_name = true;
    while i < bytes.len() {
        if expect_name {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if i == start {
                return Err(format!("expected a field name at byte {start} of the path"));
            }
            steps.push(Step::Key(path[start..i].to_owned()));
            expect_name = false;
            continue;
        }
        match bytes[i] {
            b'.' => {
                i += 1;
                expect_name = true;
            }
            b'[' => {
                let start = i + 1;
                let Some(len) = path[start..].find(']') else {
                    return Err(format!("unclosed [ at byte {i} of the path"));
                };
                let index = path[start..start + len]
                    .parse::<usize>()
                    .map_err(|_| format!("list index at byte {start} is not a number"))?;
                steps.push(Step::Index(index));
                i = start + len + 1;
            }
            other => {
                return Err(format!(
                    "unexpected character {:?} at byte {i} of the path",
                    char::from(other)
                ));
            }
        }
    }
    if expect_name {
        return Err("the path is empty or ends with a dot".to_owned());
    }
    Ok(steps)
}

/// ASCII letters, digits and `_`, not empty: what CRM API names are made of.
pub(crate) fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits a batch (given by its external ids) into chunks of at most `max` records, in
/// order, with no external id twice in one chunk (a repeated one starts the next chunk).
/// Positions in the batch.
pub fn unique_chunks<'a>(
    external_ids: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut chunks = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut keys: HashSet<&str> = HashSet::new();
    for (i, key) in external_ids.into_iter().enumerate() {
        if current.len() == max || keys.contains(key) {
            chunks.push(std::mem::take(&mut current));
            keys.clear();
        }
        keys.insert(key);
        current.push(i);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The records of one attempt that are still failing transiently, and the longest wait the
/// CRM asked for among them.
#[derive(Debug)]
struct StillFailing {
    count: usize,
    retry_after: Option<Duration>,
}

/// Writes `batch` in chunks of at most `max` records with no external id twice in a chunk
/// (a repeated key waits for the chunk after), each chunk through [`retry_in_place`] with
/// `send`. A record without an external id fails permanently without a request. One
/// outcome per input, in order: what every connector's `write_batch` does around its own
/// request.
pub(crate) async fn write_chunked<'a, F, Fut>(
    crm: &'static str,
    policy: &RetryPolicy,
    max: usize,
    batch: &'a [ContactWrite],
    send: F,
) -> Vec<WriteOutcome>
where
    F: Fn(Vec<&'a ContactWrite>) -> Fut + Sync,
    Fut: Future<Output = Vec<WriteOutcome>> + Send,
{
    let mut out: Vec<Option<WriteOutcome>> = vec![None; batch.len()];
    let mut sendable = Vec::with_capacity(batch.len());
    for (i, w) in batch.iter().enumerate() {
        if w.external_id.is_empty() {
            out[i] = Some(WriteOutcome::Failed(CrmFailure::permanent(format!(
                "{crm}: the external id is empty"
            ))));
        } else {
            sendable.push(i);
        }
    }
    let writes: Vec<&'a ContactWrite> = sendable.iter().map(|&i| &batch[i]).collect();
    let keys = writes.iter().map(|w| w.external_id.as_str());
    for chunk in unique_chunks(keys, max) {
        let chunk_writes: Vec<&'a ContactWrite> = chunk.iter().map(|&j| writes[j]).collect();
        let outcomes = retry_in_place(crm, policy, chunk_writes.len(), |todo| {
            send(todo.iter().map(|&k| chunk_writes[k]).collect())
        })
        .await;
        for (&j, outcome) in chunk.iter().zip(outcomes) {
            out[sendable[j]] = Some(outcome);
        }
    }
    out.into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                WriteOutcome::Failed(CrmFailure::transient(format!(
                    "{crm}: record not attempted"
                )))
            })
        })
        .collect()
}

/// The one in-place retry loop of the connectors.
///
/// `attempt` gets the positions (into a batch of `len` records) still to be written and
/// returns one outcome per position, in the same order. Records failing transiently (auth
/// excepted) are given to the next attempt, after the backoff of `policy`, never sooner than
/// the longest `retry_after` among them asks (cut to [`MAX_RETRY_AFTER`]), until
/// `policy.max_attempts` attempts were made. Returns one outcome per record, failures
/// carrying the attempts made for them.
pub(crate) async fn retry_in_place<F, Fut>(
    crm: &'static str,
    policy: &RetryPolicy,
    len: usize,
    attempt: F,
) -> Vec<WriteOutcome>
where
    F: Fn(Vec<usize>) -> Fut + Sync,
    Fut: Future<Output = Vec<WriteOutcome>> + Send,
{
    let outcomes: Mutex<Vec<Option<(WriteOutcome, u32)>>> = Mutex::new(vec![None; len]);
    let pending: Mutex<Vec<usize>> = Mutex::new((0..len).collect());
    let attempts = AtomicU32::new(0);
    let (outcomes_ref, pending_ref, attempts_ref, attempt_ref) =
        (&outcomes, &pending, &attempts, &attempt);
    let run = || async move {
        let todo = lock(pending_ref).clone();
        let made = attempts_ref.fetch_add(1, Ordering::Relaxed) + 1;
        let results = attempt_ref(todo.clone()).await;
        let mut still = Vec::new();
        let mut wait: Option<Duration> = None;
        {
            let mut slots = lock(outcomes_ref);
            let mut results = results.into_iter();
            for &i in &todo {
                let outcome = results.next().unwrap_or_else(|| {
                    WriteOutcome::Failed(CrmFailure::permanent(format!(
                        "{crm}: the connector returned fewer outcomes than records"
                    )))
                });
                if let WriteOutcome::Failed(f) = &outcome
                    && f.retried_in_place()
                {
                    still.push(i);
                    wait = wait.max(f.retry_after);
                }
                if let Some(slot) = slots.get_mut(i) {
                    *slot = Some((outcome, made));
                }
            }
        }
        let count = still.len();
        *lock(pending_ref) = still;
        if count == 0 {
            Ok(())
        } else {
            Err(StillFailing {
                count,
                retry_after: wait,
            })
        }
    };
    let backoff = crate::transport::backoff(
        Duration::from_millis(policy.initial_backoff_ms),
        Duration::from_millis(policy.max_backoff_ms),
        policy.max_attempts,
    );
    let result = run
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(|_| true)
        .adjust(|err: &StillFailing, next| {
            next.map(|delay| match err.retry_after {
                Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
                None => delay,
            })
        })
        .notify(|err: &StillFailing, delay| {
            tracing::warn!(
                crm,
                records = err.count,
                of = len,
                attempt = attempts.load(Ordering::Relaxed),
                max_attempts = policy.max_attempts,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "crm write failed transiently, retrying"
            );
        })
        .await;
    if let Err(err) = result {
        tracing::warn!(
            crm,
            records = err.count,
            of = len,
            attempts = attempts.load(Ordering::Relaxed),
            "crm write gave up retrying in place"
        );
    }
    let slots = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    slots
        .into_iter()
        .map(|slot| match slot {
            Some((WriteOutcome::Failed(mut f), made)) => {
                f.attempts = made;
                WriteOutcome::Failed(f)
            }
            Some((outcome, _)) => outcome,
            None => WriteOutcome::Failed(CrmFailure::transient(format!(
                "{crm}: the record was not attempted"
            ))),
        })
        .collect()
}

/// A mutex whose holder panicked still holds usable data here (plain vectors).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The HTTP client of a connector: rustls with ring, the policy's timeout, the endpoint's
/// CA bundle and client certificate.
pub(crate) fn http_client(
    crm: &'static str,
    policy: &RetryPolicy,
    tls: &crate::tls::ClientTls,
) -> Result<reqwest::Client, ConnectorError> {
    // Installing fails harmlessly when a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .timeout(policy.timeout())
        .connect_timeout(policy.timeout())
        .user_agent(concat!("integration-hub/", env!("CARGO_PKG_VERSION")));
    tls.apply(builder)
        .map_err(|e| ConnectorError::Client {
            crm,
            reason: e.to_string(),
        })?
        .build()
        .map_err(|e| ConnectorError::Client {
            crm,
            reason: error_chain(&e),
        })
}

/// A request that got no HTTP answer: transient (the write is an idempotent upsert).
pub(crate) fn transport_failure(
    crm: &'static str,
    e: reqwest::Error,
    timeout_ms: u64,
) -> CrmFailure {
    use crate::transport::Failure;
    match crate::transport::classify(e) {
        Failure::Timeout => {
            CrmFailure::transient(format!("{crm} did not answer within {timeout_ms} ms"))
        }
        Failure::Connect(reason) => {
            CrmFailure::transient(format!("cannot connect to {crm}: {reason}"))
        }
        Failure::Transport(reason) => {
            CrmFailure::transient(format!("{crm} request failed: {reason}"))
        }
        // The request itself could not be built: the same record would fail again.
        Failure::Request(reason) => {
            CrmFailure::permanent(format!("cannot build the {crm} request: {reason}"))
        }
    }
}

/// A bearer `Authorization` header value, marked sensitive.
pub(crate) fn bearer(
    crm: &'static str,
    field: &str,
    token: &str,
) -> Result<reqwest::header::HeaderValue, ConnectorError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ConnectorError::config(
            crm,
            field,
            "must be visible ASCII without spaces (it goes into a header)",
        ));
    }
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| ConnectorError::config(crm, field, "cannot be put into a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Checks an `http://` or `https://` base URL without query or fragment.
pub(crate) fn check_base_url(
    crm: &'static str,
    field: &str,
    url: &str,
) -> Result<reqwest::Url, ConnectorError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConnectorError::config(crm, field, format!("not a url: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConnectorError::config(
            crm,
            field,
            "must start with http:// or https://",
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(ConnectorError::config(
            crm,
            field,
            "must not have a query or a fragment",
        ));
    }
    if parsed.cannot_be_a_base() || parsed.host().is_none() {
        return Err(ConnectorError::config(crm, field, "must name a host"));
    }
    Ok(parsed)
}

/// Runs `f` over `items` with at most `limit` running at once, results in input order.
/// The futures are polled on this task (no spawning), so they may borrow; each wake polls
/// only the running ones.
pub(crate) async fn bounded_in_order<T, R, F, Fut>(items: Vec<T>, limit: usize, f: F) -> Vec<R>
where
    F: Fn(T) -> Fut,
    Fut: Future<Output = R>,
{
    use std::pin::Pin;
    use std::task::Poll;

    let limit = limit.max(1);
    let total = items.len();
    let mut queue = items.into_iter().enumerate();
    let mut running: Vec<(usize, Pin<Box<Fut>>)> = Vec::with_capacity(limit.min(total));
    let mut results: Vec<Option<R>> = Vec::with_capacity(total);
    results.resize_with(total, || None);
    std::future::poll_fn(|cx| {
        loop {
            while running.len() < limit {
                let Some((i, item)) = queue.next() else { break };
                running.push((i, Box::pin(f(item))));
            }
            let before = running.len();
            running.retain_mut(|(i, fut)| match fut.as_mut().poll(cx) {
                Poll::Ready(out) => {
                    if let Some(slot) = results.get_mut(*i) {
                        *slot = Some(out);
                    }
                    false
                }
                Poll::Pending => true,
            });
            if running.is_empty() && queue.len() == 0 {
                return Poll::Ready(());
            }
            // Nothing finished: every running future has registered its waker.
            if running.len() == before {
                return Poll::Pending;
            }
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(id: &str) -> ContactWrite {
        ContactWrite {
            external_id: id.to_owned(),
            version: 1,
            source: "s".to_owned(),
            envelope_id: format!("env-{id}"),
            fields: serde_json::json!({ "last_name": "Secret" }),
        }
    }

    #[test]
    fn debug_hides_fields() {
        let text = format!("{:?}", write("G1"));
        assert!(!text.contains("Secret"), "{text}");
        assert!(text.contains("<1 fields hidden>"), "{text}");
    }

    #[test]
    fn field_paths_parse_and_apply() {
        let table: BTreeMap<String, String> = [
            ("last_name", "LastName"),
            ("phones[0]", "Phone"),
            ("phones[1]", "MobilePhone"),
            ("addresses[0].text", "MailingStreet"),
            ("segment", "Segment__c"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let map = FieldMap::new("salesforce", &table).unwrap();
        let fields = serde_json::json!({
            "last_name": "Ivanov",
            "phones": ["+7900"],
            "addresses": [{ "kind": "primary", "text": "Moscow" }],
            "segment": null,
        });
        let out = map.apply(&fields, false);
        assert_eq!(
            Value::Object(out),
            serde_json::json!({ "LastName": "Ivanov", "Phone": "+7900", "MailingStreet": "Moscow" })
        );
        let out = map.apply(&fields, true);
        assert_eq!(out.get("MobilePhone"), Some(&Value::Null));
        assert_eq!(out.get("Segment__c"), Some(&Value::Null));
    }

    #[test]
    fn bad_field_entries_are_named() {
        for (path, target, expect) in [
            ("phones[", "Phone", "unclosed ["),
            ("phones[x]", "Phone", "not a number"),
            ("a..b", "X", "expected a field name"),
            ("a.", "X", "ends with a dot"),
            ("a b", "X", "unexpected character"),
            ("a", "Bad-Name", "ascii letters"),
        ] {
            let table = BTreeMap::from([(path.to_owned(), target.to_owned())]);
            let err = FieldMap::new("dynamics", &table).unwrap_err().to_string();
            assert!(err.contains(&format!("fields.{path}")), "{err}");
            assert!(err.contains(expect), "{path}: {err}");
        }
        let table = BTreeMap::from([
            ("a".to_owned(), "X".to_owned()),
            ("b".to_owned(), "X".to_owned()),
        ]);
        let err = FieldMap::new("dynamics", &table).unwrap_err().to_string();
        assert!(err.contains("more than one entry"), "{err}");
        let err = FieldMap::new("dynamics", &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("maps no field"), "{err}");
    }

    #[test]
    fn chunks_respect_size_and_never_repeat_a_key() {
        let keys = ["a", "b", "c", "a", "d", "e", "f"];
        assert_eq!(
            unique_chunks(keys, 3),
            vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]
        );
        assert_eq!(
            unique_chunks(keys, 10),
            vec![vec![0, 1, 2], vec![3, 4, 5, 6]]
        );
        assert!(unique_chunks([], 10).is_empty());
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            timeout_ms: 1000,
            max_attempts: 4,
            initial_backoff_ms: 1,
            max_backoff_ms: 5,
        }
    }

    #[tokio::test]
    async fn retries_only_transient_records_and_counts_attempts() {
        let calls = Mutex::new(Vec::new());
        let out = retry_in_place("test", &fast(), 4, |todo: Vec<usize>| {
            lock(&calls).push(todo.clone());
            let round = lock(&calls).len();
            async move {
                todo.iter()
                    .map(|&i| match (i, round) {
                        (0, _) => WriteOutcome::Written {
                            crm_id: "x".into(),
                            created: true,
                        },
                        (1, r) if r < 3 => WriteOutcome::Failed(CrmFailure::transient("lock")),
                        (1, _) => WriteOutcome::Written {
                            crm_id: "y".into(),
                            created: false,
                        },
                        (2, _) => WriteOutcome::Failed(CrmFailure::permanent("bad")),
                        _ => WriteOutcome::Failed(CrmFailure::auth("token")),
                    })
                    .collect()
            }
        })
        .await;
        assert_eq!(
            *lock(&calls),
            vec![vec![0, 1, 2, 3], vec![1], vec![1]],
            "only the transient record is tried again; auth is not"
        );
        assert!(out[0].is_written() && out[1].is_written());
        assert_eq!(
            out[2].failure().map(|f| (f.transient, f.attempts)),
            Some((false, 1))
        );
        assert_eq!(
            out[3].failure().map(|f| (f.auth, f.transient, f.attempts)),
            Some((true, true, 1))
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_and_honours_retry_after() {
        let started = std::time::Instant::now();
        let out = retry_in_place("test", &fast(), 1, |todo: Vec<usize>| async move {
            todo.iter()
                .map(|_| {
                    WriteOutcome::Failed(
                        CrmFailure::transient("busy")
                            .with_retry_after(Some(Duration::from_millis(100))),
                    )
                })
                .collect()
        })
        .await;
        let f = out[0].failure().cloned().unwrap();
        assert!(f.transient);
        assert_eq!(f.attempts, 4);
        assert!(f.to_string().contains("after 4 attempts"), "{f}");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "three waits of at least the asked 100 ms"
        );
    }

    #[tokio::test]
    async fn bounded_in_order_keeps_order_and_limit() {
        use std::sync::atomic::AtomicUsize;
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = bounded_in_order((0..20u64).collect(), 3, |i| {
            let (running, peak) = (&running, &peak);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20 - i)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                i * 2
            }
        })
        .await;
        assert_eq!(out, (0..20u64).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }
}
