//! Retry topics: records a sink could not deliver for reasons of their own wait on
//! `<prefix>.retry.<sink>` and are tried again later by a task of their own, so they do not
//! hold the partition they came from.
//!
//! Parking ([`park`]): a record that still fails transiently after its in-place retries, in
//! a pass that shows the CRM itself works, is published to the retry topic with its
//! original key, payload and headers plus:
//! - `retry_attempt`: how many times it was parked (1 = first),
//! - `retry_at`: when to try again (RFC 3339, now + `retry_delays_secs[retry_attempt - 1]`),
//! - `first_failure`, `last_error`, `attempts` (requests made so far, in all passes),
//! - `origin_topic`, `origin_partition`, `origin_offset`, `sink`: where it first failed.
//!
//! A record failing after the last delay goes to the dead-letter topic instead, with the
//! usual headers (origin = where it first failed, `attempts` = every request made).
//!
//! The retry task ([`run`], consumer group `<prefix>-sink-<name>-retry`) holds what it reads
//! until each record's `retry_at`, sleeping only until the earliest one is due (the poll's
//! wait is that sleep, so it stays shutdown-aware and keeps its group membership), and
//! delivers due records with the sink's own pass (`crm_sink::deliver_batch`): the version
//! guard skips a parked version once a newer one was delivered meanwhile, so an older state
//! never wins. Failing again, a record is parked again with `retry_attempt + 1`. It respects
//! the sink's circuit breaker: while the CRM as a whole is failing it sends nothing, a probe
//! it sends does not use up the record's attempt, and a record that failed as a probe waits
//! one maximum open time before it is tried again, so other records get to probe.
//!
//! Order of effects, as everywhere: acknowledgements recorded, parking / dead letters
//! published, then offsets committed. The committed offset of a partition is that of its
//! oldest record not yet settled, so a crash delivers again what was held (harmless: the
//! version guard) and loses nothing. At most [`HOLD_MAX`] records are held; beyond that the
//! task stops reading until some are settled (the topic's lag shows it).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::breaker::CircuitState;
use super::crm_sink::{self, Failed, Mode, SinkShared};
use super::pending;
use super::{Ctx, sleep_or_shutdown};
use crate::bus::{Offsets, OutMessage, Record};
use crate::config::SinkConfig;
use crate::telemetry;
use crate::trace::{self, Step};

pub const RETRY_ATTEMPT: &str = "retry_attempt";
pub const RETRY_AT: &str = "retry_at";
pub const LAST_ERROR: &str = "last_error";

/// Headers this module writes on a parked record; a record parked again gets fresh ones.
const PARKING_HEADERS: &[&str] = &[
    RETRY_ATTEMPT,
    RETRY_AT,
    LAST_ERROR,
    "first_failure",
    "attempts",
    "origin_topic",
    "origin_partition",
    "origin_offset",
    "sink",
];

/// Most parked records held in memory waiting for their time.
pub const HOLD_MAX: usize = 10_000;
/// Most records read, and most due records sent, at once.
const BATCH_MAX: usize = 500;
/// Longest wait for new parked records before looking at the clock again.
const POLL_WAIT: Duration = Duration::from_millis(500);

/// What a record read from the retry topic says about its earlier failures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct History {
    /// Times parked so far.
    pub attempt: u32,
    /// Requests made in earlier passes.
    pub attempts: u32,
    /// When it first failed (RFC 3339).
    pub first_failure: Option<String>,
    origin: (String, i32, i64),
}

impl History {
    /// Where it first failed: topic, partition, offset.
    pub fn origin(&self) -> (String, i32, i64) {
        self.origin.clone()
    }
}

/// The history of `rec` when it was read from the retry topic `retry_topic`; `None` for a
/// record of any other topic. Headers missing or unreadable count as a first parking with
/// no attempts, the record itself as origin.
pub(crate) fn history(rec: &Record, retry_topic: &str) -> Option<History> {
    if rec.topic != retry_topic {
        return None;
    }
    let number = |name: &str| rec.header(name).and_then(|v| v.trim().parse::<u32>().ok());
    let origin = match (
        rec.header("origin_topic").filter(|t| !t.is_empty()),
        rec.header("origin_partition")
            .and_then(|v| v.parse::<i32>().ok()),
        rec.header("origin_offset")
            .and_then(|v| v.parse::<i64>().ok()),
    ) {
        (Some(t), Some(p), Some(o)) => (t.to_string(), p, o),
        _ => (rec.topic.clone(), rec.partition, rec.offset),
    };
    Some(History {
        attempt: number(RETRY_ATTEMPT).unwrap_or(1).max(1),
        attempts: number("attempts").unwrap_or(0),
        first_failure: rec.header("first_failure").map(str::to_string),
        origin,
    })
}

