//! The wire shapes of the screening API (see the module documentation of [`crate::aml`]),
//! the request built from a [`compliance::Subject`], and the reading of an answer.
//!
//! Contract: `Debug` of a request or a match shows no name, date or identifier value; an
//! answer is read strictly (every match complete, scores within 0..1) and a reason for
//! refusing it names the JSON path and the kind of value found, never the value.

use compliance::{EntityKind, IdKind, PartialDate, Subject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::AmlError;

/// The longest caller reference accepted, in characters.
pub const MAX_REFERENCE_CHARS: usize = 128;

/// What kind of subject is screened; `null` on the wire when unknown (the provider then
/// considers every kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    Person,
    Organization,
    Vessel,
    Aircraft,
}

/// The kind of an identifier of the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierType {
    /// Russian taxpayer number.
    Inn,
    /// Russian state registration number of a legal entity.
    Ogrn,
    Passport,
    NationalId,
    TaxId,
    Registration,
    Other,
}

/// One identifier of the subject.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectIdentifier {
    #[serde(rename = "type")]
    pub kind: IdentifierType,
    /// Digits and letters as the bank holds them.
    pub value: String,
    /// ISO 3166-1 alpha-2, lower case, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl std::fmt::Debug for SubjectIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectIdentifier")
            .field("kind", &self.kind)
            .field("value", &"<hidden>")
            .field("country", &self.country)
            .finish()
    }
}

/// Who or what is screened, as the provider receives it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenSubject {
    /// `None` (JSON `null`) when the kind is not known.
    #[serde(rename = "type")]
    pub kind: Option<SubjectType>,
    /// Full names in any script and word order; the first is the main one.
    pub names: Vec<String>,
    /// ISO 8601 at the precision known: `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
    pub birth_date: Option<String>,
    /// ISO 3166-1 alpha-2, lower case.
    pub nationality: Option<String>,
    pub identifiers: Vec<SubjectIdentifier>,
}

impl std::fmt::Debug for ScreenSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds: Vec<IdentifierType> = self.identifiers.iter().map(|i| i.kind).collect();
        f.debug_struct("ScreenSubject")
            .field("kind", &self.kind)
            .field("names", &format_args!("<{} hidden>", self.names.len()))
            .field("birth_date", &self.birth_date.as_ref().map(|_| "<hidden>"))
            .field(
                "nationality",
                &self.nationality.as_ref().map(|_| "<hidden>"),
            )
            .field("identifiers", &kinds)
            .finish()
    }
}

/// The body of `POST /v1/screen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenRequest {
    /// The caller's id of this screening, echoed in the answer and named in errors and log
    /// lines: it must not carry personal data (a party key or a case id does not).
    pub reference: String,
    pub subject: ScreenSubject,
}

