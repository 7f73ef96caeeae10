//! Tests of the AML provider client against the simulator on a local port.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use compliance::{EntityKind, IdKind, Identifier, PartialDate, Subject};
use serde_json::json;

use super::api::parse_screen_response;
use super::simulator::{AmlSimulator, Fault, SimEntry};
use super::*;

const KEY: &str = "sim-key-0001";

/// Values of the screened subject that must never show in an error message.
const PERSONAL: [&str; 5] = ["Petrov", "Sergei", "1970", "7707083893", "Ivanov"];

fn entries() -> Vec<SimEntry> {
    vec![
        SimEntry::new("ofac-sdn", "12345", "IVANOV Ivan Ivanovich"),
        SimEntry::new("un", "QDi.001", "Global Trade Holdings Ltd"),
        SimEntry::new("pep", "P-7", "Ivanova Maria"),
    ]
}

async fn start(sim: &AmlSimulator) -> SocketAddr {
    sim.clone().serve("127.0.0.1:0").await.unwrap().0
}

fn fast_config(addr: SocketAddr) -> AmlConfig {
    AmlConfig {
        initial_backoff_ms: 10,
        max_backoff_ms: 40,
        timeout_ms: 2_000,
        ..AmlConfig::new(format!("http://{addr}/"), KEY)
    }
}

fn person(names: &[&str]) -> Subject {
    Subject {
        kind: Some(EntityKind::Person),
        names: names.iter().map(|n| (*n).to_owned()).collect(),
        birth_date: Some(PartialDate {
            year: 1970,
            month: Some(3),
            day: Some(1),
        }),
        nationality: Some("RU".to_owned()),
        identifiers: vec![Identifier {
            kind: IdKind::Inn,
            value: "7707083893".to_owned(),
            country: Some("ru".to_owned()),
        }],
    }
}

fn assert_no_personal_data(err: &AmlError) {
    let text = err.to_string();
    let debug = format!("{err:?}");
    for value in PERSONAL {
        assert!(!text.contains(value), "{value} in message: {text}");
        assert!(!debug.contains(value), "{value} in debug: {debug}");
    }
    assert!(!text.contains(KEY), "api key in message: {text}");
}

#[tokio::test]
async fn a_hit_comes_back_with_its_explanation() {
    let sim = AmlSimulator::new(KEY, entries());
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-42", &person(&["Ivanov Ivan Ivanovich"]));
    let (matches, attempts) = client.screen_counted(&request).await.unwrap();
    assert_eq!(attempts, 1);
    assert_eq!(
        matches,
        vec![ProviderMatch {
            list: "ofac-sdn".into(),
            entry_id: "12345".into(),
            score: 1.0,
            matched_name: "IVANOV Ivan Ivanovich".into(),
            query_name: "Ivanov Ivan Ivanovich".into(),
            explanation: json!([
                { "factor": "name", "weight": 1.0, "detail": "3 of 3 name words in common" }
            ]),
        }]
    );
    assert_eq!(sim.stats().screened, 1);
}

#[tokio::test]
async fn partial_hits_are_sorted_and_min_score_filters() {
    let sim = AmlSimulator::new(KEY, entries()).with_min_score(0.3);
    let addr = start(&sim).await;
    // "Ivanov Ivan" shares 2 of 3 words with the SDN entry; "Maria Ivanova" 2 of 2 with the
    // PEP entry, through the second name.
    let request =
        ScreenRequest::from_subject("party-43", &person(&["Ivanov Ivan", "Maria Ivanova"]));
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let matches = client.screen(&request).await.unwrap();
    // Scores in thousandths: a float that crossed JSON is compared at that precision.
    let got: Vec<(&str, i64, &str)> = matches
        .iter()
        .map(|m| {
            let millis = (m.score * 1000.0).round() as i64;
            (m.entry_id.as_str(), millis, m.query_name.as_str())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("P-7", 1000, "Maria Ivanova"),
            ("12345", 667, "Ivanov Ivan")
        ]
    );

    let client = AmlClient::new(AmlConfig {
        min_score: 0.9,
        ..fast_config(addr)
    })
    .unwrap();
    let matches = client.screen(&request).await.unwrap();
    assert_eq!(matches.len(), 1);
    assert_eq!(matches[0].entry_id, "P-7");
}

