//! Mandatory control (115-FZ art. 6): one operation at or above the threshold of its kind.

use super::super::alert::{Alert, RuleId};
use super::super::config::MandatoryControl;
use super::super::money::{kopecks, rub};
use super::{Op, Part, alert};

/// The threshold (kopecks) and category name that apply to an operation with this purpose.
pub(crate) fn threshold<'c>(cfg: &'c MandatoryControl, purpose: Option<&str>) -> (i64, &'c str) {
    if let Some(purpose) = purpose {
        let purpose = purpose.to_lowercase();
        for c in &cfg.categories {
            if c.purpose_keywords
                .iter()
                .any(|k| purpose.contains(&k.to_lowercase()))
            {
                return (kopecks(c.threshold_rub), &c.name);
            }
        }
    }
    (kopecks(cfg.threshold_rub), "general")
}

pub(crate) fn check(cfg: &MandatoryControl, op: &Op<'_>) -> Option<Alert> {
    let amount = op.rub?;
    let (limit, category) = threshold(cfg, op.tx.purpose.as_deref());
    if amount < limit {
        return None;
    }
    let reason = format!(
        "single operation of {} is at or above the {category} mandatory-control threshold of {} \
         (115-FZ art. 6, threshold from configuration)",
        rub(amount),
        rub(limit)
    );
    Some(alert(
        RuleId::MandatoryControl,
        op,
        vec![Part::of(op)],
        reason,
    ))
}
