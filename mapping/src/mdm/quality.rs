//! The data-quality report: per source, the share of valid phones, e-mails and INNs, the
//! completeness of mandatory fields, the duplicates the matcher finds, and pass or fail
//! against configurable bars (a bank's go-live bar: at least 90% valid contacts and 95%
//! complete mandatory fields).
//!
//! Contract: pure arithmetic over parties, no IO. Validity uses [`crate::validate`]; a
//! share with nothing to check is 1 (nothing invalid) and says so with `checked = 0`.
//! "Valid contacts" pools phones and e-mails; "complete" is the share of mandatory cells
//! (record × mandatory field) that are filled.
//!
//! Records the pipeline refuses must count too, or a source whose bad rows all go to
//! quarantine would look perfect: [`QualityRun`] takes every raw record, mapped leniently
//! (invalid values kept as text, `BoundColumns::map_row_lenient`,
//! `CompiledMapping::lenient`), with the mapping's errors for it; a row that cannot be read
//! into a record at all counts as one missing every mandatory field. [`quality_report`] is
//! the same over parties already accepted.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::matching::{MatchConfig, MatchError, MatchRecord, MatchResult, RecordSet, run};
use crate::model::{Party, PartyKind};
use crate::validate::{self, FieldError};

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
    /// Records the source's mapping refuses (the pipeline quarantines them); they are
    /// counted in every share above with the values they have.
    #[serde(default)]
    pub rejected: u64,
    /// Of the rejected records, rows that could not be read at all (cells not lining up
    /// with the header): counted as persons missing every mandatory field.
    #[serde(default)]
    pub unreadable: u64,
    /// Per field the mapping names in its errors (`phone`, `inn`, `row`, ...): records
    /// rejected with an error in it.
    #[serde(default)]
    pub errors_by_field: BTreeMap<String, u64>,
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

/// Records handed to the matcher at a time: bounds the match records held besides the
/// prepared record set.
const MATCH_CHUNK: usize = 50_000;

/// A report built one source and one record at a time, so a source need not be held in
/// memory: only the matcher's prepared records are (about 190 bytes a record), and only
/// when duplicates are searched.
///
/// ```
/// use mapping::mdm::quality::{QualityConfig, QualityRun};
/// use mapping::Party;
///
/// let config = QualityConfig { duplicates: false, ..QualityConfig::default() };
/// let mut run = QualityRun::new(&config, false).unwrap();
/// let mut abs = run.source("abs");
/// abs.add(&Party { source_id: "1".into(), ..Party::default() }, &[]).unwrap();
/// abs.finish().unwrap();
/// let report = run.finish().unwrap();
/// assert_eq!(report.sources[0].records, 1);
/// ```
pub struct QualityRun<'c> {
    config: &'c QualityConfig,
    threads: usize,
    /// Every source's records, for the duplicates across sources.
    across: Option<RecordSet>,
    sources: Vec<SourceQuality>,
}

impl<'c> QualityRun<'c> {
    /// Checks the config and starts a report. With `across_sources` (and duplicates on), the
    /// same party is also searched across the sources, which holds every source's prepared
    /// records until [`QualityRun::finish`].
    pub fn new(config: &'c QualityConfig, across_sources: bool) -> Result<Self, QualityError> {
        config.check()?;
        Ok(QualityRun {
            config,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
            across: (config.duplicates && across_sources).then(RecordSet::new),
            sources: Vec::new(),
        })
    }

    /// Starts the next source; [`SourceTally::finish`] adds it to the report.
    pub fn source(&mut self, name: &str) -> SourceTally<'_, 'c> {
        let set = self.config.duplicates.then(RecordSet::new);
        SourceTally {
            run: self,
            quality: SourceQuality {
                source: name.to_owned(),
                records: 0,
                phones: Share::default(),
                emails: Share::default(),
                inns: Share::default(),
                valid_contacts: Share::default(),
                completeness: Share::default(),
                complete_records: Share::default(),
                fields: BTreeMap::new(),
                duplicates: None,
                rejected: 0,
                unreadable: 0,
                errors_by_field: BTreeMap::new(),
                pass: false,
                failures: Vec::new(),
            },
            fields: BTreeMap::new(),
            complete_records: 0,
            pending: Vec::new(),
            set,
        }
    }

