//! End to end: `hub reconcile` compares the core bank (a file source) with the sandbox CRM
//! by per-record hashes, finds every difference planted behind the hub's back, and its
//! `--ids-out` file repairs them through `hub backfill --ids-file`. Then the scheduled side:
//! a run started through the API, read back through the API, and the metrics it sets.
//! Embedded bus; every wait is bounded.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use adapters::crm::rest::{ContactUpsert, CrmRestClient, CrmRestConfig};
use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, hub_bin, test_bed, wait_for};
use integration_hub::demo_data::{self, Options};
use integration_hub::sandbox_crm::SandboxCrm;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(180);
const SOURCE: &str = "abs-customers";

/// Runs `hub reconcile --config F --source abs-customers ARGS`; exit code, stdout, stderr.
fn reconcile(config: &Path, args: &[&str]) -> (i32, String, String) {
    run_hub(config, "reconcile", args)
}

fn run_hub(config: &Path, command: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(hub_bin())
        .args(["--log-format", "text", command, "--config"])
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

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

fn counts(report: &Value) -> [u64; 6] {
    let c = &report["counts"];
    ["bank", "crm", "matched", "missing", "extra", "different"].map(|k| c[k].as_u64().unwrap())
}

/// A file of `customers` delivered by `hub run` into the test bed's CRM; the hub stopped.
async fn delivered(dir: &Path, config: &Path, crm: &SandboxCrm, customers: usize) -> Vec<String> {
    let data = demo_data::generate(&Options {
        customers,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let inbox = dir.join("inbox");
    let mut hub = HubProcess::start(config, &dir.join("hub.log")).unwrap();
    drop_file(&inbox, "customers_1.csv", &data.bytes).unwrap();
    let n = data.valid_keys.len();
    wait_for("every customer in the CRM, file archived", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= n && files_in(&inbox.join("archive"), ".csv").len() == 1)
    })
    .await
    .unwrap();
    assert!(hub.terminate(Duration::from_secs(30)).unwrap().success());
    data.valid_keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_finds_every_planted_difference_and_the_ids_file_repairs_them() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let keys = delivered(dir.path(), &config, &crm, 500).await;
    assert_eq!(keys.len(), 500);

    // 1. A clean run: 500 matched and nothing else.
    let started = std::time::Instant::now();
    let (code, out, err) = reconcile(&config, &["--json"]);
    eprintln!("clean reconcile of 500: {:?}", started.elapsed());
    assert_eq!(code, 0, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts(&report), [500, 500, 500, 0, 0, 0]);
    assert!(
        err.contains("reconcile: read 500"),
        "progress on stderr: {err}"
    );
    let (code, text, _) = reconcile(&config, &[]);
    assert_eq!(code, 0);
    assert!(text.contains("clean: the CRM holds exactly"), "{text}");

    // 2. Behind the hub's back: 3 contacts deleted, a bank-mastered field of 2 edited, 2
    //    contacts the bank never had.
    let lost: Vec<String> = [3, 100, 499].iter().map(|i| keys[*i].clone()).collect();
    for k in &lost {
        assert!(crm.delete_contact(k).is_some());
    }
    let edited: Vec<String> = [7, 250].iter().map(|i| keys[*i].clone()).collect();
    let staff = CrmRestClient::new(CrmRestConfig {
        token: Some("test-token".into()),
        ..CrmRestConfig::new(crm_url(&config))
    })
    .unwrap();
    let mut edited_field = String::new();
    for k in &edited {
        let c = crm.contact(k).unwrap();
        let mut fields = c.fields.clone();
        edited_field = fields
            .as_object()
            .and_then(|o| {
                o.iter()
                    .find(|(_, v)| v.is_string())
                    .map(|(f, _)| f.clone())
            })
            .unwrap();
        fields[&edited_field] = json!("edited in the CRM");
        staff
            .upsert(&ContactUpsert {
                external_id: k.clone(),
                version: c.version,
                source: c.source.clone(),
                envelope_id: format!("staff-edit-{k}"),
                fields,
            })
            .await
            .unwrap();
    }
    let extra = ["X-EXTRA-1".to_owned(), "X-EXTRA-2".to_owned()];
    for k in &extra {
        staff
            .upsert(&ContactUpsert {
                external_id: k.clone(),
                version: 1,
                source: SOURCE.into(),
                envelope_id: format!("staff-new-{k}"),
                fields: json!({ "last_name": "Nobody" }),
            })
            .await
            .unwrap();
    }
    // A contact of another source is not this source's business.
    staff
        .upsert(&ContactUpsert {
            external_id: "OTHER-1".into(),
            version: 1,
            source: "cards".into(),
            envelope_id: "other".into(),
            fields: json!({}),
        })
        .await
        .unwrap();

    // 3. The report names exactly those ids.
    let ids_file = dir.path().join("repair.ids");
    let ids_arg = ids_file.to_str().unwrap();
    let (code, out, err) = reconcile(&config, &["--json", "--ids-out", ids_arg]);
    assert_eq!(code, 1, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let mut want_lost = lost.clone();
    want_lost.sort();
    let mut want_edited = edited.clone();
    want_edited.sort();
    assert_eq!(strings(&report["missing"]), want_lost);
    assert_eq!(strings(&report["extra"]), extra);
    let different: Vec<(String, Vec<String>)> = report["different"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["id"].as_str().unwrap().to_owned(), strings(&d["fields"])))
        .collect();
    let want: Vec<(String, Vec<String>)> = want_edited
        .iter()
        .map(|k| (k.clone(), vec![edited_field.clone()]))
        .collect();
    assert_eq!(different, want);
    assert_eq!(counts(&report), [500, 499, 495, 3, 2, 2]);
    assert!(
        !out.contains("edited in the CRM") && !out.contains("Nobody"),
        "ids only"
    );
    let (code, text, _) = reconcile(&config, &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains(&format!("  {}  {edited_field}", want_edited[0])),
        "{text}"
    );
    let listed: BTreeSet<String> = std::fs::read_to_string(&ids_file)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    let expected: BTreeSet<String> = lost.iter().chain(&edited).cloned().collect();
    assert_eq!(listed, expected, "missing and different, not extra");

    // 4. The natural repair: a backfill of those ids through the running hub.
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let (code, out, err) = run_hub(&config, "backfill", &["--ids-file", ids_arg]);
    assert_eq!(code, 0, "{out}\n{err}");
    wait_for("the lost and edited contacts repaired", SETTLE, || {
        hub.assert_running()?;
        let back = lost.iter().all(|k| crm.contact(k).is_some());
        let fixed = edited.iter().all(|k| {
            crm.contact(k)
                .is_some_and(|c| c.fields[&edited_field] != json!("edited in the CRM"))
        });
        Ok(back && fixed)
    })
    .await
    .unwrap();
    assert!(hub.terminate(Duration::from_secs(30)).unwrap().success());

    // 5. Only the two extras are left.
    let (code, out, err) = reconcile(&config, &["--json"]);
    assert_eq!(code, 1, "{out}\n{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(counts(&report), [500, 502, 500, 0, 2, 0]);
    assert_eq!(strings(&report["extra"]), extra);
}

/// The CRM address in the config `test_bed` wrote.
fn crm_url(config: &Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("base_url = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_through_the_api_is_stored_and_sets_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    std::fs::write(dir.path().join("admin.token"), "admin-secret").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    let text =
        text.replace(
            &listen,
            &format!("{listen}admin_token = \"file:admin.token\"\n"),
        ) + &format!("\n[reconcile]\nsource = \"{SOURCE}\"\nsink = \"crm\"\nevery_secs = 3600\n");
    std::fs::write(&config, text).unwrap();
    let keys = delivered(dir.path(), &config, &crm, 50).await;

    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_for("the hub answers", SETTLE, || {
        hub.assert_running()?;
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await
    .unwrap();
    let runs = format!("{base}/api/reconcile/runs");
    let anonymous = http.post(&runs).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let started = http
        .post(&runs)
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let id = started.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut run = Value::Null;
    for _ in 0..1200 {
        hub.assert_running().unwrap();
        let got = http
            .get(format!("{runs}/{id}"))
            .bearer_auth("admin-secret")
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200);
        run = got.json().await.unwrap();
        if run.get("outcome").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["outcome"], "clean", "{run}");
    assert_eq!(run["trigger"], "api");
    assert_eq!(counts(&run["report"]), [50, 50, 50, 0, 0, 0]);
    assert_eq!(keys.len(), 50);

    let list: Value = http
        .get(&runs)
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["running"].is_null(), "{list}");
    assert_eq!(list["runs"][0]["id"], id.as_str());
    assert!(
        list["runs"][0]["report"].get("missing").is_none(),
        "summaries carry no ids"
    );
    let missing = http
        .get(format!("{runs}/20000101T000000000Z"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert!(
        dir.path()
            .join(format!("var/reconcile/{id}.json"))
            .is_file()
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "hub_reconcile_records{result=\"matched\"} 50",
        "hub_reconcile_records{result=\"missing\"} 0",
        "hub_reconcile_records{result=\"extra\"} 0",
        "hub_reconcile_records{result=\"different\"} 0",
        "hub_reconcile_runs_total{outcome=\"clean\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hub_reconcile_last_run_timestamp_seconds ")),
        "{metrics}"
    );
    // The OpenAPI document lists the routes.
    let doc: Value = http
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/reconcile/runs/{id}"].is_object());
    assert!(hub.terminate(Duration::from_secs(30)).unwrap().success());
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
    std::fs::write(dir.path().join("crm.token"), "t").unwrap();
    let (code, _, err) = reconcile(&config, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no files to read"), "{err}");
    let (code, _, err) = reconcile(&config, &["--sink", "nope"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no sink named `nope`"), "{err}");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[master_data]\n")).unwrap();
    let (code, _, err) = reconcile(&config, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without [master_data]"), "{err}");
}
