//! `hub dlq …`: list, show, replay and discard dead letters from the command line, beside a
//! running hub or without one (see [`Dlq::open`]).
//!
//! Exit codes: 0 when every letter asked for ended as asked (replayed, already replayed,
//! discarded, already discarded); 1 when any was refused or not found, or on an error.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::{DeadLetter, Dlq, Letter, LetterId, ListQuery, Listing, ReplayOptions, StatusFilter};
use crate::config;

/// Replays between two progress lines of `replay --all-pending`.
const PROGRESS_EVERY: u64 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, the oldest first: id, status, where they failed and why, where they
    /// came from. Never their payload.
    List {
        /// The hub's config file (its bus and state store are used).
        #[arg(long)]
        config: PathBuf,
        /// Only the letters of this sink (or stage, e.g. `golden`).
        #[arg(long)]
        sink: Option<String>,
        #[arg(long, value_enum, default_value_t = StatusFilter::Pending)]
        status: StatusFilter,
        /// Show at most this many (the counts cover the whole topic).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show one dead letter with all its headers; its payload (personal data) only with
    /// --payload.
    Show {
        /// The hub's config file (its bus and state store are used).
        #[arg(long)]
        config: PathBuf,
        /// `<partition>-<offset>`, as `list` prints it.
        id: String,
        /// Also print the original record. It holds customer data: mind where it ends up.
        #[arg(long)]
        payload: bool,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Publish dead letters again to the topic they failed from, with their key and headers
    /// and `replayed_from=dlq:<id>`. A letter already replayed is not replayed again, a
    /// discarded one is refused, unless --force.
    Replay {
        /// The hub's config file (its bus and state store are used).
        #[arg(long)]
        config: PathBuf,
        /// Letters to replay.
        #[arg(
            required_unless_present = "all_pending",
            conflicts_with = "all_pending"
        )]
        ids: Vec<String>,
        /// Every pending letter that failed before this command started.
        #[arg(long)]
        all_pending: bool,
        /// Only letters of this sink (or stage); others are refused.
        #[arg(long)]
        sink: Option<String>,
        /// Print what would be replayed; publish and record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replay letters already replayed or discarded too (not with --all-pending).
        #[arg(long, conflicts_with = "all_pending")]
        force: bool,
        /// Who replays (recorded); default: $USER.
        #[arg(long)]
        by: Option<String>,
    },
    /// Mark dead letters as not to be replayed, with a reason (recorded).
    Discard {
        /// The hub's config file (its bus and state store are used).
        #[arg(long)]
        config: PathBuf,
        #[arg(required = true)]
        ids: Vec<String>,
        /// Why (kept in the state store; not logged).
        #[arg(long)]
        reason: String,
        /// Who discards (recorded); default: $USER.
        #[arg(long)]
        by: Option<String>,
    },
}

/// Runs one `hub dlq` command, writing its report to `out`.
pub async fn run(cmd: DlqCommand, out: &mut (dyn Write + Send)) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List {
            config,
            sink,
            status,
            limit,
            format,
        } => {
            let dlq = open(&config)?;
            let listing = dlq
                .list(&ListQuery {
                    sink,
                    status,
                    limit,
                })
                .await?;
            match format {
                Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?,
                Format::Text => print_listing(out, dlq.topic(), &listing)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Show {
            config,
            id,
            payload,
            format,
        } => {
            let id = LetterId::parse(&id)?;
            let dlq = open(&config)?;
            let letter = dlq.get(id).await?;
            if payload {
                audit(&operator(), "dlq show --payload", &id.to_string(), "read");
            }
            match format {
                Format::Json => {
                    let v = super::api::letter_json(&letter, payload);
                    writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
                }
                Format::Text => print_letter(out, &letter, payload)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        DlqCommand::Replay {
            config,
            ids,
            all_pending,
            sink,
            dry_run,
            force,
            by,
        } => {
            let opts = ReplayOptions {
                sink,
                force,
                dry_run,
                by: by.unwrap_or_else(operator),
            };
            let dlq = open(&config)?;
            if all_pending {
                return replay_all(&dlq, &opts, out).await;
            }
            let ids = parse_ids(&ids)?;
            let outcomes = dlq.replay(&ids, &opts).await?;
            let mut failed = 0;
            for o in &outcomes {
                if !opts.dry_run {
                    audit(&opts.by, "dlq replay", &o.to_string(), ok_or_not(o.ok()));
                }
                writeln!(out, "{o}")?;
                failed += usize::from(!o.ok());
            }
            Ok(exit(failed))
        }
        DlqCommand::Discard {
            config,
            ids,
            reason,
            by,
        } => {
            let ids = parse_ids(&ids)?;
            let dlq = open(&config)?;
            let by = by.unwrap_or_else(operator);
            let outcomes = dlq.discard(&ids, &reason, &by).await?;
            let mut failed = 0;
            for o in &outcomes {
                audit(&by, "dlq discard", &o.to_string(), ok_or_not(o.ok()));
                writeln!(out, "{o}")?;
                failed += usize::from(!o.ok());
            }
            Ok(exit(failed))
        }
    }
}

fn open(path: &Path) -> anyhow::Result<Dlq> {
    let cfg = config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Replays, discards and payload reads from the command line are audited like the API's.
    let (log, chain) = crate::audit::of_config(&cfg)?;
    crate::audit::install(crate::audit::AuditLog::open(&log, chain)?);
    Ok(Dlq::open(&cfg)?)
}

/// An audit entry for a command-line action on a letter.
fn audit(by: &str, action: &str, id: &str, outcome: &str) {
    crate::audit::record(&format!("cli:{by}"), action, id, outcome, "");
}

fn parse_ids(ids: &[String]) -> anyhow::Result<Vec<LetterId>> {
    Ok(ids
        .iter()
        .map(|s| LetterId::parse(s))
        .collect::<Result<_, _>>()?)
}

fn ok_or_not(ok: bool) -> &'static str {
    if ok { "done" } else { "refused" }
}

fn exit(failed: usize) -> ExitCode {
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Who runs the command, for the record: the login name, else `cli`.
fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "cli".into())
}

