//! The REST polling source task.
//!
//! Loop: read the persisted cursor (or the configured initial one), walk one pass of pages
//! through [`adapters::rest_poll`], and per page: map every record with the source's
//! `[sources.mapping]`, publish the good ones to the canonical topic and the bad ones (with
//! "page N, record i", field and reason) to the quarantine topic — and only once the bus
//! acknowledged both, persist the page's cursor. Then wait `poll_interval_ms` and poll again.
//!
//! A page that cannot be had (a permanent `4xx`, or transient failures that outlast their
//! retries) ends the pass with a log line; the cursor stays at the last acknowledged page
//! and the next poll reads on from there. A crash at any point loses nothing for the same
//! reason; records read again carry the same envelope ids (source, key, version) and the
//! sinks skip what they already delivered. Bus or store failures end the task, and the
//! supervisor restarts it.
//!
//! Version of an envelope: the mapping's `version`, or else the record's cursor value (the
//! sequence, or the change timestamp in milliseconds). Event time: the mapping's
//! `event_time`, or else the change timestamp, or else the time the page was read.

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::watch;

use adapters::rest_poll::{CursorValue, Page, RestPollClient};
use mapping::Envelope;
use mapping::declarative::CompiledMapping;

use super::file_source::to_message;
use super::quarantine::{self, Quarantined};
use super::{Ctx, sleep_or_shutdown};
use crate::config::{SourceConfig, resolve_secret};
use crate::{telemetry, trace};

