use super::*;

#[test]
fn a_counterparty_country_from_the_caller_on_the_list() {
    let mut m = Monitor::new(only(RuleId::HighRiskGeography)).unwrap();
    let t = debit("a", rub(100, 0), 0);
    let e = m.observe(
        &t,
        &TxContext {
            counterparty_country: Some("IR"),
            ..Default::default()
        },
    );
    assert_eq!(e.alerts.len(), 1);
    assert_eq!(
        e.alerts[0].reason,
        "counterparty country IR (from counterparty data) is on the configured high-risk list"
    );
    let t = debit("b", rub(100, 0), 1);
    let e = m.observe(
        &t,
        &TxContext {
            counterparty_country: Some("kz"),
            ..Default::default()
        },
    );
    assert!(e.alerts.is_empty());
}

#[test]
fn a_country_read_from_an_iban() {
    let mut cfg = only(RuleId::HighRiskGeography);
    cfg.high_risk_geography.countries = vec!["gb".into()];
    let mut m = Monitor::new(cfg).unwrap();
    let mut t = credit("a", rub(100, 0), 0);
    t.counterparty_account = Some("GB82 WEST 1234 5698 7654 32".into());
    let mut bad_check = credit("b", rub(100, 0), 1);
    bad_check.counterparty_account = Some("GB82WEST12345698765433".into());
    let mut russian = credit("c", rub(100, 0), 2);
    russian.counterparty_account = Some("40817810099910004312".into());
    let evals = feed(&mut m, &[t, bad_check, russian]);
    assert_eq!(evals[0].alerts.len(), 1);
    assert!(
        evals[0].alerts[0]
            .reason
            .contains("GB (from the counterparty's iban)")
    );
    assert!(evals[1].alerts.is_empty() && evals[2].alerts.is_empty());
}

#[test]
fn a_bad_country_from_the_caller_is_reported_not_guessed() {
    let mut m = Monitor::new(only(RuleId::HighRiskGeography)).unwrap();
    let t = debit("a", rub(100, 0), 0);
    let e = m.observe(
        &t,
        &TxContext {
            counterparty_country: Some("Iran"),
            ..Default::default()
        },
    );
    assert!(e.alerts.is_empty());
    assert_eq!(e.skipped[0].rule, Some(RuleId::HighRiskGeography));
}
