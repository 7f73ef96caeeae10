//! Reading a whole source again, the way its live task maps it, without touching any of its
//! positions.
//!
//! Contract:
//! - A file-drop source re-reads files: `--from` (a file, or the files of a folder matching
//!   the source's pattern, `.1`, `.2`… copies included), else its `archive/` of processed
//!   files. Files are read oldest first (modification time, then name). A row's default
//!   version and event time are the file's modification time, as when it was first read
//!   (moving a file to `archive/` keeps it), so a re-read record carries the same envelope
//!   id. Nothing is claimed, moved, quarantined or written to the ledger.
//! - A REST source makes one full pass from its configured initial cursor; a SOAP source one
//!   pass of every operation from its initial cursor and first page. The persisted cursors
//!   are neither read nor written.
//! - Every record comes out as an [`Item`]: the envelope the live task would publish, or a
//!   [`Failure`] naming source, record (file and line, page and record, operation…) and
//!   reason — never a value of the record. A page or file that cannot be read at all is one
//!   failure and reading goes on with the next file (a REST or SOAP pass stops there).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use adapters::file_drop::{CsvReader, FileDropConfig, RowErrorKind};
use mapping::declarative::{CompiledMapping, csv_row_to_value};
use mapping::{Entity, Envelope, FieldError, Op};

use crate::config::{Config, SourceConfig, SourceKind, resolve_secret};

/// How the failure that ends a REST or SOAP pass early begins (`hub reconcile` refuses to
/// compare an incomplete pass).
pub(crate) const PASS_STOPPED: &str = "the pass stopped here";

/// Items per message on the channel from the reader.
const CHUNK: usize = 500;

/// One record read.
#[derive(Debug)]
pub enum Item {
    /// The envelope the live task would publish.
    Record(Box<Envelope>),
    /// A record that could not be read or mapped.
    Failed(Failure),
}

/// A record (or a whole file or page) that could not be read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Failure {
    /// The source's name.
    pub source: String,
    /// Where: `customers.csv: line 7`, `page 3, record 12`, ...
    pub record: String,
    /// The record's key, when it could be told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Why (field and reason; never a value).
    pub reason: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "source {}: {}", self.source, self.record)?;
        if let Some(k) = &self.key {
            write!(f, " (key {k})")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// What a source is read from, checked before anything is read (a problem here is a
/// configuration error).
pub enum Plan {
    Files {
        fd: FileDropConfig,
        files: Vec<PathBuf>,
    },
    Rest,
    Soap,
}

/// Checks that `source` can be backfilled and finds its files.
pub fn plan(cfg: &Config, source: &SourceConfig, from: Option<&Path>) -> anyhow::Result<Plan> {
    if from.is_some() && source.kind != SourceKind::FileDrop {
        bail!(
            "--from reads files: source `{}` is not a file drop",
            source.name
        );
    }
    match source.kind {
        SourceKind::Webhook => bail!(
            "source `{}` is a webhook: the hub keeps no copy of what was pushed to it, so it \
             cannot be backfilled; ask the sending system to send it again",
            source.name
        ),
        SourceKind::RestPoll => {
            compile(cfg, source)?;
            Ok(Plan::Rest)
        }
        SourceKind::Soap => {
            compile(cfg, source)?;
            Ok(Plan::Soap)
        }
        SourceKind::FileDrop => {
            let fd = cfg
                .file_drop(source)
                .with_context(|| format!("source `{}` has no [sources.file_drop]", source.name))?;
            if source.mapping.is_some() {
                compile(cfg, source)?;
            } else if source.columns.is_none() && source.reader.is_none() {
                bail!(
                    "source `{}` has no [sources.columns], [sources.reader] or [sources.mapping]",
                    source.name
                );
            }
            let files = match from {
                Some(p) => given_files(p, &fd)?,
                None if !fd.keep_processed => bail!(
                    "source `{}` keeps no processed files (file_drop.keep_processed = false): \
                     give the files with --from",
                    source.name
                ),
                None => matching_files(&fd.archive_dir(), &fd)?,
            };
            if files.is_empty() {
                bail!(
                    "source `{}`: no files to read (pattern {} in {})",
                    source.name,
                    fd.pattern,
                    from.map_or_else(|| fd.archive_dir(), Path::to_path_buf)
                        .display()
                );
            }
            Ok(Plan::Files { fd, files })
        }
    }
}

/// The source's compiled `[sources.mapping]`, every problem named.
fn compile(cfg: &Config, source: &SourceConfig) -> anyhow::Result<CompiledMapping> {
    let base = cfg.base_dir.clone();
    crate::pipeline::rest_source::compile_mapping(source, &|r: &str| resolve_secret(r, &base))
}

/// `--from`: the file, or the matching files of the folder.
fn given_files(path: &Path, fd: &FileDropConfig) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    matching_files(path, fd)
}

