//! What the caller knows about the party and the counterparty of an operation.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The small per-party profile the profile rule needs; built by the caller from the canonical
/// party (segment, birth date) and the bank's KYC data (declared turnover).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyProfile {
    /// Source id of the party (shown in alerts).
    pub party_id: String,
    /// Customer segment, for example "pensioner".
    #[serde(default)]
    pub segment: Option<String>,
    /// Birth date of a person, for the optional age criterion.
    #[serde(default)]
    pub birth_date: Option<NaiveDate>,
    /// Declared monthly turnover in kopecks.
    #[serde(default)]
    pub monthly_turnover_minor: Option<i64>,
}

/// Facts about one operation that the transaction record does not carry.
#[derive(Debug, Clone, Copy, Default)]
pub struct TxContext<'a> {
    /// Profile of the account's owner, if known.
    pub party: Option<&'a PartyProfile>,
    /// ISO alpha-2 country of the counterparty when known from master data; otherwise the
    /// monitor reads it from an IBAN counterparty account.
    pub counterparty_country: Option<&'a str>,
}
