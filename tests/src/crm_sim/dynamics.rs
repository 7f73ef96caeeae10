//! A simulated Dataverse environment: the Web API upsert of a contact by alternate key.
//!
//! - `PATCH /api/data/{v}/contacts(hub_goldenid='G1')` (the key quoted, a quote inside
//!   doubled): creates the row when the key is new, updates it otherwise. With
//!   `Prefer: return=representation`: `201` (created) or `200` (updated) with the row (only
//!   the `$select`ed columns); without: `204` and `OData-EntityId: .../contacts(<guid>)`.
//!   `If-Match: *` refuses to create (`404`), `If-None-Match: *` to update (`412`).
//!
//! Errors are `{"error": {"code", "message"}}`: `401` for a wrong token; service
//! protection `429` with `Retry-After` (seconds) and code `0x80072322` once
//! [`DynamicsSim::set_request_limit`] requests arrived within its sliding window, or
//! `0x80072326` above the concurrent request limit (52); `400 0x0` for a column the table
//! lacks; `400 0x80044331` for a value longer than the column; `400 0x80040265` for a new
//! contact without `lastname` (what an environment's plug-in enforcing it answers);
//! `500 0x80040333` when duplicate detection is on for the request
//! (`MSCRM.SuppressDuplicateDetection: false`) and another contact has the same
//! `emailaddress1` (Dataverse's default contact rule); injected statuses, for every request
//! ([`DynamicsSim::inject`]) or for one key ([`DynamicsSim::fail_key`], e.g. `412`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::patch;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::{Fault, Faults, chars, serve};

/// The entity set the simulator holds.
pub const ENTITY_SET: &str = "contacts";
/// The alternate key column.
pub const KEY_FIELD: &str = "hub_goldenid";
/// The primary key column.
pub const ID_FIELD: &str = "contactid";
/// Dataverse's concurrent request limit per user.
pub const MAX_CONCURRENT: usize = 52;
/// Requests already on their way when a `429` was answered are not held against the client.
pub const SEND_GRACE: Duration = Duration::from_millis(200);

/// Columns and their maximum lengths (characters); `birthdate` is a date.
const COLUMNS: &[(&str, usize)] = &[
    ("lastname", 50),
    ("firstname", 50),
    ("middlename", 50),
    ("birthdate", 10),
    ("telephone1", 50),
    ("mobilephone", 50),
    ("emailaddress1", 100),
    ("address1_line1", 250),
    ("address1_postalcode", 20),
    (KEY_FIELD, 100),
];

/// Counters for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DynamicsStats {
    /// Every HTTP request.
    pub requests: u64,
    /// Rows created.
    pub created: u64,
    /// Rows updated.
    pub updated: u64,
    /// Requests refused for their content (4xx other than 401/429, and duplicates).
    pub rejected: u64,
    /// `429` answers (service protection).
    pub throttled: u64,
    /// Requests that arrived more than [`SEND_GRACE`] after a `429` and before its
    /// `Retry-After` ran out: sent by a client that knew it should wait.
    pub early_after_throttle: u64,
    /// `0x80040333` answers.
    pub duplicates: u64,
    /// Requests answered by an injected fault.
    pub faults_served: u64,
    /// Requests without `OData-Version: 4.0` and `OData-MaxVersion: 4.0`.
    pub without_odata_headers: u64,
    /// The most requests in flight at once.
    pub peak_concurrency: u64,
}

struct Row {
    id: String,
    columns: Map<String, Value>,
}

struct Inner {
    token: String,
    rows: HashMap<String, Row>,
    next_id: u64,
    limit: Option<(usize, Duration)>,
    window: VecDeque<Instant>,
    /// When the last `429` was answered, and until when it asked the client to wait.
    blocked: Option<(Instant, Instant)>,
    in_flight: usize,
    latency: Duration,
    faults: Faults,
    key_faults: HashMap<String, VecDeque<u16>>,
    stats: DynamicsStats,
}

/// A handle on one simulated environment; clones share it.
#[derive(Clone)]
pub struct DynamicsSim {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for DynamicsSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("DynamicsSim")
            .field("rows", &i.rows.len())
            .field("stats", &i.stats)
            .finish_non_exhaustive()
    }
}

fn odata_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            "application/json; odata.metadata=minimal",
        )],
        json!({ "error": { "code": code, "message": message } }).to_string(),
    )
        .into_response()
}

