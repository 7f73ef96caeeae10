//! OFAC's SDN list in the legacy CSV set: `sdn.csv`, `add.csv`, `alt.csv`, `sdn_comments.csv`.
//!
//! The files have no header. `-0-` (with or without trailing spaces) means empty. Each line is
//! decoded as UTF-8, or as Latin-1 where it is not valid UTF-8; a trailing DOS end-of-file mark
//! is ignored.
//! - `sdn.csv`: ent_num, SDN_Name, SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT,
//!   Vess_flag, Vess_owner, Remarks. SDN_Type `individual` → person, `vessel`, `aircraft`,
//!   empty → organisation. Programs are written `SDGT] [IRGC`. The remarks are cut at a fixed
//!   length; `sdn_comments.csv` (ent_num, text) holds the rest, appended without a separator
//!   before the remarks are read (see [`remarks`]). A vessel's flag is kept as its nationality.
//! - `alt.csv`: ent_num, alt_num, alt_type (aka/fka/nka), alt_name, alt_remarks; a remark
//!   containing "weak" makes the alias weak.
//! - `add.csv`: ent_num, add_num, address, city/state/postal code, country, remarks.
//!
//! Names of individuals are written "LAST, First Middle": they are kept as written, and
//! [`split_surname`] gives the two parts.

mod remarks;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use csv::StringRecord;

use crate::entry::{EntityKind, ListEntry, ListSnapshot, LoadProblem, NameStrength};

use super::builder::{EntryBuilder, Notes, add_name};
use super::decode::{read_file, utf8_or_latin1_lines};
use super::progress::Reporter;
use super::version::Fingerprint;
use super::{EntryAddress, ListError, Loaded, Progress, country, file_name};

/// The `list` of the entries.
pub const LIST: &str = "ofac-sdn";

/// The files of one OFAC legacy set. Only `sdn` is required by the format; the others are
/// given explicitly so that a missing alias file is a decision, not an accident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfacFiles {
    pub sdn: PathBuf,
    pub add: Option<PathBuf>,
    pub alt: Option<PathBuf>,
    pub comments: Option<PathBuf>,
}

impl OfacFiles {
    /// The four files under their published names in `dir`; all must exist.
    pub fn in_dir(dir: &Path) -> Self {
        OfacFiles {
            sdn: dir.join("sdn.csv"),
            add: Some(dir.join("add.csv")),
            alt: Some(dir.join("alt.csv")),
            comments: Some(dir.join("sdn_comments.csv")),
        }
    }
}

/// "LAST, First Middle" → ("LAST", "First Middle"); `None` when the name has no comma.
pub fn split_surname(name: &str) -> Option<(&str, &str)> {
    let (last, first) = name.split_once(',')?;
    let (last, first) = (last.trim(), first.trim());
    (!last.is_empty() && !first.is_empty()).then_some((last, first))
}

/// Where a set is: a folder holding the four files under their published names
/// ([`OfacFiles::in_dir`]), or an explicit [`OfacFiles`].
pub trait OfacSource {
    fn files(&self) -> OfacFiles;
}

impl OfacSource for Path {
    fn files(&self) -> OfacFiles {
        OfacFiles::in_dir(self)
    }
}

impl OfacSource for PathBuf {
    fn files(&self) -> OfacFiles {
        OfacFiles::in_dir(self)
    }
}

impl OfacSource for OfacFiles {
    fn files(&self) -> OfacFiles {
        self.clone()
    }
}

/// Loads a set (a folder or explicit files); see [`load_detailed`] for the notes and
/// addresses.
pub fn load(
    source: &(impl OfacSource + ?Sized),
    progress: &mut dyn FnMut(Progress),
) -> Result<ListSnapshot, ListError> {
    load_detailed(source, progress).map(|l| l.snapshot)
}

/// A file of the set, read and decoded.
struct Source {
    name: String,
    text: String,
}

