//! Streaming extraction of records from a SOAP answer.
//!
//! Contract:
//! - The answer is pulled one XML event at a time through a reused buffer; what is held is
//!   the path of open elements and the one record being converted, so memory is bounded by
//!   the largest record (`max_record_bytes`), not by the answer.
//! - The root must be `Envelope` in a SOAP 1.1 or 1.2 namespace (the one configured, when
//!   given); records are the elements at `Envelope/Body/<record path>`, matched on local
//!   names, in document order; each is converted to JSON by the rules of
//!   [`super::xml_json`].
//! - A `Fault` as the first child of `Body` is handed out as [`ReadError::Fault`] and ends
//!   the answer.
//! - Anything else that is wrong — not well-formed, cut short, a DTD, an unknown entity, an
//!   encoding other than UTF-8, nesting deeper than [`MAX_DEPTH`], an event or a record
//!   larger than `max_record_bytes` — is one [`ReadError::Parse`] naming the byte offset,
//!   line and element path, and ends the answer. It never panics, whatever the input.

use std::io::{self, BufRead, Read};

use quick_xml::events::{BytesStart, Event};
use serde_json::Value;

use super::config::{SoapVersion, split_path};
use super::error::ParseError;
use super::fault::SoapFault;
use super::xml_json::{JsonBuilder, local_name};

/// The deepest element nesting taken.
pub const MAX_DEPTH: usize = 128;

/// One record of an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SoapRecord {
    /// 0-based position among the records of this answer.
    pub index: u64,
    /// Byte offset of the record's start tag.
    pub offset: u64,
    /// 1-based line of the start tag.
    pub line: u64,
    /// The record converted to JSON.
    pub value: Value,
}

