//! The configured lists: loading them, comparing each with the version loaded last time, and
//! the entries a change touched.

use std::path::Path;

use anyhow::Context;

use compliance::lists::{self, Progress};
use compliance::{ListEntry, ListSnapshot};

use super::store::{ComplianceStore, ListVersion};
use crate::config::{ComplianceSection, ListConfig, ListFormat};

/// One list as loaded now, with what was loaded before.
pub struct LoadedList {
    pub snapshot: ListSnapshot,
    /// The snapshot stored by the previous load, if any.
    pub previous: Option<ListSnapshot>,
}

impl LoadedList {
    /// A new version (or the first load) of this list.
    pub fn changed(&self) -> bool {
        self.previous
            .as_ref()
            .is_none_or(|p| p.version != self.snapshot.version)
    }

    pub fn version(&self) -> ListVersion {
        ListVersion {
            name: self.snapshot.list.clone(),
            version: self.snapshot.version.clone(),
            published: self.snapshot.published.clone(),
            loaded_at: chrono::Utc::now().to_rfc3339(),
            entries: self.snapshot.entries.len() as u64,
        }
    }
}

/// Loads one configured list; the entries carry the configured list name.
pub fn load(cfg: &ListConfig, base_dir: &Path) -> anyhow::Result<ListSnapshot> {
    let path = if cfg.path.is_absolute() {
        cfg.path.clone()
    } else {
        base_dir.join(&cfg.path)
    };
    let name = cfg.name.clone();
    let mut last_logged = 0u64;
    let mut progress = |p: Progress| {
        if p.entries_done >= last_logged + 10_000 {
            last_logged = p.entries_done;
            tracing::info!(
                event = "list_load_progress",
                list = %name,
                entries = p.entries_done,
                bytes_done = p.bytes_done,
                bytes_total = p.bytes_total,
                "loading sanctions list"
            );
        }
    };
    let loaded = match cfg.format {
        ListFormat::OfacCsv => lists::ofac::load(&path, &mut progress),
        ListFormat::UnXml => lists::un::load(&path, &mut progress),
        ListFormat::EuXml => lists::eu::load(&path, &mut progress),
        ListFormat::NationalCsv => lists::national::load(&path, &mut progress),
        ListFormat::OwnCsv => lists::own::load(&path, &mut progress),
    }
    .with_context(|| format!("list {}", cfg.name))?;
    for p in &loaded.problems {
        // Ids and locations only: entries' names stay out of the log.
        tracing::warn!(
            event = "list_entry_skipped",
            list = %cfg.name,
            entry = p.entry_id.as_deref().unwrap_or("?"),
            location = %p.location,
            reason = %p.reason,
            "list entry skipped"
        );
    }
    let mut snapshot = loaded;
    snapshot.list = cfg.name.clone();
    for e in &mut snapshot.entries {
        e.list = cfg.name.clone();
    }
    Ok(snapshot)
}

/// Loads every configured list and pairs it with its stored previous version.
pub fn load_all(
    section: &ComplianceSection,
    base_dir: &Path,
    store: &ComplianceStore,
) -> anyhow::Result<Vec<LoadedList>> {
    let mut out = Vec::with_capacity(section.lists.len());
    for cfg in &section.lists {
        let snapshot = load(cfg, base_dir)?;
        let previous =
            match store.list_snapshot(&cfg.name)? {
                Some((v, _)) if v.version == snapshot.version => Some(ListSnapshot {
                    entries: Vec::new(),
                    problems: Vec::new(),
                    ..snapshot.clone()
                }),
                Some((_, text)) => Some(serde_json::from_str(&text).with_context(|| {
                    format!("stored snapshot of list {} cannot be read", cfg.name)
                })?),
                None => None,
            };
        out.push(LoadedList { snapshot, previous });
    }
    Ok(out)
}

/// The entries of changed lists that were added or changed since the previous load (all
/// entries of a list loaded for the first time).
pub fn touched_entries(changed: &[&LoadedList]) -> Vec<ListEntry> {
    let mut out = Vec::new();
    for l in changed {
        match &l.previous {
            None => out.extend(l.snapshot.entries.iter().cloned()),
            Some(prev) => {
                let d = lists::diff(prev, &l.snapshot);
                let wanted: std::collections::HashSet<&str> = d
                    .added
                    .iter()
                    .chain(d.changed.iter())
                    .map(String::as_str)
                    .collect();
                out.extend(
                    l.snapshot
                        .entries
                        .iter()
                        .filter(|e| wanted.contains(e.id.as_str()))
                        .cloned(),
                );
            }
        }
    }
    out
}
