//! Blocking: which pairs are compared at all, so that cost grows with the number of records
//! rather than its square.
//!
//! Contract: each blocking key maps a record to a block (records without the key's inputs
//! are in none). Records are sorted by (block, neighbourhood order), and a record is compared
//! with the records of its block that lie within `window` places of it in that order. A
//! block no larger than `window + 1` is thus compared in full; a larger one (a common
//! surname in a common birth year) costs at most `2 × window` comparisons per record, with
//! the nearest spellings of the neighbourhood field next to each other. A pair found by
//! several keys is compared once.

use serde::{Deserialize, Serialize};

use super::comparisons::Comparison;
use super::prepare::{Features, Interner, fnv64};

/// A blocking key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockingKey {
    /// First four key symbols of the surname and the birth year; ordered by given name.
    SurnameYear,
    /// Given-name key and postcode; ordered by surname.
    GivenPostcode,
    /// Surname key and postcode; ordered by given name.
    SurnamePostcode,
    /// First four symbols of given name and surname, in either order (catches swapped
    /// names); ordered by birth date.
    NamePair,
    /// Full birth date; ordered by surname.
    BirthDate,
    /// Phone number; ordered by surname.
    Phone,
    /// E-mail address; ordered by surname.
    Email,
    /// The other id (FEBRL's social security id); ordered by surname.
    OtherId,
}

impl BlockingKey {
    /// The default set: every key.
    pub const ALL: [BlockingKey; 8] = [
        BlockingKey::SurnameYear,
        BlockingKey::GivenPostcode,
        BlockingKey::SurnamePostcode,
        BlockingKey::NamePair,
        BlockingKey::BirthDate,
        BlockingKey::Phone,
        BlockingKey::Email,
        BlockingKey::OtherId,
    ];
}

impl BlockingKey {
    /// Comparisons whose agreement the key forces or makes likely among the pairs it
    /// finds: when m is estimated on this key's pairs, these are left out, since the pairs
    /// that are not matches agree on them far more often than random pairs do.
    pub(crate) fn tied(self) -> &'static [Comparison] {
        match self {
            BlockingKey::SurnameYear => &[Comparison::Surname, Comparison::BirthDate],
            BlockingKey::GivenPostcode => &[
                Comparison::GivenName,
                Comparison::Postcode,
                Comparison::StreetNumber,
                Comparison::Street,
                Comparison::AddressExtra,
                Comparison::Locality,
                Comparison::Region,
            ],
            BlockingKey::SurnamePostcode => &[
                Comparison::Surname,
                Comparison::Postcode,
                Comparison::StreetNumber,
                Comparison::Street,
                Comparison::AddressExtra,
                Comparison::Locality,
                Comparison::Region,
            ],
            BlockingKey::NamePair => &[Comparison::GivenName, Comparison::Surname],
            BlockingKey::BirthDate => &[Comparison::BirthDate],
            // A household shares a landline: surname and address agree among non-matches.
            BlockingKey::Phone => &[
                Comparison::Phone,
                Comparison::Surname,
                Comparison::Postcode,
                Comparison::StreetNumber,
                Comparison::Street,
                Comparison::AddressExtra,
                Comparison::Locality,
                Comparison::Region,
            ],
            // A mailbox is usually made of the names: they agree among non-matches too.
            BlockingKey::Email => &[
                Comparison::Email,
                Comparison::GivenName,
                Comparison::Surname,
            ],
            BlockingKey::OtherId => &[Comparison::OtherId],
        }
    }
}

/// The first `n` characters of a key.
fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The first eight bytes of a key as a big-endian number: sorts like the text.
fn pack8(s: &str) -> u64 {
    let mut b = [0u8; 8];
    for (slot, x) in b.iter_mut().zip(s.bytes()) {
        *slot = x;
    }
    u64::from_be_bytes(b)
}

/// The first four bytes of `a` then of `b`: sorts by `a`, then `b`.
fn pack4_4(a: &str, b: &str) -> u64 {
    (pack8(a) & 0xffff_ffff_0000_0000) | (pack8(b) >> 32)
}

