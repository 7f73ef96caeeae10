//! The golden stage: between screening (or the sources) and the CRM sinks.
//!
//! Consumes `<prefix>.cleared` (or `<prefix>.canonical` without compliance). Every party is
//! matched into the golden-record store; the store puts each golden record it changed into
//! its outbox in the same transaction, and this stage publishes the outbox to
//! `<prefix>.golden`, keyed by golden id. Every other record is forwarded unchanged, so the
//! sinks read one topic.
//!
//! Order of effects per batch: store writes (with the outbox) → forwarded records →
//! outbox published and marked done → offsets committed. A crash anywhere replays the
//! batch: ingesting the same event again changes nothing, and what the outbox still holds
//! is published on the next pass; the sinks skip versions they already delivered.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::watch;

use mapping::{Entity, Envelope, Op, Party};

use super::store::{GoldenOut, GoldenStore, IngestOutcome, PartyEvent, StoreError};
use crate::bus::{OutMessage, Record, offsets_after};
use crate::pipeline::{Ctx, sleep_or_shutdown};
use crate::telemetry;
use crate::trace::{self, Step};

const POLL_MAX: usize = 500;
const POLL_WAIT: Duration = Duration::from_millis(200);
const OUTBOX_BATCH: usize = 500;
/// The `source` of golden envelopes.
pub const GOLDEN_SOURCE: &str = "golden";

