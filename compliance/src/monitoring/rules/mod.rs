//! The rules. Single-operation rules look at the new operation only; window rules look at the
//! account's recent operations around it. Each window rule marks the operations it reported,
//! and fires again only when operations not yet reported satisfy it on their own: alerts of
//! one rule on one account never share an operation, and a burst gives one alert, not one
//! per further operation.

pub(crate) mod geography;
pub(crate) mod mandatory;
pub(crate) mod profile;
pub(crate) mod structuring;
pub(crate) mod transit;
pub(crate) mod velocity;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use mapping::Transaction;

use super::alert::{Alert, Money, RuleId, alert_id};
use super::profile::PartyProfile;
use super::window::{Item, minus, plus};

/// The new operation with what the engine worked out about it.
pub(crate) struct Op<'a> {
    pub tx: &'a Transaction,
    /// Upper-case ISO code.
    pub currency: String,
    /// Kopecks, when convertible.
    pub rub: Option<i64>,
    /// Counterparty country (ISO alpha-2, lower case) and where it came from.
    pub country: Option<(&'static str, &'static str)>,
    pub party: Option<&'a PartyProfile>,
}

/// One operation of an alert.
pub(crate) struct Part<'a> {
    pub id: &'a str,
    pub at: DateTime<Utc>,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub rub: Option<i64>,
}

impl<'a> From<&'a Item> for Part<'a> {
    fn from(i: &'a Item) -> Self {
        Part {
            id: &i.id,
            at: i.at,
            amount_minor: i.amount_minor,
            currency: &i.currency,
            rub: i.rub_minor,
        }
    }
}

impl<'a> Part<'a> {
    pub(crate) fn of(op: &'a Op<'a>) -> Self {
        Part {
            id: &op.tx.source_id,
            at: op.tx.booked_at,
            amount_minor: op.tx.amount_minor,
            currency: &op.currency,
            rub: op.rub,
        }
    }
}

pub(crate) fn alert(rule: RuleId, op: &Op<'_>, mut parts: Vec<Part<'_>>, reason: String) -> Alert {
    parts.sort_by(|a, b| (a.at, a.id).cmp(&(b.at, b.id)));
    let transactions: Vec<String> = parts.iter().map(|p| p.id.to_owned()).collect();
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    let mut rub: Option<i64> = Some(0);
    for p in &parts {
        let t = totals.entry(p.currency).or_default();
        *t = t.saturating_add(p.amount_minor);
        rub = match (rub, p.rub) {
            (Some(sum), Some(x)) => sum.checked_add(x),
            _ => None,
        };
    }
    Alert {
        id: alert_id(rule, &op.tx.account_source_id, &transactions),
        rule,
        account: op.tx.account_source_id.clone(),
        party: op.party.map(|p| p.party_id.clone()),
        booked_at: op.tx.booked_at,
        transactions,
        reason,
        total_rub_minor: rub,
        totals: totals
            .into_iter()
            .map(|(currency, amount_minor)| Money {
                currency: currency.to_owned(),
                amount_minor,
            })
            .collect(),
    }
}

/// The earliest window `[start, start + len]` that starts at one of `items` (sorted by time),
/// contains `t`, and whose items satisfy `ok(count, kopecks)`; as a range of `items`.
pub(crate) fn burst(
    items: &[&Item],
    t: DateTime<Utc>,
    len: Duration,
    ok: impl Fn(usize, i64) -> bool,
) -> Option<std::ops::Range<usize>> {
    let mut prefix = Vec::with_capacity(items.len() + 1);
    prefix.push(0i64);
    for i in items {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last.saturating_add(i.rub_minor.unwrap_or(0)));
    }
    for (start, item) in items.iter().enumerate() {
        if item.at < minus(t, len) {
            continue;
        }
        if item.at > t {
            break;
        }
        let limit = plus(item.at, len);
        let end = start + items[start..].partition_point(|i| i.at <= limit);
        let sum = prefix[end].saturating_sub(prefix[start]);
        if ok(end - start, sum) {
            return Some(start..end);
        }
    }
    None
}

/// "7 days" or "36 h".
pub(crate) fn hours(h: u32) -> String {
    if h.is_multiple_of(24) {
        let d = h / 24;
        if d == 1 {
            "24 h".into()
        } else {
            format!("{d} days")
        }
    } else {
        format!("{h} h")
    }
}