/// Why reading stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The service answered with a fault.
    Fault(SoapFault),
    /// The answer is not what it should be.
    Parse(ParseError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Fault(x) => x.fmt(f),
            ReadError::Parse(p) => p.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

/// What is being converted.
enum Building {
    Record { offset: u64, line: u64 },
    Fault,
}

/// The records of one answer, read as they are asked for.
pub struct RecordReader<R: BufRead> {
    xml: quick_xml::Reader<Metered<R>>,
    buf: Vec<u8>,
    expected: Option<SoapVersion>,
    version: Option<SoapVersion>,
    /// Record path below `Body`.
    target: Vec<String>,
    /// Local names of the open elements, from the root.
    path: Vec<String>,
    /// How many of the open elements below `Body` match `target` (a prefix).
    matched: usize,
    in_body: bool,
    body_seen: bool,
    body_children: u64,
    builder: Option<(JsonBuilder, Building)>,
    next_index: u64,
    max_record_bytes: u64,
    /// Stop at the first child of `Body` unless it is a fault.
    probe: bool,
    finished: bool,
    /// Byte offset and line before the event being handled.
    event_offset: u64,
    event_line: u64,
}

impl<R: BufRead> RecordReader<R> {
    /// Reads `source`; records are the elements at `record_path` (local names joined by
    /// `/`) below `Body`. With `expected`, an envelope of the other version is an error.
    pub fn new(
        source: R,
        record_path: &str,
        expected: Option<SoapVersion>,
        max_record_bytes: u64,
    ) -> Result<RecordReader<R>, String> {
        let target = split_path(record_path).map_err(|e| format!("record path {e}"))?;
        Ok(Self::with_target(
            source,
            target,
            expected,
            max_record_bytes,
            false,
        ))
    }

    fn with_target(
        source: R,
        target: Vec<String>,
        expected: Option<SoapVersion>,
        max_record_bytes: u64,
        probe: bool,
    ) -> RecordReader<R> {
        let mut xml = quick_xml::Reader::from_reader(Metered::new(source, max_record_bytes));
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.check_end_names = true;
        config.trim_text(false);
        RecordReader {
            xml,
            buf: Vec::with_capacity(8192),
            expected,
            version: None,
            target,
            path: Vec::new(),
            matched: 0,
            in_body: false,
            body_seen: false,
            body_children: 0,
            builder: None,
            next_index: 0,
            max_record_bytes,
            probe,
            finished: false,
            event_offset: 0,
            event_line: 1,
        }
    }

    /// The envelope's version, once its root was read.
    pub fn version(&self) -> Option<SoapVersion> {
        self.version
    }

    /// Bytes read so far.
    pub fn position(&self) -> u64 {
        self.xml.buffer_position()
    }

    /// The record path, `/`-joined, below `Body`.
    pub fn record_path(&self) -> String {
        self.target.join("/")
    }

    fn error(&mut self, offset: u64, reason: impl Into<String>) -> ReadError {
        let path = self.full_path();
        self.finished = true;
        self.builder = None;
        ReadError::Parse(ParseError {
            offset,
            line: self.xml.get_ref().line_at_consumed(),
            path,
            reason: reason.into(),
        })
    }

    /// Reads events until a record, a fault or the end; `None` at the end.
    fn pump(&mut self) -> Option<Result<SoapRecord, ReadError>> {
        while !self.finished {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            self.xml.get_mut().reset_event();
            self.event_offset = self.xml.buffer_position();
            self.event_line = self.xml.get_ref().line_at_consumed();
            let event = self.xml.read_event_into(&mut buf);
            let out = match event {
                Ok(ev) => self.on_event(ev),
                Err(e) => {
                    let reason = describe_xml_error(&e, self.xml.get_ref(), self.max_record_bytes);
                    let at = self.xml.error_position();
                    Some(Err(self.error(at, reason)))
                }
            };
            self.buf = buf;
            if out.is_some() {
                return out;
            }
        }
        None
    }

    fn on_event(&mut self, event: Event<'_>) -> Option<Result<SoapRecord, ReadError>> {
        let at = self.event_offset;
        let result = match event {
            Event::Start(start) => self.on_start(&start),
            Event::End(_) => return self.on_end(),
            Event::Text(t) => match t.xml10_content() {
                Ok(s) => self.on_text(&s),
                Err(_) => Err("text is not valid utf-8".to_owned()),
            },
            Event::CData(c) => match c.decode() {
                Ok(s) => self.on_text(&s),
                Err(_) => Err("a CDATA section is not valid utf-8".to_owned()),
            },
            Event::GeneralRef(r) => match &mut self.builder {
                Some((b, _)) => b.reference(&r),
                // Outside a record the value is not kept, but it must still be valid.
                None => match r.resolve_char_ref() {
                    Ok(Some(_)) => Ok(()),
                    Ok(None) => {
                        let name = r.decode().map(|n| n.into_owned()).unwrap_or_default();
                        if quick_xml::escape::resolve_predefined_entity(&name).is_some() {
                            Ok(())
                        } else {
                            Err(format!(
                                "unknown entity &{};",
                                name.chars().take(32).collect::<String>()
                            ))
                        }
                    }
                    Err(e) => Err(format!("bad character reference: {e}")),
                },
            },
            Event::Decl(decl) => match decl.encoding() {
                Some(Ok(enc)) => {
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if enc == "utf-8" || enc == "utf8" {
                        Ok(())
                    } else {
                        Err(format!(
                            "the xml declaration names encoding `{}`; only utf-8 is read",
                            enc.chars().take(32).collect::<String>()
                        ))
                    }
                }
                Some(Err(_)) => Err("bad encoding in the xml declaration".to_owned()),
                None => Ok(()),
            },
            Event::DocType(_) => Err("a document type declaration (DTD) is not allowed".to_owned()),
            Event::Eof => return self.on_eof(),
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) => Ok(()),
        };
        match result {
            Ok(()) => self.check_record_size(),
            Err(reason) => Some(Err(self.error(at, reason))),
        }
    }

    fn check_record_size(&mut self) -> Option<Result<SoapRecord, ReadError>> {
        let start = match &self.builder {
            Some((_, Building::Record { offset, .. })) => *offset,
            _ => return None,
        };
        let size = self.xml.buffer_position().saturating_sub(start);
        if size > self.max_record_bytes {
            let limit = self.max_record_bytes;
            let index = self.next_index;
            return Some(Err(self.error(
                start,
                format!("record {index} is larger than {limit} bytes (max_record_bytes)"),
            )));
        }
        None
    }

    fn on_text(&mut self, s: &str) -> Result<(), String> {
        if let Some((b, _)) = &mut self.builder {
            b.text(s);
            return Ok(());
        }
        if self.path.is_empty() && !s.trim().is_empty() {
            return Err("text outside the envelope".to_owned());
        }
        Ok(())
    }

    /// The element path of the innermost open element: `path`, then the elements open
    /// inside the record being converted.
    fn full_path(&self) -> String {
        let mut out = self.path.join("/");
        if let Some((b, _)) = &self.builder {
            for name in b.names().skip(1) {
                out.push('/');
                out.push_str(name);
            }
        }
        out
    }

    fn depth(&self) -> usize {
        let inside = self
            .builder
            .as_ref()
            .map_or(0, |(b, _)| b.depth().saturating_sub(1));
        self.path.len() + inside
    }

    fn on_start(&mut self, start: &BytesStart<'_>) -> Result<(), String> {
        if self.depth() >= MAX_DEPTH {
            return Err(format!("elements nest deeper than {MAX_DEPTH}"));
        }
        // Inside a record the builder keeps the names; `path` stops at the record.
        if let Some((b, _)) = &mut self.builder {
            return b.open(start);
        }
        let name = local_name(start)?;
        let depth = self.path.len() + 1;
        match depth {
            1 => {
                if self.version.is_some() {
                    return Err("a second root element after the envelope".to_owned());
                }
                if name != "Envelope" {
                    return Err(format!(
                        "not a soap envelope: the root element is `{}`",
                        name.chars().take(64).collect::<String>()
                    ));
                }
                let version = envelope_version(start)?;
                if let Some(expected) = self.expected
                    && expected != version
                {
                    return Err(format!(
                        "the answer is a soap {version} envelope, soap {expected} is configured"
                    ));
                }
                self.version = Some(version);
            }
            2 if name == "Body" => {
                if self.body_seen {
                    return Err("a second Body in the envelope".to_owned());
                }
                self.body_seen = true;
                self.in_body = true;
            }
            2 => {}
            _ if self.in_body => {
                let below = depth - 2;
                if below == 1 {
                    self.body_children += 1;
                    if name == "Fault" && self.body_children == 1 {
                        self.path.push(name);
                        self.builder = Some((JsonBuilder::new(start)?, Building::Fault));
                        return Ok(());
                    }
                    if self.probe {
                        self.finished = true;
                    }
                }
                if self.matched == below - 1
                    && self.target.get(below - 1).is_some_and(|t| *t == name)
                {
                    self.matched = below;
                    if self.matched == self.target.len() {
                        self.path.push(name);
                        self.builder = Some((
                            JsonBuilder::new(start)?,
                            Building::Record {
                                offset: self.event_offset,
                                line: self.event_line,
                            },
                        ));
                        return Ok(());
                    }
                }
            }
            _ => {}
        }
        self.path.push(name);
        Ok(())
    }

    fn on_end(&mut self) -> Option<Result<SoapRecord, ReadError>> {
        if let Some((b, _)) = &mut self.builder {
            let done = b.close()?;
            let (_, building) = self.builder.take()?;
            let depth = self.path.len();
            self.path.pop();
            if matches!(building, Building::Record { .. })
                && self.matched == depth.saturating_sub(2)
            {
                self.matched = self.matched.saturating_sub(1);
            }
            return match building {
                Building::Fault => {
                    self.finished = true;
                    let version = self.version.unwrap_or(SoapVersion::V11);
                    Some(Err(ReadError::Fault(SoapFault::from_value(
                        version, &done.1,
                    ))))
                }
                Building::Record { offset, line } => {
                    let index = self.next_index;
                    self.next_index += 1;
                    Some(Ok(SoapRecord {
                        index,
                        offset,
                        line,
                        value: done.1,
                    }))
                }
            };
        }
        let depth = self.path.len();
        self.path.pop();
        if self.in_body {
            if depth == 2 {
                self.in_body = false;
            } else if depth > 2 && self.matched == depth - 2 {
                self.matched -= 1;
            }
        }
        if depth == 1 && !self.body_seen {
            let at = self.event_offset;
            return Some(Err(self.error(at, "the envelope has no Body")));
        }
        None
    }

    fn on_eof(&mut self) -> Option<Result<SoapRecord, ReadError>> {
        let at = self.event_offset;
        if self.version.is_none() {
            return Some(Err(self.error(at, "the answer holds no element")));
        }
        if self.depth() > 0 {
            let open = self.full_path();
            return Some(Err(
                self.error(at, format!("the answer ends inside {open} (cut short)"))
            ));
        }
        self.finished = true;
        None
    }
}

