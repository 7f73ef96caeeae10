//! The `;`-separated list files a bank keeps or receives in its own format (national list, own
//! stop-list): UTF-8 or windows-1251, a header row naming the columns in any order.
//!
//! Shared rules: `id` and `name` must be filled, otherwise the row is a problem and skipped; a
//! repeated `id` is a problem (the first row is kept); `kind` is `person` / `organization`
//! (also `individual`, `organisation`, `фл`, `юл`); a blank or other kind leaves the kind
//! unknown with a note. Fields that hold several values separate them with `|`. INN and OGRN are
//! checked (length and check digits) and a failing value is dropped with a note.

use std::collections::HashSet;
use std::path::Path;

use csv::StringRecord;

use crate::entry::{EntityKind, IdKind, Identifier, ListSnapshot, LoadProblem};

use super::builder::{EntryBuilder, Notes};
use super::decode::{read_file, utf8_or_windows1251};
use super::progress::Reporter;
use super::version::Fingerprint;
use super::{ListError, Loaded, Progress, dates, file_name, ids};

/// The shape of one kind of list file.
pub(crate) struct Spec {
    pub list: &'static str,
    /// Columns the header must name.
    pub required: &'static [&'static str],
    /// Columns the header may name.
    pub optional: &'static [&'static str],
}

/// One data row, its fields reachable by column name.
pub(crate) struct RowView<'a> {
    columns: &'a [Option<&'static str>],
    record: &'a StringRecord,
    pub id: &'a str,
    pub location: &'a str,
}

impl RowView<'_> {
    /// The trimmed field of the column; `None` when the column is absent or the field blank.
    pub fn get(&self, column: &str) -> Option<&str> {
        let i = self.columns.iter().position(|c| *c == Some(column))?;
        let v = self.record.get(i)?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// The `|`-separated values of the column, trimmed, blanks dropped.
    pub fn values(&self, column: &str) -> Vec<&str> {
        self.get(column)
            .map(|v| {
                v.split('|')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub(crate) fn load(
    path: &Path,
    spec: &Spec,
    progress: &mut dyn FnMut(Progress),
    mut fill: impl FnMut(&RowView<'_>, &mut EntryBuilder, &mut Notes),
) -> Result<Loaded, ListError> {
    let bytes = read_file(path)?;
    let mut fingerprint = Fingerprint::new();
    fingerprint.add_file(spec.list, &bytes);
    let (text, _) = utf8_or_windows1251(&bytes);
    let fname = file_name(path);
    let mut reporter = Reporter::new(progress, bytes.len() as u64);
    drop(bytes);

    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = StringRecord::new();
    let mut notes = Notes::default();
    let header = match reader.read_record(&mut record) {
        Ok(true) => record.clone(),
        Ok(false) => {
            return Err(ListError::format(
                path,
                "line 1",
                "empty file: a header row is required",
            ));
        }
        Err(_) => {
            return Err(ListError::format(
                path,
                "line 1",
                "header row cannot be read",
            ));
        }
    };
    let columns = header_columns(path, &header, spec, &fname, &mut notes)?;

    let mut entries = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let (line, byte) = match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => record.position().map_or((0, 0), |p| (p.line(), p.byte())),
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                problems.push(LoadProblem {
                    entry_id: None,
                    location: format!("{fname} line {line}"),
                    reason: "row cannot be read as csv; row skipped".into(),
                });
                continue;
            }
        };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        reporter.entry(byte);
        let location = format!("{fname} line {line}");
        let id = record_field(&columns, &record, "id");
        let Some(id) = id else {
            problems.push(LoadProblem {
                entry_id: None,
                location,
                reason: "id is empty; row skipped".into(),
            });
            continue;
        };
        if record.len() > columns.len() {
            problems.push(problem(id, &location, format!(
                "{} fields but the header names {}; row skipped (a ';' inside a value must be quoted)",
                record.len(),
                columns.len()
            )));
            continue;
        }
        let Some(name) = record_field(&columns, &record, "name") else {
            problems.push(problem(id, &location, "name is empty; row skipped"));
            continue;
        };
        if !seen.insert(id.to_owned()) {
            problems.push(problem(
                id,
                &location,
                "duplicate id; the first row is kept",
            ));
            continue;
        }
        let kind = match record_field(&columns, &record, "kind")
            .map(str::to_lowercase)
            .as_deref()
        {
            Some("person" | "individual" | "фл" | "физическое лицо") => {
                EntityKind::Person
            }
            Some("organization" | "organisation" | "entity" | "юл" | "юридическое лицо") => {
                EntityKind::Organization
            }
            None => EntityKind::Unknown,
            Some(_) => {
                notes.add(
                    id,
                    &location,
                    "kind is not person or organization; kind left unknown",
                );
                EntityKind::Unknown
            }
        };
        let mut b = EntryBuilder::new(spec.list, id, kind);
        b.name(name, crate::entry::NameStrength::Primary);
        let view = RowView {
            columns: &columns,
            record: &record,
            id,
            location: &location,
        };
        fill(&view, &mut b, &mut notes);
        entries.push(b.finish());
    }
    reporter.finish();
    Ok(Loaded {
        snapshot: ListSnapshot {
            list: spec.list.to_owned(),
            version: fingerprint.finish(),
            published: None,
            entries,
            problems,
        },
        notes: notes.0,
        addresses: Vec::new(),
    })
}

/// Maps header cells to the spec's column names; unknown columns are ignored with a note,
/// missing required ones are an error.
fn header_columns(
    path: &Path,
    header: &StringRecord,
    spec: &Spec,
    fname: &str,
    notes: &mut Notes,
) -> Result<Vec<Option<&'static str>>, ListError> {
    let mut columns = Vec::with_capacity(header.len());
    for cell in header.iter() {
        let cell = cell.trim().to_lowercase();
        let known = spec
            .required
            .iter()
            .chain(spec.optional)
            .find(|c| **c == cell)
            .copied();
        if known.is_none() {
            notes.0.push(LoadProblem {
                entry_id: None,
                location: format!("{fname} line 1"),
                reason: format!("column {cell:?} is not part of the format; ignored"),
            });
        }
        if known.is_some() && columns.contains(&known) {
            return Err(ListError::format(
                path,
                "line 1",
                format!("column {cell} appears twice"),
            ));
        }
        columns.push(known);
    }
    let missing: Vec<&str> = spec
        .required
        .iter()
        .filter(|c| !columns.contains(&Some(**c)))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(ListError::format(
            path,
            "line 1",
            format!("header lacks required column(s): {}", missing.join(", ")),
        ));
    }
    Ok(columns)
}

