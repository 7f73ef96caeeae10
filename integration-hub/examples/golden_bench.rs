//! Ingest throughput and match quality of the golden-record store.
//!
//! Generates the two-system set of `mapping::mdm::generate::linkage_set` (core banking in
//! Cyrillic; 60% of the people, and every hard case, also in the card system, romanised with
//! typos and gaps), turns the records into canonical parties and ingests them — core banking
//! first, then the card system — one transaction per event, then again in batches through
//! `ingest_many`. Prints events per second per phase and, from the generator's truth, how many
//! card records joined their person's golden record and how many joined someone else's.
//!
//! ```text
//! cargo run --release -p integration-hub --example golden_bench -- [--persons N] \
//!     [--backend sqlite|postgres|both] [--batch N]
//! ```
//! PostgreSQL: the URL comes from `HUB_TEST_POSTGRES` (`scripts/postgres.sh start`); the run
//! uses a schema of its own and drops it at the end. SQLite: a temporary file.

use std::collections::HashMap;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{Duration, NaiveDate, TimeZone, Utc};

use integration_hub::golden::store::{GoldenStore, IngestAction, MdmSettings, PartyEvent};
use mapping::mdm::generate::{LinkageConfig, is_hard_case, linkage_set};
use mapping::mdm::matching::MatchRecord;
use mapping::{Address, Party, validate};

struct Args {
    persons: u64,
    backends: Vec<&'static str>,
    batch: usize,
    single: bool,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        persons: 12_500,
        backends: vec!["sqlite", "postgres"],
        batch: 500,
        single: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--persons" => a.persons = value()?.parse().context("--persons")?,
            "--batch" => a.batch = value()?.parse().context("--batch")?,
            "--batch-only" => a.single = false,
            "--backend" => {
                a.backends = match value()?.as_str() {
                    "sqlite" => vec!["sqlite"],
                    "postgres" => vec!["postgres"],
                    "both" => vec!["sqlite", "postgres"],
                    other => bail!("--backend: unknown backend {other}"),
                }
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn birth_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text, "%d.%m.%Y"))
        .ok()
}

/// A generated record as the canonical party a mapping would produce.
fn party(r: &MatchRecord) -> Party {
    let address: Vec<&str> = [&r.street, &r.street_number, &r.address_extra, &r.locality]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect();
    Party {
        source_id: r.source_id.clone(),
        last_name: r.surname.clone(),
        first_name: r.given_name.clone(),
        middle_name: r.patronymic.clone(),
        inn: r.inn.as_deref().and_then(|v| validate::inn(v).ok()),
        snils: r.other_id.as_deref().and_then(|v| validate::snils(v).ok()),
        birth_date: r.birth_date.as_deref().and_then(birth_date),
        phones: r
            .phone
            .as_deref()
            .and_then(|v| validate::phone(v).ok())
            .into_iter()
            .collect(),
        emails: r.email.iter().cloned().collect(),
        addresses: vec![Address {
            kind: "primary".into(),
            text: address.join(", "),
            postal_code: r.postcode.clone(),
        }],
        ..Party::default()
    }
}

/// Events with the generated person each belongs to.
type Labelled = Vec<(u64, PartyEvent)>;

/// The core-banking and card-system events.
fn events(persons: u64) -> (Labelled, Labelled) {
    let (abs, cards) = linkage_set(&LinkageConfig {
        persons,
        ..LinkageConfig::default()
    });
    let t0 = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    let to_events = |system: &str, records: Vec<(u64, MatchRecord)>, offset: i64| {
        records
            .into_iter()
            .enumerate()
            .map(|(i, (person, r))| {
                let n = i64::try_from(i).unwrap_or(i64::MAX);
                let ev = PartyEvent {
                    system: system.into(),
                    source: format!("{system}_files"),
                    source_id: r.source_id.clone(),
                    version: 1,
                    event_id: format!("{system}-{}", r.source_id),
                    event_time: t0 + Duration::seconds(offset + n),
                    party: party(&r),
                };
                (person, ev)
            })
            .collect::<Vec<_>>()
    };
    (
        to_events("abs", abs, 0),
        to_events("cards", cards, 10_000_000),
    )
}

fn open(backend: &str, tag: &str) -> anyhow::Result<(GoldenStore, Box<dyn FnOnce()>)> {
    match backend {
        "sqlite" => {
            let dir = tempfile::tempdir()?;
            let store =
                GoldenStore::open_sqlite(&dir.path().join("golden.db"), MdmSettings::default())?;
            Ok((store, Box::new(move || drop(dir))))
        }
        _ => {
            let url = std::env::var("HUB_TEST_POSTGRES").context(
                "HUB_TEST_POSTGRES is not set: run scripts/postgres.sh start and export \
                 HUB_TEST_POSTGRES=$(scripts/postgres.sh url)",
            )?;
            let schema = format!("golden_bench_{}_{tag}", std::process::id());
            let mut admin = postgres::Client::connect(&url, postgres::NoTls)?;
            admin.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let store = GoldenStore::open_postgres(
                &format!("{url}{sep}options=-c%20search_path%3D{schema}"),
                MdmSettings::default(),
            )?;
            Ok((
                store,
                Box::new(move || {
                    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
                }),
            ))
        }
    }
}

