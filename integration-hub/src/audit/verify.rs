//! `hub audit verify`: walks the chain and names every entry edited, reordered or deleted.

use std::fmt;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{Chain, Entry, GENESIS, head_path};

/// A break in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not an entry.
    Malformed {
        line: u64,
    },
    /// The entry's content does not match its own hash.
    Edited {
        line: u64,
        seq: u64,
    },
    /// The entry does not link to the entry before it (that one was changed, or entries
    /// were swapped).
    Unlinked {
        line: u64,
        seq: u64,
    },
    /// Sequence numbers out of order.
    Reordered {
        line: u64,
        seq: u64,
        after: u64,
    },
    /// Entries missing between two that remain.
    Deleted {
        from: u64,
        to: u64,
        line: u64,
    },
    /// The head file records more entries, or another last hash, than the log has.
    TailDeleted {
        head_seq: u64,
        last_seq: u64,
    },
    HeadMismatch {
        seq: u64,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Malformed { line } => write!(f, "line {line}: not an audit entry"),
            Problem::Edited { line, seq } => {
                write!(
                    f,
                    "line {line}: entry {seq} was edited (its hash does not match)"
                )
            }
            Problem::Unlinked { line, seq } => write!(
                f,
                "line {line}: entry {seq} does not link to the entry before it (that entry was changed or moved)"
            ),
            Problem::Reordered { line, seq, after } => {
                write!(
                    f,
                    "line {line}: entry {seq} comes after entry {after}: reordered"
                )
            }
            Problem::Deleted { from, to, line } => {
                write!(f, "line {line}: entries {from} to {to} were deleted")
            }
            Problem::TailDeleted { head_seq, last_seq } => write!(
                f,
                "entries {} to {head_seq} were deleted from the end (the head records {head_seq})",
                last_seq + 1
            ),
            Problem::HeadMismatch { seq } => {
                write!(
                    f,
                    "entry {seq}: its hash differs from the one the head file records"
                )
            }
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub entries: u64,
    pub last_seq: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the log at `path` (and its head file, when there is one).
pub fn verify(path: &Path, chain: &Chain) -> anyhow::Result<Report> {
    let f = std::fs::File::open(path)
        .map_err(|e| anyhow::anyhow!("cannot open audit log {}: {e}", path.display()))?;
    let mut problems = Vec::new();
    let (mut entries, mut last_seq, mut last_hash) = (0u64, 0u64, GENESIS.to_string());
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let Ok(e) = serde_json::from_str::<Entry>(&line) else {
            problems.push(Problem::Malformed { line: line_no });
            continue;
        };
        entries += 1;
        if chain.hash(&e.prev, &e) != e.hash {
            problems.push(Problem::Edited {
                line: line_no,
                seq: e.seq,
            });
        } else if e.seq <= last_seq {
            problems.push(Problem::Reordered {
                line: line_no,
                seq: e.seq,
                after: last_seq,
            });
        } else if e.seq > last_seq + 1 {
            problems.push(Problem::Deleted {
                from: last_seq + 1,
                to: e.seq - 1,
                line: line_no,
            });
        } else if e.prev != last_hash {
            problems.push(Problem::Unlinked {
                line: line_no,
                seq: e.seq,
            });
        }
        last_seq = last_seq.max(e.seq);
        last_hash = e.hash;
    }
    if let Ok(text) = std::fs::read_to_string(head_path(path)) {
        let mut it = text.split_whitespace();
        if let (Some(seq), Some(hash)) = (it.next().and_then(|s| s.parse::<u64>().ok()), it.next())
        {
            if seq > last_seq {
                problems.push(Problem::TailDeleted {
                    head_seq: seq,
                    last_seq,
                });
            } else if seq == last_seq && hash != last_hash {
                problems.push(Problem::HeadMismatch { seq });
            }
        }
    }
    Ok(Report {
        entries,
        last_seq,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::super::AuditLog;
    use super::*;

    fn log_of(n: u64, chain: Chain) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path, chain).unwrap();
        for i in 1..=n {
            log.append(
                "ann",
                "post /api/dlq/{id}/replay",
                &format!("letter-{i}"),
                "200",
                "",
            )
            .unwrap();
        }
        (dir, path)
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn write(path: &Path, lines: &[String]) {
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }

    #[test]
    fn an_untouched_log_verifies_and_reopening_continues_the_chain() {
        let (_d, path) = log_of(5, Chain::Sha256);
        let log = AuditLog::open(&path, Chain::Sha256).unwrap();
        log.append("bob", "x", "y", "200", "").unwrap();
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!((r.entries, r.last_seq), (6, 6));
        assert!(r.intact(), "{:?}", r.problems);
    }

    #[test]
    fn two_writers_on_one_log_keep_one_chain() {
        // The running hub and a `hub dlq` command append to the same log.
        let (_d, path) = log_of(2, Chain::Sha256);
        let hub = AuditLog::open(&path, Chain::Sha256).unwrap();
        let cli = AuditLog::open(&path, Chain::Sha256).unwrap();
        for i in 0..3 {
            hub.append(
                "hub",
                "crm_write",
                &format!("batch {i}"),
                "acknowledged",
                "",
            )
            .unwrap();
            cli.append("cli:ann", "dlq replay", &format!("0-{i}"), "done", "")
                .unwrap();
        }
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!((r.entries, r.last_seq), (8, 8));
        assert!(r.intact(), "{:?}", r.problems);
    }

    #[test]
    fn an_edited_entry_is_found() {
        let (_d, path) = log_of(10, Chain::Sha256);
        let mut l = lines(&path);
        l[3] = l[3].replace("letter-4", "letter-X");
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(r.problems, vec![Problem::Edited { line: 4, seq: 4 }]);
    }

    #[test]
    fn an_edited_entry_with_a_recomputed_hash_breaks_the_next_link() {
        let (_d, path) = log_of(10, Chain::Sha256);
        let mut l = lines(&path);
        let mut e: Entry = serde_json::from_str(&l[3]).unwrap();
        e.target = "letter-X".into();
        e.hash = Chain::Sha256.hash(&e.prev, &e);
        l[3] = serde_json::to_string(&e).unwrap();
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(r.problems, vec![Problem::Unlinked { line: 5, seq: 5 }]);
    }

    #[test]
    fn with_a_key_a_rewritten_chain_cannot_be_forged() {
        let key = Chain::keyed(b"audit key held by reference");
        let (_d, path) = log_of(6, key.clone());
        assert!(verify(&path, &key).unwrap().intact());
        // Rewriting every hash from the edit on with the unkeyed hash does not pass.
        let mut l = lines(&path);
        let mut prev = GENESIS.to_string();
        for line in l.iter_mut() {
            let mut e: Entry = serde_json::from_str(line).unwrap();
            e.target = e.target.replace("letter-3", "letter-X");
            e.prev = prev.clone();
            e.hash = Chain::Sha256.hash(&e.prev, &e);
            prev = e.hash.clone();
            *line = serde_json::to_string(&e).unwrap();
        }
        write(&path, &l);
        let r = verify(&path, &key).unwrap();
        assert_eq!(r.problems.len(), 6 + 1, "{:?}", r.problems);
    }

    #[test]
    fn reordered_deleted_and_truncated_entries_are_found() {
        let (_d, path) = log_of(10, Chain::Sha256);
        let orig = lines(&path);

        let mut l = orig.clone();
        l.swap(5, 6);
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(
            r.problems,
            vec![
                Problem::Deleted {
                    from: 6,
                    to: 6,
                    line: 6
                },
                Problem::Reordered {
                    line: 7,
                    seq: 6,
                    after: 7
                },
                Problem::Unlinked { line: 8, seq: 8 },
            ]
        );

        let mut l = orig.clone();
        l.remove(6);
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(
            r.problems,
            vec![Problem::Deleted {
                from: 7,
                to: 7,
                line: 7
            }]
        );

        let mut l = orig.clone();
        l.truncate(8);
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(
            r.problems,
            vec![Problem::TailDeleted {
                head_seq: 10,
                last_seq: 8
            }]
        );
        assert!(r.problems[0].to_string().contains("entries 9 to 10"));

        let mut l = orig.clone();
        l[2] = "{not json".into();
        write(&path, &l);
        let r = verify(&path, &Chain::Sha256).unwrap();
        assert_eq!(
            r.problems,
            vec![
                Problem::Malformed { line: 3 },
                Problem::Deleted {
                    from: 3,
                    to: 3,
                    line: 4
                }
            ]
        );
    }
}