/// Loads a set, with the values dropped from kept entries (notes) and the addresses.
pub fn load_detailed(
    source: &(impl OfacSource + ?Sized),
    progress: &mut dyn FnMut(Progress),
) -> Result<Loaded, ListError> {
    let files = source.files();
    let mut fingerprint = Fingerprint::new();
    let mut notes = Notes::default();
    let mut read = |role: &str, path: &Path| -> Result<(Source, u64), ListError> {
        let bytes = read_file(path)?;
        fingerprint.add_file(role, &bytes);
        let (text, fallback) = utf8_or_latin1_lines(&bytes);
        let name = file_name(path);
        if fallback > 0 {
            notes.0.push(LoadProblem {
                entry_id: None,
                location: name.clone(),
                reason: format!("{fallback} line(s) were not valid utf-8 and were read as latin-1"),
            });
        }
        Ok((Source { name, text }, bytes.len() as u64))
    };
    let (sdn, sdn_len) = read("sdn", &files.sdn)?;
    let mut side =
        |role: &str, path: &Option<PathBuf>| -> Result<Option<(Source, u64)>, ListError> {
            path.as_deref().map(|p| read(role, p)).transpose()
        };
    let add = side("add", &files.add)?;
    let alt = side("alt", &files.alt)?;
    let comments = side("comments", &files.comments)?;
    let version = fingerprint.finish();
    let total = sdn_len
        + [&add, &alt, &comments]
            .iter()
            .filter_map(|s| s.as_ref())
            .map(|s| s.1)
            .sum::<u64>();

    let mut reporter = Reporter::new(progress, total);
    let mut problems = Vec::new();

    // Continuations of remarks, per ent_num, in file order.
    let mut continuation: HashMap<String, (String, Vec<u64>)> = HashMap::new();
    if let Some((src, _)) = &comments {
        for row in rows(src, &mut problems) {
            let Some(id) = ent_num(&row, src, &mut problems) else {
                continue;
            };
            let text = (1..row.record.len())
                .filter_map(|i| row.record.get(i))
                .collect::<Vec<_>>()
                .join(",");
            let slot = continuation.entry(id).or_default();
            slot.0.push_str(&text);
            slot.1.push(row.line);
        }
    }

    let mut entries: Vec<ListEntry> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for row in rows(&sdn, &mut problems) {
        let location = row.location(&sdn);
        reporter.entry(row.byte);
        let Some(id) = ent_num(&row, &sdn, &mut problems) else {
            continue;
        };
        if row.record.len() != 12 {
            problems.push(problem(
                &id,
                &location,
                format!(
                    "expected 12 fields, got {}; entry skipped",
                    row.record.len()
                ),
            ));
            continue;
        }
        if index.contains_key(&id) {
            problems.push(problem(
                &id,
                &location,
                "duplicate ent_num; the first entry is kept",
            ));
            continue;
        }
        let Some(name) = field(&row.record, 1) else {
            problems.push(problem(&id, &location, "SDN_Name is empty; entry skipped"));
            continue;
        };
        let kind = match field(&row.record, 2)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None => EntityKind::Organization,
            Some("individual") => EntityKind::Person,
            Some("vessel") => EntityKind::Vessel,
            Some("aircraft") => EntityKind::Aircraft,
            Some(other) => {
                notes.add(
                    &id,
                    &location,
                    format!("SDN_Type {other:?} unknown; kind left unknown"),
                );
                EntityKind::Unknown
            }
        };
        let mut b = EntryBuilder::new(LIST, &id, kind);
        b.name(name, NameStrength::Primary);
        for p in field(&row.record, 3).unwrap_or("").split("] [") {
            b.program(p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()));
        }
        // A vessel's flag state is the nearest thing it has to a nationality.
        if kind == EntityKind::Vessel
            && let Some(flag) = field(&row.record, 9).filter(|f| !country::is_unknown(f))
        {
            match country::from_name(flag) {
                Some(code) => b.nationality(code),
                None => notes.add(
                    &id,
                    &location,
                    format!("Vess_flag {flag:?} not recognised; ignored"),
                ),
            }
        }
        let mut text = field(&row.record, 11).unwrap_or("").to_owned();
        if let Some((more, _)) = continuation.remove(&id) {
            text.push_str(&more);
        }
        let facts = remarks::parse(&text);
        for d in facts.birth_dates {
            b.birth_date(d);
        }
        for n in facts.nationalities {
            b.nationality(n);
        }
        for i in facts.identifiers {
            b.identifier(i);
        }
        for a in &facts.weak_aliases {
            b.name(a, NameStrength::Weak);
        }
        for n in facts.notes {
            notes.add(&id, &location, n);
        }
        index.insert(id, entries.len());
        entries.push(b.finish());
    }

    if let Some((src, _)) = &comments {
        let mut orphans: Vec<(String, Vec<u64>)> = continuation
            .into_iter()
            .map(|(id, (_, lines))| (id, lines))
            .collect();
        orphans.sort();
        for (id, lines) in orphans {
            for line in lines {
                problems.push(problem(
                    &id,
                    &format!("{} line {line}", src.name),
                    "remarks continuation for an ent_num not in the sdn file; row skipped",
                ));
            }
        }
    }

    if let Some((src, _)) = &alt {
        for row in rows(src, &mut problems) {
            let location = row.location(src);
            let Some(id) = ent_num(&row, src, &mut problems) else {
                continue;
            };
            let Some(&at) = index.get(&id) else {
                problems.push(problem(
                    &id,
                    &location,
                    "alias for an ent_num not in the sdn file; row skipped",
                ));
                continue;
            };
            if row.record.len() != 5 {
                problems.push(problem(
                    &id,
                    &location,
                    format!("expected 5 fields, got {}; alias skipped", row.record.len()),
                ));
                continue;
            }
            let Some(alias) = field(&row.record, 3) else {
                problems.push(problem(&id, &location, "alt_name is empty; alias skipped"));
                continue;
            };
            let weak =
                field(&row.record, 4).is_some_and(|r| r.to_ascii_lowercase().contains("weak"));
            let strength = if weak {
                NameStrength::Weak
            } else {
                NameStrength::Alias
            };
            add_name(&mut entries[at], alias, strength);
        }
    }

    let mut addresses = Vec::new();
    if let Some((src, _)) = &add {
        for row in rows(src, &mut problems) {
            let location = row.location(src);
            let Some(id) = ent_num(&row, src, &mut problems) else {
                continue;
            };
            if !index.contains_key(&id) {
                problems.push(problem(
                    &id,
                    &location,
                    "address for an ent_num not in the sdn file; row skipped",
                ));
                continue;
            }
            if row.record.len() != 6 {
                problems.push(problem(
                    &id,
                    &location,
                    format!(
                        "expected 6 fields, got {}; address skipped",
                        row.record.len()
                    ),
                ));
                continue;
            }
            let country = match field(&row.record, 4).filter(|c| !country::is_unknown(c)) {
                Some(name) => {
                    let code = country::from_name(name);
                    if code.is_none() {
                        notes.add(
                            &id,
                            &location,
                            format!(
                                "address country {name:?} not recognised; kept without country"
                            ),
                        );
                    }
                    code.map(str::to_owned)
                }
                None => None,
            };
            addresses.push(EntryAddress {
                entry_id: id,
                street: field(&row.record, 2).map(str::to_owned),
                city: field(&row.record, 3).map(str::to_owned),
                country,
            });
        }
    }

    reporter.finish();
    Ok(Loaded {
        snapshot: ListSnapshot {
            list: LIST.to_owned(),
            version,
            published: None,
            entries,
            problems,
        },
        notes: notes.0,
        addresses,
    })
}

