//! One matching run over a record set: index, train, score, cluster.
//!
//! Contract: pure and deterministic for a given input, configuration and seed (threads only
//! change the speed). Records are numbered in input order (for a linkage, the left input
//! then the right). The result assigns each record a cluster; pairs between the review and
//! auto-merge thresholds that did not end up in one cluster are listed for review.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::blocking::{BlockIndex, BlockStats, BlockingKey};
use super::cluster::Clusters;
use super::comparisons::{COMPARISONS, Comparison, Levels, Memo, levels, levels_bounded};
use super::model::{
    ComparisonParams, EmFit, LevelCounts, Model, Patterns, TrainingInfo, WeightTable, em, em_share,
    log2_odds, probability,
};
use super::prepare::{Features, RecordSet, TooManyRecords};
use super::record::MatchRecord;
use super::rules::{
    DeterministicKey, HardNonMatch, KeyPair, deterministic_pairs, hard_non_match, shared_id,
};
use crate::mdm::rng::{SplitMix64, mix};

/// Matching settings. The defaults are the one configuration used for every evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MatchConfig {
    /// Match probability at or above which a pair is merged automatically: 19-to-1 odds.
    pub auto_merge: f64,
    /// Match probability at or above which a pair that was not merged goes to review: even
    /// odds.
    pub review: f64,
    /// Blocking keys.
    pub blocking: Vec<BlockingKey>,
    /// Neighbours compared on each side of a record inside a large block.
    pub window: usize,
    /// A deterministic key value shared by more records than this is not used.
    pub max_key_group: usize,
    /// Random pairs counted to estimate u.
    pub u_pairs: u64,
    /// Candidate pairs sampled to estimate m by EM.
    pub em_pairs: u64,
    /// Largest number of EM iterations.
    pub em_iterations: u32,
    /// Worker threads; 0 uses every available core.
    pub threads: usize,
    /// Seed of the pair samples.
    pub seed: u64,
    /// A fixed model to use instead of training one on the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<Model>,
}

impl Default for MatchConfig {
    fn default() -> Self {
        MatchConfig {
            auto_merge: 0.95,
            review: 0.5,
            blocking: BlockingKey::ALL.to_vec(),
            window: 8,
            max_key_group: 20,
            u_pairs: 300_000,
            em_pairs: 200_000,
            em_iterations: 200,
            threads: 0,
            seed: 0x6d64_6d5f_7365_6564,
            model: None,
        }
    }
}

/// A run that cannot start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatchError {
    /// A setting is out of range.
    #[error("match config: {0}")]
    Config(String),
    /// The fixed model is malformed.
    #[error("match config: model: {0}")]
    Model(String),
    /// Too many records.
    #[error(transparent)]
    TooMany(#[from] TooManyRecords),
}

impl MatchConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<(), MatchError> {
        let p = |x: f64| x.is_finite() && x > 0.0 && x < 1.0;
        if !p(self.auto_merge) || !p(self.review) {
            return Err(MatchError::Config(
                "auto_merge and review must be probabilities strictly between 0 and 1".into(),
            ));
        }
        if self.review > self.auto_merge {
            return Err(MatchError::Config(
                "review must not be above auto_merge".into(),
            ));
        }
        if self.window == 0 {
            return Err(MatchError::Config("window must be at least 1".into()));
        }
        if self.blocking.is_empty() {
            return Err(MatchError::Config(
                "at least one blocking key is needed".into(),
            ));
        }
        if self.u_pairs < 1_000 || self.em_pairs < 1_000 {
            return Err(MatchError::Config(
                "u_pairs and em_pairs must be at least 1000".into(),
            ));
        }
        if self.max_key_group < 2 {
            return Err(MatchError::Config(
                "max_key_group must be at least 2".into(),
            ));
        }
        if let Some(m) = &self.model {
            m.check().map_err(MatchError::Model)?;
        }
        Ok(())
    }

    fn thread_count(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        }
    }
}

