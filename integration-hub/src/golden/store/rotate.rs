//! Key rotation of the golden store: re-encrypts, batch by batch, every personal column not
//! yet under the active key (plain values included). Each batch is one write transaction
//! (the store's write lock), so a running hub's writes interleave with the batches; a value
//! already under the active key is skipped, so a rerun after an interruption resumes.

use super::{
    GoldenStore, Param, StoreError, TxKind, event_aad, golden_aad, history_aad, match_aad, open,
    seal,
};
use crate::crypto::rotate::{Batch, Rotatable};

/// The parts rotated, in order.
const PARTS: [&str; 3] = ["golden.record", "golden_xref", "golden_history"];

impl Rotatable for GoldenStore {
    fn store_name(&self) -> &'static str {
        "golden"
    }

    fn parts(&self) -> &'static [&'static str] {
        &PARTS
    }

    fn rotate_batch(&self, part: &str, after: Option<&str>, limit: usize) -> Result<Batch, String> {
        let cipher = self
            .cipher
            .clone()
            .ok_or("the golden store was opened without [encryption] keys")?;
        let c = Some(&*cipher);
        let fresh = |stored: &str, aad: &str| -> Result<Option<String>, StoreError> {
            if cipher.is_current(stored) {
                return Ok(None);
            }
            let plain = open(c, stored, aad)?;
            seal(c, plain.into_owned(), aad).map(Some)
        };
        let limit_p = Param::from(i64::try_from(limit).unwrap_or(i64::MAX));
        let result = self.run(TxKind::Write, |tx| {
            let mut batch = Batch::default();
            match part {
                "golden.record" => {
                    let rows = tx.db.query(
                        "SELECT golden_id, record FROM golden WHERE golden_id > $1 \
                         ORDER BY golden_id LIMIT $2",
                        &[Param::from(after.unwrap_or("")), limit_p.clone()],
                    )?;
                    for r in rows {
                        let (id, stored) = (r.text(0)?, r.text(1)?);
                        batch.scanned += 1;
                        if let Some(new) = fresh(&stored, &golden_aad(&id))? {
                            tx.db.execute(
                                "UPDATE golden SET record = $1 WHERE golden_id = $2",
                                &[Param::from(new), Param::from(&id)],
                            )?;
                            batch.changed += 1;
                        }
                        batch.next = Some(id);
                    }
                }
                "golden_xref" => {
                    // The cursor is `system\u{1f}source_id`: a separator no id contains.
                    let (sys, sid) = after
                        .and_then(|a| a.split_once('\u{1f}'))
                        .unwrap_or(("", ""));
                    let rows = tx.db.query(
                        "SELECT system, source_id, event, match_record FROM golden_xref \
                         WHERE system > $1 OR (system = $1 AND source_id > $2) \
                         ORDER BY system, source_id LIMIT $3",
                        &[Param::from(sys), Param::from(sid), limit_p.clone()],
                    )?;
                    for r in rows {
                        let (system, source_id) = (r.text(0)?, r.text(1)?);
                        let (event, record) = (r.text(2)?, r.text(3)?);
                        batch.scanned += 1;
                        let e = fresh(&event, &event_aad(&system, &source_id))?;
                        let m = fresh(&record, &match_aad(&system, &source_id))?;
                        if e.is_some() || m.is_some() {
                            tx.db.execute(
                                "UPDATE golden_xref SET event = $1, match_record = $2 \
                                 WHERE system = $3 AND source_id = $4",
                                &[
                                    Param::from(e.unwrap_or(event)),
                                    Param::from(m.unwrap_or(record)),
                                    Param::from(&system),
                                    Param::from(&source_id),
                                ],
                            )?;
                            batch.changed += 1;
                        }
                        batch.next = Some(format!("{system}\u{1f}{source_id}"));
                    }
                }
                "golden_history" => {
                    let from: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(i64::MIN);
                    let rows = tx.db.query(
                        "SELECT id, old_value, new_value FROM golden_history WHERE id > $1 \
                         ORDER BY id LIMIT $2",
                        &[Param::from(from), limit_p.clone()],
                    )?;
                    for r in rows {
                        let id = r.int(0)?;
                        batch.scanned += 1;
                        let mut values = [r.opt_text(1)?, r.opt_text(2)?];
                        let mut changed = false;
                        for (v, column) in values.iter_mut().zip(["old_value", "new_value"]) {
                            if let Some(stored) = v.as_deref()
                                && let Some(new) = fresh(stored, &history_aad(column, id))?
                            {
                                *v = Some(new);
                                changed = true;
                            }
                        }
                        if changed {
                            let [old, new] = values;
                            tx.db.execute(
                                "UPDATE golden_history SET old_value = $1, new_value = $2 \
                                 WHERE id = $3",
                                &[Param::from(old), Param::from(new), Param::from(id)],
                            )?;
                            batch.changed += 1;
                        }
                        batch.next = Some(id.to_string());
                    }
                }
                other => {
                    return Err(StoreError::Invalid(format!("no part {other} to rotate")));
                }
            }
            Ok(batch)
        });
        result.map_err(|e| e.to_string())
    }
}
