//! Canonical model, envelope, validators and source-to-canonical mapping. Pure: no IO.
//!
//! - [`model`]: the canonical records (party, account, card, transaction).
//! - [`validate`]: field validators returning normalised values or a [`FieldError`].
//! - [`columns`]: config-driven mapping of a delimited-file row to a [`Party`].
//! - [`declarative`]: config-driven mapping of any source record (JSON, XML as JSON, CSV
//!   rows) to a canonical record.
//! - [`envelope`]: the event envelope every record travels in.

pub mod columns;
pub mod declarative;
pub mod envelope;
pub mod mdm;
pub mod model;
pub mod names;
pub mod validate;

pub use columns::{BoundColumns, HeaderError, MappedParty, PartyColumns};
pub use envelope::*;
pub use model::*;
pub use validate::FieldError;
