//! Canonical records: the shapes every source is mapped into and every sink reads.
//!
//! Contract: values held here are already validated and normalised (see [`crate::validate`]);
//! optional fields are omitted from JSON when absent and list fields default to empty. A full
//! card number is never held by any record: only its mask ([`mask_pan`]) and a keyed token.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::validate::{FieldError, digits};

/// Whether a party is a natural person or an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    /// A natural person.
    #[default]
    Person,
    /// A legal entity.
    Organisation,
}

/// A postal address of a party.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Address {
    /// What the address is for, for example `primary`.
    pub kind: String,
    /// The address as one line of text.
    pub text: String,
    /// Six-digit postal code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
}

/// A customer: a person or an organisation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Party {
    /// Person or organisation.
    pub kind: PartyKind,
    /// The party's id at the source.
    pub source_id: String,
    /// Surname (persons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Given name (persons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Patronymic (persons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Organisation name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
    /// Taxpayer number: 10 digits (organisation) or 12 digits (person).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inn: Option<String>,
    /// Pension insurance number, formatted `123-456-789 01`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snils: Option<String>,
    /// State registration number: 13 digits, or 15 for an individual entrepreneur.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ogrn: Option<String>,
    /// Passport series and number, formatted `4510 123456`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passport: Option<String>,
    /// Date of birth (persons).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    /// Phone numbers in E.164 form, for example `+79123456789`.
    #[serde(default)]
    pub phones: Vec<String>,
    /// E-mail addresses, lowercased.
    #[serde(default)]
    pub emails: Vec<String>,
    /// Postal addresses.
    #[serde(default)]
    pub addresses: Vec<Address>,
    /// Customer segment at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// Customer status at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A bank account held by a party.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    /// The account's id at the source.
    pub source_id: String,
    /// Source id of the owning party.
    pub party_source_id: String,
    /// The 20-digit account number.
    pub number: String,
    /// ISO 4217 alphabetic currency code, for example `RUB`.
    pub currency: String,
    /// Nine-digit bank identification code of the servicing bank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    /// Date the account was opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_on: Option<NaiveDate>,
    /// Date the account was closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed_on: Option<NaiveDate>,
    /// Account status at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The account holder's name as a bank statement gives it (ISO 20022 `Acct/Ownr/Nm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_name: Option<String>,
    /// SWIFT BIC of the servicing institution as a statement gives it (ISO 20022
    /// `Acct/Svcr`); `bic` keeps the nine-digit Russian bank code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub servicer_bic: Option<String>,
}

/// A payment card. Holds a token and a mask, never the full card number.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Card {
    /// The card's id at the source.
    pub source_id: String,
    /// Source id of the card holder.
    pub party_source_id: String,
    /// Source id of the linked account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_source_id: Option<String>,
    /// Keyed hash of the card number, computed outside this crate.
    pub token: String,
    /// First six and last four digits, the rest masked: see [`mask_pan`].
    pub masked_pan: String,
    /// Expiry as given by the source, for example `12/27`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
    /// Card status at the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The life-cycle event this record reports, when the source sends card events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<CardEvent>,
    /// The card's spending limit in minor units of `limit_currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_minor: Option<i64>,
    /// ISO 4217 alphabetic currency code of `limit_minor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_currency: Option<String>,
    /// Token of the card this one replaces (a reissue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_token: Option<String>,
}

/// A card life-cycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardEvent {
    /// The card was issued.
    Issued,
    /// The card was activated by its holder.
    Activated,
    /// The card was blocked.
    Blocked,
    /// A block was lifted.
    Unblocked,
    /// The spending limit changed.
    LimitChanged,
    /// The card was reissued (see `previous_token`).
    Reissued,
}

/// Direction of money movement relative to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Money leaves the account.
    Debit,
    /// Money enters the account.
    Credit,
}