#[tokio::test]
async fn a_clear_subject_gives_no_matches() {
    let sim = AmlSimulator::new(KEY, entries());
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-44", &person(&["Petrov Sergei"]));
    assert_eq!(client.screen(&request).await.unwrap(), vec![]);
    assert_eq!(sim.requests(), 1);
}

#[tokio::test]
async fn unavailable_twice_then_success_is_retried() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::Status(503), 2);
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-45", &person(&["Ivanov Ivan Ivanovich"]));
    let (matches, attempts) = client.screen_counted(&request).await.unwrap();
    assert_eq!(attempts, 3);
    assert_eq!(sim.requests(), 3);
    assert_eq!(sim.stats().faults_served, 2);
    assert_eq!(matches.len(), 1);
}

#[tokio::test]
async fn every_transient_status_is_retried() {
    for status in [408, 500, 502, 503, 504] {
        let sim = AmlSimulator::new(KEY, entries());
        sim.inject(Fault::Status(status), 1);
        let addr = start(&sim).await;
        let client = AmlClient::new(fast_config(addr)).unwrap();
        let request = ScreenRequest::from_subject("party-46", &person(&["Petrov Sergei"]));
        let (_, attempts) = client.screen_counted(&request).await.unwrap();
        assert_eq!((status, attempts), (status, 2));
    }
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(
        Fault::RateLimit {
            retry_after_secs: 1,
        },
        1,
    );
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-47", &person(&["Petrov Sergei"]));
    let started = Instant::now();
    let (_, attempts) = client.screen_counted(&request).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(attempts, 2);
    assert!(
        elapsed >= Duration::from_secs(1),
        "Retry-After honoured: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // One attempt reports the wait it was asked for.
    sim.inject(
        Fault::RateLimit {
            retry_after_secs: 7,
        },
        1,
    );
    let err = client.screen_once(&request).await.unwrap_err();
    assert!(err.is_transient());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.code(), Some("rate_limited"));
    assert_eq!(
        err.to_string(),
        "aml provider answered 429 (rate_limited) for reference party-47: rate limited"
    );
}

#[tokio::test]
async fn unprocessable_is_permanent_and_not_retried() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::Status(422), 1);
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-48", &person(&["Petrov Sergei"]));
    let err = client.screen(&request).await.unwrap_err();
    assert_eq!(sim.requests(), 1);
    assert!(!err.is_transient() && !err.is_auth());
    assert_eq!(err.status(), Some(422));
    assert_eq!(err.attempts(), Some(1));
    assert_eq!(
        err.to_string(),
        "aml provider answered 422 (injected_fault) for reference party-48 (after 1 attempt)"
    );
    assert_no_personal_data(&err);

    // The provider's own validation: an impossible birth date typed by hand. Its message
    // may quote the value; only the code is kept.
    let mut request = request;
    request.subject.birth_date = Some("1970-13-45".into());
    let err = client.screen(&request).await.unwrap_err();
    assert_eq!(sim.requests(), 2);
    assert_eq!(err.code(), Some("validation_failed"));
    assert!(!err.is_transient());
    assert_no_personal_data(&err);

    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::Status(400), 1);
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let err = client.screen(&request).await.unwrap_err();
    assert_eq!(
        (err.status(), err.is_transient(), sim.requests()),
        (Some(400), false, 1)
    );
}

#[tokio::test]
async fn a_refused_key_is_an_auth_error() {
    let sim = AmlSimulator::new(KEY, entries());
    let addr = start(&sim).await;
    let client = AmlClient::new(AmlConfig {
        api_key: "wrong-key".into(),
        ..fast_config(addr)
    })
    .unwrap();
    let request = ScreenRequest::from_subject("party-49", &person(&["Petrov Sergei"]));
    let err = client.screen(&request).await.unwrap_err();
    assert!(err.is_auth() && !err.is_transient(), "{err:?}");
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.code(), Some("unauthorized"));
    assert_eq!(sim.requests(), 1);
    assert_eq!(sim.stats().rejected, 1);
    let text = err.to_string();
    assert!(
        text.contains("check the api key") && !text.contains("wrong-key"),
        "{text}"
    );
    assert_no_personal_data(&err);

    sim.inject(Fault::Status(403), 1);
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let err = client.screen(&request).await.unwrap_err();
    assert!(err.is_auth() && !err.is_transient());
    assert_eq!(sim.requests(), 2);
}

