//! The screening stage: between the sources and the CRM sinks.
//!
//! Consumes `<prefix>.canonical`; every party is screened against the loaded lists and every
//! transaction runs through the 115-FZ rules. A clear party (and every other record) is
//! forwarded to `<prefix>.cleared`, which the CRM sinks read; a party with a hit is held in
//! the compliance store until an officer decides. Results and alerts go to
//! `<prefix>.compliance`.
//!
//! Order of effects per batch: compliance store writes → publish results and forwarded
//! records → commit offsets. A crash in between replays the batch: the store writes are
//! idempotent (one open case per party, alerts by id) and the sinks skip versions they
//! already delivered, so nothing is lost or applied twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use mapping::{Account, Entity, Envelope, Party, Transaction};

use super::store::CaseStatus;
use super::verdict::{self, Verdict};
use super::{Screening, subject};
use crate::bus::{OutMessage, Record, offsets_after};
use crate::pipeline::{Ctx, sleep_or_shutdown};
use crate::telemetry;
use crate::trace::{self, Step};

const POLL_MAX: usize = 500;
const POLL_WAIT: Duration = Duration::from_millis(200);

pub async fn run(
    ctx: Ctx,
    screening: Arc<Screening>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let group = format!("{}-screening", ctx.config.bus.topic_prefix);
    let topic = ctx.config.bus.canonical_topic();
    let mut consumer = ctx.bus.subscribe(&group, &topic).await?;
    tracing::info!(group, topic, "screening started");
    let reload_every = Duration::from_secs(screening.reload_every_secs.max(1));
    let mut last_reload: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        release_pending(&ctx, &screening).await?;
        let due = last_reload.is_none_or(|t| t.elapsed() >= reload_every);
        if due || screening.rescreen_requested() {
            last_reload = Some(Instant::now());
            let s = screening.clone();
            let outcome = tokio::task::spawn_blocking(move || s.reload_lists())
                .await
                .context("list reload panicked")??;
            publish_results(&ctx, outcome).await?;
            continue;
        }
        let batch = consumer.poll(POLL_MAX, POLL_WAIT).await?;
        if batch.is_empty() {
            continue;
        }
        let s = screening.clone();
        let out = tokio::task::spawn_blocking(move || process(&s, &batch).map(|o| (o, batch)))
            .await
            .context("screening panicked")?;
        let (out, batch) = out?;
        publish_results(&ctx, out.results).await?;
        if !out.forward.is_empty() {
            let ids = trace::ids_of(&out.forward);
            ctx.bus
                .publish(&ctx.config.bus.cleared_topic(), out.forward)
                .await?;
            trace::step(Step::Screened, "screening", ids.iter().map(String::as_str));
        }
        consumer.commit(&offsets_after(&batch)).await?;
        if sleep_or_shutdown(Duration::ZERO, &mut shutdown).await {
            return Ok(());
        }
    }
}

async fn publish_results(ctx: &Ctx, results: Vec<OutMessage>) -> anyhow::Result<()> {
    if !results.is_empty() {
        ctx.bus
            .publish(&ctx.config.bus.compliance_topic(), results)
            .await?;
    }
    Ok(())
}

/// Publishes the held envelopes of cases an officer released (or that cleared), then marks
/// them released. A crash in between publishes them again; the sink's version guard makes
/// that harmless.
async fn release_pending(ctx: &Ctx, screening: &Arc<Screening>) -> anyhow::Result<()> {
    let store = screening.store.clone();
    let pending = tokio::task::spawn_blocking(move || store.pending_releases()).await??;
    for (id, envelope) in pending {
        let env: Envelope = serde_json::from_str(&envelope)
            .with_context(|| format!("case {id}: held envelope cannot be decoded"))?;
        ctx.bus
            .publish(
                &ctx.config.bus.cleared_topic(),
                vec![forward_message(&env)?],
            )
            .await?;
        let store = screening.store.clone();
        tokio::task::spawn_blocking(move || store.released(id)).await??;
        trace::step(Step::Screened, "screening", [env.trace_id.as_str()]);
        tracing::info!(
            event = "party_released",
            case = id,
            "held party released to the CRM"
        );
    }
    Ok(())
}

/// What one batch produced.
pub struct BatchOut {
    pub forward: Vec<OutMessage>,
    pub results: Vec<OutMessage>,
}

fn forward_message(env: &Envelope) -> anyhow::Result<OutMessage> {
    Ok(OutMessage {
        key: env.key.clone(),
        headers: vec![
            ("entity".into(), env.entity.as_str().into()),
            ("source".into(), env.source.clone()),
            ("trace_id".into(), env.trace_id.clone()),
        ],
        payload: serde_json::to_vec(env)?,
    })
}

