//! The report as text, and the ids to repair as a file `hub backfill --ids-file` reads.
//! Ids and field names only: values are customer data.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::Report;
use crate::backfill::progress::thousands;

/// Counts first, then the ids of every class.
pub fn write_text(r: &Report, out: &mut dyn Write) -> anyhow::Result<()> {
    let c = &r.outcome.counts;
    writeln!(
        out,
        "reconcile: source {} ↔ sink {} (fields compared: {})",
        r.source, r.sink, r.fields
    )?;
    writeln!(
        out,
        "bank={} crm={} matched={} missing={} extra={} different={} unreadable={} failed={}",
        c.bank,
        c.crm,
        c.matched,
        c.missing,
        c.extra,
        c.different,
        c.unreadable,
        r.failures.len()
    )?;
    let list = |out: &mut dyn Write, title: &str, ids: &[String]| -> std::io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        writeln!(out, "{title} ({}):", thousands(ids.len() as u64))?;
        for id in ids {
            writeln!(out, "  {id}")?;
        }
        Ok(())
    };
    list(
        out,
        "missing: in the bank, not in the CRM",
        &r.outcome.missing,
    )?;
    list(out, "extra: in the CRM, not in the bank", &r.outcome.extra)?;
    if !r.outcome.different.is_empty() {
        writeln!(
            out,
            "different: the fields that differ ({}):",
            thousands(r.outcome.different.len() as u64)
        )?;
        let width = r
            .outcome
            .different
            .iter()
            .map(|d| d.id.len())
            .max()
            .unwrap_or(0);
        for d in &r.outcome.different {
            writeln!(out, "  {:<width$}  {}", d.id, d.fields.join(","))?;
        }
    }
    if r.clean() {
        writeln!(out, "clean: the CRM holds exactly the bank's records")?;
    } else if !r.failures.is_empty() {
        writeln!(
            out,
            "{} bank record(s) could not be read: see stderr",
            thousands(r.failures.len() as u64)
        )?;
    }
    Ok(())
}

/// The ids of the missing and different records, one per line after a `#` comment line,
/// written to a temporary file and renamed into place.
pub fn write_ids(r: &Report, path: &Path) -> anyhow::Result<()> {
    let mut text = format!(
        "# hub reconcile {}: source {}, sink {}: {} missing, {} different\n",
        r.finished_at.to_rfc3339(),
        r.source,
        r.sink,
        r.outcome.missing.len(),
        r.outcome.different.len()
    );
    let mut ids: Vec<&str> = r
        .outcome
        .missing
        .iter()
        .map(String::as_str)
        .chain(r.outcome.different.iter().map(|d| d.id.as_str()))
        .collect();
    ids.sort_unstable();
    for id in ids {
        text.push_str(id);
        text.push('\n');
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("cannot write the id file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::compare::{Counts, Different, Outcome};
    use chrono::Utc;

    fn report() -> Report {
        Report {
            source: "abs".into(),
            sink: "crm".into(),
            fields: "all".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            outcome: Outcome {
                counts: Counts {
                    bank: 3,
                    crm: 3,
                    matched: 1,
                    missing: 1,
                    extra: 1,
                    different: 1,
                    unreadable: 0,
                },
                missing: vec!["C2".into()],
                extra: vec!["X1".into()],
                different: vec![Different {
                    id: "C1".into(),
                    fields: vec!["last_name".into(), "phone".into()],
                }],
            },
            failures: Vec::new(),
        }
    }

    #[test]
    fn text_lists_every_class() {
        let mut out = Vec::new();
        write_text(&report(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("bank=3 crm=3 matched=1 missing=1 extra=1 different=1"),
            "{text}"
        );
        assert!(text.contains("  C2\n") && text.contains("  X1\n"), "{text}");
        assert!(text.contains("  C1  last_name,phone\n"), "{text}");
        assert!(!text.contains("clean"), "{text}");
    }

    #[test]
    fn the_id_file_is_what_backfill_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repair.ids");
        write_ids(&report(), &path).unwrap();
        let ids = crate::backfill::select::ids_of_file(&path).unwrap();
        let mut ids: Vec<String> = ids.into_iter().collect();
        ids.sort();
        assert_eq!(ids, ["C1", "C2"], "missing and different, not extra");
    }
}
