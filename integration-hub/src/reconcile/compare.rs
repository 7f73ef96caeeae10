//! Classifying records by hash: the bank's records are taken in first (newest version per
//! key), then the CRM's contacts one page at a time, so only the bank side is held in memory
//! (its key, hash and canonical JSON of the compared fields).
//!
//! `matched`: same hash; `different`: both sides hold the id and the hashes differ (with the
//! names of the fields that differ, never values); `missing`: in the bank, not in the CRM;
//! `extra`: in the CRM, not in the bank. A CRM contact whose bank record could not be read
//! (its key is known from the failure) is `unreadable`, not extra: the bank may well hold
//! it.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use mapping::Envelope;

use super::hash::{FieldScope, canonical, hash_of_canonical, record_hash};
use crate::backfill::changed_fields;

/// The counts of one reconciliation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Records of the bank compared (newest version per key, entities the sink delivers).
    pub bank: u64,
    /// Contacts of the CRM that belong to the source.
    pub crm: u64,
    pub matched: u64,
    pub missing: u64,
    pub extra: u64,
    pub different: u64,
    /// CRM contacts whose bank record could not be read (see the failures).
    pub unreadable: u64,
}

/// A record both sides hold with different compared fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Different {
    pub id: String,
    /// The names of the fields that differ (dotted for nested ones), never values.
    pub fields: Vec<String>,
}

/// The outcome of comparing both sides: counts and the ids of every class, sorted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub counts: Counts,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    pub different: Vec<Different>,
}

impl Outcome {
    /// No record missing, extra or different.
    pub fn clean(&self) -> bool {
        self.missing.is_empty() && self.extra.is_empty() && self.different.is_empty()
    }
}

struct BankRecord {
    entity: String,
    version: i64,
    hash: String,
    /// The canonical JSON of the compared fields: read back only for a difference.
    canonical: Box<str>,
}

/// A comparison in progress.
pub struct Comparison {
    scope: FieldScope,
    bank: BTreeMap<String, BankRecord>,
    unreadable: HashSet<String>,
    outcome: Outcome,
}

impl Comparison {
    pub fn new(scope: FieldScope) -> Comparison {
        Comparison {
            scope,
            bank: BTreeMap::new(),
            unreadable: HashSet::new(),
            outcome: Outcome::default(),
        }
    }

    /// A bank record; of several versions of one key the newest is kept (the last read
    /// among equal versions, as the sink would end with it).
    pub fn add_bank(&mut self, env: &Envelope) {
        if self
            .bank
            .get(&env.key)
            .is_some_and(|r| r.version > env.version)
        {
            return;
        }
        let entity = env.entity.as_str();
        let empty = Map::new();
        let fields = self
            .scope
            .select(entity, env.payload.as_object().unwrap_or(&empty));
        let text = canonical(&fields);
        self.bank.insert(
            env.key.clone(),
            BankRecord {
                entity: entity.to_owned(),
                version: env.version,
                hash: hash_of_canonical(&text),
                canonical: text.into_boxed_str(),
            },
        );
    }

    /// The key of a bank record that could not be read.
    pub fn add_unreadable(&mut self, key: &str) {
        self.unreadable.insert(key.to_owned());
    }

    /// How many bank records are held.
    pub fn bank_len(&self) -> usize {
        self.bank.len()
    }

    /// One CRM contact of the source, with the fields the integration owns.
    pub fn add_crm(&mut self, id: &str, fields: &Map<String, Value>) {
        self.outcome.counts.crm += 1;
        let Some(bank) = self.bank.remove(id) else {
            if self.unreadable.contains(id) {
                self.outcome.counts.unreadable += 1;
            } else {
                self.outcome.extra.push(id.to_owned());
            }
            return;
        };
        self.outcome.counts.bank += 1;
        let have = self.scope.select(&bank.entity, fields);
        if record_hash(&have) == bank.hash {
            self.outcome.counts.matched += 1;
            return;
        }
        // The canonical text was written by this module from an object: it parses back.
        let want: Map<String, Value> = serde_json::from_str(&bank.canonical).unwrap_or_default();
        self.outcome.different.push(Different {
            id: id.to_owned(),
            fields: changed_fields(&want, &have),
        });
    }

    /// Every bank record the CRM did not list is missing.
    pub fn finish(mut self) -> Outcome {
        let left = std::mem::take(&mut self.bank);
        self.outcome.counts.bank += left.len() as u64;
        self.outcome.missing.extend(left.into_keys());
        let o = &mut self.outcome;
        o.missing.sort();
        o.extra.sort();
        o.different.sort_by(|a, b| a.id.cmp(&b.id));
        o.counts.missing = o.missing.len() as u64;
        o.counts.extra = o.extra.len() as u64;
        o.counts.different = o.different.len() as u64;
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use mapping::{Entity, Op};
    use serde_json::json;

    fn env(key: &str, version: i64, payload: Value) -> Envelope {
        Envelope::new(
            "abs",
            Entity::Party,
            Op::Upsert,
            key,
            version,
            Utc::now(),
            Utc::now(),
            payload,
        )
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn every_class_with_ids_and_field_names() {
        let mut c = Comparison::new(FieldScope::All);
        c.add_bank(&env("C1", 1, json!({"last_name": "Иванов", "phone": "+7"})));
        c.add_bank(&env("C2", 1, json!({"last_name": "Петров"})));
        c.add_bank(&env("C3", 1, json!({"last_name": "Сидоров"})));
        // An older version read after a newer one does not win; a newer one does.
        c.add_bank(&env("C1", 0, json!({"last_name": "old"})));
        c.add_bank(&env("C2", 2, json!({"last_name": "Петров", "email": null})));
        c.add_unreadable("C9");
        assert_eq!(c.bank_len(), 3);
        c.add_crm("C1", &obj(json!({"phone": "+7", "last_name": "Иванов"})));
        c.add_crm("C2", &obj(json!({"last_name": "Петрова"})));
        c.add_crm("C8", &obj(json!({"last_name": "Лишний"})));
        c.add_crm("C9", &obj(json!({})));
        let o = c.finish();
        assert_eq!(o.missing, ["C3"]);
        assert_eq!(o.extra, ["C8"]);
        assert_eq!(
            o.different,
            [Different {
                id: "C2".into(),
                fields: vec!["last_name".into()]
            }]
        );
        assert_eq!(
            o.counts,
            Counts {
                bank: 3,
                crm: 4,
                matched: 1,
                missing: 1,
                extra: 1,
                different: 1,
                unreadable: 1,
            }
        );
        assert!(!o.clean());
        let text = serde_json::to_string(&o).unwrap();
        assert!(
            !text.contains("Петрова") && !text.contains("Петров\""),
            "{text}"
        );
    }

    #[test]
    fn a_clean_run_is_all_matched() {
        let mut c = Comparison::new(FieldScope::All);
        for i in 0..100 {
            c.add_bank(&env(&format!("C{i:03}"), 1, json!({"n": i, "x": null})));
        }
        for i in 0..100 {
            c.add_crm(&format!("C{i:03}"), &obj(json!({"n": i})));
        }
        let o = c.finish();
        assert!(o.clean());
        assert_eq!(
            (o.counts.bank, o.counts.crm, o.counts.matched),
            (100, 100, 100)
        );
    }
}
