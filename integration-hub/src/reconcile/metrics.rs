//! The metrics of scheduled reconciliations, named in this one place (docs/metrics.md; the
//! dashboard's "last reconciliation" panel reads them).

use std::sync::Once;

use super::compare::Counts;

pub const LAST_RUN: &str = "hub_reconcile_last_run_timestamp_seconds";
pub const RECORDS: &str = "hub_reconcile_records";
pub const RUNS: &str = "hub_reconcile_runs_total";

fn describe() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        metrics::describe_gauge!(
            LAST_RUN,
            "When the last reconciliation that compared both sides finished (Unix time)."
        );
        metrics::describe_gauge!(
            RECORDS,
            "Records of the last reconciliation by result (matched, missing, extra, different)."
        );
        metrics::describe_counter!(
            RUNS,
            "Reconciliations run by the hub, by outcome (clean, differences, failed)."
        );
    });
}

/// A run compared both sides: its counts become the gauges.
pub fn run_compared(counts: &Counts, finished_at_secs: f64, clean: bool) {
    describe();
    for (result, n) in [
        ("matched", counts.matched),
        ("missing", counts.missing),
        ("extra", counts.extra),
        ("different", counts.different),
    ] {
        metrics::gauge!(RECORDS, "result" => result).set(n as f64);
    }
    metrics::gauge!(LAST_RUN).set(finished_at_secs);
    let outcome = if clean { "clean" } else { "differences" };
    metrics::counter!(RUNS, "outcome" => outcome).increment(1);
}

/// A run that could not compare (a side unreadable, a configuration error).
pub fn run_failed() {
    describe();
    metrics::counter!(RUNS, "outcome" => "failed").increment(1);
}
