//! The REST CRM client: one upsert or merge per call, with or without retries.
//!
//! Contract: see the module documentation of [`crate::crm::rest`]. The client is cheap to
//! clone and safe to share between tasks; TLS uses rustls with the ring provider, installed
//! process-wide on first construction unless another provider already was.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};

use super::api::{ContactList, ContactMerge, ContactUpsert, CrmAck, ListedContact, MergeAck};
use super::config::CrmRestConfig;
use super::error::CrmError;
use crate::crm::read::CrmContact;

/// The most contacts one page of the listing may ask for.
pub const MAX_LIST_LIMIT: usize = 1_000;

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A client of the CRM contact API.
#[derive(Clone)]
pub struct CrmRestClient {
    http: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
    cfg: CrmRestConfig,
}

impl std::fmt::Debug for CrmRestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmRestClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct AckBody {
    id: String,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    version: Option<i64>,
}

#[derive(Deserialize)]
struct MergeAckBody {
    merged: bool,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
}

impl CrmRestClient {
    /// Validates the config and builds the HTTP client.
    pub fn new(cfg: CrmRestConfig) -> Result<Self, CrmError> {
        cfg.validate()?;
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout())
            .user_agent(concat!(
                "integration-hub-crm-rest/",
                env!("CARGO_PKG_VERSION")
            ));
        let http = cfg
            .tls
            .apply(builder)
            .map_err(|e| CrmError::Client {
                reason: e.to_string(),
            })?
            .build()
            .map_err(|e| CrmError::Client {
                reason: error_chain(&e),
            })?;
        let authorization = match &cfg.token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        CrmError::Config {
                            field: "token",
                            reason: "cannot be put into a header".to_owned(),
                        }
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(CrmRestClient {
            http,
            base: cfg.base_url.trim_end_matches('/').to_owned(),
            authorization,
            cfg,
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &CrmRestConfig {
        &self.cfg
    }

    /// The URL of a contact.
    pub fn contact_url(&self, external_id: &str) -> String {
        format!(
            "{}/contacts/{}",
            self.base,
            encode_path_segment(external_id)
        )
    }

    /// The URL that merges another contact into this one.
    pub fn merge_url(&self, survivor_external_id: &str) -> String {
        format!("{}/merge", self.contact_url(survivor_external_id))
    }

    /// One attempt to upsert a contact.
    pub async fn upsert(&self, upsert: &ContactUpsert) -> Result<CrmAck, CrmError> {
        let envelope_id = &upsert.envelope_id;
        check_path_segment(&upsert.external_id, "external_id", envelope_id)?;
        let request = self.http.put(self.contact_url(&upsert.external_id));
        let (status, bytes) = self.send(request, upsert, envelope_id).await?;
        parse_ack(status, &bytes, upsert)
    }

    /// Upserts a contact, retrying transient failures with jittered exponential backoff that
    /// never undercuts a `Retry-After`. Returns the acknowledgement and the number of
    /// attempts made; or, as [`CrmError::Attempts`] with that number, the first permanent
    /// error or the last transient one once `max_attempts` attempts were made.
    pub async fn upsert_with_retry(
        &self,
        upsert: &ContactUpsert,
    ) -> Result<(CrmAck, u32), CrmError> {
        self.with_retry("upsert", &upsert.envelope_id, || self.upsert(upsert))
            .await
    }

    /// One attempt to merge the contact `loser` into the contact `survivor` (external ids),
    /// for the envelope `envelope_id` (also the `Idempotency-Key`). `merged: false` means
    /// there was nothing to merge: the loser is unknown to the CRM or already merged into
    /// the survivor. A survivor the CRM does not have is `404`, a loser merged into another
    /// contact `409`: both permanent.
    pub async fn merge(
        &self,
        survivor: &str,
        loser: &str,
        envelope_id: &str,
    ) -> Result<MergeAck, CrmError> {
        check_path_segment(survivor, "survivor", envelope_id)?;
        if loser.is_empty() {
            return Err(CrmError::Request {
                envelope_id: envelope_id.to_owned(),
                reason: "the loser's external_id is empty".to_owned(),
            });
        }
        if survivor == loser {
            return Err(CrmError::Request {
                envelope_id: envelope_id.to_owned(),
                reason: "survivor and loser are the same contact".to_owned(),
            });
        }
        let body = ContactMerge {
            from: loser.to_owned(),
            envelope_id: envelope_id.to_owned(),
        };
        let request = self.http.post(self.merge_url(survivor));
        let (status, bytes) = self.send(request, &body, envelope_id).await?;
        parse_merge_ack(status, &bytes, envelope_id)
    }

    /// [`Self::merge`] with the retries, backoff and error classification of
    /// [`Self::upsert_with_retry`]; safe to repeat because a merge is idempotent.
    pub async fn merge_with_retry(
        &self,
        survivor: &str,
        loser: &str,
        envelope_id: &str,
    ) -> Result<(MergeAck, u32), CrmError> {
        self.with_retry("merge", envelope_id, || {
            self.merge(survivor, loser, envelope_id)
        })
        .await
    }

    /// One attempt to read a contact: `GET {base_url}/contacts/{external_id}` with the token.
    /// `None` on `404` (the CRM has no such contact); errors are classified as for upserts
    /// and name `read <external_id>` where an upsert names its envelope.
    pub async fn get(&self, external_id: &str) -> Result<Option<CrmContact>, CrmError> {
        let label = format!("read {external_id}");
        check_path_segment(external_id, "external_id", &label)?;
        let (status, retry_after, bytes) = self
            .exchange(self.http.get(self.contact_url(external_id)), &label)
            .await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(status_error(status, retry_after, &bytes, label));
        }
        parse_contact(status, &bytes, external_id, &label).map(Some)
    }

    /// [`Self::get`] with the retries, backoff and error classification of
    /// [`Self::upsert_with_retry`]; the contact (or `None`) and the attempts made.
    pub async fn get_with_retry(
        &self,
        external_id: &str,
    ) -> Result<(Option<CrmContact>, u32), CrmError> {
        let label = format!("read {external_id}");
        self.with_retry("read", &label, || self.get(external_id))
            .await
    }

    /// The URL of one page of the contact listing.
    pub fn list_url(&self, after: Option<&str>, limit: usize) -> String {
        let mut url = format!("{}/contacts?limit={limit}", self.base);
        if let Some(after) = after {
            url.push_str("&after=");
            url.push_str(&encode_path_segment(after));
        }
        url
    }

    /// One attempt to read a page of the contact listing: `GET {base_url}/contacts?after=
    /// &limit=` with the token; the contacts after `after` (from the first without it), at
    /// most `limit` (1 to [`MAX_LIST_LIMIT`]). Errors are classified as for upserts and
    /// name `list after <id>`.
    pub async fn list_contacts(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<ContactList, CrmError> {
        let label = format!("list after {}", after.unwrap_or("(start)"));
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            return Err(CrmError::Request {
                envelope_id: label,
                reason: format!("limit must be 1 to {MAX_LIST_LIMIT}, got {limit}"),
            });
        }
        let (status, retry_after, bytes) = self
            .exchange(self.http.get(self.list_url(after, limit)), &label)
            .await?;
        if !status.is_success() {
            return Err(status_error(status, retry_after, &bytes, label));
        }
        parse_list(status, &bytes, after, &label)
    }

    /// [`Self::list_contacts`] with the retries, backoff and error classification of
    /// [`Self::upsert_with_retry`] (reading a page twice is harmless).
    pub async fn list_contacts_with_retry(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(ContactList, u32), CrmError> {
        let label = format!("list after {}", after.unwrap_or("(start)"));
        self.with_retry("list", &label, || self.list_contacts(after, limit))
            .await
    }

    /// Sends one request with the JSON `body` and the headers every call carries; the
    /// status and body of a success answer, or the error.
    async fn send(
        &self,
        request: RequestBuilder,
        body: &impl Serialize,
        envelope_id: &str,
    ) -> Result<(StatusCode, Vec<u8>), CrmError> {
        let body = serde_json::to_vec(body).map_err(|e| CrmError::Request {
            envelope_id: envelope_id.to_owned(),
            reason: format!("cannot encode the body: {:?}", e.classify()),
        })?;
        let request = request
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", envelope_id)
            .body(body);
        let (status, retry_after, bytes) = self.exchange(request, envelope_id).await?;
        if status.is_success() {
            return Ok((status, bytes));
        }
        Err(status_error(
            status,
            retry_after,
            &bytes,
            envelope_id.to_owned(),
        ))
    }

    /// The one retry loop of the client: repeats `attempt` while it fails transiently, at
    /// most `max_attempts` times, waiting per the backoff and never less than a
    /// `Retry-After` asks (capped at [`MAX_RETRY_AFTER`]). The result and the attempts made,
    /// or [`CrmError::Attempts`].
    async fn with_retry<T, F, Fut>(
        &self,
        operation: &'static str,
        envelope_id: &str,
        mut attempt: F,
    ) -> Result<(T, u32), CrmError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CrmError>>,
    {
        let attempts = AtomicU32::new(0);
        let counter = &attempts;
        let result = (|| {
            counter.fetch_add(1, Ordering::Relaxed);
            attempt()
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(CrmError::is_transient)
        .adjust(|err, next| {
            next.map(|delay| match err.retry_after() {
                Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
                None => delay,
            })
        })
        .notify(|err, delay| {
            tracing::warn!(
                operation,
                envelope_id = %envelope_id,
                attempt = counter.load(Ordering::Relaxed),
                max_attempts = self.cfg.max_attempts,
                status = err.status(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "crm {operation} failed, retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        match result {
            Ok(value) => Ok((value, made)),
            Err(err) => {
                tracing::warn!(
                    operation,
                    envelope_id = %envelope_id,
                    attempts = made,
                    transient = err.is_transient(),
                    status = err.status(),
                    error = %err,
                    "crm {operation} gave up"
                );
                Err(CrmError::Attempts {
                    attempts: made,
                    last: Box::new(err),
                })
            }
        }
    }

    fn backoff(&self) -> ExponentialBuilder {
        crate::transport::backoff(
            self.cfg.initial_backoff(),
            self.cfg.max_backoff(),
            self.cfg.max_attempts,
        )
    }

    /// Sends `request` with the credentials; the answer's status, `Retry-After` and body.
    /// `label` names the request in a transport error.
    async fn exchange(
        &self,
        mut request: RequestBuilder,
        label: &str,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), CrmError> {
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(e, label))?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, label))?;
        Ok((status, retry_after, Vec::from(bytes)))
    }

    fn transport_error(&self, e: reqwest::Error, envelope_id: &str) -> CrmError {
        use crate::transport::Failure;
        let envelope_id = envelope_id.to_owned();
        match crate::transport::classify(e) {
            Failure::Timeout => CrmError::Timeout {
                envelope_id,
                timeout_ms: self.cfg.timeout_ms,
            },
            Failure::Request(reason) => CrmError::Request {
                envelope_id,
                reason,
            },
            Failure::Connect(reason) => CrmError::Connect {
                envelope_id,
                reason,
            },
            Failure::Transport(reason) => CrmError::Transport {
                envelope_id,
                reason,
            },
        }
    }
}

fn parse_ack(status: StatusCode, bytes: &[u8], upsert: &ContactUpsert) -> Result<CrmAck, CrmError> {
    let bad = |reason: String| CrmError::BadResponse {
        status: status.as_u16(),
        envelope_id: upsert.envelope_id.clone(),
        reason,
    };
    let body: AckBody = serde_json::from_slice(bytes).map_err(|e| {
        bad(match e.classify() {
            serde_json::error::Category::Data => {
                "not a contact ack (expected id, external_id, version)".to_owned()
            }
            other => format!(
                "not json ({other:?} error at line {} column {})",
                e.line(),
                e.column()
            ),
        })
    })?;
    if body.id.is_empty() {
        return Err(bad("the contact id is empty".to_owned()));
    }
    Ok(CrmAck {
        id: body.id,
        external_id: body
            .external_id
            .unwrap_or_else(|| upsert.external_id.clone()),
        version: body.version.unwrap_or(upsert.version),
        created: status == StatusCode::CREATED,
    })
}

#[derive(Deserialize)]
struct ContactBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    external_id: Option<String>,
    #[serde(default)]
    version: Option<i64>,
    #[serde(default)]
    fields: Option<serde_json::Value>,
    #[serde(default)]
    merged_into: Option<String>,
    #[serde(default)]
    source: Option<String>,
}

/// Why a body did not parse: `wrong_shape` for valid JSON of another shape, else where the
/// JSON broke (never the body itself: it holds customer data).
fn body_error(e: &serde_json::Error, wrong_shape: &str) -> String {
    match e.classify() {
        serde_json::error::Category::Data => wrong_shape.to_owned(),
        other => format!(
            "not json ({other:?} error at line {} column {})",
            e.line(),
            e.column()
        ),
    }
}

/// The body of `GET /contacts/{external_id}`: `fields` must be an object (or absent).
fn parse_contact(
    status: StatusCode,
    bytes: &[u8],
    external_id: &str,
    label: &str,
) -> Result<CrmContact, CrmError> {
    let bad = |reason: String| CrmError::BadResponse {
        status: status.as_u16(),
        envelope_id: label.to_owned(),
        reason,
    };
    let body: ContactBody = serde_json::from_slice(bytes).map_err(|e| {
        bad(body_error(
            &e,
            "not a contact (expected id, external_id, version, fields)",
        ))
    })?;
    contact_of(body, external_id).map_err(bad)
}

/// The contact of a parsed body; `fields` must be an object (or absent).
fn contact_of(body: ContactBody, external_id: &str) -> Result<CrmContact, String> {
    let fields = match body.fields {
        None | Some(serde_json::Value::Null) => serde_json::Map::new(),
        Some(serde_json::Value::Object(map)) => map,
        Some(_) => return Err("fields is not an object".to_owned()),
    };
    Ok(CrmContact {
        crm_id: body.id.filter(|id| !id.is_empty()),
        external_id: body.external_id.unwrap_or_else(|| external_id.to_owned()),
        version: body.version,
        fields,
        merged_into: body.merged_into,
    })
}

#[derive(Deserialize)]
struct ListBody {
    contacts: Vec<serde_json::Value>,
    #[serde(default)]
    next: Option<String>,
}

/// The body of `GET /contacts?after=&limit=`: every contact as for `GET /contacts/{id}`,
/// each with an external id greater than `after` and than the one before it (a listing out
/// of order could skip contacts, so it is refused), and a `next` that moves forward.
fn parse_list(
    status: StatusCode,
    bytes: &[u8],
    after: Option<&str>,
    label: &str,
) -> Result<ContactList, CrmError> {
    let bad = |reason: String| CrmError::BadResponse {
        status: status.as_u16(),
        envelope_id: label.to_owned(),
        reason,
    };
    let body: ListBody = serde_json::from_slice(bytes).map_err(|e| {
        bad(body_error(
            &e,
            "not a contact listing (expected contacts, next)",
        ))
    })?;
    let mut contacts = Vec::with_capacity(body.contacts.len());
    let mut last: Option<String> = after.map(str::to_owned);
    for (i, item) in body.contacts.into_iter().enumerate() {
        let at = |reason: &str| bad(format!("contact {i} of the page: {reason}"));
        let parsed: ContactBody = serde_json::from_value(item)
            .map_err(|_| at("not a contact (expected id, external_id, version, fields)"))?;
        let Some(external_id) = parsed.external_id.clone().filter(|id| !id.is_empty()) else {
            return Err(at("external_id is missing"));
        };
        if last.as_deref().is_some_and(|l| external_id.as_str() <= l) {
            return Err(at(
                "not after the one before it (the listing must be ordered)",
            ));
        }
        let source = parsed.source.clone();
        let contact = contact_of(parsed, &external_id).map_err(|reason| at(&reason))?;
        last = Some(external_id);
        contacts.push(ListedContact { contact, source });
    }
    if let (Some(next), Some(after)) = (&body.next, after)
        && next.as_str() <= after
    {
        return Err(bad("next does not move forward".to_owned()));
    }
    Ok(ContactList {
        contacts,
        next: body.next,
    })
}

fn parse_merge_ack(
    status: StatusCode,
    bytes: &[u8],
    envelope_id: &str,
) -> Result<MergeAck, CrmError> {
    let bad = |reason: String| CrmError::BadResponse {
        status: status.as_u16(),
        envelope_id: envelope_id.to_owned(),
        reason,
    };
    let body: MergeAckBody = serde_json::from_slice(bytes).map_err(|e| {
        bad(match e.classify() {
            serde_json::error::Category::Data => {
                "not a merge ack (expected merged and id)".to_owned()
            }
            other => format!(
                "not json ({other:?} error at line {} column {})",
                e.line(),
                e.column()
            ),
        })
    })?;
    if body.id.as_deref() == Some("") {
        return Err(bad("the contact id is empty".to_owned()));
    }
    Ok(MergeAck {
        merged: body.merged,
        id: body.id,
    })
}

/// Refuses an external id that cannot be a path segment of its own.
fn check_path_segment(external_id: &str, what: &str, envelope_id: &str) -> Result<(), CrmError> {
    if matches!(external_id, "" | "." | "..") {
        return Err(CrmError::Request {
            envelope_id: envelope_id.to_owned(),
            reason: format!("{what} is empty or a dot segment"),
        });
    }
    Ok(())
}

/// `Retry-After` as delta-seconds or an HTTP date.
/// A refusal: its status, `Retry-After`, and the body's `error` code when it is one to show.
fn status_error(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    envelope_id: String,
) -> CrmError {
    let code = serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error)
        .filter(|c| usable_code(c));
    CrmError::Status {
        status: status.as_u16(),
        code,
        retry_after,
        envelope_id,
    }
}

pub(crate) fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Error codes are short identifiers; anything else is not kept.
pub(crate) fn usable_code(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Percent-encodes everything but the unreserved characters, so the value is one segment.
pub fn encode_path_segment(segment: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0F)]));
        }
    }
    out
}

/// An error and its sources, joined; reqwest's own text is short and the cause is below it.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
