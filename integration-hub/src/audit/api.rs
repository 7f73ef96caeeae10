//! `/api/audit`: the audit log for auditors and admins — entries after a sequence number,
//! and a verification of the whole chain.

use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::io::{BufRead, BufReader};

use super::{Entry, global};
use crate::api_doc::{Access, Documented, Endpoint, array, described, object, ty};
use crate::auth::Role;
use crate::http::json_error;

const MAX_LIMIT: usize = 1000;

/// The routes of the audit log (no state: they read the process's log).
pub fn routes() -> Router {
    api().into_router()
}

pub fn endpoints() -> Vec<&'static Endpoint> {
    api().endpoints().to_vec()
}

fn api() -> Documented<()> {
    Documented::default()
        .route(&ENTRIES, entries)
        .route(&VERIFY, verify)
}

const READERS: &[Role] = &[Role::Auditor, Role::Admin];

static ENTRIES: Endpoint = Endpoint {
    method: "get",
    path: "/api/audit",
    tag: "audit",
    summary: "Audit entries after a sequence number, oldest first",
    access: Access::Roles(READERS),
    personal_data: false,
    query: &[
        (
            "after",
            "integer",
            "entries with a greater sequence number (default 0)",
        ),
        (
            "limit",
            "integer",
            "at most this many (default 100, at most 1,000)",
        ),
    ],
    body: None,
    answer: Some(|| {
        object(&[(
            "entries",
            array(described(
                "seq, at, actor, action, target, outcome, detail, prev, hash",
            )),
        )])
    }),
    errors: &[(503, "no audit log in this process")],
};

static VERIFY: Endpoint = Endpoint {
    method: "get",
    path: "/api/audit/verify",
    tag: "audit",
    summary: "Verify the whole hash chain; every edited, reordered or deleted entry is named",
    access: Access::Roles(READERS),
    personal_data: false,
    query: &[],
    body: None,
    answer: Some(|| {
        object(&[
            ("intact", ty("boolean")),
            ("entries", ty("integer")),
            ("last_seq", ty("integer")),
            ("problems", array(ty("string"))),
        ])
    }),
    errors: &[(503, "no audit log in this process")],
};

#[derive(Deserialize)]
struct EntriesQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn entries(Query(q): Query<EntriesQuery>) -> Response {
    let Some(log) = global() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no audit log in this process",
        );
    };
    let path = log.path().to_path_buf();
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(100).min(MAX_LIMIT);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<Entry>> {
        let f = std::fs::File::open(&path)?;
        let mut out = Vec::new();
        for line in BufReader::new(f).lines() {
            let line = line?;
            if let Ok(e) = serde_json::from_str::<Entry>(&line)
                && e.seq > after
            {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    })
    .await;
    match read {
        Ok(Ok(v)) => Json(json!({ "entries": v })).into_response(),
        _ => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the audit log",
        ),
    }
}

async fn verify() -> Response {
    let Some(log) = global() else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no audit log in this process",
        );
    };
    let (path, chain) = (log.path().to_path_buf(), log.chain.clone());
    match tokio::task::spawn_blocking(move || super::verify::verify(&path, &chain)).await {
        Ok(Ok(r)) => Json(json!({
            "intact": r.intact(),
            "entries": r.entries,
            "last_seq": r.last_seq,
            "problems": r.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        }))
        .into_response(),
        _ => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the audit log",
        ),
    }
}
