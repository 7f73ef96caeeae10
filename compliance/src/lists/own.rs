//! The bank's own stop-list, a CSV file the bank keeps (see `docs/compliance-lists.md`):
//!
//! `id;kind;name;inn;ogrn;passport;birth_date;reason`
//!
//! UTF-8 or windows-1251, header row required (columns in any order; `id`, `kind`, `name`
//! required). `reason` (why the bank listed the party) is kept as the entry's programme so that
//! a hit shows it. Shared rules: [`super::stoplist`].

use std::path::Path;

use crate::entry::ListSnapshot;

use super::stoplist::{self, Spec, common_fields};
use super::{ListError, Loaded, Progress};

/// The `list` of the entries.
pub const LIST: &str = "own";

const SPEC: Spec = Spec {
    list: LIST,
    required: &["id", "kind", "name"],
    optional: &["inn", "ogrn", "passport", "birth_date", "reason"],
};

/// Loads the list; see [`load_detailed`] for the notes.
pub fn load(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<ListSnapshot, ListError> {
    load_detailed(path, progress).map(|l| l.snapshot)
}

/// Loads the list, with the values dropped from kept entries (notes).
pub fn load_detailed(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Loaded, ListError> {
    stoplist::load(path, &SPEC, progress, |row, b, notes| {
        common_fields(row, b, notes);
        if let Some(reason) = row.get("reason") {
            b.program(reason);
        }
    })
}
