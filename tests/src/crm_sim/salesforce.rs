//! A simulated Salesforce org: the REST API upsert of a Contact by external id.
//!
//! - `PATCH /services/data/{v}/sobjects/Contact/{extField}/{value}`: upsert one record.
//!   `201` `{"id", "success": true, "errors": [], "created": true}` when created, `200`
//!   (`created: false`) when updated, or `204` with [`SalesforceSim::answer_updates_with_204`]
//!   (API versions before 46.0); `300` with the matching records' URLs when the external id
//!   is on several records.
//! - `GET` of the same URL (`?fields=Id`): `{"attributes": {...}, "Id": ...}`.
//! - `PATCH /services/data/{v}/composite/sobjects/Contact/{extField}` with `{"allOrNone":
//!   false, "records": [...]}` (at most 200, each with `attributes.type`): `200` with one
//!   `{"id", "success", "created", "errors": [{"statusCode", "message", "fields"}]}` per
//!   record, in order. `allOrNone: true` is refused (the connector never sends it).
//!
//! Errors are `[{"message", "errorCode", "fields"}]`: `401 INVALID_SESSION_ID` for a wrong
//! token, `403 REQUEST_LIMIT_EXCEEDED` once the request budget ([`SalesforceSim::set_budget`])
//! is spent (every request counts, like the org's 24-hour allowance), `400 INVALID_FIELD`
//! for a field the Contact does not have (the whole request), `400 EXCEEDED_ID_LIMIT` above
//! 200 records, injected statuses (`503 SERVER_UNAVAILABLE`, other 5xx). Per record:
//! `REQUIRED_FIELD_MISSING` (a new Contact without `LastName`, or one emptied),
//! `STRING_TOO_LONG` (the org's field lengths), `INVALID_EMAIL_ADDRESS`,
//! `DUPLICATE_EXTERNAL_ID`, and any code injected for an external id
//! ([`SalesforceSim::fail_record`]: `UNABLE_TO_LOCK_ROW`, `FIELD_CUSTOM_VALIDATION_EXCEPTION`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::{Fault, Faults, chars, serve};

/// The sObject the simulator holds.
pub const SOBJECT: &str = "Contact";

/// Contact fields and their lengths (characters), as a standard org has them.
const FIELDS: &[(&str, usize)] = &[
    ("LastName", 80),
    ("FirstName", 40),
    ("MiddleName", 40),
    ("Birthdate", 10),
    ("Phone", 40),
    ("MobilePhone", 40),
    ("Email", 80),
    ("MailingStreet", 255),
    ("MailingPostalCode", 20),
    ("Segment__c", 255),
];

/// Counters for assertions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SalesforceStats {
    /// Every HTTP request.
    pub requests: u64,
    /// sObject Collections requests.
    pub collection_requests: u64,
    /// Single-record upserts.
    pub single_requests: u64,
    /// Reads of a record's Id.
    pub reads: u64,
    /// Records created.
    pub created: u64,
    /// Records updated.
    pub updated: u64,
    /// Records refused with an error (per record or by a whole-request error).
    pub rejected: u64,
    /// Requests refused with `REQUEST_LIMIT_EXCEEDED`.
    pub limit_rejections: u64,
    /// `300` answers and `DUPLICATE_EXTERNAL_ID` results.
    pub duplicates: u64,
    /// Requests answered by an injected fault.
    pub faults_served: u64,
    /// The most records seen in one collection request.
    pub largest_collection: u64,
}

struct Record {
    external_id: String,
    fields: Map<String, Value>,
}

struct Inner {
    token: String,
    external_id_field: String,
    records: BTreeMap<String, Record>,
    by_external_id: HashMap<String, Vec<String>>,
    next_id: u64,
    budget: Option<u64>,
    legacy_204: bool,
    latency: Duration,
    faults: Faults,
    record_faults: HashMap<String, VecDeque<String>>,
    stats: SalesforceStats,
}

/// A handle on one simulated org; clones share it.
#[derive(Clone)]
pub struct SalesforceSim {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for SalesforceSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("SalesforceSim")
            .field("records", &i.records.len())
            .field("stats", &i.stats)
            .finish_non_exhaustive()
    }
}

