//! One XML element as JSON, built from pull-parser events without recursion.
//!
//! Rules: child elements become keys (local names, prefixes dropped); a child name seen
//! again turns its key into an array, in document order; attributes become `@name` (local
//! name; namespace declarations are dropped); an element with text only becomes a string;
//! an element with attributes or children and text keeps the text under `#text`; an
//! element with `xsi:nil="true"` becomes `null`. Text is trimmed at both ends once the
//! element closes (never inside, so `A &amp; B` stays `A & B`); whitespace between child
//! elements is dropped.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesRef, BytesStart};
use serde_json::{Map, Value};

/// An element being built.
struct Frame {
    name: String,
    fields: Map<String, Value>,
    text: String,
    nil: bool,
}

/// Builds the JSON of one element from its events.
pub(crate) struct JsonBuilder {
    stack: Vec<Frame>,
}

impl JsonBuilder {
    /// Starts with the root element `start`.
    pub(crate) fn new(start: &BytesStart<'_>) -> Result<JsonBuilder, String> {
        let mut b = JsonBuilder { stack: Vec::new() };
        b.open(start)?;
        Ok(b)
    }

    /// Depth of open elements (1 = only the root).
    pub(crate) fn depth(&self) -> usize {
        self.stack.len()
    }

    /// Local names of the open elements, the root first.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.stack.iter().map(|f| f.name.as_str())
    }

    /// A child element opens.
    pub(crate) fn open(&mut self, start: &BytesStart<'_>) -> Result<(), String> {
        let name = local_name(start)?;
        let mut frame = Frame {
            name,
            fields: Map::new(),
            text: String::new(),
            nil: false,
        };
        for attr in start.attributes().with_checks(true) {
            let attr = attr.map_err(|e| format!("bad attribute in <{}>: {e}", frame.name))?;
            let key = attr.key;
            if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
                continue;
            }
            let local = std::str::from_utf8(key.local_name().into_inner())
                .map_err(|_| format!("an attribute name in <{}> is not utf-8", frame.name))?
                .to_owned();
            let value = attr
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("bad value of attribute {local} in <{}>: {e}", frame.name))?;
            if local == "nil" && key.prefix().is_some() {
                frame.nil = matches!(value.trim(), "true" | "1");
                continue;
            }
            frame
                .fields
                .insert(format!("@{local}"), Value::String(value.into_owned()));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// Text (already decoded) of the innermost open element.
    pub(crate) fn text(&mut self, s: &str) {
        if let Some(top) = self.stack.last_mut() {
            top.text.push_str(s);
        }
    }

    /// An entity or character reference in the text.
    pub(crate) fn reference(&mut self, r: &BytesRef<'_>) -> Result<(), String> {
        match r.resolve_char_ref() {
            Ok(Some(c)) => {
                let mut tmp = [0u8; 4];
                self.text(c.encode_utf8(&mut tmp));
                Ok(())
            }
            Ok(None) => {
                let name = r
                    .decode()
                    .map_err(|_| "a reference is not utf-8".to_owned())?;
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => {
                        self.text(s);
                        Ok(())
                    }
                    None => Err(format!(
                        "unknown entity &{};",
                        name.chars().take(32).collect::<String>()
                    )),
                }
            }
            Err(e) => Err(format!("bad character reference: {e}")),
        }
    }

    /// The innermost element closes; returns the whole value when that was the root.
    pub(crate) fn close(&mut self) -> Option<(String, Value)> {
        let frame = self.stack.pop()?;
        let name = frame.name.clone();
        let value = finish(frame);
        match self.stack.last_mut() {
            Some(parent) => {
                insert_child(&mut parent.fields, name, value);
                None
            }
            None => Some((name, value)),
        }
    }
}

fn finish(frame: Frame) -> Value {
    if frame.nil {
        return Value::Null;
    }
    let text = frame.text.trim();
    if frame.fields.is_empty() {
        return Value::String(text.to_owned());
    }
    let mut fields = frame.fields;
    if !text.is_empty() {
        fields.insert("#text".to_owned(), Value::String(text.to_owned()));
    }
    Value::Object(fields)
}

/// Adds a child; a name seen before becomes an array. (An element's own value is never an
/// array, so an array under a key always means a repeated child.)
fn insert_child(fields: &mut Map<String, Value>, name: String, value: Value) {
    match fields.get_mut(&name) {
        None => {
            fields.insert(name, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// The local name of an element, as UTF-8.
pub(crate) fn local_name(start: &BytesStart<'_>) -> Result<String, String> {
    std::str::from_utf8(start.local_name().into_inner())
        .map(str::to_owned)
        .map_err(|_| "an element name is not valid utf-8".to_owned())
}

/// The value at a `/`-joined path of keys in a converted record; arrays are not descended.
pub fn value_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = value;
    for key in path {
        cur = cur.as_object()?.get(key)?;
    }
    Some(cur)
}
