use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde_json::json;

use super::service::encode_path_segment;
use super::*;

/// What the scripted server answers, in order; once the script is empty it accepts.
#[derive(Debug, Clone)]
enum Reply {
    Status(u16, &'static str),
    RateLimit(u64),
    Delay(Duration),
    Body(u16, &'static str),
}

#[derive(Debug, Clone)]
struct Seen {
    /// `PUT` or `POST` (merge).
    method: &'static str,
    external_id: String,
    authorization: Option<String>,
    idempotency_key: Option<String>,
    body: serde_json::Value,
}

#[derive(Clone, Default)]
struct Script(Arc<Mutex<(VecDeque<Reply>, Vec<Seen>)>>);

impl Script {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        Script(Arc::new(Mutex::new((
            replies.into_iter().collect(),
            Vec::new(),
        ))))
    }
    fn hits(&self) -> usize {
        self.0.lock().unwrap().1.len()
    }
    fn seen(&self) -> Vec<Seen> {
        self.0.lock().unwrap().1.clone()
    }
}

async fn put_contact(
    State(script): State<Script>,
    Path(external_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = seen("PUT", external_id, &headers, &body);
    let version = seen.body["version"].clone();
    let (reply, first_write) = record(&script, seen.clone());
    let status = if first_write {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let accepted = json!({
        "id": format!("crm-{}", seen.external_id.len()),
        "external_id": seen.external_id,
        "version": version,
    });
    answer(reply, status, accepted).await
}

async fn merge_contact(
    State(script): State<Script>,
    Path(survivor): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seen = seen("POST", survivor, &headers, &body);
    let (reply, _) = record(&script, seen.clone());
    let accepted = json!({
        "id": format!("crm-{}", seen.external_id.len()),
        "external_id": seen.external_id,
        "merged": true,
    });
    answer(reply, StatusCode::OK, accepted).await
}

fn seen(method: &'static str, external_id: String, headers: &HeaderMap, body: &[u8]) -> Seen {
    let header = |name: &str| headers.get(name).map(|v| v.to_str().unwrap().to_owned());
    Seen {
        method,
        external_id,
        authorization: header("authorization"),
        idempotency_key: header("idempotency-key"),
        body: serde_json::from_slice(body).unwrap(),
    }
}

/// Records the request; the next scripted reply and whether it is the first request for
/// its external id.
fn record(script: &Script, seen: Seen) -> (Option<Reply>, bool) {
    let mut state = script.0.lock().unwrap();
    let first = !state.1.iter().any(|s| s.external_id == seen.external_id);
    state.1.push(seen);
    (state.0.pop_front(), first)
}

async fn answer(reply: Option<Reply>, status: StatusCode, accepted: serde_json::Value) -> Response {
    match reply {
        Some(Reply::Status(status, code)) => (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(json!({ "error": code, "message": "phone +79991234567 is invalid" })),
        )
            .into_response(),
        Some(Reply::RateLimit(secs)) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", secs.to_string())],
            axum::Json(json!({ "error": "rate_limited", "message": "slow down" })),
        )
            .into_response(),
        Some(Reply::Body(status, body)) => {
            (StatusCode::from_u16(status).unwrap(), body).into_response()
        }
        other => {
            if let Some(Reply::Delay(d)) = other {
                tokio::time::sleep(d).await;
            }
            (status, axum::Json(accepted)).into_response()
        }
    }
}

async fn start(script: Script) -> SocketAddr {
    let app = Router::new()
        .route("/api/contacts/{external_id}", put(put_contact))
        .route("/api/contacts/{external_id}/merge", post(merge_contact))
        .with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn fast_config(addr: SocketAddr) -> CrmRestConfig {
    CrmRestConfig {
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
        timeout_ms: 2_000,
        ..CrmRestConfig::new(format!("http://{addr}/api/"))
    }
}

fn upsert(external_id: &str, version: i64) -> ContactUpsert {
    ContactUpsert {
        external_id: external_id.to_owned(),
        version,
        source: "abs-files".to_owned(),
        envelope_id: format!("env-{version}"),
        fields: json!({ "last_name": "Иванов", "phone": "+79991234567" }),
    }
}

#[tokio::test]
async fn delivers_with_headers_and_encoded_path() {
    let script = Script::new([]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(CrmRestConfig {
        token: Some("s3cret-token".into()),
        ..fast_config(addr)
    })
    .unwrap();
    let id = "C/10 01?ä";
    assert_eq!(
        client.contact_url(id),
        format!("http://{addr}/api/contacts/C%2F10%2001%3F%C3%A4")
    );
    let ack = client.upsert(&upsert(id, 5)).await.unwrap();
    assert_eq!(
        ack,
        CrmAck {
            id: "crm-10".into(),
            external_id: id.into(),
            version: 5,
            created: true
        }
    );
    let ack = client.upsert(&upsert(id, 6)).await.unwrap();
    assert!(!ack.created);

    let seen = script.seen();
    assert_eq!(seen[0].external_id, id);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer s3cret-token")
    );
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("env-5"));
    assert_eq!(
        seen[0].body,
        json!({
            "external_id": id, "version": 5, "source": "abs-files", "envelope_id": "env-5",
            "fields": { "last_name": "Иванов", "phone": "+79991234567" }
        })
    );
}

#[tokio::test]
async fn no_authorization_header_without_token() {
    let script = Script::new([]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    client.upsert(&upsert("A", 1)).await.unwrap();
    assert_eq!(script.seen()[0].authorization, None);
}

#[tokio::test]
async fn retries_503_then_429_honouring_retry_after() {
    let script = Script::new([
        Reply::Status(503, "unavailable"),
        Reply::Status(503, "unavailable"),
        Reply::Status(503, "unavailable"),
        Reply::RateLimit(1),
        Reply::RateLimit(1),
    ]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let started = Instant::now();
    let (ack, attempts) = client.upsert_with_retry(&upsert("A-1", 3)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(attempts, 6);
    assert_eq!(script.hits(), 6);
    assert_eq!((ack.external_id.as_str(), ack.version), ("A-1", 3));
    assert!(
        elapsed >= Duration::from_secs(2),
        "Retry-After honoured twice: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        script
            .seen()
            .iter()
            .all(|s| s.idempotency_key.as_deref() == Some("env-3")),
        "every attempt carries the same idempotency key"
    );
}

#[tokio::test]
async fn one_attempt_reports_rate_limit_as_transient_with_retry_after() {
    let script = Script::new([Reply::RateLimit(7)]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let err = client.upsert(&upsert("A", 1)).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.code(), Some("rate_limited"));
    assert_eq!(
        err.to_string(),
        "crm answered 429 (rate_limited) for envelope env-1: rate limited"
    );
}

#[tokio::test]
async fn unprocessable_is_returned_at_once() {
    let script = Script::new([Reply::Status(422, "validation_failed")]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let err = client.upsert_with_retry(&upsert("A", 1)).await.unwrap_err();
    assert_eq!(script.hits(), 1);
    assert!(!err.is_transient());
    assert_eq!(err.status(), Some(422));
    let text = err.to_string();
    assert_eq!(
        text,
        "crm answered 422 (validation_failed) for envelope env-1 (after 1 attempt)"
    );
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(err.code(), Some("validation_failed"));
    assert!(
        !text.contains("7999"),
        "the CRM's message may echo values and is dropped"
    );
}

#[tokio::test]
async fn permanent_statuses_are_not_retried() {
    for (status, transient) in [
        (400, false),
        (401, false),
        (403, false),
        (404, false),
        (409, false),
        (500, true),
        (502, true),
        (504, true),
    ] {
        let script = Script::new([Reply::Status(status, "x")]);
        let addr = start(script.clone()).await;
        let client = CrmRestClient::new(fast_config(addr)).unwrap();
        let result = client.upsert_with_retry(&upsert("A", 1)).await;
        if transient {
            assert_eq!(result.unwrap().1, 2, "status {status}");
        } else {
            let err = result.unwrap_err();
            assert_eq!((err.status(), err.is_transient()), (Some(status), false));
            assert_eq!(err.is_auth(), matches!(status, 401 | 403));
            assert_eq!(script.hits(), 1, "status {status}");
        }
    }
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let script = Script::new((0..10).map(|_| Reply::Status(503, "unavailable")));
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(CrmRestConfig {
        max_attempts: 3,
        ..fast_config(addr)
    })
    .unwrap();
    let err = client.upsert_with_retry(&upsert("A", 1)).await.unwrap_err();
    assert_eq!(script.hits(), 3);
    assert_eq!(err.attempts(), Some(3));
    assert!(err.to_string().ends_with("(after 3 attempts)"), "{err}");
    assert!(err.is_transient());
    assert_eq!(err.status(), Some(503));
}

#[tokio::test]
async fn timeout_is_transient_and_retried() {
    let script = Script::new([Reply::Delay(Duration::from_secs(3))]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(CrmRestConfig {
        timeout_ms: 300,
        ..fast_config(addr)
    })
    .unwrap();
    let started = Instant::now();
    let (ack, attempts) = client.upsert_with_retry(&upsert("T", 2)).await.unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(ack.version, 2);
    assert!(started.elapsed() < Duration::from_secs(2));

    let script = Script::new([Reply::Delay(Duration::from_secs(3))]);
    let addr = start(script).await;
    let client = CrmRestClient::new(CrmRestConfig {
        timeout_ms: 300,
        ..fast_config(addr)
    })
    .unwrap();
    let err = client.upsert(&upsert("T", 2)).await.unwrap_err();
    assert!(
        matches!(
            err,
            CrmError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
    assert_eq!(err.status(), None);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = CrmRestClient::new(CrmRestConfig {
        max_attempts: 2,
        ..fast_config(addr)
    })
    .unwrap();
    let err = client.upsert_with_retry(&upsert("A", 1)).await.unwrap_err();
    assert_eq!(err.attempts(), Some(2));
    assert!(matches!(err.last(), CrmError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        !err.to_string().contains("/contacts/"),
        "no url in messages: {err}"
    );
}

#[tokio::test]
async fn success_with_an_unusable_body_is_permanent() {
    let script = Script::new([Reply::Body(200, "<html>proxy</html>")]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let err = client.upsert_with_retry(&upsert("A", 1)).await.unwrap_err();
    assert!(
        matches!(err.last(), CrmError::BadResponse { status: 200, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(script.hits(), 1);

    let script = Script::new([Reply::Body(200, r#"{"id": 17}"#)]);
    let addr = start(script).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let err = client.upsert(&upsert("A", 1)).await.unwrap_err();
    assert!(err.to_string().contains("not a contact ack"), "{err}");
}

#[tokio::test]
async fn dot_segments_are_refused_before_sending() {
    let script = Script::new([]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    for id in ["", ".", ".."] {
        let err = client.upsert(&upsert(id, 1)).await.unwrap_err();
        assert!(matches!(err, CrmError::Request { .. }));
    }
    assert_eq!(script.hits(), 0);
}

#[test]
fn config_defaults_validation_and_redaction() {
    let cfg: CrmRestConfig =
        serde_json::from_str(r#"{ "base_url": "https://crm.example/api", "token": "t0k" }"#)
            .unwrap();
    assert_eq!(
        (
            cfg.timeout_ms,
            cfg.max_attempts,
            cfg.initial_backoff_ms,
            cfg.max_backoff_ms
        ),
        (10_000, 8, 200, 30_000)
    );
    assert_eq!(cfg.concurrency, 8);
    cfg.validate().unwrap();
    let debug = format!("{cfg:?}");
    assert!(
        !debug.contains("t0k") && debug.contains("<hidden>"),
        "{debug}"
    );

    let err = serde_json::from_str::<CrmRestConfig>(r#"{ "base_url": "http://x", "retries": 1 }"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown field"));

    for (cfg, field) in [
        (CrmRestConfig::new("crm.local"), "base_url"),
        (CrmRestConfig::new("ftp://crm.local"), "base_url"),
        (CrmRestConfig::new("http://crm.local/?a=1"), "base_url"),
        (
            CrmRestConfig {
                token: Some("tok en".into()),
                ..CrmRestConfig::new("http://h")
            },
            "token",
        ),
        (
            CrmRestConfig {
                max_attempts: 0,
                ..CrmRestConfig::new("http://h")
            },
            "max_attempts",
        ),
        (
            CrmRestConfig {
                timeout_ms: 0,
                ..CrmRestConfig::new("http://h")
            },
            "timeout_ms",
        ),
        (
            CrmRestConfig {
                concurrency: 0,
                ..CrmRestConfig::new("http://h")
            },
            "concurrency",
        ),
        (
            CrmRestConfig {
                initial_backoff_ms: 10,
                max_backoff_ms: 5,
                ..CrmRestConfig::new("http://h")
            },
            "max_backoff_ms",
        ),
    ] {
        let err = CrmRestClient::new(cfg).unwrap_err();
        assert!(err.to_string().contains(&format!("field {field}")), "{err}");
        assert!(!err.to_string().contains("tok en"));
    }
}

#[test]
fn https_client_builds_with_the_ring_provider() {
    let client = CrmRestClient::new(CrmRestConfig::new("https://crm.example/")).unwrap();
    assert_eq!(client.contact_url("x"), "https://crm.example/contacts/x");
}

#[test]
fn upsert_debug_hides_fields() {
    let debug = format!("{:?}", upsert("A", 1));
    assert!(
        !debug.contains("Иванов") && !debug.contains("7999"),
        "{debug}"
    );
    assert!(debug.contains("<2 fields hidden>"), "{debug}");
}

#[test]
fn path_segment_encoding() {
    assert_eq!(encode_path_segment("Az09-._~"), "Az09-._~");
    assert_eq!(encode_path_segment("a b/c%d"), "a%20b%2Fc%25d");
    assert_eq!(encode_path_segment("Ж"), "%D0%96");
}

#[tokio::test]
async fn merge_posts_to_the_encoded_survivor_with_headers_and_body() {
    let script = Script::new([]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(CrmRestConfig {
        token: Some("s3cret-token".into()),
        ..fast_config(addr)
    })
    .unwrap();
    let survivor = "G/01 ä";
    assert_eq!(
        client.merge_url(survivor),
        format!("http://{addr}/api/contacts/G%2F01%20%C3%A4/merge")
    );
    let ack = client
        .merge(survivor, "G0000000002", "env-m1")
        .await
        .unwrap();
    assert_eq!(
        ack,
        MergeAck {
            merged: true,
            id: Some("crm-7".into())
        }
    );
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method, seen[0].external_id.as_str()),
        ("POST", survivor)
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer s3cret-token")
    );
    assert_eq!(seen[0].idempotency_key.as_deref(), Some("env-m1"));
    assert_eq!(
        seen[0].body,
        json!({ "from": "G0000000002", "envelope_id": "env-m1" })
    );
}

#[tokio::test]
async fn merge_retries_503_then_429_honouring_retry_after() {
    let script = Script::new([
        Reply::Status(503, "unavailable"),
        Reply::Status(503, "unavailable"),
        Reply::RateLimit(1),
    ]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let started = Instant::now();
    let (ack, attempts) = client.merge_with_retry("G1", "G2", "env-m").await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!((attempts, script.hits()), (4, 4));
    assert!(ack.merged);
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After honoured: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    assert!(
        script
            .seen()
            .iter()
            .all(|s| s.idempotency_key.as_deref() == Some("env-m") && s.method == "POST"),
        "every attempt is the same merge"
    );
}

#[tokio::test]
async fn merge_gives_up_after_max_attempts_like_upserts() {
    let script = Script::new((0..10).map(|_| Reply::Status(502, "bad_gateway")));
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(CrmRestConfig {
        max_attempts: 3,
        ..fast_config(addr)
    })
    .unwrap();
    let err = client
        .merge_with_retry("G1", "G2", "env-m")
        .await
        .unwrap_err();
    assert_eq!((script.hits(), err.attempts()), (3, Some(3)));
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        "crm answered 502 (bad_gateway) for envelope env-m (after 3 attempts)"
    );
}

#[tokio::test]
async fn merge_conflict_missing_survivor_and_unprocessable_are_permanent() {
    for (status, code) in [(409, "conflict"), (404, "not_found"), (422, "same_contact")] {
        let script = Script::new([Reply::Status(status, code)]);
        let addr = start(script.clone()).await;
        let client = CrmRestClient::new(fast_config(addr)).unwrap();
        let err = client
            .merge_with_retry("G1", "G2", "env-m")
            .await
            .unwrap_err();
        assert_eq!(script.hits(), 1, "status {status}");
        assert_eq!(err.attempts(), Some(1));
        assert!(!err.is_transient() && !err.is_auth() && !err.is_merged());
        assert_eq!((err.status(), err.code()), (Some(status), Some(code)));
        assert!(!err.to_string().contains("7999"), "{err}");
    }
}

#[tokio::test]
async fn merge_acks_without_a_merge_and_unusable_bodies() {
    let script = Script::new([
        Reply::Body(
            200,
            r#"{"id": "crm-7", "external_id": "G1", "merged": false}"#,
        ),
        Reply::Body(200, r#"{"merged": false}"#),
        Reply::Body(200, r#"{"id": "crm-7"}"#),
        Reply::Body(200, r#"{"id": "", "merged": true}"#),
        Reply::Body(200, "<html>proxy</html>"),
    ]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let ack = client.merge("G1", "G2", "env-m").await.unwrap();
    assert_eq!(
        ack,
        MergeAck {
            merged: false,
            id: Some("crm-7".into())
        }
    );
    let ack = client.merge("G1", "G2", "env-m").await.unwrap();
    assert_eq!(
        ack,
        MergeAck {
            merged: false,
            id: None
        }
    );
    for expected in ["not a merge ack", "the contact id is empty", "not json"] {
        let err = client
            .merge_with_retry("G1", "G2", "env-m")
            .await
            .unwrap_err();
        assert!(
            matches!(err.last(), CrmError::BadResponse { status: 200, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(err.attempts(), Some(1));
    }
    assert_eq!(script.hits(), 5);
}

#[tokio::test]
async fn merge_refuses_unusable_ids_before_sending() {
    let script = Script::new([]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    for (survivor, loser) in [
        ("", "G2"),
        (".", "G2"),
        ("..", "G2"),
        ("G1", ""),
        ("G1", "G1"),
    ] {
        let err = client
            .merge_with_retry(survivor, loser, "env-m")
            .await
            .unwrap_err();
        assert!(matches!(err.last(), CrmError::Request { .. }), "{err:?}");
        assert_eq!(err.attempts(), Some(1));
    }
    assert_eq!(script.hits(), 0);
}

#[tokio::test]
async fn upsert_to_a_merged_contact_is_permanent_and_recognised() {
    let script = Script::new([Reply::Status(409, "merged")]);
    let addr = start(script.clone()).await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let err = client
        .upsert_with_retry(&upsert("G2", 4))
        .await
        .unwrap_err();
    assert!(err.is_merged() && !err.is_transient());
    assert_eq!((script.hits(), err.attempts()), (1, Some(1)));
}

/// A contact API that answers reads only: `C1` exists (with the token), `BUSY` fails with
/// `503` twice and then exists, `BAD` has `fields` that are not an object; anything else
/// is `404`.
/// The reads a test server saw: external id and `Authorization` header.
type Reads = Arc<Mutex<Vec<(String, Option<String>)>>>;

async fn start_reads() -> (SocketAddr, Reads) {
    use axum::routing::get;
    let seen: Reads = Arc::default();
    let busy = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let log = seen.clone();
    let app = Router::new().route(
        "/api/contacts/{external_id}",
        get(move |Path(id): Path<String>, headers: HeaderMap| {
            let log = log.clone();
            let busy = busy.clone();
            async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                log.lock().unwrap().push((id.clone(), auth));
                let contact = json!({
                    "id": "crm-1", "external_id": id, "version": 7,
                    "fields": { "last_name": "Иванов" }, "crm_fields": { "note": "x" },
                    "merged_into": null
                });
                match id.as_str() {
                    "C1" => (StatusCode::OK, axum::Json(contact)).into_response(),
                    "BUSY" if busy.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 2 => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        axum::Json(json!({"error": "busy"})),
                    )
                        .into_response(),
                    "BUSY" => (StatusCode::OK, axum::Json(contact)).into_response(),
                    "BAD" => (
                        StatusCode::OK,
                        axum::Json(json!({"id": "crm-2", "fields": [1]})),
                    )
                        .into_response(),
                    _ => (
                        StatusCode::NOT_FOUND,
                        axum::Json(json!({"error": "not_found"})),
                    )
                        .into_response(),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

#[tokio::test]
async fn get_reads_a_contact_with_the_token_and_none_on_404() {
    use crate::crm::read::CrmReader;
    let (addr, seen) = start_reads().await;
    let client = CrmRestClient::new(CrmRestConfig {
        token: Some("tok".to_owned()),
        ..fast_config(addr)
    })
    .unwrap();
    let got = CrmReader::get(&client, "C1").await.unwrap().unwrap();
    assert_eq!(got.crm_id.as_deref(), Some("crm-1"));
    assert_eq!((got.external_id.as_str(), got.version), ("C1", Some(7)));
    assert_eq!(got.fields.get("last_name"), Some(&json!("Иванов")));
    // Staff fields are not the integration's: they are not part of what is compared.
    assert!(!got.fields.contains_key("note"));
    assert!(!format!("{got:?}").contains("Иванов"), "Debug hides fields");
    assert!(CrmReader::get(&client, "nobody").await.unwrap().is_none());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen[0], ("C1".to_owned(), Some("Bearer tok".to_owned())));
    assert_eq!(client.reader_name(), "crm_rest");
}

#[tokio::test]
async fn get_retries_transient_failures_and_refuses_bad_bodies() {
    use crate::crm::read::CrmReader;
    let (addr, seen) = start_reads().await;
    let client = CrmRestClient::new(fast_config(addr)).unwrap();
    let (got, attempts) = client.get_with_retry("BUSY").await.unwrap();
    assert_eq!((got.map(|c| c.version), attempts), (Some(Some(7)), 3));
    let bad = CrmReader::get(&client, "BAD").await.unwrap_err();
    assert!(!bad.transient, "{bad}");
    assert!(bad.message.contains("fields is not an object"), "{bad}");
    assert!(CrmReader::get(&client, "..").await.is_err());
    assert_eq!(
        seen.lock().unwrap().len(),
        4,
        "the dot segment is never sent"
    );
}

/// A listing server over the ids `A`..`E` in pages of the `limit` asked; `after=BROKEN`
/// answers a page out of order.
async fn start_listing() -> (SocketAddr, Reads) {
    use axum::extract::Query;
    use axum::routing::get;
    let seen: Reads = Arc::default();
    let log = seen.clone();
    let app = Router::new().route(
        "/api/contacts",
        get(
            move |Query(q): Query<std::collections::HashMap<String, String>>,
                  headers: HeaderMap| {
                let log = log.clone();
                async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let after = q.get("after").cloned().unwrap_or_default();
                    log.lock().unwrap().push((after.clone(), auth));
                    let limit: usize = q["limit"].parse().unwrap();
                    let contact = |id: &str| {
                        json!({"id": format!("crm-{id}"), "external_id": id, "version": 1,
                               "source": "abs", "fields": {"last_name": "Иванов"},
                               "merged_into": null})
                    };
                    if after == "BROKEN" {
                        let body = json!({"contacts": [contact("Z"), contact("Y")], "next": null});
                        return axum::Json(body).into_response();
                    }
                    let ids: Vec<&str> = ["A", "B", "C", "D", "E"]
                        .into_iter()
                        .filter(|id| *id > after.as_str())
                        .collect();
                    let page: Vec<serde_json::Value> =
                        ids.iter().take(limit).map(|id| contact(id)).collect();
                    let next = (ids.len() > limit).then(|| ids[limit - 1].to_owned());
                    axum::Json(json!({"contacts": page, "next": next})).into_response()
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

#[tokio::test]
async fn list_pages_through_every_contact_in_order() {
    use crate::crm::read::CrmReader;
    let (addr, seen) = start_listing().await;
    let client = CrmRestClient::new(CrmRestConfig {
        token: Some("tok".to_owned()),
        ..fast_config(addr)
    })
    .unwrap();
    let mut ids = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (page, attempts) = client
            .list_contacts_with_retry(after.as_deref(), 2)
            .await
            .unwrap();
        assert_eq!(attempts, 1);
        for c in &page.contacts {
            assert_eq!(c.source.as_deref(), Some("abs"));
            assert_eq!(c.contact.fields.get("last_name"), Some(&json!("Иванов")));
            ids.push(c.contact.external_id.clone());
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(ids, ["A", "B", "C", "D", "E"]);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0], (String::new(), Some("Bearer tok".to_owned())));
    assert_eq!(seen[1].0, "B");
    // The trait's page carries the contacts without their source.
    let page = CrmReader::list(&client, Some("C"), 5000)
        .await
        .unwrap()
        .unwrap();
    let got: Vec<&str> = page
        .contacts
        .iter()
        .map(|c| c.external_id.as_str())
        .collect();
    assert_eq!((got, page.next), (vec!["D", "E"], None));
    // A limit out of range is refused before anything is sent; a page out of order is a
    // bad answer (it could skip contacts).
    assert!(client.list_contacts(None, 0).await.is_err());
    assert!(client.list_contacts(None, 1001).await.is_err());
    let err = client.list_contacts(Some("BROKEN"), 10).await.unwrap_err();
    assert!(err.to_string().contains("ordered"), "{err}");
    assert!(!err.to_string().contains("Иванов"), "{err}");
}
