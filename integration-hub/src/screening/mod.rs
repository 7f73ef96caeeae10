//! Compliance in the running hub: sanctions/PEP screening of parties, 115-FZ monitoring of
//! transactions, cases held back from the CRM until an officer decides.
//!
//! - [`engine`]: the loaded lists and the matcher behind one `screen` call.
//! - [`lists`]: loading the configured lists, versions and what changed between two loads.
//! - [`subject`]: what of a party is screened, and its fingerprint.
//! - [`verdict`]: hits + earlier decisions → clear, potential or confirmed.
//! - [`store`]: screened parties, cases, decisions, alerts, list versions (SQLite).
//! - [`stage`]: the pipeline task between `<prefix>.canonical` and `<prefix>.cleared`.
//! - [`api`]: the compliance API (cases, decisions, alerts, lists, re-screen).

pub mod api;
pub mod cli;
pub mod engine;
pub mod lists;
pub mod stage;
pub mod store;
pub mod subject;
pub mod verdict;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use anyhow::Context;
use serde_json::json;
use sha2::{Digest, Sha256};

use compliance::monitoring::{Monitor, MonitorState, PartyProfile, TxContext};
use mapping::{Envelope, Transaction};

use crate::bus::OutMessage;
use crate::config::{ComplianceSection, Config};
use crate::telemetry;
use engine::{Engine, HitView};
use store::{ComplianceStore, StoredAlert};

pub struct Screening {
    pub store: Arc<ComplianceStore>,
    engine: RwLock<Arc<Engine>>,
    section: ComplianceSection,
    base_dir: std::path::PathBuf,
    pub reload_every_secs: u64,
    rescreen: AtomicBool,
    /// Full re-screens completed since the process started (shown by the API).
    rescreens_done: std::sync::atomic::AtomicU64,
    monitor: Mutex<Monitor>,
    /// The external screening provider, when configured.
    provider: Option<adapters::aml::AmlClient>,
}

impl Screening {
    /// Opens the compliance store. The lists are loaded by the stage when it starts
    /// ([`Screening::reload_lists`]), so that their results can be published.
    pub fn open(config: &Config) -> anyhow::Result<Arc<Screening>> {
        let section = config
            .compliance
            .clone()
            .context("no [compliance] section")?;
        let store = Arc::new(
            ComplianceStore::open(&config.data_dir().join("compliance.db"))
                .context("cannot open the compliance store")?
                // Held envelopes and subjects encrypted at rest with [encryption] (docs/pii.md).
                .with_cipher(crate::crypto::of_config(config)?),
        );
        let monitor = match store.monitor_state()? {
            Some(state) => {
                let state: MonitorState = serde_json::from_str(&state)
                    .context("stored monitoring state cannot be read")?;
                Monitor::with_state(section.monitoring.clone(), state)
            }
            None => Monitor::new(section.monitoring.clone()),
        }
        .map_err(|e| anyhow::anyhow!("compliance.monitoring: {e}"))?;
        let provider = match &section.provider {
            Some(p) => {
                let mut p = p.clone();
                p.api_key = crate::config::resolve_secret(&p.api_key, &config.base_dir)
                    .map_err(|e| anyhow::anyhow!("compliance.provider.api_key: {e}"))?;
                Some(
                    adapters::aml::AmlClient::new(p)
                        .map_err(|e| anyhow::anyhow!("compliance.provider: {e}"))?,
                )
            }
            None => None,
        };
        let s = Arc::new(Screening {
            provider,
            store,
            engine: RwLock::new(Arc::new(Engine::empty(section.threshold))),
            reload_every_secs: section.reload_every_secs,
            base_dir: config.base_dir.clone(),
            section,
            rescreen: AtomicBool::new(false),
            rescreens_done: std::sync::atomic::AtomicU64::new(0),
            monitor: Mutex::new(monitor),
        });
        // Counted when /metrics is scraped; a weak reference, so the gauge never keeps the
        // store open.
        let store = Arc::downgrade(&s.store);
        telemetry::count_open_cases_with(Box::new(move || match store.upgrade() {
            Some(store) => Ok(store.case_counts()?),
            None => Ok(Vec::new()),
        }));
        Ok(s)
    }