/// Why a pair is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairKind {
    /// Merged: the records share a deterministic key.
    Key(DeterministicKey),
    /// Merged: the match probability reached the auto-merge threshold.
    Probable,
    /// For review: the probability lies between the thresholds.
    Review,
    /// For review: the probability reached auto-merge, but merging would join records a
    /// hard non-match rule keeps apart.
    Refused,
    /// Kept apart by a hard non-match rule although the probability reached review.
    HardNonMatch(HardNonMatch),
}

/// A pair of records (by number) with its match probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    /// The lower record number.
    pub a: u32,
    /// The higher record number.
    pub b: u32,
    /// Match probability (1 for a deterministic key).
    pub probability: f64,
    /// Why the pair is listed.
    pub kind: PairKind,
}

/// Seconds spent per phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseSeconds {
    /// Building the blocking index.
    pub index: f64,
    /// Estimating u and m.
    pub train: f64,
    /// Comparing the candidate pairs.
    pub score: f64,
    /// Clustering.
    pub cluster: f64,
}

/// Counts of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchStats {
    /// Records matched.
    pub records: u64,
    /// Candidate pairs compared.
    pub compared_pairs: u64,
    /// Pairs joined by a deterministic key.
    pub key_pairs: u64,
    /// Deterministic key values skipped as shared by too many records.
    pub skipped_key_groups: u64,
    /// Pairs merged on probability.
    pub probable_pairs: u64,
    /// Pairs listed for review.
    pub review_pairs: u64,
    /// Pairs kept apart by a hard non-match rule.
    pub hard_non_matches: u64,
    /// Merges refused because of a hard non-match in the clusters.
    pub refused_merges: u64,
    /// Clusters (parties) found.
    pub clusters: u64,
    /// Blocking statistics.
    pub blocks: BlockStats,
    /// Time per phase.
    pub seconds: PhaseSeconds,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchResult {
    /// The cluster number of each record.
    pub clusters: Vec<u32>,
    /// The pairs that joined clusters, deterministic keys first.
    pub merges: Vec<ScoredPair>,
    /// Pairs for a data steward.
    pub review: Vec<ScoredPair>,
    /// Pairs kept apart by a hard non-match rule.
    pub kept_apart: Vec<ScoredPair>,
    /// The model used.
    pub model: Model,
    /// Counts and timings.
    pub stats: MatchStats,
}

/// Deduplicates `records`: every pair may match.
pub fn deduplicate(
    records: &[MatchRecord],
    config: &MatchConfig,
) -> Result<MatchResult, MatchError> {
    config.check()?;
    let mut set = RecordSet::new();
    set.extend(records, 0, config.thread_count())?;
    run(&set, false, config)
}

/// Links `left` to `right`: only pairs with one record from each are compared. Records are
/// numbered left first, then right.
pub fn link(
    left: &[MatchRecord],
    right: &[MatchRecord],
    config: &MatchConfig,
) -> Result<MatchResult, MatchError> {
    config.check()?;
    let mut set = RecordSet::new();
    set.extend(left, 0, config.thread_count())?;
    set.extend(right, 1, config.thread_count())?;
    run(&set, true, config)
}

/// Whether a pair may be compared at all.
fn comparable(linkage: bool, a: &Features, b: &Features) -> bool {
    a.organisation == b.organisation && (!linkage || a.side != b.side)
}

