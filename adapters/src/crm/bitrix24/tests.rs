//! Unit tests of the Bitrix24 connector: configuration and error classification. The
//! exchanges with a simulated portal are in `tests/tests/crm_connectors.rs`.

use std::time::Duration;

use super::client::classify;
use super::config::{EXAMPLE, redacted_webhook};
use super::*;
use crate::crm::connector::ConnectorError;

fn parse(text: &str) -> Bitrix24Config {
    toml::from_str(text).unwrap()
}

#[test]
fn example_config_parses_and_validates() {
    let cfg = parse(EXAMPLE);
    cfg.validate().unwrap();
    assert_eq!(cfg.batch_size, 50);
    Bitrix24Connector::new(cfg).unwrap();
}

#[test]
fn defaults_and_the_secret_is_hidden() {
    let url = "https://bank.bitrix24.ru/rest/1/abcdef0123456789";
    let cfg = parse(&format!("webhook_url = \"{url}\""));
    assert_eq!(cfg, Bitrix24Config::new(url));
    assert_eq!((cfg.requests_per_second, cfg.burst), (2.0, 40));
    assert_eq!(cfg.base(), format!("{url}/"));
    let map = cfg.validate().unwrap();
    assert_eq!(
        map.targets().count(),
        DEFAULT_FIELDS.len(),
        "the defaults parse"
    );
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("abcdef"), "{debug}");
    assert!(
        debug.contains("https://bank.bitrix24.ru/rest/<user>/<hidden>/"),
        "{debug}"
    );
    let connector = Bitrix24Connector::new(cfg).unwrap();
    assert!(!format!("{connector:?}").contains("abcdef"));
    assert_eq!(redacted_webhook("not a url abcdef"), "<unparsable, hidden>");
}

#[test]
fn bad_values_are_named_without_the_secret() {
    let base = Bitrix24Config::new("https://bank.bitrix24.ru/rest/1/secret123/");
    let cases: Vec<(Bitrix24Config, &str)> = vec![
        (
            Bitrix24Config {
                webhook_url: "https://bank.bitrix24.ru/secret123/".into(),
                ..base.clone()
            },
            "webhook_url",
        ),
        (
            Bitrix24Config {
                webhook_url: "https://bank.bitrix24.ru/rest/1/secret123/?x=1".into(),
                ..base.clone()
            },
            "webhook_url",
        ),
        (
            Bitrix24Config {
                originator_id: String::new(),
                ..base.clone()
            },
            "originator_id",
        ),
        (
            Bitrix24Config {
                batch_size: 51,
                ..base.clone()
            },
            "batch_size",
        ),
        (
            Bitrix24Config {
                requests_per_second: 0.0,
                ..base.clone()
            },
            "requests_per_second",
        ),
        (
            Bitrix24Config {
                requests_per_second: f64::NAN,
                ..base.clone()
            },
            "requests_per_second",
        ),
        (
            Bitrix24Config {
                burst: 0,
                ..base.clone()
            },
            "burst",
        ),
        (
            Bitrix24Config {
                value_type: "a b".into(),
                ..base.clone()
            },
            "value_type",
        ),
        (
            Bitrix24Config {
                fields: Some([("inn".to_owned(), "ORIGIN_ID".to_owned())].into()),
                ..base.clone()
            },
            "fields",
        ),
    ];
    for (cfg, field) in cases {
        match cfg.validate() {
            Err(e @ ConnectorError::Config { .. }) => {
                let text = e.to_string();
                assert!(text.contains(&format!("field {field}:")), "{text}");
                assert!(!text.contains("secret123"), "{text}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn classification_follows_the_documented_errors() {
    let pause = Duration::from_secs(60);
    let c = |status: Option<u16>, code: Option<&str>| classify(status, code, None, pause);
    for (status, code) in [
        (Some(503), Some("QUERY_LIMIT_EXCEEDED")),
        (None, Some("QUERY_LIMIT_EXCEEDED")),
        (Some(500), Some("INTERNAL_SERVER_ERROR")),
        (Some(500), Some("ERROR_UNEXPECTED_ANSWER")),
        (Some(502), None),
    ] {
        let f = c(status, code);
        assert!(f.transient && !f.auth, "{status:?} {code:?}");
    }
    let f = c(Some(429), Some("OPERATION_TIME_LIMIT"));
    assert!(f.transient);
    assert_eq!(f.retry_after, Some(pause));
    for (status, code) in [
        (Some(401), Some("expired_token")),
        (Some(401), Some("invalid_token")),
        (Some(401), Some("NO_AUTH_FOUND")),
        (Some(401), Some("INVALID_CREDENTIALS")),
        (Some(401), Some("OVERLOAD_LIMIT")),
        (Some(401), Some("INVALID_REQUEST")),
        (Some(403), None),
    ] {
        let f = c(status, code);
        assert!(f.transient && f.auth, "{status:?} {code:?}");
    }
    for (status, code) in [
        (Some(400), Some("ERROR_CORE")),
        (Some(400), Some("INVALID_REQUEST")),
        (None, Some("INVALID_REQUEST")),
        (Some(400), Some("")),
        (None, None),
        (Some(404), Some("ERROR_METHOD_NOT_FOUND")),
    ] {
        let f = c(status, code);
        assert!(!f.transient, "{status:?} {code:?}");
    }
    assert_eq!(
        c(Some(400), Some("ERROR_CORE")).message,
        "bitrix24 answered 400 ERROR_CORE"
    );
    assert_eq!(
        c(None, Some("")).message,
        "bitrix24 rejected the command (no error code)"
    );
}
