//! Fuzzing on stable Rust for the HTTP inputs: a seeded generator mutates valid inputs the
//! same way on every run, so a failure reproduces with the round number it names. The
//! cargo-fuzz targets in `fuzz/` run the same checks with coverage guidance.

/// SplitMix64: small, seedable, good enough to pick mutations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// JSON pieces spliced in to reach deeper states than random bytes would.
pub const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ":",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "1e400",
    "-9223372036854775809",
    "18446744073709551616",
    "0.1",
    "\"\"",
    "\" \"",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "\"\\\"\"",
    "\"events\"",
    "\"event_id\"",
    "\"id\"",
    "\"v\"",
    "\"at\"",
    "\"deleted\"",
    "\"inn\"",
    "\"phones\"",
    "\"email\"",
    "\"birth\"",
    "\"person\"",
    "\"4111111111111111\"",
    "\"4111 1111 1111 1111\"",
    "\"7707083893\"",
    "\"31.02.2026\"",
    "\"2026-13-40T99:00:00Z\"",
    "\"by\"",
    "\"force\"",
    "\"reason\"",
    "\"decision\"",
    "\"officer\"",
    "\"comment\"",
    "\"steward\"",
    "\"survivor\"",
    "\"loser\"",
    "\"system\"",
    "\"source_id\"",
    "\"merge\"",
    "\"keep_apart\"",
    "\"confirmed\"",
    "\"false_positive\"",
    "[[[[[[[[[[[[[[[[",
    "{\"a\":{\"a\":{\"a\":{\"a\":",
    "\u{feff}",
    "\0",
    "\r\n",
    "\\",
    "Ё",
    "\u{202e}",
];

/// One mutation of `input`: flip, insert, delete, duplicate, splice a token or a piece
/// of `other`, or cut the end.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let times = 1 + rng.below(4);
    for _ in 0..times {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => out.insert(at, rng.next() as u8),
            2 if !out.is_empty() => {
                let start = at.min(out.len() - 1);
                let len = 1 + rng.below(8.min(out.len() - start));
                out.drain(start..start + len);
            }
            3 if at < out.len() => {
                let len = 1 + rng.below(16.min(out.len() - at));
                let piece = out[at..at + len].to_vec();
                out.splice(at..at, piece);
            }
            4 => {
                let token = JSON_TOKENS[rng.below(JSON_TOKENS.len())];
                out.splice(at..at, token.bytes());
            }
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = 1 + rng.below(32.min(other.len() - from));
                out.splice(at..at, other[from..from + len].iter().copied());
            }
            6 => out.truncate(at),
            _ => {}
        }
    }
    out
}
