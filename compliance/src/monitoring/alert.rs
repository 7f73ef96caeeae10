//! What the monitor reports.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The rule behind an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleId {
    MandatoryControl,
    Structuring,
    Velocity,
    HighRiskGeography,
    Transit,
    ProfileMismatch,
}

impl RuleId {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleId::MandatoryControl => "mandatory_control",
            RuleId::Structuring => "structuring",
            RuleId::Velocity => "velocity",
            RuleId::HighRiskGeography => "high_risk_geography",
            RuleId::Transit => "transit",
            RuleId::ProfileMismatch => "profile_mismatch",
        }
    }
}

impl std::fmt::Display for RuleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A sum in one currency, in its minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub currency: String,
    pub amount_minor: i64,
}

/// One alert. Holds ids, amounts and a reason; never names or payment purposes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// First 16 hex digits of SHA-256 over the rule, the account and the sorted transaction
    /// ids: the same finding always has the same id, so a repeated alert can be dropped.
    pub id: String,
    pub rule: RuleId,
    /// Source id of the account.
    pub account: String,
    /// Source id of the party, when the caller gave its profile.
    pub party: Option<String>,
    /// Booking time of the operation that completed the finding.
    pub booked_at: DateTime<Utc>,
    /// Source ids of the operations involved, in booking order.
    pub transactions: Vec<String>,
    /// Human-readable, in English, without personal data.
    pub reason: String,
    /// Sum of the operations in roubles (kopecks), when every one could be converted.
    pub total_rub_minor: Option<i64>,
    /// Sum of the operations per original currency.
    pub totals: Vec<Money>,
}

/// A rule that could not look at an operation, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// `None` when the operation was not evaluated at all.
    pub rule: Option<RuleId>,
    pub reason: String,
}

/// The result of giving the monitor one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The operation was seen before (same account and source id): nothing was evaluated.
    pub duplicate: bool,
    /// The operation is older than the account's window: only single-operation rules ran
    /// and a repeat of it cannot be recognised (the alert id still is the same).
    pub late: bool,
    pub alerts: Vec<Alert>,
    pub skipped: Vec<Skipped>,
}

pub(crate) fn alert_id(rule: RuleId, account: &str, transactions: &[String]) -> String {
    let mut sorted: Vec<&str> = transactions.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    h.update(rule.as_str().as_bytes());
    h.update([0u8]);
    h.update(account.as_bytes());
    for t in sorted {
        h.update([0u8]);
        h.update(t.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}
