use chrono::NaiveDate;

use super::*;
use crate::monitoring::PartyProfile;

fn pensioner() -> PartyProfile {
    PartyProfile {
        party_id: "party-7".into(),
        segment: Some("Pensioner".into()),
        birth_date: None,
        monthly_turnover_minor: Some(rub(30_000, 0)),
    }
}

fn ctx(p: &PartyProfile) -> TxContext<'_> {
    TxContext {
        party: Some(p),
        counterparty_country: None,
    }
}

#[test]
fn an_outgoing_payment_of_k_times_the_declared_turnover() {
    let mut m = Monitor::new(only(RuleId::ProfileMismatch)).unwrap();
    let p = pensioner();
    let below = m.observe(&debit("a", rub(89_999, 99), 0), &ctx(&p));
    assert!(below.alerts.is_empty());
    let incoming = m.observe(&credit("b", rub(1_000_000, 0), 1), &ctx(&p));
    assert!(incoming.alerts.is_empty(), "only outgoing operations");
    let e = m.observe(&debit("c", rub(90_000, 0), 2), &ctx(&p));
    let a = &e.alerts[0];
    assert_eq!(a.rule, RuleId::ProfileMismatch);
    assert_eq!(a.party.as_deref(), Some("party-7"));
    assert_eq!(
        a.reason,
        "customer in a low-turnover segment: outgoing 90 000.00 RUB is at least 3x the declared \
         monthly turnover of 30 000.00 RUB"
    );
}

#[test]
fn an_outgoing_transfer_abroad() {
    let mut m = Monitor::new(only(RuleId::ProfileMismatch)).unwrap();
    let p = pensioner();
    let mut t = debit("a", rub(1_000, 0), 0);
    t.counterparty_account = Some("DE89370400440532013000".into());
    let e = m.observe(&t, &ctx(&p));
    assert_eq!(
        e.alerts[0].reason,
        "customer in a low-turnover segment: outgoing transfer abroad (counterparty country DE)"
    );
    let home = m.observe(
        &debit("b", rub(1_000, 0), 1),
        &TxContext {
            party: Some(&p),
            counterparty_country: Some("RU"),
        },
    );
    assert!(home.alerts.is_empty());
}

#[test]
fn other_segments_and_unknown_parties_are_left_alone_unless_of_senior_age() {
    let mut m = Monitor::new(only(RuleId::ProfileMismatch)).unwrap();
    let mut p = pensioner();
    p.segment = Some("mass".into());
    assert!(
        m.observe(&debit("a", rub(500_000, 0), 0), &ctx(&p))
            .alerts
            .is_empty()
    );
    assert!(
        m.observe(&debit("b", rub(500_000, 0), 1), &TxContext::default())
            .alerts
            .is_empty()
    );

    let mut cfg = only(RuleId::ProfileMismatch);
    cfg.profile_mismatch.senior_age = Some(65);
    let mut m = Monitor::new(cfg).unwrap();
    // 65 on 2024-05-01 (the day of the operations), 64 the day before.
    p.birth_date = NaiveDate::from_ymd_opt(1959, 5, 1);
    assert_eq!(
        m.observe(&debit("c", rub(500_000, 0), 0), &ctx(&p))
            .alerts
            .len(),
        1
    );
    p.birth_date = NaiveDate::from_ymd_opt(1959, 5, 2);
    assert!(
        m.observe(&debit("d", rub(500_000, 0), 1), &ctx(&p))
            .alerts
            .is_empty()
    );
}
