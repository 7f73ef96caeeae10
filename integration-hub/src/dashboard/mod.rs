//! The dashboard page the hub serves at `/dashboard`: pipelines and their state, lag and
//! throughput over time, errors, dead letters, compliance cases, Kafka consumer lag and the
//! last reconciliation (docs/dashboard.md).
//!
//! Contract: every figure the page shows is read from the same Prometheus text `/metrics`
//! serves, rendered at the moment `/api/dashboard` is asked, and sent as-is (series by
//! series); the page only adds up series that match a label selector, and names that
//! selector in the figure's `data-metric` attribute. So a figure equals `/metrics` by
//! construction, and a metric the hub does not export is shown as "—" rather than 0 (the
//! page depends on names, not on which metrics exist). The page, its script and its style
//! are compiled into the binary (no CDN, nothing fetched from elsewhere).
//!
//! Access: no token. The page shows counts and the names and kinds of the configured
//! sources and sinks, the same class of data as `/metrics`, which is served without a token
//! on the same listener; personal data, URLs and credentials never reach it.

pub mod history;
pub mod pipelines;
pub mod prom;

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;

use crate::api_doc::{Access, Documented, Endpoint, described};
use crate::auth::Role;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::Config;
use crate::http::json_error;
use history::History;
use pipelines::Layout;

/// How often the history is sampled and the page refreshes.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept: one hour at [`SAMPLE_EVERY`].
pub const HISTORY_CAPACITY: usize = 720;

const PAGE: &str = include_str!("assets/dashboard.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// Everything the page shows may come only from this hub: no inline script, no other origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Renders the Prometheus text `/metrics` serves; `None` when no recorder is installed.
pub type Render = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// The dashboard's state: the pipeline layout, the history and where metrics come from.
pub struct Dashboard {
    layout: Layout,
    render: Render,
    history: Mutex<History>,
    every: Duration,
}

impl Dashboard {
    /// A dashboard for `config`, sampling `render` every `every` into `capacity` samples.
    pub fn new(config: &Config, render: Render, every: Duration, capacity: usize) -> Arc<Self> {
        Arc::new(Dashboard {
            layout: Layout::of(config),
            render,
            history: Mutex::new(History::new(capacity)),
            every,
        })
    }

    /// Takes one sample into the history now. A failed render or parse is logged and
    /// skipped: a gap in the chart, not a stopped sampler.
    pub fn sample(&self) {
        let Some(text) = (self.render)() else {
            tracing::warn!(
                event = "dashboard_sample_failed",
                reason = "no metrics recorder"
            );
            return;
        };
        match prom::parse(&text) {
            Ok(series) => {
                if let Ok(mut h) = self.history.lock() {
                    h.record(unix_now(), &series);
                }
            }
            Err(e) => tracing::warn!(event = "dashboard_sample_failed", reason = %e),
        }
    }

    /// Samples every `every` on the current Tokio runtime until the dashboard is dropped.
    /// Without a runtime (never the case inside `hub run`) there is no history, only the
    /// figures of the moment.
    pub fn spawn_sampler(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                event = "dashboard_sampler_not_started",
                "no async runtime: the dashboard keeps no history"
            );
            return;
        };
        let weak: Weak<Dashboard> = Arc::downgrade(self);
        let every = self.every;
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // The dashboard is gone (its router was dropped): stop sampling.
                let Some(d) = weak.upgrade() else { return };
                d.sample();
            }
        });
    }

    /// The JSON `/api/dashboard` answers.
    fn snapshot(&self) -> Result<Value, (StatusCode, String)> {
        let text = (self.render)().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable".to_string(),
        ))?;
        let series = prom::parse(&text).map_err(|e| {
            tracing::error!(event = "dashboard_metrics_unreadable", reason = %e);
            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        })?;
        let now = unix_now();
        let history = self.history.lock().map_err(|_| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "dashboard history unavailable".to_string(),
            )
        })?;
        let pipelines = self.layout.view(&series, &history, now);
        Ok(json!({
            "generated_at": now,
            "refresh_secs": self.every.as_secs_f64(),
            "pipelines": pipelines,
            "series": series.iter().map(|s| json!({
                "name": s.name,
                "labels": s.labels,
                "value": number(s.value),
            })).collect::<Vec<_>>(),
            "history": {
                "interval_secs": self.every.as_secs_f64(),
                "capacity": history.capacity(),
                "points": history.points(),
            },
        }))
    }
}