impl ScreenRequest {
    /// The request for a subject of the hub's own screening model. Names are trimmed and
    /// blank or repeated ones dropped; a birth date goes at the precision the subject has
    /// (impossible parts are cut off); a nationality or identifier country that is not two
    /// letters is left out rather than failing the whole screening; identifiers with an
    /// empty value are left out. Whether anything is left to screen is checked when sending.
    pub fn from_subject(reference: &str, s: &Subject) -> Self {
        let mut names: Vec<String> = Vec::with_capacity(s.names.len());
        for name in &s.names {
            let name = name.trim();
            if !name.is_empty() && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        let identifiers = s
            .identifiers
            .iter()
            .filter(|i| !i.value.trim().is_empty())
            .map(|i| SubjectIdentifier {
                kind: identifier_type(i.kind),
                value: i.value.trim().to_owned(),
                country: i.country.as_deref().and_then(country_code),
            })
            .collect();
        ScreenRequest {
            reference: reference.to_owned(),
            subject: ScreenSubject {
                kind: s.kind.and_then(subject_type),
                names,
                birth_date: s.birth_date.as_ref().and_then(iso_partial_date),
                nationality: s.nationality.as_deref().and_then(country_code),
                identifiers,
            },
        }
    }

    /// Refuses a request the provider could only reject, before it is sent.
    pub(crate) fn check(&self) -> Result<(), AmlError> {
        let reference_problem = if self.reference.is_empty() {
            Some("reference: must not be empty".to_owned())
        } else if self.reference.chars().count() > MAX_REFERENCE_CHARS {
            Some(format!(
                "reference: longer than {MAX_REFERENCE_CHARS} characters"
            ))
        } else if self.reference.chars().any(char::is_control) {
            Some("reference: contains control characters".to_owned())
        } else {
            None
        };
        if let Some(reason) = reference_problem {
            return Err(AmlError::Request {
                reference: "<invalid>".to_owned(),
                reason,
            });
        }
        let bad = |reason: String| AmlError::Request {
            reference: self.reference.clone(),
            reason,
        };
        if self.subject.names.is_empty() {
            return Err(bad(
                "subject.names: at least one name is required".to_owned()
            ));
        }
        if let Some(i) = self.subject.names.iter().position(|n| n.trim().is_empty()) {
            return Err(bad(format!("subject.names[{i}]: blank")));
        }
        if let Some(i) = self
            .subject
            .identifiers
            .iter()
            .position(|id| id.value.trim().is_empty())
        {
            return Err(bad(format!("subject.identifiers[{i}].value: blank")));
        }
        Ok(())
    }
}

fn subject_type(kind: EntityKind) -> Option<SubjectType> {
    match kind {
        EntityKind::Person => Some(SubjectType::Person),
        EntityKind::Organization => Some(SubjectType::Organization),
        EntityKind::Vessel => Some(SubjectType::Vessel),
        EntityKind::Aircraft => Some(SubjectType::Aircraft),
        EntityKind::Unknown => None,
    }
}

fn identifier_type(kind: IdKind) -> IdentifierType {
    match kind {
        IdKind::Inn => IdentifierType::Inn,
        IdKind::Ogrn => IdentifierType::Ogrn,
        IdKind::Passport => IdentifierType::Passport,
        IdKind::NationalId => IdentifierType::NationalId,
        IdKind::TaxId => IdentifierType::TaxId,
        IdKind::Registration => IdentifierType::Registration,
        IdKind::Other => IdentifierType::Other,
    }
}

/// Two ASCII letters, lower-cased; anything else is not a country code.
fn country_code(value: &str) -> Option<String> {
    let value = value.trim();
    (value.len() == 2 && value.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| value.to_ascii_lowercase())
}

/// `YYYY-MM-DD`, `YYYY-MM` or `YYYY`, dropping the parts that cannot be right.
fn iso_partial_date(d: &PartialDate) -> Option<String> {
    if !(1..=9999).contains(&d.year) {
        return None;
    }
    let year = d.year;
    let Some(month) = d.month.filter(|m| (1..=12).contains(m)) else {
        return Some(format!("{year:04}"));
    };
    match d.day {
        Some(day)
            if chrono::NaiveDate::from_ymd_opt(year, u32::from(month), u32::from(day))
                .is_some() =>
        {
            Some(format!("{year:04}-{month:02}-{day:02}"))
        }
        _ => Some(format!("{year:04}-{month:02}")),
    }
}

/// One match the provider reported, in the shape the hub stores a hit.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderMatch {
    /// The provider's name of the list ("ofac-sdn", "un", "pep", ...).
    pub list: String,
    /// The entry's id in that list.
    pub entry_id: String,
    /// 0..1, the provider's confidence.
    pub score: f64,
    /// The list entry's name that matched.
    pub matched_name: String,
    /// The subject's name that matched.
    pub query_name: String,
    /// The provider's `reasons` array as it came (`factor`, `weight`, `detail` each).
    pub explanation: Value,
}

impl std::fmt::Debug for ProviderMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reasons = self.explanation.as_array().map_or(0, Vec::len);
        f.debug_struct("ProviderMatch")
            .field("list", &self.list)
            .field("entry_id", &self.entry_id)
            .field("score", &self.score)
            .field("matched_name", &"<hidden>")
            .field("query_name", &"<hidden>")
            .field("explanation", &format_args!("<{reasons} reasons hidden>"))
            .finish()
    }
}

/// Reads a `200` answer: every match, in the provider's order. The error is the reason,
/// by JSON path.
pub(crate) fn parse_screen_response(
    bytes: &[u8],
    reference: &str,
) -> Result<Vec<ProviderMatch>, String> {
    let body: Value = serde_json::from_slice(bytes).map_err(|e| not_json(&e, bytes))?;
    let Value::Object(obj) = &body else {
        return Err(format!("expected a json object, found {}", kind_of(&body)));
    };
    match obj.get("reference") {
        None | Some(Value::Null) => {}
        Some(Value::String(r)) if r == reference => {}
        Some(Value::String(_)) => {
            return Err("reference: the answer is for another reference".to_owned());
        }
        Some(other) => {
            return Err(format!(
                "reference: expected a string, found {}",
                kind_of(other)
            ));
        }
    }
    let matches = match obj.get("matches") {
        Some(Value::Array(matches)) => matches,
        None => return Err("matches: missing (an empty array means no matches)".to_owned()),
        Some(other) => {
            return Err(format!(
                "matches: expected an array, found {}",
                kind_of(other)
            ));
        }
    };
    matches
        .iter()
        .enumerate()
        .map(|(i, m)| parse_match(&format!("matches[{i}]"), m))
        .collect()
}

