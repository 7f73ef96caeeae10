//! Event tracing through the logs: every stage that handles events writes one JSON log line
//! per batch under the target [`TARGET`], listing the trace ids of the events it handled.
//! An event's trace id is set when it is read (the envelope's `trace_id`) and kept by every
//! later stage, so its path from source to CRM can be found in the hub's logs — by `hub
//! trace ID`, or by any log store searching for the id.
//!
//! One line per batch rather than per event keeps the cost small at thousands of events a
//! second (a line of ~33 bytes per event instead of a formatted record per event). Lines
//! carry trace ids, names of sources, stages and sinks, and counts: never personal data.
//! `RUST_LOG=info,hub_trace=off` silences them.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

/// The log target of trace lines.
pub const TARGET: &str = "hub_trace";

/// A step of an event's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Read from the source and mapped to a canonical envelope.
    Read,
    /// Acknowledged by the bus on the canonical topic.
    Published,
    /// Screened and released to the CRM topic.
    Screened,
    /// Screened and held for a compliance officer.
    Held,
    /// Matched into the golden-record store and published as a golden record.
    Merged,
    /// Acknowledged by the CRM.
    Delivered,
    /// Not sent: a newer or the same version was delivered already.
    Skipped,
    /// Parked on the sink's retry topic.
    Parked,
    /// Sent to the dead-letter topic.
    DeadLettered,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Read => "read",
            Step::Published => "published",
            Step::Screened => "screened",
            Step::Held => "held",
            Step::Merged => "merged",
            Step::Delivered => "delivered",
            Step::Skipped => "skipped",
            Step::Parked => "parked",
            Step::DeadLettered => "dead_lettered",
        }
    }
}

/// Logs that the events with these trace ids passed `step` in `component` (a source, stage
/// or sink name). Nothing is written for an empty batch.
pub fn step<'a>(step: Step, component: &str, trace_ids: impl IntoIterator<Item = &'a str>) {
    if !enabled() {
        return;
    }
    let mut ids = String::new();
    let mut n = 0u64;
    for id in trace_ids {
        if id.is_empty() {
            continue;
        }
        if n > 0 {
            ids.push(',');
        }
        ids.push_str(id);
        n += 1;
    }
    if n == 0 {
        return;
    }
    tracing::info!(
        target: TARGET,
        step = step.as_str(),
        component,
        n,
        trace_ids = ids.as_str(),
        "trace"
    );
}

/// Whether trace lines are written; callers skip collecting ids when not.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// The trace id of a bus message from its headers (`trace_id`, else the envelope `id`,
/// which is the trace id of an event as read).
pub fn id_of(headers: &[(String, String)]) -> Option<&str> {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    find("trace_id").or_else(|| find("id"))
}

/// The trace ids of a batch about to be published, kept to log once the bus acknowledged
/// it; empty when trace lines are off.
pub fn ids_of(batch: &[crate::bus::OutMessage]) -> Vec<String> {
    if !enabled() {
        return Vec::new();
    }
    batch
        .iter()
        .filter_map(|m| id_of(&m.headers).map(str::to_owned))
        .collect()
}

/// [`step`] for a source's batch: read and mapped now, published once `published` is true.
pub fn source_batch(component: &str, ids: &[String], published: bool) {
    let s = if published {
        Step::Published
    } else {
        Step::Read
    };
    step(s, component, ids.iter().map(String::as_str));
}

/// One step found in the logs.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The log line's timestamp as written (RFC 3339).
    pub at: String,
    pub step: String,
    pub component: String,
    /// How many events the batch held.
    pub batch: u64,
    /// The log file and line number.
    pub file: PathBuf,
    pub line: u64,
}