    /// The version of every list in use and when the hub first loaded it, for the list
    /// gauges (a version's load time survives restarts: it is stored with the snapshot).
    fn report_list_versions(&self, loaded: &[lists::LoadedList]) {
        let stored = match self.store.list_versions() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(event = "list_versions_unavailable", error = %e, "cannot read list versions for the metrics");
                return;
            }
        };
        let now = chrono::Utc::now();
        telemetry::screening_lists(
            stored
                .into_iter()
                .filter(|v| loaded.iter().any(|l| l.snapshot.list == v.name))
                .map(|v| {
                    let at = chrono::DateTime::parse_from_rfc3339(&v.loaded_at)
                        .map_or(now, |t| t.with_timezone(&chrono::Utc));
                    (v.name, v.version, at)
                }),
        );
    }

    pub fn engine(&self) -> Arc<Engine> {
        self.engine
            .read()
            .map(|e| e.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Hits of `subject`: the lists, plus the external provider when one is configured. A
    /// provider that stays unavailable after its retries is an error: the batch is not
    /// committed and is screened again, so no party passes unscreened.
    pub fn hits(
        &self,
        reference: &str,
        subject: &compliance::Subject,
    ) -> anyhow::Result<Vec<HitView>> {
        let mut hits = self.engine().screen(subject);
        if let Some(p) = &self.provider {
            let req = adapters::aml::ScreenRequest::from_subject(reference, subject);
            let matches = tokio::runtime::Handle::current()
                .block_on(p.screen(&req))
                .map_err(|e| anyhow::anyhow!("screening provider: {e}"))?;
            hits.extend(matches.into_iter().map(|m| HitView {
                list: m.list,
                entry_id: m.entry_id,
                score: m.score,
                query_name: m.query_name,
                matched_name: m.matched_name,
                explanation: m.explanation,
            }));
        }
        Ok(hits)
    }

    /// Asks the stage for a full re-screen of every party at its next turn.
    pub fn request_rescreen(&self) {
        self.rescreen.store(true, Ordering::SeqCst);
    }

    pub fn rescreens_done(&self) -> u64 {
        self.rescreens_done.load(Ordering::SeqCst)
    }

    pub fn rescreen_requested(&self) -> bool {
        self.rescreen.load(Ordering::SeqCst)
    }

    fn take_rescreen_request(&self) -> bool {
        self.rescreen.swap(false, Ordering::SeqCst)
    }

    /// Loads every configured list; when one changed, re-screens the stored parties against
    /// the entries that were added or changed, and re-checks open cases whose entries were
    /// removed. With a pending re-screen request every party is screened again.
    pub fn reload_lists(&self) -> anyhow::Result<Vec<OutMessage>> {
        let full = self.take_rescreen_request();
        let loaded = lists::load_all(&self.section, &self.base_dir, &self.store)?;
        let first_load = self.engine().is_empty();
        let changed: Vec<&lists::LoadedList> = loaded.iter().filter(|l| l.changed()).collect();
        if !full && !first_load && changed.is_empty() {
            return Ok(Vec::new());
        }
        let engine = Arc::new(Engine::build(
            loaded.iter().map(|l| &l.snapshot),
            self.section.threshold,
        ));
        *self.engine.write().unwrap_or_else(|p| p.into_inner()) = engine.clone();
        let mut results = Vec::new();
        if full {
            results.extend(self.rescreen_parties(&engine)?);
            self.rescreens_done.fetch_add(1, Ordering::SeqCst);
        } else if !changed.is_empty() {
            let touched = lists::touched_entries(&changed);
            let partial = Engine::build_from_entries(touched, self.section.threshold);
            results.extend(self.rescreen_parties(&partial)?);
            results.extend(self.recheck_open_cases(&engine)?);
        }
        for l in &loaded {
            if l.changed() {
                self.store
                    .put_list(&l.version(), &serde_json::to_string(&l.snapshot)?)?;
                tracing::info!(
                    event = "list_loaded",
                    list = %l.snapshot.list,
                    version = %l.snapshot.version,
                    entries = l.snapshot.entries.len(),
                    problems = l.snapshot.problems.len(),
                    first_load,
                    "sanctions list loaded"
                );
            }
            telemetry::list_loaded(&l.snapshot.list, l.snapshot.entries.len());
        }
        self.report_list_versions(&loaded);
        Ok(results)
    }

    /// Screens every stored party with `engine`; opens cases for new hits.
    fn rescreen_parties(&self, engine: &Engine) -> anyhow::Result<Vec<OutMessage>> {
        let mut results = Vec::new();
        let parties = self.store.all_screened()?;
        let total = parties.len();
        for (i, p) in parties.into_iter().enumerate() {
            let (source, key, version, hash) = (p.source, p.party_key, p.version, p.subject_hash);
            if i > 0 && i % 10_000 == 0 {
                tracing::info!(
                    event = "rescreen_progress",
                    done = i,
                    total,
                    "re-screening parties"
                );
            }
            let subject: compliance::Subject = serde_json::from_str(&p.subject)?;
            let hits = engine.screen(&subject);
            if hits.is_empty() {
                continue;
            }
            let marks = self.store.marks(&source, &key)?;
            if let verdict::Verdict::Potential(hits) | verdict::Verdict::Confirmed(hits) =
                verdict::decide(hits, &marks, &hash)
            {
                let hits_json = serde_json::to_value(&hits)?;
                let (case, changed) = self
                    .store
                    .hold_without_envelope(&source, &key, version, &hash, &hits_json)?;
                if changed {
                    telemetry::screened(&source, "potential");
                    results.push(self.result(
                        &source,
                        &key,
                        version,
                        "potential",
                        Some(case),
                        &hits,
                        0,
                    )?);
                }
            }
        }
        Ok(results)
    }

    /// Open potential cases whose hits no longer stand (their entries left the lists) are
    /// cleared and their held party released.
    fn recheck_open_cases(&self, engine: &Engine) -> anyhow::Result<Vec<OutMessage>> {
        let mut results = Vec::new();
        for case in self
            .store
            .cases(Some(store::CaseStatus::Potential), u32::MAX)?
        {
            let Some(subject) = self.store.screened_subject(&case.source, &case.party_key)? else {
                continue;
            };
            let hits = engine.screen(&subject);
            let marks = self.store.marks(&case.source, &case.party_key)?;
            if let verdict::Verdict::Clear { suppressed } =
                verdict::decide(hits, &marks, &case.subject_hash)
            {
                self.store.clear_open_case(&case.source, &case.party_key)?;
                results.push(self.result(
                    &case.source,
                    &case.party_key,
                    case.version,
                    "cleared",
                    Some(case.id),
                    &[],
                    suppressed,
                )?);
            }
        }
        Ok(results)
    }

    /// Runs a transaction through the 115-FZ rules; alerts go to `results`. Returns whether
    /// the monitor's state changed.
    pub fn monitor_transaction(
        &self,
        env: &Envelope,
        tx: &Transaction,
        results: &mut Vec<OutMessage>,
    ) -> anyhow::Result<bool> {
        let profile: Option<PartyProfile> =
            match self.store.profile_of_account(&tx.account_source_id)? {
                Some(text) => serde_json::from_str(&text).ok(),
                None => None,
            };
        let eval = {
            let mut m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
            let ctx = TxContext {
                party: profile.as_ref(),
                counterparty_country: tx.counterparty_country.as_deref(),
            };
            m.observe(tx, &ctx)
        };
        if eval.duplicate {
            return Ok(false);
        }
        for alert in eval.alerts {
            let body = serde_json::to_value(&alert)?;
            let rule = alert.rule.as_str().to_string();
            let id = alert.id.clone();
            let stored = StoredAlert {
                id: id.clone(),
                rule: rule.clone(),
                account: tx.account_source_id.clone(),
                body: body.clone(),
                created_at: chrono::Utc::now().to_rfc3339(),
            };
            if self.store.put_alert(&stored)? {
                telemetry::alert_raised(&env.source, &rule);
                results.push(OutMessage {
                    key: tx.account_source_id.clone(),
                    headers: vec![("type".into(), "alert".into())],
                    payload: serde_json::to_vec(&json!({
                        "type": "alert",
                        "id": id,
                        "rule": rule,
                        "source": env.source,
                        "alert": body,
                        "raised_at": stored.created_at,
                    }))?,
                });
            }
        }
        Ok(true)
    }

    /// Keeps what the profile rule needs of a party: segment and birth date (no names).
    pub fn remember_profile(&self, p: &mapping::Party) -> anyhow::Result<()> {
        if p.segment.is_none() && p.birth_date.is_none() {
            return Ok(());
        }
        let profile = PartyProfile {
            party_id: p.source_id.clone(),
            segment: p.segment.clone(),
            birth_date: p.birth_date,
            monthly_turnover_minor: None,
        };
        self.store
            .put_profile(&p.source_id, &serde_json::to_string(&profile)?)?;
        Ok(())
    }

    pub fn save_monitor_state(&self) -> anyhow::Result<()> {
        let state = {
            let m = self.monitor.lock().unwrap_or_else(|p| p.into_inner());
            serde_json::to_string(m.state())?
        };
        self.store.put_monitor_state(&state)?;
        Ok(())
    }

    /// A screening result for `hub.compliance`.
    pub fn result_message(
        &self,
        env: &Envelope,
        status: &str,
        case: Option<i64>,
        hits: &[HitView],
        suppressed: usize,
    ) -> anyhow::Result<OutMessage> {
        self.result(
            &env.source,
            &env.key,
            env.version,
            status,
            case,
            hits,
            suppressed,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub fn result(
        &self,
        source: &str,
        key: &str,
        version: i64,
        status: &str,
        case: Option<i64>,
        hits: &[HitView],
        suppressed: usize,
    ) -> anyhow::Result<OutMessage> {
        let lists: Vec<serde_json::Value> = self
            .engine()
            .versions()
            .iter()
            .map(|(n, v)| json!({"name": n, "version": v}))
            .collect();
        let id = short_hash(&[
            source,
            key,
            &version.to_string(),
            status,
            &case.unwrap_or(0).to_string(),
        ]);
        Ok(OutMessage {
            key: format!("{source}:{key}"),
            headers: vec![("type".into(), "screening".into())],
            payload: serde_json::to_vec(&json!({
                "type": "screening",
                "id": id,
                "source": source,
                "party_key": key,
                "version": version,
                "status": status,
                "case_id": case,
                "hits": hits,
                "suppressed_false_positives": suppressed,
                "lists": lists,
                "screened_at": chrono::Utc::now().to_rfc3339(),
            }))?,
        })
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..12])
}
