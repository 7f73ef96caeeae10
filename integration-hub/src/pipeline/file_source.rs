//! The file-drop source task.
//!
//! Loop: take over files a crash left in `processing/`, then watch the inbox; each complete
//! file is claimed (atomic move into `processing/`), checked against the ledger by SHA-256,
//! parsed, mapped row by row and published in batches. Bad rows go to the quarantine file
//! with line, field and reason; good rows go on. Only when the bus has acknowledged every
//! event of the file are the ledger entry written and the file moved to `archive/` — so a
//! crash mid-file leaves the file in `processing/` and it is processed again from the start
//! (its events carry the same deterministic ids, and the sinks skip what they already
//! applied). A file that cannot be read at all (wrong encoding, missing columns) ends in
//! `failed/` next to an `.error.txt` that says why.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};

use adapters::file_drop::quarantine::QuarantineWriter;
use adapters::file_drop::{self, Claimed, FileDropConfig, FileDropError, Outcome, SettleTracker};
use adapters::file_drop::{CsvReader, RowErrorKind};
use mapping::{Entity, Envelope, FieldError, Op};

use super::{Ctx, sleep_or_shutdown};
use crate::bus::OutMessage;
use crate::config::SourceConfig;
use crate::store::LedgerEntry;
use crate::{telemetry, trace};

/// Events per bus publish call.
const PUBLISH_BATCH: usize = 1000;
/// A progress line every this many rows of a large file.
const PROGRESS_EVERY: u64 = 25_000;
/// Batches in flight between the mapping thread and the publisher (bounded memory).
const CHANNEL_BATCHES: usize = 4;

