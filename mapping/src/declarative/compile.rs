//! Checking a [`RecordMapping`] against the canonical model and turning it into a [`Plan`].
//!
//! Contract: every problem is collected (never only the first), each under its config key
//! path; nothing here reads a record. A compiled plan needs no further checks at apply time
//! beyond the record's own values.

use std::collections::{BTreeSet, HashMap};

use chrono::format::{Item, StrftimeItems};
use chrono::{FixedOffset, NaiveDate, Offset, Utc};
use hmac::Mac;

use crate::envelope::Entity;

use super::path::JsonPath;
use super::targets::{self, Kind, PanPolicy, Target};
use super::transform::{PanKey, Transform, Validator};
use super::{FieldRule, FieldSpec, MappingError, RecordMapping, parse_offset};

/// The shortest `tokenize_pan` key accepted: HMAC-SHA256 keys shorter than the hash
/// weaken it.
pub const MIN_PAN_KEY_BYTES: usize = 32;

/// A compiled mapping.
#[derive(Clone)]
pub(crate) struct Plan {
    pub entity: Entity,
    pub key: FieldPlan,
    pub version: Option<FieldPlan>,
    pub event_time: Option<FieldPlan>,
    pub op: Option<OpPlan>,
    pub fields: Vec<FieldPlan>,
    /// Offset of timestamps written without one.
    pub offset: FixedOffset,
    pub pan_key: Option<PanKey>,
    /// "Today" for the birth-date check; `None` means the UTC date at apply time.
    pub today: Option<NaiveDate>,
    /// Whether `fields.source_id` is mapped (otherwise the key is the source id).
    pub source_id_mapped: bool,
    /// Lenient mapping (`LenientMapping`): a value failing its validator is kept as
    /// written and a record with errors still yields its payload.
    pub keep_invalid: bool,
}

/// The deletion rule.
#[derive(Debug, Clone)]
pub(crate) struct OpPlan {
    pub path: JsonPath,
    /// Trimmed and ASCII-lowercased.
    pub delete_when: Vec<String>,
}

/// Where a field's value goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    Key,
    Version,
    EventTime,
    Field(&'static Target),
    /// `addresses.N.<part>`; `None` is `addresses.*.<part>`, one address per value.
    Address {
        index: Option<usize>,
        part: &'static Target,
    },
}

/// Where a value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    Path(JsonPath),
    Concat(Vec<JsonPath>, String),
    Const(String),
}

/// One compiled field rule.
#[derive(Debug, Clone)]
pub(crate) struct FieldPlan {
    /// The name errors are reported under (the config key).
    pub name: String,
    pub slot: Slot,
    pub kind: ValueKind,
    pub source: Source,
    pub split: Option<String>,
    pub transforms: Vec<Transform>,
    pub map: Option<HashMap<String, String>>,
    pub default: Option<String>,
    pub validator: Option<Validator>,
    pub date_format: Option<Format>,
    pub datetime_format: Option<Format>,
    pub required: bool,
    pub pan: PanPolicy,
    /// The value is a mask or token (its last card-number step made it safe).
    pub pan_safe: bool,
    /// Whether the value may be several (list fields, `addresses.*`).
    pub many: bool,
}

/// A chrono format, parsed once.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    /// As configured, for messages.
    pub text: String,
    pub items: Vec<Item<'static>>,
    /// The format reads an offset (`%z`, `%+`): no `timezone` applies.
    pub with_offset: bool,
    /// The format reads epoch seconds (`%s`): UTC.
    pub timestamp: bool,
}

impl Format {
    fn parse(text: &str) -> Option<Format> {
        if text.is_empty() {
            return None;
        }
        let items = StrftimeItems::new(text).parse_to_owned().ok()?;
        Some(Format {
            text: text.to_string(),
            with_offset: ["%z", "%:z", "%::z", "%:::z", "%#z", "%+"]
                .iter()
                .any(|z| text.contains(z)),
            timestamp: text.contains("%s"),
            items,
        })
    }
}

/// What the value converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueKind {
    Target(Kind),
    /// An integer, or a timestamp as epoch milliseconds.
    Version,
}

