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
//! - `409 Conflict` with code `merged` (and `merged_into` in the body): the contact was
//!   merged into another one and is never recreated; permanent ([`CrmError::is_merged`]).
//!
//! ## CRM-owned fields
//!
//! A contact has two sets of fields: `fields`, what the integration owns and every `PUT`
//! replaces, and `crm_fields`, what staff type in the CRM (notes, marketing consent,
//! contact preferences). A `PUT` never changes `crm_fields` and cannot carry them (an
//! unknown body key is `422`). `GET /contacts/{external_id}` returns both (`404` when there
//! is no such contact); the client reads it with [`CrmRestClient::get`], also as a
//! [`crate::crm::read::CrmReader`]. The sandbox CRM
//! simulates staff edits with `PATCH /contacts/{external_id}/crm-fields` (a JSON object whose
//! keys are merged in; `null` removes a key); the client never sends it.
//!
//! ## Listing contacts
//!
//! `GET {base_url}/contacts?after=<external id>&limit=<n>` (same token) pages through the
//! live contacts by external id (byte order), keyset style: the contacts whose external id
//! is greater than `after` (from the first without it), at most `limit` (default 100, at
//! most 1,000; `400` `bad_request` outside 1..=1,000). Merged contacts (tombstones) are not
//! listed. Answer `200`:
//!
//! ```json
//! { "contacts": [ { "id": "...", "external_id": "C-1001", "version": 17,
//!                   "source": "abs-files", "fields": { ... }, "merged_into": null } ],
//!   "next": "C-1001" }
//! ```
//!
//! `next` is the `after` of the next page, `null` on the last one. The client reads it with
//! [`CrmRestClient::list_contacts`] (also [`crate::crm::read::CrmReader::list`], which drops
//! `source`); `hub reconcile` pages through it to compare the CRM with the core bank.
//!
//! ## Merging two contacts
//!
//! `POST {base_url}/contacts/{survivor}/merge`, `survivor` encoded like an upsert's path
//! segment, with the same headers (`Idempotency-Key: <envelope_id>`, token) and the body
//! [`ContactMerge`] `{ "from": "<loser external id>", "envelope_id": "..." }`, merges the
//! loser into the survivor: the loser's `crm_fields` the survivor lacks are copied to it, the
//! loser leaves the live contacts and stays as a tombstone (`GET` answers `200` with
//! `merged_into` naming the survivor), and the survivor's `merged_from` lists it. Answers:
//! - `200 OK` `{ "id": "<survivor's crm id>", "external_id": "<survivor>", "merged": true }`
//!   when applied; `"merged": false` when there was nothing to merge: the loser is unknown
//!   (the hub may merge golden records before either reached the CRM) or was already merged
//!   into this survivor (a replay). Read as [`MergeAck`].
//! - `404` `not_found`: no survivor; the caller creates it with a `PUT` first.
//! - `409` `conflict`: the loser was merged into another contact; `409` `merged`: the
//!   survivor itself was merged into another contact.
//! - `422` `same_contact`: survivor and loser are the same (the client refuses that before
//!   sending).
//!
//! Every other status is classified as for upserts:
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
//! [`CrmRestClient::upsert`] and [`CrmRestClient::merge`] make exactly one attempt.
//! [`CrmRestClient::upsert_with_retry`] and [`CrmRestClient::merge_with_retry`] share one
//! retry loop: transient failures are retried with jittered exponential backoff (never
//! sooner than a `Retry-After` asks, up to 5 minutes) until `max_attempts` attempts were
//! made, permanent failures are returned at once. Retrying is safe because the upsert is
//! idempotent by `Idempotency-Key` and guarded by `version`, and a repeated merge answers
//! `"merged": false`. No error or log line carries the payload.

pub mod api;
pub mod config;
mod error;
mod read;
pub mod service;

#[cfg(test)]
mod tests;

pub use api::{ContactList, ContactMerge, ContactUpsert, CrmAck, ListedContact, MergeAck};
pub use config::CrmRestConfig;
pub use error::CrmError;
pub use service::CrmRestClient;
