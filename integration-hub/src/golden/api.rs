//! The data stewards' API: golden records one at a time, their field history, the review
//! queue, merge and unmerge. Every route needs the bearer token `[master_data] api_token`;
//! without one the API is not mounted.
//!
//! There is deliberately no route that lists golden records: a record is read by its golden
//! id or by a source system's id, one at a time, so the API cannot bulk-export the customer
//! base. A decision is durable when the call returns; the golden stage publishes the
//! changed golden records to the CRM within its next poll.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::http::{guarded, json_error};

use super::store::{GoldenStore, ReviewDecision, ReviewStatus, StoreError};

#[derive(Clone)]
struct Api {
    store: Arc<GoldenStore>,
}

/// The routes under `/api/mdm`, guarded by `token`.
pub fn router(store: Arc<GoldenStore>, token: String) -> Router {
    let api = Api { store };
    let routes = Router::new()
        .route("/api/mdm/summary", get(summary))
        .route("/api/mdm/golden/{id}", get(golden))
        .route("/api/mdm/golden/{id}/history", get(history))
        .route("/api/mdm/golden/{id}/unmerge", post(unmerge))
        .route("/api/mdm/xref/{system}/{source_id}", get(xref))
        .route("/api/mdm/merge", post(merge))
        .route("/api/mdm/reviews", get(reviews))
        .route("/api/mdm/reviews/{id}", get(review))
        .route("/api/mdm/reviews/{id}/decision", post(decide));
    guarded(routes, token, "data-steward").with_state(api)
}

/// Runs blocking store work off the async threads and maps store errors to statuses.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::NotFound(m))) => Err(json_error(StatusCode::NOT_FOUND, &m)),
        Ok(Err(StoreError::Conflict(m))) => Err(json_error(StatusCode::CONFLICT, &m)),
        Ok(Err(StoreError::Invalid(m))) => Err(json_error(StatusCode::UNPROCESSABLE_ENTITY, &m)),
        Ok(Err(e)) => Err(internal(e)),
        Err(e) => Err(internal(e)),
    }
}

fn internal(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "data-steward api failed");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the hub log",
    )
}

async fn summary(State(api): State<Api>) -> Response {
    let store = api.store.clone();
    match blocking(move || store.stats()).await {
        Ok(s) => Json(s).into_response(),
        Err(r) => r,
    }
}

async fn golden(State(api): State<Api>, Path(id): Path<String>) -> Response {
    let store = api.store.clone();
    match blocking(move || store.golden(&id)).await {
        Ok(Some(g)) => Json(g).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such golden record"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct HistoryQuery {
    field: Option<String>,
    limit: Option<usize>,
}

async fn history(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let store = api.store.clone();
    let limit = q.limit.unwrap_or(200).min(1000);
    match blocking(move || store.history(&id, q.field.as_deref(), limit)).await {
        Ok(h) => Json(json!({ "history": h })).into_response(),
        Err(r) => r,
    }
}

async fn xref(
    State(api): State<Api>,
    Path((system, source_id)): Path<(String, String)>,
) -> Response {
    let store = api.store.clone();
    match blocking(move || store.golden_by_xref(&system, &source_id)).await {
        Ok(Some(id)) => Json(json!({ "golden_id": id })).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no golden record for this source id"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct ReviewsQuery {
    status: Option<ReviewStatus>,
    limit: Option<usize>,
}

async fn reviews(State(api): State<Api>, Query(q): Query<ReviewsQuery>) -> Response {
    let store = api.store.clone();
    let limit = q.limit.unwrap_or(100).min(1000);
    let status = q.status.or(Some(ReviewStatus::Open));
    match blocking(move || store.reviews(status, limit)).await {
        Ok(r) => Json(json!({ "reviews": r })).into_response(),
        Err(r) => r,
    }
}

async fn review(State(api): State<Api>, Path(id): Path<i64>) -> Response {
    let store = api.store.clone();
    match blocking(move || store.review(id)).await {
        Ok(Some(r)) => Json(r).into_response(),
        Ok(None) => json_error(StatusCode::NOT_FOUND, "no such review"),
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Decision {
    decision: ReviewDecision,
    /// Who decided: kept with the decision and in the field history.
    steward: String,
}

async fn decide(
    State(api): State<Api>,
    Path(id): Path<i64>,
    body: Option<Json<Decision>>,
) -> Response {
    let Some(Json(d)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"decision\": \"merge\"|\"keep_apart\", \"steward\": \"...\"}",
        );
    };
    if d.steward.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "steward must not be empty");
    }
    let store = api.store.clone();
    match blocking(move || store.decide_review(id, d.decision, &d.steward)).await {
        Ok(r) => {
            tracing::info!(
                event = "mdm_review_decided",
                review = id,
                status = ?r.status,
                "review decided"
            );
            Json(r).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    survivor: String,
    loser: String,
    steward: String,
}

async fn merge(State(api): State<Api>, body: Option<Json<MergeBody>>) -> Response {
    let Some(Json(m)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"survivor\": \"G...\", \"loser\": \"G...\", \"steward\": \"...\"}",
        );
    };
    if m.steward.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "steward must not be empty");
    }
    let store = api.store.clone();
    let (survivor, loser) = (m.survivor.clone(), m.loser.clone());
    match blocking(move || store.merge(&m.survivor, &m.loser, &m.steward)).await {
        Ok(()) => {
            tracing::info!(event = "mdm_merged", %survivor, %loser, "golden records merged by a steward");
            Json(json!({ "survivor": survivor, "loser": loser })).into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmergeBody {
    system: String,
    source_id: String,
    steward: String,
}

async fn unmerge(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Option<Json<UnmergeBody>>,
) -> Response {
    let Some(Json(u)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"system\": \"...\", \"source_id\": \"...\", \"steward\": \"...\"}",
        );
    };
    if u.steward.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "steward must not be empty");
    }
    let store = api.store.clone();
    let golden_id = id.clone();
    match blocking(move || store.unmerge(&id, &u.system, &u.source_id, &u.steward)).await {
        Ok(new_id) => {
            tracing::info!(
                event = "mdm_unmerged",
                golden = %golden_id,
                new_golden = %new_id,
                "source record split off into a new golden record"
            );
            Json(json!({ "golden_id": golden_id, "new_golden_id": new_id })).into_response()
        }
        Err(r) => r,
    }
}
