//! How close two token keys are, and the deletion variants that let an index find every
//! pair close enough to count.
//!
//! Contract (the index relies on it): [`key_sim`] is non-zero only when the keys are equal,
//! or their optimal-string-alignment distance is 1 with the shorter key at least 3 and the
//! longer at least 4 symbols long, or (when `max_edits` is 2) the distance is 2 with both
//! keys at least [`TWO_EDITS_MIN_LEN`] long. Two keys at distance ≤ k share a string obtained
//! by deleting ≤ k symbols from each, which is what [`for_each_variant`] enumerates. Keys
//! longer than [`MAX_FUZZY_LEN`] match only when equal.

/// Keys shorter than this accept one edit at most.
pub const TWO_EDITS_MIN_LEN: usize = 7;
/// Keys longer than this match only when equal: no name word is that long, and the
/// variants of a longer key would cost more than they find.
pub const MAX_FUZZY_LEN: usize = 32;

/// Similarity of two keys in 0..=1: 1 when equal, 1 − edits/longer length when within the
/// allowed edits (see the module contract), else 0.
pub fn key_sim(a: &str, b: &str, max_edits: usize) -> f64 {
    if a == b {
        return 1.0;
    }
    if a.is_ascii() && b.is_ascii() {
        sim_of(a.as_bytes(), b.as_bytes(), max_edits)
    } else {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        sim_of(&a, &b, max_edits)
    }
}

fn sim_of<T: PartialEq + Copy>(a: &[T], b: &[T], max_edits: usize) -> f64 {
    let (short, long) = if a.len() <= b.len() {
        (a.len(), b.len())
    } else {
        (b.len(), a.len())
    };
    if short < 3 || !(4..=MAX_FUZZY_LEN).contains(&long) || long - short > max_edits.min(2) {
        return 0.0;
    }
    let allowed = if max_edits >= 2 && short >= TWO_EDITS_MIN_LEN {
        2
    } else {
        1
    };
    match osa_within(a, b, allowed) {
        Some(0) => 1.0,
        Some(d) => 1.0 - d as f64 / long as f64,
        None => 0.0,
    }
}

/// Optimal string alignment distance (Damerau–Levenshtein without repeated edits of a
/// substring) when it is at most `bound`, else `None`.
pub fn osa_within<T: PartialEq + Copy>(a: &[T], b: &[T], bound: usize) -> Option<usize> {
    let (n, m) = (a.len(), b.len());
    if n.abs_diff(m) > bound {
        return None;
    }
    // Three rolling rows, on the stack for the lengths names have.
    const STACK: usize = 48;
    if m < STACK {
        let mut rows = [[0usize; STACK]; 3];
        osa_rows(a, b, bound, &mut rows)
    } else {
        let mut heap = vec![vec![0usize; m + 1]; 3];
        osa_rows_vec(a, b, bound, &mut heap)
    }
}

fn osa_rows<T: PartialEq + Copy, const W: usize>(
    a: &[T],
    b: &[T],
    bound: usize,
    rows: &mut [[usize; W]; 3],
) -> Option<usize> {
    let [prev2, prev, cur] = rows;
    osa_core(a, b, bound, prev2, prev, cur)
}

fn osa_rows_vec<T: PartialEq + Copy>(
    a: &[T],
    b: &[T],
    bound: usize,
    rows: &mut [Vec<usize>],
) -> Option<usize> {
    let [prev2, prev, cur] = rows else {
        return None;
    };
    osa_core(a, b, bound, prev2, prev, cur)
}

