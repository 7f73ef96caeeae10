//! The screening index: every list name's tokens by key and by deletion variants of the key,
//! so that a query scores only the entries it could possibly hit.
//!
//! Contract: [`Index::screen`] returns exactly the hits [`Index::screen_all`] (scoring every
//! entry) returns, in the same order. It holds because
//! - a name reaches a hit only through at least one paired name token, and two tokens pair
//!   only when their keys share a deletion variant (see `matcher::similarity`), all of
//!   which are indexed; joined words are indexed as their own keys;
//! - a candidate is dropped only when an upper bound of its score (every linked token
//!   agreeing, every unlinked token costing its smallest penalty, the largest birth-date and
//!   nationality bonus) is below the threshold;
//! - an entry sharing an identifier with the subject is always scored.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::entry::{IdKind, ListEntry, ListSnapshot, Subject};
use crate::matcher::align;
use crate::matcher::evidence::MAX_BONUS;
use crate::matcher::similarity::{for_each_variant, key_sim};
use crate::matcher::{
    Hit, PreparedEntry, PreparedName, PreparedQuery, TokenStats, kinds_compatible, score_entry,
};
use crate::normalize::{NameKind, TokenRole};

/// Slack on the bound for the scores' rounding to four decimals.
const BOUND_SLACK: f64 = 0.001;

/// Screening index over any number of list entries.
pub struct Index {
    entries: Vec<ListEntry>,
    prepared: Vec<PreparedEntry>,
    stats: TokenStats,
    /// Per indexed name: (entry, name) and the sums the bound needs.
    names: Vec<NameInfo>,
    /// Unique linked keys (single tokens and joined words).
    links: Vec<Link>,
    /// Posting lists of `links`, flattened.
    postings: Vec<Posting>,
    /// Variant hash → range of `variant_links`.
    variants: HashMap<u64, (u32, u32), PreHashed>,
    variant_links: Vec<u32>,
    /// Identifier family and canonical value → entries.
    ids: HashMap<(IdFamily, String), Vec<u32>>,
}

struct NameInfo {
    entry: u32,
    /// Σ of the smallest penalties of its name tokens.
    min_penalty: f32,
    /// What its initials could add when paired.
    optimistic: f32,
}

struct Link {
    key: String,
    /// A joined word (two or three tokens): compared with one edit at most.
    compound: bool,
    postings: (u32, u32),
}

