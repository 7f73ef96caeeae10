//! `hub reconcile`: the core bank against the CRM, by counts and per-record hashes — from
//! the command line, or on a schedule inside `hub run` (`[reconcile]`, [`runs`], [`api`]).
//!
//! Contract:
//! - Bank side: the source is read fully as its live task maps it (the backfill's reader:
//!   a file drop from `--from` or its `archive/`, a REST or SOAP source in one full pass),
//!   no position of the running hub read or moved; the newest version of each key of the
//!   entities the sink delivers is kept.
//! - CRM side: every live contact the CRM lists (`GET /contacts?after=&limit=`, pages of
//!   1,000) whose `source` — the source named by its last write, which the generic REST CRM
//!   stores — is this source. A CRM whose listing gives no `source` has all its contacts
//!   taken (the sink's key space: the external id is the source key).
//! - Compared fields: without `[master_data]`, every field the sink writes from the source's
//!   canonical record. The rule for `[master_data]` (only the fields whose mastership rule
//!   names this source's `system` as master, [`hash::FieldScope`]) is in place, but such a
//!   config is refused for now: the CRM then holds golden records keyed by golden id, not by
//!   the bank's key.
//! - Per record: SHA-256 over the canonical JSON of the compared fields on each side
//!   ([`hash`]); `matched`, `missing` (in the bank, not in the CRM), `extra` (in the CRM,
//!   not in the bank), `different` (with the names of the fields that differ, never
//!   values) ([`compare`]).
//! - Only the generic REST CRM can be listed so far; a vendor sink (Salesforce, Dynamics,
//!   Bitrix24) is a configuration error.
//! - CLI: the report on stdout (text, or `--json`), progress on stderr, `--ids-out` writes
//!   the ids of missing and different records for `hub backfill --ids-file`; exit 0 clean,
//!   1 differences (or bank records that could not be read), 2 error.

pub mod api;
pub mod compare;
pub mod hash;
mod metrics;
pub mod report;
pub mod runs;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde::Serialize;

use adapters::crm::rest::CrmRestClient;

use crate::backfill::Failure;
use crate::backfill::progress::Progress;
use crate::backfill::read::{self, Item, Plan};
use crate::config::{self, Config, SinkConfig, SinkKind, SourceConfig};
use compare::{Comparison, Outcome};
use hash::FieldScope;

/// Contacts asked for per page of the CRM's listing (the API's maximum).
const PAGE: usize = 1_000;
/// Read failures listed on stderr before the rest is only counted.
const FAILURES_SHOWN: usize = 100;

/// `hub reconcile` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReconcileArgs {
    /// The hub config file.
    #[arg(long)]
    pub config: PathBuf,
    /// The source (core bank) to compare.
    #[arg(long)]
    pub source: String,
    /// The sink whose CRM is compared; required when several sinks deliver the source.
    #[arg(long, value_name = "NAME")]
    pub sink: Option<String>,
    /// A file-drop source: read this file, or the matching files of this folder (a
    /// snapshot), instead of the source's archive/.
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
    /// Write the ids of the missing and different records to FILE, one per line, for
    /// `hub backfill --ids-file FILE`.
    #[arg(long, value_name = "FILE")]
    pub ids_out: Option<PathBuf>,
}

/// A reconciliation, checked before anything is read.
pub struct Job {
    pub config: Config,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    pub scope: FieldScope,
    client: CrmRestClient,
    plan: Plan,
}

/// The report of one reconciliation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: String,
    pub sink: String,
    /// Which fields were compared: `all` or `mastered by <system>`.
    pub fields: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Bank records that could not be read: source, record, key, reason (never a value).
    pub failures: Vec<Failure>,
}

impl Report {
    /// Nothing missing, extra or different, and every bank record read.
    pub fn clean(&self) -> bool {
        self.outcome.clean() && self.failures.is_empty()
    }
}

/// Checks the names and the config: every problem here is a configuration error.
pub fn prepare(
    config: Config,
    source: &str,
    sink: Option<&str>,
    from: Option<&Path>,
) -> anyhow::Result<Job> {
    let Some(source) = config.sources.iter().find(|s| s.name == source).cloned() else {
        let names: Vec<&str> = config.sources.iter().map(|s| s.name.as_str()).collect();
        bail!(
            "no source named `{source}`; configured: {}",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        );
    };
    let delivers = |s: &&SinkConfig| s.sources.is_empty() || s.sources.contains(&source.name);
    let sink = match sink {
        Some(name) => {
            let s = config
                .sinks
                .iter()
                .find(|s| s.name == name)
                .with_context(|| format!("no sink named `{name}`"))?;
            if !delivers(&s) {
                bail!(
                    "sink `{name}` does not deliver source `{}` (its `sources`)",
                    source.name
                );
            }
            s.clone()
        }
        None => {
            let candidates: Vec<&SinkConfig> = config.sinks.iter().filter(delivers).collect();
            match candidates.as_slice() {
                [one] => (*one).clone(),
                [] => bail!("no sink delivers source `{}`", source.name),
                _ => bail!(
                    "several sinks deliver source `{}`: name the one to compare with, --sink NAME",
                    source.name
                ),
            }
        }
    };
    let scope = scope_of(&config, &source);
    if config.master_data.is_some() {
        bail!(
            "reconcile needs a config without [master_data] for now: with golden records the \
             CRM's contacts are keyed by golden id, not by the source's key, so the two sides \
             cannot be matched record by record (compared fields would be: {})",
            scope.describe()
        );
    }
    if sink.kind != SinkKind::CrmRest {
        bail!(
            "sink `{}` is a {} sink: reconcile lists the CRM's contacts through the generic REST \
             CRM API only so far (Salesforce SOQL query, Dynamics $filter/$top and Bitrix24 \
             crm.contact.list are not implemented)",
            sink.name,
            sink.kind.as_str()
        );
    }
    let client = crate::backfill::dry_run::rest_client(&config, &sink)?;
    let plan = read::plan(&config, &source, from)?;
    Ok(Job {
        config,
        source,
        sink,
        scope,
        client,
        plan,
    })
}

