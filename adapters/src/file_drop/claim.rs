//! Finding complete files in the inbox, claiming them, and putting them away afterwards.
//!
//! Contract:
//! - [`SettleTracker::scan_ready`] never sleeps: the runtime calls it every poll interval and
//!   it remembers what it saw. With a done-marker configured, a data file is ready when its
//!   marker exists and is not older than the data file (a marker older than its data file is
//!   a leftover, and the data file is still being written). Without one, a file is ready once
//!   its size and mtime have stayed the same for `settle_ms` of observed time, so a file is
//!   never reported on the scan that first sees it unless `settle_ms` is 0. Ready files come
//!   ordered by mtime, then name.
//! - [`claim`] is the commit point: one rename moves the file into `processing/` (a file of
//!   the same name already there is left alone and the new one waits). Only then is the
//!   done-marker removed; the file is fingerprinted from its new place.
//! - [`recover`] returns everything in `processing/`: after a crash these files must be
//!   processed again from their first row.
//! - [`finish`] moves a claimed file to `archive/` or `failed/`, appending `.1`, `.2`, ...
//!   to the name when that name is taken, so nothing is ever overwritten.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::config::FileDropConfig;
use super::error::FileDropError;

/// A file that has been moved into `processing/` and fingerprinted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Where the file is now (inside `processing/`).
    pub path: PathBuf,
    /// The file name as it was dropped in the inbox.
    pub original_name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time of the file as dropped.
    pub modified: SystemTime,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
}

/// Where a claimed file goes when the runtime is done with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Processed: to `archive/`.
    Archived,
    /// Could not be processed: to `failed/`.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Observation {
    size: u64,
    modified: Option<SystemTime>,
    stable_since: Instant,
}

/// Remembers, across scans, the size and mtime each inbox file had and since when they have
/// not changed.
#[derive(Debug, Default)]
pub struct SettleTracker {
    seen: HashMap<PathBuf, Observation>,
}

struct Candidate {
    path: PathBuf,
    name: String,
    modified: Option<SystemTime>,
}

impl SettleTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many inbox files are being watched for settling.
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }

    /// Forgets what was seen of `path` (for example after a failed claim).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }

    /// Lists the inbox files matching the pattern that are complete as of `now`.
    ///
    /// Files that vanish during the scan are skipped; a missing inbox is an error.
    pub fn scan_ready(&mut self, cfg: &FileDropConfig, now: Instant) -> io::Result<Vec<PathBuf>> {
        let mut ready = Vec::new();
        let mut present = HashSet::new();
        for entry in fs::read_dir(&cfg.inbox)? {
            let entry = match entry {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else {
                tracing::debug!(
                    inbox = %cfg.inbox.display(),
                    "skipping a file whose name is not valid utf-8"
                );
                continue;
            };
            if !cfg.matches(name) {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !meta.is_file() {
                continue;
            }
            let path = entry.path();
            let modified = meta.modified().ok();
            let candidate = Candidate {
                path: path.clone(),
                name: name.to_owned(),
                modified,
            };
            if let Some(marker) = cfg.marker_path(&path) {
                if marker_confirms(&marker, modified)? {
                    ready.push(candidate);
                }
                continue;
            }
            present.insert(path.clone());
            let obs = self.seen.entry(path).or_insert(Observation {
                size: meta.len(),
                modified,
                stable_since: now,
            });
            if obs.size != meta.len() || obs.modified != modified {
                *obs = Observation {
                    size: meta.len(),
                    modified,
                    stable_since: now,
                };
            }
            if now.saturating_duration_since(obs.stable_since) >= cfg.settle() {
                ready.push(candidate);
            }
        }
        self.seen.retain(|p, _| present.contains(p));
        ready.sort_by(|a, b| (a.modified, &a.name).cmp(&(b.modified, &b.name)));
        Ok(ready.into_iter().map(|c| c.path).collect())
    }
}

/// Whether a done-marker exists and is not older than its data file.
fn marker_confirms(marker: &Path, data_modified: Option<SystemTime>) -> io::Result<bool> {
    let meta = match fs::metadata(marker) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if !meta.is_file() {
        return Ok(false);
    }
    Ok(match (meta.modified().ok(), data_modified) {
        (Some(marker_time), Some(data_time)) => marker_time >= data_time,
        _ => true,
    })
}

/// Moves a ready inbox file into `processing/` (creating it), removes its done-marker and
/// fingerprints it.
pub fn claim(path: &Path, cfg: &FileDropConfig) -> Result<Claimed, FileDropError> {
    let name = utf8_name(path)?;
    let processing = cfg.processing_dir();
    fs::create_dir_all(&processing)
        .map_err(|e| FileDropError::io("create directory", &processing, e))?;
    let target = processing.join(&name);
    if exists(&target).map_err(|e| FileDropError::io("inspect", &target, e))? {
        return Err(FileDropError::AlreadyProcessing {
            name,
            processing_dir: processing,
        });
    }
    fs::rename(path, &target).map_err(|e| FileDropError::io("move into processing/", path, e))?;
    if let Some(marker) = cfg.marker_path(path) {
        match fs::remove_file(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // The claim has happened; a leftover marker is harmless because a marker older
            // than its data file is ignored.
            Err(e) => tracing::warn!(
                marker = %marker.display(),
                error = %e,
                "claimed file but could not remove its done-marker"
            ),
        }
    }
    fingerprint(&target, name)
}

/// Lists the files a crashed run left in `processing/`, fingerprinted and ordered by mtime,
/// then name. They must be processed again from the start.
pub fn recover(cfg: &FileDropConfig) -> Result<Vec<Claimed>, FileDropError> {
    let processing = cfg.processing_dir();
    let entries = match fs::read_dir(&processing) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(FileDropError::io("list", &processing, e)),
    };
    let mut claimed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| FileDropError::io("list", &processing, e))?;
        let path = entry.path();
        let file_type = entry
            .file_type()
            .map_err(|e| FileDropError::io("inspect", &path, e))?;
        if !file_type.is_file() {
            continue;
        }
        let name = utf8_name(&path)?;
        claimed.push(fingerprint(&path, name)?);
    }
    claimed.sort_by(|a, b| (a.modified, &a.original_name).cmp(&(b.modified, &b.original_name)));
    Ok(claimed)
}

