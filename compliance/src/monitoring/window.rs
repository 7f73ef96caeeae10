//! The monitor's state: per account, the recent operations in booking order.
//!
//! Bounded twice: by time (operations older than the retention horizon — the longest rule
//! window — before the account's newest operation are dropped) and by count
//! (`max_items_per_account`, oldest first). Serialisable, so the caller can persist it and a
//! restarted monitor continues where it stopped.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use mapping::Direction;
use serde::{Deserialize, Serialize};

/// `t - d`, saturating at the earliest time instead of panicking (booking times come from
/// input).
pub(crate) fn minus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// `t + d`, saturating at the latest time.
pub(crate) fn plus(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Version of the serialised state; a new layout gets a new number.
pub const STATE_FORMAT: u32 = 1;

/// Everything the monitor remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorState {
    format: u32,
    accounts: BTreeMap<String, AccountWindow>,
}

impl Default for MonitorState {
    fn default() -> Self {
        MonitorState {
            format: STATE_FORMAT,
            accounts: BTreeMap::new(),
        }
    }
}

impl MonitorState {
    pub fn format(&self) -> u32 {
        self.format
    }

    /// Accounts with at least one operation kept.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Operations kept over all accounts.
    pub fn operations(&self) -> usize {
        self.accounts.values().map(|a| a.items.len()).sum()
    }

    pub(crate) fn account(&self, id: &str) -> Option<&AccountWindow> {
        self.accounts.get(id)
    }

    pub(crate) fn account_mut(&mut self, id: &str) -> &mut AccountWindow {
        self.accounts.entry(id.to_owned()).or_default()
    }

    /// Restores the invariants a persisted state may have lost (it is plain JSON in the
    /// caller's store): operations sorted by (booking time, id), each id once.
    pub(crate) fn normalize(&mut self) {
        for a in self.accounts.values_mut() {
            a.items.sort_by(|x, y| (x.at, &x.id).cmp(&(y.at, &y.id)));
            let mut seen = std::collections::HashSet::new();
            a.items.retain(|i| seen.insert(i.id.clone()));
            let newest = a.items.iter().map(|i| i.at).max();
            a.newest = a.newest.max(newest);
        }
    }

    /// Drops accounts whose newest operation is older than `before`.
    pub(crate) fn drop_idle(&mut self, before: DateTime<Utc>) -> usize {
        let n = self.accounts.len();
        self.accounts
            .retain(|_, a| a.newest.is_some_and(|t| t >= before));
        n - self.accounts.len()
    }
}

/// Recent operations of one account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccountWindow {
    /// Latest booking time ever seen on the account (kept when its operation is dropped).
    pub newest: Option<DateTime<Utc>>,
    /// Sorted by (booking time, source id).
    pub items: Vec<Item>,
}

/// One operation as the window rules need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Item {
    pub id: String,
    pub at: DateTime<Utc>,
    pub direction: Direction,
    pub amount_minor: i64,
    pub currency: String,
    /// Kopecks; `None` when the currency had no rate.
    pub rub_minor: Option<i64>,
    /// Which window rules already reported this operation.
    #[serde(default)]
    pub alerted: Alerted,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Alerted {
    pub structuring: bool,
    pub velocity: bool,
    pub transit: bool,
}

impl AccountWindow {
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.items.iter().any(|i| i.id == id)
    }

    /// Inserts in booking order and drops what falls out of the bounds; returns how many
    /// operations the count bound dropped.
    pub(crate) fn insert(&mut self, item: Item, retention: Duration, max_items: usize) -> usize {
        let pos = self
            .items
            .partition_point(|i| (i.at, i.id.as_str()) < (item.at, item.id.as_str()));
        let at = item.at;
        self.items.insert(pos, item);
        let newest = self.newest.map_or(at, |n| n.max(at));
        self.newest = Some(newest);
        let horizon = minus(newest, retention);
        let old = self.items.partition_point(|i| i.at < horizon);
        self.items.drain(..old);
        let over = self.items.len().saturating_sub(max_items);
        self.items.drain(..over);
        over
    }

    /// True when an operation booked at `at` is older than the horizon.
    pub(crate) fn is_late(&self, at: DateTime<Utc>, retention: Duration) -> bool {
        self.newest.is_some_and(|n| at < minus(n, retention))
    }
}
