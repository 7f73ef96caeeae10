//! End to end: a core-bank customer export (windows-1251, 10,000 customers, some invalid rows,
//! some re-sent rows) dropped into the inbox of a `hub run` process reaches the sandbox CRM
//! — every valid customer exactly once, every invalid row in quarantine with its line; the
//! same file dropped again adds nothing; a hub killed with SIGKILL in the middle of a file and
//! restarted still delivers every customer exactly once, and a SIGTERM drains cleanly.
//! Runs on the real Apache Kafka broker and on the embedded bus.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, test_bed, wait_for};
use integration_hub::demo_data::{self, Generated, Options};
use integration_hub::sandbox_crm::SandboxCrm;

const SETTLE: Duration = Duration::from_secs(240);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_file_drop_reaches_crm_exactly_once_through_redrop_and_sigkill() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    scenario(bus, &hub_tests::kafka::unique("e2e")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_file_drop_reaches_crm_exactly_once_through_redrop_and_sigkill() {
    scenario(TestBus::Embedded, "hub").await;
}

async fn scenario(bus: TestBus, topic_prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, topic_prefix).await.unwrap();
    let inbox = dir.path().join("inbox");
    let log = dir.path().join("hub.log");

    // 1. 10,000 customers, every valid one exactly once; invalid rows quarantined by line.
    let first = demo_data::generate(&Options {
        customers: 10_000,
        ..Options::default()
    });
    assert!(first.invalid.len() > 100 && first.resent > 20);
    let mut hub = HubProcess::start(&config, &log).unwrap();
    drop_file(&inbox, "customers_1.csv", &first.bytes).unwrap();
    wait_for(
        "first file archived and all valid customers in the CRM",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(crm.contacts_len() >= first.valid_keys.len()
                && files_in(&inbox.join("archive"), ".csv").len() == 1)
        },
    )
    .await
    .unwrap();
    assert_exactly_once(&crm, &[&first]);
    assert_eq!(
        crm.total_writes(),
        first.valid_keys.len() as u64,
        "re-sent rows must not cause CRM writes"
    );
    assert_quarantine(&inbox, "customers_1.csv", &first);

    // /metrics shows what happened, with the sync-lag histogram.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("hub_sync_lag_seconds_bucket{source=\"abs-customers\",entity=\"party\"")
            || metrics
                .contains("hub_sync_lag_seconds_bucket{entity=\"party\",source=\"abs-customers\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("hub_sink_records_delivered_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hub_source_records_quarantined_total"),
        "{metrics}"
    );

    // 2. The same file dropped again: recognised by its checksum, nothing ingested.
    drop_file(&inbox, "customers_1_again.csv", &first.bytes).unwrap();
    wait_for("re-dropped file archived", SETTLE, || {
        hub.assert_running()?;
        Ok(files_in(&inbox.join("archive"), ".csv").len() == 2)
    })
    .await
    .unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("file_duplicate"),
        "no duplicate-file log line"
    );
    assert_eq!(crm.total_writes(), first.valid_keys.len() as u64);
    assert_eq!(crm.contacts_len(), first.valid_keys.len());

    // 3. SIGKILL in the middle of a second file, then a restart: still exactly once.
    let second = demo_data::generate(&Options {
        customers: 10_000,
        first_id: 1_000_001,
        seed: 99,
        ..Options::default()
    });
    drop_file(&inbox, "customers_2.csv", &second.bytes).unwrap();
    let before = crm.contacts_len();
    wait_for("part of the second file delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= before + 300)
    })
    .await
    .unwrap();
    hub.kill9().unwrap();
    let at_kill = crm.contacts_len() - before;
    assert!(
        at_kill < second.valid_keys.len(),
        "the kill came after the whole file was delivered; nothing was tested"
    );
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_for("second file fully delivered after restart", SETTLE, || {
        hub.assert_running()?;
        Ok(
            crm.contacts_len() >= first.valid_keys.len() + second.valid_keys.len()
                && files_in(&inbox.join("archive"), ".csv").len() == 3,
        )
    })
    .await
    .unwrap();
    assert_exactly_once(&crm, &[&first, &second]);
    assert!(files_in(&inbox.join("processing"), ".csv").is_empty());
    assert_quarantine(&inbox, "customers_2.csv", &second);
    // A write can repeat only for keys the CRM acknowledged but the hub had not yet recorded
    // when it died: at most one group of 32 plus the 16 requests in flight. Each repeat is a
    // PUT of the very same envelope (the CRM counts it as a replay), so the data is the same.
    let expected_writes = (first.valid_keys.len() + second.valid_keys.len()) as u64;
    let repeats = crm.total_writes() - expected_writes;
    eprintln!(
        "delivered {at_kill} of the second file before SIGKILL; repeated CRM writes after restart: {repeats}"
    );
    assert!(repeats <= 48, "{repeats} repeated writes");
    assert_eq!(
        crm.stats().replays,
        repeats,
        "a repeated write carried other data"
    );

    // 3b. SIGKILL while the source is still reading a file (it sits in processing/): the
    // restarted hub takes the file over from processing/ and reads it again from the start.
    let third = demo_data::generate(&Options {
        customers: 10_000,
        first_id: 2_000_001,
        seed: 7,
        ..Options::default()
    });
    let before_third = crm.total_writes();
    drop_file(&inbox, "customers_3.csv", &third.bytes).unwrap();
    wait_for("third file claimed", SETTLE, || {
        hub.assert_running()?;
        Ok(!files_in(&inbox.join("processing"), ".csv").is_empty())
    })
    .await
    .unwrap();
    hub.kill9().unwrap();
    assert_eq!(
        files_in(&inbox.join("processing"), ".csv").len(),
        1,
        "the kill came after the file was finished; nothing was tested"
    );
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let all = first.valid_keys.len() + second.valid_keys.len() + third.valid_keys.len();
    wait_for("third file delivered after restart", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= all && files_in(&inbox.join("archive"), ".csv").len() == 4)
    })
    .await
    .unwrap();
    assert_exactly_once(&crm, &[&first, &second, &third]);
    assert_quarantine(&inbox, "customers_3.csv", &third);
    let repeats = crm.total_writes() - before_third - third.valid_keys.len() as u64;
    eprintln!("repeated CRM writes after a SIGKILL during reading: {repeats}");
    assert!(repeats <= 48, "{repeats} repeated writes");

    // 4. SIGTERM drains and exits 0; the next start has nothing left to do.
    let status = hub.terminate(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "hub exited with {status} after SIGTERM");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("\"stopped\""), "no clean stop logged");
    assert_no_pii(&log_text, &[&first, &second, &third]);
}

