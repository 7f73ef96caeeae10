use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

use super::*;
use crate::bus::Offsets;
use crate::bus::embedded::EmbeddedBus;

const TOPIC: &str = "hub.dlq";
const CANONICAL: &str = "hub.canonical";
/// A customer field that must never show outside `show --payload`.
const NAME: &str = "Иванова Мария";

struct Bed {
    _dir: tempfile::TempDir,
    bus: Arc<EmbeddedBus>,
    store: Arc<Store>,
    dlq: Arc<Dlq>,
}

fn bed() -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let bus = Arc::new(EmbeddedBus::open(&dir.path().join("bus.db"), 4).unwrap());
    let store = Arc::new(Store::open(&dir.path().join("state.db")).unwrap());
    let dlq = Arc::new(Dlq::new(
        bus.clone(),
        store.clone(),
        TOPIC.into(),
        LogEnd::FirstEmptyPoll,
    ));
    Bed {
        _dir: dir,
        bus,
        store,
        dlq,
    }
}

/// A dead letter as the CRM sink writes one (`stage` instead of `sink` for the golden stage).
fn letter(key: &str, component: (&str, &str), failed_at: &str) -> OutMessage {
    let payload = serde_json::json!({
        "id": format!("env-{key}"),
        "source": "abs",
        "key": key,
        "payload": { "full_name": NAME, "phone": "+79161234567" },
    });
    OutMessage {
        key: key.into(),
        headers: vec![
            (
                "error".into(),
                "crm rejected the record: 422 invalid_field".into(),
            ),
            ("attempts".into(), "2".into()),
            ("first_failure".into(), failed_at.into()),
            ("last_failure".into(), failed_at.into()),
            ("origin_topic".into(), CANONICAL.into()),
            ("origin_partition".into(), "3".into()),
            ("origin_offset".into(), "41".into()),
            (component.0.into(), component.1.into()),
            ("id".into(), format!("env-{key}")),
            ("source".into(), "abs".into()),
            ("entity".into(), "party".into()),
        ],
        payload: serde_json::to_vec(&payload).unwrap(),
    }
}

const EARLY: &str = "2024-03-01T10:00:00+00:00";
const LATER: &str = "2024-03-02T10:00:00.5+00:00";