/// When a parked record is due: its `retry_at`, or now when it has none that reads.
fn due_of(rec: &Record, now: DateTime<Utc>) -> DateTime<Utc> {
    rec.header(RETRY_AT)
        .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        .map_or(now, |t| t.with_timezone(&Utc))
}

/// The parked copy of a failed record: original key, payload and headers, and the parking
/// headers.
fn parked_message(
    sink: &str,
    failed: &Failed,
    history: Option<&History>,
    attempt: u32,
    retry_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> OutMessage {
    let rec = &failed.rec;
    let mut headers: Vec<(String, String)> = rec
        .headers
        .iter()
        .filter(|(k, _)| !PARKING_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect();
    let (origin_topic, origin_partition, origin_offset) = match history {
        Some(h) => h.origin(),
        None => (rec.topic.clone(), rec.partition, rec.offset),
    };
    let first_failure = history
        .and_then(|h| h.first_failure.clone())
        .unwrap_or_else(|| now.to_rfc3339());
    let attempts = failed
        .attempts
        .saturating_add(history.map_or(0, |h| h.attempts));
    headers.extend([
        (RETRY_ATTEMPT.to_string(), attempt.to_string()),
        (RETRY_AT.to_string(), retry_at.to_rfc3339()),
        ("first_failure".to_string(), first_failure),
        (LAST_ERROR.to_string(), failed.error.clone()),
        ("attempts".to_string(), attempts.to_string()),
        ("origin_topic".to_string(), origin_topic),
        ("origin_partition".to_string(), origin_partition.to_string()),
        ("origin_offset".to_string(), origin_offset.to_string()),
        ("sink".to_string(), sink.to_string()),
    ]);
    OutMessage {
        key: rec.key.clone(),
        headers,
        payload: rec.payload.clone(),
    }
}

/// The time `delay_secs` after `now` (a delay too large to add ends at `now`; the config
/// bounds delays to a week).
fn after(now: DateTime<Utc>, delay_secs: u64) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(Duration::from_secs(delay_secs))
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

/// Parks each failed record on the sink's retry topic for its next attempt, or, when its
/// last delay is used up, sends it to the dead-letter topic. `history` is `None` for a
/// record that failed for the first time. Returns once the bus acknowledged both.
pub(crate) async fn park(
    ctx: &Ctx,
    sink: &SinkConfig,
    failed: Vec<(Failed, Option<History>)>,
) -> anyhow::Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let delays = &sink.delivery.retry_delays_secs;
    let now = Utc::now();
    let mut parked = Vec::new();
    let mut parked_log = Vec::new();
    let mut dead = Vec::new();
    let mut dead_log = Vec::new();
    for (f, history) in &failed {
        let attempt = history.as_ref().map_or(0, |h| h.attempt).saturating_add(1);
        match delays.get(attempt as usize - 1) {
            Some(&delay) => {
                let retry_at = after(now, delay);
                parked.push(parked_message(
                    &sink.name,
                    f,
                    history.as_ref(),
                    attempt,
                    retry_at,
                    now,
                ));
                parked_log.push((f, attempt, retry_at.to_rfc3339()));
            }
            None => {
                dead.push(crm_sink::dead_letter(
                    &sink.name,
                    &f.rec,
                    &f.error,
                    f.attempts,
                    crm_sink::DISPOSITION_DEAD,
                    history.as_ref(),
                ));
                let total = f
                    .attempts
                    .saturating_add(history.as_ref().map_or(0, |h| h.attempts));
                dead_log.push((f, total));
            }
        }
    }
    if !parked.is_empty() {
        let retry_topic = ctx.config.bus.retry_topic(&sink.name);
        ctx.bus.publish(&retry_topic, parked).await?;
        for (f, attempt, retry_at) in parked_log {
            pending::parked(&sink.name, &f.rec, &retry_topic);
            telemetry::record_parked(&sink.name, &f.rec.key, attempt, &retry_at, &f.error);
            trace::step(Step::Parked, &sink.name, trace::id_of(&f.rec.headers));
        }
    }
    if !dead.is_empty() {
        ctx.bus.publish(&ctx.config.bus.dlq_topic(), dead).await?;
        super::crm_sink::record_dead_lettered(
            ctx,
            &sink.name,
            dead_log.iter().map(|(f, _)| &f.rec),
        )
        .await?;
        for (f, total) in dead_log {
            telemetry::retry_exhausted(&sink.name, &f.rec.key, total);
            telemetry::dead_lettered(&ctx.stats, &sink.name, &f.rec.key, &f.error);
        }
    }
    Ok(())
}

/// The retry task of one sink. See the module documentation.
pub async fn run(
    ctx: Ctx,
    sink: SinkConfig,
    shared: Arc<SinkShared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let target = shared.target(&ctx, &sink).await?;
    let topic = ctx.config.bus.retry_topic(&sink.name);
    let group = format!("{}-sink-{}-retry", ctx.config.bus.topic_prefix, sink.name);
    let mut consumer = ctx.bus.subscribe(&group, &topic).await?;
    tracing::info!(sink = %sink.name, group, topic, "sink retry task started");
    // A record that failed as a probe steps back this long, so the next probe is another's.
    let step_back = Duration::from_secs(sink.delivery.breaker_max_open_secs.max(1));
    let mut waiting = Waiting::default();
    telemetry::retry_waiting(&sink.name, 0);
    pending::retry_started(&sink.name);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        // Sleep until the earliest record is due, but read what gets parked meanwhile.
        let wait = waiting
            .next_due()
            .map_or(POLL_WAIT, |due| {
                (due - Utc::now()).to_std().unwrap_or(Duration::ZERO)
            })
            .min(POLL_WAIT);
        let room = HOLD_MAX.saturating_sub(waiting.len());
        if room > 0 {
            let now = Utc::now();
            for rec in consumer.poll(room.min(BATCH_MAX), wait).await? {
                let due = due_of(&rec, now);
                pending::held(&sink.name, &rec, &topic);
                waiting.hold(rec, due);
            }
        } else if sleep_or_shutdown(wait, &mut shutdown).await {
            return Ok(());
        }
        let due = waiting.take_due(Utc::now(), BATCH_MAX);
        telemetry::retry_waiting(&sink.name, waiting.len());
        if due.is_empty() {
            continue;
        }
        let Some(ticket) = shared.breaker.admit(&mut shutdown).await else {
            // Not committed: read again after restart.
            return Ok(());
        };
        let probe = ticket.is_probe();
        let mode = if probe { Mode::Probe } else { Mode::All };
        let pass = crm_sink::deliver_batch(
            &ctx,
            &sink,
            &shared,
            target,
            &due,
            true,
            mode,
            &mut HashSet::new(),
        )
        .await?;
        ticket.finish(&pass.verdict());
        // A failure the CRM as a whole is blamed for (a probe, refused credentials, a pass
        // that opened the circuit) does not use up the record's attempt.
        let blame_crm =
            probe || pass.auth_rejected || shared.breaker.state() != CircuitState::Closed;
        let now = Utc::now();
        let mut back: Vec<(Record, DateTime<Utc>)> =
            pass.unsent.into_iter().map(|r| (r, now)).collect();
        let mut again = Vec::new();
        for f in pass.transient {
            if blame_crm {
                let due = if probe {
                    after(now, step_back.as_secs())
                } else {
                    now
                };
                back.push((f.rec, due));
            } else {
                let h = history(&f.rec, &topic);
                again.push((f, h));
            }
        }
        park(&ctx, &sink, again).await?;
        let kept: HashSet<(i32, i64)> = back.iter().map(|(r, _)| (r.partition, r.offset)).collect();
        for rec in &due {
            if !kept.contains(&(rec.partition, rec.offset)) {
                waiting.settle(rec.partition, rec.offset);
                pending::released(&sink.name, rec, &topic);
            }
        }
        for (rec, due) in back {
            waiting.hold(rec, due);
        }
        telemetry::retry_waiting(&sink.name, waiting.len());
        // Everything settled is recorded, parked again or dead-lettered: move the offsets.
        let offsets = waiting.positions.to_commit();
        if !offsets.is_empty() {
            consumer.commit(&offsets).await?;
            waiting.positions.committed(&offsets);
        }
    }
}

