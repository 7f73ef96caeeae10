//! Field validators: each takes a raw source value and returns the normalised value or a
//! [`FieldError`].
//!
//! Contract: pure functions; surrounding whitespace is ignored; an error's reason is lowercase
//! and says what is wrong (length, character class, checksum) but never repeats the rejected
//! value, which may be personal data. Each validator reports under its canonical field name;
//! use [`FieldError::in_field`] to report under another.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A field that failed validation. Displays as `field inn: checksum mismatch`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("field {field}: {reason}")]
pub struct FieldError {
    /// Canonical field name, for example `inn`.
    pub field: String,
    /// What is wrong, without the value itself.
    pub reason: String,
}

impl FieldError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error reported under another field name.
    pub fn in_field(mut self, field: impl Into<String>) -> Self {
        self.field = field.into();
        self
    }
}

/// Describes the class of a character without naming it.
fn describe(c: char) -> &'static str {
    if c.is_ascii_digit() {
        "a digit"
    } else if c.is_alphabetic() {
        "a letter"
    } else if c.is_numeric() {
        "a non-ascii digit"
    } else if c.is_whitespace() {
        "whitespace"
    } else if c.is_control() {
        "a control character"
    } else {
        "a punctuation or symbol character"
    }
}

/// The ASCII digits of a trimmed value, skipping `separators`; any other character is an error.
pub(crate) fn digits(field: &str, value: &str, separators: &[char]) -> Result<Vec<u8>, FieldError> {
    let mut out = Vec::new();
    for c in value.trim().chars() {
        if c.is_ascii_digit() {
            out.push(c as u8 - b'0');
        } else if !separators.contains(&c) {
            return Err(FieldError::new(
                field,
                format!("must contain only digits, found {}", describe(c)),
            ));
        }
    }
    if out.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    Ok(out)
}

fn to_string(d: &[u8]) -> String {
    d.iter().map(|x| char::from(b'0' + x)).collect()
}

fn to_number(d: &[u8]) -> u64 {
    d.iter().fold(0, |n, &x| n * 10 + u64::from(x))
}

fn reject_all_zero(field: &str, d: &[u8]) -> Result<(), FieldError> {
    if d.iter().all(|&x| x == 0) {
        Err(FieldError::new(field, "must not be all zeros"))
    } else {
        Ok(())
    }
}

fn weighted_sum(d: &[u8], weights: &[u32]) -> u32 {
    d.iter().zip(weights).map(|(&x, &w)| u32::from(x) * w).sum()
}

const INN10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
const INN12_11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
const INN12_12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];

fn inn_check(d: &[u8], weights: &[u32]) -> u8 {
    // The remainder is below 10 after the second modulo, so the cast is lossless.
    (weighted_sum(d, weights) % 11 % 10) as u8
}

/// Taxpayer number: 10 digits (organisation) or 12 digits (person) with the official check
/// digits. Returns the digits.
pub fn inn(value: &str) -> Result<String, FieldError> {
    const F: &str = "inn";
    let d = digits(F, value, &[])?;
    let ok = match d.len() {
        10 => inn_check(&d[..9], &INN10) == d[9],
        12 => inn_check(&d[..10], &INN12_11) == d[10] && inn_check(&d[..11], &INN12_12) == d[11],
        n => {
            return Err(FieldError::new(
                F,
                format!("must have 10 or 12 digits, got {n}"),
            ));
        }
    };
    reject_all_zero(F, &d)?;
    if !ok {
        return Err(FieldError::new(F, "checksum mismatch"));
    }
    Ok(to_string(&d))
}

/// Pension insurance number: 11 digits, plain or formatted with `-` and spaces. The check
/// number is verified for numbers above 001-001-998. Returns `123-456-789 01`.
pub fn snils(value: &str) -> Result<String, FieldError> {
    const F: &str = "snils";
    let d = digits(F, value, &['-', ' '])?;
    if d.len() != 11 {
        return Err(FieldError::new(
            F,
            format!("must have 11 digits, got {}", d.len()),
        ));
    }
    reject_all_zero(F, &d)?;
    if to_number(&d[..9]) > 1_001_998 {
        let sum = weighted_sum(&d[..9], &[9, 8, 7, 6, 5, 4, 3, 2, 1]);
        let check = match sum {
            0..=99 => sum,
            100 | 101 => 0,
            _ => match sum % 101 {
                100 => 0,
                m => m,
            },
        };
        if u32::from(d[9]) * 10 + u32::from(d[10]) != check {
            return Err(FieldError::new(F, "checksum mismatch"));
        }
    }
    let s = to_string(&d);
    Ok(format!(
        "{}-{}-{} {}",
        &s[0..3],
        &s[3..6],
        &s[6..9],
        &s[9..11]
    ))
}