/// A per-record error: code, fields, and the status a single upsert answers with.
struct RecordError {
    code: String,
    fields: Vec<String>,
    status: StatusCode,
}

impl RecordError {
    fn new(code: &str, fields: &[&str]) -> Self {
        RecordError {
            code: code.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            status: StatusCode::BAD_REQUEST,
        }
    }

    fn body(&self) -> Value {
        json!({ "statusCode": self.code, "message": message_for(&self.code), "fields": self.fields })
    }
}

fn message_for(code: &str) -> &'static str {
    match code {
        "REQUIRED_FIELD_MISSING" => "Required fields are missing",
        "STRING_TOO_LONG" => "data value too large",
        "INVALID_EMAIL_ADDRESS" => "invalid email address",
        "DUPLICATE_EXTERNAL_ID" => "more than one record found for external id field",
        "UNABLE_TO_LOCK_ROW" => "unable to obtain exclusive access to this record",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION" => "a validation rule refused the record",
        _ => "the record was refused",
    }
}

fn api_error(status: StatusCode, code: &str, message: &str, fields: &[String]) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!([{ "message": message, "errorCode": code, "fields": fields }]).to_string(),
    )
        .into_response()
}

impl SalesforceSim {
    /// An empty org accepting `token`, external id field `Hub_Golden_Id__c`, no budget.
    pub fn new(token: impl Into<String>) -> Self {
        SalesforceSim {
            inner: Arc::new(Mutex::new(Inner {
                token: token.into(),
                external_id_field: "Hub_Golden_Id__c".to_owned(),
                records: BTreeMap::new(),
                by_external_id: HashMap::new(),
                next_id: 1,
                budget: None,
                legacy_204: false,
                latency: Duration::ZERO,
                faults: Faults::default(),
                record_faults: HashMap::new(),
                stats: SalesforceStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allows `requests` more API requests; beyond them `403 REQUEST_LIMIT_EXCEEDED`.
    /// `None`: no limit.
    pub fn set_budget(&self, requests: Option<u64>) {
        self.lock().budget = requests;
    }

    /// Answer updates of single upserts with `204 No Content` (API before 46.0).
    pub fn answer_updates_with_204(&self, yes: bool) {
        self.lock().legacy_204 = yes;
    }

    /// Holds every request this long before answering (a round trip to the cloud).
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

    /// The next `times` writes of `external_id` fail with the per-record `code`.
    pub fn fail_record(&self, external_id: &str, code: &str, times: usize) {
        let mut i = self.lock();
        let queue = i.record_faults.entry(external_id.to_owned()).or_default();
        queue.extend(std::iter::repeat_n(code.to_owned(), times));
    }

    /// Puts a record in the org directly (no request counted); two seeds of one external id
    /// make the duplicate a real org can hold after a data load.
    pub fn seed(&self, external_id: &str, fields: Value) -> String {
        let mut i = self.lock();
        let fields = fields.as_object().cloned().unwrap_or_default();
        i.insert(external_id, fields)
    }

    /// The fields of the one record with this external id.
    pub fn record(&self, external_id: &str) -> Option<Map<String, Value>> {
        let i = self.lock();
        match i.by_external_id.get(external_id).map(Vec::as_slice) {
            Some([id]) => i.records.get(id).map(|r| r.fields.clone()),
            _ => None,
        }
    }

    /// The Salesforce id of the one record with this external id.
    pub fn id_of(&self, external_id: &str) -> Option<String> {
        match self
            .lock()
            .by_external_id
            .get(external_id)
            .map(Vec::as_slice)
        {
            Some([id]) => Some(id.clone()),
            _ => None,
        }
    }

    /// The external id of the record with this Salesforce id.
    pub fn external_id_of(&self, crm_id: &str) -> Option<String> {
        self.lock()
            .records
            .get(crm_id)
            .map(|r| r.external_id.clone())
    }

    /// Records in the org.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    /// Whether the org holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters.
    pub fn stats(&self) -> SalesforceStats {
        self.lock().stats
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
                patch(single_upsert).get(read_id),
            )
            .route(
                "/services/data/{version}/composite/sobjects/{sobject}/{field}",
                patch(collection_upsert),
            )
            .route(
                "/services/data/{version}/{*rest}",
                post(not_found).get(not_found),
            )
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in a background task.
    pub async fn serve(&self, addr: SocketAddr) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        serve(self.router(), addr).await
    }

    /// The checks every request passes, in Salesforce's order: latency, session, budget,
    /// injected fault. `Err` is the answer; `Ok` holds how long to hold the real answer.
    async fn admit(&self, headers: &HeaderMap) -> Result<Duration, Response> {
        let latency = self.lock().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let fault = {
            let mut i = self.lock();
            i.stats.requests += 1;
            let expected = format!("Bearer {}", i.token);
            if headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                != Some(&expected)
            {
                return Err(api_error(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_SESSION_ID",
                    "Session expired or invalid",
                    &[],
                ));
            }
            if let Some(left) = i.budget.as_mut() {
                if *left == 0 {
                    i.stats.limit_rejections += 1;
                    return Err(api_error(
                        StatusCode::FORBIDDEN,
                        "REQUEST_LIMIT_EXCEEDED",
                        "TotalRequests Limit exceeded.",
                        &[],
                    ));
                }
                *left -= 1;
            }
            let fault = i.faults.next();
            if matches!(fault, Some(Fault::Status(_) | Fault::Hang(_))) {
                i.stats.faults_served += 1;
            }
            fault
        };
        match fault {
            Some(Fault::Status(code)) => {
                let s = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let (error_code, message) = match code {
                    503 => ("SERVER_UNAVAILABLE", "Server temporarily unavailable"),
                    500..=599 => ("UNKNOWN_EXCEPTION", "An unexpected error occurred"),
                    401 => ("INVALID_SESSION_ID", "Session expired or invalid"),
                    403 => ("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."),
                    _ => ("INVALID_FIELD", "injected"),
                };
                Err(api_error(s, error_code, message, &[]))
            }
            Some(Fault::Hang(d)) => Ok(d),
            Some(Fault::Pass) | None => Ok(Duration::ZERO),
        }
    }
}

/// Sends `answer` after `hold` (the write, if any, is already applied).
async fn held(hold: Duration, answer: Response) -> Response {
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    answer
}

impl Inner {
    fn insert(&mut self, external_id: &str, mut fields: Map<String, Value>) -> String {
        let id = format!("003{:015}", self.next_id);
        self.next_id += 1;
        fields.retain(|_, v| !v.is_null());
        self.records.insert(
            id.clone(),
            Record {
                external_id: external_id.to_owned(),
                fields,
            },
        );
        self.by_external_id
            .entry(external_id.to_owned())
            .or_default()
            .push(id.clone());
        id
    }

    /// The first field of `fields` the Contact does not have.
    fn unknown_field<'a>(&self, fields: &'a Map<String, Value>) -> Option<&'a str> {
        fields.keys().map(String::as_str).find(|k| {
            *k != "attributes"
                && *k != self.external_id_field
                && !FIELDS.iter().any(|(f, _)| f == k)
        })
    }

    /// Validates and applies one upsert; the record id and whether it was created.
    fn upsert(
        &mut self,
        external_id: &str,
        fields: &Map<String, Value>,
    ) -> Result<(String, bool), RecordError> {
        if let Some(queue) = self.record_faults.get_mut(external_id)
            && let Some(code) = queue.pop_front()
        {
            return Err(RecordError::new(&code, &[]));
        }
        let ids = self
            .by_external_id
            .get(external_id)
            .cloned()
            .unwrap_or_default();
        if ids.len() > 1 {
            self.stats.duplicates += 1;
            return Err(RecordError {
                status: StatusCode::MULTIPLE_CHOICES,
                ..RecordError::new("DUPLICATE_EXTERNAL_ID", &[&self.external_id_field.clone()])
            });
        }
        for (name, max) in FIELDS {
            if let Some(v) = fields.get(*name)
                && chars(v) > *max
            {
                return Err(RecordError::new("STRING_TOO_LONG", &[name]));
            }
        }
        if let Some(email) = fields.get("Email").and_then(Value::as_str)
            && !email.contains('@')
        {
            return Err(RecordError::new("INVALID_EMAIL_ADDRESS", &["Email"]));
        }
        let emptied = |v: Option<&Value>| match v {
            None => false,
            Some(v) => v.is_null() || v.as_str() == Some(""),
        };
        match ids.first() {
            None => {
                if fields.get("LastName").is_none() || emptied(fields.get("LastName")) {
                    return Err(RecordError::new("REQUIRED_FIELD_MISSING", &["LastName"]));
                }
                let mut stored = fields.clone();
                stored.remove("attributes");
                stored.remove(&self.external_id_field);
                let id = self.insert(external_id, stored);
                self.stats.created += 1;
                Ok((id, true))
            }
            Some(id) => {
                if emptied(fields.get("LastName")) {
                    return Err(RecordError::new("REQUIRED_FIELD_MISSING", &["LastName"]));
                }
                let ext_field = self.external_id_field.clone();
                if let Some(record) = self.records.get_mut(id) {
                    for (k, v) in fields {
                        if k == "attributes" || *k == ext_field {
                            continue;
                        }
                        if v.is_null() {
                            record.fields.remove(k);
                        } else {
                            record.fields.insert(k.clone(), v.clone());
                        }
                    }
                }
                self.stats.updated += 1;
                Ok((id.clone(), false))
            }
        }
    }
}

async fn not_found(State(sim): State<SalesforceSim>, headers: HeaderMap) -> Response {
    match sim.admit(&headers).await {
        Err(r) => r,
        Ok(hold) => {
            held(
                hold,
                api_error(
                    StatusCode::NOT_FOUND,
                    "NOT_FOUND",
                    "The requested resource does not exist",
                    &[],
                ),
            )
            .await
        }
    }
}

/// Checks the sObject and external id field of the URL; the error answer if they are wrong.
fn check_target(i: &Inner, sobject: &str, field: &str) -> Option<Response> {
    if sobject != SOBJECT {
        return Some(api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        ));
    }
    if field != i.external_id_field {
        return Some(api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "Provided external ID field does not exist or is not accessible",
            &[field.to_owned()],
        ));
    }
    None
}