pub async fn run(
    ctx: Ctx,
    source: SourceConfig,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let fd = ctx
        .config
        .file_drop(&source)
        .context("file_drop settings missing")?;
    std::fs::create_dir_all(&fd.inbox)
        .with_context(|| format!("cannot create inbox {}", fd.inbox.display()))?;
    for claimed in file_drop::recover(&fd).context("cannot list processing/")? {
        if *shutdown.borrow() {
            return Ok(());
        }
        process(&ctx, &source, &fd, claimed, &shutdown).await?;
    }
    let mut tracker = SettleTracker::new();
    let poll = Duration::from_millis(fd.poll_interval_ms);
    loop {
        let ready = tracker
            .scan_ready(&fd, Instant::now())
            .with_context(|| format!("cannot scan inbox {}", fd.inbox.display()))?;
        for path in ready {
            if *shutdown.borrow() {
                return Ok(());
            }
            let claimed = match file_drop::claim(&path, &fd) {
                Ok(c) => c,
                // Another instance, or an operator, took the file first.
                Err(e) if e.is_not_found() => continue,
                // A file of the same name is still being processed (by another instance
                // sharing the inbox): this one waits for a later scan.
                Err(e @ FileDropError::AlreadyProcessing { .. }) => {
                    tracing::warn!(source = %source.name, error = %e, "file waits: same name in processing/");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            telemetry::file_claimed(
                &ctx.stats,
                &source.name,
                &claimed.original_name,
                claimed.size,
            );
            process(&ctx, &source, &fd, claimed, &shutdown).await?;
        }
        if sleep_or_shutdown(poll, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// What mapping one file produced, sent in batches to the publisher.
enum Mapped {
    Batch(Vec<OutMessage>),
    Done {
        rows: u64,
        quarantined: u64,
    },
    /// Reading stopped before the end of the file (an I/O error, a file changed while
    /// read, an overlong row).
    Stopped {
        reason: String,
    },
}

async fn process(
    ctx: &Ctx,
    source: &SourceConfig,
    fd: &FileDropConfig,
    claimed: Claimed,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let name = claimed.original_name.clone();
    let store = ctx.store.clone();
    let (src, sha) = (source.name.clone(), claimed.sha256.clone());
    let seen = tokio::task::spawn_blocking(move || store.ledger_get(&src, &sha)).await??;
    if let Some(first) = seen {
        telemetry::file_duplicate(
            &ctx.stats,
            &source.name,
            &name,
            &claimed.sha256,
            &first.file_name,
        );
        file_drop::finish(&claimed, fd, Outcome::Archived)?;
        return Ok(());
    }

    let (tx, mut rx) = mpsc::channel::<Mapped>(CHANNEL_BATCHES);
    let mapper = match start_mapping(ctx, source, fd, &claimed, tx).await? {
        Ok(m) => m,
        Err(reason) => return fail(ctx, source, fd, &claimed, &reason),
    };
    let topic = ctx.config.bus.canonical_topic();
    let mut events = 0u64;
    let mut done = None;
    while let Some(m) = rx.recv().await {
        match m {
            Mapped::Batch(batch) => {
                let n = batch.len() as u64;
                let ids = trace::ids_of(&batch);
                trace::source_batch(&source.name, &ids, false);
                ctx.bus.publish(&topic, batch).await?;
                trace::source_batch(&source.name, &ids, true);
                events += n;
                telemetry::events_published(&ctx.stats, &source.name, &topic, n);
                if *shutdown.borrow() {
                    // Leave the file in processing/: the next start re-reads it from the
                    // start and the sinks skip what they already applied.
                    tracing::info!(source = %source.name, file = %name, "shutdown: file left in processing/ to resume");
                    return Ok(());
                }
            }
            Mapped::Done { rows, quarantined } => done = Some((rows, quarantined)),
            Mapped::Stopped { reason } => {
                mapper.await??;
                // The rows before the stop are on the bus and will be delivered; the file
                // goes to failed/ so that an operator sees it was not read to the end.
                let reason = format!(
                    "{reason}\n{events} events from the rows before this line were published \
                     and are delivered; fix the file and drop it again (rows whose \
                     version was already delivered are skipped)."
                );
                return fail(ctx, source, fd, &claimed, &reason);
            }
        }
    }
    mapper.await??;
    let Some((rows, quarantined)) = done else {
        anyhow::bail!("mapping of {name} ended without a summary");
    };

    // The bus has acknowledged every event of the file: now, and only now, the ledger entry
    // and the move to archive/.
    let entry = LedgerEntry {
        source: source.name.clone(),
        sha256: claimed.sha256.clone(),
        file_name: name.clone(),
        rows,
        events,
        quarantined,
    };
    let store = ctx.store.clone();
    tokio::task::spawn_blocking(move || store.ledger_put(&entry)).await??;
    file_drop::finish(&claimed, fd, Outcome::Archived)?;
    telemetry::file_ingested(&ctx.stats, &source.name, &name, rows, events, quarantined);
    Ok(())
}

fn fail(
    ctx: &Ctx,
    source: &SourceConfig,
    fd: &FileDropConfig,
    claimed: &Claimed,
    reason: &str,
) -> anyhow::Result<()> {
    let dest = file_drop::finish(claimed, fd, Outcome::Failed)?;
    let report = dest.with_file_name(format!(
        "{}.error.txt",
        dest.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    std::fs::write(&report, format!("{reason}\n"))
        .with_context(|| format!("cannot write {}", report.display()))?;
    telemetry::file_failed(&ctx.stats, &source.name, &claimed.original_name, reason);
    Ok(())
}

/// Opens the file and starts mapping it on a blocking thread; `Err(reason)` when the file
/// cannot be read at all (it goes to failed/).
async fn start_mapping(
    ctx: &Ctx,
    source: &SourceConfig,
    fd: &FileDropConfig,
    claimed: &Claimed,
    tx: mpsc::Sender<Mapped>,
) -> anyhow::Result<Result<tokio::task::JoinHandle<anyhow::Result<()>>, String>> {
    if let Some(format) = source.reader.clone() {
        let path = claimed.path.clone();
        let records = match tokio::task::spawn_blocking(move || format.open(&path)).await? {
            Ok(r) => r,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let (ctx, source, fd, claimed) = (ctx.clone(), source.clone(), fd.clone(), claimed.clone());
        return Ok(Ok(tokio::task::spawn_blocking(move || {
            map_records(&ctx, &source, &fd, &claimed, records, tx)
        })));
    }
    // Opening checks the encoding of the whole file (streaming) before any row is handed out.
    let (path, fd2) = (claimed.path.clone(), fd.clone());
    let reader = match tokio::task::spawn_blocking(move || CsvReader::open(&path, &fd2)).await? {
        Ok(r) => r,
        Err(e) => return Ok(Err(e.to_string())),
    };
    if source.mapping.is_some() {
        let base = ctx.config.base_dir.clone();
        let resolve = move |r: &str| crate::config::resolve_secret(r, &base);
        let mapping = super::rest_source::compile_mapping(source, &resolve)?;
        let (ctx, source, fd, claimed) = (ctx.clone(), source.clone(), fd.clone(), claimed.clone());
        return Ok(Ok(tokio::task::spawn_blocking(move || {
            let event_time: DateTime<Utc> = claimed.modified.into();
            let default_version = event_time.timestamp_millis();
            let headers = reader.headers().to_vec();
            let name = source.name.clone();
            map_csv(&ctx, &source, &fd, &claimed, reader, tx, |row| {
                let record = mapping::declarative::csv_row_to_value(&headers, &row.cells);
                Ok(mapping.apply(&record).map(|m| {
                    Envelope::new(
                        &name,
                        m.entity,
                        m.op,
                        &m.key,
                        m.version.unwrap_or(default_version),
                        m.event_time.unwrap_or(event_time),
                        Utc::now(),
                        m.payload,
                    )
                }))
            })
        })));
    }
    let Some(columns) = source.columns.clone() else {
        anyhow::bail!("source {} has no columns, reader or mapping", source.name);
    };
    let bound = match columns.bind(reader.headers()) {
        Ok(b) => b,
        Err(errs) => {
            return Ok(Err(errs
                .iter()
                .map(|e| format!("{}: line 1 (header): {e}", claimed.original_name))
                .collect::<Vec<_>>()
                .join("\n")));
        }
    };
    // Map on a blocking thread, publish in the caller; the bounded channel keeps memory flat.
    let (ctx, source, fd, claimed) = (ctx.clone(), source.clone(), fd.clone(), claimed.clone());
    Ok(Ok(tokio::task::spawn_blocking(move || {
        let event_time: DateTime<Utc> = claimed.modified.into();
        let default_version = event_time.timestamp_millis();
        let today = Utc::now().date_naive();
        let name = source.name.clone();
        map_csv(&ctx, &source, &fd, &claimed, reader, tx, |row| {
            Ok(match bound.map_row(&row.cells, today) {
                Ok(m) => Ok(Envelope::new(
                    &name,
                    Entity::Party,
                    Op::Upsert,
                    &m.key,
                    m.version.unwrap_or(default_version),
                    event_time,
                    Utc::now(),
                    serde_json::to_value(&m.party)?,
                )),
                Err(errors) => Err(errors),
            })
        })
    })))
}

/// Where the mapping thread puts what one file produced: events in batches to the
/// publisher, bad rows or records to the quarantine file, and the file's outcome.
struct FileOutput<'a> {
    ctx: &'a Ctx,
    source: &'a SourceConfig,
    claimed: &'a Claimed,
    tx: mpsc::Sender<Mapped>,
    batch: Vec<OutMessage>,
    quarantine: QuarantineWriter,
    rows: u64,
    bad: u64,
}

impl<'a> FileOutput<'a> {
    fn new(
        ctx: &'a Ctx,
        source: &'a SourceConfig,
        fd: &FileDropConfig,
        claimed: &'a Claimed,
        tx: mpsc::Sender<Mapped>,
    ) -> anyhow::Result<Self> {
        Ok(FileOutput {
            ctx,
            source,
            claimed,
            tx,
            batch: Vec::with_capacity(PUBLISH_BATCH),
            quarantine: QuarantineWriter::create(fd, &claimed.original_name)?,
            rows: 0,
            bad: 0,
        })
    }

    /// Counts one row or record read, with a progress line now and then.
    fn read_one(&mut self) {
        self.rows += 1;
        if self.rows.is_multiple_of(PROGRESS_EVERY) {
            telemetry::file_progress(&self.source.name, &self.claimed.original_name, self.rows);
        }
    }

    /// Adds an event; false when the publisher stopped (shutdown or a bus error: it reports
    /// why), and the caller stops too.
    fn publish(&mut self, env: &Envelope) -> anyhow::Result<bool> {
        self.batch.push(to_message(env)?);
        if self.batch.len() >= PUBLISH_BATCH {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(PUBLISH_BATCH));
            return Ok(self.tx.blocking_send(Mapped::Batch(full)).is_ok());
        }
        Ok(true)
    }

    /// One bad row or record, with every problem it has.
    fn reject<'e>(
        &mut self,
        line: u64,
        problems: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> anyhow::Result<()> {
        self.bad += 1;
        for (field, reason) in problems {
            telemetry::row_quarantined(
                &self.ctx.stats,
                &self.source.name,
                &self.claimed.original_name,
                line,
                field,
                reason,
            );
            self.quarantine.add(line, field, reason)?;
        }
        Ok(())
    }

    /// Reading stopped before the end of the file: what was mapped goes out, then the reason.
    fn stop(mut self, reason: String) -> anyhow::Result<()> {
        if self.flush() {
            self.quarantine.finish()?;
            let _ = self.tx.blocking_send(Mapped::Stopped { reason });
        }
        Ok(())
    }

    /// The whole file was read.
    fn done(mut self) -> anyhow::Result<()> {
        telemetry::rows_read(&self.ctx.stats, &self.source.name, self.rows);
        if self.flush() {
            self.quarantine.finish()?;
            let _ = self.tx.blocking_send(Mapped::Done {
                rows: self.rows,
                quarantined: self.bad,
            });
        }
        Ok(())
    }

    fn flush(&mut self) -> bool {
        let rest = std::mem::take(&mut self.batch);
        rest.is_empty() || self.tx.blocking_send(Mapped::Batch(rest)).is_ok()
    }
}

/// Maps every row of a CSV file with `map` (customer columns, or a declarative mapping of
/// the row as a JSON object keyed by the header); runs on a blocking thread. A bad row is
/// quarantined with its line, every field that failed and why; an unreadable row (an
/// unclosed quote running past the row limit) stops the file there.
#[allow(clippy::too_many_arguments)]
fn map_csv(
    ctx: &Ctx,
    source: &SourceConfig,
    fd: &FileDropConfig,
    claimed: &Claimed,
    reader: CsvReader,
    tx: mpsc::Sender<Mapped>,
    mut map: impl FnMut(&adapters::file_drop::Row) -> anyhow::Result<Result<Envelope, Vec<FieldError>>>,
) -> anyhow::Result<()> {
    let mut out = FileOutput::new(ctx, source, fd, claimed, tx)?;
    for row in reader {
        out.read_one();
        let row = match row {
            Ok(r) => r,
            Err(e) if matches!(e.kind, RowErrorKind::Malformed { .. }) => {
                let reason = format!("{}: line {}: {}", claimed.original_name, e.line, e.reason());
                return out.stop(reason);
            }
            Err(e) => {
                out.reject(e.line, [("row", e.reason().as_str())])?;
                continue;
            }
        };
        match map(&row)? {
            Ok(env) => {
                if !out.publish(&env)? {
                    return Ok(());
                }
            }
            Err(errors) => out.reject(
                row.line,
                errors.iter().map(|e| (e.field.as_str(), e.reason.as_str())),
            )?,
        }
    }
    out.done()
}

/// Maps every record of a bank file (statement, report, 1C exchange); runs on a blocking
/// thread. A bad record is quarantined with its line or element; a structural error stops
/// the file after what was read before it.
fn map_records(
    ctx: &Ctx,
    source: &SourceConfig,
    fd: &FileDropConfig,
    claimed: &Claimed,
    records: adapters::formats::Records,
    tx: mpsc::Sender<Mapped>,
) -> anyhow::Result<()> {
    use adapters::formats::{ErrorScope, Record};
    let event_time: DateTime<Utc> = claimed.modified.into();
    let version = event_time.timestamp_millis();
    let mut out = FileOutput::new(ctx, source, fd, claimed, tx)?;
    for item in records {
        out.read_one();
        let item = match item {
            Ok(i) => i,
            Err(e) if e.scope == ErrorScope::File => return out.stop(e.to_string()),
            Err(e) => {
                let field = e.field.clone().unwrap_or_else(|| "record".into());
                let reason = match &e.location.element {
                    Some(el) => format!("{el}: {}", e.reason),
                    None => e.reason.clone(),
                };
                out.reject(e.location.line, [(field.as_str(), reason.as_str())])?;
                continue;
            }
        };
        let (entity, payload) = match &item.record {
            Record::Account(a) => (Entity::Account, serde_json::to_value(a)?),
            Record::Transaction(t) => (Entity::Transaction, serde_json::to_value(t)?),
            Record::Balance(b) => (Entity::Balance, serde_json::to_value(b)?),
            Record::Statement(st) => (Entity::Statement, serde_json::to_value(st)?),
        };
        let env = Envelope::new(
            &source.name,
            entity,
            Op::Upsert,
            &item.record.key(),
            version,
            event_time,
            Utc::now(),
            payload,
        );
        if !out.publish(&env)? {
            return Ok(());
        }
    }
    out.done()
}

/// The bus message of an envelope: JSON body; id, source, entity and event time as headers.
pub fn to_message(env: &Envelope) -> anyhow::Result<OutMessage> {
    crate::telemetry::record_mapped(&env.source, env.entity.as_str());
    Ok(OutMessage {
        key: env.key.clone(),
        headers: vec![
            ("id".into(), env.id.clone()),
            ("trace_id".into(), env.trace_id.clone()),
            ("source".into(), env.source.clone()),
            ("entity".into(), env.entity.as_str().into()),
            ("event_time".into(), env.event_time.to_rfc3339()),
        ],
        payload: serde_json::to_vec(env)?,
    })
}
