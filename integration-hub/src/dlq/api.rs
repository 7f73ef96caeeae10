//! The admin API for dead letters. Every route needs the bearer token `[http] admin_token`;
//! without one the API is not mounted.
//!
//! - `GET /api/dlq?sink=&status=&limit=`: the oldest `limit` (default 100, at most 1,000)
//!   letters matching, how many matched and the counts per status; never payloads.
//! - `GET /api/dlq/{id}`: one letter with its headers; the payload (personal data) only with
//!   `?payload=true`.
//! - `POST /api/dlq/{id}/replay`, optional body `{"by": "...", "force": false}`: 200 with the
//!   outcome (`replayed`, or `already_replayed`: nothing done); 409 for a discarded letter
//!   unless forced; 404 for an unknown id.
//! - `POST /api/dlq/{id}/discard`, body `{"reason": "...", "by": "..."}`: 200 (`discarded`
//!   or `already_discarded`); 409 for a replayed letter; 404 for an unknown id.
//!
//! Every call reads the DLQ topic (on Kafka, joining a private consumer group first: about a
//! second before the first record).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    DiscardOutcome, Dlq, DlqError, Letter, LetterId, ListQuery, ReplayOptions, ReplayOutcome,
    StatusFilter,
};
use crate::api_doc::{Access, Documented, Endpoint, described, object, ty};
use crate::auth::{Auth, Role, protect};
use crate::http::json_error;

/// Letters a listing returns by default, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Clone)]
struct Api {
    dlq: Arc<Dlq>,
}

/// The routes under `/api/dlq`, for callers the hub's [`crate::auth`] layer admits.
pub fn routes(dlq: Arc<Dlq>) -> Router {
    api().into_router().with_state(Api { dlq })
}

/// [`routes`] behind one admin bearer token (tests, and configs without `[auth]`).
pub fn router(dlq: Arc<Dlq>, token: String) -> Router {
    let auth = Auth::default().with_token(&token, "admin-token", &[Role::Admin]);
    protect(routes(dlq), Arc::new(auth))
}

/// The endpoints of [`router`], for the API document.
pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<Api> {
    Documented::default()
        .route(&LIST, list)
        .route(&SHOW, show)
        .route(&REPLAY, replay)
        .route(&DISCARD, discard)
}

const TAG: &str = "dead letters";

static LIST: Endpoint = Endpoint {
    method: "get",
    path: "/api/dlq",
    tag: TAG,
    summary: "The oldest dead letters matching, how many matched and the counts per status; never payloads",
    access: Access::Roles(&[Role::Operator, Role::Admin, Role::Auditor]),
    personal_data: false,
    query: &[
        ("sink", "string", "only letters of this sink"),
        (
            "status",
            "string",
            "pending, replayed, discarded or all (default pending)",
        ),
        (
            "limit",
            "integer",
            "at most this many (default 100, at most 1,000)",
        ),
    ],
    body: None,
    answer: Some(|| {
        described("{dead_letters: [...], matching, counts: {pending, replayed, discarded}}")
    }),
    errors: &[
        (400, "a parameter is invalid"),
        (503, "the bus did not answer"),
    ],
};

static SHOW: Endpoint = Endpoint {
    method: "get",
    path: "/api/dlq/{id}",
    tag: TAG,
    summary: "One dead letter with its headers; the payload (personal data) only with payload=true",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: true,
    query: &[("payload", "boolean", "include the payload")],
    body: None,
    answer: Some(|| {
        described("the letter: id, origin, error, attempts, failures, status, headers")
    }),
    errors: &[
        (400, "malformed id"),
        (404, "no such letter"),
        (503, "the bus did not answer"),
    ],
};

static REPLAY: Endpoint = Endpoint {
    method: "post",
    path: "/api/dlq/{id}/replay",
    tag: TAG,
    summary: "Publish a dead letter again to its origin topic; a second replay is a no-op unless forced",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: false,
    query: &[],
    body: Some(|| {
        json!({ "type": "object", "properties": {
            "by": { "type": "string" }, "force": { "type": "boolean" } } })
    }),
    answer: Some(|| described("{outcome: replayed | already_replayed, ...}")),
    errors: &[
        (404, "no such letter"),
        (409, "the letter was discarded (use force)"),
        (503, "the bus did not answer"),
    ],
};

static DISCARD: Endpoint = Endpoint {
    method: "post",
    path: "/api/dlq/{id}/discard",
    tag: TAG,
    summary: "Mark a dead letter as discarded, with a reason",
    access: Access::Roles(&[Role::Operator, Role::Admin]),
    personal_data: false,
    query: &[],
    body: Some(|| object(&[("reason", ty("string")), ("by", ty("string"))])),
    answer: Some(|| described("{outcome: discarded | already_discarded, ...}")),
    errors: &[
        (400, "reason or by missing"),
        (404, "no such letter"),
        (409, "the letter was replayed"),
    ],
};

