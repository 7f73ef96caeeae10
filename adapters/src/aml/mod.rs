//! A client for an external AML/KYC screening provider (sanctions and PEP lists screened by
//! someone else), turning its answers into the hit shape the hub stores for its own
//! screening.
//!
//! # The API
//!
//! A generic shape modelled on commercial screening APIs; `docs/aml-provider.md` has the
//! full description with examples.
//!
//! `POST {base_url}/v1/screen`, headers `Content-Type: application/json` and
//! `Authorization: Bearer <api key>`, body a [`ScreenRequest`]:
//!
//! ```json
//! { "reference": "party-42",
//!   "subject": { "type": "person", "names": ["Ivanov Ivan"], "birth_date": "1970-03-01",
//!                "nationality": "ru", "identifiers": [{ "type": "inn", "value": "7707083893" }] } }
//! ```
//!
//! Answers:
//! - `200`: `{ "reference", "screened_at", "matches": [ { "list", "entry_id", "score",
//!   "matched_name", "query_name", "reasons": [ { "factor", "weight", "detail" } ] } ] }`;
//!   `matches` is required (an empty array when the subject is clear).
//! - `400`, `422` with `{ "error": { "code", "message" } }`: the request is wrong; permanent.
//! - `401`, `403`: the key is refused; permanent, [`AmlError::is_auth`].
//! - `429` with `Retry-After`, `408`, `500`, `502`, `503`, `504`, timeouts and connection
//!   failures: transient, retried.
//!
//! # Contract of this module
//!
//! [`AmlClient::screen`] retries transient failures with jittered exponential backoff
//! (never sooner than a `Retry-After` asks, up to 5 minutes, capped by `max_backoff_ms`
//! otherwise) until `max_attempts` attempts were made, and returns permanent failures at
//! once. An answer that cannot be read completely is a permanent error: a malformed answer
//! is never taken for "no matches". Errors and log lines name the caller's reference, the
//! status, the provider's error code and what is wrong with an answer — never a name, a
//! date or an identifier of the subject, nor the provider's free-text message.

pub mod api;
pub mod client;
pub mod config;
mod error;
#[cfg(any(test, feature = "aml-simulator"))]
pub mod simulator;

#[cfg(test)]
mod tests;

pub use api::{
    IdentifierType, ProviderMatch, ScreenRequest, ScreenSubject, SubjectIdentifier, SubjectType,
};
pub use client::AmlClient;
pub use config::AmlConfig;
pub use error::AmlError;