fn not_an_object() -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        "JSON_PARSER_ERROR",
        "The request body is not a JSON object",
        &[],
    )
}

fn json_object(body: &Bytes) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

async fn single_upsert(
    State(sim): State<SalesforceSim>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match sim.admit(&headers).await {
        Err(r) => r,
        Ok(hold) => {
            let answer = single_upsert_now(&sim, &version, &sobject, &field, &value, &body);
            held(hold, answer).await
        }
    }
}

fn single_upsert_now(
    sim: &SalesforceSim,
    version: &str,
    sobject: &str,
    field: &str,
    value: &str,
    body: &Bytes,
) -> Response {
    let mut i = sim.lock();
    i.stats.single_requests += 1;
    if let Some(r) = check_target(&i, sobject, field) {
        i.stats.rejected += 1;
        return r;
    }
    let Some(fields) = json_object(body) else {
        i.stats.rejected += 1;
        return not_an_object();
    };
    if let Some(unknown) = i.unknown_field(&fields) {
        let message = format!("No such column '{unknown}' on sobject of type {SOBJECT}");
        i.stats.rejected += 1;
        return api_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &message, &[]);
    }
    match i.upsert(value, &fields) {
        Ok((id, created)) => {
            if !created && i.legacy_204 {
                return StatusCode::NO_CONTENT.into_response();
            }
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                json!({ "id": id, "success": true, "errors": [], "created": created }).to_string(),
            )
                .into_response()
        }
        Err(e) if e.code == "DUPLICATE_EXTERNAL_ID" => {
            let urls: Vec<String> = i
                .by_external_id
                .get(value)
                .into_iter()
                .flatten()
                .map(|id| format!("/services/data/{version}/sobjects/{SOBJECT}/{id}"))
                .collect();
            (
                StatusCode::MULTIPLE_CHOICES,
                [(header::CONTENT_TYPE, "application/json")],
                json!(urls).to_string(),
            )
                .into_response()
        }
        Err(e) => {
            i.stats.rejected += 1;
            api_error(e.status, &e.code, message_for(&e.code), &e.fields)
        }
    }
}

