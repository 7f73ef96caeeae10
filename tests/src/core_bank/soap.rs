//! The SOAP face of the core-banking simulator.
//!
//! Two services, each in both SOAP bindings (the version is taken from the request's
//! content type: `text/xml` + `SOAPAction` is 1.1, `application/soap+xml; action=...` is
//! 1.2, and the envelope's namespace must agree):
//!
//! - `POST /ws/customers`, operation `GetCustomersChangedSince(Since, Page)`: the customers
//!   of the generated [`Bank`] whose `ChangedAt >= Since` (all when `Since` is empty), in
//!   change order, `page_size` per page, 1-based pages; an empty page ends the listing.
//!   Requires a WS-Security UsernameToken with `PasswordDigest` (or, when allowed,
//!   `PasswordText`): the digest is checked, `Created` must be within five minutes and a
//!   nonce is accepted once. Odd pages use a `cb:` prefix, even pages a default namespace,
//!   so clients must match on local names.
//! - `POST /DailyInfoWebServ/DailyInfo.asmx`, operation `GetCursOnDateXML(On_date)`:
//!   currency rates in the shape of the Bank of Russia's DailyInfo service
//!   (`GetCursOnDateXMLResult/ValuteData/ValuteCursOnDate`), made up for the date; no
//!   authentication.
//!
//! Faults ([`SoapFaultSpec`]) are queued and consumed one per request: Client/Sender and
//! Server/Receiver faults (HTTP 500; 400 for a 1.2 Sender fault), a plain HTTP status
//! without a fault (optionally with `Retry-After`), latency, a malformed answer cut off in
//! the middle of a record, or a normal answer (to place a fault later in the sequence).
//! Customer data is never logged.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use adapters::soap::SoapVersion;
use adapters::soap::response::element_to_json;
use adapters::soap::wsse::UsernameToken;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::task::JoinHandle;

use super::data::Bank;

pub const CUSTOMERS_PATH: &str = "/ws/customers";
pub const DAILY_INFO_PATH: &str = "/DailyInfoWebServ/DailyInfo.asmx";
/// The customer service's namespace.
pub const CUSTOMERS_NS: &str = "urn:corebank:customers:v1";
/// The action of `GetCustomersChangedSince`.
pub const CUSTOMERS_ACTION: &str = "urn:corebank:customers:v1/GetCustomersChangedSince";
/// Where the customer records are below `Body`.
pub const CUSTOMERS_RECORD_PATH: &str = "GetCustomersChangedSinceResponse/Customers/Customer";
/// The request body template of `GetCustomersChangedSince`.
pub const CUSTOMERS_TEMPLATE: &str = "<cb:GetCustomersChangedSince xmlns:cb=\"urn:corebank:customers:v1\"><cb:Since>{{cursor}}</cb:Since><cb:Page>{{page}}</cb:Page></cb:GetCustomersChangedSince>";
/// The DailyInfo namespace and `GetCursOnDateXML` action.
pub const DAILY_INFO_NS: &str = "http://web.cbr.ru/";
pub const DAILY_INFO_ACTION: &str = "http://web.cbr.ru/GetCursOnDateXML";
/// Where the rates are below `Body`.
pub const RATES_RECORD_PATH: &str =
    "GetCursOnDateXMLResponse/GetCursOnDateXMLResult/ValuteData/ValuteCursOnDate";
/// The request body template of `GetCursOnDateXML`.
pub const RATES_TEMPLATE: &str = "<GetCursOnDateXML xmlns=\"http://web.cbr.ru/\"><On_date>{{today}}T00:00:00</On_date></GetCursOnDateXML>";

/// How far `Created` may be from the simulator's clock.
const CREATED_WINDOW_SECS: i64 = 300;
/// The largest page served.
pub const MAX_PAGE_SIZE: usize = 50_000;

