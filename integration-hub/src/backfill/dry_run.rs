//! `hub backfill --dry-run`: what a backfill would change in the CRM, read through the
//! sink's own API, with nothing written anywhere.
//!
//! The newest selected version of each key the sink delivers (its `entities`) is looked up
//! with [`CrmReader::get`], `concurrency` lookups at a time, and classified (see
//! [`Action`]). Only field names are reported: values are customer data.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinSet;

use adapters::crm::read::{CrmContact, CrmReader};
use adapters::crm::rest::CrmRestClient;
use mapping::Envelope;

use super::progress::{Progress, thousands};
use super::read::{Failure, Item};
use super::{Job, changed_fields, failure_selected, reader_done, start_reading};
use crate::config::{Config, SinkConfig, SinkKind, resolve_secret};

/// Lookups in flight at most, whatever the sink's concurrency.
const MAX_LOOKUPS: usize = 32;

/// What a backfill would do to one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The CRM has no such contact: it would be created.
    Create,
    /// The CRM's contact differs in the fields named.
    Update,
    /// The CRM holds exactly what would be sent.
    Unchanged,
    /// The CRM holds a newer version: the sink would not send this one.
    Stale,
    /// The contact was merged into another in the CRM: the sink never rewrites it.
    Merged,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Unchanged => "unchanged",
            Action::Stale => "stale",
            Action::Merged => "merged",
        }
    }
}

/// One contact of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// The source id (the CRM's external id).
    pub key: String,
    pub entity: String,
    /// The version a backfill would send.
    pub version: i64,
    /// The version the CRM holds, when it stores one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crm_version: Option<i64>,
    pub action: Action,
    /// For `update`: the names of the fields that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// The counts of a dry run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records read from the source (mapped or not).
    pub read: u64,
    /// Records selected (before keeping the newest version of each key).
    pub selected: u64,
    /// Selected records of entities the sink does not deliver.
    pub not_for_sink: u64,
    pub create: u64,
    pub update: u64,
    pub unchanged: u64,
    pub stale: u64,
    pub merged: u64,
    /// Records that could not be read or looked up.
    pub failed: u64,
}

/// The whole dry-run report.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    pub source: String,
    pub sink: String,
    pub summary: Summary,
    /// Every contact looked up, by key.
    pub records: Vec<Change>,
    pub failures: Vec<Failure>,
}

/// Reads, selects, looks up and classifies.
pub async fn run(mut job: Job) -> anyhow::Result<DryRunReport> {
    let sink = job.sink.clone().context("a dry run needs a sink")?;
    let (reader, concurrency) = open_reader(&job, &sink)?;
    let mut progress = Progress::new("looked up");
    let mut summary = Summary::default();
    let mut failures = Vec::new();
    // The newest selected version of each key: what the sink would end up sending.
    let mut newest: BTreeMap<(String, String), Envelope> = BTreeMap::new();
    let (mut rx, task) = start_reading(&mut job);
    while let Some(chunk) = rx.recv().await {
        for item in chunk {
            progress.read += 1;
            match item {
                Item::Failed(f) => {
                    if failure_selected(&job.selection, &f) {
                        failures.push(f);
                    }
                }
                Item::Record(env) => {
                    if !job.selection.selects(&job.source.name, &env.key) {
                        continue;
                    }
                    progress.selected += 1;
                    if !sink.entities.contains(&env.entity) {
                        summary.not_for_sink += 1;
                        continue;
                    }
                    let k = (env.entity.as_str().to_owned(), env.key.clone());
                    if newest.get(&k).is_none_or(|e| e.version <= env.version) {
                        newest.insert(k, *env);
                    }
                }
            }
        }
        progress.tick();
    }
    reader_done(&job.source.name, task, &mut failures).await;
    summary.read = progress.read;
    summary.selected = progress.selected;
    progress.total = Some(newest.len() as u64);

    let mut records = Vec::with_capacity(newest.len());
    let mut jobs: JoinSet<(Envelope, Result<Option<CrmContact>, String>)> = JoinSet::new();
    let mut todo = newest.into_values();
    loop {
        while jobs.len() < concurrency {
            let Some(env) = todo.next() else { break };
            let reader = reader.clone();
            jobs.spawn(async move {
                let got = reader.get(&env.key).await.map_err(|e| e.to_string());
                (env, got)
            });
        }
        let Some(joined) = jobs.join_next().await else {
            break;
        };
        let (env, got) = joined.context("a crm lookup panicked")?;
        progress.done += 1;
        progress.tick();
        match got {
            Ok(contact) => records.push(classify(&env, contact.as_ref())),
            Err(reason) => failures.push(Failure {
                source: job.source.name.clone(),
                record: format!("crm lookup of {}", env.key),
                key: Some(env.key.clone()),
                reason,
            }),
        }
    }
    progress.finish();
    records.sort_by(|a, b| (&a.key, &a.entity).cmp(&(&b.key, &b.entity)));
    for r in &records {
        match r.action {
            Action::Create => summary.create += 1,
            Action::Update => summary.update += 1,
            Action::Unchanged => summary.unchanged += 1,
            Action::Stale => summary.stale += 1,
            Action::Merged => summary.merged += 1,
        }
    }
    summary.failed = failures.len() as u64;
    Ok(DryRunReport {
        source: job.source.name.clone(),
        sink: sink.name.clone(),
        summary,
        records,
        failures,
    })
}

