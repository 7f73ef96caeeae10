//! Record matching: which source records are the same party.
//!
//! A run ([`deduplicate`], [`link`], or [`run`] over a [`RecordSet`]) goes:
//! 1. **prepare** — names, addresses and ids are normalised to script-independent keys;
//! 2. **block** — several blocking keys pick the pairs worth comparing ([`BlockingKey`]);
//! 3. **train** — a Fellegi–Sunter [`Model`] is fitted without labels (u from random pairs,
//!    m by EM), unless a fixed model is configured;
//! 4. **score** — each candidate pair gets a comparison vector ([`Comparison`] levels) and a
//!    match probability;
//! 5. **cluster** — deterministic keys join records outright; pairs at or above the
//!    auto-merge threshold join unless a hard non-match rule forbids it; pairs between the
//!    review and auto-merge thresholds go to a review list.
//!
//! For a store that matches one record at a time, [`blocking_keys`] gives the keys to index
//! and [`score_pair`] scores a candidate pair under a model.

mod blocking;
mod cluster;
pub mod compare;
mod comparisons;
mod model;
mod prepare;
mod record;
mod rules;
mod run;

pub use blocking::{BlockStats, BlockingKey};
pub use comparisons::{COMPARISONS, Comparison, Levels};
pub use model::{ComparisonParams, Model, TrainingInfo};
pub use prepare::{RecordSet, TooManyRecords};
pub use record::{MatchRecord, SourceRef};
pub use rules::{DeterministicKey, HardNonMatch};
pub use run::{
    Decision, MatchConfig, MatchError, MatchResult, MatchStats, PairKind, PairScore, PhaseSeconds,
    ScoredPair, blocking_keys, deduplicate, link, run, score_pair,
};

#[cfg(test)]
mod tests;
