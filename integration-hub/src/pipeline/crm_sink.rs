//! The CRM sink task: consumes canonical events and upserts them into the CRM by external id.
//!
//! Per batch: events are grouped by entity key, keeping only the newest version of each key
//! (full-state upserts: an older state must never win); keys whose newest version the CRM
//! already acknowledged (per the store) are skipped — except a *resync* of exactly that
//! version (header `resync`, put on by `hub backfill`), which repairs a contact that drifted
//! in the CRM; the rest are sent concurrently across
//! keys, one request per key, with in-place retries for transient errors. Then, in this
//! order: the acknowledged versions are written to the store, permanent failures are
//! published to the dead-letter topic, records that still fail transiently are parked on the
//! retry topic, and only then the bus offsets are committed.
//!
//! Transient failures left after the in-place retries are told apart by what else happened:
//! - the pass acknowledged other records (or only one key failed): the trouble is the
//!   record's, so it is parked on `<prefix>.retry.<sink>` (`retry_topics`) and the batch is
//!   committed: one stuck record does not hold its partition;
//! - nothing was acknowledged and several keys failed, or the credentials were refused: the
//!   CRM as a whole is in trouble, so nothing is parked (an outage must not flood the retry
//!   topic); the batch is not committed and is sent again when the circuit breaker
//!   (`breaker`) lets it, after a short pause while it is closed.
//!
//! The sink and its retry task share the breaker, the CRM client and a set of keys being
//! delivered: a key is never written by both at once, so with the version guard an older
//! state can never land after a newer one.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use tokio::sync::{OnceCell, Semaphore, watch};
use tokio::task::JoinSet;

use adapters::crm::bitrix24::Bitrix24Connector;
use adapters::crm::connector::{ContactWrite, CrmConnector, WriteOutcome};
use adapters::crm::dynamics::DynamicsConnector;
use adapters::crm::rest::{ContactUpsert, CrmRestClient};
use adapters::crm::salesforce::SalesforceConnector;
use mapping::Envelope;

use super::breaker::{BreakerPolicy, CircuitState, SharedBreaker, Verdict, key_hash};
use super::pending;
use super::retry_topics::{self, History};
use super::sink_plan::{self, EntityKey};
use super::{Ctx, sleep_or_shutdown};
use crate::bus::{OutMessage, Record, offsets_after};
use crate::config::{SinkConfig, SinkKind, resolve_secret};
use crate::golden::stage::GOLDEN_SOURCE;
use crate::store::Delivered;
use crate::telemetry;
use crate::trace;

const POLL_MAX: usize = 500;
const POLL_WAIT: Duration = Duration::from_millis(500);
/// Acknowledged deliveries recorded in the store per transaction.
const RECORD_EVERY: usize = 32;

/// What a sink's tasks (the sink and its retry task) share.
pub struct SinkShared {
    target: OnceCell<Target>,
    pub breaker: Arc<SharedBreaker>,
    claims: Arc<KeyClaims>,
}

impl SinkShared {
    pub fn new(sink: &SinkConfig) -> Arc<SinkShared> {
        let d = &sink.delivery;
        let policy = BreakerPolicy {
            failures_to_open: d.breaker_failures,
            open_for: Duration::from_secs(d.breaker_open_secs),
            max_open_for: Duration::from_secs(d.breaker_max_open_secs),
        };
        Arc::new(SinkShared {
            target: OnceCell::new(),
            breaker: SharedBreaker::new(&sink.name, policy),
            claims: Arc::new(KeyClaims::default()),
        })
    }

    /// The CRM client, made on first use (by whichever task comes first), so a bad secret
    /// fails that task, which is restarted, rather than the whole hub.
    pub(crate) async fn target(&self, ctx: &Ctx, sink: &SinkConfig) -> anyhow::Result<&Target> {
        self.target
            .get_or_try_init(|| async { Target::open(ctx, sink) })
            .await
    }
}

const PAUSE_MIN: Duration = Duration::from_millis(500);