/// The block of a record under `key` and its order inside the block; `None` when the record
/// lacks the key's inputs.
pub(crate) fn block_of(key: BlockingKey, f: &Features, s: &Interner) -> Option<(u64, u64)> {
    let kind = [u8::from(f.organisation)];
    let tag = [key as u8];
    let surname = s.get(f.surname);
    let given = s.get(f.given);
    match key {
        BlockingKey::SurnameYear => {
            if f.surname == 0 || f.dob == 0 {
                return None;
            }
            let year = (f.dob / 10_000).to_le_bytes();
            let h = fnv64(&[&tag, &kind, prefix(surname, 4).as_bytes(), &year]);
            // Same given name and birthday next to each other.
            let order = (pack8(given) & 0xffff_ffff_0000_0000) | u64::from(f.dob % 10_000);
            Some((h, order))
        }
        BlockingKey::GivenPostcode => {
            if f.given == 0 || f.postcode == 0 {
                return None;
            }
            let h = fnv64(&[&tag, &kind, given.as_bytes(), s.get(f.postcode).as_bytes()]);
            Some((h, pack8(surname)))
        }
        BlockingKey::SurnamePostcode => {
            if f.surname == 0 || f.postcode == 0 {
                return None;
            }
            let h = fnv64(&[
                &tag,
                &kind,
                surname.as_bytes(),
                s.get(f.postcode).as_bytes(),
            ]);
            Some((h, pack4_4(given, s.get(f.street_number))))
        }
        BlockingKey::NamePair => {
            if f.given == 0 || f.surname == 0 {
                return None;
            }
            let (a, b) = (prefix(given, 4), prefix(surname, 4));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let h = fnv64(&[&tag, &kind, lo.as_bytes(), hi.as_bytes()]);
            Some((h, u64::from(f.dob)))
        }
        BlockingKey::BirthDate => {
            if f.dob == 0 {
                return None;
            }
            let h = fnv64(&[&tag, &kind, &f.dob.to_le_bytes()]);
            Some((h, pack4_4(surname, given)))
        }
        BlockingKey::Phone => {
            if f.phone == 0 {
                return None;
            }
            let h = fnv64(&[&tag, &kind, &f.phone.to_le_bytes()]);
            Some((h, pack8(surname)))
        }
        BlockingKey::Email => {
            if f.email == 0 {
                return None;
            }
            let h = fnv64(&[&tag, &kind, s.get(f.email).as_bytes()]);
            Some((h, pack8(surname)))
        }
        BlockingKey::OtherId => {
            if f.other_id == 0 {
                return None;
            }
            let h = fnv64(&[&tag, &kind, s.get(f.other_id).as_bytes()]);
            Some((h, pack8(surname)))
        }
    }
}

/// One key's sorted order.
#[derive(Debug, Default)]
struct KeyIndex {
    /// Record numbers in (block, order) order.
    order: Vec<u32>,
    /// Block hash at each position of `order`.
    block: Vec<u64>,
    /// Position of each record in `order`; `u32::MAX` when the record has no block.
    pos: Vec<u32>,
}

/// Sorted neighbourhoods for every blocking key.
#[derive(Debug)]
pub(crate) struct BlockIndex {
    keys: Vec<KeyIndex>,
    window: usize,
}

/// Size statistics of the blocks, for the run's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Records placed in a block, summed over keys.
    pub placed: u64,
    /// Blocks larger than `window + 1` (compared by neighbourhood, not in full).
    pub windowed_blocks: u64,
    /// The largest block.
    pub largest_block: u64,
}

