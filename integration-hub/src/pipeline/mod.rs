//! The pipeline supervisor: sources → mapping → bus → sinks.
//!
//! Every source and every sink runs as its own supervised task: when a task fails (bus
//! unreachable, store error, …) it is restarted with growing delays, and the others keep
//! going. Shutdown is cooperative through a watch channel: a source finishes the batch it is
//! publishing, a sink finishes the batch it is delivering and commits it, then each returns.
//! Positions (file ledger, bus offsets) only ever advance after the effect is durable, so a
//! crash at any point loses nothing and, with the sink's version guard, duplicates nothing.

pub mod breaker;
pub mod crm_sink;
pub mod file_source;
pub mod pending;
pub mod quarantine;
pub mod rest_source;
pub mod retry_topics;
pub mod sink_plan;
pub mod soap_source;
pub mod webhook_source;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::bus::Bus;
use crate::bus::embedded::EmbeddedBus;
use crate::bus::kafka::KafkaBus;
use crate::config::{BusKind, Config, SourceKind};
use crate::golden::store::GoldenStore;
use crate::screening::Screening;
use crate::store::{Store, run_as_leader};
use crate::telemetry::{self, Stats};

/// Everything the tasks share.
pub struct Shared {
    pub config: Config,
    pub bus: Arc<dyn Bus>,
    /// The same bus when it is the embedded one (for its retention task).
    pub embedded: Option<Arc<EmbeddedBus>>,
    /// Held for the life of the process: one hub per data folder.
    _lock: std::fs::File,
    pub store: Arc<Store>,
    pub stats: Arc<Stats>,
    /// Screening and monitoring, when `[compliance]` is configured.
    pub screening: Option<Arc<Screening>>,
    /// Golden records, when `[master_data]` is configured.
    pub golden: Option<Arc<GoldenStore>>,
}

pub type Ctx = Arc<Shared>;

/// Opens the bus and the store named by the config.
pub async fn open(config: Config, stats: Arc<Stats>) -> anyhow::Result<Ctx> {
    let lock = lock_data_dir(&config.data_dir())?;
    let mut embedded = None;
    let bus: Arc<dyn Bus> = match config.bus.kind {
        BusKind::Embedded => {
            let path = config.bus_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let bus = Arc::new(
                EmbeddedBus::open(&path, config.bus.embedded.partitions)
                    .with_context(|| format!("cannot open embedded bus {}", path.display()))?,
            );
            embedded = Some(bus.clone());
            bus
        }
        BusKind::Kafka => {
            let kcfg = config
                .bus
                .kafka
                .as_ref()
                .context("bus.kind is kafka but [bus.kafka] is missing")?;
            Arc::new(KafkaBus::new(kcfg).context("cannot create kafka client")?)
        }
    };
    // Blocking: the PostgreSQL client connects synchronously.
    let store = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Store::open_for(&config))
            .await
            .context("opening the state store panicked")?
            .context("cannot open state store")?
    };
    let store = Arc::new(store);
    let screening = match &config.compliance {
        Some(_) => Some(Screening::open(&config)?),
        None => None,
    };
    // Blocking: the PostgreSQL client connects synchronously.
    let golden = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || crate::golden::open(&config))
            .await
            .context("opening the golden store panicked")??
    };
    Ok(Arc::new(Shared {
        config,
        bus,
        embedded,
        _lock: lock,
        store,
        stats,
        screening,
        golden,
    }))
}

