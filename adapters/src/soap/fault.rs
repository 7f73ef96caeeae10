//! SOAP faults of both versions, and whether trying again can help.
//!
//! - SOAP 1.1: `faultcode` (a QName: `Client`, `Server`, `VersionMismatch`,
//!   `MustUnderstand`, optionally refined with dots, `Client.Authentication`) and
//!   `faultstring`.
//! - SOAP 1.2: `Code/Value` (`Sender`, `Receiver`, `VersionMismatch`, `MustUnderstand`,
//!   `DataEncodingUnknown`) with optional nested `Subcode/Value`, and `Reason/Text` (one
//!   per language; the first is kept).
//!
//! Contract: Client/Sender faults (the request is wrong: bad credentials, bad arguments)
//! and version, must-understand and encoding faults are permanent; Server/Receiver faults
//! (the service failed this time) are transient; a code we do not know is permanent, so an
//! unknown failure is not hammered. Codes are compared on their local part (the prefix
//! differs between services). The fault string is kept cut to [`MAX_REASON_CHARS`]
//! characters with control characters removed; `detail` is never kept (services echo
//! request values there).

use std::fmt;

use serde_json::Value;

use super::config::SoapVersion;
use super::error::ParseError;

/// The longest fault string kept.
pub const MAX_REASON_CHARS: usize = 256;
/// The longest fault code or subcode kept.
const MAX_CODE_CHARS: usize = 128;

/// What kind of fault it is, across both versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultClass {
    /// 1.1 `Client`, 1.2 `Sender`: the request is at fault. Permanent.
    Sender,
    /// 1.1 `Server`, 1.2 `Receiver`: the service failed. Transient.
    Receiver,
    /// The envelope's version is not the service's. Permanent.
    VersionMismatch,
    /// A `mustUnderstand` header was not understood. Permanent.
    MustUnderstand,
    /// 1.2 `DataEncodingUnknown`. Permanent.
    DataEncodingUnknown,
    /// A code outside the specifications, or none. Permanent.
    Unknown,
}

impl FaultClass {
    fn of(code: &str) -> FaultClass {
        let local = code.rsplit(':').next().unwrap_or(code);
        let head = local.split('.').next().unwrap_or(local);
        match head {
            "Client" | "Sender" => FaultClass::Sender,
            "Server" | "Receiver" => FaultClass::Receiver,
            "VersionMismatch" => FaultClass::VersionMismatch,
            "MustUnderstand" => FaultClass::MustUnderstand,
            "DataEncodingUnknown" => FaultClass::DataEncodingUnknown,
            _ => FaultClass::Unknown,
        }
    }
}

/// A fault the service answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapFault {
    /// The version of the envelope it came in.
    pub version: SoapVersion,
    /// The code as sent, local part only (`Client.Authentication`, `Receiver`).
    pub code: String,
    pub class: FaultClass,
    /// SOAP 1.2 subcodes, outermost first, joined by `/`, local parts only.
    pub subcode: Option<String>,
    /// The fault string (1.1) or first reason text (1.2), cleaned and cut.
    pub reason: String,
}

impl SoapFault {
    /// Whether the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        self.class == FaultClass::Receiver
    }

    /// Reads a `Fault` element converted to JSON (see [`super::response`]); both shapes
    /// are tried, whatever the envelope's version, since services mix them up.
    pub fn from_value(version: SoapVersion, fault: &Value) -> SoapFault {
        let field = |k: &str| fault.get(k);
        if field("faultcode").is_some() || field("faultstring").is_some() {
            let code = field("faultcode").map(text_of).unwrap_or_default();
            let code = clean(local_part(&code), MAX_CODE_CHARS);
            return SoapFault {
                version,
                class: FaultClass::of(&code),
                code,
                subcode: None,
                reason: clean(
                    &field("faultstring").map(text_of).unwrap_or_default(),
                    MAX_REASON_CHARS,
                ),
            };
        }
        let code_el = field("Code");
        let code = code_el
            .and_then(|c| c.get("Value"))
            .map(text_of)
            .unwrap_or_default();
        let code = clean(local_part(&code), MAX_CODE_CHARS);
        let mut subcodes = Vec::new();
        let mut sub = code_el.and_then(|c| c.get("Subcode"));
        while let Some(s) = sub {
            if subcodes.len() >= 8 {
                break;
            }
            if let Some(v) = s.get("Value") {
                subcodes.push(clean(local_part(&text_of(v)), MAX_CODE_CHARS));
            }
            sub = s.get("Subcode");
        }
        let reason = field("Reason")
            .and_then(|r| r.get("Text"))
            .map(|t| match t {
                Value::Array(items) => items.first().map(text_of).unwrap_or_default(),
                other => text_of(other),
            })
            .unwrap_or_default();
        SoapFault {
            version,
            class: FaultClass::of(&code),
            code,
            subcode: if subcodes.is_empty() {
                None
            } else {
                Some(subcodes.join("/"))
            },
            reason: clean(&reason, MAX_REASON_CHARS),
        }
    }
}

impl fmt::Display for SoapFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = if self.code.is_empty() {
            "(no code)"
        } else {
            &self.code
        };
        write!(f, "soap {} fault {code}", self.version)?;
        if let Some(s) = &self.subcode {
            write!(f, " (subcode {s})")?;
        }
        write!(
            f,
            ", {}: {}",
            if self.is_transient() {
                "transient"
            } else {
                "permanent"
            },
            if self.reason.is_empty() {
                "(no fault string)"
            } else {
                &self.reason
            }
        )
    }
}

/// Reads a whole answer and returns its fault, if `Body` holds one (a convenience over
/// [`super::response::probe_fault`]).
pub fn parse_fault(answer: &[u8]) -> Result<Option<SoapFault>, ParseError> {
    super::response::probe_fault(answer, None, 1 << 20)
}

/// The text of an element converted to JSON: a string, or its `#text`.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o
            .get("#text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    }
}

fn local_part(qname: &str) -> &str {
    let q = qname.trim();
    q.rsplit(':').next().unwrap_or(q)
}

/// Whitespace runs collapsed, control characters dropped, at most `max` characters.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in s.trim().chars() {
        if count >= max {
            out.push('…');
            break;
        }
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if c.is_control() {
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
            count += 1;
        }
        space = false;
        out.push(c);
        count += 1;
    }
    out
}