/// Runs matching over a prepared set. With `linkage`, only records on different sides are
/// compared.
pub fn run(
    set: &RecordSet,
    linkage: bool,
    config: &MatchConfig,
) -> Result<MatchResult, MatchError> {
    config.check()?;
    let threads = config.thread_count();
    let features = &set.features;
    let n = features.len();

    let t0 = Instant::now();
    let (index, block_stats) = BlockIndex::build(
        features,
        &set.strings,
        &config.blocking,
        config.window,
        threads,
    );
    let (key_pairs, skipped_key_groups) = deterministic_pairs(set, config.max_key_group);
    let t_index = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let model = match &config.model {
        Some(m) => m.clone(),
        None => train(set, &index, linkage, config, threads),
    };
    let t_train = t1.elapsed().as_secs_f64();

    let t2 = Instant::now();
    let table = model.table();
    let review_lo = log2_odds(config.review);
    let auto_lo = log2_odds(config.auto_merge);
    let floor = review_lo - model.prior_log2_odds;
    let scored = score_all(
        set,
        &index,
        linkage,
        threads,
        &table,
        floor,
        |lv, w, a, b| (model.prior_log2_odds + w, hard_non_match(lv, a, b)),
    );
    let t_score = t2.elapsed().as_secs_f64();

    let t3 = Instant::now();
    let mut pairs = scored.pairs;
    let Resolution {
        mut clusters,
        merges,
        review,
        kept_apart,
        refused,
    } = resolve(n, &key_pairs, &mut pairs, auto_lo);
    let (labels, k) = clusters.labels();
    let t_cluster = t3.elapsed().as_secs_f64();

    let stats = MatchStats {
        records: n as u64,
        compared_pairs: scored.compared,
        key_pairs: merges
            .iter()
            .filter(|p| matches!(p.kind, PairKind::Key(_)))
            .count() as u64,
        skipped_key_groups,
        probable_pairs: merges
            .iter()
            .filter(|p| p.kind == PairKind::Probable)
            .count() as u64,
        review_pairs: review.len() as u64,
        hard_non_matches: kept_apart.len() as u64,
        refused_merges: refused,
        clusters: k as u64,
        blocks: block_stats,
        seconds: PhaseSeconds {
            index: t_index,
            train: t_train,
            score: t_score,
            cluster: t_cluster,
        },
    };
    Ok(MatchResult {
        clusters: labels,
        merges,
        review,
        kept_apart,
        model,
        stats,
    })
}

/// A pair kept by the scoring pass: (a, b, log2 odds, hard non-match).
type Kept = (u32, u32, f64, Option<HardNonMatch>);

/// Clusters and the pairs that explain them.
struct Resolution {
    clusters: Clusters,
    merges: Vec<ScoredPair>,
    review: Vec<ScoredPair>,
    kept_apart: Vec<ScoredPair>,
    refused: u64,
}

/// Clusters `n` records: deterministic pairs first, then the hard non-match constraints,
/// then probable pairs (log odds at or above `auto_lo`) strongest first; probable pairs
/// that cannot join, and pairs below `auto_lo`, go to review when their records ended in
/// different clusters.
fn resolve(n: usize, key_pairs: &[KeyPair], pairs: &mut [Kept], auto_lo: f64) -> Resolution {
    // Strongest first; ties by record numbers so the result does not depend on threads.
    pairs.sort_unstable_by(|x, y| y.2.total_cmp(&x.2).then(x.0.cmp(&y.0)).then(x.1.cmp(&y.1)));
    let mut clusters = Clusters::new(n);
    let mut merges = Vec::new();
    for p in key_pairs {
        if clusters.find(p.a) != clusters.find(p.b) {
            merges.push(ScoredPair {
                a: p.a.min(p.b),
                b: p.a.max(p.b),
                probability: 1.0,
                kind: PairKind::Key(p.key),
            });
        }
        clusters.union(p.a, p.b);
    }
    let pair = |a, b, lo, kind| ScoredPair {
        a,
        b,
        probability: probability(lo),
        kind,
    };
    let mut kept_apart = Vec::new();
    for &(a, b, lo, veto) in pairs.iter() {
        if let Some(rule) = veto {
            clusters.forbid(a, b);
            kept_apart.push(pair(a, b, lo, PairKind::HardNonMatch(rule)));
        }
    }
    let mut review = Vec::new();
    let mut refused = 0u64;
    for &(a, b, lo, veto) in pairs.iter() {
        if veto.is_some() || lo < auto_lo || clusters.find(a) == clusters.find(b) {
            continue;
        }
        if clusters.try_union(a, b) {
            merges.push(pair(a, b, lo, PairKind::Probable));
        } else {
            refused += 1;
            review.push(pair(a, b, lo, PairKind::Refused));
        }
    }
    for &(a, b, lo, veto) in pairs.iter() {
        if veto.is_none() && lo < auto_lo && clusters.find(a) != clusters.find(b) {
            review.push(pair(a, b, lo, PairKind::Review));
        }
    }
    Resolution {
        clusters,
        merges,
        review,
        kept_apart,
        refused,
    }
}