/// Three letters: two of sink `crm`, one of the golden stage. Returns their ids by key.
async fn three(b: &Bed) -> BTreeMap<String, LetterId> {
    b.bus
        .publish(
            TOPIC,
            vec![
                letter("100", ("sink", "crm"), LATER),
                letter("200", ("sink", "crm"), EARLY),
                letter("300", ("stage", "golden"), LATER),
            ],
        )
        .await
        .unwrap();
    let all = b
        .dlq
        .list(&ListQuery {
            status: StatusFilter::All,
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    all.dead_letters
        .iter()
        .map(|v| (v.key.clone(), LetterId::parse(&v.id).unwrap()))
        .collect()
}

fn opts(by: &str) -> ReplayOptions {
    ReplayOptions {
        sink: None,
        force: false,
        dry_run: false,
        by: by.into(),
    }
}

/// Everything on `topic`, read by a fresh group.
async fn read_all(bus: &EmbeddedBus, topic: &str) -> Vec<Record> {
    let mut c = bus
        .subscribe(&format!("test-{}", unique_suffix()), topic)
        .await
        .unwrap();
    c.poll(10_000, Duration::ZERO).await.unwrap()
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn ids_parse_and_print() {
    let id = LetterId::parse("2-1045").unwrap();
    assert_eq!(
        id,
        LetterId {
            partition: 2,
            offset: 1045
        }
    );
    assert_eq!(id.to_string(), "2-1045");
    for bad in ["", "2", "2-", "-1", "a-1", "2-x", "2-1-1", "-1-3"] {
        let e = LetterId::parse(bad).unwrap_err().to_string();
        assert!(e.contains("<partition>-<offset>"), "{bad}: {e}");
    }
}

#[tokio::test]
async fn a_listing_shows_why_and_where_never_the_payload() {
    let b = bed();
    let ids = three(&b).await;
    let l = b
        .dlq
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        l.counts,
        Counts {
            pending: 3,
            replayed: 0,
            discarded: 0,
            copies: 0
        }
    );
    assert_eq!(l.matching, 3);
    // Oldest first.
    assert_eq!(l.dead_letters[0].key, "200");
    let v = l.dead_letters.iter().find(|v| v.key == "100").unwrap();
    assert_eq!(v.id, ids["100"].to_string());
    assert_eq!(v.status, Status::Pending);
    assert!(v.error.contains("422"));
    assert_eq!(v.attempts, Some(2));
    assert_eq!(v.origin_topic.as_deref(), Some(CANONICAL));
    assert_eq!((v.origin_partition, v.origin_offset), (Some(3), Some(41)));
    assert_eq!(v.sink.as_deref(), Some("crm"));
    assert_eq!(v.failed_in(), "sink:crm");
    assert_eq!(v.source.as_deref(), Some("abs"));
    assert_eq!(v.entity.as_deref(), Some("party"));
    assert_eq!(v.envelope_id.as_deref(), Some("env-100"));
    assert!(v.payload_bytes > 50);
    let json = serde_json::to_string(&l).unwrap();
    assert!(!json.contains(NAME) && !json.contains("+7916"), "{json}");

    // Filters and the limit: the counts still cover the whole topic.
    let crm = b
        .dlq
        .list(&ListQuery {
            sink: Some("crm".into()),
            limit: 1,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(crm.matching, 2);
    assert_eq!(crm.dead_letters.len(), 1);
    assert_eq!(crm.dead_letters[0].key, "200");
    assert_eq!(crm.counts.total(), 3);
    let golden = b
        .dlq
        .list(&ListQuery {
            sink: Some("golden".into()),
            limit: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(golden.dead_letters.len(), 1);
    assert_eq!(golden.dead_letters[0].failed_in(), "stage:golden");
}

#[tokio::test]
async fn an_empty_or_missing_topic_lists_nothing() {
    let b = bed();
    let l = b.dlq.list(&ListQuery::default()).await.unwrap();
    assert_eq!(l.counts.total(), 0);
    assert!(l.dead_letters.is_empty());
    assert!(matches!(
        b.dlq.get(LetterId::parse("0-0").unwrap()).await,
        Err(DlqError::NotFound(_))
    ));
}

#[tokio::test]
async fn reading_leaves_no_trace_on_the_bus() {
    let b = bed();
    three(&b).await;
    // A component's group with a position on the DLQ topic keeps it.
    let mut hub = b.bus.subscribe("hub-sink-crm", TOPIC).await.unwrap();
    hub.commit(&Offsets::from([(0, 0)])).await.unwrap();
    for _ in 0..3 {
        b.dlq.list(&ListQuery::default()).await.unwrap();
    }
    assert_eq!(
        b.bus.committed("hub-sink-crm", TOPIC).await.unwrap(),
        Offsets::from([(0, 0)])
    );
    // Compaction weighs only groups that committed: nothing below the component's offset 0.
    assert_eq!(b.bus.compact(TOPIC).await.unwrap(), 0);
    assert_eq!(read_all(&b.bus, TOPIC).await.len(), 3);
}

#[tokio::test]
async fn replay_publishes_the_original_record_once() {
    let b = bed();
    let ids = three(&b).await;
    let id = ids["100"];
    let out = b.dlq.replay(&[id, id], &opts("alice")).await.unwrap();
    assert_eq!(
        out,
        vec![ReplayOutcome::Replayed {
            id: id.to_string(),
            to: CANONICAL.into()
        }]
    );
    let sent = read_all(&b.bus, CANONICAL).await;
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.key, "100");
    let original = letter("100", ("sink", "crm"), LATER);
    assert_eq!(r.payload, original.payload);
    assert_eq!(r.header("id"), Some("env-100"));
    assert_eq!(r.header("source"), Some("abs"));
    assert_eq!(r.header("entity"), Some("party"));
    assert_eq!(r.header(REPLAYED_FROM), Some(format!("dlq:{id}").as_str()));
    for h in FAILURE_HEADERS {
        assert!(r.header(h).is_none(), "replayed record carries {h}");
    }

    // Again: a no-op that says when and by whom.
    let again = b.dlq.replay(&[id], &opts("bob")).await.unwrap();
    match &again[0] {
        ReplayOutcome::AlreadyReplayed { by, .. } => assert_eq!(by, "alice"),
        o => panic!("{o:?}"),
    }
    assert!(again[0].ok());
    assert!(again[0].to_string().contains("already replayed at"));
    assert_eq!(read_all(&b.bus, CANONICAL).await.len(), 1);

    // Forced: published again.
    let forced = b
        .dlq
        .replay(
            &[id],
            &ReplayOptions {
                force: true,
                ..opts("bob")
            },
        )
        .await
        .unwrap();
    assert!(matches!(forced[0], ReplayOutcome::Replayed { .. }));
    assert_eq!(read_all(&b.bus, CANONICAL).await.len(), 2);

    let v = b.dlq.get(id).await.unwrap().view;
    assert_eq!(v.status, Status::Replayed);
    let a = v.action.unwrap();
    assert_eq!(a.by, "bob");
    assert_eq!(a.replayed_to.as_deref(), Some(CANONICAL));

    // Unknown ids and other sinks are refused; nothing is published for them.
    let out = b
        .dlq
        .replay(
            &[LetterId::parse("3-999").unwrap(), ids["300"]],
            &ReplayOptions {
                sink: Some("crm".into()),
                ..opts("bob")
            },
        )
        .await
        .unwrap();
    assert!(matches!(out[0], ReplayOutcome::NotFound { .. }));
    assert!(matches!(out[1], ReplayOutcome::OtherSink { .. }));
    assert!(out.iter().all(|o| !o.ok()));
    assert_eq!(read_all(&b.bus, CANONICAL).await.len(), 2);
}

#[tokio::test]
async fn a_dry_run_publishes_and_records_nothing() {
    let b = bed();
    let ids = three(&b).await;
    let out = b
        .dlq
        .replay(
            &[ids["100"]],
            &ReplayOptions {
                dry_run: true,
                ..opts("alice")
            },
        )
        .await
        .unwrap();
    assert!(matches!(out[0], ReplayOutcome::WouldReplay { .. }));
    let mut seen = 0;
    let s = b
        .dlq
        .replay_all_pending(
            &ReplayOptions {
                dry_run: true,
                ..opts("alice")
            },
            &mut |n| seen = n,
        )
        .await
        .unwrap();
    assert_eq!(s.replayed, 3);
    assert_eq!(seen, 3);
    assert!(read_all(&b.bus, CANONICAL).await.is_empty());
    assert_eq!(
        b.dlq
            .list(&ListQuery::default())
            .await
            .unwrap()
            .counts
            .pending,
        3
    );
}

#[tokio::test]
async fn discard_then_replay_and_the_other_way_round() {
    let b = bed();
    let ids = three(&b).await;
    let (a, c) = (ids["100"], ids["200"]);
    assert!(matches!(
        b.dlq.discard(&[a], "  ", "alice").await,
        Err(DlqError::Invalid(_))
    ));
    assert!(matches!(
        b.dlq.discard(&[a], "known bad record", "").await,
        Err(DlqError::Invalid(_))
    ));
    let out = b
        .dlq
        .discard(
            &[a, LetterId::parse("0-777").unwrap()],
            "known bad record",
            "alice",
        )
        .await
        .unwrap();
    assert!(matches!(out[0], DiscardOutcome::Discarded { .. }));
    assert!(matches!(out[1], DiscardOutcome::NotFound { .. }));
    let again = b.dlq.discard(&[a], "again", "bob").await.unwrap();
    assert!(matches!(again[0], DiscardOutcome::AlreadyDiscarded { ref by, .. } if by == "alice"));
    let v = b.dlq.get(a).await.unwrap().view;
    assert_eq!(v.status, Status::Discarded);
    assert_eq!(
        v.action.unwrap().reason.as_deref(),
        Some("known bad record")
    );

    // A discarded letter is not replayed unless forced.
    let r = b.dlq.replay(&[a], &opts("bob")).await.unwrap();
    assert!(matches!(r[0], ReplayOutcome::Discarded { .. }));
    assert!(!r[0].ok());
    assert!(read_all(&b.bus, CANONICAL).await.is_empty());

    // A replayed letter cannot be discarded.
    b.dlq.replay(&[c], &opts("bob")).await.unwrap();
    let d = b.dlq.discard(&[c], "too late", "carol").await.unwrap();
    assert!(matches!(d[0], DiscardOutcome::Replayed { .. }));
    assert!(!d[0].ok());

    let counts = b.dlq.list(&ListQuery::default()).await.unwrap().counts;
    assert_eq!(
        counts,
        Counts {
            pending: 1,
            replayed: 1,
            discarded: 1,
            copies: 0
        }
    );
}

#[tokio::test]
async fn replay_all_pending_leaves_acted_on_and_newer_letters() {
    let b = bed();
    let ids = three(&b).await;
    b.dlq.discard(&[ids["100"]], "bad", "alice").await.unwrap();
    b.dlq.replay(&[ids["200"]], &opts("alice")).await.unwrap();
    // Two more: one failed "in the future" (after the replay started), one without origin.
    let mut no_origin = letter("400", ("sink", "crm"), EARLY);
    no_origin.headers.retain(|(k, _)| k != "origin_topic");
    b.bus
        .publish(
            TOPIC,
            vec![
                letter("500", ("sink", "crm"), "2999-01-01T00:00:00+00:00"),
                no_origin,
            ],
        )
        .await
        .unwrap();
    let mut calls = Vec::new();
    let s = b
        .dlq
        .replay_all_pending(&opts("ops"), &mut |n| calls.push(n))
        .await
        .unwrap();
    assert_eq!(
        s,
        ReplaySummary {
            replayed: 1,
            arrived_during: 1,
            unreplayable: 1
        }
    );
    assert_eq!(calls, vec![1]);
    let sent = read_all(&b.bus, CANONICAL).await;
    let keys: Vec<&str> = sent.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, vec!["200", "300"]);
    // Nothing pending is left that could be replayed now.
    let s = b
        .dlq
        .replay_all_pending(&opts("ops"), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(s.replayed, 0);
}

#[tokio::test]
async fn an_action_for_another_letter_at_the_same_position_does_not_count() {
    let b = bed();
    let ids = three(&b).await;
    let id = ids["100"];
    // Recorded for a letter that once sat at this position (the topic was re-created).
    b.store
        .dlq_record_replays(&[DlqAction {
            id: id.to_string(),
            action: "replayed".into(),
            at: EARLY.into(),
            by: "someone".into(),
            replayed_to: Some(CANONICAL.into()),
            reason: None,
            envelope_id: "env-of-another-record".into(),
        }])
        .unwrap();
    let v = b.dlq.get(id).await.unwrap().view;
    assert_eq!(v.status, Status::Pending);
    assert!(v.action.is_none());
    let d = b.dlq.discard(&[id], "bad", "alice").await.unwrap();
    assert!(matches!(d[0], DiscardOutcome::Discarded { .. }));
    assert_eq!(b.dlq.get(id).await.unwrap().view.status, Status::Discarded);
}

#[tokio::test]
async fn a_second_bus_value_on_the_same_file_reads_and_replays() {
    // As `hub dlq` beside a running hub: its own connection to the same files.
    let b = bed();
    let ids = three(&b).await;
    let path = b._dir.path();
    let other_bus = Arc::new(EmbeddedBus::open(&path.join("bus.db"), 4).unwrap());
    let other_store = Arc::new(Store::open(&path.join("state.db")).unwrap());
    let other = Dlq::new(other_bus, other_store, TOPIC.into(), LogEnd::FirstEmptyPoll);
    // The "hub" holds a live consumer of the origin topic meanwhile.
    let mut sink = b.bus.subscribe("hub-sink-crm", CANONICAL).await.unwrap();
    other.replay(&[ids["100"]], &opts("cli")).await.unwrap();
    let got = sink.poll(10, Duration::from_secs(5)).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].key, "100");
    assert_eq!(
        b.dlq.get(ids["100"]).await.unwrap().view.status,
        Status::Replayed
    );
}

// ---- the admin API ----

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, v)
}

#[tokio::test]
async fn the_admin_api_lists_shows_replays_and_discards() {
    let b = bed();
    let ids = three(&b).await;
    let app = api::router(b.dlq.clone(), "admin-token".into());
    let tok = Some("admin-token");

    for (m, uri) in [
        ("GET", "/api/dlq".to_string()),
        ("GET", format!("/api/dlq/{}", ids["100"])),
        ("POST", format!("/api/dlq/{}/replay", ids["100"])),
    ] {
        assert_eq!(
            call(&app, m, &uri, None, None).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            call(&app, m, &uri, Some("wrong"), None).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    let (s, v) = call(&app, "GET", "/api/dlq?sink=crm&limit=10", tok, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["matching"], 2);
    assert_eq!(v["counts"]["pending"], 3);
    assert!(!v.to_string().contains(NAME));
    assert_eq!(
        call(&app, "GET", "/api/dlq?status=nope", tok, None).await.0,
        StatusCode::BAD_REQUEST
    );

    let one = format!("/api/dlq/{}", ids["100"]);
    let (s, v) = call(&app, "GET", &one, tok, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["key"], "100");
    assert!(v.get("payload").is_none());
    assert!(!v.to_string().contains(NAME));
    let (_, v) = call(&app, "GET", &format!("{one}?payload=true"), tok, None).await;
    assert_eq!(v["payload"]["payload"]["full_name"], NAME);
    assert_eq!(
        call(&app, "GET", "/api/dlq/9-9", tok, None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, "GET", "/api/dlq/nine", tok, None).await.0,
        StatusCode::BAD_REQUEST
    );

    let (s, v) = call(&app, "POST", &format!("{one}/replay"), tok, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "replayed");
    let (s, v) = call(
        &app,
        "POST",
        &format!("{one}/replay"),
        tok,
        Some(r#"{"by": "alice"}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["outcome"], "already_replayed");
    assert_eq!(read_all(&b.bus, CANONICAL).await.len(), 1);
    assert_eq!(
        call(&app, "POST", "/api/dlq/9-9/replay", tok, None).await.0,
        StatusCode::NOT_FOUND
    );

    let other = format!("/api/dlq/{}", ids["200"]);
    assert_eq!(
        call(&app, "POST", &format!("{other}/discard"), tok, None)
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(
            &app,
            "POST",
            &format!("{other}/discard"),
            tok,
            Some(r#"{"reason": "", "by": "alice"}"#)
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    let body = r#"{"reason": "customer closed", "by": "alice"}"#;
    let (s, v) = call(&app, "POST", &format!("{other}/discard"), tok, Some(body)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["outcome"], "discarded");
    // Replaying a discarded letter conflicts; discarding a replayed one too.
    let (s, v) = call(&app, "POST", &format!("{other}/replay"), tok, None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["outcome"], "discarded");
    assert_eq!(
        call(&app, "POST", &format!("{one}/discard"), tok, Some(body))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        call(&app, "POST", "/api/dlq/9-9/discard", tok, Some(body))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, v) = call(&app, "GET", "/api/dlq?status=all", tok, None).await;
    assert_eq!(v["counts"]["replayed"], 1);
    assert_eq!(v["counts"]["discarded"], 1);
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 3);
}

#[test]
fn the_admin_token_is_a_secret_reference() {
    let dir = tempfile::tempdir().unwrap();
    let inline = "[http]\nadmin_token = \"s3cr3t\"\n";
    let problems = crate::config::parse(inline, dir.path().to_path_buf()).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.path == "http.admin_token" && p.line == Some(2)),
        "{problems:?}"
    );
    let cfg = crate::config::parse(
        "[http]\nadmin_token = \"file:admin.token\"\n",
        dir.path().to_path_buf(),
    )
    .unwrap();
    let env = crate::config::check_environment(&cfg);
    assert!(
        env.iter().any(|p| p.starts_with("http.admin_token:")),
        "{env:?}"
    );
    std::fs::write(dir.path().join("admin.token"), "t\n").unwrap();
    assert!(crate::config::check_environment(&cfg).is_empty());
}

#[tokio::test]
async fn the_cli_reports_and_exits_by_outcome() {
    let b = bed();
    let ids = three(&b).await;
    let dir = b._dir.path();
    std::fs::write(
        dir.join("hub.toml"),
        "[hub]\ndata_dir = \".\"\n[bus]\nkind = \"embedded\"\n",
    )
    .unwrap();
    let config = dir.join("hub.toml");
    let run = |cmd: cli::DlqCommand| async {
        let mut out = Vec::new();
        let code = cli::run(cmd, &mut out).await.unwrap();
        (code, String::from_utf8(out).unwrap())
    };

    let (code, text) = run(cli::DlqCommand::List {
        config: config.clone(),
        sink: None,
        status: StatusFilter::Pending,
        limit: 100,
        format: cli::Format::Text,
    })
    .await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(text.contains("3 pending"), "{text}");
    assert!(
        text.contains(&format!("{}  pending  sink:crm", ids["100"])),
        "{text}"
    );
    assert!(text.contains("origin=hub.canonical/3/41"), "{text}");
    assert!(text.contains("error: crm rejected"), "{text}");
    assert!(!text.contains(NAME));

    let show = |payload| cli::DlqCommand::Show {
        config: config.clone(),
        id: ids["100"].to_string(),
        payload,
        format: cli::Format::Text,
    };
    let (_, text) = run(show(false)).await;
    assert!(text.contains("envelope id    env-100"), "{text}");
    assert!(!text.contains(NAME));
    let (_, text) = run(show(true)).await;
    assert!(text.contains(NAME));

    let replay = |force| cli::DlqCommand::Replay {
        config: config.clone(),
        ids: vec![ids["100"].to_string()],
        all_pending: false,
        sink: None,
        dry_run: false,
        force,
        by: Some("alice".into()),
    };
    let (code, text) = run(replay(false)).await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(text.contains("replayed to hub.canonical"), "{text}");
    let (code, text) = run(replay(false)).await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(text.contains("already replayed at"), "{text}");

    let (code, text) = run(cli::DlqCommand::Discard {
        config: config.clone(),
        ids: vec![ids["100"].to_string(), ids["200"].to_string()],
        reason: "closed".into(),
        by: None,
    })
    .await;
    assert_eq!(code, std::process::ExitCode::from(1));
    assert!(text.contains("cannot be discarded"), "{text}");
    assert!(
        text.contains(&format!("{}: discarded", ids["200"])),
        "{text}"
    );

    let (code, text) = run(cli::DlqCommand::Replay {
        config: config.clone(),
        ids: Vec::new(),
        all_pending: true,
        sink: None,
        dry_run: false,
        force: false,
        by: None,
    })
    .await;
    assert_eq!(code, std::process::ExitCode::SUCCESS);
    assert!(
        text.contains("replayed 1 pending dead letter(s) of hub.dlq"),
        "{text}"
    );
}

/// A letter written twice (the hub stopped between writing it and remembering it) is listed
/// and replayed once; a letter of the same record after a replay is a letter of its own.
#[tokio::test]
async fn second_copies_are_neither_listed_nor_replayed() {
    let b = bed();
    let first = letter("100", ("sink", "crm"), EARLY);
    b.bus
        .publish(
            TOPIC,
            vec![first.clone(), first, letter("200", ("sink", "crm"), EARLY)],
        )
        .await
        .unwrap();
    let l = b
        .dlq
        .list(&ListQuery {
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(l.matching, 2);
    assert_eq!((l.counts.pending, l.counts.copies), (2, 1));

    let summary = b
        .dlq
        .replay_all_pending(&opts("ops"), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(summary.replayed, 2);
    let replayed = read_all(&b.bus, CANONICAL).await;
    assert_eq!(replayed.len(), 2, "each record replayed once");

    // The replayed record fails again: a new letter, carrying where it was replayed from.
    let mut again = letter("100", ("sink", "crm"), LATER);
    again.headers.push((
        REPLAYED_FROM.into(),
        format!("dlq:{}", l.dead_letters[0].id),
    ));
    b.bus.publish(TOPIC, vec![again]).await.unwrap();
    let l = b
        .dlq
        .list(&ListQuery {
            status: StatusFilter::All,
            limit: 100,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(l.matching, 3);
    assert_eq!(l.counts.copies, 1);
}
