//! The Salesforce client: upserts by external id, one record or an sObject Collection.
//!
//! Contract: see the module documentation of [`crate::crm::salesforce`]. One attempt per
//! call of [`SalesforceConnector::attempt`]; the retries are the shared loop of
//! [`crate::crm::connector`].

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::crm::connector::{
    ConnectorError, ContactWrite, CrmConnector, CrmFailure, FieldMap, WriteOutcome, bearer,
    http_client, transport_failure, write_chunked,
};
use crate::crm::rest::service::{encode_path_segment, parse_retry_after, usable_code};

use super::NAME;
use super::config::SalesforceConfig;

/// Upserts contacts into a Salesforce org.
pub struct SalesforceConnector {
    http: reqwest::Client,
    /// `{instance_url}/services/data/{api_version}`.
    data_url: String,
    authorization: HeaderValue,
    map: FieldMap,
    cfg: SalesforceConfig,
}

impl std::fmt::Debug for SalesforceConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceConnector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// One entry of a Salesforce error body (`[{"message", "errorCode", "fields"}]`). The
/// message may echo submitted values and is never kept.
#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode", default)]
    error_code: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
}

/// A per-record result of sObject Collections, or the body of a single upsert.
#[derive(Deserialize)]
struct SaveResult {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<RecordError>,
}

/// A per-record error (`{"statusCode", "message", "fields"}`).
#[derive(Deserialize)]
struct RecordError {
    #[serde(rename = "statusCode", default)]
    status_code: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
}

impl SalesforceConnector {
    /// Validates the config and builds the HTTP client.
    pub fn new(cfg: SalesforceConfig) -> Result<Self, ConnectorError> {
        let map = cfg.validate()?;
        let http = http_client(NAME, &cfg.retry, &cfg.tls)?;
        let authorization = bearer(NAME, "access_token", &cfg.access_token)?;
        Ok(SalesforceConnector {
            http,
            data_url: format!(
                "{}/services/data/{}",
                cfg.instance_url.trim_end_matches('/'),
                cfg.api_version
            ),
            authorization,
            map,
            cfg,
        })
    }

    /// The configuration the connector was built with.
    pub fn config(&self) -> &SalesforceConfig {
        &self.cfg
    }

    /// The URL of one record by external id.
    pub fn record_url(&self, external_id: &str) -> String {
        format!(
            "{}/sobjects/{}/{}/{}",
            self.data_url,
            self.cfg.sobject,
            self.cfg.external_id_field,
            encode_path_segment(external_id)
        )
    }

    /// The sObject Collections upsert URL.
    pub fn collection_url(&self) -> String {
        format!(
            "{}/composite/sobjects/{}/{}",
            self.data_url, self.cfg.sobject, self.cfg.external_id_field
        )
    }

