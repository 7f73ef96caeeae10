//! Building [`Identifier`]s from list text.

use crate::entry::{IdKind, Identifier};

/// Digits and letters only, upper case: "AB 12-34.5" → "AB12345".
pub(crate) fn normalize_value(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// An identifier from raw list text, or `None` when nothing but punctuation is left or the
/// value has no digit (list text like "Passport Laissez-Passer" without a number).
///
/// A Russian tax id of 10 or 12 digits is an INN, a Russian registration number of 13 or 15
/// digits an OGRN: lists write them as "Tax ID No." and "Registration Number/ID".
pub(crate) fn identifier(kind: IdKind, raw: &str, country: Option<String>) -> Option<Identifier> {
    let value = normalize_value(raw);
    if value.is_empty() || !value.chars().any(|c| c.is_ascii_digit()) {
        return None;
    }
    let all_digits = value.chars().all(|c| c.is_ascii_digit());
    let russian = country.as_deref() == Some("ru");
    let kind = match kind {
        IdKind::TaxId if russian && all_digits && matches!(value.len(), 10 | 12) => IdKind::Inn,
        IdKind::Registration if russian && all_digits && matches!(value.len(), 13 | 15) => {
            IdKind::Ogrn
        }
        k => k,
    };
    Some(Identifier {
        kind,
        value,
        country,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn russian_tax_and_registration_numbers_become_inn_and_ogrn() {
        let inn = identifier(IdKind::TaxId, "7707083893", Some("ru".into())).unwrap();
        assert_eq!(inn.kind, IdKind::Inn);
        let ogrn = identifier(IdKind::Registration, "1027700132195", Some("ru".into())).unwrap();
        assert_eq!(ogrn.kind, IdKind::Ogrn);
        let other = identifier(IdKind::TaxId, "100036386", Some("rs".into())).unwrap();
        assert_eq!(other.kind, IdKind::TaxId);
        let p = identifier(IdKind::Passport, " d489833(9) ", None).unwrap();
        assert_eq!(p.value, "D4898339");
        assert!(identifier(IdKind::Passport, "Laissez-Passer", None).is_none());
    }
}