#[tokio::test]
async fn a_malformed_body_is_permanent_and_named() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::MalformedJson, 1);
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let request = ScreenRequest::from_subject("party-50", &person(&["Ivanov Ivan Ivanovich"]));
    let err = client.screen(&request).await.unwrap_err();
    assert!(
        matches!(err.last(), AmlError::BadResponse { status: 200, .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());
    assert_eq!(sim.requests(), 1);
    let text = err.to_string();
    assert!(
        text.starts_with(
            "aml provider answered 200 for reference party-50 with an unusable body: \
             not json (the body ends early at line 1 column"
        ),
        "{text}"
    );
    assert_no_personal_data(&err);
}

#[test]
fn unusable_answers_are_named_by_path_without_values() {
    let good = json!({ "list": "ofac-sdn", "entry_id": "1", "score": 0.9,
        "matched_name": "Ivanov Ivan", "query_name": "Petrov Sergei",
        "reasons": [{ "factor": "name", "weight": 0.9, "detail": "Petrov ~ Ivanov" }] });
    let with = |field: &str, value: serde_json::Value| {
        let mut m = good.clone();
        m[field] = value;
        json!({ "reference": "r-1", "matches": [good.clone(), m] })
    };
    let without = |field: &str| {
        let mut m = good.clone();
        m.as_object_mut().unwrap().remove(field);
        json!({ "reference": "r-1", "matches": [m] })
    };
    let cases = [
        (json!([]), "expected a json object, found an array"),
        (
            json!({ "reference": "r-1" }),
            "matches: missing (an empty array means no matches)",
        ),
        (
            json!({ "reference": "r-1", "matches": null }),
            "matches: expected an array, found null",
        ),
        (
            json!({ "reference": "r-2", "matches": [] }),
            "reference: the answer is for another reference",
        ),
        (
            with("score", json!("Petrov")),
            "matches[1].score: expected a number from 0 to 1, found a string",
        ),
        (
            with("score", json!(1.5)),
            "matches[1].score: 1.5 is outside 0..1",
        ),
        (with("list", json!("")), "matches[1].list: empty"),
        (
            with("entry_id", json!(["Petrov"])),
            "matches[1].entry_id: expected a string, found an array",
        ),
        (without("matched_name"), "matches[0].matched_name: missing"),
        (
            with("query_name", json!(7)),
            "matches[1].query_name: expected a string, found a number",
        ),
        (without("reasons"), "matches[0].reasons: missing"),
        (
            with("reasons", json!([{ "weight": 1 }])),
            "matches[1].reasons[0].factor: missing",
        ),
        (
            with(
                "reasons",
                json!([{ "factor": "name", "detail": ["Petrov"] }]),
            ),
            "matches[1].reasons[0].detail: expected a string, found an array",
        ),
        (
            with("reasons", json!(["Petrov"])),
            "matches[1].reasons[0]: expected an object, found a string",
        ),
    ];
    for (body, expected) in cases {
        let bytes = serde_json::to_vec(&body).unwrap();
        let reason = parse_screen_response(&bytes, "r-1").unwrap_err();
        assert_eq!(reason, expected);
        for value in PERSONAL {
            assert!(!reason.contains(value), "{reason}");
        }
    }
    for (bytes, expected) in [
        (&b""[..], "not json (the body is empty)"),
        (
            &b"<html>bad gateway</html>"[..],
            "not json (syntax error at line 1 column 1)",
        ),
    ] {
        assert_eq!(parse_screen_response(bytes, "r-1").unwrap_err(), expected);
    }

    // An integer entry id is taken as text; extra fields are ignored; no reference is fine.
    let body = json!({ "matches": [{ "list": "un", "entry_id": 6908555, "score": 1,
        "matched_name": "A", "query_name": "B", "reasons": [], "programs": ["X"] }] });
    let matches = parse_screen_response(&serde_json::to_vec(&body).unwrap(), "r-1").unwrap();
    assert_eq!(
        (matches[0].entry_id.as_str(), matches[0].score),
        ("6908555", 1.0)
    );
    assert_eq!(matches[0].explanation, json!([]));
}

#[tokio::test]
async fn a_timeout_is_transient_and_retried() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::Delay(Duration::from_secs(3)), 1);
    let addr = start(&sim).await;
    let client = AmlClient::new(AmlConfig {
        timeout_ms: 300,
        ..fast_config(addr)
    })
    .unwrap();
    let request = ScreenRequest::from_subject("party-51", &person(&["Ivanov Ivan Ivanovich"]));
    let started = Instant::now();
    let (matches, attempts) = client.screen_counted(&request).await.unwrap();
    assert_eq!((attempts, matches.len()), (2, 1));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    sim.inject(Fault::Delay(Duration::from_secs(3)), 2);
    let client = AmlClient::new(AmlConfig {
        timeout_ms: 300,
        max_attempts: 2,
        ..fast_config(addr)
    })
    .unwrap();
    let err = client.screen(&request).await.unwrap_err();
    assert!(
        matches!(
            err.last(),
            AmlError::Timeout {
                timeout_ms: 300,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient() && !err.is_auth());
    assert_eq!(err.attempts(), Some(2));
    assert_eq!(sim.requests(), 4);
    assert_eq!(
        err.to_string(),
        "aml provider did not answer within 300 ms (reference party-51) (after 2 attempts)"
    );
}

#[tokio::test]
async fn gives_up_after_max_attempts_with_the_last_error() {
    let sim = AmlSimulator::new(KEY, entries());
    sim.inject(Fault::Status(503), 10);
    let addr = start(&sim).await;
    let client = AmlClient::new(AmlConfig {
        max_attempts: 3,
        ..fast_config(addr)
    })
    .unwrap();
    let request = ScreenRequest::from_subject("party-52", &person(&["Petrov Sergei"]));
    let err = client.screen(&request).await.unwrap_err();
    assert_eq!(sim.requests(), 3);
    assert_eq!(sim.pending_faults(), 7);
    assert_eq!(err.attempts(), Some(3));
    assert!(err.is_transient());
    assert_eq!(err.status(), Some(503));
    assert!(err.to_string().ends_with("(after 3 attempts)"), "{err}");
    assert_no_personal_data(&err);
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = AmlClient::new(AmlConfig {
        max_attempts: 2,
        ..fast_config(addr)
    })
    .unwrap();
    let request = ScreenRequest::from_subject("party-53", &person(&["Petrov Sergei"]));
    let err = client.screen(&request).await.unwrap_err();
    assert_eq!(err.attempts(), Some(2));
    assert!(matches!(err.last(), AmlError::Connect { .. }), "{err:?}");
    assert!(err.is_transient());
    assert!(
        !err.to_string().contains("/v1/screen"),
        "no url in messages: {err}"
    );
    assert_no_personal_data(&err);
}

#[tokio::test]
async fn a_request_without_names_or_reference_is_not_sent() {
    let sim = AmlSimulator::new(KEY, entries());
    let addr = start(&sim).await;
    let client = AmlClient::new(fast_config(addr)).unwrap();
    let cases = [
        (
            ScreenRequest::from_subject("party-54", &person(&["  ", ""])),
            "reference party-54: subject.names: at least one name is required",
        ),
        (
            ScreenRequest::from_subject("", &person(&["Petrov Sergei"])),
            "reference <invalid>: reference: must not be empty",
        ),
        (
            ScreenRequest::from_subject("a\nb", &person(&["Petrov Sergei"])),
            "reference <invalid>: reference: contains control characters",
        ),
        (
            ScreenRequest::from_subject(&"r".repeat(129), &person(&["Petrov Sergei"])),
            "reference <invalid>: reference: longer than 128 characters",
        ),
    ];
    for (request, expected) in cases {
        let err = client.screen(&request).await.unwrap_err();
        assert!(matches!(err, AmlError::Request { .. }), "{err:?}");
        assert!(err.to_string().ends_with(expected), "{err}");
        assert!(!err.is_transient());
        assert_no_personal_data(&err);
    }
    let mut request = ScreenRequest::from_subject("party-55", &person(&["Petrov Sergei"]));
    request.subject.names.push(" ".into());
    let err = client.screen_once(&request).await.unwrap_err();
    assert!(
        err.to_string().ends_with("subject.names[1]: blank"),
        "{err}"
    );
    assert_eq!(sim.requests(), 0);
}

#[test]
fn from_subject_builds_the_documented_wire_shape() {
    let mut subject = person(&[" Ivanov Ivan ", "Ivanov Ivan", "", "Иванов Иван"]);
    subject.identifiers.push(Identifier {
        kind: IdKind::Passport,
        value: "4509123456".into(),
        country: Some("Russia".into()),
    });
    subject.identifiers.push(Identifier {
        kind: IdKind::Ogrn,
        value: " ".into(),
        country: None,
    });
    let request = ScreenRequest::from_subject("party-56", &subject);
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        json!({
            "reference": "party-56",
            "subject": {
                "type": "person",
                "names": ["Ivanov Ivan", "Иванов Иван"],
                "birth_date": "1970-03-01",
                "nationality": "ru",
                "identifiers": [
                    { "type": "inn", "value": "7707083893", "country": "ru" },
                    { "type": "passport", "value": "4509123456" }
                ]
            }
        })
    );

    let org = Subject {
        kind: Some(EntityKind::Organization),
        names: vec!["Global Trade Holdings Ltd".into()],
        ..Subject::default()
    };
    assert_eq!(
        serde_json::to_value(ScreenRequest::from_subject("o-1", &org)).unwrap()["subject"],
        json!({ "type": "organization", "names": ["Global Trade Holdings Ltd"],
                "birth_date": null, "nationality": null, "identifiers": [] })
    );

    let date = |year, month, day| {
        let s = Subject {
            kind: Some(EntityKind::Unknown),
            names: vec!["X".into()],
            birth_date: Some(PartialDate { year, month, day }),
            ..Subject::default()
        };
        let r = ScreenRequest::from_subject("d", &s);
        assert_eq!(r.subject.kind, None);
        r.subject.birth_date
    };
    assert_eq!(date(1965, None, None).as_deref(), Some("1965"));
    assert_eq!(date(1965, Some(3), None).as_deref(), Some("1965-03"));
    assert_eq!(date(1965, Some(2), Some(30)).as_deref(), Some("1965-02"));
    assert_eq!(date(1965, Some(13), Some(1)).as_deref(), Some("1965"));
    assert_eq!(date(0, Some(1), Some(1)), None);
}

