//! Clustering of matched pairs into parties: union-find with "cannot link" constraints.
//!
//! Contract: deterministic matches are joined first and unconditionally. Probabilistic
//! matches are then joined strongest first, unless the join would put two records that a
//! hard non-match rule keeps apart (twins, father and son, namesakes) into one cluster; such
//! a match is refused and reported. So a chain A–C–B cannot merge twins A and B.

/// Union-find over record numbers, with per-cluster lists of records it must not join.
#[derive(Debug)]
pub(crate) struct Clusters {
    parent: Vec<u32>,
    size: Vec<u32>,
    /// For a root: records (any cluster) its cluster must never join.
    cannot: Vec<Vec<u32>>,
}

impl Clusters {
    pub(crate) fn new(n: usize) -> Self {
        Clusters {
            parent: (0..n as u32).collect(),
            size: vec![1; n],
            cannot: vec![Vec::new(); n],
        }
    }

    pub(crate) fn find(&mut self, x: u32) -> u32 {
        let mut root = x;
        while self.parent[root as usize] != root {
            root = self.parent[root as usize];
        }
        // Path compression.
        let mut cur = x;
        while self.parent[cur as usize] != root {
            let next = self.parent[cur as usize];
            self.parent[cur as usize] = root;
            cur = next;
        }
        root
    }

    /// Records that `a` and `b` must never be in one cluster.
    pub(crate) fn forbid(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        self.cannot[ra as usize].push(b);
        self.cannot[rb as usize].push(a);
    }

    fn link(&mut self, ra: u32, rb: u32) {
        let (big, small) = if self.size[ra as usize] >= self.size[rb as usize] {
            (ra, rb)
        } else {
            (rb, ra)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        let moved = std::mem::take(&mut self.cannot[small as usize]);
        self.cannot[big as usize].extend(moved);
    }

    /// Joins the clusters of `a` and `b` without checking constraints.
    pub(crate) fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.link(ra, rb);
        }
    }

    /// Joins the clusters of `a` and `b` unless a constraint forbids it. Returns whether
    /// they are in one cluster afterwards.
    pub(crate) fn try_union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        // Check the smaller constraint list against the other root.
        let (check, other) = if self.cannot[ra as usize].len() <= self.cannot[rb as usize].len() {
            (ra, rb)
        } else {
            (rb, ra)
        };
        let list = std::mem::take(&mut self.cannot[check as usize]);
        let conflict = list.iter().any(|&x| self.find(x) == other);
        self.cannot[check as usize] = list;
        if conflict {
            return false;
        }
        self.link(ra, rb);
        true
    }

    /// Cluster numbers 0..k in order of each cluster's first record, and k.
    pub(crate) fn labels(&mut self) -> (Vec<u32>, usize) {
        let n = self.parent.len();
        let mut label = vec![u32::MAX; n];
        let mut out = Vec::with_capacity(n);
        let mut next = 0u32;
        for i in 0..n as u32 {
            let r = self.find(i) as usize;
            if label[r] == u32::MAX {
                label[r] = next;
                next += 1;
            }
            out.push(label[r]);
        }
        (out, next as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_labels() {
        let mut c = Clusters::new(6);
        c.union(0, 3);
        c.union(3, 5);
        assert!(c.try_union(1, 2));
        let (labels, k) = c.labels();
        assert_eq!(labels, vec![0, 1, 1, 0, 2, 0]);
        assert_eq!(k, 3);
    }

    #[test]
    fn cannot_link_blocks_transitive_merges() {
        let mut c = Clusters::new(4);
        // 0 and 1 are twins; 2 looks like both.
        c.forbid(0, 1);
        assert!(c.try_union(0, 2));
        assert!(!c.try_union(2, 1), "twins must stay apart through a chain");
        assert!(c.try_union(1, 3));
        assert!(!c.try_union(3, 0));
        let (labels, k) = c.labels();
        assert_eq!(k, 2);
        assert_eq!(labels[0], labels[2]);
        assert_eq!(labels[1], labels[3]);
        assert_ne!(labels[0], labels[1]);
        // Deterministic union ignores constraints.
        c.union(0, 1);
        assert_eq!(c.labels().1, 1);
    }
}