pub(crate) fn compile(
    m: &RecordMapping,
    secrets: &dyn Fn(&str) -> Result<String, String>,
) -> Result<Plan, Vec<MappingError>> {
    let mut errors = Vec::new();
    let table = match targets::fields_of(m.entity) {
        Some(t) => t,
        None => {
            errors.push(MappingError::new(
                &["entity"],
                format!(
                    "entity `{}` cannot be mapped here; expected party, account, card or transaction",
                    m.entity.as_str()
                ),
            ));
            &[]
        }
    };
    let key_pan = if m.entity == Entity::Card {
        PanPolicy::Reject
    } else {
        PanPolicy::Skip
    };
    let key = field_plan(
        "key",
        &["key"],
        &m.key,
        Slot::Key,
        ValueKind::Target(Kind::Id),
        key_pan,
        &mut errors,
    );
    if let Some(k) = &key {
        if k.default.is_some() || matches!(k.source, Source::Const(_)) {
            errors.push(MappingError::new(
                &["key"],
                "the key must come from the record, not from `value` or `default`",
            ));
        }
    }
    let version = m.version.as_ref().and_then(|r| {
        field_plan(
            "version",
            &["version"],
            r,
            Slot::Version,
            ValueKind::Version,
            PanPolicy::Skip,
            &mut errors,
        )
    });
    let event_time = m.event_time.as_ref().and_then(|r| {
        field_plan(
            "event_time",
            &["event_time"],
            r,
            Slot::EventTime,
            ValueKind::Target(Kind::DateTime),
            PanPolicy::Skip,
            &mut errors,
        )
    });
    let offset = match &m.timezone {
        None => FixedOffset::east_opt(0),
        Some(tz) => {
            let o = parse_offset(tz);
            if o.is_none() {
                errors.push(MappingError::new(
                    &["timezone"],
                    "expected UTC or an offset such as +03:00",
                ));
            }
            o
        }
    }
    .unwrap_or_else(|| Utc.fix());

    let op = m.op.as_ref().and_then(|o| {
        let delete_when: Vec<String> = o
            .delete_when
            .as_slice()
            .iter()
            .map(|v| v.trim().to_ascii_lowercase())
            .collect();
        let path = JsonPath::parse(&o.path)
            .map_err(|e| errors.push(MappingError::new(&["op", "path"], format!("bad path: {e}"))))
            .ok();
        if delete_when.is_empty() || delete_when.iter().any(String::is_empty) {
            errors.push(MappingError::new(
                &["op", "delete_when"],
                "needs at least one non-empty value",
            ));
        }
        Some(OpPlan {
            path: path?,
            delete_when,
        })
    });

    let mut fields = Vec::new();
    let mut covered: BTreeSet<String> = BTreeSet::new();
    let mut address_fixed = false;
    let mut address_wild = false;
    for (name, rule) in &m.fields {
        let at = ["fields", name.as_str()];
        let Some((slot, canonical)) = resolve_target(m.entity, table, name) else {
            errors.push(MappingError::new(
                &at,
                format!(
                    "unknown field `{name}` for entity {}; expected one of {}",
                    m.entity.as_str(),
                    field_names(m.entity, table)
                ),
            ));
            continue;
        };
        if !covered.insert(canonical.clone()) {
            errors.push(MappingError::new(
                &at,
                format!("maps `{canonical}`, which another rule already maps"),
            ));
            continue;
        }
        let (kind, pan) = match slot {
            Slot::Field(t) => (t.kind, t.pan),
            Slot::Address { index, part } => {
                match index {
                    Some(_) => address_fixed = true,
                    None => address_wild = true,
                }
                (part.kind, part.pan)
            }
            _ => (Kind::Id, PanPolicy::Skip),
        };
        if let Some(p) = field_plan(
            name,
            &at,
            rule,
            slot,
            ValueKind::Target(kind),
            pan,
            &mut errors,
        ) {
            fields.push(p);
        }
    }
    if address_fixed && address_wild {
        errors.push(MappingError::new(
            &["fields"],
            "use either fixed address indexes (addresses.0.text) or `addresses.*`, not both",
        ));
    }
    for t in table.iter().filter(|t| t.required) {
        if !covered.contains(t.name) {
            errors.push(MappingError::new(
                &["fields"],
                format!(
                    "field `{}` is required for entity {} but has no rule",
                    t.name,
                    m.entity.as_str()
                ),
            ));
        }
    }
    if fields
        .iter()
        .any(|f| matches!(f.slot, Slot::Address { part, .. } if part.name != "text"))
        && !fields
            .iter()
            .any(|f| matches!(f.slot, Slot::Address { part, .. } if part.name == "text"))
    {
        errors.push(MappingError::new(
            &["fields"],
            "address parts are mapped but no address text (addresses.N.text or address)",
        ));
    }

    let uses_token = std::iter::once(&key)
        .flatten()
        .chain(&fields)
        .any(|f| f.transforms.contains(&Transform::TokenizePan));
    let pan_key = if uses_token {
        match &m.pan_key {
            None => {
                errors.push(MappingError::new(
                    &["pan_key"],
                    "tokenize_pan is used, so the mapping needs pan_key (a secret reference such as env:PAN_KEY)",
                ));
                None
            }
            Some(reference) => match secrets(reference) {
                Err(e) => {
                    errors.push(MappingError::new(&["pan_key"], e));
                    None
                }
                Ok(k) if k.len() < MIN_PAN_KEY_BYTES => {
                    errors.push(MappingError::new(
                        &["pan_key"],
                        format!(
                            "the key must have at least {MIN_PAN_KEY_BYTES} bytes, it has {}",
                            k.len()
                        ),
                    ));
                    None
                }
                Ok(k) => match PanKey::new_from_slice(k.as_bytes()) {
                    Ok(mac) => Some(mac),
                    Err(_) => {
                        errors.push(MappingError::new(&["pan_key"], "unusable key"));
                        None
                    }
                },
            },
        }
    } else {
        None
    };

    match key {
        Some(key) if errors.is_empty() => Ok(Plan {
            entity: m.entity,
            key,
            version,
            event_time,
            op,
            source_id_mapped: covered.contains("source_id"),
            fields,
            offset,
            pan_key,
            today: None,
            keep_invalid: false,
        }),
        _ => Err(errors),
    }
}

