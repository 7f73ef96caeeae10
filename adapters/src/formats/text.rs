//! Reading a text file line by line in bounded memory, and decoding a line.
//!
//! Contract: [`Lines`] holds one line at a time (at most [`MAX_LINE_BYTES`]); a longer line
//! is skipped to its end and reported, so memory never grows with the input. Lines end at
//! LF; a CR before it is dropped, so CRLF, LF and mixed files read the same. A UTF-8
//! byte-order mark at the start of the file is dropped.

use std::borrow::Cow;
use std::io::{self, BufRead, Read};

use crate::file_drop::Encoding;

/// The longest line the text readers take (1 MiB); a longer one is an error, since no bank
/// format has lines near that and holding it would let one bad file take the memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The read buffer of the file readers.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Why a line could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LineError {
    /// The line is longer than [`MAX_LINE_BYTES`]; it was skipped.
    TooLong,
    /// Reading failed.
    Io(io::ErrorKind),
}

impl LineError {
    pub(crate) fn reason(&self) -> String {
        match self {
            LineError::TooLong => format!("line is longer than {} MiB", MAX_LINE_BYTES >> 20),
            LineError::Io(kind) => format!("read failed: {kind}"),
        }
    }
}

/// The lines of a byte stream, one at a time.
pub(crate) struct Lines<R> {
    source: R,
    line: Vec<u8>,
    number: u64,
    at_start: bool,
    done: bool,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(source: R) -> Self {
        Lines {
            source,
            line: Vec::new(),
            number: 0,
            at_start: true,
            done: false,
        }
    }

    /// Reads the next line; `Ok(false)` at the end of the input. After an error the reader
    /// is at the start of the next line (a too-long line) or done (a read failure).
    pub(crate) fn advance(&mut self) -> Result<bool, LineError> {
        self.line.clear();
        if self.done {
            return Ok(false);
        }
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let available = match self.source.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    self.number += 1;
                    return Err(LineError::Io(e.kind()));
                }
            };
            if available.is_empty() {
                self.done = true;
                break;
            }
            saw_any = true;
            let (chunk, found_end) = match memchr_lf(available) {
                Some(at) => (available.get(..at).unwrap_or_default(), true),
                None => (available, false),
            };
            if !too_long {
                if self.line.len() + chunk.len() > MAX_LINE_BYTES {
                    too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = chunk.len() + usize::from(found_end);
            self.source.consume(used);
            if found_end {
                break;
            }
        }
        if !saw_any {
            return Ok(false);
        }
        self.number += 1;
        if too_long {
            self.line.clear();
            return Err(LineError::TooLong);
        }
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.at_start {
            self.at_start = false;
            if self.line.starts_with(UTF8_BOM) {
                self.line.drain(..UTF8_BOM.len());
            }
        }
        Ok(true)
    }

    /// The current line, without its line break.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.line
    }

    /// The 1-based number of the current line.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }
}

fn memchr_lf(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', bytes)
}

/// Decodes one line. In a single-byte encoding, a line that is valid UTF-8 with non-ASCII
/// characters is taken as UTF-8: Cyrillic text in windows-1251 or cp866 practically never
/// forms valid UTF-8, and exporters do append UTF-8 lines to single-byte files (one 1C
/// exporter writes its closing `КонецФайла` so). Fails only for invalid UTF-8 when UTF-8 is
/// configured.
pub(crate) fn decode(bytes: &[u8], encoding: Encoding) -> Result<Cow<'_, str>, &'static str> {
    // ASCII reads the same in every supported encoding.
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Cow::Borrowed(text));
    }
    match encoding {
        Encoding::Utf8 => Err("not valid utf-8"),
        Encoding::Windows1251 | Encoding::Cp866 => {
            let (text, _) = encoding.codec().decode_without_bom_handling(bytes);
            Ok(text)
        }
    }
}

/// The head of a stream, and the whole stream again from its start.
pub(crate) struct Sniffed<R> {
    /// Up to the sniffed number of bytes from the start.
    pub(crate) head: Vec<u8>,
    /// The stream from its start: the head, then the rest.
    pub(crate) source: io::Chain<io::Cursor<Vec<u8>>, R>,
    /// A read error met while sniffing; the head is what came before it.
    pub(crate) failure: Option<io::ErrorKind>,
}

/// Reads up to `limit` bytes from the start of `source` for sniffing an encoding
/// declaration, keeping them so the stream can be read whole afterwards.
pub(crate) fn sniff<R: Read>(mut source: R, limit: usize) -> Sniffed<R> {
    let mut head = vec![0u8; limit];
    let mut filled = 0;
    let mut failure = None;
    while let Some(room) = head.get_mut(filled..).filter(|r| !r.is_empty()) {
        match source.read(room) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                failure = Some(e.kind());
                break;
            }
        }
    }
    head.truncate(filled);
    Sniffed {
        head: head.clone(),
        source: io::Cursor::new(head).chain(source),
        failure,
    }
}
