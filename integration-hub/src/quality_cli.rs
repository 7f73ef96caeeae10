//! `hub quality`: the data-quality report over the raw rows of the configured file-drop
//! sources of customers, against the go-live bars.
//!
//! Contract:
//! - Every row counts, including the rows the pipeline would quarantine: each row is mapped
//!   leniently (`BoundColumns::map_row_lenient` for `[sources.columns]`,
//!   `CompiledMapping::lenient` for a `[sources.mapping]` of parties), so an invalid phone
//!   or INN stays in the party as text and counts as present and invalid; a row whose cells
//!   do not line up with the header counts as a record missing every mandatory field
//!   (`mapping::mdm::quality`).
//! - What is read: `--path` (a file, or the files of a folder matching the source's
//!   pattern), or else the source's own files: `archive/` when it keeps processed files,
//!   then `processing/`, then the inbox. A file whose content was already read (the same
//!   SHA-256, as a re-sent export in `archive/`) is read once. `failed/` is not read.
//! - The bars and mandatory fields come from the config's `[quality]` table (read here from
//!   the TOML file), then `--min-valid-contacts` / `--min-complete` / `--no-duplicates`.
//! - Exit code: 0 when every source passes, 1 when one fails, 2 when the report cannot be
//!   made (a config problem, an unreadable file, a source without files); the error goes
//!   to stderr and nothing to stdout.
//! - Output: the report on stdout (text, or one JSON document); progress lines (every
//!   100,000 rows, and before the duplicate search) and notes on stderr. No line carries a
//!   value read from a row: rows are named by file and line only.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use adapters::file_drop::{CsvReader, FileDropConfig, RowErrorKind};
use mapping::columns::BoundColumns;
use mapping::declarative::{LenientMapping, csv_row_to_value};
use mapping::mdm::quality::{QualityConfig, QualityReport, QualityRun, Share, SourceQuality};
use mapping::{Entity, FieldError, Op, Party};

use crate::config::{self, Config, SourceConfig, SourceKind};

/// A progress line on stderr every this many rows of a source.
const PROGRESS_EVERY: u64 = 100_000;

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ReportFormat {
    /// One block per source, then the verdict.
    #[default]
    Text,
    /// One JSON document: the report and the files read.
    Json,
}

/// `hub quality` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct QualityArgs {
    /// The hub config file; its `[quality]` table gives the bars and mandatory fields.
    #[arg(long)]
    pub config: PathBuf,
    /// A source to measure (repeatable). Default: every file-drop source of customers.
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,
    /// Read this file, or the files of this folder matching the source's pattern, instead
    /// of the source's archive, processing and inbox folders (one source only).
    #[arg(long, value_name = "FILE_OR_DIR")]
    pub path: Option<PathBuf>,
    /// Report as text or JSON.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    pub format: ReportFormat,
    /// Least share of valid contacts (phones and e-mails), as `0.9` or `90%`; overrides
    /// `[quality] min_valid_contacts`.
    #[arg(long, value_parser = parse_share, value_name = "SHARE")]
    pub min_valid_contacts: Option<f64>,
    /// Least share of filled mandatory fields, as `0.95` or `95%`; overrides
    /// `[quality] min_complete`.
    #[arg(long, value_parser = parse_share, value_name = "SHARE")]
    pub min_complete: Option<f64>,
    /// Skip the duplicate search (it holds about 190 bytes a record in memory).
    #[arg(long)]
    pub no_duplicates: bool,
}

