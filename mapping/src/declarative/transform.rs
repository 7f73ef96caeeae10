//! String transforms and validators a field rule can name.
//!
//! Contract: each works on one text value and returns the new text or a reason (lowercase,
//! without the value). Transforms of card numbers never return or report the number:
//! `mask_pan` keeps the first six and last four digits, `tokenize_pan` returns the hex
//! HMAC-SHA256 of the digits under the mapping's key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::model::mask_pan;
use crate::validate::{self, FieldError};

/// The keyed hash behind `tokenize_pan`, keyed once at compile time.
pub(crate) type PanKey = Hmac<Sha256>;

/// A named transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transform {
    Trim,
    Upper,
    Lower,
    TitleCase,
    DigitsOnly,
    CollapseSpaces,
    MaskPan,
    TokenizePan,
    DecimalToMinor,
    Abs,
    SignToDirection,
}

impl Transform {
    pub(crate) const NAMES: &'static str = "trim, upper, lower, title_case, digits_only, \
        collapse_spaces, mask_pan, tokenize_pan, decimal_to_minor, abs, sign_to_direction";

    pub(crate) fn from_name(name: &str) -> Option<Transform> {
        Some(match name {
            "trim" => Transform::Trim,
            "upper" => Transform::Upper,
            "lower" => Transform::Lower,
            "title_case" => Transform::TitleCase,
            "digits_only" => Transform::DigitsOnly,
            "collapse_spaces" => Transform::CollapseSpaces,
            "mask_pan" => Transform::MaskPan,
            "tokenize_pan" => Transform::TokenizePan,
            "decimal_to_minor" => Transform::DecimalToMinor,
            "abs" => Transform::Abs,
            "sign_to_direction" => Transform::SignToDirection,
            _ => return None,
        })
    }

    /// Whether the output is a mask or a token: safe to print, not scanned for card numbers.
    pub(crate) fn makes_pan_safe(self) -> bool {
        matches!(self, Transform::MaskPan | Transform::TokenizePan)
    }

    /// Applies the transform. `key` is present whenever the mapping uses `tokenize_pan`
    /// (compile refuses it otherwise).
    pub(crate) fn apply(self, v: &str, key: Option<&PanKey>) -> Result<String, String> {
        Ok(match self {
            Transform::Trim => v.trim().to_string(),
            Transform::Upper => v.to_uppercase(),
            Transform::Lower => v.to_lowercase(),
            Transform::TitleCase => title_case(v),
            Transform::DigitsOnly => v.chars().filter(char::is_ascii_digit).collect(),
            Transform::CollapseSpaces => collapse_spaces(v),
            Transform::MaskPan => mask_pan(v).map_err(pan_reason)?,
            Transform::TokenizePan => {
                let Some(key) = key else {
                    return Err("tokenize_pan has no key".into());
                };
                tokenize_pan(v, key)?
            }
            Transform::DecimalToMinor => decimal_to_minor(v)?.to_string(),
            Transform::Abs => abs(v)?,
            Transform::SignToDirection => sign_to_direction(v)?.to_string(),
        })
    }
}

/// A card-number error, saying why without any digit of the number.
fn pan_reason(e: FieldError) -> String {
    if e.reason.contains("luhn") {
        "card number invalid (Luhn)".into()
    } else {
        format!("card number invalid ({})", e.reason)
    }
}

/// The hex HMAC-SHA256 of the card number's digits (spaces and hyphens ignored), after the
/// same checks as [`mask_pan`], so an invalid number never gets a token.
pub(crate) fn tokenize_pan(v: &str, key: &PanKey) -> Result<String, String> {
    mask_pan(v).map_err(pan_reason)?;
    let digits: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
    let mut mac = key.clone();
    mac.update(&digits);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// Upper-cases the first letter of every word (after whitespace, `-`, `'` and `.`) and
/// lower-cases the rest: `иванов-ПЕТРОВ` → `Иванов-Петров`.
pub(crate) fn title_case(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut start = true;
    for c in v.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.extend(c.to_lowercase());
        }
        start = c.is_whitespace() || c == '-' || c == '\'' || c == '.';
    }
    out
}