/// Moves a claimed file to `archive/` or `failed/` (creating it) and returns where it went.
/// A name that is taken gets `.1`, `.2`, ... appended.
pub fn finish(
    claimed: &Claimed,
    cfg: &FileDropConfig,
    outcome: Outcome,
) -> Result<PathBuf, FileDropError> {
    if outcome == Outcome::Archived && !cfg.keep_processed {
        fs::remove_file(&claimed.path)
            .map_err(|e| FileDropError::io("delete processed file", &claimed.path, e))?;
        return Ok(claimed.path.clone());
    }
    let dir = match outcome {
        Outcome::Archived => cfg.archive_dir(),
        Outcome::Failed => cfg.failed_dir(),
    };
    fs::create_dir_all(&dir).map_err(|e| FileDropError::io("create directory", &dir, e))?;
    let target = free_name(&dir, &claimed.original_name)?;
    fs::rename(&claimed.path, &target)
        .map_err(|e| FileDropError::io("move out of processing/", &claimed.path, e))?;
    Ok(target)
}

/// The first of `name`, `name.1`, `name.2`, ... that does not exist in `dir`.
fn free_name(dir: &Path, name: &str) -> Result<PathBuf, FileDropError> {
    const MAX_SUFFIX: u32 = 100_000;
    let first = dir.join(name);
    if !exists(&first).map_err(|e| FileDropError::io("inspect", &first, e))? {
        return Ok(first);
    }
    for n in 1..=MAX_SUFFIX {
        let candidate = dir.join(format!("{name}.{n}"));
        if !exists(&candidate).map_err(|e| FileDropError::io("inspect", &candidate, e))? {
            return Ok(candidate);
        }
    }
    Err(FileDropError::io(
        "find a free name in",
        dir,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{MAX_SUFFIX} files named {name}.N already exist"),
        ),
    ))
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn utf8_name(path: &Path) -> Result<String, FileDropError> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| FileDropError::NameNotUtf8 {
            path: path.to_path_buf(),
        })
}

/// Size, mtime and SHA-256 of a file, hashing it in chunks.
fn fingerprint(path: &Path, original_name: String) -> Result<Claimed, FileDropError> {
    let mut file = File::open(path).map_err(|e| FileDropError::io("open", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| FileDropError::io("inspect", path, e))?;
    let modified = meta
        .modified()
        .map_err(|e| FileDropError::io("read the mtime of", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FileDropError::io("read", path, e)),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        hasher.update(chunk);
        size += chunk.len() as u64;
    }
    Ok(Claimed {
        path: path.to_path_buf(),
        original_name,
        size,
        modified,
        sha256: hex::encode(hasher.finalize()),
    })
}
