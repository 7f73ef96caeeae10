//! Configuration of the 115-FZ monitoring rules. Every value has a documented default
//! (`docs/monitoring-115fz.md`); the legal thresholds are configuration, never code, because
//! the law changes and the bank must check them against the current wording.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// All rules and their parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// ISO 3166-1 alpha-2 of the bank's country; a counterparty elsewhere is "abroad".
    pub home_country: String,
    /// Conversion of other currencies to roubles, by ISO 4217 code. An operation in a currency
    /// not listed here is skipped by the amount rules (with a reason), never guessed.
    pub rates: BTreeMap<String, RateToRub>,
    /// Upper bound of operations kept per account; the oldest go first when it is reached.
    pub max_items_per_account: usize,
    pub mandatory_control: MandatoryControl,
    pub structuring: Structuring,
    pub velocity: Velocity,
    pub high_risk_geography: HighRiskGeography,
    pub transit: Transit,
    pub profile_mismatch: ProfileMismatch,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            home_country: "ru".into(),
            rates: BTreeMap::new(),
            max_items_per_account: 5_000,
            mandatory_control: MandatoryControl::default(),
            structuring: Structuring::default(),
            velocity: Velocity::default(),
            high_risk_geography: HighRiskGeography::default(),
            transit: Transit::default(),
            profile_mismatch: ProfileMismatch::default(),
        }
    }
}

/// Roubles per one unit of a currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateToRub {
    /// Roubles for one whole unit, as a decimal string ("92.5012"), so no float rounding.
    pub rub_per_unit: String,
    /// Digits of the currency's minor unit (2 for USD/EUR, 0 for JPY, 3 for KWD).
    #[serde(default = "two")]
    pub minor_digits: u8,
}

fn two() -> u8 {
    2
}

/// Mandatory control (115-FZ art. 6): one operation at or above the threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MandatoryControl {
    pub enabled: bool,
    /// General threshold in whole roubles (default 1,000,000).
    pub threshold_rub: u64,
    /// Operation kinds with their own threshold, recognised by words in the payment purpose;
    /// the first category that matches wins. Default: real estate, 3,000,000.
    pub categories: Vec<ThresholdCategory>,
}

impl Default for MandatoryControl {
    fn default() -> Self {
        MandatoryControl {
            enabled: true,
            threshold_rub: 1_000_000,
            categories: vec![ThresholdCategory {
                name: "real_estate".into(),
                threshold_rub: 3_000_000,
                purpose_keywords: ["недвижим", "квартир", "жилого дома", "жилой дом", "земельн"]
                    .map(String::from)
                    .to_vec(),
            }],
        }
    }
}

/// A kind of operation with its own mandatory-control threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdCategory {
    /// Shown in the alert's reason.
    pub name: String,
    /// Threshold in whole roubles.
    pub threshold_rub: u64,
    /// Lower-case fragments; the category applies when the purpose contains any of them.
    pub purpose_keywords: Vec<String>,
}

/// Splitting: several operations each just below the general threshold within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Structuring {
    pub enabled: bool,
    /// Operations needed (default 3).
    pub min_count: u32,
    /// Window in hours (default 168, seven days).
    pub window_hours: u32,
    /// How far below the threshold an operation may be, in percent (default 10: 90% to just
    /// under 100% of the threshold).
    pub band_pct: u32,
}

impl Default for Structuring {
    fn default() -> Self {
        Structuring {
            enabled: true,
            min_count: 3,
            window_hours: 168,
            band_pct: 10,
        }
    }
}

/// Many operations, or a large total, on one account within a window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Velocity {
    pub enabled: bool,
    /// Window in hours (default 24).
    pub window_hours: u32,
    /// Fires above this many operations (default 30).
    pub max_count: u32,
    /// Fires above this total in whole roubles (default 5,000,000).
    pub max_total_rub: u64,
}

impl Default for Velocity {
    fn default() -> Self {
        Velocity {
            enabled: true,
            window_hours: 24,
            max_count: 30,
            max_total_rub: 5_000_000,
        }
    }
}

/// A counterparty in a high-risk jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HighRiskGeography {
    pub enabled: bool,
    /// ISO alpha-2 codes. Default: the FATF "call for action" list (KP, IR, MM); the bank adds
    /// the jurisdictions under increased monitoring and the Rosfinmonitoring list as they
    /// change.
    pub countries: Vec<String>,
}

impl Default for HighRiskGeography {
    fn default() -> Self {
        HighRiskGeography {
            enabled: true,
            countries: vec!["kp".into(), "ir".into(), "mm".into()],
        }
    }
}

/// Transit: money comes in and most of it leaves again soon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transit {
    pub enabled: bool,
    /// Hours after the incoming operation (default 48).
    pub window_hours: u32,
    /// Share of the incoming amount paid out, in percent (default 90).
    pub min_out_pct: u32,
    /// Incoming operations below this, in whole roubles, are not followed (default 100,000).
    pub min_in_rub: u64,
}

impl Default for Transit {
    fn default() -> Self {
        Transit {
            enabled: true,
            window_hours: 48,
            min_out_pct: 90,
            min_in_rub: 100_000,
        }
    }
}

