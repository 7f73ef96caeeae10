//! Tests of the REST polling client against a small upstream served on 127.0.0.1.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};

use super::config::{AuthConfig, CursorKind, PaginationConfig, RestPollConfig, TlsConfig};
use super::pagination::{CursorValue, PageRequest, Pass, RawPage, next_link};
use super::{JsonPath, RestPollClient, RestPollError};

/// What the test upstream answers instead of a page, in order.
#[derive(Debug, Clone)]
enum Fault {
    Status(u16, Option<u64>),
    Garbage,
    WrongShape,
    Hang(Duration),
}

#[derive(Default)]
struct Upstream {
    /// (seq, updated_at, id, version) in change order.
    rows: Vec<(i64, DateTime<Utc>, String, i64)>,
    faults: VecDeque<Fault>,
    requests: u64,
    token_requests: u64,
    /// Token answers: (token, expires_in).
    tokens_issued: Vec<String>,
    token_lifetime: u64,
    /// Tokens the API refuses although issued (revoked).
    revoked: BTreeSet<String>,
    api_key: Option<String>,
    /// After this many page requests, the record with this id changes (moves to the end).
    change_after: Option<(u64, String)>,
    /// The last record of each answer is repeated at the start of the next one.
    repeat_last: bool,
    last_sent: Option<Value>,
}

type Shared = Arc<Mutex<Upstream>>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap()
}

/// `n` records; `per_second` of them share each timestamp.
fn upstream(n: i64, per_second: i64) -> Shared {
    let rows = (0..n)
        .map(|i| {
            (
                i + 1,
                t0() + chrono::Duration::seconds(i / per_second),
                format!("C{:05}", i + 1),
                1,
            )
        })
        .collect();
    Arc::new(Mutex::new(Upstream {
        rows,
        token_lifetime: 3600,
        ..Upstream::default()
    }))
}

fn record(row: &(i64, DateTime<Utc>, String, i64)) -> Value {
    json!({
        "id": row.2,
        "seq": row.0,
        "updated_at": row.1.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "version": row.3,
    })
}