impl BlockIndex {
    /// Sorts the records under each key, keys spread over `threads` threads.
    pub(crate) fn build(
        features: &[Features],
        strings: &Interner,
        keys: &[BlockingKey],
        window: usize,
        threads: usize,
    ) -> (Self, BlockStats) {
        let build_one = |key: BlockingKey| -> (KeyIndex, BlockStats) {
            let mut rows: Vec<(u64, u64, u32)> = features
                .iter()
                .enumerate()
                .filter_map(|(i, f)| block_of(key, f, strings).map(|(b, o)| (b, o, i as u32)))
                .collect();
            rows.sort_unstable();
            let mut pos = vec![u32::MAX; features.len()];
            for (p, r) in rows.iter().enumerate() {
                pos[r.2 as usize] = p as u32;
            }
            let mut stats = BlockStats {
                placed: rows.len() as u64,
                ..BlockStats::default()
            };
            let mut run = 0u64;
            for (p, r) in rows.iter().enumerate() {
                if p > 0 && rows[p - 1].0 == r.0 {
                    run += 1;
                } else {
                    run = 1;
                }
                stats.largest_block = stats.largest_block.max(run);
                if run == window as u64 + 2 {
                    stats.windowed_blocks += 1;
                }
            }
            let idx = KeyIndex {
                order: rows.iter().map(|r| r.2).collect(),
                block: rows.iter().map(|r| r.0).collect(),
                pos,
            };
            (idx, stats)
        };
        let threads = threads.max(1);
        let mut built: Vec<Option<(KeyIndex, BlockStats)>> =
            (0..keys.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            for (t, slots) in built
                .chunks_mut(keys.len().div_ceil(threads).max(1))
                .enumerate()
            {
                let per = keys.len().div_ceil(threads).max(1);
                let build_one = &build_one;
                s.spawn(move || {
                    for (i, slot) in slots.iter_mut().enumerate() {
                        if let Some(&k) = keys.get(t * per + i) {
                            *slot = Some(build_one(k));
                        }
                    }
                });
            }
        });
        let mut stats = BlockStats::default();
        let mut indexes = Vec::with_capacity(keys.len());
        for (slot, &key) in built.into_iter().zip(keys) {
            // A builder thread that panicked (a bug) leaves its slot empty: build it here.
            let (idx, st) = slot.unwrap_or_else(|| build_one(key));
            stats.placed += st.placed;
            stats.windowed_blocks += st.windowed_blocks;
            stats.largest_block = stats.largest_block.max(st.largest_block);
            indexes.push(idx);
        }
        (
            BlockIndex {
                keys: indexes,
                window: window.max(1),
            },
            stats,
        )
    }

    /// The records to compare with record `i`: those with a higher number sharing a block
    /// within the window, each once, in increasing order.
    pub(crate) fn candidates(&self, i: u32, out: &mut Vec<u32>) {
        out.clear();
        for k in &self.keys {
            self.push_neighbours(k, i, out);
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Number of keys indexed.
    pub(crate) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Like [`Self::candidates`] under the `key`-th key alone.
    pub(crate) fn key_candidates(&self, key: usize, i: u32, out: &mut Vec<u32>) {
        out.clear();
        if let Some(k) = self.keys.get(key) {
            self.push_neighbours(k, i, out);
        }
    }

    /// Appends the higher-numbered records within the window of record `i` in its block.
    fn push_neighbours(&self, k: &KeyIndex, i: u32, out: &mut Vec<u32>) {
        let Some(&p) = k.pos.get(i as usize) else {
            return;
        };
        if p == u32::MAX {
            return;
        }
        let p = p as usize;
        let b = k.block[p];
        let lo = p.saturating_sub(self.window);
        let hi = (p + self.window).min(k.order.len() - 1);
        for q in (lo..p).rev() {
            if k.block[q] != b {
                break;
            }
            if k.order[q] > i {
                out.push(k.order[q]);
            }
        }
        for q in p + 1..=hi {
            if k.block[q] != b {
                break;
            }
            if k.order[q] > i {
                out.push(k.order[q]);
            }
        }
    }
}

/// The blocking keys of one record as text, for a store that indexes records for
/// incremental matching: records sharing any key are candidates.
pub(crate) fn key_strings(f: &Features, s: &Interner, keys: &[BlockingKey]) -> Vec<String> {
    keys.iter()
        .filter_map(|&k| block_of(k, f, s).map(|(b, _)| format!("{k:?}:{b:016x}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdm::matching::prepare::RecordSet;
    use crate::mdm::matching::record::MatchRecord;

    fn rec(id: &str, given: &str, surname: &str, dob: &str, postcode: &str) -> MatchRecord {
        MatchRecord {
            source: "t".into(),
            source_id: id.into(),
            given_name: Some(given.into()),
            surname: Some(surname.into()),
            birth_date: Some(dob.into()),
            postcode: Some(postcode.into()),
            ..MatchRecord::default()
        }
    }

    #[test]
    fn keys_are_script_independent() {
        let mut set = RecordSet::new();
        set.extend(
            &[
                rec("1", "Сергей", "Иванов", "1980-02-03", "101000"),
                rec("2", "Sergey", "Ivanoff", "03.02.1980", "101000"),
                rec("3", "Ivanov", "Sergei", "1980-02-03", "101000"),
            ],
            0,
            1,
        )
        .unwrap();
        let f = &set.features;
        let s = &set.strings;
        for key in [
            BlockingKey::SurnameYear,
            BlockingKey::GivenPostcode,
            BlockingKey::BirthDate,
        ] {
            assert_eq!(block_of(key, &f[0], s), block_of(key, &f[1], s), "{key:?}");
        }
        // Swapped names share the name-pair block.
        assert_eq!(
            block_of(BlockingKey::NamePair, &f[0], s).map(|b| b.0),
            block_of(BlockingKey::NamePair, &f[2], s).map(|b| b.0)
        );
        assert!(block_of(BlockingKey::Phone, &f[0], s).is_none());
        assert_eq!(key_strings(&f[0], s, &BlockingKey::ALL).len(), 5);
    }

    #[test]
    fn candidates_are_unique_higher_and_windowed() {
        // 10 records in one birth-date block, nothing else shared.
        let recs: Vec<MatchRecord> = (0..10)
            .map(|i| {
                rec(
                    &i.to_string(),
                    &format!("g{i}"),
                    &format!("s{i}"),
                    "1980-01-01",
                    &format!("{i}"),
                )
            })
            .collect();
        let mut set = RecordSet::new();
        set.extend(&recs, 0, 1).unwrap();
        let (idx, stats) =
            BlockIndex::build(&set.features, &set.strings, &[BlockingKey::BirthDate], 3, 2);
        assert_eq!(stats.largest_block, 10);
        assert_eq!(stats.windowed_blocks, 1);
        let mut out = Vec::new();
        let mut pairs = 0;
        for i in 0..10 {
            idx.candidates(i, &mut out);
            assert!(out.iter().all(|&j| j > i));
            assert!(out.windows(2).all(|w| w[0] < w[1]));
            assert!(out.len() <= 3);
            pairs += out.len();
        }
        // Each record sees 3 neighbours on each side: 7+... pairs = sum over positions.
        assert_eq!(pairs, 3 * 10 - (3 + 2 + 1));
        // With a wide window the block is compared in full.
        let (idx, stats) = BlockIndex::build(&set.features, &set.strings, &BlockingKey::ALL, 50, 1);
        assert_eq!(stats.windowed_blocks, 0);
        let total: usize = (0..10)
            .map(|i| {
                idx.candidates(i, &mut out);
                out.len()
            })
            .sum();
        assert_eq!(total, 45);
    }
}
