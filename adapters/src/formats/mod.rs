//! Bank file formats of the file drop: streaming readers that turn a statement, report or
//! payment file into canonical records.
//!
//! Contract:
//! - Every reader streams: memory is bounded by the longest line (text formats, at most
//!   [`MAX_LINE_BYTES`]) or the largest element and one entry's details (XML), never by the
//!   file. A 1 GB file is read in a few MB.
//! - A reader is an iterator of `Result<`[`Item`]`, `[`FormatError`]`>`. An [`Item`] is one
//!   canonical [`Record`] (account, statement header, balance, transaction) with its
//!   [`Location`] in the file. A bad record is an error of [`ErrorScope::Record`] and the
//!   records after it still come; a structurally broken file is one error of
//!   [`ErrorScope::File`] and nothing follows it.
//! - Nothing panics on any input; no message carries a value read from the file.
//! - Records come in file order: for each statement its account, its header, its balances
//!   and transactions as the file lists them.
//! - Transaction ids are derived from the file's own references (statement id and entry
//!   number, document number and date), so reading the same file again yields the same ids.
//!
//! Formats: [`csv_statement`] (bank-statement CSV, UTF-8/windows-1251/cp866), [`fixed_width`]
//! (layout in config), [`camt`] (ISO 20022 camt.052/053/054, any version), [`mt940`] (SWIFT
//! MT940/MT942), [`onec`] (1C ClientBankExchange 1.02/1.03). [`FormatConfig`] names one of
//! them with its settings; [`FormatConfig::open`] reads a file from disk.

pub mod camt;
pub mod csv_statement;
mod error;
pub mod fixed_width;
pub mod mt940;
pub mod number;
pub mod onec;
mod text;

#[cfg(test)]
pub(crate) mod tests;

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;

use mapping::{Account, Balance, Statement, Transaction};
use serde::{Deserialize, Serialize};

pub use error::{ErrorScope, FormatError};
pub use text::MAX_LINE_BYTES;

/// Where a record or an error is in its file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Location {
    /// The 1-based line where the record starts (for XML, the line where its element
    /// starts); 0 when the error concerns the whole file.
    pub line: u64,
    /// For XML, the element path with 1-based indexes of repeated elements, such as
    /// `Document/BkToCstmrStmt/Stmt[1]/Ntry[3]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub element: Option<String>,
}

impl Location {
    /// A line of a text file.
    pub fn line(line: u64) -> Self {
        Location {
            line,
            element: None,
        }
    }

    /// An element of an XML file, starting at `line`.
    pub fn element(line: u64, element: impl Into<String>) -> Self {
        Location {
            line,
            element: Some(element.into()),
        }
    }

    /// The whole file (an error found before any line was read).
    pub fn whole_file() -> Self {
        Location::default()
    }

    /// Whether this names no particular place.
    pub fn is_whole_file(&self) -> bool {
        self.line == 0 && self.element.is_none()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.element, self.line) {
            (Some(element), 0) => write!(f, "element {element}"),
            (Some(element), line) => write!(f, "line {line}, element {element}"),
            (None, line) => write!(f, "line {line}"),
        }
    }
}

/// One canonical record read from a bank file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "entity", content = "record", rename_all = "snake_case")]
pub enum Record {
    /// The account a statement (or a 1C account section) is about.
    Account(Account),
    /// A statement, report or notification header.
    Statement(Statement),
    /// A balance the file reports.
    Balance(Balance),
    /// A booked (or, where the file says so, pending) transaction.
    Transaction(Transaction),
}

impl Record {
    /// The entity name used on the bus: `account`, `statement`, `balance`, `transaction`.
    pub fn entity(&self) -> &'static str {
        match self {
            Record::Account(_) => "account",
            Record::Statement(_) => "statement",
            Record::Balance(_) => "balance",
            Record::Transaction(_) => "transaction",
        }
    }

    /// The record's key at the source. A balance has no id of its own: its key is the
    /// account, the balance kind and the date.
    pub fn key(&self) -> String {
        match self {
            Record::Account(a) => a.source_id.clone(),
            Record::Statement(s) => s.source_id.clone(),
            Record::Balance(b) => format!("{}/{}/{}", b.account_source_id, b.kind, b.date),
            Record::Transaction(t) => t.source_id.clone(),
        }
    }
}