/// An outgoing operation that does not fit the customer's profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileMismatch {
    pub enabled: bool,
    /// Low-turnover segments, compared case-insensitively with the profile's segment
    /// (default "pensioner", "student").
    pub segments: Vec<String>,
    /// A person of this age or older counts as low-turnover even without a segment
    /// (default: not used).
    pub senior_age: Option<u32>,
    /// Fires when one outgoing operation is at least this many times the declared monthly
    /// turnover (default 3).
    pub turnover_multiple: u32,
    /// Also fires on an outgoing operation to a counterparty abroad (default true).
    pub flag_abroad: bool,
}

impl Default for ProfileMismatch {
    fn default() -> Self {
        ProfileMismatch {
            enabled: true,
            segments: vec!["pensioner".into(), "student".into()],
            senior_age: None,
            turnover_multiple: 3,
            flag_abroad: true,
        }
    }
}

/// A configuration value out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("monitoring config {field}: {reason}")]
pub struct ConfigError {
    /// Dotted path, for example `structuring.band_pct`.
    pub field: String,
    pub reason: String,
}

/// Longest window any rule may use: a month.
pub const MAX_WINDOW_HOURS: u32 = 24 * 31;
/// Largest amount in config, in whole roubles (keeps kopeck arithmetic far from overflow).
pub const MAX_RUB: u64 = 1_000_000_000_000;

impl MonitoringConfig {
    /// Checks ranges; no IO.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field: &str, reason: &str| ConfigError {
            field: field.to_owned(),
            reason: reason.to_owned(),
        };
        if crate::lists::country::from_code(&self.home_country).is_none() {
            return Err(err("home_country", "must be an iso 3166-1 alpha-2 code"));
        }
        if !(100..=1_000_000).contains(&self.max_items_per_account) {
            return Err(err(
                "max_items_per_account",
                "must be between 100 and 1000000",
            ));
        }
        for (code, rate) in &self.rates {
            let field = format!("rates.{code}");
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(err(&field, "currency must be 3 upper-case latin letters"));
            }
            if code == "RUB" {
                return Err(err(&field, "roubles need no rate"));
            }
            if rate.minor_digits > 4 {
                return Err(err(&format!("{field}.minor_digits"), "must be 0 to 4"));
            }
            super::money::Rate::parse(&rate.rub_per_unit, rate.minor_digits)
                .map_err(|reason| err(&format!("{field}.rub_per_unit"), reason))?;
        }
        let amount = |field: &str, v: u64| {
            if v == 0 || v > MAX_RUB {
                Err(err(field, "must be between 1 and 1000000000000 roubles"))
            } else {
                Ok(())
            }
        };
        let window = |field: &str, v: u32| {
            if v == 0 || v > MAX_WINDOW_HOURS {
                Err(err(field, "must be between 1 and 744 hours"))
            } else {
                Ok(())
            }
        };
        let m = &self.mandatory_control;
        amount("mandatory_control.threshold_rub", m.threshold_rub)?;
        for (i, c) in m.categories.iter().enumerate() {
            let f = format!("mandatory_control.categories[{i}]");
            if c.name.trim().is_empty() {
                return Err(err(&format!("{f}.name"), "must not be empty"));
            }
            amount(&format!("{f}.threshold_rub"), c.threshold_rub)?;
            if c.purpose_keywords.is_empty()
                || c.purpose_keywords.iter().any(|k| k.trim().is_empty())
            {
                return Err(err(
                    &format!("{f}.purpose_keywords"),
                    "must list non-empty words",
                ));
            }
        }
        let s = &self.structuring;
        if s.min_count < 2 || s.min_count > 1_000 {
            return Err(err("structuring.min_count", "must be between 2 and 1000"));
        }
        window("structuring.window_hours", s.window_hours)?;
        if !(1..=99).contains(&s.band_pct) {
            return Err(err("structuring.band_pct", "must be between 1 and 99"));
        }
        let v = &self.velocity;
        window("velocity.window_hours", v.window_hours)?;
        if v.max_count == 0 {
            return Err(err("velocity.max_count", "must be at least 1"));
        }
        amount("velocity.max_total_rub", v.max_total_rub)?;
        for (i, c) in self.high_risk_geography.countries.iter().enumerate() {
            if crate::lists::country::from_code(c).is_none() {
                return Err(err(
                    &format!("high_risk_geography.countries[{i}]"),
                    "must be an iso 3166-1 alpha-2 code",
                ));
            }
        }
        let t = &self.transit;
        window("transit.window_hours", t.window_hours)?;
        if !(1..=100).contains(&t.min_out_pct) {
            return Err(err("transit.min_out_pct", "must be between 1 and 100"));
        }
        amount("transit.min_in_rub", t.min_in_rub)?;
        let p = &self.profile_mismatch;
        if p.turnover_multiple == 0 || p.turnover_multiple > 1_000 {
            return Err(err(
                "profile_mismatch.turnover_multiple",
                "must be between 1 and 1000",
            ));
        }
        if p.senior_age.is_some_and(|a| !(1..=150).contains(&a)) {
            return Err(err(
                "profile_mismatch.senior_age",
                "must be between 1 and 150",
            ));
        }
        Ok(())
    }

    /// How long operations are kept per account: the longest window of the window rules.
    pub fn retention_hours(&self) -> u32 {
        self.structuring
            .window_hours
            .max(self.velocity.window_hours)
            .max(self.transit.window_hours)
    }
}
