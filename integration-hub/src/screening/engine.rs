//! The loaded lists behind one `screen` call, and the hit as stored and published.

use serde::{Deserialize, Serialize};

use compliance::index::Index;
use compliance::{ListEntry, ListSnapshot, Subject};

/// A hit as cases, the compliance topic and the API carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HitView {
    pub list: String,
    pub entry_id: String,
    /// 0..1; the configured threshold decides what is a hit.
    pub score: f64,
    /// The party's name that matched.
    pub query_name: String,
    /// The list entry's name it matched.
    pub matched_name: String,
    /// How the score came about (name parts, identifiers, birth date, nationality).
    pub explanation: serde_json::Value,
}

pub struct Engine {
    index: Index,
    threshold: f64,
    versions: Vec<(String, String)>,
    entries: usize,
}

impl Engine {
    /// No lists loaded yet: every party is clear.
    pub fn empty(threshold: f64) -> Engine {
        Engine::build_from_entries(Vec::new(), threshold)
    }

    pub fn build<'a>(snapshots: impl Iterator<Item = &'a ListSnapshot>, threshold: f64) -> Engine {
        let mut entries = Vec::new();
        let mut versions = Vec::new();
        for s in snapshots {
            versions.push((s.list.clone(), s.version.clone()));
            entries.extend(s.entries.iter().cloned());
        }
        let mut e = Engine::build_from_entries(entries, threshold);
        e.versions = versions;
        e
    }

    pub fn build_from_entries(entries: Vec<ListEntry>, threshold: f64) -> Engine {
        let n = entries.len();
        Engine {
            index: Index::build(entries),
            threshold,
            versions: Vec::new(),
            entries: n,
        }
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// (list name, version) of every loaded list.
    pub fn versions(&self) -> &[(String, String)] {
        &self.versions
    }

    pub fn screen(&self, subject: &Subject) -> Vec<HitView> {
        if self.entries == 0 {
            return Vec::new();
        }
        self.index
            .screen(subject, self.threshold)
            .into_iter()
            .map(|h| HitView {
                explanation: serde_json::to_value(&h.parts).unwrap_or(serde_json::Value::Null),
                list: h.list,
                entry_id: h.entry_id,
                score: h.score,
                query_name: h.query_name,
                matched_name: h.matched_name,
            })
            .collect()
    }
}
