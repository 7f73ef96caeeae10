//! An outgoing operation that does not fit a low-turnover customer's profile.

use chrono::Datelike;
use mapping::Direction;

use super::super::alert::{Alert, RuleId};
use super::super::config::ProfileMismatch;
use super::super::money::rub;
use super::{Op, Part, alert};

pub(crate) fn check(cfg: &ProfileMismatch, home_country: &str, op: &Op<'_>) -> Option<Alert> {
    if op.tx.direction != Direction::Debit {
        return None;
    }
    let party = op.party?;
    let by_segment = party.segment.as_deref().is_some_and(|s| {
        cfg.segments
            .iter()
            .any(|c| c.trim().eq_ignore_ascii_case(s.trim()))
    });
    let by_age = match (cfg.senior_age, party.birth_date) {
        (Some(min), Some(born)) => {
            let on = op.tx.booked_at.date_naive();
            let mut age = on.year() - born.year();
            if (on.month(), on.day()) < (born.month(), born.day()) {
                age -= 1;
            }
            age >= i32::try_from(min).unwrap_or(i32::MAX)
        }
        _ => false,
    };
    if !by_segment && !by_age {
        return None;
    }
    let group = if by_segment {
        "a low-turnover segment"
    } else {
        "the configured senior age"
    };
    let mut findings = Vec::new();
    if let (Some(amount), Some(turnover)) = (op.rub, party.monthly_turnover_minor) {
        let limit = i128::from(turnover.max(0)) * i128::from(cfg.turnover_multiple);
        if i128::from(amount) >= limit {
            findings.push(format!(
                "outgoing {} is at least {}x the declared monthly turnover of {}",
                rub(amount),
                cfg.turnover_multiple,
                rub(turnover)
            ));
        }
    }
    if cfg.flag_abroad
        && let Some((country, _)) = op
            .country
            .filter(|(c, _)| !c.eq_ignore_ascii_case(home_country))
    {
        findings.push(format!(
            "outgoing transfer abroad (counterparty country {})",
            country.to_ascii_uppercase()
        ));
    }
    if findings.is_empty() {
        return None;
    }
    let reason = format!("customer in {group}: {}", findings.join("; "));
    Some(alert(
        RuleId::ProfileMismatch,
        op,
        vec![Part::of(op)],
        reason,
    ))
}