pub async fn run(
    ctx: Ctx,
    sink: SinkConfig,
    shared: Arc<SinkShared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let target = shared.target(&ctx, &sink).await?;
    let group = format!("{}-sink-{}", ctx.config.bus.topic_prefix, sink.name);
    let topic = ctx.config.sink_topic();
    let mut consumer = ctx.bus.subscribe(&group, &topic).await?;
    tracing::info!(sink = %sink.name, group, topic, "sink started");
    pending::sink_started(&sink.name);
    telemetry::sink_started(&sink.name);
    let parking = !sink.delivery.retry_delays_secs.is_empty();
    // While the circuit is closed, a batch that failed as a whole waits this long (growing)
    // before it is sent again; never longer than the breaker's longest open time.
    let max_pause = Duration::from_secs(sink.delivery.breaker_max_open_secs).max(PAUSE_MIN);
    let mut pause = PAUSE_MIN;
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        let batch = consumer.poll(POLL_MAX, POLL_WAIT).await?;
        if batch.is_empty() {
            continue;
        }
        pending::consumed(&sink.name, &batch);
        // Send the same batch until it is settled (delivered, dead-lettered or parked) or
        // shutdown comes.
        let mut first_pass = true;
        let mut dead_keys = HashSet::new();
        loop {
            let Some(ticket) = shared.breaker.admit(&mut shutdown).await else {
                // Not committed: the batch is delivered again after restart.
                return Ok(());
            };
            let mode = if ticket.is_probe() {
                Mode::Probe
            } else {
                Mode::All
            };
            let pass = deliver_batch(
                &ctx,
                &sink,
                &shared,
                target,
                &batch,
                first_pass,
                mode,
                &mut dead_keys,
            )
            .await?;
            first_pass = false;
            ticket.finish(&pass.verdict());
            match next_step(&pass, mode, shared.breaker.state(), parking) {
                Step::Commit => break,
                Step::Park => {
                    let failed: Vec<(Failed, Option<History>)> =
                        pass.transient.into_iter().map(|f| (f, None)).collect();
                    retry_topics::park(&ctx, &sink, failed).await?;
                    break;
                }
                Step::Again { pause: false } => {}
                Step::Again { pause: true } => {
                    if sleep_or_shutdown(pause, &mut shutdown).await {
                        return Ok(());
                    }
                    pause = (pause * 2).min(max_pause);
                }
            }
        }
        pause = PAUSE_MIN;
        // Every effect of the batch is recorded: now the offsets may move.
        consumer.commit(&offsets_after(&batch)).await?;
        telemetry::committed(&ctx.stats, &sink.name, batch.len() as u64);
        pending::committed(&sink.name, &batch);
    }
}

/// What the sink does with a batch after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Settled: commit.
    Commit,
    /// Park the records that still fail, then commit.
    Park,
    /// Send the batch again (after the pause, when `pause`; the breaker decides when).
    Again { pause: bool },
}

/// The rule of the module documentation: park record trouble, hold the batch through CRM
/// trouble.
fn next_step(pass: &Pass, mode: Mode, state: CircuitState, parking: bool) -> Step {
    if pass.transient.is_empty() && !pass.auth_rejected {
        // After a successful (or inconclusive) probe the rest of the batch goes next.
        return if pass.unsent.is_empty() {
            Step::Commit
        } else {
            Step::Again { pause: false }
        };
    }
    let closed = state == CircuitState::Closed;
    // Records the pass did not send (a probe's, or a pass stopped because the CRM is
    // down) must not be committed: the batch goes again.
    if pass.auth_rejected || mode == Mode::Probe || !parking || !pass.unsent.is_empty() {
        return Step::Again { pause: closed };
    }
    if pass.acked > 0 || (closed && pass.failed_keys() == 1) {
        return Step::Park;
    }
    Step::Again { pause: closed }
}

/// How much of a batch a pass may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Everything (the circuit is closed).
    All,
    /// One record with one request: the breaker's probe.
    Probe,
}

/// What one pass over a batch left.
#[derive(Debug, Default)]
pub(crate) struct Pass {
    /// Writes and merges the CRM acknowledged.
    pub acked: u64,
    /// Records (the newest of their key) that still failed transiently after the in-place
    /// retries, or were refused for bad credentials.
    pub transient: Vec<Failed>,
    /// Records not sent because only a probe was allowed.
    pub unsent: Vec<Record>,
    /// The CRM refused the credentials.
    pub auth_rejected: bool,
}

/// A record that still fails transiently.
#[derive(Debug, Clone)]
pub(crate) struct Failed {
    pub rec: Record,
    pub key: EntityKey,
    /// The last error, safe to log (no payload).
    pub error: String,
    /// Requests made for it in this pass.
    pub attempts: u32,
}

impl Pass {
    /// What the pass showed about the CRM, for the breaker.
    pub fn verdict(&self) -> Verdict {
        if self.acked > 0 {
            Verdict::Acknowledged
        } else if !self.transient.is_empty() || self.auth_rejected {
            Verdict::Failed {
                keys: self.transient.iter().map(|f| key_hash(&f.key)).collect(),
                crm_wide: self.auth_rejected,
            }
        } else {
            Verdict::Inconclusive
        }
    }

    /// How many different keys failed transiently.
    fn failed_keys(&self) -> usize {
        self.transient
            .iter()
            .map(|f| &f.key)
            .collect::<HashSet<_>>()
            .len()
    }

    fn failed(&mut self, rec: &Record, key: EntityKey, error: String, attempts: u32) {
        if !self.transient.iter().any(|f| f.key == key) {
            self.transient.push(Failed {
                rec: rec.clone(),
                key,
                error,
                attempts,
            });
        }
    }
}

/// Whether a pass so far says the CRM as a whole is down: it acknowledged nothing, and
/// `concurrency` keys (at least two) failed transiently after their in-place retries, or
/// the credentials were refused. One key failing is that record's trouble.
fn crm_is_down(pass: &Pass, concurrency: usize) -> bool {
    pass.acked == 0 && (pass.auth_rejected || pass.failed_keys() >= concurrency.max(2))
}

/// The keys passes of one sink are delivering. The sink and its retry task may hold
/// versions of the same key (one parked, a newer one just arrived); a pass claims its keys
/// before it looks up what the CRM has and keeps them until it recorded what it sent, so
/// the two never write one key at once and the version guard holds across them.
#[derive(Default)]
struct KeyClaims {
    held: Mutex<HashSet<EntityKey>>,
    released: watch::Sender<()>,
}

