//! Throughput of the declarative mapping: a 15-field party mapping applied to generated
//! JSON records, single-threaded. Prints the wall-clock rate and the rate by the thread's
//! own CPU time (Linux), which is what counts on a machine shared with other work.
//!
//! `cargo run --release -p mapping --example map_bench [RECORDS] [PASSES]` (default 200000
//! records, one pass). The records are made before timing, so with many records they are
//! out of cache when mapped (the pessimistic case); few records and several passes (for
//! example `2000 100`) measure mapping with the input in cache, as right after parsing.

use std::time::Instant;

use mapping::declarative::RecordMapping;
use serde_json::{Value, json};

const MAPPING: &str = r#"
entity = "party"
key = "$.clientId"
version = "$.changeSeq"
event_time = "$.updatedAt"
op = { path = "$.deleted", delete_when = "true" }
[fields]
kind = { path = "$.type", map = { FL = "person", UL = "organisation" }, default = "person" }
last_name = { path = "$.person.lastName", transforms = ["trim", "title_case"] }
first_name = { path = "$.person.firstName", transforms = ["trim", "title_case"] }
middle_name = { path = "$.person.middleName", transforms = ["trim", "title_case"] }
inn = "$.inn"
snils = "$.snils"
passport = "$.passport"
birth_date = { path = "$.dob", date_format = "%d.%m.%Y" }
phones = "$.contacts[*].phone"
emails = { path = "$.contacts[*].email", transforms = ["trim"] }
"address" = { path = "$.address.line", transforms = ["collapse_spaces"] }
"postal_code" = "$.address.zip"
segment = "$.segment"
status = { path = "$.status", transforms = ["lower"] }
"#;

fn record(i: usize) -> Value {
    const LAST: [&str; 4] = ["иванов", "ПЕТРОВА", "сидоров", "Кузнецова"];
    const FIRST: [&str; 4] = ["иван", "мария", "пётр", "анна"];
    json!({
        "clientId": format!("C{i:08}"),
        "changeSeq": i,
        "updatedAt": "2025-05-01T10:00:00+03:00",
        "type": "FL",
        "person": {
            "lastName": LAST[i % 4],
            "firstName": format!(" {} ", FIRST[(i / 4) % 4]),
            "middleName": "ивановна"
        },
        "inn": "500100732259",
        "snils": "112-233-445 95",
        "passport": "4510 123456",
        "dob": format!("{:02}.03.1985", 1 + i % 28),
        "contacts": [{"phone": "+7 (912) 345-67-89"}, {"email": " anna@example.ru "}],
        "address": {"line": "Москва,  ул. Тверская,   д. 1", "zip": "125009"},
        "segment": "mass",
        "status": "ACTIVE"
    })
}

/// CPU time of this thread in nanoseconds (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_nanos() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn main() -> Result<(), String> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().map_err(|_| format!("not a record count: {a}"))?,
        None => 200_000,
    };
    let passes: usize = match std::env::args().nth(2) {
        Some(a) => a.parse().map_err(|_| format!("not a pass count: {a}"))?,
        None => 1,
    };
    let mapping: RecordMapping =
        toml::from_str(MAPPING).map_err(|e| format!("mapping does not parse: {e}"))?;
    let compiled = mapping
        .compile(&|_| Err("no secrets in this benchmark".into()))
        .map_err(|e| format!("mapping does not compile: {e:?}"))?;
    let records: Vec<Value> = (0..n).map(record).collect();
    // Warm up, and check the records map.
    for r in records.iter().take(1000) {
        compiled
            .apply(r)
            .map_err(|e| format!("benchmark record does not map: {e:?}"))?;
    }
    let start = Instant::now();
    let cpu_start = thread_cpu_nanos();
    let mut mapped = 0usize;
    for _ in 0..passes {
        mapped += records.iter().filter(|r| compiled.apply(r).is_ok()).count();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_nanos()
        .zip(cpu_start)
        .map(|(e, s)| e.saturating_sub(s) as f64 / 1e9);
    let total = n * passes;
    println!(
        "records={n} passes={passes} mapped={mapped} wall_seconds={wall:.3} wall_records_per_second={:.0}",
        total as f64 / wall
    );
    // On a shared machine the wall clock includes time other processes held the CPU; the
    // thread's own CPU time is the cost of mapping.
    if let Some(cpu) = cpu {
        println!(
            "cpu_seconds={cpu:.3} cpu_records_per_second={:.0} cpu_micros_per_record={:.2}",
            total as f64 / cpu,
            cpu * 1e6 / total as f64
        );
    }
    // A yardstick for the machine's speed at the moment: writing the same input records
    // as JSON text, which a source does once per record anyway.
    let cpu_start = thread_cpu_nanos();
    let mut bytes = 0usize;
    for _ in 0..passes {
        for r in &records {
            bytes += serde_json::to_string(r).map(|t| t.len()).unwrap_or(0);
        }
    }
    if let Some(cpu) = thread_cpu_nanos()
        .zip(cpu_start)
        .map(|(e, s)| e.saturating_sub(s) as f64 / 1e9)
    {
        println!(
            "reference: serde_json::to_string of the input cpu_micros_per_record={:.2} ({} bytes per record)",
            cpu * 1e6 / total as f64,
            bytes / total.max(1)
        );
    }
    Ok(())
}