/// State registration number: 13 digits (check digit = first 12 mod 11 mod 10) or 15 digits
/// for an individual entrepreneur (check digit = first 14 mod 13 mod 10). Returns the digits.
pub fn ogrn(value: &str) -> Result<String, FieldError> {
    const F: &str = "ogrn";
    let d = digits(F, value, &[])?;
    let modulus = match d.len() {
        13 => 11,
        15 => 13,
        n => {
            return Err(FieldError::new(
                F,
                format!("must have 13 or 15 digits, got {n}"),
            ));
        }
    };
    reject_all_zero(F, &d)?;
    let last = d.len() - 1;
    if to_number(&d[..last]) % modulus % 10 != u64::from(d[last]) {
        return Err(FieldError::new(F, "checksum mismatch"));
    }
    Ok(to_string(&d))
}

/// Passport of the Russian Federation: series (4 digits) and number (6 digits), spaces
/// allowed. Returns `4510 123456`.
pub fn passport(value: &str) -> Result<String, FieldError> {
    const F: &str = "passport";
    let d = digits(F, value, &[' '])?;
    if d.len() != 10 {
        return Err(FieldError::new(
            F,
            format!("must have 10 digits (4 series + 6 number), got {}", d.len()),
        ));
    }
    reject_all_zero(F, &d)?;
    let s = to_string(&d);
    Ok(format!("{} {}", &s[..4], &s[4..]))
}

/// A phone number in E.164 form. Accepts international numbers starting with `+` (8 to 15
/// digits; a `+7` number has 11) and Russian national forms: 11 digits starting with 8 or 7,
/// or 10 digits, whose national part starts with 3, 4, 8 or 9. Spaces, hyphens, dots and
/// parentheses are ignored. Returns, for example, `+79123456789`.
pub fn phone(value: &str) -> Result<String, FieldError> {
    const F: &str = "phone";
    let v = value.trim();
    let separators = [' ', '-', '(', ')', '.', '\u{a0}'];
    if let Some(rest) = v.strip_prefix('+') {
        let d = digits(F, rest, &separators)?;
        if d[0] == 0 {
            return Err(FieldError::new(F, "country code must not start with 0"));
        }
        if !(8..=15).contains(&d.len()) {
            return Err(FieldError::new(
                F,
                format!("must have 8 to 15 digits after '+', got {}", d.len()),
            ));
        }
        if d[0] == 7 && d.len() != 11 {
            return Err(FieldError::new(
                F,
                format!("a +7 number must have 11 digits, got {}", d.len()),
            ));
        }
        return Ok(format!("+{}", to_string(&d)));
    }
    let d = digits(F, v, &separators)?;
    let national = match d.len() {
        11 if d[0] == 7 || d[0] == 8 => &d[1..],
        11 => {
            return Err(FieldError::new(
                F,
                "an 11-digit number without '+' must start with 7 or 8",
            ));
        }
        10 => &d[..],
        n => {
            return Err(FieldError::new(
                F,
                format!("must have 10 or 11 digits, or start with '+', got {n} digits"),
            ));
        }
    };
    if !matches!(national[0], 3 | 4 | 8 | 9) {
        return Err(FieldError::new(
            F,
            "national number must start with 3, 4, 8 or 9",
        ));
    }
    Ok(format!("+7{}", to_string(national)))
}

