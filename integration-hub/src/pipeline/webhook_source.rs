//! The webhook source: `POST /webhooks/{source}` on the hub's HTTP listener.
//!
//! Per delivery, in this order: the body is read up to `max_body_bytes` (`413` beyond);
//! the HMAC signature over `"<timestamp>.<body>"` is checked (`401 {"error": "signature
//! mismatch"}`), then the signing time (`401 {"error": "stale"}`); the body is split into
//! events (one object, or `{"events": [...]}`; `400` when it is neither); each event's id
//! is looked up among the ids accepted before — repeats are not published again, and a
//! delivery of nothing but repeats is answered `200 {"status": "duplicate"}`; the new
//! events are mapped, the good ones published to the canonical topic and the bad ones to
//! the quarantine topic. Only when the bus acknowledged both **and** the ids were recorded
//! in the store is the answer `200 {"status": "accepted", ...}`; a bus that does not answer
//! within `ack_timeout_ms` (or a store failure) gives `503` with `Retry-After`, and the
//! sender's retry publishes the same envelope ids again, which the sinks skip.
//!
//! Envelope version: the mapping's `version`, or else its `event_time` in milliseconds, or
//! else the signing time in milliseconds. Event time: the mapping's, or the signing time.
//!
//! The source's task (see [`run`]) forgets accepted ids older than `keep_ids_secs`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::watch;

use adapters::webhook::{
    EventIdSource, SeenIds, Verifier, VerifyError, WebhookConfig, event_ids, split_events,
};
use mapping::Envelope;
use mapping::declarative::CompiledMapping;

use super::file_source::to_message;
use super::quarantine::{self, Quarantined};
use super::rest_source::compile_mapping;
use super::{Ctx, sleep_or_shutdown};
use crate::api_doc::{Access, Documented, Endpoint, described};
use crate::config::{SourceConfig, SourceKind, resolve_secret};
use crate::store::Store;
use crate::{telemetry, trace};

/// How often accepted ids past their keep time are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// What a `503` asks the sender to wait.
const RETRY_AFTER_SECS: u64 = 5;

impl SeenIds for Store {
    fn seen(&self, source: &str, ids: &[String]) -> Result<Vec<bool>, String> {
        self.webhook_seen(source, ids).map_err(|e| e.to_string())
    }
    fn record(&self, source: &str, ids: &[String], at: DateTime<Utc>) -> Result<(), String> {
        self.webhook_record_seen(source, ids, at.timestamp())
            .map_err(|e| e.to_string())
    }
}

/// One configured webhook source, ready to take deliveries.
struct Hook {
    name: String,
    cfg: WebhookConfig,
    verifier: Verifier,
    ids: EventIdSource,
    mapping: CompiledMapping,
}

#[derive(Clone)]
struct Hooks {
    ctx: Ctx,
    by_name: Arc<HashMap<String, Arc<Hook>>>,
}

/// The routes of every webhook source of the config, or `None` when there is none.
/// Secrets and mappings are resolved here, so a broken one stops the hub at start.
pub fn router(ctx: &Ctx) -> anyhow::Result<Option<Router>> {
    let base_dir = ctx.config.base_dir.clone();
    let resolve = |r: &str| resolve_secret(r, &base_dir);
    let mut by_name = HashMap::new();
    for source in ctx
        .config
        .sources
        .iter()
        .filter(|s| s.kind == SourceKind::Webhook)
    {
        let cfg = source
            .webhook
            .clone()
            .with_context(|| format!("source {}: webhook settings missing", source.name))?;
        cfg.validate()
            .with_context(|| format!("source {}", source.name))?;
        let secret = resolve(&cfg.secret)
            .map_err(|e| anyhow::anyhow!("source {}: webhook.secret: {e}", source.name))?;
        if secret.is_empty() {
            anyhow::bail!("source {}: webhook.secret is empty", source.name);
        }
        let ids = cfg
            .event_id()
            .with_context(|| format!("source {}", source.name))?;
        let hook = Hook {
            name: source.name.clone(),
            verifier: Verifier::new(secret.into_bytes(), cfg.tolerance_secs),
            ids,
            mapping: compile_mapping(source, &resolve)?,
            cfg,
        };
        by_name.insert(source.name.clone(), Arc::new(hook));
    }
    if by_name.is_empty() {
        return Ok(None);
    }
    let state = Hooks {
        ctx: ctx.clone(),
        by_name: Arc::new(by_name),
    };
    Ok(Some(api().into_router().with_state(state)))
}

/// The endpoint of [`router`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Hooks> {
    Documented::default().route(&RECEIVE, receive)
}

