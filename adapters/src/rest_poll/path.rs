//! A dotted path into a JSON document: `data.items`, `$.meta.next_cursor`, `$.pages[0].id`,
//! `$["Дата изменения"]`. Enough to find the records array, the cursor field of a record and
//! the next-page token of a response; the record mapping has its own, richer language.

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A parsed path; the empty path (`""` or `$`) is the document itself.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Debug for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JsonPath({:?})", self.text)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl JsonPath {
    /// Parses `text`; the error says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let body = text.trim();
        let body = body.strip_prefix('$').unwrap_or(body);
        let chars: Vec<char> = body.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        // A leading key needs no dot: `data.items` is `$.data.items`.
        let mut expect_key = !chars.is_empty() && chars[0] != '.' && chars[0] != '[';
        while i < chars.len() || expect_key {
            if expect_key {
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                if i == start {
                    return Err(format!("empty key at character {}", start + 1));
                }
                steps.push(Step::Key(chars[start..i].iter().collect()));
                expect_key = false;
                continue;
            }
            match chars[i] {
                '.' => {
                    i += 1;
                    expect_key = true;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|&c| c == ']')
                        .map(|p| p + i)
                        .ok_or_else(|| format!("unclosed '[' at character {}", i + 1))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    let inner = inner.trim();
                    if let Some(quoted) = inner
                        .strip_prefix('"')
                        .and_then(|s| s.strip_suffix('"'))
                        .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
                    {
                        steps.push(Step::Key(quoted.to_string()));
                    } else {
                        let n = inner.parse::<usize>().map_err(|_| {
                            format!(
                                "expected an index or a quoted key in brackets at character {}",
                                i + 1
                            )
                        })?;
                        steps.push(Step::Index(n));
                    }
                    i = close + 1;
                }
                _ => return Err(format!("expected '.' or '[' at character {}", i + 1)),
            }
        }
        Ok(JsonPath {
            text: text.trim().to_string(),
            steps,
        })
    }

    /// Whether this is the document itself.
    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    /// The value at this path, if every step exists.
    pub fn find<'v>(&self, mut value: &'v Value) -> Option<&'v Value> {
        for step in &self.steps {
            value = match (step, value) {
                (Step::Key(k), Value::Object(m)) => m.get(k)?,
                (Step::Index(i), Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// Takes the value at this path out of `value` (without copying it).
    pub fn take(&self, value: &mut Value) -> Option<Value> {
        let mut cur = value;
        for step in &self.steps {
            cur = match (step, cur) {
                (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
                (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
                _ => return None,
            };
        }
        Some(cur.take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_dotted_bracketed_and_quoted_paths() {
        let doc = json!({"data": {"items": [1, 2]}, "Дата изменения": "x", "a b": {"c": true}});
        let get = |p: &str| JsonPath::parse(p).unwrap().find(&doc).cloned();
        assert_eq!(get("data.items"), Some(json!([1, 2])));
        assert_eq!(get("$.data.items[1]"), Some(json!(2)));
        assert_eq!(get("$[\"Дата изменения\"]"), Some(json!("x")));
        assert_eq!(get("Дата изменения"), Some(json!("x")));
        assert_eq!(get("$['a b'].c"), Some(json!(true)));
        assert_eq!(get("$"), Some(doc.clone()));
        assert_eq!(get(""), Some(doc.clone()));
        assert_eq!(get("data.missing"), None);
        assert_eq!(get("data.items.x"), None);
        assert!(JsonPath::parse("$").unwrap().is_root());
    }

    #[test]
    fn rejects_malformed_paths_with_position() {
        assert_eq!(
            JsonPath::parse("a..b").unwrap_err(),
            "empty key at character 3"
        );
        assert_eq!(
            JsonPath::parse("a[1").unwrap_err(),
            "unclosed '[' at character 2"
        );
        assert!(JsonPath::parse("a[x]").unwrap_err().contains("index"));
        assert!(JsonPath::parse("a.").is_err());
    }

    #[test]
    fn take_moves_the_value_out() {
        let mut doc = json!({"data": [1, 2, 3]});
        let p = JsonPath::parse("data").unwrap();
        assert_eq!(p.take(&mut doc), Some(json!([1, 2, 3])));
        assert_eq!(doc, json!({"data": null}));
    }
}