/// What a backfill would do with `env` given the CRM's contact.
pub fn classify(env: &Envelope, contact: Option<&CrmContact>) -> Change {
    let mut change = Change {
        key: env.key.clone(),
        entity: env.entity.as_str().to_owned(),
        version: env.version,
        crm_version: contact.and_then(|c| c.version),
        action: Action::Create,
        fields: Vec::new(),
    };
    let Some(c) = contact else {
        return change;
    };
    if c.merged_into.is_some() {
        change.action = Action::Merged;
    } else if c.version.is_some_and(|v| v > env.version) {
        change.action = Action::Stale;
    } else {
        let empty = serde_json::Map::new();
        let want = env.payload.as_object().unwrap_or(&empty);
        change.fields = changed_fields(want, &c.fields);
        change.action = if change.fields.is_empty() {
            Action::Unchanged
        } else {
            Action::Update
        };
    }
    change
}

/// The sink's CRM as a reader, and how many lookups to run at once.
fn open_reader(job: &Job, sink: &SinkConfig) -> anyhow::Result<(Arc<dyn CrmReader>, usize)> {
    match sink.kind {
        SinkKind::CrmRest => {
            let client = rest_client(&job.config, sink)?;
            let concurrency = client.config().concurrency.clamp(1, MAX_LOOKUPS);
            Ok((Arc::new(client), concurrency))
        }
        other => anyhow::bail!(
            "sink `{}`: a dry run reads the CRM through the generic REST API only so far; \
             {} sinks cannot be compared yet",
            sink.name,
            other.as_str()
        ),
    }
}

/// The client of a `crm_rest` sink, its token resolved (also used by `hub reconcile`).
pub(crate) fn rest_client(config: &Config, sink: &SinkConfig) -> anyhow::Result<CrmRestClient> {
    let mut cfg = sink
        .crm_rest
        .clone()
        .with_context(|| format!("sink `{}`: [sinks.crm_rest] missing", sink.name))?;
    if let Some(token) = &cfg.token {
        cfg.token = Some(
            resolve_secret(token, &config.base_dir)
                .map_err(|e| anyhow::anyhow!("sink `{}`: crm_rest.token: {e}", sink.name))?,
        );
    }
    CrmRestClient::new(cfg).map_err(|e| anyhow::anyhow!("sink `{}`: {e}", sink.name))
}

/// The report as a table, then the summary.
pub fn write_text(r: &DryRunReport, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "backfill dry run: source {} → sink {} (nothing was written)",
        r.source, r.sink
    )?;
    let width = r
        .records
        .iter()
        .map(|c| c.key.len())
        .max()
        .unwrap_or(3)
        .max(3);
    writeln!(
        out,
        "{:<width$}  {:<9}  {:>14}  fields",
        "key", "action", "version"
    )?;
    for c in &r.records {
        writeln!(
            out,
            "{:<width$}  {:<9}  {:>14}  {}",
            c.key,
            c.action.as_str(),
            c.version,
            c.fields.join(",")
        )?;
    }
    let s = &r.summary;
    writeln!(
        out,
        "read={} selected={} create={} update={} unchanged={} stale={} merged={} \
         not_for_sink={} failed={}",
        s.read,
        s.selected,
        s.create,
        s.update,
        s.unchanged,
        s.stale,
        s.merged,
        s.not_for_sink,
        s.failed
    )?;
    if s.failed > 0 {
        writeln!(out, "{} record(s) failed: see stderr", thousands(s.failed))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use mapping::{Entity, Op};
    use serde_json::json;

    fn env(version: i64, payload: serde_json::Value) -> Envelope {
        Envelope::new(
            "abs",
            Entity::Party,
            Op::Upsert,
            "C1",
            version,
            Utc::now(),
            Utc::now(),
            payload,
        )
    }

    fn contact(version: Option<i64>, fields: serde_json::Value) -> CrmContact {
        CrmContact {
            crm_id: Some("crm-1".into()),
            external_id: "C1".into(),
            version,
            fields: fields.as_object().cloned().unwrap_or_default(),
            merged_into: None,
        }
    }

    #[test]
    fn every_action() {
        let e = env(5, json!({"last_name": "Иванов", "phone": "+7999"}));
        assert_eq!(classify(&e, None).action, Action::Create);
        let same = contact(Some(5), json!({"last_name": "Иванов", "phone": "+7999"}));
        assert_eq!(classify(&e, Some(&same)).action, Action::Unchanged);
        let drifted = contact(Some(5), json!({"last_name": "Петров", "phone": "+7999"}));
        let c = classify(&e, Some(&drifted));
        assert_eq!(
            (c.action, c.fields),
            (Action::Update, vec!["last_name".to_owned()])
        );
        let newer = contact(Some(6), json!({}));
        assert_eq!(classify(&e, Some(&newer)).action, Action::Stale);
        let older = contact(Some(4), json!({"last_name": "Иванов", "phone": "+7999"}));
        assert_eq!(classify(&e, Some(&older)).action, Action::Unchanged);
        let mut merged = same.clone();
        merged.merged_into = Some("C2".into());
        assert_eq!(classify(&e, Some(&merged)).action, Action::Merged);
    }

    #[test]
    fn the_text_report_names_fields_not_values() {
        let e = env(5, json!({"last_name": "Иванов"}));
        let drifted = contact(Some(5), json!({"last_name": "Петров"}));
        let report = DryRunReport {
            source: "abs".into(),
            sink: "crm".into(),
            summary: Summary {
                update: 1,
                ..Summary::default()
            },
            records: vec![classify(&e, Some(&drifted))],
            failures: Vec::new(),
        };
        let mut out = Vec::new();
        write_text(&report, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("C1   update"), "{text}");
        assert!(text.contains("last_name"), "{text}");
        assert!(
            !text.contains("Иванов") && !text.contains("Петров"),
            "{text}"
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("Иванов") && !json.contains("Петров"),
            "{json}"
        );
    }
}