/// Parked records held until they are due, and the positions they hold back.
#[derive(Debug, Default)]
struct Waiting {
    by_due: BTreeMap<(DateTime<Utc>, i32, i64), Record>,
    positions: Positions,
}

impl Waiting {
    /// Holds `rec` until `due` (again, for a record taken out and put back).
    fn hold(&mut self, rec: Record, due: DateTime<Utc>) {
        self.positions.polled(rec.partition, rec.offset);
        self.by_due.insert((due, rec.partition, rec.offset), rec);
    }

    fn len(&self) -> usize {
        self.by_due.len()
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.by_due.keys().next().map(|(due, _, _)| *due)
    }

    /// Takes out up to `max` records due at `now`, earliest first. They stay unsettled
    /// until [`Waiting::settle`].
    fn take_due(&mut self, now: DateTime<Utc>, max: usize) -> Vec<Record> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.by_due.first_entry() {
                Some(e) if e.key().0 <= now => out.push(e.remove()),
                _ => break,
            }
        }
        out
    }

    fn settle(&mut self, partition: i32, offset: i64) {
        self.positions.settled(partition, offset);
    }
}

/// Per partition: the offsets read but not settled, and the next one to read. The offset
/// to commit is the oldest unsettled one, or the next to read when all are settled.
#[derive(Debug, Default)]
struct Positions {
    parts: BTreeMap<i32, Part>,
}

