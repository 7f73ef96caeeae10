//! Master data: which system is the source of truth for each field, how a golden record
//! survives from several sources, which records are the same party, and how good the
//! source data is.
//!
//! - [`mastership`]: per entity and field, the master system, fallbacks and survivorship
//!   rule (config types).
//! - [`survivorship`]: the golden record from per-source values with provenance, and the
//!   field changes it made.
//! - [`matching`]: deterministic keys, Fellegi–Sunter scoring with blocking, clustering.
//! - [`febrl`]: reading FEBRL-layout files and measuring pair precision and recall.
//! - [`generate`]: synthetic Russian customer data with known duplicates.
//! - [`quality`]: the data-quality report.
//!
//! Pure: no IO, except [`febrl`] reading the files it is given.

pub mod febrl;
pub mod generate;
pub mod mastership;
pub mod matching;
pub mod pairs;
pub mod quality;
mod rng;
pub mod survivorship;

pub use rng::SplitMix64;
