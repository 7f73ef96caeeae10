//! `hub map`: a dry run of one source's mapping over a sample file, with no bus, store or
//! CRM involved.
//!
//! Contract: the sample is read the way the source reads its data: JSON for sources with
//! `[sources.mapping]` (an array of records, or one record per line; a file-drop source
//! with a mapping reads CSV rows instead), CSV for file drops with `[sources.columns]`,
//! the bank format for file drops with `[sources.reader]`. Every record is written as one
//! JSON line `{"record": N, "entity", "op", "key", "version", "event_time", "payload"}`,
//! every problem as one JSON line `{"error": {"source", "record", "key", "field",
//! "reason"}}`, and a last line `records=N mapped=M errors=E` (E counts error lines).
//! Records are numbered from 1 in sample order. Error lines never carry a source value;
//! record lines carry the canonical record, which is what a dry run is for.
//! A problem with the config or the sample as a whole (unknown source, a mapping that does
//! not compile, an unreadable file, a header that lacks a configured column) is the
//! function's error, and nothing is written for it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};

use adapters::file_drop::{CsvReader, FileDropConfig};
use mapping::declarative::{CompiledMapping, csv_row_to_value};

use crate::config::{Config, SourceConfig, SourceKind, resolve_secret};

/// What a dry run saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct MapSummary {
    /// Records (rows, entries) read from the sample.
    pub records: usize,
    /// Records mapped without error.
    pub mapped: usize,
    /// Error lines written: field errors of records, unreadable rows or lines.
    pub errors: usize,
}

/// Maps the sample at `input` with the mapping of source `source` and writes the result
/// to `out` (see the module contract).
pub fn run(
    config: &Config,
    source: &str,
    input: &Path,
    out: &mut dyn Write,
) -> anyhow::Result<MapSummary> {
    let Some((index, s)) = config
        .sources
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == source)
    else {
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no source named `{source}`; configured: {}",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        );
    };
    let mut run = Run {
        source,
        out,
        summary: MapSummary::default(),
    };
    if let Some(m) = &s.mapping {
        let compiled = m
            .compile(&|reference| resolve_secret(reference, &config.base_dir))
            .map_err(|problems| {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("  sources[{index}].mapping.{p}"))
                    .collect();
                anyhow!(
                    "the mapping of source `{source}` does not compile:\n{}",
                    lines.join("\n")
                )
            })?;
        if s.kind == SourceKind::FileDrop {
            map_csv_rows(&mut run, &compiled, &file_drop_settings(config, s), input)?;
        } else {
            map_json(&mut run, &compiled, input)?;
        }
    } else if let Some(columns) = &s.columns {
        map_columns(&mut run, columns, &file_drop_settings(config, s), input)?;
    } else if let Some(reader) = &s.reader {
        map_bank_file(&mut run, reader, input)?;
    } else {
        bail!("source `{source}` has no [sources.mapping], [sources.columns] or [sources.reader] to map with");
    }
    let summary = run.summary;
    writeln!(
        run.out,
        "records={} mapped={} errors={}",
        summary.records, summary.mapped, summary.errors
    )?;
    Ok(summary)
}

struct Run<'a> {
    source: &'a str,
    out: &'a mut dyn Write,
    summary: MapSummary,
}

impl Run<'_> {
    fn record(&mut self, line: Value) -> anyhow::Result<()> {
        self.summary.mapped += 1;
        writeln!(self.out, "{line}").context("cannot write the output")
    }

    fn error(
        &mut self,
        record: usize,
        key: Option<&str>,
        field: &str,
        reason: &str,
        extra: Option<(&str, Value)>,
    ) -> anyhow::Result<()> {
        self.summary.errors += 1;
        let mut e = json!({
            "source": self.source,
            "record": record,
            "key": key,
            "field": field,
            "reason": reason,
        });
        if let (Some((name, value)), Some(obj)) = (extra, e.as_object_mut()) {
            obj.insert(name.to_string(), value);
        }
        writeln!(self.out, "{}", json!({ "error": e })).context("cannot write the output")
    }
}

/// The file-drop settings of a source (encoding, delimiter), or the defaults.
fn file_drop_settings(config: &Config, s: &SourceConfig) -> FileDropConfig {
    config
        .file_drop(s)
        .unwrap_or_else(|| FileDropConfig::new(&config.base_dir))
}

fn map_record(run: &mut Run<'_>, compiled: &CompiledMapping, n: usize, record: &Value, extra: Option<(&str, Value)>) -> anyhow::Result<()> {
    run.summary.records += 1;
    match compiled.apply(record) {
        Ok(r) => {
            let mut line = json!({
                "record": n,
                "entity": r.entity,
                "op": r.op,
                "key": r.key,
                "version": r.version,
                "event_time": r.event_time,
                "payload": r.payload,
            });
            if let (Some((name, value)), Some(obj)) = (extra, line.as_object_mut()) {
                obj.insert(name.to_string(), value);
            }
            run.record(line)
        }
        Err(errors) => {
            let key = compiled.key_of(record);
            for e in errors {
                run.error(n, key.as_deref(), &e.field, &e.reason, extra.clone())?;
            }
            Ok(())
        }
    }
}

