//! Splitting: several operations each just below the general mandatory-control threshold.

use chrono::Duration;

use super::super::alert::{Alert, RuleId};
use super::super::config::{MandatoryControl, Structuring};
use super::super::money::{kopecks, rub};
use super::super::window::AccountWindow;
use super::{Op, Part, alert, burst, hours};

pub(crate) fn check(
    cfg: &Structuring,
    mc: &MandatoryControl,
    window: &mut AccountWindow,
    op: &Op<'_>,
) -> Option<Alert> {
    let limit = kopecks(mc.threshold_rub);
    let lower = limit - limit / 100 * i64::from(cfg.band_pct);
    let in_band = |r: Option<i64>| r.is_some_and(|r| (lower..limit).contains(&r));
    if !in_band(op.rub) {
        return None;
    }
    let candidates: Vec<usize> = (0..window.items.len())
        .filter(|&i| {
            let it = &window.items[i];
            !it.alerted.structuring && in_band(it.rub_minor)
        })
        .collect();
    let refs: Vec<_> = candidates.iter().map(|&i| &window.items[i]).collect();
    let min = cfg.min_count as usize;
    let found = burst(
        &refs,
        op.tx.booked_at,
        Duration::hours(i64::from(cfg.window_hours)),
        |n, _| n >= min,
    )?;
    let chosen: Vec<usize> = candidates[found].to_vec();
    let parts: Vec<Part<'_>> = chosen
        .iter()
        .map(|&i| Part::from(&window.items[i]))
        .collect();
    let reason = format!(
        "{} operations each between {} and just below the mandatory-control threshold of {} \
         within {}",
        parts.len(),
        rub(lower),
        rub(limit),
        hours(cfg.window_hours)
    );
    let a = alert(RuleId::Structuring, op, parts, reason);
    for i in chosen {
        window.items[i].alerted.structuring = true;
    }
    Some(a)
}
