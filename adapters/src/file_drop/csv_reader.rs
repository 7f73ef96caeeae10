//! Decoding and parsing a claimed CSV file into numbered rows, streamed from disk.
//!
//! Contract:
//! - Memory does not grow with the file. [`CsvReader::open`] reads the file twice, each time
//!   in chunks of 64 KiB: a first pass only checks the encoding, a second decodes and parses
//!   as rows are asked for. At any time the reader holds one chunk of input, the decoded text
//!   of at most one chunk, the parser's 8 KiB buffer, the row being handed out and the next
//!   one. A row longer than 8 MiB (a quote that is never closed makes the rest of the file
//!   one row) is not read: it is a [`RowErrorKind::Malformed`] error and reading stops. Only
//!   [`read_file`] and [`CsvReader::read_all`] collect rows; they are for tests and small
//!   files.
//! - Fatal problems are a [`FileDropError`] from [`CsvReader::open`], found before any row is
//!   handed out: bytes that are not valid UTF-8 when UTF-8 is configured (naming the line of
//!   the first bad byte), a file that is UTF-8 text when windows-1251 or cp866 is configured
//!   (a UTF-8 byte-order mark, or non-ASCII bytes across the whole file that mostly form
//!   valid UTF-8 sequences; naming the line of the first one), a byte the configured encoding
//!   does not define (windows-1251 and cp866 define all 256), or a missing, unreadable,
//!   overlong or ambiguous
//!   header row. A UTF-8 BOM is stripped.
//! - The first non-blank row is the header; header names are trimmed of surrounding
//!   whitespace, cells are not touched. Blank lines are skipped.
//! - Every further row is yielded in order as a [`Row`] whose `line` is the 1-based physical
//!   line the row starts on, or as a [`RowError`] for that line: a wrong number of cells, or
//!   for the last row, fewer cells than the header or an unclosed quote (a truncated file).
//!   A bad row never hides the rows around it.
//! - If reading fails part-way (an I/O error, or bytes that no longer decode because the file
//!   changed after it was opened), the last item is a [`RowErrorKind::Malformed`] error for
//!   the line reached, and iteration ends.
//! - No message carries a cell value.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use encoding_rs::DecoderResult;
use thiserror::Error;

use super::config::{Encoding, FileDropConfig};
use super::error::FileDropError;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes read from the file at a time, in both passes.
const CHUNK_SIZE: usize = 64 * 1024;

/// The smallest buffer for decoded text: room for any one character.
const MIN_DECODED: usize = 16;

