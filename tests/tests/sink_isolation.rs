//! A CRM sink keeps going around records and CRMs that fail, end to end through a `hub run`
//! process:
//! - one customer the CRM keeps refusing (503) is parked on the retry topic while the others,
//!   and a file dropped after them, reach the CRM; it arrives later, exactly once (embedded
//!   bus and the real Kafka broker);
//! - a parked older version is skipped once a newer one was delivered meanwhile;
//! - a customer that never goes through ends in the dead-letter topic after its delays;
//! - a CRM down as a whole opens its sink's circuit: no requests while open, one probe at a
//!   time, everything delivered once it is back — while a second sink, to another CRM,
//!   delivers every record and the source keeps reading.

use std::path::Path;
use std::time::{Duration, Instant};

use hub_tests::hub::{HubProcess, TestBus, drop_file, files_in, test_bed, wait_for};
use integration_hub::bus::embedded::EmbeddedBus;
use integration_hub::bus::{Bus, Record};
use integration_hub::demo_data::{self, Generated, Options};
use integration_hub::sandbox_crm::SandboxCrm;

const SETTLE: Duration = Duration::from_secs(60);

fn customers(n: usize, first_id: u64, version: i64) -> Generated {
    demo_data::generate(&Options {
        customers: n,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        first_id,
        version,
        ..Options::default()
    })
}

/// Appends `[sinks.delivery]` (and anything after it) to the config's only sink.
fn append(config: &Path, text: &str) {
    let mut body = std::fs::read_to_string(config).unwrap();
    body.push('\n');
    body.push_str(text);
    std::fs::write(config, body).unwrap();
}

