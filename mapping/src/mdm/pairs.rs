//! Pair precision and recall of a clustering against known entities.
//!
//! Every pair of records in one predicted cluster is a predicted match; every pair of
//! records of one true entity is a true match. For a linkage only pairs with one record on
//! each side count. Computed from cluster × entity counts, so it costs O(records) however
//! large the clusters.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Pair counts and the measures derived from them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PairMetrics {
    /// Pairs that are true matches.
    pub true_pairs: u64,
    /// Pairs the clustering put together.
    pub predicted_pairs: u64,
    /// Pairs both true and predicted.
    pub true_positives: u64,
    /// true_positives / predicted_pairs (1 when nothing was predicted).
    pub precision: f64,
    /// true_positives / true_pairs (1 when there is nothing to find).
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
}

impl PairMetrics {
    /// The evaluation's result line: `precision=P recall=R f1=F`, three decimals.
    pub fn line(&self) -> String {
        format!(
            "precision={:.3} recall={:.3} f1={:.3}",
            self.precision, self.recall, self.f1
        )
    }
}

/// Pairs within a group whose members are counted per side: all pairs for deduplication,
/// left × right pairs for a linkage.
fn pairs_in(counts: [u64; 2], linkage: bool) -> u64 {
    if linkage {
        counts[0] * counts[1]
    } else {
        let n = counts[0] + counts[1];
        n * n.saturating_sub(1) / 2
    }
}

/// Pair metrics of `clusters` against `entities` (one entry per record each); `sides` gives
/// each record's side for a linkage and is ignored (may be empty) for deduplication.
pub fn pair_metrics(
    clusters: &[u32],
    entities: &[u64],
    sides: &[u8],
    linkage: bool,
) -> PairMetrics {
    let side = |i: usize| usize::from(linkage && sides.get(i).copied().unwrap_or(0) == 1);
    let mut by_cluster: HashMap<u32, [u64; 2]> = HashMap::new();
    let mut by_entity: HashMap<u64, [u64; 2]> = HashMap::new();
    let mut by_both: HashMap<(u32, u64), [u64; 2]> = HashMap::new();
    for (i, (&c, &e)) in clusters.iter().zip(entities).enumerate() {
        let s = side(i);
        by_cluster.entry(c).or_default()[s] += 1;
        by_entity.entry(e).or_default()[s] += 1;
        by_both.entry((c, e)).or_default()[s] += 1;
    }
    let predicted: u64 = by_cluster.values().map(|&c| pairs_in(c, linkage)).sum();
    let truth: u64 = by_entity.values().map(|&c| pairs_in(c, linkage)).sum();
    let tp: u64 = by_both.values().map(|&c| pairs_in(c, linkage)).sum();
    let precision = if predicted == 0 {
        1.0
    } else {
        tp as f64 / predicted as f64
    };
    let recall = if truth == 0 {
        1.0
    } else {
        tp as f64 / truth as f64
    };
    let f1 = if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    PairMetrics {
        true_pairs: truth,
        predicted_pairs: predicted,
        true_positives: tp,
        precision,
        recall,
        f1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_pairs() {
        // Truth: {0,1,2} {3,4} {5}; predicted: {0,1} {2,3,4} {5}.
        let m = pair_metrics(&[0, 0, 1, 1, 1, 2], &[7, 7, 7, 8, 8, 9], &[], false);
        assert_eq!(m.true_pairs, 4);
        assert_eq!(m.predicted_pairs, 4);
        assert_eq!(m.true_positives, 2);
        assert!((m.precision - 0.5).abs() < 1e-12);
        assert!((m.recall - 0.5).abs() < 1e-12);
        assert_eq!(m.line(), "precision=0.500 recall=0.500 f1=0.500");
    }

    #[test]
    fn linkage_counts_cross_pairs_only() {
        // Records 0,1 left; 2,3 right. Truth: 0~2, 1~3 and 0~1 (same side, not counted).
        let m = pair_metrics(&[0, 0, 0, 1], &[1, 1, 1, 2], &[0, 0, 1, 1], true);
        // Entity 1 has left 2, right 1 → 2 true cross pairs; entity 2 right only → 0.
        assert_eq!(m.true_pairs, 2);
        // Cluster 0: left 2 × right 1 = 2 predicted.
        assert_eq!(m.predicted_pairs, 2);
        assert_eq!(m.true_positives, 2);
        assert_eq!(m.f1, 1.0);
    }

    #[test]
    fn empty_cases() {
        let m = pair_metrics(&[0, 1], &[0, 1], &[], false);
        assert_eq!((m.precision, m.recall, m.f1), (1.0, 1.0, 1.0));
        let m = pair_metrics(&[0, 0], &[0, 1], &[], false);
        assert_eq!((m.precision, m.recall), (0.0, 1.0));
        assert_eq!(m.f1, 0.0);
    }
}
