//! Mapping one record with a compiled [`Plan`].
//!
//! Contract: every rule is evaluated even after an error, so a record's errors come all at
//! once; an error names the rule's field and says what is wrong without the value. The
//! payload of an upsert is checked by deserialising it into the canonical struct. A
//! deletion needs only its key: required fields are not enforced and its payload holds
//! whatever the record had.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::format::Parsed;
use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, Offset, SecondsFormat, TimeZone, Utc,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::envelope::{Entity, Op};
use crate::model::{Account, Card, Party, Transaction};
use crate::validate::{self, FieldError};

use super::MappedRecord;
use super::compile::{FieldPlan, Plan, Slot, Source, ValueKind};
use super::pan;
use super::targets::{Kind, PanPolicy};
use super::transform::{Transform, Validator};

/// A CSV row as a JSON object keyed by header name, so CSV sources use the same mappings
/// (`key = "$.client_id"`, or `$["Дата рождения"]` for names with spaces). Cells are
/// strings as read; a header that occurs twice keeps its first cell; cells beyond the
/// header are ignored and a short row lacks the last keys.
pub fn csv_row_to_value(headers: &[String], cells: &[String]) -> Value {
    let mut m = Map::new();
    for (h, c) in headers.iter().zip(cells) {
        if !m.contains_key(h) {
            m.insert(h.clone(), Value::String(c.clone()));
        }
    }
    Value::Object(m)
}

pub(crate) fn apply(plan: &Plan, record: &Value) -> Result<MappedRecord, Vec<FieldError>> {
    match map(plan, record) {
        (Some(m), errors) if errors.is_empty() => Ok(m),
        (_, errors) => Err(errors),
    }
}

/// The record as far as it maps, with every error it has; `Err` only when the payload does
/// not fit the canonical struct even so. For a plan with `keep_invalid`.
pub(crate) fn apply_lenient(
    plan: &Plan,
    record: &Value,
) -> Result<(MappedRecord, Vec<FieldError>), Vec<FieldError>> {
    match map(plan, record) {
        (Some(m), errors) => Ok((m, errors)),
        (None, errors) => Err(errors),
    }
}

