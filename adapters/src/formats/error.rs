//! The one error type of the format readers.
//!
//! Contract: every error names the file, the place (line, and for XML the element path with
//! entry indexes), the field when one is at fault, and the reason; none carries a value
//! read from the file, since statements hold customer data. [`ErrorScope`] says whether the
//! reader goes on after it.

use std::fmt;

use super::Location;

/// Whether the reader goes on after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorScope {
    /// One record is bad (quarantine it); the records after it still come.
    Record,
    /// The file is structurally broken, unreadable, or fails an integrity check (a trailer
    /// count or total); this is the last item the reader yields.
    File,
}

/// A record that could not be read, or a file that cannot be read any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// The file name.
    pub file: String,
    /// Where in the file.
    pub location: Location,
    /// The field at fault (a column, tag, key or element path), when one is.
    pub field: Option<String>,
    /// What is wrong, without the value.
    pub reason: String,
    /// Whether reading goes on.
    pub scope: ErrorScope,
}

impl FormatError {
    /// A bad record; reading goes on.
    pub fn record(
        file: &str,
        location: Location,
        field: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        FormatError {
            file: file.to_owned(),
            location,
            field: field.map(str::to_owned),
            reason: reason.into(),
            scope: ErrorScope::Record,
        }
    }

    /// A broken or unreadable file; reading stops.
    pub fn file(
        file: &str,
        location: Location,
        field: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        FormatError {
            scope: ErrorScope::File,
            ..FormatError::record(file, location, field, reason)
        }
    }

    /// Whether reading stopped at this error.
    pub fn is_fatal(&self) -> bool {
        self.scope == ErrorScope::File
    }

    /// The reason with the field, without file and location: for quarantine entries, which
    /// hold those in columns of their own.
    pub fn detail(&self) -> String {
        match &self.field {
            Some(field) => format!("field {field}: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file {}", self.file)?;
        if !self.location.is_whole_file() {
            write!(f, " {}", self.location)?;
        }
        write!(f, ": {}", self.detail())
    }
}

impl std::error::Error for FormatError {}
