//! Assembling one [`ListEntry`] without duplicate names, dates or identifiers.

use crate::entry::{
    EntityKind, EntryName, Identifier, ListEntry, LoadProblem, NameStrength, PartialDate,
};

pub(crate) struct EntryBuilder {
    entry: ListEntry,
}

impl EntryBuilder {
    pub(crate) fn new(list: &str, id: &str, kind: EntityKind) -> Self {
        EntryBuilder {
            entry: ListEntry {
                list: list.to_owned(),
                id: id.to_owned(),
                kind,
                names: Vec::new(),
                birth_dates: Vec::new(),
                nationalities: Vec::new(),
                identifiers: Vec::new(),
                programs: Vec::new(),
                is_pep: false,
            },
        }
    }

    pub(crate) fn has_name(&self) -> bool {
        !self.entry.names.is_empty()
    }

    /// Adds a name with runs of whitespace collapsed; see [`add_name`].
    pub(crate) fn name(&mut self, full: &str, strength: NameStrength) {
        add_name(&mut self.entry, full, strength);
    }

    pub(crate) fn birth_date(&mut self, d: PartialDate) {
        if !self.entry.birth_dates.contains(&d) {
            self.entry.birth_dates.push(d);
        }
    }

    pub(crate) fn nationality(&mut self, iso2: &str) {
        if !self.entry.nationalities.iter().any(|n| n == iso2) {
            self.entry.nationalities.push(iso2.to_owned());
        }
    }

    pub(crate) fn identifier(&mut self, id: Identifier) {
        if !self.entry.identifiers.contains(&id) {
            self.entry.identifiers.push(id);
        }
    }

    pub(crate) fn program(&mut self, p: &str) {
        let p = collapse_spaces(p);
        if !p.is_empty() && !self.entry.programs.contains(&p) {
            self.entry.programs.push(p);
        }
    }

    pub(crate) fn finish(self) -> ListEntry {
        self.entry
    }
}

/// Adds a name to an entry: blank names are skipped; a name already present keeps its place
/// and takes the stronger of the two strengths (a list may give the same name as a weak alias
/// in one place and as a good alias in another).
pub(crate) fn add_name(entry: &mut ListEntry, full: &str, strength: NameStrength) {
    let full = collapse_spaces(full);
    if full.is_empty() {
        return;
    }
    match entry.names.iter_mut().find(|n| n.full == full) {
        Some(existing) => {
            if rank(strength) > rank(existing.strength) {
                existing.strength = strength;
            }
        }
        None => entry.names.push(EntryName { full, strength }),
    }
}

fn rank(s: NameStrength) -> u8 {
    match s {
        NameStrength::Weak => 0,
        NameStrength::Alias => 1,
        NameStrength::Primary => 2,
    }
}

pub(crate) fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Notes about values dropped from kept entries.
#[derive(Default)]
pub(crate) struct Notes(pub Vec<LoadProblem>);

impl Notes {
    pub(crate) fn add(&mut self, entry_id: &str, location: &str, reason: impl Into<String>) {
        self.0.push(LoadProblem {
            entry_id: Some(entry_id.to_owned()),
            location: location.to_owned(),
            reason: reason.into(),
        });
    }
}