#[test]
fn debug_output_hides_personal_data_and_the_key() {
    let request = ScreenRequest::from_subject("party-57", &person(&["Petrov Sergei"]));
    let debug = format!("{request:?}");
    assert!(
        debug.contains("party-57") && debug.contains("Inn"),
        "{debug}"
    );
    let found = ProviderMatch {
        list: "pep".into(),
        entry_id: "P-7".into(),
        score: 0.8,
        matched_name: "Ivanov Ivan".into(),
        query_name: "Petrov Sergei".into(),
        explanation: json!([{ "factor": "name", "detail": "Petrov" }]),
    };
    let match_debug = format!("{found:?}");
    for value in PERSONAL {
        assert!(!debug.contains(value), "{debug}");
        assert!(!match_debug.contains(value), "{match_debug}");
    }
    assert!(match_debug.contains("<1 reasons hidden>"), "{match_debug}");

    let client = AmlClient::new(AmlConfig::new("https://aml.example/api/", KEY)).unwrap();
    assert_eq!(client.screen_url(), "https://aml.example/api/v1/screen");
    let debug = format!("{client:?}");
    assert!(
        !debug.contains(KEY) && debug.contains("<hidden>"),
        "{debug}"
    );
}

#[test]
fn config_defaults_validation_and_the_documented_example() {
    // The example of docs/aml-provider.md, with the key resolved.
    let cfg: AmlConfig = serde_json::from_value(json!({
        "base_url": "https://screening.provider.example/api",
        "api_key": "k-123",
        "timeout_ms": 5000,
        "max_attempts": 4,
        "initial_backoff_ms": 250,
        "max_backoff_ms": 8000,
        "min_score": 0.6
    }))
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!((cfg.max_attempts, cfg.min_score), (4, 0.6));

    let cfg: AmlConfig =
        serde_json::from_value(json!({ "base_url": "http://aml.local", "api_key": "k" })).unwrap();
    assert_eq!(
        (
            cfg.timeout_ms,
            cfg.max_attempts,
            cfg.initial_backoff_ms,
            cfg.max_backoff_ms
        ),
        (10_000, 5, 200, 10_000)
    );
    assert_eq!(cfg.min_score, 0.0);

    let err = serde_json::from_value::<AmlConfig>(
        json!({ "base_url": "http://aml.local", "api_key": "k", "retries": 1 }),
    )
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
    let err =
        serde_json::from_value::<AmlConfig>(json!({ "base_url": "http://aml.local" })).unwrap_err();
    assert!(err.to_string().contains("missing field `api_key`"), "{err}");

    let base = || AmlConfig::new("http://aml.local", "k3y-secret");
    for (cfg, field) in [
        (AmlConfig::new("aml.local", "k"), "base_url"),
        (AmlConfig::new("ftp://aml.local", "k"), "base_url"),
        (AmlConfig::new("http://aml.local/?a=1", "k"), "base_url"),
        (AmlConfig::new("http://user:pw@aml.local/", "k"), "base_url"),
        (AmlConfig::new("http://aml.local", ""), "api_key"),
        (AmlConfig::new("http://aml.local", "k3y secret"), "api_key"),
        (
            AmlConfig {
                timeout_ms: 0,
                ..base()
            },
            "timeout_ms",
        ),
        (
            AmlConfig {
                max_attempts: 0,
                ..base()
            },
            "max_attempts",
        ),
        (
            AmlConfig {
                initial_backoff_ms: 10,
                max_backoff_ms: 5,
                ..base()
            },
            "max_backoff_ms",
        ),
        (
            AmlConfig {
                min_score: 1.5,
                ..base()
            },
            "min_score",
        ),
        (
            AmlConfig {
                min_score: f64::NAN,
                ..base()
            },
            "min_score",
        ),
    ] {
        let err = AmlClient::new(cfg).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&format!("field {field}")), "{text}");
        assert!(!text.contains("k3y") && !text.contains("pw@"), "{text}");
    }
    let debug = format!("{:?}", base());
    assert!(
        !debug.contains("k3y-secret") && debug.contains("<hidden>"),
        "{debug}"
    );
}

