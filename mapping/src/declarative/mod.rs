//! Declarative mapping of a source record (JSON, XML converted to JSON, a CSV row) to a
//! canonical record, written in the hub's TOML config rather than in code.
//!
//! Contract:
//! - [`RecordMapping`] is the config (`[sources.mapping]`), parsed with serde and
//!   `deny_unknown_fields`. [`RecordMapping::compile`] checks it once against the canonical
//!   model (target fields, their types, transforms, validators, paths, formats) and reports
//!   every problem at once, each with its config path ([`MappingError`]).
//! - [`CompiledMapping::apply`] maps one record. It never panics, returns every field error
//!   of the record (not only the first), and the payload it returns is the canonical struct
//!   as JSON, checked by deserialising it into that struct. [`CompiledMapping::lenient`]
//!   gives a [`LenientMapping`] that also returns the payload of a record with errors,
//!   invalid values kept as text, for the data-quality report over raw records.
//! - No error message carries a value read from the record. A full card number never
//!   leaves `apply`: it is masked (`mask_pan`) or tokenised (`tokenize_pan`, keyed
//!   HMAC-SHA256), and a card-number-like run of digits left in any other output field is
//!   masked (free text) or rejected (identifiers); see [`pan`].
//!
//! Modules: [`path`] (the small JSON path language), `transform` (string transforms and
//! validators), `compile` (config → [`CompiledMapping`]), `apply` (record → [`MappedRecord`]),
//! `targets` (the canonical fields each entity accepts).

mod apply;
mod compile;
pub mod pan;
pub mod path;
mod targets;
mod transform;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, Utc};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::envelope::{Entity, Op};

pub use crate::validate::FieldError;
pub use apply::csv_row_to_value;
pub use compile::MIN_PAN_KEY_BYTES;

/// `[sources.mapping]`: how one source record becomes one canonical record.
///
/// ```toml
/// [sources.mapping]
/// entity = "party"
/// key = "$.clientId"
/// version = "$.changeSeq"
/// [sources.mapping.fields]
/// last_name = "$.person.lastName"
/// inn = { path = "$.inn", validate = "inn" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordMapping {
    /// The canonical entity produced: `party`, `account`, `card` or `transaction`.
    pub entity: Entity,
    /// The record's key at the source (required). A path, or a rule with transforms (for
    /// example `{ path = "$.pan", transforms = ["tokenize_pan"] }` when a card is keyed by
    /// its number). Also the canonical `source_id` unless `fields.source_id` is given.
    pub key: FieldRule,
    /// The change version: an integer, or a timestamp (RFC 3339, `YYYY-MM-DD HH:MM:SS` in
    /// `timezone`) turned into epoch milliseconds. Absent: the hub supplies one.
    #[serde(default)]
    pub version: Option<FieldRule>,
    /// When the record changed at the source: RFC 3339, or `YYYY-MM-DD HH:MM:SS` in
    /// `timezone`, or `datetime_format`. Absent: the hub supplies one.
    #[serde(default)]
    pub event_time: Option<FieldRule>,
    /// Offset for timestamps without one: `UTC` (default) or `+03:00`, `-05:00`, ...
    #[serde(default)]
    pub timezone: Option<String>,
    /// When the record is a deletion; absent means every record is an upsert.
    #[serde(default)]
    pub op: Option<OpRule>,
    /// Secret reference (`env:NAME`, `file:PATH`) of the key for `tokenize_pan`; required
    /// when any rule uses that transform. Resolved by the caller of [`RecordMapping::compile`].
    #[serde(default)]
    pub pan_key: Option<String>,
    /// Canonical field name (the serde name, for example `last_name`, `addresses.0.text`)
    /// → where its value comes from.
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
}

/// `op = { path = "$.deleted", delete_when = "true" }`: the record is a deletion when the
/// value at `path` equals one of `delete_when` (compared as text, ASCII case-insensitive,
/// trimmed; JSON `true` compares as `true`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpRule {
    /// Path of the deletion marker.
    pub path: String,
    /// The value (or values) meaning "deleted".
    pub delete_when: OneOrMany,
}

/// One text or a list of texts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// A single value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// Where one canonical field's value comes from: a bare path (`"$.person.lastName"`) or a
/// [`FieldSpec`] table.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FieldRule {
    /// Shorthand for `{ path = "..." }`.
    Path(String),
    /// The full rule.
    Spec(Box<FieldSpec>),
}