/// The answer for a failed call: the caller's mistakes are explained, internals are logged.
fn failure(e: DlqError) -> Response {
    match e {
        DlqError::BadId(m) | DlqError::Invalid(m) => json_error(StatusCode::BAD_REQUEST, &m),
        DlqError::NotFound(id) => {
            json_error(StatusCode::NOT_FOUND, &format!("no dead letter {id}"))
        }
        DlqError::Bus(_) | DlqError::Incomplete(_) => {
            tracing::error!(error = %e, "dlq api: the bus failed");
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the bus did not answer; see the hub log",
            )
        }
        DlqError::Store(_) => {
            tracing::error!(error = %e, "dlq api failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the hub log",
            )
        }
    }
}

#[derive(Deserialize)]
struct ListParams {
    sink: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
}

async fn list(State(api): State<Api>, Query(p): Query<ListParams>) -> Response {
    let status = match p.status.as_deref().map(StatusFilter::parse) {
        None => StatusFilter::Pending,
        Some(Some(s)) => s,
        Some(None) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "status must be one of pending, replayed, discarded, all",
            );
        }
    };
    let q = ListQuery {
        sink: p.sink.filter(|s| !s.is_empty()),
        status,
        limit: p.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT),
    };
    match api.dlq.list(&q).await {
        Ok(l) => Json(l).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize)]
struct ShowParams {
    #[serde(default)]
    payload: bool,
}

async fn show(
    State(api): State<Api>,
    Path(id): Path<String>,
    Query(p): Query<ShowParams>,
) -> Response {
    let id = match LetterId::parse(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    match api.dlq.get(id).await {
        Ok(letter) => Json(letter_json(&letter, p.payload)).into_response(),
        Err(e) => failure(e),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    by: Option<String>,
    #[serde(default)]
    force: bool,
}

async fn replay(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Option<Json<ReplayBody>>,
) -> Response {
    let id = match LetterId::parse(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let opts = ReplayOptions {
        sink: None,
        force: body.force,
        dry_run: false,
        by: body.by.unwrap_or_else(|| "api".into()),
    };
    let outcome = match api.dlq.replay(&[id], &opts).await {
        Ok(mut o) if o.len() == 1 => o.remove(0),
        Ok(_) => return failure(DlqError::NotFound(id.to_string())),
        Err(e) => return failure(e),
    };
    let status = match &outcome {
        ReplayOutcome::NotFound { .. } => StatusCode::NOT_FOUND,
        ReplayOutcome::Discarded { .. } => StatusCode::CONFLICT,
        ReplayOutcome::Unreplayable { .. } | ReplayOutcome::OtherSink { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::OK,
    };
    (status, Json(outcome)).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    reason: String,
    by: String,
}

async fn discard(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Option<Json<DiscardBody>>,
) -> Response {
    let id = match LetterId::parse(&id) {
        Ok(id) => id,
        Err(e) => return failure(e),
    };
    let Some(Json(body)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "body must be JSON {\"reason\": \"...\", \"by\": \"...\"}",
        );
    };
    let outcome = match api.dlq.discard(&[id], &body.reason, &body.by).await {
        Ok(mut o) if o.len() == 1 => o.remove(0),
        Ok(_) => return failure(DlqError::NotFound(id.to_string())),
        Err(e) => return failure(e),
    };
    let status = match &outcome {
        DiscardOutcome::NotFound { .. } => StatusCode::NOT_FOUND,
        DiscardOutcome::Replayed { .. } => StatusCode::CONFLICT,
        _ => StatusCode::OK,
    };
    (status, Json(outcome)).into_response()
}

/// A letter as JSON: the view and its headers; the payload only when asked for.
pub(crate) fn letter_json(letter: &Letter, with_payload: bool) -> Value {
    let mut v = serde_json::to_value(&letter.view).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        // A list, not an object: a record may carry a header name twice.
        let headers: Vec<Value> = letter
            .headers
            .iter()
            .map(|(k, val)| json!({ "name": k, "value": val }))
            .collect();
        obj.insert("headers".into(), Value::Array(headers));
        if with_payload {
            match serde_json::from_slice::<Value>(&letter.payload) {
                Ok(p) => obj.insert("payload".into(), p),
                Err(_) => obj.insert("payload_text".into(), payload_text(&letter.payload).into()),
            };
        }
    }
    v
}

/// A payload for reading: indented JSON, else the text, else hex (not UTF-8).
pub(crate) fn payload_text(payload: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(payload)
        && let Ok(s) = serde_json::to_string_pretty(&v)
    {
        return s;
    }
    match std::str::from_utf8(payload) {
        Ok(s) => s.to_string(),
        Err(_) => format!("(not UTF-8; hex) {}", hex::encode(payload)),
    }
}
