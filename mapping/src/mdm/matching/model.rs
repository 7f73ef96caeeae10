//! The Fellegi–Sunter model: for each comparison and level, m (the chance of that level
//! when the records are the same party) and u (when they are not), and the prior odds of a
//! match. A pair's match weight is the sum of log2(m/u) over its non-missing levels; its
//! match probability follows from the weight and the prior.
//!
//! Training uses no labels. u is counted on random pairs (nearly all of which are
//! non-matches). m is estimated by expectation–maximisation over a sample of blocked
//! candidate pairs with u held fixed; pairs that share a deterministic key (INN, SNILS,
//! passport, OGRN, a cross-reference) enter as known matches. The prior is the expected
//! number of matches among the candidates over the number of all pairs.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::comparisons::{COMPARISONS, Comparison, Levels, MAX_LEVELS};
use super::prepare::FxBuild;

/// m and u for one comparison, per level after "missing" (level 1 first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonParams {
    /// The comparison.
    pub comparison: Comparison,
    /// P(level | same party).
    pub m: Vec<f64>,
    /// P(level | different parties).
    pub u: Vec<f64>,
}

/// How the model was trained.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Random pairs counted for u.
    pub u_pairs: u64,
    /// Candidate pairs in the EM sample.
    pub em_pairs: u64,
    /// Of which shared a deterministic key.
    pub em_known_matches: u64,
    /// EM iterations run.
    pub em_iterations: u32,
    /// Estimated share of matches among candidate pairs.
    pub candidate_match_share: f64,
    /// Estimated number of matching pairs in the data.
    pub expected_matches: f64,
}

/// A trained (or default) Fellegi–Sunter model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Parameters per comparison, in [`Comparison::ALL`] order.
    pub comparisons: Vec<ComparisonParams>,
    /// log2 of the prior odds that two records are the same party.
    pub prior_log2_odds: f64,
    /// How the model was trained.
    #[serde(default)]
    pub training: TrainingInfo,
}

/// Match weights as a dense table: `w[k][level]`, 0 for level 0 (missing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WeightTable {
    pub w: [[f64; MAX_LEVELS]; COMPARISONS],
    /// The largest weight each comparison can add (0 if none is positive).
    pub best: [f64; COMPARISONS],
}

impl WeightTable {
    pub(crate) fn weight(&self, levels: &Levels) -> f64 {
        levels
            .iter()
            .zip(&self.w)
            .map(|(&l, w)| w[usize::from(l)])
            .sum()
    }
}

/// Probability from log2 odds.
pub(crate) fn probability(log2_odds: f64) -> f64 {
    1.0 / (1.0 + (-log2_odds).exp2())
}

/// log2 odds from a probability in (0, 1).
pub(crate) fn log2_odds(p: f64) -> f64 {
    let p = p.clamp(1e-12, 1.0 - 1e-12);
    (p / (1.0 - p)).log2()
}

impl Model {
    /// The dense weight table.
    pub(crate) fn table(&self) -> WeightTable {
        let mut t = WeightTable {
            w: [[0.0; MAX_LEVELS]; COMPARISONS],
            best: [0.0; COMPARISONS],
        };
        for (k, p) in self.comparisons.iter().enumerate().take(COMPARISONS) {
            for (l, (m, u)) in p.m.iter().zip(&p.u).enumerate().take(MAX_LEVELS - 1) {
                let w = (m.max(1e-9) / u.max(1e-9)).log2();
                t.w[k][l + 1] = w;
                t.best[k] = t.best[k].max(w);
            }
        }
        t
    }

    /// The match weight (log2 Bayes factor) of a comparison vector.
    pub fn weight(&self, levels: &Levels) -> f64 {
        self.table().weight(levels)
    }

    /// The match probability of a comparison vector under the model's prior.
    pub fn probability(&self, levels: &Levels) -> f64 {
        probability(self.prior_log2_odds + self.weight(levels))
    }

