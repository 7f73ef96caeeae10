//! Progress of a backfill on stderr: an in-place line redrawn a few times a second when
//! stderr is a terminal, a plain line every few seconds otherwise (logs, CI). Counts only:
//! no key or value of a record is ever shown.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often the terminal line is redrawn.
const DRAW_EVERY: Duration = Duration::from_millis(200);
/// How often a log line is written when stderr is not a terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// The counters of a run and where they are shown.
pub struct Progress {
    /// The command the line belongs to: `backfill` or `reconcile`.
    command: &'static str,
    /// What the third counter counts: `published`, `looked up` or `listed`.
    done_label: &'static str,
    pub read: u64,
    pub selected: u64,
    pub done: u64,
    /// How many `done` will reach, once known (a dry run knows it after reading).
    pub total: Option<u64>,
    started: Instant,
    last: Instant,
    terminal: bool,
    drawn: bool,
}

impl Progress {
    pub fn new(done_label: &'static str) -> Progress {
        Progress::of_command("backfill", done_label)
    }

    /// The progress of another command (`reconcile`), on the same terms.
    pub fn of_command(command: &'static str, done_label: &'static str) -> Progress {
        let now = Instant::now();
        Progress {
            command,
            done_label,
            read: 0,
            selected: 0,
            done: 0,
            total: None,
            started: now,
            last: now,
            terminal: std::io::stderr().is_terminal(),
            drawn: false,
        }
    }

    /// Shows the counters if it is time to.
    pub fn tick(&mut self) {
        let every = if self.terminal { DRAW_EVERY } else { LOG_EVERY };
        if self.last.elapsed() >= every {
            self.show();
        }
    }

    /// Shows the counters a last time and ends the terminal line.
    pub fn finish(&mut self) {
        self.show();
        if self.terminal {
            eprintln!();
        }
    }

    fn show(&mut self) {
        self.last = Instant::now();
        let line = self.line(self.started.elapsed());
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            // \r and erase-to-end-of-line: the line is redrawn in place.
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
        self.drawn = true;
    }

    /// `backfill: read 12,000  selected 1,200  published 1,000  (830/s, ETA 0:12)`.
    pub fn line(&self, elapsed: Duration) -> String {
        let secs = elapsed.as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs;
        let read_rate = self.read as f64 / secs;
        let mut line = format!(
            "{}: read {}  selected {}  {} {}",
            self.command,
            thousands(self.read),
            thousands(self.selected),
            self.done_label,
            thousands(self.done)
        );
        match self.total {
            Some(total) if rate > 0.0 => {
                let left = total.saturating_sub(self.done) as f64 / rate;
                line.push_str(&format!(
                    " of {}  ({:.0}/s, ETA {})",
                    thousands(total),
                    rate,
                    clock(left)
                ));
            }
            Some(total) => line.push_str(&format!(" of {}", thousands(total))),
            None => line.push_str(&format!(
                "  ({read_rate:.0} read/s, {rate:.0} {}/s)",
                self.done_label
            )),
        }
        line
    }
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Seconds as `m:ss` or `h:mm:ss`.
fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_a_total() {
        let mut p = Progress::new("published");
        p.read = 12_000;
        p.selected = 1_200;
        p.done = 1_000;
        assert_eq!(
            p.line(Duration::from_secs(2)),
            "backfill: read 12,000  selected 1,200  published 1,000  (6000 read/s, 500 published/s)"
        );
        p.total = Some(7_000);
        assert_eq!(
            p.line(Duration::from_secs(2)),
            "backfill: read 12,000  selected 1,200  published 1,000 of 7,000  (500/s, ETA 0:12)"
        );
        assert_eq!(clock(3_725.0), "1:02:05");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