/// The slot a config key names, with the canonical name it covers (aliases resolved).
fn resolve_target(entity: Entity, table: &'static [Target], name: &str) -> Option<(Slot, String)> {
    let address = |index: Option<usize>, part: &str| {
        let part = targets::ADDRESS_PARTS.iter().find(|t| t.name == part)?;
        let label = match index {
            Some(i) => format!("addresses.{i}.{}", part.name),
            None => format!("addresses.*.{}", part.name),
        };
        Some((Slot::Address { index, part }, label))
    };
    if entity == Entity::Party {
        match name {
            "address" => return address(Some(0), "text"),
            "postal_code" => return address(Some(0), "postal_code"),
            _ => {}
        }
        if let Some(rest) = name.strip_prefix("addresses.") {
            let (index, part) = rest.split_once('.')?;
            let index = match index {
                "*" => None,
                i => {
                    let i: usize = i.parse().ok()?;
                    if i > targets::MAX_ADDRESS_INDEX {
                        return None;
                    }
                    Some(i)
                }
            };
            return address(index, part);
        }
    }
    let t = table.iter().find(|t| t.name == name)?;
    Some((Slot::Field(t), t.name.to_string()))
}

fn field_names(entity: Entity, table: &[Target]) -> String {
    let mut names: Vec<&str> = table.iter().map(|t| t.name).collect();
    if entity == Entity::Party {
        names.extend([
            "addresses.N.kind",
            "addresses.N.text",
            "addresses.N.postal_code",
            "address",
            "postal_code",
        ]);
    }
    names.join(", ")
}