/// A fault as injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SoapFaultSpec {
    /// Answer normally (placing the next queued fault later).
    Pass {
        #[serde(default = "one")]
        count: u32,
    },
    /// A Client (1.1) / Sender (1.2) fault: the request is wrong. Permanent for clients.
    SenderFault {
        #[serde(default = "one")]
        count: u32,
    },
    /// A Server (1.1) / Receiver (1.2) fault with HTTP 500. Transient for clients.
    ReceiverFault {
        #[serde(default = "one")]
        count: u32,
    },
    /// This HTTP status without a SOAP fault, with `Retry-After` when given.
    Status {
        status: u16,
        #[serde(default)]
        retry_after_secs: Option<u64>,
        #[serde(default = "one")]
        count: u32,
    },
    /// Answer normally, but only after `millis`.
    Latency {
        millis: u64,
        #[serde(default = "one")]
        count: u32,
    },
    /// `200` with the answer cut off in the middle of a record.
    Malformed {
        #[serde(default = "one")]
        count: u32,
    },
}

fn one() -> u32 {
    1
}

/// One use of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Pass,
    Sender,
    Receiver,
    Status(u16, Option<u64>),
    Latency(u64),
    Malformed,
}

impl SoapFaultSpec {
    fn split(&self) -> (Fault, u32) {
        match *self {
            SoapFaultSpec::Pass { count } => (Fault::Pass, count),
            SoapFaultSpec::SenderFault { count } => (Fault::Sender, count),
            SoapFaultSpec::ReceiverFault { count } => (Fault::Receiver, count),
            SoapFaultSpec::Status {
                status,
                retry_after_secs,
                count,
            } => (Fault::Status(status, retry_after_secs), count),
            SoapFaultSpec::Latency { millis, count } => (Fault::Latency(millis), count),
            SoapFaultSpec::Malformed { count } => (Fault::Malformed, count),
        }
    }
}

/// Request counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SoapSimStats {
    /// Requests to either service.
    pub requests: u64,
    /// Requests in SOAP 1.1 and in SOAP 1.2.
    pub soap11: u64,
    pub soap12: u64,
    /// Well-formed answers with records (customer pages, rate tables).
    pub pages_served: u64,
    /// Records in those answers.
    pub records_served: u64,
    /// Empty customer pages served (the end of a listing).
    pub empty_pages: u64,
    /// Requests answered by an injected fault.
    pub faults_served: u64,
    /// Requests refused for their UsernameToken (missing, wrong digest, stale, replayed).
    pub auth_failures: u64,
}

struct Credentials {
    username: String,
    password: String,
    allow_text: bool,
}

struct Inner {
    bank: Bank,
    credentials: Option<Credentials>,
    page_size: usize,
    invalid_every: Option<u64>,
    faults: VecDeque<(Fault, u32)>,
    nonces: HashSet<String>,
    stats: SoapSimStats,
    change_cursor: u64,
}

/// A handle on one SOAP simulator; clones share it.
#[derive(Clone)]
pub struct CoreBankSoap {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for CoreBankSoap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = self.lock();
        f.debug_struct("CoreBankSoap")
            .field("customers", &i.bank.len())
            .field("page_size", &i.page_size)
            .field("stats", &i.stats)
            .finish_non_exhaustive()
    }
}

impl CoreBankSoap {
    /// A bank of `customers` customers generated from `seed` (the same customers as the
    /// REST face with the same seed), 500 per page, no authentication.
    pub fn new(customers: u64, seed: u64) -> Self {
        CoreBankSoap {
            inner: Arc::new(Mutex::new(Inner {
                bank: Bank::new(customers, seed),
                credentials: None,
                page_size: 500,
                invalid_every: None,
                faults: VecDeque::new(),
                nonces: HashSet::new(),
                stats: SoapSimStats::default(),
                change_cursor: 0,
            })),
        }
    }

    /// Requires a UsernameToken with a `PasswordDigest` of `password` on the customer
    /// service.
    pub fn with_credentials(
        self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.lock().credentials = Some(Credentials {
            username: username.into(),
            password: password.into(),
            allow_text: false,
        });
        self
    }

    /// Accepts `PasswordText` tokens too.
    pub fn allowing_password_text(self) -> Self {
        if let Some(c) = &mut self.lock().credentials {
            c.allow_text = true;
        }
        self
    }

    pub fn with_page_size(self, n: usize) -> Self {
        self.lock().page_size = n.clamp(1, MAX_PAGE_SIZE);
        self
    }

    /// Every `n`-th customer (index divisible by `n`) is served with an INN whose check
    /// digit is wrong, so a validating mapping quarantines it.
    pub fn with_invalid_every(self, n: u64) -> Self {
        self.lock().invalid_every = Some(n.max(1));
        self
    }

