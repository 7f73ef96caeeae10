//! The data-quality report: per source, the share of valid phones, e-mails and INNs, the
//! completeness of mandatory fields, the duplicates the matcher finds, and pass or fail
//! against configurable bars (a bank's go-live bar: at least 90% valid contacts and 95%
//! complete mandatory fields).
//!
//! Contract: pure arithmetic over canonical parties. Validity uses [`crate::validate`]; a
//! share with nothing to check is 1 (nothing invalid) and says so with `checked = 0`.
//! "Valid contacts" pools phones and e-mails; "complete" is the share of mandatory cells
//! (record × mandatory field) that are filled.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::matching::{MatchConfig, MatchError, MatchRecord, MatchResult, RecordSet, run};
use crate::model::{Party, PartyKind};
use crate::validate;

/// Party fields that can be required.
pub const KNOWN_FIELDS: [&str; 14] = [
    "last_name",
    "first_name",
    "middle_name",
    "full_name",
    "inn",
    "snils",
    "ogrn",
    "passport",
    "birth_date",
    "phones",
    "emails",
    "addresses",
    "segment",
    "status",
];

/// What the report checks and the bars it applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityConfig {
    /// Fields every person must have.
    pub person_fields: Vec<String>,
    /// Fields every organisation must have.
    pub organisation_fields: Vec<String>,
    /// Least share of valid contacts (phones and e-mails together), 0 to 1.
    pub min_valid_contacts: f64,
    /// Least share of filled mandatory fields, 0 to 1.
    pub min_complete: f64,
    /// Whether to look for duplicates with the matcher.
    pub duplicates: bool,
    /// Matcher settings for the duplicate search.
    pub matching: MatchConfig,
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            person_fields: ["last_name", "first_name", "birth_date", "phones"]
                .map(String::from)
                .to_vec(),
            organisation_fields: ["full_name", "inn", "ogrn"].map(String::from).to_vec(),
            min_valid_contacts: 0.90,
            min_complete: 0.95,
            duplicates: true,
            matching: MatchConfig::default(),
        }
    }
}

/// A report that cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QualityError {
    /// A bar is not a share.
    #[error("quality config: {0} must be between 0 and 1")]
    Bar(&'static str),
    /// A mandatory field the report does not know.
    #[error("quality config: unknown mandatory field {0}; known fields: {known}", known = KNOWN_FIELDS.join(", "))]
    UnknownField(String),
    /// The matcher refused to run.
    #[error(transparent)]
    Match(#[from] MatchError),
}

/// A count of checked items and how many passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Share {
    /// Items checked.
    pub checked: u64,
    /// Items that passed.
    pub passed: u64,
    /// passed / checked; 1 when nothing was checked.
    pub share: f64,
}

impl Share {
    fn of(passed: u64, checked: u64) -> Self {
        Share {
            checked,
            passed,
            share: if checked == 0 {
                1.0
            } else {
                passed as f64 / checked as f64
            },
        }
    }

    fn add(self, other: Share) -> Self {
        Share::of(self.passed + other.passed, self.checked + other.checked)
    }
}

/// Duplicates found among a set of records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplicates {
    /// Distinct parties (clusters).
    pub parties: u64,
    /// Parties with more than one record.
    pub duplicated_parties: u64,
    /// Records beyond the first of each party: records − parties.
    pub duplicate_records: u64,
    /// duplicate_records / records.
    pub share: f64,
    /// Pairs left for a data steward to decide.
    pub review_pairs: u64,
}

impl Duplicates {
    fn of(result: &MatchResult) -> Self {
        let mut sizes: BTreeMap<u32, u64> = BTreeMap::new();
        for c in &result.clusters {
            *sizes.entry(*c).or_default() += 1;
        }
        let records = result.clusters.len() as u64;
        let parties = sizes.len() as u64;
        Duplicates {
            parties,
            duplicated_parties: sizes.values().filter(|&&n| n > 1).count() as u64,
            duplicate_records: records - parties,
            share: if records == 0 {
                0.0
            } else {
                (records - parties) as f64 / records as f64
            },
            review_pairs: result.review.len() as u64,
        }
    }
}