/// Card records that joined their person's golden record, that joined another person's,
/// and of the latter those whose person is a generated hard case (father, son, twin,
/// namesake).
fn quality(
    store: &GoldenStore,
    abs: &[(u64, PartyEvent)],
    cards: &[(u64, PartyEvent)],
) -> anyhow::Result<(usize, usize, usize)> {
    let mut golden_of_person = HashMap::new();
    for (person, ev) in abs {
        if let Some(g) = store.golden_by_xref(&ev.system, &ev.source_id)? {
            golden_of_person.insert(*person, g);
        }
    }
    let mut person_of_golden: HashMap<&str, u64> = HashMap::new();
    for (p, g) in &golden_of_person {
        person_of_golden.insert(g.as_str(), *p);
    }
    let (mut right, mut wrong, mut hard) = (0, 0, 0);
    for (person, ev) in cards {
        let Some(g) = store.golden_by_xref(&ev.system, &ev.source_id)? else {
            continue;
        };
        match person_of_golden.get(g.as_str()) {
            Some(p) if p == person => right += 1,
            Some(other) => {
                wrong += 1;
                // Synthetic records: their ids may be printed.
                if std::env::var_os("GOLDEN_BENCH_SHOW").is_some() {
                    let members: Vec<String> = store
                        .golden(&g)?
                        .map(|v| v.xrefs.into_iter().map(|x| x.source_id).collect())
                        .unwrap_or_default();
                    println!("wrong: {} in {g}: {members:?}", ev.source_id);
                }
                if is_hard_case(*person) || is_hard_case(*other) {
                    hard += 1;
                }
            }
            None => {}
        }
    }
    Ok((right, wrong, hard))
}

fn run_single(
    store: &GoldenStore,
    events: &[(u64, PartyEvent)],
) -> anyhow::Result<(f64, HashMap<&'static str, usize>)> {
    let mut actions = HashMap::new();
    let start = Instant::now();
    for (_, ev) in events {
        let out = store.ingest(ev)?;
        *actions.entry(action(out.action)).or_insert(0) += 1;
    }
    Ok((start.elapsed().as_secs_f64(), actions))
}

fn action(a: IngestAction) -> &'static str {
    a.as_str()
}

/// One transaction per event: core banking first, then the card system.
fn single(
    backend: &str,
    abs: &[(u64, PartyEvent)],
    cards: &[(u64, PartyEvent)],
) -> anyhow::Result<()> {
    let total = abs.len() + cards.len();
    let (store, cleanup) = open(backend, "single")?;
    let (t_abs, _) = run_single(&store, abs)?;
    let (t_cards, actions) = run_single(&store, cards)?;
    let stats = store.stats()?;
    let (right, wrong, hard) = quality(&store, abs, cards)?;
    println!(
        "{backend} single: abs {:.0} ev/s ({:.1}s), cards {:.0} ev/s ({:.1}s), all {:.0} ev/s",
        abs.len() as f64 / t_abs,
        t_abs,
        cards.len() as f64 / t_cards,
        t_cards,
        total as f64 / (t_abs + t_cards),
    );
    println!(
        "{backend} cards: {actions:?}; goldens {} active, {} merged; reviews open {}; \
         card records with their person {right}, with another person {wrong} \
         ({hard} of them hard cases), of {}",
        stats.goldens_active,
        stats.goldens_merged,
        stats.reviews_open,
        cards.len()
    );
    drop(store);
    cleanup();
    Ok(())
}

/// Batches through `ingest_many`: one transaction (one commit) per batch. With
/// `GOLDEN_BENCH_KEEP` set, the PostgreSQL schema is kept for inspection.
fn batched(
    backend: &str,
    abs: &[(u64, PartyEvent)],
    cards: &[(u64, PartyEvent)],
    batch: usize,
) -> anyhow::Result<()> {
    let total = abs.len() + cards.len();
    let (store, cleanup) = open(backend, "batch")?;
    let all: Vec<PartyEvent> = abs.iter().chain(cards).map(|(_, e)| e.clone()).collect();
    let start = Instant::now();
    let mut last = Instant::now();
    for (i, chunk) in all.chunks(batch.max(1)).enumerate() {
        store.ingest_many(chunk)?;
        if std::env::var_os("GOLDEN_BENCH_SHOW").is_some() {
            println!("batch {i}: {:.2}s", last.elapsed().as_secs_f64());
            last = Instant::now();
        }
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "{backend} batches of {batch}: {:.0} ev/s ({t:.1}s for {total})",
        total as f64 / t
    );
    drop(store);
    if std::env::var_os("GOLDEN_BENCH_KEEP").is_none() {
        cleanup();
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = args()?;
    let start = Instant::now();
    let (abs, cards) = events(args.persons);
    println!(
        "generated {} core-banking and {} card events in {:.1}s",
        abs.len(),
        cards.len(),
        start.elapsed().as_secs_f64()
    );
    for backend in &args.backends {
        if args.single {
            single(backend, &abs, &cards)?;
        }
        batched(backend, &abs, &cards, args.batch)?;
    }
    Ok(())
}
