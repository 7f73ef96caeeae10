//! The webhook source adapter: what the hub checks before it accepts an event a core
//! system pushes to `POST /webhooks/{source}`.
//!
//! - [`verify`]: HMAC-SHA256 over `"<timestamp>.<body>"` (header `sha256=<hex>`), compared
//!   in constant time; the signing time must be within `tolerance_secs` of the hub's clock;
//!   the body is one event or `{"events": [...]}`; each event has an id (a field, or the
//!   delivery's id header) that the runtime remembers ([`SeenIds`]) so a repeat is answered
//!   as a duplicate without publishing again.
//! - [`config`]: the `[sources.webhook]` table.
//!
//! Contract: the runtime answers `2xx` only after the bus acknowledged the delivery's events
//! and their ids were recorded; `401` for a bad signature ("signature mismatch", no more)
//! or a stale one ("stale"); `413` for a body over `max_body_bytes`; `503` with
//! `Retry-After` when the bus does not acknowledge in time — the sender retries, and the
//! retry's events carry the same deterministic envelope ids.

pub mod config;
pub mod verify;

#[cfg(test)]
mod tests;

pub use config::{EventIdSource, WebhookConfig};
pub use verify::{SeenIds, Verifier, VerifyError, event_ids, sign, split_events};