/// The quality of one source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceQuality {
    /// The source.
    pub source: String,
    /// Records.
    pub records: u64,
    /// Phones that pass the phone validator.
    pub phones: Share,
    /// E-mails that pass the e-mail validator.
    pub emails: Share,
    /// INNs with a valid checksum and the length of the party's kind (12 digits for a
    /// person, 10 for an organisation).
    pub inns: Share,
    /// Phones and e-mails together: the contact bar applies here.
    pub valid_contacts: Share,
    /// Mandatory cells filled: the completeness bar applies here.
    pub completeness: Share,
    /// Records with every mandatory field.
    pub complete_records: Share,
    /// Per mandatory field: records that have it.
    pub fields: BTreeMap<String, Share>,
    /// Duplicates inside this source, if searched.
    pub duplicates: Option<Duplicates>,
    /// Whether the source meets both bars.
    pub pass: bool,
    /// What failed, in words.
    pub failures: Vec<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// Per source, in the order given.
    pub sources: Vec<SourceQuality>,
    /// The same party across all sources, if searched.
    pub across_sources: Option<Duplicates>,
    /// The contact bar applied.
    pub min_valid_contacts: f64,
    /// The completeness bar applied.
    pub min_complete: f64,
    /// Whether every source passes.
    pub pass: bool,
}

impl QualityConfig {
    /// Checks bars and field names.
    pub fn check(&self) -> Result<(), QualityError> {
        if !(0.0..=1.0).contains(&self.min_valid_contacts) {
            return Err(QualityError::Bar("min_valid_contacts"));
        }
        if !(0.0..=1.0).contains(&self.min_complete) {
            return Err(QualityError::Bar("min_complete"));
        }
        for f in self.person_fields.iter().chain(&self.organisation_fields) {
            if !KNOWN_FIELDS.contains(&f.as_str()) {
                return Err(QualityError::UnknownField(f.clone()));
            }
        }
        if self.duplicates {
            self.matching.check()?;
        }
        Ok(())
    }
}

fn filled(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.trim().is_empty())
}

/// Whether `party` has `field` (a name from [`KNOWN_FIELDS`]).
pub fn has_field(party: &Party, field: &str) -> bool {
    match field {
        "last_name" => filled(&party.last_name),
        "first_name" => filled(&party.first_name),
        "middle_name" => filled(&party.middle_name),
        "full_name" => filled(&party.full_name),
        "inn" => filled(&party.inn),
        "snils" => filled(&party.snils),
        "ogrn" => filled(&party.ogrn),
        "passport" => filled(&party.passport),
        "birth_date" => party.birth_date.is_some(),
        "phones" => party.phones.iter().any(|p| !p.trim().is_empty()),
        "emails" => party.emails.iter().any(|e| !e.trim().is_empty()),
        "addresses" => party.addresses.iter().any(|a| !a.text.trim().is_empty()),
        "segment" => filled(&party.segment),
        "status" => filled(&party.status),
        _ => false,
    }
}

fn inn_valid(party: &Party, inn: &str) -> bool {
    let want = match party.kind {
        PartyKind::Person => 12,
        PartyKind::Organisation => 10,
    };
    validate::inn(inn).is_ok_and(|d| d.len() == want)
}

