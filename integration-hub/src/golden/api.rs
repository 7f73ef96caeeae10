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
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::api_doc::{Access, Documented, Endpoint, array, described, object, ty};
use crate::auth::{Auth, Principal, Role, protect};
use crate::http::json_error;

use super::store::{GoldenStore, ReviewDecision, ReviewStatus, StoreError};

#[derive(Clone)]
struct Api {
    store: Arc<GoldenStore>,
}

/// The routes under `/api/mdm`, for callers the hub's [`crate::auth`] layer admits.
pub fn routes(store: Arc<GoldenStore>) -> Router {
    api().into_router().with_state(Api { store })
}

/// [`routes`] behind one data-steward bearer token, which has the admin role (tests, and
/// configs without `[auth]`).
pub fn router(store: Arc<GoldenStore>, token: String) -> Router {
    let auth = Auth::default().with_token(&token, "data-steward-token", &[Role::Admin]);
    protect(routes(store), Arc::new(auth))
}

/// The endpoints of [`router`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Api> {
    Documented::default()
        .route(&SUMMARY, summary)
        .route(&GOLDEN, golden)
        .route(&HISTORY, history)
        .route(&UNMERGE, unmerge)
        .route(&XREF, xref)
        .route(&MERGE, merge)
        .route(&REVIEWS, reviews)
        .route(&REVIEW, review)
        .route(&DECIDE, decide)
}

const TAG: &str = "master data";

static SUMMARY: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/summary",
    tag: TAG,
    summary: "Counts of golden records, source records and open reviews",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| described("counts only")),
    errors: &[],
};

static GOLDEN: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/golden/{id}",
    tag: TAG,
    summary: "One golden record with its cross-references (personal data; one at a time, no listing)",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: true,
    query: &[],
    body: None,
    answer: Some(|| described("golden id, state, the golden party, cross-references, version")),
    errors: &[(404, "no such golden record")],
};

static HISTORY: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/golden/{id}/history",
    tag: TAG,
    summary: "Field-level history of a golden record with provenance (system, event, time, reason)",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: true,
    query: &[
        ("field", "string", "only this field"),
        ("limit", "integer", "at most this many entries"),
    ],
    body: None,
    answer: Some(|| {
        object(&[(
            "history",
            array(described("field, value, system, event, time, reason")),
        )])
    }),
    errors: &[(404, "no such golden record")],
};

static UNMERGE: Endpoint = Endpoint {
    method: "post",
    path: "/api/mdm/golden/{id}/unmerge",
    tag: TAG,
    summary: "Split a source record out of a golden record into a new one, kept apart from now on",
    access: Access::Roles(&[Role::Admin]),
    personal_data: false,
    query: &[],
    body: Some(|| {
        object(&[
            ("system", ty("string")),
            ("source_id", ty("string")),
            ("steward", ty("string")),
        ])
    }),
    answer: Some(|| object(&[("golden_id", ty("string")), ("new_golden_id", ty("string"))])),
    errors: &[
        (400, "body missing or steward empty"),
        (404, "no such golden record or source record"),
        (409, "the record cannot be split"),
    ],
};

static XREF: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/xref/{system}/{source_id}",
    tag: TAG,
    summary: "The golden id of a source system's record",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| object(&[("golden_id", ty("string"))])),
    errors: &[(404, "no golden record for this source id")],
};

static MERGE: Endpoint = Endpoint {
    method: "post",
    path: "/api/mdm/merge",
    tag: TAG,
    summary: "Merge the loser golden record into the survivor",
    access: Access::Roles(&[Role::Admin]),
    personal_data: false,
    query: &[],
    body: Some(|| {
        object(&[
            ("survivor", ty("string")),
            ("loser", ty("string")),
            ("steward", ty("string")),
        ])
    }),
    answer: Some(|| object(&[("survivor", ty("string")), ("loser", ty("string"))])),
    errors: &[
        (400, "body missing or steward empty"),
        (404, "no such golden record"),
        (409, "the records cannot be merged"),
    ],
};

static REVIEWS: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/reviews",
    tag: TAG,
    summary: "Pairs the matcher could not decide alone",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: false,
    query: &[
        ("status", "string", "open, merged or kept_apart"),
        ("limit", "integer", "at most this many"),
    ],
    body: None,
    answer: Some(|| object(&[("reviews", array(described("a review: pair, score, status")))])),
    errors: &[],
};

static REVIEW: Endpoint = Endpoint {
    method: "get",
    path: "/api/mdm/reviews/{id}",
    tag: TAG,
    summary: "One review with the two records' matching evidence",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: true,
    query: &[],
    body: None,
    answer: Some(|| described("a review: pair, score, status")),
    errors: &[(404, "no such review")],
};

static DECIDE: Endpoint = Endpoint {
    method: "post",
    path: "/api/mdm/reviews/{id}/decision",
    tag: TAG,
    summary: "A steward's decision on a review: merge or keep_apart",
    access: Access::Roles(&[Role::Admin]),
    personal_data: false,
    query: &[],
    body: Some(|| {
        object(&[
            ("decision", json!({ "enum": ["merge", "keep_apart"] })),
            ("steward", ty("string")),
        ])
    }),
    answer: Some(|| described("the decided review")),
    errors: &[
        (400, "body missing or steward empty"),
        (404, "no such review"),
        (409, "the review was decided already"),
    ],
};

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
    principal: Option<Extension<Principal>>,
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
    let steward = d.steward.clone();
    match blocking(move || store.decide_review(id, d.decision, &d.steward)).await {
        Ok(r) => {
            tracing::info!(
                event = "mdm_review_decided",
                review = id,
                status = ?r.status,
                "review decided"
            );
            crate::audit::decision(
                principal.as_deref(),
                "mdm_review_decision",
                &format!("review {id}: {} and {}", r.golden_a, r.golden_b),
                r.status.as_str(),
                &format!("steward {steward}"),
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

async fn merge(
    State(api): State<Api>,
    principal: Option<Extension<Principal>>,
    body: Option<Json<MergeBody>>,
) -> Response {
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
    let (survivor, loser, steward) = (m.survivor.clone(), m.loser.clone(), m.steward.clone());
    match blocking(move || store.merge(&m.survivor, &m.loser, &m.steward)).await {
        Ok(()) => {
            tracing::info!(event = "mdm_merged", %survivor, %loser, "golden records merged by a steward");
            crate::audit::decision(
                principal.as_deref(),
                "mdm_merge",
                &survivor,
                "merged",
                &format!("absorbed {loser}; steward {steward}"),
            );
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
    principal: Option<Extension<Principal>>,
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
    let detail = format!(
        "{}:{} split off; steward {}",
        u.system, u.source_id, u.steward
    );
    match blocking(move || store.unmerge(&id, &u.system, &u.source_id, &u.steward)).await {
        Ok(new_id) => {
            crate::audit::decision(
                principal.as_deref(),
                "mdm_unmerge",
                &golden_id,
                &format!("new golden record {new_id}"),
                &detail,
            );
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
