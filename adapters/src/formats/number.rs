//! Amounts as banks write them, turned into integer minor units of the currency.
//!
//! Contract:
//! - [`parse_amount`] takes `1234.56`, `1234,56`, `1 234 567,89` (spaces, no-break spaces
//!   or apostrophes between groups of three digits), `1.234.567,89`, `1,234,567.89`, and a
//!   sign as `-`, `−`, `+`, a trailing `-`, or parentheses around the amount. With both `.`
//!   and `,` in the amount the last one is the decimal separator; with one of them once it
//!   is the decimal separator; more than once, it separates groups. `100,` (SWIFT) is 100.
//! - The result is in minor units of the currency's exponent ([`currency_exponent`]): more
//!   fractional digits than the currency has are an error unless they are zeros. Overflow
//!   is an error. Nothing is rounded.
//! - Errors never carry the text.

use thiserror::Error;

/// Why an amount was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum AmountError {
    /// No digits.
    #[error("amount is empty")]
    Empty,
    /// A character that is no digit, separator or sign.
    #[error("amount has a character that is not a digit, separator or sign")]
    BadCharacter,
    /// Two signs, or a sign inside the number.
    #[error("amount has a misplaced sign")]
    MisplacedSign,
    /// Digit groups that are not of three digits, or a separator with no digit before it.
    #[error("amount has misplaced group separators")]
    BadGrouping,
    /// More fractional digits than the currency has.
    #[error("amount has more than {allowed} decimal places")]
    TooManyDecimals {
        /// The currency's decimal places.
        allowed: u32,
    },
    /// Does not fit 64 bits of minor units.
    #[error("amount is too large")]
    Overflow,
}

/// The number of decimal places (ISO 4217 minor unit) of `code`, or `None` if `code` is not
/// three ASCII capital letters. Codes not in the short list of exceptions have two.
pub fn currency_exponent(code: &str) -> Option<u32> {
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    })
}

/// Whether `c` may separate digit groups.
fn is_group_space(c: char) -> bool {
    matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\u{2009}' | '\'')
}

fn is_minus(c: char) -> bool {
    c == '-' || c == '\u{2212}'
}

/// Parses `text` into signed minor units with `exponent` decimal places.
pub fn parse_amount(text: &str, exponent: u32) -> Result<i64, AmountError> {
    let s = text.trim_matches(|c: char| c.is_whitespace() || is_group_space(c));
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    let (negative, body) = split_sign(s)?;
    let body = body.trim_matches(|c: char| c.is_whitespace() || is_group_space(c));
    if body
        .chars()
        .any(|c| is_minus(c) || c == '+' || c == '(' || c == ')')
    {
        return Err(AmountError::MisplacedSign);
    }
    let (decimal, group) = separators(body)?;
    let (int_part, frac_part) = match decimal {
        Some(at) => (
            body.get(..at).unwrap_or_default(),
            body.get(at + 1..).unwrap_or_default(),
        ),
        None => (body, ""),
    };
    let int_value = parse_integer_part(int_part, group)?;
    let (frac_value, frac_digits) = parse_fraction(frac_part, exponent)?;
    if int_part.is_empty() && frac_digits == 0 {
        return Err(AmountError::Empty);
    }
    let scale = 10i64.checked_pow(exponent).ok_or(AmountError::Overflow)?;
    let scaled_frac = frac_value
        .checked_mul(
            10i64
                .checked_pow(exponent - frac_digits)
                .ok_or(AmountError::Overflow)?,
        )
        .ok_or(AmountError::Overflow)?;
    let magnitude = int_value
        .checked_mul(scale)
        .and_then(|v| v.checked_add(scaled_frac))
        .ok_or(AmountError::Overflow)?;
    Ok(if negative { -magnitude } else { magnitude })
}