    /// One attempt for `writes`: one request (a collection, or the single-record endpoint
    /// when `batch_size` is 1). One outcome per write, in order.
    pub async fn attempt(&self, writes: &[&ContactWrite]) -> Vec<WriteOutcome> {
        match writes {
            [one] if self.cfg.batch_size == 1 => vec![self.upsert_one(one).await],
            _ => self.upsert_collection(writes).await,
        }
    }

    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(AUTHORIZATION, self.authorization.clone())
            .header(ACCEPT, "application/json")
    }

    async fn upsert_one(&self, w: &ContactWrite) -> WriteOutcome {
        if matches!(w.external_id.as_str(), "." | "..") {
            return WriteOutcome::Failed(CrmFailure::permanent(
                "salesforce: the external id is a dot segment and cannot be a path segment",
            ));
        }
        let body = Value::Object(self.map.apply(&w.fields, self.cfg.clear_missing));
        let url = self.record_url(&w.external_id);
        let sent = self
            .request(reqwest::Method::PATCH, url)
            .header(CONTENT_TYPE, "application/json")
            .json(&body)
            .send()
            .await;
        let (status, retry_after, bytes) = match self.read(sent).await {
            Ok(answer) => answer,
            Err(failure) => return WriteOutcome::Failed(failure),
        };
        match status {
            StatusCode::CREATED | StatusCode::OK => {
                match serde_json::from_slice::<SaveResult>(&bytes) {
                    Ok(SaveResult {
                        id: Some(id),
                        created,
                        ..
                    }) if !id.is_empty() => WriteOutcome::Written {
                        crm_id: id,
                        created: created.unwrap_or(status == StatusCode::CREATED),
                    },
                    _ => bad_response(status.as_u16(), "no record id in the upsert answer"),
                }
            }
            // API versions before 46.0 answered an update with no body: ask for the id.
            StatusCode::NO_CONTENT => self.lookup_id(w).await,
            StatusCode::MULTIPLE_CHOICES => {
                let matches = serde_json::from_slice::<Vec<Value>>(&bytes).map_or(0, |v| v.len());
                WriteOutcome::Review {
                    reason: format!(
                        "salesforce answered 300: the external id matches {} {} records",
                        if matches > 1 {
                            matches.to_string()
                        } else {
                            "several".to_owned()
                        },
                        self.cfg.sobject
                    ),
                }
            }
            _ => self.classify_error_body(status.as_u16(), retry_after, &bytes),
        }
    }

    /// The id of the record an update without answer body touched.
    async fn lookup_id(&self, w: &ContactWrite) -> WriteOutcome {
        #[derive(Deserialize)]
        struct Found {
            #[serde(rename = "Id")]
            id: Option<String>,
        }
        let url = format!("{}?fields=Id", self.record_url(&w.external_id));
        let sent = self.request(reqwest::Method::GET, url).send().await;
        let (status, retry_after, bytes) = match self.read(sent).await {
            Ok(answer) => answer,
            Err(failure) => return WriteOutcome::Failed(failure),
        };
        if status == StatusCode::OK {
            return match serde_json::from_slice::<Found>(&bytes) {
                Ok(Found { id: Some(id) }) if !id.is_empty() => WriteOutcome::Written {
                    crm_id: id,
                    created: false,
                },
                _ => bad_response(200, "no Id in the record read after the update"),
            };
        }
        self.classify_error_body(status.as_u16(), retry_after, &bytes)
    }

    async fn upsert_collection(&self, writes: &[&ContactWrite]) -> Vec<WriteOutcome> {
        let records: Vec<Value> = writes
            .iter()
            .map(|w| {
                let mut record = Map::new();
                record.insert(
                    "attributes".to_owned(),
                    serde_json::json!({ "type": self.cfg.sobject }),
                );
                record.extend(self.map.apply(&w.fields, self.cfg.clear_missing));
                record.insert(
                    self.cfg.external_id_field.clone(),
                    Value::String(w.external_id.clone()),
                );
                Value::Object(record)
            })
            .collect();
        let body = serde_json::json!({ "allOrNone": false, "records": records });
        let sent = self
            .request(reqwest::Method::PATCH, self.collection_url())
            .header(CONTENT_TYPE, "application/json")
            .json(&body)
            .send()
            .await;
        let (status, retry_after, bytes) = match self.read(sent).await {
            Ok(answer) => answer,
            Err(failure) => return vec![WriteOutcome::Failed(failure); writes.len()],
        };
        if status != StatusCode::OK {
            let outcome = self.classify_error_body(status.as_u16(), retry_after, &bytes);
            return vec![outcome; writes.len()];
        }
        let results = match serde_json::from_slice::<Vec<SaveResult>>(&bytes) {
            Ok(results) if results.len() == writes.len() => results,
            Ok(results) => {
                let reason = format!(
                    "{} results for {} records in the collection answer",
                    results.len(),
                    writes.len()
                );
                return vec![bad_response(200, &reason); writes.len()];
            }
            Err(_) => {
                return vec![bad_response(200, "not a list of save results"); writes.len()];
            }
        };
        results
            .into_iter()
            .map(|r| match r {
                SaveResult {
                    success: Some(true),
                    id: Some(id),
                    created,
                    ..
                } if !id.is_empty() => WriteOutcome::Written {
                    crm_id: id,
                    created: created.unwrap_or(false),
                },
                SaveResult { errors, .. } => {
                    let first = errors.into_iter().next();
                    let (code, fields) = match first {
                        Some(e) => (e.status_code, e.fields),
                        None => (None, Vec::new()),
                    };
                    classify(
                        None,
                        code.as_deref(),
                        &fields,
                        None,
                        self.cfg.request_limit_pause(),
                    )
                }
            })
            .collect()
    }

    /// The status, `Retry-After` and body of an answer, or the transport failure.
    async fn read(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<(StatusCode, Option<Duration>, Vec<u8>), CrmFailure> {
        let timeout_ms = self.cfg.retry.timeout_ms;
        let response = sent.map_err(|e| transport_failure(NAME, e, timeout_ms))?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_failure(NAME, e, timeout_ms))?;
        Ok((status, retry_after, Vec::from(bytes)))
    }

    fn classify_error_body(
        &self,
        status: u16,
        retry_after: Option<Duration>,
        bytes: &[u8],
    ) -> WriteOutcome {
        let first = serde_json::from_slice::<Vec<ApiError>>(bytes)
            .ok()
            .and_then(|v| v.into_iter().next());
        let (code, fields) = match first {
            Some(e) => (e.error_code, e.fields),
            None => (None, Vec::new()),
        };
        classify(
            Some(status),
            code.as_deref(),
            &fields,
            retry_after,
            self.cfg.request_limit_pause(),
        )
    }
}

