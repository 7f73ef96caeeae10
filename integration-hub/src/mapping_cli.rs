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
        bail!(
            "source `{source}` has no [sources.mapping], [sources.columns] or [sources.reader] to map with"
        );
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

fn map_record(
    run: &mut Run<'_>,
    compiled: &CompiledMapping,
    n: usize,
    record: &Value,
    extra: Option<(&str, Value)>,
) -> anyhow::Result<()> {
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
            format!(
                "cannot read {} line {} as UTF-8 text",
                input.display(),
                line_no + 1
            )
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
                run.error(
                    n,
                    None,
                    "record",
                    &json_problem(&e, Some(line_no)),
                    Some(("line", json!(line_no))),
                )?;
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
                        run.error(
                            n,
                            None,
                            &e.field,
                            &e.reason,
                            Some(("line", json!(row.line))),
                        )?;
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
    let records = reader
        .open(input)
        .map_err(|e| anyhow!("{}", format_error(&e)))?;
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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{BusSection, HttpSection, HubSection, StoreSection};

    fn config(base: &Path, sources: &str) -> Config {
        #[derive(serde::Deserialize)]
        struct Sources {
            sources: Vec<SourceConfig>,
        }
        let parsed: Sources = toml::from_str(sources).expect("sources parse");
        Config {
            base_dir: base.to_path_buf(),
            hub: HubSection::default(),
            bus: BusSection::default(),
            store: StoreSection::default(),
            state: Default::default(),
            http: HttpSection::default(),
            sources: parsed.sources,
            sinks: Vec::new(),
            compliance: None,
            master_data: None,
            quality: None,
            auth: None,
            audit: None,
            reconcile: None,
            encryption: None,
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write sample");
        p
    }

    fn dry_run(cfg: &Config, source: &str, input: &Path) -> (MapSummary, Vec<Value>, String) {
        let mut out = Vec::new();
        let summary = run(cfg, source, input, &mut out).expect("dry run");
        let text = String::from_utf8(out).expect("utf-8 output");
        let mut lines: Vec<&str> = text.lines().collect();
        let last = lines.pop().expect("summary line").to_string();
        let json = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("a json line"))
            .collect();
        (summary, json, last)
    }

    const PARTY_WEBHOOK: &str = r#"
[[sources]]
name = "crm-events"
kind = "webhook"
[sources.mapping]
entity = "party"
key = "$.clientId"
version = "$.seq"
[sources.mapping.fields]
last_name = { path = "$.lastName", transforms = ["title_case"] }
first_name = "$.firstName"
inn = "$.inn"
birth_date = { path = "$.dob", date_format = "%d.%m.%Y" }
"#;

    #[test]
    fn json_array_sample() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), PARTY_WEBHOOK);
        let sample = write(
            dir.path(),
            "sample.json",
            r#"[
  {"clientId": "1", "seq": 3, "lastName": "ИВАНОВ", "firstName": "Иван", "inn": "500100732259", "dob": "12.03.1985"},
  {"clientId": "2", "seq": 4, "inn": "500100732258", "dob": "1985-03-12"},
  {"seq": 5}
]"#,
        );
        let (summary, lines, last) = dry_run(&cfg, "crm-events", &sample);
        assert_eq!(
            summary,
            MapSummary {
                records: 3,
                mapped: 1,
                errors: 3
            }
        );
        assert_eq!(last, "records=3 mapped=1 errors=3");
        assert_eq!(lines[0]["record"], 1);
        assert_eq!(lines[0]["key"], "1");
        assert_eq!(lines[0]["version"], 3);
        assert_eq!(lines[0]["entity"], "party");
        assert_eq!(lines[0]["op"], "upsert");
        assert_eq!(lines[0]["payload"]["last_name"], "Иванов");
        assert_eq!(lines[0]["payload"]["birth_date"], "1985-03-12");
        assert_eq!(
            lines[1],
            json!({"error": {"source": "crm-events", "record": 2, "key": "2", "field": "birth_date",
                             "reason": "expected a date in the format %d.%m.%Y"}})
        );
        assert_eq!(
            lines[2],
            json!({"error": {"source": "crm-events", "record": 2, "key": "2", "field": "inn",
                             "reason": "checksum mismatch"}})
        );
        assert_eq!(
            lines[3],
            json!({"error": {"source": "crm-events", "record": 3, "key": null, "field": "key",
                             "reason": "is required but missing"}})
        );
        // No error line repeats a value from the sample.
        for l in &lines[1..] {
            let t = l.to_string();
            assert!(
                !t.contains("500100732258") && !t.contains("1985-03-12"),
                "{t}"
            );
        }
    }

    #[test]
    fn json_lines_sample_with_a_broken_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), PARTY_WEBHOOK);
        let sample = write(
            dir.path(),
            "sample.jsonl",
            "{\"clientId\": 7, \"lastName\": \"петров\"}\n\n{\"clientId\": \"8\", \"secret\": \"4111\n{\"clientId\": \"9\"}\n",
        );
        let (summary, lines, last) = dry_run(&cfg, "crm-events", &sample);
        assert_eq!(last, "records=3 mapped=2 errors=1");
        assert_eq!(summary.records, 3);
        assert_eq!(lines[0]["key"], "7");
        assert_eq!(lines[0]["line"], 1);
        assert_eq!(lines[1]["error"]["record"], 2);
        assert_eq!(lines[1]["error"]["line"], 3);
        assert_eq!(lines[1]["error"]["field"], "record");
        let reason = lines[1]["error"]["reason"].as_str().expect("reason");
        assert!(
            reason.starts_with("not valid json: unexpected end at line 3"),
            "{reason}"
        );
        assert!(!reason.contains("4111"));
        assert_eq!(lines[2]["key"], "9");
        assert_eq!(lines[2]["record"], 3);
    }

    #[test]
    fn csv_sample_with_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(
            dir.path(),
            r#"
[[sources]]
name = "abs-customers"
kind = "file_drop"
[sources.file_drop]
inbox = "inbox"
delimiter = ";"
[sources.columns]
key = "id"
last_name = "surname"
first_name = "name"
inn = "inn"
"#,
        );
        let sample = write(
            dir.path(),
            "customers.csv",
            "id;surname;name;inn\n1;Иванов;Иван;500100732259\n2;;Пётр;7707083894\n3;Сидоров\n",
        );
        let (summary, lines, last) = dry_run(&cfg, "abs-customers", &sample);
        assert_eq!(last, "records=3 mapped=1 errors=3");
        assert_eq!(summary.mapped, 1);
        assert_eq!(lines[0]["key"], "1");
        assert_eq!(lines[0]["line"], 2);
        assert_eq!(lines[0]["payload"]["inn"], "500100732259");
        let errors: Vec<(Value, Value)> = lines[1..]
            .iter()
            .map(|l| (l["error"]["field"].clone(), l["error"]["reason"].clone()))
            .collect();
        assert_eq!(
            errors,
            vec![
                (json!("inn"), json!("checksum mismatch")),
                (json!("last_name"), json!("is required but empty")),
                (
                    json!("row"),
                    json!("last row has 2 of 4 cells; the file looks truncated")
                ),
            ]
        );
        assert_eq!(lines[3]["error"]["line"], 4);
    }

    #[test]
    fn csv_sample_with_a_declarative_mapping_and_a_pan_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "pan.key", "0123456789abcdef0123456789abcdef\n");
        let cfg = config(
            dir.path(),
            r#"
[[sources]]
name = "cards"
kind = "file_drop"
[sources.file_drop]
inbox = "inbox"
delimiter = ","
[sources.mapping]
entity = "card"
key = "$.card_id"
pan_key = "file:pan.key"
[sources.mapping.fields]
party_source_id = "$.client"
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
token = { path = "$.pan", transforms = ["tokenize_pan"] }
event = { path = "$.event", map = { B = "blocked", I = "issued" } }
"#,
        );
        let sample = write(
            dir.path(),
            "cards.csv",
            "card_id,client,pan,event\nk1,p1,4111111111111111,B\nk2,p1,4111111111111112,I\n",
        );
        let (summary, lines, _) = dry_run(&cfg, "cards", &sample);
        assert_eq!((summary.records, summary.mapped, summary.errors), (2, 1, 2));
        assert_eq!(lines[0]["payload"]["masked_pan"], "411111******1111");
        assert_eq!(lines[0]["payload"]["event"], "blocked");
        assert_eq!(lines[1]["error"]["reason"], "card number invalid (Luhn)");
        let all: String = lines.iter().map(Value::to_string).collect();
        assert!(!all.contains("4111111111111111") && !all.contains("4111111111111112"));
    }

    #[test]
    fn bank_file_sample_with_a_reader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(
            dir.path(),
            r#"
[[sources]]
name = "statements"
kind = "file_drop"
[sources.file_drop]
inbox = "inbox"
[sources.reader]
format = "mt940"
"#,
        );
        let sample = write(
            dir.path(),
            "st.mt940",
            ":20:X\n:25:ACC1\n:28C:1\n:60F:C240101EUR1,00\n:61:240101C1,00NTRFNONREF\n:62F:C240101EUR2,00\n-\n",
        );
        let (summary, lines, _) = dry_run(&cfg, "statements", &sample);
        assert_eq!(summary.errors, 0, "{lines:?}");
        let entities: Vec<&str> = lines.iter().filter_map(|l| l["entity"].as_str()).collect();
        assert!(
            entities.contains(&"account") && entities.contains(&"transaction"),
            "{entities:?}"
        );
        let t = lines
            .iter()
            .find(|l| l["entity"] == "transaction")
            .expect("a transaction");
        assert_eq!(t["payload"]["amount_minor"], 100);
    }

    #[test]
    fn whole_run_problems_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = config(dir.path(), PARTY_WEBHOOK);
        let sample = write(dir.path(), "s.json", "[]");
        let mut out = Vec::new();
        let e = run(&cfg, "nope", &sample, &mut out).expect_err("unknown source");
        assert_eq!(
            e.to_string(),
            "no source named `nope`; configured: crm-events"
        );
        let e = run(
            &cfg,
            "crm-events",
            &dir.path().join("missing.json"),
            &mut out,
        )
        .expect_err("missing file");
        assert!(e.to_string().starts_with("cannot open"), "{e}");
        let broken = config(
            dir.path(),
            &PARTY_WEBHOOK.replace("[\"title_case\"]", "[\"titlecase\"]"),
        );
        let e = run(&broken, "crm-events", &sample, &mut out).expect_err("bad mapping");
        assert!(
            e.to_string()
                .contains("sources[0].mapping.fields.last_name: unknown transform \"titlecase\""),
            "{e}"
        );
        assert!(out.is_empty());
    }

    #[test]
    fn validate_reports_mapping_problems_with_their_path() {
        let text = r#"
[[sources]]
name = "events"
kind = "webhook"
[sources.mapping]
entity = "party"
key = "$.id"
[sources.mapping.fields]
inn = { path = "$.inn", transforms = ["innn"] }
"#;
        let problems = crate::config::parse(text, PathBuf::from(".")).expect_err("problems");
        let p = problems
            .iter()
            .find(|p| p.path == "sources[0].mapping.fields.inn")
            .unwrap_or_else(|| panic!("no mapping problem in {problems:?}"));
        assert!(
            p.message.starts_with("unknown transform \"innn\""),
            "{}",
            p.message
        );
        assert_eq!(p.line, Some(9));
    }
}
