//! The Salesforce connector: upserts contacts through the REST API by external id.
//!
//! # The API
//!
//! Every request carries `Authorization: Bearer <access_token>` (a token the runtime already
//! obtained: the OAuth 2.0 flows and refreshing are out of scope here) and
//! `Accept: application/json`; bodies are JSON.
//!
//! - `batch_size` 2 to 200: `PATCH {instance_url}/services/data/{api_version}/composite/sobjects/{sobject}/{external_id_field}`
//!   with `{"allOrNone": false, "records": [{"attributes": {"type": "Contact"},
//!   "Hub_Golden_Id__c": "G1", "LastName": ...}, ...]}` (sObject Collections, API v46.0+, at
//!   most 200 records). `200 OK` answers a list of per-record results in request order,
//!   `{"id", "success", "created", "errors": [{"statusCode", "message", "fields"}]}`.
//! - `batch_size` 1: `PATCH .../sobjects/{sobject}/{external_id_field}/{external id}` (the id
//!   percent-encoded as one path segment) with the fields. `201 Created` or `200 OK` with
//!   `{"id", "success", "created", "errors"}`; `204 No Content` (API versions before 46.0)
//!   is followed by `GET` of the same URL with `?fields=Id` to learn the id. `300 Multiple
//!   Choices`: the external id matches several records (the body lists their URLs).
//!
//! Error answers have the body `[{"message", "errorCode", "fields"}]`; the connector keeps
//! the code and the field names, never the message (it may echo submitted values).
//!
//! # What each error becomes
//!
//! | answer | outcome |
//! |---|---|
//! | `300` (single upsert), per-record `DUPLICATE_EXTERNAL_ID`, `DUPLICATES_DETECTED` (a duplicate rule) | review |
//! | `403 REQUEST_LIMIT_EXCEEDED` | transient, waits at least `request_limit_pause_ms` |
//! | `UNABLE_TO_LOCK_ROW` (per record or whole request), `503 SERVER_UNAVAILABLE`, other 5xx, 408, 429, timeouts, connection failures | transient |
//! | `401 INVALID_SESSION_ID` (or any 401) | transient, flagged `auth`, not retried in place |
//! | `400 INVALID_FIELD`, `REQUIRED_FIELD_MISSING`, `STRING_TOO_LONG`, `FIELD_CUSTOM_VALIDATION_EXCEPTION`, `MALFORMED_ID`, `INVALID_EMAIL_ADDRESS`, other 4xx, other per-record codes | permanent (dead-letter) |
//! | a success answer the connector cannot read | permanent |
//!
//! A whole-request error (for example `400 INVALID_FIELD` for an unknown field in the
//! mapping) applies to every record of the request.
//!
//! # Limits
//!
//! Salesforce counts API requests per org over 24 hours (the budget depends on the edition
//! and licences); one collection request upserts up to 200 records for one request of the
//! budget, which is why collections are the default. Salesforce sends no `Retry-After`;
//! `REQUEST_LIMIT_EXCEEDED` waits `request_limit_pause_ms` (default one minute) between
//! attempts.

pub mod client;
pub mod config;

#[cfg(test)]
mod tests;

pub use client::SalesforceConnector;
pub use config::{DEFAULT_FIELDS, MAX_COLLECTION, SalesforceConfig};

/// The connector's name.
pub const NAME: &str = "salesforce";