/// Parses an amount written without a decimal separator, whose last `implied` digits are
/// the fraction (fixed-width files: `000000012345` with two implied decimals is 123.45),
/// into minor units with `exponent` decimal places. A sign is allowed as in
/// [`parse_amount`].
pub fn parse_implied(text: &str, implied: u32, exponent: u32) -> Result<i64, AmountError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(AmountError::Empty);
    }
    let (negative, body) = split_sign(s)?;
    let body = body.trim();
    if body.is_empty() {
        return Err(AmountError::Empty);
    }
    let mut value: i64 = 0;
    for c in body.chars() {
        let digit = c.to_digit(10).ok_or(AmountError::BadCharacter)?;
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit)))
            .ok_or(AmountError::Overflow)?;
    }
    let magnitude = if implied <= exponent {
        value
            .checked_mul(
                10i64
                    .checked_pow(exponent - implied)
                    .ok_or(AmountError::Overflow)?,
            )
            .ok_or(AmountError::Overflow)?
    } else {
        let divisor = 10i64
            .checked_pow(implied - exponent)
            .ok_or(AmountError::Overflow)?;
        if value % divisor != 0 {
            return Err(AmountError::TooManyDecimals { allowed: exponent });
        }
        value / divisor
    };
    Ok(if negative { -magnitude } else { magnitude })
}

/// Splits off a leading or trailing sign or surrounding parentheses.
fn split_sign(s: &str) -> Result<(bool, &str), AmountError> {
    if let Some(inner) = s.strip_prefix('(') {
        return match inner.strip_suffix(')') {
            Some(inner) => Ok((true, inner)),
            None => Err(AmountError::MisplacedSign),
        };
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if is_minus(c) => return Ok((true, chars.as_str())),
        Some('+') => return Ok((false, chars.as_str())),
        _ => {}
    }
    let mut rev = s.chars();
    if rev.next_back().is_some_and(is_minus) {
        return Ok((true, rev.as_str()));
    }
    Ok((false, s))
}

/// The byte position of the decimal separator, if the amount has one, and the punctuation
/// that separates digit groups, if any.
fn separators(body: &str) -> Result<(Option<usize>, Option<char>), AmountError> {
    let commas = body.matches(',').count();
    let dots = body.matches('.').count();
    Ok(match (commas, dots) {
        (0, 0) => (None, None),
        (1, 0) => (body.find(','), None),
        (0, 1) => (body.find('.'), None),
        (_, 0) => (None, Some(',')),
        (0, _) => (None, Some('.')),
        _ => {
            // Both: the last one is the decimal separator and must appear once.
            let comma = body.rfind(',');
            let dot = body.rfind('.');
            if comma > dot {
                if commas != 1 {
                    return Err(AmountError::BadGrouping);
                }
                (comma, Some('.'))
            } else {
                if dots != 1 {
                    return Err(AmountError::BadGrouping);
                }
                (dot, Some(','))
            }
        }
    })
}

/// The integer part: digits in groups of three after the first when separated by spaces or
/// by `group` punctuation.
fn parse_integer_part(int_part: &str, group: Option<char>) -> Result<i64, AmountError> {
    let mut value: i64 = 0;
    let mut group_len: usize = 0;
    let mut grouped = false;
    for c in int_part.chars() {
        if let Some(d) = c.to_digit(10) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d)))
                .ok_or(AmountError::Overflow)?;
            group_len += 1;
        } else if is_group_space(c) || Some(c) == group {
            // A separator needs digits before it; after the first group every group has
            // three digits.
            if group_len == 0 || (grouped && group_len != 3) {
                return Err(AmountError::BadGrouping);
            }
            grouped = true;
            group_len = 0;
        } else if c == ',' || c == '.' {
            return Err(AmountError::BadGrouping);
        } else {
            return Err(AmountError::BadCharacter);
        }
    }
    if grouped && group_len != 3 {
        return Err(AmountError::BadGrouping);
    }
    Ok(value)
}

