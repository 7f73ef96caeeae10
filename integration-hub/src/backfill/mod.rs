//! `hub backfill`: re-send a whole source, or a selection of it, through the pipeline —
//! or, with `--dry-run`, show what that would change in the CRM without writing anything.
//!
//! Contract:
//! - The source is read again as its live task maps it (`read`, `remote`): a file drop from
//!   `--from` or its `archive/`, a REST or SOAP source in one full pass from its initial
//!   cursor. No position of the running hub (file ledger, cursors, offsets) is read or moved,
//!   so a backfill can run next to `hub run`. Webhooks keep no copy and cannot be backfilled.
//! - Selection (`select`): `--ids` / `--ids-file` by source id, `--sample PCT` a
//!   deterministic sample; both together take the sample of the ids.
//! - Publishing: every selected event goes to `<prefix>.canonical` with the usual headers
//!   and `resync: <sink>` (`*` without `--sink`). A CRM sink sends a resync of exactly the
//!   version it already delivered again (repairing a contact that drifted in the CRM) and,
//!   as always, never an older one. Configs with `[compliance]` or `[master_data]` are
//!   refused: their stages re-publish without the header, so the repair would not happen.
//! - `--dry-run` publishes nothing: the newest selected version of each key the sink
//!   delivers is compared with the contact the CRM holds (`dry_run`): `create`, `update`
//!   with the names of the fields that differ, `unchanged`, `stale` (the CRM holds a newer
//!   version: the sink would not send it), `merged` (merged into another contact in the
//!   CRM: never rewritten). Text table or `--json`; a summary either way.
//! - Progress on stderr (`progress`); records that could not be read, looked up or
//!   published on stderr, each with source, record and reason, never a value.
//! - Exit code: 0 done, 1 some records failed, 2 configuration error (nothing was sent).

mod diff;
pub(crate) mod dry_run;
pub(crate) mod progress;
mod publish;
pub(crate) mod read;
mod remote;
pub mod select;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::config::{self, Config, SinkConfig, SourceConfig};

pub use diff::changed_fields;
pub use dry_run::{Action, Change, DryRunReport, Summary};
pub use publish::PublishReport;
pub use read::Failure;
pub use select::{Selection, sample_bucket};

/// Failures listed on stderr before the rest is only counted.
const FAILURES_SHOWN: usize = 100;

/// `hub backfill` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// The hub config file.
    #[arg(long)]
    pub config: PathBuf,
    /// The source to read again.
    #[arg(long)]
    pub source: String,
    /// Only these source ids (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "ids_file")]
    pub ids: Vec<String>,
    /// Only the source ids in this file, one per line (`#` starts a comment line).
    #[arg(long, value_name = "FILE")]
    pub ids_file: Option<PathBuf>,
    /// A deterministic pilot sample of PCT percent (two decimals at most): the records whose
    /// SHA-256(source ‖ id) modulo 10,000 is below PCT×100.
    #[arg(long, value_name = "PCT")]
    pub sample: Option<f64>,
    /// The sink to repair (the resync is addressed to it) and, with --dry-run, to compare
    /// with; required for --dry-run when the config has several sinks.
    #[arg(long, value_name = "NAME")]
    pub sink: Option<String>,
    /// Publish nothing; print what would change in the CRM.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// A file-drop source: read this file, or the matching files of this folder, instead of
    /// the source's archive/.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
}

/// What `hub backfill` needs, checked before anything is read.
pub struct Job {
    pub config: Config,
    pub source: SourceConfig,
    pub sink: Option<SinkConfig>,
    pub selection: Selection,
    plan: read::Plan,
}