    /// The report over the sources finished so far, in the order they were finished. The
    /// duplicates across sources are searched when more than one distinct source was
    /// finished.
    pub fn finish(self) -> Result<QualityReport, QualityError> {
        let distinct: BTreeSet<&str> = self.sources.iter().map(|s| s.source.as_str()).collect();
        let across_sources = match &self.across {
            Some(all) if distinct.len() > 1 => {
                Some(Duplicates::of(&run(all, false, &self.config.matching)?))
            }
            _ => None,
        };
        Ok(QualityReport {
            pass: self.sources.iter().all(|s| s.pass),
            sources: self.sources,
            across_sources,
            min_valid_contacts: self.config.min_valid_contacts,
            min_complete: self.config.min_complete,
        })
    }
}

/// One source of a [`QualityRun`], taking its records one at a time.
pub struct SourceTally<'r, 'c> {
    run: &'r mut QualityRun<'c>,
    /// Counts so far; shares are computed by `finish`.
    quality: SourceQuality,
    /// Per mandatory field: (records that have it, records checked).
    fields: BTreeMap<String, (u64, u64)>,
    complete_records: u64,
    pending: Vec<MatchRecord>,
    set: Option<RecordSet>,
}

impl SourceTally<'_, '_> {
    /// Adds one record: `party` as far as its source row could be read (invalid values kept
    /// as text, see `BoundColumns::map_row_lenient`), and the mapping's `errors` for it; a
    /// record with errors is one the pipeline quarantines, and counts as rejected.
    pub fn add(&mut self, party: &Party, errors: &[FieldError]) -> Result<(), QualityError> {
        let q = &mut self.quality;
        q.records += 1;
        count_errors(q, errors);
        for ph in party.phones.iter().filter(|s| !s.trim().is_empty()) {
            q.phones.checked += 1;
            q.phones.passed += u64::from(validate::phone(ph).is_ok());
        }
        for e in party.emails.iter().filter(|s| !s.trim().is_empty()) {
            q.emails.checked += 1;
            q.emails.passed += u64::from(validate::email(e).is_ok());
        }
        if let Some(inn) = party.inn.as_deref().filter(|s| !s.trim().is_empty()) {
            q.inns.checked += 1;
            q.inns.passed += u64::from(inn_valid(party, inn));
        }
        let config = self.run.config;
        let mandatory = match party.kind {
            PartyKind::Person => &config.person_fields,
            PartyKind::Organisation => &config.organisation_fields,
        };
        let mut all = true;
        for f in mandatory {
            let has = has_field(party, f);
            tally_field(&mut self.fields, f, has);
            all &= has;
        }
        self.complete_records += u64::from(all);
        if self.set.is_some() {
            self.pending
                .push(MatchRecord::from_party(&self.quality.source, party));
            if self.pending.len() >= MATCH_CHUNK {
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Adds a row that could not be read into a record at all (its cells do not line up
    /// with the header), with the reader's `errors`: rejected, and counted as a person (the
    /// kind a row without one is read as) missing every mandatory field.
    pub fn add_unreadable(&mut self, errors: &[FieldError]) {
        let q = &mut self.quality;
        q.records += 1;
        q.unreadable += 1;
        count_errors(q, errors);
        if errors.is_empty() {
            // Rejected all the same: count it under the row.
            q.rejected += 1;
            *q.errors_by_field.entry("row".to_owned()).or_default() += 1;
        }
        for f in &self.run.config.person_fields {
            tally_field(&mut self.fields, f, false);
        }
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.quality.records
    }

    /// Hands the pending match records to this source's set and the run's set.
    fn flush(&mut self) -> Result<(), QualityError> {
        let threads = self.run.threads;
        if let Some(set) = &mut self.set {
            set.extend(&self.pending, 0, threads)
                .map_err(MatchError::from)?;
        }
        if let Some(all) = &mut self.run.across {
            all.extend(&self.pending, 0, threads)
                .map_err(MatchError::from)?;
        }
        self.pending.clear();
        Ok(())
    }

    /// Computes the shares, applies the bars, searches duplicates (when configured) and adds
    /// the source to the run; returns its quality.
    pub fn finish(mut self) -> Result<SourceQuality, QualityError> {
        self.flush()?;
        let config = self.run.config;
        let mut q = self.quality;
        q.duplicates = match &self.set {
            Some(set) => Some(Duplicates::of(&run(set, false, &config.matching)?)),
            None => None,
        };
        q.phones = Share::of(q.phones.passed, q.phones.checked);
        q.emails = Share::of(q.emails.passed, q.emails.checked);
        q.inns = Share::of(q.inns.passed, q.inns.checked);
        q.fields = self
            .fields
            .into_iter()
            .map(|(f, (ok, n))| (f, Share::of(ok, n)))
            .collect();
        q.completeness = q
            .fields
            .values()
            .fold(Share::of(0, 0), |acc, s| acc.add(*s));
        q.complete_records = Share::of(self.complete_records, q.records);
        q.valid_contacts = q.phones.add(q.emails);
        q.failures.clear();
        if q.valid_contacts.share < config.min_valid_contacts {
            q.failures.push(format!(
                "valid contacts {:.1}% below {:.1}%",
                q.valid_contacts.share * 100.0,
                config.min_valid_contacts * 100.0
            ));
        }
        if q.completeness.share < config.min_complete {
            q.failures.push(format!(
                "mandatory fields {:.1}% complete, below {:.1}%",
                q.completeness.share * 100.0,
                config.min_complete * 100.0
            ));
        }
        q.pass = q.failures.is_empty();
        self.run.sources.push(q.clone());
        Ok(q)
    }
}

/// Counts a rejected record and each field it failed in once.
fn count_errors(q: &mut SourceQuality, errors: &[FieldError]) {
    if errors.is_empty() {
        return;
    }
    q.rejected += 1;
    for (i, e) in errors.iter().enumerate() {
        if errors[..i].iter().any(|p| p.field == e.field) {
            continue;
        }
        match q.errors_by_field.get_mut(e.field.as_str()) {
            Some(n) => *n += 1,
            None => {
                q.errors_by_field.insert(e.field.clone(), 1);
            }
        }
    }
}

/// One mandatory cell checked; the field's name is copied only the first time.
fn tally_field(fields: &mut BTreeMap<String, (u64, u64)>, field: &str, has: bool) {
    let e = match fields.get_mut(field) {
        Some(e) => e,
        None => fields.entry(field.to_owned()).or_default(),
    };
    e.1 += 1;
    e.0 += u64::from(has);
}

/// The quality report over parties per source: `(source name, its parties)`, every party
/// as accepted by its mapping.
pub fn quality_report(
    sources: &[(&str, &[Party])],
    config: &QualityConfig,
) -> Result<QualityReport, QualityError> {
    let distinct: BTreeSet<&str> = sources.iter().map(|s| s.0).collect();
    let mut report = QualityRun::new(config, distinct.len() > 1)?;
    for (source, parties) in sources {
        let mut tally = report.source(source);
        for p in *parties {
            tally.add(p, &[])?;
        }
        tally.finish()?;
    }
    report.finish()
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
    fn raw_records_with_errors_and_unreadable_rows_count() {
        let config = no_dups();
        let mut run = QualityRun::new(&config, true).unwrap();
        let mut abs = run.source("abs");
        // Accepted by the mapping.
        abs.add(&person("1", "+79001112233", "a@b.ru", true), &[])
            .unwrap();
        // Refused for its phone (kept as text) and e-mail; two phone errors are one field.
        let bad = Party {
            phones: vec!["12".into(), "34".into()],
            ..person("2", "", "bad@", true)
        };
        let errors = [
            FieldError::new("phone", "entry 1 of 2: too short"),
            FieldError::new("phone", "entry 2 of 2: too short"),
            FieldError::new("email", "not a valid e-mail address"),
        ];
        abs.add(&bad, &errors).unwrap();
        // Refused for a birth date that could not be read (left out of the party).
        abs.add(
            &person("3", "+79001112234", "", false),
            &[FieldError::new("birth_date", "must not be in the future")],
        )
        .unwrap();
        abs.add_unreadable(&[FieldError::new("row", "expected 18 cells, got 17")]);
        assert_eq!(abs.records(), 4);
        let q = abs.finish().unwrap();
        assert_eq!(q.records, 4);
        assert_eq!((q.rejected, q.unreadable), (3, 1));
        assert_eq!(
            q.errors_by_field
                .iter()
                .map(|(f, n)| (f.as_str(), *n))
                .collect::<Vec<_>>(),
            [("birth_date", 1), ("email", 1), ("phone", 1), ("row", 1)]
        );
        assert_eq!((q.phones.passed, q.phones.checked), (2, 4));
        assert_eq!((q.emails.passed, q.emails.checked), (1, 2));
        assert_eq!((q.valid_contacts.passed, q.valid_contacts.checked), (3, 6));
        // 4 records × 4 person fields: the unreadable row has none, record 3 lacks its birth
        // date; record 2's phones are present (and invalid): 16 − 4 − 1 = 11.
        assert_eq!((q.completeness.passed, q.completeness.checked), (11, 16));
        assert_eq!(
            (q.complete_records.passed, q.complete_records.checked),
            (2, 4)
        );
        assert_eq!(q.fields["last_name"].checked, 4);
        assert!(!q.pass);

        // A source with only accepted records; the across search needs two sources.
        let mut cards = run.source("cards");
        cards
            .add(&person("x", "+79001112233", "s@mail.ru", true), &[])
            .unwrap();
        cards.finish().unwrap();
        let r = run.finish().unwrap();
        assert_eq!(r.sources.len(), 2);
        assert_eq!(r.sources[1].rejected, 0);
        assert!(r.sources[1].pass);
        assert!(!r.pass);
        // Duplicates are off in this config.
        assert_eq!(r.across_sources, None);
        assert_eq!(r.sources[0], q);
    }

    #[test]
    fn duplicates_across_need_two_sources_and_the_flag() {
        let config = QualityConfig::default();
        let a = [
            person("1", "+79001112233", "", true),
            person("2", "+79001112233", "", true),
        ];
        for (across, sources, expect) in [(true, 1, false), (false, 2, false), (true, 2, true)] {
            let mut run = QualityRun::new(&config, across).unwrap();
            for name in ["abs", "cards"].iter().take(sources) {
                let mut t = run.source(name);
                for p in &a {
                    t.add(p, &[]).unwrap();
                }
                let q = t.finish().unwrap();
                assert_eq!(q.duplicates.unwrap().duplicate_records, 1);
            }
            let r = run.finish().unwrap();
            assert_eq!(r.across_sources.is_some(), expect, "{across} {sources}");
        }
    }

    #[test]
    fn reports_without_the_newer_fields_still_read() {
        let r = quality_report(
            &[("abs", &[person("1", "+79001112233", "", true)])],
            &no_dups(),
        )
        .unwrap();
        let mut v = serde_json::to_value(&r).unwrap();
        for key in ["rejected", "unreadable", "errors_by_field"] {
            v["sources"][0].as_object_mut().unwrap().remove(key);
        }
        let back: QualityReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
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