#[derive(Debug, Default)]
struct Part {
    open: BTreeSet<i64>,
    next: i64,
    committed: Option<i64>,
}

impl Positions {
    fn polled(&mut self, partition: i32, offset: i64) {
        let part = self.parts.entry(partition).or_default();
        part.open.insert(offset);
        part.next = part.next.max(offset.saturating_add(1));
    }

    fn settled(&mut self, partition: i32, offset: i64) {
        if let Some(part) = self.parts.get_mut(&partition) {
            part.open.remove(&offset);
        }
    }

    /// Offsets that moved since the last commit.
    fn to_commit(&self) -> Offsets {
        let mut out = Offsets::new();
        for (p, part) in &self.parts {
            let at = part.open.first().copied().unwrap_or(part.next);
            if part.committed.is_none_or(|c| at > c) {
                out.insert(*p, at);
            }
        }
        out
    }

    fn committed(&mut self, offsets: &Offsets) {
        for (p, o) in offsets {
            if let Some(part) = self.parts.get_mut(p) {
                part.committed = Some(*o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rec(topic: &str, partition: i32, offset: i64, headers: &[(&str, &str)]) -> Record {
        Record {
            topic: topic.into(),
            partition,
            offset,
            key: format!("k{offset}"),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            payload: b"{}".to_vec(),
        }
    }

    fn failed(r: Record, attempts: u32) -> Failed {
        Failed {
            key: ("party".into(), r.key.clone()),
            rec: r,
            error: "crm answered 503".into(),
            attempts,
        }
    }

    fn header<'a>(m: &'a OutMessage, name: &str) -> Option<&'a str> {
        m.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_first_parking_keeps_the_record_and_says_where_it_came_from() {
        let now = Utc::now();
        let r = rec("hub.canonical", 2, 41, &[("id", "e1"), ("source", "abs")]);
        let m = parked_message("crm", &failed(r, 6), None, 1, after(now, 5), now);
        assert_eq!(m.key, "k41");
        assert_eq!(m.payload, b"{}");
        assert_eq!(header(&m, "id"), Some("e1"));
        assert_eq!(header(&m, "source"), Some("abs"));
        assert_eq!(header(&m, RETRY_ATTEMPT), Some("1"));
        assert_eq!(
            header(&m, RETRY_AT),
            Some(after(now, 5).to_rfc3339().as_str())
        );
        assert_eq!(header(&m, "attempts"), Some("6"));
        assert_eq!(header(&m, "origin_topic"), Some("hub.canonical"));
        assert_eq!(header(&m, "origin_partition"), Some("2"));
        assert_eq!(header(&m, "origin_offset"), Some("41"));
        assert_eq!(header(&m, LAST_ERROR), Some("crm answered 503"));
        assert_eq!(header(&m, "first_failure"), Some(now.to_rfc3339().as_str()));
    }

    #[test]
    fn parking_again_carries_the_history_forward_without_duplicate_headers() {
        let now = Utc::now();
        let first = "2026-01-01T00:00:00+00:00";
        let r = rec(
            "hub.retry.crm",
            0,
            7,
            &[
                ("id", "e1"),
                (RETRY_ATTEMPT, "1"),
                (RETRY_AT, first),
                ("first_failure", first),
                ("attempts", "6"),
                ("origin_topic", "hub.canonical"),
                ("origin_partition", "2"),
                ("origin_offset", "41"),
                ("sink", "crm"),
            ],
        );
        let h = history(&r, "hub.retry.crm").unwrap();
        assert_eq!(h.attempt, 1);
        assert_eq!(h.attempts, 6);
        assert_eq!(h.origin(), ("hub.canonical".into(), 2, 41));
        assert!(history(&r, "hub.retry.other").is_none());
        let m = parked_message("crm", &failed(r, 6), Some(&h), 2, after(now, 30), now);
        assert_eq!(header(&m, RETRY_ATTEMPT), Some("2"));
        assert_eq!(header(&m, "attempts"), Some("12"));
        assert_eq!(header(&m, "first_failure"), Some(first));
        assert_eq!(header(&m, "origin_offset"), Some("41"));
        for name in PARKING_HEADERS {
            let n = m.headers.iter().filter(|(k, _)| k == name).count();
            assert_eq!(n, 1, "{name} appears {n} times");
        }
    }

    #[test]
    fn unreadable_parking_headers_mean_due_now_first_attempt() {
        let now = Utc::now();
        let r = rec(
            "hub.retry.crm",
            1,
            3,
            &[(RETRY_AT, "tomorrow"), (RETRY_ATTEMPT, "x")],
        );
        assert_eq!(due_of(&r, now), now);
        let h = history(&r, "hub.retry.crm").unwrap();
        assert_eq!(h.attempt, 1);
        assert_eq!(h.origin(), ("hub.retry.crm".into(), 1, 3));
    }

    #[test]
    fn due_records_come_out_earliest_first_and_only_when_due() {
        let now = Utc::now();
        let mut w = Waiting::default();
        w.hold(rec("t", 0, 0, &[]), after(now, 30));
        w.hold(rec("t", 0, 1, &[]), after(now, 5));
        w.hold(rec("t", 1, 0, &[]), now);
        assert_eq!(w.next_due(), Some(now));
        let due = w.take_due(now, 10);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].partition, due[0].offset), (1, 0));
        let due = w.take_due(after(now, 40), 1);
        assert_eq!((due[0].partition, due[0].offset), (0, 1));
        assert_eq!(w.len(), 1);
    }