/// The longest row (decoded text between two line breaks outside quotes). The parser holds a
/// whole row, so without a limit a quote that is never closed would make the rest of the
/// file one row held in memory.
const MAX_ROW_BYTES: u64 = 8 << 20;

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
    /// The file could not be read any further (the parser gave up, reading failed, or the
    /// bytes stopped decoding); reading stops here.
    #[error("unreadable row: {reason}")]
    Malformed {
        /// The complaint (never the content).
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
/// `cfg`, holding every row in memory: for tests and small files; large files are iterated
/// with [`CsvReader`]. File-level problems are the error; row-level ones are in
/// [`CsvFile::rows`].
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

/// A file whose rows are decoded and parsed one by one as they are asked for.
pub struct CsvReader {
    file: String,
    encoding: Encoding,
    headers: Vec<String>,
    reader: csv::Reader<Tracked>,
    lookahead: Option<Result<(u64, csv::StringRecord), RowError>>,
    finished: bool,
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
    /// Opens the file at `path` with the encoding and delimiter of `cfg`: checks the
    /// encoding of the whole file (one streaming pass) and reads the header row. Rows are
    /// read from disk as the reader is iterated.
    pub fn open(path: &Path, cfg: &FileDropConfig) -> Result<Self, FileDropError> {
        Self::open_chunked(path, cfg, CHUNK_SIZE)
    }

    /// Opens the file at `path` with an explicit encoding and delimiter, for readers (such as
    /// the bank-statement CSV format) whose settings do not come from a [`FileDropConfig`].
    pub fn open_with(
        path: &Path,
        encoding: Encoding,
        delimiter: u8,
    ) -> Result<Self, FileDropError> {
        Self::open_parts(path, encoding, delimiter, CHUNK_SIZE)
    }

    /// [`CsvReader::open`] reading `chunk` bytes at a time.
    pub(crate) fn open_chunked(
        path: &Path,
        cfg: &FileDropConfig,
        chunk: usize,
    ) -> Result<Self, FileDropError> {
        Self::open_parts(path, cfg.encoding, cfg.delimiter_byte(), chunk)
    }

    fn open_parts(
        path: &Path,
        encoding: Encoding,
        delimiter: u8,
        chunk: usize,
    ) -> Result<Self, FileDropError> {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        let io_error = |e| FileDropError::io("read", path, e);
        let mut handle = File::open(path).map_err(io_error)?;
        check_encoding(&file, path, &mut handle, encoding, chunk)?;
        handle.seek(SeekFrom::Start(0)).map_err(io_error)?;
        Self::start(file, Source::File(handle), encoding, delimiter, chunk)
    }

    /// Opens `bytes` already in memory; `file` names the file in messages.
    pub fn from_bytes(
        file: &str,
        bytes: Vec<u8>,
        encoding: Encoding,
        delimiter: u8,
    ) -> Result<Self, FileDropError> {
        Self::from_bytes_chunked(file, bytes, encoding, delimiter, CHUNK_SIZE)
    }

    /// [`CsvReader::from_bytes`] decoding `chunk` bytes at a time.
    pub(crate) fn from_bytes_chunked(
        file: &str,
        bytes: Vec<u8>,
        encoding: Encoding,
        delimiter: u8,
        chunk: usize,
    ) -> Result<Self, FileDropError> {
        check_encoding(
            file,
            Path::new(file),
            &mut bytes.as_slice(),
            encoding,
            chunk,
        )?;
        Self::start(
            file.to_owned(),
            Source::Memory(Cursor::new(bytes)),
            encoding,
            delimiter,
            chunk,
        )
    }

    /// [`CsvReader::from_bytes_chunked`] without the encoding check, so that decoding
    /// failures part-way through can be tested.
    #[cfg(test)]
    pub(crate) fn from_bytes_unchecked(
        file: &str,
        bytes: Vec<u8>,
        encoding: Encoding,
        delimiter: u8,
        chunk: usize,
    ) -> Result<Self, FileDropError> {
        Self::start(
            file.to_owned(),
            Source::Memory(Cursor::new(bytes)),
            encoding,
            delimiter,
            chunk,
        )
    }

    /// Sets up decoding and parsing of `source`, reads the header row and the first row.
    fn start(
        file: String,
        source: Source,
        encoding: Encoding,
        delimiter: u8,
        chunk: usize,
    ) -> Result<Self, FileDropError> {
        let tracked = Tracked {
            decoding: Decoding::new(source, encoding, chunk),
            text: TextTracker::new(delimiter),
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(true)
            .flexible(true)
            .from_reader(tracked);
        let record = match reader.headers().cloned() {
            Ok(record) => record,
            Err(e) => {
                let source = reader.get_ref();
                return Err(if source.text.row_too_long() {
                    header_error(&file, source.text.row_start_line, row_too_long_reason())
                } else if source.decoding.failed {
                    undecodable(&file, source.text.current_line(), encoding)
                } else {
                    header_error(&file, 1, describe_csv_error(&e))
                });
            }
        };
        let start = record.position().map_or(0, csv::Position::byte);
        let line = reader.get_mut().text.line_of(start);
        if record.is_empty() {
            return Err(header_error(
                &file,
                line,
                "no header row: the file is empty".into(),
            ));
        }
        let headers: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
        let mut seen = HashSet::new();
        for name in headers.iter().filter(|h| !h.is_empty()) {
            if !seen.insert(name.as_str()) {
                return Err(header_error(
                    &file,
                    line,
                    format!("column {name} appears twice"),
                ));
            }
        }
        let mut csv_reader = CsvReader {
            file,
            encoding,
            headers,
            reader,
            lookahead: None,
            finished: false,
        };
        csv_reader.lookahead = csv_reader.fetch();
        if csv_reader.lookahead.is_none() && csv_reader.reader.get_ref().text.ends_inside_quotes() {
            return Err(header_error(
                &csv_reader.file,
                line,
                "a quoted header name is never closed".into(),
            ));
        }
        Ok(csv_reader)
    }

    /// The file name used in messages.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The header names, trimmed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// All remaining rows, in file order, collected in memory: for tests and small files.
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

    /// The next raw record with the line it starts on, or `None` at the end (or after
    /// reading stopped).
    fn fetch(&mut self) -> Option<Result<(u64, csv::StringRecord), RowError>> {
        if self.finished {
            return None;
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(true) => {
                let start = record.position().map_or(0, csv::Position::byte);
                let line = self.reader.get_mut().text.line_of(start);
                Some(Ok((line, record)))
            }
            Ok(false) => {
                self.finished = true;
                None
            }
            Err(e) => {
                self.finished = true;
                let source = self.reader.get_mut();
                let (line, reason) = if source.text.row_too_long() {
                    (source.text.row_start_line, row_too_long_reason())
                } else if source.decoding.failed {
                    (
                        source.text.current_line(),
                        undecodable_reason(self.encoding),
                    )
                } else {
                    let line = match e.position() {
                        Some(position) => source.text.line_of(position.byte()),
                        None => source.text.current_line(),
                    };
                    (line, describe_csv_error(&e))
                };
                Some(Err(self.row_error(line, RowErrorKind::Malformed { reason })))
            }
        }
    }

    fn check(&self, line: u64, record: csv::StringRecord, is_last: bool) -> Result<Row, RowError> {
        let expected = self.headers.len();
        let found = record.len();
        if is_last {
            // The last row was read to the end of the file, so the quoting state of the
            // whole text is the state this row ends in.
            if self.reader.get_ref().text.ends_inside_quotes() {
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
        let (line, record) = match current {
            Ok(fetched) => fetched,
            Err(e) => return Some(Err(e)),
        };
        self.lookahead = self.fetch();
        let is_last = self.lookahead.is_none();
        Some(self.check(line, record, is_last))
    }
}

/// Decodes a whole buffer in the configured encoding, refusing bytes that show the encoding
/// is wrong. Holds the whole text: for small inputs; files are streamed by [`CsvReader`].
/// `file` names the file in messages.
pub fn decode(file: &str, mut bytes: Vec<u8>, encoding: Encoding) -> Result<String, FileDropError> {
    check_encoding(
        file,
        Path::new(file),
        &mut bytes.as_slice(),
        encoding,
        CHUNK_SIZE,
    )?;
    // The check has accepted the bytes, so the errors below are not expected.
    match encoding {
        Encoding::Utf8 => {
            if bytes.starts_with(UTF8_BOM) {
                bytes.drain(..UTF8_BOM.len());
            }
            String::from_utf8(bytes).map_err(|e| {
                let at = e.utf8_error().valid_up_to();
                undecodable(file, line_at(e.as_bytes(), at), encoding)
            })
        }
        Encoding::Windows1251 | Encoding::Cp866 => {
            let (text, had_errors) = encoding.codec().decode_without_bom_handling(&bytes);
            if had_errors {
                let line = text
                    .find('\u{FFFD}')
                    .map_or(1, |at| line_at(text.as_bytes(), at));
                return Err(undecodable(file, line, encoding));
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

fn header_error(file: &str, line: u64, reason: String) -> FileDropError {
    FileDropError::Header {
        file: file.to_owned(),
        line,
        reason,
    }
}

/// The error for bytes that are not valid in the configured encoding.
fn undecodable(file: &str, line: u64, encoding: Encoding) -> FileDropError {
    match encoding {
        Encoding::Utf8 => FileDropError::NotUtf8 {
            file: file.to_owned(),
            line,
        },
        Encoding::Windows1251 | Encoding::Cp866 => FileDropError::Undecodable {
            file: file.to_owned(),
            line,
            encoding: encoding.as_str(),
        },
    }
}

fn row_too_long_reason() -> String {
    format!(
        "row is longer than {} MiB; is a quote never closed?",
        MAX_ROW_BYTES >> 20
    )
}

/// The row-level reason for bytes that stopped decoding part-way through.
fn undecodable_reason(encoding: Encoding) -> String {
    match encoding {
        Encoding::Utf8 => "not valid utf-8".to_owned(),
        Encoding::Windows1251 | Encoding::Cp866 => {
            format!("byte not defined in {}", encoding.as_str())
        }
    }
}

/// The first pass: reads `source` to the end in chunks of `chunk` bytes and refuses it if
/// its bytes show the configured encoding is wrong. Holds one chunk (plus the at most three
/// bytes of a character cut by the chunk boundary). A UTF-8 file stops at its first invalid
/// byte; a windows-1251 file is read whole, since the UTF-8 heuristic weighs all of it.
/// `path` names the source in I/O errors.
fn check_encoding<R: Read>(
    file: &str,
    path: &Path,
    source: &mut R,
    encoding: Encoding,
    chunk: usize,
) -> Result<(), FileDropError> {
    let chunk = chunk.max(1);
    let undefined = match encoding {
        Encoding::Utf8 => None,
        Encoding::Windows1251 | Encoding::Cp866 => Some(undefined_bytes(encoding.codec())),
    }
    // Skip the scan when every byte is defined (as it is for windows-1251 and cp866 today).
    .filter(|table| table.contains(&true));
    let mut first_undefined: Option<u64> = None;
    let mut scan = Utf8Scan::default();
    let mut buf = vec![0u8; chunk + MAX_CARRY];
    let mut carry = 0usize;
    loop {
        let room = buf.get_mut(carry..carry + chunk).unwrap_or_default();
        let read = fill(source, room).map_err(|e| FileDropError::io("read", path, e))?;
        let last = read < chunk;
        let end = carry + read;
        let data = buf.get(..end).unwrap_or_default();
        if let (Some(table), None) = (&undefined, first_undefined) {
            let hit = data
                .iter()
                .position(|&b| table.get(usize::from(b)).copied().unwrap_or(false));
            first_undefined = hit.map(|at| scan.line_at(data, at));
        }
        let consumed = scan.feed(data, last);
        match encoding {
            Encoding::Utf8 => {
                if let Some(line) = scan.first_invalid_line {
                    return Err(FileDropError::NotUtf8 {
                        file: file.to_owned(),
                        line,
                    });
                }
            }
            Encoding::Windows1251 | Encoding::Cp866 => {
                if scan.bom {
                    return Err(FileDropError::LooksLikeUtf8 {
                        file: file.to_owned(),
                        line: 1,
                        encoding: encoding.as_str(),
                    });
                }
            }
        }
        if last {
            break;
        }
        // Keep the start of a character cut by the chunk boundary for the next round.
        carry = end.saturating_sub(consumed).min(MAX_CARRY);
        if carry > 0 {
            buf.copy_within(end - carry..end, 0);
        }
    }
    if encoding.is_single_byte() {
        if scan.looks_like_utf8() {
            return Err(FileDropError::LooksLikeUtf8 {
                file: file.to_owned(),
                line: scan.first_multibyte_line.unwrap_or(1),
                encoding: encoding.as_str(),
            });
        }
        if let Some(line) = first_undefined {
            return Err(undecodable(file, line, encoding));
        }
    }
    Ok(())
}

/// The most bytes of an unfinished UTF-8 sequence at the end of a chunk.
const MAX_CARRY: usize = 3;

/// Which bytes a single-byte encoding leaves undefined.
fn undefined_bytes(encoding: &'static encoding_rs::Encoding) -> [bool; 256] {
    let mut table = [false; 256];
    for (byte, undefined) in (0..=u8::MAX).zip(table.iter_mut()) {
        *undefined = encoding
            .decode_without_bom_handling_and_without_replacement(&[byte])
            .is_none();
    }
    table
}

/// Reads into `buf` until it is full or the source ends; returns the bytes read.
fn fill<R: Read + ?Sized>(source: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        match source.read(rest) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// How the bytes of a stream fare when read as UTF-8, gathered chunk by chunk.
#[derive(Debug, Default)]
struct Utf8Scan {
    /// Bytes before the data of the next [`Utf8Scan::feed`].
    offset: u64,
    /// Line feeds before the data of the next [`Utf8Scan::feed`].
    lines: u64,
    /// Valid multi-byte sequences.
    multibyte: u64,
    /// Invalid or incomplete sequences.
    invalid: u64,
    /// The line of the first valid multi-byte sequence.
    first_multibyte_line: Option<u64>,
    /// The line of the first invalid or incomplete sequence.
    first_invalid_line: Option<u64>,
    /// Whether the stream starts with a UTF-8 byte-order mark.
    bom: bool,
}

impl Utf8Scan {
    /// Scans `data`: what the previous call left unconsumed, then new bytes. Returns how
    /// many bytes were consumed; the rest (at most [`MAX_CARRY`] bytes of a sequence the
    /// chunk boundary cut) must start the data of the next call. With `last` everything
    /// is consumed.
    fn feed(&mut self, data: &[u8], last: bool) -> usize {
        let mut pos = 0;
        while let Some(rest) = data.get(pos..).filter(|rest| !rest.is_empty()) {
            match std::str::from_utf8(rest) {
                Ok(_) => {
                    self.count_valid(data, pos, rest);
                    pos = data.len();
                }
                Err(e) => {
                    let good = e.valid_up_to();
                    self.count_valid(data, pos, rest.get(..good).unwrap_or_default());
                    match e.error_len() {
                        Some(len) => {
                            self.note_invalid(data, pos + good);
                            pos += good + len;
                        }
                        None if last => {
                            self.note_invalid(data, pos + good);
                            pos = data.len();
                        }
                        None => {
                            pos += good;
                            break;
                        }
                    }
                }
            }
        }
        let consumed = data.get(..pos).unwrap_or_default();
        self.lines += count_line_feeds(consumed);
        self.offset += pos as u64;
        pos
    }

    /// Counts the valid UTF-8 `valid` found at `at` in `data`.
    fn count_valid(&mut self, data: &[u8], at: usize, valid: &[u8]) {
        if self.offset == 0 && at == 0 && valid.starts_with(UTF8_BOM) {
            self.bom = true;
        }
        // In valid UTF-8 every multi-byte character starts with a byte of 0xC0 or more.
        self.multibyte += valid.iter().filter(|&&b| b >= 0xC0).count() as u64;
        if self.first_multibyte_line.is_none() {
            self.first_multibyte_line = valid
                .iter()
                .position(|b| !b.is_ascii())
                .map(|p| self.line_at(data, at + p));
        }
    }

    fn note_invalid(&mut self, data: &[u8], at: usize) {
        self.invalid += 1;
        if self.first_invalid_line.is_none() {
            self.first_invalid_line = Some(self.line_at(data, at));
        }
    }

    /// The 1-based line of byte `at` of the data being fed.
    fn line_at(&self, data: &[u8], at: usize) -> u64 {
        self.lines + count_line_feeds(data.get(..at).unwrap_or(data)) + 1
    }

    /// Single-byte Cyrillic text almost never forms valid UTF-8 sequences; UTF-8 text does
    /// little else (an incomplete sequence at the end of a cut file is tolerated).
    fn looks_like_utf8(&self) -> bool {
        self.multibyte > 0 && self.multibyte >= self.invalid.saturating_mul(4)
    }
}

/// Where the second pass reads from.
enum Source {
    File(File),
    Memory(Cursor<Vec<u8>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::File(f) => f.read(buf),
            Source::Memory(c) => c.read(buf),
        }
    }
}

/// The UTF-8 text of a byte source in the configured encoding, decoded one chunk at a
/// time: holds one chunk of input and one buffer of decoded text. After bytes that do not
/// decode, it hands out the text before them, then fails.
struct Decoding<R> {
    source: R,
    decoder: encoding_rs::Decoder,
    input: Vec<u8>,
    input_pos: usize,
    input_len: usize,
    source_done: bool,
    output: Vec<u8>,
    output_pos: usize,
    output_len: usize,
    finished: bool,
    failed: bool,
}

impl<R: Read> Decoding<R> {
    fn new(source: R, encoding: Encoding, chunk: usize) -> Self {
        let decoder = match encoding {
            Encoding::Utf8 => encoding_rs::UTF_8.new_decoder_with_bom_removal(),
            Encoding::Windows1251 | Encoding::Cp866 => {
                encoding.codec().new_decoder_without_bom_handling()
            }
        };
        let chunk = chunk.max(1);
        Decoding {
            source,
            decoder,
            input: vec![0; chunk],
            input_pos: 0,
            input_len: 0,
            source_done: false,
            output: vec![0; chunk.max(MIN_DECODED)],
            output_pos: 0,
            output_len: 0,
            finished: false,
            failed: false,
        }
    }

    /// Decodes more text into the (empty) output buffer, reading a chunk if all input
    /// has been decoded.
    fn decode_more(&mut self) -> io::Result<()> {
        let mut read_input = false;
        if self.input_pos >= self.input_len && !self.source_done {
            let read = fill(&mut self.source, &mut self.input)?;
            self.source_done = read < self.input.len();
            self.input_pos = 0;
            self.input_len = read;
            read_input = true;
        }
        let src = self
            .input
            .get(self.input_pos..self.input_len)
            .unwrap_or_default();
        let last = self.source_done;
        let (result, read, written) =
            self.decoder
                .decode_to_utf8_without_replacement(src, &mut self.output, last);
        self.input_pos += read;
        self.output_pos = 0;
        self.output_len = written;
        match result {
            DecoderResult::Malformed(..) => self.failed = true,
            DecoderResult::InputEmpty if last => self.finished = true,
            DecoderResult::InputEmpty | DecoderResult::OutputFull => {
                if read == 0 && written == 0 && !read_input {
                    return Err(io::Error::other("the decoder made no progress"));
                }
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Decoding<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.output_pos >= self.output_len {
            if self.failed {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bytes not valid in the configured encoding",
                ));
            }
            if self.finished || buf.is_empty() {
                return Ok(0);
            }
            self.decode_more()?;
        }
        let available = self
            .output
            .get(self.output_pos..self.output_len)
            .unwrap_or_default();
        let n = available.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.output_pos += n;
        Ok(n)
    }
}

/// The decoded text as the parser reads it, watched for line breaks and quoting.
struct Tracked {
    decoding: Decoding<Source>,
    text: TextTracker,
}

impl Read for Tracked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.text.row_too_long() {
            return Err(io::Error::other("row too long"));
        }
        let n = self.decoding.read(buf)?;
        self.text.feed(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

/// Turns the byte offsets the parser reports into physical line numbers, and knows whether
/// the text read so far ends inside a quoted cell. The parser's own line count is not used:
/// it lags behind on CRLF line ends.
///
/// A record starts right after the line break that ended the one before it (the parser may
/// report the offset of the line breaks still before the record: blank lines, the LF of a
/// CRLF), so the tracker remembers every run of line breaks outside quotes that the parser
/// has been handed but has not yet reported a record after. That is at most what the
/// parser's buffer holds: the memory does not grow with the file.
#[derive(Debug)]
struct TextTracker {
    delimiter: u8,
    /// Bytes seen.
    offset: u64,
    /// Line feeds seen.
    line_feeds: u64,
    quote: QuoteState,
    /// Whether the last byte seen belongs to a run of line breaks outside quotes.
    in_break: bool,
    /// Runs of line breaks outside quotes, oldest first.
    runs: VecDeque<BreakRun>,
    /// Line feeds up to the end of the last run dropped from `runs`.
    dropped_line_feeds: u64,
    /// The offset after the last line break outside quotes: where the unfinished row began.
    row_start: u64,
    /// The 1-based line of `row_start`.
    row_start_line: u64,
}

/// A run of line breaks outside quotes.
#[derive(Debug, Clone, Copy)]
struct BreakRun {
    /// The offset of its first byte.
    start: u64,
    /// Line feeds in the text up to its end (so far, while it goes on).
    line_feeds: u64,
}

impl TextTracker {
    fn new(delimiter: u8) -> Self {
        TextTracker {
            delimiter,
            offset: 0,
            line_feeds: 0,
            quote: QuoteState::CellStart,
            in_break: false,
            runs: VecDeque::new(),
            dropped_line_feeds: 0,
            row_start: 0,
            row_start_line: 1,
        }
    }

    /// Takes in the next bytes handed to the parser.
    fn feed(&mut self, text: &[u8]) {
        for &b in text {
            let line_break = b == b'\n' || b == b'\r';
            if line_break && self.quote != QuoteState::Quoted {
                if !self.in_break {
                    self.runs.push_back(BreakRun {
                        start: self.offset,
                        line_feeds: self.line_feeds,
                    });
                    self.in_break = true;
                }
            } else {
                self.in_break = false;
            }
            if b == b'\n' {
                self.line_feeds += 1;
                if self.in_break
                    && let Some(run) = self.runs.back_mut()
                {
                    run.line_feeds = self.line_feeds;
                }
            }
            self.quote = self.quote.step(b, self.delimiter);
            self.offset += 1;
            if self.in_break {
                self.row_start = self.offset;
                self.row_start_line = self.line_feeds + 1;
            }
        }
    }

    /// Whether the unfinished row has grown past [`MAX_ROW_BYTES`].
    fn row_too_long(&self) -> bool {
        self.offset.saturating_sub(self.row_start) > MAX_ROW_BYTES
    }

    /// The 1-based line of the record the parser reports at byte offset `start`. Records
    /// must be asked for in file order.
    fn line_of(&mut self, start: u64) -> u64 {
        while self.runs.get(1).is_some_and(|next| next.start <= start) {
            if let Some(run) = self.runs.pop_front() {
                self.dropped_line_feeds = run.line_feeds;
            }
        }
        let before = match self.runs.front() {
            // The record starts inside this run or right after it: its first byte comes
            // after all of the run's line feeds.
            Some(run) if run.start <= start => run.line_feeds,
            _ => self.dropped_line_feeds,
        };
        before + 1
    }

    /// The 1-based line of the next byte to be read.
    fn current_line(&self) -> u64 {
        self.line_feeds + 1
    }

    /// Whether the text read so far stops inside a quoted cell.
    fn ends_inside_quotes(&self) -> bool {
        self.quote == QuoteState::Quoted
    }
}

/// Where the text is relative to quoting, following the parser's rules: a quote opens a
/// quoted cell only at the start of a cell and a doubled quote inside one is a literal quote.
/// Every record starts in [`QuoteState::CellStart`], since the line break that ended the one
/// before it was outside quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuoteState {
    CellStart,
    Unquoted,
    Quoted,
    QuoteInQuoted,
}

impl QuoteState {
    fn step(self, b: u8, delimiter: u8) -> Self {
        let boundary = b == delimiter || b == b'\n' || b == b'\r';
        match self {
            QuoteState::CellStart if b == b'"' => QuoteState::Quoted,
            QuoteState::CellStart | QuoteState::Unquoted if boundary => QuoteState::CellStart,
            QuoteState::CellStart | QuoteState::Unquoted => QuoteState::Unquoted,
            QuoteState::Quoted if b == b'"' => QuoteState::QuoteInQuoted,
            QuoteState::Quoted => QuoteState::Quoted,
            QuoteState::QuoteInQuoted if b == b'"' => QuoteState::Quoted,
            QuoteState::QuoteInQuoted if boundary => QuoteState::CellStart,
            QuoteState::QuoteInQuoted => QuoteState::Unquoted,
        }
    }
}

fn count_line_feeds(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// The 1-based line of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> u64 {
    count_line_feeds(bytes.get(..offset).unwrap_or(bytes)) + 1
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