/// Maps a record: the mapped record (unless the plan is strict and there are errors, or it
/// does not fit its struct) and every error found.
fn map(plan: &Plan, record: &Value) -> (Option<MappedRecord>, Vec<FieldError>) {
    let mut errors = Vec::new();
    let op = op_of(plan, record);
    let mut key = one(plan, &plan.key, record, &mut errors);
    if key.is_none() && !errors.iter().any(|e| e.field == "key") {
        errors.push(FieldError::new("key", "is required but missing"));
    }
    if plan.keep_invalid && key.is_none() {
        // Reported above; the lenient payload still needs a source id to be a struct.
        key = Some(String::new());
    }
    let version = plan.version.as_ref().and_then(|fp| {
        let v = single(plan, fp, record, &mut errors)?;
        parse_version(&v, fp, plan.offset)
            .map_err(|r| errors.push(FieldError::new("version", r)))
            .ok()
    });
    let event_time = plan.event_time.as_ref().and_then(|fp| {
        let v = single(plan, fp, record, &mut errors)?;
        parse_datetime(&v, fp, plan.offset)
            .map_err(|r| errors.push(FieldError::new("event_time", r)))
            .ok()
    });

    let upsert = op == Op::Upsert;
    // Collected as pairs and built in one go: cheaper than inserting one by one.
    let mut pairs: Vec<(String, Value)> = Vec::with_capacity(plan.fields.len() + 4);
    let mut addresses: Vec<AddressParts> = Vec::new();
    for fp in &plan.fields {
        match fp.slot {
            Slot::Field(t) if t.kind == Kind::IdList => {
                let values = eval(plan, fp, record, &mut errors);
                let mut list: Vec<Value> = Vec::with_capacity(values.len());
                for v in values.into_iter().flatten() {
                    let v = Value::String(v.into_owned());
                    if !list.contains(&v) {
                        list.push(v);
                    }
                }
                if list.is_empty() {
                    missing(fp, upsert, &mut errors);
                } else {
                    pairs.push((t.name.to_string(), Value::Array(list)));
                }
            }
            Slot::Field(t) => match single(plan, fp, record, &mut errors) {
                None => missing(fp, upsert, &mut errors),
                Some(v) => match convert(plan, fp, &v) {
                    Ok(j) => pairs.push((t.name.to_string(), j)),
                    Err(r) => errors.push(FieldError::new(&fp.name, r)),
                },
            },
            Slot::Address { index, part } => {
                let values = eval(plan, fp, record, &mut errors);
                for (i, v) in values.into_iter().enumerate() {
                    let Some(v) = v else { continue };
                    let at = index.unwrap_or(i);
                    if addresses.len() <= at {
                        addresses.resize_with(at + 1, AddressParts::default);
                    }
                    let slot = match part.name {
                        "kind" => &mut addresses[at].kind,
                        "text" => &mut addresses[at].text,
                        _ => &mut addresses[at].postal_code,
                    };
                    *slot = Some(v.into_owned());
                }
            }
            // Key, version and event time are not in `fields`.
            Slot::Key | Slot::Version | Slot::EventTime => {}
        }
    }
    if !addresses.is_empty() {
        pairs.push(("addresses".into(), build_addresses(addresses, &mut errors)));
    }
    if let Some(k) = &key
        && !plan.source_id_mapped
    {
        pairs.push(("source_id".into(), Value::String(k.clone())));
    }
    let mut obj: Map<String, Value> = pairs.into_iter().collect();
    entity_rules(plan.entity, &mut obj, upsert, &mut errors);

    let Some(key) = key else {
        return (None, errors);
    };
    if !errors.is_empty() && !plan.keep_invalid {
        return (None, errors);
    }
    let payload = Value::Object(obj);
    if upsert && let Err(r) = fits(plan.entity, &payload) {
        errors.push(FieldError::new("record", r));
        return (None, errors);
    }
    let mapped = MappedRecord {
        entity: plan.entity,
        op,
        key,
        version,
        event_time,
        payload,
    };
    (Some(mapped), errors)
}

pub(crate) fn key_of(plan: &Plan, record: &Value) -> Option<String> {
    let mut errors = Vec::new();
    let key = one(plan, &plan.key, record, &mut errors);
    if errors.is_empty() { key } else { None }
}

fn missing(fp: &FieldPlan, upsert: bool, errors: &mut Vec<FieldError>) {
    if fp.required && upsert && !errors.iter().any(|e| e.field == fp.name) {
        errors.push(FieldError::new(&fp.name, "is required but missing"));
    }
}

fn op_of(plan: &Plan, record: &Value) -> Op {
    let Some(rule) = &plan.op else {
        return Op::Upsert;
    };
    let text = match rule.path.get(record) {
        Some(Value::String(s)) => s.trim().to_ascii_lowercase(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Op::Upsert,
    };
    if rule.delete_when.contains(&text) {
        Op::Delete
    } else {
        Op::Upsert
    }
}

/// The single value of a key, version or event-time rule, owned.
fn one(
    plan: &Plan,
    fp: &FieldPlan,
    record: &Value,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    single(plan, fp, record, errors).map(Cow::into_owned)
}

/// The value of a rule that holds one (compile refuses `[*]` and `split` for those): the
/// same steps as [`eval`] without collecting a list, as most rules are of this kind.
fn single<'a>(
    plan: &'a Plan,
    fp: &'a FieldPlan,
    record: &'a Value,
    errors: &mut Vec<FieldError>,
) -> Option<Cow<'a, str>> {
    if fp.many || fp.split.is_some() {
        return eval(plan, fp, record, errors).into_iter().flatten().next();
    }
    let before = errors.len();
    let text = match &fp.source {
        Source::Path(p) => p.get(record).and_then(|v| match scalar_text(v) {
            Ok(t) => t,
            Err(r) => {
                errors.push(FieldError::new(&fp.name, r));
                None
            }
        }),
        Source::Concat(paths, separator) => concat(fp, paths, separator, record, errors),
        Source::Const(c) => Some(Cow::Borrowed(c.as_str())),
    };
    let v = text.and_then(|t| steps(plan, fp, t, errors));
    if v.is_none() && errors.len() == before {
        return fp.default.as_deref().map(Cow::Borrowed);
    }
    v
}

