//! The per-record hash a reconciliation compares: SHA-256 over the canonical JSON of the
//! fields the core bank masters, computed the same way on the bank's record and on the
//! CRM's contact.
//!
//! Canonical JSON: object keys sorted (byte order), no whitespace, strings and numbers as
//! `serde_json` writes them; a member whose value is `null` is left out of an object (absent
//! and `null` are the same, as in [`crate::backfill::changed_fields`]) except inside an
//! array, which is compared whole. So two sides hash equal exactly when `changed_fields`
//! finds no difference between them.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use mapping::mdm::mastership::MastershipConfig;

/// Which top-level fields of a record are compared.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldScope {
    /// Every field the sink writes from the source's canonical record (no `[master_data]`).
    All,
    /// Only the fields whose mastership rule names `system` as master.
    MasteredBy {
        system: String,
        rules: MastershipConfig,
    },
}

impl FieldScope {
    /// Whether `field` of an `entity` record is compared. An entity without rules is
    /// compared whole: nothing says another system masters any of it.
    pub fn compares(&self, entity: &str, field: &str) -> bool {
        match self {
            FieldScope::All => true,
            FieldScope::MasteredBy { system, rules } => rules
                .entity(entity)
                .is_none_or(|r| r.rule(field).master.as_deref() == Some(system.as_str())),
        }
    }

    /// The compared fields of `fields`, for an `entity` record.
    pub fn select(&self, entity: &str, fields: &Map<String, Value>) -> Map<String, Value> {
        fields
            .iter()
            .filter(|(name, _)| self.compares(entity, name))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }

    /// A short description for reports: `all` or `mastered by abs`.
    pub fn describe(&self) -> String {
        match self {
            FieldScope::All => "all".to_owned(),
            FieldScope::MasteredBy { system, .. } => format!("mastered by {system}"),
        }
    }
}

/// The canonical JSON of an object of compared fields.
pub fn canonical(fields: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(256);
    write_object(fields, &mut out);
    out
}

/// SHA-256 of [`canonical`], in hex.
pub fn record_hash(fields: &Map<String, Value>) -> String {
    hash_of_canonical(&canonical(fields))
}

/// SHA-256 of an already canonical text, in hex.
pub fn hash_of_canonical(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    let keys: BTreeSet<&String> = map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, _)| k)
        .collect();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        if let Some(v) = map.get(key) {
            write_value(v, false, out);
        }
    }
    out.push('}');
}

fn write_value(value: &Value, in_array: bool, out: &mut String) {
    match value {
        // Inside an array an object keeps its nulls: arrays are compared whole.
        Value::Object(m) if in_array => {
            let keys: BTreeSet<&String> = m.keys().collect();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = m.get(key) {
                    write_value(v, true, out);
                }
            }
            out.push('}');
        }
        Value::Object(m) => write_object(m, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, true, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers print the same in every serializer setting.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping of a string cannot fail.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backfill::changed_fields;
    use mapping::mdm::mastership::{EntityRules, FieldRule, SurvivorshipRule};
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn canonical_sorts_keys_and_drops_null_members() {
        let a = obj(json!({"b": 1, "a": {"y": "ж", "x": null}, "c": null, "l": [{"k": null}]}));
        assert_eq!(canonical(&a), r#"{"a":{"y":"ж"},"b":1,"l":[{"k":null}]}"#);
        let b = obj(json!({"l": [{"k": null}], "a": {"y": "ж"}, "b": 1}));
        assert_eq!(record_hash(&a), record_hash(&b));
        assert_eq!(record_hash(&a).len(), 64);
        // Escapes are serde_json's.
        let q = obj(json!({"s": "a\"b\n"}));
        assert_eq!(canonical(&q), r#"{"s":"a\"b\n"}"#);
    }

    #[test]
    fn equal_hashes_exactly_when_no_field_differs() {
        let cases = [
            (json!({"a": 1}), json!({"a": 1, "b": null})),
            (json!({"a": 1}), json!({"a": 2})),
            (json!({"a": {"x": 1}}), json!({"a": {"x": 1, "y": null}})),
            (json!({"a": [1, 2]}), json!({"a": [2, 1]})),
            (json!({"a": [{"x": null}]}), json!({"a": [{}]})),
            (json!({"a": "1"}), json!({"a": 1})),
            (json!({}), json!({"extra": true})),
        ];
        for (x, y) in cases {
            let (x, y) = (obj(x), obj(y));
            let same_hash = record_hash(&x) == record_hash(&y);
            assert_eq!(
                same_hash,
                changed_fields(&x, &y).is_empty(),
                "{x:?} / {y:?}"
            );
        }
    }

    #[test]
    fn mastership_limits_the_compared_fields() {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "marketing_consent".to_owned(),
            FieldRule::mastered_by("crm"),
        );
        fields.insert(
            "phones".to_owned(),
            FieldRule::open(SurvivorshipRule::MostRecent),
        );
        let mut entities = std::collections::BTreeMap::new();
        entities.insert(
            "party".to_owned(),
            EntityRules {
                default: FieldRule::mastered_by("abs"),
                fields,
            },
        );
        let scope = FieldScope::MasteredBy {
            system: "abs".into(),
            rules: MastershipConfig { entities },
        };
        let rec = obj(json!({"last_name": "x", "marketing_consent": true, "phones": []}));
        let picked: Vec<String> = scope.select("party", &rec).keys().cloned().collect();
        assert_eq!(picked, ["last_name"]);
        // No rules for the entity: the whole record.
        assert_eq!(scope.select("account", &rec).len(), 3);
        assert_eq!(FieldScope::All.select("party", &rec).len(), 3);
        assert_eq!(scope.describe(), "mastered by abs");
    }
}
