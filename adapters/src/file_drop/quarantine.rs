//! The per-file list of rejected rows: `quarantine/<original_name>.quarantine.csv`.
//!
//! Contract: UTF-8, `;`-separated, a header row `line;field;reason`, then one entry per
//! rejected field or row (`field` empty when the whole row was rejected). Entries go to a
//! temporary file that [`QuarantineWriter::finish`] renames into place, so re-processing a
//! file after a crash rewrites its list instead of appending duplicates; a writer dropped
//! without `finish` removes its temporary file. When nothing was recorded, `finish` writes
//! nothing. Reasons say why a value was rejected, never what the value was: callers must not
//! pass values in, and line breaks in a reason are flattened to spaces.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use super::config::FileDropConfig;
use super::csv_reader::RowError;
use super::error::FileDropError;

/// Collects the rejected rows of one file.
pub struct QuarantineWriter {
    tmp_path: PathBuf,
    final_path: PathBuf,
    writer: Option<csv::Writer<File>>,
    entries: u64,
}

impl std::fmt::Debug for QuarantineWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuarantineWriter")
            .field("final_path", &self.final_path)
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl QuarantineWriter {
    /// Starts (or restarts) the quarantine list of the file dropped as `original_name`,
    /// creating `quarantine/` if needed.
    pub fn create(cfg: &FileDropConfig, original_name: &str) -> Result<Self, FileDropError> {
        let dir = cfg.quarantine_dir();
        if original_name.is_empty()
            || original_name.contains('/')
            || original_name.contains('\\')
            || original_name == ".."
        {
            return Err(FileDropError::Quarantine {
                path: dir,
                reason: "the original name must be a plain file name".to_owned(),
            });
        }
        fs::create_dir_all(&dir).map_err(|e| FileDropError::io("create directory", &dir, e))?;
        let final_path = dir.join(format!("{original_name}.quarantine.csv"));
        let tmp_path = dir.join(format!("{original_name}.quarantine.csv.tmp"));
        let file =
            File::create(&tmp_path).map_err(|e| FileDropError::io("create", &tmp_path, e))?;
        let mut writer = csv::WriterBuilder::new()
            .delimiter(b';')
            .has_headers(false)
            .from_writer(file);
        writer
            .write_record(["line", "field", "reason"])
            .map_err(|e| quarantine_error(&tmp_path, &e))?;
        Ok(QuarantineWriter {
            tmp_path,
            final_path,
            writer: Some(writer),
            entries: 0,
        })
    }

    /// Records that `field` of the row starting on `line` was rejected, and why. Pass an
    /// empty `field` when the whole row was rejected. `reason` must not contain the value.
    pub fn add(&mut self, line: u64, field: &str, reason: &str) -> Result<(), FileDropError> {
        let reason = flatten(reason);
        let field = flatten(field);
        let line = line.to_string();
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| FileDropError::Quarantine {
                path: self.tmp_path.clone(),
                reason: "the writer is already closed".to_owned(),
            })?;
        writer
            .write_record([line.as_str(), field.as_str(), reason.as_str()])
            .map_err(|e| quarantine_error(&self.tmp_path, &e))?;
        self.entries += 1;
        Ok(())
    }

    /// Records a row the reader could not take (wrong cell count, truncation).
    pub fn add_row_error(&mut self, error: &RowError) -> Result<(), FileDropError> {
        self.add(error.line, "", &error.kind.to_string())
    }

    /// How many entries were recorded so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Where the list ends up.
    pub fn path(&self) -> &Path {
        &self.final_path
    }

    /// Flushes the list to disk and renames it into place, replacing an earlier list of the
    /// same file. Returns its path, or `None` (and writes nothing) when nothing was recorded.
    pub fn finish(mut self) -> Result<Option<PathBuf>, FileDropError> {
        let Some(writer) = self.writer.take() else {
            return Ok(None);
        };
        let file = writer.into_inner().map_err(|e| FileDropError::Quarantine {
            path: self.tmp_path.clone(),
            reason: format!("flush failed: {}", e.error()),
        })?;
        if self.entries == 0 {
            drop(file);
            remove_quietly(&self.tmp_path);
            return Ok(None);
        }
        file.sync_all()
            .map_err(|e| FileDropError::io("sync", &self.tmp_path, e))?;
        drop(file);
        fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| FileDropError::io("rename into place", &self.tmp_path, e))?;
        Ok(Some(self.final_path.clone()))
    }

    /// Drops the list without writing it.
    pub fn abandon(mut self) {
        self.writer = None;
        remove_quietly(&self.tmp_path);
    }
}

impl Drop for QuarantineWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            remove_quietly(&self.tmp_path);
        }
    }
}

fn remove_quietly(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(
                path = %path.display(),
                error = %e,
                "cannot remove temporary quarantine file"
            );
        }
    }
}

fn flatten(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn quarantine_error(path: &Path, e: &csv::Error) -> FileDropError {
    let reason = match e.kind() {
        csv::ErrorKind::Io(io) => io.to_string(),
        _ => "the csv writer failed".to_owned(),
    };
    FileDropError::Quarantine {
        path: path.to_path_buf(),
        reason,
    }
}