/// Pairs kept by the scoring pass.
struct Scored {
    pairs: Vec<Kept>,
    compared: u64,
}

/// Compares every candidate pair on `threads` threads and keeps those whose match weight
/// reaches `floor`, with `keep`'s log odds and hard non-match rule.
fn score_all<F>(
    set: &RecordSet,
    index: &BlockIndex,
    linkage: bool,
    threads: usize,
    table: &WeightTable,
    floor: f64,
    keep: F,
) -> Scored
where
    F: Fn(&Levels, f64, &Features, &Features) -> (f64, Option<HardNonMatch>) + Sync,
{
    let features = &set.features;
    let n = features.len();
    let next = AtomicUsize::new(0);
    const CHUNK: usize = 2048;
    let work = |_: usize| {
        let mut pairs = Vec::new();
        let mut compared = 0u64;
        let mut buf = Vec::new();
        let mut memo = Memo::default();
        loop {
            let start = next.fetch_add(CHUNK, Ordering::Relaxed);
            if start >= n {
                break;
            }
            for i in start..(start + CHUNK).min(n) {
                let a = &features[i];
                index.candidates(i as u32, &mut buf);
                for &j in &buf {
                    let b = &features[j as usize];
                    if !comparable(linkage, a, b) {
                        continue;
                    }
                    compared += 1;
                    let scored =
                        levels_bounded(&set.strings, &mut memo, a, b, &table.w, &table.best, floor);
                    if let Some((lv, w)) = scored {
                        let (lo, veto) = keep(&lv, w, a, b);
                        pairs.push((i as u32, j, lo, veto));
                    }
                }
            }
        }
        (pairs, compared)
    };
    let parts: Vec<(Vec<Kept>, u64)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| s.spawn(move || work(t)))
            .collect();
        // A worker only panics on a bug; its share is then redone here.
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| work(0)))
            .collect()
    });
    let mut out = Scored {
        pairs: Vec::new(),
        compared: 0,
    };
    for (p, c) in parts {
        out.pairs.extend(p);
        out.compared += c;
    }
    out
}

/// Fewer pairs than this (about 140 records) say too little to fit a model: the reasoned
/// one is used instead.
const MIN_TRAINING_PAIRS: f64 = 10_000.0;

