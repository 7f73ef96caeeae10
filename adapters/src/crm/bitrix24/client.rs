//! The Bitrix24 client: find each contact by `ORIGIN_ID`, then add or update it, in `batch`
//! calls, every request paced by the client's token bucket.
//!
//! Contract: see the module documentation of [`crate::crm::bitrix24`]. One attempt per call
//! of [`Bitrix24Connector::attempt`] (two requests: the finds, then the writes); the
//! retries are the shared loop of [`crate::crm::connector`]. Every attempt finds the
//! contacts again, so a retried add whose first try did reach the portal becomes an update
//! instead of a second contact.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use serde_json::{Map, Value, json};

use crate::crm::connector::{
    ConnectorError, ContactWrite, CrmConnector, CrmFailure, FieldMap, WriteOutcome, http_client,
    transport_failure, write_chunked,
};
use crate::crm::rest::service::{parse_retry_after, usable_code};

use super::NAME;
use super::config::{Bitrix24Config, MULTI_FIELDS};
use super::pacing::Pacer;
use super::query;

/// A command's result, or why it failed.
type Reply = Result<Value, CrmFailure>;

/// Finds, adds and updates contacts in a Bitrix24 portal through an inbound webhook.
pub struct Bitrix24Connector {
    http: reqwest::Client,
    base: String,
    map: FieldMap,
    cfg: Bitrix24Config,
    pacer: Pacer,
}

impl std::fmt::Debug for Bitrix24Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitrix24Connector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// What to do with one record once it was looked up.
enum Plan {
    Add(Map<String, Value>),
    Update(String, Map<String, Value>),
}

impl Bitrix24Connector {
    /// Validates the config and builds the HTTP client and the pacer.
    pub fn new(cfg: Bitrix24Config) -> Result<Self, ConnectorError> {
        let map = cfg.validate()?;
        let http = http_client(NAME, &cfg.retry, &cfg.tls)?;
        Ok(Bitrix24Connector {
            http,
            base: cfg.base(),
            map,
            pacer: Pacer::new(cfg.requests_per_second, cfg.burst),
            cfg,
        })
    }

    /// The configuration the connector was built with.
    pub fn config(&self) -> &Bitrix24Config {
        &self.cfg
    }

    /// Calls one method (form-encoded parameters) after taking a token; its `result`.
    async fn call(&self, method: &str, params: &Map<String, Value>) -> Reply {
        self.pacer.acquire().await;
        let timeout_ms = self.cfg.retry.timeout_ms;
        let sent = self
            .http
            .post(format!("{}{method}.json", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(query::encode(params))
            .send()
            .await;
        let response = sent.map_err(|e| transport_failure(NAME, e, timeout_ms))?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers());
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_failure(NAME, e, timeout_ms))?;
        let body = serde_json::from_slice::<Value>(&bytes).ok();
        let code = body
            .as_ref()
            .and_then(|b| b.get("error"))
            .and_then(Value::as_str);
        if status.is_success() && code.is_none() {
            return match body.and_then(|mut b| b.get_mut("result").map(Value::take)) {
                Some(result) => Ok(result),
                None => Err(CrmFailure::permanent(format!(
                    "bitrix24 answered {} to {method} without a result",
                    status.as_u16()
                ))
                .with_status(status.as_u16())),
            };
        }
        if code == Some("QUERY_LIMIT_EXCEEDED") {
            // The portal's bucket is fuller than the client's model of it: slow down.
            self.pacer.drain();
        }
        Err(classify(
            Some(status.as_u16()),
            code,
            retry_after,
            self.cfg.operation_limit_pause(),
        ))
    }

    /// Runs `commands` (key, `method?query`) in one `batch` call; a reply per command.
    async fn batch(&self, commands: Vec<(String, String)>) -> Vec<Reply> {
        let cmd: Map<String, Value> = commands
            .iter()
            .map(|(k, c)| (k.clone(), Value::String(c.clone())))
            .collect();
        let mut params = Map::new();
        params.insert("halt".to_owned(), json!(0));
        params.insert("cmd".to_owned(), Value::Object(cmd));
        let answer = match self.call("batch", &params).await {
            Ok(answer) => answer,
            Err(failure) => return vec![Err(failure); commands.len()],
        };
        let results = keyed(answer.get("result"));
        let errors = keyed(answer.get("result_error"));
        commands
            .iter()
            .map(|(key, _)| {
                if let Some(err) = errors.get(key) {
                    let code = err.get("error").and_then(Value::as_str);
                    return Err(classify(None, code, None, self.cfg.operation_limit_pause()));
                }
                match results.get(key) {
                    Some(result) => Ok(result.clone()),
                    None => Err(CrmFailure::permanent(
                        "bitrix24 answered a batch without the result of a command",
                    )),
                }
            })
            .collect()
    }

