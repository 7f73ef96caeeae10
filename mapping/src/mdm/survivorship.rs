//! Survivorship: the golden record of one entity from the values its source systems sent.
//!
//! Contract: a [`GoldenRecord`] keeps, per field and system, the newest non-empty value that
//! system sent (its *candidate*), with provenance; the field's golden value is chosen from
//! the candidates by the field's [`FieldRule`]. Keeping the newest per system is a join
//! (commutative, associative, idempotent), and the choice depends only on the candidates,
//! so the same events in any order, or replayed, give the same record. Empty values
//! (null, blank text, empty lists and objects) are not candidates: a value is never
//! overwritten by an empty one. [`apply`] is pure and returns the golden-value changes it
//! made, old → new with provenance, for the store's field history.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::mastership::{EntityRules, FieldRule, SurvivorshipRule};
use crate::model::Party;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Provenance {
    /// The source system, for example `abs`.
    pub system: String,
    /// The id of the event that carried the value (the envelope id).
    pub event_id: String,
    /// When the value changed at the source.
    pub time: DateTime<Utc>,
    /// The source's version of the record: monotonic per source entity.
    pub version: i64,
}

/// One source event for an entity: its provenance and the field values it carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEvent {
    /// Where the values came from.
    pub provenance: Provenance,
    /// Canonical field name → value. Absent and empty fields are both ignored.
    pub fields: BTreeMap<String, Value>,
}

/// A value with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourcedValue {
    /// The value.
    pub value: Value,
    /// Where it came from.
    pub provenance: Provenance,
}

/// The golden record of one entity.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GoldenRecord {
    /// The surviving value of each field.
    pub fields: BTreeMap<String, SourcedValue>,
    /// Per field, per system: the newest non-empty value the system sent.
    pub candidates: BTreeMap<String, BTreeMap<String, SourcedValue>>,
}

/// A change of a field's golden value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// The canonical field name.
    pub field: String,
    /// The value before, if the field had one.
    pub old: Option<SourcedValue>,
    /// The value after; `None` only when a changed rule no longer allows any candidate.
    pub new: Option<SourcedValue>,
}

/// The result of [`apply`]: the new record and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survived {
    /// The golden record after the events.
    pub record: GoldenRecord,
    /// Golden values that changed, in field order.
    pub changes: Vec<FieldChange>,
}

impl GoldenRecord {
    /// The golden value of `field`.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.fields.get(field).map(|v| &v.value)
    }

    /// The golden values as a canonical [`Party`] with `source_id` set to the golden id.
    /// Fields the party has no place for (CRM preferences, notes) are left out; a value of
    /// the wrong shape is reported with its field name.
    pub fn to_party(&self, golden_id: &str) -> Result<Party, serde_json::Error> {
        let mut obj = serde_json::Map::new();
        obj.insert("kind".into(), Value::from("person"));
        for (field, v) in &self.fields {
            obj.insert(field.clone(), v.value.clone());
        }
        obj.insert("source_id".into(), Value::from(golden_id));
        serde_json::from_value(Value::Object(obj))
    }
}

/// The fields of a canonical party as survivorship input: every field except `source_id`
/// (which identifies the source record, not the person).
pub fn party_fields(party: &Party) -> BTreeMap<String, Value> {
    match serde_json::to_value(party) {
        Ok(Value::Object(map)) => map.into_iter().filter(|(k, _)| k != "source_id").collect(),
        // A Party always serialises to an object; nothing to contribute otherwise.
        _ => BTreeMap::new(),
    }
}

/// Whether a value counts as empty: null, blank text, or a list or object of empty values.
/// `false` and `0` are values.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => o.values().all(is_empty),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Filled parts of a value and its text length: the measure of `most_complete`.
fn completeness(v: &Value) -> (usize, usize) {
    match v {
        Value::Null => (0, 0),
        Value::String(s) => {
            let n = s.trim().chars().count();
            (usize::from(n > 0), n)
        }
        Value::Bool(_) | Value::Number(_) => (1, 1),
        Value::Array(a) => a.iter().map(completeness).fold((0, 0), add),
        Value::Object(o) => o.values().map(completeness).fold((0, 0), add),
    }
}

fn add(a: (usize, usize), b: (usize, usize)) -> (usize, usize) {
    (a.0 + b.0, a.1 + b.1)
}

/// Total order of recency: event time, version, then system, event id and the value's text
/// only to break exact ties deterministically.
fn recency(a: &SourcedValue, b: &SourcedValue) -> Ordering {
    let (pa, pb) = (&a.provenance, &b.provenance);
    pa.time
        .cmp(&pb.time)
        .then(pa.version.cmp(&pb.version))
        .then_with(|| pa.system.cmp(&pb.system))
        .then_with(|| pa.event_id.cmp(&pb.event_id))
        .then_with(|| a.value.to_string().cmp(&b.value.to_string()))
}