fn bad_response(status: u16, reason: &str) -> WriteOutcome {
    WriteOutcome::Failed(
        CrmFailure::permanent(format!(
            "salesforce answered {status} with an unusable body: {reason}"
        ))
        .with_status(status),
    )
}

/// What a Salesforce error means for the record: `status` is the HTTP status (`None` for a
/// per-record error inside a collection answer), `code` the `errorCode`/`statusCode`.
pub(crate) fn classify(
    status: Option<u16>,
    code: Option<&str>,
    fields: &[String],
    retry_after: Option<Duration>,
    request_limit_pause: Duration,
) -> WriteOutcome {
    let code = code.filter(|c| usable_code(c));
    let fields: Vec<&str> = fields
        .iter()
        .map(String::as_str)
        .filter(|f| crate::crm::connector::is_identifier(f))
        .collect();
    let mut message = match status {
        Some(s) => format!("salesforce answered {s}"),
        None => "salesforce rejected the record".to_owned(),
    };
    if let Some(c) = code {
        message.push_str(&format!(" {c}"));
    }
    if !fields.is_empty() {
        message.push_str(&format!(" (fields {})", fields.join(", ")));
    }
    let failure = |f: CrmFailure, wait: Option<Duration>| {
        let f = f.with_code(code.map(str::to_owned)).with_retry_after(wait);
        WriteOutcome::Failed(match status {
            Some(s) => f.with_status(s),
            None => f,
        })
    };
    match code {
        Some("DUPLICATE_EXTERNAL_ID") => {
            return WriteOutcome::Review {
                reason: format!("{message}: several records carry the external id"),
            };
        }
        Some("DUPLICATES_DETECTED") => {
            return WriteOutcome::Review {
                reason: format!("{message}: a duplicate rule blocked the save"),
            };
        }
        Some("REQUEST_LIMIT_EXCEEDED") => {
            // The budget refills slowly: never try again sooner than the configured pause.
            let wait = retry_after.map_or(request_limit_pause, |r| r.max(request_limit_pause));
            return failure(
                CrmFailure::transient(format!("{message}: the org's api request limit is spent")),
                Some(wait),
            );
        }
        Some("UNABLE_TO_LOCK_ROW" | "SERVER_UNAVAILABLE") => {
            return failure(CrmFailure::transient(message), retry_after);
        }
        Some("INVALID_SESSION_ID") => {
            return failure(
                CrmFailure::auth(format!("{message}: check the access token")),
                retry_after,
            );
        }
        _ => {}
    }
    match status {
        Some(300) => WriteOutcome::Review {
            reason: format!("{message}: the external id matches several records"),
        },
        Some(401) => failure(
            CrmFailure::auth(format!("{message}: check the access token")),
            retry_after,
        ),
        Some(408 | 429 | 500..=599) => failure(CrmFailure::transient(message), retry_after),
        _ => failure(CrmFailure::permanent(message), retry_after),
    }
}

#[async_trait]
impl CrmConnector for SalesforceConnector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn max_batch(&self) -> usize {
        self.cfg.batch_size
    }

    async fn write_batch(&self, batch: &[ContactWrite]) -> Vec<WriteOutcome> {
        write_chunked(
            NAME,
            &self.cfg.retry,
            self.cfg.batch_size,
            batch,
            |recs| async move { self.attempt(&recs).await },
        )
        .await
    }
}
