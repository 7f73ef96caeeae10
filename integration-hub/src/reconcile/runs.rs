//! Reconciliations inside `hub run`: on the `[reconcile]` schedule or started through the
//! API, one at a time, each stored as a JSON file under `<data_dir>/reconcile/` (the newest
//! 100 kept) and turned into the metrics of [`super::metrics`].
//!
//! Contract:
//! - At most one run at a time: a start while one runs is refused ([`StartError::Running`]);
//!   a scheduled tick that finds one running is skipped.
//! - A run reads what `hub reconcile` reads (the source's archive for a file drop) and
//!   writes nothing but its own file: a file is written to a temporary name and renamed, so
//!   a hub stopped mid-run leaves no partial file (the run is simply not recorded).
//! - A run that could not compare (a side unreadable, a configuration error) is stored with
//!   outcome `failed` and its error, and counted; the gauges keep the last comparison.
//! - Run ids are the UTC start time, `YYYYMMDDTHHMMSSmmmZ`: sortable, and safe as a file
//!   name (the API refuses anything else).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::{Report, metrics, prepare, run_job};
use crate::config::{Config, ReconcileSection};

/// Runs kept on disk; older files are removed after each run.
pub const KEPT: usize = 100;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    Api,
}

/// The run in progress.
#[derive(Debug, Clone, Serialize)]
pub struct Running {
    pub id: String,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
}

/// Why a run was not started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error("a reconciliation is running: {0}")]
    Running(String),
    #[error("no [reconcile] section in the config: nothing to run")]
    NotConfigured,
}

/// One stored run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub id: String,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `clean`, `differences` or `failed`.
    pub outcome: &'static str,
    /// Why a `failed` run could not compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// The hub's reconciliations.
pub struct Reconciler {
    config: Config,
    dir: PathBuf,
    running: Mutex<Option<Running>>,
}

/// Clears the running slot when the run ends, however it ends.
struct Slot(Arc<Reconciler>);

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.slot() = None;
    }
}

impl Reconciler {
    pub fn new(config: &Config) -> Arc<Reconciler> {
        Arc::new(Reconciler {
            dir: config.data_dir().join("reconcile"),
            config: config.clone(),
            running: Mutex::new(None),
        })
    }

    fn section(&self) -> Option<&ReconcileSection> {
        self.config.reconcile.as_ref()
    }

    fn slot(&self) -> MutexGuard<'_, Option<Running>> {
        // The slot holds plain data: a panic elsewhere cannot leave it inconsistent.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The run in progress, if any.
    pub fn running(&self) -> Option<Running> {
        self.slot().clone()
    }

    /// Starts a run in the background; its id.
    pub fn start(self: &Arc<Self>, trigger: Trigger) -> Result<String, StartError> {
        if self.section().is_none() {
            return Err(StartError::NotConfigured);
        }
        let started_at = Utc::now();
        let id = started_at.format("%Y%m%dT%H%M%S%3fZ").to_string();
        {
            let mut slot = self.slot();
            if let Some(r) = slot.as_ref() {
                return Err(StartError::Running(r.id.clone()));
            }
            *slot = Some(Running {
                id: id.clone(),
                trigger,
                started_at,
            });
        }
        let slot = Slot(self.clone());
        let me = self.clone();
        let run_id = id.clone();
        tokio::spawn(async move {
            let run = me.execute(run_id, trigger, started_at).await;
            if let Err(e) = me.store(&run) {
                tracing::error!(error = %format!("{e:#}"), run = %run.id, "reconcile: cannot store the run");
            }
            drop(slot);
        });
        Ok(id)
    }

    async fn execute(&self, id: String, trigger: Trigger, started_at: DateTime<Utc>) -> Run {
        let Some(section) = self.section() else {
            // start() checked it; a run without a section has nothing to compare.
            return failed(
                id,
                trigger,
                started_at,
                StartError::NotConfigured.to_string(),
            );
        };
        tracing::info!(run = %id, source = %section.source, "reconcile: run started");
        let job = prepare(
            self.config.clone(),
            &section.source,
            section.sink.as_deref(),
            None,
        );
        let result = match job {
            Ok(job) => run_job(job, None).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(report) => {
                let clean = report.clean();
                let c = &report.outcome.counts;
                let finished = report.finished_at.timestamp_millis() as f64 / 1000.0;
                metrics::run_compared(c, finished, clean);
                tracing::info!(
                    run = %id,
                    bank = c.bank,
                    crm = c.crm,
                    matched = c.matched,
                    missing = c.missing,
                    extra = c.extra,
                    different = c.different,
                    unreadable = c.unreadable,
                    failures = report.failures.len(),
                    "reconcile: run finished"
                );
                Run {
                    id,
                    trigger,
                    started_at,
                    finished_at: report.finished_at,
                    outcome: if clean { "clean" } else { "differences" },
                    error: None,
                    report: Some(report),
                }
            }
            Err(e) => {
                metrics::run_failed();
                let error = format!("{e:#}");
                tracing::warn!(run = %id, error = %error, "reconcile: run failed");
                failed(id, trigger, started_at, error)
            }
        }
    }

