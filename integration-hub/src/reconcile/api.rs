//! The reconciliation API (roles through [`crate::auth`]):
//!
//! - `GET /api/reconcile/runs`: `{running, runs}`: the run in progress (or `null`) and the
//!   stored runs newest first, with counts but without id lists.
//! - `GET /api/reconcile/runs/{id}`: one stored run with its ids (missing, extra,
//!   different with field names, read failures); a run still in progress answers
//!   `{id, status: "running", ...}`.
//! - `POST /api/reconcile/runs`: starts a run of `[reconcile]` now: `202 {id}`; `409` while
//!   one runs, `400` without a `[reconcile]` section.
//!
//! Ids and field names only, never a value of a record.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;

use super::runs::{Reconciler, StartError, Trigger};
use crate::api_doc::{Access, Documented, Endpoint, described};
use crate::auth::Role;
use crate::http::json_error;

/// The routes under `/api/reconcile`, for callers the hub's [`crate::auth`] layer admits.
pub fn routes(reconciler: Arc<Reconciler>) -> Router {
    api().into_router().with_state(reconciler)
}

/// The endpoints of [`routes`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Arc<Reconciler>> {
    Documented::default()
        .route(&LIST, list)
        .route(&SHOW, show)
        .route(&START, start)
}

const TAG: &str = "reconciliation";

static LIST: Endpoint = Endpoint {
    method: "get",
    path: "/api/reconcile/runs",
    tag: TAG,
    summary: "The reconciliation in progress and the stored runs, newest first, with counts",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        described(
            "{running: {id, trigger, started_at} | null, runs: [{id, outcome, report: {counts, ...}}]}",
        )
    }),
    errors: &[(500, "the stored runs cannot be read")],
};

static SHOW: Endpoint = Endpoint {
    method: "get",
    path: "/api/reconcile/runs/{id}",
    tag: TAG,
    summary: "One reconciliation with the ids of the missing, extra and different records (field names, never values)",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        described(
            "{id, trigger, outcome, error?, report: {counts, missing, extra, different: [{id, fields}], failures}}",
        )
    }),
    errors: &[(404, "no such run"), (500, "the run cannot be read")],
};

static START: Endpoint = Endpoint {
    method: "post",
    path: "/api/reconcile/runs",
    tag: TAG,
    summary: "Start a reconciliation of the [reconcile] source and sink now",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| described("{id}: the run started (202)")),
    errors: &[
        (400, "no [reconcile] section in the config"),
        (409, "a reconciliation is running"),
    ],
};

fn internal(e: &anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "reconcile api failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the hub log",
    )
}

async fn list(State(r): State<Arc<Reconciler>>) -> Response {
    let running = r.running();
    let rr = r.clone();
    match tokio::task::spawn_blocking(move || rr.summaries()).await {
        Ok(Ok(runs)) => Json(json!({ "running": running, "runs": runs })).into_response(),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&anyhow::anyhow!("the reading task failed: {e}")),
    }
}

async fn show(State(r): State<Arc<Reconciler>>, Path(id): Path<String>) -> Response {
    if let Some(running) = r.running().filter(|run| run.id == id) {
        return Json(json!({
            "id": running.id,
            "status": "running",
            "trigger": running.trigger,
            "started_at": running.started_at,
        }))
        .into_response();
    }
    let rr = r.clone();
    let wanted = id.clone();
    match tokio::task::spawn_blocking(move || rr.get(&wanted)).await {
        Ok(Ok(Some(run))) => Json(run).into_response(),
        Ok(Ok(None)) => json_error(StatusCode::NOT_FOUND, &format!("no reconciliation {id}")),
        Ok(Err(e)) => internal(&e),
        Err(e) => internal(&anyhow::anyhow!("the reading task failed: {e}")),
    }
}

async fn start(State(r): State<Arc<Reconciler>>) -> Response {
    match r.start(Trigger::Api) {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "id": id }))).into_response(),
        Err(e @ StartError::Running(_)) => json_error(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ StartError::NotConfigured) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
    }
}
