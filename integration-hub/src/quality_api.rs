//! `GET /api/quality`: the data-quality report of `hub quality` (valid contacts, complete
//! mandatory fields, duplicates, pass or fail against the `[quality]` bars) over the files
//! the running hub's file-drop sources hold. Counts and ids only. One report at a time: it
//! reads every file of the sources, which takes seconds for a large export.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::api_doc::{Access, Documented, Endpoint, described};
use crate::auth::Role;
use crate::config::Config;
use crate::http::json_error;
use crate::quality_cli::{QualityArgs, ReportFormat, measure_config};

#[derive(Clone)]
struct Api {
    config: Arc<Config>,
    /// Held while a report is being made.
    busy: Arc<Mutex<()>>,
}

/// The route over the hub's config.
pub fn routes(config: Arc<Config>) -> Router {
    api().into_router().with_state(Api {
        config,
        busy: Arc::new(Mutex::new(())),
    })
}

pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Api> {
    Documented::default().route(&REPORT, report)
}

static REPORT: Endpoint = Endpoint {
    method: "get",
    path: "/api/quality",
    tag: "operations",
    summary: "The data-quality report of the file-drop sources of customers against the [quality] bars",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[
        (
            "source",
            "string",
            "only this source (default: every file-drop source of customers)",
        ),
        (
            "duplicates",
            "boolean",
            "search for duplicates (default true; costs memory)",
        ),
    ],
    body: None,
    answer: Some(|| {
        described(
            "{config, inputs: [{source, files}], skipped, report: {sources: [...], pass}} as `hub quality --format json`",
        )
    }),
    errors: &[
        (409, "a report is being made"),
        (
            422,
            "the sources cannot be measured (no files, not customers); the reason is given",
        ),
    ],
};

#[derive(Deserialize)]
struct Params {
    source: Option<String>,
    duplicates: Option<bool>,
}

async fn report(State(api): State<Api>, Query(p): Query<Params>) -> Response {
    let Ok(_busy) = api.busy.clone().try_lock_owned() else {
        return json_error(StatusCode::CONFLICT, "a quality report is being made");
    };
    let args = QualityArgs {
        config: api.config.base_dir.clone(),
        sources: p.source.into_iter().collect(),
        path: None,
        format: ReportFormat::Json,
        min_valid_contacts: None,
        min_complete: None,
        no_duplicates: p.duplicates == Some(false),
    };
    let config = api.config.clone();
    let measured =
        tokio::task::spawn_blocking(move || measure_config(&config, &args, &mut std::io::sink()))
            .await;
    match measured {
        Ok(Ok(m)) => axum::Json(m).into_response(),
        Ok(Err(e)) => json_error(StatusCode::UNPROCESSABLE_ENTITY, &format!("{e:#}")),
        Err(_) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the quality report failed; see the hub log",
        ),
    }
}
