//! The canonical fields a mapping may write, per entity, with the type each expects.
//!
//! Keep in step with `crate::model`: a field missing here cannot be mapped, and a field
//! here that the struct does not have makes every record fail its final check (a test
//! maps every field of every entity to catch that).

use crate::envelope::Entity;

use super::transform::Validator;

/// What a field does with a card number found in its text (see `super::pan`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PanPolicy {
    /// Not checked: identifiers whose 13-19 digit values would too often pass the Luhn
    /// check by chance.
    Skip,
    /// Masked in place: free text, and fields a card number may legitimately reach.
    Mask,
    /// The record is rejected: fields meant to hold a mask or a token.
    Reject,
}

/// What a canonical field holds, which decides how a source value is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Free text (names, purpose): a card number found inside is masked.
    Text,
    /// An identifier or code: a card number found in it rejects the record.
    Id,
    /// A calendar date, `YYYY-MM-DD` in JSON.
    Date,
    /// An instant, RFC 3339 in UTC in JSON.
    DateTime,
    /// A whole number (minor units).
    Int,
    /// A list of identifiers (phones, e-mails); duplicates are dropped.
    IdList,
    /// One of a fixed set of names.
    Enum(&'static [&'static str]),
}

/// One canonical field.
#[derive(Debug)]
pub(crate) struct Target {
    /// The serde name.
    pub name: &'static str,
    pub kind: Kind,
    /// The struct has no default for it: every record needs a value.
    pub required: bool,
    /// Validator always applied (the canonical format of the field).
    pub check: Option<Validator>,
    /// What a card number in its text does.
    pub pan: PanPolicy,
}

const fn policy(kind: Kind) -> PanPolicy {
    match kind {
        Kind::Text => PanPolicy::Mask,
        _ => PanPolicy::Skip,
    }
}

const fn t(name: &'static str, kind: Kind) -> Target {
    Target {
        name,
        kind,
        required: false,
        check: None,
        pan: policy(kind),
    }
}

const fn req(name: &'static str, kind: Kind) -> Target {
    Target {
        name,
        kind,
        required: true,
        check: None,
        pan: policy(kind),
    }
}

const fn chk(name: &'static str, kind: Kind, check: Validator) -> Target {
    Target {
        name,
        kind,
        required: false,
        check: Some(check),
        pan: policy(kind),
    }
}

const fn req_chk(name: &'static str, kind: Kind, check: Validator) -> Target {
    Target {
        name,
        kind,
        required: true,
        check: Some(check),
        pan: policy(kind),
    }
}

/// A field of a card that must never hold a full number.
const fn card_id(name: &'static str, required: bool) -> Target {
    Target {
        name,
        kind: Kind::Id,
        required,
        check: None,
        pan: PanPolicy::Reject,
    }
}

/// An identifier a card number may reach (a card-to-card transfer's counterparty).
const fn masked_id(name: &'static str) -> Target {
    Target {
        name,
        kind: Kind::Id,
        required: false,
        check: None,
        pan: PanPolicy::Mask,
    }
}

pub(crate) const PARTY_KINDS: &[&str] = &["person", "organisation"];
const DIRECTIONS: &[&str] = &["debit", "credit"];
const CARD_EVENTS: &[&str] = &[
    "issued",
    "activated",
    "blocked",
    "unblocked",
    "limit_changed",
    "reissued",
];

use Kind::*;
use Validator as V;

/// `kind` and `source_id` are required by the struct but filled without a rule (person;
/// the key), so they are not marked required here.
const PARTY: &[Target] = &[
    t("kind", Enum(PARTY_KINDS)),
    t("source_id", Id),
    t("last_name", Text),
    t("first_name", Text),
    t("middle_name", Text),
    t("full_name", Text),
    chk("inn", Id, V::Inn),
    chk("snils", Id, V::Snils),
    chk("ogrn", Id, V::Ogrn),
    chk("passport", Id, V::Passport),
    t("birth_date", Date),
    chk("phones", IdList, V::Phone),
    chk("emails", IdList, V::Email),
    t("segment", Text),
    t("status", Text),
];

const ACCOUNT: &[Target] = &[
    t("source_id", Id),
    req("party_source_id", Id),
    req_chk("number", Id, V::Account),
    req_chk("currency", Id, V::Currency),
    chk("bic", Id, V::Bic),
    t("opened_on", Date),
    t("closed_on", Date),
    t("status", Text),
    t("owner_name", Text),
    t("servicer_bic", Id),
];

const CARD: &[Target] = &[
    card_id("source_id", false),
    req("party_source_id", Id),
    t("account_source_id", Id),
    card_id("token", true),
    card_id("masked_pan", true),
    t("expiry", Id),
    t("status", Text),
    t("event", Enum(CARD_EVENTS)),
    t("limit_minor", Int),
    chk("limit_currency", Id, V::Currency),
    card_id("previous_token", false),
];

const TRANSACTION: &[Target] = &[
    t("source_id", Id),
    req("account_source_id", Id),
    req("amount_minor", Int),
    req_chk("currency", Id, V::Currency),
    req("booked_at", DateTime),
    req("direction", Enum(DIRECTIONS)),
    t("counterparty_name", Text),
    chk("counterparty_inn", Id, V::Inn),
    masked_id("counterparty_account"),
    t("purpose", Text),
    t("value_date", Date),
    t("bank_reference", Id),
    t("customer_reference", Id),
    t("end_to_end_id", Id),
    t("counterparty_bic", Id),
    t("counterparty_country", Id),
    t("bank_transaction_code", Id),
    t("status", Text),
];

/// The parts of one party address (`addresses.N.<part>`).
pub(crate) const ADDRESS_PARTS: &[Target] = &[
    t("kind", Id),
    t("text", Text),
    chk("postal_code", Id, V::PostalCode),
];

/// The highest fixed address index accepted (`addresses.9.text`).
pub(crate) const MAX_ADDRESS_INDEX: usize = 9;

/// The fields of `entity`, or `None` when it cannot be mapped declaratively.
pub(crate) fn fields_of(entity: Entity) -> Option<&'static [Target]> {
    match entity {
        Entity::Party => Some(PARTY),
        Entity::Account => Some(ACCOUNT),
        Entity::Card => Some(CARD),
        Entity::Transaction => Some(TRANSACTION),
        _ => None,
    }
}