fn concat<'a>(
    fp: &FieldPlan,
    paths: &[super::path::JsonPath],
    separator: &str,
    record: &'a Value,
    errors: &mut Vec<FieldError>,
) -> Option<Cow<'a, str>> {
    let mut joined = String::new();
    for p in paths {
        let Some(v) = p.get(record) else { continue };
        match scalar_text(v) {
            Ok(Some(s)) if !s.trim().is_empty() => {
                if !joined.is_empty() {
                    joined.push_str(separator);
                }
                joined.push_str(s.trim());
            }
            Ok(_) => {}
            Err(r) => errors.push(FieldError::new(&fp.name, r)),
        }
    }
    (!joined.is_empty()).then_some(Cow::Owned(joined))
}

/// The text form of a scalar JSON value; `Ok(None)` for null.
fn scalar_text(v: &Value) -> Result<Option<Cow<'_, str>>, &'static str> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(Cow::Borrowed(s.as_str()))),
        Value::Bool(b) => Ok(Some(Cow::Borrowed(if *b { "true" } else { "false" }))),
        Value::Number(n) => Ok(Some(Cow::Owned(n.to_string()))),
        Value::Array(_) => Err("expected one value, found a list"),
        Value::Object(_) => Err("expected a text value, found an object"),
    }
}

/// Reads a rule's values and runs its text steps: split, transforms, map, default,
/// validator, card-number guard. One entry per value (`None` where a `[*]` element has
/// none), so the entries of several `addresses.*` rules line up.
fn eval<'a>(
    plan: &'a Plan,
    fp: &'a FieldPlan,
    record: &'a Value,
    errors: &mut Vec<FieldError>,
) -> Vec<Option<Cow<'a, str>>> {
    let errors_before = errors.len();
    let mut out = Vec::new();
    match &fp.source {
        Source::Path(p) if !p.has_wildcard() => read(plan, fp, p.get(record), &mut out, errors),
        Source::Path(p) => {
            let mut selected = Vec::new();
            p.select(record, &mut selected);
            for v in selected {
                read(plan, fp, v, &mut out, errors);
            }
        }
        Source::Concat(paths, separator) => {
            let joined = concat(fp, paths, separator, record, errors);
            take(plan, fp, joined, &mut out, errors);
        }
        Source::Const(c) => take(plan, fp, Some(Cow::Borrowed(c.as_str())), &mut out, errors),
    }
    if out.iter().all(Option::is_none)
        && errors.len() == errors_before
        && let Some(d) = &fp.default
    {
        // Checked at compile time: it passes the validator and converts.
        out = vec![Some(Cow::Borrowed(d.as_str()))];
    }
    out
}

/// Takes one selected JSON value (a list's elements, for list fields) through the steps.
fn read<'a>(
    plan: &Plan,
    fp: &FieldPlan,
    v: Option<&'a Value>,
    out: &mut Vec<Option<Cow<'a, str>>>,
    errors: &mut Vec<FieldError>,
) {
    let one = |v: &'a Value, out: &mut Vec<Option<Cow<'a, str>>>, errors: &mut Vec<FieldError>| {
        match scalar_text(v) {
            Ok(t) => take(plan, fp, t, out, errors),
            Err(r) => {
                errors.push(FieldError::new(&fp.name, r));
                out.push(None);
            }
        }
    };
    match v {
        Some(Value::Array(items)) if fp.many => {
            for item in items {
                one(item, out, errors);
            }
        }
        Some(v) => one(v, out, errors),
        None => out.push(None),
    }
}