    /// A model set by reasoning rather than data, for scoring pairs before any training
    /// (an incremental store with few records). m: a true match agrees exactly on 90–95% of
    /// attributes, with typos making up most of the rest; u: the chance that two different
    /// people agree, from the usual spread of each attribute (a given name is shared by
    /// about 1 in 50, a birth date by 1 in 25,000, a phone or id by nearly nobody). The prior
    /// is 1 in 100,000: a record usually has no duplicate among that many others.
    pub fn reasoned() -> Self {
        let spec: [(Comparison, &[f64], &[f64]); COMPARISONS] = [
            (
                Comparison::GivenName,
                &[0.90, 0.06, 0.02, 0.02],
                &[0.02, 0.01, 0.05, 0.92],
            ),
            (
                Comparison::Surname,
                &[0.90, 0.06, 0.02, 0.02],
                &[0.005, 0.005, 0.04, 0.95],
            ),
            (
                Comparison::Patronymic,
                &[0.92, 0.05, 0.03],
                &[0.03, 0.02, 0.95],
            ),
            (
                Comparison::BirthDate,
                &[0.90, 0.01, 0.05, 0.02, 0.02],
                &[4e-5, 1e-6, 5e-4, 0.012, 0.9875],
            ),
            (
                Comparison::Phone,
                &[0.85, 0.03, 0.12],
                &[1e-7, 1e-6, 0.999_998_9],
            ),
            (
                Comparison::Email,
                &[0.85, 0.05, 0.10],
                &[1e-7, 1e-5, 0.999_989_9],
            ),
            (Comparison::StreetNumber, &[0.90, 0.10], &[0.03, 0.97]),
            (
                Comparison::Street,
                &[0.85, 0.07, 0.08],
                &[0.002, 0.003, 0.995],
            ),
            (
                Comparison::AddressExtra,
                &[0.85, 0.07, 0.08],
                &[0.002, 0.003, 0.995],
            ),
            (
                Comparison::Locality,
                &[0.88, 0.05, 0.07],
                &[0.01, 0.005, 0.985],
            ),
            (
                Comparison::Postcode,
                &[0.88, 0.06, 0.06],
                &[0.001, 0.01, 0.989],
            ),
            (Comparison::Region, &[0.95, 0.05], &[0.1, 0.9]),
            (
                Comparison::NationalId,
                &[0.97, 0.02, 0.01],
                &[1e-9, 1e-6, 0.999_998_999],
            ),
            (
                Comparison::OtherId,
                &[0.90, 0.06, 0.04],
                &[1e-7, 1e-5, 0.999_989_9],
            ),
        ];
        Model {
            comparisons: spec
                .iter()
                .map(|(c, m, u)| ComparisonParams {
                    comparison: *c,
                    m: m.to_vec(),
                    u: u.to_vec(),
                })
                .collect(),
            prior_log2_odds: log2_odds(1e-5),
            training: TrainingInfo::default(),
        }
    }

    /// Checks that the model has one entry per comparison, in order, with as many m and u
    /// values as the comparison has levels, all in (0, 1].
    pub fn check(&self) -> Result<(), String> {
        if self.comparisons.len() != COMPARISONS {
            return Err(format!(
                "model has {} comparisons, expected {COMPARISONS}",
                self.comparisons.len()
            ));
        }
        for (p, c) in self.comparisons.iter().zip(Comparison::ALL) {
            if p.comparison != c {
                return Err(format!(
                    "model comparison {:?} out of order, expected {c:?}",
                    p.comparison
                ));
            }
            let n = c.levels().len();
            if p.m.len() != n || p.u.len() != n {
                return Err(format!(
                    "model comparison {c:?}: expected {n} m and u values"
                ));
            }
            if p.m
                .iter()
                .chain(&p.u)
                .any(|x| !(x.is_finite() && *x > 0.0 && *x <= 1.0))
            {
                return Err(format!("model comparison {c:?}: m and u must be in (0, 1]"));
            }
        }
        if !self.prior_log2_odds.is_finite() {
            return Err("model prior is not a finite number".into());
        }
        Ok(())
    }
}

/// Level counts per comparison over a set of pairs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LevelCounts {
    pub counts: [[u64; MAX_LEVELS]; COMPARISONS],
    pub pairs: u64,
}

