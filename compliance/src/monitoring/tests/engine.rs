use super::*;
use crate::monitoring::{ConfigError, MonitorState};

#[test]
fn a_duplicate_changes_nothing() {
    let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
    let t = debit("a", rub(1_500_000, 0), 0);
    let first = m.observe(&t, &TxContext::default());
    assert_eq!(first.alerts.len(), 1);
    let state = m.state().clone();
    let again = m.observe(&t, &TxContext::default());
    assert!(again.duplicate);
    assert!(again.alerts.is_empty() && again.skipped.is_empty());
    assert_eq!(m.state(), &state);
}

#[test]
fn an_operation_older_than_the_window_runs_single_rules_only() {
    let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
    feed(&mut m, &[debit("new", rub(10, 0), 1_000)]);
    let old = m.observe(&debit("old", rub(1_500_000, 0), 0), &TxContext::default());
    assert!(old.late && !old.duplicate);
    assert_eq!(old.alerts.len(), 1);
    assert_eq!(old.alerts[0].rule, RuleId::MandatoryControl);
    let skipped: Vec<_> = old.skipped.iter().filter_map(|s| s.rule).collect();
    assert_eq!(
        skipped,
        [RuleId::Structuring, RuleId::Velocity, RuleId::Transit]
    );
    assert_eq!(m.state().operations(), 1, "not kept");
    // Its repeat is not recognised, but gives the same alert id.
    let again = m.observe(&debit("old", rub(1_500_000, 0), 0), &TxContext::default());
    assert_eq!(again.alerts[0].id, old.alerts[0].id);
}

#[test]
fn state_survives_a_round_trip_and_the_run_continues() {
    let cfg = only(RuleId::Structuring);
    let mut m = Monitor::new(cfg.clone()).unwrap();
    feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 1),
        ],
    );
    let saved = serde_json::to_string(m.state()).unwrap();
    let restored: MonitorState = serde_json::from_str(&saved).unwrap();
    let mut m2 = Monitor::with_state(cfg.clone(), restored).unwrap();
    let e = m2.observe(&debit("c", rub(950_000, 0), 2), &TxContext::default());
    assert_eq!(ids(&e.alerts[0]), ["a", "b", "c"]);

    // The same run without the restart gives the same alert.
    let e1 = m.observe(&debit("c", rub(950_000, 0), 2), &TxContext::default());
    assert_eq!(e1, e);
}

#[test]
fn deterministic() {
    let run = || {
        let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
        let txs: Vec<Transaction> = (0..200)
            .map(|i| {
                let amount = rub(900_000 + (i * 7_919) % 200_000, i % 100);
                if i % 3 == 0 {
                    credit(&format!("t{i}"), amount, i * 2)
                } else {
                    debit(&format!("t{i}"), amount, i * 2)
                }
            })
            .collect();
        let evals = feed(&mut m, &txs);
        (
            serde_json::to_string(&evals).unwrap(),
            serde_json::to_string(m.state()).unwrap(),
        )
    };
    let (a, sa) = run();
    let (b, sb) = run();
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    assert!(a.contains("structuring") && a.contains("mandatory_control") && a.contains("transit"));
}

#[test]
fn windows_are_bounded_by_time_and_count() {
    let mut cfg = only(RuleId::Velocity);
    cfg.velocity.max_count = 1_000;
    cfg.max_items_per_account = 100;
    let mut m = Monitor::new(cfg).unwrap();
    let txs: Vec<Transaction> = (0..150).map(|i| debit(&format!("t{i}"), 100, 0)).collect();
    let evals = feed(&mut m, &txs);
    assert_eq!(m.state().operations(), 100);
    assert!(
        evals[100].skipped[0]
            .reason
            .starts_with("account window full (100 operations)")
    );

    let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
    feed(&mut m, &[debit("old", 100, 0), debit("new", 100, 169)]);
    assert_eq!(m.state().operations(), 1, "168 h retention");
    let mut other = debit("x", 100, 0);
    other.account_source_id = "acc-2".into();
    feed(&mut m, &[other]);
    assert_eq!(m.state().accounts(), 2);
    assert_eq!(m.drop_idle(at(169)), 1);
    assert_eq!(m.state().accounts(), 1);
}

#[test]
fn unusable_operations_are_reported_not_evaluated() {
    let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
    let mut neg = debit("n", -5, 0);
    let e = m.observe(&neg, &TxContext::default());
    assert_eq!(e.skipped[0].rule, None);
    assert!(e.skipped[0].reason.starts_with("negative amount"));
    neg.amount_minor = 5;
    neg.account_source_id = " ".into();
    assert!(
        m.observe(&neg, &TxContext::default()).skipped[0]
            .reason
            .starts_with("empty account id")
    );
    assert_eq!(m.state().operations(), 0);
}