/// The candidate that survives under `rule`, if any system it allows has one.
fn choose<'a>(
    rule: &FieldRule,
    candidates: &'a BTreeMap<String, SourcedValue>,
) -> Option<&'a SourcedValue> {
    if let Some(v) = rule.master.as_deref().and_then(|m| candidates.get(m)) {
        return Some(v);
    }
    let allowed = candidates
        .iter()
        .filter(|(system, _)| rule.allows(system))
        .map(|(_, v)| v);
    match rule.rule {
        SurvivorshipRule::SourcePriority => allowed.max_by(|a, b| {
            // Lower rank is better, so compare b's rank with a's.
            rule.rank(&b.provenance.system)
                .cmp(&rule.rank(&a.provenance.system))
                .then_with(|| recency(a, b))
        }),
        SurvivorshipRule::MostRecent => allowed.max_by(|a, b| recency(a, b)),
        SurvivorshipRule::MostComplete => allowed.max_by(|a, b| {
            completeness(&a.value)
                .cmp(&completeness(&b.value))
                .then_with(|| recency(a, b))
        }),
    }
}

/// Folds `events` into `record` under `rules` and returns the new record with the golden
/// values that changed. Pure: `record` is not modified.
pub fn apply<'e>(
    rules: &EntityRules,
    record: &GoldenRecord,
    events: impl IntoIterator<Item = &'e SourceEvent>,
) -> Survived {
    let mut candidates = record.candidates.clone();
    for event in events {
        for (field, value) in &event.fields {
            if is_empty(value) {
                continue;
            }
            let incoming = SourcedValue {
                value: value.clone(),
                provenance: event.provenance.clone(),
            };
            let per_system = candidates.entry(field.clone()).or_default();
            match per_system.get_mut(&event.provenance.system) {
                Some(held) if recency(&incoming, held) != Ordering::Greater => {}
                Some(held) => *held = incoming,
                None => {
                    per_system.insert(event.provenance.system.clone(), incoming);
                }
            }
        }
    }

    let mut fields = BTreeMap::new();
    for (field, per_system) in &candidates {
        if let Some(v) = choose(rules.rule(field), per_system) {
            fields.insert(field.clone(), v.clone());
        }
    }

    let mut changes = Vec::new();
    for (field, new) in &fields {
        let old = record.fields.get(field);
        if old.map(|o| &o.value) != Some(&new.value) {
            changes.push(FieldChange {
                field: field.clone(),
                old: old.cloned(),
                new: Some(new.clone()),
            });
        }
    }
    for (field, old) in &record.fields {
        if !fields.contains_key(field) {
            changes.push(FieldChange {
                field: field.clone(),
                old: Some(old.clone()),
                new: None,
            });
        }
    }
    changes.sort_by(|a, b| a.field.cmp(&b.field));
    Survived {
        record: GoldenRecord { fields, candidates },
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mdm::mastership::MastershipConfig;
    use chrono::TimeZone;
    use serde_json::json;

    fn party_rules() -> EntityRules {
        MastershipConfig::default()
            .entity("party")
            .cloned()
            .expect("default party rules")
    }

    fn ev(system: &str, id: &str, secs: i64, version: i64, fields: Value) -> SourceEvent {
        let Value::Object(map) = fields else {
            panic!("test fields must be an object")
        };
        SourceEvent {
            provenance: Provenance {
                system: system.into(),
                event_id: id.into(),
                time: Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap(),
                version,
            },
            fields: map.into_iter().collect(),
        }
    }

    #[test]
    fn master_wins_over_newer_fallback() {
        let rules = party_rules();
        let events = [
            ev("cards", "c1", 50, 1, json!({"last_name": "Ivanov"})),
            ev("abs", "a1", 10, 1, json!({"last_name": "Иванов"})),
        ];
        let out = apply(&rules, &GoldenRecord::default(), &events);
        assert_eq!(out.record.value("last_name"), Some(&json!("Иванов")));
        assert_eq!(out.record.fields["last_name"].provenance.system, "abs");
        assert_eq!(out.changes.len(), 1);
        assert!(out.changes[0].old.is_none());
    }

    #[test]
    fn fallback_order_when_master_has_none() {
        let rules = party_rules();
        let events = [
            ev("crm", "r1", 90, 1, json!({"first_name": "Serg"})),
            ev("cards", "c1", 10, 1, json!({"first_name": "Sergey"})),
        ];
        let out = apply(&rules, &GoldenRecord::default(), &events);
        // cards precedes crm in the identity fallback list, whatever the times.
        assert_eq!(out.record.value("first_name"), Some(&json!("Sergey")));
    }

    #[test]
    fn most_recent_for_phones_and_never_empty() {
        let rules = party_rules();
        let first = apply(
            &rules,
            &GoldenRecord::default(),
            &[ev("abs", "a1", 10, 1, json!({"phones": ["+79001112233"]}))],
        );
        let second = apply(
            &rules,
            &first.record,
            &[ev(
                "cards",
                "c1",
                20,
                1,
                json!({"phones": ["+79004445566"]}),
            )],
        );
        assert_eq!(
            second.record.value("phones"),
            Some(&json!(["+79004445566"]))
        );
        let change = &second.changes[0];
        assert_eq!(change.field, "phones");
        assert_eq!(change.old.as_ref().unwrap().value, json!(["+79001112233"]));
        assert_eq!(change.new.as_ref().unwrap().provenance.event_id, "c1");
        // A newer empty value from any system changes nothing.
        let third = apply(
            &rules,
            &second.record,
            &[ev(
                "cards",
                "c2",
                30,
                2,
                json!({"phones": [], "emails": "  ", "last_name": null}),
            )],
        );
        assert_eq!(third.record, second.record);
        assert!(third.changes.is_empty());
    }

    #[test]
    fn older_event_from_same_system_does_not_win() {
        let rules = party_rules();
        let newer = ev("abs", "a2", 20, 2, json!({"last_name": "Петрова"}));
        let older = ev("abs", "a1", 10, 1, json!({"last_name": "Иванова"}));
        let out = apply(&rules, &GoldenRecord::default(), [&newer, &older]);
        assert_eq!(out.record.value("last_name"), Some(&json!("Петрова")));
        // Same time: the version decides.
        let v3 = ev("abs", "a3", 20, 3, json!({"last_name": "Сидорова"}));
        let out = apply(&rules, &out.record, [&v3]);
        assert_eq!(out.record.value("last_name"), Some(&json!("Сидорова")));
    }

    #[test]
    fn crm_fields_ignore_bank_systems() {
        let rules = party_rules();
        let events = [
            ev(
                "abs",
                "a1",
                99,
                9,
                json!({"marketing_consent": false, "notes": "x"}),
            ),
            ev("crm", "r1", 1, 1, json!({"marketing_consent": true})),
        ];
        let out = apply(&rules, &GoldenRecord::default(), &events);
        assert_eq!(out.record.value("marketing_consent"), Some(&json!(true)));
        // Notes came only from a bank system, so the golden record has none.
        assert_eq!(out.record.value("notes"), None);
        assert!(out.record.candidates["notes"].contains_key("abs"));
    }

    #[test]
    fn most_complete_prefers_filled_parts_then_length_then_recency() {
        let mut rules = party_rules();
        rules.fields.insert(
            "addresses".into(),
            FieldRule::open(SurvivorshipRule::MostComplete),
        );
        let short = json!([{"kind": "primary", "text": "Москва"}]);
        let full =
            json!([{"kind": "primary", "text": "Москва, ул. Ленина, 1", "postal_code": "101000"}]);
        let events = [
            ev("abs", "a1", 10, 1, json!({"addresses": full.clone()})),
            ev("cards", "c1", 20, 1, json!({"addresses": short})),
        ];
        let out = apply(&rules, &GoldenRecord::default(), &events);
        assert_eq!(out.record.value("addresses"), Some(&full));
        assert_eq!(completeness(&json!({"a": "xy", "b": [1, ""]})), (2, 3));
    }

    #[test]
    fn emptiness() {
        for v in [
            json!(null),
            json!(""),
            json!("  "),
            json!([]),
            json!([null, ""]),
            json!({"a": ""}),
        ] {
            assert!(is_empty(&v), "{v}");
        }
        for v in [
            json!(false),
            json!(0),
            json!("x"),
            json!(["x"]),
            json!({"a": 1}),
        ] {
            assert!(!is_empty(&v), "{v}");
        }
    }

    #[test]
    fn party_round_trip_through_golden_record() {
        let p = Party {
            source_id: "abs-17".into(),
            last_name: Some("Иванов".into()),
            first_name: Some("Сергей".into()),
            inn: Some("500100732259".into()),
            phones: vec!["+79001112233".into()],
            ..Party::default()
        };
        let fields = party_fields(&p);
        assert!(!fields.contains_key("source_id"));
        let e = SourceEvent {
            provenance: Provenance {
                system: "abs".into(),
                event_id: "e1".into(),
                time: Utc.timestamp_opt(0, 0).unwrap(),
                version: 1,
            },
            fields,
        };
        let out = apply(&party_rules(), &GoldenRecord::default(), [&e]);
        let back = out.record.to_party("g-1").unwrap();
        assert_eq!(
            back,
            Party {
                source_id: "g-1".into(),
                ..p
            }
        );
    }

    #[test]
    fn rule_change_can_remove_a_value() {
        let open = party_rules();
        let out = apply(
            &open,
            &GoldenRecord::default(),
            [&ev("cards", "c1", 1, 1, json!({"segment": "vip"}))],
        );
        // segment is abs-only by default; the cards value was a candidate but never golden.
        assert_eq!(out.record.value("segment"), None);
        let mut loose = open.clone();
        loose.fields.insert(
            "segment".into(),
            FieldRule::open(SurvivorshipRule::MostRecent),
        );
        let out = apply(&loose, &out.record, []);
        assert_eq!(out.record.value("segment"), Some(&json!("vip")));
        let out = apply(&open, &out.record, []);
        assert_eq!(out.changes.len(), 1);
        assert!(out.changes[0].new.is_none());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const SYSTEMS: [&str; 3] = ["abs", "cards", "crm"];
        const FIELDS: [&str; 6] = [
            "last_name",
            "phones",
            "segment",
            "marketing_consent",
            "notes",
            "addresses",
        ];

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                Just(json!(null)),
                Just(json!("")),
                "[a-c]{1,2}".prop_map(Value::from),
                any::<bool>().prop_map(Value::from),
                proptest::collection::vec("[a-c]{0,2}", 0..3).prop_map(|v| json!(v)),
            ]
        }

        fn events() -> impl Strategy<Value = Vec<SourceEvent>> {
            let one = (
                0..SYSTEMS.len(),
                0i64..5,
                0i64..3,
                proptest::collection::btree_map(
                    (0..FIELDS.len()).prop_map(|i| FIELDS[i].to_owned()),
                    value(),
                    0..4,
                ),
            );
            proptest::collection::vec(one, 0..12).prop_map(|raw| {
                raw.into_iter()
                    .enumerate()
                    .map(|(i, (s, t, v, fields))| SourceEvent {
                        provenance: Provenance {
                            system: SYSTEMS[s].into(),
                            event_id: format!("e{i}"),
                            time: Utc.timestamp_opt(t, 0).unwrap(),
                            version: v,
                        },
                        fields,
                    })
                    .collect()
            })
        }

        /// Applies events one call at a time, as a store would.
        fn one_by_one(rules: &EntityRules, events: &[SourceEvent]) -> GoldenRecord {
            events.iter().fold(GoldenRecord::default(), |rec, e| {
                apply(rules, &rec, [e]).record
            })
        }

        proptest! {
            #[test]
            fn any_order_gives_the_same_record(
                evs in events(),
                order in any::<proptest::sample::Index>(),
                rot in 0usize..12,
            ) {
                let rules = party_rules();
                let base = one_by_one(&rules, &evs);
                let mut shuffled = evs.clone();
                shuffled.reverse();
                if !shuffled.is_empty() {
                    let k = rot % shuffled.len();
                    shuffled.rotate_left(k);
                    let i = order.index(shuffled.len());
                    shuffled.swap(0, i);
                }
                prop_assert_eq!(&one_by_one(&rules, &shuffled), &base);
                prop_assert_eq!(&apply(&rules, &GoldenRecord::default(), &shuffled).record, &base);
            }

            #[test]
            fn replay_changes_nothing(evs in events(), k in 0usize..12) {
                let rules = party_rules();
                let rec = one_by_one(&rules, &evs);
                let again = apply(&rules, &rec, &evs);
                prop_assert!(again.changes.is_empty());
                prop_assert_eq!(&again.record, &rec);
                if !evs.is_empty() {
                    let one = &evs[k % evs.len()];
                    let out = apply(&rules, &rec, [one]);
                    prop_assert!(out.changes.is_empty());
                    prop_assert_eq!(&out.record, &rec);
                }
            }

            #[test]
            fn crm_mastered_fields_never_take_bank_values(evs in events()) {
                let rules = party_rules();
                let mut rec = GoldenRecord::default();
                for e in &evs {
                    let out = apply(&rules, &rec, [e]);
                    for c in &out.changes {
                        if c.field == "marketing_consent" || c.field == "notes" {
                            prop_assert_eq!(e.provenance.system.as_str(), "crm");
                        }
                    }
                    rec = out.record;
                }
                for f in ["marketing_consent", "notes"] {
                    if let Some(v) = rec.fields.get(f) {
                        prop_assert_eq!(v.provenance.system.as_str(), "crm");
                    }
                }
                for v in rec.fields.values() {
                    prop_assert!(!is_empty(&v.value));
                }
            }
        }
    }
}
