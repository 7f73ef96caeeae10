//! A national list (for example the Rosfinmonitoring list of organisations and persons
//! involved in extremism or terrorism), which banks receive in formats of their own and convert
//! to this documented CSV shape (see `docs/compliance-lists.md`):
//!
//! `id;kind;name;aliases;birth_date;birth_place;inn;ogrn;passport;nationality;program`
//!
//! UTF-8 or windows-1251, header row required (columns in any order; `id`, `kind`, `name`
//! required). `aliases`, `birth_date`, `passport`, `nationality` may hold several values
//! separated by `|`. `nationality` takes ISO alpha-2 codes or country names (English or
//! Russian). `birth_place` is accepted but not kept: the shared entry model has no field for it.
//! Shared rules: [`super::stoplist`].

use std::path::Path;

use crate::entry::{ListSnapshot, NameStrength};

use super::stoplist::{self, Spec, common_fields};
use super::{ListError, Loaded, Progress, country};

/// The `list` of the entries.
pub const LIST: &str = "national";

const SPEC: Spec = Spec {
    list: LIST,
    required: &["id", "kind", "name"],
    optional: &[
        "aliases",
        "birth_date",
        "birth_place",
        "inn",
        "ogrn",
        "passport",
        "nationality",
        "program",
    ],
};

/// Loads the list; see [`load_detailed`] for the notes.
pub fn load(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<ListSnapshot, ListError> {
    load_detailed(path, progress).map(|l| l.snapshot)
}

/// Loads the list, with the values dropped from kept entries (notes).
pub fn load_detailed(path: &Path, progress: &mut dyn FnMut(Progress)) -> Result<Loaded, ListError> {
    stoplist::load(path, &SPEC, progress, |row, b, notes| {
        for alias in row.values("aliases") {
            b.name(alias, NameStrength::Alias);
        }
        common_fields(row, b, notes);
        for value in row.values("nationality") {
            match country::from_code_or_name(value) {
                Some(code) => b.nationality(code),
                None => notes.add(
                    row.id,
                    row.location,
                    format!("field nationality: {value:?} is not a known country code or name; value ignored"),
                ),
            }
        }
        for p in row.values("program") {
            b.program(p);
        }
    })
}
