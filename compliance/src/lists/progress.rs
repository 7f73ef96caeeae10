//! Load progress reported to the caller (the hub turns it into a progress bar or log lines).

/// The callback is called at least this often (in entries) and once when a load ends.
pub const PROGRESS_EVERY: u64 = 1_000;

/// Where a load is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Entries read so far (loaded or skipped).
    pub entries_done: u64,
    /// Bytes of the source files read so far.
    pub bytes_done: u64,
    /// Total size of the source files.
    pub bytes_total: u64,
}

/// Calls the callback every [`PROGRESS_EVERY`] entries.
pub(crate) struct Reporter<'a> {
    callback: &'a mut dyn FnMut(Progress),
    state: Progress,
    next_at: u64,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(callback: &'a mut dyn FnMut(Progress), bytes_total: u64) -> Self {
        Reporter {
            callback,
            state: Progress {
                entries_done: 0,
                bytes_done: 0,
                bytes_total,
            },
            next_at: PROGRESS_EVERY,
        }
    }

    /// One more entry read; `bytes_done` is the position in the source files.
    pub(crate) fn entry(&mut self, bytes_done: u64) {
        self.state.entries_done += 1;
        self.state.bytes_done = bytes_done.min(self.state.bytes_total);
        if self.state.entries_done >= self.next_at {
            self.next_at += PROGRESS_EVERY;
            (self.callback)(self.state);
        }
    }

    /// The load ended: everything was read.
    pub(crate) fn finish(&mut self) {
        self.state.bytes_done = self.state.bytes_total;
        (self.callback)(self.state);
    }
}