    /// Runs one method per record: directly with `batch_size` 1, else in one `batch` call.
    async fn run(
        &self,
        prefix: &str,
        calls: Vec<(&'static str, Map<String, Value>)>,
    ) -> Vec<Reply> {
        if self.cfg.batch_size == 1 {
            let mut replies = Vec::with_capacity(calls.len());
            for (method, params) in &calls {
                replies.push(self.call(method, params).await);
            }
            return replies;
        }
        let commands = calls
            .iter()
            .enumerate()
            .map(|(i, (method, params))| (format!("{prefix}{i}"), query::command(method, params)))
            .collect();
        self.batch(commands).await
    }

    fn find_params(&self, w: &ContactWrite) -> Map<String, Value> {
        let mut select = vec![json!("ID")];
        select.extend(
            self.map
                .targets()
                .filter(|t| MULTI_FIELDS.contains(t))
                .map(|t| json!(t)),
        );
        let mut params = Map::new();
        params.insert(
            "filter".to_owned(),
            json!({ "ORIGIN_ID": w.external_id, "ORIGINATOR_ID": self.cfg.originator_id }),
        );
        params.insert("select".to_owned(), Value::Array(select));
        // No total count: cheaper for the portal (documented as `start=-1`).
        params.insert("start".to_owned(), json!(-1));
        params
    }

    /// The fields of `w` for `crm.contact.add` (`existing` none) or for
    /// `crm.contact.update` of `existing` (its multiple fields as listed).
    fn contact_fields(&self, w: &ContactWrite, existing: Option<&Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (field, value) in self.map.apply(&w.fields, self.cfg.clear_missing) {
            if MULTI_FIELDS.contains(&field.as_str()) {
                let wanted = multi_values(&value);
                let current = existing
                    .map(|e| listed_values(e.get(&field)))
                    .unwrap_or_default();
                let mut ops = Vec::new();
                for (id, v) in &current {
                    if !wanted.contains(v) {
                        ops.push(json!({ "ID": id, "DELETE": "Y" }));
                    }
                }
                for v in &wanted {
                    if !current.iter().any(|(_, c)| c == v) {
                        ops.push(json!({ "VALUE": v, "VALUE_TYPE": self.cfg.value_type }));
                    }
                }
                if !ops.is_empty() {
                    out.insert(field, Value::Array(ops));
                }
            } else if value.is_null() {
                // Bitrix24 clears a field given an empty value.
                if existing.is_some() {
                    out.insert(field, Value::String(String::new()));
                }
            } else {
                out.insert(field, value);
            }
        }
        if existing.is_none() {
            out.insert("ORIGIN_ID".to_owned(), Value::String(w.external_id.clone()));
            out.insert(
                "ORIGINATOR_ID".to_owned(),
                Value::String(self.cfg.originator_id.clone()),
            );
        }
        out
    }

    /// One attempt for `writes` (at most `batch_size`, no external id twice): the finds,
    /// then the adds and updates. One outcome per write, in order.
    pub async fn attempt(&self, writes: &[&ContactWrite]) -> Vec<WriteOutcome> {
        let finds = writes
            .iter()
            .map(|w| ("crm.contact.list", self.find_params(w)))
            .collect();
        let found = self.run("f", finds).await;
        let mut outcomes: Vec<Option<WriteOutcome>> = vec![None; writes.len()];
        let mut plans: Vec<(usize, Plan)> = Vec::new();
        for (i, (w, reply)) in writes.iter().zip(found).enumerate() {
            let items = match reply {
                Err(failure) => {
                    outcomes[i] = Some(WriteOutcome::Failed(failure));
                    continue;
                }
                Ok(Value::Array(items)) => items,
                Ok(_) => {
                    outcomes[i] = Some(bad_answer("crm.contact.list did not answer a list"));
                    continue;
                }
            };
            match items.as_slice() {
                [] => plans.push((i, Plan::Add(self.contact_fields(w, None)))),
                [one] => match id_of(one.get("ID")) {
                    Some(id) => {
                        plans.push((i, Plan::Update(id, self.contact_fields(w, Some(one)))));
                    }
                    None => {
                        outcomes[i] = Some(bad_answer("crm.contact.list answered no ID"));
                    }
                },
                several => {
                    outcomes[i] = Some(WriteOutcome::Review {
                        reason: format!(
                            "bitrix24: {} contacts carry this ORIGIN_ID and ORIGINATOR_ID",
                            several.len()
                        ),
                    });
                }
            }
        }
        let calls = plans
            .iter()
            .map(|(_, plan)| {
                let no_events = json!({ "REGISTER_SONET_EVENT": "N" });
                match plan {
                    Plan::Add(fields) => {
                        let mut p = Map::new();
                        p.insert("fields".to_owned(), Value::Object(fields.clone()));
                        p.insert("params".to_owned(), no_events);
                        ("crm.contact.add", p)
                    }
                    Plan::Update(id, fields) => {
                        let mut p = Map::new();
                        p.insert("id".to_owned(), Value::String(id.clone()));
                        p.insert("fields".to_owned(), Value::Object(fields.clone()));
                        p.insert("params".to_owned(), no_events);
                        ("crm.contact.update", p)
                    }
                }
            })
            .collect::<Vec<_>>();
        let replies = if calls.is_empty() {
            Vec::new()
        } else {
            self.run("w", calls).await
        };
        for ((i, plan), reply) in plans.into_iter().zip(replies) {
            outcomes[i] = Some(match (plan, reply) {
                (_, Err(failure)) => WriteOutcome::Failed(failure),
                (Plan::Add(_), Ok(id)) => match id_of(Some(&id)) {
                    Some(crm_id) => WriteOutcome::Written {
                        crm_id,
                        created: true,
                    },
                    None => bad_answer("crm.contact.add answered no id"),
                },
                (Plan::Update(crm_id, _), Ok(Value::Bool(true))) => WriteOutcome::Written {
                    crm_id,
                    created: false,
                },
                (Plan::Update(..), Ok(_)) => bad_answer("crm.contact.update did not answer true"),
            });
        }
        outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|| bad_answer("no answer for the record")))
            .collect()
    }
}

