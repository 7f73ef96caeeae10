use super::*;
use crate::monitoring::config::RateToRub;

#[test]
fn fires_at_the_threshold_not_a_kopeck_below() {
    let mut m = Monitor::new(only(RuleId::MandatoryControl)).unwrap();
    let evals = feed(
        &mut m,
        &[
            debit("below", rub(999_999, 99), 0),
            debit("at", rub(1_000_000, 0), 1),
        ],
    );
    assert!(evals[0].alerts.is_empty());
    let a = &evals[1].alerts[0];
    assert_eq!(a.rule, RuleId::MandatoryControl);
    assert_eq!(ids(a), ["at"]);
    assert_eq!(a.account, ACC);
    assert_eq!(a.total_rub_minor, Some(rub(1_000_000, 0)));
    assert_eq!(
        a.reason,
        "single operation of 1 000 000.00 RUB is at or above the general mandatory-control \
         threshold of 1 000 000.00 RUB (115-FZ art. 6, threshold from configuration)"
    );
    assert!(
        !a.reason.contains("Иван"),
        "no names or purposes in reasons"
    );
}

#[test]
fn a_category_recognised_by_purpose_has_its_own_threshold() {
    let mut m = Monitor::new(only(RuleId::MandatoryControl)).unwrap();
    let mut flat = debit("flat", rub(2_000_000, 0), 0);
    flat.purpose = Some("Оплата по договору купли-продажи КВАРТИРЫ".into());
    let mut house = debit("house", rub(3_000_000, 0), 1);
    house.purpose = Some("оплата недвижимости".into());
    let evals = feed(&mut m, &[flat, house]);
    assert!(
        evals[0].alerts.is_empty(),
        "2 mln for real estate is below its 3 mln threshold"
    );
    assert!(
        evals[1].alerts[0]
            .reason
            .contains("real_estate mandatory-control threshold of 3 000 000.00 RUB")
    );
}

#[test]
fn other_currencies_through_the_rate_table_or_skipped_with_a_reason() {
    let mut cfg = only(RuleId::MandatoryControl);
    cfg.rates.insert(
        "USD".into(),
        RateToRub {
            rub_per_unit: "92.00".into(),
            minor_digits: 2,
        },
    );
    let mut m = Monitor::new(cfg).unwrap();
    let mut usd = debit("usd", 1_090_000, 0); // 10 900.00 USD = 1 002 800.00 RUB
    usd.currency = "usd".into();
    let mut eur = debit("eur", 5_000_000, 1);
    eur.currency = "EUR".into();
    let evals = feed(&mut m, &[usd, eur]);
    let a = &evals[0].alerts[0];
    assert_eq!(a.total_rub_minor, Some(rub(1_002_800, 0)));
    assert_eq!(a.totals[0].currency, "USD");
    assert_eq!(a.totals[0].amount_minor, 1_090_000);
    assert!(evals[1].alerts.is_empty());
    assert_eq!(evals[1].skipped.len(), 1);
    assert_eq!(evals[1].skipped[0].rule, Some(RuleId::MandatoryControl));
    assert_eq!(
        evals[1].skipped[0].reason,
        "no rate for currency EUR in the configuration; not evaluated"
    );
}
