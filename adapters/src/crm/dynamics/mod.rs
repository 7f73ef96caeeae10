//! The Dynamics 365 / Dataverse connector: upserts contacts through the Web API by
//! alternate key.
//!
//! # The API
//!
//! `PATCH {org_url}/api/data/v9.2/contacts(hub_goldenid='G0000000001')` with the columns as
//! JSON: an upsert (no `If-Match` / `If-None-Match`, so Dataverse creates the row when the
//! key is new and updates it otherwise). The key value is quoted, a quote inside it doubled,
//! and percent-encoded. Headers: `Authorization: Bearer <access_token>` (obtained by the
//! runtime; the Entra ID flows are out of scope here), `OData-MaxVersion: 4.0`,
//! `OData-Version: 4.0`, `Accept: application/json`, `Content-Type: application/json`, and
//! by default `Prefer: return=representation` with `?$select=contactid` and
//! `MSCRM.SuppressDuplicateDetection: false`.
//!
//! Answers: `201 Created` (new) or `200 OK` (updated) with the row when
//! `return=representation` is asked for; otherwise `204 No Content` with
//! `OData-EntityId: {org}/api/data/v9.2/contacts(<guid>)`, from which the id is read (and
//! `created` cannot be known: reported `false`). Errors have the body
//! `{"error": {"code": "0x80040237", "message": "..."}}`; the connector keeps the code,
//! never the message.
//!
//! One record per request: OData `$batch` is not used (a changeset would make one bad
//! record fail its neighbours, and the service protection limits count the requests inside
//! a batch anyway). Throughput comes from `concurrency` requests in flight.
//!
//! # What each error becomes
//!
//! | answer | outcome |
//! |---|---|
//! | code `0x80040333` (a duplicate detection rule matched; Dataverse answers it with `500`) | review |
//! | `429` with `Retry-After` (service protection: codes `0x80072322` requests, `0x80072321` execution time, `0x80072326` concurrent requests) | transient; the whole connector pauses for the `Retry-After` |
//! | `412 Precondition Failed`, `408`, 5xx, timeouts, connection failures | transient |
//! | `401` | transient, flagged `auth`, not retried in place |
//! | `400` (for example `0x0` unknown column, `0x80044331` value too long), `403`, `404` and other 4xx | permanent (dead-letter) |
//! | a success answer without the record id | permanent |
//!
//! # Limits
//!
//! Service protection, per user and web server over a 5-minute sliding window: 6,000
//! requests, 20 minutes of combined execution time, 52 concurrent requests. A sustained load
//! is therefore at most 20 upserts/s per application user; a burst of up to 6,000 goes
//! through at the speed of the environment.

pub mod client;
pub mod config;

#[cfg(test)]
mod tests;

pub use client::DynamicsConnector;
pub use config::{DEFAULT_FIELDS, DynamicsConfig, MAX_CONCURRENCY};

/// The connector's name.
pub const NAME: &str = "dynamics";
