//! The CRM sink task: consumes canonical events and upserts them into the CRM by external id.
//!
//! Per batch: events are grouped by entity key, keeping only the newest version of each key
//! (full-state upserts: an older state must never win); keys whose newest version the CRM
//! already acknowledged (per the store) are skipped; the rest are sent concurrently across
//! keys, one request per key, with in-place retries for transient errors. Then, in this
//! order: the acknowledged versions are written to the store, permanent failures are
//! published to the dead-letter topic, and only then the bus offsets are committed. If a
//! transient failure outlasts its retries the batch is not committed; it is retried after a
//! pause (already-delivered keys are skipped the second time).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use adapters::crm::rest::{ContactUpsert, CrmRestClient};
use mapping::Envelope;

use super::sink_plan::{self, EntityKey};
use super::{Ctx, sleep_or_shutdown};
use crate::bus::{OutMessage, Record, offsets_after};
use crate::config::{SinkConfig, resolve_secret};
use crate::store::Delivered;
use crate::telemetry;

const POLL_MAX: usize = 500;
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Acknowledged deliveries recorded in the store per transaction.
const RECORD_EVERY: usize = 32;

pub async fn run(
    ctx: Ctx,
    sink: SinkConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut crm_cfg = sink.crm_rest.clone().context("crm_rest settings missing")?;
    if let Some(token) = &crm_cfg.token {
        crm_cfg.token = Some(
            resolve_secret(token, &ctx.config.base_dir)
                .map_err(|e| anyhow::anyhow!("sink {}: crm_rest.token: {e}", sink.name))?,
        );
    }
    let concurrency = crm_cfg.concurrency.max(1);
    let client = Arc::new(CrmRestClient::new(crm_cfg)?);
    let group = format!("{}-sink-{}", ctx.config.bus.topic_prefix, sink.name);
    let topic = ctx.config.sink_topic();
    let mut consumer = ctx.bus.subscribe(&group, &topic).await?;
    tracing::info!(sink = %sink.name, group, topic, "sink started");
    let mut pause = Duration::from_millis(500);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let batch = consumer.poll(POLL_MAX, POLL_WAIT).await?;
        if batch.is_empty() {
            continue;
        }
        // Retry the same batch in place until it is fully settled or shutdown comes.
        let mut first_pass = true;
        let mut dead_keys = HashSet::new();
        loop {
            let outcome = deliver_batch(
                &ctx,
                &sink,
                &client,
                concurrency,
                &batch,
                first_pass,
                &mut dead_keys,
            )
            .await?;
            match outcome {
                BatchOutcome::Settled => break,
                BatchOutcome::Retry => {
                    first_pass = false;
                    if sleep_or_shutdown(pause, &mut shutdown).await {
                        // Not committed: the batch is delivered again after restart.
                        return Ok(());
                    }
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
        pause = Duration::from_millis(500);
        // Every effect of the batch is recorded: now the offsets may move.
        consumer.commit(&offsets_after(&batch)).await?;
        telemetry::committed(&ctx.stats, &sink.name, batch.len() as u64);
    }
}

enum BatchOutcome {
    Settled,
    Retry,
}

async fn deliver_batch(
    ctx: &Ctx,
    sink: &SinkConfig,
    client: &Arc<CrmRestClient>,
    concurrency: usize,
    batch: &[Record],
    first_pass: bool,
    dead_keys: &mut HashSet<EntityKey>,
) -> anyhow::Result<BatchOutcome> {
    // Decode; what cannot be decoded is a permanent failure for the dead-letter topic.
    let mut dead: Vec<(Record, String, u32)> = Vec::new();
    let mut decoded = Vec::with_capacity(batch.len());
    for rec in batch {
        let env: Envelope = match serde_json::from_slice(&rec.payload) {
            Ok(e) => e,
            Err(e) => {
                // Dead-lettered once, on the first pass over the batch.
                if first_pass {
                    dead.push((rec.clone(), format!("cannot decode envelope: {e}"), 0));
                }
                continue;
            }
        };
        if (!sink.sources.is_empty() && !sink.sources.contains(&env.source))
            || !sink.entities.contains(&env.entity)
        {
            continue;
        }
        let key = (env.entity.as_str().to_string(), env.key.clone());
        decoded.push((key, env.version, (env, rec)));
    }
    let (newest, superseded) = sink_plan::newest_per_key(decoded);
    // Skips are counted on the first pass only: on a retry, "already delivered" also holds
    // the keys the first pass delivered, which were counted as delivered.
    if first_pass && superseded > 0 {
        telemetry::skipped(&ctx.stats, &sink.name, "superseded", superseded);
    }

    // Skip keys whose version the CRM already has (re-delivery after a crash, re-sent rows).
    let keys: Vec<EntityKey> = newest.keys().cloned().collect();
    let store = ctx.store.clone();
    let sink_name = sink.name.clone();
    let lookup = keys.clone();
    let versions =
        tokio::task::spawn_blocking(move || store.delivered_versions(&sink_name, &lookup))
            .await??;
    let have: HashMap<EntityKey, i64> = keys
        .into_iter()
        .zip(versions)
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    let (todo, already) = sink_plan::to_send(newest, |k| have.get(k).copied(), dead_keys);
    if first_pass && already > 0 {
        telemetry::skipped(&ctx.stats, &sink.name, "already_delivered", already);
    }

    let sem = Arc::new(Semaphore::new(concurrency));
    let mut jobs = JoinSet::new();
    for (_, _, (env, rec)) in todo {
        let rec = rec.clone();
        let client = client.clone();
        let sem = sem.clone();
        jobs.spawn(async move {
            // The permit travels with the result and is released only once the result is
            // taken in below, so at most `concurrency` acknowledged-but-unrecorded
            // deliveries exist besides the group waiting to be recorded.
            let permit = sem.acquire_owned().await;
            let req = ContactUpsert {
                external_id: env.key.clone(),
                version: env.version,
                source: env.source.clone(),
                envelope_id: env.id.clone(),
                fields: env.payload.clone(),
            };
            let result = client.upsert_with_retry(&req).await;
            (env, rec, result, Utc::now(), permit)
        });
    }
    let mut acked = Vec::new();
    let mut transient_left = false;
    let mut auth_rejected = false;
    while let Some(j) = jobs.join_next().await {
        let (env, rec, result, at, permit) = j.context("delivery task panicked")?;
        drop(permit);
        match result {
            Ok((_ack, attempts)) => {
                if attempts > 1 {
                    telemetry::retried(&ctx.stats, &sink.name, u64::from(attempts - 1));
                }
                let lag = (at - env.event_time).num_microseconds().unwrap_or(0) as f64 / 1e6;
                telemetry::delivered(
                    &ctx.stats,
                    &sink.name,
                    &env.source,
                    env.entity.as_str(),
                    lag,
                );
                acked.push(Delivered {
                    entity: env.entity.as_str().to_string(),
                    key: env.key.clone(),
                    version: env.version,
                    envelope_id: env.id.clone(),
                });
                // Record acknowledgements as they come, in small groups: a crash then
                // repeats at most one group plus what was in flight, not a whole batch.
                if acked.len() >= RECORD_EVERY {
                    record(ctx, &sink.name, std::mem::take(&mut acked)).await?;
                }
            }
            Err(e) => {
                // Rejected credentials say nothing about the record: the whole sink waits
                // (and says so) instead of dead-lettering every record until someone
                // fixes the token.
                let transient = e.is_transient() || e.is_auth();
                telemetry::delivery_failed(&sink.name, &env.key, transient, &e.to_string());
                if e.is_auth() {
                    auth_rejected = true;
                }
                if transient {
                    transient_left = true;
                } else {
                    dead_keys.insert((env.entity.as_str().to_string(), env.key.clone()));
                    dead.push((rec, e.to_string(), e.attempts().unwrap_or(1)));
                }
            }
        }
    }
    record(ctx, &sink.name, acked).await?;
    if auth_rejected {
        telemetry::sink_credentials_rejected(&sink.name);
    }
    if !dead.is_empty() {
        let msgs: Vec<OutMessage> = dead
            .iter()
            .map(|(rec, reason, attempts)| dead_letter(&sink.name, rec, reason, *attempts))
            .collect();
        ctx.bus.publish(&ctx.config.bus.dlq_topic(), msgs).await?;
        for (rec, reason, _) in &dead {
            telemetry::dead_lettered(&ctx.stats, &sink.name, &rec.key, reason);
        }
    }
    Ok(if transient_left {
        BatchOutcome::Retry
    } else {
        BatchOutcome::Settled
    })
}

async fn record(ctx: &Ctx, sink: &str, acked: Vec<Delivered>) -> anyhow::Result<()> {
    if acked.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    let sink = sink.to_string();
    tokio::task::spawn_blocking(move || store.record_delivered(&sink, &acked)).await??;
    Ok(())
}

/// A dead letter keeps the original payload and says where it came from and why it failed.
/// `attempts` is 0 for a record that could not even be decoded.
fn dead_letter(sink: &str, rec: &Record, reason: &str, attempts: u32) -> OutMessage {
    let now = Utc::now().to_rfc3339();
    let mut headers = vec![
        ("error".to_string(), reason.to_string()),
        ("attempts".to_string(), attempts.to_string()),
        ("first_failure".to_string(), now.clone()),
        ("last_failure".to_string(), now),
        ("origin_topic".to_string(), rec.topic.clone()),
        ("origin_partition".to_string(), rec.partition.to_string()),
        ("origin_offset".to_string(), rec.offset.to_string()),
        ("sink".to_string(), sink.to_string()),
    ];
    for h in ["id", "source", "entity"] {
        if let Some(v) = rec.header(h) {
            headers.push((h.to_string(), v.to_string()));
        }
    }
    OutMessage {
        key: rec.key.clone(),
        headers,
        payload: rec.payload.clone(),
    }
}