async fn list(
    State(s): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let fault = {
        let mut u = s.lock().unwrap();
        u.requests += 1;
        if let Some(key) = &u.api_key
            && headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(key.as_str())
        {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        if !u.tokens_issued.is_empty() {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string);
            let ok = presented
                .as_ref()
                .is_some_and(|t| u.tokens_issued.contains(t) && !u.revoked.contains(t));
            if !ok {
                return StatusCode::UNAUTHORIZED.into_response();
            }
        }
        if let Some((after, id)) = u.change_after.clone()
            && u.requests > after
        {
            u.change_after = None;
            let pos = u.rows.iter().position(|r| r.2 == id).unwrap();
            let mut row = u.rows.remove(pos);
            let last = u.rows.last().unwrap().clone();
            row.0 = last.0 + 1;
            row.1 = last.1 + chrono::Duration::seconds(1);
            row.3 += 1;
            u.rows.push(row);
        }
        u.faults.pop_front()
    };
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let mut r = StatusCode::from_u16(code).unwrap().into_response();
            if let Some(secs) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, secs.to_string().parse().unwrap());
            }
            return r;
        }
        Some(Fault::Garbage) => return (StatusCode::OK, "{\"data\": [ {\"id\": ").into_response(),
        Some(Fault::WrongShape) => {
            return (StatusCode::OK, axum::Json(json!({"data": {"id": 1}}))).into_response();
        }
        Some(Fault::Hang(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let mut u = s.lock().unwrap();
    let size: usize = q
        .get("page_size")
        .or(q.get("limit"))
        .map_or(100, |v| v.parse().unwrap());
    let mut matching: Vec<&(i64, DateTime<Utc>, String, i64)> = u
        .rows
        .iter()
        .filter(|r| match (q.get("updated_since"), q.get("since_seq")) {
            (Some(t), _) => r.1 >= DateTime::parse_from_rfc3339(t).unwrap(),
            (_, Some(n)) => r.0 >= n.parse::<i64>().unwrap(),
            _ => true,
        })
        .collect();
    if let Some(after) = q.get("cursor").or(q.get("after")) {
        let after: i64 = after.parse().unwrap();
        matching.retain(|r| r.0 > after);
    }
    let skip = match (q.get("page"), q.get("offset")) {
        (Some(p), _) => (p.parse::<usize>().unwrap() - 1) * size,
        (_, Some(o)) => o.parse().unwrap(),
        _ => 0,
    };
    let page: Vec<(i64, DateTime<Utc>, String, i64)> = matching
        .iter()
        .skip(skip)
        .take(size)
        .map(|r| (*r).clone())
        .collect();
    let more = matching.len() > skip + page.len();
    let mut data: Vec<Value> = page.iter().map(record).collect();
    if u.repeat_last {
        if let Some(prev) = u.last_sent.take() {
            data.insert(0, prev);
        }
        u.last_sent = data.last().cloned();
    }
    let next = (more && !page.is_empty()).then(|| page.last().unwrap().0.to_string());
    let mut response = axum::Json(json!({"data": data, "meta": {"next": next}})).into_response();
    if let Some(n) = &next {
        let link = format!(
            "</api/customers?after={n}&page_size={size}>; rel=\"next\", </api/customers>; rel=\"first\""
        );
        response
            .headers_mut()
            .insert(header::LINK, link.parse().unwrap());
    }
    response
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut u = s.lock().unwrap();
    u.token_requests += 1;
    // "client:s3cret" in HTTP Basic.
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if basic != "Basic Y2xpZW50OnMzY3JldA==" || !body.contains("grant_type=client_credentials") {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let t = format!("tok-{}", u.token_requests);
    u.tokens_issued.push(t.clone());
    axum::Json(json!({"access_token": t, "token_type": "bearer", "expires_in": u.token_lifetime}))
        .into_response()
}

async fn serve(state: Shared) -> String {
    let app = Router::new()
        .route("/api/customers", get(list))
        .route("/oauth/token", post(token))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn config(base: &str, pagination: PaginationConfig) -> RestPollConfig {
    let mut c = RestPollConfig::new(base, "/api/customers");
    c.pagination = pagination;
    c.initial_backoff_ms = 10;
    c.max_backoff_ms = 100;
    c.timeout_ms = 2_000;
    c.max_attempts = 8;
    c
}

fn page_number(size: u32) -> PaginationConfig {
    PaginationConfig::PageNumber {
        page_param: "page".into(),
        size_param: "page_size".into(),
        page_size: size,
        first_page: 1,
    }
}

fn no_secrets(_: &str) -> Result<String, String> {
    Err("no secrets in this test".into())
}

fn secrets(r: &str) -> Result<String, String> {
    match r {
        "env:KEY" => Ok("k-123".into()),
        "env:SECRET" => Ok("s3cret".into()),
        other => Err(format!("unknown reference {other}")),
    }
}

fn client(cfg: RestPollConfig) -> RestPollClient {
    RestPollClient::new(cfg, std::path::Path::new("."), &secrets).unwrap()
}

/// Runs a whole pass; returns ids in the order read, the final cursor and the pages.
async fn run_pass(
    c: &RestPollClient,
    start: CursorValue,
) -> Result<(Vec<String>, CursorValue, u64), RestPollError> {
    let mut pass = c.pass(start);
    let mut ids = Vec::new();
    let mut cursor = pass.max_seen().clone();
    let mut pages = 0;
    while !pass.is_done() {
        let (page, _) = c.next_page(&mut pass).await?;
        pages += 1;
        for r in &page.records {
            ids.push(r.value["id"].as_str().unwrap().to_string());
        }
        cursor = page.cursor_after.clone();
        assert!(pages < 10_000, "pass does not end");
    }
    Ok((ids, cursor, pages))
}

fn assert_each_once(ids: &[String], n: usize) {
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), n, "distinct records");
    assert_eq!(
        ids.len(),
        n,
        "records read twice: {}",
        ids.len() - set.len()
    );
}

#[tokio::test]
async fn page_numbers_read_every_record_once_and_end_at_the_largest_cursor() {
    let up = upstream(1_050, 1);
    let base = serve(up.clone()).await;
    let c = client(config(&base, page_number(100)));
    let (ids, cursor, pages) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 1_050);
    assert_eq!(
        cursor,
        CursorValue::Time(t0() + chrono::Duration::seconds(1_049))
    );
    assert_eq!(pages, 11);
    // The next pass starts at the boundary (>=) and finds only the record read last.
    let (again, _, _) = run_pass(&c, cursor).await.unwrap();
    assert_eq!(again, vec!["C01050".to_string()]);
}

