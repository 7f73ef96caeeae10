//! The UN Security Council consolidated list (XML, `CONSOLIDATED_LIST`).
//!
//! Read as a stream: one `INDIVIDUAL` or `ENTITY` at a time. The entry id is
//! `REFERENCE_NUMBER` (stable across versions; `DATAID` is only quoted in problems), the
//! publication time the root's `dateGenerated`. Names: FIRST_NAME..FOURTH_NAME joined is the
//! primary name, `NAME_ORIGINAL_SCRIPT` and aliases of quality Good / a.k.a. / f.k.a. are
//! aliases, quality Low is a weak alias. Birth dates: `EXACT` with `DATE` keeps the full date,
//! `APPROXIMATELY` keeps the year only, `BETWEEN` (`FROM_YEAR`..`TO_YEAR`) gives every year of
//! the range; dates given on an alias count too.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use crate::entry::{EntityKind, IdKind, ListSnapshot, LoadProblem, NameStrength, PartialDate};

use super::builder::{EntryBuilder, Notes};
use super::progress::Reporter;
use super::version::HashingReader;
use super::xml::{Item, Node, RecordStream};
use super::{EntryAddress, ListError, Loaded, Progress, country, dates, file_name, ids};

/// The `list` of the entries.
pub const LIST: &str = "un";

const ROOT: &str = "CONSOLIDATED_LIST";