/// Trains a model on the set without labels (see [`super::model`]): u from random pairs;
/// m by one EM per blocking key over that key's pairs, leaving out the comparisons the key
/// ties (the pairs that are not matches agree on those far more than random pairs do), and
/// averaged over keys by their expected matches; the prior from the match share of a
/// sample of all candidate pairs with m and u fixed.
fn train(
    set: &RecordSet,
    index: &BlockIndex,
    linkage: bool,
    config: &MatchConfig,
    threads: usize,
) -> Model {
    let features = &set.features;
    let n = features.len();
    let (left, right): (Vec<u32>, Vec<u32>) = if linkage {
        let side = |s: u8| -> Vec<u32> {
            features
                .iter()
                .enumerate()
                .filter(|(_, f)| f.side == s)
                .map(|(i, _)| i as u32)
                .collect()
        };
        (side(0), side(1))
    } else {
        (Vec::new(), Vec::new())
    };
    let total_pairs: f64 = if linkage {
        left.len() as f64 * right.len() as f64
    } else {
        n as f64 * (n.saturating_sub(1)) as f64 / 2.0
    };
    if total_pairs < MIN_TRAINING_PAIRS {
        return Model::reasoned();
    }

    let u_counts = count_random_pairs(set, linkage, &left, &right, total_pairs, config, threads);
    let u = u_counts.u();

    // One EM per blocking key, keys spread over the threads.
    let keys = config.blocking.len().min(index.key_count());
    let per_key = (config.em_pairs / keys.max(1) as u64).max(1_000);
    let fits: Vec<Option<(EmFit, Patterns)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let u = &u;
                s.spawn(move || {
                    (t..keys)
                        .step_by(threads.max(1))
                        .map(|k| {
                            let tied = config.blocking[k].tied();
                            let sample = sample_pairs(
                                set,
                                index,
                                linkage,
                                Some(k),
                                per_key,
                                tied,
                                config.seed,
                            );
                            (k, em(&sample, u, config.em_iterations), sample)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out: Vec<Option<(EmFit, Patterns)>> = (0..keys).map(|_| None).collect();
        for h in handles {
            // A failed worker leaves its keys out of the average.
            for (k, fit, sample) in h.join().unwrap_or_default() {
                out[k] = Some((fit, sample));
            }
        }
        out
    });
    let fallback = Model::reasoned();
    let mut m: [Vec<f64>; COMPARISONS] = std::array::from_fn(|c| fallback.comparisons[c].m.clone());
    let mut em_pairs = 0u64;
    let mut em_known = 0u64;
    let mut iterations = 0u32;
    for (c, comparison) in Comparison::ALL.iter().enumerate() {
        let mut acc = vec![0.0; m[c].len()];
        let mut weight = 0.0;
        for (k, fit) in fits.iter().enumerate() {
            let Some((fit, sample)) = fit else { continue };
            if config.blocking[k].tied().contains(comparison) {
                continue;
            }
            // Expected matches of this key's sample with the comparison present.
            let present: f64 = sample
                .map
                .iter()
                .filter(|(lv, _)| lv[c] > 0)
                .map(|(_, (cnt, _))| *cnt as f64)
                .sum();
            let w = fit.lambda * present;
            for (a, x) in acc.iter_mut().zip(&fit.m[c]) {
                *a += w * x;
            }
            weight += w;
        }
        if weight > 0.0 {
            m[c] = acc.iter().map(|a| a / weight).collect();
        }
    }
    for (fit, sample) in fits.iter().flatten() {
        em_pairs += sample.pairs;
        em_known += sample.known;
        iterations = iterations.max(fit.iterations);
    }

    // The prior: the match share of all candidate pairs, scaled to all pairs.
    let union = sample_pairs(set, index, linkage, None, config.em_pairs, &[], config.seed);
    let share = em_share(&union, &m, &u, config.em_iterations);
    // One record in `stride` was sampled, so each pair stands for `stride` pairs.
    let candidates_est = union.pairs as f64 * union.stride as f64;
    let expected = (share * candidates_est).max(1.0);
    let prior = if total_pairs > expected {
        (expected / (total_pairs - expected)).log2()
    } else {
        0.0
    };
    Model {
        comparisons: Comparison::ALL
            .iter()
            .enumerate()
            .map(|(k, c)| ComparisonParams {
                comparison: *c,
                m: m[k].clone(),
                u: u[k].clone(),
            })
            .collect(),
        prior_log2_odds: prior,
        training: TrainingInfo {
            u_pairs: u_counts.pairs,
            em_pairs,
            em_known_matches: em_known,
            em_iterations: iterations,
            candidate_match_share: share,
            expected_matches: expected,
        },
    }
}

/// Whether record `i` is in a sample of one record in `stride`. Chosen by a hash of the
/// record number, not every `stride`-th record: input order can be periodic (an export
/// that lists each customer's duplicate right after it), and a fixed step would alias.
fn sampled(seed: u64, i: usize, stride: usize) -> bool {
    stride <= 1 || mix(seed ^ mix(i as u64)) % stride as u64 == 0
}

/// One record in how many to visit so that a sample holds about `want` pairs.
fn stride_for(
    set: &RecordSet,
    index: &BlockIndex,
    linkage: bool,
    key: Option<usize>,
    want: u64,
    seed: u64,
) -> usize {
    let n = set.features.len();
    let probe = (n / 20_000).max(1);
    let mut buf = Vec::new();
    let (mut probed, mut found) = (0u64, 0u64);
    for i in (0..n).filter(|&i| sampled(seed, i, probe)) {
        neighbours(index, key, i as u32, &mut buf);
        found += buf
            .iter()
            .filter(|&&j| comparable(linkage, &set.features[i], &set.features[j as usize]))
            .count() as u64;
        probed += 1;
    }
    let est = if probed == 0 {
        0.0
    } else {
        found as f64 / probed as f64 * n as f64
    };
    ((est / want.max(1) as f64).ceil() as usize).max(1)
}

fn neighbours(index: &BlockIndex, key: Option<usize>, i: u32, out: &mut Vec<u32>) {
    match key {
        Some(k) => index.key_candidates(k, i, out),
        None => index.candidates(i, out),
    }
}

/// About `want` candidate pairs (under one key, or all keys), with the `tied` comparisons
/// set to missing.
fn sample_pairs(
    set: &RecordSet,
    index: &BlockIndex,
    linkage: bool,
    key: Option<usize>,
    want: u64,
    tied: &[Comparison],
    seed: u64,
) -> Patterns {
    let features = &set.features;
    let stride = stride_for(set, index, linkage, key, want, seed);
    let mut patterns = Patterns::default();
    let mut memo = Memo::default();
    let mut buf = Vec::new();
    for i in (0..features.len()).filter(|&i| sampled(seed, i, stride)) {
        neighbours(index, key, i as u32, &mut buf);
        let a = &features[i];
        for &j in &buf {
            let b = &features[j as usize];
            if !comparable(linkage, a, b) {
                continue;
            }
            let mut lv = levels(&set.strings, &mut memo, a, b);
            for c in tied {
                lv[*c as usize] = 0;
            }
            patterns.add(lv, shared_id(a, b).is_some());
        }
    }
    patterns.stride = stride as u64;
    patterns
}

/// Level counts over random pairs: every pair when there are no more than `u_pairs`,
/// otherwise `u_pairs` pairs drawn with the configured seed.
fn count_random_pairs(
    set: &RecordSet,
    linkage: bool,
    left: &[u32],
    right: &[u32],
    total_pairs: f64,
    config: &MatchConfig,
    threads: usize,
) -> LevelCounts {
    let features = &set.features;
    let n = features.len();
    let mut counts = LevelCounts::default();
    if total_pairs <= config.u_pairs as f64 {
        let mut memo = Memo::default();
        let mut add = |i: u32, j: u32| {
            let (a, b) = (&features[i as usize], &features[j as usize]);
            if a.organisation == b.organisation {
                counts.add(&levels(&set.strings, &mut memo, a, b));
            }
        };
        if linkage {
            for &i in left {
                for &j in right {
                    add(i, j);
                }
            }
        } else {
            for i in 0..n as u32 {
                for j in i + 1..n as u32 {
                    add(i, j);
                }
            }
        }
        return counts;
    }
    // The sample is drawn in fixed chunks, each from its own stream, so it is the same
    // whatever the number of threads.
    const CHUNK: u64 = 10_000;
    let chunks = config.u_pairs.div_ceil(CHUNK);
    let threads = (threads.max(1) as u64).min(chunks.max(1));
    let parts: Vec<LevelCounts> = std::thread::scope(|s| {
        let work = move |t: u64| {
            let mut c = LevelCounts::default();
            let mut memo = Memo::default();
            for chunk in (t..chunks).step_by(threads as usize) {
                let mut rng = SplitMix64::for_item(config.seed, chunk);
                let want = CHUNK.min(config.u_pairs - chunk * CHUNK);
                let mut drawn = 0;
                while drawn < want {
                    let (i, j) = if linkage {
                        (left[rng.index(left.len())], right[rng.index(right.len())])
                    } else {
                        (rng.index(n) as u32, rng.index(n) as u32)
                    };
                    if i == j {
                        continue;
                    }
                    drawn += 1;
                    let (a, b) = (&features[i as usize], &features[j as usize]);
                    if a.organisation == b.organisation {
                        c.add(&levels(&set.strings, &mut memo, a, b));
                    }
                }
            }
            c
        };
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(t, h)| h.join().unwrap_or_else(|_| work(t as u64)))
            .collect()
    });
    for p in &parts {
        counts.merge(p);
    }
    counts
}

/// The score of one pair of records under a model: for a store matching one new record
/// against the candidates its blocking keys found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairScore {
    /// Agreement level per comparison, in [`Comparison::ALL`] order (0 = missing).
    pub levels: Levels,
    /// Match weight: log2 of the Bayes factor.
    pub weight: f64,
    /// Match probability under the model's prior; 1 with a deterministic key, 0 for a
    /// person and an organisation.
    pub probability: f64,
    /// The deterministic key the records share, if any.
    pub key: Option<DeterministicKey>,
    /// The hard non-match rule the pair breaks, if any (ignored when a key is shared).
    pub hard_non_match: Option<HardNonMatch>,
}

