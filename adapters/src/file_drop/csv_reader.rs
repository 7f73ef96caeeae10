//! Decoding and parsing a claimed CSV file into numbered rows.
//!
//! Contract:
//! - The whole file is read and decoded up front; fatal problems are a [`FileDropError`]
//!   from [`CsvReader::open`]: bytes that are not valid UTF-8 when UTF-8 is configured
//!   (naming the line of the first bad byte), a file that is UTF-8 text when windows-1251 is
//!   configured (a UTF-8 byte-order mark, or non-ASCII bytes that mostly form valid UTF-8
//!   sequences), or a missing, unreadable or ambiguous header row. A UTF-8 BOM is stripped.
//! - The first non-blank row is the header; header names are trimmed of surrounding
//!   whitespace, cells are not touched. Blank lines are skipped.
//! - Every further row is yielded in order as a [`Row`] whose `line` is the 1-based physical
//!   line the row starts on, or as a [`RowError`] for that line: a wrong number of cells, or
//!   for the last row, fewer cells than the header or an unclosed quote (a truncated file).
//!   A bad row never hides the rows around it.
//! - No message carries a cell value.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Cursor;
use std::path::Path;

use thiserror::Error;

use super::config::{Encoding, FileDropConfig};
use super::error::FileDropError;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// One data row of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The 1-based physical line of the file where the row starts.
    pub line: u64,
    /// The cells, as many as the header has.
    pub cells: Vec<String>,
}

impl Row {
    /// The cell at `index`, if there is one.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.cells.get(index).map(String::as_str)
    }
}

/// A row that could not be taken; the rows around it are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("file {file} line {line}: {kind}")]
pub struct RowError {
    /// The file name.
    pub file: String,
    /// The 1-based physical line where the row starts.
    pub line: u64,
    /// What is wrong with it.
    pub kind: RowErrorKind,
}

impl RowError {
    /// Why the row was rejected, without file and line (for quarantine entries).
    pub fn reason(&self) -> String {
        self.kind.to_string()
    }
}

/// What is wrong with a row.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RowErrorKind {
    /// A row with more or fewer cells than the header.
    #[error("row has {found} cells, the header has {expected}")]
    WrongCellCount {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// The last row has fewer cells than the header: the file was cut short.
    #[error("last row has {found} of {expected} cells; the file looks truncated")]
    Truncated {
        /// Cells in the header.
        expected: usize,
        /// Cells in the row.
        found: usize,
    },
    /// The last row opens a quoted cell that is never closed: the file was cut short.
    #[error("a quoted cell is never closed; the file looks truncated")]
    UnterminatedQuote,
    /// The parser could not read the row at all; reading stops here.
    #[error("unreadable row: {reason}")]
    Malformed {
        /// The parser's complaint (never the content).
        reason: String,
    },
}

/// A whole file, read and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvFile {
    /// The file name used in messages.
    pub file: String,
    /// The header names, trimmed.
    pub headers: Vec<String>,
    /// Every data row in file order, or the error of that row.
    pub rows: Vec<Result<Row, RowError>>,
}

/// Reads, decodes and parses the whole file at `path` with the encoding and delimiter of
/// `cfg`. File-level problems are the error; row-level ones are in [`CsvFile::rows`].
pub fn read_file(path: &Path, cfg: &FileDropConfig) -> Result<CsvFile, FileDropError> {
    let reader = CsvReader::open(path, cfg)?;
    let file = reader.file().to_owned();
    let headers = reader.headers().to_vec();
    Ok(CsvFile {
        file,
        headers,
        rows: reader.read_all(),
    })
}

/// A decoded file whose rows are read one by one.
pub struct CsvReader {
    file: String,
    delimiter: u8,
    headers: Vec<String>,
    reader: csv::Reader<Cursor<Vec<u8>>>,
    lookahead: Option<Result<csv::StringRecord, RowError>>,
    finished: bool,
    lines: LineCounter,
}