/// An e-mail address: one `@`, a local part of 1 to 64 characters, a dotted domain of
/// letters, digits and hyphens whose last label has at least 2 letters, no whitespace.
/// Returns it lowercased.
pub fn email(value: &str) -> Result<String, FieldError> {
    const F: &str = "email";
    let err = |reason: &str| FieldError::new(F, format!("not a valid e-mail address: {reason}"));
    let v = value.trim();
    if v.is_empty() {
        return Err(err("empty"));
    }
    if v.chars().any(char::is_whitespace) {
        return Err(err("contains whitespace"));
    }
    if v.chars().count() > 254 {
        return Err(err("longer than 254 characters"));
    }
    let (local, domain) = match v.split_once('@') {
        None => return Err(err("missing '@'")),
        Some((_, d)) if d.contains('@') => return Err(err("more than one '@'")),
        Some(parts) => parts,
    };
    if local.is_empty() {
        return Err(err("empty local part"));
    }
    if local.chars().count() > 64 {
        return Err(err("local part longer than 64 characters"));
    }
    if let Some(c) = local
        .chars()
        .find(|&c| !(c.is_alphanumeric() || "._%+-!#$&'*/=?^`{|}~".contains(c)))
    {
        return Err(err(&format!("local part contains {}", describe(c))));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(err("misplaced dot in local part"));
    }
    if domain.is_empty() {
        return Err(err("empty domain"));
    }
    if !domain.contains('.') {
        return Err(err("domain has no dot"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty() {
            return Err(err("empty domain label"));
        }
        if label.chars().count() > 63 {
            return Err(err("domain label longer than 63 characters"));
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_alphanumeric() || c == '-')) {
            return Err(err(&format!("domain contains {}", describe(c))));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(err("domain label starts or ends with a hyphen"));
        }
    }
    let tld = labels.last().copied().unwrap_or_default();
    if tld.chars().count() < 2 || !tld.chars().all(char::is_alphabetic) {
        return Err(err(
            "top-level domain must have at least 2 letters and only letters",
        ));
    }
    Ok(v.to_lowercase())
}

fn parse_date_in(field: &str, value: &str) -> Result<NaiveDate, FieldError> {
    let b = value.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            Some(part.iter().fold(0, |n, &c| n * 10 + u32::from(c - b'0')))
        } else {
            None
        }
    };
    let shape = |sep: u8, at: [usize; 2]| b.len() == 10 && b[at[0]] == sep && b[at[1]] == sep;
    let ymd = if shape(b'-', [4, 7]) {
        num(0..4).zip(num(5..7)).zip(num(8..10))
    } else if shape(b'.', [2, 5]) {
        num(6..10).zip(num(3..5)).zip(num(0..2))
    } else {
        None
    };
    let Some(((y, m), d)) = ymd else {
        return Err(FieldError::new(
            field,
            "expected format yyyy-mm-dd or dd.mm.yyyy",
        ));
    };
    // `y` has at most 4 digits, so it fits an i32.
    NaiveDate::from_ymd_opt(y as i32, m, d)
        .ok_or_else(|| FieldError::new(field, "not a valid calendar date"))
}

/// A date as `YYYY-MM-DD` or `DD.MM.YYYY`.
pub fn date(value: &str) -> Result<NaiveDate, FieldError> {
    parse_date_in("date", value)
}

/// A birth date as `YYYY-MM-DD` or `DD.MM.YYYY`, not after `today` and not before 1900.
pub fn birth_date(value: &str, today: NaiveDate) -> Result<NaiveDate, FieldError> {
    const F: &str = "birth_date";
    let d = parse_date_in(F, value)?;
    if d > today {
        return Err(FieldError::new(F, "must not be in the future"));
    }
    if d < NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(NaiveDate::MIN) {
        return Err(FieldError::new(F, "must not be before 1900"));
    }
    Ok(d)
}

/// Bank identification code: 9 digits. Returns the digits.
pub fn bic(value: &str) -> Result<String, FieldError> {
    const F: &str = "bic";
    let d = digits(F, value, &[])?;
    if d.len() != 9 {
        return Err(FieldError::new(
            F,
            format!("must have 9 digits, got {}", d.len()),
        ));
    }
    Ok(to_string(&d))
}

/// Account number: 20 digits (spaces ignored). With the BIC of the servicing bank, also the
/// control key: weights 7, 1, 3 repeated over the last 3 BIC digits followed by the 20
/// account digits, sum mod 10 must be 0. This is the rule for accounts held at that bank;
/// correspondent accounts use a different prefix and are not covered.
/// Returns the digits; an invalid BIC is reported under `bic`.
pub fn account_number(value: &str, bic: Option<&str>) -> Result<String, FieldError> {
    const F: &str = "number";
    let d = digits(F, value, &[' '])?;
    if d.len() != 20 {
        return Err(FieldError::new(
            F,
            format!("must have 20 digits, got {}", d.len()),
        ));
    }
    if let Some(b) = bic {
        let b = self::bic(b)?;
        let mut all: Vec<u8> = b.bytes().skip(6).map(|c| c - b'0').collect();
        all.extend_from_slice(&d);
        let weights: Vec<u32> = [7, 1, 3].into_iter().cycle().take(all.len()).collect();
        if weighted_sum(&all, &weights) % 10 != 0 {
            return Err(FieldError::new(F, "control key mismatch for the given bic"));
        }
    }
    Ok(to_string(&d))
}