/// A record with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Where the record starts.
    pub location: Location,
    /// The record.
    pub record: Record,
}

/// What every reader yields.
pub type ItemResult = Result<Item, FormatError>;

/// The records of one file, whatever its format.
pub struct Records {
    file: String,
    inner: Box<dyn Iterator<Item = ItemResult> + Send>,
}

impl Records {
    /// Wraps a reader.
    pub fn new(file: &str, inner: impl Iterator<Item = ItemResult> + Send + 'static) -> Self {
        Records {
            file: file.to_owned(),
            inner: Box::new(inner),
        }
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Debug for Records {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl Iterator for Records {
    type Item = ItemResult;

    fn next(&mut self) -> Option<ItemResult> {
        self.inner.next()
    }
}

/// Which format a file drop's files are in, with its settings. In TOML:
/// `format = "camt"`, `format = "mt940"`, `format = "one_c"`, `format = "csv_statement"`
/// (with its columns) or `format = "fixed_width"` (with its layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case")]
// Built once per file drop from its config; boxing the CSV columns would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum FormatConfig {
    /// A bank-statement CSV.
    CsvStatement(csv_statement::CsvStatementConfig),
    /// A fixed-width file.
    FixedWidth(fixed_width::FixedWidthLayout),
    /// ISO 20022 camt.052/053/054.
    Camt(camt::CamtConfig),
    /// SWIFT MT940/MT942.
    Mt940(mt940::Mt940Config),
    /// 1C ClientBankExchange.
    OneC(onec::OneCConfig),
}

impl FormatConfig {
    /// Checks the settings without touching any file.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            FormatConfig::CsvStatement(c) => c.validate(),
            FormatConfig::FixedWidth(c) => c.validate(),
            FormatConfig::Camt(_) | FormatConfig::Mt940(_) | FormatConfig::OneC(_) => Ok(()),
        }
    }

    /// Opens the file at `path` and streams its records. A file that cannot be opened (or,
    /// for CSV, whose encoding or header is wrong) is the error.
    pub fn open(&self, path: &Path) -> Result<Records, FormatError> {
        let file = file_name(path);
        let source = || {
            File::open(path)
                .map(|handle| BufReader::with_capacity(text::READ_BUFFER, handle))
                .map_err(|e| {
                    FormatError::file(
                        &file,
                        Location::whole_file(),
                        None,
                        format!("cannot open: {}", e.kind()),
                    )
                })
        };
        self.stream(&file, source, |c| c.open(path))
    }

    /// Streams the records of `bytes` already in memory (tests, fuzzing, small files);
    /// `file` names it in messages.
    pub fn from_bytes(&self, file: &str, bytes: Vec<u8>) -> Result<Records, FormatError> {
        // Exactly one of the two closures below runs and takes the bytes.
        let bytes = std::cell::Cell::new(Some(bytes));
        let take = || bytes.take().unwrap_or_default();
        self.stream(
            file,
            || Ok(Cursor::new(take())),
            |c| c.from_bytes(file, take()),
        )
    }

    /// One reader per format: text and XML formats read `source`; the CSV reader opens its
    /// input itself (it reads it twice, once to check the encoding).
    fn stream<R: BufRead + Send + 'static>(
        &self,
        file: &str,
        source: impl FnOnce() -> Result<R, FormatError>,
        csv: impl FnOnce(
            &csv_statement::CsvStatementConfig,
        ) -> Result<csv_statement::CsvStatementReader, FormatError>,
    ) -> Result<Records, FormatError> {
        Ok(match self {
            FormatConfig::CsvStatement(c) => Records::new(file, csv(c)?),
            FormatConfig::Camt(c) => Records::new(file, camt::CamtReader::new(file, source()?, c)),
            FormatConfig::Mt940(c) => {
                Records::new(file, mt940::Mt940Reader::new(file, source()?, c))
            }
            FormatConfig::OneC(c) => Records::new(file, onec::OneCReader::new(file, source()?, c)),
            FormatConfig::FixedWidth(c) => {
                Records::new(file, fixed_width::FixedWidthReader::new(file, source()?, c))
            }
        })
    }
}

/// The name of `path` as used in messages.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
