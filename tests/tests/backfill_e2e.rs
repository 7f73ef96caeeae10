//! End to end: `hub backfill` repairs a CRM that drifted behind the hub's back.
//!
//! A customer file is delivered to a sandbox CRM by `hub run`. Then the CRM loses one
//! contact and another is edited behind the hub's back (the CRM's data is moved to a second
//! sandbox without the one and with the other changed, and the config pointed at it). A
//! dry run names exactly those two and writes nothing; a 10% pilot re-sends exactly the
//! sampled ids; the full backfill repairs the CRM: every contact back with the hub's data,
//! no duplicate, no version regression. Runs on the embedded bus and on the real Kafka broker.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use adapters::crm::rest::{ContactUpsert, CrmRestClient, CrmRestConfig};
use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, hub_bin, test_bed, wait_for};
use integration_hub::backfill::Selection;
use integration_hub::demo_data::{self, Options};
use integration_hub::sandbox_crm::{SandboxCrm, StoredContact};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(180);
const SOURCE: &str = "abs-customers";
const CUSTOMERS: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_backfill_dry_run_pilot_and_full_repair_the_crm() {
    scenario(TestBus::Embedded, "hub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_backfill_dry_run_pilot_and_full_repair_the_crm() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    scenario(bus, &hub_tests::kafka::unique("backfill")).await;
}

/// Runs `hub backfill --config F --source abs-customers ARGS`; exit code, stdout, stderr.
fn backfill(config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(hub_bin())
        .args(["--log-format", "text", "backfill", "--config"])
        .arg(config)
        .args(["--source", SOURCE])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn by_key(crm: &SandboxCrm) -> BTreeMap<String, StoredContact> {
    crm.snapshot()
        .into_iter()
        .map(|c| (c.external_id.clone(), c))
        .collect()
}

async fn scenario(bus: TestBus, topic_prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (crm_a, config, _port) = test_bed(dir.path(), &bus, topic_prefix).await.unwrap();
    let inbox = dir.path().join("inbox");
    let log = dir.path().join("hub.log");

    // 1. The file reaches the first CRM.
    let data = demo_data::generate(&Options {
        customers: CUSTOMERS,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let n = data.valid_keys.len();
    let mut hub = HubProcess::start(&config, &log).unwrap();
    drop_file(&inbox, "customers_1.csv", &data.bytes).unwrap();
    wait_for("every customer in the CRM, file archived", SETTLE, || {
        hub.assert_running()?;
        Ok(crm_a.contacts_len() >= n && files_in(&inbox.join("archive"), ".csv").len() == 1)
    })
    .await
    .unwrap();
    assert!(hub.terminate(Duration::from_secs(30)).unwrap().success());
    let delivered = by_key(&crm_a);
    assert_eq!(delivered.len(), n);

    // 2. Drift: one contact lost (one the 10% pilot takes), one edited (one it does not).
    let pilot = Selection::new(None, Some(10.0)).unwrap();
    let sampled: Vec<&String> = data
        .valid_keys
        .iter()
        .filter(|k| pilot.selects(SOURCE, k))
        .collect();
    assert!((100..=300).contains(&sampled.len()), "{}", sampled.len());
    let lost = sampled[0].clone();
    let edited = data
        .valid_keys
        .iter()
        .find(|k| !pilot.selects(SOURCE, k))
        .unwrap()
        .clone();
    let edited_field = delivered[&edited]
        .fields
        .as_object()
        .and_then(|o| {
            o.iter()
                .find(|(_, v)| v.is_string())
                .map(|(k, _)| k.clone())
        })
        .unwrap();
    let crm = SandboxCrm::new().with_token("test-token");
    let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
    let copier = CrmRestClient::new(CrmRestConfig {
        token: Some("test-token".into()),
        ..CrmRestConfig::new(format!("http://{addr}"))
    })
    .unwrap();
    for c in delivered.values().filter(|c| c.external_id != lost) {
        let mut fields = c.fields.clone();
        let mut envelope_id = c.envelope_id.clone();
        if c.external_id == edited {
            fields[&edited_field] = Value::String("edited in the CRM".into());
            envelope_id = "staff-edit".into();
        }
        copier
            .upsert(&ContactUpsert {
                external_id: c.external_id.clone(),
                version: c.version,
                source: c.source.clone(),
                envelope_id,
                fields,
            })
            .await
            .unwrap();
    }
    let text = std::fs::read_to_string(&config).unwrap();
    let a_url = format!("http://{}", crm_a_addr(&text));
    std::fs::write(&config, text.replace(&a_url, &format!("http://{addr}"))).unwrap();
    let copied = crm.total_writes();
    assert_eq!(copied, (n - 1) as u64);

    // 3. Dry run: exactly the lost and the edited contact, nothing written, nothing sent.
    let (code, out, err) = backfill(&config, &["--dry-run", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let changes: Vec<(&str, &str)> = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] != "unchanged")
        .map(|r| (r["key"].as_str().unwrap(), r["action"].as_str().unwrap()))
        .collect();
    let mut expected = vec![(lost.as_str(), "create"), (edited.as_str(), "update")];
    expected.sort();
    assert_eq!(changes, expected);
    let edited_row = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == edited.as_str())
        .unwrap();
    assert_eq!(edited_row["fields"], serde_json::json!([edited_field]));
    assert!(
        !out.contains("edited in the CRM"),
        "values are never printed"
    );
    let summary = &report["summary"];
    assert_eq!(
        (summary["create"].as_u64(), summary["update"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(summary["unchanged"].as_u64(), Some((n - 2) as u64));
    assert_eq!(crm.total_writes(), copied, "a dry run writes nothing");
    // The human table names the same two.
    let (code, table, _) = backfill(&config, &["--dry-run"]);
    assert_eq!(code, 0);
    assert!(table.contains(&format!("{lost}  create")), "{table}");
    assert!(table.contains("create=1 update=1"), "{table}");

    // 4. A 10% pilot through the running hub: exactly the sampled ids are written again.
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let (code, out, err) = backfill(&config, &["--sample", "10"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("published={}", sampled.len())),
        "{out}"
    );
    let after_pilot = copied + sampled.len() as u64;
    wait_for("the pilot delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.total_writes() >= after_pilot)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        crm.total_writes(),
        after_pilot,
        "only the sample is re-sent"
    );
    let now = by_key(&crm);
    for k in &data.valid_keys {
        let expected = match (pilot.selects(SOURCE, k), k == &lost) {
            (true, true) => 1,
            (true, false) => 2,
            (false, _) => 1,
        };
        assert_eq!(now[k].writes, expected, "writes of {k}");
    }
    assert_eq!(
        now[&lost].fields, delivered[&lost].fields,
        "the lost contact is back"
    );
    assert_ne!(
        now[&edited].fields, delivered[&edited].fields,
        "not in the pilot"
    );

    // 5. The full backfill repairs the rest: every contact as the hub delivered it.
    let (code, out, err) = backfill(&config, &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains(&format!("published={n}")), "{out}");
    let after_full = after_pilot + n as u64;
    wait_for("the full backfill delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.total_writes() >= after_full)
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(crm.total_writes(), after_full);
    let repaired = by_key(&crm);
    assert_eq!(repaired.len(), n, "no duplicate, none missing");
    assert_eq!(crm.contacts_len(), n);
    for (k, c) in &delivered {
        assert_eq!(repaired[k].fields, c.fields, "{k} repaired");
        assert_eq!(repaired[k].version, c.version, "{k} version");
    }
    assert_eq!(crm.version_regressions(), 0);
    // Nothing left to repair.
    let (code, out, _) = backfill(&config, &["--dry-run", "--json"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["summary"]["unchanged"].as_u64(), Some(n as u64));
    drop(hub);
}

/// The CRM address in the config `test_bed` wrote (`base_url = "http://ADDR"`).
fn crm_a_addr(config_text: &str) -> String {
    config_text
        .lines()
        .find_map(|l| l.trim().strip_prefix("base_url = \"http://"))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .to_owned()
}

#[test]
fn configuration_errors_exit_2() {
    hub_tests::hub::init();
    let dir = tempfile::tempdir().unwrap();
    let config = hub_tests::hub::write_config(
        dir.path(),
        &TestBus::Embedded,
        "hub",
        "http://127.0.0.1:9",
        "127.0.0.1:0",
    )
    .unwrap();
    // No archive yet: nothing to read.
    let (code, _, err) = backfill(&config, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no files to read"), "{err}");
    let out = Command::new(hub_bin())
        .args(["backfill", "--config"])
        .arg(&config)
        .args(["--source", "nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source named `nope`"));
    let (code, _, err) = backfill(&config, &["--sample", "150"]);
    assert_eq!(code, 2, "{err}");
}
