//! The EU consolidated financial sanctions list (the "Financial Sanctions Files" XML,
//! `export/sanctionEntity`, namespace `http://eu.europa.ec/fpi/fsd/export`).
//!
//! Read as a stream, one `sanctionEntity` at a time. The entry id is the entity's `logicalId`,
//! the publication time the root's `generationDate`. `subjectType@code` `person` → person,
//! `enterprise` → organisation. Names come from `nameAlias` (`wholeName`, or `firstName`
//! `middleName` `lastName` joined): the first strong alias without a `nameLanguage` is the
//! primary name, other strong aliases are aliases, `strong="false"` ones weak. Birth dates come
//! from `birthdate` (`birthdate`, or `year`/`monthOfYear`/`dayOfMonth`, or
//! `yearRangeFrom`..`yearRangeTo`; `circa="true"` keeps the year only), nationalities from
//! `citizenship@countryIso2Code`, identifiers from `identification` (`identificationTypeCode`
//! passport / id / regnumber / fiscalcode / ..., `number`, `countryIso2Code`), programmes from
//! `regulation@programme`.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::entry::{
    EntityKind, IdKind, ListEntry, ListSnapshot, LoadProblem, NameStrength, PartialDate,
};

use super::builder::{EntryBuilder, Notes};
use super::progress::Reporter;
use super::version::HashingReader;
use super::xml::{Item, Node, RecordStream};
use super::{EntryAddress, ListError, Loaded, Progress, country, dates, file_name, ids};

/// The `list` of the entries.
pub const LIST: &str = "eu";

const ROOT: &str = "export";