/// Decrements the in-flight count when a request ends, however it ends.
struct InFlight(DynamicsSim);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut i = self.0.lock();
        i.in_flight = i.in_flight.saturating_sub(1);
    }
}

impl DynamicsSim {
    /// An empty environment accepting `token`, without a request limit.
    pub fn new(token: impl Into<String>) -> Self {
        DynamicsSim {
            inner: Arc::new(Mutex::new(Inner {
                token: token.into(),
                rows: HashMap::new(),
                next_id: 1,
                limit: None,
                window: VecDeque::new(),
                blocked: None,
                in_flight: 0,
                latency: Duration::ZERO,
                faults: Faults::default(),
                key_faults: HashMap::new(),
                stats: DynamicsStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Service protection: at most `requests` per sliding `window` (Dataverse: 6,000 per
    /// 5 minutes per user); `None` for no limit.
    pub fn set_request_limit(&self, limit: Option<(usize, Duration)>) {
        let mut i = self.lock();
        i.limit = limit;
        i.window.clear();
    }

    /// Holds every request this long before answering.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The next `count` requests get `fault`.
    pub fn inject(&self, fault: Fault, count: u32) {
        self.lock().faults.push(fault, count);
    }

    /// Faults still queued.
    pub fn pending_faults(&self) -> u64 {
        self.lock().faults.pending()
    }

    /// The next `times` upserts of `key` are answered with `status` (nothing written).
    pub fn fail_key(&self, key: &str, status: u16, times: usize) {
        let mut i = self.lock();
        i.key_faults
            .entry(key.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(status, times));
    }

    /// Puts a row in the environment directly (no request counted).
    pub fn seed(&self, key: &str, columns: Value) -> String {
        let mut i = self.lock();
        let columns = columns.as_object().cloned().unwrap_or_default();
        i.insert(key, columns)
    }

    /// The columns of the row with this key.
    pub fn row(&self, key: &str) -> Option<Map<String, Value>> {
        self.lock().rows.get(key).map(|r| r.columns.clone())
    }

    /// The id of the row with this key.
    pub fn id_of(&self, key: &str) -> Option<String> {
        self.lock().rows.get(key).map(|r| r.id.clone())
    }

    /// Rows in the environment.
    pub fn len(&self) -> usize {
        self.lock().rows.len()
    }

    /// Whether the environment holds no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> DynamicsStats {
        self.lock().stats
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/data/{version}/{target}", patch(upsert))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in a background task.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        serve(self.router(), addr).await
    }

    /// Latency, token, service protection and injected faults; the in-flight guard and how
    /// long to hold the real answer, or the answer.
    async fn admit(&self, headers: &HeaderMap) -> Result<(InFlight, Duration), Response> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fault = {
            let mut i = self.lock();
            i.stats.requests += 1;
            let odata = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()) == Some("4.0");
            if !(odata("OData-Version") && odata("OData-MaxVersion")) {
                i.stats.without_odata_headers += 1;
            }
            let expected = format!("Bearer {}", i.token);
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                != Some(&expected)
            {
                return Err(odata_error(
                    StatusCode::UNAUTHORIZED,
                    "0x80040220",
                    "The user is not authenticated",
                ));
            }
            let now = Instant::now();
            if i.blocked
                .is_some_and(|(at, until)| now > at + SEND_GRACE && now < until)
            {
                i.stats.early_after_throttle += 1;
            }
            if let Some((max, window)) = i.limit {
                while i
                    .window
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= window)
                {
                    i.window.pop_front();
                }
                if i.window.len() >= max {
                    let oldest = i.window.front().copied().unwrap_or(now);
                    let wait = (oldest + window).saturating_duration_since(now);
                    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
                    i.blocked = Some((now, now + Duration::from_secs(secs)));
                    i.stats.throttled += 1;
                    let mut r = odata_error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "0x80072322",
                        &format!(
                            "Number of requests exceeded the limit of {max} over time window of {} seconds.",
                            window.as_secs()
                        ),
                    );
                    if let Ok(v) = secs.to_string().parse() {
                        r.headers_mut().insert(header::RETRY_AFTER, v);
                    }
                    return Err(r);
                }
                i.window.push_back(now);
            }
            if i.in_flight >= MAX_CONCURRENT {
                i.stats.throttled += 1;
                let mut r = odata_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "0x80072326",
                    "Number of concurrent requests exceeded the limit of 52.",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
                return Err(r);
            }
            i.in_flight += 1;
            i.stats.peak_concurrency = i.stats.peak_concurrency.max(i.in_flight as u64);
            let fault = i.faults.next();
            if matches!(fault, Some(Fault::Status(_) | Fault::Hang(_))) {
                i.stats.faults_served += 1;
            }
            fault
        };
        let guard = InFlight(self.clone());
        match fault {
            Some(Fault::Status(code)) => Err(status_fault(code)),
            Some(Fault::Hang(d)) => Ok((guard, d)),
            Some(Fault::Pass) | None => Ok((guard, Duration::ZERO)),
        }
    }
}

fn status_fault(code: u16) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (error_code, message) = match code {
        412 => (
            "0x80060882",
            "The version of the existing record doesn't match",
        ),
        429 => ("0x80072322", "Number of requests exceeded the limit"),
        500..=599 => ("0x80040216", "An unexpected error occurred."),
        _ => ("0x80040237", "injected"),
    };
    let mut r = odata_error(status, error_code, message);
    if code == 429 {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
    }
    r
}

