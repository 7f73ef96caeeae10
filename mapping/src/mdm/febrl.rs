//! FEBRL-layout files: reading them into match records and measuring how well the matcher
//! finds their known duplicates.
//!
//! Layout: a header `rec_id, given_name, surname, street_number, address_1, address_2,
//! suburb, postcode, state, date_of_birth, soc_sec_id` (spaces after the commas are
//! allowed), values may be blank. Records whose ids share the number N in `rec-N-org` /
//! `rec-N-dup-k` are the same person. Optional extra columns, used by the generated Russian
//! set: `patronymic`, `phone`, `email`, `inn`, `snils`, `passport`. `soc_sec_id` may carry
//! typos in FEBRL duplicates, so it is compared as strong evidence, not used as a key.
//!
//! One file is deduplicated; two files are linked (only pairs across the files count).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::matching::{
    MatchConfig, MatchError, MatchRecord, MatchStats, TrainingInfo, deduplicate, link,
};
use super::pairs::{PairMetrics, pair_metrics};

/// The required columns, in FEBRL order.
pub const COLUMNS: [&str; 11] = [
    "rec_id",
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "address_2",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
    "soc_sec_id",
];

/// Optional columns beyond the FEBRL layout.
pub const EXTRA_COLUMNS: [&str; 6] = ["patronymic", "phone", "email", "inn", "snils", "passport"];

/// A FEBRL file that cannot be read or evaluated. Messages name the file and line but never
/// a value (they may be personal data).
#[derive(Debug, thiserror::Error)]
pub enum FebrlError {
    /// The file cannot be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A row is not valid CSV.
    #[error("{path}: line {line}: {reason}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A required column is missing from the header.
    #[error("{path}: header: missing column {column}")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: &'static str,
    },
    /// A record id does not have the form `rec-N-org` or `rec-N-dup-k`.
    #[error("{path}: line {line}: field rec_id: expected rec-N-org or rec-N-dup-K")]
    RecId {
        /// The file.
        path: PathBuf,
        /// The line.
        line: u64,
    },
    /// Evaluation takes one file (deduplication) or two (linkage).
    #[error("febrl eval: expected one or two files, got {0}")]
    FileCount(usize),
    /// The matcher refused its configuration.
    #[error(transparent)]
    Match(#[from] MatchError),
}

/// Records of one file with the entity (rec-N) of each.
#[derive(Debug, Clone, Default)]
pub struct FebrlFile {
    /// The records, source = the file's stem.
    pub records: Vec<MatchRecord>,
    /// N of `rec-N-...` per record.
    pub entities: Vec<u64>,
}

/// The entity number of a FEBRL record id.
pub fn entity_of(rec_id: &str) -> Option<u64> {
    let rest = rec_id.trim().strip_prefix("rec-")?;
    let (n, tail) = rest.split_once('-')?;
    if !(tail == "org"
        || tail
            .strip_prefix("dup-")
            .is_some_and(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit())))
    {
        return None;
    }
    n.parse().ok()
}

/// Reads a FEBRL-layout CSV file.
pub fn read(path: &Path) -> Result<FebrlFile, FebrlError> {
    let file = std::fs::File::open(path).map_err(|source| FebrlError::Io {
        path: path.to_owned(),
        source,
    })?;
    let source = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "febrl".to_owned());
    read_from(std::io::BufReader::new(file), path, &source)
}

