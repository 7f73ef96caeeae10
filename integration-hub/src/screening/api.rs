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
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::Screening;
use super::store::{CaseStatus, Mark};
use crate::api_doc::{Access, Documented, Endpoint, array, described, object, ty};
use crate::auth::{Auth, Principal, Role, protect};
use crate::http::json_error;

#[derive(Clone)]
struct Api {
    screening: Arc<Screening>,
}

/// The routes under `/api/compliance`, for callers the hub's [`crate::auth`] layer admits.
pub fn routes(screening: Arc<Screening>) -> Router {
    api().into_router().with_state(Api { screening })
}

/// [`routes`] behind one compliance bearer token (tests, and configs without `[auth]`).
pub fn router(screening: Arc<Screening>, token: String) -> Router {
    let auth = Auth::default().with_token(&token, "compliance-token", &[Role::Compliance]);
    protect(routes(screening), Arc::new(auth))
}

/// The endpoints of [`router`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Api> {
    Documented::default()
        .route(&SUMMARY, summary)
        .route(&CASES, cases)
        .route(&CASE, case)
        .route(&DECIDE, decide)
        .route(&ALERTS, alerts)
        .route(&LISTS, lists)
        .route(&RESCREEN, rescreen)
}

const TAG: &str = "compliance";

static SUMMARY: Endpoint = Endpoint {
    method: "get",
    path: "/api/compliance/summary",
    tag: TAG,
    summary: "Case counts by status, list versions, the hit threshold and full re-screens done",
    access: Access::Roles(&[Role::Compliance, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        object(&[
            ("cases", described("count per case status")),
            (
                "lists",
                array(described("a loaded list: name, version, entries")),
            ),
            ("threshold", ty("number")),
            ("full_rescreens_done", ty("integer")),
        ])
    }),
    errors: &[],
};

static CASES: Endpoint = Endpoint {
    method: "get",
    path: "/api/compliance/cases",
    tag: TAG,
    summary: "Screening cases with their explained hits, newest first",
    access: Access::Roles(&[Role::Compliance, Role::Auditor]),
    personal_data: true,
    query: &[
        ("status", "string", "open, false_positive or confirmed"),
        ("limit", "integer", "at most this many"),
    ],
    body: None,
    answer: Some(|| object(&[("cases", array(described("a case with its hits")))])),
    errors: &[(400, "unknown status")],
};

static CASE: Endpoint = Endpoint {
    method: "get",
    path: "/api/compliance/cases/{id}",
    tag: TAG,
    summary: "One case with its hits and how each was scored",
    access: Access::Roles(&[Role::Compliance, Role::Auditor]),
    personal_data: true,
    query: &[],
    body: None,
    answer: Some(|| described("a case with its hits")),
    errors: &[(404, "no such case")],
};

static DECIDE: Endpoint = Endpoint {
    method: "post",
    path: "/api/compliance/cases/{id}/decision",
    tag: TAG,
    summary: "An officer's decision: false_positive releases the party to the CRM, confirmed keeps it held",
    access: Access::Roles(&[Role::Compliance]),
    personal_data: false,
    query: &[],
    body: Some(|| {
        let mut o = object(&[
            (
                "decision",
                json!({ "enum": ["false_positive", "confirmed"] }),
            ),
            ("officer", ty("string")),
        ]);
        o["properties"]["comment"] = ty("string");
        o
    }),
    answer: Some(|| described("the decided case")),
    errors: &[
        (400, "body missing or officer empty"),
        (404, "no such case"),
        (409, "the case was decided already"),
    ],
};

static ALERTS: Endpoint = Endpoint {
    method: "get",
    path: "/api/compliance/alerts",
    tag: TAG,
    summary: "115-FZ transaction-monitoring alerts, newest first",
    access: Access::Roles(&[Role::Compliance, Role::Auditor]),
    personal_data: false,
    query: &[("limit", "integer", "at most this many")],
    body: None,
    answer: Some(|| {
        object(&[(
            "alerts",
            array(described("an alert: rule, account, amounts, reason")),
        )])
    }),
    errors: &[],
};

static LISTS: Endpoint = Endpoint {
    method: "get",
    path: "/api/compliance/lists",
    tag: TAG,
    summary: "The sanctions and PEP lists loaded, with versions and entry counts",
    access: Access::Roles(&[Role::Compliance, Role::Auditor]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        object(&[(
            "lists",
            array(described("name, version, entries, loaded at")),
        )])
    }),
    errors: &[],
};

static RESCREEN: Endpoint = Endpoint {
    method: "post",
    path: "/api/compliance/rescreen",
    tag: TAG,
    summary: "Screen every stored party again at the stage's next turn (202)",
    access: Access::Roles(&[Role::Compliance]),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| object(&[("status", ty("string"))])),
    errors: &[],
};

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
    principal: Option<Extension<Principal>>,
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
            crate::audit::decision(
                principal.as_deref(),
                "compliance_decision",
                &format!("case {id}"),
                c.status.as_str(),
                &format!("officer {}", d.officer),
            );
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
