//! A simulated Bitrix24 portal: contacts through an inbound webhook.
//!
//! `POST /rest/{user}/{secret}/{method}` (`.json` suffix optional), parameters
//! form-encoded with nested keys in brackets (`fields[PHONE][0][VALUE]=...`) or as a JSON
//! body. Methods:
//! - `crm.contact.list`: `filter[ORIGIN_ID]`, `filter[ORIGINATOR_ID]`, `filter[ID]`
//!   (equality), `select[]` (`ID` always; `PHONE`, `EMAIL`, `WEB`, `IM` only when selected,
//!   as `[{"ID", "VALUE_TYPE", "VALUE", "TYPE_ID"}]`; `*` for every plain field) →
//!   `{"result": [...], "total": n}`.
//! - `crm.contact.add`: `fields[...]` → `{"result": <new id>}`. Multiple fields as
//!   `[{"VALUE", "VALUE_TYPE"}]`.
//! - `crm.contact.update`: `id`, `fields[...]` → `{"result": true}`; a multiple field item
//!   with `ID` changes that value, with `ID` and `DELETE=Y` (or an empty `VALUE`) deletes
//!   it, without `ID` adds one.
//! - `batch`: `halt`, `cmd[<key>]=<method>?<query>` (at most 50) → `{"result": {"result":
//!   {<key>: ...}, "result_error": {<key>: {"error", "error_description"}}, "result_total":
//!   ..., "result_next": ..., "result_time": ...}}`; an empty map is written `[]`, as PHP does.
//!
//! Errors are `{"error": "<code>", "error_description": "..."}`: `401 INVALID_CREDENTIALS`
//! for a wrong webhook (or the code set by [`Bitrix24Sim::set_auth_error`], e.g.
//! `expired_token`); `503 QUERY_LIMIT_EXCEEDED` from the leaky bucket (default: blocks above
//! 50, drains 2 per second; a `batch` counts once); `400 ERROR_CORE` for an invalid e-mail
//! address or a value longer than the field; `400 ERROR_CORE` for a new contact without
//! `LAST_NAME` (the simulated portal requires it); `400` with an empty code `Contact is not
//! found`; `404 ERROR_METHOD_NOT_FOUND`; `400 ERROR_BATCH_LENGTH_EXCEEDED` above 50
//! commands; injected statuses and per-contact command errors
//! ([`Bitrix24Sim::fail_origin`]). Unknown fields are ignored, as the portal does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::{Fault, Faults, chars, serve};

/// The multiple fields.
const MULTI: &[&str] = &["PHONE", "EMAIL", "WEB", "IM"];

/// Plain fields the simulated portal stores, and their lengths (characters).
const PLAIN: &[(&str, usize)] = &[
    ("NAME", 50),
    ("SECOND_NAME", 50),
    ("LAST_NAME", 50),
    ("BIRTHDATE", 32),
    ("ADDRESS", 1024),
    ("ADDRESS_POSTAL_CODE", 16),
    ("COMMENTS", 65_535),
    ("ORIGINATOR_ID", 255),
    ("ORIGIN_ID", 255),
    ("ORIGIN_VERSION", 255),
];

/// Counters for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bitrix24Stats {
    /// Every HTTP request.
    pub requests: u64,
    /// `batch` calls served.
    pub batch_requests: u64,
    /// The most commands in one `batch` call.
    pub largest_batch: u64,
    /// Methods run (direct calls and batch commands).
    pub commands: u64,
    /// `crm.contact.list` runs.
    pub lists: u64,
    /// Contacts added.
    pub adds: u64,
    /// Contacts updated.
    pub updates: u64,
    /// Commands refused (validation, not found, injected command errors).
    pub rejected: u64,
    /// Requests refused with `QUERY_LIMIT_EXCEEDED`.
    pub limit_rejections: u64,
    /// Requests answered by an injected fault.
    pub faults_served: u64,
}

#[derive(Debug, Clone)]
struct MultiValue {
    id: u64,
    value: String,
    value_type: String,
}

#[derive(Debug, Clone, Default)]
struct Contact {
    plain: Map<String, Value>,
    multi: BTreeMap<String, Vec<MultiValue>>,
}