/// Compiles one rule, pushing its problems; `None` when it cannot be used.
fn field_plan(
    name: &str,
    at: &[&str],
    rule: &FieldRule,
    slot: Slot,
    kind: ValueKind,
    pan: PanPolicy,
    errors: &mut Vec<MappingError>,
) -> Option<FieldPlan> {
    let spec: FieldSpec = rule.to_spec();
    let before = errors.len();
    let mut err = |reason: String| errors.push(MappingError::new(at, reason));
    let many = matches!(kind, ValueKind::Target(Kind::IdList))
        || matches!(slot, Slot::Address { index: None, .. });

    let path = |p: &str, err: &mut dyn FnMut(String)| match JsonPath::parse(p) {
        Ok(p) => Some(p),
        Err(e) => {
            err(format!("bad path `{p}`: {e}"));
            None
        }
    };
    let sources = usize::from(spec.path.is_some())
        + usize::from(spec.concat.is_some())
        + usize::from(spec.value.is_some());
    let source = match (&spec.path, &spec.concat, &spec.value) {
        _ if sources > 1 => {
            err("give only one of path, concat or value".into());
            None
        }
        (Some(p), _, _) => {
            let p = path(p, &mut err);
            if let Some(p) = &p
                && p.has_wildcard()
                && !many
            {
                err("the path selects several values ([*]) but the field holds one".into());
            }
            p.map(Source::Path)
        }
        (_, Some(list), _) => {
            if list.is_empty() {
                err("concat needs at least one path".into());
            }
            let mut paths = Vec::new();
            for p in list {
                if let Some(p) = path(p, &mut err) {
                    if p.has_wildcard() {
                        err("concat paths cannot use [*]".into());
                    }
                    paths.push(p);
                }
            }
            Some(Source::Concat(
                paths,
                spec.separator.clone().unwrap_or_else(|| " ".into()),
            ))
        }
        (_, _, Some(v)) => Some(Source::Const(v.clone())),
        (None, None, None) => {
            err("needs one of path, concat or value".into());
            None
        }
    };
    if spec.separator.is_some() && spec.concat.is_none() {
        err("separator applies only with concat".into());
    }
    if spec.split.is_some() && !matches!(kind, ValueKind::Target(Kind::IdList)) {
        err("split applies only to list fields (phones, emails)".into());
    }
    if spec.split.as_deref() == Some("") {
        err("split must not be empty".into());
    }

    let mut transforms = Vec::new();
    for t in &spec.transforms {
        match Transform::from_name(t) {
            Some(t) => transforms.push(t),
            None => err(format!(
                "unknown transform \"{t}\"; expected one of {}",
                Transform::NAMES
            )),
        }
    }

    let canonical_check = match slot {
        Slot::Field(t) | Slot::Address { part: t, .. } => t.check,
        _ => None,
    };
    let validator = match &spec.validate {
        None => canonical_check,
        Some(v) => match Validator::from_name(v) {
            None => {
                err(format!(
                    "unknown validator \"{v}\"; expected one of {}",
                    Validator::NAMES
                ));
                None
            }
            Some(v) => {
                if let Some(c) = canonical_check
                    && c != v
                {
                    err(format!(
                        "this field is always checked as {}; validate = \"{}\" conflicts",
                        c.name(),
                        v.name()
                    ));
                }
                if !matches!(
                    kind,
                    ValueKind::Target(Kind::Text | Kind::Id | Kind::IdList)
                ) {
                    err("validate applies only to text fields".into());
                }
                Some(v)
            }
        },
    };

    let is = |k: Kind| kind == ValueKind::Target(k);
    let date_format = spec.date_format.as_deref().and_then(|f| {
        if !is(Kind::Date) {
            err("date_format applies only to date fields".into());
            return None;
        }
        let parsed = Format::parse(f);
        if parsed.is_none() {
            err(format!("bad date_format `{f}`"));
        }
        parsed
    });
    let datetime_format = spec.datetime_format.as_deref().and_then(|f| {
        if !(is(Kind::DateTime) || kind == ValueKind::Version) {
            err("datetime_format applies only to timestamp fields (and version)".into());
            return None;
        }
        let parsed = Format::parse(f);
        if parsed.is_none() {
            err(format!("bad datetime_format `{f}`"));
        }
        parsed
    });

    if let (ValueKind::Target(Kind::Enum(allowed)), Some(map)) = (kind, &spec.map) {
        for (from, to) in map {
            if !allowed.contains(&to.trim().to_ascii_lowercase().as_str()) {
                err(format!(
                    "map entry `{from}` gives a value that is not one of {}",
                    allowed.join(", ")
                ));
            }
        }
    }
    if spec.required && matches!(slot, Slot::Key | Slot::Version | Slot::EventTime) {
        err("`required` applies only to fields".into());
    }

    let pan_safe =
        transforms.iter().any(|t| t.makes_pan_safe()) || validator == Some(Validator::Pan);

    let required =
        spec.required || matches!(slot, Slot::Key) || matches!(slot, Slot::Field(t) if t.required);
    let plan = FieldPlan {
        name: name.to_string(),
        slot,
        kind,
        source: source?,
        split: spec.split.clone(),
        transforms,
        map: spec
            .map
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        default: spec.default.clone(),
        validator,
        date_format,
        datetime_format,
        required,
        pan,
        pan_safe,
        many,
    };
    // The default goes through the same steps as a record's value, so a bad default is a
    // config problem rather than an error on every record.
    if let Some(d) = &plan.default
        && let Err(reason) = super::apply::check_default(&plan, d)
    {
        errors.push(MappingError::new(at, format!("default: {reason}")));
    }
    if errors.len() > before {
        return None;
    }
    Some(plan)
}
