//! A small deterministic pseudo-random generator (SplitMix64) for sampling pairs and
//! generating synthetic data: the same seed gives the same sequence on every machine.
//! Not for anything secret.

/// The SplitMix64 output function: a bijective 64-bit mix.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator for item `index` of stream `seed`: independent streams for parallel work.
    /// Seed and index both pass through the output mix, so the streams of neighbouring
    /// items are not shifted copies of each other.
    pub fn for_item(seed: u64, index: u64) -> Self {
        SplitMix64(mix(seed ^ mix(index.wrapping_add(0x632b_e59b_d9b4_e019))))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-shift (bias below 2^-32 for the
    /// sizes used here).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// An index into a slice of length `n`.
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        // 53 random bits as a float in [0, 1).
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// A random element of a non-empty slice; `None` for an empty one.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.index(items.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut g = SplitMix64::for_item(1, 2);
        for _ in 0..1000 {
            assert!(g.below(10) < 10);
        }
        assert_eq!(g.below(0), 0);
        assert!(g.pick::<u8>(&[]).is_none());
        let heads = (0..10_000).filter(|_| g.chance(0.3)).count();
        assert!((2700..3300).contains(&heads), "{heads}");
        // Neighbouring items' streams are not shifted copies of each other.
        let mut a = SplitMix64::for_item(1, 2);
        let mut b = SplitMix64::for_item(1, 3);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        assert!(xs.iter().all(|x| !ys.contains(x)));
    }
}