#[derive(Clone, Copy)]
struct Posting {
    name: u32,
    weight: f32,
    min_penalty: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IdFamily {
    Passport,
    NationalId,
    Tax,
    Ogrn,
    Registration,
    Other,
}

fn id_family(kind: IdKind) -> IdFamily {
    match kind {
        IdKind::Passport => IdFamily::Passport,
        IdKind::NationalId => IdFamily::NationalId,
        IdKind::Inn | IdKind::TaxId => IdFamily::Tax,
        IdKind::Ogrn => IdFamily::Ogrn,
        IdKind::Registration => IdFamily::Registration,
        IdKind::Other => IdFamily::Other,
    }
}

fn canonical_id(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

impl Index {
    /// Builds the index. Token weights come from the names of all `entries` together.
    pub fn build(entries: Vec<ListEntry>) -> Index {
        let kinds: Vec<NameKind> = entries.iter().map(|e| NameKind::of(Some(e.kind))).collect();
        let normalized: Vec<Vec<_>> = entries
            .iter()
            .zip(&kinds)
            .map(|(e, k)| {
                e.names
                    .iter()
                    .map(|n| crate::normalize::normalize_name(&n.full, *k))
                    .collect()
            })
            .collect();
        let stats = TokenStats::from_names(normalized.iter().flatten());
        let prepared: Vec<PreparedEntry> = entries
            .iter()
            .zip(normalized)
            .zip(&kinds)
            .map(|((e, norms), k)| PreparedEntry {
                names: e
                    .names
                    .iter()
                    .zip(norms)
                    .map(|(n, norm)| {
                        PreparedName::from_normalized(&n.full, *k, n.strength, norm, &stats)
                    })
                    .collect(),
            })
            .collect();

        let mut names = Vec::new();
        let mut link_ids: HashMap<(String, bool), u32> = HashMap::new();
        let mut link_postings: Vec<Vec<Posting>> = Vec::new();
        for (ei, p) in prepared.iter().enumerate() {
            for pn in &p.names {
                let name = names.len() as u32;
                let mut min_penalty = 0.0;
                let mut optimistic = 0.0;
                for t in &pn.tokens {
                    min_penalty += PreparedName::min_penalty(t);
                    if t.role == TokenRole::Initial {
                        optimistic += align::optimistic_weight(TokenRole::Initial);
                    }
                }
                names.push(NameInfo {
                    entry: ei as u32,
                    min_penalty: min_penalty as f32,
                    optimistic: optimistic as f32,
                });
                let singles = pn
                    .tokens
                    .iter()
                    .filter(|t| matches!(t.role, TokenRole::Name | TokenRole::Patronymic))
                    .flat_map(|t| {
                        std::iter::once(&t.key)
                            .chain(&t.alt_keys)
                            .map(|k| (k.clone(), false, t.weight, PreparedName::min_penalty(t)))
                    });
                let joined = pn.compounds.iter().map(|c| {
                    let pen: f64 = pn.tokens[c.start..c.start + c.len]
                        .iter()
                        .map(PreparedName::min_penalty)
                        .sum();
                    (c.key.clone(), true, c.weight, pen)
                });
                for (key, compound, weight, pen) in singles.chain(joined) {
                    let next = link_ids.len() as u32;
                    let id = *link_ids.entry((key, compound)).or_insert(next);
                    if id == next {
                        link_postings.push(Vec::new());
                    }
                    link_postings[id as usize].push(Posting {
                        name,
                        weight: weight as f32,
                        min_penalty: pen as f32,
                    });
                }
            }
        }
        let mut by_id: Vec<(String, bool)> = vec![(String::new(), false); link_ids.len()];
        for ((key, compound), id) in link_ids {
            by_id[id as usize] = (key, compound);
        }
        let mut links = Vec::with_capacity(by_id.len());
        let mut postings = Vec::new();
        // (variant hash, link) pairs, sorted into one flat table: far less memory than a
        // map of small vectors when the lists are large.
        let mut pairs: Vec<(u64, u32)> = Vec::new();
        for (id, ((key, compound), list)) in by_id.into_iter().zip(link_postings).enumerate() {
            let start = postings.len() as u32;
            postings.extend(list);
            let deletions = if compound { 1 } else { 2 };
            for_each_variant(&key, deletions, |h| pairs.push((h, id as u32)));
            links.push(Link {
                key,
                compound,
                postings: (start, postings.len() as u32),
            });
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut variants = HashMap::with_capacity_and_hasher(pairs.len() / 2, PreHashed);
        let mut variant_links = Vec::with_capacity(pairs.len());
        let mut k = 0;
        while k < pairs.len() {
            let h = pairs[k].0;
            let start = variant_links.len() as u32;
            while k < pairs.len() && pairs[k].0 == h {
                variant_links.push(pairs[k].1);
                k += 1;
            }
            variants.insert(h, (start, variant_links.len() as u32));
        }
        drop(pairs);

        let mut ids: HashMap<(IdFamily, String), Vec<u32>> = HashMap::new();
        for (ei, e) in entries.iter().enumerate() {
            for id in &e.identifiers {
                let v = canonical_id(&id.value);
                if !v.is_empty() {
                    let list = ids.entry((id_family(id.kind), v)).or_default();
                    if list.last() != Some(&(ei as u32)) {
                        list.push(ei as u32);
                    }
                }
            }
        }
        Index {
            entries,
            prepared,
            stats,
            names,
            links,
            postings,
            variants,
            variant_links,
            ids,
        }
    }

    /// Builds one index over the entries of several lists.
    pub fn from_snapshots<'a>(snapshots: impl IntoIterator<Item = &'a ListSnapshot>) -> Index {
        Index::build(
            snapshots
                .into_iter()
                .flat_map(|s| s.entries.iter().cloned())
                .collect(),
        )
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of indexed names (primary names and aliases).
    pub fn name_count(&self) -> usize {
        self.names.len()
    }

    pub fn entries(&self) -> &[ListEntry] {
        &self.entries
    }

    /// The token statistics the weights come from.
    pub fn stats(&self) -> &TokenStats {
        &self.stats
    }

    /// The hits of `subject` with a score of at least `threshold`, best first (then by list
    /// and entry id).
    pub fn screen(&self, subject: &Subject, threshold: f64) -> Vec<Hit> {
        if threshold <= align::NO_NAME_TOKEN_CAP + MAX_BONUS + BOUND_SLACK {
            // So low that a name without any agreeing name token could reach it: the
            // candidate search would not be exhaustive.
            return self.screen_all(subject, threshold);
        }
        let query = PreparedQuery::new(subject, &self.stats);
        let mut candidates = self.candidates(&query, threshold);
        for id in &subject.identifiers {
            if let Some(list) = self.ids.get(&(id_family(id.kind), canonical_id(&id.value))) {
                candidates.extend_from_slice(list);
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        self.score(&query, candidates.into_iter(), threshold)
    }

    /// The same as [`Index::screen`] by scoring every entry: the reference the index is
    /// tested against, and a fallback for tiny lists.
    pub fn screen_all(&self, subject: &Subject, threshold: f64) -> Vec<Hit> {
        let query = PreparedQuery::new(subject, &self.stats);
        self.score(&query, 0..self.entries.len() as u32, threshold)
    }

    fn score(
        &self,
        query: &PreparedQuery<'_>,
        entries: impl Iterator<Item = u32>,
        threshold: f64,
    ) -> Vec<Hit> {
        let mut hits: Vec<Hit> = entries
            .filter_map(|ei| {
                let ei = ei as usize;
                score_entry(query, &self.entries[ei], &self.prepared[ei], threshold)
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.list.cmp(&b.list))
                .then_with(|| a.entry_id.cmp(&b.entry_id))
        });
        hits
    }

    /// Entries whose score bound reaches `threshold` for some name of the query.
    fn candidates(&self, query: &PreparedQuery<'_>, threshold: f64) -> Vec<u32> {
        SCRATCH.with(|cell| {
            let mut scratch = cell.borrow_mut();
            let scratch = &mut *scratch;
            scratch.reset(self.names.len());
            let mut out = Vec::new();
            for qn in &query.names {
                scratch.next_round();
                self.accumulate(qn, scratch);
                let q_penalty: f64 = qn.tokens.iter().map(PreparedName::min_penalty).sum();
                let q_optimistic: f64 = qn
                    .tokens
                    .iter()
                    .map(|t| align::optimistic_weight(t.role))
                    .sum();
                for &n in &scratch.touched {
                    let acc = &scratch.acc[n as usize];
                    let info = &self.names[n as usize];
                    let entry = &self.entries[info.entry as usize];
                    if !kinds_compatible(query.subject.kind, entry.kind) {
                        continue;
                    }
                    let u = f64::from(acc.sim_weight) + q_optimistic + f64::from(info.optimistic);
                    let p = (f64::from(info.min_penalty) - f64::from(acc.list_penalty)).max(0.0)
                        + (q_penalty - f64::from(acc.query_penalty)).max(0.0);
                    let bound = if u > 0.0 { u / (u + p) } else { 0.0 };
                    if bound + MAX_BONUS + BOUND_SLACK >= threshold {
                        out.push(info.entry);
                    }
                }
            }
            out
        })
    }

    /// Adds, for every name linked to a token (or joined tokens) of `qn`, the linked weight
    /// times similarity and the penalties the links take off.
    fn accumulate(&self, qn: &PreparedName, scratch: &mut Scratch) {
        let mut probes: Vec<(&str, usize, f64)> = Vec::new();
        for t in &qn.tokens {
            if matches!(t.role, TokenRole::Name | TokenRole::Patronymic) {
                for k in std::iter::once(&t.key).chain(&t.alt_keys) {
                    probes.push((k, 2, PreparedName::min_penalty(t)));
                }
            }
        }
        for c in &qn.compounds {
            let pen: f64 = qn.tokens[c.start..c.start + c.len]
                .iter()
                .map(PreparedName::min_penalty)
                .sum();
            probes.push((&c.key, 1, pen));
        }
        for (probe_no, (key, deletions, q_pen)) in probes.into_iter().enumerate() {
            let probe_is_compound = deletions == 1;
            scratch.link_buf.clear();
            let link_buf = &mut scratch.link_buf;
            for_each_variant(key, deletions, |h| {
                if let Some(&(s, e)) = self.variants.get(&h) {
                    link_buf.extend_from_slice(&self.variant_links[s as usize..e as usize]);
                }
            });
            let mut linked = std::mem::take(&mut scratch.link_buf);
            linked.sort_unstable();
            linked.dedup();
            for &lid in &linked {
                let link = &self.links[lid as usize];
                if probe_is_compound && link.compound {
                    continue;
                }
                let edits = if probe_is_compound || link.compound {
                    1
                } else {
                    2
                };
                let sim = key_sim(key, &link.key, edits);
                if sim <= 0.0 {
                    continue;
                }
                let (s, e) = link.postings;
                for p in &self.postings[s as usize..e as usize] {
                    let acc = scratch.touch(p.name);
                    acc.sim_weight += p.weight * sim as f32;
                    acc.list_penalty += p.min_penalty;
                    if acc.last_probe != probe_no as u32 + 1 {
                        acc.last_probe = probe_no as u32 + 1;
                        acc.query_penalty += q_pen as f32;
                    }
                }
            }
            scratch.link_buf = linked;
        }
    }
}

/// The variant keys are already well-mixed 64-bit hashes: the map uses them as they are.
#[derive(Clone, Copy, Default)]
struct PreHashed;

impl std::hash::BuildHasher for PreHashed {
    type Hasher = PassThrough;
    fn build_hasher(&self) -> PassThrough {
        PassThrough(0)
    }
}

struct PassThrough(u64);

impl std::hash::Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Per-thread accumulators, reused across queries (no allocation per query once warm).
struct Scratch {
    round: u32,
    acc: Vec<Acc>,
    touched: Vec<u32>,
    link_buf: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Acc {
    round: u32,
    last_probe: u32,
    sim_weight: f32,
    list_penalty: f32,
    query_penalty: f32,
}

impl Scratch {
    fn reset(&mut self, names: usize) {
        if self.acc.len() < names {
            self.acc.resize(names, Acc::default());
        }
    }

    fn next_round(&mut self) {
        self.round = self.round.wrapping_add(1);
        if self.round == 0 {
            // Wrapped: clear stale rounds once every 2^32 rounds.
            self.acc.iter_mut().for_each(|a| a.round = 0);
            self.round = 1;
        }
        self.touched.clear();
    }

    fn touch(&mut self, name: u32) -> &mut Acc {
        let round = self.round;
        let acc = &mut self.acc[name as usize];
        if acc.round != round {
            *acc = Acc {
                round,
                ..Acc::default()
            };
            self.touched.push(name);
        }
        &mut self.acc[name as usize]
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const {
        RefCell::new(Scratch { round: 0, acc: Vec::new(), touched: Vec::new(), link_buf: Vec::new() })
    };
}