/// Every valid customer of `files` is in the CRM exactly once, with no version regression.
fn assert_exactly_once(crm: &SandboxCrm, files: &[&Generated]) {
    let mut expected = 0;
    for g in files {
        for k in &g.valid_keys {
            assert!(
                crm.contact(k).is_some(),
                "customer {k} missing from the CRM"
            );
        }
        expected += g.valid_keys.len();
    }
    assert_eq!(crm.contacts_len(), expected, "unexpected extra contacts");
    assert_eq!(crm.version_regressions(), 0);
}

/// The quarantine file lists exactly the generated invalid rows, by line and field.
fn assert_quarantine(inbox: &Path, file: &str, g: &Generated) {
    let path = inbox
        .join("quarantine")
        .join(format!("{file}.quarantine.csv"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut found: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for line in text.lines().skip(1) {
        let mut parts = line.splitn(3, ';');
        let (Some(no), Some(field)) = (parts.next(), parts.next()) else {
            panic!("malformed quarantine line: {line}");
        };
        found
            .entry(no.parse().unwrap())
            .or_default()
            .push(field.to_string());
    }
    let lines: Vec<u64> = found.keys().copied().collect();
    let expected: Vec<u64> = g.invalid.keys().copied().collect();
    assert_eq!(
        lines, expected,
        "quarantined lines differ from the invalid rows"
    );
    for (line, field) in &g.invalid {
        assert!(
            found[line].iter().any(|f| f == field),
            "line {line}: expected field {field}, got {:?}",
            found[line]
        );
    }
}

/// No e-mail address or phone number of the generated customers appears in the log.
fn assert_no_pii(log: &str, files: &[&Generated]) {
    let text = files
        .iter()
        .map(|g| encoding_rs::WINDOWS_1251.decode(&g.bytes).0.into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    for row in text.lines().skip(1).take(2000) {
        let cells: Vec<&str> = row.split(';').collect();
        for idx in [3, 7, 8, 12, 13] {
            if let Some(v) = cells.get(idx).filter(|v| v.len() >= 6) {
                assert!(
                    !log.contains(v),
                    "personal data from column {idx} found in the log"
                );
            }
        }
    }
}