/// A `result`/`result_error` of a batch answer by command key; PHP writes an empty one as
/// `[]` and one with numeric keys as a list.
fn keyed(value: Option<&Value>) -> Map<String, Value> {
    match value {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// An id given as a number or a string.
fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The values a multiple field should hold: one string, or a list of strings (or of
/// `{"VALUE": ...}` objects); `null` means none.
fn multi_values(value: &Value) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(o) => o.get("VALUE").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let mut out: Vec<String> = match value {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        Value::Null => Vec::new(),
        other => one(other).into_iter().collect(),
    };
    out.retain(|v| !v.is_empty());
    out.dedup();
    out
}

/// `(ID, VALUE)` of a multiple field as `crm.contact.list` returns it.
fn listed_values(value: Option<&Value>) -> Vec<(String, String)> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let id = id_of(item.get("ID"))?;
            let v = item.get("VALUE")?.as_str()?.to_owned();
            Some((id, v))
        })
        .collect()
}

fn bad_answer(reason: &str) -> WriteOutcome {
    WriteOutcome::Failed(CrmFailure::permanent(format!(
        "bitrix24 answered unusably: {reason}"
    )))
}

/// What a Bitrix24 error means for the record: `status` is the HTTP status (`None` for a
/// command's error inside a batch answer), `code` the `error` field.
pub(crate) fn classify(
    status: Option<u16>,
    code: Option<&str>,
    retry_after: Option<Duration>,
    operation_limit_pause: Duration,
) -> CrmFailure {
    let code = code.filter(|c| usable_code(c));
    let mut message = match status {
        Some(s) => format!("bitrix24 answered {s}"),
        None => "bitrix24 rejected the command".to_owned(),
    };
    match code {
        Some(c) => message.push_str(&format!(" {c}")),
        None => message.push_str(" (no error code)"),
    }
    let tag = |f: CrmFailure| {
        let f = f
            .with_code(code.map(str::to_owned))
            .with_retry_after(retry_after);
        match status {
            Some(s) => f.with_status(s),
            None => f,
        }
    };
    match code {
        Some("QUERY_LIMIT_EXCEEDED") => {
            return tag(CrmFailure::transient(format!(
                "{message}: the portal's request limit"
            )));
        }
        Some("OPERATION_TIME_LIMIT") => {
            let wait = retry_after.map_or(operation_limit_pause, |r| r.max(operation_limit_pause));
            return tag(CrmFailure::transient(format!(
                "{message}: the method is blocked for its execution time"
            )))
            .with_retry_after(Some(wait));
        }
        Some("INTERNAL_SERVER_ERROR" | "ERROR_UNEXPECTED_ANSWER") => {
            return tag(CrmFailure::transient(message));
        }
        Some(
            "expired_token"
            | "invalid_token"
            | "NO_AUTH_FOUND"
            | "INVALID_CREDENTIALS"
            | "insufficient_scope"
            | "user_access_error"
            | "OVERLOAD_LIMIT"
            | "ACCESS_DENIED"
            | "PORTAL_DELETED",
        ) => {
            return tag(CrmFailure::auth(format!(
                "{message}: check the webhook and its permissions"
            )));
        }
        _ => {}
    }
    match status {
        Some(401 | 403) => tag(CrmFailure::auth(format!(
            "{message}: check the webhook and its permissions"
        ))),
        Some(408 | 429 | 500..=599) => tag(CrmFailure::transient(message)),
        _ => tag(CrmFailure::permanent(message)),
    }
}

#[async_trait]
impl CrmConnector for Bitrix24Connector {
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
