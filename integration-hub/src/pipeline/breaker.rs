//! The circuit breaker of one CRM sink: when the CRM as a whole fails, the sink stops sending
//! instead of hammering it, and finds out with a single request when it is back.
//!
//! States (the `hub_sink_circuit_state` gauge: 0, 1, 2):
//! - **Closed**: passes go out as usual. Each pass reports a [`Verdict`]. After
//!   `failures_to_open` consecutive passes that acknowledged nothing and failed transiently,
//!   *provided those failures involved at least two different keys* (or the credentials were
//!   refused), the circuit opens. One key failing again and again is that record's trouble,
//!   not the CRM's: it is parked on the retry topic and must not stop the others.
//! - **Open** for `open_for`: nothing is sent.
//! - **HalfOpen**: exactly one probe is admitted (the sink sends one record with one
//!   request). An acknowledgement closes the circuit; a transient failure opens it again for
//!   twice as long (capped at `max_open_for`); an inconclusive probe (nothing sent, or the
//!   record refused for good) lets the next probe through. A probe whose task went away
//!   without a verdict frees the slot.
//!
//! The circuit closes only on an acknowledgement. [`Breaker`] is the pure state machine (the
//! clock is passed in) and is property-tested below; [`SharedBreaker`] shares one between
//! the sink task and its retry task, publishes its state on a watch channel and in metrics.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::telemetry;

/// The state as exported: closed 0, half-open 1, open 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    /// The value of the `hub_sink_circuit_state` gauge.
    pub fn gauge(self) -> f64 {
        match self {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half_open",
            CircuitState::Open => "open",
        }
    }
}

/// When to open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failed passes that open the circuit (at least 1).
    pub failures_to_open: u32,
    /// How long the circuit first stays open.
    pub open_for: Duration,
    /// The longest it stays open after repeated failed probes.
    pub max_open_for: Duration,
}

impl BreakerPolicy {
    /// The policy with its values made usable: at least one failure, a non-zero open time,
    /// a maximum not below it.
    fn normalised(self) -> BreakerPolicy {
        let open_for = self.open_for.max(Duration::from_millis(1));
        BreakerPolicy {
            failures_to_open: self.failures_to_open.max(1),
            open_for,
            max_open_for: self.max_open_for.max(open_for),
        }
    }
}

/// What a pass (or a probe) showed about the CRM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The CRM acknowledged at least one write.
    Acknowledged,
    /// Nothing was acknowledged and writes failed transiently. `keys` are hashes of the
    /// failing records' keys ([`key_hash`]); `crm_wide` says the failure concerns every
    /// record whatever the keys (the credentials were refused).
    Failed { keys: Vec<u64>, crm_wide: bool },
    /// Nothing was sent, or what was sent was refused for good: says nothing either way.
    Inconclusive,
}

/// A stable hash of a record key, for [`Verdict::Failed`].
pub fn key_hash(key: &impl Hash) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// What a task may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Send the pass as usual (closed).
    Pass,
    /// Send one record with one request, and report it with [`Breaker::probe_done`] and
    /// this `epoch` (which half-open period it belongs to).
    Probe { epoch: u64 },
    /// Send nothing before this instant (open).
    WaitUntil(Instant),
    /// Another task's probe is out: wait for its verdict.
    WaitForProbe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failed_passes: u32,
        /// The first failing key of the current run of failed passes …
        first_key: Option<u64>,
        /// … and whether a second one (or a CRM-wide failure) was seen in the run.
        several: bool,
    },
    Open {
        until: Instant,
        open_for: Duration,
    },
    HalfOpen {
        /// The open time the last opening had; a failed probe doubles it.
        open_for: Duration,
        /// Which half-open period this is: a probe of an earlier one reports as a pass.
        epoch: u64,
        probe_out: bool,
    },
}

const CLOSED: State = State::Closed {
    failed_passes: 0,
    first_key: None,
    several: false,
};

/// The pure state machine.
#[derive(Debug, Clone)]
pub struct Breaker {
    policy: BreakerPolicy,
    state: State,
    /// Half-open periods so far.
    epochs: u64,
}

impl Breaker {
    pub fn new(policy: BreakerPolicy) -> Breaker {
        Breaker {
            policy: policy.normalised(),
            state: CLOSED,
            epochs: 0,
        }
    }

