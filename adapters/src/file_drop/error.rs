//! Errors of the file-drop building blocks.
//!
//! Contract: every message says what failed and where (file, line, directory); none carries
//! a cell value, since the files hold customer data.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// A failure to claim, read, quarantine or finish a dropped file. Per-row problems are
/// [`super::RowError`]s instead, so one bad row does not stop a file.
#[derive(Debug, Error)]
pub enum FileDropError {
    /// A configuration value the file drop cannot work with.
    #[error("invalid file-drop config: field {field}: {reason}")]
    Config {
        /// The config field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted ("rename", "read", "create directory", ...).
        op: &'static str,
        /// The path it was attempted on.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file name that is not valid UTF-8 cannot be tracked in the ledger.
    #[error("file name {} is not valid utf-8", path.display())]
    NameNotUtf8 {
        /// The offending path.
        path: PathBuf,
    },
    /// A file of the same name is still in `processing/`; this one waits until it is
    /// finished (or recovered after a crash).
    #[error("file {name}: a file of the same name is still in {}", processing_dir.display())]
    AlreadyProcessing {
        /// The file name.
        name: String,
        /// The processing directory.
        processing_dir: PathBuf,
    },
    /// The file was configured as UTF-8 but is not valid UTF-8.
    #[error("file {file} line {line}: not valid utf-8; is the file windows-1251?")]
    NotUtf8 {
        /// The file name.
        file: String,
        /// The 1-based line of the first invalid byte.
        line: u64,
    },
    /// The file was configured as a single-byte encoding but its bytes are UTF-8 text.
    #[error("file {file} line {line}: looks like utf-8, configured {encoding}")]
    LooksLikeUtf8 {
        /// The file name.
        file: String,
        /// The 1-based line of the first multi-byte UTF-8 sequence (or 1 for a UTF-8 BOM).
        line: u64,
        /// The configured encoding.
        encoding: &'static str,
    },
    /// Bytes that have no meaning in the configured single-byte encoding.
    #[error("file {file} line {line}: byte not defined in {encoding}")]
    Undecodable {
        /// The file name.
        file: String,
        /// The 1-based line of the first undefined byte.
        line: u64,
        /// The configured encoding.
        encoding: &'static str,
    },
    /// The header row is missing or unusable.
    #[error("file {file} line {line}: bad header row: {reason}")]
    Header {
        /// The file name.
        file: String,
        /// The line of the header row (normally 1).
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A quarantine entry could not be written.
    #[error("cannot write quarantine file {}: {reason}", path.display())]
    Quarantine {
        /// The temporary quarantine file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl FileDropError {
    /// Whether the file (or a directory on its way) was not there: for example a file that
    /// another process took between the scan and the claim.
    pub fn is_not_found(&self) -> bool {
        matches!(self, FileDropError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FileDropError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