/// Loads the list; see [`load_detailed`] for the notes and addresses.
pub fn load(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<ListSnapshot, ListError> {
    load_detailed(path, progress).map(|l| l.snapshot)
}

/// Loads the list, with the values dropped from kept entries (notes) and the addresses.
pub fn load_detailed(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Loaded, ListError> {
    let file = File::open(path).map_err(|e| ListError::io(path, e))?;
    let total = file.metadata().map_err(|e| ListError::io(path, e))?.len();
    let reader = BufReader::with_capacity(64 * 1024, HashingReader::new(file, LIST));
    let mut stream = RecordStream::new(reader, path, 2, &["sanctionEntity"]);
    let mut reporter = Reporter::new(progress, total);
    let fname = file_name(path);

    let mut published = None;
    let mut saw_root = false;
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut notes = Notes::default();
    let mut addresses = Vec::new();
    let mut seen = HashSet::new();

    while let Some(item) = stream.next()? {
        match item {
            Item::Root(root) => {
                if root.name != ROOT {
                    return Err(ListError::format(
                        path,
                        "root element",
                        format!("is {}, expected {ROOT}", root.name),
                    ));
                }
                saw_root = true;
                published = root.attr("generationDate").map(str::to_owned);
            }
            Item::Record { node, offset } => {
                let location = format!("{fname}: {ROOT}/sanctionEntity at byte {offset}");
                match entity(&node, &location, &mut notes, &mut addresses) {
                    Ok(entry) => {
                        if seen.insert(entry.id.clone()) {
                            entries.push(entry);
                        } else {
                            problems.push(LoadProblem {
                                entry_id: Some(entry.id),
                                location,
                                reason: "duplicate logicalId; the first entry is kept".into(),
                            });
                        }
                    }
                    Err(p) => problems.push(p),
                }
                reporter.entry(stream.position());
            }
        }
    }
    if !saw_root {
        return Err(ListError::format(path, "document", "no root element"));
    }
    let version = stream
        .into_inner()
        .into_inner()
        .finish()
        .map_err(|e| ListError::io(path, e))?;
    reporter.finish();
    Ok(Loaded {
        snapshot: ListSnapshot {
            list: LIST.to_owned(),
            version,
            published,
            entries,
            problems,
        },
        notes: notes.0,
        addresses,
    })
}

fn entity(
    node: &Node,
    location: &str,
    notes: &mut Notes,
    addresses: &mut Vec<EntryAddress>,
) -> Result<ListEntry, LoadProblem> {
    let Some(id) = node.attr("logicalId") else {
        let reference = node.attr("euReferenceNumber").unwrap_or("unknown");
        return Err(LoadProblem {
            entry_id: None,
            location: location.to_owned(),
            reason: format!("missing logicalId (euReferenceNumber {reference}); entry skipped"),
        });
    };
    let subject = node.children_named("subjectType").next();
    let code = subject.and_then(|s| s.attr("code").or_else(|| s.attr("classificationCode")));
    let kind = match code.map(str::to_ascii_lowercase).as_deref() {
        Some("person" | "p") => EntityKind::Person,
        Some("enterprise" | "e") => EntityKind::Organization,
        other => {
            notes.add(
                id,
                location,
                format!("subjectType {other:?} unknown; kind left unknown"),
            );
            EntityKind::Unknown
        }
    };
    let mut b = EntryBuilder::new(LIST, id, kind);

    // (name, strong, has language) in document order.
    let names: Vec<(String, bool, bool)> = node
        .children_named("nameAlias")
        .filter_map(|a| {
            let name = match a.attr("wholeName") {
                Some(w) => w.to_owned(),
                None => ["firstName", "middleName", "lastName"]
                    .iter()
                    .filter_map(|k| a.attr(k))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let strong = !a
                .attr("strong")
                .is_some_and(|s| s.eq_ignore_ascii_case("false"));
            (!name.trim().is_empty()).then_some((name, strong, a.attr("nameLanguage").is_some()))
        })
        .collect();
    let primary = names
        .iter()
        .position(|(_, strong, lang)| *strong && !lang)
        .or_else(|| names.iter().position(|(_, strong, _)| *strong))
        .or(if names.is_empty() { None } else { Some(0) });
    let Some(primary) = primary else {
        return Err(LoadProblem {
            entry_id: Some(id.to_owned()),
            location: location.to_owned(),
            reason: "no nameAlias with a name; entry skipped".into(),
        });
    };
    b.name(&names[primary].0, NameStrength::Primary);
    for (i, (name, strong, _)) in names.iter().enumerate() {
        if i != primary {
            b.name(
                name,
                if *strong {
                    NameStrength::Alias
                } else {
                    NameStrength::Weak
                },
            );
        }
    }

    for reg in node.children_named("regulation") {
        if let Some(p) = reg.attr("programme") {
            b.program(p);
        }
    }
    for bd in node.children_named("birthdate") {
        match birth_dates(bd) {
            Ok(list) => list.into_iter().for_each(|d| b.birth_date(d)),
            Err(reason) => notes.add(id, location, reason),
        }
    }
    for c in node.children_named("citizenship") {
        if let Some(code) = country_code(c, id, location, "citizenship", notes) {
            b.nationality(code);
        }
    }
    for ident in node.children_named("identification") {
        let Some(number) = ident.attr("number").or_else(|| ident.attr("latinNumber")) else {
            continue;
        };
        let kind = match ident
            .attr("identificationTypeCode")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("passport") => IdKind::Passport,
            Some("id" | "ssn") => IdKind::NationalId,
            Some("regnumber") => IdKind::Registration,
            Some("fiscalcode" | "tax" | "taxid") => IdKind::TaxId,
            _ => IdKind::Other,
        };
        let code = country_code(ident, id, location, "identification", notes);
        if let Some(i) = ids::identifier(kind, number, code.map(str::to_owned)) {
            b.identifier(i);
        }
    }
    for a in node.children_named("address") {
        let street = a.attr("street").map(str::to_owned);
        let city: Vec<&str> = ["city", "region", "zipCode"]
            .iter()
            .filter_map(|k| a.attr(k))
            .collect();
        let country = a
            .attr("countryIso2Code")
            .and_then(country::from_code)
            .map(str::to_owned);
        if street.is_some() || !city.is_empty() || country.is_some() {
            addresses.push(EntryAddress {
                entry_id: id.to_owned(),
                street,
                city: (!city.is_empty()).then(|| city.join(", ")),
                country,
            });
        }
    }
    Ok(b.finish())
}

/// `countryIso2Code` of an element; "00" is the EU's "unknown" and gives no country.
fn country_code(
    node: &Node,
    id: &str,
    location: &str,
    element: &str,
    notes: &mut Notes,
) -> Option<&'static str> {
    let raw = node.attr("countryIso2Code")?;
    if raw == "00" {
        return None;
    }
    let code = country::from_code(raw);
    if code.is_none() {
        notes.add(
            id,
            location,
            format!("{element} countryIso2Code {raw:?} unknown; ignored"),
        );
    }
    code
}

fn birth_dates(node: &Node) -> Result<Vec<PartialDate>, String> {
    let int = |k: &str| -> Result<Option<i32>, String> {
        match node.attr(k) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| format!("birthdate@{k} is not a number; ignored")),
        }
    };
    let circa = node
        .attr("circa")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"));
    if let (Some(from), Some(to)) = (int("yearRangeFrom")?, int("yearRangeTo")?) {
        return dates::year_range(from, to).ok_or_else(|| {
            format!(
                "birthdate year range is reversed or longer than {} years; ignored",
                dates::MAX_YEAR_RANGE
            )
        });
    }
    let mut d = if let Some(full) = node.attr("birthdate") {
        dates::iso(full).ok_or_else(|| "birthdate@birthdate unreadable; ignored".to_owned())?
    } else if let Some(y) = int("year")? {
        let month = int("monthOfYear")?.and_then(|m| u32::try_from(m).ok());
        let day = int("dayOfMonth")?.and_then(|d| u32::try_from(d).ok());
        dates::partial(y, month, month.and(day))
            .ok_or_else(|| "birthdate year/month/day out of range; ignored".to_owned())?
    } else {
        return Ok(Vec::new());
    };
    if circa {
        d.month = None;
        d.day = None;
    }
    Ok(vec![d])
}