/// A finite value as a JSON number; `NaN`, `+Inf`, `-Inf` as the strings `/metrics` uses
/// (JSON has no such numbers).
fn number(v: f64) -> Value {
    if v.is_finite() {
        json!(v)
    } else if v.is_nan() {
        json!("NaN")
    } else if v > 0.0 {
        json!("+Inf")
    } else {
        json!("-Inf")
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `/dashboard` (the page and its script and style) and `/api/dashboard` (its JSON), for a
/// hub running `config`; starts sampling the history.
pub fn router(config: &Config, render: Render) -> Router {
    let d = Dashboard::new(config, render, SAMPLE_EVERY, HISTORY_CAPACITY);
    d.sample();
    d.spawn_sampler();
    routes(d)
}

/// The routes over an existing dashboard (tests drive its sampling themselves).
pub fn routes(d: Arc<Dashboard>) -> Router {
    api_routes().into_router().with_state(d)
}

/// The endpoints of [`routes`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api_routes().endpoints().to_vec()
}

fn api_routes() -> Documented<Arc<Dashboard>> {
    Documented::default()
        .route(&PAGE_EP, || async {
            asset("text/html; charset=utf-8", PAGE)
        })
        .route(&SCRIPT_EP, || async {
            asset("text/javascript; charset=utf-8", SCRIPT)
        })
        .route(&STYLE_EP, || async {
            asset("text/css; charset=utf-8", STYLE)
        })
        .route(&API_EP, api)
        .route(&PIPELINES_EP, pipelines)
}

static PIPELINES_EP: Endpoint = Endpoint {
    method: "get",
    path: "/api/pipelines",
    tag: "operations",
    summary: "Sources, stages and sinks with their state (running, restarting, circuit open)",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        described(
            "{stages: [...], sources: [{name, kind, entity, state}], sinks: [{name, kind, sources, entities, state}]}",
        )
    }),
    errors: &[],
};

async fn pipelines(State(d): State<Arc<Dashboard>>) -> Response {
    match d.snapshot() {
        Ok(v) => axum::Json(v["pipelines"].clone()).into_response(),
        Err((status, message)) => json_error(status, &message),
    }
}

/// Public like `/metrics`: the page shows counts and pipeline names only (docs/dashboard.md).
const fn public(path: &'static str, summary: &'static str, json: bool) -> Endpoint {
    Endpoint {
        method: "get",
        path,
        tag: "operations",
        summary,
        access: Access::Public,
        personal_data: false,
        query: &[],
        body: None,
        answer: if json {
            Some(|| described("pipelines with their state, figures keyed by metric, lag history"))
        } else {
            None
        },
        errors: &[],
    }
}

static PAGE_EP: Endpoint = public("/dashboard", "The dashboard page (assets embedded)", false);
static SCRIPT_EP: Endpoint = public("/dashboard/dashboard.js", "The dashboard's script", false);
static STYLE_EP: Endpoint = public("/dashboard/dashboard.css", "The dashboard's style", false);
static API_EP: Endpoint = public(
    "/api/dashboard",
    "The dashboard's figures: pipelines, counts from /metrics, lag over time",
    true,
);

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn api(State(d): State<Arc<Dashboard>>) -> Response {
    match d.snapshot() {
        Ok(v) => ([(header::CACHE_CONTROL, "no-store")], axum::Json(v)).into_response(),
        Err((status, message)) => json_error(status, &message),
    }
}

#[cfg(test)]
mod tests;
