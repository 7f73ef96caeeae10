//! A small JSON path: `$` (the record), `.name`, `["quoted name"]`, `[N]` and `[*]`.
//!
//! Contract:
//! - `.name` takes any characters but `.`, `[`, `]`, quotes and whitespace, so keys in
//!   Cyrillic (`$.клиент.фамилия`) need no quoting; other keys are quoted:
//!   `$["Дата рождения"]`, `$['a.b']` (`\"`, `\'` and `\\` escape inside quotes).
//! - `[N]` is the N-th (0-based) element; `[*]` is every element, at most once per path.
//! - A value that is not an array counts as a one-element array for `[0]` and `[*]`: XML
//!   converted to JSON gives an object where a repeated element occurs once.
//! - A missing key or index, or a step into a value that is not an object, is absent
//!   (`None`), never an error.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
    /// Every array element.
    All,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
    /// Where `[*]` is, if anywhere.
    wildcard: Option<usize>,
}

impl JsonPath {
    /// Parses a path; the error says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let chars: Vec<char> = text.trim().chars().collect();
        if chars.first() != Some(&'$') {
            return Err("a path must start with `$`".into());
        }
        let mut steps = Vec::new();
        let mut wildcard = None;
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    let start = i + 1;
                    let mut end = start;
                    while end < chars.len() && is_name_char(chars[end]) {
                        end += 1;
                    }
                    if end == start {
                        return Err(format!("empty name after `.` at character {}", i + 1));
                    }
                    steps.push(Step::Key(chars[start..end].iter().collect()));
                    i = end;
                }
                '[' => {
                    let (step, next) = bracket(&chars, i)?;
                    if step == Step::All {
                        if wildcard.is_some() {
                            return Err("at most one `[*]` per path".into());
                        }
                        wildcard = Some(steps.len());
                    }
                    steps.push(step);
                    i = next;
                }
                c => {
                    return Err(format!(
                        "expected `.` or `[` at character {}, found {}",
                        i + 1,
                        describe(c)
                    ));
                }
            }
        }
        Ok(JsonPath { steps, wildcard })
    }

    /// Whether the path has `[*]` (selects several values).
    pub fn has_wildcard(&self) -> bool {
        self.wildcard.is_some()
    }

    /// The steps of the path.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The one value at the path (for a `[*]` path, the first element's).
    pub fn get<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        walk(root, &self.steps)
    }

    /// Every value at the path, in order: for a `[*]` path one entry per element (`None`
    /// where the rest of the path is absent, so entries of two paths over the same array
    /// line up); otherwise one entry. Appends to `out`.
    pub fn select<'a>(&self, root: &'a Value, out: &mut Vec<Option<&'a Value>>) {
        let Some(w) = self.wildcard else {
            out.push(self.get(root));
            return;
        };
        let Some(list) = walk(root, &self.steps[..w]) else {
            return;
        };
        let rest = &self.steps[w + 1..];
        match list {
            Value::Array(items) => out.extend(items.iter().map(|item| walk(item, rest))),
            Value::Null => {}
            one => out.push(walk(one, rest)),
        }
    }
}

fn walk<'a>(mut cur: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for step in steps {
        cur = match (step, cur) {
            (Step::Key(k), Value::Object(m)) => m.get(k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            (Step::All, Value::Array(a)) => a.first()?,
            (Step::Index(0) | Step::All, Value::Null) => return None,
            (Step::Index(0) | Step::All, one) => one,
            _ => return None,
        };
    }
    Some(cur)
}

fn is_name_char(c: char) -> bool {
    !(c == '.' || c == '[' || c == ']' || c == '"' || c == '\'' || c.is_whitespace())
}

fn describe(c: char) -> String {
    if c.is_whitespace() {
        "whitespace".into()
    } else {
        format!("`{c}`")
    }
}

/// Parses the bracket step starting at `chars[open]` (`[`); returns it and the index after `]`.
fn bracket(chars: &[char], open: usize) -> Result<(Step, usize), String> {
    let at = |i: usize| format!("at character {}", i + 1);
    let mut i = open + 1;
    match chars.get(i) {
        Some('*') => {
            if chars.get(i + 1) != Some(&']') {
                return Err(format!("expected `]` after `[*` {}", at(i + 1)));
            }
            Ok((Step::All, i + 2))
        }
        Some(&q) if q == '"' || q == '\'' => {
            let mut name = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unclosed quote opened {}", at(open + 1))),
                    Some('\\') => match chars.get(i + 1) {
                        Some(&e) if e == '\\' || e == '"' || e == '\'' => {
                            name.push(e);
                            i += 2;
                        }
                        _ => return Err(format!("unknown escape {}", at(i))),
                    },
                    Some(&c) if c == q => break,
                    Some(&c) => {
                        name.push(c);
                        i += 1;
                    }
                }
            }
            if chars.get(i + 1) != Some(&']') {
                return Err(format!("expected `]` after the quoted name {}", at(i + 1)));
            }
            Ok((Step::Key(name), i + 2))
        }
        Some(c) if c.is_ascii_digit() => {
            let start = i;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            if chars.get(i) != Some(&']') {
                return Err(format!("expected `]` after the index {}", at(i)));
            }
            let digits: String = chars[start..i].iter().collect();
            let index = digits
                .parse::<usize>()
                .map_err(|_| format!("index too large {}", at(start)))?;
            Ok((Step::Index(index), i + 1))
        }
        _ => Err(format!(
            "expected a number, `*` or a quoted name after `[` {}",
            at(open)
        )),
    }
}