/// Keys claimed by one pass; released when dropped.
struct Claim {
    claims: Arc<KeyClaims>,
    keys: Vec<EntityKey>,
}

impl KeyClaims {
    fn held(&self) -> std::sync::MutexGuard<'_, HashSet<EntityKey>> {
        // A set of keys stays consistent even if a holder panicked.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until no other pass holds any of `keys`, then takes them all at once (all or
    /// nothing, so two passes can never wait for each other).
    async fn claim(self: &Arc<Self>, keys: Vec<EntityKey>) -> Claim {
        loop {
            let mut released = {
                let mut held = self.held();
                if keys.iter().all(|k| !held.contains(k)) {
                    held.extend(keys.iter().cloned());
                    return Claim {
                        claims: self.clone(),
                        keys,
                    };
                }
                // Subscribed under the lock: a release after this check wakes us.
                self.released.subscribe()
            };
            // The sender lives in `self`, so this only returns on a release.
            let _ = released.changed().await;
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        {
            let mut held = self.claims.held();
            for k in &self.keys {
                held.remove(k);
            }
        }
        self.claims.released.send_modify(|_| {});
    }
}

/// One pass over `batch`: what to send, sending it (all of it, or one probe record for the
/// breaker), recording acknowledgements, merges, dead letters. Records that still fail
/// transiently are returned, not parked: the caller decides (see [`next_step`]).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn deliver_batch(
    ctx: &Ctx,
    sink: &SinkConfig,
    shared: &SinkShared,
    target: &Target,
    batch: &[Record],
    first_pass: bool,
    mode: Mode,
    dead_keys: &mut HashSet<EntityKey>,
) -> anyhow::Result<Pass> {
    let retry_topic = ctx.config.bus.retry_topic(&sink.name);
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
        // A golden record is made from several sources: the filter does not apply to it.
        if (!sink.sources.is_empty()
            && env.source != GOLDEN_SOURCE
            && !sink.sources.contains(&env.source))
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

    // From here until the acknowledgements are recorded, no other pass of this sink writes
    // these keys.
    let keys: Vec<EntityKey> = newest.keys().cloned().collect();
    let _claim = shared.claims.claim(keys.clone()).await;

    // Skip keys whose version the CRM already has (re-delivery after a crash, re-sent rows,
    // a parked record whose newer version went through meanwhile).
    let store = ctx.store.clone();
    let sink_name = sink.name.clone();
    let lookup = keys.clone();
    let (versions, lettered) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((
            store.delivered_versions(&sink_name, &lookup)?,
            store.dead_lettered_versions(&sink_name, &lookup)?,
        ))
    })
    .await??;
    // A version already on the dead-letter topic is not sent (and lettered) again when a
    // source repeats it — a file read again after a crash; a replay from the dead-letter
    // topic is sent.
    let versions: Vec<Option<i64>> = versions
        .into_iter()
        .zip(lettered)
        .zip(&keys)
        .map(|((have, dead), k)| {
            let replay = newest
                .get(k)
                .is_some_and(|(_, (_, rec))| rec.header(crate::dlq::REPLAYED_FROM).is_some());
            match (have, dead.filter(|_| !replay)) {
                (Some(h), Some(d)) => Some(h.max(d)),
                (h, d) => h.or(d),
            }
        })
        .collect();
    // A resync (`hub backfill`) of the very version the CRM has goes out again, to repair a
    // contact that drifted in the CRM; an older version still never does.
    let have: HashMap<EntityKey, i64> = keys
        .into_iter()
        .zip(versions)
        .filter_map(|(k, have)| {
            let resync = newest
                .get(&k)
                .map(|(version, (_, rec))| (*version, is_resync(rec, &sink.name)));
            guard_version(have, resync).map(|v| (k, v))
        })
        .collect();
    // Golden records carry the golden ids merged into them: those CRM contacts are merged
    // into this one once it is delivered (or already was).
    let merges: Vec<Merge> = newest
        .values()
        .filter_map(|(_, pair)| Merge::of(pair))
        .collect();
    let (mut todo, already) = sink_plan::to_send(newest, |k| have.get(k).copied(), dead_keys);
    if first_pass && already > 0 {
        telemetry::skipped(&ctx.stats, &sink.name, "already_delivered", already);
    }
    // In bus order, so the probe (and what goes first) is the oldest record.
    todo.sort_by_key(|(_, _, (_, rec))| (rec.partition, rec.offset));
    let mut pass = Pass::default();
    if mode == Mode::Probe && todo.len() > 1 {
        pass.unsent = todo
            .split_off(1)
            .into_iter()
            .map(|(_, _, (_, rec))| rec.clone())
            .collect();
    }

    let mut acked = Vec::new();
    let mut review: Vec<(Record, String)> = Vec::new();
    match target {
        Target::Rest {
            client,
            concurrency,
        } => {
            let sem = Arc::new(Semaphore::new(*concurrency));
            let mut jobs = JoinSet::new();
            // The records whose result has not been taken in, by task: what an aborted pass
            // did not get to.
            let mut outstanding: HashMap<tokio::task::Id, &Record> = HashMap::new();
            for (_, _, (env, rec)) in todo {
                let batch_rec: &Record = rec;
                let rec = rec.clone();
                let client = client.clone();
                let sem = sem.clone();
                let handle = jobs.spawn(async move {
                    // The permit travels with the result and is released only once the result is
                    // taken in below, so at most `concurrency` acknowledged-but-unrecorded
                    // deliveries exist besides the group waiting to be recorded.
                    let permit = sem.acquire_owned().await;
                    let req = ContactUpsert {
                        external_id: env.key.clone(),
                        version: env.version,
                        source: env.source.clone(),
                        envelope_id: env.id.clone(),
                        fields: contact_fields(&env),
                    };
                    // A probe is one request: the breaker promised no more.
                    let result = match mode {
                        Mode::All => client.upsert_with_retry(&req).await,
                        Mode::Probe => client.upsert(&req).await.map(|ack| (ack, 1)),
                    };
                    (env, rec, result, Utc::now(), permit)
                });
                outstanding.insert(handle.id(), batch_rec);
            }
            let mut aborted = false;
            while let Some(j) = jobs.join_next_with_id().await {
                let (env, rec, result, at, permit) = match j {
                    Ok((id, out)) => {
                        outstanding.remove(&id);
                        out
                    }
                    Err(e) if e.is_cancelled() => continue,
                    Err(e) => return Err(e).context("delivery task panicked"),
                };
                drop(permit);
                let key = (env.entity.as_str().to_string(), env.key.clone());
                match result {
                    Ok((_ack, attempts)) => {
                        if attempts > 1 {
                            telemetry::retried(&ctx.stats, &sink.name, u64::from(attempts - 1));
                        }
                        pass.acked += 1;
                        acked.push(delivered_now(ctx, &sink.name, &env, at));
                        // Record acknowledgements as they come, in small groups: a crash then
                        // repeats at most one group plus what was in flight, not a whole batch.
                        if acked.len() >= RECORD_EVERY {
                            record(ctx, &sink.name, std::mem::take(&mut acked)).await?;
                        }
                    }
                    Err(e) if e.is_merged() => {
                        // The contact was merged into another in the CRM because its golden record
                        // was: the survivor carries its data. Settled, nothing to write.
                        telemetry::skipped(&ctx.stats, &sink.name, "merged_away", 1);
                        pass.acked += 1;
                        acked.push(delivered_record(&env));
                    }
                    Err(e) => {
                        // Rejected credentials say nothing about the record: the whole sink waits
                        // (and says so) instead of dead-lettering every record until someone
                        // fixes the token.
                        let transient = e.is_transient() || e.is_auth();
                        telemetry::delivery_failed(&sink.name, &env.key, transient, &e.to_string());
                        pass.auth_rejected |= e.is_auth();
                        let attempts = e.attempts().unwrap_or(1);
                        if transient {
                            pass.failed(&rec, key, e.to_string(), attempts);
                        } else {
                            dead_keys.insert(key);
                            dead.push((rec, e.to_string(), attempts));
                        }
                        if !aborted && crm_is_down(&pass, *concurrency) {
                            // The rest of the pass is not sent: an outage costs a few
                            // requests per pass instead of the whole batch's retries.
                            jobs.abort_all();
                            aborted = true;
                        }
                    }
                }
            }
            pass.unsent.extend(outstanding.into_values().cloned());
        }
        Target::Vendor(conn) => {
            let items: Vec<(Envelope, &Record)> = todo.into_iter().map(|(_, _, v)| v).collect();
            // The connector batches and paces inside; chunks bound what is unrecorded.
            for chunk in items.chunks(VENDOR_CHUNK) {
                let writes: Vec<ContactWrite> = chunk
                    .iter()
                    .map(|(env, _)| ContactWrite {
                        external_id: env.key.clone(),
                        version: env.version,
                        source: env.source.clone(),
                        envelope_id: env.id.clone(),
                        fields: contact_fields(env),
                    })
                    .collect();
                let outcomes = conn.write_batch(&writes).await;
                let at = Utc::now();
                for ((env, rec), outcome) in chunk.iter().zip(outcomes) {
                    let key = (env.entity.as_str().to_string(), env.key.clone());
                    match outcome {
                        WriteOutcome::Written { .. } => {
                            pass.acked += 1;
                            acked.push(delivered_now(ctx, &sink.name, env, at));
                        }
                        WriteOutcome::Review { reason } => {
                            // A data conflict in the CRM: retrying gives the same answer
                            // until a person resolves it, so it waits on the dead-letter
                            // topic marked for review, replayable once resolved.
                            telemetry::sent_to_review(&ctx.stats, &sink.name, &env.key, &reason);
                            dead_keys.insert(key);
                            review.push(((*rec).clone(), reason));
                        }
                        WriteOutcome::Failed(f) => {
                            let transient = f.transient || f.auth;
                            telemetry::delivery_failed(
                                &sink.name,
                                &env.key,
                                transient,
                                &f.to_string(),
                            );
                            pass.auth_rejected |= f.auth;
                            if transient {
                                pass.failed(rec, key, f.to_string(), f.attempts);
                            } else {
                                dead_keys.insert(key);
                                dead.push(((*rec).clone(), f.to_string(), f.attempts));
                            }
                        }
                    }
                }
                record(ctx, &sink.name, std::mem::take(&mut acked)).await?;
            }
        }
    }
    record(ctx, &sink.name, acked).await?;
    // Merges wait for a full pass with good credentials; a survivor not delivered yet is
    // skipped and merged when it is (here or by the retry task).
    if let Target::Rest { client, .. } = target
        && !merges.is_empty()
        && mode == Mode::All
        && !pass.auth_rejected
    {
        merge_contacts(ctx, sink, client, merges, dead_keys, &mut pass, &mut dead).await?;
    }
    if pass.auth_rejected {
        telemetry::sink_credentials_rejected(&sink.name);
    }
    if !dead.is_empty() || !review.is_empty() {
        let msgs: Vec<OutMessage> = dead
            .iter()
            .map(|(rec, reason, attempts)| {
                let history = retry_topics::history(rec, &retry_topic);
                dead_letter(
                    &sink.name,
                    rec,
                    reason,
                    *attempts,
                    DISPOSITION_DEAD,
                    history.as_ref(),
                )
            })
            .chain(review.iter().map(|(rec, reason)| {
                let history = retry_topics::history(rec, &retry_topic);
                dead_letter(
                    &sink.name,
                    rec,
                    reason,
                    1,
                    DISPOSITION_REVIEW,
                    history.as_ref(),
                )
            }))
            .collect();
        ctx.bus.publish(&ctx.config.bus.dlq_topic(), msgs).await?;
        let lettered = dead
            .iter()
            .map(|(rec, _, _)| rec)
            .chain(review.iter().map(|(rec, _)| rec));
        record_dead_lettered(ctx, &sink.name, lettered).await?;
        for (rec, reason, _) in &dead {
            telemetry::dead_lettered(&ctx.stats, &sink.name, &rec.key, reason);
        }
        let ids = dead
            .iter()
            .map(|(rec, _, _)| rec)
            .chain(review.iter().map(|(rec, _)| rec))
            .filter_map(|rec| trace::id_of(&rec.headers));
        trace::step(trace::Step::DeadLettered, &sink.name, ids);
    }
    Ok(pass)
}