    /// Whether customer `index` is served with a broken INN.
    pub fn is_invalid(&self, index: u64) -> bool {
        self.lock()
            .invalid_every
            .is_some_and(|n| index.is_multiple_of(n))
    }

    /// Queues a fault.
    pub fn inject(&self, spec: SoapFaultSpec) {
        let (f, n) = spec.split();
        if n > 0 {
            self.lock().faults.push_back((f, n));
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

    /// Changes the next `n` customers after the last ones changed this way (a new version
    /// each, at the end of the change order).
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

    /// A copy of the bank as it is now.
    pub fn bank(&self) -> Bank {
        self.lock().bank.clone()
    }

    pub fn stats(&self) -> SoapSimStats {
        self.lock().stats
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route(CUSTOMERS_PATH, post(customers))
            .route(DAILY_INFO_PATH, post(daily_info))
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

impl Inner {
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

// ---------- the services ----------

/// A request taken apart: version, action, the envelope text.
struct Request {
    version: SoapVersion,
    action: String,
    text: String,
}

/// Reads the version and action from the headers and checks the envelope's namespace.
/// (The error is boxed: an answer is large next to a request.)
fn read_request(headers: &HeaderMap, body: &Bytes) -> Result<Request, Box<Response>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // The media type is case-insensitive, the action is not.
    let media = content_type.to_ascii_lowercase();
    let (version, action) = if media.starts_with("text/xml") {
        let action = headers
            .get("soapaction")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().trim_matches('"').to_owned());
        match action {
            Some(a) => (SoapVersion::V11, a),
            None => {
                return Err(Box::new(fault(
                    SoapVersion::V11,
                    FaultKind::Sender,
                    None,
                    "a SOAP 1.1 request needs a SOAPAction header",
                )));
            }
        }
    } else if media.starts_with("application/soap+xml") {
        let action = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("action="))
            .map(|a| a.trim_matches('"').to_owned())
            .next()
            .unwrap_or_default();
        (SoapVersion::V12, action)
    } else {
        return Err(Box::new(
            (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "expected text/xml (SOAP 1.1) or application/soap+xml (SOAP 1.2)",
            )
                .into_response(),
        ));
    };
    let Ok(text) = std::str::from_utf8(body) else {
        return Err(Box::new(fault(
            version,
            FaultKind::Sender,
            None,
            "the request is not UTF-8",
        )));
    };
    let envelope_tag = find_start_tag(text, "Envelope").unwrap_or_default();
    if !envelope_tag.contains(version.namespace()) {
        return Err(Box::new(fault(
            version,
            FaultKind::VersionMismatch,
            None,
            "the envelope's namespace does not match the content type",
        )));
    }
    Ok(Request {
        version,
        action,
        text: text.to_owned(),
    })
}

enum Gate {
    Answer(Response),
    Serve {
        delay: Option<Duration>,
        malformed: bool,
    },
}

fn gate(sim: &CoreBankSoap, version: SoapVersion) -> Gate {
    let mut i = sim.lock();
    i.stats.requests += 1;
    match version {
        SoapVersion::V11 => i.stats.soap11 += 1,
        SoapVersion::V12 => i.stats.soap12 += 1,
    }
    let served = |i: &mut Inner| i.stats.faults_served += 1;
    match i.next_fault() {
        None | Some(Fault::Pass) => Gate::Serve {
            delay: None,
            malformed: false,
        },
        Some(Fault::Latency(ms)) => Gate::Serve {
            delay: Some(Duration::from_millis(ms)),
            malformed: false,
        },
        Some(Fault::Malformed) => {
            served(&mut i);
            Gate::Serve {
                delay: None,
                malformed: true,
            }
        }
        Some(Fault::Sender) => {
            served(&mut i);
            Gate::Answer(fault(
                version,
                FaultKind::Sender,
                Some("cb:InvalidRequest"),
                "injected client fault: the request was refused",
            ))
        }
        Some(Fault::Receiver) => {
            served(&mut i);
            Gate::Answer(fault(
                version,
                FaultKind::Receiver,
                Some("cb:Unavailable"),
                "injected server fault: the database is busy",
            ))
        }
        Some(Fault::Status(status, retry_after)) => {
            served(&mut i);
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let mut r = (status, "<html><body>Service Unavailable</body></html>").into_response();
            if let Some(secs) = retry_after {
                r.headers_mut().insert(header::RETRY_AFTER, secs.into());
            }
            Gate::Answer(r)
        }
    }
}

async fn customers(State(sim): State<CoreBankSoap>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let version = req.version;
    if !req.action.is_empty() && req.action != CUSTOMERS_ACTION {
        return fault(
            version,
            FaultKind::Sender,
            Some("cb:UnknownAction"),
            "unknown action",
        );
    }
    if let Err(r) = authenticate(&sim, &req) {
        return *r;
    }
    let (delay, malformed) = match gate(&sim, version) {
        Gate::Answer(r) => return r,
        Gate::Serve { delay, malformed } => (delay, malformed),
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let Some(op) = find_element(&req.text, "GetCustomersChangedSince")
        .and_then(|x| element_to_json(x.as_bytes(), 1 << 20).ok())
    else {
        return fault(
            version,
            FaultKind::Sender,
            Some("cb:BadRequest"),
            "the body holds no GetCustomersChangedSince",
        );
    };
    let since = match op.get("Since").and_then(Value::as_str).map(str::trim) {
        None | Some("") => None,
        Some(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                return fault(
                    version,
                    FaultKind::Sender,
                    Some("cb:BadSince"),
                    "Since is not an RFC 3339 timestamp",
                );
            }
        },
    };
    let page = match op.get("Page").and_then(Value::as_str).map(str::trim) {
        None | Some("") => 1,
        Some(p) => match p.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return fault(
                    version,
                    FaultKind::Sender,
                    Some("cb:BadPage"),
                    "Page must be a whole number from 1",
                );
            }
        },
    };
    let mut i = sim.lock();
    let size = i.page_size;
    let indices: Vec<u64> = i
        .bank
        .ordered(since, None)
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .map(|s| s.index)
        .collect();
    let mut xml = String::with_capacity(indices.len() * 900 + 1024);
    let prefixed = page % 2 == 1;
    let (open_env, close_env) = envelope_tags(version);
    xml.push_str(&open_env);
    let p = if prefixed { "cb:" } else { "" };
    if prefixed {
        let _ = write!(
            xml,
            "<cb:GetCustomersChangedSinceResponse xmlns:cb=\"{CUSTOMERS_NS}\">"
        );
    } else {
        let _ = write!(
            xml,
            "<GetCustomersChangedSinceResponse xmlns=\"{CUSTOMERS_NS}\">"
        );
    }
    let _ = write!(xml, "<{p}Page>{page}</{p}Page><{p}Customers>");
    let mut cut_at = None;
    for (n, &index) in indices.iter().enumerate() {
        if malformed && n == indices.len() / 2 {
            cut_at = Some(xml.len());
        }
        let invalid = i
            .invalid_every
            .is_some_and(|every| index.is_multiple_of(every));
        customer_xml(&i.bank, index, invalid, p, &mut xml);
    }
    let _ = write!(xml, "</{p}Customers></{p}GetCustomersChangedSinceResponse>");
    xml.push_str(&close_env);
    if malformed {
        // Cut inside the middle record (or the envelope, for an empty page).
        let at = cut_at.map_or(xml.len() / 2, |c| c + 120).min(xml.len());
        let mut at = at;
        while !xml.is_char_boundary(at) {
            at -= 1;
        }
        xml.truncate(at);
    } else {
        i.stats.pages_served += 1;
        i.stats.records_served += indices.len() as u64;
        if indices.is_empty() {
            i.stats.empty_pages += 1;
        }
    }
    drop(i);
    xml_response(version, StatusCode::OK, xml)
}