/// Scans JSON log files (files, or folders whose files are read in name order) for the
/// trace lines naming `trace_id`, in time order. Lines that are not JSON are passed over:
/// a log may mix the hub's lines with others'.
pub fn find(trace_id: &str, logs: &[PathBuf]) -> anyhow::Result<(Vec<Found>, u64)> {
    let mut files = Vec::new();
    for p in logs {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read folder {}", p.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    let mut found = Vec::new();
    let mut trace_lines = 0u64;
    for file in &files {
        scan(file, trace_id, &mut found, &mut trace_lines)?;
    }
    // RFC 3339 timestamps in one zone sort as text.
    found.sort_by(|a, b| a.at.cmp(&b.at));
    Ok((found, trace_lines))
}

fn scan(
    file: &Path,
    id: &str,
    found: &mut Vec<Found>,
    trace_lines: &mut u64,
) -> anyhow::Result<()> {
    let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let reader = BufReader::new(f);
    for (n, line) in reader.split(b'\n').enumerate() {
        let line = line.with_context(|| format!("cannot read {}", file.display()))?;
        // Cheap filters first: most lines are not trace lines, and most trace lines do not
        // name this id.
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        if !text.contains(TARGET) {
            continue;
        }
        *trace_lines += 1;
        if !text.contains(id) {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            continue;
        };
        if v.get("target").and_then(Value::as_str) != Some(TARGET) {
            continue;
        }
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let ids = field("trace_ids");
        if !ids.split(',').any(|t| t == id) {
            continue;
        }
        found.push(Found {
            at: field("timestamp"),
            step: field("step"),
            component: field("component"),
            batch: v.get("n").and_then(Value::as_u64).unwrap_or(0),
            file: file.to_path_buf(),
            line: n as u64 + 1,
        });
    }
    Ok(())
}

/// The report `hub trace` prints: one line per step with its time and the time since the
/// first step.
pub fn render(trace_id: &str, found: &[Found]) -> String {
    use std::fmt::Write;
    let mut out = format!("trace {trace_id}\n");
    let first = found
        .first()
        .and_then(|f| chrono::DateTime::parse_from_rfc3339(&f.at).ok());
    let mut per_step: BTreeMap<&str, u64> = BTreeMap::new();
    for f in found {
        *per_step.entry(f.step.as_str()).or_default() += 1;
        let since = match (first, chrono::DateTime::parse_from_rfc3339(&f.at).ok()) {
            (Some(a), Some(b)) => format!(
                "+{:.3} s",
                (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6
            ),
            _ => String::from("?"),
        };
        let _ = writeln!(
            out,
            "  {:<30} {:>10}  {:<13} {:<20} batch of {}",
            f.at, since, f.step, f.component, f.batch
        );
    }
    let last = found.last().map(|f| f.step.as_str()).unwrap_or("");
    let state = match last {
        "delivered" | "skipped" => "in the CRM",
        "dead_lettered" => "on the dead-letter topic",
        "held" => "held for compliance",
        "parked" => "waiting on the retry topic",
        "" => "not found",
        _ => "on its way",
    };
    let _ = writeln!(out, "  → {state}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_the_steps_of_one_id_in_time_order_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("hub-1.log");
        let b = dir.path().join("hub-2.log");
        let line = |ts: &str, step: &str, comp: &str, ids: &str| {
            format!(
                r#"{{"timestamp":"{ts}","level":"INFO","message":"trace","step":"{step}","component":"{comp}","n":2,"trace_ids":"{ids}","target":"hub_trace"}}"#
            )
        };
        let mut f = std::fs::File::create(&a).unwrap();
        writeln!(
            f,
            "{}",
            line("2026-11-26T01:00:00.100Z", "read", "abs", "aaa,bbb")
        )
        .unwrap();
        writeln!(f, "not json at all").unwrap();
        writeln!(
            f,
            "{}",
            line("2026-11-26T01:00:00.900Z", "delivered", "crm", "aaa,ccc")
        )
        .unwrap();
        let mut f = std::fs::File::create(&b).unwrap();
        // A prefix of another id is not this id.
        writeln!(
            f,
            "{}",
            line("2026-11-26T01:00:00.200Z", "published", "abs", "aaab,aaa")
        )
        .unwrap();
        writeln!(
            f,
            "{}",
            line("2026-11-26T01:00:00.300Z", "screened", "x", "aaab")
        )
        .unwrap();

        let (found, lines) = find("aaa", &[dir.path().to_path_buf()]).unwrap();
        assert_eq!(lines, 4);
        let steps: Vec<_> = found.iter().map(|f| f.step.as_str()).collect();
        assert_eq!(steps, ["read", "published", "delivered"]);
        assert_eq!(found[2].line, 3);
        let report = render("aaa", &found);
        assert!(report.contains("+0.800 s"), "{report}");
        assert!(report.contains("in the CRM"), "{report}");
        assert!(render("zzz", &[]).contains("not found"));
    }
}
