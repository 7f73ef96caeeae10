//! The REST face of the core-banking simulator.
//!
//! - `GET /api/v1/customers?updated_since=<RFC 3339>` (or `since_seq=<n>`), ordered by
//!   change sequence (= `updated_at` order), records at or after the cursor. Paging as the
//!   instance was built ([`Paging`]): `page` + `page_size` (1-based pages), `offset` +
//!   `limit`, `cursor` + `page_size` with `meta.next_cursor` in the body, or `page_size`
//!   with a `Link: <...>; rel="next"` header (which carries `after=<seq>`). Body:
//!   `{"data": [...], "meta": {...}}`. `page_size`/`limit` at most 1000.
//! - `GET /api/v1/customers/{id}`, `GET /api/v1/customers/{id}/accounts`,
//!   `GET /api/v1/accounts/{id}/transactions`: one customer, its accounts, an account's
//!   transactions (`{"data": [...]}`).
//! - `POST /oauth/token`: OAuth 2.0 client credentials (HTTP Basic or `client_id` /
//!   `client_secret` in the form body) → `{"access_token", "token_type": "bearer",
//!   "expires_in"}`; tokens expire. Or, per instance, an API key in `X-Api-Key`.
//! - Admin (no auth): `POST /_sim/faults` (see [`super::faults`]), `POST /_sim/changes`
//!   (`{"count": n}` changes the `n` customers after the last changed one),
//!   `GET /_sim/stats`.
//!
//! Customer data is never logged.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::data::{Bank, State as CustomerState};
use super::faults::{Fault, FaultSpec};

/// The largest page served.
pub const MAX_PAGE_SIZE: usize = 1000;

/// How the instance pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Paging {
    PageNumber,
    Offset,
    CursorToken,
    LinkHeader,
}

/// How the instance authenticates callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimAuth {
    None,
    ApiKey(String),
    OAuth2 {
        client_id: String,
        client_secret: String,
        lifetime: Duration,
    },
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests to the data endpoints.
    pub requests: u64,
    /// Pages served with status 200 and a well-formed body.
    pub pages_served: u64,
    /// Records in those pages.
    pub records_served: u64,
    /// Token requests, granted or not.
    pub token_requests: u64,
    /// Tokens granted.
    pub tokens_granted: u64,
    /// Requests refused with 401.
    pub unauthorized: u64,
    /// Requests answered by an injected fault (status, rate limit, malformed body).
    pub faults_served: u64,
}

struct Inner {
    bank: Bank,
    paging: Paging,
    auth: SimAuth,
    tokens: HashMap<String, Instant>,
    faults: VecDeque<(Fault, u32)>,
    stats: SimStats,
    /// The next page is to repeat the last record of the page being built.
    repeat_pending: bool,
    /// The record the next page starts with, again.
    repeat_carry: Option<Value>,
    /// Where `POST /_sim/changes` continues.
    change_cursor: u64,
}

/// A handle on one simulator; clones share it.
#[derive(Clone)]
pub struct CoreBankSim {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for CoreBankSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("CoreBankSim")
            .field("customers", &i.bank.len())
            .field("paging", &i.paging)
            .field("stats", &i.stats)
            .finish_non_exhaustive()
    }
}

impl CoreBankSim {
    /// A bank of `customers` customers generated from `seed`, page-number paging, no auth.
    pub fn new(customers: u64, seed: u64) -> Self {
        CoreBankSim {
            inner: Arc::new(Mutex::new(Inner {
                bank: Bank::new(customers, seed),
                paging: Paging::PageNumber,
                auth: SimAuth::None,
                tokens: HashMap::new(),
                faults: VecDeque::new(),
                stats: SimStats::default(),
                repeat_pending: false,
                repeat_carry: None,
                change_cursor: 0,
            })),
        }
    }

    pub fn with_paging(self, paging: Paging) -> Self {
        self.lock().paging = paging;
        self
    }

    /// Requires `X-Api-Key: <key>`.
    pub fn with_api_key(self, key: impl Into<String>) -> Self {
        self.lock().auth = SimAuth::ApiKey(key.into());
        self
    }

    /// Requires a bearer token from `POST /oauth/token` (client credentials).
    pub fn with_oauth2(
        self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        lifetime: Duration,
    ) -> Self {
        self.lock().auth = SimAuth::OAuth2 {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            lifetime,
        };
        self
    }