#[tokio::test]
async fn timestamps_shared_by_more_than_a_page_are_not_lost() {
    // 25 records per second, pages of 10: whole pages share one timestamp.
    let up = upstream(500, 25);
    let base = serve(up).await;
    let c = client(config(&base, page_number(10)));
    let (ids, _, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 500);
}

#[tokio::test]
async fn offsets_sequence_cursor_tokens_and_link_headers() {
    let up = upstream(730, 3);
    let base = serve(up).await;
    let mut offset = config(
        &base,
        PaginationConfig::Offset {
            offset_param: "offset".into(),
            limit_param: "limit".into(),
            page_size: 50,
        },
    );
    offset.cursor.kind = CursorKind::Sequence;
    offset.cursor.param = "since_seq".into();
    offset.cursor.field = "seq".into();
    let c = client(offset);
    let (ids, cursor, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 730);
    assert_eq!(cursor, CursorValue::Seq(730));

    let token = config(
        &base,
        PaginationConfig::CursorToken {
            token_param: "cursor".into(),
            next_path: "$.meta.next".into(),
            size_param: "page_size".into(),
            page_size: 64,
        },
    );
    let c = client(token);
    let (ids, _, pages) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 730);
    assert_eq!(pages, 12);

    let link = config(
        &base,
        PaginationConfig::LinkHeader {
            size_param: "page_size".into(),
            page_size: 100,
        },
    );
    let c = client(link);
    let (ids, _, pages) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 730);
    assert_eq!(pages, 8);
}

#[tokio::test]
async fn a_record_changing_during_the_pass_does_not_push_another_one_out() {
    // After the first page, C00005 changes and moves to the end of the order: with plain
    // "page + 1" the first record of page 2 would slide onto page 1 and be skipped.
    let up = upstream(300, 1);
    up.lock().unwrap().change_after = Some((1, "C00005".into()));
    let base = serve(up).await;
    let c = client(config(&base, page_number(100)));
    let (ids, _, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    let set: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(set.len(), 300, "a record was skipped");
    // C00005 is read twice: its old and its new version.
    assert_eq!(ids.iter().filter(|i| *i == "C00005").count(), 2);
}

#[tokio::test]
async fn a_record_repeated_on_the_next_page_is_dropped() {
    let up = upstream(250, 1);
    up.lock().unwrap().repeat_last = true;
    let base = serve(up).await;
    let c = client(config(&base, page_number(100)));
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let mut ids = Vec::new();
    let mut repeated = 0;
    while !pass.is_done() {
        let (page, _) = c.next_page(&mut pass).await.unwrap();
        repeated += page.repeated;
        ids.extend(page.records.iter().map(|r| r.value["id"].to_string()));
    }
    assert_each_once(&ids, 250);
    assert!(repeated >= 2, "{repeated}");
}

#[tokio::test]
async fn transient_failures_are_retried_honouring_retry_after() {
    let up = upstream(150, 1);
    up.lock().unwrap().faults = VecDeque::from(vec![
        Fault::Status(503, None),
        Fault::Status(429, Some(1)),
        Fault::Garbage,
        Fault::WrongShape,
        Fault::Status(500, None),
    ]);
    let base = serve(up.clone()).await;
    let c = client(config(&base, page_number(100)));
    let started = Instant::now();
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let (page, attempts) = c.next_page(&mut pass).await.unwrap();
    assert_eq!(page.records.len(), 100);
    assert_eq!(attempts, 6);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was not honoured"
    );
}

#[tokio::test]
async fn a_permanent_status_stops_at_once_and_names_the_page() {
    let up = upstream(150, 1);
    up.lock().unwrap().faults = VecDeque::from(vec![Fault::Status(404, None)]);
    let base = serve(up.clone()).await;
    let c = client(config(&base, page_number(100)));
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let e = c.next_page(&mut pass).await.unwrap_err();
    assert!(!e.is_transient());
    assert_eq!(e.attempts(), Some(1));
    assert_eq!(e.status(), Some(404));
    assert_eq!(
        e.to_string(),
        "page 1: upstream answered 404 (after 1 attempt)"
    );
    assert_eq!(up.lock().unwrap().requests, 1);
    // The pass did not move: the same page is asked for again.
    assert_eq!(pass.next_number(), 1);
}

