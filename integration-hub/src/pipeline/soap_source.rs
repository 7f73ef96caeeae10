//! The SOAP source task: polls a SOAP service operation by operation, page by page.
//!
//! One pass of an operation: ask for page `first_page` with `{{cursor}}` = the operation's
//! cursor, stream the records out of the answer (spooled to `<data_dir>/spool/<source>`),
//! map each with the source's `[sources.mapping]`, publish the mapped records to the
//! canonical topic and the unmappable ones to the quarantine topic (location
//! `operation X, page N, record i (element …, byte …)`), then — only once the bus has
//! acknowledged every event of the page — persist the position: the next page, and the
//! highest cursor value seen. A pass ends at an empty page (or after the one call of an
//! operation that is not paged); the highest cursor value then becomes the cursor of the
//! next pass and paging starts again from the first page.
//!
//! A crash at any point loses nothing: the position on disk is that of the last page the
//! bus acknowledged, so the page in flight is asked for and published again (same records,
//! same deterministic envelope ids; the sinks skip what they already applied).
//!
//! Faults: transient ones (Server/Receiver faults, timeouts, 5xx, 429) and a broken answer
//! are retried in place with backoff; a permanent fault (Client/Sender) or retries used up
//! stop the pass with one error line (operation, page, fault code, fault string, status —
//! never a record's values) and the pass is tried again at the next poll, from the position
//! persisted. Bus and store failures end the task, and the supervisor restarts it.
//!
//! The stored position is JSON under the key `<source>#<operation>` of the store's source
//! cursors: `{"since": "<cursor of this pass>", "page": <next page>, "high": "<highest
//! cursor value seen in this pass>"}`.

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use adapters::soap::response::ReadError;
use adapters::soap::xml_json::value_at;
use adapters::soap::{
    OperationConfig, ParseError, SoapClient, SoapConfig, SoapError, SpooledResponse, TemplateVars,
};
use mapping::Envelope;
use mapping::declarative::CompiledMapping;

use super::file_source::to_message;
use super::quarantine::{self, Quarantined};
use super::{Ctx, sleep_or_shutdown};
use crate::bus::OutMessage;
use crate::config::{SourceConfig, resolve_secret};
use crate::{telemetry, trace};

/// Events per bus publish call.
const PUBLISH_BATCH: usize = 1000;
/// Batches in flight between the mapping thread and the publisher (bounded memory).
const CHANNEL_BATCHES: usize = 4;

/// Where an operation's pass stands; persisted after every acknowledged page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// `{{cursor}}` of the pass under way.
    pub since: String,
    /// The next page to ask for.
    pub page: u32,
    /// The highest cursor value seen so far in this pass.
    #[serde(default)]
    pub high: Option<String>,
}

impl Position {
    fn start(op: &OperationConfig) -> Position {
        Position {
            since: op.initial_cursor.clone(),
            page: op.first_page,
            high: None,
        }
    }
}

/// The store key of an operation's position.
pub fn cursor_key(source: &str, operation: &str) -> String {
    format!("{source}#{operation}")
}