    /// Queues a fault (or clears the queue).
    pub fn inject(&self, spec: FaultSpec) {
        let mut i = self.lock();
        match spec.split() {
            None => i.faults.clear(),
            Some((_, 0)) => {}
            Some((f, n)) => i.faults.push_back((f, n)),
        }
    }

    /// How many requests the queued faults will still answer.
    pub fn pending_faults(&self) -> u64 {
        self.lock().faults.iter().map(|(_, n)| u64::from(*n)).sum()
    }

    /// Changes the customers with these indices (a new version each).
    pub fn change(&self, indices: &[u64]) {
        let mut i = self.lock();
        let now = Utc::now();
        for &ix in indices {
            i.bank.change(ix, now);
        }
    }

    /// Changes the next `n` customers after the last ones changed this way.
    pub fn change_next(&self, n: u64) -> Vec<u64> {
        let mut i = self.lock();
        let len = i.bank.len();
        if len == 0 {
            return Vec::new();
        }
        let now = Utc::now();
        let start = i.change_cursor;
        let picked: Vec<u64> = (0..n.min(len)).map(|k| (start + k * 7) % len).collect();
        for &ix in &picked {
            i.bank.change(ix, now);
        }
        i.change_cursor = (start + n.min(len) * 7 + 1) % len;
        picked
    }

    /// A copy of the bank as it is now (to compute what a client should have read).
    pub fn bank(&self) -> Bank {
        self.lock().bank.clone()
    }

    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/customers", get(list_customers))
            .route("/api/v1/customers/{id}", get(get_customer))
            .route("/api/v1/customers/{id}/accounts", get(get_accounts))
            .route("/api/v1/accounts/{id}/transactions", get(get_transactions))
            .route("/oauth/token", post(token))
            .route("/_sim/faults", post(post_fault))
            .route("/_sim/changes", post(post_changes))
            .route("/_sim/stats", get(get_stats))
            .with_state(self.clone())
    }

    /// Binds `addr` and serves in a background task.
    pub async fn serve(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = self.router();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok((local, task))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking handler cannot leave the counters in a state that matters here.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": code, "message": message})),
    )
        .into_response()
}

impl Inner {
    /// `None` when the caller may go on, else the refusal to send.
    fn authorize(&mut self, headers: &HeaderMap) -> Option<Response> {
        let ok = match &self.auth {
            SimAuth::None => true,
            SimAuth::ApiKey(key) => {
                headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(key.as_str())
            }
            SimAuth::OAuth2 { .. } => headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| self.tokens.get(t))
                .is_some_and(|expires| Instant::now() < *expires),
        };
        if ok {
            return None;
        }
        self.stats.unauthorized += 1;
        Some(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "valid credentials are required",
        ))
    }

    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, left) = self.faults.front_mut()?;
        let fault = *fault;
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }
}

/// What a data request is to get before (or instead of) its answer.
enum Gate {
    Answer(Response),
    Serve { delay: Option<Duration> },
}

fn gate(sim: &CoreBankSim, headers: &HeaderMap) -> Gate {
    let mut i = sim.lock();
    i.stats.requests += 1;
    if let Some(r) = i.authorize(headers) {
        return Gate::Answer(r);
    }
    match i.next_fault() {
        None => Gate::Serve { delay: None },
        Some(Fault::Latency(ms) | Fault::Hang(ms)) => Gate::Serve {
            delay: Some(Duration::from_millis(ms)),
        },
        Some(Fault::RepeatRecord) => {
            i.repeat_pending = true;
            Gate::Serve { delay: None }
        }
        Some(Fault::Status(s)) => {
            i.stats.faults_served += 1;
            let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Gate::Answer(error(
                status,
                "injected_fault",
                "fault injected by the simulator",
            ))
        }
        Some(Fault::RateLimit(secs)) => {
            i.stats.faults_served += 1;
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests",
            );
            r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            Gate::Answer(r)
        }
        Some(Fault::InvalidJson) => {
            i.stats.faults_served += 1;
            Gate::Answer(
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    "{\"data\": [{\"id\": \"C0",
                )
                    .into_response(),
            )
        }
        Some(Fault::WrongShape) => {
            i.stats.faults_served += 1;
            Gate::Answer(
                (
                    StatusCode::OK,
                    axum::Json(json!({"data": {"message": "maintenance"}})),
                )
                    .into_response(),
            )
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    updated_since: Option<String>,
    since_seq: Option<u64>,
    page: Option<u64>,
    page_size: Option<usize>,
    offset: Option<usize>,
    limit: Option<usize>,
    cursor: Option<String>,
    after: Option<u64>,
}