/// Collapses runs of whitespace into one space and trims the ends.
pub(crate) fn collapse_spaces(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for word in v.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// An amount with up to two decimals as minor units: `1234.56`, `1 234,56`, `1,234.56`,
/// `-0.5` → 123456, 123456, 123456, -50. Spaces (also no-break) and `'` group thousands;
/// when both `.` and `,` occur, the last one is the decimal separator. Exact: no floating
/// point.
pub(crate) fn decimal_to_minor(v: &str) -> Result<i64, String> {
    let s = v.trim();
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let decimal_at = match (s.rfind('.'), s.rfind(',')) {
        (Some(d), Some(c)) => Some(d.max(c)),
        (Some(d), None) => Some(d),
        // A lone comma is a decimal separator (Russian notation), unless it groups
        // thousands as in `1,234,567`.
        (None, Some(c)) if s.matches(',').count() == 1 => Some(c),
        _ => None,
    };
    let (int_part, frac_part, decimal) = match decimal_at {
        Some(i) => (&s[..i], &s[i + 1..], s[i..].chars().next()),
        None => (s, "", None),
    };
    // Thousands groups: the first of one to three digits, every later one of three.
    let mut units: i64 = 0;
    let mut digits = 0usize;
    let mut group = 0usize;
    let mut grouped = false;
    for c in int_part.chars() {
        match c {
            '0'..='9' => {
                units = units
                    .checked_mul(10)
                    .and_then(|u| u.checked_add(i64::from(c as u8 - b'0')))
                    .ok_or("amount too large")?;
                digits += 1;
                group += 1;
            }
            ' ' | '\u{a0}' | '\u{202f}' | '\'' | ',' | '.' if Some(c) != decimal => {
                let bad_group = if grouped {
                    group != 3
                } else {
                    group == 0 || group > 3
                };
                if bad_group {
                    return Err("not a decimal amount".into());
                }
                grouped = true;
                group = 0;
            }
            _ => return Err("not a decimal amount".into()),
        }
    }
    if grouped && group != 3 {
        return Err("not a decimal amount".into());
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a decimal amount".into());
    }
    let frac = frac_part.trim_end_matches('0');
    if frac.len() > 2 {
        return Err("more than two decimal places".into());
    }
    if digits == 0 && frac_part.is_empty() {
        return Err("not a decimal amount".into());
    }
    let mut cents: i64 = 0;
    for (i, b) in frac.bytes().enumerate() {
        let weight = if i == 0 { 10 } else { 1 };
        cents += i64::from(b - b'0') * weight;
    }
    let minor = units
        .checked_mul(100)
        .and_then(|u| u.checked_add(cents))
        .ok_or("amount too large")?;
    Ok(if negative { -minor } else { minor })
}

/// The absolute value of an integer or decimal text, keeping its notation.
fn abs(v: &str) -> Result<String, String> {
    let s = v.trim();
    let rest = s.strip_prefix(['-', '+']).unwrap_or(s);
    if rest.is_empty() || !rest.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == ',') {
        return Err("not a number".into());
    }
    Ok(rest.to_string())
}

/// `debit` for a negative amount, `credit` otherwise.
fn sign_to_direction(v: &str) -> Result<&'static str, String> {
    let s = v.trim();
    if s.is_empty() {
        return Err("not a number".into());
    }
    Ok(if s.starts_with('-') {
        "debit"
    } else {
        "credit"
    })
}

/// A named validator; each returns the normalised value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Validator {
    Inn,
    Snils,
    Ogrn,
    Passport,
    Phone,
    Email,
    Account,
    Bic,
    Currency,
    PostalCode,
    Pan,
}

impl Validator {
    pub(crate) const NAMES: &'static str =
        "inn, snils, ogrn, passport, phone, email, account, bic, currency, postal_code, pan";

    pub(crate) fn from_name(name: &str) -> Option<Validator> {
        Some(match name {
            "inn" => Validator::Inn,
            "snils" => Validator::Snils,
            "ogrn" => Validator::Ogrn,
            "passport" => Validator::Passport,
            "phone" => Validator::Phone,
            "email" => Validator::Email,
            "account" => Validator::Account,
            "bic" => Validator::Bic,
            "currency" => Validator::Currency,
            "postal_code" => Validator::PostalCode,
            "pan" => Validator::Pan,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Validator::Inn => "inn",
            Validator::Snils => "snils",
            Validator::Ogrn => "ogrn",
            Validator::Passport => "passport",
            Validator::Phone => "phone",
            Validator::Email => "email",
            Validator::Account => "account",
            Validator::Bic => "bic",
            Validator::Currency => "currency",
            Validator::PostalCode => "postal_code",
            Validator::Pan => "pan",
        }
    }

    /// Validates and normalises `v`; the error is the reason only. `pan` returns the mask.
    pub(crate) fn check(self, v: &str) -> Result<String, String> {
        let r = match self {
            Validator::Inn => validate::inn(v),
            Validator::Snils => validate::snils(v),
            Validator::Ogrn => validate::ogrn(v),
            Validator::Passport => validate::passport(v),
            Validator::Phone => validate::phone(v),
            Validator::Email => validate::email(v),
            Validator::Account => validate::account_number(v, None),
            Validator::Bic => validate::bic(v),
            Validator::Currency => validate::currency(v),
            Validator::PostalCode => validate::postal_code(v),
            Validator::Pan => return mask_pan(v).map_err(pan_reason),
        };
        r.map_err(|e| e.reason)
    }
}
