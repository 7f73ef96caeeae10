//! Unit tests of the Salesforce connector: configuration and error classification. The
//! exchanges with a simulated org are in `tests/tests/crm_connectors.rs`.

use std::time::Duration;

use super::client::classify;
use super::config::EXAMPLE;
use super::*;
use crate::crm::connector::{ConnectorError, WriteOutcome};

fn parse(text: &str) -> SalesforceConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn example_config_parses_and_validates() {
    let cfg = parse(EXAMPLE);
    let map = cfg.validate().unwrap();
    assert_eq!(map.targets().count(), 5);
    assert_eq!(cfg.batch_size, 200);
    SalesforceConnector::new(cfg).unwrap();
}

#[test]
fn defaults_apply_and_the_token_is_hidden() {
    let cfg = parse(
        r#"
instance_url = "https://bank.my.salesforce.com"
access_token = "super-secret"
"#,
    );
    assert_eq!(
        cfg,
        SalesforceConfig::new("https://bank.my.salesforce.com", "super-secret")
    );
    assert_eq!(cfg.api_version, "v60.0");
    assert_eq!(cfg.external_id_field, "Hub_Golden_Id__c");
    let map = cfg.validate().unwrap();
    assert_eq!(
        map.targets().count(),
        DEFAULT_FIELDS.len(),
        "the defaults parse"
    );
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("super-secret"), "{debug}");
    let connector = SalesforceConnector::new(cfg).unwrap();
    assert!(!format!("{connector:?}").contains("super-secret"));
    assert_eq!(
        connector.collection_url(),
        "https://bank.my.salesforce.com/services/data/v60.0/composite/sobjects/Contact/Hub_Golden_Id__c"
    );
    assert_eq!(
        connector.record_url("G 1/2"),
        "https://bank.my.salesforce.com/services/data/v60.0/sobjects/Contact/Hub_Golden_Id__c/G%201%2F2"
    );
}

#[test]
fn bad_values_are_named() {
    let base = SalesforceConfig::new("https://bank.my.salesforce.com", "t");
    let cases: Vec<(SalesforceConfig, &str)> = vec![
        (
            SalesforceConfig {
                instance_url: "ftp://x".into(),
                ..base.clone()
            },
            "instance_url",
        ),
        (
            SalesforceConfig {
                api_version: "60".into(),
                ..base.clone()
            },
            "api_version",
        ),
        (
            SalesforceConfig {
                api_version: "v45.0".into(),
                ..base.clone()
            },
            "api_version",
        ),
        (
            SalesforceConfig {
                sobject: "Con tact".into(),
                ..base.clone()
            },
            "sobject",
        ),
        (
            SalesforceConfig {
                external_id_field: "".into(),
                ..base.clone()
            },
            "external_id_field",
        ),
        (
            SalesforceConfig {
                batch_size: 0,
                ..base.clone()
            },
            "batch_size",
        ),
        (
            SalesforceConfig {
                batch_size: 201,
                ..base.clone()
            },
            "batch_size",
        ),
        (
            SalesforceConfig {
                fields: Some([("inn".to_owned(), "Hub_Golden_Id__c".to_owned())].into()),
                ..base.clone()
            },
            "fields",
        ),
    ];
    for (cfg, field) in cases {
        match cfg.validate() {
            Err(ConnectorError::Config { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    let err = SalesforceConnector::new(SalesforceConfig {
        access_token: "has space".into(),
        ..base
    })
    .unwrap_err();
    assert!(err.to_string().contains("access_token"), "{err}");
    assert!(
        toml::from_str::<SalesforceConfig>(
            "instance_url = \"https://x\"\naccess_token = \"t\"\nbogus = 1"
        )
        .is_err()
    );
}

fn failure(o: &WriteOutcome) -> (bool, bool, Option<u16>, Option<String>) {
    match o {
        WriteOutcome::Failed(f) => (f.transient, f.auth, f.status, f.code.clone()),
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn classification_follows_the_documented_errors() {
    let pause = Duration::from_secs(60);
    let none: &[String] = &[];
    // Review.
    for (status, code) in [
        (Some(300), None),
        (None, Some("DUPLICATE_EXTERNAL_ID")),
        (None, Some("DUPLICATES_DETECTED")),
        (Some(400), Some("DUPLICATES_DETECTED")),
    ] {
        let o = classify(status, code, none, None, pause);
        assert!(o.is_review(), "{status:?} {code:?}: {o:?}");
    }
    // Transient.
    for (status, code) in [
        (Some(403), Some("REQUEST_LIMIT_EXCEEDED")),
        (None, Some("UNABLE_TO_LOCK_ROW")),
        (Some(503), Some("SERVER_UNAVAILABLE")),
        (Some(500), None),
        (Some(502), None),
        (Some(429), None),
    ] {
        let (transient, auth, s, c) = failure(&classify(status, code, none, None, pause));
        assert!(transient && !auth, "{status:?} {code:?}");
        assert_eq!((s, c.as_deref()), (status, code));
    }
    // Auth.
    for (status, code) in [(Some(401), Some("INVALID_SESSION_ID")), (Some(401), None)] {
        let (transient, auth, _, _) = failure(&classify(status, code, none, None, pause));
        assert!(transient && auth, "{status:?} {code:?}");
    }
    // Permanent.
    for (status, code) in [
        (Some(400), Some("INVALID_FIELD")),
        (None, Some("REQUIRED_FIELD_MISSING")),
        (None, Some("STRING_TOO_LONG")),
        (None, Some("FIELD_CUSTOM_VALIDATION_EXCEPTION")),
        (Some(400), Some("MALFORMED_ID")),
        (Some(404), Some("NOT_FOUND")),
        (Some(403), Some("INSUFFICIENT_ACCESS")),
        (None, None),
    ] {
        let (transient, _, _, _) = failure(&classify(status, code, none, None, pause));
        assert!(!transient, "{status:?} {code:?}");
    }
}

#[test]
fn request_limit_waits_at_least_the_pause_and_messages_hold_no_values() {
    let pause = Duration::from_secs(60);
    let o = classify(
        Some(403),
        Some("REQUEST_LIMIT_EXCEEDED"),
        &[],
        Some(Duration::from_secs(5)),
        pause,
    );
    assert_eq!(o.failure().and_then(|f| f.retry_after), Some(pause));
    let fields = vec!["LastName".to_owned(), "Иванов <script>".to_owned()];
    let o = classify(None, Some("STRING_TOO_LONG"), &fields, None, pause);
    let msg = o.failure().map(|f| f.message.clone()).unwrap_or_default();
    assert_eq!(
        msg,
        "salesforce rejected the record STRING_TOO_LONG (fields LastName)"
    );
    let o = classify(Some(400), Some("bad code with spaces"), &[], None, pause);
    assert_eq!(o.failure().and_then(|f| f.code.clone()), None);
}
