//! The compliance API: cases with their explained hits, officers' decisions, 115-FZ alerts,
//! list versions and re-screening. Every route needs the compliance bearer token
//! (`[compliance] api_token`); without a configured token the API is not mounted.
//!
//! A decision is durable when the call returns: a false positive releases the held party to
//! the CRM through the screening stage (within its next poll), a confirmation keeps it held.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Screening;
use super::store::{CaseStatus, Mark};
use crate::http::{guarded, json_error};

#[derive(Clone)]
struct Api {
    screening: Arc<Screening>,
}

/// The routes under `/api/compliance`, guarded by `token`.
pub fn router(screening: Arc<Screening>, token: String) -> Router {
    let api = Api { screening };
    let routes = Router::new()
        .route("/api/compliance/summary", get(summary))
        .route("/api/compliance/cases", get(cases))
        .route("/api/compliance/cases/{id}", get(case))
        .route("/api/compliance/cases/{id}/decision", post(decide))
        .route("/api/compliance/alerts", get(alerts))
        .route("/api/compliance/lists", get(lists))
        .route("/api/compliance/rescreen", post(rescreen));
    guarded(routes, token, "compliance").with_state(api)
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "compliance api failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the hub log",
    )
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

async fn summary(State(api): State<Api>) -> Response {
    let store = api.screening.store.clone();
    let counts = match blocking(move || store.case_counts()).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let by_status: serde_json::Map<String, serde_json::Value> =
        counts.into_iter().map(|(s, n)| (s, json!(n))).collect();
    Json(json!({
        "cases": by_status,
        "lists": api.screening.engine().versions(),
        "threshold": api.screening.engine().threshold(),
        "full_rescreens_done": api.screening.rescreens_done(),
    }))
    .into_response()
}

#[derive(Deserialize)]
struct CasesQuery {
    status: Option<String>,
    limit: Option<u32>,
}

async fn cases(State(api): State<Api>, Query(q): Query<CasesQuery>) -> Response {
    let status = match q.status.as_deref().map(CaseStatus::parse) {
        None => None,
        Some(Some(s)) => Some(s),
        Some(None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "status must be one of potential, confirmed, false_positive, cleared",
            );
        }
    };
    let limit = q.limit.unwrap_or(100).min(1000);
    let store = api.screening.store.clone();
    match blocking(move || store.cases(status, limit)).await {
        Ok(c) => Json(json!({ "cases": c })).into_response(),
        Err(r) => r,
    }
}

async fn case(State(api): State<Api>, Path(id): Path<i64>) -> Response {
    let store = api.screening.store.clone();
    match blocking(move || store.case(id)).await {
        Ok(Some(c)) => Json(c).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such case"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    decision: Mark,
    /// Who decided: kept with the decision.
    officer: String,
    comment: Option<String>,
}

async fn decide(
    State(api): State<Api>,
    Path(id): Path<i64>,
    body: Option<Json<Decision>>,
) -> Response {
    let Some(Json(d)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"decision\": \"false_positive\"|\"confirmed\", \"officer\": \"...\", \"comment\": \"...\"}",
        );
    };
    if d.officer.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "officer must not be empty");
    }
    let store = api.screening.store.clone();
    let current = match blocking(move || store.case(id)).await {
        Ok(Some(c)) => c,
        Ok(None) => return json_error(StatusCode::NOT_FOUND, "no such case"),
        Err(r) => return r,
    };
    if !current.status.holds() {
        return json_error(
            StatusCode::CONFLICT,
            &format!(
                "case {id} is {} and takes no decision",
                current.status.as_str()
            ),
        );
    }
    let store = api.screening.store.clone();
    let officer = d.officer.clone();
    let comment = d.comment.clone();
    match blocking(move || store.decide(id, d.decision, &officer, comment.as_deref())).await {
        Ok(Some(c)) => {
            tracing::info!(
                event = "compliance_decision",
                case = id,
                decision = c.status.as_str(),
                "compliance decision recorded"
            );
            crate::telemetry::compliance_decision(c.status.as_str());
            Json(c).into_response()
        }
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such case"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct LimitQuery {
    limit: Option<u32>,
}

async fn alerts(State(api): State<Api>, Query(q): Query<LimitQuery>) -> Response {
    let store = api.screening.store.clone();
    let limit = q.limit.unwrap_or(100).min(1000);
    match blocking(move || store.alerts(limit)).await {
        Ok(a) => Json(json!({ "alerts": a })).into_response(),
        Err(r) => r,
    }
}

async fn lists(State(api): State<Api>) -> Response {
    let store = api.screening.store.clone();
    match blocking(move || store.list_versions()).await {
        Ok(l) => Json(json!({ "lists": l })).into_response(),
        Err(r) => r,
    }
}

async fn rescreen(State(api): State<Api>) -> Response {
    api.screening.request_rescreen();
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "every party will be screened again at the stage's next turn" })),
    )
        .into_response()
}
