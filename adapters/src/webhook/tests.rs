//! Tests of webhook signature checking, event splitting and the config.

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::config::{EventIdSource, WebhookConfig};
use super::verify::{Verifier, VerifyError, event_ids, sign, split_events};

const SECRET: &[u8] = b"whsec-test-0123456789";

#[test]
fn signature_is_hmac_sha256_over_timestamp_dot_body() {
    // Computed independently: printf '1700000000.{"id":"evt-1"}' |
    //   openssl dgst -sha256 -hmac 'whsec-test-0123456789'
    assert_eq!(
        sign(SECRET, 1_700_000_000, br#"{"id":"evt-1"}"#),
        "sha256=ffa4bc6a2680a2682e8c2a72b2a95ab54237e9594cc81bc56c10cf8bc6345995"
    );
}

#[test]
fn verify_accepts_a_good_signature_and_refuses_everything_else() {
    let v = Verifier::new(SECRET, 300);
    let now = Utc.timestamp_opt(1_700_000_100, 0).unwrap();
    let body = br#"{"id":"evt-1"}"#;
    let ts = b"1700000000";
    let good = sign(SECRET, 1_700_000_000, body);
    assert_eq!(
        v.verify(Some(good.as_bytes()), Some(ts), body, now),
        Ok(1_700_000_000)
    );
    let mismatch = |detail| Err(VerifyError::Signature { detail });
    // Another body, another timestamp, another secret, no or malformed headers.
    assert_eq!(
        v.verify(Some(good.as_bytes()), Some(ts), br#"{"id":"evt-2"}"#, now),
        mismatch("mac differs")
    );
    assert_eq!(
        v.verify(Some(good.as_bytes()), Some(b"1700000001"), body, now),
        mismatch("mac differs")
    );
    let other = sign(b"another secret", 1_700_000_000, body);
    assert_eq!(
        v.verify(Some(other.as_bytes()), Some(ts), body, now),
        mismatch("mac differs")
    );
    assert_eq!(
        v.verify(None, Some(ts), body, now),
        mismatch("no signature header")
    );
    assert_eq!(
        v.verify(Some(good.as_bytes()), None, body, now),
        mismatch("no timestamp header")
    );
    assert_eq!(
        v.verify(Some(good.as_bytes()), Some(b"-5"), body, now),
        mismatch("timestamp is not Unix seconds")
    );
    assert_eq!(
        v.verify(Some(&good.as_bytes()[7..]), Some(ts), body, now),
        mismatch("signature is not sha256=<hex>")
    );
    assert_eq!(
        v.verify(Some(b"sha256=zz"), Some(ts), body, now),
        mismatch("signature is not hex")
    );
    // A truncated MAC is refused (verify_slice wants the full length).
    assert_eq!(
        v.verify(Some(&good.as_bytes()[..41]), Some(ts), body, now),
        mismatch("mac differs")
    );
    // The message never carries the secret or the MAC.
    let e = v
        .verify(Some(other.as_bytes()), Some(ts), body, now)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "signature mismatch (mac differs)");
}

#[test]
fn stale_only_after_a_good_signature() {
    let v = Verifier::new(SECRET, 300);
    let body = b"{}";
    let signed_at = 1_700_000_000;
    let sig = sign(SECRET, signed_at, body);
    let ts = signed_at.to_string();
    let at = |secs: i64| Utc.timestamp_opt(secs, 0).unwrap();
    assert!(
        v.verify(
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            body,
            at(signed_at + 300)
        )
        .is_ok()
    );
    assert!(
        v.verify(
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            body,
            at(signed_at - 300)
        )
        .is_ok()
    );
    assert_eq!(
        v.verify(
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            body,
            at(signed_at + 301)
        ),
        Err(VerifyError::Stale {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
    assert!(matches!(
        v.verify(
            Some(sig.as_bytes()),
            Some(ts.as_bytes()),
            body,
            at(signed_at - 4_000)
        ),
        Err(VerifyError::Stale { .. })
    ));
    // A bad signature with an old timestamp is a mismatch, not "stale".
    assert!(matches!(
        v.verify(
            Some(b"sha256=00"),
            Some(ts.as_bytes()),
            body,
            at(signed_at + 4_000)
        ),
        Err(VerifyError::Signature { .. })
    ));
}

#[test]
fn bodies_split_into_events() {
    assert_eq!(
        split_events(br#"{"id": 1}"#).unwrap(),
        vec![json!({"id": 1})]
    );
    assert_eq!(
        split_events(br#"{"events": [{"id": 1}, {"id": 2}]}"#).unwrap(),
        vec![json!({"id": 1}), json!({"id": 2})]
    );
    assert_eq!(
        split_events(br#"{"events": []}"#).unwrap(),
        Vec::<serde_json::Value>::new()
    );
    assert_eq!(
        split_events(br#"{"events": {"id": 1}}"#).unwrap_err(),
        "`events` must be an array"
    );
    assert_eq!(
        split_events(br#"{"events": [], "x": 1}"#).unwrap_err(),
        "a body with `events` must hold nothing else"
    );
    assert!(
        split_events(b"[1, 2]")
            .unwrap_err()
            .starts_with("body must be a JSON object")
    );
    assert_eq!(
        split_events(b"{\"id\": ").unwrap_err(),
        "body is not JSON (Eof error at line 1 column 7)"
    );
}

#[test]
fn event_ids_come_from_a_path_or_a_header() {
    let events = vec![
        json!({"id": "evt-1"}),
        json!({"id": 42}),
        json!({"id": ""}),
        json!({"id": {"x": 1}}),
        json!({"other": 1}),
    ];
    let by_path = WebhookConfig::new("env:S").event_id().unwrap();
    assert_eq!(
        event_ids(&events, &by_path, None),
        vec![
            Ok("evt-1".to_string()),
            Ok("42".to_string()),
            Err("event id is empty or longer than 200".to_string()),
            Err("event id must be a string or a number".to_string()),
            Err("no event id at `id`".to_string()),
        ]
    );
    let mut cfg = WebhookConfig::new("env:S");
    cfg.event_id_header = Some("X-Hub-Delivery".into());
    let by_header = cfg.event_id().unwrap();
    assert!(matches!(by_header, EventIdSource::Header(_)));
    assert_eq!(
        event_ids(&events[..1], &by_header, Some(b"d-7")),
        vec![Ok("d-7".to_string())]
    );
    assert_eq!(
        event_ids(&events[..2], &by_header, Some(b"d-7")),
        vec![Ok("d-7#0".to_string()), Ok("d-7#1".to_string())]
    );
    assert_eq!(
        event_ids(&events[..1], &by_header, None),
        vec![Err("no usable `x-hub-delivery` header".to_string())]
    );
}

#[test]
fn config_parses_with_defaults_and_validation_names_fields() {
    let cfg: WebhookConfig = toml::from_str(
        r#"
secret = "env:ABS_WEBHOOK_SECRET"
event_id_path = "$.event.id"
max_body_bytes = 262144
"#,
    )
    .unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.signature_header, "X-Hub-Signature");
    assert_eq!(cfg.timestamp_header, "X-Hub-Timestamp");
    assert_eq!(cfg.tolerance_secs, 300);
    assert_eq!(cfg.keep_ids_secs, 86_400);
    let check = |edit: &dyn Fn(&mut WebhookConfig), expected: &str| {
        let mut c = cfg.clone();
        edit(&mut c);
        assert_eq!(c.validate().unwrap_err().to_string(), expected);
    };
    check(
        &|c| c.secret = "hunter2".into(),
        "invalid webhook config: field secret: secrets must be references (`env:NAME` or `file:PATH`), never inline values",
    );
    check(
        &|c| c.event_id_header = Some("X-Id".into()),
        "invalid webhook config: field event_id_path: give either event_id_path or event_id_header, not both",
    );
    check(
        &|c| c.signature_header = "bad header".into(),
        "invalid webhook config: field signature_header: not a valid header name",
    );
    check(
        &|c| c.keep_ids_secs = 10,
        "invalid webhook config: field keep_ids_secs: must not be smaller than tolerance_secs (a replay inside the window must be recognised)",
    );
    check(
        &|c| c.event_id_path = Some("a..b".into()),
        "invalid webhook config: field event_id_path: empty key at character 3",
    );
    assert!(toml::from_str::<WebhookConfig>("secret = \"env:S\"\ncolour = 1").is_err());
}