fn record_field<'r>(
    columns: &[Option<&'static str>],
    record: &'r StringRecord,
    column: &str,
) -> Option<&'r str> {
    let i = columns.iter().position(|c| *c == Some(column))?;
    let v = record.get(i)?.trim();
    (!v.is_empty()).then_some(v)
}

fn problem(id: &str, location: &str, reason: impl Into<String>) -> LoadProblem {
    LoadProblem {
        entry_id: Some(id.to_owned()),
        location: location.to_owned(),
        reason: reason.into(),
    }
}

/// Adds `inn`, `ogrn`, `passport` and `birth_date` columns, common to both formats.
pub(crate) fn common_fields(row: &RowView<'_>, b: &mut EntryBuilder, notes: &mut Notes) {
    for raw in row.values("inn") {
        match mapping::validate::inn(raw) {
            Ok(v) => b.identifier(Identifier {
                kind: IdKind::Inn,
                value: v,
                country: Some("ru".into()),
            }),
            Err(e) => notes.add(row.id, row.location, format!("{e}; value ignored")),
        }
    }
    for raw in row.values("ogrn") {
        match mapping::validate::ogrn(raw) {
            Ok(v) => b.identifier(Identifier {
                kind: IdKind::Ogrn,
                value: v,
                country: Some("ru".into()),
            }),
            Err(e) => notes.add(row.id, row.location, format!("{e}; value ignored")),
        }
    }
    for raw in row.values("passport") {
        match ids::identifier(IdKind::Passport, raw, None) {
            Some(i) => b.identifier(i),
            None => notes.add(
                row.id,
                row.location,
                "field passport: has no digits; value ignored",
            ),
        }
    }
    for raw in row.values("birth_date") {
        match dates::iso_or_dotted(raw) {
            Some(d) => b.birth_date(d),
            None => notes.add(
                row.id,
                row.location,
                "field birth_date: expected yyyy, yyyy-mm, yyyy-mm-dd, mm.yyyy or dd.mm.yyyy; value ignored",
            ),
        }
    }
}