    pub fn state(&self) -> CircuitState {
        match self.state {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// How long the circuit stays open this time, when it is open.
    pub fn open_for(&self) -> Option<Duration> {
        match self.state {
            State::Open { open_for, .. } => Some(open_for),
            _ => None,
        }
    }

    /// What a task wanting to send may do at `now`; the new state if this changed it.
    pub fn admit(&mut self, now: Instant) -> (Admission, Option<CircuitState>) {
        match self.state {
            State::Closed { .. } => (Admission::Pass, None),
            State::Open { until, .. } if now < until => (Admission::WaitUntil(until), None),
            State::Open { open_for, .. } => {
                self.epochs += 1;
                let epoch = self.epochs;
                self.state = State::HalfOpen {
                    open_for,
                    epoch,
                    probe_out: true,
                };
                (Admission::Probe { epoch }, Some(CircuitState::HalfOpen))
            }
            State::HalfOpen {
                probe_out: true, ..
            } => (Admission::WaitForProbe, None),
            State::HalfOpen {
                open_for, epoch, ..
            } => {
                self.state = State::HalfOpen {
                    open_for,
                    epoch,
                    probe_out: true,
                };
                (Admission::Probe { epoch }, None)
            }
        }
    }

    /// The verdict of a pass admitted with [`Admission::Pass`]; the new state if it changed.
    /// A pass admitted before the circuit opened may report late: its acknowledgement still
    /// closes the circuit (the CRM answered), its failure changes nothing.
    pub fn pass_done(&mut self, now: Instant, verdict: &Verdict) -> Option<CircuitState> {
        match (self.state, verdict) {
            (State::Closed { .. }, Verdict::Acknowledged) => {
                self.state = CLOSED;
                None
            }
            (_, Verdict::Acknowledged) => self.close(),
            (
                State::Closed {
                    failed_passes,
                    first_key,
                    several,
                },
                Verdict::Failed { keys, crm_wide },
            ) => {
                let first_key = first_key.or_else(|| keys.first().copied());
                let several = several || *crm_wide || keys.iter().any(|k| Some(*k) != first_key);
                let failed_passes = failed_passes.saturating_add(1);
                if failed_passes >= self.policy.failures_to_open && several {
                    self.open(now, self.policy.open_for)
                } else {
                    self.state = State::Closed {
                        failed_passes,
                        first_key,
                        several,
                    };
                    None
                }
            }
            (_, Verdict::Failed { .. }) | (_, Verdict::Inconclusive) => None,
        }
    }

    /// The verdict of the probe admitted with `Admission::Probe { epoch }`; the new state if
    /// it changed.
    pub fn probe_done(
        &mut self,
        now: Instant,
        epoch: u64,
        verdict: &Verdict,
    ) -> Option<CircuitState> {
        let open_for = match self.state {
            State::HalfOpen {
                open_for,
                epoch: current,
                ..
            } if current == epoch => open_for,
            // The circuit moved on meanwhile (another task's pass closed it): a plain pass.
            _ => return self.pass_done(now, verdict),
        };
        match verdict {
            Verdict::Acknowledged => self.close(),
            Verdict::Failed { .. } => {
                let next = open_for.saturating_mul(2).min(self.policy.max_open_for);
                self.open(now, next)
            }
            Verdict::Inconclusive => {
                self.state = State::HalfOpen {
                    open_for,
                    epoch,
                    probe_out: false,
                };
                None
            }
        }
    }

    /// The probe of `epoch` went away without a verdict (shutdown, an error): free the slot.
    pub fn probe_abandoned(&mut self, epoch: u64) {
        if let State::HalfOpen {
            open_for,
            epoch: current,
            ..
        } = self.state
            && current == epoch
        {
            self.state = State::HalfOpen {
                open_for,
                epoch,
                probe_out: false,
            };
        }
    }

    fn open(&mut self, now: Instant, open_for: Duration) -> Option<CircuitState> {
        let until = now.checked_add(open_for).unwrap_or(now);
        self.state = State::Open { until, open_for };
        Some(CircuitState::Open)
    }

    fn close(&mut self) -> Option<CircuitState> {
        self.state = CLOSED;
        Some(CircuitState::Closed)
    }
}

/// One breaker shared by a sink's tasks. Its state is published on a watch channel, so a
/// task waiting for a probe's verdict wakes when it comes.
pub struct SharedBreaker {
    sink: String,
    inner: Mutex<Breaker>,
    state: watch::Sender<CircuitState>,
}

impl SharedBreaker {
    pub fn new(sink: &str, policy: BreakerPolicy) -> Arc<SharedBreaker> {
        telemetry::circuit_state(sink, CircuitState::Closed.gauge());
        Arc::new(SharedBreaker {
            sink: sink.to_string(),
            inner: Mutex::new(Breaker::new(policy)),
            state: watch::Sender::new(CircuitState::Closed),
        })
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        *self.state.borrow()
    }

    fn lock(&self) -> MutexGuard<'_, Breaker> {
        // The machine is a few plain fields; a panic elsewhere cannot leave it torn.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until the breaker lets this task send; `None` when shutdown came first.
    pub async fn admit(self: &Arc<Self>, shutdown: &mut watch::Receiver<bool>) -> Option<Ticket> {
        loop {
            if *shutdown.borrow() {
                return None;
            }
            // Subscribed under the lock, so a change made after this decision wakes us.
            let (admission, mut changes) = {
                let mut breaker = self.lock();
                let (admission, change) = breaker.admit(Instant::now());
                let changes = self.state.subscribe();
                self.publish(change, &breaker);
                (admission, changes)
            };
            let until = match admission {
                Admission::Pass => return Some(self.ticket(None)),
                Admission::Probe { epoch } => return Some(self.ticket(Some(epoch))),
                Admission::WaitUntil(until) => tokio::time::Instant::from_std(until),
                // The probe's verdict wakes us; the bound only guards against a lost wake-up.
                Admission::WaitForProbe => tokio::time::Instant::now() + Duration::from_secs(1),
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = changes.changed() => {}
                r = shutdown.changed() => if r.is_err() || *shutdown.borrow() {
                    return None;
                },
            }
        }
    }

    fn ticket(self: &Arc<Self>, probe: Option<u64>) -> Ticket {
        Ticket {
            breaker: Some(self.clone()),
            probe,
        }
    }

    fn publish(&self, change: Option<CircuitState>, breaker: &Breaker) {
        let Some(to) = change else { return };
        telemetry::circuit_changed(
            &self.sink,
            to.as_str(),
            to.gauge(),
            breaker.open_for().map(|d| d.as_secs_f64()),
        );
        self.state.send_replace(to);
    }

    fn finish(&self, probe: Option<u64>, verdict: &Verdict) {
        let mut breaker = self.lock();
        let now = Instant::now();
        let change = match probe {
            Some(epoch) => breaker.probe_done(now, epoch, verdict),
            None => breaker.pass_done(now, verdict),
        };
        self.publish(change, &breaker);
        if probe.is_some() && change.is_none() {
            // The slot is free again (inconclusive probe): wake whoever waits for it.
            self.state.send_modify(|_| {});
        }
    }

    fn abandon(&self, epoch: u64) {
        self.lock().probe_abandoned(epoch);
        self.state.send_modify(|_| {});
    }
}

/// Leave to send one pass or one probe; report what it showed with [`Ticket::finish`].
/// Dropped without a verdict, a probe's slot is freed.
pub struct Ticket {
    breaker: Option<Arc<SharedBreaker>>,
    probe: Option<u64>,
}

impl Ticket {
    /// Whether only one record, with one request, may be sent.
    pub fn is_probe(&self) -> bool {
        self.probe.is_some()
    }

    pub fn finish(mut self, verdict: &Verdict) {
        if let Some(b) = self.breaker.take() {
            b.finish(self.probe, verdict);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let (Some(b), Some(epoch)) = (self.breaker.take(), self.probe) {
            b.abandon(epoch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SEC: Duration = Duration::from_secs(1);

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            failures_to_open: 3,
            open_for: SEC,
            max_open_for: 5 * SEC,
        }
    }

    fn failed(keys: &[u64]) -> Verdict {
        Verdict::Failed {
            keys: keys.to_vec(),
            crm_wide: false,
        }
    }

    fn probe_epoch(a: Admission) -> u64 {
        match a {
            Admission::Probe { epoch } => epoch,
            other => panic!("expected a probe, got {other:?}"),
        }
    }

    #[test]
    fn opens_after_consecutive_failed_passes_then_probes_once_and_closes() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        assert_eq!(b.pass_done(t0, &failed(&[1, 2])), None);
        assert_eq!(b.pass_done(t0, &failed(&[3])), None);
        assert_eq!(b.pass_done(t0, &failed(&[4])), Some(CircuitState::Open));
        assert_eq!(b.admit(t0), (Admission::WaitUntil(t0 + SEC), None));
        let t1 = t0 + SEC;
        let (admission, change) = b.admit(t1);
        assert_eq!(change, Some(CircuitState::HalfOpen));
        let epoch = probe_epoch(admission);
        assert_eq!(b.admit(t1).0, Admission::WaitForProbe);
        assert_eq!(
            b.probe_done(t1, epoch, &Verdict::Acknowledged),
            Some(CircuitState::Closed)
        );
        assert_eq!(b.admit(t1).0, Admission::Pass);
    }

    #[test]
    fn an_acknowledgement_resets_the_count() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        b.pass_done(t0, &failed(&[1, 2]));
        b.pass_done(t0, &failed(&[1, 2]));
        b.pass_done(t0, &Verdict::Acknowledged);
        b.pass_done(t0, &failed(&[1, 2]));
        b.pass_done(t0, &failed(&[1, 2]));
        assert_eq!(b.state(), CircuitState::Closed);
        b.pass_done(t0, &failed(&[1, 2]));
        assert_eq!(b.state(), CircuitState::Open);
    }

    #[test]
    fn one_key_failing_again_and_again_never_opens_it() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..20 {
            assert_eq!(b.pass_done(t0, &failed(&[7])), None);
        }
        assert_eq!(b.state(), CircuitState::Closed);
        // A second key in the same run of failures: the CRM as a whole is suspect.
        assert_eq!(b.pass_done(t0, &failed(&[8])), Some(CircuitState::Open));
    }

    #[test]
    fn refused_credentials_open_it_whatever_the_keys() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        let auth = Verdict::Failed {
            keys: vec![7],
            crm_wide: true,
        };
        b.pass_done(t0, &auth);
        b.pass_done(t0, &auth);
        assert_eq!(b.pass_done(t0, &auth), Some(CircuitState::Open));
    }