/// The fraction's value and number of significant digits kept (at most `exponent`).
fn parse_fraction(frac: &str, exponent: u32) -> Result<(i64, u32), AmountError> {
    let mut value: i64 = 0;
    let mut kept: u32 = 0;
    for (i, c) in frac.chars().enumerate() {
        let d = c
            .to_digit(10)
            .ok_or(if is_group_space(c) || c == ',' || c == '.' {
                AmountError::BadGrouping
            } else {
                AmountError::BadCharacter
            })?;
        if i < exponent as usize {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(d)))
                .ok_or(AmountError::Overflow)?;
            kept += 1;
        } else if d != 0 {
            return Err(AmountError::TooManyDecimals { allowed: exponent });
        }
    }
    Ok((value, kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_decimal_comma() {
        assert_eq!(parse_amount("1234.56", 2), Ok(123_456));
        assert_eq!(parse_amount("1234,56", 2), Ok(123_456));
        assert_eq!(parse_amount("0,01", 2), Ok(1));
        assert_eq!(parse_amount("700", 2), Ok(70_000));
        assert_eq!(parse_amount("5,3", 2), Ok(530));
        assert_eq!(parse_amount("100,", 2), Ok(10_000));
        assert_eq!(parse_amount(",5", 2), Ok(50));
        assert_eq!(parse_amount("000000001213,28", 2), Ok(121_328));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(parse_amount("1 234 567,89", 2), Ok(123_456_789));
        assert_eq!(parse_amount("1\u{a0}234\u{a0}567,89", 2), Ok(123_456_789));
        assert_eq!(parse_amount("1\u{202f}234,00", 2), Ok(123_400));
        assert_eq!(parse_amount("1.234.567,89", 2), Ok(123_456_789));
        assert_eq!(parse_amount("1,234,567.89", 2), Ok(123_456_789));
        assert_eq!(parse_amount("1'234.50", 2), Ok(123_450));
        assert_eq!(parse_amount("1,234,567", 2), Ok(123_456_700));
        assert_eq!(
            parse_amount("12 34,00", 2),
            Err(AmountError::BadGrouping),
            "groups after the first have three digits"
        );
        assert_eq!(parse_amount("1,2,3", 2), Err(AmountError::BadGrouping));
        assert_eq!(parse_amount(" ,5", 2), Ok(50));
    }

    #[test]
    fn signs() {
        assert_eq!(parse_amount("-1 850,50", 2), Ok(-185_050));
        assert_eq!(parse_amount("\u{2212}10", 2), Ok(-1000));
        assert_eq!(parse_amount("+10", 2), Ok(1000));
        assert_eq!(parse_amount("(1 234,56)", 2), Ok(-123_456));
        assert_eq!(parse_amount("10.00-", 2), Ok(-1000));
        assert_eq!(parse_amount("- 5", 2), Ok(-500));
        assert_eq!(parse_amount("--5", 2), Err(AmountError::MisplacedSign));
        assert_eq!(parse_amount("(5", 2), Err(AmountError::MisplacedSign));
        assert_eq!(parse_amount("5-5", 2), Err(AmountError::MisplacedSign));
        assert_eq!(parse_amount("-(5)", 2), Err(AmountError::MisplacedSign));
    }

    #[test]
    fn exponents() {
        assert_eq!(parse_amount("2700", 0), Ok(2700));
        assert_eq!(parse_amount("35.00", 0), Ok(35));
        assert_eq!(
            parse_amount("35.5", 0),
            Err(AmountError::TooManyDecimals { allowed: 0 })
        );
        assert_eq!(parse_amount("1.234", 3), Ok(1234));
        assert_eq!(
            parse_amount("1.2340", 2),
            Err(AmountError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(parse_amount("1.2300", 2), Ok(123));
        assert_eq!(currency_exponent("JPY"), Some(0));
        assert_eq!(currency_exponent("KWD"), Some(3));
        assert_eq!(currency_exponent("RUB"), Some(2));
        assert_eq!(currency_exponent("rub"), None);
        assert_eq!(currency_exponent("RU"), None);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "  ",
            "-",
            "()",
            "abc",
            "12a",
            "1..2",
            "1,,2",
            "1.2.3,4,5",
            "1e5",
        ] {
            assert!(parse_amount(bad, 2).is_err(), "{bad:?} must be rejected");
        }
        assert_eq!(
            parse_amount("99999999999999999999", 2),
            Err(AmountError::Overflow)
        );
        assert_eq!(parse_amount("92233720368547758,07", 2), Ok(i64::MAX));
        assert_eq!(
            parse_amount("92233720368547758,08", 2),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn implied_decimals() {
        assert_eq!(parse_implied("000000012345", 2, 2), Ok(12_345));
        assert_eq!(parse_implied("-12345", 2, 2), Ok(-12_345));
        assert_eq!(parse_implied("12345", 0, 2), Ok(1_234_500));
        assert_eq!(parse_implied("12300", 3, 2), Ok(1230));
        assert_eq!(
            parse_implied("12345", 3, 2),
            Err(AmountError::TooManyDecimals { allowed: 2 })
        );
        assert_eq!(
            parse_implied("12 345", 2, 2),
            Err(AmountError::BadCharacter)
        );
        assert_eq!(parse_implied("", 2, 2), Err(AmountError::Empty));
    }

    #[test]
    fn errors_do_not_echo() {
        let e = parse_amount("12x45", 2).unwrap_err().to_string();
        assert!(!e.contains("12x45"));
    }
}