/// Checks the UsernameToken when credentials are configured.
fn authenticate(sim: &CoreBankSoap, req: &Request) -> Result<(), Box<Response>> {
    let mut i = sim.lock();
    let Some(creds) = &i.credentials else {
        return Ok(());
    };
    let refuse = |i: &mut Inner, code: &str, text: &str| {
        i.stats.auth_failures += 1;
        Err(Box::new(fault(
            req.version,
            FaultKind::Security(code.to_owned()),
            None,
            text,
        )))
    };
    let Some(token) = username_token(&req.text) else {
        return refuse(&mut i, "InvalidSecurity", "a UsernameToken is required");
    };
    if token.username != creds.username {
        return refuse(
            &mut i,
            "FailedAuthentication",
            "the security token could not be authenticated",
        );
    }
    if !token.is_digest() && !creds.allow_text {
        return refuse(
            &mut i,
            "UnsupportedSecurityToken",
            "PasswordDigest is required",
        );
    }
    if !token.verify(&creds.password) {
        return refuse(
            &mut i,
            "FailedAuthentication",
            "the security token could not be authenticated",
        );
    }
    let fresh = DateTime::parse_from_rfc3339(token.created.trim())
        .map(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds().abs() <= CREATED_WINDOW_SECS)
        .unwrap_or(false);
    if token.is_digest() && !fresh {
        return refuse(
            &mut i,
            "MessageExpired",
            "Created is outside the accepted window",
        );
    }
    if token.is_digest() && !i.nonces.insert(token.nonce.clone()) {
        return refuse(&mut i, "FailedAuthentication", "the nonce was used before");
    }
    Ok(())
}

