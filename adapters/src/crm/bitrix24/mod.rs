//! The Bitrix24 connector: contacts through the REST API of an inbound webhook.
//!
//! # The API
//!
//! Methods are called as `POST {webhook_url}{method}.json` (`webhook_url` =
//! `https://<portal>/rest/<user id>/<secret>/`) with form-encoded parameters, nested keys in
//! brackets (`fields[LAST_NAME]=...`, see [`query`]). Bitrix24 has no upsert, so each record
//! takes two commands:
//!
//! 1. `crm.contact.list` with `filter[ORIGIN_ID]=<external id>`,
//!    `filter[ORIGINATOR_ID]=<originator_id>`, `select[]=ID` (and the multiple fields mapped,
//!    to replace their values), `start=-1`;
//! 2. no contact: `crm.contact.add` with `fields[...]`, `ORIGIN_ID` and `ORIGINATOR_ID`;
//!    one contact: `crm.contact.update` with `id` and `fields[...]`; `params[REGISTER_SONET_EVENT]=N`
//!    on both (no activity stream entry per synchronised contact).
//!
//! With `batch_size` 2 to 50 the commands of a chunk go in two `batch` calls (one with every
//! find, one with every write), each `cmd[<key>]=<method>?<encoded parameters>` (the
//! command strings encoded again, as `batch` requires) and `halt=0`; the answer is
//! `{"result": {"result": {<key>: ...}, "result_error": {<key>: {"error", "error_description"}}}}`.
//! Answers of single calls are `{"result": ...}`, errors `{"error": "<code>",
//! "error_description": "..."}`; the connector keeps the code, never the description.
//!
//! Phones and e-mails (`PHONE`, `EMAIL`, `WEB`, `IM`) hold several values: an add sends
//! `[{"VALUE", "VALUE_TYPE"}]`; an update deletes the listed values the record no longer has
//! (`{"ID", "DELETE": "Y"}`) and adds the new ones, leaving equal values alone.
//!
//! # What each error becomes
//!
//! | answer | outcome |
//! |---|---|
//! | `crm.contact.list` finds two or more contacts for one external id | review |
//! | `503 QUERY_LIMIT_EXCEEDED` | transient (and the client's bucket is drained) |
//! | `429 OPERATION_TIME_LIMIT` | transient, waits at least `operation_limit_pause_ms` |
//! | `500 INTERNAL_SERVER_ERROR`, `ERROR_UNEXPECTED_ANSWER`, other 5xx, timeouts, connection failures | transient |
//! | `401 expired_token`, `invalid_token`, `NO_AUTH_FOUND`, `INVALID_CREDENTIALS`, `insufficient_scope`, `OVERLOAD_LIMIT`, `ACCESS_DENIED`, any 401/403 | transient, flagged `auth`, not retried in place |
//! | `400 ERROR_CORE` (a field value the portal refuses), `INVALID_REQUEST`, an empty code (`"Contact is not found"`, bad parameters), `404 ERROR_METHOD_NOT_FOUND`, other 4xx | permanent (dead-letter) |
//!
//! A whole-call error (the `batch` call itself answered `503`) applies to every record of
//! the call; a command's error in `result_error` to its record only.
//!
//! # Limits
//!
//! The portal counts requests in a leaky bucket: above 50 pending it answers `503
//! QUERY_LIMIT_EXCEEDED`, and the count drains by 2 per second (250 and 5 on Enterprise
//! plans; apidocs.bitrix24.com, "Limits"). A `batch` call counts as one request and holds up
//! to 50 commands. The client paces itself with a token bucket ([`pacing`]; default 2
//! requests/s, burst 40), so a sustained load never reaches the portal's threshold. Each
//! chunk of 50 records takes two requests (the finds, then the writes), so the sustained
//! ceiling is 50 records/s at 2 requests/s (125 at Enterprise's 5); without batching, two
//! requests per record, 1 record/s.
//!
//! Two tasks writing the same new external id at the same moment could both find nothing
//! and both add: the sink hands a key to one task at a time, and a chunk never holds a key
//! twice.

pub mod client;
pub mod config;
pub mod pacing;
pub mod query;

#[cfg(test)]
mod tests;

pub use client::Bitrix24Connector;
pub use config::{Bitrix24Config, DEFAULT_FIELDS, MAX_BATCH_COMMANDS, MULTI_FIELDS};

/// The connector's name.
pub const NAME: &str = "bitrix24";
