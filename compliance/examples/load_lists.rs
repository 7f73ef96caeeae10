//! Loads the real list files and prints counts, problems and timings.
//!
//! ```text
//! cargo run --release -p compliance --example load_lists -- \
//!     --ofac /work/shared/fixtures/sanctions/ofac \
//!     --un /work/shared/fixtures/sanctions/un_consolidated.xml \
//!     [--eu FILE] [--national FILE] [--own FILE] [--show-problems N] [--dump ENTRY_ID]
//! ```
//!
//! Prints ids, locations and reasons of problems and notes. `--dump` prints the named entries
//! of the loaded lists as JSON (public list data) to check what the loaders read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use compliance::lists::{self, ListError, Loaded, Progress};
use compliance::{EntityKind, NameStrength};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut jobs: Vec<(String, PathBuf)> = Vec::new();
    let mut show = 5usize;
    let mut dump: Vec<String> = Vec::new();
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--ofac" | "--un" | "--eu" | "--national" | "--own" => {
                jobs.push((
                    flag.trim_start_matches('-').to_owned(),
                    PathBuf::from(value),
                ));
            }
            "--dump" => dump.push(value),
            "--show-problems" => match value.parse() {
                Ok(n) => show = n,
                Err(_) => {
                    eprintln!("--show-problems takes a number");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!("unknown flag {flag}; see the header of examples/load_lists.rs");
                return ExitCode::from(2);
            }
        }
    }
    if jobs.is_empty() {
        eprintln!("nothing to load; give --ofac DIR and/or --un FILE (--eu, --national, --own)");
        return ExitCode::from(2);
    }
    let mut failed = false;
    for (kind, path) in jobs {
        let mut calls = 0u64;
        let mut last = Progress::default();
        let mut progress = |p: Progress| {
            calls += 1;
            last = p;
        };
        let started = Instant::now();
        let result: Result<Loaded, ListError> = match kind.as_str() {
            "ofac" => lists::ofac::load_detailed(&path, &mut progress),
            "un" => lists::un::load_detailed(&path, &mut progress),
            "eu" => lists::eu::load_detailed(&path, &mut progress),
            "national" => lists::national::load_detailed(&path, &mut progress),
            _ => lists::own::load_detailed(&path, &mut progress),
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(loaded) => {
                report(&kind, &loaded, ms, calls, last, show);
                for e in loaded
                    .snapshot
                    .entries
                    .iter()
                    .filter(|e| dump.contains(&e.id))
                {
                    match serde_json::to_string(e) {
                        Ok(json) => println!("{json}"),
                        Err(err) => eprintln!("cannot print entry {}: {err}", e.id),
                    }
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{kind}: {e}");
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report(kind: &str, loaded: &Loaded, ms: f64, calls: u64, last: Progress, show: usize) {
    let s = &loaded.snapshot;
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut strengths: BTreeMap<String, usize> = BTreeMap::new();
    let (mut dob, mut ids, mut nat) = (0, 0, 0);
    for e in &s.entries {
        *kinds.entry(kind_name(e.kind).into()).or_default() += 1;
        for n in &e.names {
            *strengths
                .entry(strength_name(n.strength).into())
                .or_default() += 1;
        }
        dob += usize::from(!e.birth_dates.is_empty());
        ids += e.identifiers.len();
        nat += usize::from(!e.nationalities.is_empty());
    }
    let names: usize = strengths.values().sum();
    println!("== {kind} ({})", s.list);
    println!(
        "version {}  published {}",
        s.version,
        s.published.as_deref().unwrap_or("-")
    );
    println!("entries {}  names {names} {strengths:?}", s.entries.len());
    println!("kinds {kinds:?}");
    println!(
        "with birth date {dob}  with nationality {nat}  identifiers {ids}  addresses {}",
        loaded.addresses.len()
    );
    println!(
        "problems {}  notes {}  time {ms:.1} ms  progress calls {calls} (last {}/{} bytes, {} entries)",
        s.problems.len(),
        loaded.notes.len(),
        last.bytes_done,
        last.bytes_total,
        last.entries_done
    );
    for p in s.problems.iter().take(show) {
        println!("  problem {:?} at {}: {}", p.entry_id, p.location, p.reason);
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for n in &loaded.notes {
        // Group notes by reason with quoted values cut off, so the summary stays short.
        let key = n.reason.split('"').next().unwrap_or("").trim().to_owned();
        *reasons.entry(key).or_default() += 1;
    }
    for (reason, count) in &reasons {
        println!("  note x{count}: {reason}");
    }
    for n in loaded.notes.iter().take(show) {
        println!("  note {:?} at {}: {}", n.entry_id, n.location, n.reason);
    }
}

fn kind_name(k: EntityKind) -> &'static str {
    match k {
        EntityKind::Person => "person",
        EntityKind::Organization => "organization",
        EntityKind::Vessel => "vessel",
        EntityKind::Aircraft => "aircraft",
        EntityKind::Unknown => "unknown",
    }
}

fn strength_name(s: NameStrength) -> &'static str {
    match s {
        NameStrength::Primary => "primary",
        NameStrength::Alias => "alias",
        NameStrength::Weak => "weak",
    }
}