/// Splits a text when the rule says so and runs the steps on each part.
fn take<'a>(
    plan: &Plan,
    fp: &FieldPlan,
    t: Option<Cow<'a, str>>,
    out: &mut Vec<Option<Cow<'a, str>>>,
    errors: &mut Vec<FieldError>,
) {
    let Some(t) = t else {
        out.push(None);
        return;
    };
    let Some(sep) = &fp.split else {
        out.push(steps(plan, fp, t, errors));
        return;
    };
    match t {
        Cow::Borrowed(s) => {
            for part in s.split(sep.as_str()).filter(|p| !p.trim().is_empty()) {
                out.push(steps(plan, fp, Cow::Borrowed(part), errors));
            }
        }
        Cow::Owned(s) => {
            for part in s.split(sep.as_str()).filter(|p| !p.trim().is_empty()) {
                out.push(steps(plan, fp, Cow::Owned(part.to_string()), errors));
            }
        }
    }
}

/// Transforms, map, validator and card-number guard of one value.
fn steps<'a>(
    plan: &Plan,
    fp: &FieldPlan,
    mut v: Cow<'a, str>,
    errors: &mut Vec<FieldError>,
) -> Option<Cow<'a, str>> {
    if v.trim().is_empty() {
        return None;
    }
    for t in &fp.transforms {
        // The common whitespace steps keep a borrowed value borrowed.
        v = match (t, v) {
            (Transform::Trim, v) => trim(v),
            (Transform::CollapseSpaces, v) if !needs_collapse(&v) => v,
            (t, v) => match t.apply(&v, plan.pan_key.as_ref()) {
                Ok(s) => Cow::Owned(s),
                Err(r) => {
                    errors.push(FieldError::new(&fp.name, r));
                    return None;
                }
            },
        };
    }
    if !fp.transforms.is_empty() && v.trim().is_empty() {
        return None;
    }
    if let Some(map) = &fp.map {
        match lookup(map, &v) {
            Some(m) => v = Cow::Owned(m.to_string()),
            None => {
                errors.push(FieldError::new(&fp.name, "value has no entry in map"));
                return None;
            }
        }
    }
    if let Some(check) = fp.validator {
        match check.check(&v) {
            Ok(s) => v = Cow::Owned(s),
            // Lenient: kept as written for a report to count, and still guarded below; a
            // card number that fails its check is never kept.
            Err(r) if plan.keep_invalid && check != Validator::Pan => {
                errors.push(FieldError::new(&fp.name, r));
                v = trim(v);
            }
            Err(r) => {
                errors.push(FieldError::new(&fp.name, r));
                return None;
            }
        }
    }
    if !fp.pan_safe {
        match fp.pan {
            PanPolicy::Skip => {}
            PanPolicy::Mask => {
                if let Cow::Owned(masked) = pan::mask(&v) {
                    v = Cow::Owned(masked);
                }
            }
            PanPolicy::Reject => {
                if pan::contains(&v) {
                    errors.push(FieldError::new(
                        &fp.name,
                        "looks like a full card number; map it with mask_pan or tokenize_pan",
                    ));
                    return None;
                }
            }
        }
    }
    Some(v)
}

fn trim(v: Cow<'_, str>) -> Cow<'_, str> {
    match v {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    }
}

/// Whether `collapse_spaces` would change `v`.
fn needs_collapse(v: &str) -> bool {
    v.starts_with(char::is_whitespace)
        || v.ends_with(char::is_whitespace)
        || v.contains("  ")
        || v.chars().any(|c| c.is_whitespace() && c != ' ')
}

fn lookup<'m>(map: &'m HashMap<String, String>, v: &str) -> Option<&'m str> {
    map.get(v).or_else(|| map.get(v.trim())).map(String::as_str)
}

/// Converts a final text to the JSON the canonical field holds.
fn convert(plan: &Plan, fp: &FieldPlan, v: &str) -> Result<Value, String> {
    convert_with(fp, v, plan.offset, plan.today)
}

