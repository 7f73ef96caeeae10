//! Streaming reader of record-shaped XML lists (UN, EU): the file is pulled event by event and
//! only one record (one `INDIVIDUAL`, one `sanctionEntity`) is held as a small tree at a time.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::ListError;

/// One element of a record: name (without namespace prefix), attributes, own text, children.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The attribute's value, trimmed; `None` when absent or blank.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child with this name; `None` when absent or blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.children
            .iter()
            .filter(|c| c.name == name)
            .find_map(|c| c.own_text())
    }

    /// This element's trimmed text; `None` when blank.
    pub fn own_text(&self) -> Option<&str> {
        Some(self.text.trim()).filter(|t| !t.is_empty())
    }
}

/// What the stream yields.
pub(crate) enum Item {
    /// The root element (attributes only), seen once before any record.
    Root(Node),
    /// One complete record element and the byte offset where it starts.
    Record { node: Node, offset: u64 },
}

/// Pulls records: elements named one of `record_names` at depth `record_depth` (the root is
/// depth 1). Everything else outside records is skipped.
pub(crate) struct RecordStream<'p, R: BufRead> {
    reader: Reader<R>,
    path: &'p Path,
    record_depth: usize,
    record_names: &'static [&'static str],
    buf: Vec<u8>,
    /// Open elements from the root down to the current one.
    depth: usize,
    /// The record being built, with its open descendants (the record is `stack[0]`).
    stack: Vec<Node>,
    record_offset: u64,
}

impl<'p, R: BufRead> RecordStream<'p, R> {
    pub(crate) fn new(
        inner: R,
        path: &'p Path,
        record_depth: usize,
        record_names: &'static [&'static str],
    ) -> Self {
        let reader = Reader::from_reader(inner);
        RecordStream {
            reader,
            path,
            record_depth,
            record_names,
            buf: Vec::with_capacity(64 * 1024),
            depth: 0,
            stack: Vec::new(),
            record_offset: 0,
        }
    }

    /// Byte offset of the parser in the file.
    pub(crate) fn position(&self) -> u64 {
        self.reader.buffer_position()
    }

    pub(crate) fn into_inner(self) -> R {
        self.reader.into_inner()
    }

    fn xml_error(&self, reason: impl std::fmt::Display) -> ListError {
        ListError::Xml {
            path: self.path.to_path_buf(),
            offset: self.reader.error_position(),
            reason: reason.to_string().to_lowercase(),
        }
    }

    /// The next root or record; `None` at the end of the document.
    pub(crate) fn next(&mut self) -> Result<Option<Item>, ListError> {
        loop {
            let start_offset = self.reader.buffer_position();
            self.buf.clear();
            let event = match self.reader.read_event_into(&mut self.buf) {
                Ok(e) => e,
                Err(e) => return Err(self.xml_error(e)),
            };
            match event {
                Event::Start(start) => {
                    self.depth += 1;
                    let node = open(&start).map_err(|e| self.xml_error(e))?;
                    if let Some(item) = self.opened(node, start_offset) {
                        return Ok(Some(item));
                    }
                }
                Event::Empty(start) => {
                    self.depth += 1;
                    let node = open(&start).map_err(|e| self.xml_error(e))?;
                    let item = self.opened(node, start_offset);
                    let closed = self.closed();
                    self.depth -= 1;
                    if let Some(item) = item.or(closed) {
                        return Ok(Some(item));
                    }
                }
                Event::End(_) => {
                    let closed = self.closed();
                    self.depth = self.depth.saturating_sub(1);
                    if let Some(item) = closed {
                        return Ok(Some(item));
                    }
                }
                Event::Text(text) => {
                    if let Some(top) = self.stack.last_mut() {
                        let t = text.xml10_content().map_err(|e| ListError::Xml {
                            path: self.path.to_path_buf(),
                            offset: start_offset,
                            reason: e.to_string().to_lowercase(),
                        })?;
                        top.text.push_str(&t);
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = self.stack.last_mut() {
                        let t = data.decode().map_err(|e| ListError::Xml {
                            path: self.path.to_path_buf(),
                            offset: start_offset,
                            reason: e.to_string().to_lowercase(),
                        })?;
                        top.text.push_str(&t);
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(top) = self.stack.last_mut() {
                        let resolved: Cow<'_, str> = match reference.resolve_char_ref() {
                            Ok(Some(c)) => Cow::Owned(c.to_string()),
                            Ok(None) => {
                                let name = reference.decode().unwrap_or_default();
                                match quick_xml::escape::resolve_predefined_entity(&name) {
                                    Some(s) => Cow::Borrowed(s),
                                    // An entity the document would have to declare: kept
                                    // as written rather than dropped.
                                    None => Cow::Owned(format!("&{name};")),
                                }
                            }
                            Err(e) => {
                                return Err(ListError::Xml {
                                    path: self.path.to_path_buf(),
                                    offset: start_offset,
                                    reason: e.to_string().to_lowercase(),
                                });
                            }
                        };
                        top.text.push_str(&resolved);
                    }
                }
                Event::Eof => {
                    if self.depth != 0 {
                        return Err(self.xml_error("unexpected end of file inside an element"));
                    }
                    return Ok(None);
                }
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            }
        }
    }

    /// An element was opened at `self.depth`.
    fn opened(&mut self, node: Node, offset: u64) -> Option<Item> {
        if self.depth == 1 {
            return Some(Item::Root(node));
        }
        if !self.stack.is_empty() {
            self.stack.push(node);
        } else if self.depth == self.record_depth && self.record_names.contains(&node.name.as_str())
        {
            self.record_offset = offset;
            self.stack.push(node);
        }
        None
    }

    /// The element at `self.depth` was closed.
    fn closed(&mut self) -> Option<Item> {
        if self.stack.is_empty() || self.depth < self.record_depth {
            return None;
        }
        let node = self.stack.pop()?;
        match self.stack.last_mut() {
            Some(parent) => {
                parent.children.push(node);
                None
            }
            None => Some(Item::Record {
                node,
                offset: self.record_offset,
            }),
        }
    }
}

fn open(start: &BytesStart<'_>) -> Result<Node, quick_xml::Error> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(quick_xml::Error::InvalidAttr)?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Node {
        name,
        attrs,
        text: String::new(),
        children: Vec::new(),
    })
}