impl FieldRule {
    /// The rule as a spec (a bare path becomes `{ path = ... }`).
    pub fn to_spec(&self) -> FieldSpec {
        match self {
            FieldRule::Path(p) => FieldSpec {
                path: Some(p.clone()),
                ..FieldSpec::default()
            },
            FieldRule::Spec(s) => (**s).clone(),
        }
    }
}

// Hand-written so that a table keeps the precise errors of `FieldSpec` (unknown key,
// wrong type) instead of serde's "did not match any variant of untagged enum".
impl<'de> Deserialize<'de> for FieldRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RuleVisitor;
        impl<'de> Visitor<'de> for RuleVisitor {
            type Value = FieldRule;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a path such as \"$.a.b\" or a table such as { path = \"$.a\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldRule, E> {
                Ok(FieldRule::Path(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<FieldRule, E> {
                Ok(FieldRule::Path(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<FieldRule, A::Error> {
                FieldSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|s| FieldRule::Spec(Box::new(s)))
            }
        }
        d.deserialize_any(RuleVisitor)
    }
}

/// The full rule of one field. Exactly one source: `path`, `concat` or `value`. Steps, in
/// order: read the value(s), `split`, `transforms`, `map`, `default` when absent,
/// `validate`, then conversion to the field's type (with `date_format` /
/// `datetime_format`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// Path of the value; with `[*]`, every element (list fields only).
    #[serde(default)]
    pub path: Option<String>,
    /// Paths whose non-empty values are joined with `separator`.
    #[serde(default)]
    pub concat: Option<Vec<String>>,
    /// Separator for `concat` (default one space).
    #[serde(default)]
    pub separator: Option<String>,
    /// A constant instead of a path (for example an address kind).
    #[serde(default)]
    pub value: Option<String>,
    /// Split a text into several values at this separator (list fields only), for example
    /// `","` for a cell holding several phone numbers.
    #[serde(default)]
    pub split: Option<String>,
    /// Transform names applied in order: `trim`, `upper`, `lower`, `title_case`,
    /// `digits_only`, `collapse_spaces`, `mask_pan`, `tokenize_pan`, `decimal_to_minor`.
    #[serde(default)]
    pub transforms: Vec<String>,
    /// Lookup table applied after the transforms; a value not in it is an error.
    #[serde(default)]
    pub map: Option<BTreeMap<String, String>>,
    /// Value used when the source has none (absent, null or empty).
    #[serde(default)]
    pub default: Option<String>,
    /// Validator: `inn`, `snils`, `ogrn`, `passport`, `phone`, `email`, `account`, `bic`,
    /// `currency`, `postal_code`, `pan` (validates and masks).
    #[serde(default)]
    pub validate: Option<String>,
    /// chrono format of a date field, for example `%d.%m.%Y`.
    #[serde(default)]
    pub date_format: Option<String>,
    /// chrono format of a timestamp field, for example `%d.%m.%Y %H:%M`; without an
    /// offset in the format, `timezone` applies.
    #[serde(default)]
    pub datetime_format: Option<String>,
    /// The record is an error when this field has no value (canonically required fields
    /// are always required).
    #[serde(default)]
    pub required: bool,
}

/// A problem in a mapping config, found by [`RecordMapping::compile`]. Displays as
/// `fields.inn: unknown transform "innn"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", path_string(.path))]
pub struct MappingError {
    /// Key path inside the mapping section, one element per key, for example
    /// `["fields", "inn"]`. A key may contain dots (`addresses.0.text`).
    pub path: Vec<String>,
    /// What is wrong.
    pub reason: String,
}

impl MappingError {
    pub(crate) fn new(path: &[&str], reason: impl Into<String>) -> Self {
        MappingError {
            path: path.iter().map(|s| s.to_string()).collect(),
            reason: reason.into(),
        }
    }

    /// The path as text: keys joined with `.`, a key holding a dot quoted.
    pub fn path_string(&self) -> String {
        path_string(&self.path)
    }
}

fn path_string(path: &[String]) -> String {
    path.iter()
        .map(|k| {
            if k.contains('.') {
                format!("\"{k}\"")
            } else {
                k.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// One record mapped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MappedRecord {
    /// The canonical entity.
    pub entity: Entity,
    /// Upsert, or delete when the `op` rule says so.
    pub op: Op,
    /// The record's key at the source.
    pub key: String,
    /// The change version, when the mapping has one and the record gives it.
    pub version: Option<i64>,
    /// When the record changed at the source, when the mapping has it.
    pub event_time: Option<DateTime<Utc>>,
    /// The canonical struct (Party, Account, Card, Transaction) as JSON.
    pub payload: serde_json::Value,
}

/// A mapping checked against the canonical model, ready to map records. Cheap to share
/// between threads (`Send + Sync`); compile once per source.
#[derive(Clone)]
pub struct CompiledMapping {
    pub(crate) inner: compile::Plan,
}

impl fmt::Debug for CompiledMapping {
    // The PAN key must never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledMapping")
            .field("entity", &self.inner.entity)
            .field("fields", &self.inner.fields.len())
            .finish_non_exhaustive()
    }
}

impl RecordMapping {
    /// Checks the mapping against the canonical model and prepares it for [`CompiledMapping::apply`].
    /// `secrets` resolves the `pan_key` reference (called only when `tokenize_pan` is used).
    /// Returns every problem at once.
    pub fn compile(
        &self,
        secrets: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<CompiledMapping, Vec<MappingError>> {
        compile::compile(self, secrets).map(|inner| CompiledMapping { inner })
    }
}

impl CompiledMapping {
    /// Maps one record. Returns every field error of the record; an error's `field` is the
    /// canonical field name (`key`, `version`, `event_time`, `op` for those rules).
    pub fn apply(&self, record: &serde_json::Value) -> Result<MappedRecord, Vec<FieldError>> {
        apply::apply(&self.inner, record)
    }

    /// The record's key as [`CompiledMapping::apply`] would produce it, or `None` when the
    /// record has none (or an unusable one): for naming a record in error reports.
    pub fn key_of(&self, record: &serde_json::Value) -> Option<String> {
        apply::key_of(&self.inner, record)
    }

    /// The entity this mapping produces.
    pub fn entity(&self) -> Entity {
        self.inner.entity
    }

    /// Fixes "today" for the birth-date check (not in the future); by default the UTC date
    /// at the time of each `apply`. For tests and reproducible runs.
    pub fn with_today(mut self, today: chrono::NaiveDate) -> Self {
        self.inner.today = Some(today);
        self
    }

    /// The same mapping in lenient form, for measuring raw data (the data-quality report).
    pub fn lenient(&self) -> LenientMapping {
        let mut inner = self.inner.clone();
        inner.keep_invalid = true;
        LenientMapping { inner }
    }
}

/// A mapping that keeps what it can of a record with errors (see [`LenientMapping::apply`]).
/// Its output is for measuring, never for publishing.
#[derive(Clone)]
pub struct LenientMapping {
    inner: compile::Plan,
}

impl fmt::Debug for LenientMapping {
    // The PAN key must never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LenientMapping")
            .field("entity", &self.inner.entity)
            .field("fields", &self.inner.fields.len())
            .finish_non_exhaustive()
    }
}

/// A record mapped by [`LenientMapping::apply`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LenientRecord {
    /// The record as far as it maps.
    pub record: MappedRecord,
    /// Every error [`CompiledMapping::apply`] would report; empty when it accepts the record.
    pub errors: Vec<FieldError>,
}

impl LenientMapping {
    /// Maps one record with the same checks as [`CompiledMapping::apply`], but a record
    /// with errors still yields its payload: a value that fails its validator stays as
    /// written (after its transforms; a card number failing `pan` is dropped, and the
    /// card-number guard still applies), a value that fails otherwise (a transform, `map`,
    /// a date) is left out, a missing key is an empty key. `Err` only when even that
    /// payload does not fit the canonical struct.
    pub fn apply(&self, record: &serde_json::Value) -> Result<LenientRecord, Vec<FieldError>> {
        apply::apply_lenient(&self.inner, record)
            .map(|(record, errors)| LenientRecord { record, errors })
    }

    /// The entity this mapping produces.
    pub fn entity(&self) -> Entity {
        self.inner.entity
    }
}

/// The offset of `timezone`: `UTC`, `Z` or `±HH:MM`.
pub(crate) fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: i32 = h.parse().ok()?;
    let m: i32 = m.parse().ok()?;
    if h > 14 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}