/// A JSON sample: an array of records, or one record per line.
fn map_json(run: &mut Run<'_>, compiled: &CompiledMapping, input: &Path) -> anyhow::Result<()> {
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut reader = BufReader::new(file);
    let first = loop {
        let buf = reader
            .fill_buf()
            .with_context(|| format!("cannot read {}", input.display()))?;
        match buf.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => break Some(buf[i]),
            None if buf.is_empty() => break None,
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    };
    if first == Some(b'[') {
        let mut text = String::new();
        reader
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read {} as UTF-8 text", input.display()))?;
        let records: Vec<Value> = serde_json::from_str(&text)
            .map_err(|e| anyhow!("{}: {}", input.display(), json_problem(&e, None)))?;
        for (i, record) in records.iter().enumerate() {
            map_record(run, compiled, i + 1, record, None)?;
        }
        return Ok(());
    }
    // One record per line; blank lines are skipped, a line that is not JSON is one error.
    let mut n = 0;
    for (line_no, line) in reader.lines().enumerate() {
        let line = line.with_context(|| {
            format!("cannot read {} line {} as UTF-8 text", input.display(), line_no + 1)
        })?;
        if line.trim().is_empty() {
            continue;
        }
        n += 1;
        let line_no = line_no + 1;
        match serde_json::from_str::<Value>(&line) {
            Ok(record) => map_record(run, compiled, n, &record, Some(("line", json!(line_no))))?,
            Err(e) => {
                run.summary.records += 1;
                run.error(n, None, "record", &json_problem(&e, Some(line_no)), Some(("line", json!(line_no))))?;
            }
        }
    }
    Ok(())
}

/// What is wrong with JSON text, by position only (serde's message could quote the text).
fn json_problem(e: &serde_json::Error, line: Option<usize>) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "read error",
    };
    format!(
        "not valid json: {kind} at line {} column {}",
        line.unwrap_or(e.line()),
        e.column()
    )
}

/// A CSV sample mapped through the declarative mapping, one row as one record.
fn map_csv_rows(
    run: &mut Run<'_>,
    compiled: &CompiledMapping,
    fd: &FileDropConfig,
    input: &Path,
) -> anyhow::Result<()> {
    let reader = CsvReader::open(input, fd).map_err(|e| anyhow!("{e}"))?;
    let headers = reader.headers().to_vec();
    for (i, row) in reader.enumerate() {
        let n = i + 1;
        match row {
            Ok(row) => {
                let record = csv_row_to_value(&headers, &row.cells);
                map_record(run, compiled, n, &record, Some(("line", json!(row.line))))?;
            }
            Err(e) => {
                run.summary.records += 1;
                run.error(n, None, "row", &e.reason(), Some(("line", json!(e.line))))?;
            }
        }
    }
    Ok(())
}

/// A customer CSV sample mapped through `[sources.columns]`.
fn map_columns(
    run: &mut Run<'_>,
    columns: &mapping::PartyColumns,
    fd: &FileDropConfig,
    input: &Path,
) -> anyhow::Result<()> {
    let reader = CsvReader::open(input, fd).map_err(|e| anyhow!("{e}"))?;
    let bound = columns.bind(reader.headers()).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        anyhow!(
            "{}: the header does not fit [sources.columns]:\n{}",
            input.display(),
            lines.join("\n")
        )
    })?;
    let today = chrono::Utc::now().date_naive();
    for (i, row) in reader.enumerate() {
        let n = i + 1;
        run.summary.records += 1;
        match row {
            Ok(row) => match bound.map_row(&row.cells, today) {
                Ok(p) => run.record(json!({
                    "record": n,
                    "line": row.line,
                    "entity": "party",
                    "op": "upsert",
                    "key": p.key,
                    "version": p.version,
                    "payload": p.party,
                }))?,
                Err(errors) => {
                    // The bound columns keep the key column to themselves; the record
                    // number and line name the row.
                    for e in errors {
                        run.error(n, None, &e.field, &e.reason, Some(("line", json!(row.line))))?;
                    }
                }
            },
            Err(e) => run.error(n, None, "row", &e.reason(), Some(("line", json!(e.line))))?,
        }
    }
    Ok(())
}

/// A bank file (statement, report) read with `[sources.reader]`.
fn map_bank_file(
    run: &mut Run<'_>,
    reader: &adapters::formats::FormatConfig,
    input: &Path,
) -> anyhow::Result<()> {
    let records = reader.open(input).map_err(|e| anyhow!("{}", format_error(&e)))?;
    for (i, item) in records.enumerate() {
        let n = i + 1;
        run.summary.records += 1;
        match item {
            Ok(item) => {
                let payload = match serde_json::to_value(&item.record)? {
                    Value::Object(mut tagged) => tagged.remove("record").unwrap_or(Value::Null),
                    other => other,
                };
                run.record(json!({
                    "record": n,
                    "location": item.location.to_string(),
                    "entity": item.record.entity(),
                    "op": "upsert",
                    "key": item.record.key(),
                    "payload": payload,
                }))?;
            }
            Err(e) => run.error(
                n,
                None,
                e.field.as_deref().unwrap_or("-"),
                &e.reason,
                Some(("location", json!(e.location.to_string()))),
            )?,
        }
    }
    Ok(())
}

fn format_error(e: &adapters::formats::FormatError) -> String {
    format!("{} {}: {}", e.file, e.location, e.detail())
}
