//! Rules that override the score: deterministic keys that make a match certain, and hard
//! non-match rules that keep apart records the score alone would join.
//!
//! Deterministic keys: a valid INN, SNILS, passport or OGRN shared by two records of the
//! same kind (person or organisation), or a known cross-reference (one record's source
//! system and id named by the other, or the same source record twice). A key value shared by
//! more than `max_group` records is a placeholder or a data error, not a person: it is
//! reported and not used.
//!
//! Hard non-matches, unless the pair agrees on a national id (or the other id within one
//! typo): the patronymics differ (father and son share a name and an address, not a
//! patronymic); the generation markers differ (jr / sr); the birth dates differ by more
//! than a typo, a day–month swap or a lost day and month (namesakes, father and son); the
//! given names differ by more than a typo (twins, siblings, spouses).

use serde::{Deserialize, Serialize};

use super::comparisons::{Comparison, Levels};
use super::prepare::{
    Features, GEN_NONE, ID_INN, ID_OGRN, ID_PASSPORT, ID_SNILS, RecordSet, fnv64,
};

/// A key whose agreement makes two records one party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeterministicKey {
    /// Taxpayer number.
    Inn,
    /// Pension insurance number.
    Snils,
    /// Passport series and number.
    Passport,
    /// State registration number.
    Ogrn,
    /// A known cross-reference (source system + id).
    CrossReference,
}

/// Why a well-scoring pair is kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HardNonMatch {
    /// Different patronymics.
    Patronymic,
    /// Different generation markers (junior, senior).
    Generation,
    /// Birth dates further apart than a typo.
    BirthDate,
    /// Clearly different given names.
    GivenName,
}

const ID_KEYS: [(usize, DeterministicKey); 4] = [
    (ID_INN, DeterministicKey::Inn),
    (ID_SNILS, DeterministicKey::Snils),
    (ID_PASSPORT, DeterministicKey::Passport),
    (ID_OGRN, DeterministicKey::Ogrn),
];

/// The national id two records share, if any (records of different kinds share none).
pub(crate) fn shared_id(a: &Features, b: &Features) -> Option<DeterministicKey> {
    if a.organisation != b.organisation {
        return None;
    }
    ID_KEYS
        .iter()
        .find(|(i, _)| a.ids[*i] != 0 && a.ids[*i] == b.ids[*i])
        .map(|(_, k)| *k)
}

/// The hard non-match rule a pair breaks, given its comparison levels.
pub(crate) fn hard_non_match(levels: &Levels, a: &Features, b: &Features) -> Option<HardNonMatch> {
    let level = |c: Comparison| levels[c as usize];
    let id_agrees =
        level(Comparison::NationalId) == 1 || matches!(level(Comparison::OtherId), 1 | 2);
    if id_agrees {
        return None;
    }
    if level(Comparison::Patronymic) == Comparison::Patronymic.different() {
        return Some(HardNonMatch::Patronymic);
    }
    if a.generation != GEN_NONE && b.generation != GEN_NONE && a.generation != b.generation {
        return Some(HardNonMatch::Generation);
    }
    if level(Comparison::BirthDate) == Comparison::BirthDate.different() {
        return Some(HardNonMatch::BirthDate);
    }
    // Given names that are neither equal nor a typo apart (JW below 0.92, more than one
    // edit) are different names: Владислав and Владимир are twins, not one person.
    if level(Comparison::GivenName) >= 3 {
        return Some(HardNonMatch::GivenName);
    }
    None
}

/// A pair joined by a deterministic key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyPair {
    pub a: u32,
    pub b: u32,
    pub key: DeterministicKey,
}

/// Pairs that chain every group of records sharing a deterministic key (each member joined
/// to the group's first), and the number of groups skipped as larger than `max_group`.
pub(crate) fn deterministic_pairs(set: &RecordSet, max_group: usize) -> (Vec<KeyPair>, u64) {
    let mut rows: Vec<(u64, u32, DeterministicKey)> = Vec::new();
    for (i, f) in set.features.iter().enumerate() {
        for (slot, key) in ID_KEYS {
            let v = f.ids[slot];
            if v != 0 {
                let h = fnv64(&[&[key as u8, u8::from(f.organisation)], &v.to_le_bytes()]);
                rows.push((h, i as u32, key));
            }
        }
    }
    for &(h, i) in &set.refs {
        rows.push((
            h ^ 0x5eed_0000_0000_0001,
            i,
            DeterministicKey::CrossReference,
        ));
    }
    rows.sort_unstable_by_key(|r| (r.0, r.1));
    let mut pairs = Vec::new();
    let mut skipped = 0;
    let mut start = 0;
    while start < rows.len() {
        let mut end = start + 1;
        while end < rows.len() && rows[end].0 == rows[start].0 {
            end += 1;
        }
        let group = &rows[start..end];
        if group.len() > max_group {
            skipped += 1;
        } else {
            let first = group[0].1;
            for r in &group[1..] {
                if r.1 != first {
                    pairs.push(KeyPair {
                        a: first,
                        b: r.1,
                        key: r.2,
                    });
                }
            }
        }
        start = end;
    }
    (pairs, skipped)
}