async fn read_id(
    State(sim): State<SalesforceSim>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    match sim.admit(&headers).await {
        Err(r) => r,
        Ok(hold) => {
            let answer = read_id_now(&sim, &version, &sobject, &field, &value);
            held(hold, answer).await
        }
    }
}

fn read_id_now(
    sim: &SalesforceSim,
    version: &str,
    sobject: &str,
    field: &str,
    value: &str,
) -> Response {
    let mut i = sim.lock();
    i.stats.reads += 1;
    if let Some(r) = check_target(&i, sobject, field) {
        return r;
    }
    match i.by_external_id.get(value).map(Vec::as_slice) {
        Some([id]) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({
                "attributes": { "type": SOBJECT, "url": format!("/services/data/{version}/sobjects/{SOBJECT}/{id}") },
                "Id": id,
            })
            .to_string(),
        )
            .into_response(),
        Some([_, _, ..]) => api_error(
            StatusCode::MULTIPLE_CHOICES,
            "DUPLICATE_EXTERNAL_ID",
            "more than one record found for external id field",
            &[],
        ),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
            &[],
        ),
    }
}

async fn collection_upsert(
    State(sim): State<SalesforceSim>,
    Path((_version, sobject, field)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match sim.admit(&headers).await {
        Err(r) => r,
        Ok(hold) => {
            let answer = collection_upsert_now(&sim, &sobject, &field, &body);
            held(hold, answer).await
        }
    }
}

fn collection_upsert_now(
    sim: &SalesforceSim,
    sobject: &str,
    field: &str,
    body: &Bytes,
) -> Response {
    let mut i = sim.lock();
    i.stats.collection_requests += 1;
    if let Some(r) = check_target(&i, sobject, field) {
        return r;
    }
    let Some(request) = json_object(body) else {
        return not_an_object();
    };
    if request.get("allOrNone").and_then(Value::as_bool) == Some(true) {
        return api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "the simulator implements allOrNone=false only",
            &[],
        );
    }
    let records: Vec<Map<String, Value>> = match request.get("records").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(|r| r.as_object().cloned()).collect(),
        None => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "records is required",
                &[],
            );
        }
    };
    let count = records.len() as u64;
    i.stats.largest_collection = i.stats.largest_collection.max(count);
    if records.len() > 200 {
        i.stats.rejected += count;
        return api_error(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
            &[],
        );
    }
    // A field the Contact lacks fails the whole request, before anything is written.
    for r in &records {
        let typed = r
            .get("attributes")
            .and_then(|a| a.get("type"))
            .and_then(Value::as_str);
        if typed != Some(SOBJECT) {
            i.stats.rejected += count;
            return api_error(
                StatusCode::BAD_REQUEST,
                "INVALID_TYPE",
                "every record needs attributes.type of the sObject in the URL",
                &[],
            );
        }
        if let Some(unknown) = i.unknown_field(r) {
            let message = format!("No such column '{unknown}' on sobject of type {SOBJECT}");
            i.stats.rejected += count;
            return api_error(StatusCode::BAD_REQUEST, "INVALID_FIELD", &message, &[]);
        }
    }
    let ext_field = i.external_id_field.clone();
    let results: Vec<Value> = records
        .iter()
        .map(|r| {
            let Some(external_id) = r
                .get(&ext_field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            else {
                i.stats.rejected += 1;
                return json!({
                    "success": false,
                    "errors": [RecordError::new("MISSING_ARGUMENT", &[&ext_field]).body()],
                });
            };
            match i.upsert(external_id, r) {
                Ok((id, created)) => {
                    json!({ "id": id, "success": true, "errors": [], "created": created })
                }
                Err(e) => {
                    i.stats.rejected += 1;
                    json!({ "success": false, "errors": [e.body()] })
                }
            }
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Value::Array(results).to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_their_external_id() {
        let sim = SalesforceSim::new("t");
        let id = sim.seed("G1", json!({ "LastName": "A" }));
        assert_eq!(sim.id_of("G1"), Some(id.clone()));
        assert_eq!(id.len(), 18);
        assert_eq!(sim.external_id_of(&id), Some("G1".to_owned()));
        sim.seed("G1", json!({ "LastName": "B" }));
        assert_eq!(sim.record("G1"), None, "two records carry it now");
        assert_eq!(sim.len(), 2);
    }
}