impl Default for LevelCounts {
    fn default() -> Self {
        LevelCounts {
            counts: [[0; MAX_LEVELS]; COMPARISONS],
            pairs: 0,
        }
    }
}

impl LevelCounts {
    pub(crate) fn add(&mut self, levels: &Levels) {
        for (k, &l) in levels.iter().enumerate() {
            self.counts[k][usize::from(l)] += 1;
        }
        self.pairs += 1;
    }

    pub(crate) fn merge(&mut self, other: &LevelCounts) {
        for k in 0..COMPARISONS {
            for l in 0..MAX_LEVELS {
                self.counts[k][l] += other.counts[k][l];
            }
        }
        self.pairs += other.pairs;
    }

    /// u per comparison and level from random-pair counts, with half a pair added to every
    /// level so that an agreement never seen among random pairs is rare, not impossible.
    pub(crate) fn u(&self) -> [Vec<f64>; COMPARISONS] {
        std::array::from_fn(|k| {
            let levels = Comparison::ALL[k].level_count() - 1;
            let present: u64 = self.counts[k][1..=levels].iter().sum();
            let denom = present as f64 + 0.5 * levels as f64;
            (1..=levels)
                .map(|l| (self.counts[k][l] as f64 + 0.5) / denom)
                .collect()
        })
    }
}

/// Distinct comparison vectors of the EM sample with their counts.
#[derive(Debug, Default)]
pub(crate) struct Patterns {
    /// pattern → (pairs, of which share a deterministic key)
    pub map: HashMap<Levels, (u64, u64), FxBuild>,
    pub pairs: u64,
    pub known: u64,
    /// One record in `stride` had its pairs sampled.
    pub stride: u64,
}

impl Patterns {
    pub(crate) fn add(&mut self, levels: Levels, known_match: bool) {
        let e = self.map.entry(levels).or_insert((0, 0));
        e.0 += 1;
        self.pairs += 1;
        if known_match {
            e.1 += 1;
            self.known += 1;
        }
    }
}

/// Result of EM: m per comparison and the share of matches among the sampled pairs.
pub(crate) struct EmFit {
    pub m: [Vec<f64>; COMPARISONS],
    pub lambda: f64,
    pub iterations: u32,
}

/// Estimates m and the match share by EM with `u` fixed. Known matches keep posterior 1.
pub(crate) fn em(patterns: &Patterns, u: &[Vec<f64>; COMPARISONS], max_iter: u32) -> EmFit {
    // Start from "a match mostly agrees exactly": 85% exact, 10% spread over the
    // intermediate levels, 5% different.
    let mut m: [Vec<f64>; COMPARISONS] = std::array::from_fn(|k| {
        let n = Comparison::ALL[k].levels().len();
        let mut v = vec![0.0; n];
        if n == 2 {
            v[0] = 0.9;
            v[1] = 0.1;
        } else {
            v[0] = 0.85;
            for x in v.iter_mut().take(n - 1).skip(1) {
                *x = 0.10 / (n - 2) as f64;
            }
            v[n - 1] = 0.05;
        }
        v
    });
    let mut lambda = 0.1f64;
    let pats: Vec<(&Levels, f64, f64)> = patterns
        .map
        .iter()
        .map(|(k, (n, d))| (k, *n as f64, *d as f64))
        .collect();
    let total: f64 = pats.iter().map(|p| p.1).sum();
    if total == 0.0 {
        return EmFit {
            m,
            lambda: 0.0,
            iterations: 0,
        };
    }
    let log_u: [Vec<f64>; COMPARISONS] =
        std::array::from_fn(|k| u[k].iter().map(|x| x.max(1e-12).ln()).collect());
    let mut iterations = 0;
    for _ in 0..max_iter {
        iterations += 1;
        let log_m: [Vec<f64>; COMPARISONS] =
            std::array::from_fn(|k| m[k].iter().map(|x| x.max(1e-12).ln()).collect());
        let prior = (lambda.max(1e-12) / (1.0 - lambda).max(1e-12)).ln();
        let mut acc: [Vec<f64>; COMPARISONS] = std::array::from_fn(|k| vec![0.0; m[k].len()]);
        let mut matched = 0.0;
        for (levels, n, known) in &pats {
            let mut s = prior;
            for (k, &l) in levels.iter().enumerate() {
                if l > 0 {
                    let i = usize::from(l) - 1;
                    s += log_m[k][i] - log_u[k][i];
                }
            }
            let g = 1.0 / (1.0 + (-s).exp());
            let weight = known + (n - known) * g;
            matched += weight;
            for (k, &l) in levels.iter().enumerate() {
                if l > 0 {
                    acc[k][usize::from(l) - 1] += weight;
                }
            }
        }
        let mut change = 0.0f64;
        for k in 0..COMPARISONS {
            let n = acc[k].len() as f64;
            let sum: f64 = acc[k].iter().sum();
            // A small pseudo-count keeps every level possible.
            for (i, a) in acc[k].iter().enumerate() {
                let v = (a + 0.01) / (sum + 0.01 * n);
                change = change.max((v - m[k][i]).abs());
                m[k][i] = v;
            }
        }
        let new_lambda = (matched / total).clamp(1e-9, 1.0 - 1e-9);
        change = change.max((new_lambda - lambda).abs());
        lambda = new_lambda;
        if change < 1e-6 {
            break;
        }
    }
    EmFit {
        m,
        lambda,
        iterations,
    }
}