static RECEIVE: Endpoint = Endpoint {
    method: "post",
    path: "/webhooks/{source}",
    tag: "sources",
    summary: "A change event for a webhook source, signed with HMAC-SHA256 over timestamp and body; \
              200 only once the bus has it",
    access: Access::WebhookSignature,
    personal_data: false,
    query: &[],
    body: Some(|| described("the source system's event, mapped by the source's mapping")),
    answer: Some(|| described("{status: accepted | duplicate, ...}")),
    errors: &[
        (400, "the body cannot be read or mapped"),
        (404, "no webhook source of that name"),
        (413, "the body is larger than max_body_bytes"),
        (503, "the bus is unavailable: send again later"),
    ],
};

/// The task of a webhook source: deliveries come through [`router`]; this forgets the
/// accepted ids past `keep_ids_secs`, every minute, until shutdown.
pub async fn run(
    ctx: Ctx,
    source: SourceConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let cfg = source.webhook.clone().context("webhook settings missing")?;
    let keep = i64::try_from(cfg.keep_ids_secs).unwrap_or(i64::MAX);
    loop {
        let before = Utc::now().timestamp().saturating_sub(keep);
        let (store, name) = (ctx.store.clone(), source.name.clone());
        let pruned =
            tokio::task::spawn_blocking(move || store.webhook_prune_seen(&name, before)).await??;
        if pruned > 0 {
            tracing::info!(
                event = "webhook_ids_pruned",
                source = %source.name,
                pruned,
                "accepted webhook ids past their keep time forgotten"
            );
        }
        if sleep_or_shutdown(PRUNE_EVERY, &mut shutdown).await {
            return Ok(());
        }
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

fn unavailable() -> Response {
    let mut r = answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": "not acknowledged by the bus; retry later"}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, RETRY_AFTER_SECS.into());
    r
}

async fn receive(
    State(hooks): State<Hooks>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(hook) = hooks.by_name.get(&name).cloned() else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "no such webhook source"}),
        );
    };
    let max = hook.cfg.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return too_large(&hook, max);
    }
    let Ok(bytes) = axum::body::to_bytes(body, max).await else {
        return too_large(&hook, max);
    };
    let header_of = |name: &str| headers.get(name).map(|v| v.as_bytes());
    let now = Utc::now();
    let signed_at = match hook.verifier.verify(
        header_of(&hook.cfg.signature_header),
        header_of(&hook.cfg.timestamp_header),
        &bytes,
        now,
    ) {
        Ok(ts) => ts,
        Err(e) => {
            tracing::warn!(
                event = "webhook_refused",
                source = %hook.name,
                reason = %e,
                "webhook delivery refused"
            );
            let error = match e {
                VerifyError::Stale { .. } => "stale",
                _ => "signature mismatch",
            };
            return answer(StatusCode::UNAUTHORIZED, json!({ "error": error }));
        }
    };
    let events = match split_events(&bytes) {
        Ok(e) => e,
        Err(reason) => {
            tracing::warn!(event = "webhook_refused", source = %hook.name, reason, "webhook body unusable");
            return answer(StatusCode::BAD_REQUEST, json!({ "error": reason }));
        }
    };
    let delivery_id = match &hook.ids {
        EventIdSource::Header(h) => headers.get(h).map(|v| v.as_bytes()),
        EventIdSource::Path(_) => None,
    };
    let ids = event_ids(&events, &hook.ids, delivery_id);
    let signed_time = DateTime::<Utc>::from_timestamp(signed_at, 0).unwrap_or(now);
    match accept(&hooks.ctx, &hook, &events, &ids, signed_time).await {
        Ok(Accepted::Duplicate) => {
            tracing::info!(event = "webhook_duplicate", source = %hook.name, events = events.len(), "webhook delivery repeated; nothing published");
            answer(StatusCode::OK, json!({"status": "duplicate"}))
        }
        Ok(Accepted::New {
            published,
            quarantined,
            duplicates,
        }) => {
            tracing::info!(
                event = "webhook_accepted",
                source = %hook.name,
                events = events.len(),
                published,
                quarantined,
                duplicates,
                "webhook delivery accepted"
            );
            answer(
                StatusCode::OK,
                json!({
                    "status": "accepted",
                    "events": events.len(),
                    "published": published,
                    "quarantined": quarantined,
                    "duplicates": duplicates,
                }),
            )
        }
        Err(e) => {
            tracing::error!(
                event = "webhook_not_durable",
                source = %hook.name,
                error = %format!("{e:#}"),
                "webhook delivery not acknowledged; answered 503"
            );
            unavailable()
        }
    }
}