async fn replay_all(
    dlq: &Dlq,
    opts: &ReplayOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<ExitCode> {
    let verb = if opts.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    let mut next_line = PROGRESS_EVERY;
    let mut write_err = None;
    let summary = dlq
        .replay_all_pending(opts, &mut |n| {
            while n >= next_line {
                if let Err(e) = writeln!(out, "{verb} {next_line} …") {
                    write_err.get_or_insert(e);
                }
                next_line += PROGRESS_EVERY;
            }
        })
        .await?;
    if !opts.dry_run {
        let what = format!("{} letters", summary.replayed);
        audit(&opts.by, "dlq replay --all-pending", &what, "done");
    }
    if let Some(e) = write_err {
        return Err(e.into());
    }
    writeln!(
        out,
        "{verb} {} pending dead letter(s) of {}",
        summary.replayed,
        dlq.topic()
    )?;
    if summary.arrived_during > 0 {
        writeln!(
            out,
            "{} letter(s) arrived while replaying (left pending for the next run)",
            summary.arrived_during
        )?;
    }
    if summary.unreplayable > 0 {
        writeln!(
            out,
            "{} pending letter(s) have no origin_topic and cannot be replayed",
            summary.unreplayable
        )?;
    }
    Ok(exit(summary.unreplayable as usize))
}

fn print_listing(out: &mut dyn Write, topic: &str, l: &Listing) -> anyhow::Result<()> {
    for v in &l.dead_letters {
        print_line(out, v)?;
    }
    let c = &l.counts;
    writeln!(
        out,
        "{topic}: {} dead letter(s): {} pending, {} replayed, {} discarded; {} match, {} shown",
        c.total(),
        c.pending,
        c.replayed,
        c.discarded,
        l.matching,
        l.dead_letters.len()
    )?;
    Ok(())
}

/// Two lines per letter: what and where, then why.
fn print_line(out: &mut dyn Write, v: &DeadLetter) -> anyhow::Result<()> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    writeln!(
        out,
        "{id}  {status}  {failed_in}  source={source} entity={entity} key={key} attempts={attempts} failed_at={at} origin={origin}",
        id = v.id,
        status = v.status.as_str(),
        failed_in = v.failed_in(),
        source = opt(&v.source),
        entity = opt(&v.entity),
        key = v.key,
        attempts = v
            .attempts
            .map(|a| a.to_string())
            .unwrap_or_else(|| "-".into()),
        at = opt(&v.last_failure),
        origin = origin(v),
    )?;
    writeln!(out, "    error: {}", v.error)?;
    Ok(())
}

fn origin(v: &DeadLetter) -> String {
    let n = |o: Option<i64>| o.map(|x| x.to_string()).unwrap_or_else(|| "?".into());
    match &v.origin_topic {
        Some(t) => format!(
            "{t}/{}/{}",
            n(v.origin_partition.map(i64::from)),
            n(v.origin_offset)
        ),
        None => "-".into(),
    }
}

fn print_letter(out: &mut dyn Write, l: &Letter, payload: bool) -> anyhow::Result<()> {
    let v = &l.view;
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    writeln!(out, "dead letter {} ({})", v.id, v.status.as_str())?;
    let rows = [
        ("failed in", v.failed_in()),
        ("error", v.error.clone()),
        (
            "attempts",
            v.attempts
                .map(|a| a.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
        ("first failure", opt(&v.first_failure)),
        ("last failure", opt(&v.last_failure)),
        ("origin", origin(v)),
        ("source", opt(&v.source)),
        ("entity", opt(&v.entity)),
        ("key", v.key.clone()),
        ("envelope id", opt(&v.envelope_id)),
        ("payload", format!("{} bytes", v.payload_bytes)),
    ];
    for (k, val) in rows {
        writeln!(out, "  {k:<14} {val}")?;
    }
    if let Some(a) = &v.action {
        let what = match (&a.replayed_to, &a.reason) {
            (Some(to), _) => format!("replayed to {to}"),
            (None, Some(r)) => format!("discarded: {r}"),
            (None, None) => v.status.as_str().to_string(),
        };
        writeln!(out, "  {:<14} {what} at {} by {}", "action", a.at, a.by)?;
    }
    writeln!(out, "  headers:")?;
    for (k, val) in &l.headers {
        writeln!(out, "    {k}: {val}")?;
    }
    if payload {
        writeln!(out, "  payload (personal data):")?;
        writeln!(out, "{}", super::api::payload_text(&l.payload))?;
    } else {
        writeln!(
            out,
            "  (payload not shown; --payload prints it: it holds personal data)"
        )?;
    }
    Ok(())
}
