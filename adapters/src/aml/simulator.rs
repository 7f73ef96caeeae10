//! An in-memory AML screening provider speaking the API of [`crate::aml`], for tests (this
//! crate's, and other crates' through the `aml-simulator` feature).
//!
//! It screens against a small list of names given at construction with a deliberately
//! naive scorer — the share of name words in common, `common / max(words of the query,
//! words of the entry)` after lower-casing and splitting on anything but letters and
//! digits — and reports every entry scoring at least its threshold (0.5 unless set), best
//! query name per entry, highest score first, each with one `name` reason. It is a stand-in
//! for the provider, not a matcher.
//!
//! It checks what a real provider would: `Authorization: Bearer <key>` (`401
//! unauthorized` otherwise), a JSON body (`400 invalid_json`), and the request's shape
//! (`422 validation_failed`: unknown fields, no reference, no or blank names, an unknown
//! `type`, a birth date that is not `YYYY`, `YYYY-MM` or a real `YYYY-MM-DD`, a nationality
//! that is not two lower-case letters, an identifier without value). Error bodies are
//! `{ "error": { "code", "message" } }`.
//!
//! Faults are queued in order and consumed by `POST /v1/screen` requests before anything
//! else is looked at: [`Fault::Status`] answers that status with code `injected_fault`,
//! [`Fault::RateLimit`] answers `429` with a `Retry-After`, [`Fault::Delay`] holds the
//! answer back, [`Fault::MalformedJson`] answers `200` with a body cut off mid-way.
//! Every request to `/v1/screen` is counted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// The threshold a new simulator reports matches from.
pub const DEFAULT_MIN_SCORE: f64 = 0.5;

/// One entry of the simulator's list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimEntry {
    /// The list it is reported under ("ofac-sdn", "pep", ...).
    pub list: String,
    /// Its id in that list.
    pub entry_id: String,
    /// The name that is matched and reported.
    pub name: String,
}

impl SimEntry {
    /// An entry of `list` with this id and name.
    pub fn new(
        list: impl Into<String>,
        entry_id: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        SimEntry {
            list: list.into(),
            entry_id: entry_id.into(),
            name: name.into(),
        }
    }
}

/// A fault answering the next requests instead of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and `{"error": {"code": "injected_fault", ...}}`.
    Status(u16),
    /// Answer `429` with `Retry-After: <retry_after_secs>`.
    RateLimit {
        /// The `Retry-After` in seconds.
        retry_after_secs: u64,
    },
    /// Screen as usual, but answer only after this long.
    Delay(Duration),
    /// Answer `200` with a JSON body cut off mid-way.
    MalformedJson,
}

/// The simulator's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimulatorStats {
    /// Requests to `POST /v1/screen`, whatever the answer.
    pub requests: u64,
    /// Requests screened and answered `200`.
    pub screened: u64,
    /// Requests refused with `400`, `401` or `422`.
    pub rejected: u64,
    /// Requests answered by an injected fault (a delay included).
    pub faults_served: u64,
}

struct IndexedEntry {
    entry: SimEntry,
    tokens: Vec<String>,
}

struct Inner {
    api_key: String,
    entries: Vec<IndexedEntry>,
    min_score: f64,
    faults: VecDeque<(Fault, u32)>,
    stats: SimulatorStats,
}

impl Inner {
    /// Consumes one use of the first queued fault.
    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, left) = self.faults.front_mut()?;
        let fault = *fault;
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.faults.pop_front();
        }
        self.stats.faults_served += 1;
        Some(fault)
    }
}

/// A cheaply clonable handle on one simulated provider; every clone shares the state.
#[derive(Clone)]
pub struct AmlSimulator {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for AmlSimulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("AmlSimulator")
            .field("entries", &inner.entries.len())
            .field("min_score", &inner.min_score)
            .field("stats", &inner.stats)
            .finish_non_exhaustive()
    }
}

