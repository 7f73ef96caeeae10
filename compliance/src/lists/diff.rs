//! What changed between two versions of one list, so that only the parties affected by the
//! change are screened again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::entry::{ListEntry, ListSnapshot};

/// Entry ids, each list sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDiff {
    /// In the new version only.
    pub added: Vec<String>,
    /// In the old version only.
    pub removed: Vec<String>,
    /// In both, with any difference (names, dates, identifiers, programmes, kind, ...).
    pub changed: Vec<String>,
}

impl ListDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Compares two snapshots of the same list by entry id.
///
/// Entries are compared whole; the order of names or dates within an entry counts as a change
/// only when the list itself reordered them (the loaders keep the list's order). If a snapshot
/// held an id twice (loaders report the second as a problem and skip it) the first is used.
pub fn diff(old: &ListSnapshot, new: &ListSnapshot) -> ListDiff {
    let old_by_id = by_id(&old.entries);
    let new_by_id = by_id(&new.entries);
    let mut out = ListDiff::default();
    for (id, new_entry) in &new_by_id {
        match old_by_id.get(id) {
            None => out.added.push((*id).to_owned()),
            Some(old_entry) if old_entry != new_entry => out.changed.push((*id).to_owned()),
            Some(_) => {}
        }
    }
    for id in old_by_id.keys() {
        if !new_by_id.contains_key(id) {
            out.removed.push((*id).to_owned());
        }
    }
    out
}

fn by_id(entries: &[ListEntry]) -> BTreeMap<&str, &ListEntry> {
    let mut map = BTreeMap::new();
    for e in entries {
        map.entry(e.id.as_str()).or_insert(e);
    }
    map
}