/// Checks the arguments against the config; every problem here is a configuration error.
pub fn prepare(args: &BackfillArgs) -> anyhow::Result<Job> {
    let config = config::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some(source) = config
        .sources
        .iter()
        .find(|s| s.name == args.source)
        .cloned()
    else {
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no source named `{}`; configured: {}",
            args.source,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    if config.compliance.is_some() || config.master_data.is_some() {
        bail!(
            "backfill needs the CRM sinks to read `{}` directly: with [compliance] or \
             [master_data] the screening and golden stages re-publish events without the \
             `resync` header, so a drifted contact would not be repaired",
            config.bus.canonical_topic()
        );
    }
    let sink = match &args.sink {
        Some(name) => Some(
            config
                .sinks
                .iter()
                .find(|s| &s.name == name)
                .cloned()
                .with_context(|| format!("no sink named `{name}`"))?,
        ),
        None if args.dry_run => match config.sinks.as_slice() {
            [one] => Some(one.clone()),
            [] => bail!("the config has no sink to compare with"),
            _ => bail!("the config has several sinks: name the one to compare with, --sink NAME"),
        },
        None => None,
    };
    if let Some(s) = &sink
        && !s.sources.is_empty()
        && !s.sources.contains(&source.name)
    {
        bail!(
            "sink `{}` does not deliver source `{}` (its `sources`)",
            s.name,
            source.name
        );
    }
    let ids = match (&args.ids_file, args.ids.is_empty()) {
        (Some(f), _) => Some(select::ids_of_file(f)?),
        (None, false) => Some(select::ids_of_list(&args.ids)),
        (None, true) => None,
    };
    let selection = Selection::new(ids, args.sample)?;
    let plan = read::plan(&config, &source, args.from.as_deref())?;
    Ok(Job {
        config,
        source,
        sink,
        selection,
        plan,
    })
}

/// Runs `hub backfill`: the report on stdout, progress and failures on stderr.
pub async fn run(args: &BackfillArgs) -> ExitCode {
    let job = match prepare(args) {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let failures = if args.dry_run {
        match dry_run::run(job).await {
            Ok(report) => {
                let written = if args.json {
                    serde_json::to_writer_pretty(&mut out, &report)
                        .map_err(anyhow::Error::from)
                        .and_then(|()| writeln_io(&mut out))
                } else {
                    dry_run::write_text(&report, &mut out)
                };
                if let Err(e) = written {
                    eprintln!("error: cannot write the report: {e:#}");
                    return ExitCode::from(1);
                }
                report.failures
            }
            Err(e) => return config_error(&e),
        }
    } else {
        match publish::run(job).await {
            Ok(report) => {
                let written = if args.json {
                    serde_json::to_writer_pretty(&mut out, &report)
                        .map_err(anyhow::Error::from)
                        .and_then(|()| writeln_io(&mut out))
                } else {
                    publish::write_text(&report, &mut out)
                };
                if let Err(e) = written {
                    eprintln!("error: cannot write the report: {e:#}");
                    return ExitCode::from(1);
                }
                report.failures
            }
            Err(e) => return config_error(&e),
        }
    };
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    eprintln!("backfill: {} record(s) failed:", failures.len());
    for f in failures.iter().take(FAILURES_SHOWN) {
        eprintln!("  {f}");
    }
    if failures.len() > FAILURES_SHOWN {
        eprintln!("  ... and {} more", failures.len() - FAILURES_SHOWN);
    }
    ExitCode::from(1)
}

fn writeln_io(out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    writeln!(out)?;
    Ok(())
}

/// A problem found once the run began that is about the set-up (a CRM client that cannot be
/// built, a bus that cannot be opened): nothing was sent.
fn config_error(e: &anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

/// Whether a failure concerns the selection: its key is selected, or unknown.
fn failure_selected(selection: &Selection, f: &Failure) -> bool {
    f.key
        .as_deref()
        .is_none_or(|k| selection.selects(&f.source, k))
}

/// Starts reading the job's source; chunks of items arrive on the receiver.
fn start_reading(
    job: &mut Job,
) -> (
    tokio::sync::mpsc::Receiver<Vec<read::Item>>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let plan = std::mem::replace(&mut job.plan, read::Plan::Rest);
    let (cfg, source) = (job.config.clone(), job.source.clone());
    let task = tokio::spawn(read::read(cfg, source, plan, tx));
    (rx, task)
}

/// The end of the reader: an error of its own becomes a failure of the source.
async fn reader_done(
    source: &str,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    failures: &mut Vec<Failure>,
) {
    let problem = match task.await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(e) => format!("the reader stopped: {e}"),
    };
    failures.push(Failure {
        source: source.to_owned(),
        record: "(reading)".to_owned(),
        key: None,
        reason: problem,
    });
}