    #[test]
    fn failed_probes_double_the_open_time_up_to_the_maximum() {
        let mut now = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..3 {
            b.pass_done(now, &failed(&[1, 2]));
        }
        let mut seen = vec![b.open_for().unwrap()];
        for _ in 0..5 {
            now += b.open_for().unwrap();
            let epoch = probe_epoch(b.admit(now).0);
            assert_eq!(
                b.probe_done(now, epoch, &failed(&[1])),
                Some(CircuitState::Open)
            );
            seen.push(b.open_for().unwrap());
        }
        assert_eq!(seen, [1, 2, 4, 5, 5, 5].map(|s| s * SEC));
    }

    #[test]
    fn an_abandoned_or_inconclusive_probe_frees_the_slot() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..3 {
            b.pass_done(t0, &failed(&[1, 2]));
        }
        let t1 = t0 + SEC;
        let epoch = probe_epoch(b.admit(t1).0);
        b.probe_abandoned(epoch);
        let epoch = probe_epoch(b.admit(t1).0);
        assert_eq!(b.probe_done(t1, epoch, &Verdict::Inconclusive), None);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        probe_epoch(b.admit(t1).0);
    }

    #[test]
    fn a_probe_of_an_earlier_half_open_period_reports_as_a_pass() {
        let t0 = Instant::now();
        let mut b = Breaker::new(policy());
        for _ in 0..3 {
            b.pass_done(t0, &failed(&[1, 2]));
        }
        let t1 = t0 + SEC;
        let old = probe_epoch(b.admit(t1).0);
        // A pass admitted before the circuit opened reports an acknowledgement: closed.
        assert_eq!(
            b.pass_done(t1, &Verdict::Acknowledged),
            Some(CircuitState::Closed)
        );
        for _ in 0..3 {
            b.pass_done(t1, &failed(&[1, 2]));
        }
        let t2 = t1 + SEC;
        let new = probe_epoch(b.admit(t2).0);
        assert_ne!(old, new);
        // The old probe's failure does not count as the new probe's: no second probe, no
        // longer open time.
        assert_eq!(b.probe_done(t2, old, &failed(&[1])), None);
        assert_eq!(b.admit(t2).0, Admission::WaitForProbe);
        b.probe_abandoned(old);
        assert_eq!(b.admit(t2).0, Admission::WaitForProbe);
    }

    #[tokio::test]
    async fn shared_breaker_wakes_a_waiter_when_the_probe_reports() {
        let b = SharedBreaker::new(
            "test",
            BreakerPolicy {
                failures_to_open: 1,
                open_for: Duration::from_millis(20),
                max_open_for: Duration::from_millis(20),
            },
        );
        let (_tx, mut rx) = watch::channel(false);
        b.admit(&mut rx).await.unwrap().finish(&failed(&[1, 2]));
        assert_eq!(b.state(), CircuitState::Open);
        let probe = b.admit(&mut rx).await.unwrap();
        assert!(probe.is_probe());
        let waiter = {
            let b = b.clone();
            let mut rx = rx.clone();
            tokio::spawn(async move { b.admit(&mut rx).await.map(|t| t.is_probe()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "a second request went out while half-open"
        );
        probe.finish(&Verdict::Acknowledged);
        let started = std::time::Instant::now();
        assert_eq!(waiter.await.unwrap(), Some(false));
        assert!(started.elapsed() < Duration::from_millis(500));
        assert_eq!(b.state(), CircuitState::Closed);
    }

    #[tokio::test]
    async fn a_dropped_probe_ticket_lets_the_next_probe_out() {
        let b = SharedBreaker::new(
            "test",
            BreakerPolicy {
                failures_to_open: 1,
                open_for: Duration::from_millis(1),
                max_open_for: Duration::from_millis(1),
            },
        );
        let (_tx, mut rx) = watch::channel(false);
        b.admit(&mut rx).await.unwrap().finish(&failed(&[1, 2]));
        let probe = b.admit(&mut rx).await.unwrap();
        assert!(probe.is_probe());
        drop(probe);
        assert!(b.admit(&mut rx).await.unwrap().is_probe());
    }

    #[tokio::test]
    async fn shutdown_ends_the_wait() {
        let b = SharedBreaker::new(
            "test",
            BreakerPolicy {
                failures_to_open: 1,
                open_for: Duration::from_secs(3600),
                max_open_for: Duration::from_secs(3600),
            },
        );
        let (tx, mut rx) = watch::channel(false);
        b.admit(&mut rx).await.unwrap().finish(&failed(&[1, 2]));
        let waiter = tokio::spawn(async move { b.admit(&mut rx).await.is_none() });
        tx.send_replace(true);
        assert!(waiter.await.unwrap());
    }

    /// One step of tasks sharing a breaker, as a sink and its retry task do.
    #[derive(Debug, Clone)]
    enum Op {
        /// Time passes, then a task asks to send.
        Admit { after_ms: u64 },
        /// The oldest outstanding pass reports.
        PassDone(Outcome),
        /// The oldest outstanding probe reports.
        ProbeDone(Outcome),
        /// The oldest outstanding probe's task goes away.
        Abandon,
    }

    #[derive(Debug, Clone, Copy)]
    enum Outcome {
        Ack,
        Fail { key: u64, second_key: bool },
        Auth,
        Nothing,
    }

    fn verdict(o: Outcome) -> Verdict {
        match o {
            Outcome::Ack => Verdict::Acknowledged,
            Outcome::Fail { key, second_key } => Verdict::Failed {
                keys: if second_key {
                    vec![key, key + 1]
                } else {
                    vec![key]
                },
                crm_wide: false,
            },
            Outcome::Auth => Verdict::Failed {
                keys: vec![0],
                crm_wide: true,
            },
            Outcome::Nothing => Verdict::Inconclusive,
        }
    }

    fn outcome() -> impl Strategy<Value = Outcome> {
        prop_oneof![
            3 => Just(Outcome::Ack),
            4 => (0u64..3, any::<bool>())
                .prop_map(|(key, second_key)| Outcome::Fail { key, second_key }),
            1 => Just(Outcome::Auth),
            1 => Just(Outcome::Nothing),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..3000).prop_map(|after_ms| Op::Admit { after_ms }),
            3 => outcome().prop_map(Op::PassDone),
            3 => outcome().prop_map(Op::ProbeDone),
            1 => Just(Op::Abandon),
        ]
    }

    /// The rules, written plainly: what the breaker should be after each step.
    #[derive(Debug, Default)]
    struct Model {
        /// Consecutive failed passes while closed, and what they involved.
        run: u32,
        run_keys: std::collections::BTreeSet<u64>,
        run_wide: bool,
        /// Open: since when and for how long (kept through half-open for the doubling).
        opened: Option<(Instant, Duration)>,
        half_open: Option<u64>,
    }

    const MAX_OPEN: Duration = Duration::from_secs(8);

    impl Model {
        fn closed(&self) -> bool {
            self.opened.is_none()
        }

        fn pass(&mut self, now: Instant, v: &Verdict) {
            match v {
                Verdict::Acknowledged => *self = Model::default(),
                Verdict::Failed { keys, crm_wide } if self.closed() => {
                    self.run += 1;
                    self.run_keys.extend(keys.iter().copied());
                    self.run_wide |= crm_wide;
                    if self.run >= 3 && (self.run_keys.len() >= 2 || self.run_wide) {
                        *self = Model {
                            opened: Some((now, SEC)),
                            ..Model::default()
                        };
                    }
                }
                _ => {}
            }
        }

        fn probe(&mut self, now: Instant, epoch: u64, v: &Verdict) {
            if self.half_open != Some(epoch) {
                return self.pass(now, v);
            }
            match v {
                Verdict::Acknowledged => *self = Model::default(),
                Verdict::Failed { .. } => {
                    let (_, d) = self.opened.unwrap_or((now, SEC));
                    self.opened = Some((now, (d * 2).min(MAX_OPEN)));
                    self.half_open = None;
                }
                Verdict::Inconclusive => {}
            }
        }
    }

    proptest! {
        /// Against the model: never two probes of one half-open period out at once, nothing
        /// admitted while open, a probe only once the open time passed, closed only by an
        /// acknowledgement, opened only by enough failed passes over several keys (or a failed
        /// probe), open times doubling within bounds.
        #[test]
        fn the_breaker_keeps_its_promises(ops in proptest::collection::vec(op(), 1..200)) {
            let mut b = Breaker::new(BreakerPolicy {
                failures_to_open: 3,
                open_for: SEC,
                max_open_for: MAX_OPEN,
            });
            let mut now = Instant::now();
            let mut model = Model::default();
            let mut passes_out = 0u32;
            let mut probes_out: Vec<u64> = Vec::new();
            for op in ops {
                let before = b.state();
                let change = match op {
                    Op::Admit { after_ms } => {
                        now += Duration::from_millis(after_ms);
                        let (admission, change) = b.admit(now);
                        match admission {
                            Admission::Pass => {
                                prop_assert!(model.closed());
                                passes_out += 1;
                            }
                            Admission::Probe { epoch } => {
                                let (at, d) = model.opened.expect("a probe while closed");
                                prop_assert!(now >= at + d, "a probe before the open time passed");
                                prop_assert!(
                                    !probes_out.contains(&epoch),
                                    "two probes of one half-open period"
                                );
                                prop_assert!(model.half_open.is_none_or(|e| e == epoch));
                                model.half_open = Some(epoch);
                                probes_out.push(epoch);
                            }
                            Admission::WaitUntil(until) => {
                                let (at, d) = model.opened.expect("waiting while closed");
                                prop_assert!(model.half_open.is_none());
                                prop_assert_eq!(until, at + d);
                                prop_assert!(now < until);
                            }
                            Admission::WaitForProbe => {
                                let epoch = model.half_open.expect("no half-open period");
                                prop_assert!(probes_out.contains(&epoch));
                            }
                        }
                        change
                    }
                    Op::PassDone(o) => {
                        if passes_out == 0 {
                            continue;
                        }
                        passes_out -= 1;
                        let v = verdict(o);
                        model.pass(now, &v);
                        b.pass_done(now, &v)
                    }
                    Op::ProbeDone(o) => {
                        if probes_out.is_empty() {
                            continue;
                        }
                        let epoch = probes_out.remove(0);
                        let v = verdict(o);
                        model.probe(now, epoch, &v);
                        b.probe_done(now, epoch, &v)
                    }
                    Op::Abandon => {
                        if probes_out.is_empty() {
                            continue;
                        }
                        let epoch = probes_out.remove(0);
                        b.probe_abandoned(epoch);
                        continue;
                    }
                };
                let expected = match (&model.opened, model.half_open) {
                    (None, _) => CircuitState::Closed,
                    (Some(_), Some(_)) => CircuitState::HalfOpen,
                    (Some(_), None) => CircuitState::Open,
                };
                prop_assert_eq!(b.state(), expected, "after {:?}", op);
                if let Some((_, d)) = model.opened
                    && model.half_open.is_none()
                {
                    prop_assert_eq!(b.open_for(), Some(d));
                }
                match change {
                    Some(to) => {
                        prop_assert_eq!(to, b.state());
                        prop_assert_ne!(to, before);
                    }
                    None => prop_assert_eq!(before, b.state()),
                }
                if change == Some(CircuitState::Closed) {
                    let acked = matches!(op, Op::PassDone(Outcome::Ack) | Op::ProbeDone(Outcome::Ack));
                    prop_assert!(acked, "closed without an acknowledgement: {:?}", op);
                }
            }
        }
    }
}
