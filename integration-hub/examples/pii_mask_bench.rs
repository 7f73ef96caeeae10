//! Cost of the PII masking layer per log line: typical hub lines (clean JSON events,
//! an error with personal data, a text-format line), each masked many times.
//!
//! `cargo run --release -p integration-hub --example pii_mask_bench [iterations]`
//! prints `ns/line` per kind and overall.

use std::hint::black_box;
use std::time::Instant;

use integration_hub::pii_mask::mask;

const LINES: [(&str, &str); 5] = [
    (
        "clean json event",
        r#"{"timestamp":"2026-11-26T01:13:25.123456Z","level":"INFO","event":"delivered","envelope_id":"9f86d081884c7d659a2feaa0c55ad015","source":"abs","key":"C-100","golden_id":"G0000000042","sink":"crm","count":12,"elapsed_ms":35,"target":"integration_hub::pipeline::crm_sink"}"#,
    ),
    (
        "clean trace line",
        r#"{"timestamp":"2026-11-26T01:13:25.223456Z","level":"INFO","hub_trace":true,"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","stage":"bus","envelope_id":"9f86d081884c7d659a2feaa0c55ad015","partition":3,"offset":1234567}"#,
    ),
    (
        "crm error with PII",
        r#"{"timestamp":"2026-11-26T01:13:25.323456Z","level":"WARN","event":"crm_rejected","key":"C-101","status":422,"error":"crm 422: {\"LastName\":\"Smith\",\"Email\":\"john.smith@example.com\",\"Phone\":\"+7 (912) 345-67-89\",\"inn\":\"7707083893\"}"}"#,
    ),
    (
        "screening hit (Cyrillic)",
        r#"{"timestamp":"2026-11-26T01:13:25.423456Z","level":"INFO","event":"held","key":"C-102","reason":"hit Сидоров Пётр Иванович on own list, score 0.97"}"#,
    ),
    (
        "text format",
        "2026-11-26T01:13:25.523456Z  WARN integration_hub::pipeline::file_source: quarantined file=customers_2026-11-25.csv line=17 field=phone reason=\"not a valid phone\"",
    ),
];

fn main() {
    let iterations: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let mut total_ns = 0u128;
    for (kind, line) in LINES {
        // Warm up, then measure.
        for _ in 0..1_000 {
            black_box(mask(black_box(line)));
        }
        let start = Instant::now();
        for _ in 0..iterations {
            black_box(mask(black_box(line)));
        }
        let ns = start.elapsed().as_nanos() / u128::from(iterations);
        total_ns += ns;
        println!(
            "{kind:<26} {:>4} bytes  {ns:>6} ns/line  -> {}",
            line.len(),
            mask(line)
        );
    }
    println!(
        "mean over {} kinds: {} ns/line ({iterations} iterations each)",
        LINES.len(),
        total_ns / LINES.len() as u128
    );
}
