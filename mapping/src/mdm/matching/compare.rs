//! String comparators: Jaro-Winkler similarity and Damerau-Levenshtein distance.
//!
//! Both work on characters; ASCII input (the usual case after names are keyed) takes a byte
//! path without allocating. The Damerau-Levenshtein distance is the restricted form (optimal
//! string alignment): insertions, deletions, substitutions and swaps of adjacent characters,
//! each substring edited once, which is what a typing error produces.

/// Jaro-Winkler similarity in `[0, 1]`: 1 for equal strings, 0 when either is empty and the
/// other is not. The common-prefix bonus uses the standard scale 0.1 over at most 4
/// characters.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    if a.is_ascii() && b.is_ascii() {
        jaro_winkler_of(a.as_bytes(), b.as_bytes())
    } else {
        with_chars(a, |x| with_chars(b, |y| jaro_winkler_of(x, y)))
    }
}

/// Restricted Damerau-Levenshtein (optimal string alignment) distance in characters.
pub fn damerau_levenshtein(a: &str, b: &str) -> usize {
    if a.is_ascii() && b.is_ascii() {
        osa_distance(a.as_bytes(), b.as_bytes())
    } else {
        with_chars(a, |x| with_chars(b, |y| osa_distance(x, y)))
    }
}

/// Whether two strings are at most one edit (insert, delete, substitute, adjacent swap) apart.
/// Cheaper than computing the distance.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        one_edit(a.as_bytes(), b.as_bytes())
    } else {
        with_chars(a, |x| with_chars(b, |y| one_edit(x, y)))
    }
}

/// Runs `f` over the characters of `s`, held on the stack when there are at most 64.
fn with_chars<R>(s: &str, f: impl FnOnce(&[char]) -> R) -> R {
    let mut buf = ['\0'; 64];
    let mut n = 0;
    for c in s.chars() {
        if n == buf.len() {
            let all: Vec<char> = s.chars().collect();
            return f(&all);
        }
        buf[n] = c;
        n += 1;
    }
    f(&buf[..n])
}

pub(crate) fn jaro_winkler_of<T: Eq + Copy>(a: &[T], b: &[T]) -> f64 {
    let j = jaro_of(a, b);
    let prefix = a.iter().zip(b).take(4).take_while(|(x, y)| x == y).count();
    j + 0.1 * prefix as f64 * (1.0 - j)
}

fn jaro_of<T: Eq + Copy>(a: &[T], b: &[T]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    if a == b {
        return 1.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    // Matched flags: bit sets for short strings (no allocation), vectors otherwise.
    if a.len() <= 64 && b.len() <= 64 {
        let (mut ma, mut mb) = (0u64, 0u64);
        let mut m = 0usize;
        for (i, x) in a.iter().enumerate() {
            let lo = i.saturating_sub(window);
            let hi = (i + window + 1).min(b.len());
            for (j, y) in b.iter().enumerate().take(hi).skip(lo) {
                if mb & (1 << j) == 0 && y == x {
                    ma |= 1 << i;
                    mb |= 1 << j;
                    m += 1;
                    break;
                }
            }
        }
        if m == 0 {
            return 0.0;
        }
        let mut t = 0usize;
        let mut j = 0usize;
        for (i, x) in a.iter().enumerate() {
            if ma & (1 << i) == 0 {
                continue;
            }
            while mb & (1 << j) == 0 {
                j += 1;
            }
            if *x != b[j] {
                t += 1;
            }
            j += 1;
        }
        return jaro_formula(m, t, a.len(), b.len());
    }
    let mut ma = vec![false; a.len()];
    let mut mb = vec![false; b.len()];
    let mut m = 0usize;
    for (i, x) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for (j, y) in b.iter().enumerate().take(hi).skip(lo) {
            if !mb[j] && y == x {
                ma[i] = true;
                mb[j] = true;
                m += 1;
                break;
            }
        }
    }
    if m == 0 {
        return 0.0;
    }
    let mut t = 0usize;
    let mut j = 0usize;
    for (i, x) in a.iter().enumerate() {
        if !ma[i] {
            continue;
        }
        while !mb[j] {
            j += 1;
        }
        if *x != b[j] {
            t += 1;
        }
        j += 1;
    }
    jaro_formula(m, t, a.len(), b.len())
}