/// A booked account transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// The transaction's id at the source.
    pub source_id: String,
    /// Source id of the account it was booked on.
    pub account_source_id: String,
    /// Amount in minor units of the currency (kopecks for RUB); not negative by convention,
    /// the sign is given by `direction`.
    pub amount_minor: i64,
    /// ISO 4217 alphabetic currency code.
    pub currency: String,
    /// When the transaction was booked.
    pub booked_at: DateTime<Utc>,
    /// Debit or credit.
    pub direction: Direction,
    /// Counterparty name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_name: Option<String>,
    /// Counterparty taxpayer number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_inn: Option<String>,
    /// Counterparty account number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterparty_account: Option<String>,
    /// Payment purpose text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The date the money is valued (ISO 20022 `ValDt`, MT940 `:61:` value date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_date: Option<NaiveDate>,
    /// The servicing bank's reference of the entry (ISO 20022 `AcctSvcrRef`, MT940 `:61:`
    /// reference after `//`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_reference: Option<String>,
    /// The account owner's reference (MT940 `:61:` customer reference, the payment order
    /// number of a 1C document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_reference: Option<String>,
    /// The end-to-end id the payer gave the payment (ISO 20022 `Refs/EndToEndId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_to_end_id: Option<String>,
    /// SWIFT BIC (or nine-digit Russian bank code) of the counterparty's bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty_bic: Option<String>,
    /// ISO 3166 alpha-2 country of the counterparty's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counterparty_country: Option<String>,
    /// The bank's transaction type code (ISO 20022 `BkTxCd`, MT940 `:61:` type such as
    /// `NTRF`, the 1C document kind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_transaction_code: Option<String>,
    /// The bank's booking status when the source gives one (ISO 20022 `BOOK`, `PDNG`,
    /// `INFO`; a CSV status column); absent means booked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// The balance of an account at a date, as a bank statement reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    /// Source id of the account.
    pub account_source_id: String,
    /// The statement that reports it, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_source_id: Option<String>,
    /// ISO 20022 balance type code: `OPBD` (opening booked), `CLBD` (closing booked),
    /// `ITBD` (interim booked), `OPAV`, `CLAV`, `FWAV`, `ITAV`, `PRCD`, `INFO`, ...
    /// MT940 tags map to them (`:60F:` `OPBD`, `:60M:` and `:62M:` `ITBD`, `:62F:` `CLBD`,
    /// `:64:` `CLAV`, `:65:` `FWAV`).
    pub kind: String,
    /// Signed amount in minor units of the currency: negative for a debit balance.
    pub amount_minor: i64,
    /// ISO 4217 alphabetic currency code.
    pub currency: String,
    /// The date the balance is at.
    pub date: NaiveDate,
}

/// The header of one bank statement (or report, or notification) of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// The statement's id at the source (ISO 20022 `Stmt/Id`, MT940 `:20:` with `:28C:`).
    pub source_id: String,
    /// Source id of the account it reports on.
    pub account_source_id: String,
    /// The message kind: `camt.052`, `camt.053`, `camt.054`, `mt940`, `mt942`, `1c`.
    pub kind: String,
    /// Statement or sequence number (`ElctrncSeqNb`, `:28C:`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<String>,
    /// When the bank created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// First day covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_date: Option<NaiveDate>,
    /// Last day covered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_date: Option<NaiveDate>,
}

/// Validates a card number (13 to 19 digits, spaces and hyphens allowed, Luhn check digit) and
/// returns its mask: the first six and last four digits with `*` in between, for example
/// `220220******1234`. The error never contains the number.
pub fn mask_pan(pan: &str) -> Result<String, FieldError> {
    let d = digits("pan", pan, &[' ', '-'])?;
    if !(13..=19).contains(&d.len()) {
        return Err(FieldError::new(
            "pan",
            format!("must have 13 to 19 digits, got {}", d.len()),
        ));
    }
    if !luhn_valid(&d) {
        return Err(FieldError::new("pan", "luhn check digit mismatch"));
    }
    let mut out = String::with_capacity(d.len());
    for (i, x) in d.iter().enumerate() {
        if i < 6 || i >= d.len() - 4 {
            out.push(char::from(b'0' + *x));
        } else {
            out.push('*');
        }
    }
    Ok(out)
}