/// Reads FEBRL-layout CSV from `input`; `path` names it in errors, `source` becomes each
/// record's source system.
pub fn read_from<R: std::io::Read>(
    input: R,
    path: &Path,
    source: &str,
) -> Result<FebrlFile, FebrlError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let csv_err = |e: csv::Error| {
        let line = e.position().map_or(0, csv::Position::line);
        let reason = match e.kind() {
            csv::ErrorKind::Io(io) => format!("cannot read: {io}"),
            csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => {
                format!("expected {expected_len} fields, found {len}")
            }
            _ => "malformed CSV".to_owned(),
        };
        FebrlError::Csv {
            path: path.to_owned(),
            line,
            reason,
        }
    };
    let header = reader.headers().map_err(csv_err)?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let mut required = [0usize; 11];
    for (slot, name) in required.iter_mut().zip(COLUMNS) {
        *slot = col(name).ok_or(FebrlError::MissingColumn {
            path: path.to_owned(),
            column: name,
        })?;
    }
    let extra: Vec<Option<usize>> = EXTRA_COLUMNS.iter().map(|c| col(c)).collect();
    let mut out = FebrlFile::default();
    for row in reader.records() {
        let row = row.map_err(csv_err)?;
        let line = row.position().map_or(0, csv::Position::line);
        let get = |i: usize| -> Option<String> {
            row.get(i)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let rec_id = get(required[0]).unwrap_or_default();
        let entity = entity_of(&rec_id).ok_or(FebrlError::RecId {
            path: path.to_owned(),
            line,
        })?;
        let opt = |k: usize| extra[k].and_then(get);
        out.records.push(MatchRecord {
            source: source.to_owned(),
            source_id: rec_id,
            given_name: get(required[1]),
            surname: get(required[2]),
            street_number: get(required[3]),
            street: get(required[4]),
            address_extra: get(required[5]),
            locality: get(required[6]),
            postcode: get(required[7]),
            region: get(required[8]),
            birth_date: get(required[9]),
            other_id: get(required[10]),
            patronymic: opt(0),
            phone: opt(1),
            email: opt(2),
            inn: opt(3),
            snils: opt(4),
            passport: opt(5),
            ..MatchRecord::default()
        });
        out.entities.push(entity);
    }
    Ok(out)
}

/// The result of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// The files evaluated.
    pub files: Vec<String>,
    /// `dedup` or `linkage`.
    pub mode: String,
    /// Records read.
    pub records: u64,
    /// Pair precision, recall, F1.
    pub metrics: PairMetrics,
    /// The matcher's counts.
    pub stats: MatchStats,
    /// How the model was trained.
    pub training: TrainingInfo,
    /// Wall-clock seconds for matching (reading excluded).
    pub seconds: f64,
}

impl std::fmt::Display for EvalReport {
    /// Several lines of detail, then the result line `precision=P recall=R f1=F`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "files: {}", self.files.join(", "))?;
        writeln!(f, "mode: {}, records: {}", self.mode, self.records)?;
        writeln!(
            f,
            "pairs: true {}, predicted {}, correct {}",
            self.metrics.true_pairs, self.metrics.predicted_pairs, self.metrics.true_positives
        )?;
        writeln!(
            f,
            "compared pairs: {}, key merges: {}, probable merges: {}, review: {}, kept apart: {}, clusters: {}",
            self.stats.compared_pairs,
            self.stats.key_pairs,
            self.stats.probable_pairs,
            self.stats.review_pairs,
            self.stats.hard_non_matches,
            self.stats.clusters
        )?;
        writeln!(
            f,
            "model: EM on {} candidate pairs ({} iterations), u from {} random pairs, expected matches {:.0}",
            self.training.em_pairs,
            self.training.em_iterations,
            self.training.u_pairs,
            self.training.expected_matches
        )?;
        let t = &self.stats.seconds;
        writeln!(
            f,
            "seconds: {:.3} (index {:.3}, train {:.3}, score {:.3}, cluster {:.3})",
            self.seconds, t.index, t.train, t.score, t.cluster
        )?;
        write!(f, "{}", self.metrics.line())
    }
}

/// Evaluates the default configuration on one file (deduplication) or two (linkage).
pub fn eval(paths: &[&Path]) -> Result<EvalReport, FebrlError> {
    eval_with(paths, &MatchConfig::default())
}

/// Evaluates `config` on one file (deduplication) or two (linkage).
pub fn eval_with(paths: &[&Path], config: &MatchConfig) -> Result<EvalReport, FebrlError> {
    let files: Vec<FebrlFile> = match paths {
        [_] | [_, _] => paths.iter().map(|p| read(p)).collect::<Result<_, _>>()?,
        _ => return Err(FebrlError::FileCount(paths.len())),
    };
    evaluate(
        &files,
        paths.iter().map(|p| p.display().to_string()).collect(),
        config,
    )
}