    /// Writes the run's file and removes the oldest beyond [`KEPT`].
    fn store(&self, run: &Run) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let path = self.dir.join(format!("{}.json", run.id));
        let tmp = self.dir.join(format!("{}.json.tmp", run.id));
        let bytes = serde_json::to_vec_pretty(run).context("cannot encode the run")?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let ids = self.ids()?;
        for old in ids.iter().skip(KEPT) {
            let p = self.dir.join(format!("{old}.json"));
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(file = %p.display(), error = %e, "reconcile: cannot remove an old run");
            }
        }
        Ok(())
    }

    /// The ids of the stored runs, newest first.
    fn ids(&self) -> anyhow::Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", self.dir.display())),
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
            .filter(|id| valid_id(id))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// Every stored run without its id lists, newest first.
    pub fn summaries(&self) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            // A file removed meanwhile (pruned by a finishing run) is simply not listed.
            let Some(mut run) = self.get(&id)? else {
                continue;
            };
            if let Some(report) = run.get_mut("report").and_then(Value::as_object_mut) {
                for list in ["missing", "extra", "different", "failures"] {
                    report.remove(list);
                }
            }
            out.push(run);
        }
        Ok(out)
    }

    /// One stored run with its ids; `None` when there is no such run.
    pub fn get(&self, id: &str) -> anyhow::Result<Option<Value>> {
        if !valid_id(id) {
            return Ok(None);
        }
        let path = self.dir.join(format!("{id}.json"));
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("{}: not a stored run", path.display()))
    }

    /// Runs the schedule of `[reconcile] every_secs` until the runtime ends; nothing when
    /// no period is configured.
    pub fn spawn_schedule(self: &Arc<Self>) {
        let Some(every) = self.section().and_then(|s| s.every_secs) else {
            return;
        };
        let period = Duration::from_secs(every.max(1));
        let me = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if let Err(e) = me.start(Trigger::Schedule) {
                    tracing::info!(reason = %e, "reconcile: scheduled run skipped");
                }
            }
        });
    }

    /// Where the runs are stored.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn failed(id: String, trigger: Trigger, started_at: DateTime<Utc>, error: String) -> Run {
    Run {
        id,
        trigger,
        started_at,
        finished_at: Utc::now(),
        outcome: "failed",
        error: Some(error),
        report: None,
    }
}

/// A run id: `YYYYMMDDTHHMMSSmmmZ`.
pub fn valid_id(id: &str) -> bool {
    id.len() == 19
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 => b == b'T',
            18 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_times_and_nothing_else_is_accepted() {
        let id = Utc::now().format("%Y%m%dT%H%M%S%3fZ").to_string();
        assert!(valid_id(&id), "{id}");
        for bad in [
            "",
            "../etc/passwd",
            "20250101T120000000",
            "20250101X120000000Z",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn stores_prunes_and_lists_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[hub]\ndata_dir = \"{}\"\n[[sinks]]\nname = \"crm\"\nkind = \"crm_rest\"\n\
             [sinks.crm_rest]\nbase_url = \"http://127.0.0.1:9\"\n",
            dir.path().display()
        );
        let config = crate::config::parse(&text, dir.path().to_path_buf()).unwrap();
        let r = Reconciler::new(&config);
        assert_eq!(r.start(Trigger::Api), Err(StartError::NotConfigured));
        // One run at a time.
        let mut with_section = config.clone();
        with_section.reconcile = Some(ReconcileSection {
            source: "abs".into(),
            sink: None,
            every_secs: None,
        });
        let busy = Reconciler::new(&with_section);
        *busy.slot() = Some(Running {
            id: "20250101T000000000Z".into(),
            trigger: Trigger::Schedule,
            started_at: Utc::now(),
        });
        assert_eq!(
            busy.start(Trigger::Api),
            Err(StartError::Running("20250101T000000000Z".into()))
        );
        let base = Utc::now();
        for i in 0..(KEPT + 5) {
            let at = base + chrono::Duration::milliseconds(i as i64);
            let id = at.format("%Y%m%dT%H%M%S%3fZ").to_string();
            r.store(&failed(id, Trigger::Schedule, at, "boom".into()))
                .unwrap();
        }
        let ids = r.ids().unwrap();
        assert_eq!(ids.len(), KEPT);
        let newest = (base + chrono::Duration::milliseconds((KEPT + 4) as i64))
            .format("%Y%m%dT%H%M%S%3fZ")
            .to_string();
        assert_eq!(ids[0], newest);
        let all = r.summaries().unwrap();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0]["outcome"], "failed");
        assert!(r.get(&newest).unwrap().is_some());
        assert!(r.get("../../x").unwrap().is_none());
    }
}
