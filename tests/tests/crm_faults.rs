//! The CRM misbehaves — 5xx, 429 with Retry-After, answers slower than the timeout, a full
//! outage, a record it rejects for good — and the hub still delivers every valid customer
//! exactly once, dead-letters the rejected one with a reason, and never lets an older version
//! overwrite a newer one.

use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, test_bed, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::embedded::EmbeddedBus;
use integration_hub::demo_data::{self, Options};
use integration_hub::sandbox_crm::SandboxCrm;

const SETTLE: Duration = Duration::from_secs(180);

/// A test bed whose sink gives up its in-place retries quickly, so an outage outlasts them.
async fn setup(dir: &Path) -> (SandboxCrm, std::path::PathBuf) {
    let (crm, config, _) = test_bed(dir, &TestBus::Embedded, "hub").await.unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_attempts = 6", "max_attempts = 3\ntimeout_ms = 1000");
    std::fs::write(&config, text).unwrap();
    (crm, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_and_an_outage_delay_delivery_but_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config) = setup(dir.path()).await;
    let g = demo_data::generate(&Options {
        customers: 1500,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });

    // Before anything arrives: a run of 5xx and rate limits, one permanent rejection, answers
    // slower than the client's timeout (the CRM applies those writes; the hub cannot know),
    // then a full outage that outlasts the in-place retries: 120 requests answered 503. A
    // pass that sees the CRM down stops after 16 keys failed (at least 48 requests each
    // pass), so the outage is over within three passes or the circuit's first probes.
    crm.inject_status(503, 20);
    crm.inject_rate_limit(1, 5);
    crm.inject_status(422, 1);
    crm.inject_delay(Duration::from_millis(1500), 3);
    crm.inject_status(503, 120);

    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let inbox = dir.path().join("inbox");
    drop_file(&inbox, "customers.csv", &g.bytes).unwrap();
    wait_for("every injected fault served", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.pending_faults() == 0)
    })
    .await
    .unwrap();
    wait_for("all but the rejected customer delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= g.valid_keys.len() - 1)
    })
    .await
    .unwrap();
    assert_eq!(crm.contacts_len(), g.valid_keys.len() - 1);
    assert_eq!(crm.version_regressions(), 0);
    let missing: Vec<&String> = g
        .valid_keys
        .iter()
        .filter(|k| crm.contact(k).is_none())
        .collect();
    assert_eq!(missing.len(), 1);

    // The rejected record is in the dead-letter topic, with where it came from and why.
    let bus = EmbeddedBus::open(&dir.path().join("var").join("bus.db"), 4).unwrap();
    let mut dlq = bus.subscribe("test-reader", "hub.dlq").await.unwrap();
    let mut letters = Vec::new();
    wait_for_async(&mut letters, &mut *dlq).await;
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(&letter.key, missing[0]);
    assert!(
        letter.header("error").unwrap().contains("422"),
        "{letter:?}"
    );
    // The rejected request may have been a retry of one that met a 503 or a 429 first.
    let attempts: u32 = letter.header("attempts").unwrap().parse().unwrap();
    assert!((1..=3).contains(&attempts), "attempts {attempts}");
    for h in [
        "origin_topic",
        "origin_partition",
        "origin_offset",
        "sink",
        "id",
        "source",
    ] {
        assert!(letter.header(h).is_some(), "dead letter lacks header {h}");
    }
    // Everything is committed before the crash, so nothing is re-delivered after it.
    wait_for_committed(&bus, g.valid_keys.len() as i64).await;
    let writes_before = crm.total_writes();
    drop(hub);
    drop_file(&inbox, "customers_again.csv", &g.bytes).unwrap();
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    wait_for("re-drop archived", SETTLE, || {
        hub.assert_running()?;
        Ok(files_in(&inbox.join("archive"), ".csv").len() == 2)
    })
    .await
    .unwrap();
    assert_eq!(
        crm.total_writes(),
        writes_before,
        "the re-drop wrote to the CRM"
    );
}

async fn wait_for_async(
    out: &mut Vec<integration_hub::bus::Record>,
    consumer: &mut dyn integration_hub::bus::Consumer,
) {
    let deadline = std::time::Instant::now() + SETTLE;
    while out.is_empty() && std::time::Instant::now() < deadline {
        out.extend(consumer.poll(10, Duration::from_millis(200)).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_version_never_overwrites_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config) = setup(dir.path()).await;
    let opts = Options {
        customers: 300,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    };
    let newer = demo_data::generate(&Options { version: 7, ..opts });
    let older = demo_data::generate(&Options { version: 3, ..opts });
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let inbox = dir.path().join("inbox");
    drop_file(&inbox, "newer.csv", &newer.bytes).unwrap();
    wait_for("newer file delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() == newer.valid_keys.len())
    })
    .await
    .unwrap();
    let writes = crm.total_writes();
    // The core bank re-exports an older state of the same customers (a late file).
    drop_file(&inbox, "older.csv", &older.bytes).unwrap();
    wait_for("older file archived", SETTLE, || {
        hub.assert_running()?;
        Ok(files_in(&inbox.join("archive"), ".csv").len() == 2)
    })
    .await
    .unwrap();
    // Give the sink the chance to (wrongly) write: wait until it committed the older events.
    let bus = EmbeddedBus::open(&dir.path().join("var").join("bus.db"), 4).unwrap();
    wait_for_committed(
        &bus,
        (newer.valid_keys.len() + older.valid_keys.len()) as i64,
    )
    .await;
    assert_eq!(crm.total_writes(), writes, "an older version was written");
    assert_eq!(crm.version_regressions(), 0);
    for k in &newer.valid_keys {
        assert_eq!(crm.contact(k).unwrap().version, 7);
    }
}

/// Waits until the sink's group has committed `n` events in total.
async fn wait_for_committed(bus: &EmbeddedBus, n: i64) {
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let committed: i64 = bus
            .committed("hub-sink-crm", "hub.canonical")
            .await
            .unwrap()
            .values()
            .sum();
        if committed >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sink committed {committed} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credentials_pause_the_sink_and_dead_letter_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config) = setup(dir.path()).await;
    // The CRM's token was rotated and the hub still has the old one.
    crm.set_token(Some("rotated".into()));
    let g = demo_data::generate(&Options {
        customers: 200,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &g.bytes).unwrap();
    wait_for("the sink reports rejected credentials", SETTLE, || {
        hub.assert_running()?;
        Ok(std::fs::read_to_string(&log)?.contains("sink_credentials_rejected"))
    })
    .await
    .unwrap();
    assert_eq!(crm.contacts_len(), 0);

    // The operator fixes the credentials on the CRM side; delivery resumes by itself.
    crm.set_token(Some("test-token".into()));
    wait_for("every customer delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() == g.valid_keys.len())
    })
    .await
    .unwrap();
    let bus = EmbeddedBus::open(&dir.path().join("var").join("bus.db"), 4).unwrap();
    wait_for_committed(&bus, g.valid_keys.len() as i64).await;
    let mut dlq = bus.subscribe("test-reader", "hub.dlq").await.unwrap();
    let letters = dlq.poll(10, Duration::from_millis(300)).await.unwrap();
    assert!(
        letters.is_empty(),
        "{} records dead-lettered",
        letters.len()
    );
}