/// Evaluates `config` on files already read.
pub fn evaluate(
    files: &[FebrlFile],
    names: Vec<String>,
    config: &MatchConfig,
) -> Result<EvalReport, FebrlError> {
    let started = Instant::now();
    let (result, entities, sides, linkage) = match files {
        [one] => (
            deduplicate(&one.records, config)?,
            one.entities.clone(),
            Vec::new(),
            false,
        ),
        [l, r] => {
            let res = link(&l.records, &r.records, config)?;
            let entities = l.entities.iter().chain(&r.entities).copied().collect();
            let sides = std::iter::repeat_n(0u8, l.records.len())
                .chain(std::iter::repeat_n(1u8, r.records.len()))
                .collect();
            (res, entities, sides, true)
        }
        _ => return Err(FebrlError::FileCount(files.len())),
    };
    let seconds = started.elapsed().as_secs_f64();
    let metrics = pair_metrics(&result.clusters, &entities, &sides, linkage);
    Ok(EvalReport {
        files: names,
        mode: if linkage { "linkage" } else { "dedup" }.to_owned(),
        records: entities.len() as u64,
        metrics,
        stats: result.stats,
        training: result.model.training,
        seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, date_of_birth, soc_sec_id
rec-1-org, kayla, harrington, 12, maltby circuit, coaling, coolaroo, 3465, nsw, 19150612, 9004242
rec-1-dup-0, kayla, harringtn, 12, maltby circuit, coaling, coolaroo, 3465, nsw, 19150612, 9004242
rec-2-org, , waller, 6, tullaroop street, willaroo, st james, 4011, wa, 19081209, 6988048
";

    #[test]
    fn reads_febrl_layout() {
        let f = read_from(SAMPLE.as_bytes(), Path::new("sample.csv"), "sample").unwrap();
        assert_eq!(f.entities, vec![1, 1, 2]);
        let r = &f.records[2];
        assert_eq!(r.source_id, "rec-2-org");
        assert_eq!(r.given_name, None);
        assert_eq!(r.locality.as_deref(), Some("st james"));
        assert_eq!(r.other_id.as_deref(), Some("6988048"));
        assert_eq!(r.birth_date.as_deref(), Some("19081209"));
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let bad = SAMPLE.replace("rec-2-org", "record-2");
        let e = read_from(bad.as_bytes(), Path::new("x.csv"), "x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.csv: line 4: field rec_id: expected rec-N-org or rec-N-dup-K"
        );
        let bad = SAMPLE.replace(", soc_sec_id", ", ssn");
        let e = read_from(bad.as_bytes(), Path::new("x.csv"), "x").unwrap_err();
        assert_eq!(e.to_string(), "x.csv: header: missing column soc_sec_id");
        let bad = format!("{SAMPLE}rec-3-org, a, b\n");
        let e = read_from(bad.as_bytes(), Path::new("x.csv"), "x").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.csv: line 5: expected 11 fields, found 3"),
            "{e}"
        );
        let e = eval(&[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "febrl eval: expected one or two files, got 0"
        );
        let e = read(Path::new("/nonexistent/febrl.csv")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/nonexistent/febrl.csv: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn rec_ids() {
        assert_eq!(entity_of("rec-10-dup-3"), Some(10));
        assert_eq!(entity_of(" rec-0-org "), Some(0));
        for bad in ["rec-x-org", "rec-1-dup-", "rec-1", "10", "rec-1-copy"] {
            assert_eq!(entity_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn evaluates_a_small_file() {
        let f = read_from(SAMPLE.as_bytes(), Path::new("s.csv"), "s").unwrap();
        let r = evaluate(&[f], vec!["s.csv".into()], &MatchConfig::default()).unwrap();
        assert_eq!(r.metrics.true_pairs, 1);
        assert!(
            r.to_string()
                .lines()
                .last()
                .unwrap()
                .starts_with("precision=")
        );
    }
}