#[tokio::test]
async fn the_simulator_refuses_what_a_provider_would() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = AmlSimulator::new(KEY, entries());
    let addr = start(&sim).await;
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/screen");
    let post = |body: &'static str, key: Option<&'static str>| {
        let mut req = http.post(&url).body(body);
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        req.send()
    };
    let cases = [
        (post("{}", None).await, 401, "unauthorized"),
        (post("not json", Some(KEY)).await, 400, "invalid_json"),
        (post(r#"{"reference":"r","subject":{"type":"person","names":[]}}"#, Some(KEY)).await, 422, "validation_failed"),
        (post(r#"{"reference":"r","subject":{"type":"ship","names":["A"]}}"#, Some(KEY)).await, 422, "validation_failed"),
        (post(r#"{"reference":"r","subject":{"type":null,"names":["A"],"extra":1}}"#, Some(KEY)).await, 422, "validation_failed"),
        (post(r#"{"reference":"r","subject":{"type":null,"names":["A"],"nationality":"RU"}}"#, Some(KEY)).await, 422, "validation_failed"),
        (post(r#"{"reference":"r","subject":{"type":null,"names":["A"],"birth_date":"1970-02-30"}}"#, Some(KEY)).await, 422, "validation_failed"),
        (post(r#"{"reference":"r","subject":{"type":null,"names":["A"],"identifiers":[{"type":"inn","value":""}]}}"#, Some(KEY)).await, 422, "validation_failed"),
    ];
    for (response, status, code) in cases {
        let response = response.unwrap();
        assert_eq!(response.status().as_u16(), status);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let ok = post(
        r#"{"reference":"r","subject":{"type":null,"names":["A"],"birth_date":"1970-02"}}"#,
        Some(KEY),
    )
    .await
    .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(
        (
            body["reference"].as_str(),
            body["matches"].as_array().map(Vec::len)
        ),
        (Some("r"), Some(0))
    );
    assert!(body["screened_at"].is_string());
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.rejected, stats.screened), (9, 8, 1));
}