impl std::fmt::Debug for CsvReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvReader")
            .field("file", &self.file)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl CsvReader {
    /// Reads, decodes and opens the file at `path` with the encoding and delimiter of `cfg`.
    pub fn open(path: &Path, cfg: &FileDropConfig) -> Result<Self, FileDropError> {
        let bytes = std::fs::read(path).map_err(|e| FileDropError::io("read", path, e))?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self::from_bytes(&file, bytes, cfg.encoding, cfg.delimiter_byte())
    }

    /// Decodes `bytes` and opens them; `file` names the file in messages.
    pub fn from_bytes(
        file: &str,
        bytes: Vec<u8>,
        encoding: Encoding,
        delimiter: u8,
    ) -> Result<Self, FileDropError> {
        let text = decode(file, bytes, encoding)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(Cursor::new(text.into_bytes()));
        let header_error = |line: u64, reason: String| FileDropError::Header {
            file: file.to_owned(),
            line,
            reason,
        };
        let record = reader
            .headers()
            .map_err(|e| header_error(1, describe_csv_error(&e)))?;
        let start = record.position().map_or(0, csv::Position::byte);
        let record = record.clone();
        let mut lines = LineCounter::default();
        let line = lines.line_of(reader.get_ref().get_ref(), start);
        if record.is_empty() {
            return Err(header_error(
                line,
                "no header row: the file is empty".into(),
            ));
        }
        let headers: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
        let mut seen = HashSet::new();
        for name in headers.iter().filter(|h| !h.is_empty()) {
            if !seen.insert(name.as_str()) {
                return Err(header_error(line, format!("column {name} appears twice")));
            }
        }
        let mut csv_reader = CsvReader {
            file: file.to_owned(),
            delimiter,
            headers,
            reader,
            lookahead: None,
            finished: false,
            lines,
        };
        csv_reader.lookahead = csv_reader.fetch();
        if csv_reader.lookahead.is_none()
            && ends_inside_quotes(csv_reader.raw_from(start), delimiter)
        {
            return Err(header_error(
                line,
                "a quoted header name is never closed".into(),
            ));
        }
        Ok(csv_reader)
    }

    /// The decoded bytes from offset `start` to the end of the file.
    fn raw_from(&self, start: u64) -> &[u8] {
        let data = self.reader.get_ref().get_ref();
        usize::try_from(start)
            .ok()
            .and_then(|s| data.get(s..))
            .unwrap_or_default()
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The header names, trimmed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// All remaining rows, in file order.
    pub fn read_all(self) -> Vec<Result<Row, RowError>> {
        self.collect()
    }

    fn row_error(&self, line: u64, kind: RowErrorKind) -> RowError {
        RowError {
            file: self.file.clone(),
            line,
            kind,
        }
    }

    /// The next raw record, or `None` at the end (or after the parser gave up).
    fn fetch(&mut self) -> Option<Result<csv::StringRecord, RowError>> {
        if self.finished {
            return None;
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(true) => Some(Ok(record)),
            Ok(false) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                let byte = e.position().map_or(0, csv::Position::byte);
                let line = self.lines.line_of(self.reader.get_ref().get_ref(), byte);
                let reason = describe_csv_error(&e);
                Some(Err(self.row_error(line, RowErrorKind::Malformed { reason })))
            }
        }
    }

    fn check(&mut self, record: csv::StringRecord, is_last: bool) -> Result<Row, RowError> {
        let start = record.position().map_or(0, csv::Position::byte);
        let line = self.lines.line_of(self.reader.get_ref().get_ref(), start);
        let expected = self.headers.len();
        let found = record.len();
        if is_last {
            if ends_inside_quotes(self.raw_from(start), self.delimiter) {
                return Err(self.row_error(line, RowErrorKind::UnterminatedQuote));
            }
            if found < expected {
                return Err(self.row_error(line, RowErrorKind::Truncated { expected, found }));
            }
        }
        if found != expected {
            return Err(self.row_error(line, RowErrorKind::WrongCellCount { expected, found }));
        }
        Ok(Row {
            line,
            cells: record.iter().map(str::to_owned).collect(),
        })
    }
}

impl Iterator for CsvReader {
    type Item = Result<Row, RowError>;

    fn next(&mut self) -> Option<Self::Item> {
        let current = match self.lookahead.take() {
            Some(item) => item,
            None => self.fetch()?,
        };
        let record = match current {
            Ok(record) => record,
            Err(e) => return Some(Err(e)),
        };
        self.lookahead = self.fetch();
        let is_last = self.lookahead.is_none();
        Some(self.check(record, is_last))
    }
}

/// Decodes a whole file in the configured encoding, refusing bytes that show the encoding
/// is wrong. `file` names the file in messages.
pub fn decode(file: &str, mut bytes: Vec<u8>, encoding: Encoding) -> Result<String, FileDropError> {
    match encoding {
        Encoding::Utf8 => {
            if bytes.starts_with(UTF8_BOM) {
                bytes.drain(..UTF8_BOM.len());
            }
            String::from_utf8(bytes).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                FileDropError::NotUtf8 {
                    file: file.to_owned(),
                    line: line_at(e.as_bytes(), at),
                }
            })
        }
        Encoding::Windows1251 => {
            if bytes.starts_with(UTF8_BOM) {
                return Err(FileDropError::LooksLikeUtf8 {
                    file: file.to_owned(),
                    line: 1,
                });
            }
            let stats = Utf8Stats::of(&bytes);
            if stats.looks_like_utf8() {
                return Err(FileDropError::LooksLikeUtf8 {
                    file: file.to_owned(),
                    line: stats.first_multibyte.map_or(1, |at| line_at(&bytes, at)),
                });
            }
            let (text, had_errors) = encoding_rs::WINDOWS_1251.decode_without_bom_handling(&bytes);
            if had_errors {
                let line = text
                    .find('\u{FFFD}')
                    .map_or(1, |at| line_at(text.as_bytes(), at));
                return Err(FileDropError::Undecodable {
                    file: file.to_owned(),
                    line,
                    encoding: Encoding::Windows1251.as_str(),
                });
            }
            Ok(match text {
                Cow::Borrowed(_) => {
                    // Pure ASCII: the bytes are the text.
                    String::from_utf8(bytes)
                        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
                }
                Cow::Owned(s) => s,
            })
        }
    }
}