/// The UsernameToken of a request's `Security` header.
fn username_token(text: &str) -> Option<UsernameToken> {
    let security = find_element(text, "Security")?;
    let v = element_to_json(security.as_bytes(), 1 << 16).ok()?;
    let t = v.get("UsernameToken")?;
    let s = |v: Option<&Value>| -> String {
        match v {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(o)) => o
                .get("#text")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        }
    };
    let password = t.get("Password");
    Some(UsernameToken {
        username: s(t.get("Username")),
        password_type: password
            .and_then(|p| p.get("@Type"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        password: s(password),
        nonce: s(t.get("Nonce")),
        created: s(t.get("Created")),
    })
}

async fn daily_info(State(sim): State<CoreBankSoap>, headers: HeaderMap, body: Bytes) -> Response {
    let req = match read_request(&headers, &body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let version = req.version;
    if !req.action.is_empty() && req.action != DAILY_INFO_ACTION {
        return fault(
            version,
            FaultKind::Sender,
            None,
            "Server did not recognize the value of the SOAPAction",
        );
    }
    let (delay, malformed) = match gate(&sim, version) {
        Gate::Answer(r) => return r,
        Gate::Serve { delay, malformed } => (delay, malformed),
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let date = find_element(&req.text, "GetCursOnDateXML")
        .and_then(|x| element_to_json(x.as_bytes(), 1 << 16).ok())
        .and_then(|v| v.get("On_date").and_then(Value::as_str).map(str::to_owned))
        .and_then(|d| NaiveDate::parse_from_str(d.get(..10).unwrap_or_default(), "%Y-%m-%d").ok());
    let Some(date) = date else {
        return fault(
            version,
            FaultKind::Sender,
            None,
            "On_date is missing or not a date",
        );
    };
    let (open_env, close_env) = envelope_tags(version);
    let mut xml = open_env;
    let _ = write!(
        xml,
        "<GetCursOnDateXMLResponse xmlns=\"{DAILY_INFO_NS}\"><GetCursOnDateXMLResult><ValuteData OnDate=\"{}\" xmlns=\"\">",
        date.format("%Y%m%d")
    );
    let rates = rates_on(date);
    for r in &rates {
        let _ = write!(
            xml,
            "<ValuteCursOnDate><Vname>{:<40}</Vname><Vnom>{}</Vnom><Vcurs>{:.4}</Vcurs><Vcode>{}</Vcode><VchCode>{}</VchCode><VunitRate>{}</VunitRate></ValuteCursOnDate>",
            r.name,
            r.nominal,
            r.rate,
            r.code,
            r.char_code,
            r.unit_rate()
        );
    }
    xml.push_str("</ValuteData></GetCursOnDateXMLResult></GetCursOnDateXMLResponse>");
    xml.push_str(&close_env);
    if malformed {
        xml.truncate(xml.len() / 2);
    } else {
        let mut i = sim.lock();
        i.stats.pages_served += 1;
        i.stats.records_served += rates.len() as u64;
    }
    xml_response(version, StatusCode::OK, xml)
}

/// One currency's rate on a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub name: &'static str,
    pub nominal: u32,
    pub rate: f64,
    pub code: u32,
    pub char_code: &'static str,
}

impl Rate {
    /// The rate of one unit, as the service writes it.
    pub fn unit_rate(&self) -> String {
        let v = self.rate / f64::from(self.nominal);
        let s = format!("{v:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

const CURRENCIES: &[(&str, u32, u32, &str, f64)] = &[
    ("Австралийский доллар", 1, 36, "AUD", 59.0),
    ("Белорусский рубль", 1, 933, "BYN", 27.9),
    ("Доллар США", 1, 840, "USD", 91.0),
    ("Евро", 1, 978, "EUR", 98.5),
    ("Казахстанских тенге", 100, 398, "KZT", 20.1),
    ("Китайский юань", 1, 156, "CNY", 12.6),
    ("Фунт стерлингов", 1, 826, "GBP", 115.2),
    ("Швейцарский франк", 1, 756, "CHF", 103.4),
    ("Японских иен", 100, 392, "JPY", 60.9),
];

/// The made-up rates of `date`: the same date always gives the same rates.
pub fn rates_on(date: NaiveDate) -> Vec<Rate> {
    let day = u64::try_from(date.num_days_from_ce()).unwrap_or(0);
    CURRENCIES
        .iter()
        .enumerate()
        .map(|(k, &(name, nominal, code, char_code, base))| {
            let wobble = ((day * 31 + k as u64 * 17) % 200) as f64 / 100.0 - 1.0;
            Rate {
                name,
                nominal,
                rate: ((base + wobble) * 10_000.0).round() / 10_000.0,
                code,
                char_code,
            }
        })
        .collect()
}

// ---------- XML ----------

/// Envelope start (up to and with `<Body>`) and end, with the version's usual prefix.
fn envelope_tags(version: SoapVersion) -> (String, String) {
    let p = match version {
        SoapVersion::V11 => "soapenv",
        SoapVersion::V12 => "env",
    };
    (
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><{p}:Envelope xmlns:{p}=\"{}\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><{p}:Header/><{p}:Body>",
            version.namespace()
        ),
        format!("</{p}:Body></{p}:Envelope>"),
    )
}

fn xml_response(version: SoapVersion, status: StatusCode, xml: String) -> Response {
    let content_type = match version {
        SoapVersion::V11 => "text/xml; charset=utf-8",
        SoapVersion::V12 => "application/soap+xml; charset=utf-8",
    };
    (status, [(header::CONTENT_TYPE, content_type)], xml).into_response()
}

enum FaultKind {
    Sender,
    Receiver,
    VersionMismatch,
    /// A WS-Security fault code (`wsse:FailedAuthentication`, ...).
    Security(String),
}

/// A fault answer: 1.1 `faultcode`/`faultstring` with HTTP 500; 1.2 `Code`/`Reason` with
/// HTTP 400 for Sender faults and 500 otherwise (the SOAP 1.2 HTTP binding).
fn fault(version: SoapVersion, kind: FaultKind, subcode: Option<&str>, text: &str) -> Response {
    let (open_env, close_env) = envelope_tags(version);
    let p = match version {
        SoapVersion::V11 => "soapenv",
        SoapVersion::V12 => "env",
    };
    const WSSE: &str = adapters::soap::wsse::WSSE_NS;
    let mut xml = open_env;
    let status;
    match version {
        SoapVersion::V11 => {
            status = StatusCode::INTERNAL_SERVER_ERROR;
            let code = match &kind {
                FaultKind::Sender => format!("{p}:Client"),
                FaultKind::Receiver => format!("{p}:Server"),
                FaultKind::VersionMismatch => format!("{p}:VersionMismatch"),
                FaultKind::Security(c) => format!("wsse:{c}"),
            };
            let _ = write!(
                xml,
                "<{p}:Fault xmlns:wsse=\"{WSSE}\"><faultcode>{code}</faultcode><faultstring xml:lang=\"en\">{}</faultstring><detail/></{p}:Fault>",
                escape(text)
            );
        }
        SoapVersion::V12 => {
            let (code, sub) = match &kind {
                FaultKind::Sender => ("Sender", subcode.map(str::to_owned)),
                FaultKind::Receiver => ("Receiver", subcode.map(str::to_owned)),
                FaultKind::VersionMismatch => ("VersionMismatch", None),
                FaultKind::Security(c) => ("Sender", Some(format!("wsse:{c}"))),
            };
            status = if code == "Sender" {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let sub = sub
                .map(|s| format!("<{p}:Subcode><{p}:Value>{s}</{p}:Value></{p}:Subcode>"))
                .unwrap_or_default();
            let _ = write!(
                xml,
                "<{p}:Fault xmlns:wsse=\"{WSSE}\" xmlns:cb=\"{CUSTOMERS_NS}\"><{p}:Code><{p}:Value>{p}:{code}</{p}:Value>{sub}</{p}:Code><{p}:Reason><{p}:Text xml:lang=\"en\">{}</{p}:Text></{p}:Reason></{p}:Fault>",
                escape(text)
            );
        }
    }
    xml.push_str(&close_env);
    xml_response(version, status, xml)
}

/// One customer as a `Customer` element with prefix `p` (`"cb:"` or `""`).
pub fn customer_xml(bank: &Bank, index: u64, invalid_inn: bool, p: &str, out: &mut String) {
    let c = bank.customer(index);
    let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or_default();
    let mut inn = s("inn").to_owned();
    if invalid_inn && let Some(last) = inn.pop().and_then(|d| d.to_digit(10)) {
        inn.push(char::from(b'0' + ((last + 1) % 10) as u8));
    }
    let _ = write!(
        out,
        "<{p}Customer id=\"{}\" version=\"{}\" segment=\"{}\"><{p}Seq>{}</{p}Seq><{p}ChangedAt>{}</{p}ChangedAt><{p}Type>{}</{p}Type><{p}Status>{}</{p}Status><{p}Inn>{}</{p}Inn>",
        escape(s("id")),
        c.get("version").and_then(Value::as_u64).unwrap_or(1),
        escape(s("segment")),
        c.get("seq").and_then(Value::as_u64).unwrap_or(0),
        escape(s("updated_at")),
        escape(s("type")),
        escape(s("status")),
        escape(&inn),
    );
    if s("type") == "UL" {
        let _ = write!(
            out,
            "<{p}Organisation><{p}FullName>{}</{p}FullName></{p}Organisation>",
            escape(s("full_name"))
        );
    } else {
        let _ = write!(
            out,
            "<{p}Person><{p}LastName>{}</{p}LastName><{p}FirstName>{}</{p}FirstName><{p}MiddleName>{}</{p}MiddleName><{p}Passport>{}</{p}Passport><{p}BirthDate>{}</{p}BirthDate></{p}Person>",
            escape(s("last_name")),
            escape(s("first_name")),
            escape(s("middle_name")),
            escape(s("passport")),
            escape(s("birth_date")),
        );
    }
    let address = c.get("address");
    let a = |k: &str| {
        address
            .and_then(|x| x.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let _ = write!(
        out,
        "<{p}Contacts><{p}Phone kind=\"mobile\">{}</{p}Phone><{p}Email>{}</{p}Email></{p}Contacts><{p}Address><{p}Text>{}</{p}Text><{p}PostalCode>{}</{p}PostalCode></{p}Address></{p}Customer>",
        escape(s("phone")),
        escape(s("email")),
        escape(a("text")),
        escape(a("postal_code")),
    );
}

/// The `[sources.mapping]` section for the simulator's `Customer` records. (`PostalCode`
/// is not mapped: the generated bank's postal codes are not all six digits.)
pub fn soap_customer_mapping() -> String {
    r#"
[sources.mapping]
entity = "party"
key = "$['@id']"
version = "$.ChangedAt"
event_time = "$.ChangedAt"

[sources.mapping.fields]
kind = { path = "$.Type", map = { FL = "person", UL = "organisation" } }
last_name = "$.Person.LastName"
first_name = "$.Person.FirstName"
middle_name = "$.Person.MiddleName"
full_name = "$.Organisation.FullName"
inn = { path = "$.Inn", validate = "inn" }
passport = { path = "$.Person.Passport", validate = "passport" }
birth_date = "$.Person.BirthDate"
phones = { path = "$.Contacts.Phone[*]['#text']", validate = "phone" }
emails = { path = "$.Contacts.Email", validate = "email" }
address = "$.Address.Text"
segment = "$['@segment']"
status = "$.Status"
"#
    .to_owned()
}

fn escape(s: &str) -> String {
    adapters::soap::envelope::xml_escape(s).unwrap_or_default()
}

/// The first element with local name `local`, as text from its start tag to its end tag.
fn find_element<'a>(text: &'a str, local: &str) -> Option<&'a str> {
    let (start, qname) = find_start(text, local)?;
    let tag_end = start + text[start..].find('>')?;
    if text[..=tag_end].ends_with("/>") {
        return Some(&text[start..=tag_end]);
    }
    let close = format!("</{qname}>");
    let end = tag_end + text[tag_end..].find(&close)? + close.len();
    Some(&text[start..end])
}

/// The start tag of the first element with local name `local`.
fn find_start_tag<'a>(text: &'a str, local: &str) -> Option<&'a str> {
    let (start, _) = find_start(text, local)?;
    let end = start + text[start..].find('>')?;
    Some(&text[start..=end])
}

/// Byte offset and qualified name of the first start tag with local name `local`.
fn find_start<'a>(text: &'a str, local: &str) -> Option<(usize, &'a str)> {
    let mut from = 0;
    while let Some(rel) = text[from..].find('<') {
        let start = from + rel;
        let rest = &text[start + 1..];
        let name_len = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let qname = &rest[..name_len];
        let this_local = qname.rsplit(':').next().unwrap_or(qname);
        if this_local == local && !qname.starts_with(['/', '?', '!']) {
            return Some((start, qname));
        }
        from = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_by_local_name() {
        let t = "<s:Envelope xmlns:s=\"x\"><s:Header><wsse:Security a=\"1\"><wsse:UsernameToken/></wsse:Security></s:Header><s:Body><m:Op><m:Page>2</m:Page></m:Op></s:Body></s:Envelope>";
        assert_eq!(
            find_element(t, "Security"),
            Some("<wsse:Security a=\"1\"><wsse:UsernameToken/></wsse:Security>")
        );
        assert_eq!(
            find_element(t, "Op"),
            Some("<m:Op><m:Page>2</m:Page></m:Op>")
        );
        assert_eq!(
            find_element(t, "UsernameToken"),
            Some("<wsse:UsernameToken/>")
        );
        assert_eq!(
            find_start_tag(t, "Envelope"),
            Some("<s:Envelope xmlns:s=\"x\">")
        );
        assert_eq!(find_element(t, "Nope"), None);
    }

    #[test]
    fn a_customer_element_converts_to_what_the_mapping_reads() {
        let bank = Bank::new(20, 3);
        let mut xml = String::new();
        customer_xml(&bank, 4, false, "cb:", &mut xml);
        let xml = xml.replacen("<cb:Customer ", "<cb:Customer xmlns:cb=\"urn:x\" ", 1);
        let v = element_to_json(xml.as_bytes(), 1 << 20).unwrap();
        let c = bank.customer(4);
        assert_eq!(v["@id"], c["id"]);
        assert_eq!(v["ChangedAt"], c["updated_at"]);
        assert_eq!(v["Inn"], c["inn"]);
        assert_eq!(v["Contacts"]["Phone"]["#text"], c["phone"]);
        assert_eq!(v["Contacts"]["Phone"]["@kind"], "mobile");
        let mut bad = String::new();
        customer_xml(&bank, 4, true, "", &mut bad);
        assert!(!bad.contains(&format!(">{}<", c["inn"].as_str().unwrap())));
    }

    #[test]
    fn rates_are_a_function_of_the_date() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        assert_eq!(rates_on(d), rates_on(d));
        assert_ne!(rates_on(d), rates_on(d.succ_opt().unwrap()));
        let jpy = rates_on(d)
            .into_iter()
            .find(|r| r.char_code == "JPY")
            .unwrap();
        assert_eq!(jpy.nominal, 100);
        assert!(!jpy.unit_rate().ends_with('0'));
    }

    #[test]
    fn fault_specs_parse_with_default_counts() {
        let s: SoapFaultSpec = serde_json::from_str(r#"{"kind":"receiver_fault"}"#).unwrap();
        assert_eq!(s.split(), (Fault::Receiver, 1));
        let s: SoapFaultSpec = serde_json::from_str(
            r#"{"kind":"status","status":503,"retry_after_secs":1,"count":2}"#,
        )
        .unwrap();
        assert_eq!(s.split(), (Fault::Status(503, Some(1)), 2));
    }
}