/// Validity and completeness of one source (no duplicate search).
fn measure(source: &str, parties: &[Party], config: &QualityConfig) -> SourceQuality {
    let mut phones = (0, 0);
    let mut emails = (0, 0);
    let mut inns = (0, 0);
    let mut fields: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut complete_records = 0;
    for p in parties {
        for ph in p.phones.iter().filter(|s| !s.trim().is_empty()) {
            phones.1 += 1;
            phones.0 += u64::from(validate::phone(ph).is_ok());
        }
        for e in p.emails.iter().filter(|s| !s.trim().is_empty()) {
            emails.1 += 1;
            emails.0 += u64::from(validate::email(e).is_ok());
        }
        if let Some(inn) = p.inn.as_deref().filter(|s| !s.trim().is_empty()) {
            inns.1 += 1;
            inns.0 += u64::from(inn_valid(p, inn));
        }
        let mandatory = match p.kind {
            PartyKind::Person => &config.person_fields,
            PartyKind::Organisation => &config.organisation_fields,
        };
        let mut all = true;
        for f in mandatory {
            let has = has_field(p, f);
            let e = fields.entry(f.clone()).or_default();
            e.1 += 1;
            e.0 += u64::from(has);
            all &= has;
        }
        complete_records += u64::from(all);
    }
    let phones = Share::of(phones.0, phones.1);
    let emails = Share::of(emails.0, emails.1);
    let fields: BTreeMap<String, Share> = fields
        .into_iter()
        .map(|(f, (ok, n))| (f, Share::of(ok, n)))
        .collect();
    let completeness = fields.values().fold(Share::of(0, 0), |acc, s| acc.add(*s));
    let valid_contacts = phones.add(emails);
    let mut failures = Vec::new();
    if valid_contacts.share < config.min_valid_contacts {
        failures.push(format!(
            "valid contacts {:.1}% below {:.1}%",
            valid_contacts.share * 100.0,
            config.min_valid_contacts * 100.0
        ));
    }
    if completeness.share < config.min_complete {
        failures.push(format!(
            "mandatory fields {:.1}% complete, below {:.1}%",
            completeness.share * 100.0,
            config.min_complete * 100.0
        ));
    }
    SourceQuality {
        source: source.to_owned(),
        records: parties.len() as u64,
        phones,
        emails,
        inns: Share::of(inns.0, inns.1),
        valid_contacts,
        completeness,
        complete_records: Share::of(complete_records, parties.len() as u64),
        fields,
        duplicates: None,
        pass: failures.is_empty(),
        failures,
    }
}

