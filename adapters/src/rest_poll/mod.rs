//! The REST polling source adapter: reads a core-banking collection page by page, starting
//! from a persisted cursor.
//!
//! # The upstream API it expects
//!
//! `GET {base_url}{path}?{query}&{cursor.param}={cursor}&{paging params}` answers `200` with
//! JSON holding an array of records at `records_path`. Each record carries its change
//! position at `cursor.field`: an RFC 3339 timestamp (`updated_since`) or an integer change
//! sequence (`sequence`). The upstream returns the records whose position is **at or after**
//! the cursor (`>=`), **ordered by that position** — the hub relies on this order: after any
//! page, nothing unread lies before the largest position seen.
//!
//! Paging: page numbers (`page`/`page_size`), offsets (`offset`/`limit`), an opaque next
//! token in the body, or a `Link: <...>; rel="next"` header (see [`config::PaginationConfig`]
//! and [`pagination`] for how a pass walks them). Authentication: none, an API-key header,
//! or OAuth 2.0 client credentials; TLS with a custom CA bundle and a client certificate.
//!
//! # Contract of this module
//!
//! A [`Pass`] hands out [`Page`]s in order; each page says which cursor may be persisted
//! once its records are durable ([`Page::cursor_after`]). The module itself persists
//! nothing: the runtime maps and publishes a page, and only after the bus acknowledged it
//! stores the cursor. A failed page ends the pass with the cursor of the last page returned,
//! so no record is skipped; the next pass reads from there.

pub mod auth;
pub mod client;
pub mod config;
mod error;
pub mod pagination;
pub mod path;
pub mod rate_limit;

#[cfg(test)]
mod tests;

pub use client::RestPollClient;
pub use config::{
    AuthConfig, CursorConfig, CursorKind, PaginationConfig, RestPollConfig, TlsConfig,
};
pub use error::RestPollError;
pub use pagination::{CursorValue, Page, PageRecord, Pass};
pub use path::JsonPath;