async fn list_customers(
    State(sim): State<CoreBankSim>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    match gate(&sim, &headers) {
        Gate::Answer(r) => return r,
        Gate::Serve { delay: Some(d) } => tokio::time::sleep(d).await,
        Gate::Serve { delay: None } => {}
    }
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "unusable query parameters",
        );
    };
    let since = match q.updated_since.as_deref().map(DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t.with_timezone(&Utc)),
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                "updated_since must be RFC 3339",
            );
        }
    };
    let mut i = sim.lock();
    let paging = i.paging;
    let size = q.page_size.or(q.limit).unwrap_or(100);
    if size == 0 || size > MAX_PAGE_SIZE {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "page size must be between 1 and 1000",
        );
    }
    let after = match (paging, &q.cursor, q.after) {
        (Paging::CursorToken, Some(t), _) => match decode_token(t) {
            Some(seq) => Some(seq),
            None => return error(StatusCode::BAD_REQUEST, "bad_request", "unknown cursor"),
        },
        (Paging::LinkHeader, _, Some(a)) => Some(a),
        _ => None,
    };
    let skip = match paging {
        Paging::PageNumber => match q.page.unwrap_or(1) {
            0 => return error(StatusCode::BAD_REQUEST, "bad_request", "pages start at 1"),
            p => usize::try_from(p - 1)
                .unwrap_or(usize::MAX)
                .saturating_mul(size),
        },
        Paging::Offset => q.offset.unwrap_or(0),
        Paging::CursorToken | Paging::LinkHeader => 0,
    };
    let (page, more) = {
        let mut states = i
            .bank
            .ordered(since, q.since_seq)
            .filter(|s| after.is_none_or(|a| s.seq > a))
            .skip(skip);
        let page: Vec<CustomerState> = states.by_ref().take(size).collect();
        (page, states.next().is_some())
    };
    let mut data: Vec<Value> = page.iter().map(|s| i.bank.customer(s.index)).collect();
    if let Some(again) = i.repeat_carry.take() {
        data.insert(0, again);
    }
    if std::mem::take(&mut i.repeat_pending) {
        i.repeat_carry = data.last().cloned();
    }
    i.stats.pages_served += 1;
    i.stats.records_served += data.len() as u64;
    let next_seq = page.last().filter(|_| more).map(|s| s.seq);
    let mut meta = json!({"page_size": size});
    match paging {
        Paging::PageNumber => meta["page"] = json!(q.page.unwrap_or(1)),
        Paging::Offset => meta["offset"] = json!(skip),
        Paging::CursorToken => meta["next_cursor"] = json!(next_seq.map(encode_token)),
        Paging::LinkHeader => {}
    }
    let mut response = axum::Json(json!({"data": data, "meta": meta})).into_response();
    if let (Paging::LinkHeader, Some(seq)) = (paging, next_seq) {
        let mut link = format!("/api/v1/customers?after={seq}&page_size={size}");
        if let Some(t) = &q.updated_since {
            link.push_str("&updated_since=");
            link.push_str(&form_encode(t));
        }
        if let Some(s) = q.since_seq {
            link.push_str(&format!("&since_seq={s}"));
        }
        if let Ok(v) = format!("<{link}>; rel=\"next\"").parse() {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    response
}

/// Percent-encodes a query value (an RFC 3339 time has `+` and `:`).
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Tokens are opaque to clients: the last sequence served, obscured.
fn encode_token(seq: u64) -> String {
    format!("c1-{:x}", seq ^ 0x5A5A_5A5A)
}

fn decode_token(t: &str) -> Option<u64> {
    let hex = t.strip_prefix("c1-")?;
    u64::from_str_radix(hex, 16).ok().map(|v| v ^ 0x5A5A_5A5A)
}

async fn get_customer(
    State(sim): State<CoreBankSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Gate::Answer(r) = gate(&sim, &headers) {
        return r;
    }
    let i = sim.lock();
    match i.bank.index_of(&id) {
        Some(ix) => axum::Json(i.bank.customer(ix)).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such customer"),
    }
}

async fn get_accounts(
    State(sim): State<CoreBankSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Gate::Answer(r) = gate(&sim, &headers) {
        return r;
    }
    let i = sim.lock();
    let Some(ix) = i.bank.index_of(&id) else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such customer");
    };
    let data: Vec<Value> = (0..i.bank.account_count(ix))
        .filter_map(|k| i.bank.account(ix, k))
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

async fn get_transactions(
    State(sim): State<CoreBankSim>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Gate::Answer(r) = gate(&sim, &headers) {
        return r;
    }
    let i = sim.lock();
    // "A00000001-0": customer number and account index.
    let parsed = id
        .strip_prefix('A')
        .and_then(|rest| rest.split_once('-'))
        .and_then(|(c, k)| Some((c.parse::<u64>().ok()?, k.parse::<u64>().ok()?)));
    match parsed {
        Some((c, k)) if c >= 1 && i.bank.account(c - 1, k).is_some() => {
            axum::Json(json!({ "data": i.bank.transactions(c - 1, k) })).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such account"),
    }
}

async fn token(State(sim): State<CoreBankSim>, headers: HeaderMap, body: String) -> Response {
    let mut i = sim.lock();
    i.stats.token_requests += 1;
    let SimAuth::OAuth2 {
        client_id,
        client_secret,
        lifetime,
    } = i.auth.clone()
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no token endpoint");
    };
    let form: HashMap<String, String> = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode_form(k), decode_form(v)))
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only client_credentials",
        );
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(decode_basic);
    let presented = basic.or_else(|| {
        Some((
            form.get("client_id")?.clone(),
            form.get("client_secret")?.clone(),
        ))
    });
    if presented != Some((client_id, client_secret)) {
        i.stats.unauthorized += 1;
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    i.stats.tokens_granted += 1;
    let token = format!("sim-{}-{}", i.stats.tokens_granted, std::process::id());
    i.tokens.insert(token.clone(), Instant::now() + lifetime);
    axum::Json(json!({
        "access_token": token,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs(),
    }))
    .into_response()
}