#[tokio::test]
async fn retries_run_out_with_the_last_error() {
    let up = upstream(10, 1);
    up.lock().unwrap().faults = VecDeque::from(vec![Fault::Status(502, None); 10]);
    let base = serve(up.clone()).await;
    let mut cfg = config(&base, page_number(100));
    cfg.max_attempts = 3;
    let c = client(cfg);
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let e = c.next_page(&mut pass).await.unwrap_err();
    assert!(e.is_transient());
    assert_eq!(e.attempts(), Some(3));
    assert_eq!(up.lock().unwrap().requests, 3);
}

#[tokio::test]
async fn a_hanging_upstream_times_out_and_the_retry_succeeds() {
    let up = upstream(20, 1);
    up.lock().unwrap().faults = VecDeque::from(vec![Fault::Hang(Duration::from_secs(3))]);
    let base = serve(up.clone()).await;
    let mut cfg = config(&base, page_number(100));
    cfg.timeout_ms = 300;
    let c = client(cfg);
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let (page, attempts) = c.next_page(&mut pass).await.unwrap();
    assert_eq!(page.records.len(), 20);
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn oauth2_token_is_cached_refreshed_before_expiry_and_after_a_401() {
    let up = upstream(500, 1);
    let base = serve(up.clone()).await;
    let mut cfg = config(&base, page_number(100));
    cfg.auth = AuthConfig::Oauth2 {
        token_url: format!("{base}/oauth/token"),
        client_id: "client".into(),
        client_secret: "env:SECRET".into(),
        scope: Some("customers:read".into()),
    };
    let c = client(cfg.clone());
    let (ids, _, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 500);
    assert_eq!(up.lock().unwrap().token_requests, 1, "token not cached");

    // The upstream revokes the token: one 401, one new token, the page goes through.
    let first = up.lock().unwrap().tokens_issued[0].clone();
    up.lock().unwrap().revoked.insert(first);
    let (ids, _, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 500);
    assert_eq!(up.lock().unwrap().token_requests, 2);

    // A token of 2 s lifetime is refreshed before it runs out (at 1.8 s).
    up.lock().unwrap().token_lifetime = 2;
    let c = client(cfg.clone());
    let mut pass = c.pass(c.initial_cursor().unwrap());
    c.next_page(&mut pass).await.unwrap();
    let before = up.lock().unwrap().token_requests;
    tokio::time::sleep(Duration::from_millis(1_900)).await;
    c.next_page(&mut pass).await.unwrap();
    assert_eq!(up.lock().unwrap().token_requests, before + 1);

    // Wrong client secret: a permanent token error, no page request made.
    cfg.auth = AuthConfig::Oauth2 {
        token_url: format!("{base}/oauth/token"),
        client_id: "client".into(),
        client_secret: "env:KEY".into(),
        scope: None,
    };
    let requests = up.lock().unwrap().requests;
    let c = client(cfg);
    let mut pass = c.pass(c.initial_cursor().unwrap());
    let e = c.next_page(&mut pass).await.unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert_eq!(
        e.to_string(),
        "oauth2 token request failed: token endpoint answered 401 (invalid_client) (after 1 attempt)"
    );
    assert!(!e.to_string().contains("k-123"));
    assert_eq!(up.lock().unwrap().requests, requests);
}

#[tokio::test]
async fn api_key_goes_in_its_header_and_a_wrong_one_is_permanent() {
    let up = upstream(30, 1);
    up.lock().unwrap().api_key = Some("k-123".into());
    let base = serve(up.clone()).await;
    let mut cfg = config(&base, page_number(100));
    cfg.auth = AuthConfig::ApiKey {
        header: "X-Api-Key".into(),
        key: "env:KEY".into(),
    };
    let c = client(cfg.clone());
    let (ids, _, _) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 30);

    up.lock().unwrap().api_key = Some("rotated".into());
    let e = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!e.is_transient());

    // A secret that cannot be resolved is named by its field.
    let e = RestPollClient::new(cfg, std::path::Path::new("."), &no_secrets).unwrap_err();
    assert_eq!(e.to_string(), "rest_poll auth.key: no secrets in this test");
}