impl<R: BufRead> Iterator for RecordReader<R> {
    type Item = Result<SoapRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.pump()
    }
}

/// Reads an answer up to the first child of `Body`: its fault, if that is a `Fault`;
/// `Ok(None)` when it is anything else (records, or an empty body).
pub fn probe_fault<R: BufRead>(
    source: R,
    expected: Option<SoapVersion>,
    max_fault_bytes: u64,
) -> Result<Option<SoapFault>, ParseError> {
    let mut reader = RecordReader::with_target(source, Vec::new(), expected, max_fault_bytes, true);
    match reader.next() {
        None | Some(Ok(_)) => Ok(None),
        Some(Err(ReadError::Fault(f))) => Ok(Some(f)),
        Some(Err(ReadError::Parse(p))) => Err(p),
    }
}

/// Converts one standalone XML element (with its children) to JSON by the rules of
/// [`super::xml_json`].
pub fn element_to_json(xml: &[u8], max_bytes: u64) -> Result<Value, ParseError> {
    let mut reader = quick_xml::Reader::from_reader(Metered::new(xml, max_bytes));
    let config = reader.config_mut();
    config.expand_empty_elements = true;
    config.check_end_names = true;
    let mut builder: Option<JsonBuilder> = None;
    let mut buf = Vec::new();
    let mut path: Vec<String> = Vec::new();
    loop {
        buf.clear();
        reader.get_mut().reset_event();
        let at = reader.buffer_position();
        let step = match reader.read_event_into(&mut buf) {
            Ok(event) => convert_event(&mut builder, &mut path, event),
            Err(e) => {
                let reason = describe_xml_error(&e, reader.get_ref(), max_bytes);
                return Err(ParseError {
                    offset: reader.error_position(),
                    line: reader.get_ref().line_at_consumed(),
                    path: path.join("/"),
                    reason,
                });
            }
        };
        match step {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(reason) => {
                return Err(ParseError {
                    offset: at,
                    line: reader.get_ref().line_at_consumed(),
                    path: path.join("/"),
                    reason,
                });
            }
        }
    }
}