impl AmlSimulator {
    /// A provider that accepts `api_key` and screens against `entries`.
    pub fn new(api_key: impl Into<String>, entries: impl IntoIterator<Item = SimEntry>) -> Self {
        let entries = entries
            .into_iter()
            .map(|entry| IndexedEntry {
                tokens: tokens(&entry.name),
                entry,
            })
            .collect();
        AmlSimulator {
            inner: Arc::new(Mutex::new(Inner {
                api_key: api_key.into(),
                entries,
                min_score: DEFAULT_MIN_SCORE,
                faults: VecDeque::new(),
                stats: SimulatorStats::default(),
            })),
        }
    }

    /// Reports matches scoring at least `min_score` (clamped to 0..1).
    pub fn with_min_score(self, min_score: f64) -> Self {
        self.lock().min_score = if min_score.is_nan() {
            DEFAULT_MIN_SCORE
        } else {
            min_score.clamp(0.0, 1.0)
        };
        self
    }

    /// Answers the next `count` requests with `fault`.
    pub fn inject(&self, fault: Fault, count: u32) {
        if count > 0 {
            self.lock().faults.push_back((fault, count));
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// How many requests the queued faults will still answer.
    pub fn pending_faults(&self) -> u64 {
        self.lock().faults.iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// How many requests reached `POST /v1/screen`.
    pub fn requests(&self) -> u64 {
        self.lock().stats.requests
    }

    /// All counters at once.
    pub fn stats(&self) -> SimulatorStats {
        self.lock().stats
    }

    /// The HTTP routes of this simulator.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/screen", post(screen))
            .fallback(not_found)
            .with_state(self.clone())
    }

    /// Binds `addr` (port 0 picks a free one) and serves this simulator in a background
    /// task until the task is aborted or the runtime ends.
    pub async fn serve(
        self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "aml simulator stopped serving");
            }
        });
        Ok((local, task))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing is left half-updated by a panic under the lock that matters to a test
        // double: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn screen(State(sim): State<AmlSimulator>, headers: HeaderMap, body: Bytes) -> Response {
    let fault = {
        let mut inner = sim.lock();
        inner.stats.requests += 1;
        inner.next_fault()
    };
    match fault {
        Some(Fault::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return error(status, "injected_fault", "fault injected by the simulator");
        }
        Some(Fault::RateLimit { retry_after_secs }) => {
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return response;
        }
        Some(Fault::MalformedJson) => {
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"reference": "x", "matches": [{"list": "ofac-sdn", "entry_"#,
            )
                .into_response();
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let mut inner = sim.lock();
    let answer = authorize(&inner.api_key, &headers).and_then(|()| read_request(&body));
    let request = match answer {
        Ok(request) => request,
        Err(refusal) => {
            inner.stats.rejected += 1;
            return refusal.into_response();
        }
    };
    inner.stats.screened += 1;
    let matches = score(&inner.entries, inner.min_score, &request.subject.names);
    drop(inner);
    let body = json!({
        "reference": request.reference,
        "screened_at": chrono::Utc::now().to_rfc3339(),
        "matches": matches,
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

fn error(status: StatusCode, code: &'static str, message: &'static str) -> Response {
    Refusal {
        status,
        code,
        message,
    }
    .into_response()
}

/// An error answer, kept small until it is sent.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: &'static str,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        (self.status, axum::Json(body)).into_response()
    }
}

fn authorize(api_key: &str, headers: &HeaderMap) -> Result<(), Refusal> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented == Some(api_key) {
        Ok(())
    } else {
        Err(Refusal {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "a valid bearer api key is required",
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    reference: String,
    subject: WireSubject,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSubject {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    names: Vec<String>,
    #[serde(default)]
    birth_date: Option<String>,
    #[serde(default)]
    nationality: Option<String>,
    #[serde(default)]
    identifiers: Vec<WireIdentifier>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIdentifier {
    #[serde(rename = "type")]
    kind: String,
    value: String,
    #[serde(default)]
    country: Option<String>,
}

/// Parses and validates a request body as the provider would.
fn read_request(body: &[u8]) -> Result<WireRequest, Refusal> {
    let value: Value = serde_json::from_slice(body).map_err(|_| Refusal {
        status: StatusCode::BAD_REQUEST,
        code: "invalid_json",
        message: "the body is not json",
    })?;
    let invalid = |message: &'static str| Refusal {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "validation_failed",
        message,
    };
    let request: WireRequest = serde_json::from_value(value)
        .map_err(|_| invalid("the body does not have the request's shape"))?;
    let subject = &request.subject;
    if request.reference.trim().is_empty() {
        return Err(invalid("reference: required"));
    }
    if subject.names.is_empty() || subject.names.iter().any(|n| n.trim().is_empty()) {
        return Err(invalid("subject.names: at least one name, none blank"));
    }
    if let Some(kind) = &subject.kind
        && !matches!(
            kind.as_str(),
            "person" | "organization" | "vessel" | "aircraft"
        )
    {
        return Err(invalid("subject.type: unknown"));
    }
    if let Some(date) = &subject.birth_date
        && !iso_partial_date(date)
    {
        return Err(invalid(
            "subject.birth_date: not YYYY, YYYY-MM or YYYY-MM-DD",
        ));
    }
    let country = |c: &str| c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase());
    if let Some(nationality) = &subject.nationality
        && !country(nationality)
    {
        return Err(invalid("subject.nationality: not an iso 3166 alpha-2 code"));
    }
    for id in &subject.identifiers {
        let known = matches!(
            id.kind.as_str(),
            "inn" | "ogrn" | "passport" | "national_id" | "tax_id" | "registration" | "other"
        );
        if !known
            || id.value.trim().is_empty()
            || id.country.as_deref().is_some_and(|c| !country(c))
        {
            return Err(invalid(
                "subject.identifiers: unknown type, blank value or bad country",
            ));
        }
    }
    Ok(request)
}

fn iso_partial_date(date: &str) -> bool {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    match date.split('-').collect::<Vec<_>>().as_slice() {
        [y] => digits(y, 4),
        [y, m] => digits(y, 4) && digits(m, 2) && matches!(m.parse::<u8>(), Ok(1..=12)),
        [y, m, d] => {
            digits(y, 4)
                && digits(m, 2)
                && digits(d, 2)
                && chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_ok()
        }
        _ => false,
    }
}

/// Lower-cased words of letters and digits, each once.
fn tokens(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in name.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if !word.is_empty() && !out.contains(&word) {
            out.push(word);
        }
    }
    out
}

/// The best-scoring query name per entry, at least `min_score`, highest first.
fn score(entries: &[IndexedEntry], min_score: f64, names: &[String]) -> Vec<Value> {
    let queries: Vec<(&String, Vec<String>)> = names.iter().map(|n| (n, tokens(n))).collect();
    let mut found: Vec<(f64, usize, Value)> = Vec::new();
    for e in entries {
        // On a tie the earlier name wins: the first is the subject's main name.
        let mut best: Option<(usize, usize, &String)> = None;
        for (name, q) in &queries {
            let common = q.iter().filter(|t| e.tokens.contains(t)).count();
            let of = q.len().max(e.tokens.len());
            if common > 0 && best.is_none_or(|(c, o, _)| ratio(common, of) > ratio(c, o)) {
                best = Some((common, of, *name));
            }
        }
        let Some((common, of, query_name)) = best else {
            continue;
        };
        let score = ratio(common, of);
        if score < min_score {
            continue;
        }
        let order = found.len();
        found.push((
            score,
            order,
            json!({
                "list": e.entry.list,
                "entry_id": e.entry.entry_id,
                "score": score,
                "matched_name": e.entry.name,
                "query_name": query_name,
                "reasons": [{
                    "factor": "name",
                    "weight": score,
                    "detail": format!("{common} of {of} name words in common"),
                }],
            }),
        ));
    }
    found.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    found.into_iter().map(|(_, _, m)| m).collect()
}

fn ratio(common: usize, of: usize) -> f64 {
    // Name word counts are tiny: the conversions are exact.
    common as f64 / of.max(1) as f64
}