/// The quality report over parties per source: `(source name, its parties)`.
pub fn quality_report(
    sources: &[(&str, &[Party])],
    config: &QualityConfig,
) -> Result<QualityReport, QualityError> {
    config.check()?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let mut out = Vec::with_capacity(sources.len());
    let mut all = RecordSet::new();
    for (source, parties) in sources {
        let mut q = measure(source, parties, config);
        if config.duplicates {
            let records: Vec<MatchRecord> = parties
                .iter()
                .map(|p| MatchRecord::from_party(source, p))
                .collect();
            let mut set = RecordSet::new();
            set.extend(&records, 0, threads).map_err(MatchError::from)?;
            q.duplicates = Some(Duplicates::of(&run(&set, false, &config.matching)?));
            all.extend(&records, 0, threads).map_err(MatchError::from)?;
        }
        out.push(q);
    }
    let distinct: BTreeSet<&str> = sources.iter().map(|s| s.0).collect();
    let across_sources = if config.duplicates && distinct.len() > 1 {
        Some(Duplicates::of(&run(&all, false, &config.matching)?))
    } else {
        None
    };
    Ok(QualityReport {
        pass: out.iter().all(|s| s.pass),
        sources: out,
        across_sources,
        min_valid_contacts: config.min_valid_contacts,
        min_complete: config.min_complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn person(id: &str, phone: &str, email: &str, with_dob: bool) -> Party {
        Party {
            source_id: id.into(),
            last_name: Some("Иванов".into()),
            first_name: Some("Сергей".into()),
            birth_date: with_dob
                .then(|| NaiveDate::from_ymd_opt(1980, 2, 3))
                .flatten(),
            phones: if phone.is_empty() {
                vec![]
            } else {
                vec![phone.into()]
            },
            emails: if email.is_empty() {
                vec![]
            } else {
                vec![email.into()]
            },
            inn: Some("500100732259".into()),
            ..Party::default()
        }
    }

    fn no_dups() -> QualityConfig {
        QualityConfig {
            duplicates: false,
            ..QualityConfig::default()
        }
    }

    #[test]
    fn shares_and_bars() {
        let parties = vec![
            person("1", "+79001112233", "a@b.ru", true),
            person("2", "12", "bad@", true),
            person("3", "+79001112234", "", false),
            person("4", "", "c@d.ru", true),
        ];
        let r = quality_report(&[("abs", &parties)], &no_dups()).unwrap();
        let s = &r.sources[0];
        assert_eq!(s.records, 4);
        assert_eq!((s.phones.passed, s.phones.checked), (2, 3));
        assert_eq!((s.emails.passed, s.emails.checked), (2, 3));
        assert_eq!((s.valid_contacts.passed, s.valid_contacts.checked), (4, 6));
        assert_eq!((s.inns.passed, s.inns.checked), (4, 4));
        // 4 mandatory fields × 4 records; one birth date and one phone list missing.
        assert_eq!((s.completeness.passed, s.completeness.checked), (14, 16));
        assert_eq!(s.complete_records.passed, 2);
        assert_eq!(s.fields["birth_date"].passed, 3);
        assert!(!s.pass && !r.pass);
        assert_eq!(
            s.failures,
            vec![
                "valid contacts 66.7% below 90.0%".to_owned(),
                "mandatory fields 87.5% complete, below 95.0%".to_owned()
            ]
        );
        let lenient = QualityConfig {
            min_valid_contacts: 0.6,
            min_complete: 0.85,
            ..no_dups()
        };
        assert!(quality_report(&[("abs", &parties)], &lenient).unwrap().pass);
    }

    #[test]
    fn organisation_fields_and_inn_length() {
        let org = Party {
            kind: PartyKind::Organisation,
            source_id: "o".into(),
            full_name: Some("ООО Ромашка".into()),
            // A valid person's INN on an organisation is wrong for its kind.
            inn: Some("500100732259".into()),
            ..Party::default()
        };
        let r = quality_report(&[("abs", &[org])], &no_dups()).unwrap();
        let s = &r.sources[0];
        assert_eq!((s.inns.passed, s.inns.checked), (0, 1));
        assert_eq!(
            s.fields.keys().collect::<Vec<_>>(),
            ["full_name", "inn", "ogrn"]
        );
        assert_eq!(s.completeness.passed, 2);
        // No contacts at all: nothing invalid.
        assert_eq!(s.valid_contacts.share, 1.0);
        assert_eq!(s.valid_contacts.checked, 0);
    }

    #[test]
    fn duplicates_per_source_and_across() {
        let a = vec![
            person("1", "+79001112233", "", true),
            person("2", "+79001112233", "", true),
            Party {
                first_name: Some("Анна".into()),
                last_name: Some("Петрова".into()),
                inn: None,
                phones: vec!["+79005556677".into()],
                ..person("3", "", "", true)
            },
        ];
        let b = vec![person("x", "+79001112233", "s.ivanov@mail.ru", true)];
        let r = quality_report(&[("abs", &a), ("cards", &b)], &QualityConfig::default()).unwrap();
        let d = r.sources[0].duplicates.unwrap();
        // Records 1 and 2 share an INN: one party with a duplicate.
        assert_eq!(
            (d.parties, d.duplicated_parties, d.duplicate_records),
            (2, 1, 1)
        );
        let x = r.across_sources.unwrap();
        assert_eq!(x.parties, 2);
        assert_eq!(x.duplicate_records, 2);
    }

    #[test]
    fn config_errors() {
        let bad = QualityConfig {
            person_fields: vec!["shoe_size".into()],
            ..QualityConfig::default()
        };
        let e = quality_report(&[], &bad).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("quality config: unknown mandatory field shoe_size")
        );
        let bad = QualityConfig {
            min_complete: 95.0,
            ..QualityConfig::default()
        };
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "quality config: min_complete must be between 0 and 1"
        );
        let c: QualityConfig =
            toml::from_str("min_valid_contacts = 0.8\nduplicates = false\n").unwrap();
        assert_eq!(c.min_complete, 0.95);
        assert!(toml::from_str::<QualityConfig>("min_valid = 0.8\n").is_err());
    }
}
