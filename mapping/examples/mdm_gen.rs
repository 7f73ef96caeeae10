//! Writes the synthetic two-system Russian customer set in the FEBRL layout (with the extra
//! columns patronymic, phone, email, inn, snils, passport):
//! `DIR/ru_abs.csv` (core bank, Cyrillic, `rec-N-org`) and `DIR/ru_cards.csv` (card system,
//! romanised with errors and gaps, `rec-N-dup-0`). Evaluate them as a linkage:
//!
//! ```text
//! cargo run --release -p mapping --example mdm_gen -- [DIR] [--persons N] [--seed S]
//! cargo run --release -p mapping --example mdm_eval -- DIR/ru_abs.csv DIR/ru_cards.csv
//! ```
//! DIR defaults to `target/mdm-gen`.

use std::path::PathBuf;
use std::process::ExitCode;

use mapping::mdm::generate::{LinkageConfig, linkage_set, write_febrl};

fn main() -> ExitCode {
    let mut dir = PathBuf::from("target/mdm-gen");
    let mut config = LinkageConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let number = |v: Option<String>, what: &str| -> Result<u64, String> {
            v.as_deref()
                .and_then(|s| s.parse().ok())
                .ok_or(format!("{what} needs a whole number"))
        };
        let parsed = match a.as_str() {
            "--persons" => number(args.next(), "--persons").map(|n| config.persons = n),
            "--seed" => number(args.next(), "--seed").map(|n| config.seed = n),
            s if s.starts_with("--") => Err(format!("unknown option {s}")),
            s => {
                dir = PathBuf::from(s);
                Ok(())
            }
        };
        if let Err(e) = parsed {
            eprintln!("mdm_gen: {e}");
            eprintln!("usage: mdm_gen [DIR] [--persons N] [--seed S]");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("mdm_gen: {}: cannot create: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let (abs, cards) = linkage_set(&config);
    for (name, records) in [("ru_abs.csv", &abs), ("ru_cards.csv", &cards)] {
        let path = dir.join(name);
        let written = std::fs::File::create(&path)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                write_febrl(std::io::BufWriter::new(f), records).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            eprintln!("mdm_gen: {}: cannot write: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("{}: {} records", path.display(), records.len());
    }
    ExitCode::SUCCESS
}
