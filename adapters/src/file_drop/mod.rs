//! The customer file drop: the building blocks of a source that reads files legacy systems
//! leave in a directory.
//!
//! The hub runtime owns the loop, the bus and the ledger; this module owns the file mechanics:
//!
//! 1. [`claim::SettleTracker::scan_ready`] lists the files in the inbox that are complete
//!    (their done-marker is present, or their size and mtime stayed the same for `settle_ms`).
//! 2. [`claim::claim`] moves one of them atomically into `processing/`, removes its
//!    done-marker and fingerprints it (size, mtime, SHA-256).
//! 3. [`csv_reader::CsvReader`] (or [`csv_reader::read_file`] for the whole file) decodes
//!    (UTF-8 or windows-1251, with wrong-encoding detection) and parses it into numbered
//!    rows; a bad row is a per-row error, the other rows still come through.
//! 4. [`quarantine::QuarantineWriter`] records the rows that were rejected (line, field,
//!    reason; never the value) into `quarantine/`.
//! 5. [`claim::finish`] moves the file to `archive/` or `failed/`, never overwriting.
//!
//! After a crash, [`claim::recover`] returns what was left in `processing/`: those files
//! must be processed again from the start (everything downstream is idempotent).
//!
//! Layout under the work directory (the inbox itself unless `work_dir` is set):
//! `processing/`, `archive/`, `failed/`, `quarantine/`. All of them must be on the same
//! filesystem as the inbox, since claiming and finishing are renames.

pub mod claim;
pub mod config;
pub mod csv_reader;
mod error;
pub mod quarantine;

#[cfg(test)]
mod tests;

pub use claim::{Claimed, Outcome, SettleTracker, claim, finish, recover};
pub use config::{Encoding, FileDropConfig};
pub use csv_reader::{CsvFile, CsvReader, Row, RowError, RowErrorKind, read_file};
pub use error::FileDropError;
pub use quarantine::QuarantineWriter;
