//! Loaders of sanctions and stop lists into [`ListSnapshot`]s.
//!
//! Contract of every loader (`ofac::load`, `un::load`, `eu::load`, `national::load`,
//! `own::load`):
//! - a failure that makes the whole file unusable (cannot be opened or read, is not XML, lacks
//!   the required columns) is a [`ListError`] naming the file;
//! - a malformed entry (no id, no name, a row that cannot be split into fields, a duplicate id)
//!   becomes a [`LoadProblem`](crate::LoadProblem) with its id and location, is skipped, and the
//!   rest is loaded; rows of side files (OFAC aliases, addresses, comments) are treated the same;
//! - a malformed *field* of an otherwise good entry (an unknown country name, a date that cannot
//!   be read) drops that value only and is reported as a note in [`Loaded::notes`];
//! - `version` is the first 16 hex digits of SHA-256 over the source files (see [`version`]),
//!   `published` the publication time the list states, if any;
//! - the progress callback is called at least every [`PROGRESS_EVERY`] entries and once at the
//!   end.
//!
//! The loaders do no logging: problems carry entry ids and locations, never names, so the
//! caller may log their counts and locations freely.

mod builder;
pub mod country;
mod dates;
mod decode;
pub mod diff;
pub mod eu;
mod ids;
pub mod national;
pub mod ofac;
pub mod own;
mod progress;
mod stoplist;
pub mod un;
pub mod version;
mod xml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::entry::{ListSnapshot, LoadProblem};

pub use diff::{ListDiff, diff};
pub use progress::{PROGRESS_EVERY, Progress};

/// A whole-file failure of a loader. Messages are lowercase and name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not well-formed XML; `offset` is the byte where reading stopped.
    #[error("{}: not well-formed xml at byte {offset}: {reason}", path.display())]
    Xml {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The file is readable but not of the expected shape (wrong root element, missing
    /// columns, ...).
    #[error("{}: {location}: {reason}", path.display())]
    Format {
        path: PathBuf,
        location: String,
        reason: String,
    },
}

impl ListError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ListError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn format(
        path: &Path,
        location: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ListError::Format {
            path: path.to_path_buf(),
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// A loaded list with what the loader noticed beyond the skipped entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub snapshot: ListSnapshot,
    /// Values dropped from entries that were kept (unknown country, unreadable date, ...).
    pub notes: Vec<LoadProblem>,
    /// Addresses of entries, for lists that give them (OFAC `add.csv`); the shared model has
    /// no place for addresses, so they travel here.
    pub addresses: Vec<EntryAddress>,
}

/// One address of a list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryAddress {
    pub entry_id: String,
    /// Street part as the list gives it.
    pub street: Option<String>,
    /// City, state/province and postal code as the list gives them.
    pub city: Option<String>,
    /// ISO 3166-1 alpha-2, lower case, when the country name is known.
    pub country: Option<String>,
}

/// File name of a path for locations ("sdn.csv line 12"), without the directories.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
