//! The matcher's input record: what is known of one source record of a person or an
//! organisation, as text. Values need not be validated; the matcher normalises them
//! (see `prepare`), and a value it cannot read is treated as missing.

use serde::{Deserialize, Serialize};

use crate::model::{Party, PartyKind};

/// A record known to be the same party in another system (a cross-reference), or the
/// record's own identity: a source system and the id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceRef {
    /// The source system, for example `abs`.
    pub system: String,
    /// The id in that system.
    pub id: String,
}

/// One record to match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
    /// Person or organisation; the two never match.
    #[serde(default)]
    pub kind: PartyKind,
    /// The system the record comes from.
    pub source: String,
    /// The record's id in that system. Two records with the same source and id are the same.
    pub source_id: String,
    /// Given name, in any script.
    #[serde(default)]
    pub given_name: Option<String>,
    /// Surname; for an organisation, its name.
    #[serde(default)]
    pub surname: Option<String>,
    /// Patronymic.
    #[serde(default)]
    pub patronymic: Option<String>,
    /// Date of birth: `YYYY-MM-DD`, `DD.MM.YYYY` or `YYYYMMDD`. Kept even when it is not a
    /// calendar date (a typo), since the digits still carry evidence.
    #[serde(default)]
    pub birth_date: Option<String>,
    /// A phone number in any usual notation.
    #[serde(default)]
    pub phone: Option<String>,
    /// An e-mail address.
    #[serde(default)]
    pub email: Option<String>,
    /// House number.
    #[serde(default)]
    pub street_number: Option<String>,
    /// Street name, with or without its type (`ул.`, `street`).
    #[serde(default)]
    pub street: Option<String>,
    /// Further address detail: building or property name, flat.
    #[serde(default)]
    pub address_extra: Option<String>,
    /// City, town or suburb.
    #[serde(default)]
    pub locality: Option<String>,
    /// Postal code.
    #[serde(default)]
    pub postcode: Option<String>,
    /// Region or state.
    #[serde(default)]
    pub region: Option<String>,
    /// Taxpayer number (deterministic key).
    #[serde(default)]
    pub inn: Option<String>,
    /// Pension insurance number (deterministic key).
    #[serde(default)]
    pub snils: Option<String>,
    /// Passport series and number (deterministic key).
    #[serde(default)]
    pub passport: Option<String>,
    /// State registration number (deterministic key).
    #[serde(default)]
    pub ogrn: Option<String>,
    /// Another national identifier that may carry typos: compared as strong evidence, not
    /// used as a key (the FEBRL `soc_sec_id`).
    #[serde(default)]
    pub other_id: Option<String>,
    /// Records in other systems known to be this party (a deterministic key).
    #[serde(default)]
    pub links: Vec<SourceRef>,
}

impl MatchRecord {
    /// The record's own reference: its system and id.
    pub fn source_ref(&self) -> SourceRef {
        SourceRef {
            system: self.source.clone(),
            id: self.source_id.clone(),
        }
    }

    /// A match record from a canonical party of `source`. Persons map names, birth date,
    /// the first phone, e-mail and address and their ids; an organisation's name is compared
    /// in the surname slot. The address is one line of text in the canonical model, so it is
    /// compared as the street with the postal code beside it.
    pub fn from_party(source: &str, party: &Party) -> Self {
        let address = party.addresses.first();
        let surname = match party.kind {
            PartyKind::Person => party.last_name.clone(),
            PartyKind::Organisation => party.full_name.clone().or(party.last_name.clone()),
        };
        MatchRecord {
            kind: party.kind,
            source: source.to_owned(),
            source_id: party.source_id.clone(),
            given_name: party.first_name.clone(),
            surname,
            patronymic: party.middle_name.clone(),
            birth_date: party.birth_date.map(|d| d.format("%Y-%m-%d").to_string()),
            phone: party.phones.first().cloned(),
            email: party.emails.first().cloned(),
            street: address.map(|a| a.text.clone()),
            postcode: address.and_then(|a| a.postal_code.clone()),
            inn: party.inn.clone(),
            snils: party.snils.clone(),
            passport: party.passport.clone(),
            ogrn: party.ogrn.clone(),
            ..MatchRecord::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use chrono::NaiveDate;

    #[test]
    fn from_party_maps_person_and_organisation() {
        let p = Party {
            source_id: "17".into(),
            last_name: Some("Иванов".into()),
            first_name: Some("Сергей".into()),
            birth_date: NaiveDate::from_ymd_opt(1980, 2, 3),
            phones: vec!["+79001112233".into(), "+79004445566".into()],
            addresses: vec![Address {
                kind: "primary".into(),
                text: "Москва, ул. Ленина, 1".into(),
                postal_code: Some("101000".into()),
            }],
            ..Party::default()
        };
        let r = MatchRecord::from_party("abs", &p);
        assert_eq!(
            r.source_ref(),
            SourceRef {
                system: "abs".into(),
                id: "17".into()
            }
        );
        assert_eq!(r.birth_date.as_deref(), Some("1980-02-03"));
        assert_eq!(r.phone.as_deref(), Some("+79001112233"));
        assert_eq!(r.postcode.as_deref(), Some("101000"));
        let org = Party {
            kind: PartyKind::Organisation,
            source_id: "9".into(),
            full_name: Some("ООО Ромашка".into()),
            ogrn: Some("1027700132195".into()),
            ..Party::default()
        };
        let r = MatchRecord::from_party("abs", &org);
        assert_eq!(r.surname.as_deref(), Some("ООО Ромашка"));
        assert_eq!(r.kind, PartyKind::Organisation);
    }
}