/// How the sink reaches its CRM.
pub(crate) enum Target {
    /// The generic REST CRM: one request per key, `concurrency` at once.
    Rest {
        client: Arc<CrmRestClient>,
        concurrency: usize,
    },
    /// A vendor CRM connector, which batches and paces itself.
    Vendor(Arc<dyn CrmConnector>),
}

impl Target {
    /// The client of `sink`'s kind, with its secrets resolved.
    fn open(ctx: &Ctx, sink: &SinkConfig) -> anyhow::Result<Target> {
        let secret = |field: &str, reference: &str| {
            resolve_secret(reference, &ctx.config.base_dir)
                .map_err(|e| anyhow::anyhow!("sink {}: {field}: {e}", sink.name))
        };
        let missing =
            || anyhow::anyhow!("sink {}: [sinks.{}] missing", sink.name, sink.kind.as_str());
        Ok(match sink.kind {
            SinkKind::CrmRest => {
                let mut cfg = sink.crm_rest.clone().ok_or_else(missing)?;
                if let Some(token) = &cfg.token {
                    cfg.token = Some(secret("crm_rest.token", token)?);
                }
                let concurrency = cfg.concurrency.max(1);
                Target::Rest {
                    client: Arc::new(CrmRestClient::new(cfg)?),
                    concurrency,
                }
            }
            SinkKind::Salesforce => {
                let mut cfg = sink.salesforce.clone().ok_or_else(missing)?;
                cfg.access_token = secret("salesforce.access_token", &cfg.access_token)?;
                Target::Vendor(Arc::new(SalesforceConnector::new(cfg)?))
            }
            SinkKind::Dynamics => {
                let mut cfg = sink.dynamics.clone().ok_or_else(missing)?;
                cfg.access_token = secret("dynamics.access_token", &cfg.access_token)?;
                Target::Vendor(Arc::new(DynamicsConnector::new(cfg)?))
            }
            SinkKind::Bitrix24 => {
                let mut cfg = sink.bitrix24.clone().ok_or_else(missing)?;
                cfg.webhook_url = secret("bitrix24.webhook_url", &cfg.webhook_url)?;
                Target::Vendor(Arc::new(Bitrix24Connector::new(cfg)?))
            }
        })
    }
}

