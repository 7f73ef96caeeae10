//! 115-FZ transaction monitoring: pure rules over canonical transactions.
//!
//! - [`config`]: [`MonitoringConfig`], every rule's parameters with documented defaults;
//! - [`Monitor`]: the engine, fed one [`Transaction`](mapping::Transaction) at a time with a
//!   [`TxContext`] (party profile, counterparty country), returning an [`Evaluation`];
//! - [`MonitorState`]: the per-account windows, serialisable for the caller to persist.
//!
//! Rules: mandatory control (one operation at or above the threshold), structuring (several
//! just below it), velocity (many operations or a large total), high-risk geography, transit
//! (money in and out again), profile mismatch. See `docs/monitoring-115fz.md` for the rules,
//! defaults and legal sources. No IO, no clock: time is the operations' booking time.

mod alert;
pub mod config;
mod engine;
mod money;
mod profile;
mod rules;
mod window;

#[cfg(test)]
mod tests;

pub use alert::{Alert, Evaluation, Money, RuleId, Skipped};
pub use config::{ConfigError, MonitoringConfig};
pub use engine::Monitor;
pub use profile::{PartyProfile, TxContext};
pub use window::{MonitorState, STATE_FORMAT};