fn osa_core<T: PartialEq + Copy>(
    a: &[T],
    b: &[T],
    bound: usize,
    prev2: &mut [usize],
    prev: &mut [usize],
    cur: &mut [usize],
) -> Option<usize> {
    let (n, m) = (a.len(), b.len());
    for (j, v) in prev.iter_mut().enumerate().take(m + 1) {
        *v = j;
    }
    // Row i lives in `rows[i % 3]`; index arithmetic instead of swapping borrowed slices.
    let mut r: [&mut [usize]; 3] = [prev2, prev, cur];
    for i in 1..=n {
        let (p2, rest) = r.split_at_mut(1);
        let (p1, c) = rest.split_at_mut(1);
        let (p2, p1, c) = (&*p2[0], &*p1[0], &mut *c[0]);
        c[0] = i;
        let mut row_min = i;
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (p1[j] + 1).min(c[j - 1] + 1).min(p1[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(p2[j - 2] + 1);
            }
            c[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > bound {
            return None;
        }
        r.rotate_left(1);
    }
    // After the rotation the last computed row is in r[1].
    let d = r[1][m];
    (d <= bound).then_some(d)
}

/// Calls `f` with the hash of `key` and of every string made by deleting up to
/// `deletions` symbols from it (duplicates may repeat). Keys shorter than 3 symbols get only
/// their own hash; two deletions are made only from keys of [`TWO_EDITS_MIN_LEN`] or more.
///
/// The hash is polynomial, so each variant's hash comes from prefix hashes in constant time.
pub fn for_each_variant(key: &str, deletions: usize, f: impl FnMut(u64)) {
    const STACK: usize = 64;
    if key.len() <= STACK {
        let mut codes = [0u64; STACK];
        let mut n = 0;
        for c in key.chars() {
            codes[n] = u64::from(c) + 1;
            n += 1;
        }
        variants_of(&codes[..n], deletions, f);
    } else {
        let codes: Vec<u64> = key.chars().map(|c| u64::from(c) + 1).collect();
        variants_of(&codes, deletions, f);
    }
}

fn variants_of(codes: &[u64], deletions: usize, mut f: impl FnMut(u64)) {
    let n = codes.len();
    // prefix[k] = hash of codes[..k]; pow[k] = BASE^k.
    let mut prefix = vec![0u64; n + 1];
    let mut pow = vec![1u64; n + 1];
    for (k, c) in codes.iter().enumerate() {
        prefix[k + 1] = prefix[k].wrapping_mul(BASE).wrapping_add(*c);
        pow[k + 1] = pow[k].wrapping_mul(BASE);
    }
    let range = |a: usize, b: usize| prefix[b].wrapping_sub(prefix[a].wrapping_mul(pow[b - a]));
    let finish = |h: u64, len: usize| mix(h ^ (len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    f(finish(prefix[n], n));
    if !(3..=MAX_FUZZY_LEN).contains(&n) || deletions == 0 {
        return;
    }
    for i in 0..n {
        let h = range(0, i)
            .wrapping_mul(pow[n - i - 1])
            .wrapping_add(range(i + 1, n));
        f(finish(h, n - 1));
    }
    if deletions < 2 || n < TWO_EDITS_MIN_LEN {
        return;
    }
    for i in 0..n {
        for j in i + 1..n {
            let h = range(0, i)
                .wrapping_mul(pow[n - i - 2])
                .wrapping_add(range(i + 1, j).wrapping_mul(pow[n - j - 1]))
                .wrapping_add(range(j + 1, n));
            f(finish(h, n - 2));
        }
    }
}

const BASE: u64 = 0x0000_0100_0000_01b3;

/// A final avalanche (SplitMix64's), so that the hash map can use the value as it is.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn osa_counts_transpositions_as_one() {
        assert_eq!(osa_within(b"ahmed", b"ahemd", 2), Some(1));
        assert_eq!(osa_within(b"lukashenko", b"luakshenko", 2), Some(1));
        assert_eq!(osa_within(b"abc", b"xyz", 2), None);
        assert_eq!(osa_within(b"", b"ab", 2), Some(2));
    }

    #[test]
    fn similarity_scales_with_length() {
        assert_eq!(key_sim("ivanov", "ivanov", 2), 1.0);
        assert!((key_sim("ivanov", "ivanof", 2) - (1.0 - 1.0 / 6.0)).abs() < 1e-9);
        // One edit in a 3-letter key is too much; two edits need 7 symbols on both sides.
        assert_eq!(key_sim("ali", "ala", 2), 0.0);
        assert_eq!(key_sim("sechin", "sechev", 2), 0.0);
        assert!(key_sim("hodorkovsky", "hordorovsky", 2) > 0.8);
        assert_eq!(key_sim("hodorkovsky", "hordorovsky", 1), 0.0);
    }

    /// The index contract: any pair with a non-zero similarity shares a variant.
    #[test]
    fn close_keys_share_a_variant() {
        let words = [
            "ivanov",
            "ivanof",
            "ivnaov",
            "sergeI",
            "serge",
            "lukaSenko",
            "lukaSnko",
            "moHamed",
            "muHamad",
            "abc",
            "abcd",
            "abdc",
            "hodorkovsky",
            "hordorovsky",
            "xy",
            "xyz",
        ];
        for a in words {
            for b in words {
                for edits in [1, 2] {
                    if key_sim(a, b, edits) == 0.0 {
                        continue;
                    }
                    let mut va = HashSet::new();
                    for_each_variant(a, edits, |h| {
                        va.insert(h);
                    });
                    let mut shared = false;
                    for_each_variant(b, edits, |h| shared |= va.contains(&h));
                    assert!(shared, "{a} {b} {edits}");
                }
            }
        }
    }
}