    proptest! {
        /// Against a model: the committed offset of a partition never passes a record that
        /// is not settled, never goes back, and reaches the end once all are settled.
        #[test]
        fn commits_never_pass_an_unsettled_record(
            steps in proptest::collection::vec((0i32..3, any::<bool>(), 0usize..8), 1..120),
        ) {
            let mut p = Positions::default();
            let mut next = [0i64; 3];
            let mut open: [Vec<i64>; 3] = Default::default();
            let mut last_commit = [None::<i64>; 3];
            for (part, read, pick) in steps {
                let i = part as usize;
                if read || open[i].is_empty() {
                    p.polled(part, next[i]);
                    open[i].push(next[i]);
                    next[i] += 1;
                } else {
                    let offset = open[i].remove(pick % open[i].len());
                    p.settled(part, offset);
                }
                let offsets = p.to_commit();
                for (q, at) in &offsets {
                    let j = *q as usize;
                    if let Some(oldest) = open[j].iter().min() {
                        prop_assert!(at <= oldest, "commit {} passes unsettled {}", at, oldest);
                    } else {
                        prop_assert_eq!(*at, next[j]);
                    }
                    prop_assert!(last_commit[j].is_none_or(|c| *at > c));
                    last_commit[j] = Some(*at);
                }
                p.committed(&offsets);
            }
            for (i, offsets) in open.iter_mut().enumerate() {
                for o in std::mem::take(offsets) {
                    p.settled(i as i32, o);
                }
            }
            let offsets = p.to_commit();
            p.committed(&offsets);
            for i in 0..3 {
                if next[i] > 0 {
                    let at = offsets.get(&(i as i32)).copied().or(last_commit[i]);
                    prop_assert_eq!(at, Some(next[i]));
                }
            }
        }
    }
}
