//! Fuzzing on stable Rust: every reader is run over thousands of inputs made by mutating
//! the valid samples of the other tests with a seeded generator (the same inputs on every
//! run). Nothing may panic, every reader must end, nothing may follow a file-level error,
//! and every error must name the file and give a reason. The cargo-fuzz targets in `fuzz/`
//! do the same with coverage guidance.

use super::{camt, cp1251, csv_statement, fixed_width, mt940, onec};
use crate::file_drop::Encoding;
use crate::formats::FormatConfig;

/// Inputs per format.
const ROUNDS: usize = 3000;

/// SplitMix64: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Pieces that mean something to the readers, spliced in to reach deeper states.
const TOKENS: &[&str] = &[
    "<Ntry>",
    "</Ntry>",
    "<TxDtls>",
    "</TxDtls>",
    "<Amt Ccy=\"EUR\">",
    "</Amt>",
    "<Bal>",
    "</Stmt>",
    "<Stmt>",
    "&amp;",
    "&#0;",
    "&#x110000;",
    "&bogus;",
    "<![CDATA[x]]>",
    "<!--",
    "<?xml version=\"1.0\" encoding=\"KOI8-R\"?>",
    ":20:",
    ":25:",
    ":61:",
    ":86:",
    ":62F:",
    ":60F:",
    ":90D:",
    ":NS:",
    "{4:",
    "-}",
    "\n-\n",
    "9999999999999999999,99",
    "СекцияДокумент\n",
    "КонецДокумента\n",
    "СекцияРасчСчет\n",
    "КонецРасчСчет\n",
    "КонецФайла\n",
    "Сумма=",
    "=",
    ";",
    "\"",
    "\r",
    "\n",
    "\0",
    "\u{feff}",
    "(",
    ")",
    "-",
    ",",
    ".",
    "\u{a0}",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = data.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                data[at] = rng.next() as u8;
            }
            1 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                data.drain(at..end);
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(256)).min(len);
                let copy = data[at..end].to_vec();
                let to = rng.below(data.len());
                data.splice(to..to, copy);
            }
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                let to = rng.below(len + 1);
                data.splice(to..to, token.iter().copied());
            }
            4 if len > 0 => data.truncate(rng.below(len)),
            5 if len > 1 => {
                // Swap two lines' worth of bytes: reorders sections and tags.
                let a = rng.below(len);
                let b = rng.below(len);
                let (a, b) = (a.min(b), a.max(b));
                let n = (b - a).min(64);
                if a + n <= b {
                    let first = data[a..a + n].to_vec();
                    let second = data[b..(b + n).min(len)].to_vec();
                    data.splice(b..(b + n).min(len), first);
                    data.splice(a..a + n, second);
                }
            }
            _ => {
                let at = rng.below(len + 1);
                data.insert(at, rng.next() as u8);
            }
        }
    }
    data
}

/// Runs `config` over mutations of `seeds` and checks the readers' promises.
fn fuzz(config: &FormatConfig, seeds: &[Vec<u8>], seed: u64) {
    let mut rng = Rng(seed);
    for round in 0..ROUNDS {
        let base = &seeds[round % seeds.len()];
        let input = mutate(&mut rng, base);
        let records = match config.from_bytes("sample", input.clone()) {
            Ok(r) => r,
            Err(e) => {
                assert!(e.is_fatal() && !e.reason.is_empty(), "round {round}: {e}");
                continue;
            }
        };
        let mut fatal_seen = false;
        // A record per input byte is more than any reader makes; more means a loop.
        let limit = input.len() * 4 + 16;
        let mut count = 0;
        for item in records {
            count += 1;
            assert!(count <= limit, "round {round}: the reader does not end");
            assert!(
                !fatal_seen,
                "round {round}: an item after a file-level error"
            );
            if let Err(e) = item {
                assert_eq!(e.file, "sample", "round {round}");
                assert!(!e.reason.is_empty(), "round {round}");
                fatal_seen = e.is_fatal();
            }
        }
    }
}

#[test]
fn camt_survives_mutated_input() {
    let seeds = vec![
        camt::STMT_V8.as_bytes().to_vec(),
        camt::NTFCTN_V2.as_bytes().to_vec(),
    ];
    fuzz(&camt::camt(), &seeds, 0x0C_A3_70_53);
}

#[test]
fn mt940_survives_mutated_input() {
    let seeds = vec![
        mt940::TWO_STATEMENTS.as_bytes().to_vec(),
        mt940::MT942.as_bytes().to_vec(),
    ];
    fuzz(&mt940::mt940(), &seeds, 0x0940);
}

#[test]
fn onec_survives_mutated_input() {
    let text = onec::statement("Кодировка=Windows");
    let seeds = vec![cp1251(&text), text.into_bytes()];
    fuzz(&onec::onec(), &seeds, 0x01C);
}

#[test]
fn fixed_width_survives_mutated_input() {
    let text = fixed_width::file(&fixed_width::good_details(), "T00000200000000128456");
    let seeds = vec![super::cp866(&text)];
    fuzz(&fixed_width::config(), &seeds, 0xF1_3ED);
}

#[test]
fn csv_statement_survives_mutated_input() {
    let seeds = vec![cp1251(csv_statement::CARD_STATEMENT)];
    fuzz(
        &csv_statement::card_config(Encoding::Windows1251),
        &seeds,
        0xC5F,
    );
}