/// The header `hub backfill` puts on the events it re-sends: `*` for every sink, or the
/// name of one sink.
pub const RESYNC_HEADER: &str = "resync";

/// Whether `rec` is a resync addressed to the sink `sink`.
fn is_resync(rec: &Record, sink: &str) -> bool {
    rec.header(RESYNC_HEADER)
        .is_some_and(|to| to == "*" || to == sink)
}

/// The version the guard holds a key's newest event against: what the CRM acknowledged
/// (`have`), except when that event is a resync (`Some((version, true))`) of exactly that
/// version, which is then deliverable.
fn guard_version(have: Option<i64>, newest: Option<(i64, bool)>) -> Option<i64> {
    have.filter(|h| newest != Some((*h, true)))
}

/// Records handed to a vendor connector at once; their acknowledgements are recorded
/// together, so a crash repeats at most this many idempotent upserts.
const VENDOR_CHUNK: usize = 200;

/// The `disposition` header of a dead letter: permanently refused, or a data conflict in the
/// CRM for a person to resolve (then replay).
pub(crate) const DISPOSITION_DEAD: &str = "dead_letter";
const DISPOSITION_REVIEW: &str = "review";

/// A delivery the CRM acknowledged at `at`: counted, its lag observed, and its record.
fn delivered_now(ctx: &Ctx, sink: &str, env: &Envelope, at: chrono::DateTime<Utc>) -> Delivered {
    let lag = (at - env.event_time).num_microseconds().unwrap_or(0) as f64 / 1e6;
    telemetry::delivered(&ctx.stats, sink, &env.source, env.entity.as_str(), lag);
    delivered_record(env)
}

