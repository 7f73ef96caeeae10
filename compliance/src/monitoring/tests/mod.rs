//! Rule and engine tests on small, hand-written operation sequences.

mod engine;
mod geography;
mod mandatory;
mod profile;
mod structuring;
mod transit;
mod velocity;

use chrono::{DateTime, Duration, TimeZone, Utc};
use mapping::{Direction, Transaction};

use super::{Alert, Evaluation, Monitor, MonitoringConfig, RuleId, TxContext};

pub(super) const ACC: &str = "acc-1";

/// 2024-05-01 00:00 UTC plus `h` hours.
pub(super) fn at(h: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).single().unwrap() + Duration::hours(h)
}

/// Whole roubles and kopecks → kopecks.
pub(super) fn rub(r: i64, k: i64) -> i64 {
    r * 100 + k
}

/// Built through serde so that optional fields added to the canonical model later keep their
/// defaults here.
pub(super) fn tx(id: &str, amount_minor: i64, direction: Direction, h: i64) -> Transaction {
    serde_json::from_value(serde_json::json!({
        "source_id": id,
        "account_source_id": ACC,
        "amount_minor": amount_minor,
        "currency": "RUB",
        "booked_at": at(h),
        "direction": direction,
        "counterparty_name": "Иванов Иван Иванович",
        "purpose": "перевод Иванову",
    }))
    .unwrap()
}

pub(super) fn debit(id: &str, amount_minor: i64, h: i64) -> Transaction {
    tx(id, amount_minor, Direction::Debit, h)
}

pub(super) fn credit(id: &str, amount_minor: i64, h: i64) -> Transaction {
    tx(id, amount_minor, Direction::Credit, h)
}

/// The default config with every rule switched off except `rule`.
pub(super) fn only(rule: RuleId) -> MonitoringConfig {
    let mut c = MonitoringConfig::default();
    c.mandatory_control.enabled = rule == RuleId::MandatoryControl;
    c.structuring.enabled = rule == RuleId::Structuring;
    c.velocity.enabled = rule == RuleId::Velocity;
    c.high_risk_geography.enabled = rule == RuleId::HighRiskGeography;
    c.transit.enabled = rule == RuleId::Transit;
    c.profile_mismatch.enabled = rule == RuleId::ProfileMismatch;
    c
}

/// Feeds operations without context; returns every evaluation.
pub(super) fn feed(m: &mut Monitor, txs: &[Transaction]) -> Vec<Evaluation> {
    txs.iter()
        .map(|t| m.observe(t, &TxContext::default()))
        .collect()
}

/// All alerts of a run, in order.
pub(super) fn alerts(evals: &[Evaluation]) -> Vec<&Alert> {
    evals.iter().flat_map(|e| e.alerts.iter()).collect()
}

pub(super) fn ids(a: &Alert) -> Vec<&str> {
    a.transactions.iter().map(String::as_str).collect()
}
