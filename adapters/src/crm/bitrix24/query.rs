//! Bitrix24 parameters as a form-encoded query, nested keys in brackets
//! (`fields[PHONE][0][VALUE]=...`), the way PHP's `http_build_query` writes them and the
//! portal reads them. A `batch` command is `method?<query>`, and the `batch` call encodes
//! the command strings again (the double encoding the `batch` method documents).

use serde_json::{Map, Value};

/// The form-encoded query of `params`. `null` becomes an empty value, `true`/`false`
/// `Y`/`N` (Bitrix24's booleans); an empty list or object adds nothing.
pub fn encode(params: &Map<String, Value>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in params {
        push(&mut out, key, value);
    }
    out.finish()
}

/// A `batch` command: `method?query`.
pub fn command(method: &str, params: &Map<String, Value>) -> String {
    format!("{method}?{}", encode(params))
}

fn push(out: &mut form_urlencoded::Serializer<'_, String>, key: &str, value: &Value) {
    match value {
        Value::Null => {
            out.append_pair(key, "");
        }
        Value::Bool(b) => {
            out.append_pair(key, if *b { "Y" } else { "N" });
        }
        Value::Number(n) => {
            out.append_pair(key, &n.to_string());
        }
        Value::String(s) => {
            out.append_pair(key, s);
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(out, &format!("{key}[{i}]"), item);
            }
        }
        Value::Object(fields) => {
            for (k, item) in fields {
                push(out, &format!("{key}[{k}]"), item);
            }
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
    fn nested_keys_in_brackets() {
        let q = encode(&obj(json!({
            "id": 12,
            "fields": { "LAST_NAME": "Иванов & Co", "PHONE": [{ "VALUE": "+7 900", "VALUE_TYPE": "WORK" }] },
            "params": { "REGISTER_SONET_EVENT": false },
            "empty": [],
            "none": null,
        })));
        let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("fields[LAST_NAME]".to_owned(), "Иванов & Co".to_owned()),
                ("fields[PHONE][0][VALUE]".to_owned(), "+7 900".to_owned()),
                ("fields[PHONE][0][VALUE_TYPE]".to_owned(), "WORK".to_owned()),
                ("id".to_owned(), "12".to_owned()),
                ("none".to_owned(), String::new()),
                ("params[REGISTER_SONET_EVENT]".to_owned(), "N".to_owned()),
            ]
        );
        assert!(
            !q.contains('&') || !q.contains("& Co"),
            "values are encoded: {q}"
        );
    }

    #[test]
    fn commands_are_encoded_twice_inside_a_batch() {
        let cmd = command(
            "crm.contact.list",
            &obj(json!({ "filter": { "ORIGIN_ID": "a&b=c" } })),
        );
        assert_eq!(cmd, "crm.contact.list?filter%5BORIGIN_ID%5D=a%26b%3Dc");
        let batch = encode(&obj(json!({ "cmd": { "f0": cmd } })));
        let (key, value) = form_urlencoded::parse(batch.as_bytes()).next().unwrap();
        assert_eq!(key, "cmd[f0]");
        assert_eq!(value, "crm.contact.list?filter%5BORIGIN_ID%5D=a%26b%3Dc");
    }
}