struct Row {
    record: StringRecord,
    line: u64,
    byte: u64,
}

impl Row {
    fn location(&self, src: &Source) -> String {
        format!("{} line {}", src.name, self.line)
    }
}

/// The non-blank rows of a file; a row the CSV reader cannot split is a problem.
fn rows(src: &Source, problems: &mut Vec<LoadProblem>) -> Vec<Row> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(src.text.as_bytes());
    let mut out = Vec::new();
    let mut record = StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let (line, byte) = record.position().map_or((0, 0), |p| (p.line(), p.byte()));
                if record.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                out.push(Row {
                    record: record.clone(),
                    line,
                    byte,
                });
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(LoadProblem {
                    entry_id: None,
                    location: format!("{} line {line}", src.name),
                    reason: format!("row cannot be read: {}; row skipped", csv_reason(&e)),
                });
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
    out
}

/// The CSV error without the row's content.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("expected {expected_len} fields, got {len}")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid utf-8".into(),
        _ => "malformed csv".into(),
    }
}

/// A field, trimmed, with OFAC's `-0-` and blanks as `None`.
fn field(record: &StringRecord, i: usize) -> Option<&str> {
    let v = record.get(i)?.trim();
    (!v.is_empty() && v != "-0-").then_some(v)
}

/// The row's ent_num, a positive integer; otherwise a problem.
fn ent_num(row: &Row, src: &Source, problems: &mut Vec<LoadProblem>) -> Option<String> {
    let raw = row.record.get(0).unwrap_or("").trim();
    if !raw.is_empty() && raw.len() <= 12 && raw.bytes().all(|b| b.is_ascii_digit()) {
        return Some(raw.to_owned());
    }
    let reason = if raw.is_empty() {
        "ent_num is empty; row skipped".to_owned()
    } else {
        "ent_num is not a number; row skipped".to_owned()
    };
    problems.push(LoadProblem {
        entry_id: None,
        location: row.location(src),
        reason,
    });
    None
}

fn problem(id: &str, location: &str, reason: impl Into<String>) -> LoadProblem {
    LoadProblem {
        entry_id: Some(id.to_owned()),
        location: location.to_owned(),
        reason: reason.into(),
    }
}
