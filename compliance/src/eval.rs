//! Evaluations of the matcher on labelled and synthetic data, for `hub` and the examples.
//!
//! - [`pairs`]: labelled name pairs (`schema,name1,name2,is_match`): precision, recall and F1
//!   at a threshold, and the best-F1 threshold for information;
//! - [`negatives`]: people on no list screened against an index: alerts per 1,000 rows;
//! - [`un_variants`]: UN-listed persons rewritten as a bank would receive them (Cyrillic,
//!   surname first, a middle name dropped, re-romanised under each scheme): recall.
//!
//! Errors name the file, the line and the field. Nothing here logs names.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mapping::names::{self, Scheme};

use crate::entry::{EntityKind, EntryName, ListEntry, NameStrength, PartialDate, Subject};
use crate::index::Index;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Csv {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: header lacks the column {column}")]
    MissingColumn { path: PathBuf, column: String },
    #[error("{path}: line {line}: field {field}: {reason}")]
    Field {
        path: PathBuf,
        line: u64,
        field: String,
        reason: String,
    },
}

/// The score of one labelled pair.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub line: u64,
    pub schema: String,
    pub name1: String,
    pub name2: String,
    pub is_match: bool,
    pub score: f64,
}

/// Precision, recall and F1 of one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Metrics {
    /// `precision=P recall=R f1=F threshold=T`, three decimals.
    pub fn line(&self) -> String {
        format!(
            "precision={:.3} recall={:.3} f1={:.3} threshold={:.3}",
            self.precision, self.recall, self.f1, self.threshold
        )
    }
}

/// The result of [`pairs`].
#[derive(Debug, Clone, PartialEq)]
pub struct PairsReport {
    pub scores: Vec<PairScore>,
    pub at_threshold: Metrics,
    /// The threshold with the best F1 on these pairs: informative only, never a default.
    pub best: Metrics,
}

/// The entity kind a pair file's `schema` stands for (FollowTheMoney schema names).
pub fn kind_of_schema(schema: &str) -> EntityKind {
    match schema.trim().to_ascii_lowercase().as_str() {
        "person" => EntityKind::Person,
        "organization" | "company" | "publicbody" => EntityKind::Organization,
        "vessel" => EntityKind::Vessel,
        "airplane" | "aircraft" => EntityKind::Aircraft,
        _ => EntityKind::Unknown,
    }
}

/// Scores every labelled pair of `path`: `name1` as the subject, `name2` as a one-entry list
/// of the schema's kind (a schema that fits persons and companies alike is of unknown kind).
pub fn pairs(path: &Path, threshold: f64) -> Result<PairsReport, EvalError> {
    let mut reader = open_csv(path)?;
    let cols = columns(path, &mut reader, &["schema", "name1", "name2", "is_match"])?;
    let mut scores = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row as u64 + 2;
        let record = record.map_err(|e| csv_error(path, line, e))?;
        let field = |i: usize| record.get(cols[i]).unwrap_or("").to_string();
        let is_match = match field(3).trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => {
                return Err(EvalError::Field {
                    path: path.into(),
                    line,
                    field: "is_match".into(),
                    reason: "expected true or false".into(),
                });
            }
        };
        let kind = kind_of_schema(&field(0));
        let entry = ListEntry {
            list: "pairs".into(),
            id: line.to_string(),
            kind,
            names: vec![EntryName {
                full: field(2),
                strength: NameStrength::Primary,
            }],
            birth_dates: Vec::new(),
            nationalities: Vec::new(),
            identifiers: Vec::new(),
            programs: Vec::new(),
            is_pep: false,
        };
        let subject = Subject {
            kind: (kind != EntityKind::Unknown).then_some(kind),
            names: vec![field(1)],
            ..Subject::default()
        };
        let index = Index::build(vec![entry]);
        let score = index
            .screen_all(&subject, 0.0)
            .first()
            .map(|h| h.score)
            .unwrap_or(0.0);
        scores.push(PairScore {
            line,
            schema: field(0),
            name1: field(1),
            name2: field(2),
            is_match,
            score,
        });
    }
    let at_threshold = metrics(&scores, threshold);
    let mut candidates: Vec<f64> = scores
        .iter()
        .map(|s| s.score)
        .filter(|s| *s > 0.0)
        .collect();
    candidates.sort_by(|a, b| a.total_cmp(b));
    candidates.dedup();
    let best =
        candidates
            .iter()
            .map(|t| metrics(&scores, *t))
            .fold(
                metrics(&scores, 1.0),
                |best, m| if m.f1 > best.f1 { m } else { best },
            );
    Ok(PairsReport {
        scores,
        at_threshold,
        best,
    })
}

