//! Sanctions and PEP screening and 115-FZ transaction monitoring. Pure: file IO only, no network.
//!
//! - [`entry`]: the list entry, list snapshot and screened-subject model every loader and the
//!   matcher share.
//! - [`lists`]: loaders of the OFAC, UN, EU, national and own lists into snapshots, and the
//!   change between two versions of a list.
//! - [`monitoring`]: 115-FZ transaction-monitoring rules and the engine that runs them.

pub mod entry;
pub mod eval;
pub mod index;
pub mod lists;
pub mod matcher;
pub mod monitoring;
pub mod normalize;

pub use entry::*;
pub use matcher::{DEFAULT_THRESHOLD, Factor, Hit, ScorePart};