/// ISO 4217 alphabetic currency code: 3 latin letters. Returns it uppercased.
pub fn currency(value: &str) -> Result<String, FieldError> {
    const F: &str = "currency";
    let v = value.trim();
    if let Some(c) = v.chars().find(|c| !c.is_ascii_alphabetic()) {
        return Err(FieldError::new(
            F,
            format!("must contain only latin letters, found {}", describe(c)),
        ));
    }
    if v.len() != 3 {
        return Err(FieldError::new(
            F,
            format!("must have 3 letters, got {}", v.len()),
        ));
    }
    Ok(v.to_ascii_uppercase())
}

/// Postal code: 6 digits. Returns the digits.
pub fn postal_code(value: &str) -> Result<String, FieldError> {
    const F: &str = "postal_code";
    let d = digits(F, value, &[])?;
    if d.len() != 6 {
        return Err(FieldError::new(
            F,
            format!("must have 6 digits, got {}", d.len()),
        ));
    }
    Ok(to_string(&d))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test helpers implementing the published algorithms independently of the code above.

    fn ds(s: &str) -> Vec<u32> {
        s.chars().map(|c| c.to_digit(10).unwrap()).collect()
    }

    fn ctl(s: &str, w: &[u32]) -> u32 {
        ds(s).iter().zip(w).map(|(a, b)| a * b).sum::<u32>() % 11 % 10
    }

    fn make_inn10(body9: &str) -> String {
        format!("{body9}{}", ctl(body9, &[2, 4, 10, 3, 5, 9, 4, 6, 8]))
    }

    fn make_inn12(body10: &str) -> String {
        let s11 = format!("{body10}{}", ctl(body10, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
        format!("{s11}{}", ctl(&s11, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]))
    }

    fn make_snils(body9: &str) -> String {
        let s: u32 = ds(body9)
            .iter()
            .enumerate()
            .map(|(i, d)| d * (9 - i as u32))
            .sum();
        let c = if s < 100 {
            s
        } else if s <= 101 || s % 101 == 100 {
            0
        } else {
            s % 101
        };
        format!("{body9}{c:02}")
    }

    fn make_ogrn(body: &str) -> String {
        let n: u64 = body.parse().unwrap();
        let m = if body.len() == 12 { 11 } else { 13 };
        format!("{body}{}", n % m % 10)
    }

    fn bump_last(s: &str) -> String {
        let (head, last) = s.split_at(s.len() - 1);
        let d = last.parse::<u32>().unwrap();
        format!("{head}{}", (d + 1) % 10)
    }

    fn reason<T: std::fmt::Debug>(r: Result<T, FieldError>) -> String {
        r.unwrap_err().reason
    }

    #[test]
    fn inn_known_literals() {
        assert_eq!(inn("7707083893").unwrap(), "7707083893");
        assert_eq!(inn(" 7736050003 ").unwrap(), "7736050003");
        assert_eq!(inn("500100732259").unwrap(), "500100732259");
        assert_eq!(inn("773370857141").unwrap(), "773370857141");
        assert_eq!(
            inn("7707083894").unwrap_err().to_string(),
            "field inn: checksum mismatch"
        );
        assert_eq!(reason(inn("500100732258")), "checksum mismatch");
    }

    #[test]
    fn inn_computed_vectors() {
        for body in ["123456789", "770708389", "000000001", "987654321"] {
            let v = make_inn10(body);
            assert_eq!(inn(&v).unwrap(), v);
            assert_eq!(reason(inn(&bump_last(&v))), "checksum mismatch");
        }
        for body in ["1234567890", "5001007322", "0000000001", "9876543210"] {
            let v = make_inn12(body);
            assert_eq!(inn(&v).unwrap(), v);
            assert_eq!(reason(inn(&bump_last(&v))), "checksum mismatch");
        }
    }

    #[test]
    fn inn_shape_errors() {
        assert_eq!(reason(inn("770708389")), "must have 10 or 12 digits, got 9");
        assert_eq!(
            reason(inn("77070838931")),
            "must have 10 or 12 digits, got 11"
        );
        assert_eq!(reason(inn("0000000000")), "must not be all zeros");
        assert_eq!(reason(inn("000000000000")), "must not be all zeros");
        assert_eq!(
            reason(inn("77070838a3")),
            "must contain only digits, found a letter"
        );
        assert_eq!(
            reason(inn("7707 083893")),
            "must contain only digits, found whitespace"
        );
        assert_eq!(reason(inn("")), "must not be empty");
        assert!(!inn("77070838a3").unwrap_err().to_string().contains("7707"));
    }

    #[test]
    fn snils_known_literals() {
        assert_eq!(snils("112-233-445 95").unwrap(), "112-233-445 95");
        assert_eq!(snils("11223344595").unwrap(), "112-233-445 95");
        assert_eq!(snils("112 233 445 95").unwrap(), "112-233-445 95");
        assert_eq!(
            snils("112-233-445 96").unwrap_err().to_string(),
            "field snils: checksum mismatch"
        );
    }

    #[test]
    fn snils_computed_vectors_cover_all_branches() {
        // weighted sums: 95 and 90 (below 100), 100, 101, 102, 165 and 250 (mod 101),
        // 201, 302 and 403 (mod 101 gives 100, so 0)
        for body in [
            "112233445",
            "222222222",
            "001326679",
            "001508816",
            "001437545",
            "123456789",
            "058897809",
            "017996174",
            "189798879",
            "999999997",
        ] {
            let v = make_snils(body);
            let formatted = format!("{}-{}-{} {}", &v[..3], &v[3..6], &v[6..9], &v[9..]);
            assert_eq!(snils(&v).unwrap(), formatted, "{body}");
            assert_eq!(snils(&formatted).unwrap(), formatted);
            assert_eq!(reason(snils(&bump_last(&v))), "checksum mismatch");
        }
    }

    #[test]
    fn snils_small_numbers_skip_checksum() {
        assert_eq!(snils("001-001-998 00").unwrap(), "001-001-998 00");
        assert_eq!(snils("00100199877").unwrap(), "001-001-998 77");
        assert_eq!(reason(snils("001-001-999 00")), "checksum mismatch");
    }

    #[test]
    fn snils_shape_errors() {
        assert_eq!(
            reason(snils("112-233-445 9")),
            "must have 11 digits, got 10"
        );
        assert_eq!(reason(snils("000-000-000 00")), "must not be all zeros");
        assert_eq!(
            reason(snils("112/233/445 95")),
            "must contain only digits, found a punctuation or symbol character"
        );
    }

    #[test]
    fn ogrn_known_literals() {
        assert_eq!(ogrn("1027700132195").unwrap(), "1027700132195");
        assert_eq!(ogrn("304500116000157").unwrap(), "304500116000157");
        assert_eq!(
            ogrn("1027700132196").unwrap_err().to_string(),
            "field ogrn: checksum mismatch"
        );
        assert_eq!(reason(ogrn("304500116000158")), "checksum mismatch");
    }

    #[test]
    fn ogrn_computed_vectors_and_shape() {
        for body in [
            "102770013219",
            "123456789012",
            "50000000000000",
            "30450011600015",
        ] {
            let v = make_ogrn(body);
            assert_eq!(ogrn(&v).unwrap(), v);
            assert_eq!(reason(ogrn(&bump_last(&v))), "checksum mismatch");
        }
        assert_eq!(
            reason(ogrn("10277001321")),
            "must have 13 or 15 digits, got 11"
        );
        assert_eq!(reason(ogrn("0000000000000")), "must not be all zeros");
        assert_eq!(
            reason(ogrn("102770013219О")),
            "must contain only digits, found a letter"
        );
    }

    #[test]
    fn passport_normalises() {
        assert_eq!(passport("4510 123456").unwrap(), "4510 123456");
        assert_eq!(passport("45 10 123456").unwrap(), "4510 123456");
        assert_eq!(passport("4510123456").unwrap(), "4510 123456");
        assert_eq!(
            reason(passport("4510 12345")),
            "must have 10 digits (4 series + 6 number), got 9"
        );
        assert_eq!(
            reason(passport("4510-123456")),
            "must contain only digits, found a punctuation or symbol character"
        );
        assert_eq!(reason(passport("0000 000000")), "must not be all zeros");
    }

    #[test]
    fn phone_russian_forms() {
        for v in [
            "+7 (912) 345-67-89",
            "8 912 345 67 89",
            "89123456789",
            "9123456789",
            "7 912 345-67-89",
            "8(912)345.67.89",
        ] {
            assert_eq!(phone(v).unwrap(), "+79123456789", "{v}");
        }
        assert_eq!(phone("8 (812) 123-45-67").unwrap(), "+78121234567");
        assert_eq!(phone("4951234567").unwrap(), "+74951234567");
        assert_eq!(phone("3812123456").unwrap(), "+73812123456");
        assert_eq!(phone("8 800 555 35 35").unwrap(), "+78005553535");
    }

    #[test]
    fn phone_international() {
        assert_eq!(phone("+49 30 1234567").unwrap(), "+49301234567");
        assert_eq!(phone("+375 29 123-45-67").unwrap(), "+375291234567");
        assert_eq!(phone("+7 701 123 4567").unwrap(), "+77011234567");
    }

    #[test]
    fn phone_errors() {
        assert_eq!(
            reason(phone("+49 123")),
            "must have 8 to 15 digits after '+', got 5"
        );
        assert_eq!(
            reason(phone("+1234567890123456")),
            "must have 8 to 15 digits after '+', got 16"
        );
        assert_eq!(
            reason(phone("+0123456789")),
            "country code must not start with 0"
        );
        assert_eq!(
            reason(phone("+7 912 345 67")),
            "a +7 number must have 11 digits, got 9"
        );
        assert_eq!(
            reason(phone("59123456789")),
            "an 11-digit number without '+' must start with 7 or 8"
        );
        assert_eq!(
            reason(phone("5123456789")),
            "national number must start with 3, 4, 8 or 9"
        );
        assert_eq!(
            reason(phone("912345")),
            "must have 10 or 11 digits, or start with '+', got 6 digits"
        );
        assert_eq!(
            reason(phone("8 912 345 67 89 доб. 12")),
            "must contain only digits, found a letter"
        );
        assert_eq!(reason(phone("")), "must not be empty");
        assert!(phone("++79123456789").is_err());
    }

    #[test]
    fn email_valid() {
        assert_eq!(
            email("Ivan.Petrov@Example.RU").unwrap(),
            "ivan.petrov@example.ru"
        );
        assert_eq!(email(" a+tag@mail.co.uk ").unwrap(), "a+tag@mail.co.uk");
        assert_eq!(
            email("x@sub-domain.example.com").unwrap(),
            "x@sub-domain.example.com"
        );
        assert_eq!(email("Почта@Пример.РФ").unwrap(), "почта@пример.рф");
    }

    #[test]
    fn email_invalid() {
        let cases = [
            ("ivan.example.ru", "missing '@'"),
            ("a@b@example.ru", "more than one '@'"),
            ("@example.ru", "empty local part"),
            ("ivan@", "empty domain"),
            ("ivan@localhost", "domain has no dot"),
            ("ivan @example.ru", "contains whitespace"),
            ("ivan@example..ru", "empty domain label"),
            (
                "ivan@exa_mple.ru",
                "domain contains a punctuation or symbol character",
            ),
            (
                "ivan@-example.ru",
                "domain label starts or ends with a hyphen",
            ),
            (
                "ivan@example.r",
                "top-level domain must have at least 2 letters and only letters",
            ),
            (
                "ivan@example.r1",
                "top-level domain must have at least 2 letters and only letters",
            ),
            (".ivan@example.ru", "misplaced dot in local part"),
            ("iv..an@example.ru", "misplaced dot in local part"),
            (
                "iv(an@example.ru",
                "local part contains a punctuation or symbol character",
            ),
            ("", "empty"),
        ];
        for (v, why) in cases {
            let e = email(v).unwrap_err();
            assert_eq!(e.field, "email");
            assert_eq!(
                e.reason,
                format!("not a valid e-mail address: {why}"),
                "{v}"
            );
        }
        let long_local = format!("{}@example.ru", "a".repeat(65));
        assert_eq!(
            reason(email(&long_local)),
            "not a valid e-mail address: local part longer than 64 characters"
        );
        assert!(email(&format!("{}@example.ru", "a".repeat(64))).is_ok());
    }

    #[test]
    fn dates() {
        let d = NaiveDate::from_ymd_opt(1985, 3, 14).unwrap();
        assert_eq!(date("1985-03-14").unwrap(), d);
        assert_eq!(date("14.03.1985").unwrap(), d);
        assert_eq!(date(" 14.03.1985 ").unwrap(), d);
        for bad in [
            "1985-3-14",
            "14/03/1985",
            "1985.03.14",
            "85-03-14",
            "14.03.85",
            "abcd-ef-gh",
        ] {
            assert_eq!(
                reason(date(bad)),
                "expected format yyyy-mm-dd or dd.mm.yyyy",
                "{bad}"
            );
        }
        assert_eq!(reason(date("2023-02-29")), "not a valid calendar date");
        assert_eq!(reason(date("31.04.2020")), "not a valid calendar date");
        assert_eq!(
            date("29.02.2024").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        assert_eq!(date("1985-13-14").unwrap_err().field, "date");
    }

    #[test]
    fn birth_dates() {
        let today = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        assert_eq!(
            birth_date("01.06.2024", today).unwrap(),
            NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
        );
        assert_eq!(
            birth_date("1900-01-01", today).unwrap(),
            NaiveDate::from_ymd_opt(1900, 1, 1).unwrap()
        );
        let e = birth_date("02.06.2024", today).unwrap_err();
        assert_eq!(e.to_string(), "field birth_date: must not be in the future");
        assert_eq!(
            reason(birth_date("1899-12-31", today)),
            "must not be before 1900"
        );
        assert_eq!(
            birth_date("1985/03/14", today).unwrap_err().field,
            "birth_date"
        );
    }

    /// Control key helper from the published rule: weights 7,1,3 over bic[6..9] + account.
    fn account_key_ok(bic: &str, acc: &str) -> bool {
        let s = format!("{}{acc}", &bic[6..]);
        ds(&s)
            .iter()
            .zip([7, 1, 3].iter().cycle())
            .map(|(a, b)| a * b)
            .sum::<u32>()
            % 10
            == 0
    }

    fn make_account(bic: &str, with_x: &str) -> String {
        (0..10)
            .map(|x| with_x.replacen('x', &x.to_string(), 1))
            .find(|a| account_key_ok(bic, a))
            .unwrap()
    }

    #[test]
    fn account_numbers() {
        // hand-verified: "225" + account, weights 7,1,3 repeated, nonzero products
        // 14+2+15+28+24+7+7+24+7+12+21+8+1 = 170, which is 0 mod 10
        assert_eq!(
            account_number("40817810438000000001", Some("044525225")).unwrap(),
            "40817810438000000001"
        );
        assert_eq!(
            account_number("40817 810 4 3800 0000001", None).unwrap(),
            "40817810438000000001"
        );
        assert_eq!(
            account_number("40817810538000000001", Some("044525225"))
                .unwrap_err()
                .to_string(),
            "field number: control key mismatch for the given bic"
        );
        for (bic, pattern) in [
            ("044525225", "40702810x00000012345"),
            ("044030653", "40817810x55000000077"),
            ("046577964", "42301810x16540012345"),
        ] {
            let a = make_account(bic, pattern);
            assert_eq!(account_number(&a, Some(bic)).unwrap(), a);
            assert!(account_number(&bump_last(&a), Some(bic)).is_err());
        }
        assert_eq!(
            reason(account_number("4081781043800000000", None)),
            "must have 20 digits, got 19"
        );
        let e = account_number("40817810438000000001", Some("04452522")).unwrap_err();
        assert_eq!(e.to_string(), "field bic: must have 9 digits, got 8");
    }

    #[test]
    fn bic_currency_postal() {
        assert_eq!(bic("044525225").unwrap(), "044525225");
        assert_eq!(
            reason(bic("04452522A")),
            "must contain only digits, found a letter"
        );
        assert_eq!(currency("rub").unwrap(), "RUB");
        assert_eq!(currency(" USD ").unwrap(), "USD");
        assert_eq!(reason(currency("RUBL")), "must have 3 letters, got 4");
        assert_eq!(
            reason(currency("810")),
            "must contain only latin letters, found a digit"
        );
        assert_eq!(
            reason(currency("РУБ")),
            "must contain only latin letters, found a letter"
        );
        assert_eq!(postal_code("101000").unwrap(), "101000");
        assert_eq!(reason(postal_code("10100")), "must have 6 digits, got 5");
    }

    #[test]
    fn field_error_display_and_relabel() {
        let e = FieldError::new("inn", "checksum mismatch");
        assert_eq!(e.to_string(), "field inn: checksum mismatch");
        assert_eq!(
            e.in_field("counterparty_inn").to_string(),
            "field counterparty_inn: checksum mismatch"
        );
    }
}
