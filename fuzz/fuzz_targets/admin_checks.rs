//! What the admin APIs must hold for any JSON body, shared by the `admin_json` cargo-fuzz
//! target and the stable seeded-mutation test (`tests/tests/admin_json_mutation.rs`, which
//! includes this file).
//!
//! The bodies are sent through the hub's own router (`AppState::of_hub`, the one `hub run`
//! serves) with `tower::ServiceExt::oneshot`: authentication, axum's JSON extractor, the
//! private body structs of the handlers and the handlers themselves, on a hub with an
//! embedded bus, a compliance store and a golden-record store in a temporary folder.
//!
//! Input layout: `<route><shape><body>`. `route` picks one of [`ROUTES`]; `shape` picks the
//! content type (low 3 bits) and the id put into the path (high bits).
//!
//! Checks: the hub never panics and never answers `5xx` to a body, whatever it holds; a
//! refusal is a `4xx`; every answer is bounded in size.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use integration_hub::http::AppState;
use integration_hub::pipeline::Ctx;
use tower::ServiceExt;

/// The admin token of the test hub (`[http] admin_token`: DLQ and data-steward routes).
pub const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789";
/// The compliance officers' token (`[compliance] api_token`).
pub const COMPLIANCE_TOKEN: &str = "fuzz-compliance-token-0123456789";

/// A route taking a JSON body: path template (`{id}` replaced), and whose token it needs.
pub struct Route {
    pub path: &'static str,
    pub token: &'static str,
}

/// Every admin route with a JSON body.
pub const ROUTES: &[Route] = &[
    Route {
        path: "/api/dlq/{id}/replay",
        token: ADMIN_TOKEN,
    },
    Route {
        path: "/api/dlq/{id}/discard",
        token: ADMIN_TOKEN,
    },
    Route {
        path: "/api/compliance/cases/{id}/decision",
        token: COMPLIANCE_TOKEN,
    },
    Route {
        path: "/api/mdm/reviews/{id}/decision",
        token: ADMIN_TOKEN,
    },
    Route {
        path: "/api/mdm/merge",
        token: ADMIN_TOKEN,
    },
    Route {
        path: "/api/mdm/golden/{id}/unmerge",
        token: ADMIN_TOKEN,
    },
];

/// Content types a client may send.
const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json; charset=utf-8"),
    None,
    Some("text/plain"),
    Some("application/vnd.api+json"),
    Some("application/json; charset=koi8-r"),
    Some("multipart/form-data"),
    Some("application/json"),
];

/// Ids put into the path: well-formed, out of range, malformed, encoded.
const IDS: &[&str] = &[
    "0-0",
    "1",
    "G0000000000000001",
    "0-18446744073709551616",
    "-1",
    "99999999999999999999",
    "%00",
    "%E2%80%AE",
    "a-b",
    "0--1",
    "G%2F..%2F",
    "%20",
    "0-1",
    "2147483648",
    "G",
    "x",
];

/// Answers larger than this are a finding (a body echoed without bound).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A hub on a temporary folder, serving the admin routes in process.
pub struct AdminHub {
    runtime: tokio::runtime::Runtime,
    router: Router,
    // Kept alive for the router's stores; dropped with the hub.
    _ctx: Ctx,
    _dir: tempfile::TempDir,
}

impl AdminHub {
    /// Opens the hub. Panics when it cannot start: the fuzz run has nothing to test then.
    pub fn start() -> AdminHub {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no tokio runtime: {e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temporary folder: {e}"));
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
        };
        write("admin.token", ADMIN_TOKEN);
        write("compliance.token", COMPLIANCE_TOKEN);
        let config = r#"
[hub]
data_dir = "var"

[http]
admin_token = "file:admin.token"

[compliance]
api_token = "file:compliance.token"

[master_data]

[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:9"
"#;
        let config = integration_hub::config::parse(config, dir.path().to_path_buf())
            .unwrap_or_else(|e| panic!("the fuzz hub config is refused: {e:?}"));
        let stats = Arc::new(integration_hub::telemetry::Stats::default());
        let ctx = runtime
            .block_on(integration_hub::pipeline::open(config, stats))
            .unwrap_or_else(|e| panic!("the fuzz hub does not open: {e:#}"));
        let state = AppState::of_hub(&ctx).unwrap_or_else(|e| panic!("no router: {e:#}"));
        let router = integration_hub::http::app(state);
        AdminHub {
            runtime,
            router,
            _ctx: ctx,
            _dir: dir,
        }
    }

    /// Sends one input (see the module doc) and returns the status and the answer's bytes.
    pub fn send(&self, data: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
        let (&pick, rest) = data.split_first()?;
        let (&shape, body) = rest.split_first()?;
        let route = &ROUTES[usize::from(pick) % ROUTES.len()];
        let id = IDS[usize::from(shape >> 3) % IDS.len()];
        let path = route.path.replace("{id}", id);
        let mut request = Request::post(path.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {}", route.token));
        if let Some(kind) = CONTENT_TYPES[usize::from(shape & 7)] {
            request = request.header(header::CONTENT_TYPE, kind);
        }
        let request = request
            .body(Body::from(body.to_vec()))
            .unwrap_or_else(|e| panic!("request for {path}: {e}"));
        let router = self.router.clone();
        let answer = self.runtime.block_on(async move {
            let response = router
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
                .await
                .unwrap_or_else(|e| panic!("{path}: answer over {MAX_ANSWER_BYTES} bytes: {e}"));
            (status, bytes.to_vec())
        });
        Some(answer)
    }

    /// Runs one input; a panic or a failed assertion is a finding.
    pub fn check(&self, data: &[u8]) {
        let Some((status, answer)) = self.send(data) else {
            return;
        };
        assert!(
            !status.is_server_error(),
            "answered {status} to a body: {}",
            String::from_utf8_lossy(&answer)
        );
        assert!(
            status.is_success() || status.is_client_error(),
            "answered {status}"
        );
    }
}

/// Valid and near-valid bodies to start mutating from, in the input layout of `check`.
// The fuzz target starts from its corpus folder instead.
#[cfg_attr(not(test), allow(dead_code))]
pub fn seeds() -> Vec<Vec<u8>> {
    // (route, shape, body): the shape picks `application/json` and an id of the route's kind
    // (`0-0` a dead letter, `1` a case or review, `G...` a golden record).
    let bodies: [(u8, u8, &str); 9] = [
        (0, 0, r#"{"by": "operator-1", "force": false}"#),
        (0, 0, "{}"),
        (
            1,
            0,
            r#"{"reason": "duplicate of a later record", "by": "operator-1"}"#,
        ),
        (
            2,
            1 << 3,
            r#"{"decision": "false_positive", "officer": "officer-7", "comment": "different birth date"}"#,
        ),
        (
            2,
            1 << 3,
            r#"{"decision": "confirmed", "officer": "officer-7"}"#,
        ),
        (
            3,
            1 << 3,
            r#"{"decision": "merge", "steward": "steward-2"}"#,
        ),
        (
            3,
            1 << 3,
            r#"{"decision": "keep_apart", "steward": "steward-2"}"#,
        ),
        (
            4,
            0,
            r#"{"survivor": "G0000000000000001", "loser": "G0000000000000002", "steward": "steward-2"}"#,
        ),
        (
            5,
            2 << 3,
            r#"{"system": "abs", "source_id": "C-100", "steward": "steward-2"}"#,
        ),
    ];
    bodies
        .iter()
        .map(|(route, shape, body)| {
            let mut input = vec![*route, *shape];
            input.extend_from_slice(body.as_bytes());
            input
        })
        .collect()
}