pub async fn run(
    ctx: Ctx,
    source: SourceConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cfg = source
        .rest_poll
        .clone()
        .context("rest_poll settings missing")?;
    let base_dir = ctx.config.base_dir.clone();
    let resolve = |r: &str| resolve_secret(r, &base_dir);
    let mapping = compile_mapping(&source, &resolve)?;
    let interval = cfg.poll_interval();
    let client = RestPollClient::new(cfg, &base_dir, &resolve)
        .with_context(|| format!("source {}", source.name))?;
    tracing::info!(
        event = "rest_source_started",
        source = %source.name,
        interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
        "rest polling source started"
    );
    loop {
        poll_once(&ctx, &source, &client, &mapping, &shutdown).await?;
        if sleep_or_shutdown(interval, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// The source's mapping, compiled; every problem named.
pub(crate) fn compile_mapping(
    source: &SourceConfig,
    resolve: &dyn Fn(&str) -> Result<String, String>,
) -> anyhow::Result<CompiledMapping> {
    let spec = source
        .mapping
        .as_ref()
        .with_context(|| format!("source {}: [sources.mapping] missing", source.name))?;
    spec.compile(resolve).map_err(|errors| {
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

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub pages: u64,
    pub records: u64,
    pub published: u64,
    pub quarantined: u64,
    pub repeated: u64,
    /// Whether the pass read to the end (false: stopped by an upstream failure or shutdown).
    pub complete: bool,
}

/// One pass from the persisted cursor to the last page (or the first page that fails).
/// `Err` only for what the supervisor must handle: bus, store, a persisted cursor that
/// cannot be read.
pub async fn poll_once(
    ctx: &Ctx,
    source: &SourceConfig,
    client: &RestPollClient,
    mapping: &CompiledMapping,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<PassSummary> {
    let kind = client.config().cursor.kind;
    let store = ctx.store.clone();
    let name = source.name.clone();
    let persisted = tokio::task::spawn_blocking(move || store.cursor_get(&name)).await??;
    let start = match &persisted {
        Some(text) => CursorValue::parse(kind, text).map_err(|e| {
            anyhow::anyhow!(
                "source {}: the persisted cursor does not fit cursor.kind: {e}",
                source.name
            )
        })?,
        None => client.initial_cursor()?,
    };
    let started = Instant::now();
    let mut pass = client.pass(start.clone());
    let mut persisted_at = start;
    let mut sum = PassSummary::default();
    while !pass.is_done() {
        if *shutdown.borrow() {
            return Ok(sum);
        }
        let page_no = pass.next_number();
        let (page, attempts) = match client.next_page(&mut pass).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(
                    event = "rest_pass_stopped",
                    source = %source.name,
                    page = page_no,
                    transient = e.is_transient(),
                    status = e.status(),
                    cursor = %persisted_at.render(),
                    error = %e,
                    "pass stopped; the next poll reads on from the persisted cursor"
                );
                return Ok(sum);
            }
        };
        let (published, quarantined) = deliver_page(ctx, source, mapping, &page).await?;
        // The bus acknowledged every record of the page: now, and only now, the cursor.
        if page.cursor_after > persisted_at {
            let (store, name, text) = (
                ctx.store.clone(),
                source.name.clone(),
                page.cursor_after.render(),
            );
            tokio::task::spawn_blocking(move || store.cursor_put(&name, &text)).await??;
            persisted_at = page.cursor_after.clone();
        }
        sum.pages += 1;
        sum.records += page.records.len() as u64;
        sum.published += published;
        sum.quarantined += quarantined;
        sum.repeated += page.repeated as u64;
        tracing::info!(
            event = "rest_page",
            source = %source.name,
            page = page.number,
            records = page.records.len(),
            published,
            quarantined,
            repeated = page.repeated,
            attempts,
            cursor = %persisted_at.render(),
            "page published"
        );
    }
    sum.complete = true;
    tracing::info!(
        event = "rest_pass_done",
        source = %source.name,
        pages = sum.pages,
        records = sum.records,
        published = sum.published,
        quarantined = sum.quarantined,
        repeated = sum.repeated,
        cursor = %persisted_at.render(),
        elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "pass complete"
    );
    Ok(sum)
}

/// Maps and publishes one page; returns (published, quarantined) once the bus acknowledged
/// both topics.
async fn deliver_page(
    ctx: &Ctx,
    source: &SourceConfig,
    mapping: &CompiledMapping,
    page: &Page,
) -> anyhow::Result<(u64, u64)> {
    let now = Utc::now();
    let cursor_field = &source
        .rest_poll
        .as_ref()
        .context("rest_poll settings missing")?
        .cursor
        .field;
    let mut messages = Vec::with_capacity(page.records.len());
    let mut bad = Vec::new();
    for rec in &page.records {
        let location = format!("page {}, record {}", page.number, rec.index);
        let cursor = match &rec.cursor {
            Ok(c) => c,
            Err(reason) => {
                bad.push(quarantined(
                    mapping,
                    &rec.value,
                    location,
                    cursor_field.clone(),
                    format!("cursor field: {reason}"),
                ));
                continue;
            }
        };
        match mapping.apply(&rec.value) {
            Ok(m) => {
                let env = Envelope::new(
                    &source.name,
                    m.entity,
                    m.op,
                    &m.key,
                    m.version.unwrap_or_else(|| cursor.as_version()),
                    m.event_time.or_else(|| cursor.as_time()).unwrap_or(now),
                    now,
                    m.payload,
                );
                messages.push(to_message(&env)?);
            }
            Err(errors) => {
                let fields = errors
                    .iter()
                    .map(|e| e.field.as_str())
                    .collect::<Vec<_>>()
                    .join(",");
                let reasons = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                bad.push(quarantined(mapping, &rec.value, location, fields, reasons));
            }
        }
    }
    telemetry::rows_read(&ctx.stats, &source.name, page.records.len() as u64);
    let published = messages.len() as u64;
    if !messages.is_empty() {
        let topic = ctx.config.bus.canonical_topic();
        let ids = trace::ids_of(&messages);
        trace::source_batch(&source.name, &ids, false);
        ctx.bus.publish(&topic, messages).await?;
        trace::source_batch(&source.name, &ids, true);
        telemetry::events_published(&ctx.stats, &source.name, &topic, published);
    }
    let quarantined_n = bad.len() as u64;
    quarantine::publish(ctx, &source.name, bad).await?;
    Ok((published, quarantined_n))
}

fn quarantined(
    mapping: &CompiledMapping,
    record: &serde_json::Value,
    location: String,
    field: String,
    reason: String,
) -> Quarantined {
    Quarantined {
        key: mapping.key_of(record),
        location,
        field,
        reason,
        raw: serde_json::to_vec(record).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::extract::Query;
    use axum::routing::get;
    use serde_json::{Value, json};

    use super::*;

    /// 250 customers, one per second from 2024-01-01; customer 7 has a bad INN, customer 9
    /// no cursor; asked for records after 00:02:30 it answers 404 while `fail` is set.
    async fn upstream(fail: Arc<std::sync::atomic::AtomicBool>) -> String {
        let app = Router::new().route(
            "/customers",
            get(
                move |Query(q): Query<std::collections::HashMap<String, String>>| {
                    let fail = fail.clone();
                    async move {
                        let since =
                            chrono::DateTime::parse_from_rfc3339(&q["updated_since"]).unwrap();
                        let size: usize = q["page_size"].parse().unwrap();
                        let page: usize = q["page"].parse().unwrap();
                        let t0 =
                            chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
                        let all: Vec<Value> = (0..250i64)
                            .map(|i| {
                                let at = t0 + chrono::Duration::seconds(i);
                                let mut r = json!({"id": format!("C{i}"), "inn": "7707083893"});
                                if i == 7 {
                                    r["inn"] = json!("7707083894");
                                }
                                if i != 9 {
                                    r["updated_at"] = json!(at.to_rfc3339());
                                }
                                (at, r)
                            })
                            .filter(|(at, _)| *at >= since)
                            .map(|(_, r)| r)
                            .collect();
                        if since > t0 + chrono::Duration::seconds(150)
                            && fail.load(std::sync::atomic::Ordering::Relaxed)
                        {
                            return (axum::http::StatusCode::NOT_FOUND, axum::Json(json!({})))
                                .into_response();
                        }
                        let data: Vec<Value> =
                            all.into_iter().skip((page - 1) * size).take(size).collect();
                        axum::Json(json!({"data": data})).into_response()
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    use axum::response::IntoResponse;

    #[tokio::test]
    async fn cursor_moves_only_with_acknowledged_pages_and_bad_records_are_quarantined() {
        let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let base = upstream(fail.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
[hub]
data_dir = "var"

[[sources]]
name = "abs"
kind = "rest_poll"

[sources.rest_poll]
base_url = "{base}"
path = "/customers"
initial_backoff_ms = 10
max_backoff_ms = 20

[sources.rest_poll.cursor]
kind = "updated_since"
param = "updated_since"
field = "updated_at"

[sources.rest_poll.pagination]
kind = "page_number"
page_size = 75

[sources.mapping]
entity = "party"
key = "$.id"
[sources.mapping.fields]
inn = {{ path = "$.inn", validate = "inn" }}

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:9"
"#
        );
        let config = crate::config::parse(&text, dir.path().to_path_buf()).unwrap();
        let source = config.sources[0].clone();
        let ctx = crate::pipeline::open(config, Arc::new(crate::telemetry::Stats::default()))
            .await
            .unwrap();
        let resolve = |r: &str| resolve_secret(r, dir.path());
        let mapping = compile_mapping(&source, &resolve).unwrap();
        let client =
            RestPollClient::new(source.rest_poll.clone().unwrap(), dir.path(), &resolve).unwrap();
        let (_tx, rx) = watch::channel(false);

        // First pass: three pages go through (keyset walk: from 00:00:00, 00:01:14,
        // 00:02:28), the fourth answers 404: the pass stops with the cursor at the last
        // record of page 3.
        let sum = poll_once(&ctx, &source, &client, &mapping, &rx)
            .await
            .unwrap();
        assert!(!sum.complete);
        assert_eq!(sum.pages, 3);
        assert_eq!(
            ctx.store.cursor_get("abs").unwrap().as_deref(),
            Some("2024-01-01T00:03:42Z")
        );
        // Second pass: reads on from there to the end.
        fail.store(false, std::sync::atomic::Ordering::Relaxed);
        let sum2 = poll_once(&ctx, &source, &client, &mapping, &rx)
            .await
            .unwrap();
        assert!(sum2.complete);
        assert_eq!(
            ctx.store.cursor_get("abs").unwrap().as_deref(),
            Some("2024-01-01T00:04:09Z")
        );
        // Every customer but the two bad ones is on the canonical topic (the boundary
        // record of the second pass twice, with the same envelope id).
        let mut c = ctx
            .bus
            .subscribe("t", &ctx.config.bus.canonical_topic())
            .await
            .unwrap();
        let mut ids = std::collections::BTreeMap::new();
        loop {
            let got = c.poll(500, Duration::from_millis(500)).await.unwrap();
            if got.is_empty() {
                break;
            }
            for r in got {
                let e: Envelope = serde_json::from_slice(&r.payload).unwrap();
                assert_eq!(e.version, e.event_time.timestamp_millis());
                ids.entry(e.key).or_insert_with(Vec::new).push(e.id);
            }
        }
        assert_eq!(ids.len(), 248);
        assert!(ids.values().all(|v| v.iter().all(|id| *id == v[0])));
        let mut q = ctx
            .bus
            .subscribe("t", &ctx.config.bus.quarantine_topic())
            .await
            .unwrap();
        let got = q.poll(100, Duration::from_secs(1)).await.unwrap();
        let mut bad: Vec<(String, String, String)> = got
            .iter()
            .map(|r| {
                (
                    r.header("location").unwrap_or_default().to_string(),
                    r.header("field").unwrap_or_default().to_string(),
                    r.header("key").unwrap_or_default().to_string(),
                )
            })
            .collect();
        bad.sort();
        assert_eq!(
            bad,
            vec![
                ("page 1, record 7".into(), "inn".into(), "C7".into()),
                ("page 1, record 9".into(), "updated_at".into(), "C9".into()),
            ]
        );
    }
}

#[cfg(test)]
mod config_tests {
    /// `hub validate` names each problem of the HTTP sources with its key path.
    #[test]
    fn problems_of_http_sources_are_reported_with_their_paths() {
        let text = r#"
[[sources]]
name = "abs"
kind = "rest_poll"
[sources.rest_poll]
base_url = "https://abs.local"
path = "/customers"
[sources.rest_poll.cursor]
kind = "sequence"
param = "since"
field = "seq"
[sources.rest_poll.pagination]
kind = "offset"
page_size = 0
[sources.mapping]
entity = "party"
key = "$.id"

[[sources]]
name = "hooks"
kind = "webhook"
[sources.webhook]
secret = "plain-text"

[[sources]]
name = "lost"
kind = "rest_poll"
[sources.webhook]
secret = "env:X"
[sources.mapping]
entity = "party"
key = "$.id"

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:9"
"#;
        let problems = crate::config::parse(text, std::path::PathBuf::from("."))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>();
        let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
        assert!(
            has("sources[0].rest_poll.pagination.page_size: must be between 1 and 10000"),
            "{problems:#?}"
        );
        assert!(
            has("sources[1].webhook.secret: secrets must be references"),
            "{problems:#?}"
        );
        assert!(
            has("sources[1].kind: `kind = \"webhook\"` needs a [sources.mapping] table"),
            "{problems:#?}"
        );
        assert!(
            has("sources[2].kind: `kind = \"rest_poll\"` needs a [sources.rest_poll] table"),
            "{problems:#?}"
        );
        assert!(
            has("sources[2].webhook: only for `kind = \"webhook\"`"),
            "{problems:#?}"
        );
    }
}