fn delivered_record(env: &Envelope) -> Delivered {
    Delivered {
        entity: env.entity.as_str().to_string(),
        key: env.key.clone(),
        version: env.version,
        envelope_id: env.id.clone(),
    }
}

/// The fields a contact receives: the canonical payload; for a golden record without the
/// list of merged golden ids, which is an instruction to the sink, not contact data.
fn contact_fields(env: &Envelope) -> serde_json::Value {
    let mut fields = env.payload.clone();
    if env.source == GOLDEN_SOURCE
        && let Some(obj) = fields.as_object_mut()
    {
        obj.remove("absorbed");
    }
    fields
}

/// The CRM contacts to merge into one golden record's contact.
struct Merge {
    survivor: String,
    losers: Vec<String>,
    envelope_id: String,
    entity: String,
    rec: Record,
}

impl Merge {
    fn of(env: &(Envelope, &Record)) -> Option<Merge> {
        let (env, rec) = env;
        if env.source != GOLDEN_SOURCE {
            return None;
        }
        let losers: Vec<String> = env
            .payload
            .get("absorbed")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        (!losers.is_empty()).then(|| Merge {
            survivor: env.key.clone(),
            losers,
            envelope_id: env.id.clone(),
            entity: env.entity.as_str().to_string(),
            rec: (*rec).clone(),
        })
    }
}

/// Merge records are kept in the delivery table under this entity name, keyed by the
/// merged-away golden id, so each CRM merge is made once.
const MERGE_ENTITY: &str = "merge";

/// Merges the CRM contacts of golden ids absorbed by delivered golden records, once each.
/// A survivor that is not delivered (failed, parked or dead-lettered) waits until it is.
/// A merge that fails transiently returns its golden record among the pass's transient
/// failures (parked, it is delivered again: skipped as delivered, its merges made then); one
/// that fails for good dead-letters it.
async fn merge_contacts(
    ctx: &Ctx,
    sink: &SinkConfig,
    client: &Arc<CrmRestClient>,
    merges: Vec<Merge>,
    dead_keys: &mut HashSet<EntityKey>,
    pass: &mut Pass,
    dead: &mut Vec<(Record, String, u32)>,
) -> anyhow::Result<()> {
    let mut keys: Vec<EntityKey> = Vec::new();
    for m in &merges {
        keys.push((m.entity.clone(), m.survivor.clone()));
        keys.extend(
            m.losers
                .iter()
                .map(|l| (MERGE_ENTITY.to_string(), l.clone())),
        );
    }
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
    let mut done = Vec::new();
    for m in merges {
        let survivor_key = (m.entity.clone(), m.survivor.clone());
        if !have.contains_key(&survivor_key) || dead_keys.contains(&survivor_key) {
            continue;
        }
        for loser in &m.losers {
            if have.contains_key(&(MERGE_ENTITY.to_string(), loser.clone())) {
                continue;
            }
            match client
                .merge_with_retry(&m.survivor, loser, &m.envelope_id)
                .await
            {
                Ok((ack, attempts)) => {
                    if attempts > 1 {
                        telemetry::retried(&ctx.stats, &sink.name, u64::from(attempts - 1));
                    }
                    pass.acked += 1;
                    telemetry::crm_merged(&sink.name, ack.merged);
                    done.push(Delivered {
                        entity: MERGE_ENTITY.to_string(),
                        key: loser.clone(),
                        version: 1,
                        envelope_id: m.envelope_id.clone(),
                    });
                }
                Err(e) => {
                    let transient = e.is_transient() || e.is_auth();
                    telemetry::delivery_failed(&sink.name, loser, transient, &e.to_string());
                    pass.auth_rejected |= e.is_auth();
                    let reason = format!("merging contact {loser} into {}: {e}", m.survivor);
                    let attempts = e.attempts().unwrap_or(1);
                    if transient {
                        pass.failed(&m.rec, survivor_key.clone(), reason, attempts);
                    } else {
                        dead_keys.insert(survivor_key.clone());
                        dead.push((m.rec.clone(), reason, attempts));
                    }
                    // The rest of this record's merges wait for its next delivery.
                    break;
                }
            }
        }
    }
    record(ctx, &sink.name, done).await?;
    Ok(())
}