/// Screens and monitors one batch (blocking: store and CPU work).
pub fn process(s: &Screening, batch: &[Record]) -> anyhow::Result<BatchOut> {
    let mut out = BatchOut {
        forward: Vec::with_capacity(batch.len()),
        results: Vec::new(),
    };
    let mut monitored = false;
    for rec in batch {
        let env: Envelope = match serde_json::from_slice(&rec.payload) {
            Ok(e) => e,
            Err(_) => {
                // Not ours to judge: the sink dead-letters what it cannot decode.
                out.forward.push(OutMessage {
                    key: rec.key.clone(),
                    headers: rec.headers.clone(),
                    payload: rec.payload.clone(),
                });
                continue;
            }
        };
        match env.entity {
            Entity::Party => match serde_json::from_value::<Party>(env.payload.clone()) {
                Ok(party) => {
                    s.remember_profile(&party)?;
                    screen_party(s, &env, &party, &mut out)?
                }
                Err(_) => out.forward.push(forward_message(&env)?),
            },
            Entity::Account => {
                if let Ok(a) = serde_json::from_value::<Account>(env.payload.clone())
                    && !a.party_source_id.is_empty()
                {
                    s.store
                        .put_account_owner(&a.source_id, &a.party_source_id)?;
                }
                out.forward.push(forward_message(&env)?);
            }
            Entity::Transaction => {
                if let Ok(tx) = serde_json::from_value::<Transaction>(env.payload.clone()) {
                    monitored |= s.monitor_transaction(&env, &tx, &mut out.results)?;
                }
                out.forward.push(forward_message(&env)?);
            }
            _ => out.forward.push(forward_message(&env)?),
        }
    }
    if monitored {
        s.save_monitor_state()?;
    }
    Ok(out)
}

fn screen_party(
    s: &Screening,
    env: &Envelope,
    party: &Party,
    out: &mut BatchOut,
) -> anyhow::Result<()> {
    // A replay of an older version than the one screened last changes nothing.
    if let Some(v) = s.store.screened_version(&env.source, &env.key)?
        && v > env.version
    {
        return Ok(());
    }
    let subject = subject::of_party(party);
    let hash = subject::hash(&subject);
    let hits = s.hits(&format!("{}:{}", env.source, env.key), &subject)?;
    let marks = s.store.marks(&env.source, &env.key)?;
    let open = s.store.open_case(&env.source, &env.key)?;
    let mut v = verdict::decide(hits, &marks, &hash);
    // A confirmed party stays held whatever its new data says, until compliance decides.
    if let Some(case) = &open
        && case.status == CaseStatus::Confirmed
    {
        let hits = match v {
            Verdict::Potential(h) | Verdict::Confirmed(h) => h,
            Verdict::Clear { .. } => serde_json::from_value(case.hits.clone()).unwrap_or_default(),
        };
        v = Verdict::Confirmed(hits);
    }
    s.store.put_screened(
        &env.source,
        &env.key,
        env.version,
        &serde_json::to_string(&subject)?,
        &hash,
    )?;
    match v {
        Verdict::Clear { suppressed } => {
            let cleared = s.store.clear_open_case(&env.source, &env.key)?;
            telemetry::screened(&env.source, "clear");
            if let Some(case) = cleared {
                // A newer version screened clear closes the open case by itself.
                crate::audit::record(
                    "screening",
                    "screening_clear",
                    &format!("case {case}"),
                    "cleared",
                    &format!("{}:{} v{} screened clear", env.source, env.key, env.version),
                );
            }
            out.results
                .push(s.result_message(env, "clear", cleared, &[], suppressed)?);
            out.forward.push(forward_message(env)?);
        }
        Verdict::Potential(hits) | Verdict::Confirmed(hits) => {
            let status = if open.as_ref().map(|c| c.status) == Some(CaseStatus::Confirmed)
                || hits.iter().any(|h| {
                    marks.iter().any(|(l, e, _, m)| {
                        *l == h.list && *e == h.entry_id && *m == super::store::Mark::Confirmed
                    })
                }) {
                CaseStatus::Confirmed
            } else {
                CaseStatus::Potential
            };
            let hits_json = serde_json::to_value(&hits)?;
            let (case, changed) = s.store.hold(
                &env.source,
                &env.key,
                env.version,
                &hash,
                status,
                &hits_json,
                &serde_json::to_string(env)?,
            )?;
            if changed {
                telemetry::screened(&env.source, status.as_str());
                tracing::warn!(
                    event = "party_held",
                    source = %env.source,
                    case,
                    hits = hits.len(),
                    "screening hit: party held back from the CRM"
                );
                trace::step(Step::Held, "screening", [env.trace_id.as_str()]);
                let entries: Vec<String> = hits
                    .iter()
                    .map(|h| format!("{}:{}", h.list, h.entry_id))
                    .collect();
                crate::audit::record(
                    "screening",
                    "screening_hold",
                    &format!("case {case}"),
                    status.as_str(),
                    &format!(
                        "{}:{} v{} held back from the CRM; list entries {}",
                        env.source,
                        env.key,
                        env.version,
                        entries.join(" ")
                    ),
                );
                out.results
                    .push(s.result_message(env, status.as_str(), Some(case), &hits, 0)?);
            }
        }
    }
    Ok(())
}