fn too_large(hook: &Hook, max: usize) -> Response {
    tracing::warn!(event = "webhook_refused", source = %hook.name, max_body_bytes = max, "webhook body too large");
    let mut r = answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"error": format!("body larger than {max} bytes")}),
    );
    // The rest of the body is not read: the connection cannot carry another request.
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

enum Accepted {
    Duplicate,
    New {
        published: u64,
        quarantined: u64,
        duplicates: u64,
    },
}

/// Publishes the new events of a verified delivery and records their ids; `Err` when the
/// bus or the store did not confirm in time (nothing may be answered `2xx` then).
async fn accept(
    ctx: &Ctx,
    hook: &Hook,
    events: &[serde_json::Value],
    ids: &[Result<String, String>],
    signed_at: DateTime<Utc>,
) -> anyhow::Result<Accepted> {
    let known: Vec<String> = ids
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let (store, name, lookup) = (ctx.store.clone(), hook.name.clone(), known.clone());
    let seen = tokio::task::spawn_blocking(move || SeenIds::seen(&*store, &name, &lookup))
        .await?
        .map_err(|e| anyhow::anyhow!(e))?;
    let seen: std::collections::HashSet<&String> = known
        .iter()
        .zip(&seen)
        .filter(|(_, s)| **s)
        .map(|(id, _)| id)
        .collect();
    if !events.is_empty()
        && ids
            .iter()
            .all(|r| r.as_ref().is_ok_and(|id| seen.contains(id)))
    {
        return Ok(Accepted::Duplicate);
    }
    let now = Utc::now();
    let mut messages = Vec::new();
    let mut bad = Vec::new();
    let mut fresh = Vec::new();
    let mut duplicates = 0u64;
    for (i, (event, id)) in events.iter().zip(ids).enumerate() {
        let id = match id {
            Ok(id) if seen.contains(id) => {
                duplicates += 1;
                continue;
            }
            Ok(id) => id,
            Err(reason) => {
                bad.push(Quarantined {
                    key: hook.mapping.key_of(event),
                    location: format!("POST /webhooks/{}, event {i}", hook.name),
                    field: "event_id".into(),
                    reason: reason.clone(),
                    raw: serde_json::to_vec(event).unwrap_or_default(),
                });
                continue;
            }
        };
        fresh.push(id.clone());
        match hook.mapping.apply(event) {
            Ok(m) => {
                let version = m
                    .version
                    .or(m.event_time.map(|t| t.timestamp_millis()))
                    .unwrap_or_else(|| signed_at.timestamp_millis());
                let env = Envelope::new(
                    &hook.name,
                    m.entity,
                    m.op,
                    &m.key,
                    version,
                    m.event_time.unwrap_or(signed_at),
                    now,
                    m.payload,
                );
                messages.push(to_message(&env)?);
            }
            Err(errors) => bad.push(Quarantined {
                key: hook.mapping.key_of(event),
                location: format!("POST /webhooks/{}, event {i} (id {id})", hook.name),
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
                raw: serde_json::to_vec(event).unwrap_or_default(),
            }),
        }
    }
    telemetry::rows_read(&ctx.stats, &hook.name, events.len() as u64);
    let published = messages.len() as u64;
    let quarantined = bad.len() as u64;
    let deadline = hook.cfg.ack_timeout();
    let topic = ctx.config.bus.canonical_topic();
    let durable = async {
        if !messages.is_empty() {
            let ids = trace::ids_of(&messages);
            trace::source_batch(&hook.name, &ids, false);
            ctx.bus.publish(&topic, messages).await?;
            trace::source_batch(&hook.name, &ids, true);
            telemetry::events_published(&ctx.stats, &hook.name, &topic, published);
        }
        quarantine::publish(ctx, &hook.name, bad).await
    };
    tokio::time::timeout(deadline, durable)
        .await
        .map_err(|_| anyhow::anyhow!("bus did not acknowledge within {deadline:?}"))??;
    // Durable on the bus: now the ids, so that a repeat is recognised.
    let (store, name) = (ctx.store.clone(), hook.name.clone());
    tokio::task::spawn_blocking(move || SeenIds::record(&*store, &name, &fresh, now))
        .await?
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(Accepted::New {
        published,
        quarantined,
        duplicates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    const SECRET: &[u8] = b"whsec-unit";

    async fn hub(dir: &std::path::Path) -> (Ctx, Router) {
        std::fs::write(dir.join("hook.secret"), SECRET).unwrap();
        let text = r#"
[hub]
data_dir = "var"

[[sources]]
name = "hooks"
kind = "webhook"

[sources.webhook]
secret = "file:hook.secret"
event_id_path = "$.event_id"
max_body_bytes = 2048

[sources.mapping]
entity = "party"
key = "$.id"
version = "$.v"
[sources.mapping.fields]
last_name = "$.ln"
inn = { path = "$.inn", validate = "inn" }

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:9"
"#;
        let config = crate::config::parse(text, dir.to_path_buf()).unwrap();
        let ctx = crate::pipeline::open(config, Arc::new(crate::telemetry::Stats::default()))
            .await
            .unwrap();
        let router = router(&ctx).unwrap().expect("a webhook source");
        (ctx, router)
    }

    async fn post(router: &Router, body: &str, sign_at: Option<i64>) -> (StatusCode, String) {
        let mut req = Request::post("/webhooks/hooks").header("content-type", "application/json");
        if let Some(ts) = sign_at {
            req = req.header("X-Hub-Timestamp", ts.to_string()).header(
                "X-Hub-Signature",
                adapters::webhook::sign(SECRET, ts, body.as_bytes()),
            );
        }
        let res = router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn deliveries_are_verified_published_once_and_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, router) = hub(dir.path()).await;
        let now = Utc::now().timestamp();
        let one =
            r#"{"event_id": "e1", "id": "C1", "v": 3, "ln": "Иванов", "inn": "500100732259"}"#;
        let (s, b) = post(&router, one, Some(now)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(b.contains("\"published\":1"), "{b}");
        // The same event again: a duplicate, not published again.
        let (s, b) = post(&router, one, Some(now + 1)).await;
        assert_eq!(
            (s, b.as_str()),
            (StatusCode::OK, r#"{"status":"duplicate"}"#)
        );
        // A batch with the old event, a new one and one the mapping rejects.
        let batch = r#"{"events": [
            {"event_id": "e1", "id": "C1", "v": 3, "inn": "500100732259"},
            {"event_id": "e2", "id": "C2", "v": 1, "inn": "7707083893"},
            {"event_id": "e3", "id": "C3", "v": 1, "inn": "7707083894"},
            {"id": "C4", "v": 1}
        ]}"#;
        let (s, b) = post(&router, batch, Some(now)).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["published"], 1);
        assert_eq!(v["quarantined"], 2);
        assert_eq!(v["duplicates"], 1);
        // Refusals.
        assert_eq!(
            post(&router, one, None).await,
            (
                StatusCode::UNAUTHORIZED,
                r#"{"error":"signature mismatch"}"#.into()
            )
        );
        assert_eq!(
            post(&router, one, Some(now - 301)).await,
            (StatusCode::UNAUTHORIZED, r#"{"error":"stale"}"#.into())
        );
        let big = format!(r#"{{"event_id": "e9", "pad": "{}"}}"#, "x".repeat(3000));
        assert_eq!(
            post(&router, &big, Some(now)).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            post(&router, "[1]", Some(now)).await.0,
            StatusCode::BAD_REQUEST
        );

        // On the bus: C1 v3 and C2 v1 on the canonical topic; C3 and the id-less event in
        // quarantine with their locations.
        let topic = ctx.config.bus.canonical_topic();
        let mut c = ctx.bus.subscribe("t", &topic).await.unwrap();
        let got = c.poll(100, Duration::from_secs(2)).await.unwrap();
        let mut keys: Vec<(String, i64)> = got
            .iter()
            .map(|r| {
                let e: Envelope = serde_json::from_slice(&r.payload).unwrap();
                (e.key, e.version)
            })
            .collect();
        keys.sort();
        assert_eq!(keys, vec![("C1".into(), 3), ("C2".into(), 1)]);
        let mut q = ctx
            .bus
            .subscribe("t", &ctx.config.bus.quarantine_topic())
            .await
            .unwrap();
        let got = q.poll(100, Duration::from_secs(2)).await.unwrap();
        let mut locations: Vec<(String, String)> = got
            .iter()
            .map(|r| {
                (
                    r.header("location").unwrap_or_default().to_string(),
                    r.header("field").unwrap_or_default().to_string(),
                )
            })
            .collect();
        locations.sort();
        assert_eq!(
            locations,
            vec![
                ("POST /webhooks/hooks, event 2 (id e3)".into(), "inn".into()),
                ("POST /webhooks/hooks, event 3".into(), "event_id".into()),
            ]
        );
        // The ids survive in the store.
        assert_eq!(
            ctx.store
                .webhook_seen(
                    "hooks",
                    &["e1".into(), "e2".into(), "e3".into(), "e9".into()]
                )
                .unwrap(),
            vec![true, true, true, false]
        );
    }
}
