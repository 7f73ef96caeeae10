//! `hub screen`: screen names typed on the command line or read from a CSV against the lists
//! of a config, printing every hit with its explanation; and `hub screen eval`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use compliance::{EntityKind, IdKind, Identifier, Subject};

use super::engine::{Engine, HitView};
use super::lists;
use crate::config::Config;

/// Loads every list of the config's `[compliance]` section into one engine.
pub fn engine_of(config: &Config, threshold: Option<f64>) -> anyhow::Result<Engine> {
    let section = config
        .compliance
        .as_ref()
        .context("the config has no [compliance] section with lists")?;
    let mut snapshots = Vec::new();
    for l in &section.lists {
        let started = std::time::Instant::now();
        let s = lists::load(l, &config.base_dir)?;
        eprintln!(
            "list {}: {} entries, {} skipped, version {} ({} ms)",
            s.list,
            s.entries.len(),
            s.problems.len(),
            s.version,
            started.elapsed().as_millis()
        );
        snapshots.push(s);
    }
    Ok(Engine::build(
        snapshots.iter(),
        threshold.unwrap_or(section.threshold),
    ))
}

/// Screens `names` (each a full name) and the rows of `input` (CSV with a header holding
/// `name` and optionally `kind`, `birth_date`, `inn`, `ogrn`, `passport`, `nationality`).
/// Returns how many subjects had hits.
pub fn screen(
    engine: &Engine,
    names: &[String],
    input: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let mut subjects: Vec<(String, Subject)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                Subject {
                    names: vec![n.clone()],
                    ..Subject::default()
                },
            )
        })
        .collect();
    if let Some(path) = input {
        subjects.extend(read_subjects(path)?);
    }
    let mut with_hits = 0;
    for (label, subject) in &subjects {
        let hits = engine.screen(subject);
        if hits.is_empty() {
            writeln!(out, "{label}: clear")?;
            continue;
        }
        with_hits += 1;
        writeln!(out, "{label}: {} hit(s)", hits.len())?;
        for h in &hits {
            print_hit(out, h)?;
        }
    }
    Ok(with_hits)
}

fn print_hit(out: &mut dyn Write, h: &HitView) -> anyhow::Result<()> {
    writeln!(
        out,
        "  {:.3}  {} {}  \"{}\" ~ \"{}\"",
        h.score, h.list, h.entry_id, h.query_name, h.matched_name
    )?;
    writeln!(out, "         {}", h.explanation)?;
    Ok(())
}

/// Reads subjects from a CSV (UTF-8, `,` or `;`), reporting the line of any bad row.
fn read_subjects(path: &Path) -> anyhow::Result<Vec<(String, Subject)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} (UTF-8 expected)", path.display()))?;
    let delimiter = if text.lines().next().is_some_and(|h| h.contains(';')) {
        b';'
    } else {
        b','
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = rdr
        .headers()
        .with_context(|| format!("{}: line 1: cannot read the header", path.display()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |name: &str| headers.iter().position(|h| h == name);
    let name_col = col("name")
        .or_else(|| col("full_name"))
        .with_context(|| format!("{}: line 1: no `name` column", path.display()))?;
    let mut out = Vec::new();
    for (i, row) in rdr.records().enumerate() {
        let line = i + 2;
        let row =
            row.with_context(|| format!("{}: line {line}: cannot read the row", path.display()))?;
        let get = |c: Option<usize>| {
            c.and_then(|c| row.get(c))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let Some(name) = get(Some(name_col)) else {
            anyhow::bail!("{}: line {line}: field `name` is empty", path.display());
        };
        let mut identifiers = Vec::new();
        for (column, kind) in [
            ("inn", IdKind::Inn),
            ("ogrn", IdKind::Ogrn),
            ("passport", IdKind::Passport),
        ] {
            if let Some(v) = get(col(column)) {
                identifiers.push(Identifier {
                    kind,
                    value: v
                        .chars()
                        .filter(|c| c.is_alphanumeric())
                        .flat_map(char::to_uppercase)
                        .collect(),
                    country: None,
                });
            }
        }
        let birth_date = match get(col("birth_date")).or_else(|| get(col("date_of_birth"))) {
            None => None,
            Some(v) => Some(compliance::eval::parse_partial_date(v).with_context(|| {
                format!(
                    "{}: line {line}: field `birth_date`: expected a date such as 1971, 1971-03-05 or 05.03.1971",
                    path.display()
                )
            })?),
        };
        let kind = match get(col("kind")).map(str::to_lowercase).as_deref() {
            None => None,
            Some("person" | "individual" | "фл") => Some(EntityKind::Person),
            Some("organization" | "organisation" | "company" | "юл") => {
                Some(EntityKind::Organization)
            }
            Some(_) => anyhow::bail!(
                "{}: line {line}: field `kind`: expected person or organization",
                path.display()
            ),
        };
        out.push((
            format!("line {line}"),
            Subject {
                kind,
                names: vec![name.to_string()],
                birth_date,
                nationality: get(col("nationality")).map(str::to_lowercase),
                identifiers,
            },
        ));
    }
    Ok(out)
}

/// `hub screen eval`: labelled pairs, negatives and UN variants; the last line printed is the
/// figure the caller asked for.
pub fn eval(
    config: Option<&Config>,
    pairs: Option<&Path>,
    negatives: Option<&Path>,
    un_variants: bool,
    threshold: Option<f64>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let threshold = threshold
        .or_else(|| {
            config
                .and_then(|c| c.compliance.as_ref())
                .map(|c| c.threshold)
        })
        .unwrap_or(compliance::DEFAULT_THRESHOLD);
    if negatives.is_some() || un_variants {
        let config =
            config.context("--negatives and --un-variants screen against the lists of --config")?;
        let engine = engine_of(config, Some(threshold))?;
        if un_variants {
            let r =
                compliance::eval::un_variants(engine.index().entries(), engine.index(), threshold);
            for (kind, n, found) in &r.by_kind {
                writeln!(out, "variants {kind:?}: {found}/{n}")?;
            }
            writeln!(out, "{}", r.line())?;
        }
        if let Some(path) = negatives {
            let r = compliance::eval::negatives(path, engine.index(), threshold)?;
            writeln!(
                out,
                "rows={} with_hits={} name_only_alerts_per_1000={:.3}",
                r.rows,
                r.rows_with_hits,
                r.name_only_alerts_per_1000()
            )?;
            writeln!(out, "{}", r.line())?;
        }
    }
    if let Some(path) = pairs {
        let r = compliance::eval::pairs(path, threshold)?;
        writeln!(
            out,
            "pairs={} best_f1_threshold (informative): {}",
            r.scores.len(),
            r.best.line()
        )?;
        writeln!(out, "{}", r.at_threshold.line())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_from_csv_name_their_line_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("parties.csv");
        std::fs::write(
            &p,
            "name;birth_date;inn\nИванов Сергей;1971;500100732259\n;1980;\n",
        )
        .unwrap();
        let err = read_subjects(&p).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("`name`"), "{err}");
        std::fs::write(&p, "name;birth_date;inn\nИванов Сергей;1971;500100732259\n").unwrap();
        let s = read_subjects(&p).unwrap();
        assert_eq!(s[0].1.identifiers[0].kind, IdKind::Inn);
        assert_eq!(s[0].1.birth_date.unwrap().year, 1971);
    }
}