/// `0.9`, `90%` or `90 %` → 0.9. The range is checked with the rest of the config.
fn parse_share(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let (number, scale) = match t.strip_suffix('%') {
        Some(p) => (p.trim(), 100.0),
        None => (t, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .map(|v| v / scale)
        .ok_or_else(|| format!("expected a share such as 0.9 or 90%, got `{s}`"))
}

/// Runs `hub quality`: the report on stdout, progress and errors on stderr.
pub fn run(args: &QualityArgs) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let mut log = std::io::stderr().lock();
    Ok(run_with(args, &mut out, &mut log))
}

/// [`run`] writing to `out` (the report) and `log` (progress, notes, errors).
pub fn run_with(args: &QualityArgs, out: &mut dyn Write, log: &mut dyn Write) -> ExitCode {
    let measured = measure(args, log).and_then(|m| {
        match args.format {
            ReportFormat::Text => write_text(&m, out)?,
            ReportFormat::Json => {
                serde_json::to_writer_pretty(&mut *out, &m)?;
                writeln!(out)?;
            }
        }
        out.flush()?;
        Ok(m.report.pass)
    });
    match measured {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            let _ = writeln!(log, "error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What was measured: the report, and per source the files read.
#[derive(Debug, Serialize)]
pub struct Measured {
    /// The config file.
    pub config: PathBuf,
    /// Per source, in report order: the files read.
    pub inputs: Vec<SourceInputs>,
    /// Sources not measured, and why.
    pub skipped: Vec<String>,
    /// The report.
    pub report: QualityReport,
}

/// The files one source was measured over.
#[derive(Debug, Serialize)]
pub struct SourceInputs {
    /// The source's name.
    pub source: String,
    /// Its files, in the order read.
    pub files: Vec<FileRead>,
}

/// One file and what came of it.
#[derive(Debug, Serialize)]
pub struct FileRead {
    /// The file.
    pub path: PathBuf,
    /// Data rows read (0 when skipped).
    pub rows: u64,
    /// The file already read with the same content, when this one was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub same_content_as: Option<PathBuf>,
}

/// Loads the config, reads every selected source and makes the report.
pub fn measure(args: &QualityArgs, log: &mut dyn Write) -> anyhow::Result<Measured> {
    let (cfg, _) = load(&args.config)?;
    measure_config(&cfg, args, log)
}

/// [`measure`] over a config already loaded (`args.config` only names it in the report).
pub fn measure_config(
    cfg: &Config,
    args: &QualityArgs,
    log: &mut dyn Write,
) -> anyhow::Result<Measured> {
    let mut quality = cfg.quality.clone().unwrap_or_default();
    if let Some(v) = args.min_valid_contacts {
        quality.min_valid_contacts = v;
    }
    if let Some(v) = args.min_complete {
        quality.min_complete = v;
    }
    if args.no_duplicates {
        quality.duplicates = false;
    }
    let (selected, skipped) = select(cfg, &args.sources)?;
    for note in &skipped {
        writeln!(log, "quality: skipped {note}")?;
    }
    if args.path.is_some() && selected.len() != 1 {
        bail!(
            "--path reads one source, but {} are selected; name one with --source",
            selected.len()
        );
    }
    let mut run = QualityRun::new(&quality, selected.len() > 1)?;
    let today = chrono::Utc::now().date_naive();
    let mut inputs = Vec::new();
    for s in &selected {
        let fd = cfg
            .file_drop(s)
            .with_context(|| format!("source `{}` has no [sources.file_drop]", s.name))?;
        let files = match &args.path {
            Some(p) => given_files(p, &fd)?,
            None => source_files(&fd)?,
        };
        if files.is_empty() {
            bail!(
                "source `{}`: no files to read (pattern {} in {}{})",
                s.name,
                fd.pattern,
                match &args.path {
                    Some(p) => p.display().to_string(),
                    None => fd.inbox.display().to_string(),
                },
                match &args.path {
                    Some(_) => "",
                    None => ", its processing/ and archive/",
                }
            );
        }
        let mapper = Mapper::of(cfg, s, today)?;
        let mut tally = run.source(&s.name);
        let mut reads = Vec::new();
        let mut seen: HashMap<String, PathBuf> = HashMap::new();
        let mut read_so_far = 0u64;
        for path in files {
            let sha = sha256_of(&path)?;
            if let Some(first) = seen.get(&sha) {
                writeln!(
                    log,
                    "quality: {}: {} has the content of {}: read once",
                    s.name,
                    path.display(),
                    first.display()
                )?;
                reads.push(FileRead {
                    path,
                    rows: 0,
                    same_content_as: Some(first.clone()),
                });
                continue;
            }
            let rows = read_file(
                &s.name,
                &path,
                &fd,
                &mapper,
                &mut tally,
                &mut read_so_far,
                log,
            )?;
            seen.insert(sha, path.clone());
            reads.push(FileRead {
                path,
                rows,
                same_content_as: None,
            });
        }
        if quality.duplicates {
            writeln!(
                log,
                "quality: {}: looking for duplicates among {} records",
                s.name,
                thousands(tally.records())
            )?;
        }
        tally.finish()?;
        inputs.push(SourceInputs {
            source: s.name.clone(),
            files: reads,
        });
    }
    if quality.duplicates && selected.len() > 1 {
        writeln!(log, "quality: looking for the same party across sources")?;
    }
    Ok(Measured {
        config: args.config.clone(),
        inputs,
        skipped,
        report: run.finish()?,
    })
}

/// The hub config and its `[quality]` table (or the defaults).
fn load(path: &Path) -> anyhow::Result<(Config, QualityConfig)> {
    let cfg = config::load(path)?;
    let quality = cfg.quality.clone().unwrap_or_default();
    Ok((cfg, quality))
}

/// The sources to measure, and notes on the ones left out of the default selection.
fn select<'a>(
    cfg: &'a Config,
    names: &[String],
) -> anyhow::Result<(Vec<&'a SourceConfig>, Vec<String>)> {
    if names.is_empty() {
        let mut selected = Vec::new();
        let mut skipped = Vec::new();
        for s in cfg
            .sources
            .iter()
            .filter(|s| s.kind == SourceKind::FileDrop)
        {
            match not_customers(s) {
                None => selected.push(s),
                Some(why) => skipped.push(format!("source `{}`: {why}", s.name)),
            }
        }
        if selected.is_empty() {
            bail!(
                "no file-drop source of customers to measure{}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", skipped.join("; "))
                }
            );
        }
        return Ok((selected, skipped));
    }
    let mut selected = Vec::new();
    for name in names {
        let Some(s) = cfg.sources.iter().find(|s| &s.name == name) else {
            let known: Vec<&str> = cfg.sources.iter().map(|s| s.name.as_str()).collect();
            bail!(
                "no source named `{name}`; configured: {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        };
        if s.kind != SourceKind::FileDrop {
            bail!("source `{name}` is not a file drop: hub quality reads dropped files");
        }
        if let Some(why) = not_customers(s) {
            bail!("source `{name}`: {why}");
        }
        if !selected.iter().any(|p: &&SourceConfig| p.name == s.name) {
            selected.push(s);
        }
    }
    Ok((selected, Vec::new()))
}

/// Why a file-drop source does not deliver customers, if it does not.
fn not_customers(s: &SourceConfig) -> Option<String> {
    if s.reader.is_some() {
        return Some("reads bank files (accounts, transactions), not customers".into());
    }
    match (&s.columns, &s.mapping) {
        (Some(_), _) => None,
        (None, Some(m)) if m.entity == Entity::Party => None,
        (None, Some(m)) => Some(format!("maps {} records, not parties", m.entity.as_str())),
        (None, None) => Some("has no [sources.columns] or [sources.mapping]".into()),
    }
}

/// `--path`: the file, or the files of the folder matching the source's pattern.
fn given_files(path: &Path, fd: &FileDropConfig) -> anyhow::Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    matching_files(path, fd, false)
}

/// The source's own files: `archive/` (when it keeps them), `processing/`, the inbox.
fn source_files(fd: &FileDropConfig) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if fd.keep_processed {
        files.extend(matching_files(&fd.archive_dir(), fd, true)?);
    }
    files.extend(matching_files(&fd.processing_dir(), fd, true)?);
    files.extend(matching_files(&fd.inbox, fd, false)?);
    Ok(files)
}

/// Regular files of `dir` whose name matches the pattern, by name; a missing folder has
/// none. In `archive/` and `processing/` a name may carry the `.1`, `.2`, ... that keeps
/// a re-sent file from overwriting an earlier one.
fn matching_files(dir: &Path, fd: &FileDropConfig, numbered: bool) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let is_file = entry
            .file_type()
            .with_context(|| format!("cannot inspect {}", entry.path().display()))?
            .is_file();
        let matches = fd.matches(&name)
            || (numbered
                && name.rsplit_once('.').is_some_and(|(stem, n)| {
                    !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && fd.matches(stem)
                }));
        if is_file && matches {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// How a source's rows become parties.
enum Mapper<'a> {
    /// `[sources.columns]`, bound to each file's header; "today" for the birth-date check.
    Columns(&'a mapping::PartyColumns, chrono::NaiveDate),
    /// `[sources.mapping]`, leniently.
    Declarative(Box<LenientMapping>),
}

impl<'a> Mapper<'a> {
    fn of(cfg: &Config, s: &'a SourceConfig, today: chrono::NaiveDate) -> anyhow::Result<Self> {
        if let Some(columns) = &s.columns {
            return Ok(Mapper::Columns(columns, today));
        }
        let Some(m) = &s.mapping else {
            bail!(
                "source `{}` has no [sources.columns] or [sources.mapping]",
                s.name
            );
        };
        let compiled = m
            .compile(&|reference| config::resolve_secret(reference, &cfg.base_dir))
            .map_err(|problems| {
                let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                anyhow!(
                    "the mapping of source `{}` does not compile:\n{}",
                    s.name,
                    lines.join("\n")
                )
            })?;
        Ok(Mapper::Declarative(Box::new(compiled.lenient())))
    }
}

/// A source's mapping made ready for one file.
enum FileMapper<'m> {
    Columns(Box<BoundColumns>, chrono::NaiveDate),
    Declarative(&'m LenientMapping),
}

/// A file's rows into the tally; returns the data rows read. `read_so_far` counts the
/// source's rows across its files, for the progress lines.
fn read_file(
    source: &str,
    path: &Path,
    fd: &FileDropConfig,
    mapper: &Mapper<'_>,
    tally: &mut mapping::mdm::quality::SourceTally<'_, '_>,
    read_so_far: &mut u64,
    log: &mut dyn Write,
) -> anyhow::Result<u64> {
    let reader = CsvReader::open(path, fd).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let headers = reader.headers().to_vec();
    let file_mapper = match mapper {
        Mapper::Columns(columns, today) => {
            let b = columns.bind(&headers).map_err(|problems| {
                let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
                anyhow!(
                    "{}: line 1 (header) does not fit [sources.columns]:\n{}",
                    path.display(),
                    lines.join("\n")
                )
            })?;
            FileMapper::Columns(Box::new(b), *today)
        }
        Mapper::Declarative(m) => FileMapper::Declarative(m),
    };
    let mut rows = 0u64;
    for row in reader {
        rows += 1;
        *read_so_far += 1;
        if read_so_far.is_multiple_of(PROGRESS_EVERY) {
            writeln!(
                log,
                "quality: {source}: {} rows read",
                thousands(*read_so_far)
            )?;
        }
        let row = match row {
            Ok(r) => r,
            // The pipeline stops such a file at this line (to failed/): no report over it.
            Err(e) if matches!(e.kind, RowErrorKind::Malformed { .. }) => {
                bail!("{}: line {}: {}", path.display(), e.line, e.reason())
            }
            Err(e) => {
                tally.add_unreadable(&[FieldError::new("row", e.reason())]);
                continue;
            }
        };
        match &file_mapper {
            FileMapper::Columns(b, today) => match b.map_row_lenient(&row.cells, *today) {
                Ok(l) => tally.add(&l.mapped.party, &l.errors)?,
                Err(errors) => tally.add_unreadable(&errors),
            },
            FileMapper::Declarative(m) => {
                let record = csv_row_to_value(&headers, &row.cells);
                match m.apply(&record) {
                    // A deletion says a party is gone: there is nothing to measure.
                    Ok(r) if r.record.op == Op::Delete => {}
                    Ok(r) => match serde_json::from_value::<Party>(r.record.payload) {
                        Ok(p) => tally.add(&p, &r.errors)?,
                        Err(_) => tally.add_unreadable(&[FieldError::new(
                            "record",
                            "does not fit the canonical model",
                        )]),
                    },
                    Err(errors) => tally.add_unreadable(&errors),
                }
            }
        }
    }
    Ok(rows)
}

/// `9120` → `9,120`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// `9,120 of 9,500 (96.0%)`, or `none to check` when nothing was checked.
fn share_text(s: &Share) -> String {
    if s.checked == 0 {
        return "none to check".to_string();
    }
    format!(
        "{} of {} ({})",
        thousands(s.passed),
        thousands(s.checked),
        percent(s.share)
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

/// The text report: one block per source, the duplicates across sources, the verdict last.
fn write_text(m: &Measured, out: &mut dyn Write) -> anyhow::Result<()> {
    let r = &m.report;
    let mut t = String::new();
    writeln!(t, "Data-quality report for {}", m.config.display())?;
    writeln!(
        t,
        "Bars: valid contacts at least {}, mandatory fields complete at least {}",
        percent(r.min_valid_contacts),
        percent(r.min_complete)
    )?;
    for (q, inputs) in r.sources.iter().zip(&m.inputs) {
        writeln!(t)?;
        source_block(&mut t, q, inputs)?;
    }
    if let Some(d) = &r.across_sources {
        writeln!(t)?;
        writeln!(
            t,
            "Across sources: {} records are {} distinct parties ({} records repeat a party, in one source or across sources)",
            thousands(d.parties + d.duplicate_records),
            thousands(d.parties),
            thousands(d.duplicate_records)
        )?;
    }
    writeln!(t)?;
    let failed: Vec<&str> = r
        .sources
        .iter()
        .filter(|s| !s.pass)
        .map(|s| s.source.as_str())
        .collect();
    if failed.is_empty() {
        writeln!(
            t,
            "Overall: PASS ({} of {} sources pass)",
            r.sources.len(),
            r.sources.len()
        )?;
    } else {
        writeln!(
            t,
            "Overall: FAIL ({} of {} sources fail: {})",
            failed.len(),
            r.sources.len(),
            failed.join(", ")
        )?;
    }
    out.write_all(t.as_bytes())?;
    Ok(())
}

fn source_block(t: &mut String, q: &SourceQuality, inputs: &SourceInputs) -> std::fmt::Result {
    writeln!(t, "Source {}: {}", q.source, verdict(q.pass))?;
    for f in &inputs.files {
        match &f.same_content_as {
            Some(first) => writeln!(
                t,
                "  file               {} (same content as {}, read once)",
                f.path.display(),
                first.display()
            )?,
            None => writeln!(
                t,
                "  file               {} ({} rows)",
                f.path.display(),
                thousands(f.rows)
            )?,
        }
    }
    writeln!(t, "  records            {}", thousands(q.records))?;
    if q.rejected > 0 {
        let by_field: Vec<String> = q
            .errors_by_field
            .iter()
            .map(|(f, n)| format!("{f} {}", thousands(*n)))
            .collect();
        writeln!(
            t,
            "  quarantined        {} of {} ({}) by the mapping; records with an error in: {}",
            thousands(q.rejected),
            thousands(q.records),
            percent(q.rejected as f64 / q.records.max(1) as f64),
            by_field.join(", ")
        )?;
        if q.unreadable > 0 {
            writeln!(
                t,
                "  unreadable rows    {} (counted as missing every mandatory field)",
                thousands(q.unreadable)
            )?;
        }
    }
    writeln!(t, "  valid phones       {}", share_text(&q.phones))?;
    writeln!(t, "  valid e-mails      {}", share_text(&q.emails))?;
    writeln!(t, "  valid INNs         {}", share_text(&q.inns))?;
    writeln!(t, "  valid contacts     {}", share_text(&q.valid_contacts))?;
    writeln!(
        t,
        "  mandatory fields   {} cells filled",
        share_text(&q.completeness)
    )?;
    for (field, s) in &q.fields {
        writeln!(t, "    {field:<16} {}", share_text(s))?;
    }
    writeln!(
        t,
        "  complete records   {}",
        share_text(&q.complete_records)
    )?;
    match &q.duplicates {
        Some(d) => writeln!(
            t,
            "  duplicates         {} records ({}) repeat another record's party; {} distinct parties, {} of them with several records; pairs to review: {}",
            thousands(d.duplicate_records),
            percent(d.share),
            thousands(d.parties),
            thousands(d.duplicated_parties),
            thousands(d.review_pairs)
        )?,
        None => writeln!(t, "  duplicates         not searched")?,
    }
    if q.pass {
        writeln!(t, "  verdict            PASS")?;
    } else {
        writeln!(t, "  verdict            FAIL: {}", q.failures.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_from_the_command_line() {
        assert_eq!(parse_share("0.9"), Ok(0.9));
        assert_eq!(parse_share("95%"), Ok(0.95));
        assert_eq!(parse_share(" 90 % "), Ok(0.9));
        assert!(parse_share("ninety").is_err());
        assert!(parse_share("NaN").is_err());
    }

    #[test]
    fn thousands_separators() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (9120, "9,120"),
            (1_000_000, "1,000,000"),
        ] {
            assert_eq!(thousands(n), s);
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn args(config: &Path) -> QualityArgs {
        QualityArgs {
            config: config.to_path_buf(),
            sources: Vec::new(),
            path: None,
            format: ReportFormat::Json,
            min_valid_contacts: None,
            min_complete: None,
            no_duplicates: true,
        }
    }

    fn run_json(a: &QualityArgs) -> (ExitCode, serde_json::Value, String) {
        let (mut out, mut log) = (Vec::new(), Vec::new());
        let code = run_with(a, &mut out, &mut log);
        let log = String::from_utf8(log).expect("utf-8");
        let json = if out.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&out).expect("json report")
        };
        (code, json, log)
    }

    const CONFIG: &str = r#"
[quality]
person_fields = ["last_name", "phones"]
min_valid_contacts = 0.75

[[sources]]
name = "crm-feed"
kind = "file_drop"
[sources.file_drop]
inbox = "in"
delimiter = ","
[sources.mapping]
entity = "party"
key = "$.id"
[sources.mapping.fields]
last_name = "$.last"
phones = { path = "$.phone", split = ";" }
inn = "$.inn"

[[sources]]
name = "statements"
kind = "file_drop"
[sources.file_drop]
inbox = "statements"
[sources.reader]
format = "mt940"

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:9"
"#;

    #[test]
    fn declarative_source_archive_and_inbox_read_once_each() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write(dir.path(), "hub.toml", CONFIG);
        std::fs::create_dir_all(dir.path().join("in/archive")).expect("mkdir");
        let first = "id,last,phone,inn\n1,Иванов,+79001112233,500100732259\n2,,12,500100732258\n";
        write(&dir.path().join("in/archive"), "a.csv", first);
        // The same export dropped again: read once.
        write(&dir.path().join("in/archive"), "a.csv.1", first);
        write(
            &dir.path().join("in"),
            "b.csv",
            "id,last,phone\n3,Петров,+79001112234\n4,Сидоров,\"1;+79001112235\"\n5\n",
        );
        // Not data files: a done-marker and a file of another pattern.
        write(&dir.path().join("in"), "b.csv.done", "");
        write(&dir.path().join("in"), "notes.txt", "x");

        let (code, json, log) = run_json(&args(&config));
        assert_eq!(code, ExitCode::from(1), "{log}");
        assert!(
            log.contains("skipped source `statements`: reads bank files"),
            "{log}"
        );
        assert!(log.contains("a.csv.1 has the content of"), "{log}");
        let q = &json["report"]["sources"][0];
        assert_eq!(q["source"], "crm-feed");
        // 2 + 3 rows; row `5` has one cell of three: unreadable.
        assert_eq!(q["records"], 5);
        assert_eq!(q["unreadable"], 1);
        // Row 2 (phone, inn) and row 4 (one phone) are refused by the mapping.
        assert_eq!(q["rejected"], 3);
        assert_eq!(q["errors_by_field"]["phones"], 2);
        assert_eq!(q["errors_by_field"]["inn"], 1);
        assert_eq!(q["errors_by_field"]["row"], 1);
        // Phones: +7900…33, 12, +7900…34, 1, +7900…35 → 3 of 5.
        assert_eq!(q["phones"]["passed"], 3);
        assert_eq!(q["phones"]["checked"], 5);
        assert_eq!(q["inns"]["passed"], 1);
        assert_eq!(q["inns"]["checked"], 2);
        // Mandatory: last_name and phones, 5 records: row 2 has no last name, row 5 nothing.
        assert_eq!(q["completeness"]["passed"], 7);
        assert_eq!(q["completeness"]["checked"], 10);
        assert_eq!(
            q["failures"],
            serde_json::json!([
                "valid contacts 60.0% below 75.0%",
                "mandatory fields 70.0% complete, below 95.0%"
            ])
        );
        let files = &json["inputs"][0]["files"];
        assert_eq!(files.as_array().map(Vec::len), Some(3));
        assert_eq!(files[1]["rows"], 0);

        // Lower bars from the command line pass it.
        let mut lenient = args(&config);
        lenient.min_valid_contacts = Some(0.6);
        lenient.min_complete = Some(0.7);
        lenient.format = ReportFormat::Text;
        let (mut out, mut log) = (Vec::new(), Vec::new());
        assert_eq!(run_with(&lenient, &mut out, &mut log), ExitCode::SUCCESS);
        let text = String::from_utf8(out).expect("utf-8");
        assert!(
            text.contains("  valid phones       3 of 5 (60.0%)"),
            "{text}"
        );
        assert!(
            text.ends_with("Overall: PASS (1 of 1 sources pass)\n"),
            "{text}"
        );
        // No value of a row reaches the output.
        for value in ["Иванов", "500100732258", "+79001112233"] {
            assert!(!text.contains(value), "{text}");
        }
    }

    #[test]
    fn errors_exit_2_and_name_the_problem() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write(dir.path(), "hub.toml", CONFIG);
        // No files at all.
        let (code, json, log) = run_json(&args(&config));
        assert_eq!(code, ExitCode::from(2));
        assert_eq!(json, serde_json::Value::Null);
        assert!(log.contains("source `crm-feed`: no files to read"), "{log}");

        // A source that is not customers, named explicitly.
        let mut a = args(&config);
        a.sources = vec!["statements".into()];
        let (code, _, log) = run_json(&a);
        assert_eq!(code, ExitCode::from(2));
        assert!(
            log.contains("source `statements`: reads bank files"),
            "{log}"
        );

        // An unknown source.
        a.sources = vec!["nope".into()];
        let (_, _, log) = run_json(&a);
        assert!(
            log.contains("no source named `nope`; configured: crm-feed, statements"),
            "{log}"
        );

        // A bar out of range.
        let mut a = args(&config);
        a.min_complete = Some(95.0);
        std::fs::create_dir_all(dir.path().join("in")).expect("mkdir");
        write(
            &dir.path().join("in"),
            "x.csv",
            "id,last,phone\n1,A,+79001112233\n",
        );
        let (code, _, log) = run_json(&a);
        assert_eq!(code, ExitCode::from(2));
        assert!(
            log.contains("min_complete must be between 0 and 1"),
            "{log}"
        );

        // A bad [quality] table names its line.
        let bad = CONFIG.replace("min_valid_contacts = 0.75", "min_valid = 0.75");
        let config = write(dir.path(), "bad.toml", &bad);
        let (code, _, log) = run_json(&args(&config));
        assert_eq!(code, ExitCode::from(2));
        assert!(
            log.contains("line 4: quality.min_valid: unknown field `min_valid`"),
            "{log}"
        );

        // Another problem of the config is reported as `hub validate` does.
        let broken = CONFIG.replace(
            "kind = \"file_drop\"\n[sources.file_drop]\ninbox = \"in\"",
            "kind = \"file_drop\"\n[sources.file_drop]\ninbox = \"in\"\ncolour = 1",
        );
        let config = write(dir.path(), "broken.toml", &broken);
        let (code, _, log) = run_json(&args(&config));
        assert_eq!(code, ExitCode::from(2));
        assert!(log.contains("colour"), "{log}");
        assert!(!log.contains("unknown section `quality`"), "{log}");
    }
}