fn convert_with(
    fp: &FieldPlan,
    v: &str,
    offset: FixedOffset,
    today: Option<NaiveDate>,
) -> Result<Value, String> {
    let kind = match fp.kind {
        ValueKind::Version => {
            return parse_version(v, fp, offset).map(Value::from);
        }
        ValueKind::Target(k) => k,
    };
    Ok(match kind {
        Kind::Text | Kind::Id | Kind::IdList => Value::String(v.to_string()),
        Kind::Enum(allowed) => {
            let s = v.trim().to_ascii_lowercase();
            if !allowed.contains(&s.as_str()) {
                return Err(format!("must be one of {}", allowed.join(", ")));
            }
            Value::String(s)
        }
        Kind::Int => {
            let s = v.trim();
            let n: i64 = s.parse().map_err(|_| {
                if s.contains(['.', ',']) {
                    "expected a whole number (use decimal_to_minor for amounts with decimals)"
                } else {
                    "expected a whole number"
                }
            })?;
            Value::from(n)
        }
        Kind::Date => {
            let d = parse_date(v, fp)?;
            if matches!(fp.slot, Slot::Field(t) if t.name == "birth_date") {
                let today = today.unwrap_or_else(|| Utc::now().date_naive());
                if d > today {
                    return Err("must not be in the future".into());
                }
                if d.year() < 1900 {
                    return Err("must not be before 1900".into());
                }
            }
            Value::String(iso_date(d))
        }
        Kind::DateTime => Value::String(
            parse_datetime(v, fp, offset)?.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        ),
    })
}

/// `YYYY-MM-DD`, as serde writes a `NaiveDate`, without the formatting machinery.
fn iso_date(d: NaiveDate) -> String {
    let (y, m, day) = (d.year(), d.month(), d.day());
    if !(0..=9999).contains(&y) {
        return d.format("%Y-%m-%d").to_string();
    }
    let mut s = String::with_capacity(10);
    // `y` is 0..=9999 here, so the cast is lossless.
    for (n, width) in [(y as u32, 4), (m, 2), (day, 2)] {
        if !s.is_empty() {
            s.push('-');
        }
        for p in (0..width).rev() {
            s.push(char::from(b'0' + (n / 10u32.pow(p) % 10) as u8));
        }
    }
    s
}

/// Checks a rule's default the way a record's value would be checked.
pub(crate) fn check_default(fp: &FieldPlan, d: &str) -> Result<(), String> {
    let v = match fp.validator {
        Some(check) => check.check(d)?,
        None => d.to_string(),
    };
    if fp.pan == PanPolicy::Reject && pan::contains(&v) {
        return Err("looks like a full card number".into());
    }
    convert_with(fp, &v, Utc.fix(), None).map(|_| ())
}

fn parse_date(v: &str, fp: &FieldPlan) -> Result<NaiveDate, String> {
    let s = v.trim();
    if let Some(f) = &fp.date_format {
        let mut parsed = Parsed::new();
        return chrono::format::parse(&mut parsed, s, f.items.iter())
            .and_then(|()| parsed.to_naive_date())
            .map_err(|_| format!("expected a date in the format {}", f.text));
    }
    // A date-time's date part, as written (`1985-03-12T00:00:00+03:00`).
    let s = match s.as_bytes().get(10) {
        Some(b'T' | b' ') if s.len() > 10 && s.is_char_boundary(10) => &s[..10],
        _ => s,
    };
    validate::date(s).map_err(|e| e.reason)
}

/// An instant: the rule's `datetime_format`, or RFC 3339, or `YYYY-MM-DD[ T]HH:MM[:SS[.f]]`
/// or `YYYY-MM-DD` in the mapping's offset.
fn parse_datetime(v: &str, fp: &FieldPlan, offset: FixedOffset) -> Result<DateTime<Utc>, String> {
    let s = v.trim();
    if let Some(f) = &fp.datetime_format {
        let bad = || format!("expected a timestamp in the format {}", f.text);
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, s, f.items.iter()).map_err(|_| bad())?;
        if f.with_offset {
            return parsed
                .to_datetime()
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad());
        }
        let t = parsed.to_naive_datetime_with_offset(0).map_err(|_| bad())?;
        if f.timestamp {
            return Ok(t.and_utc());
        }
        return local(t, offset).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return local(t, offset).ok_or_else(|| "timestamp out of range".to_string());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return local(t, offset).ok_or_else(|| "timestamp out of range".to_string());
    }
    Err("expected a timestamp: rfc 3339, yyyy-mm-dd hh:mm:ss or yyyy-mm-dd".into())
}

