//! Bank files end to end on the real Apache Kafka broker: an ISO 20022 camt.053 statement, a
//! SWIFT MT940 statement and a 1C ClientBankExchange file dropped into three file-drop
//! sources reach the sandbox CRM — every account, balance, statement and transaction the
//! readers find, exactly once — while the CRM answers the first requests with 503s; a pain.001
//! dropped by mistake into the camt inbox ends in `failed/` with a reason, and the same camt
//! file dropped again adds nothing.
//!
//! The expected records are counted by reading the same files with the readers in this
//! process, so the test checks the pipeline (nothing lost, nothing doubled), not the parsers
//! (their own tests do).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use adapters::formats::FormatConfig;
use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, test_bed, wait_for};

const SETTLE: Duration = Duration::from_secs(120);

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../adapters/tests/data")
        .join(name)
}

/// Keys of every record the reader yields for `file`.
fn keys(format: &str, file: &Path) -> BTreeSet<String> {
    let cfg: FormatConfig = toml::from_str(&format!("format = \"{format}\"")).unwrap();
    cfg.open(file)
        .unwrap()
        .map(|r| r.expect("sample reads without errors").record.key())
        .collect()
}

fn source(name: &str, inbox: &str, pattern: &str, format: &str) -> String {
    format!(
        r#"
[[sources]]
name = "{name}"
kind = "file_drop"

[sources.file_drop]
inbox = "{inbox}"
pattern = "{pattern}"
done_marker = ".done"
poll_interval_ms = 100

[sources.reader]
format = "{format}"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bank_files_reach_crm_exactly_once() {
    let prefix = hub_tests::kafka::unique("bankfiles");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _port) = test_bed(
        dir.path(),
        &TestBus::Kafka {
            bootstrap: hub_tests::kafka::bootstrap(),
        },
        &prefix,
    )
    .await
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "kind = \"crm_rest\"\n",
        "kind = \"crm_rest\"\nentities = [\"account\", \"balance\", \"statement\", \"transaction\"]\n",
    );
    let mut text = text;
    text.push_str(&source("bank-camt", "camt", "*.xml", "camt"));
    text.push_str(&source("bank-mt940", "mt940", "*.sta", "mt940"));
    text.push_str(&source("bank-1c", "onec", "*.txt", "one_c"));
    std::fs::write(&config, text).unwrap();
    for d in ["camt", "mt940", "onec"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }

    let camt = data("genkgo_camt053.v2.minimal.xml");
    let mt940 = data("mt940_abnamro_mt940.sta");
    let onec = data("dronm_clbnk_to_bank.txt");
    let mut expected = BTreeSet::new();
    for (format, file) in [("camt", &camt), ("mt940", &mt940), ("one_c", &onec)] {
        let k = keys(format, file);
        assert!(!k.is_empty(), "{} yields records", file.display());
        expected.extend(k);
    }

    assert!(expected.len() >= 10, "{} records", expected.len());
    // The CRM is unavailable for the first requests: they are retried.
    crm.inject_status(503, 5);
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let drop = |inbox: &str, name: &str, src: &Path| {
        drop_file(&dir.path().join(inbox), name, &std::fs::read(src).unwrap()).unwrap();
        std::fs::write(dir.path().join(inbox).join(format!("{name}.done")), b"").unwrap();
    };
    drop("camt", "statement.xml", &camt);
    drop("mt940", "statement.sta", &mt940);
    drop("onec", "exchange.txt", &onec);
    drop(
        "camt",
        "payment.xml",
        &data("iso20022js_example_sepa_pain_001_v3.xml"),
    );
    wait_for(
        "every bank record in the CRM and every file settled",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(crm.contacts_len() >= expected.len()
                && files_in(&dir.path().join("camt/archive"), ".xml").len() == 1
                && files_in(&dir.path().join("camt/failed"), ".xml").len() == 1
                && files_in(&dir.path().join("mt940/archive"), ".sta").len() == 1
                && files_in(&dir.path().join("onec/archive"), ".txt").len() == 1)
        },
    )
    .await
    .unwrap();
    assert_eq!(
        crm.pending_faults(),
        0,
        "the injected 503s were answered and retried"
    );
    let delivered: BTreeSet<String> = crm.snapshot().into_iter().map(|c| c.external_id).collect();
    assert_eq!(
        delivered, expected,
        "every record exactly once, nothing else"
    );
    assert_eq!(
        crm.total_writes(),
        expected.len() as u64,
        "no record written twice"
    );
    let reason =
        std::fs::read_to_string(dir.path().join("camt/failed/payment.xml.error.txt")).unwrap();
    assert!(reason.contains("payment.xml"), "{reason}");

    // The same statement again: recognised by its checksum, nothing new is written.
    drop("camt", "statement_again.xml", &camt);
    wait_for("the repeated statement archived", SETTLE, || {
        hub.assert_running()?;
        Ok(files_in(&dir.path().join("camt/archive"), ".xml").len() == 2)
    })
    .await
    .unwrap();
    assert_eq!(crm.total_writes(), expected.len() as u64);
    hub.terminate(Duration::from_secs(30)).unwrap();
}
