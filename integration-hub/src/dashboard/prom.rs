//! A reader of the Prometheus text exposition format (what `/metrics` serves), enough for the
//! dashboard: one [`Series`] per sample line; `# HELP`/`# TYPE` lines and timestamps are
//! ignored. Label values keep the format's escapes (`\\`, `\"`, `\n`) decoded.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",...} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Series {
    /// Whether every `(label, value)` of `want` is among this series' labels.
    pub fn has_labels(&self, want: &[(&str, &str)]) -> bool {
        want.iter()
            .all(|(k, v)| self.labels.get(*k).is_some_and(|x| x == v))
    }
}

/// A line of the exposition text that is not a sample, comment or blank line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metrics text line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// Every sample of `text`, in order.
pub fn parse(text: &str) -> Result<Vec<Series>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(parse_line(line).map_err(|reason| ParseError {
            line: i + 1,
            reason,
        })?);
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Series, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample line needs a value after the metric name")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("empty metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after) = rest.strip_prefix('{') {
        let (parsed, tail) = parse_labels(after)?;
        labels = parsed;
        rest = tail;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or_else(|| format!("metric {name}: no value"))?;
    Ok(Series {
        name: name.to_string(),
        labels,
        value: parse_value(value).ok_or_else(|| format!("metric {name}: bad value {value:?}"))?,
    })
}

/// Labels up to the closing `}`; returns them and the text after it.
fn parse_labels(mut s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(tail) = s.strip_prefix('}') {
            return Ok((labels, tail));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim().to_string();
        s = s[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or_else(|| format!("label {key}: value must be quoted"))?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            match chars.next() {
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {key}: unterminated escape")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {key}: unterminated value")),
            }
        };
        labels.insert(key, value);
        s = &s[end + 1..];
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// The sum of the series named `name` carrying `labels` (PromQL `sum(name{labels})`);
/// `None` when there is none.
pub fn sum(series: &[Series], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series
        .iter()
        .filter(|s| s.name == name && s.has_labels(labels))
        .map(|s| s.value)
        .reduce(|a, b| a + b)
}

/// The largest value among the series named `name` (PromQL `max(name)`); `None` when there is
/// none.
pub fn max(series: &[Series], name: &str) -> Option<f64> {
    series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP hub_sink_records_delivered_total Upserts the target acknowledged.
# TYPE hub_sink_records_delivered_total counter
hub_sink_records_delivered_total{sink="crm",source="abs",entity="party"} 7
hub_sink_records_delivered_total{sink="crm",source="cards",entity="party"} 3
hub_sink_records_delivered_total{sink="erp",source="abs",entity="party"} 1

hub_sync_lag_seconds_bucket{source="abs",entity="party",le="+Inf"} 10
hub_sync_lag_seconds_sum{source="abs",entity="party"} 0.125
hub_golden_published_total 4 1700000000000
hub_odd{note="a \"quoted\" \\ back\nslash, {brace}"} NaN
"#;

    #[test]
    fn reads_samples_labels_and_escapes() {
        let s = parse(TEXT).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].name, "hub_sink_records_delivered_total");
        assert_eq!(s[0].labels["source"], "abs");
        assert_eq!(s[0].value, 7.0);
        assert_eq!(s[3].labels["le"], "+Inf");
        assert_eq!(s[4].value, 0.125);
        assert_eq!(s[5].value, 4.0, "the timestamp is not the value");
        assert!(s[5].labels.is_empty());
        assert_eq!(s[6].labels["note"], "a \"quoted\" \\ back\nslash, {brace}");
        assert!(s[6].value.is_nan());
    }

    #[test]
    fn sums_by_label_subset_and_takes_max() {
        let s = parse(TEXT).unwrap();
        let d = "hub_sink_records_delivered_total";
        assert_eq!(sum(&s, d, &[]), Some(11.0));
        assert_eq!(sum(&s, d, &[("sink", "crm")]), Some(10.0));
        assert_eq!(sum(&s, d, &[("sink", "crm"), ("source", "abs")]), Some(7.0));
        assert_eq!(sum(&s, d, &[("sink", "nowhere")]), None);
        assert_eq!(sum(&s, "hub_absent_total", &[]), None);
        assert_eq!(max(&s, d), Some(7.0));
    }

    #[test]
    fn bad_lines_name_the_line_and_never_panic() {
        for (text, line) in [
            ("ok 1\nhub_x{sink=\"crm\" 1", 2),
            ("hub_x{sink=crm} 1", 1),
            ("hub_x", 1),
            ("hub_x{sink=\"a\\", 1),
            ("\n\nhub_x one", 3),
            ("{a=\"b\"} 1", 1),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