/// The value of the sample of `name` whose labels include every one of `labels`.
fn metric(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// `/metrics` of the hub, waiting for its listener to come up.
async fn scrape(port: u16) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        let answer = match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            Ok(res) => res.text().await,
            Err(e) => Err(e),
        };
        match answer {
            Ok(text) => return text,
            Err(e) if Instant::now() > deadline => panic!("/metrics unreachable: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Every record on `topic` of the embedded bus beside a running hub (a reader group of its
/// own, never committed), waiting until there are at least `n`.
async fn read_topic(dir: &Path, topic: &str, n: usize) -> Vec<Record> {
    let bus = EmbeddedBus::open(&dir.join("var").join("bus.db"), 4).unwrap();
    let mut consumer = bus.subscribe("test-reader", topic).await.unwrap();
    let deadline = Instant::now() + SETTLE;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        out.extend(
            consumer
                .poll(100, Duration::from_millis(200))
                .await
                .unwrap(),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_stuck_customer_is_parked_while_the_others_go_through() {
    stuck_customer(TestBus::Embedded, "hub").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_a_stuck_customer_is_parked_while_the_others_go_through() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    stuck_customer(bus, &hub_tests::kafka::unique("isolation")).await;
}

/// 200 customers, one of which the CRM answers 503 six times (as many as the sink's
/// in-place attempts): the 199 others arrive, then a second file's 100 customers, all
/// before the stuck one, which arrives once, after it was parked.
async fn stuck_customer(bus: TestBus, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, prefix).await.unwrap();
    let first = customers(200, 1, 1);
    let second = customers(100, 1001, 1);
    let stuck = first.valid_keys[57].clone();
    crm.inject_key_status(&stuck, 503, 6);
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let inbox = dir.path().join("inbox");
    let started = Instant::now();
    drop_file(&inbox, "customers_1.csv", &first.bytes).unwrap();
    wait_for("the 199 others in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= 199)
    })
    .await
    .unwrap();
    let others_after = started.elapsed();
    assert!(
        crm.contact(&stuck).is_none(),
        "the stuck customer went through at once"
    );

    // The partition is not held: a file dropped now gets through before the stuck customer.
    drop_file(&inbox, "customers_2.csv", &second.bytes).unwrap();
    wait_for("the second file in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(second.valid_keys.iter().all(|k| crm.contact(k).is_some()))
    })
    .await
    .unwrap();
    let second_after = started.elapsed();
    assert!(
        crm.contact(&stuck).is_none(),
        "the stuck customer arrived before the next file ({second_after:?})"
    );

    wait_for("the stuck customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact(&stuck).is_some())
    })
    .await
    .unwrap();
    let stuck_after = started.elapsed();
    let on = if matches!(bus, TestBus::Kafka { .. }) {
        "kafka"
    } else {
        "embedded"
    };
    eprintln!(
        "figures ({on}): 199 others after {others_after:?}, next file's 100 after {second_after:?}, \
         stuck customer after {stuck_after:?}"
    );
    let contact = crm.contact(&stuck).unwrap();
    assert_eq!(contact.version, 1);
    assert_eq!(
        crm.writes_for(&stuck),
        1,
        "the stuck customer was written twice"
    );
    assert_eq!(crm.contacts_len(), 300);
    assert_eq!(crm.total_writes(), 300, "a customer was written twice");
    assert_eq!(crm.version_regressions(), 0);
    assert_eq!(crm.pending_faults(), 0);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("record_parked"), "no parking logged");
    let metrics = scrape(port).await;
    assert_eq!(
        metric(
            &metrics,
            "hub_sink_records_parked_total",
            &["sink=\"crm\"", "attempt=\"1\""]
        ),
        Some(1.0),
        "{metrics}"
    );
    // One key failing is the record's trouble, not the CRM's: the circuit stayed closed.
    assert_eq!(
        metric(&metrics, "hub_sink_circuit_state", &["sink=\"crm\""]),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "hub_sink_circuit_transitions_total",
            &["sink=\"crm\""]
        ),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_parked_older_version_never_overwrites_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    append(&config, "[sinks.delivery]\nretry_delays_secs = [3]\n");
    let first = customers(50, 1, 1);
    let key = first.valid_keys[0].clone();
    assert_eq!(key, "C00000001");
    crm.inject_key_status(&key, 503, 6);
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let inbox = dir.path().join("inbox");
    drop_file(&inbox, "customers_v1.csv", &first.bytes).unwrap();
    wait_for("version 1 parked", SETTLE, || {
        hub.assert_running()?;
        Ok(std::fs::read_to_string(&log)?.contains("record_parked"))
    })
    .await
    .unwrap();
    assert_eq!(crm.contacts_len(), 49);

    // Version 2 of the same customer arrives and goes through while version 1 waits.
    drop_file(&inbox, "customer_v2.csv", &customers(1, 1, 2).bytes).unwrap();
    wait_for("version 2 in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact(&key).is_some_and(|c| c.version == 2))
    })
    .await
    .unwrap();

    // The retry task takes version 1 in (its offset committed) and skips it.
    let bus = EmbeddedBus::open(&dir.path().join("var").join("bus.db"), 4).unwrap();
    wait_for_async("the parked version settled", || async {
        let committed: i64 = bus
            .committed("hub-sink-crm-retry", "hub.retry.crm")
            .await
            .unwrap()
            .values()
            .sum();
        committed >= 1
    })
    .await;
    let contact = crm.contact(&key).unwrap();
    assert_eq!(contact.version, 2, "the older parked version won");
    assert_eq!(crm.writes_for(&key), 1);
    assert_eq!(crm.version_regressions(), 0);
    let metrics = scrape(port).await;
    assert!(
        metric(
            &metrics,
            "hub_sink_records_skipped_total",
            &["sink=\"crm\"", "reason=\"already_delivered\""]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
    hub.assert_running().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_customer_that_never_goes_through_is_dead_lettered_after_its_delays() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    append(&config, "[sinks.delivery]\nretry_delays_secs = [1, 1]\n");
    let g = customers(20, 1, 1);
    let key = g.valid_keys[3].clone();
    crm.inject_key_status(&key, 503, 10_000);
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let started = Instant::now();
    drop_file(&dir.path().join("inbox"), "customers.csv", &g.bytes).unwrap();
    wait_for("the others in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() == 19)
    })
    .await
    .unwrap();

    let letters = read_topic(dir.path(), "hub.dlq", 1).await;
    let dead_after = started.elapsed();
    eprintln!("figures: dead-lettered after {dead_after:?}");
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.key, key);
    let h = |name: &str| letter.header(name).unwrap_or_default().to_string();
    // Six in-place attempts on the first pass and on each of the two retries.
    assert_eq!(h("attempts"), "18", "{letter:?}");
    assert!(h("error").contains("503"), "{letter:?}");
    assert_eq!(h("disposition"), "dead_letter");
    assert_eq!(h("origin_topic"), "hub.canonical");
    assert_eq!(h("sink"), "crm");
    assert!(h("first_failure") < h("last_failure"), "{letter:?}");
    assert!(letter.header("retry_attempt").is_none());
    assert!(crm.contact(&key).is_none());

    // Parked twice on the retry topic, one delay apart, then given up.
    let parked = read_topic(dir.path(), "hub.retry.crm", 2).await;
    let attempts: Vec<String> = parked
        .iter()
        .map(|r| r.header("retry_attempt").unwrap_or_default().to_string())
        .collect();
    assert_eq!(attempts, ["1", "2"]);
    assert!(
        parked
            .iter()
            .all(|r| r.key == key && r.payload == letter.payload)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("retry_exhausted"));
    assert_eq!(crm.version_regressions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_failing_crm_opens_its_circuit_and_stalls_neither_the_other_sink_nor_the_source()
{
    let dir = tempfile::tempdir().unwrap();
    let (crm_a, config, port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let crm_b = SandboxCrm::new().with_token("test-token");
    let (addr_b, _task) = crm_b.clone().serve("127.0.0.1:0").await.unwrap();
    // Sink A gives up its in-place retries quickly so its passes fail fast; sink B reads the
    // same topic into another CRM.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_attempts = 6", "max_attempts = 2");
    std::fs::write(&config, text).unwrap();
    append(
        &config,
        &format!(
            "[sinks.delivery]\nbreaker_failures = 3\nbreaker_open_secs = 2\n\
             breaker_max_open_secs = 4\n\n\
             [[sinks]]\nname = \"crm-b\"\nkind = \"crm_rest\"\n\n[sinks.crm_rest]\n\
             base_url = \"http://{addr_b}\"\ntoken = \"file:crm.token\"\nconcurrency = 16\n"
        ),
    );
    // CRM A is down: every write answers 503.
    crm_a.inject_status(503, 1_000_000);
    let first = customers(100, 1, 1);
    let second = customers(100, 2001, 1);
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    let inbox = dir.path().join("inbox");
    drop_file(&inbox, "customers_1.csv", &first.bytes).unwrap();

    let state = |m: &str| metric(m, "hub_sink_circuit_state", &["sink=\"crm\""]);
    let opened = |m: &str| {
        metric(
            m,
            "hub_sink_circuit_transitions_total",
            &["sink=\"crm\"", "to=\"open\""],
        )
        .unwrap_or(0.0)
    };
    let requests = || crm_a.stats().faults_served;
    let deadline = Instant::now() + SETTLE;
    loop {
        hub.assert_running().unwrap();
        if state(&scrape(port).await) == Some(2.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the circuit never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let opened_after = requests();
    // A pass stops once `concurrency` (16) keys failed with nothing acknowledged: each of the
    // 3 failed passes sent at most those and the 16 in flight, 2 attempts each — not the
    // whole 100-record batch.
    assert!(
        opened_after <= 3 * (16 + 16) * 2,
        "the circuit opened only after {opened_after} requests to a CRM that was down"
    );

    // Meanwhile sink B delivered the whole file, and the source took a second one.
    drop_file(&inbox, "customers_2.csv", &second.bytes).unwrap();
    wait_for("both files in CRM B", SETTLE, || {
        hub.assert_running()?;
        Ok(crm_b.contacts_len() == 200)
    })
    .await
    .unwrap();
    assert_eq!(files_in(&inbox.join("archive"), ".csv").len(), 2);
    assert_eq!(crm_a.contacts_len(), 0);

    // While open, CRM A hears nothing from the sink: two readings within one open period
    // (no transition between them) see the same count. Between two openings there is
    // exactly one request: the probe.
    let mut quiet_checked = false;
    let mut probes_checked = 0;
    let mut probe_requests = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (!quiet_checked || probes_checked < 2) && Instant::now() < deadline {
        let m1 = scrape(port).await;
        let c1 = requests();
        if state(&m1) != Some(2.0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let n1 = opened(&m1);
        tokio::time::sleep(Duration::from_millis(700)).await;
        let c2 = requests();
        let m2 = scrape(port).await;
        let n2 = opened(&m2);
        if state(&m2) == Some(2.0) && n2 == n1 {
            assert_eq!(
                c2, c1,
                "requests reached the CRM while the circuit was open"
            );
            quiet_checked = true;
        } else if state(&m2) == Some(2.0) && n2 == n1 + 1.0 {
            // One open period ended, one probe went out and failed, the circuit reopened.
            probe_requests.push(c2 - c1);
            probes_checked += 1;
        }
    }
    assert!(quiet_checked, "no quiet reading within an open period");
    assert!(probes_checked >= 1, "no probe observed");
    assert!(
        probe_requests.iter().all(|n| *n == 1),
        "requests between two openings: {probe_requests:?}"
    );

    // CRM A recovers: the next probe closes the circuit and everything arrives.
    let recovered = Instant::now();
    let before_recovery = requests();
    crm_a.clear_faults();
    wait_for("both files in CRM A", SETTLE, || {
        hub.assert_running()?;
        Ok(crm_a.contacts_len() == 200)
    })
    .await
    .unwrap();
    let recovery = recovered.elapsed();
    let metrics = scrape(port).await;
    eprintln!(
        "figures: circuit opened after {opened_after} failed requests; {before_recovery} \
         requests to the down CRM in all; requests per probe {probe_requests:?}; all 200 in \
         CRM A {recovery:?} after it recovered"
    );
    assert_eq!(state(&metrics), Some(0.0), "{metrics}");
    assert!(recovery < Duration::from_secs(10), "{recovery:?}");
    assert_eq!(crm_a.total_writes(), 200);
    assert_eq!(crm_b.total_writes(), 200);
    assert_eq!(crm_a.version_regressions() + crm_b.version_regressions(), 0);
    // Nothing was parked: an outage must not flood the retry topic.
    assert_eq!(
        metric(&metrics, "hub_sink_records_parked_total", &["sink=\"crm\""]),
        None,
        "{metrics}"
    );
}

/// Polls the async `cond` every 50 ms until it holds, failing after [`SETTLE`].
async fn wait_for_async<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + SETTLE;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