fn parse_match(path: &str, value: &Value) -> Result<ProviderMatch, String> {
    let Value::Object(m) = value else {
        return Err(format!(
            "{path}: expected an object, found {}",
            kind_of(value)
        ));
    };
    let text = |field: &str, allow_empty: bool| -> Result<String, String> {
        match m.get(field) {
            Some(Value::String(s)) if allow_empty || !s.trim().is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(format!("{path}.{field}: empty")),
            None => Err(format!("{path}.{field}: missing")),
            Some(other) => Err(format!(
                "{path}.{field}: expected a string, found {}",
                kind_of(other)
            )),
        }
    };
    let list = text("list", false)?;
    // Some providers number their entries: an integer id is taken as its decimal text.
    let entry_id = match m.get("entry_id") {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => text("entry_id", false)?,
    };
    let score = match m.get("score") {
        Some(Value::Number(n)) => match n.as_f64() {
            Some(s) if (0.0..=1.0).contains(&s) => s,
            _ => return Err(format!("{path}.score: {n} is outside 0..1")),
        },
        None => return Err(format!("{path}.score: missing")),
        Some(other) => {
            return Err(format!(
                "{path}.score: expected a number from 0 to 1, found {}",
                kind_of(other)
            ));
        }
    };
    let matched_name = text("matched_name", false)?;
    let query_name = text("query_name", false)?;
    let explanation = match m.get("reasons") {
        Some(Value::Array(reasons)) => {
            for (i, r) in reasons.iter().enumerate() {
                check_reason(&format!("{path}.reasons[{i}]"), r)?;
            }
            Value::Array(reasons.clone())
        }
        None => return Err(format!("{path}.reasons: missing")),
        Some(other) => {
            return Err(format!(
                "{path}.reasons: expected an array, found {}",
                kind_of(other)
            ));
        }
    };
    Ok(ProviderMatch {
        list,
        entry_id,
        score,
        matched_name,
        query_name,
        explanation,
    })
}

/// A reason needs a factor; its weight and detail are optional but typed when present.
fn check_reason(path: &str, value: &Value) -> Result<(), String> {
    let Value::Object(r) = value else {
        return Err(format!(
            "{path}: expected an object, found {}",
            kind_of(value)
        ));
    };
    match r.get("factor") {
        Some(Value::String(f)) if !f.trim().is_empty() => {}
        Some(Value::String(_)) => return Err(format!("{path}.factor: empty")),
        None => return Err(format!("{path}.factor: missing")),
        Some(other) => {
            return Err(format!(
                "{path}.factor: expected a string, found {}",
                kind_of(other)
            ));
        }
    }
    match r.get("weight") {
        None | Some(Value::Null | Value::Number(_)) => {}
        Some(other) => {
            return Err(format!(
                "{path}.weight: expected a number, found {}",
                kind_of(other)
            ));
        }
    }
    match r.get("detail") {
        None | Some(Value::Null | Value::String(_)) => Ok(()),
        Some(other) => Err(format!(
            "{path}.detail: expected a string, found {}",
            kind_of(other)
        )),
    }
}

/// Reads the `error.code` of an error answer (`{"error": {"code": ...}}`, or the flat
/// `{"error": "<code>"}` some gateways send); the message is never kept.
pub(crate) fn error_code(bytes: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(bytes).ok()?;
    let code = match body.get("error")? {
        Value::Object(e) => e.get("code")?.as_str()?,
        Value::String(code) => code.as_str(),
        _ => return None,
    };
    crate::crm::rest::service::usable_code(code).then(|| code.to_owned())
}

fn not_json(e: &serde_json::Error, bytes: &[u8]) -> String {
    use serde_json::error::Category;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return "not json (the body is empty)".to_owned();
    }
    let what = match e.classify() {
        Category::Eof => "the body ends early",
        Category::Syntax => "syntax error",
        // A value error while reading into `Value` (e.g. a number out of range).
        Category::Data => "unreadable value",
        Category::Io => "read error",
    };
    format!(
        "not json ({what} at line {} column {})",
        e.line(),
        e.column()
    )
}

/// The kind of a JSON value, for messages that must not repeat the value itself.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