/// The Luhn check over all digits, the last one being the check digit.
fn luhn_valid(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Appends the Luhn check digit to a digit string (test helper from the published rule).
    fn with_luhn(body: &str) -> String {
        let mut sum = 0;
        for (i, c) in body.chars().rev().enumerate() {
            let mut x = c.to_digit(10).unwrap();
            if i % 2 == 0 {
                x *= 2;
                if x > 9 {
                    x -= 9;
                }
            }
            sum += x;
        }
        format!("{body}{}", (10 - sum % 10) % 10)
    }

    #[test]
    fn mask_pan_known_valid() {
        assert_eq!(mask_pan("4111111111111111").unwrap(), "411111******1111");
        assert_eq!(mask_pan("4111 1111 1111 1111").unwrap(), "411111******1111");
        assert_eq!(mask_pan("5555-5555-5555-4444").unwrap(), "555555******4444");
    }

    #[test]
    fn mask_pan_lengths() {
        let pan = with_luhn("220220123456123");
        assert_eq!(pan.len(), 16);
        let masked = mask_pan(&pan).unwrap();
        assert_eq!(&masked[..6], "220220");
        assert_eq!(&masked[6..12], "******");
        assert_eq!(&masked[12..], &pan[12..]);
        let p13 = with_luhn("422222222222");
        assert_eq!(mask_pan(&p13).unwrap(), format!("422222***{}", &p13[9..]));
        let p19 = with_luhn("220012345678901234");
        assert_eq!(mask_pan(&p19).unwrap().matches('*').count(), 9);
    }

    #[test]
    fn mask_pan_rejects_without_echoing() {
        let e = mask_pan("4111111111111112").unwrap_err();
        assert_eq!(e.to_string(), "field pan: luhn check digit mismatch");
        let e = mask_pan("411111111111").unwrap_err();
        assert_eq!(e.reason, "must have 13 to 19 digits, got 12");
        let e = mask_pan("41111111111111111111").unwrap_err();
        assert_eq!(e.reason, "must have 13 to 19 digits, got 20");
        let e = mask_pan("4111x11111111111").unwrap_err();
        assert_eq!(e.reason, "must contain only digits, found a letter");
        assert!(!e.to_string().contains("4111"));
        assert!(mask_pan("").is_err());
    }

    #[test]
    fn party_serde_omits_absent_and_defaults_lists() {
        let p = Party {
            kind: PartyKind::Organisation,
            source_id: "17".into(),
            full_name: Some("ООО Ромашка".into()),
            inn: Some("7707083893".into()),
            ..Party::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({
                "kind": "organisation",
                "source_id": "17",
                "full_name": "ООО Ромашка",
                "inn": "7707083893",
                "phones": [],
                "emails": [],
                "addresses": []
            })
        );
        let back: Party =
            serde_json::from_value(json!({"kind": "person", "source_id": "1"})).unwrap();
        assert_eq!(back.kind, PartyKind::Person);
        assert!(back.phones.is_empty() && back.addresses.is_empty());
        assert_eq!(serde_json::from_value::<Party>(v).unwrap(), p);
    }

    #[test]
    fn transaction_and_card_serde() {
        let t = Transaction {
            source_id: "t1".into(),
            account_source_id: "a1".into(),
            amount_minor: 12_345,
            currency: "RUB".into(),
            booked_at: DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            direction: Direction::Credit,
            counterparty_name: None,
            counterparty_inn: None,
            counterparty_account: None,
            purpose: Some("оплата".into()),
            value_date: None,
            bank_reference: None,
            customer_reference: None,
            end_to_end_id: None,
            counterparty_bic: None,
            counterparty_country: None,
            bank_transaction_code: None,
            status: None,
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["direction"], "credit");
        assert!(v.get("counterparty_name").is_none());
        assert_eq!(serde_json::from_value::<Transaction>(v).unwrap(), t);

        let c = Card {
            source_id: "c1".into(),
            party_source_id: "p1".into(),
            token: "ab".into(),
            masked_pan: mask_pan("4111111111111111").unwrap(),
            ..Card::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.get("expiry").is_none());
        assert_eq!(v["masked_pan"], "411111******1111");
    }
}