fn metrics(scores: &[PairScore], threshold: f64) -> Metrics {
    let (mut tp, mut fp, mut fneg) = (0f64, 0f64, 0f64);
    for s in scores {
        match (s.score >= threshold, s.is_match) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fneg += 1.0,
            (false, false) => {}
        }
    }
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 {
        tp / (tp + fneg)
    } else {
        0.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Metrics {
        threshold,
        precision,
        recall,
        f1,
    }
}

/// The result of [`negatives`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NegativesReport {
    pub rows: usize,
    /// Rows with at least one hit, screened with name, birth date and nationality.
    pub rows_with_hits: usize,
    /// The same screened with the name alone (informative).
    pub rows_with_hits_name_only: usize,
}

impl NegativesReport {
    pub fn alerts_per_1000(&self) -> f64 {
        per_1000(self.rows_with_hits, self.rows)
    }

    pub fn name_only_alerts_per_1000(&self) -> f64 {
        per_1000(self.rows_with_hits_name_only, self.rows)
    }

    /// `alerts_per_1000=X`.
    pub fn line(&self) -> String {
        format!("alerts_per_1000={:.3}", self.alerts_per_1000())
    }
}

fn per_1000(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 * 1000.0 / of as f64
    }
}

/// Screens every row of a people file (`full_name` required; `date_of_birth` and
/// `nationality` used when present and readable) against `index`.
pub fn negatives(path: &Path, index: &Index, threshold: f64) -> Result<NegativesReport, EvalError> {
    let subjects = read_people(path)?;
    let mut report = NegativesReport {
        rows: subjects.len(),
        rows_with_hits: 0,
        rows_with_hits_name_only: 0,
    };
    for s in &subjects {
        if !index.screen(s, threshold).is_empty() {
            report.rows_with_hits += 1;
        }
        let name_only = Subject {
            kind: s.kind,
            names: s.names.clone(),
            ..Subject::default()
        };
        if !index.screen(&name_only, threshold).is_empty() {
            report.rows_with_hits_name_only += 1;
        }
    }
    Ok(report)
}

/// Reads a people file (the `negatives_global.csv` layout) into person subjects.
pub fn read_people(path: &Path) -> Result<Vec<Subject>, EvalError> {
    let mut reader = open_csv(path)?;
    let headers = reader.headers().map_err(|e| csv_error(path, 1, e))?.clone();
    let find = |name: &str| headers.iter().position(|h| h.trim() == name);
    let name_col = find("full_name").ok_or_else(|| EvalError::MissingColumn {
        path: path.into(),
        column: "full_name".into(),
    })?;
    let dob_col = find("date_of_birth");
    let nat_col = find("nationality");
    let mut out = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row as u64 + 2;
        let record = record.map_err(|e| csv_error(path, line, e))?;
        let name = record.get(name_col).unwrap_or("").trim().to_string();
        if name.is_empty() {
            continue;
        }
        let birth_date = dob_col
            .and_then(|c| record.get(c))
            .and_then(parse_partial_date);
        let nationality = nat_col
            .and_then(|c| record.get(c))
            .and_then(crate::lists::country::from_code_or_name)
            .map(str::to_string);
        out.push(Subject {
            kind: Some(EntityKind::Person),
            names: vec![name],
            birth_date,
            nationality,
            identifiers: Vec::new(),
        });
    }
    Ok(out)
}

