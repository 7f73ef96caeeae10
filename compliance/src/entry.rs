//! The shape every sanctions/PEP list is loaded into, and the subject that is screened.

use serde::{Deserialize, Serialize};

/// What kind of thing a list entry (or a screened subject) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Person,
    Organization,
    Vessel,
    Aircraft,
    Unknown,
}

/// How much a name of an entry should be trusted when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameStrength {
    /// The entry's main name.
    Primary,
    /// An a.k.a./f.k.a. or a good-quality alias.
    Alias,
    /// A weak or low-quality alias (OFAC "weak aka", UN "Low" quality): raises a hit only
    /// together with other evidence.
    Weak,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryName {
    pub full: String,
    pub strength: NameStrength,
}

/// A date that lists often give only in part ("1965", "1965-03").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PartialDate {
    pub year: i32,
    pub month: Option<u8>,
    pub day: Option<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdKind {
    Passport,
    NationalId,
    /// Russian taxpayer number.
    Inn,
    /// Russian state registration number of a legal entity.
    Ogrn,
    TaxId,
    Registration,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Identifier {
    pub kind: IdKind,
    /// Digits and letters only, upper case (spaces, dashes and dots removed).
    pub value: String,
    /// ISO 3166-1 alpha-2, lower case, when the list says.
    pub country: Option<String>,
}

/// One entry of a list, whatever the list's own format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The list it came from: "ofac-sdn", "un", "eu", "national", "own" or a configured name.
    pub list: String,
    /// The entry's id in that list (OFAC ent_num, UN DATAID/reference number, ...).
    pub id: String,
    pub kind: EntityKind,
    /// Primary name first, then aliases.
    pub names: Vec<EntryName>,
    pub birth_dates: Vec<PartialDate>,
    /// ISO 3166-1 alpha-2, lower case.
    pub nationalities: Vec<String>,
    pub identifiers: Vec<Identifier>,
    /// Sanctions programmes or list sections.
    pub programs: Vec<String>,
    pub is_pep: bool,
}

/// A problem with one entry of a list: reported, the entry skipped, the rest loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadProblem {
    /// Entry id when it could be read.
    pub entry_id: Option<String>,
    /// File and line (or XML element path) where the problem is.
    pub location: String,
    pub reason: String,
}

/// One loaded version of one list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListSnapshot {
    pub list: String,
    /// Content version: the first 16 hex digits of SHA-256 over the source files' bytes
    /// (plus the publication date when the list states one).
    pub version: String,
    /// Publication date stated by the list, if any (ISO 8601).
    pub published: Option<String>,
    pub entries: Vec<ListEntry>,
    pub problems: Vec<LoadProblem>,
}

/// Who or what is screened: built from a canonical party or typed on the command line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// None when unknown: then persons and organisations are both considered.
    pub kind: Option<EntityKind>,
    /// Full names in any script and word order; the first is the main one.
    pub names: Vec<String>,
    pub birth_date: Option<PartialDate>,
    pub nationality: Option<String>,
    pub identifiers: Vec<Identifier>,
}
