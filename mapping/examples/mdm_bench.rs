//! Deduplicates a generated customer base (default 1,000,000 records, 10% duplicates, with
//! typos, romanisation variants, Ё/Е, swapped names, missing identifiers and the hard
//! non-matches of `mdm::generate`) and prints throughput, pairs compared, pair F1 against
//! the generated truth and the process's peak resident memory.
//!
//! ```text
//! cargo build --release -p mapping --example mdm_bench
//! /usr/bin/time -v target/release/examples/mdm_bench [--records N] [--threads T] [--seed S]
//! ```
//! Generation is timed apart from matching; "match" covers normalising the records
//! (transliteration keys, interning), blocking, training, scoring and clustering.

use std::process::ExitCode;
use std::time::Instant;

use mapping::mdm::generate::{CustomersConfig, customers};
use mapping::mdm::matching::{MatchConfig, MatchRecord, RecordSet, run};
use mapping::mdm::pairs::pair_metrics;

/// Peak resident set size of this process in MiB, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Processor time (user + system, all threads) of this process in seconds, from
/// /proc/self/stat (Linux; clock ticks of 1/100 s, the kernel's USER_HZ).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn main() -> ExitCode {
    let mut gen_config = CustomersConfig {
        records: 1_000_000,
        duplicate_share: 0.1,
        seed: 42,
    };
    let mut config = MatchConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next().and_then(|v| v.parse::<u64>().ok());
        let ok = match (a.as_str(), value) {
            ("--records", Some(n)) => {
                gen_config.records = n;
                true
            }
            ("--threads", Some(n)) => {
                config.threads = n as usize;
                true
            }
            ("--seed", Some(n)) => {
                gen_config.seed = n;
                true
            }
            _ => false,
        };
        if !ok {
            eprintln!("usage: mdm_bench [--records N] [--threads T] [--seed S]");
            return ExitCode::from(2);
        }
    }
    let threads = if config.threads > 0 {
        config.threads
    } else {
        std::thread::available_parallelism().map_or(1, usize::from)
    };

    // Generate and normalise in chunks, so the raw records are never all held at once.
    let entities = gen_config.entities();
    let chunk = 50_000u64;
    let mut set = RecordSet::new();
    let mut truth: Vec<u64> = Vec::with_capacity(gen_config.records as usize);
    let mut gen_secs = 0.0;
    let mut prep_secs = 0.0;
    let mut prep_cpu = 0.0;
    let mut start = 0u64;
    while start < entities {
        let end = (start + chunk).min(entities);
        let t = Instant::now();
        let per = (end - start).div_ceil(threads as u64).max(1);
        let parts: Vec<Vec<(u64, MatchRecord)>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|k| {
                    let lo = (start + k * per).min(end);
                    let hi = (lo + per).min(end);
                    let g = &gen_config;
                    s.spawn(move || customers(g, lo..hi))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        let records: Vec<MatchRecord> = parts
            .into_iter()
            .flatten()
            .map(|(e, r)| {
                truth.push(e);
                r
            })
            .collect();
        gen_secs += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let c = cpu_seconds();
        if let Err(e) = set.extend(&records, 0, threads) {
            eprintln!("mdm_bench: {e}");
            return ExitCode::FAILURE;
        }
        prep_secs += t.elapsed().as_secs_f64();
        if let (Some(before), Some(after)) = (c, cpu_seconds()) {
            prep_cpu += after - before;
        }
        start = end;
    }
    if truth.len() != set.len() {
        eprintln!("mdm_bench: a generator thread failed");
        return ExitCode::FAILURE;
    }

    let t = Instant::now();
    let cpu_before = cpu_seconds();
    let result = match run(&set, false, &config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mdm_bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let match_secs = t.elapsed().as_secs_f64();
    let match_cpu = match (cpu_before, cpu_seconds()) {
        (Some(a), Some(b)) => Some(prep_cpu + b - a),
        _ => None,
    };
    let total = prep_secs + match_secs;
    let m = pair_metrics(&result.clusters, &truth, &[], false);
    let s = &result.stats;
    println!(
        "records: {} ({} people, {} threads)",
        set.len(),
        entities,
        threads
    );
    println!("generate: {gen_secs:.2} s (not counted)");
    println!(
        "match: {total:.2} s = normalise {prep_secs:.2} + index {:.2} + train {:.2} + score {:.2} + cluster {:.2}",
        s.seconds.index, s.seconds.train, s.seconds.score, s.seconds.cluster
    );
    println!("records/s: {:.0}", set.len() as f64 / total);
    if let Some(cpu) = match_cpu {
        println!("match processor time: {cpu:.2} s (all threads)");
    }
    println!(
        "pairs compared: {} ({:.1} per record), key merges: {}, probable merges: {}, review: {}, kept apart: {}, refused: {}",
        s.compared_pairs,
        s.compared_pairs as f64 / set.len().max(1) as f64,
        s.key_pairs,
        s.probable_pairs,
        s.review_pairs,
        s.hard_non_matches,
        s.refused_merges
    );
    println!(
        "blocks: largest {}, windowed {}; model: EM on {} pairs, {} iterations, expected matches {:.0}",
        s.blocks.largest_block,
        s.blocks.windowed_blocks,
        result.model.training.em_pairs,
        result.model.training.em_iterations,
        result.model.training.expected_matches
    );
    println!(
        "record set memory: {:.0} MiB",
        set.heap_bytes() as f64 / 1_048_576.0
    );
    if let Some(peak) = peak_rss_mib() {
        println!("peak resident memory: {peak:.0} MiB");
    }
    println!(
        "pairs: true {}, predicted {}, correct {}",
        m.true_pairs, m.predicted_pairs, m.true_positives
    );
    println!("{}", m.line());
    ExitCode::SUCCESS
}
