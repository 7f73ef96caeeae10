//! The readers on public sample files written by others (see `adapters/tests/data/README.md`).

use mapping::Direction;

use super::{balances, entities, read, transactions};
use crate::formats::FormatConfig;

macro_rules! sample {
    ($name:literal) => {
        include_bytes!(concat!("../../../tests/data/", $name)).as_slice()
    };
}

fn config(toml: &str) -> FormatConfig {
    toml::from_str(toml).expect("config parses")
}

#[test]
fn abn_amro_mt940_with_banners_between_messages() {
    let (items, errors) = read(
        &config("format = \"mt940\""),
        sample!("mt940_abnamro_mt940.sta"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 4);
    assert_eq!((t[0].amount_minor, t[0].direction), (534, Direction::Debit));
    assert_eq!(t[0].currency, "EUR");
    assert!(
        t[0].purpose
            .as_deref()
            .unwrap_or_default()
            .starts_with("BEA")
    );
    assert_eq!(balances(&items).len(), 4);
}

#[test]
fn statement_with_non_standard_ns_tags() {
    let (items, errors) = read(
        &config("format = \"mt940\""),
        sample!("mt942_sberbank_171011_01234945.sta"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0].amount_minor, t[0].currency.as_str()),
        (240_200, "HUF")
    );
}

#[test]
fn genkgo_camt053_v2() {
    let (items, errors) = read(
        &config("format = \"camt\""),
        sample!("genkgo_camt053.v2.minimal.xml"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        entities(&items),
        [
            "account",
            "statement",
            "balance",
            "balance",
            "balance",
            "balance",
            "transaction"
        ]
    );
    // A zero-decimal currency balance: 2700 JPY is 2700 minor units.
    assert!(
        balances(&items)
            .iter()
            .any(|b| b.currency == "JPY" && b.amount_minor == -2700)
    );
}

#[test]
fn pain001_is_rejected() {
    let (items, errors) = read(
        &config("format = \"camt\""),
        sample!("iso20022js_example_sepa_pain_001_v3.xml"),
    );
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert!(errors[0].reason.contains("pain.001"), "{}", errors[0]);
}

#[test]
fn onec_payment_orders_with_a_utf8_last_line() {
    let (items, errors) = read(
        &config("format = \"one_c\""),
        sample!("dronm_clbnk_to_bank.txt"),
    );
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].amount_minor, 17_500_000);
    assert_eq!(t[1].amount_minor, 37_525);
    assert!(t.iter().all(|t| t.direction == Direction::Debit));
    assert_eq!(t[0].counterparty_name.as_deref(), Some("ИП Иванов А.А."));
}
