//! The generic REST CRM sink: a client for the CRM's contact API.
//!
//! # The API
//!
//! `PUT {base_url}/contacts/{external_id}`, with `external_id` percent-encoded as one path
//! segment, upserts one contact. Request headers: `Content-Type: application/json`,
//! `Idempotency-Key: <envelope_id>` and, when a token is configured,
//! `Authorization: Bearer <token>`. The body is a [`ContactUpsert`]:
//!
//! ```json
//! { "external_id": "C-1001", "version": 17, "source": "abs-files",
//!   "envelope_id": "3f0c...", "fields": { "last_name": "...", "phone": "..." } }
//! ```
//!
//! Answers:
//! - `201 Created` (new contact) or `200 OK` (updated), body
//!   `{ "id": "<crm id>", "external_id": "C-1001", "version": 17 }`.
//! - `429 Too Many Requests` with `Retry-After: <seconds>`: rate limited; transient.
//! - `500`, `502`, `503`, `504` (and `408`): transient, as are timeouts and connection
//!   failures. A `Retry-After` on any of them is honoured.
//! - `400`, `404`, `409`, `422`: permanent (the request itself is wrong).
//! - `401`, `403`: permanent (bad credentials).
//!
//! Error bodies are `{ "error": "<code>", "message": "..." }`. The client keeps only the
//! code; the message may echo submitted values and is never logged or kept.
//!
//! # Contract of this module
//!
//! [`CrmRestClient::upsert`] makes exactly one attempt. [`CrmRestClient::upsert_with_retry`]
//! retries transient failures with jittered exponential backoff (never sooner than a
//! `Retry-After` asks, up to 5 minutes) until `max_attempts` attempts were made, and returns
//! permanent failures at once. Retrying is safe because the upsert is idempotent by
//! `Idempotency-Key` and guarded by `version`. No error or log line carries the payload.

pub mod api;
pub mod config;
mod error;
pub mod service;

#[cfg(test)]
mod tests;

pub use api::{ContactUpsert, CrmAck};
pub use config::CrmRestConfig;
pub use error::CrmError;
pub use service::CrmRestClient;
