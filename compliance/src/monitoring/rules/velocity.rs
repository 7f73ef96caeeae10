//! Many operations, or a large total, on one account within a window.

use chrono::Duration;

use super::super::alert::{Alert, RuleId};
use super::super::config::Velocity;
use super::super::money::{kopecks, rub};
use super::super::window::AccountWindow;
use super::{Op, Part, alert, burst, hours};

pub(crate) fn check(cfg: &Velocity, window: &mut AccountWindow, op: &Op<'_>) -> Option<Alert> {
    let candidates: Vec<usize> = (0..window.items.len())
        .filter(|&i| !window.items[i].alerted.velocity)
        .collect();
    let refs: Vec<_> = candidates.iter().map(|&i| &window.items[i]).collect();
    let max_count = cfg.max_count as usize;
    let max_total = kopecks(cfg.max_total_rub);
    let found = burst(
        &refs,
        op.tx.booked_at,
        Duration::hours(i64::from(cfg.window_hours)),
        |n, sum| n > max_count || sum > max_total,
    )?;
    let chosen: Vec<usize> = candidates[found].to_vec();
    let parts: Vec<Part<'_>> = chosen
        .iter()
        .map(|&i| Part::from(&window.items[i]))
        .collect();
    let sum: i64 = parts
        .iter()
        .filter_map(|p| p.rub)
        .fold(0, i64::saturating_add);
    let unconverted = parts.iter().filter(|p| p.rub.is_none()).count();
    let mut reason = format!(
        "{} operations totalling {} within {} (limits: more than {} operations or more than {})",
        parts.len(),
        rub(sum),
        hours(cfg.window_hours),
        cfg.max_count,
        rub(max_total)
    );
    if unconverted > 0 {
        reason.push_str(&format!(
            "; {unconverted} in currencies without a rate are counted but not summed"
        ));
    }
    let a = alert(RuleId::Velocity, op, parts, reason);
    for i in chosen {
        window.items[i].alerted.velocity = true;
    }
    Some(a)
}