/// Estimates the match share of `patterns` by EM with m and u both fixed. Known matches
/// count as matches.
pub(crate) fn em_share(
    patterns: &Patterns,
    m: &[Vec<f64>; COMPARISONS],
    u: &[Vec<f64>; COMPARISONS],
    max_iter: u32,
) -> f64 {
    let total = patterns.pairs as f64;
    if total == 0.0 {
        return 0.0;
    }
    // The log Bayes factor of each pattern does not change: compute it once.
    let factors: Vec<(f64, f64, f64)> = patterns
        .map
        .iter()
        .map(|(levels, (n, known))| {
            let mut s = 0.0;
            for (k, &l) in levels.iter().enumerate() {
                if l > 0 {
                    let i = usize::from(l) - 1;
                    s += m[k][i].max(1e-12).ln() - u[k][i].max(1e-12).ln();
                }
            }
            (s, *n as f64, *known as f64)
        })
        .collect();
    let mut lambda = 0.1f64;
    for _ in 0..max_iter {
        let prior = (lambda / (1.0 - lambda)).ln();
        let matched: f64 = factors
            .iter()
            .map(|(s, n, known)| known + (n - known) / (1.0 + (-(s + prior)).exp()))
            .sum();
        let next = (matched / total).clamp(1e-12, 1.0 - 1e-12);
        let done = (next - lambda).abs() < 1e-9;
        lambda = next;
        if done {
            break;
        }
    }
    lambda
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoned_model_is_well_formed() {
        let m = Model::reasoned();
        m.check().unwrap();
        let t = m.table();
        // Exact agreement on a national id outweighs anything else.
        assert!(t.w[12][1] > 25.0);
        // Disagreement is negative evidence everywhere.
        for (k, c) in Comparison::ALL.iter().enumerate() {
            assert!(t.w[k][usize::from(c.different())] < 0.0, "{c:?}");
            assert!(t.w[k][1] > 0.0, "{c:?}");
        }
        // Missing is neutral.
        assert_eq!(m.weight(&[0; COMPARISONS]), 0.0);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Model>(&json).unwrap(), m);
    }

    #[test]
    fn check_rejects_malformed_models() {
        let mut m = Model::reasoned();
        m.comparisons[3].m.pop();
        assert!(m.check().unwrap_err().contains("BirthDate"));
        let mut m = Model::reasoned();
        m.comparisons.swap(0, 1);
        assert!(m.check().is_err());
        let mut m = Model::reasoned();
        m.comparisons[0].u[0] = 0.0;
        assert!(m.check().is_err());
    }

    #[test]
    fn weights_are_log2_ratios() {
        let m = Model::reasoned();
        let mut levels = [0u8; COMPARISONS];
        levels[0] = 1;
        let w = m.weight(&levels);
        assert!((w - (0.90f64 / 0.02).log2()).abs() < 1e-9);
        levels[0] = 4;
        assert!((m.weight(&levels) - (0.02f64 / 0.92).log2()).abs() < 1e-9);
        assert!((probability(0.0) - 0.5).abs() < 1e-12);
        assert!((probability(log2_odds(0.9)) - 0.9).abs() < 1e-9);
    }

    #[test]
    fn u_counts_with_half_pair_smoothing() {
        let mut c = LevelCounts::default();
        let mut l = [0u8; COMPARISONS];
        l[11] = 2; // region different
        for _ in 0..3 {
            c.add(&l);
        }
        l[11] = 1;
        c.add(&l);
        let u = c.u();
        assert!((u[11][0] - 1.5 / 5.0).abs() < 1e-12);
        assert!((u[11][1] - 3.5 / 5.0).abs() < 1e-12);
        // A comparison never present is uniform.
        assert!((u[0][0] - 0.25).abs() < 1e-12);
    }

    /// EM on a synthetic mixture recovers m and the match share it was drawn from.
    #[test]
    fn em_recovers_a_planted_mixture() {
        // Three binary-ish comparisons used (given name, surname, birth date); the rest missing.
        let mut pats = Patterns::default();
        let mut add = |g: u8, s: u8, d: u8, n: u64| {
            let mut l = [0u8; COMPARISONS];
            l[0] = g;
            l[1] = s;
            l[3] = d;
            for _ in 0..n {
                pats.add(l, false);
            }
        };
        // 1,000 matches: each comparison exact with 0.9, else "different" (independently).
        // 9,000 non-matches: exact with 0.05, else different.
        let p_m = [0.9f64, 0.1];
        let p_u = [0.05f64, 0.95];
        let level = |i: usize, c: Comparison| if i == 0 { 1 } else { c.different() };
        for (gi, &pg) in p_m.iter().enumerate() {
            for (si, &ps) in p_m.iter().enumerate() {
                for (di, &pd) in p_m.iter().enumerate() {
                    let n_m = (1000.0 * pg * ps * pd).round() as u64;
                    let n_u = (9000.0 * p_u[gi] * p_u[si] * p_u[di]).round() as u64;
                    add(
                        level(gi, Comparison::GivenName),
                        level(si, Comparison::Surname),
                        level(di, Comparison::BirthDate),
                        n_m + n_u,
                    );
                }
            }
        }
        let mut u: [Vec<f64>; COMPARISONS] = std::array::from_fn(|k| {
            let n = Comparison::ALL[k].levels().len();
            vec![1.0 / n as f64; n]
        });
        u[0] = vec![0.05, 0.0, 0.0, 0.95];
        u[1] = vec![0.05, 0.0, 0.0, 0.95];
        u[3] = vec![0.05, 0.0, 0.0, 0.0, 0.95];
        let fit = em(&pats, &u, 200);
        assert!((fit.lambda - 0.1).abs() < 0.01, "lambda {}", fit.lambda);
        assert!((fit.m[0][0] - 0.9).abs() < 0.02, "m {:?}", fit.m[0]);
        assert!((fit.m[3][4] - 0.1).abs() < 0.02, "m {:?}", fit.m[3]);
        assert!(fit.iterations > 1);
    }

    #[test]
    fn known_matches_stay_matches() {
        let mut pats = Patterns::default();
        let mut l = [0u8; COMPARISONS];
        l[0] = 4;
        for _ in 0..10 {
            pats.add(l, true);
        }
        let u: [Vec<f64>; COMPARISONS] = std::array::from_fn(|k| {
            let n = Comparison::ALL[k].levels().len();
            vec![1.0 / n as f64; n]
        });
        let fit = em(&pats, &u, 50);
        assert!((fit.lambda - 1.0).abs() < 1e-6);
        // All known matches disagreed on the given name, so m puts its mass there.
        assert!(fit.m[0][3] > 0.99);
    }
}
