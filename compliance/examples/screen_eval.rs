//! Runs every screening evaluation on fixture files and prints the figures.
//!
//! ```text
//! cargo run --release -p compliance --example screen_eval -- <sanctions fixture dir> [--errors]
//! ```
//! The directory holds `un_consolidated.xml`, `ofac/` (sdn.csv, add.csv, alt.csv,
//! sdn_comments.csv) and `eval/` (name_bench_cases.csv, negatives_global.csv). `--errors`
//! also prints the misjudged pairs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use compliance::eval;
use compliance::index::Index;
use compliance::lists::{ofac, un};
use compliance::{DEFAULT_THRESHOLD, ListSnapshot};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(PathBuf::from)
    else {
        eprintln!("usage: screen_eval <sanctions fixture dir> [--errors]");
        return ExitCode::from(2);
    };
    let show_errors = args.iter().any(|a| a == "--errors");
    match run(&dir, show_errors) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path, show_errors: bool) -> Result<(), Box<dyn std::error::Error>> {
    let threshold = DEFAULT_THRESHOLD;
    println!("threshold {threshold}");

    let pairs_path = dir.join("eval/name_bench_cases.csv");
    let report = eval::pairs(&pairs_path, threshold)?;
    println!(
        "pairs ({} labelled): {}",
        report.scores.len(),
        report.at_threshold.line()
    );
    println!("pairs best-F1 (informative): {}", report.best.line());
    if show_errors {
        for s in &report.scores {
            let hit = s.score >= threshold;
            if hit != s.is_match {
                let tag = if hit { "FP" } else { "FN" };
                println!(
                    "  {tag} {:.3} [{}] {} | {}",
                    s.score, s.schema, s.name1, s.name2
                );
            }
        }
    }

    let t = Instant::now();
    let un = un::load(&dir.join("un_consolidated.xml"), &mut |_| {})?;
    let ofac = ofac::load(&ofac::OfacFiles::in_dir(&dir.join("ofac")), &mut |_| {})?;
    let snapshots: Vec<&ListSnapshot> = vec![&un, &ofac];
    let index = Index::from_snapshots(snapshots.iter().copied());
    println!(
        "index: {} entries, {} names (UN {}, OFAC {}) built in {:.2?}",
        index.len(),
        index.name_count(),
        un.entries.len(),
        ofac.entries.len(),
        t.elapsed()
    );

    let t = Instant::now();
    let neg = eval::negatives(&dir.join("eval/negatives_global.csv"), &index, threshold)?;
    println!(
        "negatives ({} rows, name + birth date + nationality): {} ({} rows hit) in {:.2?}",
        neg.rows,
        neg.line(),
        neg.rows_with_hits,
        t.elapsed()
    );
    println!(
        "negatives, name only (informative): alerts_per_1000={:.3}",
        neg.name_only_alerts_per_1000()
    );
    if show_errors {
        let people = eval::read_people(&dir.join("eval/negatives_global.csv"))?;
        let mut shown = 0;
        for p in &people {
            let name_only = compliance::Subject {
                kind: p.kind,
                names: p.names.clone(),
                ..Default::default()
            };
            let hits = index.screen(&name_only, threshold);
            if let Some(h) = hits.first() {
                println!(
                    "  NEG {:.3} {} -> {} ({})",
                    h.score, h.query_name, h.matched_name, h.entry_id
                );
                shown += 1;
                if shown >= 60 {
                    break;
                }
            }
        }
    }

    let t = Instant::now();
    let variants = eval::un_variants(&un.entries, &index, threshold);
    println!("UN variants: {} in {:.2?}", variants.line(), t.elapsed());
    for (kind, n, found) in &variants.by_kind {
        println!("  {kind:?}: {found}/{n}");
    }
    if show_errors {
        for (id, kind, text) in &variants.missed {
            println!("  MISS {id} {kind:?} {text}");
        }
    }
    Ok(())
}