async fn record(ctx: &Ctx, sink: &str, acked: Vec<Delivered>) -> anyhow::Result<()> {
    if acked.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    let name = sink.to_string();
    let acked =
        tokio::task::spawn_blocking(move || store.record_delivered(&name, &acked).map(|()| acked))
            .await??;
    trace::step(
        trace::Step::Delivered,
        sink,
        acked.iter().map(|d| d.envelope_id.as_str()),
    );
    audit_writes(sink, &acked);
    Ok(())
}

/// Remembers the versions just published to the dead-letter topic (those that decode: an
/// undecodable record has no key to remember).
pub(crate) async fn record_dead_lettered<'a>(
    ctx: &Ctx,
    sink: &str,
    recs: impl Iterator<Item = &'a Record>,
) -> anyhow::Result<()> {
    let items: Vec<Delivered> = recs
        .filter_map(|rec| serde_json::from_slice::<Envelope>(&rec.payload).ok())
        .map(|env| delivered_record(&env))
        .collect();
    if items.is_empty() {
        return Ok(());
    }
    let store = ctx.store.clone();
    let sink = sink.to_string();
    tokio::task::spawn_blocking(move || store.record_dead_lettered(&sink, &items)).await??;
    Ok(())
}

/// One audit entry per batch of CRM writes: which records, at which versions.
fn audit_writes(sink: &str, acked: &[Delivered]) {
    if crate::audit::global().is_none() {
        return;
    }
    let keys: Vec<String> = acked
        .iter()
        .map(|d| format!("{}:{}@{}", d.entity, d.key, d.version))
        .collect();
    crate::audit::record(
        &format!("sink:{sink}"),
        "crm_write",
        &format!("{} records", acked.len()),
        "acknowledged",
        &keys.join(" "),
    );
}

