//! The envelope: the one shape every event on the bus has.
//!
//! `id` is derived from (source, key, version) so that reading the same source record twice
//! produces the same id; every effect downstream is idempotent by this id and guarded by
//! `version`, which is monotonic per source entity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The schema version of the envelope and canonical payloads written by this build.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Party,
    Account,
    Card,
    Transaction,
    /// A balance a bank statement reports.
    Balance,
    /// A statement, report or notification header.
    Statement,
}

impl Entity {
    pub fn as_str(self) -> &'static str {
        match self {
            Entity::Party => "party",
            Entity::Account => "account",
            Entity::Card => "card",
            Entity::Transaction => "transaction",
            Entity::Balance => "balance",
            Entity::Statement => "statement",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Upsert,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Deterministic: see [`envelope_id`].
    pub id: String,
    /// Name of the configured source that read the record.
    pub source: String,
    pub entity: Entity,
    pub op: Op,
    /// Entity key at the source (for example the ABS customer id); the bus partition key.
    pub key: String,
    /// Monotonic per source entity: change sequence or source timestamp in milliseconds.
    pub version: i64,
    /// When the record changed at the source.
    pub event_time: DateTime<Utc>,
    /// When the hub read it.
    pub ingest_time: DateTime<Utc>,
    pub trace_id: String,
    pub schema_version: u32,
    /// The canonical record (Party, Account, Card or Transaction) as JSON.
    pub payload: serde_json::Value,
}

/// The deterministic envelope id: the first 128 bits of SHA-256 over source, key and version.
pub fn envelope_id(source: &str, key: &str, version: i64) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0u8]);
    h.update(key.as_bytes());
    h.update([0u8]);
    h.update(version.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

impl Envelope {
    /// Builds an envelope whose id and trace id follow from source, key and version.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: &str,
        entity: Entity,
        op: Op,
        key: &str,
        version: i64,
        event_time: DateTime<Utc>,
        ingest_time: DateTime<Utc>,
        payload: serde_json::Value,
    ) -> Self {
        let id = envelope_id(source, key, version);
        Envelope {
            trace_id: id.clone(),
            id,
            source: source.to_string(),
            entity,
            op,
            key: key.to_string(),
            version,
            event_time,
            ingest_time,
            schema_version: SCHEMA_VERSION,
            payload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_deterministic_and_distinguishes_fields() {
        let a = envelope_id("abs", "42", 7);
        assert_eq!(a, envelope_id("abs", "42", 7));
        assert_eq!(a.len(), 32);
        assert_ne!(a, envelope_id("abs", "42", 8));
        assert_ne!(a, envelope_id("abs", "4", 27));
        assert_ne!(envelope_id("ab", "s42", 7), a);
    }
}
