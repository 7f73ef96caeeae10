//! What of a canonical party is screened, and its fingerprint.
//!
//! The fingerprint (subject hash) decides whether a false-positive decision still applies:
//! a hit marked false positive is not raised again for the same list entry unless the
//! party's screened data — names, birth date, identifiers — changes.

use chrono::Datelike;
use compliance::{EntityKind, IdKind, Identifier, PartialDate, Subject};
use mapping::{Party, PartyKind};
use sha2::{Digest, Sha256};

/// The screening subject of a party.
pub fn of_party(p: &Party) -> Subject {
    let mut names = Vec::new();
    let parts: Vec<&str> = [&p.last_name, &p.first_name, &p.middle_name]
        .into_iter()
        .filter_map(|x| x.as_deref())
        .filter(|x| !x.trim().is_empty())
        .collect();
    if !parts.is_empty() {
        names.push(parts.join(" "));
    }
    if let Some(full) = p.full_name.as_deref().filter(|f| !f.trim().is_empty())
        && !names.iter().any(|n| n == full)
    {
        names.push(full.to_string());
    }
    let mut identifiers = Vec::new();
    let mut id = |kind, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            identifiers.push(Identifier {
                kind,
                value: v
                    .chars()
                    .filter(|c| c.is_alphanumeric())
                    .flat_map(char::to_uppercase)
                    .collect(),
                country: Some("ru".into()),
            });
        }
    };
    id(IdKind::Inn, &p.inn);
    id(IdKind::Ogrn, &p.ogrn);
    id(IdKind::Passport, &p.passport);
    Subject {
        kind: Some(match p.kind {
            PartyKind::Person => EntityKind::Person,
            PartyKind::Organisation => EntityKind::Organization,
        }),
        names,
        birth_date: p.birth_date.map(|d| PartialDate {
            year: d.year(),
            month: Some(d.month() as u8),
            day: Some(d.day() as u8),
        }),
        nationality: None,
        identifiers,
    }
}

/// A stable fingerprint of the screened data (not of the whole party: a changed phone does
/// not re-raise a hit marked false positive).
pub fn hash(s: &Subject) -> String {
    let json = serde_json::to_vec(s).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party() -> Party {
        Party {
            source_id: "C1".into(),
            last_name: Some("Иванов".into()),
            first_name: Some("Сергей".into()),
            middle_name: Some("Петрович".into()),
            inn: Some("500100732259".into()),
            phones: vec!["+79161234567".into()],
            ..Party::default()
        }
    }

    #[test]
    fn names_and_ids_are_screened() {
        let s = of_party(&party());
        assert_eq!(s.names, vec!["Иванов Сергей Петрович".to_string()]);
        assert_eq!(s.identifiers.len(), 1);
        assert_eq!(s.identifiers[0].kind, IdKind::Inn);
        assert_eq!(s.kind, Some(EntityKind::Person));
    }

    #[test]
    fn the_hash_ignores_contact_data_but_not_names() {
        let a = party();
        let mut b = party();
        b.phones = vec!["+79990000000".into()];
        assert_eq!(hash(&of_party(&a)), hash(&of_party(&b)));
        b.first_name = Some("Сергій".into());
        assert_ne!(hash(&of_party(&a)), hash(&of_party(&b)));
    }
}