/// A dead letter keeps the original payload and says where it came from and why it failed.
/// `attempts` is 0 for a record that could not even be decoded. A record from the retry
/// topic (`history`) names the topic it first failed from, when, and every attempt made.
pub(crate) fn dead_letter(
    sink: &str,
    rec: &Record,
    reason: &str,
    attempts: u32,
    disposition: &str,
    history: Option<&History>,
) -> OutMessage {
    let now = Utc::now().to_rfc3339();
    let (origin_topic, origin_partition, origin_offset) = match history {
        Some(h) => h.origin(),
        None => (rec.topic.clone(), rec.partition, rec.offset),
    };
    let first_failure = history
        .and_then(|h| h.first_failure.clone())
        .unwrap_or_else(|| now.clone());
    let attempts = attempts.saturating_add(history.map_or(0, |h| h.attempts));
    let mut headers = vec![
        ("error".to_string(), reason.to_string()),
        ("disposition".to_string(), disposition.to_string()),
        ("attempts".to_string(), attempts.to_string()),
        ("first_failure".to_string(), first_failure),
        ("last_failure".to_string(), now),
        ("origin_topic".to_string(), origin_topic),
        ("origin_partition".to_string(), origin_partition.to_string()),
        ("origin_offset".to_string(), origin_offset.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: i64) -> Record {
        Record {
            topic: "hub.canonical".into(),
            partition: 0,
            offset,
            key: format!("k{offset}"),
            headers: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// A pass that acknowledged `acked` and left transient failures of `failed` keys.
    fn pass(acked: u64, failed: &[i64]) -> Pass {
        let mut p = Pass {
            acked,
            ..Pass::default()
        };
        for o in failed {
            let r = rec(*o);
            p.failed(&r, ("party".into(), r.key.clone()), "503".into(), 6);
        }
        p
    }

    const CLOSED: CircuitState = CircuitState::Closed;

    #[test]
    fn record_trouble_is_parked() {
        // Others went through: the failing ones are the records' trouble.
        assert_eq!(
            next_step(&pass(10, &[1, 2]), Mode::All, CLOSED, true),
            Step::Park
        );
        // Nothing else to judge by, one key failing: its own trouble.
        assert_eq!(
            next_step(&pass(0, &[1]), Mode::All, CLOSED, true),
            Step::Park
        );
        assert_eq!(
            next_step(&pass(5, &[]), Mode::All, CLOSED, true),
            Step::Commit
        );
    }

    #[test]
    fn crm_trouble_holds_the_batch() {
        // Several keys failing and nothing acknowledged: an outage, not parked.
        assert_eq!(
            next_step(&pass(0, &[1, 2]), Mode::All, CLOSED, true),
            Step::Again { pause: true }
        );
        // One key failing once the circuit is open: held, the breaker waits.
        assert_eq!(
            next_step(&pass(0, &[1]), Mode::All, CircuitState::Open, true),
            Step::Again { pause: false }
        );
        // Refused credentials hold the batch even when others went through.
        let mut auth = pass(3, &[1]);
        auth.auth_rejected = true;
        assert_eq!(
            next_step(&auth, Mode::All, CLOSED, true),
            Step::Again { pause: true }
        );
        // Without retry delays the batch is held as before.
        assert_eq!(
            next_step(&pass(10, &[1]), Mode::All, CLOSED, false),
            Step::Again { pause: true }
        );
    }

    #[test]
    fn a_probe_never_parks_and_its_success_lets_the_rest_go() {
        let mut failed_probe = pass(0, &[1]);
        failed_probe.unsent = vec![rec(2), rec(3)];
        assert_eq!(
            next_step(&failed_probe, Mode::Probe, CircuitState::Open, true),
            Step::Again { pause: false }
        );
        let mut good_probe = pass(1, &[]);
        good_probe.unsent = vec![rec(2), rec(3)];
        assert_eq!(
            next_step(&good_probe, Mode::Probe, CLOSED, true),
            Step::Again { pause: false }
        );
        assert_eq!(
            next_step(&pass(1, &[]), Mode::Probe, CLOSED, true),
            Step::Commit
        );
    }

    #[test]
    fn a_pass_stops_when_the_crm_is_down_and_what_it_did_not_send_is_never_committed() {
        // `concurrency` keys failed and nothing acknowledged: the CRM is down.
        assert!(!crm_is_down(&pass(0, &[1, 2, 3]), 4));
        assert!(crm_is_down(&pass(0, &[1, 2, 3, 4]), 4));
        // Anything acknowledged: records' trouble, the pass goes on.
        assert!(!crm_is_down(&pass(1, &[1, 2, 3, 4]), 4));
        // One key is never the CRM, even with a concurrency of one.
        assert!(!crm_is_down(&pass(0, &[1]), 1));
        assert!(crm_is_down(&pass(0, &[1, 2]), 1));
        let mut auth = pass(0, &[1]);
        auth.auth_rejected = true;
        assert!(crm_is_down(&auth, 16));
        // A stopped pass whose last results brought acknowledgements still sends the batch
        // again rather than parking the failures and committing the unsent records.
        let mut stopped = pass(2, &[1, 2, 3, 4]);
        stopped.unsent = vec![rec(5), rec(6)];
        assert_eq!(
            next_step(&stopped, Mode::All, CLOSED, true),
            Step::Again { pause: true }
        );
    }

    #[test]
    fn verdicts_for_the_breaker() {
        assert_eq!(pass(1, &[1, 2]).verdict(), Verdict::Acknowledged);
        assert_eq!(pass(0, &[]).verdict(), Verdict::Inconclusive);
        let Verdict::Failed { keys, crm_wide } = pass(0, &[1, 2]).verdict() else {
            panic!("not a failure");
        };
        assert_eq!((keys.len(), crm_wide), (2, false));
        // A key failing twice in one pass (a record and its merge) is one failure.
        let mut p = pass(0, &[1]);
        let r = rec(1);
        p.failed(&r, ("party".into(), r.key.clone()), "merge".into(), 1);
        assert_eq!(p.transient.len(), 1);
        assert_eq!(p.failed_keys(), 1);
    }

    #[test]
    fn a_resync_of_the_delivered_version_is_sent_but_never_an_older_one() {
        let mut r = rec(1);
        assert!(!is_resync(&r, "crm"));
        r.headers.push((RESYNC_HEADER.into(), "other".into()));
        assert!(!is_resync(&r, "crm"), "addressed to another sink");
        r.headers.push((RESYNC_HEADER.into(), "crm".into()));
        // The first header of a name counts.
        assert!(!is_resync(&r, "crm"));
        r.headers.retain(|(k, _)| k != RESYNC_HEADER);
        r.headers.push((RESYNC_HEADER.into(), "*".into()));
        assert!(is_resync(&r, "crm"));

        // Through the sink's own plan: a resync of the delivered version 5 is sent, a plain
        // event of it is not, an older resync (4) and one the CRM is ahead of are not.
        let key = |k: &str| ("party".to_string(), k.to_string());
        let batch = [
            (key("same"), 5, true),
            (key("plain"), 5, false),
            (key("older"), 4, true),
            (key("new"), 6, false),
            (key("unseen"), 1, true),
        ];
        let have: HashMap<EntityKey, i64> = [
            (key("same"), 5),
            (key("plain"), 5),
            (key("older"), 5),
            (key("new"), 5),
        ]
        .into_iter()
        .collect();
        let (newest, _) =
            sink_plan::newest_per_key(batch.iter().map(|(k, v, r)| (k.clone(), *v, *r)));
        let guarded: HashMap<EntityKey, i64> = newest
            .iter()
            .filter_map(|(k, (v, r))| {
                guard_version(have.get(k).copied(), Some((*v, *r))).map(|g| (k.clone(), g))
            })
            .collect();
        let (send, already) =
            sink_plan::to_send(newest, |k| guarded.get(k).copied(), &HashSet::new());
        let mut sent: Vec<String> = send.into_iter().map(|((_, k), _, _)| k).collect();
        sent.sort();
        assert_eq!(sent, ["new", "same", "unseen"]);
        assert_eq!(already, 2);
    }

    #[tokio::test]
    async fn claims_keep_two_passes_off_the_same_key() {
        let claims = Arc::new(KeyClaims::default());
        let key = |k: &str| ("party".to_string(), k.to_string());
        let first = claims.claim(vec![key("a"), key("b")]).await;
        // A pass on other keys goes ahead; one sharing a key waits for the first to finish.
        let other = claims.claim(vec![key("c")]).await;
        let waiting = {
            let claims = claims.clone();
            tokio::spawn(async move { claims.claim(vec![key("c"), key("b")]).await.keys.clone() })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished());
        drop(first);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !waiting.is_finished(),
            "took a key still held by another pass"
        );
        drop(other);
        let got = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![key("c"), key("b")]);
    }
}