/// `application/x-www-form-urlencoded` decoding of one name or value.
fn decode_form(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut k = 0;
    while k < bytes.len() {
        match bytes[k] {
            b'+' => out.push(b' '),
            b'%' if k + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[k + 1]), hex(bytes[k + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        k += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        k += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// HTTP Basic credentials, each part form-decoded (RFC 6749 2.3.1).
fn decode_basic(b64: &str) -> Option<(String, String)> {
    let raw = decode_base64(b64.trim())?;
    let text = String::from_utf8(raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((decode_form(id), decode_form(secret)))
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    Some(out)
}

async fn post_fault(
    State(sim): State<CoreBankSim>,
    axum::Json(spec): axum::Json<FaultSpec>,
) -> Response {
    sim.inject(spec);
    (StatusCode::NO_CONTENT, "").into_response()
}

#[derive(Deserialize)]
struct ChangeRequest {
    count: u64,
}

async fn post_changes(
    State(sim): State<CoreBankSim>,
    axum::Json(req): axum::Json<ChangeRequest>,
) -> Response {
    let changed = sim.change_next(req.count);
    axum::Json(json!({"changed": changed.len()})).into_response()
}

async fn get_stats(State(sim): State<CoreBankSim>) -> Response {
    axum::Json(sim.stats()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_form_decoding_round_trip() {
        assert_eq!(decode_token(&encode_token(12_345)), Some(12_345));
        assert_eq!(decode_token("nope"), None);
        assert_eq!(decode_form("a%20b+c%2B"), "a b c+");
        assert_eq!(decode_form("100%"), "100%");
        assert_eq!(
            decode_base64("aHViOnMzY3JldA=="),
            Some(b"hub:s3cret".to_vec())
        );
        assert_eq!(
            decode_basic("aHViOnMlM0FjcmV0"),
            Some(("hub".to_string(), "s:cret".to_string()))
        );
    }
}
