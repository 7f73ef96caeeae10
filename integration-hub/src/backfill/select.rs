//! Which records a backfill re-sends: every record, the ids named, a deterministic pilot
//! sample, or the sample of the ids named.
//!
//! The sample is a pure function of (source name, source id): a record is in a sample of
//! `PCT` percent when SHA-256(source name ‖ source id) — the UTF-8 bytes of both, one after
//! the other, read as one big-endian integer — modulo 10,000 is below `PCT × 100`. So the
//! same records are chosen on every run and on every machine, a 10% pilot is contained in a
//! 20% one, and the full run after a pilot re-sends a superset of it.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// Buckets of the sample: a percentage has two decimals.
pub const BUCKETS: u32 = 10_000;

/// The selection of one backfill.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    ids: Option<HashSet<String>>,
    /// Buckets in the sample (`PCT × 100`), when sampling.
    sample_below: Option<u32>,
}

impl Selection {
    /// Every record.
    pub fn all() -> Selection {
        Selection::default()
    }

    /// Only these ids (and, with `sample_pct`, only those of them in the sample); a sample
    /// of `sample_pct` percent (0 to 100, two decimals at most).
    pub fn new(ids: Option<HashSet<String>>, sample_pct: Option<f64>) -> anyhow::Result<Selection> {
        let sample_below = match sample_pct {
            None => None,
            Some(p) if !(0.0..=100.0).contains(&p) || !p.is_finite() => {
                bail!("--sample must be a percentage from 0 to 100, got {p}")
            }
            Some(p) => {
                let buckets = (p * 100.0).round();
                if (buckets - p * 100.0).abs() > 1e-6 {
                    bail!("--sample has at most two decimals (buckets of 0.01%), got {p}");
                }
                // In 0..=10,000 by the check above.
                Some(buckets as u32)
            }
        };
        if ids.as_ref().is_some_and(HashSet::is_empty) {
            bail!("the id list is empty");
        }
        Ok(Selection { ids, sample_below })
    }

    /// Whether the record `id` of `source` is selected.
    pub fn selects(&self, source: &str, id: &str) -> bool {
        self.ids.as_ref().is_none_or(|ids| ids.contains(id))
            && self
                .sample_below
                .is_none_or(|below| sample_bucket(source, id) < below)
    }

    /// The ids named, when the selection is by id.
    pub fn ids(&self) -> Option<&HashSet<String>> {
        self.ids.as_ref()
    }

    /// The sample in percent, when sampling.
    pub fn sample_pct(&self) -> Option<f64> {
        self.sample_below.map(|b| f64::from(b) / 100.0)
    }
}

/// SHA-256(source ‖ id) as a big-endian integer, modulo [`BUCKETS`].
pub fn sample_bucket(source: &str, id: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(source.as_bytes())
        .chain_update(id.as_bytes())
        .finalize();
    digest
        .iter()
        .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % BUCKETS)
}

/// `--ids A,B,C`: the ids, trimmed, empty ones left out.
pub fn ids_of_list(list: &[String]) -> HashSet<String> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `--ids-file F`: one id per line (UTF-8); blank lines and lines starting with `#` are
/// skipped, spaces around an id are not part of it.
pub fn ids_of_file(path: &Path) -> anyhow::Result<HashSet<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the id file {}", path.display()))?;
    let ids: HashSet<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if ids.is_empty() {
        bail!("{}: no ids in the file", path.display());
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("C{i:08}")).collect()
    }

    #[test]
    fn bucket_is_the_digest_modulo_10000() {
        // SHA-256("ab") computed independently, reduced by long division.
        let digest = Sha256::digest(b"ab");
        let mut big = 0u128;
        let mut reduced = 0u32;
        for b in digest {
            reduced = (reduced * 256 + u32::from(b)) % BUCKETS;
            big = (big * 256 + u128::from(b)) % u128::from(BUCKETS);
        }
        assert_eq!(u128::from(reduced), big);
        assert_eq!(sample_bucket("a", "b"), reduced);
        // Source and id are simply concatenated.
        assert_eq!(sample_bucket("a", "b"), sample_bucket("", "ab"));
    }

    #[test]
    fn the_sample_is_deterministic_and_close_to_the_percentage() {
        let all = ids(100_000);
        let s10 = Selection::new(None, Some(10.0)).unwrap();
        let chosen: Vec<&String> = all.iter().filter(|id| s10.selects("abs", id)).collect();
        // 10% of 100,000 is 10,000; the binomial spread is about ±95 (1σ).
        assert!((9_500..=10_500).contains(&chosen.len()), "{}", chosen.len());
        // The same records on a second run, and from a fresh selection.
        let again = Selection::new(None, Some(10.0)).unwrap();
        let chosen_again: Vec<&String> = all.iter().filter(|id| again.selects("abs", id)).collect();
        assert_eq!(chosen, chosen_again);
        // A 10% pilot is inside the 20% and the full run.
        let s20 = Selection::new(None, Some(20.0)).unwrap();
        assert!(chosen.iter().all(|id| s20.selects("abs", id)));
        assert!(chosen.iter().all(|id| Selection::all().selects("abs", id)));
        // Another source gives another sample of the same ids.
        let other: Vec<&String> = all.iter().filter(|id| s10.selects("cards", id)).collect();
        assert_ne!(chosen, other);
    }

    #[test]
    fn edges_and_small_percentages() {
        let all = ids(20_000);
        let none = Selection::new(None, Some(0.0)).unwrap();
        assert!(all.iter().all(|id| !none.selects("abs", id)));
        let full = Selection::new(None, Some(100.0)).unwrap();
        assert!(all.iter().all(|id| full.selects("abs", id)));
        let half_pct = Selection::new(None, Some(0.5)).unwrap();
        let n = all.iter().filter(|id| half_pct.selects("abs", id)).count();
        assert!((60..=140).contains(&n), "{n}");
        assert_eq!(half_pct.sample_pct(), Some(0.5));
        for bad in [-1.0, 100.5, f64::NAN, 10.005] {
            assert!(Selection::new(None, Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_and_sample_together() {
        let named: HashSet<String> = ids(1000).into_iter().collect();
        let only = Selection::new(Some(named.clone()), None).unwrap();
        assert!(only.selects("abs", "C00000001"));
        assert!(!only.selects("abs", "X"));
        let both = Selection::new(Some(named.clone()), Some(10.0)).unwrap();
        let n = named.iter().filter(|id| both.selects("abs", id)).count();
        assert!((50..=150).contains(&n), "{n}");
        assert!(!both.selects("abs", "X"));
        assert!(Selection::new(Some(HashSet::new()), None).is_err());
    }

    #[test]
    fn id_lists_and_files() {
        let list = ids_of_list(&[" A ".into(), String::new(), "B".into(), "A".into()]);
        assert_eq!(list.len(), 2);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ids.txt");
        std::fs::write(&f, "# pilot\nC1\n\n  C2  \nC1\n").unwrap();
        let got = ids_of_file(&f).unwrap();
        assert_eq!(got, ["C1", "C2"].iter().map(|s| s.to_string()).collect());
        std::fs::write(&f, "# nothing\n").unwrap();
        assert!(ids_of_file(&f).is_err());
        assert!(ids_of_file(&dir.path().join("missing")).is_err());
    }
}