/// One event of [`element_to_json`]; the value once the element closed.
fn convert_event(
    builder: &mut Option<JsonBuilder>,
    path: &mut Vec<String>,
    event: Event<'_>,
) -> Result<Option<Value>, String> {
    match event {
        Event::Start(s) => {
            if path.len() >= MAX_DEPTH {
                return Err(format!("elements nest deeper than {MAX_DEPTH}"));
            }
            path.push(local_name(&s)?);
            match builder {
                Some(b) => b.open(&s)?,
                None => *builder = Some(JsonBuilder::new(&s)?),
            }
            Ok(None)
        }
        Event::End(_) => {
            path.pop();
            Ok(builder.as_mut().and_then(|b| b.close()).map(|(_, v)| v))
        }
        Event::Text(t) => {
            let s = t
                .xml10_content()
                .map_err(|_| "text is not valid utf-8".to_owned())?;
            match builder {
                Some(b) => b.text(&s),
                None if !s.trim().is_empty() => return Err("text outside the element".to_owned()),
                None => {}
            }
            Ok(None)
        }
        Event::CData(c) => {
            let s = c
                .decode()
                .map_err(|_| "a CDATA section is not valid utf-8".to_owned())?;
            if let Some(b) = builder {
                b.text(&s);
            }
            Ok(None)
        }
        Event::GeneralRef(r) => match builder {
            Some(b) => b.reference(&r).map(|()| None),
            None => Err("a reference outside the element".to_owned()),
        },
        Event::DocType(_) => Err("a document type declaration (DTD) is not allowed".to_owned()),
        Event::Eof => Err(if builder.is_some() {
            "the element is never closed".to_owned()
        } else {
            "no element".to_owned()
        }),
        Event::Empty(_) | Event::Comment(_) | Event::PI(_) | Event::Decl(_) => Ok(None),
    }
}