/// "1965", "1965-03" or "1965-03-17"; anything else is unknown.
pub fn parse_partial_date(s: &str) -> Option<PartialDate> {
    let mut it = s.trim().splitn(3, '-');
    let year: i32 = it.next()?.parse().ok()?;
    if !(1000..=2999).contains(&year) {
        return None;
    }
    let month = match it.next() {
        Some(m) => Some(m.parse::<u8>().ok().filter(|m| (1..=12).contains(m))?),
        None => None,
    };
    let day = match it.next() {
        Some(d) => Some(d.parse::<u8>().ok().filter(|d| (1..=31).contains(d))?),
        None => None,
    };
    Some(PartialDate { year, month, day })
}

/// The result of [`un_variants`].
#[derive(Debug, Clone, PartialEq)]
pub struct VariantsReport {
    pub variants: usize,
    pub found: usize,
    /// Found per kind of rewrite.
    pub by_kind: Vec<(VariantKind, usize, usize)>,
    /// Up to 20 variants that were not found: (entry id, kind, variant text).
    pub missed: Vec<(String, VariantKind, String)>,
}

impl VariantsReport {
    pub fn recall(&self) -> f64 {
        if self.variants == 0 {
            0.0
        } else {
            self.found as f64 / self.variants as f64
        }
    }

    /// `recall=R variants=N`.
    pub fn line(&self) -> String {
        format!("recall={:.3} variants={}", self.recall(), self.variants)
    }
}

/// How a listed name was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VariantKind {
    /// Written in Cyrillic as a Russian clerk would.
    Cyrillic,
    /// Cyrillic, surname first.
    CyrillicSurnameFirst,
    /// Latin, surname (last word) first.
    SurnameFirst,
    /// Latin, the first middle name left out (names of three words or more).
    MiddleDropped,
    /// The Cyrillic rendering romanised again under a scheme.
    Romanized(Scheme),
}

/// Rewrites of one listed Latin name.
pub fn name_variants(name: &str) -> Vec<(VariantKind, String)> {
    let words: Vec<&str> = name.split_whitespace().collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let cyr = cyrillic_rendering(name);
    let cyr_words: Vec<&str> = cyr.split_whitespace().collect();
    out.push((VariantKind::Cyrillic, cyr.clone()));
    if words.len() > 1 {
        out.push((VariantKind::CyrillicSurnameFirst, surname_first(&cyr_words)));
        out.push((VariantKind::SurnameFirst, surname_first(&words)));
    }
    if words.len() >= 3 {
        let mut dropped = words.clone();
        dropped.remove(1);
        out.push((VariantKind::MiddleDropped, dropped.join(" ")));
    }
    for scheme in Scheme::ALL {
        out.push((
            VariantKind::Romanized(scheme),
            names::romanize_strict(&cyr, scheme),
        ));
    }
    out
}

fn surname_first(words: &[&str]) -> String {
    let mut v: Vec<&str> = Vec::with_capacity(words.len());
    if let Some(last) = words.last() {
        v.push(last);
    }
    v.extend_from_slice(&words[..words.len().saturating_sub(1)]);
    v.join(" ")
}

/// Screens rewrites of the primary names of the UN-listed persons among `entries` against
/// `index` and counts how many find their entry.
pub fn un_variants(entries: &[ListEntry], index: &Index, threshold: f64) -> VariantsReport {
    let mut by_kind: HashMap<VariantKind, (usize, usize)> = HashMap::new();
    let mut missed = Vec::new();
    let (mut total, mut found) = (0, 0);
    for e in entries
        .iter()
        .filter(|e| e.list == "un" && e.kind == EntityKind::Person)
    {
        let Some(primary) = e.names.first() else {
            continue;
        };
        if names::has_cyrillic(&primary.full) {
            continue;
        }
        for (kind, text) in name_variants(&primary.full) {
            let subject = Subject {
                kind: Some(EntityKind::Person),
                names: vec![text.clone()],
                ..Subject::default()
            };
            let hit = index
                .screen(&subject, threshold)
                .iter()
                .any(|h| h.list == e.list && h.entry_id == e.id);
            total += 1;
            let k = by_kind.entry(kind).or_default();
            k.0 += 1;
            if hit {
                found += 1;
                k.1 += 1;
            } else if missed.len() < 20 {
                missed.push((e.id.clone(), kind, text));
            }
        }
    }
    let mut by_kind: Vec<(VariantKind, usize, usize)> =
        by_kind.into_iter().map(|(k, (n, f))| (k, n, f)).collect();
    by_kind.sort_by_key(|(k, _, _)| *k);
    VariantsReport {
        variants: total,
        found,
        by_kind,
        missed,
    }
}