/// What to do with a scored pair under a configuration's thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Merge automatically.
    Merge,
    /// Ask a data steward.
    Review,
    /// Keep apart.
    Distinct,
}

impl PairScore {
    /// The decision under `config`'s thresholds.
    pub fn decide(&self, config: &MatchConfig) -> Decision {
        if self.key.is_some() {
            return Decision::Merge;
        }
        if self.hard_non_match.is_some() {
            return Decision::Distinct;
        }
        if self.probability >= config.auto_merge {
            Decision::Merge
        } else if self.probability >= config.review {
            Decision::Review
        } else {
            Decision::Distinct
        }
    }
}

/// Scores one pair of records under `model`.
pub fn score_pair(model: &Model, a: &MatchRecord, b: &MatchRecord) -> PairScore {
    let set = RecordSet::of(&[a, b]);
    let (fa, fb) = (&set.features[0], &set.features[1]);
    let lv = levels(&set.strings, &mut Memo::for_one_pair(), fa, fb);
    let weight = model.weight(&lv);
    let refs_shared = {
        let mut ra: Vec<u64> = set.refs.iter().filter(|r| r.1 == 0).map(|r| r.0).collect();
        ra.sort_unstable();
        set.refs
            .iter()
            .filter(|r| r.1 == 1)
            .any(|r| ra.binary_search(&r.0).is_ok())
    };
    let key = shared_id(fa, fb).or(refs_shared.then_some(DeterministicKey::CrossReference));
    let probability = if key.is_some() {
        1.0
    } else if fa.organisation != fb.organisation {
        0.0
    } else {
        probability(model.prior_log2_odds + weight)
    };
    PairScore {
        levels: lv,
        weight,
        probability,
        key,
        hard_non_match: if key.is_some() {
            None
        } else {
            hard_non_match(&lv, fa, fb)
        },
    }
}

/// The blocking keys of a record as text: a store indexes them and compares a new record
/// with the records sharing any of its keys.
pub fn blocking_keys(record: &MatchRecord, keys: &[BlockingKey]) -> Vec<String> {
    let set = RecordSet::of(&[record]);
    super::blocking::key_strings(&set.features[0], &set.strings, keys)
}
