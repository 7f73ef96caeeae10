//! A counterparty in a configured high-risk jurisdiction, and reading a country from an IBAN.

use super::super::alert::{Alert, RuleId};
use super::super::config::HighRiskGeography;
use super::{Op, Part, alert};

pub(crate) fn check(cfg: &HighRiskGeography, op: &Op<'_>) -> Option<Alert> {
    let (country, source) = op.country?;
    if !cfg
        .countries
        .iter()
        .any(|c| c.eq_ignore_ascii_case(country))
    {
        return None;
    }
    let reason = format!(
        "counterparty country {} (from {source}) is on the configured high-risk list",
        country.to_ascii_uppercase()
    );
    Some(alert(
        RuleId::HighRiskGeography,
        op,
        vec![Part::of(op)],
        reason,
    ))
}

/// The country of an IBAN (ISO 13616: two letters, two check digits, up to 30 letters or
/// digits, mod-97 check equal to 1); `None` for anything else, such as a Russian 20-digit
/// account number.
pub(crate) fn iban_country(account: &str) -> Option<&'static str> {
    let s: String = account
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&s.len()) || !s.is_ascii() {
        return None;
    }
    let b = s.as_bytes();
    if !b[0].is_ascii_uppercase()
        || !b[1].is_ascii_uppercase()
        || !b[2].is_ascii_digit()
        || !b[3].is_ascii_digit()
    {
        return None;
    }
    if !b[4..].iter().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let v = if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    if rem != 1 {
        return None;
    }
    crate::lists::country::from_code(&s[..2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans() {
        assert_eq!(iban_country("DE89 3704 0044 0532 0130 00"), Some("de"));
        assert_eq!(iban_country("GB82WEST12345698765432"), Some("gb"));
        assert_eq!(iban_country("GB82WEST12345698765433"), None, "check digits");
        assert_eq!(
            iban_country("40817810099910004312"),
            None,
            "russian account"
        );
        assert_eq!(iban_country(""), None);
        assert_eq!(iban_country("ДЕ89370400440532013000"), None);
    }
}