struct Bucket {
    max: f64,
    drain_per_sec: f64,
    level: f64,
    at: Instant,
}

struct Inner {
    user: String,
    secret: String,
    auth_error: Option<String>,
    contacts: BTreeMap<u64, Contact>,
    next_id: u64,
    next_value_id: u64,
    bucket: Option<Bucket>,
    latency: Duration,
    faults: Faults,
    origin_faults: HashMap<String, VecDeque<String>>,
    stats: Bitrix24Stats,
}

/// A handle on one simulated portal; clones share it.
#[derive(Clone)]
pub struct Bitrix24Sim {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for Bitrix24Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("Bitrix24Sim")
            .field("contacts", &i.contacts.len())
            .field("stats", &i.stats)
            .finish_non_exhaustive()
    }
}

/// A method's error: status for a direct call, code and description.
#[derive(Debug)]
struct MethodError {
    status: StatusCode,
    code: String,
    description: String,
}

impl MethodError {
    fn new(status: StatusCode, code: &str, description: &str) -> Self {
        MethodError {
            status,
            code: code.to_owned(),
            description: description.to_owned(),
        }
    }

    fn body(&self) -> Value {
        json!({ "error": self.code, "error_description": self.description })
    }

    fn response(&self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            self.body().to_string(),
        )
            .into_response()
    }
}

