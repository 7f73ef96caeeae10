//! Loader tests on small files written by the tests themselves.

mod diff;
mod eu;
mod national;
mod ofac;
mod un;

use std::path::{Path, PathBuf};

use crate::entry::{EntryName, ListEntry, NameStrength};
use crate::lists::Progress;

/// A temporary directory with a helper to write files into it.
pub(super) struct TempDir(tempfile::TempDir);

impl TempDir {
    pub(super) fn new() -> Self {
        TempDir(tempfile::tempdir().unwrap())
    }

    pub(super) fn path(&self) -> &Path {
        self.0.path()
    }

    pub(super) fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Collects every progress call.
#[derive(Default)]
pub(super) struct Calls(pub Vec<Progress>);

impl Calls {
    pub(super) fn callback(&mut self) -> impl FnMut(Progress) + '_ {
        |p| self.0.push(p)
    }
}

pub(super) fn entry<'a>(entries: &'a [ListEntry], id: &str) -> &'a ListEntry {
    entries
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("entry {id} not loaded"))
}

pub(super) fn names(e: &ListEntry) -> Vec<(&str, NameStrength)> {
    e.names
        .iter()
        .map(|EntryName { full, strength }| (full.as_str(), *strength))
        .collect()
}