#[test]
fn config_defaults_validate_and_bad_values_name_the_field() {
    let cfg = MonitoringConfig::default();
    cfg.validate().unwrap();
    assert_eq!(cfg.mandatory_control.threshold_rub, 1_000_000);
    assert_eq!(cfg.mandatory_control.categories[0].threshold_rub, 3_000_000);
    assert_eq!(cfg.retention_hours(), 168);

    let json = r#"{"structuring": {"min_count": 4}, "rates": {"USD": {"rub_per_unit": "90.5"}}}"#;
    let parsed: MonitoringConfig = serde_json::from_str(json).unwrap();
    assert_eq!(parsed.structuring.min_count, 4);
    assert_eq!(
        parsed.structuring.window_hours, 168,
        "the rest keeps its default"
    );
    assert_eq!(parsed.rates["USD"].minor_digits, 2);
    Monitor::new(parsed).unwrap();

    let unknown = serde_json::from_str::<MonitoringConfig>(r#"{"velocity": {"max_cnt": 3}}"#);
    assert!(
        unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `max_cnt`")
    );

    let mut bad = MonitoringConfig::default();
    bad.structuring.band_pct = 0;
    let e: ConfigError = Monitor::new(bad).err().unwrap();
    assert_eq!(
        e.to_string(),
        "monitoring config structuring.band_pct: must be between 1 and 99"
    );
    let mut bad = MonitoringConfig::default();
    bad.rates.insert(
        "EUR".into(),
        crate::monitoring::config::RateToRub {
            rub_per_unit: "1,5".into(),
            minor_digits: 2,
        },
    );
    assert_eq!(
        Monitor::new(bad).err().unwrap().field,
        "rates.EUR.rub_per_unit"
    );
    let mut bad = MonitoringConfig::default();
    bad.high_risk_geography.countries.push("XX".into());
    assert_eq!(
        Monitor::new(bad).err().unwrap().field,
        "high_risk_geography.countries[3]"
    );
}

#[test]
fn documented_defaults_are_the_defaults() {
    let doc = include_str!("../../../../docs/monitoring-115fz.md");
    let section = doc.split("## Configuration").nth(1).unwrap();
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let parsed: MonitoringConfig = toml::from_str(block).unwrap();
    assert_eq!(parsed, MonitoringConfig::default());
}

#[test]
fn an_operation_older_than_a_full_window_skips_the_window_rules() {
    let mut cfg = only(RuleId::Velocity);
    cfg.velocity.max_count = 1_000;
    cfg.max_items_per_account = 100;
    let mut m = Monitor::new(cfg).unwrap();
    let txs: Vec<Transaction> = (0..100).map(|i| debit(&format!("t{i}"), 100, 10)).collect();
    feed(&mut m, &txs);
    let e = m.observe(&debit("older", 100, 5), &TxContext::default());
    assert!(!e.late);
    let velocity: Vec<&str> = e
        .skipped
        .iter()
        .filter(|s| s.rule == Some(RuleId::Velocity))
        .map(|s| s.reason.as_str())
        .collect();
    assert_eq!(
        velocity,
        ["operation older than every other in a full account window; window not evaluated"]
    );
}

#[test]
fn a_restored_state_is_put_back_in_order() {
    let cfg = only(RuleId::Structuring);
    let mut m = Monitor::new(cfg.clone()).unwrap();
    feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 1),
        ],
    );
    let mut json = serde_json::to_value(m.state()).unwrap();
    let items = json["accounts"][ACC]["items"].as_array_mut().unwrap();
    items.reverse();
    let copy = items[0].clone();
    items.push(copy);
    let restored: MonitorState = serde_json::from_value(json).unwrap();
    let mut m = Monitor::with_state(cfg, restored).unwrap();
    assert_eq!(m.state().operations(), 2);
    assert!(
        m.observe(&debit("a", rub(950_000, 0), 0), &TxContext::default())
            .duplicate
    );
    let e = m.observe(&debit("c", rub(950_000, 0), 2), &TxContext::default());
    assert_eq!(ids(&e.alerts[0]), ["a", "b", "c"]);
}

#[test]
fn extreme_booking_times_do_not_panic() {
    let mut m = Monitor::new(MonitoringConfig::default()).unwrap();
    let mut first = debit("min", rub(950_000, 0), 0);
    first.booked_at = DateTime::<Utc>::MIN_UTC;
    let mut last = debit("max", rub(950_000, 0), 0);
    last.booked_at = DateTime::<Utc>::MAX_UTC;
    let evals = feed(&mut m, &[first.clone(), last, first]);
    assert!(evals[2].late, "far older than the newest operation");
    m.drop_idle(DateTime::<Utc>::MIN_UTC);
}