/// How the non-ASCII bytes of a buffer fare when read as UTF-8.
#[derive(Debug, Default)]
struct Utf8Stats {
    /// Valid multi-byte sequences.
    multibyte: usize,
    /// Invalid or incomplete sequences.
    invalid: usize,
    /// Byte offset of the first valid multi-byte sequence.
    first_multibyte: Option<usize>,
}

impl Utf8Stats {
    fn of(bytes: &[u8]) -> Self {
        let mut stats = Utf8Stats::default();
        let mut offset = 0usize;
        let mut rest = bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    stats.count_valid(valid, offset);
                    return stats;
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    let valid = rest
                        .get(..good)
                        .and_then(|b| std::str::from_utf8(b).ok())
                        .unwrap_or_default();
                    stats.count_valid(valid, offset);
                    stats.invalid += 1;
                    let skip = good + e.error_len().unwrap_or(rest.len() - good);
                    offset += skip;
                    rest = rest.get(skip..).unwrap_or_default();
                }
            }
        }
    }

    fn count_valid(&mut self, valid: &str, offset: usize) {
        if self.first_multibyte.is_none() {
            self.first_multibyte = valid
                .bytes()
                .position(|b| !b.is_ascii())
                .map(|p| offset + p);
        }
        self.multibyte += valid.chars().filter(|c| !c.is_ascii()).count();
    }

    /// Single-byte Cyrillic text almost never forms valid UTF-8 sequences; UTF-8 text does
    /// little else (an incomplete sequence at the end of a cut file is tolerated).
    fn looks_like_utf8(&self) -> bool {
        self.multibyte > 0 && self.multibyte >= 4 * self.invalid
    }
}

/// Turns the byte offsets the parser reports into physical line numbers, counting line
/// feeds incrementally (records come in file order). The parser's own line count is not
/// used: it lags behind on CRLF line ends.
#[derive(Debug, Default)]
struct LineCounter {
    offset: usize,
    line: u64,
}

impl LineCounter {
    /// The 1-based line of the record starting at byte `start` of `data`. A record never
    /// starts with a line break, so any the parser left before it are skipped first.
    fn line_of(&mut self, data: &[u8], start: u64) -> u64 {
        let mut start = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
        while matches!(data.get(start), Some(b'\r' | b'\n')) {
            start += 1;
        }
        if start < self.offset {
            *self = LineCounter::default();
        }
        let between = data.get(self.offset..start).unwrap_or_default();
        self.line += between.iter().filter(|&&b| b == b'\n').count() as u64;
        self.offset = start;
        self.line + 1
    }
}

/// The 1-based line of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    let head = bytes.get(..offset).unwrap_or(bytes);
    1 + head.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Whether `raw` (the text of a record up to the end of the file) stops inside a quoted cell,
/// following the parser's rules: a quote opens a quoted cell only at the start of a cell and
/// a doubled quote inside one is a literal quote.
fn ends_inside_quotes(raw: &[u8], delimiter: u8) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        CellStart,
        Unquoted,
        Quoted,
        QuoteInQuoted,
    }
    let mut state = State::CellStart;
    for &b in raw {
        let boundary = b == delimiter || b == b'\n' || b == b'\r';
        state = match state {
            State::CellStart if b == b'"' => State::Quoted,
            State::CellStart | State::Unquoted if boundary => State::CellStart,
            State::CellStart | State::Unquoted => State::Unquoted,
            State::Quoted if b == b'"' => State::QuoteInQuoted,
            State::Quoted => State::Quoted,
            State::QuoteInQuoted if b == b'"' => State::Quoted,
            State::QuoteInQuoted if boundary => State::CellStart,
            State::QuoteInQuoted => State::Unquoted,
        };
    }
    state == State::Quoted
}

/// The parser's complaint without any content.
fn describe_csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => format!("read failed: {}", io.kind()),
        csv::ErrorKind::Utf8 { .. } => "not valid utf-8".to_owned(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} cells, expected {expected_len}"),
        _ => "the csv parser rejected it".to_owned(),
    }
}
