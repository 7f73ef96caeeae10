//! The shipped alert rules (`deploy/prometheus/alerts.yml`) and Grafana dashboard
//! (`deploy/grafana/hub-dashboard.json`) only use metrics a hub exports: every `hub_…` name
//! in their expressions (histogram series `_bucket`, `_sum`, `_count` taken as the
//! histogram) appears in `/metrics` of a `hub run` process on the real Kafka broker after a
//! small load (valid and invalid rows, one record parked for retry, one dead letter, a DLQ
//! listing).
//!
//! No YAML crate is in the dependency tree, so the rules file is read with a documented
//! scan: the value of every `expr:` key, including a folded or literal block (`>-`, `|`)
//! made of the lines indented deeper than the key. The dashboard is JSON: every `expr`
//! string anywhere in it is taken.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::demo_data::{self, Options};

const SETTLE: Duration = Duration::from_secs(90);

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(path)
}

/// The `expr:` values of a Prometheus rules file (see the module documentation).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lines: Vec<&str> = yaml.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start().trim_start_matches("- ");
        i += 1;
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.starts_with('>') || value.starts_with('|') {
            let mut block = Vec::new();
            while i < lines.len() {
                let l = lines[i];
                let deeper = l.len() - l.trim_start().len() > indent;
                if !l.trim().is_empty() && !deeper {
                    break;
                }
                block.push(l.trim());
                i += 1;
            }
            out.push(block.join(" "));
        } else {
            out.push(value.trim_matches(|c| c == '\'' || c == '"').to_string());
        }
    }
    out
}

/// Every `expr` string in a dashboard's JSON.
fn dashboard_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

/// The `hub_…` metric names in a PromQL expression, histogram suffixes removed.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let is_name = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(at) = expr[i..].find("hub_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && is_name(bytes[end]) {
            end += 1;
        }
        // Only a whole identifier: not preceded by a name character or a `$` (a variable).
        let standalone = start == 0 || !(is_name(bytes[start - 1]) || bytes[start - 1] == b'$');
        if standalone && end > start + 4 {
            let name = &expr[start..end];
            let name = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(name.to_string());
        }
        i = end.max(start + 1);
    }
    out
}

/// Names with a `# TYPE` line or a sample in a `/metrics` text.
fn exported(metrics: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in metrics.lines() {
        let name = match line.strip_prefix("# TYPE ") {
            Some(rest) => rest.split(' ').next(),
            None if line.starts_with('#') => None,
            None => line.split(['{', ' ']).next(),
        };
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            let n = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n);
            out.insert(n.to_string());
        }
    }
    out
}

#[test]
fn the_scans_find_names_in_every_form() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: hub_a_total > 0\n      - alert: B\n        expr: >-\n          sum(rate(hub_b_seconds_bucket[5m]))\n          / hub_c{x=\"hub_not_a_metric\"}\n        for: 5m\n      - expr: 'hub_d'\n";
    let exprs = rule_exprs(yaml);
    assert_eq!(exprs.len(), 3, "{exprs:?}");
    let names: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    // A label value is scanned too: harmless, the check then demands more, never less.
    let want: BTreeSet<String> = [
        "hub_a_total",
        "hub_b_seconds",
        "hub_c",
        "hub_d",
        "hub_not_a_metric",
    ]
    .map(String::from)
    .into();
    assert_eq!(names, want);
    assert!(metric_names("label_values(hub_x, instance) $hub_y").contains("hub_x"));
    assert!(!metric_names("$hub_y").contains("hub_y"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let rules = std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/hub-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = rule_exprs(&rules);
    let rule_count = exprs.len();
    assert!(rule_count >= 8, "only {rule_count} rule expressions found");
    dashboard_exprs(&dashboard, &mut exprs);
    // Template variable queries reference metrics too.
    if let Some(vars) = dashboard["templating"]["list"].as_array() {
        exprs.extend(
            vars.iter()
                .filter_map(|v| v["query"].as_str().map(str::to_string)),
        );
    }
    let wanted: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 15, "{wanted:?}");

    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    let prefix = hub_tests::kafka::unique("assets");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, &prefix).await.unwrap();
    // An admin token, so the test can list the dead letters like an operator.
    std::fs::write(dir.path().join("admin.token"), "admin-secret").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "[http]\n",
        "[http]\nadmin_token = \"file:admin.token\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();

    let file = demo_data::generate(&Options {
        customers: 30,
        invalid_ratio: 0.1,
        resend_ratio: 0.0,
        first_id: 1,
        version: 1,
        ..Options::default()
    });
    // One customer stuck for the in-place attempts (parked, then delivered), one refused
    // for good (dead letter).
    let parked = file.valid_keys[3].clone();
    let dead = file.valid_keys[7].clone();
    crm.inject_key_status(&parked, 503, 6);
    crm.inject_key_status(&dead, 400, 1);
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &file.bytes).unwrap();
    let expected = file.valid_keys.len() - 1;
    wait_for("every deliverable customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= expected && crm.contact(&parked).is_some())
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let listing = client
        .get(format!("http://127.0.0.1:{port}/api/dlq"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert!(listing.status().is_success(), "{}", listing.status());

    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let have = exported(&metrics);
    let missing: Vec<&String> = wanted.iter().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "referenced by deploy/ but not exported: {missing:?}\n{metrics}"
    );
    eprintln!(
        "figures: {} rule expressions, {} expressions in all, {} metric names, all exported",
        rule_count,
        exprs.len(),
        wanted.len()
    );
}
