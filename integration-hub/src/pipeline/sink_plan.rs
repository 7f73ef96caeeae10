//! Which events of a batch a sink sends: pure rules, kept apart so they can be checked
//! against a model.
//!
//! Upserts carry the full state of an entity, so only the newest version of each key in a
//! batch matters (the others are *superseded*); and a version the target already
//! acknowledged, or a newer one, is never sent again (*already delivered*) — which is what
//! makes re-delivery after a crash harmless and keeps an older state from overwriting a
//! newer one.

use std::collections::{HashMap, HashSet};

/// `(entity, key)`.
pub type EntityKey = (String, String);

/// The newest version of each key among `items` (in batch order; of equal versions the later
/// event wins), and how many events those supersede.
pub fn newest_per_key<T>(
    items: impl IntoIterator<Item = (EntityKey, i64, T)>,
) -> (HashMap<EntityKey, (i64, T)>, u64) {
    let mut newest: HashMap<EntityKey, (i64, T)> = HashMap::new();
    let mut superseded = 0u64;
    for (key, version, item) in items {
        match newest.get(&key) {
            Some((cur, _)) if *cur > version => superseded += 1,
            Some(_) => {
                superseded += 1;
                newest.insert(key, (version, item));
            }
            None => {
                newest.insert(key, (version, item));
            }
        }
    }
    (newest, superseded)
}

/// Splits the newest events into those to send, given the version the target has of each key
/// (`have`) and the keys already settled otherwise (dead-lettered on an earlier pass); also
/// returns how many the target already has.
pub fn to_send<T>(
    newest: HashMap<EntityKey, (i64, T)>,
    have: impl Fn(&EntityKey) -> Option<i64>,
    settled: &HashSet<EntityKey>,
) -> (Vec<(EntityKey, i64, T)>, u64) {
    let mut send = Vec::new();
    let mut already = 0u64;
    for (key, (version, item)) in newest {
        if have(&key).is_some_and(|v| v >= version) {
            already += 1;
        } else if !settled.contains(&key) {
            send.push((key, version, item));
        }
    }
    (send, already)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(k: u8) -> EntityKey {
        ("party".to_string(), format!("k{k}"))
    }

    proptest! {
        /// Against a model: per key, the maximum version of the batch is sent exactly when
        /// it is newer than what the target has and the key is not settled.
        #[test]
        fn sends_exactly_the_newest_unseen_versions(
            batch in proptest::collection::vec((0u8..6, 0i64..8), 0..40),
            have in proptest::collection::hash_map(0u8..6, 0i64..8, 0..6),
            settled in proptest::collection::hash_set(0u8..6, 0..3),
        ) {
            let items = batch.iter().enumerate().map(|(i, (k, v))| (key(*k), *v, i));
            let (newest, superseded) = newest_per_key(items);
            let settled_keys: HashSet<EntityKey> = settled.iter().map(|k| key(*k)).collect();
            let (send, already) = to_send(
                newest,
                |k| have.iter().find(|(hk, _)| key(**hk) == *k).map(|(_, v)| *v),
                &settled_keys,
            );

            let mut model_max: HashMap<u8, (i64, usize)> = HashMap::new();
            for (i, (k, v)) in batch.iter().enumerate() {
                let e = model_max.entry(*k).or_insert((*v, i));
                if *v >= e.0 {
                    *e = (*v, i);
                }
            }
            prop_assert_eq!(superseded as usize, batch.len() - model_max.len());
            let mut expected: Vec<(EntityKey, i64, usize)> = Vec::new();
            let mut expected_already = 0u64;
            for (k, (v, i)) in &model_max {
                if have.get(k).is_some_and(|h| h >= v) {
                    expected_already += 1;
                } else if !settled.contains(k) {
                    expected.push((key(*k), *v, *i));
                }
            }
            let mut got = send;
            got.sort();
            expected.sort();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(already, expected_already);
        }
    }
}
