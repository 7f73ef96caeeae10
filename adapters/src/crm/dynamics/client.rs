//! The Dataverse client: one upsert per record by alternate key, several in flight.
//!
//! Contract: see the module documentation of [`crate::crm::dynamics`]. One attempt per call
//! of [`DynamicsConnector::upsert_one`]; the retries are the shared loop of
//! [`crate::crm::connector`]. A `429` with `Retry-After` pauses the whole connector (every
//! batch, every task) until the time it names: Dataverse extends the wait of a client that
//! keeps sending.

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use crate::crm::connector::{
    ConnectorError, ContactWrite, CrmConnector, CrmFailure, FieldMap, WriteOutcome, bearer,
    bounded_in_order, http_client, transport_failure, write_chunked,
};
use crate::crm::rest::service::{encode_path_segment, parse_retry_after, usable_code};

use super::NAME;
use super::config::DynamicsConfig;

/// The error code of a save refused by a duplicate detection rule.
pub const DUPLICATE_RECORD: &str = "0x80040333";

/// The error codes of the service protection limits (requests, execution time, concurrent
/// requests per user in a 5-minute sliding window).
pub const SERVICE_PROTECTION: &[&str] = &["0x80072322", "0x80072321", "0x80072326"];

/// Upserts contacts into a Dataverse environment.
pub struct DynamicsConnector {
    http: reqwest::Client,
    /// `{org_url}/api/data/{api_version}/{entity_set}`.
    set_url: String,
    authorization: HeaderValue,
    map: FieldMap,
    cfg: DynamicsConfig,
    /// No request leaves before this instant (set by a `429` with `Retry-After`).
    paused_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for DynamicsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicsConnector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// `{"error": {"code", "message"}}`; the message may echo values and is never kept.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: Option<String>,
}

impl DynamicsConnector {
    /// Validates the config and builds the HTTP client.
    pub fn new(cfg: DynamicsConfig) -> Result<Self, ConnectorError> {
        let map = cfg.validate()?;
        let http = http_client(NAME, &cfg.retry, &cfg.tls)?;
        let authorization = bearer(NAME, "access_token", &cfg.access_token)?;
        Ok(DynamicsConnector {
            http,
            set_url: format!(
                "{}/api/data/{}/{}",
                cfg.org_url.trim_end_matches('/'),
                cfg.api_version,
                cfg.entity_set
            ),
            authorization,
            map,
            cfg,
            paused_until: Mutex::new(None),
        })
    }

    /// The configuration the connector was built with.
    pub fn config(&self) -> &DynamicsConfig {
        &self.cfg
    }

    /// The URL of a record by alternate key: the value in single quotes, a quote inside it
    /// doubled, then percent-encoded.
    pub fn record_url(&self, external_id: &str) -> String {
        let escaped = external_id.replace('\'', "''");
        let mut url = format!(
            "{}({}='{}')",
            self.set_url,
            self.cfg.key_field,
            encode_path_segment(&escaped)
        );
        if self.cfg.return_representation {
            url.push_str("?$select=");
            url.push_str(&self.cfg.id_field);
        }
        url
    }

    /// How long the connector still pauses after a `429`, if it does.
    fn pause_left(&self) -> Option<Duration> {
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        match *paused {
            Some(until) if until > Instant::now() => Some(until - Instant::now()),
            Some(_) => {
                *paused = None;
                None
            }
            None => None,
        }
    }

    fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }

    /// One attempt to upsert one record.
    pub async fn upsert_one(&self, w: &ContactWrite) -> WriteOutcome {
        if let Some(left) = self.pause_left() {
            // Not sent: the environment asked for a pause; the retry loop waits it out.
            return WriteOutcome::Failed(
                CrmFailure::transient("dynamics: paused by a service protection limit")
                    .with_retry_after(Some(left)),
            );
        }
        let body = Value::Object(self.map.apply(&w.fields, self.cfg.clear_missing));
        let mut request = self
            .http
            .patch(self.record_url(&w.external_id))
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .header("OData-MaxVersion", "4.0")
            .header("OData-Version", "4.0");
        if self.cfg.return_representation {
            request = request.header("Prefer", "return=representation");
        }
        if self.cfg.duplicate_detection {
            request = request.header("MSCRM.SuppressDuplicateDetection", "false");
        }
        let timeout_ms = self.cfg.retry.timeout_ms;
        let response = match request.json(&body).send().await {
            Ok(r) => r,
            Err(e) => return WriteOutcome::Failed(transport_failure(NAME, e, timeout_ms)),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return WriteOutcome::Failed(transport_failure(NAME, e, timeout_ms)),
        };
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                let id = serde_json::from_slice::<Value>(&bytes)
                    .ok()
                    .and_then(|v| v.get(&self.cfg.id_field)?.as_str().map(str::to_owned))
                    .filter(|id| !id.is_empty());
                match id {
                    Some(crm_id) => WriteOutcome::Written {
                        crm_id,
                        created: status == StatusCode::CREATED,
                    },
                    None => bad_response(
                        status.as_u16(),
                        &format!("no {} in the answer", self.cfg.id_field),
                    ),
                }
            }
            StatusCode::NO_CONTENT => match entity_id(&headers) {
                Some(crm_id) => WriteOutcome::Written {
                    crm_id,
                    created: false,
                },
                None => bad_response(204, "no record id in OData-EntityId"),
            },
            _ => {
                let retry_after = parse_retry_after(&headers);
                let code = serde_json::from_slice::<ErrorBody>(&bytes)
                    .ok()
                    .and_then(|b| b.error.code);
                let outcome = classify(status.as_u16(), code.as_deref(), retry_after);
                if status == StatusCode::TOO_MANY_REQUESTS
                    && let Some(wait) = retry_after
                {
                    tracing::warn!(
                        crm = NAME,
                        envelope_id = %w.envelope_id,
                        retry_after_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                        "service protection limit reached, pausing"
                    );
                    self.pause_for(wait);
                }
                outcome
            }
        }
    }
}

/// The record id of `OData-EntityId: {org}/api/data/v9.2/contacts(<guid>)`.
fn entity_id(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("OData-EntityId")?.to_str().ok()?;
    let inner = value.trim().strip_suffix(')')?;
    let id = &inner[inner.rfind('(')? + 1..];
    let guid_like = !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    guid_like.then(|| id.to_owned())
}

fn bad_response(status: u16, reason: &str) -> WriteOutcome {
    WriteOutcome::Failed(
        CrmFailure::permanent(format!(
            "dynamics answered {status} with an unusable body: {reason}"
        ))
        .with_status(status),
    )
}

/// What a Dataverse error answer means for the record.
pub(crate) fn classify(
    status: u16,
    code: Option<&str>,
    retry_after: Option<Duration>,
) -> WriteOutcome {
    let code = code.filter(|c| usable_code(c)).map(str::to_ascii_lowercase);
    let mut message = format!("dynamics answered {status}");
    if let Some(c) = &code {
        message.push_str(&format!(" {c}"));
    }
    let failure = |f: CrmFailure| {
        WriteOutcome::Failed(
            f.with_status(status)
                .with_code(code.clone())
                .with_retry_after(retry_after),
        )
    };
    let code_is = |c: &str| code.as_deref() == Some(c);
    // The code decides before the status: a duplicate comes back as 500.
    if code_is(DUPLICATE_RECORD) {
        return WriteOutcome::Review {
            reason: format!("{message}: a duplicate detection rule matched another record"),
        };
    }
    if SERVICE_PROTECTION.iter().any(|c| code_is(c)) {
        return failure(CrmFailure::transient(format!(
            "{message}: service protection limit"
        )));
    }
    match status {
        401 => failure(CrmFailure::auth(format!(
            "{message}: check the access token"
        ))),
        408 | 412 | 429 | 500..=599 => failure(CrmFailure::transient(message)),
        _ => failure(CrmFailure::permanent(message)),
    }
}

#[async_trait]
impl CrmConnector for DynamicsConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Dataverse upserts one record per request (OData `$batch` is not used).
    fn max_batch(&self) -> usize {
        1
    }

    async fn write_batch(&self, batch: &[ContactWrite]) -> Vec<WriteOutcome> {
        // Rounds, not size limits: a key repeated in the batch waits for the earlier write.
        write_chunked(
            NAME,
            &self.cfg.retry,
            usize::MAX,
            batch,
            |recs| async move {
                bounded_in_order(recs, self.cfg.concurrency, |w| self.upsert_one(w)).await
            },
        )
        .await
    }
}