/// Regular files of `dir` matching the pattern (or a `.N` copy of such a name), oldest
/// first; a missing folder has none.
fn matching_files(dir: &Path, fd: &FileDropConfig) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot inspect {}", entry.path().display()))?;
        let numbered_copy = name.rsplit_once('.').is_some_and(|(stem, n)| {
            !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && fd.matches(stem)
        });
        if meta.is_file() && (fd.matches(&name) || numbered_copy) {
            files.push((meta.modified().ok(), entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Reads the whole source into `tx`, in chunks; returns when everything was read (or the
/// receiver went away). `Err` only for what stops the backfill as a whole.
pub async fn read(
    cfg: Config,
    source: SourceConfig,
    plan: Plan,
    tx: mpsc::Sender<Vec<Item>>,
) -> anyhow::Result<()> {
    match plan {
        Plan::Files { fd, files } => {
            let mapping = match source.mapping {
                Some(_) => Some(compile(&cfg, &source)?),
                None => None,
            };
            tokio::task::spawn_blocking(move || {
                let mut out = Out::new(tx);
                for file in files {
                    if !read_file(&source, &fd, mapping.as_ref(), &file, &mut out) {
                        return;
                    }
                }
                out.flush();
            })
            .await
            .context("the file reader failed")
        }
        Plan::Rest => super::remote::read_rest(&cfg, &source, compile(&cfg, &source)?, tx).await,
        Plan::Soap => super::remote::read_soap(&cfg, &source, compile(&cfg, &source)?, tx).await,
    }
}

/// Items gathered into chunks for the channel (blocking side).
pub(super) struct Out {
    tx: mpsc::Sender<Vec<Item>>,
    chunk: Vec<Item>,
}

impl Out {
    pub(super) fn new(tx: mpsc::Sender<Vec<Item>>) -> Out {
        Out {
            tx,
            chunk: Vec::with_capacity(CHUNK),
        }
    }

    /// False when the receiver went away: stop reading.
    pub(super) fn push(&mut self, item: Item) -> bool {
        self.chunk.push(item);
        if self.chunk.len() >= CHUNK {
            return self.flush();
        }
        true
    }

    pub(super) fn flush(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        chunk.is_empty() || self.tx.blocking_send(chunk).is_ok()
    }

    /// Sends what is gathered from async code.
    pub(super) async fn flush_async(&mut self) -> bool {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        chunk.is_empty() || self.tx.send(chunk).await.is_ok()
    }

    /// Adds from async code.
    pub(super) async fn push_async(&mut self, item: Item) -> bool {
        self.chunk.push(item);
        if self.chunk.len() >= CHUNK {
            return self.flush_async().await;
        }
        true
    }
}

pub(super) fn failed(source: &str, record: String, key: Option<String>, reason: String) -> Item {
    Item::Failed(Failure {
        source: source.to_owned(),
        record,
        key,
        reason,
    })
}

/// Every field error of a record, as one reason.
pub(super) fn reasons(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.reason))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One file, as the live task maps it. False when the receiver went away.
fn read_file(
    source: &SourceConfig,
    fd: &FileDropConfig,
    mapping: Option<&CompiledMapping>,
    path: &Path,
    out: &mut Out,
) -> bool {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let modified = std::fs::metadata(path).and_then(|m| m.modified());
    let event_time: DateTime<Utc> = match modified {
        Ok(t) => t.into(),
        Err(e) => {
            return out.push(failed(
                &source.name,
                name,
                None,
                format!("cannot read the file's modification time: {e}"),
            ));
        }
    };
    let default_version = event_time.timestamp_millis();
    let envelope = |entity, op, key: &str, version, at, payload| {
        Envelope::new(
            &source.name,
            entity,
            op,
            key,
            version,
            at,
            Utc::now(),
            payload,
        )
    };
    if let Some(format) = &source.reader {
        let records = match format.open(path) {
            Ok(r) => r,
            Err(e) => return out.push(failed(&source.name, name, None, e.to_string())),
        };
        use adapters::formats::{ErrorScope, Record};
        for item in records {
            let item = match item {
                Ok(i) => i,
                Err(e) => {
                    let at = format!("{name}: line {}", e.location.line);
                    let whole = e.scope == ErrorScope::File;
                    if !out.push(failed(&source.name, at, None, e.to_string())) {
                        return false;
                    }
                    if whole {
                        return true;
                    }
                    continue;
                }
            };
            let payload = match &item.record {
                Record::Account(a) => serde_json::to_value(a).map(|v| (Entity::Account, v)),
                Record::Transaction(t) => serde_json::to_value(t).map(|v| (Entity::Transaction, v)),
                Record::Balance(b) => serde_json::to_value(b).map(|v| (Entity::Balance, v)),
                Record::Statement(s) => serde_json::to_value(s).map(|v| (Entity::Statement, v)),
            };
            let key = item.record.key();
            let pushed = match payload {
                Ok((entity, payload)) => out.push(Item::Record(Box::new(envelope(
                    entity,
                    Op::Upsert,
                    &key,
                    default_version,
                    event_time,
                    payload,
                )))),
                Err(e) => out.push(failed(
                    &source.name,
                    name.clone(),
                    Some(key),
                    format!("cannot encode the record: {e}"),
                )),
            };
            if !pushed {
                return false;
            }
        }
        return true;
    }
    let reader = match CsvReader::open(path, fd) {
        Ok(r) => r,
        Err(e) => return out.push(failed(&source.name, name, None, e.to_string())),
    };
    let headers = reader.headers().to_vec();
    let bound = match (mapping, &source.columns) {
        (None, Some(columns)) => match columns.bind(&headers) {
            Ok(b) => Some(b),
            Err(errs) => {
                let reason = errs.iter().map(ToString::to_string).collect::<Vec<_>>();
                return out.push(failed(
                    &source.name,
                    format!("{name}: line 1 (header)"),
                    None,
                    reason.join("; "),
                ));
            }
        },
        _ => None,
    };
    let today = Utc::now().date_naive();
    for row in reader {
        let row = match row {
            Ok(r) => r,
            Err(e) => {
                let stop = matches!(e.kind, RowErrorKind::Malformed { .. });
                let at = format!("{name}: line {}", e.line);
                if !out.push(failed(&source.name, at, None, e.reason())) {
                    return false;
                }
                if stop {
                    // An unreadable row ends the file there, as in the live task.
                    return true;
                }
                continue;
            }
        };
        let at = || format!("{name}: line {}", row.line);
        let item = if let Some(m) = mapping {
            let record = csv_row_to_value(&headers, &row.cells);
            match m.apply(&record) {
                Ok(r) => Item::Record(Box::new(envelope(
                    r.entity,
                    r.op,
                    &r.key,
                    r.version.unwrap_or(default_version),
                    r.event_time.unwrap_or(event_time),
                    r.payload,
                ))),
                Err(errors) => failed(&source.name, at(), m.key_of(&record), reasons(&errors)),
            }
        } else if let Some(b) = &bound {
            match b.map_row(&row.cells, today) {
                Ok(p) => match serde_json::to_value(&p.party) {
                    Ok(payload) => Item::Record(Box::new(envelope(
                        Entity::Party,
                        Op::Upsert,
                        &p.key,
                        p.version.unwrap_or(default_version),
                        event_time,
                        payload,
                    ))),
                    Err(e) => failed(
                        &source.name,
                        at(),
                        Some(p.key),
                        format!("cannot encode the record: {e}"),
                    ),
                },
                Err(errors) => failed(&source.name, at(), None, reasons(&errors)),
            }
        } else {
            failed(
                &source.name,
                at(),
                None,
                "no mapping for the row".to_owned(),
            )
        };
        if !out.push(item) {
            return false;
        }
    }
    true
}