/// Loads the list; see [`load_detailed`] for the notes and addresses.
pub fn load(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<ListSnapshot, ListError> {
    load_detailed(path, progress).map(|l| l.snapshot)
}

/// Loads the list, with the values dropped from kept entries (notes) and the addresses.
pub fn load_detailed(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Loaded, ListError> {
    let file = File::open(path).map_err(|e| ListError::io(path, e))?;
    let total = file.metadata().map_err(|e| ListError::io(path, e))?.len();
    let reader = BufReader::with_capacity(64 * 1024, HashingReader::new(file, LIST));
    let mut stream = RecordStream::new(reader, path, 3, &["INDIVIDUAL", "ENTITY"]);
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
                published = root.attr("dateGenerated").map(str::to_owned);
            }
            Item::Record { node, offset } => {
                let section = if node.name == "INDIVIDUAL" {
                    "INDIVIDUALS"
                } else {
                    "ENTITIES"
                };
                let location = format!("{fname}: {ROOT}/{section}/{} at byte {offset}", node.name);
                match record(&node, &location, &mut notes, &mut addresses) {
                    Ok(entry) => {
                        if seen.insert(entry.id.clone()) {
                            entries.push(entry);
                        } else {
                            problems.push(LoadProblem {
                                entry_id: Some(entry.id),
                                location,
                                reason: "duplicate REFERENCE_NUMBER; the first entry is kept"
                                    .into(),
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
    let hashing = stream.into_inner().into_inner();
    let version = hashing.finish().map_err(|e| ListError::io(path, e))?;
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

fn record(
    node: &Node,
    location: &str,
    notes: &mut Notes,
    addresses: &mut Vec<EntryAddress>,
) -> Result<crate::entry::ListEntry, LoadProblem> {
    let Some(id) = node.child_text("REFERENCE_NUMBER") else {
        let dataid = node.child_text("DATAID").unwrap_or("unknown");
        return Err(LoadProblem {
            entry_id: None,
            location: location.to_owned(),
            reason: format!("missing REFERENCE_NUMBER (DATAID {dataid}); entry skipped"),
        });
    };
    let individual = node.name == "INDIVIDUAL";
    let kind = if individual {
        EntityKind::Person
    } else {
        EntityKind::Organization
    };
    let mut b = EntryBuilder::new(LIST, id, kind);

    let primary: Vec<&str> = ["FIRST_NAME", "SECOND_NAME", "THIRD_NAME", "FOURTH_NAME"]
        .iter()
        .filter_map(|n| node.child_text(n))
        .collect();
    b.name(&primary.join(" "), NameStrength::Primary);
    if !b.has_name() {
        return Err(LoadProblem {
            entry_id: Some(id.to_owned()),
            location: location.to_owned(),
            reason: "no name (FIRST_NAME..FOURTH_NAME empty); entry skipped".into(),
        });
    }
    if let Some(original) = node.child_text("NAME_ORIGINAL_SCRIPT") {
        b.name(original, NameStrength::Alias);
    }
    let alias_element = if individual {
        "INDIVIDUAL_ALIAS"
    } else {
        "ENTITY_ALIAS"
    };
    for alias in node.children_named(alias_element) {
        if let Some(name) = alias.child_text("ALIAS_NAME") {
            let strength = match alias.child_text("QUALITY") {
                Some(q) if q.eq_ignore_ascii_case("low") => NameStrength::Weak,
                _ => NameStrength::Alias,
            };
            b.name(name, strength);
        }
        if let Some(dob) = alias.child_text("DATE_OF_BIRTH") {
            match dates::iso(dob) {
                Some(d) => b.birth_date(d),
                None => notes.add(id, location, "alias DATE_OF_BIRTH unreadable; ignored"),
            }
        }
    }
    if let Some(program) = node.child_text("UN_LIST_TYPE") {
        b.program(program);
    }
    for dob in node.children_named("INDIVIDUAL_DATE_OF_BIRTH") {
        match birth_dates(dob) {
            Ok(list) => list.into_iter().for_each(|d| b.birth_date(d)),
            Err(reason) => notes.add(id, location, reason),
        }
    }
    for nat in node.children_named("NATIONALITY") {
        for value in nat.children_named("VALUE").filter_map(Node::own_text) {
            match country::from_name(value) {
                Some(code) => b.nationality(code),
                None if country::is_unknown(value) => {}
                None => notes.add(
                    id,
                    location,
                    format!("nationality {value:?} not recognised; ignored"),
                ),
            }
        }
    }
    for doc in node.children_named("INDIVIDUAL_DOCUMENT") {
        let Some(number) = doc.child_text("NUMBER") else {
            continue;
        };
        let country_name = doc
            .child_text("ISSUING_COUNTRY")
            .or_else(|| doc.child_text("COUNTRY_OF_ISSUE"));
        let code = match country_name {
            Some(c) => {
                let code = country::from_name(c);
                if code.is_none() && !country::is_unknown(c) {
                    notes.add(
                        id,
                        location,
                        format!("document country {c:?} not recognised; kept without country"),
                    );
                }
                code
            }
            None => None,
        };
        let kind = document_kind(doc.child_text("TYPE_OF_DOCUMENT").unwrap_or(""));
        if let Some(ident) = ids::identifier(kind, number, code.map(str::to_owned)) {
            b.identifier(ident);
        }
    }
    let address_element = if individual {
        "INDIVIDUAL_ADDRESS"
    } else {
        "ENTITY_ADDRESS"
    };
    for a in node.children_named(address_element) {
        let street = a.child_text("STREET").map(str::to_owned);
        let city: Vec<&str> = ["CITY", "STATE_PROVINCE", "ZIP_CODE"]
            .iter()
            .filter_map(|n| a.child_text(n))
            .collect();
        let country = a
            .child_text("COUNTRY")
            .and_then(country::from_name)
            .map(str::to_owned);
        if street.is_none() && city.is_empty() && country.is_none() {
            continue;
        }
        addresses.push(EntryAddress {
            entry_id: id.to_owned(),
            street,
            city: (!city.is_empty()).then(|| city.join(", ")),
            country,
        });
    }
    Ok(b.finish())
}

/// `TYPE_OF_DOCUMENT` is free text in several languages.
fn document_kind(t: &str) -> IdKind {
    let t = t.to_lowercase();
    if t.contains("passport") || t.contains("pasaporte") || t.contains("passeport") {
        IdKind::Passport
    } else if t.contains("national identification")
        || t.contains("identity")
        || t.contains("national id")
    {
        IdKind::NationalId
    } else if t.contains("tax") {
        IdKind::TaxId
    } else if t.contains("registration") {
        IdKind::Registration
    } else {
        IdKind::Other
    }
}

/// One `INDIVIDUAL_DATE_OF_BIRTH`: an empty element gives no date, an unreadable one a reason.
fn birth_dates(node: &Node) -> Result<Vec<PartialDate>, String> {
    let kind = node
        .child_text("TYPE_OF_DATE")
        .unwrap_or("")
        .to_ascii_uppercase();
    let year = |name: &str| -> Result<Option<i32>, String> {
        match node.child_text(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i32>()
                .map(Some)
                .map_err(|_| format!("INDIVIDUAL_DATE_OF_BIRTH/{name} is not a year; ignored")),
        }
    };
    let (from, to) = (year("FROM_YEAR")?, year("TO_YEAR")?);
    if let (Some(from), Some(to)) = (from, to) {
        return dates::year_range(from, to).ok_or_else(|| {
            format!(
                "INDIVIDUAL_DATE_OF_BIRTH range is reversed or longer than {} years; ignored",
                dates::MAX_YEAR_RANGE
            )
        });
    }
    if let Some(date) = node.child_text("DATE") {
        let mut d = dates::iso(date)
            .ok_or_else(|| "INDIVIDUAL_DATE_OF_BIRTH/DATE unreadable; ignored".to_owned())?;
        if kind == "APPROXIMATELY" {
            d.month = None;
            d.day = None;
        }
        return Ok(vec![d]);
    }
    let single = year("YEAR")?.or(from).or(to);
    match single {
        Some(y) => dates::partial(y, None, None)
            .map(|d| vec![d])
            .ok_or_else(|| "INDIVIDUAL_DATE_OF_BIRTH/YEAR out of range; ignored".to_owned()),
        None => Ok(Vec::new()),
    }
}