/// A Latin name written in Cyrillic the way Russian documents render foreign names
/// (English-style reading: sh → ш, kh → х, j → дж, y → й/и, ee → и, oo → у).
pub fn cyrillic_rendering(latin: &str) -> String {
    let folded = names::fold(latin);
    let s: Vec<char> = folded.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or(' ');
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut out = String::with_capacity(folded.len() * 2);
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let word_start = i == 0 || at(i - 1) == ' ';
        let rest: String = s[i..s.len().min(i + 4)].iter().collect();
        let (cyr, used): (&str, usize) = if rest.starts_with("shch") {
            ("щ", 4)
        } else if rest.starts_with("sch") {
            ("ш", 3)
        } else if rest.starts_with("sh") {
            ("ш", 2)
        } else if rest.starts_with("ch") {
            ("ч", 2)
        } else if rest.starts_with("zh") {
            ("ж", 2)
        } else if rest.starts_with("kh") {
            ("х", 2)
        } else if rest.starts_with("ts") || rest.starts_with("tz") {
            ("ц", 2)
        } else if rest.starts_with("dj") {
            ("дж", 2)
        } else if rest.starts_with("gh") {
            ("г", 2)
        } else if rest.starts_with("ph") {
            ("ф", 2)
        } else if rest.starts_with("th") {
            ("т", 2)
        } else if rest.starts_with("ck") {
            ("к", 2)
        } else if rest.starts_with("qu") {
            ("кв", 2)
        } else if rest.starts_with("ee") {
            ("и", 2)
        } else if rest.starts_with("oo") || rest.starts_with("ou") {
            ("у", 2)
        } else if rest.starts_with("ya") {
            ("я", 2)
        } else if rest.starts_with("yu") {
            ("ю", 2)
        } else if rest.starts_with("yo") {
            ("ё", 2)
        } else if rest.starts_with("ye") {
            ("е", 2)
        } else {
            let single = match c {
                'a' => "а",
                'b' => "б",
                'c' if matches!(at(i + 1), 'e' | 'i' | 'y') => "с",
                'c' | 'k' | 'q' => "к",
                'd' => "д",
                'e' if word_start => "э",
                'e' => "е",
                'f' => "ф",
                'g' => "г",
                'h' => "х",
                'i' => "и",
                'j' => "дж",
                'l' => "л",
                'm' => "м",
                'n' => "н",
                'o' => "о",
                'p' => "п",
                'r' => "р",
                's' => "с",
                't' => "т",
                'u' => "у",
                'v' | 'w' => "в",
                'x' => "кс",
                'y' if word_start || is_vowel(at(i.wrapping_sub(1))) => "й",
                'y' => "и",
                'z' => "з",
                _ => {
                    out.push(c);
                    i += 1;
                    continue;
                }
            };
            (single, 1)
        };
        out.push_str(cyr);
        i += used;
    }
    out.split(' ')
        .filter(|w| !w.is_empty())
        .map(capitalise)
        .collect::<Vec<_>>()
        .join(" ")
}