/// The SOAP version of an `Envelope` start tag, from the namespace its prefix is bound to
/// on the tag itself (the root has no ancestors to inherit one from).
fn envelope_version(start: &BytesStart<'_>) -> Result<SoapVersion, String> {
    let prefix = start.name().prefix().map(|p| p.into_inner().to_vec());
    let wanted: Vec<u8> = match &prefix {
        Some(p) => [b"xmlns:".as_slice(), p].concat(),
        None => b"xmlns".to_vec(),
    };
    for attr in start.attributes().with_checks(true) {
        let attr = attr.map_err(|e| format!("bad attribute on Envelope: {e}"))?;
        if attr.key.as_ref() == wanted.as_slice() {
            let ns = String::from_utf8_lossy(&attr.value).into_owned();
            return SoapVersion::from_namespace(ns.trim()).ok_or_else(|| {
                format!(
                    "the Envelope's namespace `{}` is neither soap 1.1 nor soap 1.2",
                    ns.chars().take(128).collect::<String>()
                )
            });
        }
    }
    Err("the Envelope's namespace is not declared on it".to_owned())
}

/// The parser's complaint in words that carry nothing of the answer's content.
fn describe_xml_error<R>(e: &quick_xml::Error, source: &Metered<R>, limit: u64) -> String {
    use quick_xml::Error as E;
    match e {
        E::Io(_) if source.over_limit => {
            format!("an xml element or text is larger than {limit} bytes (max_record_bytes)")
        }
        E::Io(io) => format!("read failed: {}", io.kind()),
        E::Syntax(s) => format!("malformed xml: {s}"),
        E::IllFormed(i) => format!("malformed xml: {i}"),
        E::InvalidAttr(a) => format!("malformed xml: bad attribute: {a}"),
        E::Encoding(_) => "not valid utf-8".to_owned(),
        E::Escape(_) => "malformed xml: bad escape".to_owned(),
        E::Namespace(_) => "malformed xml: bad namespace".to_owned(),
    }
}

/// The source as the parser reads it: counts line feeds for locations and refuses to give
/// more than `limit` bytes to one event, so one broken or hostile answer cannot take the
/// memory.
struct Metered<R> {
    inner: R,
    line_feeds: u64,
    since_event: u64,
    limit: u64,
    over_limit: bool,
}

impl<R> Metered<R> {
    fn new(inner: R, limit: u64) -> Self {
        Metered {
            inner,
            line_feeds: 0,
            since_event: 0,
            limit,
            over_limit: false,
        }
    }

    fn reset_event(&mut self) {
        self.since_event = 0;
    }

    /// 1-based line of the next byte to be read.
    fn line_at_consumed(&self) -> u64 {
        self.line_feeds + 1
    }
}

impl<R: BufRead> Read for Metered<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Metered<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_event > self.limit {
            self.over_limit = true;
            return Err(io::Error::other("xml event over the size limit"));
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes being consumed are still in the buffer: no IO happens here.
        if let Ok(available) = self.inner.fill_buf() {
            let n = amt.min(available.len());
            self.line_feeds += memchr::memchr_iter(b'\n', &available[..n]).count() as u64;
        }
        self.since_event += amt as u64;
        self.inner.consume(amt);
    }
}