/// Takes the data folder for this process. Two hubs on one folder would share an embedded
/// bus and a state store without coordinating; the second one is refused. The lock is the
/// operating system's, so a killed process releases it.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("hub.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another hub process is running on the data folder {}",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Runs every source and sink until `shutdown` turns true, then drains.
pub async fn run(ctx: Ctx, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for source in ctx.config.sources.clone() {
        let ctx = ctx.clone();
        let name = format!("source:{}", source.name);
        // One arm per source kind. Polling sources run in one instance at a time when
        // several share the PostgreSQL state store (`store::run_as_leader`); webhooks run in
        // every instance.
        match source.kind {
            SourceKind::FileDrop => tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
                let (ctx, source) = (ctx.clone(), source.clone());
                run_as_leader(ctx.store.clone(), source.name.clone(), sd, move |sd| {
                    file_source::run(ctx, source, sd)
                })
            })),
            SourceKind::RestPoll => tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
                let (ctx, source) = (ctx.clone(), source.clone());
                run_as_leader(ctx.store.clone(), source.name.clone(), sd, move |sd| {
                    rest_source::run(ctx, source, sd)
                })
            })),
            // Deliveries arrive through the HTTP listener (`webhook_source::router`); the
            // task keeps the record of accepted ids pruned.
            SourceKind::Webhook => tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
                webhook_source::run(ctx.clone(), source.clone(), sd)
            })),
            SourceKind::Soap => tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
                let (ctx, source) = (ctx.clone(), source.clone());
                run_as_leader(ctx.store.clone(), source.name.clone(), sd, move |sd| {
                    soap_source::run(ctx, source, sd)
                })
            })),
        };
    }
    for sink in ctx.config.sinks.clone() {
        // The sink and its retry task share the CRM client, the circuit breaker and the
        // keys being delivered.
        let shared = crm_sink::SinkShared::new(&sink);
        let (ctx_, sink_, shared_) = (ctx.clone(), sink.clone(), shared.clone());
        let name = format!("sink:{}", sink.name);
        tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
            crm_sink::run(ctx_.clone(), sink_.clone(), shared_.clone(), sd)
        }));
        let ctx = ctx.clone();
        let name = format!("sink-retry:{}", sink.name);
        tasks.spawn(supervise(name, shutdown.clone(), move |sd| {
            retry_topics::run(ctx.clone(), sink.clone(), shared.clone(), sd)
        }));
    }
    if let Some(screening) = ctx.screening.clone() {
        let ctx = ctx.clone();
        tasks.spawn(supervise("screening".into(), shutdown.clone(), move |sd| {
            crate::screening::stage::run(ctx.clone(), screening.clone(), sd)
        }));
    }
    if let Some(golden) = ctx.golden.clone() {
        let ctx = ctx.clone();
        tasks.spawn(supervise("golden".into(), shutdown.clone(), move |sd| {
            crate::golden::stage::run(ctx.clone(), golden.clone(), sd)
        }));
    }
    if let Some(bus) = ctx.embedded.clone() {
        let every = ctx.config.bus.embedded.compact_every_secs;
        let mut topics = vec![ctx.config.bus.canonical_topic()];
        if ctx.screening.is_some() {
            topics.push(ctx.config.bus.cleared_topic());
        }
        if ctx.golden.is_some() {
            topics.push(ctx.config.bus.golden_topic());
        }
        for sink in &ctx.config.sinks {
            topics.push(ctx.config.bus.retry_topic(&sink.name));
        }
        if every > 0 {
            for topic in topics {
                tasks.spawn(compact_periodically(
                    bus.clone(),
                    topic,
                    Duration::from_secs(every),
                    shutdown.clone(),
                ));
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.context("task panicked")?;
    }
    Ok(())
}

/// Retention of the embedded bus: drops what every consumer group has committed.
async fn compact_periodically(
    bus: Arc<EmbeddedBus>,
    topic: String,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    while !sleep_or_shutdown(every, &mut shutdown).await {
        match bus.compact(&topic).await {
            Ok(n) => tracing::info!(
                event = "bus_compacted",
                topic,
                deleted = n,
                "embedded bus compacted"
            ),
            Err(e) => {
                tracing::warn!(event = "bus_compact_failed", topic, error = %e, "embedded bus compaction failed")
            }
        }
    }
}

/// Runs `make_task` until it returns `Ok` (it does on shutdown), restarting it with growing
/// delays when it fails.
async fn supervise<F, Fut>(name: String, mut shutdown: watch::Receiver<bool>, make_task: F)
where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut attempt: u32 = 0;
    telemetry::task_supervised(&name);
    loop {
        match make_task(shutdown.clone()).await {
            Ok(()) => return,
            Err(e) => {
                attempt += 1;
                telemetry::task_restarted(&name, &format!("{e:#}"), attempt);
                let delay = Duration::from_millis((500u64 << attempt.min(6)).min(30_000));
                if sleep_or_shutdown(delay, &mut shutdown).await {
                    return;
                }
            }
        }
    }
}

/// Sleeps for `d`; returns true early when shutdown was requested.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        r = shutdown.changed() => r.is_err() || *shutdown.borrow(),
    }
}