impl Inner {
    fn insert(&mut self, key: &str, mut columns: Map<String, Value>) -> String {
        let n = self.next_id;
        self.next_id += 1;
        let id = format!("{n:08x}-0000-4000-8000-{n:012x}");
        columns.retain(|_, v| !v.is_null());
        columns.insert(KEY_FIELD.to_owned(), Value::String(key.to_owned()));
        self.rows.insert(
            key.to_owned(),
            Row {
                id: id.clone(),
                columns,
            },
        );
        id
    }
}

/// Why a request's URL was refused: status, error code, message.
#[derive(Debug)]
struct Refused(StatusCode, &'static str, String);

impl Refused {
    fn response(&self) -> Response {
        odata_error(self.0, self.1, &self.2)
    }
}

/// `contacts(hub_goldenid='O''Brien')` → the key value, its quotes undoubled.
fn parse_target(target: &str) -> Result<String, Refused> {
    let bad = || {
        Refused(
            StatusCode::BAD_REQUEST,
            "0x80060888",
            "Bad Request - Error in query syntax.".to_owned(),
        )
    };
    let Some((set, rest)) = target.split_once('(') else {
        return Err(bad());
    };
    if set != ENTITY_SET {
        return Err(Refused(
            StatusCode::NOT_FOUND,
            "0x8006088a",
            format!("Resource not found for the segment '{set}'."),
        ));
    }
    let Some(inner) = rest.strip_suffix(')') else {
        return Err(bad());
    };
    let Some((key, quoted)) = inner.split_once('=') else {
        return Err(bad());
    };
    if key != KEY_FIELD {
        return Err(Refused(
            StatusCode::BAD_REQUEST,
            "0x80060891",
            format!("A key with name '{key}' is not defined on the table"),
        ));
    }
    let Some(value) = quoted.strip_prefix('\'').and_then(|q| q.strip_suffix('\'')) else {
        return Err(bad());
    };
    // A quote inside the value must be doubled.
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' && chars.next() != Some('\'') {
            return Err(bad());
        }
        out.push(c);
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

async fn upsert(
    State(sim): State<DynamicsSim>,
    Path((version, target)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (guard, hold) = match sim.admit(&headers).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let answer = upsert_now(&sim, &version, &target, &query, &headers, &body);
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    drop(guard);
    answer
}

fn upsert_now(
    sim: &DynamicsSim,
    version: &str,
    target: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut i = sim.lock();
    let key = match parse_target(target) {
        Ok(k) => k,
        Err(refused) => {
            i.stats.rejected += 1;
            return refused.response();
        }
    };
    if let Some(queue) = i.key_faults.get_mut(&key)
        && let Some(status) = queue.pop_front()
    {
        i.stats.faults_served += 1;
        return status_fault(status);
    }
    let columns = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => {
            i.stats.rejected += 1;
            return odata_error(
                StatusCode::BAD_REQUEST,
                "0x0",
                "The request body is not a JSON object.",
            );
        }
    };
    for name in columns.keys() {
        if !COLUMNS.iter().any(|(c, _)| c == name) {
            i.stats.rejected += 1;
            return odata_error(
                StatusCode::BAD_REQUEST,
                "0x0",
                &format!(
                    "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.contact'."
                ),
            );
        }
    }
    for (name, max) in COLUMNS {
        if let Some(v) = columns.get(*name)
            && chars(v) > *max
        {
            i.stats.rejected += 1;
            return odata_error(
                StatusCode::BAD_REQUEST,
                "0x80044331",
                &format!(
                    "A validation error occurred. The length of the '{name}' attribute of the 'contact' entity exceeded the maximum allowed length of '{max}'."
                ),
            );
        }
    }
    if columns
        .get(KEY_FIELD)
        .is_some_and(|v| v.as_str() != Some(key.as_str()))
    {
        i.stats.rejected += 1;
        return odata_error(
            StatusCode::BAD_REQUEST,
            "0x80060891",
            "the key in the body differs from the url",
        );
    }
    let exists = i.rows.contains_key(&key);
    let header_is = |name: &str, value: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            == Some(value)
    };
    if header_is("If-Match", "*") && !exists {
        return odata_error(
            StatusCode::NOT_FOUND,
            "0x80040217",
            "The record does not exist.",
        );
    }
    if header_is("If-None-Match", "*") && exists {
        return odata_error(
            StatusCode::PRECONDITION_FAILED,
            "0x80040237",
            "A record with matching key values already exists.",
        );
    }
    let has_lastname = |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !exists && !has_lastname(columns.get("lastname")) {
        i.stats.rejected += 1;
        return odata_error(
            StatusCode::BAD_REQUEST,
            "0x80040265",
            "A contact needs a last name.",
        );
    }
    if header_is("MSCRM.SuppressDuplicateDetection", "false")
        && let Some(email) = columns.get("emailaddress1").and_then(Value::as_str)
        && i.rows.iter().any(|(k, r)| {
            *k != key && r.columns.get("emailaddress1").and_then(Value::as_str) == Some(email)
        })
    {
        i.stats.duplicates += 1;
        i.stats.rejected += 1;
        return odata_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "0x80040333",
            "A record was not created or updated because a duplicate of the current record already exists.",
        );
    }
    let (id, created) = match i.rows.get_mut(&key) {
        Some(row) => {
            for (k, v) in &columns {
                if v.is_null() {
                    row.columns.remove(k);
                } else {
                    row.columns.insert(k.clone(), v.clone());
                }
            }
            (row.id.clone(), false)
        }
        None => (i.insert(&key, columns), true),
    };
    if created {
        i.stats.created += 1;
    } else {
        i.stats.updated += 1;
    }
    let representation = headers
        .get("Prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| {
            p.split(',')
                .any(|part| part.trim() == "return=representation")
        });
    if representation {
        let row = i
            .rows
            .get(&key)
            .map(|r| r.columns.clone())
            .unwrap_or_default();
        let mut body = Map::new();
        body.insert(
            "@odata.etag".to_owned(),
            json!(format!("W/\"{}\"", i.next_id)),
        );
        match query.get("$select") {
            Some(select) => {
                for col in select.split(',') {
                    if col == ID_FIELD {
                        body.insert(ID_FIELD.to_owned(), json!(id));
                    } else if let Some(v) = row.get(col) {
                        body.insert(col.to_owned(), v.clone());
                    }
                }
            }
            None => {
                body.extend(row);
                body.insert(ID_FIELD.to_owned(), json!(id));
            }
        }
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return (
            status,
            [(
                header::CONTENT_TYPE,
                "application/json; odata.metadata=minimal",
            )],
            Value::Object(body).to_string(),
        )
            .into_response();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let entity = format!("http://{host}/api/data/{version}/{ENTITY_SET}({id})");
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = entity.parse() {
        r.headers_mut().insert("OData-EntityId", v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_with_doubled_quotes() {
        assert_eq!(
            parse_target("contacts(hub_goldenid='G1')").ok(),
            Some("G1".to_owned())
        );
        assert_eq!(
            parse_target("contacts(hub_goldenid='O''Brien & Co/1')").ok(),
            Some("O'Brien & Co/1".to_owned())
        );
        for bad in [
            "contacts(hub_goldenid='O'Brien')",
            "contacts(hub_goldenid=G1)",
            "contacts(other='G1')",
            "accounts(hub_goldenid='G1')",
            "contacts",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
