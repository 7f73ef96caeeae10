//! Transit: an incoming operation, and at least a share of it paid out within hours after it.

use chrono::Duration;
use mapping::Direction;

use super::super::alert::{Alert, RuleId};
use super::super::config::Transit;
use super::super::money::{kopecks, rub};
use super::super::window::{AccountWindow, minus, plus};
use super::{Op, Part, alert, hours};

/// Every incoming operation the new one completes (the new one itself when it is incoming,
/// earlier incoming ones when it is outgoing), each with the outgoing operations after it.
pub(crate) fn check(cfg: &Transit, window: &mut AccountWindow, op: &Op<'_>) -> Vec<Alert> {
    let len = Duration::hours(i64::from(cfg.window_hours));
    let min_in = kopecks(cfg.min_in_rub);
    let t = op.tx.booked_at;
    let credits: Vec<usize> = (0..window.items.len())
        .filter(|&i| {
            let it = &window.items[i];
            let followed = match op.tx.direction {
                Direction::Credit => it.id == op.tx.source_id,
                Direction::Debit => it.at <= t && it.at >= minus(t, len),
            };
            followed
                && it.direction == Direction::Credit
                && !it.alerted.transit
                && it.rub_minor.is_some_and(|r| r >= min_in)
        })
        .collect();
    let mut out = Vec::new();
    for c in credits {
        let credit = &window.items[c];
        let Some(incoming) = credit.rub_minor else {
            continue;
        };
        let debits: Vec<usize> = (0..window.items.len())
            .filter(|&i| {
                let it = &window.items[i];
                i != c
                    && it.direction == Direction::Debit
                    && it.at >= credit.at
                    && it.at <= plus(credit.at, len)
                    && it.rub_minor.is_some()
            })
            .collect();
        let paid: i64 = debits
            .iter()
            .filter_map(|&i| window.items[i].rub_minor)
            .fold(0, i64::saturating_add);
        if i128::from(paid) * 100 < i128::from(incoming) * i128::from(cfg.min_out_pct) {
            continue;
        }
        let pct = i128::from(paid) * 100 / i128::from(incoming);
        let reason = format!(
            "incoming {} followed by {} outgoing operation(s) of {} ({pct}%) within {} \
             (limit: {}% or more)",
            rub(incoming),
            debits.len(),
            rub(paid),
            hours(cfg.window_hours),
            cfg.min_out_pct
        );
        let mut parts = vec![Part::from(credit)];
        parts.extend(debits.iter().map(|&i| Part::from(&window.items[i])));
        let a = alert(RuleId::Transit, op, parts, reason);
        window.items[c].alerted.transit = true;
        out.push(a);
    }
    out
}
