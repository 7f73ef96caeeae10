//! Unit tests of the Dynamics 365 / Dataverse connector: configuration, URLs and error
//! classification. The exchanges with a simulated environment are in
//! `tests/tests/crm_connectors.rs`.

use std::time::Duration;

use super::client::{DUPLICATE_RECORD, SERVICE_PROTECTION, classify};
use super::config::EXAMPLE;
use super::*;
use crate::crm::connector::{ConnectorError, WriteOutcome};

fn parse(text: &str) -> DynamicsConfig {
    toml::from_str(text).unwrap()
}

#[test]
fn example_config_parses_and_validates() {
    let cfg = parse(EXAMPLE);
    cfg.validate().unwrap();
    assert_eq!(cfg.concurrency, 8);
    DynamicsConnector::new(cfg).unwrap();
}

#[test]
fn defaults_urls_and_hidden_token() {
    let cfg = parse(
        r#"
org_url = "https://bank.crm4.dynamics.com/"
access_token = "super-secret"
"#,
    );
    assert_eq!(
        cfg,
        DynamicsConfig::new("https://bank.crm4.dynamics.com/", "super-secret")
    );
    let map = cfg.validate().unwrap();
    assert_eq!(
        map.targets().count(),
        DEFAULT_FIELDS.len(),
        "the defaults parse"
    );
    assert!(!format!("{cfg:?}").contains("super-secret"));
    let connector = DynamicsConnector::new(cfg.clone()).unwrap();
    assert_eq!(
        connector.record_url("G0000000001"),
        "https://bank.crm4.dynamics.com/api/data/v9.2/contacts(hub_goldenid='G0000000001')?$select=contactid"
    );
    assert_eq!(
        connector.record_url("O'Brien & Co/1"),
        "https://bank.crm4.dynamics.com/api/data/v9.2/contacts(hub_goldenid='O%27%27Brien%20%26%20Co%2F1')?$select=contactid",
        "a quote is doubled, then everything reserved is percent-encoded"
    );
    let plain = DynamicsConnector::new(DynamicsConfig {
        return_representation: false,
        ..cfg
    })
    .unwrap();
    assert!(!plain.record_url("G1").contains('?'));
}

#[test]
fn bad_values_are_named() {
    let base = DynamicsConfig::new("https://bank.crm4.dynamics.com", "t");
    let cases: Vec<(DynamicsConfig, &str)> = vec![
        (
            DynamicsConfig {
                org_url: "bank".into(),
                ..base.clone()
            },
            "org_url",
        ),
        (
            DynamicsConfig {
                api_version: "9.2".into(),
                ..base.clone()
            },
            "api_version",
        ),
        (
            DynamicsConfig {
                entity_set: "con/tacts".into(),
                ..base.clone()
            },
            "entity_set",
        ),
        (
            DynamicsConfig {
                key_field: "".into(),
                ..base.clone()
            },
            "key_field",
        ),
        (
            DynamicsConfig {
                id_field: "a b".into(),
                ..base.clone()
            },
            "id_field",
        ),
        (
            DynamicsConfig {
                concurrency: 0,
                ..base.clone()
            },
            "concurrency",
        ),
        (
            DynamicsConfig {
                concurrency: 53,
                ..base.clone()
            },
            "concurrency",
        ),
        (
            DynamicsConfig {
                fields: Some([("inn".to_owned(), "hub_goldenid".to_owned())].into()),
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
}

fn failure(o: &WriteOutcome) -> (bool, bool) {
    match o {
        WriteOutcome::Failed(f) => (f.transient, f.auth),
        other => panic!("not a failure: {other:?}"),
    }
}

#[test]
fn classification_follows_the_documented_errors() {
    // A duplicate is a 500 by status, a review by code.
    assert!(classify(500, Some(DUPLICATE_RECORD), None).is_review());
    assert!(
        classify(500, Some("0X80040333"), None).is_review(),
        "codes compare case-insensitively"
    );
    for code in SERVICE_PROTECTION {
        assert_eq!(failure(&classify(429, Some(code), None)), (true, false));
    }
    let o = classify(429, Some("0x80072322"), Some(Duration::from_secs(7)));
    assert_eq!(
        o.failure().and_then(|f| f.retry_after),
        Some(Duration::from_secs(7))
    );
    for status in [412, 500, 502, 503, 504, 408] {
        assert_eq!(
            failure(&classify(status, None, None)),
            (true, false),
            "{status}"
        );
    }
    assert_eq!(failure(&classify(401, None, None)), (true, true));
    for (status, code) in [
        (400, Some("0x80040237")),
        (400, Some("0x0")),
        (400, Some("0x80044331")),
        (403, Some("0x80040220")),
        (404, Some("0x8006088a")),
        (405, None),
    ] {
        assert_eq!(
            failure(&classify(status, code, None)),
            (false, false),
            "{status} {code:?}"
        );
    }
    let msg = classify(400, Some("0x80044331"), None)
        .failure()
        .map(|f| f.message.clone())
        .unwrap_or_default();
    assert_eq!(msg, "dynamics answered 400 0x80044331");
}