fn capitalise(w: &str) -> String {
    let mut c = w.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, EvalError> {
    let file = std::fs::File::open(path).map_err(|source| EvalError::Io {
        path: path.into(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

fn columns(
    path: &Path,
    reader: &mut csv::Reader<std::fs::File>,
    wanted: &[&str],
) -> Result<Vec<usize>, EvalError> {
    let headers = reader.headers().map_err(|e| csv_error(path, 1, e))?.clone();
    wanted
        .iter()
        .map(|w| {
            headers
                .iter()
                .position(|h| h.trim() == *w)
                .ok_or_else(|| EvalError::MissingColumn {
                    path: path.into(),
                    column: (*w).into(),
                })
        })
        .collect()
}

fn csv_error(path: &Path, line: u64, e: csv::Error) -> EvalError {
    let line = e.position().map(|p| p.line()).unwrap_or(line);
    let reason = match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not valid utf-8".to_string(),
        csv::ErrorKind::Io(_) => "read error".to_string(),
        _ => "malformed csv record".to_string(),
    };
    EvalError::Csv {
        path: path.into(),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, body).expect("write test file");
        p
    }

    #[test]
    fn pairs_report_counts_and_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            &dir,
            "pairs.csv",
            "case_group,schema,name1,name2,is_match\n\
             g,Person,Иванов Сергей Петрович,Sergey Ivanov,true\n\
             g,Company,ООО «Ромашка»,Romashka LLC,true\n\
             g,Person,Sergey Ivanov,Sergey Lavrov,false\n\
             g,Person,Mohammed,Mohammed Ali Hassan,false\n",
        );
        let r = pairs(&p, crate::DEFAULT_THRESHOLD).expect("pairs");
        assert_eq!(r.scores.len(), 4);
        assert_eq!(
            r.at_threshold.line(),
            "precision=1.000 recall=1.000 f1=1.000 threshold=0.800"
        );
    }

    #[test]
    fn pairs_errors_name_file_line_and_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(&dir, "bad.csv", "schema,name1,name2\nPerson,a,b\n");
        let e = pairs(&p, 0.8).expect_err("missing column");
        assert!(
            e.to_string().contains("bad.csv") && e.to_string().contains("is_match"),
            "{e}"
        );
        let p = write(
            &dir,
            "bad2.csv",
            "schema,name1,name2,is_match\nPerson,a,b,maybe\n",
        );
        let e = pairs(&p, 0.8).expect_err("bad flag");
        assert!(
            e.to_string().contains("line 2") && e.to_string().contains("is_match"),
            "{e}"
        );
        let e = pairs(&dir.path().join("none.csv"), 0.8).expect_err("no file");
        assert!(e.to_string().contains("none.csv"), "{e}");
    }

    #[test]
    fn dates_in_part() {
        assert_eq!(
            parse_partial_date("1965"),
            Some(PartialDate {
                year: 1965,
                month: None,
                day: None
            })
        );
        assert_eq!(
            parse_partial_date("1965-03-17"),
            Some(PartialDate {
                year: 1965,
                month: Some(3),
                day: Some(17)
            })
        );
        assert_eq!(parse_partial_date("1965-13"), None);
        assert_eq!(parse_partial_date("n/a"), None);
    }

    #[test]
    fn cyrillic_renderings_read_back() {
        assert_eq!(
            cyrillic_rendering("ABDUL GHANI BARADAR"),
            "Абдул Гани Барадар"
        );
        assert_eq!(cyrillic_rendering("Sergey Ivanov"), "Сергей Иванов");
        assert_eq!(cyrillic_rendering("KHALID SHEIKH"), "Халид Шеих");
        let v = name_variants("TARIQ ANWAR EL SAYED");
        assert!(
            v.iter()
                .any(|(k, t)| *k == VariantKind::MiddleDropped && t == "TARIQ EL SAYED")
        );
        assert!(
            v.iter()
                .any(|(k, t)| *k == VariantKind::SurnameFirst && t == "SAYED TARIQ ANWAR EL")
        );
    }

    #[test]
    fn negatives_count_rows_with_hits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = write(
            &dir,
            "people.csv",
            "full_name,first_name,middle_name,last_name,gender,date_of_birth,place_of_birth,nationality\n\
             Sergey Ivanov,,,,male,1970-01-01,,Russia\n\
             Patricia Wheeler,,,,female,1980-02-02,,Chile\n",
        );
        let entry = ListEntry {
            list: "own".into(),
            id: "1".into(),
            kind: EntityKind::Person,
            names: vec![EntryName {
                full: "Иванов Сергей".into(),
                strength: NameStrength::Primary,
            }],
            birth_dates: vec![PartialDate {
                year: 1970,
                month: None,
                day: None,
            }],
            nationalities: vec![],
            identifiers: vec![],
            programs: vec![],
            is_pep: false,
        };
        let index = Index::build(vec![entry]);
        let r = negatives(&p, &index, crate::DEFAULT_THRESHOLD).expect("negatives");
        assert_eq!((r.rows, r.rows_with_hits), (2, 1));
        assert_eq!(r.line(), "alerts_per_1000=500.000");
    }
}