fn status_for(code: &str) -> StatusCode {
    match code {
        "QUERY_LIMIT_EXCEEDED" => StatusCode::SERVICE_UNAVAILABLE,
        "INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER" => StatusCode::INTERNAL_SERVER_ERROR,
        "OPERATION_TIME_LIMIT" => StatusCode::TOO_MANY_REQUESTS,
        "expired_token" | "invalid_token" | "INVALID_CREDENTIALS" | "NO_AUTH_FOUND" => {
            StatusCode::UNAUTHORIZED
        }
        "ERROR_METHOD_NOT_FOUND" => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn ok(result: Value, total: Option<usize>) -> Response {
    let t = now_secs();
    let mut body = json!({ "result": result, "time": { "start": t, "finish": t } });
    if let Some(n) = total {
        body["total"] = json!(n);
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A map as PHP writes it: `[]` when empty.
fn php_map(m: Map<String, Value>) -> Value {
    if m.is_empty() {
        json!([])
    } else {
        Value::Object(m)
    }
}

impl Bitrix24Sim {
    /// An empty portal with the webhook `/rest/{user}/{secret}/` and the leaky bucket of
    /// most plans (blocks above 50, drains 2 per second).
    pub fn new(user: impl Into<String>, secret: impl Into<String>) -> Self {
        Bitrix24Sim {
            inner: Arc::new(Mutex::new(Inner {
                user: user.into(),
                secret: secret.into(),
                auth_error: None,
                contacts: BTreeMap::new(),
                next_id: 1,
                next_value_id: 1,
                bucket: Some(Bucket {
                    max: 50.0,
                    drain_per_sec: 2.0,
                    level: 0.0,
                    at: Instant::now(),
                }),
                latency: Duration::ZERO,
                faults: Faults::default(),
                origin_faults: HashMap::new(),
                stats: Bitrix24Stats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leaky bucket: block above `max` pending, drain `per_sec`; `None`: no limit.
    pub fn set_limit(&self, limit: Option<(u32, f64)>) {
        self.lock().bucket = limit.map(|(max, per_sec)| Bucket {
            max: f64::from(max),
            drain_per_sec: per_sec,
            level: 0.0,
            at: Instant::now(),
        });
    }

    /// Every request is answered `401` with this code (`expired_token`...); `None` to stop.
    pub fn set_auth_error(&self, code: Option<&str>) {
        self.lock().auth_error = code.map(str::to_owned);
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

    /// The next `times` adds or updates of the contact with this `ORIGIN_ID` fail with
    /// `code` (in a batch as the command's error, directly with the code's status).
    pub fn fail_origin(&self, origin_id: &str, code: &str, times: usize) {
        let mut i = self.lock();
        i.origin_faults
            .entry(origin_id.to_owned())
            .or_default()
            .extend(std::iter::repeat_n(code.to_owned(), times));
    }

    /// Adds a contact directly (no request counted); its id. Seeding one `ORIGIN_ID` twice
    /// makes the duplicate a portal can hold after a manual import.
    pub fn seed(&self, origin_id: &str, originator_id: &str, fields: Value) -> u64 {
        let mut i = self.lock();
        let mut f = fields.as_object().cloned().unwrap_or_default();
        f.insert("ORIGIN_ID".to_owned(), json!(origin_id));
        f.insert("ORIGINATOR_ID".to_owned(), json!(originator_id));
        let id = i.next_id;
        i.next_id += 1;
        let mut contact = Contact::default();
        i.apply(&mut contact, &f);
        i.contacts.insert(id, contact);
        id
    }

    /// The contacts with this `ORIGIN_ID`, as `crm.contact.list` with `select[]=*` and the
    /// multiple fields would show them (multiple fields as lists of values).
    pub fn contacts_with_origin(&self, origin_id: &str) -> Vec<Map<String, Value>> {
        let i = self.lock();
        i.contacts
            .iter()
            .filter(|(_, c)| c.plain.get("ORIGIN_ID").and_then(Value::as_str) == Some(origin_id))
            .map(|(id, c)| {
                let mut out = c.plain.clone();
                out.insert("ID".to_owned(), json!(id.to_string()));
                for (name, values) in &c.multi {
                    let list: Vec<Value> = values.iter().map(|v| json!(v.value)).collect();
                    out.insert(name.clone(), Value::Array(list));
                }
                out
            })
            .collect()
    }

    /// Contacts in the portal.
    pub fn len(&self) -> usize {
        self.lock().contacts.len()
    }

    /// Whether the portal holds no contact.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> Bitrix24Stats {
        self.lock().stats
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/rest/{user}/{secret}/{method}", post(call))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in a background task.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        serve(self.router(), addr).await
    }

    /// The webhook URL of this portal at `addr`.
    pub fn webhook_url(&self, addr: SocketAddr) -> String {
        let i = self.lock();
        format!("http://{addr}/rest/{}/{}/", i.user, i.secret)
    }
}

impl Inner {
    /// Counts a request into the leaky bucket; `false` when it is full.
    fn admit_rate(&mut self) -> bool {
        let Some(b) = self.bucket.as_mut() else {
            return true;
        };
        let now = Instant::now();
        let elapsed = now.duration_since(b.at).as_secs_f64();
        b.level = (b.level - elapsed * b.drain_per_sec).max(0.0);
        b.at = now;
        if b.level + 1.0 > b.max {
            return false;
        }
        b.level += 1.0;
        true
    }

    fn origin_fault(&mut self, origin_id: Option<&str>) -> Option<MethodError> {
        let code = self.origin_faults.get_mut(origin_id?)?.pop_front()?;
        Some(MethodError::new(status_for(&code), &code, "injected"))
    }

    /// Checks `fields` for a contact (`existing` none when adding).
    fn validate(
        &self,
        fields: &Map<String, Value>,
        existing: Option<&Contact>,
    ) -> Result<(), MethodError> {
        for (name, max) in PLAIN {
            if let Some(v) = fields.get(*name)
                && chars(v) > *max
            {
                return Err(MethodError::new(
                    StatusCode::BAD_REQUEST,
                    "ERROR_CORE",
                    &format!("The field {name} is too long"),
                ));
            }
        }
        if let Some(items) = fields.get("EMAIL").and_then(Value::as_array) {
            for item in items {
                if let Some(v) = item.get("VALUE").and_then(Value::as_str)
                    && !v.is_empty()
                    && !v.contains('@')
                {
                    return Err(MethodError::new(
                        StatusCode::BAD_REQUEST,
                        "ERROR_CORE",
                        "The field Work e-mail contains an invalid address",
                    ));
                }
            }
        }
        let last_name =
            |v: Option<&Value>| v.and_then(Value::as_str).is_some_and(|s| !s.is_empty());
        let missing = match existing {
            None => !last_name(fields.get("LAST_NAME")),
            Some(_) => fields.get("LAST_NAME").is_some_and(|v| !last_name(Some(v))),
        };
        if missing {
            return Err(MethodError::new(
                StatusCode::BAD_REQUEST,
                "ERROR_CORE",
                "The field Last name is required",
            ));
        }
        Ok(())
    }

    /// Applies `fields` to `contact` (unknown fields ignored).
    fn apply(&mut self, contact: &mut Contact, fields: &Map<String, Value>) {
        for (name, value) in fields {
            if PLAIN.iter().any(|(p, _)| p == name) || name.starts_with("UF_") {
                match value {
                    Value::Null => {
                        contact.plain.remove(name);
                    }
                    Value::String(s) if s.is_empty() => {
                        contact.plain.remove(name);
                    }
                    other => {
                        contact.plain.insert(name.clone(), other.clone());
                    }
                }
            } else if MULTI.contains(&name.as_str()) {
                let items: Vec<Value> = match value {
                    Value::Array(a) => a.clone(),
                    Value::Object(o) => o.values().cloned().collect(),
                    _ => Vec::new(),
                };
                let list = contact.multi.entry(name.clone()).or_default();
                for item in items {
                    let id = item.get("ID").and_then(|v| match v {
                        Value::String(s) => s.parse::<u64>().ok(),
                        Value::Number(n) => n.as_u64(),
                        _ => None,
                    });
                    let value = item
                        .get("VALUE")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned();
                    let value_type = item
                        .get("VALUE_TYPE")
                        .and_then(Value::as_str)
                        .unwrap_or("WORK")
                        .to_owned();
                    let delete = item.get("DELETE").and_then(Value::as_str) == Some("Y");
                    match id {
                        Some(id) if delete || value.is_empty() => list.retain(|v| v.id != id),
                        Some(id) => {
                            if let Some(v) = list.iter_mut().find(|v| v.id == id) {
                                v.value = value;
                                v.value_type = value_type;
                            }
                        }
                        None if !value.is_empty() => {
                            list.push(MultiValue {
                                id: self.next_value_id,
                                value,
                                value_type,
                            });
                            self.next_value_id += 1;
                        }
                        None => {}
                    }
                }
            }
        }
        contact.multi.retain(|_, v| !v.is_empty());
    }

    /// Runs one method.
    fn run(
        &mut self,
        method: &str,
        params: &Map<String, Value>,
    ) -> Result<(Value, Option<usize>), MethodError> {
        self.stats.commands += 1;
        let fields = params
            .get("fields")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        match method {
            "crm.contact.list" => {
                self.stats.lists += 1;
                let filter = params
                    .get("filter")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                let select: Vec<String> = match params.get("select") {
                    Some(Value::Array(a)) => a
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    Some(Value::Object(o)) => o
                        .values()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect(),
                    _ => Vec::new(),
                };
                let matches = |id: u64, c: &Contact| {
                    filter.iter().all(|(k, want)| {
                        let want = match want {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        match k.as_str() {
                            "ID" => id.to_string() == want,
                            field => {
                                c.plain.get(field).and_then(Value::as_str) == Some(want.as_str())
                            }
                        }
                    })
                };
                let found: Vec<Value> = self
                    .contacts
                    .iter()
                    .filter(|(id, c)| matches(**id, c))
                    .take(50)
                    .map(|(id, c)| {
                        let mut out = Map::new();
                        out.insert("ID".to_owned(), json!(id.to_string()));
                        for s in &select {
                            if s == "*" {
                                out.extend(c.plain.clone());
                            } else if MULTI.contains(&s.as_str()) {
                                if let Some(values) = c.multi.get(s) {
                                    let list: Vec<Value> = values
                                        .iter()
                                        .map(|v| {
                                            json!({
                                                "ID": v.id.to_string(),
                                                "VALUE_TYPE": v.value_type,
                                                "VALUE": v.value,
                                                "TYPE_ID": s,
                                            })
                                        })
                                        .collect();
                                    out.insert(s.clone(), Value::Array(list));
                                }
                            } else if let Some(v) = c.plain.get(s) {
                                out.insert(s.clone(), v.clone());
                            }
                        }
                        Value::Object(out)
                    })
                    .collect();
                let n = found.len();
                Ok((Value::Array(found), Some(n)))
            }
            "crm.contact.add" => {
                if let Some(e) = self.origin_fault(fields.get("ORIGIN_ID").and_then(Value::as_str))
                {
                    return Err(e);
                }
                self.validate(&fields, None)?;
                let id = self.next_id;
                self.next_id += 1;
                let mut contact = Contact::default();
                self.apply(&mut contact, &fields);
                self.contacts.insert(id, contact);
                self.stats.adds += 1;
                Ok((json!(id), None))
            }
            "crm.contact.update" => {
                let id = params
                    .get("id")
                    .or_else(|| params.get("ID"))
                    .and_then(|v| match v {
                        Value::String(s) => s.parse::<u64>().ok(),
                        Value::Number(n) => n.as_u64(),
                        _ => None,
                    });
                let Some(mut contact) = id.and_then(|id| self.contacts.get(&id).cloned()) else {
                    return Err(MethodError::new(
                        StatusCode::BAD_REQUEST,
                        "",
                        "Contact is not found",
                    ));
                };
                let origin = contact
                    .plain
                    .get("ORIGIN_ID")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if let Some(e) = self.origin_fault(origin.as_deref()) {
                    return Err(e);
                }
                self.validate(&fields, Some(&contact))?;
                self.apply(&mut contact, &fields);
                if let Some(id) = id {
                    self.contacts.insert(id, contact);
                }
                self.stats.updates += 1;
                Ok((json!(true), None))
            }
            "batch" => Err(MethodError::new(
                StatusCode::BAD_REQUEST,
                "ERROR_BATCH_METHOD_NOT_ALLOWED",
                "Method is not allowed for batch usage",
            )),
            _ => Err(MethodError::new(
                StatusCode::NOT_FOUND,
                "ERROR_METHOD_NOT_FOUND",
                "Method not found!",
            )),
        }
    }

    fn batch(&mut self, params: &Map<String, Value>) -> Result<Value, MethodError> {
        let halt = matches!(
            params.get("halt").and_then(Value::as_str),
            Some("1" | "true" | "Y")
        );
        let commands: Vec<(String, String)> = match params.get("cmd") {
            Some(Value::Object(o)) => o
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.to_string(), s.to_owned())))
                .collect(),
            _ => Vec::new(),
        };
        if commands.len() > 50 {
            return Err(MethodError::new(
                StatusCode::BAD_REQUEST,
                "ERROR_BATCH_LENGTH_EXCEEDED",
                "Max batch length exceeded",
            ));
        }
        self.stats.batch_requests += 1;
        self.stats.largest_batch = self.stats.largest_batch.max(commands.len() as u64);
        let mut results = Map::new();
        let mut errors = Map::new();
        let mut totals = Map::new();
        for (key, command) in commands {
            let (method, query) = command.split_once('?').unwrap_or((command.as_str(), ""));
            let params = parse_form(query.as_bytes());
            match self.run(method, &params) {
                Ok((result, total)) => {
                    results.insert(key.clone(), result);
                    if let Some(n) = total {
                        totals.insert(key, json!(n));
                    }
                }
                Err(e) => {
                    self.stats.rejected += 1;
                    errors.insert(key, e.body());
                    if halt {
                        break;
                    }
                }
            }
        }
        Ok(json!({
            "result": php_map(results),
            "result_error": php_map(errors),
            "result_total": php_map(totals),
            "result_next": [],
            "result_time": [],
        }))
    }
}

async fn call(
    State(sim): State<Bitrix24Sim>,
    Path((user, secret, method)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let latency = sim.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let fault = {
        let mut i = sim.lock();
        i.stats.requests += 1;
        if user != i.user || secret != i.secret {
            return MethodError::new(
                StatusCode::UNAUTHORIZED,
                "INVALID_CREDENTIALS",
                "Invalid request credentials",
            )
            .response();
        }
        if let Some(code) = i.auth_error.clone() {
            return MethodError::new(
                StatusCode::UNAUTHORIZED,
                &code,
                "The access token provided has expired.",
            )
            .response();
        }
        if !i.admit_rate() {
            i.stats.limit_rejections += 1;
            return MethodError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "QUERY_LIMIT_EXCEEDED",
                "Too many requests",
            )
            .response();
        }
        let fault = i.faults.next();
        if matches!(fault, Some(Fault::Status(_) | Fault::Hang(_))) {
            i.stats.faults_served += 1;
        }
        fault
    };
    let mut hold = Duration::ZERO;
    match fault {
        Some(Fault::Status(code)) => {
            let error = match code {
                503 => "QUERY_LIMIT_EXCEEDED",
                429 => "OPERATION_TIME_LIMIT",
                500..=599 => "INTERNAL_SERVER_ERROR",
                401 => "expired_token",
                _ => "INVALID_REQUEST",
            };
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return MethodError::new(status, error, "injected").response();
        }
        Some(Fault::Hang(d)) => hold = d,
        Some(Fault::Pass) | None => {}
    }
    let answer = run_now(&sim, &method, &headers, &body);
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    answer
}

/// Runs the method of one request (the write applied before any hold).
fn run_now(sim: &Bitrix24Sim, method: &str, headers: &HeaderMap, body: &Bytes) -> Response {
    let method = method.strip_suffix(".json").unwrap_or(method).to_owned();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let params = if is_json {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default()
    } else {
        parse_form(body)
    };
    let mut i = sim.lock();
    if method == "batch" {
        return match i.batch(&params) {
            Ok(result) => ok(result, None),
            Err(e) => e.response(),
        };
    }
    match i.run(&method, &params) {
        Ok((result, total)) => ok(result, total),
        Err(e) => {
            i.stats.rejected += 1;
            e.response()
        }
    }
}

/// Parses a form-encoded body with bracketed keys into nested JSON (objects whose keys are
/// `0..n` become lists), as PHP's `parse_str` does.
pub fn parse_form(bytes: &[u8]) -> Map<String, Value> {
    let mut root = Map::new();
    for (key, value) in form_urlencoded::parse(bytes) {
        let (head, rest) = match key.find('[') {
            Some(at) => (&key[..at], &key[at..]),
            None => (&key[..], ""),
        };
        let mut path: Vec<Option<String>> = Vec::new();
        let mut rest = rest;
        while let Some(stripped) = rest.strip_prefix('[') {
            let Some(end) = stripped.find(']') else { break };
            let segment = &stripped[..end];
            path.push(if segment.is_empty() {
                None
            } else {
                Some(segment.to_owned())
            });
            rest = &stripped[end + 1..];
        }
        insert(&mut root, head, &path, Value::String(value.into_owned()));
    }
    let mut out = Value::Object(root);
    listify(&mut out);
    match out {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn insert(map: &mut Map<String, Value>, key: &str, path: &[Option<String>], value: Value) {
    let Some((first, rest)) = path.split_first() else {
        map.insert(key.to_owned(), value);
        return;
    };
    let slot = map
        .entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(child) = slot {
        let next = match first {
            Some(k) => k.clone(),
            None => child.len().to_string(),
        };
        insert(child, &next, rest, value);
    }
}

fn listify(v: &mut Value) {
    if let Value::Object(m) = v {
        for child in m.values_mut() {
            listify(child);
        }
        // Keys sort as strings ("10" < "2"), so check the set rather than the order.
        let numeric = !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string()));
        if numeric {
            let mut items = Vec::with_capacity(m.len());
            for i in 0..m.len() {
                items.push(m.remove(&i.to_string()).unwrap_or(Value::Null));
            }
            *v = Value::Array(items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_parse_like_php() {
        let q = "filter%5BORIGIN_ID%5D=G1&select%5B%5D=ID&select%5B%5D=PHONE&fields%5BPHONE%5D%5B0%5D%5BVALUE%5D=%2B7+900&id=12";
        let m = parse_form(q.as_bytes());
        assert_eq!(
            Value::Object(m),
            json!({
                "filter": { "ORIGIN_ID": "G1" },
                "select": ["ID", "PHONE"],
                "fields": { "PHONE": [{ "VALUE": "+7 900" }] },
                "id": "12",
            })
        );
        let many: String = (0..12).map(|i| format!("a[{i}]={i}&")).collect();
        let m = parse_form(many.as_bytes());
        assert_eq!(m["a"].as_array().map(Vec::len), Some(12));
        assert_eq!(m["a"][10], json!("10"));
    }
}