fn jaro_formula(m: usize, half_transpositions: usize, la: usize, lb: usize) -> f64 {
    let m = m as f64;
    let t = (half_transpositions / 2) as f64;
    (m / la as f64 + m / lb as f64 + (m - t) / m) / 3.0
}

pub(crate) fn osa_distance<T: Eq + Copy>(a: &[T], b: &[T]) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    // Three rolling rows of the dynamic programme in one buffer, on the stack for short
    // strings: row i lives at (i % 3) * w.
    let w = b.len() + 1;
    if w <= 65 {
        let mut buf = [0usize; 3 * 65];
        osa_in(a, b, &mut buf[..3 * w])
    } else {
        osa_in(a, b, &mut vec![0usize; 3 * w])
    }
}

fn osa_in<T: Eq + Copy>(a: &[T], b: &[T], buf: &mut [usize]) -> usize {
    let w = b.len() + 1;
    for (j, x) in buf.iter_mut().enumerate().take(w) {
        *x = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = ((i % 3) * w, ((i + 2) % 3) * w, ((i + 1) % 3) * w);
        buf[cur] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (buf[prev + j] + 1)
                .min(buf[cur + j - 1] + 1)
                .min(buf[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(buf[prev2 + j - 2] + 1);
            }
            buf[cur + j] = d;
        }
    }
    buf[(a.len() % 3) * w + b.len()]
}

pub(crate) fn one_edit<T: Eq + Copy>(a: &[T], b: &[T]) -> bool {
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let p = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if p == la && p == lb {
        return true;
    }
    let (ra, rb) = (&a[p..], &b[p..]);
    if la == lb {
        // One substitution, or one swap of adjacent characters.
        ra[1..] == rb[1..]
            || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
    } else if la > lb {
        ra[1..] == *rb
    } else {
        *ra == rb[1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-3
    }

    #[test]
    fn jaro_winkler_reference_values() {
        // Values from Winkler's papers and the common reference implementations.
        assert!(close(jaro_winkler("martha", "marhta"), 0.961));
        assert!(close(jaro_winkler("dwayne", "duane"), 0.840));
        assert!(close(jaro_winkler("dixon", "dicksonx"), 0.813));
        assert!(close(jaro_winkler("", ""), 1.0));
        assert!(close(jaro_winkler("abc", ""), 0.0));
        assert!(close(jaro_winkler("abc", "xyz"), 0.0));
        assert!(close(jaro_winkler("same", "same"), 1.0));
        // Cyrillic goes through the character path.
        assert!(close(
            jaro_winkler("марфа", "мрафа"),
            jaro_winkler("marfa", "mrafa")
        ));
    }

    #[test]
    fn jaro_winkler_long_strings_use_the_vector_path() {
        let a = "a".repeat(70) + "bc";
        let b = "a".repeat(70) + "cb";
        let j = jaro_winkler(&a, &b);
        assert!(j > 0.99 && j < 1.0, "{j}");
    }

    #[test]
    fn osa_distances() {
        assert_eq!(damerau_levenshtein("ivanov", "ivanov"), 0);
        assert_eq!(damerau_levenshtein("ivanov", "ivnaov"), 1);
        assert_eq!(damerau_levenshtein("ivanov", "ivanova"), 1);
        assert_eq!(damerau_levenshtein("ivanov", "ivanof"), 1);
        assert_eq!(damerau_levenshtein("ca", "abc"), 3);
        assert_eq!(damerau_levenshtein("", "abc"), 3);
        assert_eq!(damerau_levenshtein("иванов", "иваонв"), 1);
        assert_eq!(damerau_levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn one_edit_agrees_with_distance() {
        let words = [
            "", "a", "ab", "ba", "abc", "acb", "abd", "abcd", "xbc", "bca", "ивн", "иван",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    within_one_edit(a, b),
                    damerau_levenshtein(a, b) <= 1,
                    "{a} {b}"
                );
            }
        }
    }
}
