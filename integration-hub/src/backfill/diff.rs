//! Which fields of a contact differ between what the hub would write and what the CRM
//! holds: field NAMES only (dotted for nested objects: `address.city`), never values. A
//! field that is `null` on one side and absent on the other is the same; a list is compared
//! whole and named once.

use serde_json::{Map, Value};

/// The names of the fields that differ, sorted.
pub fn changed_fields(want: &Map<String, Value>, have: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    walk("", want, have, &mut out);
    out.sort();
    out
}

fn walk(prefix: &str, want: &Map<String, Value>, have: &Map<String, Value>, out: &mut Vec<String>) {
    let null = Value::Null;
    let names = want
        .keys()
        .chain(have.keys().filter(|k| !want.contains_key(*k)));
    for name in names {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let (a, b) = (
            want.get(name).unwrap_or(&null),
            have.get(name).unwrap_or(&null),
        );
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => walk(&path, a, b, out),
            (a, b) if a == b => {}
            _ => out.push(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn names_only_nested_and_nulls() {
        let want = obj(json!({
            "last_name": "Иванов", "phone": "+7999", "email": null,
            "address": {"city": "Москва", "street": "Ленина"}, "ids": [1, 2]
        }));
        let same = want.clone();
        assert!(changed_fields(&want, &same).is_empty());
        let have = obj(json!({
            "last_name": "Петров", "phone": "+7999",
            "address": {"city": "Тверь", "street": "Ленина"}, "ids": [2, 1], "extra": 1
        }));
        assert_eq!(
            changed_fields(&want, &have),
            ["address.city", "extra", "ids", "last_name"]
        );
        // Nothing but names comes out.
        let text = format!("{:?}", changed_fields(&want, &have));
        assert!(!text.contains("Петров") && !text.contains("Тверь"));
        // An object against a scalar is one change.
        let flat = obj(json!({"address": "Москва, Ленина"}));
        let nested = obj(json!({"address": {"city": "Москва"}}));
        assert_eq!(changed_fields(&nested, &flat), ["address"]);
    }
}