#[tokio::test]
async fn the_rate_limit_spaces_requests() {
    let up = upstream(500, 1);
    let base = serve(up).await;
    let mut cfg = config(&base, page_number(100));
    cfg.rate_limit_per_sec = 10.0;
    let c = client(cfg);
    let started = Instant::now();
    let (ids, _, pages) = run_pass(&c, c.initial_cursor().unwrap()).await.unwrap();
    assert_each_once(&ids, 500);
    assert_eq!(pages, 6);
    // Six requests at 10/s: at least 500 ms between the first and the last.
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn link_headers_are_parsed_per_rfc_8288() {
    assert_eq!(
        next_link("<https://a/x?page=2>; rel=\"next\", <https://a/x?page=9>; rel=\"last\""),
        Some("https://a/x?page=2".into())
    );
    assert_eq!(
        next_link(
            "<https://a/x?p=1,2>; rel=\"prev\", <https://a/x?p=3,4>; title=\"a, b\"; rel=\"next last\""
        ),
        Some("https://a/x?p=3,4".into())
    );
    assert_eq!(
        next_link("<https://a/x>; rel=next"),
        Some("https://a/x".into())
    );
    assert_eq!(next_link("<https://a/x>; rel=\"prev\""), None);
    assert_eq!(next_link("garbage"), None);
    assert_eq!(next_link(""), None);
}

#[tokio::test]
async fn a_link_to_another_origin_is_refused() {
    let base = "http://127.0.0.1:9";
    let c = client(config(
        base,
        PaginationConfig::LinkHeader {
            size_param: "page_size".into(),
            page_size: 10,
        },
    ));
    let url = reqwest::Url::parse("http://127.0.0.1:9/api/customers").unwrap();
    assert!(c.resolve_link(&url, "/api/customers?after=3").is_ok());
    assert!(c.resolve_link(&url, "http://evil.example/steal").is_err());
    assert!(c.resolve_link(&url, "https://127.0.0.1:9/x").is_err());
}

#[test]
fn a_pass_refuses_a_token_that_does_not_move() {
    let mut pass = Pass::new(
        CursorKind::Sequence,
        PaginationConfig::CursorToken {
            token_param: "cursor".into(),
            next_path: "next".into(),
            size_param: "page_size".into(),
            page_size: 2,
        },
        JsonPath::parse("seq").unwrap(),
        CursorValue::Seq(0),
    );
    let page = |seqs: &[i64], token: &str| RawPage {
        records: seqs.iter().map(|s| json!({"seq": s})).collect(),
        next_token: Some(token.into()),
        next_link: None,
    };
    pass.advance(page(&[1, 2], "a")).unwrap();
    assert_eq!(
        pass.request("since_seq"),
        PageRequest::Query(vec![
            ("since_seq".into(), "0".into()),
            ("cursor".into(), "a".into()),
            ("page_size".into(), "2".into())
        ])
    );
    let e = pass.advance(page(&[3, 4], "a")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "page 2: unusable page: the upstream gave the same next-page token again"
    );
}

#[test]
fn records_without_a_cursor_are_reported_and_do_not_move_it() {
    let mut pass = Pass::new(
        CursorKind::UpdatedSince,
        page_number(10),
        JsonPath::parse("meta.changed").unwrap(),
        CursorValue::origin(CursorKind::UpdatedSince),
    );
    let page = pass
        .advance(RawPage {
            records: vec![
                json!({"meta": {"changed": "2024-03-01T10:00:00+03:00"}}),
                json!({"meta": {}}),
                json!({"meta": {"changed": 17}}),
                json!({"meta": {"changed": "yesterday"}}),
            ],
            next_token: None,
            next_link: None,
        })
        .unwrap();
    assert!(page.last);
    assert_eq!(page.records.len(), 4);
    assert_eq!(
        page.cursor_after,
        CursorValue::Time(Utc.with_ymd_and_hms(2024, 3, 1, 7, 0, 0).unwrap())
    );
    assert_eq!(page.records[1].cursor, Err("missing".into()));
    assert_eq!(
        page.records[2].cursor,
        Err("must be an RFC 3339 string".into())
    );
    assert!(
        page.records[3]
            .cursor
            .as_ref()
            .unwrap_err()
            .starts_with("not an RFC 3339")
    );
    assert_eq!(page.cursor_after.render(), "2024-03-01T07:00:00Z");
    assert_eq!(page.cursor_after.as_version(), 1_709_276_400_000);
}

#[test]
fn the_documented_config_parses_and_validation_names_fields() {
    let text = r#"
base_url = "https://abs.bank.local"
path = "/api/v1/customers"
query = { branch = "msk" }
records_path = "$.data"
rate_limit_per_sec = 20
timeout_ms = 15000
max_attempts = 6
poll_interval_ms = 30000

[cursor]
kind = "updated_since"
param = "updated_since"
field = "updated_at"
initial = "2024-01-01T00:00:00Z"

[pagination]
kind = "cursor_token"
token_param = "cursor"
next_path = "$.meta.next"
page_size = 500

[auth]
kind = "oauth2"
token_url = "https://abs.bank.local/oauth/token"
client_id = "hub"
client_secret = "env:ABS_CLIENT_SECRET"
scope = "customers:read"

[tls]
ca_file = "certs/abs-ca.pem"
client_cert = "certs/hub.pem"
client_key = "certs/hub.key"
"#;
    let cfg: RestPollConfig = toml::from_str(text).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.pagination.page_size(), 500);
    assert!(!format!("{cfg:?}").contains("ABS_CLIENT_SECRET"));

    let check = |edit: &dyn Fn(&mut RestPollConfig), expected: &str| {
        let mut c = cfg.clone();
        edit(&mut c);
        assert_eq!(c.validate().unwrap_err().to_string(), expected);
    };
    check(
        &|c| c.base_url = "ftp://x".into(),
        "invalid rest_poll config: field base_url: must start with http:// or https://",
    );
    check(
        &|c| c.path = "api".into(),
        "invalid rest_poll config: field path: must start with '/'",
    );
    check(
        &|c| {
            c.auth = AuthConfig::ApiKey {
                header: "X-Api-Key".into(),
                key: "plain".into(),
            }
        },
        "invalid rest_poll config: field auth.key: secrets must be references (`env:NAME` or `file:PATH`), never inline values",
    );
    check(
        &|c| c.pagination = page_number(0),
        "invalid rest_poll config: field pagination.page_size: must be between 1 and 10000",
    );
    let mut c = cfg.clone();
    c.cursor.initial = Some("2024-13-01".into());
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.starts_with("invalid rest_poll config: field cursor.initial: not an RFC 3339 timestamp"),
        "{e}"
    );
    check(
        &|c| {
            c.tls = Some(TlsConfig {
                client_cert: Some("a.pem".into()),
                ..TlsConfig::default()
            })
        },
        "invalid rest_poll config: field tls: client_cert and client_key go together (mTLS needs both)",
    );
    check(
        &|c| c.cursor.field = "$".into(),
        "invalid rest_poll config: field cursor.field: must name a field of the record",
    );
    let unknown = toml::from_str::<RestPollConfig>(&format!("{text}\ncolour = 1\n"));
    assert!(unknown.is_err());
}

#[test]
fn tls_files_are_read_and_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let mut cfg = RestPollConfig::new("https://abs.bank.local", "/api");
    cfg.tls = Some(TlsConfig {
        ca_file: Some("missing.pem".into()),
        ..TlsConfig::default()
    });
    let e = RestPollClient::new(cfg.clone(), dir.path(), &no_secrets).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("rest_poll tls.ca_file: cannot read "),
        "{e}"
    );
    assert!(e.to_string().contains("missing.pem"), "{e}");
    cfg.tls = Some(TlsConfig {
        ca_file: Some("ca.pem".into()),
        ..TlsConfig::default()
    });
    let e = RestPollClient::new(cfg.clone(), dir.path(), &no_secrets).unwrap_err();
    assert!(
        e.to_string().ends_with("ca.pem: holds no PEM certificate"),
        "{e}"
    );
    cfg.tls = Some(TlsConfig {
        ca_file: None,
        client_cert: Some("ca.pem".into()),
        client_key: Some("ca.pem".into()),
    });
    let e = RestPollClient::new(cfg, dir.path(), &no_secrets).unwrap_err();
    assert!(
        e.to_string()
            .contains("not a PEM certificate and private key"),
        "{e}"
    );
}