pub async fn run(
    ctx: Ctx,
    source: SourceConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cfg = resolved_config(&ctx, &source)?;
    let mapping = compile_mapping(&ctx, &source)?;
    let poll = cfg.poll_interval();
    let operations = cfg.operations.clone();
    let client =
        SoapClient::new(cfg).map_err(|e| anyhow::anyhow!("source {}: {e}", source.name))?;
    tracing::info!(
        source = %source.name,
        operations = operations.len(),
        version = %client.config().version,
        "soap source started"
    );
    loop {
        for op in &operations {
            match pass(&ctx, &source, &client, &mapping, op, &shutdown).await {
                Ok(PassEnd::Complete { pages, records }) => tracing::info!(
                    event = "soap_pass_complete",
                    source = %source.name,
                    operation = %op.name,
                    pages,
                    records,
                    "soap pass complete"
                ),
                Ok(PassEnd::Shutdown) => return Ok(()),
                Err(PassError::Soap { page, error }) => {
                    log_stopped(&source.name, &op.name, page, &error)
                }
                Err(PassError::Fatal(e)) => return Err(e),
            }
            if *shutdown.borrow() {
                return Ok(());
            }
        }
        if sleep_or_shutdown(poll, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// The source's SOAP settings with the password resolved and paths anchored at the
/// config's folder; answers spool under the data folder (a temporary folder may live in
/// memory, which a 1 GB answer must not).
fn resolved_config(ctx: &Ctx, source: &SourceConfig) -> anyhow::Result<SoapConfig> {
    let mut cfg = source
        .soap
        .clone()
        .with_context(|| format!("source {}: soap settings missing", source.name))?;
    if let Some(ws) = &mut cfg.ws_security {
        ws.password = resolve_secret(&ws.password, &ctx.config.base_dir).map_err(|e| {
            anyhow::anyhow!("source {}: soap.ws_security.password: {e}", source.name)
        })?;
    }
    let resolve = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| ctx.config.resolve(p));
    cfg.tls.ca_bundle = resolve(&cfg.tls.ca_bundle);
    cfg.tls.client_cert = resolve(&cfg.tls.client_cert);
    cfg.tls.client_key = resolve(&cfg.tls.client_key);
    cfg.spool_dir = Some(
        resolve(&cfg.spool_dir)
            .unwrap_or_else(|| ctx.config.data_dir().join("spool").join(&source.name)),
    );
    Ok(cfg)
}

fn compile_mapping(ctx: &Ctx, source: &SourceConfig) -> anyhow::Result<CompiledMapping> {
    let rule = source
        .mapping
        .as_ref()
        .with_context(|| format!("source {}: [sources.mapping] missing", source.name))?;
    let base = ctx.config.base_dir.clone();
    rule.compile(&|reference: &str| resolve_secret(reference, &base))
        .map_err(|errors| {
            anyhow::anyhow!(
                "source {}: mapping: {}",
                source.name,
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
}

/// One error line for a pass that stopped; the pass is tried again at the next poll.
fn log_stopped(source: &str, operation: &str, page: u32, error: &SoapError) {
    let last = error.last();
    match last.fault() {
        Some(f) => tracing::error!(
            event = "soap_pass_stopped",
            source,
            operation,
            page,
            status = last.status(),
            faultcode = %f.code,
            subcode = f.subcode.as_deref().unwrap_or(""),
            faultstring = %f.reason,
            transient = f.is_transient(),
            "soap fault: pass stopped, tried again at the next poll"
        ),
        None => tracing::error!(
            event = "soap_pass_stopped",
            source,
            operation,
            page,
            status = last.status(),
            transient = error.is_transient(),
            error = %error,
            "soap call failed: pass stopped, tried again at the next poll"
        ),
    }
}

enum PassEnd {
    Complete { pages: u32, records: u64 },
    Shutdown,
}

enum PassError {
    /// The service failed us; the pass stops and is tried again at the next poll.
    Soap { page: u32, error: SoapError },
    /// Bus or store failure: the task ends and is restarted.
    Fatal(anyhow::Error),
}

impl From<anyhow::Error> for PassError {
    fn from(e: anyhow::Error) -> Self {
        PassError::Fatal(e)
    }
}

async fn load_position(ctx: &Ctx, key: &str, op: &OperationConfig) -> anyhow::Result<Position> {
    let store = ctx.store.clone();
    let k = key.to_owned();
    let stored = tokio::task::spawn_blocking(move || store.cursor_get(&k)).await??;
    Ok(match stored {
        None => Position::start(op),
        Some(text) => match serde_json::from_str::<Position>(&text) {
            Ok(p) => p,
            Err(e) => {
                // A position this build cannot read: starting over re-reads, never skips.
                tracing::warn!(key, error = %e, "stored soap position unreadable; starting from initial_cursor");
                Position::start(op)
            }
        },
    })
}

async fn save_position(ctx: &Ctx, key: &str, p: &Position) -> anyhow::Result<()> {
    let store = ctx.store.clone();
    let (k, text) = (key.to_owned(), serde_json::to_string(p)?);
    tokio::task::spawn_blocking(move || store.cursor_put(&k, &text)).await??;
    Ok(())
}

/// One pass of one operation, from the persisted position to an empty page.
async fn pass(
    ctx: &Ctx,
    source: &SourceConfig,
    client: &SoapClient,
    mapping: &CompiledMapping,
    op: &OperationConfig,
    shutdown: &watch::Receiver<bool>,
) -> Result<PassEnd, PassError> {
    let key = cursor_key(&source.name, &op.name);
    let mut position = load_position(ctx, &key, op).await?;
    let cursor_path = match &op.cursor_field {
        Some(c) => Some(
            adapters::soap::config::split_path(c)
                .map_err(|e| anyhow::anyhow!("operation {}: cursor_field {e}", op.name))?,
        ),
        None => None,
    };
    let max_pages = client.config().max_pages;
    let (mut pages, mut records) = (0u32, 0u64);
    loop {
        if *shutdown.borrow() {
            return Ok(PassEnd::Shutdown);
        }
        if pages >= max_pages {
            // The position of the last page is saved: the next poll goes on from there.
            tracing::warn!(source = %source.name, operation = %op.name, max_pages, "soap pass paused after max_pages pages");
            return Ok(PassEnd::Complete { pages, records });
        }
        let vars = TemplateVars {
            cursor: position.since.clone(),
            page: position.page,
            today: Utc::now().date_naive(),
        };
        let page = page_with_retries(
            ctx,
            source,
            client,
            mapping,
            op,
            &vars,
            cursor_path.as_deref(),
            shutdown,
        )
        .await?;
        let Some(page) = page else {
            return Ok(PassEnd::Shutdown);
        };
        pages += 1;
        records += page.records;
        position.high = max_cursor(position.high.take(), page.high);
        if !op.paged || page.records == 0 {
            // The pass is complete: its highest cursor value is where the next one starts.
            let since = position.high.take().unwrap_or(position.since);
            position = Position {
                since,
                page: op.first_page,
                high: None,
            };
            save_position(ctx, &key, &position).await?;
            return Ok(PassEnd::Complete { pages, records });
        }
        // Every event of this page is acknowledged: only now does the position move on.
        position.page = position.page.saturating_add(1);
        save_position(ctx, &key, &position).await?;
    }
}

/// What one page gave.
struct PageDone {
    records: u64,
    high: Option<String>,
}

/// Calls, reads and publishes one page; a broken answer is asked for again (the records
/// read before the break were published and are published again: same ids, no effect).
/// `None` on shutdown.
#[allow(clippy::too_many_arguments)]
async fn page_with_retries(
    ctx: &Ctx,
    source: &SourceConfig,
    client: &SoapClient,
    mapping: &CompiledMapping,
    op: &OperationConfig,
    vars: &TemplateVars,
    cursor_path: Option<&[String]>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Option<PageDone>, PassError> {
    let mut delays = client.retry_delays();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let soap_err = |error: SoapError| PassError::Soap {
            page: vars.page,
            error,
        };
        let (answer, _) = client.call(&op.name, vars).await.map_err(soap_err)?;
        match read_page(
            ctx,
            source,
            mapping,
            op,
            vars.page,
            answer,
            cursor_path,
            shutdown,
        )
        .await?
        {
            PageRead::Done(done) => return Ok(Some(done)),
            PageRead::Shutdown => return Ok(None),
            PageRead::Broken(error) => {
                let error = SoapError::BadResponse {
                    operation: op.name.clone(),
                    error,
                };
                let Some(delay) = delays.next() else {
                    return Err(soap_err(SoapError::Attempts {
                        attempts: attempt,
                        last: Box::new(error),
                    }));
                };
                tracing::warn!(
                    source = %source.name,
                    operation = %op.name,
                    page = vars.page,
                    attempt,
                    retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    error = %error,
                    "soap answer broken while reading, asking again"
                );
                let mut sd = shutdown.clone();
                if sleep_or_shutdown(delay, &mut sd).await {
                    return Ok(None);
                }
            }
        }
    }
}

enum PageRead {
    Done(PageDone),
    Broken(ParseError),
    Shutdown,
}

/// What the mapping thread sends to the publisher.
enum Mapped {
    Batch {
        events: Vec<OutMessage>,
        quarantined: Vec<Quarantined>,
    },
    Done {
        records: u64,
        high: Option<String>,
    },
    Broken(ParseError),
}

/// Reads the records of one answer on a blocking thread and publishes them here, batch by
/// batch, through a bounded channel.
#[allow(clippy::too_many_arguments)]
async fn read_page(
    ctx: &Ctx,
    source: &SourceConfig,
    mapping: &CompiledMapping,
    op: &OperationConfig,
    page: u32,
    answer: SpooledResponse,
    cursor_path: Option<&[String]>,
    shutdown: &watch::Receiver<bool>,
) -> Result<PageRead, PassError> {
    let (tx, mut rx) = mpsc::channel::<Mapped>(CHANNEL_BATCHES);
    let reader = answer
        .records()
        .map_err(|error| PassError::Soap { page, error })?;
    let job = MapJob {
        source: source.name.clone(),
        operation: op.name.clone(),
        record_path: op.record_path.clone(),
        page,
        mapping: mapping.clone(),
        cursor_path: cursor_path.map(<[String]>::to_vec),
        fetched_at: Utc::now(),
    };
    let mapper = tokio::task::spawn_blocking(move || job.run(reader, tx));
    let topic = ctx.config.bus.canonical_topic();
    let mut outcome = None;
    while let Some(m) = rx.recv().await {
        match m {
            Mapped::Batch {
                events,
                quarantined,
            } => {
                let n = events.len() as u64;
                if !events.is_empty() {
                    let ids = trace::ids_of(&events);
                    trace::source_batch(&source.name, &ids, false);
                    ctx.bus
                        .publish(&topic, events)
                        .await
                        .map_err(anyhow::Error::from)?;
                    trace::source_batch(&source.name, &ids, true);
                    telemetry::events_published(&ctx.stats, &source.name, &topic, n);
                }
                quarantine::publish(ctx, &source.name, quarantined).await?;
                if *shutdown.borrow() {
                    // The position is not saved: this page is asked for again after a
                    // restart, and the sinks skip what they already applied.
                    outcome = Some(PageRead::Shutdown);
                    break;
                }
            }
            Mapped::Done { records, high } => {
                telemetry::rows_read(&ctx.stats, &source.name, records);
                outcome = Some(PageRead::Done(PageDone { records, high }));
            }
            Mapped::Broken(e) => outcome = Some(PageRead::Broken(e)),
        }
    }
    drop(rx);
    mapper.await.context("soap mapping thread failed")?;
    outcome.ok_or_else(|| {
        PassError::Fatal(anyhow::anyhow!(
            "operation {}, page {page}: reading ended without a summary",
            op.name
        ))
    })
}

/// The mapping of one answer, on a blocking thread.
struct MapJob {
    source: String,
    operation: String,
    record_path: String,
    page: u32,
    mapping: CompiledMapping,
    cursor_path: Option<Vec<String>>,
    fetched_at: DateTime<Utc>,
}

impl MapJob {
    fn run<R: std::io::BufRead>(
        self,
        reader: adapters::soap::RecordReader<R>,
        tx: mpsc::Sender<Mapped>,
    ) {
        let mut events = Vec::with_capacity(PUBLISH_BATCH);
        let mut quarantined = Vec::new();
        let mut records = 0u64;
        let mut high: Option<String> = None;
        // Without a version rule every poll is a new version of the record: the time of
        // the call (monotonic enough across polls).
        let default_version = self.fetched_at.timestamp_millis();
        for item in reader {
            let record = match item {
                Ok(r) => r,
                Err(ReadError::Parse(e)) => {
                    let _ = flush(&tx, &mut events, &mut quarantined);
                    let _ = tx.blocking_send(Mapped::Broken(e));
                    return;
                }
                // The client already turned a fault in the body into an error; one deeper
                // in cannot come, but if it did it is a broken answer.
                Err(ReadError::Fault(f)) => {
                    let _ = flush(&tx, &mut events, &mut quarantined);
                    let _ = tx.blocking_send(Mapped::Broken(ParseError {
                        offset: 0,
                        line: 0,
                        path: String::new(),
                        reason: format!("unexpected fault: {f}"),
                    }));
                    return;
                }
            };
            records += 1;
            if let Some(path) = &self.cursor_path
                && let Some(v) = value_at(&record.value, path).and_then(cursor_text)
            {
                high = max_cursor(high, Some(v));
            }
            let location = format!(
                "operation {}, page {}, record {} (element {}, byte {})",
                self.operation, self.page, record.index, self.record_path, record.offset
            );
            match self.mapping.apply(&record.value) {
                Ok(m) => {
                    let env = Envelope::new(
                        &self.source,
                        m.entity,
                        m.op,
                        &m.key,
                        m.version.unwrap_or(default_version),
                        m.event_time.unwrap_or(self.fetched_at),
                        Utc::now(),
                        m.payload,
                    );
                    match to_message(&env) {
                        Ok(msg) => events.push(msg),
                        Err(e) => quarantined.push(Quarantined {
                            key: Some(m.key),
                            location,
                            field: "record".into(),
                            reason: format!("cannot encode the envelope: {e}"),
                            raw: raw_of(&record.value),
                        }),
                    }
                }
                Err(errors) => quarantined.push(Quarantined {
                    key: self.mapping.key_of(&record.value),
                    location,
                    field: errors
                        .iter()
                        .map(|e| e.field.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    reason: errors
                        .iter()
                        .map(|e| format!("{}: {}", e.field, e.reason))
                        .collect::<Vec<_>>()
                        .join("; "),
                    raw: raw_of(&record.value),
                }),
            }
            if events.len() + quarantined.len() >= PUBLISH_BATCH
                && flush(&tx, &mut events, &mut quarantined).is_err()
            {
                // The publisher stopped (shutdown or bus error); it reports why.
                return;
            }
        }
        if flush(&tx, &mut events, &mut quarantined).is_ok() {
            let _ = tx.blocking_send(Mapped::Done { records, high });
        }
    }
}

fn flush(
    tx: &mpsc::Sender<Mapped>,
    events: &mut Vec<OutMessage>,
    quarantined: &mut Vec<Quarantined>,
) -> Result<(), ()> {
    if events.is_empty() && quarantined.is_empty() {
        return Ok(());
    }
    let batch = Mapped::Batch {
        events: std::mem::replace(events, Vec::with_capacity(PUBLISH_BATCH)),
        quarantined: std::mem::take(quarantined),
    };
    tx.blocking_send(batch).map_err(|_| ())
}

/// The record as kept in quarantine: its JSON form.
fn raw_of(v: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// A cursor value as text: a string, a number, or the `#text` of an element with
/// attributes.
fn cursor_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Object(o) => o.get("#text").and_then(cursor_text),
        _ => None,
    }
}

/// The higher of two cursor values: as integers when both are, as timestamps when both are
/// RFC 3339, else as text.
pub fn max_cursor(a: Option<String>, b: Option<String>) -> Option<String> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(a), Some(b)) => {
            let greater = match (a.parse::<i64>(), b.parse::<i64>()) {
                (Ok(x), Ok(y)) => y > x,
                _ => match (
                    DateTime::parse_from_rfc3339(&a),
                    DateTime::parse_from_rfc3339(&b),
                ) {
                    (Ok(x), Ok(y)) => y > x,
                    _ => b > a,
                },
            };
            Some(if greater { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_order_by_kind() {
        let s = |x: &str| Some(x.to_owned());
        assert_eq!(max_cursor(s("9"), s("10")), s("10"));
        assert_eq!(
            max_cursor(s("2024-01-01T10:00:00+03:00"), s("2024-01-01T08:00:00Z")),
            s("2024-01-01T08:00:00Z")
        );
        assert_eq!(max_cursor(s("b"), s("a")), s("b"));
        assert_eq!(max_cursor(None, s("a")), s("a"));
        assert_eq!(max_cursor(s("a"), None), s("a"));
    }

    #[test]
    fn cursor_text_of_converted_values() {
        use serde_json::json;
        assert_eq!(cursor_text(&json!(" 2024 ")), Some("2024".into()));
        assert_eq!(cursor_text(&json!(17)), Some("17".into()));
        assert_eq!(
            cursor_text(&json!({"@tz": "UTC", "#text": "x"})),
            Some("x".into())
        );
        assert_eq!(cursor_text(&json!("")), None);
        assert_eq!(cursor_text(&json!(null)), None);
    }

    const CONFIG: &str = r#"
[[sources]]
name = "abs-soap"
kind = "soap"

[sources.soap]
endpoint = "https://abs.bank.local/ws/customers"
version = "1.2"

[sources.soap.ws_security]
username = "hub"
password = "env:ABS_SOAP_PASSWORD"

[[sources.soap.operations]]
name = "customers"
soap_action = "urn:corebank:customers:v1/GetCustomersChangedSince"
request_template = '<cb:Get xmlns:cb="urn:cb"><cb:Since>{{cursor}}</cb:Since><cb:Page>{{page}}</cb:Page></cb:Get>'
record_path = "GetResponse/Customers/Customer"
cursor_field = "ChangedAt"
paged = true

[sources.mapping]
entity = "party"
key = "$['@id']"
[sources.mapping.fields]
last_name = "$.LastName"

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "https://crm.local"
"#;

    #[test]
    fn a_soap_source_config_parses() {
        let cfg = crate::config::parse(CONFIG, std::path::PathBuf::from("/etc/hub")).unwrap();
        let soap = cfg.sources[0].soap.as_ref().unwrap();
        assert_eq!(soap.version, adapters::soap::SoapVersion::V12);
        assert!(soap.operations[0].paged);
        assert!(cfg.sources[0].mapping.is_some());
    }

    #[test]
    fn soap_config_problems_have_their_key_path_and_line() {
        let broken = CONFIG
            .replace("env:ABS_SOAP_PASSWORD", "plain-password")
            .replace(
                "record_path = \"GetResponse/Customers/Customer\"",
                "record_path = \"a//b\"",
            )
            .replace("{{page}}", "{{pgae}}");
        let problems = crate::config::parse(&broken, std::path::PathBuf::from(".")).unwrap_err();
        let rendered: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let has = |needle: &str| rendered.iter().any(|r| r.contains(needle));
        assert!(
            has("line 12: sources[0].soap.ws_security.password: secrets must be references"),
            "{rendered:#?}"
        );
        assert!(
            has("sources[0].soap.operations[0].record_path: has an empty segment"),
            "{rendered:#?}"
        );
        assert!(
            has("sources[0].soap.operations[0].request_template: unknown placeholder `{{pgae}}`"),
            "{rendered:#?}"
        );
        let no_table = CONFIG.replace("[sources.soap]", "[sources.other]");
        let problems = crate::config::parse(&no_table, std::path::PathBuf::from(".")).unwrap_err();
        assert!(!problems.is_empty());
        let without_mapping = CONFIG.replace("[sources.mapping]", "[sources.mappingx]");
        assert!(crate::config::parse(&without_mapping, std::path::PathBuf::from(".")).is_err());
    }

    #[test]
    fn position_round_trips() {
        let p = Position {
            since: "2024-01-01T00:00:00Z".into(),
            page: 3,
            high: Some("2024-02-01T00:00:00Z".into()),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Position>(&text).unwrap(), p);
        assert_eq!(cursor_key("abs", "customers"), "abs#customers");
    }
}