pub async fn run(
    ctx: Ctx,
    store: Arc<GoldenStore>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let group = format!("{}-golden", ctx.config.bus.topic_prefix);
    let topic = ctx.config.golden_input_topic();
    let mut consumer = ctx.bus.subscribe(&group, &topic).await?;
    tracing::info!(group, topic, "golden stage started");
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        // Steward decisions made through the API land in the outbox too.
        flush_outbox(&ctx, &store).await?;
        let batch = consumer.poll(POLL_MAX, POLL_WAIT).await?;
        if batch.is_empty() {
            continue;
        }
        let s = store.clone();
        let systems = ctx.clone();
        let out = tokio::task::spawn_blocking(move || {
            process(&s, &batch, |source| {
                systems.config.system_of(source).to_string()
            })
            .map(|o| (o, batch))
        })
        .await
        .context("golden stage panicked")?;
        let (out, batch) = out?;
        for m in &out.merges {
            m.audit();
        }
        let dead = trace::ids_of(&out.dead);
        if !out.forward.is_empty() {
            ctx.bus
                .publish(&ctx.config.bus.golden_topic(), out.forward)
                .await?;
        }
        if !out.dead.is_empty() {
            ctx.bus
                .publish(&ctx.config.bus.dlq_topic(), out.dead)
                .await?;
        }
        flush_outbox(&ctx, &store).await?;
        trace_batch(&batch, &dead);
        consumer.commit(&offsets_after(&batch)).await?;
        if sleep_or_shutdown(Duration::ZERO, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// Publishes what the outbox holds, oldest first, then marks it done. A crash in between
/// publishes it again; the sinks' version guard makes that harmless.
pub async fn flush_outbox(ctx: &Ctx, store: &Arc<GoldenStore>) -> anyhow::Result<()> {
    loop {
        let s = store.clone();
        let pending = tokio::task::spawn_blocking(move || s.outbox(OUTBOX_BATCH)).await??;
        if pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = pending.iter().map(|o| o.outbox_id).collect();
        let mut msgs = Vec::with_capacity(pending.len());
        for out in &pending {
            msgs.push(golden_message(out)?);
        }
        let n = msgs.len() as u64;
        ctx.bus
            .publish(&ctx.config.bus.golden_topic(), msgs)
            .await?;
        let s = store.clone();
        tokio::task::spawn_blocking(move || s.outbox_done(&ids)).await??;
        telemetry::golden_published(n);
        if pending.len() < OUTBOX_BATCH {
            return Ok(());
        }
    }
}

/// Trace lines for a batch the store took: its parties were merged into golden records
/// (delivered under the golden record's own trace id), except those dead-lettered.
fn trace_batch(batch: &[Record], dead: &[String]) {
    if !trace::enabled() {
        return;
    }
    let merged = batch
        .iter()
        .filter(|r| r.header("entity") == Some("party"))
        .filter_map(|r| trace::id_of(&r.headers))
        .filter(|id| !dead.iter().any(|d| d == id));
    trace::step(Step::Merged, "golden", merged);
    trace::step(
        Step::DeadLettered,
        "golden",
        dead.iter().map(String::as_str),
    );
}

/// The envelope of a golden record: the golden party, its cross-references and the golden
/// ids merged into it (the sinks merge those CRM contacts into this one).
pub fn golden_envelope(out: &GoldenOut) -> anyhow::Result<Envelope> {
    let mut payload = serde_json::to_value(&out.party)?;
    if let Some(obj) = payload.as_object_mut() {
        obj.insert("xrefs".into(), serde_json::to_value(&out.xrefs)?);
        obj.insert("absorbed".into(), serde_json::to_value(&out.absorbed)?);
    }
    Ok(Envelope::new(
        GOLDEN_SOURCE,
        Entity::Party,
        Op::Upsert,
        &out.golden_id,
        out.version,
        out.event_time,
        Utc::now(),
        payload,
    ))
}

fn golden_message(out: &GoldenOut) -> anyhow::Result<OutMessage> {
    let env = golden_envelope(out)?;
    Ok(OutMessage {
        key: env.key.clone(),
        headers: vec![
            ("id".into(), env.id.clone()),
            ("entity".into(), "party".into()),
            ("source".into(), GOLDEN_SOURCE.into()),
            ("trace_id".into(), env.trace_id.clone()),
        ],
        payload: serde_json::to_vec(&env)?,
    })
}

/// What one batch produced besides the outbox.
pub struct BatchOut {
    /// Non-party records, unchanged.
    pub forward: Vec<OutMessage>,
    /// Records the stage cannot apply, for the dead-letter topic.
    pub dead: Vec<OutMessage>,
    /// Golden records the matcher merged by itself, for the audit log.
    pub merges: Vec<AutoMerge>,
}

/// A merge the matcher made on its own: an event tied golden records together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoMerge {
    pub survivor: String,
    pub absorbed: Vec<String>,
    /// The event that tied them: `source:key vN`.
    pub on: String,
}

impl AutoMerge {
    /// The audit entry's detail: ids only.
    pub fn detail(&self) -> String {
        format!("absorbed {}; on {}", self.absorbed.join(" "), self.on)
    }

    fn audit(&self) {
        crate::audit::record(
            "matcher",
            "golden_merge",
            &self.survivor,
            "merged",
            &self.detail(),
        );
    }
}

fn unchanged(rec: &Record) -> OutMessage {
    OutMessage {
        key: rec.key.clone(),
        headers: rec.headers.clone(),
        payload: rec.payload.clone(),
    }
}

/// Matches the parties of one batch into the store (blocking: store and CPU work).
/// `system_of` names the system of a configured source.
pub fn process(
    store: &GoldenStore,
    batch: &[Record],
    system_of: impl Fn(&str) -> String,
) -> anyhow::Result<BatchOut> {
    let mut out = BatchOut {
        forward: Vec::new(),
        dead: Vec::new(),
        merges: Vec::new(),
    };
    let mut events: Vec<(PartyEvent, &Record, Envelope)> = Vec::new();
    for rec in batch {
        let env: Envelope = match serde_json::from_slice(&rec.payload) {
            Ok(e) => e,
            // Not ours to judge: the sink dead-letters what it cannot decode.
            Err(_) => {
                out.forward.push(unchanged(rec));
                continue;
            }
        };
        if env.entity != Entity::Party {
            out.forward.push(unchanged(rec));
            continue;
        }
        match (env.op, serde_json::from_value::<Party>(env.payload.clone())) {
            (Op::Upsert, Ok(party)) => {
                let event = PartyEvent {
                    system: system_of(&env.source),
                    source: env.source.clone(),
                    source_id: env.key.clone(),
                    version: env.version,
                    event_id: env.id.clone(),
                    event_time: env.event_time,
                    party,
                };
                events.push((event, rec, env));
            }
            (Op::Delete, _) => reject(
                &mut out,
                rec,
                &env,
                "a party delete is not applied to golden records; a data steward decides \
                 (unmerge or keep)",
            ),
            (Op::Upsert, Err(e)) => reject(
                &mut out,
                rec,
                &env,
                &format!("party payload cannot be decoded: {e}"),
            ),
        }
    }
    // One transaction for the batch; if the store refuses an event, find it one by one so
    // only that one goes to the dead-letter topic.
    let all: Vec<PartyEvent> = events.iter().map(|(e, _, _)| e.clone()).collect();
    match store.ingest_many(&all) {
        Ok(outcomes) => {
            for ((_, _, env), outcome) in events.iter().zip(&outcomes) {
                log_outcome(&mut out, env, outcome);
            }
        }
        Err(StoreError::Invalid(_)) => {
            for (event, rec, env) in &events {
                match store.ingest(event) {
                    Ok(outcome) => log_outcome(&mut out, env, &outcome),
                    Err(StoreError::Invalid(reason)) => reject(&mut out, rec, env, &reason),
                    Err(e) => {
                        return Err(e).with_context(|| format!("golden store: event {}", env.id));
                    }
                }
            }
        }
        Err(e) => return Err(e).context("golden store: ingesting a batch"),
    }
    Ok(out)
}

fn reject(out: &mut BatchOut, rec: &Record, env: &Envelope, reason: &str) {
    telemetry::golden_rejected(&env.source, reason);
    out.dead.push(dead_letter(rec, reason));
}

fn log_outcome(out: &mut BatchOut, env: &Envelope, outcome: &IngestOutcome) {
    telemetry::golden_ingested(&env.source, outcome.action_name());
    if !outcome.merged().is_empty() {
        tracing::info!(
            event = "golden_merged",
            source = %env.source,
            envelope = %env.id,
            golden = %outcome.golden_id(),
            losers = outcome.merged().len(),
            "golden records merged"
        );
        out.merges.push(AutoMerge {
            survivor: outcome.golden_id().to_string(),
            absorbed: outcome.merged().to_vec(),
            on: format!("{}:{} v{}", env.source, env.key, env.version),
        });
    }
}

fn dead_letter(rec: &Record, reason: &str) -> OutMessage {
    let now = Utc::now().to_rfc3339();
    let mut headers = vec![
        ("error".to_string(), reason.to_string()),
        ("attempts".to_string(), "1".to_string()),
        ("first_failure".to_string(), now.clone()),
        ("last_failure".to_string(), now),
        ("origin_topic".to_string(), rec.topic.clone()),
        ("origin_partition".to_string(), rec.partition.to_string()),
        ("origin_offset".to_string(), rec.offset.to_string()),
        ("stage".to_string(), "golden".to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::store::MdmSettings;
    use chrono::TimeZone;
    use serde_json::json;

    fn record(offset: i64, env: &Envelope) -> Record {
        Record {
            topic: "hub.canonical".into(),
            partition: 0,
            offset,
            key: env.key.clone(),
            headers: vec![("id".into(), env.id.clone())],
            payload: serde_json::to_vec(env).unwrap(),
        }
    }

    fn party_env(source: &str, key: &str, op: Op, payload: serde_json::Value) -> Envelope {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
        Envelope::new(source, Entity::Party, op, key, 1, t, t, payload)
    }

    #[test]
    fn parties_go_to_the_store_others_pass_and_what_cannot_apply_is_dead_lettered() {
        let dir = tempfile::tempdir().unwrap();
        let store = GoldenStore::open_sqlite(&dir.path().join("golden.db"), MdmSettings::default())
            .unwrap();
        let person = json!({"kind": "person", "source_id": "C-1", "last_name": "Иванова",
            "first_name": "Мария", "inn": "500123456750", "phones": ["+79161234567"]});
        let account = Envelope::new(
            "abs",
            Entity::Account,
            Op::Upsert,
            "A-1",
            1,
            Utc::now(),
            Utc::now(),
            json!({}),
        );
        let batch = vec![
            record(
                0,
                &party_env("abs-customers", "C-1", Op::Upsert, person.clone()),
            ),
            record(1, &account),
            record(2, &party_env("abs-customers", "C-2", Op::Delete, json!({}))),
            record(
                3,
                &party_env("abs-customers", "C-3", Op::Upsert, json!({"kind": 7})),
            ),
            Record {
                payload: b"not json".to_vec(),
                ..record(4, &account)
            },
        ];
        let out = process(&store, &batch, |_| "abs".to_string()).unwrap();
        // The account and the undecodable record pass on unchanged.
        assert_eq!(out.forward.len(), 2);
        assert_eq!(out.forward[0].payload, batch[1].payload);
        // The delete and the broken party go to the dead-letter topic with their reason.
        let reasons: Vec<&str> = out
            .dead
            .iter()
            .map(|m| {
                m.headers
                    .iter()
                    .find(|(k, _)| k == "error")
                    .map(|(_, v)| v.as_str())
                    .unwrap()
            })
            .collect();
        assert_eq!(reasons.len(), 2);
        assert!(reasons[0].contains("delete"), "{reasons:?}");
        assert!(reasons[1].contains("cannot be decoded"), "{reasons:?}");

        // The party became a golden record waiting in the outbox, keyed by golden id.
        let golden = store.golden_by_xref("abs", "C-1").unwrap().unwrap();
        let pending = store.outbox(10).unwrap();
        assert_eq!(pending.len(), 1);
        let env = golden_envelope(&pending[0]).unwrap();
        assert_eq!(env.key, golden);
        assert_eq!(env.source, GOLDEN_SOURCE);
        assert_eq!(env.payload["source_id"], golden.as_str());
        assert_eq!(
            env.payload["xrefs"],
            json!([{"system": "abs", "id": "C-1"}])
        );
        assert_eq!(env.payload["absorbed"], json!([]));

        // A replay of the same batch changes nothing in the store.
        store
            .outbox_done(&pending.iter().map(|o| o.outbox_id).collect::<Vec<_>>())
            .unwrap();
        process(&store, &batch, |_| "abs".to_string()).unwrap();
        assert!(store.outbox(10).unwrap().is_empty());
    }

    /// A merge the matcher makes by itself (a card record gains the INN of a core-bank
    /// customer it was kept apart from) is handed over for the audit log, with ids only.
    #[test]
    fn an_automatic_merge_is_reported_for_the_audit_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = GoldenStore::open_sqlite(&dir.path().join("golden.db"), MdmSettings::default())
            .unwrap();
        let system = |source: &str| source.split('-').next().unwrap().to_string();
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 10, 0, 0).unwrap();
        let env = |source: &str, key: &str, version: i64, payload: serde_json::Value| {
            Envelope::new(
                source,
                Entity::Party,
                Op::Upsert,
                key,
                version,
                t,
                t,
                payload,
            )
        };
        let abs = json!({"kind": "person", "source_id": "A-100", "last_name": "Иванов",
            "first_name": "Сергей", "middle_name": "Петрович", "inn": "500100732259",
            "birth_date": "1980-02-03", "phones": ["+79161234567"]});
        let card = json!({"kind": "person", "source_id": "C-9", "last_name": "Ivanov",
            "first_name": "Sergey", "phones": ["+79037778899"]});
        let mut card_with_inn = card.clone();
        card_with_inn["inn"] = json!("500100732259");
        let first = process(
            &store,
            &[
                record(0, &env("abs-customers", "A-100", 1, abs)),
                record(1, &env("cards-feed", "C-9", 1, card)),
            ],
            system,
        )
        .unwrap();
        assert!(first.merges.is_empty());
        let person = store.golden_by_xref("abs", "A-100").unwrap().unwrap();
        let namesake = store.golden_by_xref("cards", "C-9").unwrap().unwrap();
        assert_ne!(person, namesake);

        let out = process(
            &store,
            &[record(2, &env("cards-feed", "C-9", 2, card_with_inn))],
            system,
        )
        .unwrap();
        assert_eq!(
            out.merges,
            [AutoMerge {
                survivor: person,
                absorbed: vec![namesake.clone()],
                on: "cards-feed:C-9 v2".into(),
            }]
        );
        assert_eq!(
            out.merges[0].detail(),
            format!("absorbed {namesake}; on cards-feed:C-9 v2")
        );
    }
}
