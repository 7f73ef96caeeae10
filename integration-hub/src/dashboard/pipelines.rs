//! Which pipelines the hub runs and in what state, for the dashboard: the sources and sinks
//! of the config (names and kinds only: no URLs, paths or credentials), the stages between
//! them, and a state per task read from the metrics (circuit breaker gauge, supervisor
//! restarts).

use serde::Serialize;

use super::history::History;
use super::prom::{self, Series};
use crate::config::{Config, SinkKind, SourceKind};

/// A task that restarted within this many seconds is shown as restarting.
const RESTART_WINDOW_SECS: f64 = 60.0;

/// The shape of the pipelines, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct Layout {
    stages: Vec<&'static str>,
    sources: Vec<(String, &'static str, &'static str)>,
    sinks: Vec<SinkLayout>,
}

#[derive(Debug, Clone)]
struct SinkLayout {
    name: String,
    kind: &'static str,
    sources: Vec<String>,
    entities: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pipelines {
    /// The stages every event passes between the sources and the sinks, in order.
    pub stages: Vec<&'static str>,
    pub sources: Vec<SourceView>,
    pub sinks: Vec<SinkView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceView {
    pub name: String,
    pub kind: &'static str,
    pub entity: &'static str,
    /// `running` or `restarting` (the supervisor restarted it within the last minute).
    pub state: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct SinkView {
    pub name: String,
    pub kind: &'static str,
    /// The sources it takes events from; empty means all.
    pub sources: Vec<String>,
    pub entities: Vec<&'static str>,
    /// `running`, `restarting`, `circuit open` or `circuit half-open`.
    pub state: &'static str,
}

fn source_kind(k: SourceKind) -> &'static str {
    match k {
        SourceKind::FileDrop => "file_drop",
        SourceKind::Soap => "soap",
        SourceKind::RestPoll => "rest_poll",
        SourceKind::Webhook => "webhook",
    }
}

impl Layout {
    pub fn of(config: &Config) -> Layout {
        let mut stages = Vec::new();
        if config.compliance.is_some() {
            stages.push("screening");
        }
        if config.master_data.is_some() {
            stages.push("golden records");
        }
        Layout {
            stages,
            sources: config
                .sources
                .iter()
                .map(|s| (s.name.clone(), source_kind(s.kind), s.entity.as_str()))
                .collect(),
            sinks: config
                .sinks
                .iter()
                .map(|s| SinkLayout {
                    name: s.name.clone(),
                    kind: SinkKind::as_str(s.kind),
                    sources: s.sources.clone(),
                    entities: s.entities.iter().map(|e| e.as_str()).collect(),
                })
                .collect(),
        }
    }

    /// The pipelines with their state at `now`.
    pub fn view(&self, series: &[Series], history: &History, now: f64) -> Pipelines {
        let restarting = |task: &str| history.restarted_within(task, now, RESTART_WINDOW_SECS);
        Pipelines {
            stages: self.stages.clone(),
            sources: self
                .sources
                .iter()
                .map(|(name, kind, entity)| SourceView {
                    name: name.clone(),
                    kind,
                    entity,
                    state: if restarting(&format!("source:{name}")) {
                        "restarting"
                    } else {
                        "running"
                    },
                })
                .collect(),
            sinks: self
                .sinks
                .iter()
                .map(|s| {
                    let circuit = prom::sum(series, "hub_sink_circuit_state", &[("sink", &s.name)]);
                    let state = if restarting(&format!("sink:{}", s.name))
                        || restarting(&format!("sink-retry:{}", s.name))
                    {
                        "restarting"
                    } else if circuit == Some(2.0) {
                        "circuit open"
                    } else if circuit == Some(1.0) {
                        "circuit half-open"
                    } else {
                        "running"
                    };
                    SinkView {
                        name: s.name.clone(),
                        kind: s.kind,
                        sources: s.sources.clone(),
                        entities: s.entities.clone(),
                        state,
                    }
                })
                .collect(),
        }
    }
}
