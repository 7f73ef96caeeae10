//! Amounts in kopecks: conversion to roubles with exact decimal rates, and display.

use std::collections::BTreeMap;

use super::config::MonitoringConfig;

/// A parsed rate: `mantissa / 10^scale` roubles per whole unit of a currency whose minor unit
/// has `minor_digits` digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rate {
    mantissa: i128,
    scale: u32,
    minor_digits: u32,
}

impl Rate {
    /// "92.5012" → a rate; positive, at most 12 decimals, at most 18 digits.
    pub(crate) fn parse(text: &str, minor_digits: u8) -> Result<Rate, &'static str> {
        let text = text.trim();
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if int.is_empty() && frac.is_empty() {
            return Err("must be a decimal number like 92.5012");
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err("must be a decimal number like 92.5012");
        }
        if frac.len() > 12 || int.len() + frac.len() > 18 {
            return Err("must have at most 12 decimals and 18 digits");
        }
        let digits = format!("{int}{frac}");
        let mantissa: i128 = digits
            .parse()
            .map_err(|_| "must be a decimal number like 92.5012")?;
        if mantissa == 0 {
            return Err("must be greater than zero");
        }
        Ok(Rate {
            mantissa,
            scale: u32::try_from(frac.len()).map_err(|_| "too many decimals")?,
            minor_digits: u32::from(minor_digits),
        })
    }

    /// Kopecks for `amount_minor` minor units, rounded half up; `None` on overflow.
    fn to_kopecks(self, amount_minor: i64) -> Option<i64> {
        let num = i128::from(amount_minor)
            .checked_mul(self.mantissa)?
            .checked_mul(100)?;
        let den = 10i128.checked_pow(self.scale + self.minor_digits)?;
        let rounded = num.checked_add(den / 2)?.div_euclid(den);
        i64::try_from(rounded).ok()
    }
}

/// The rate table of a validated config.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rates(BTreeMap<String, Rate>);

impl Rates {
    pub(crate) fn from_config(config: &MonitoringConfig) -> Result<Rates, super::ConfigError> {
        let mut map = BTreeMap::new();
        for (code, r) in &config.rates {
            let rate = Rate::parse(&r.rub_per_unit, r.minor_digits).map_err(|reason| {
                super::ConfigError {
                    field: format!("rates.{code}.rub_per_unit"),
                    reason: reason.to_owned(),
                }
            })?;
            map.insert(code.clone(), rate);
        }
        Ok(Rates(map))
    }

    /// The amount in kopecks: roubles as they are, other currencies through the table.
    pub(crate) fn to_rub(&self, amount_minor: i64, currency: &str) -> Conversion {
        if currency == "RUB" {
            return Conversion::Rub(amount_minor);
        }
        match self.0.get(currency) {
            None => Conversion::NoRate,
            Some(rate) => match rate.to_kopecks(amount_minor) {
                Some(k) => Conversion::Rub(k),
                None => Conversion::Overflow,
            },
        }
    }
}

pub(crate) enum Conversion {
    Rub(i64),
    NoRate,
    Overflow,
}

/// Whole roubles → kopecks (config values are validated far below overflow).
pub(crate) fn kopecks(rub: u64) -> i64 {
    i64::try_from(rub)
        .unwrap_or(i64::MAX / 100)
        .saturating_mul(100)
}

/// `123456789` kopecks → "1 234 567.89 RUB".
pub(crate) fn rub(kopecks: i64) -> String {
    format!("{} RUB", minor(kopecks, 2))
}

/// An amount in minor units with `digits` decimals and spaces between thousands.
pub(crate) fn minor(amount: i64, digits: u32) -> String {
    let sign = if amount < 0 { "-" } else { "" };
    let abs = amount.unsigned_abs();
    let unit = 10u64.pow(digits);
    let (whole, frac) = (abs / unit, abs % unit);
    let whole = whole.to_string();
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    if digits == 0 {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac:0width$}", width = digits as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_conversion() {
        let usd = Rate::parse("92.5012", 2).unwrap();
        // 100.00 USD → 9 250.12 RUB
        assert_eq!(usd.to_kopecks(10_000), Some(925_012));
        // 0.01 USD → 0.925012 RUB → 0.93
        assert_eq!(usd.to_kopecks(1), Some(93));
        let jpy = Rate::parse("0.61", 0).unwrap();
        assert_eq!(jpy.to_kopecks(1_000), Some(61_000));
        let kwd = Rate::parse("300", 3).unwrap();
        assert_eq!(kwd.to_kopecks(1_500), Some(45_000));
        assert_eq!(
            Rate::parse("92.5012", 2).unwrap().to_kopecks(i64::MAX),
            None
        );
        for bad in ["", ".", "-1", "1e3", "0", "0.000", "1,5", "1.0000000000001"] {
            assert!(Rate::parse(bad, 2).is_err(), "{bad}");
        }
        assert!(Rate::parse(".5", 2).is_ok());
    }

    #[test]
    fn display() {
        assert_eq!(rub(100_000_000), "1 000 000.00 RUB");
        assert_eq!(rub(99_999), "999.99 RUB");
        assert_eq!(rub(5), "0.05 RUB");
        assert_eq!(minor(-123_456_789, 2), "-1 234 567.89");
        assert_eq!(minor(1_000, 0), "1 000");
    }
}