/// The fields compared for `source`: with `[master_data]` those its system masters.
fn scope_of(config: &Config, source: &SourceConfig) -> FieldScope {
    match &config.master_data {
        None => FieldScope::All,
        Some(md) => FieldScope::MasteredBy {
            system: config.system_of(&source.name).to_owned(),
            rules: md.mastership.clone(),
        },
    }
}

/// Reads the bank, lists the CRM and compares. `Err` when either side could not be read as
/// a whole (the comparison would be wrong); records that could not be read are failures
/// of the report. Progress on stderr when `progress` is given.
pub async fn run_job(job: Job, mut progress: Option<Progress>) -> anyhow::Result<Report> {
    let started_at = Utc::now();
    let Job {
        config,
        source,
        sink,
        scope,
        client,
        plan,
    } = job;
    let mut comparison = Comparison::new(scope.clone());
    let mut failures = Vec::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(read::read(config, source.clone(), plan, tx));
    let mut read_count = 0u64;
    let mut kept = 0u64;
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            read_count += 1;
            match item {
                Item::Failed(f) => {
                    if let Some(k) = &f.key {
                        comparison.add_unreadable(k);
                    }
                    failures.push(f);
                }
                Item::Record(env) if sink.entities.contains(&env.entity) => {
                    kept += 1;
                    comparison.add_bank(&env);
                }
                Item::Record(_) => {}
            }
        }
        if let Some(p) = progress.as_mut() {
            (p.read, p.selected) = (read_count, kept);
            p.tick();
        }
    }
    match reader.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context(format!("source `{}`", source.name))),
        Err(e) => bail!("source `{}`: the reader stopped: {e}", source.name),
    }
    // A REST or SOAP pass that stopped part-way leaves the bank side incomplete: every
    // contact after the stop would be reported extra, so there is no report.
    if let Some(f) = failures
        .iter()
        .find(|f| f.reason.starts_with(read::PASS_STOPPED))
    {
        bail!("the bank could not be read fully: {f}");
    }
    if let Some(p) = progress.as_mut() {
        p.total = None;
    }
    let mut after: Option<String> = None;
    let mut listed = 0u64;
    loop {
        let (page, _) = client
            .list_contacts_with_retry(after.as_deref(), PAGE)
            .await
            .map_err(|e| {
                anyhow::anyhow!("sink `{}`: listing the crm's contacts: {e}", sink.name)
            })?;
        for l in &page.contacts {
            listed += 1;
            let ours = l.source.as_deref().is_none_or(|s| s == source.name);
            if ours && l.contact.merged_into.is_none() {
                comparison.add_crm(&l.contact.external_id, &l.contact.fields);
            }
        }
        if let Some(p) = progress.as_mut() {
            p.done = listed;
            p.tick();
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    if let Some(p) = progress.as_mut() {
        p.finish();
    }
    Ok(Report {
        source: source.name,
        sink: sink.name,
        fields: scope.describe(),
        started_at,
        finished_at: Utc::now(),
        outcome: comparison.finish(),
        failures,
    })
}

/// `hub reconcile`: the report on stdout, progress and read failures on stderr.
pub async fn run(args: &ReconcileArgs) -> ExitCode {
    let job = config::load(&args.config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|cfg| {
            prepare(
                cfg,
                &args.source,
                args.sink.as_deref(),
                args.from.as_deref(),
            )
        });
    let job = match job {
        Ok(j) => j,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let report = match run_job(job, Some(Progress::of_command("reconcile", "listed"))).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(anyhow::Error::from)
            .and_then(|()| {
                use std::io::Write;
                writeln!(out)?;
                Ok(())
            })
    } else {
        report::write_text(&report, &mut out)
    };
    if let Err(e) = written {
        eprintln!("error: cannot write the report: {e:#}");
        return ExitCode::from(2);
    }
    if let Some(path) = &args.ids_out
        && let Err(e) = report::write_ids(&report, path)
    {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    if !report.failures.is_empty() {
        eprintln!(
            "reconcile: {} bank record(s) could not be read:",
            report.failures.len()
        );
        for f in report.failures.iter().take(FAILURES_SHOWN) {
            eprintln!("  {f}");
        }
        if report.failures.len() > FAILURES_SHOWN {
            eprintln!("  ... and {} more", report.failures.len() - FAILURES_SHOWN);
        }
    }
    if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
