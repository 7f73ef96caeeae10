//! Publishing a backfill: every selected event to `<prefix>.canonical`, in batches, with the
//! live task's headers plus `resync`. The bus is opened directly (not through the hub's
//! data-folder lock): Kafka takes any number of producers, and the embedded bus is a SQLite
//! file another process may write while `hub run` reads it.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use super::progress::Progress;
use super::read::{Failure, Item};
use super::{Job, failure_selected, reader_done, start_reading};
use crate::bus::Bus;
use crate::bus::embedded::EmbeddedBus;
use crate::bus::kafka::KafkaBus;
use crate::config::{BusKind, Config};
use crate::pipeline::crm_sink::RESYNC_HEADER;
use crate::pipeline::file_source::to_message;

/// Events per publish call.
const BATCH: usize = 1000;

/// What a backfill published.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub source: String,
    pub topic: String,
    /// The `resync` header: a sink's name, or `*` for every sink.
    pub resync: String,
    /// Records read from the source (mapped or not).
    pub read: u64,
    /// Records selected.
    pub selected: u64,
    /// Events the bus acknowledged.
    pub published: u64,
    /// Seconds from start to the last acknowledgement.
    pub elapsed_secs: f64,
    pub failures: Vec<Failure>,
}

/// Opens the config's bus for publishing.
pub async fn open_bus(cfg: &Config) -> anyhow::Result<Arc<dyn Bus>> {
    Ok(match cfg.bus.kind {
        BusKind::Embedded => {
            let path = cfg.bus_path();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            let partitions = cfg.bus.embedded.partitions;
            let bus = tokio::task::spawn_blocking(move || EmbeddedBus::open(&path, partitions))
                .await
                .context("opening the embedded bus failed")?
                .with_context(|| {
                    format!("cannot open the embedded bus {}", cfg.bus_path().display())
                })?;
            Arc::new(bus)
        }
        BusKind::Kafka => {
            let k = cfg
                .bus
                .kafka
                .as_ref()
                .context("bus.kind is kafka but [bus.kafka] is missing")?;
            Arc::new(KafkaBus::new(k).context("cannot create the kafka client")?)
        }
    })
}

/// Reads, selects and publishes. `Err` only when nothing could be started (the bus).
pub async fn run(mut job: Job) -> anyhow::Result<PublishReport> {
    let bus = open_bus(&job.config).await?;
    let topic = job.config.bus.canonical_topic();
    let resync = job
        .sink
        .as_ref()
        .map_or_else(|| "*".to_owned(), |s| s.name.clone());
    let started = std::time::Instant::now();
    let mut progress = Progress::new("published");
    let mut failures = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let (mut rx, task) = start_reading(&mut job);
    let mut stopped = None;
    'read: while let Some(chunk) = rx.recv().await {
        for item in chunk {
            progress.read += 1;
            match item {
                Item::Failed(f) => {
                    if failure_selected(&job.selection, &f) {
                        failures.push(f);
                    }
                }
                Item::Record(env) => {
                    if !job.selection.selects(&job.source.name, &env.key) {
                        continue;
                    }
                    progress.selected += 1;
                    let mut msg = match to_message(&env) {
                        Ok(m) => m,
                        Err(e) => {
                            failures.push(Failure {
                                source: job.source.name.clone(),
                                record: format!("envelope {}", env.id),
                                key: Some(env.key.clone()),
                                reason: format!("cannot encode the envelope: {e}"),
                            });
                            continue;
                        }
                    };
                    msg.headers.push((RESYNC_HEADER.to_owned(), resync.clone()));
                    batch.push(msg);
                    if batch.len() >= BATCH {
                        let n = batch.len() as u64;
                        if let Err(e) = bus.publish(&topic, std::mem::take(&mut batch)).await {
                            stopped = Some((n, e.to_string()));
                            break 'read;
                        }
                        progress.done += n;
                    }
                }
            }
        }
        progress.tick();
    }
    if stopped.is_none() && !batch.is_empty() {
        let n = batch.len() as u64;
        match bus.publish(&topic, std::mem::take(&mut batch)).await {
            Ok(()) => progress.done += n,
            Err(e) => stopped = Some((n, e.to_string())),
        }
    }
    if let Some((n, reason)) = stopped {
        // The rest of the source is not read: a bus that refuses one batch refuses the next.
        drop(rx);
        failures.push(Failure {
            source: job.source.name.clone(),
            record: format!(
                "selected records {} to {} and every one after",
                progress.done + 1,
                progress.done + n
            ),
            key: None,
            reason: format!("not published: {reason}"),
        });
        task.abort();
    } else {
        reader_done(&job.source.name, task, &mut failures).await;
    }
    progress.finish();
    Ok(PublishReport {
        source: job.source.name.clone(),
        topic,
        resync,
        read: progress.read,
        selected: progress.selected,
        published: progress.done,
        elapsed_secs: started.elapsed().as_secs_f64(),
        failures,
    })
}

/// The summary line.
pub fn write_text(r: &PublishReport, out: &mut dyn Write) -> anyhow::Result<()> {
    let rate = r.published as f64 / r.elapsed_secs.max(1e-3);
    writeln!(
        out,
        "backfill: source {} → {} (resync {}): read={} selected={} published={} failed={} \
         elapsed_s={:.2} rate_per_s={:.0}",
        r.source,
        r.topic,
        r.resync,
        r.read,
        r.selected,
        r.published,
        r.failures.len(),
        r.elapsed_secs,
        rate
    )?;
    Ok(())
}