fn local(t: NaiveDateTime, offset: FixedOffset) -> Option<DateTime<Utc>> {
    offset
        .from_local_datetime(&t)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// A change version: a non-negative integer, or a timestamp as epoch milliseconds.
fn parse_version(v: &str, fp: &FieldPlan, offset: FixedOffset) -> Result<i64, String> {
    let s = v.trim();
    // A configured format (`%s` for epoch seconds included) says the version is a time.
    if fp.datetime_format.is_none() && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map_err(|_| "integer out of range".to_string());
    }
    parse_datetime(s, fp, offset)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            "expected a non-negative integer or a timestamp (rfc 3339 or yyyy-mm-dd hh:mm:ss)"
                .to_string()
        })
}

#[derive(Default)]
struct AddressParts {
    kind: Option<String>,
    text: Option<String>,
    postal_code: Option<String>,
}

fn build_addresses(parts: Vec<AddressParts>, errors: &mut Vec<FieldError>) -> Value {
    let mut out = Vec::with_capacity(parts.len());
    for (i, a) in parts.into_iter().enumerate() {
        let Some(text) = a.text else {
            if a.kind.is_some() || a.postal_code.is_some() {
                errors.push(FieldError::new(
                    format!("addresses.{i}.text"),
                    "is required when other parts of the address are given",
                ));
            }
            continue;
        };
        let kind = a
            .kind
            .unwrap_or_else(|| if i == 0 { "primary" } else { "other" }.to_string());
        let m: Map<String, Value> = [
            ("kind", Some(kind)),
            ("text", Some(text)),
            ("postal_code", a.postal_code),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), Value::String(v))))
        .collect();
        out.push(Value::Object(m));
    }
    Value::Array(out)
}

/// Rules of one entity across fields: defaults the struct needs, sign conventions, the
/// account control key.
fn entity_rules(
    entity: Entity,
    obj: &mut Map<String, Value>,
    upsert: bool,
    errors: &mut Vec<FieldError>,
) {
    match entity {
        Entity::Party => {
            obj.entry("kind").or_insert_with(|| Value::from("person"));
            // The struct always writes its lists.
            for list in ["phones", "emails", "addresses"] {
                obj.entry(list).or_insert_with(|| Value::Array(Vec::new()));
            }
        }
        Entity::Account => {
            if let (Some(Value::String(number)), Some(Value::String(bic))) =
                (obj.get("number"), obj.get("bic"))
                && let Err(e) = validate::account_number(number, Some(bic))
            {
                errors.push(FieldError::new("number", e.reason));
            }
        }
        Entity::Transaction
            if obj
                .get("amount_minor")
                .and_then(Value::as_i64)
                .is_some_and(|a| a < 0) =>
        {
            errors.push(FieldError::new(
                "amount_minor",
                "must not be negative: use abs, and sign_to_direction for the direction",
            ));
        }
        Entity::Card => {
            if obj
                .get("limit_minor")
                .and_then(Value::as_i64)
                .is_some_and(|a| a < 0)
            {
                errors.push(FieldError::new("limit_minor", "must not be negative"));
            }
            if upsert && obj.contains_key("limit_minor") && !obj.contains_key("limit_currency") {
                errors.push(FieldError::new(
                    "limit_currency",
                    "is required when limit_minor is given",
                ));
            }
        }
        _ => {}
    }
}

/// Checks the payload against the canonical struct. The payload is already in the form
/// the struct serialises to (lists present, absent options left out, dates and instants
/// as serde writes them; a test holds this), so it is not rewritten.
fn fits(entity: Entity, v: &Value) -> Result<(), String> {
    match entity {
        Entity::Party => check::<Party>(v),
        Entity::Account => check::<Account>(v),
        Entity::Card => check::<Card>(v),
        Entity::Transaction => check::<Transaction>(v),
        other => Err(format!("entity {} cannot be mapped here", other.as_str())),
    }
}

fn check<'de, T: Deserialize<'de>>(v: &'de Value) -> Result<(), String> {
    // serde's messages can quote a value; keep only the ones that cannot.
    T::deserialize(v).map(|_| ()).map_err(|e| {
        let m = e.to_string();
        if m.starts_with("missing field") {
            format!("does not fit the canonical model: {m}")
        } else {
            "does not fit the canonical model".to_string()
        }
    })
}
