//! The lag gauges of a `hub run` process on the real Kafka broker, end to end:
//! - stalled: while the CRM answers every write with 503, the age of the oldest undelivered
//!   event grows from one scrape to the next and is at least as long as the stall, and the
//!   sink's consumer group shows lag in messages and in seconds;
//! - idle: once everything is delivered and nothing arrives, every one of those gauges is
//!   exactly 0 and stays 0 over later scrapes (nothing left over from the last event).
//!
//! The same stall on the embedded bus checks the oldest-undelivered gauge there (the consumer
//! lag gauges are Kafka's).

use std::time::{Duration, Instant};

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::demo_data::{self, Options};

const SETTLE: Duration = Duration::from_secs(90);
const CUSTOMERS: usize = 20;

/// `(labels, value)` of every sample of `name`.
fn samples(metrics: &str, name: &str) -> Vec<(String, f64)> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let labels = match series.strip_prefix(name)? {
                "" => "",
                rest => rest.strip_prefix('{')?.strip_suffix('}')?,
            };
            Some((labels.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Values of `name` whose labels contain `label`.
fn values(metrics: &str, name: &str, label: &str) -> Vec<f64> {
    samples(metrics, name)
        .into_iter()
        .filter(|(l, _)| l.contains(label))
        .map(|(_, v)| v)
        .collect()
}

async fn scrape(port: u16) -> anyhow::Result<String> {
    Ok(reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?)
}

/// Polls `/metrics` until `cond` holds for a scrape; returns that scrape.
async fn scrape_until(
    hub: &mut HubProcess,
    port: u16,
    what: &str,
    cond: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + SETTLE;
    loop {
        hub.assert_running().unwrap();
        if let Ok(text) = scrape(port).await
            && cond(&text)
        {
            return text;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

const OLDEST: &str = "hub_sink_oldest_undelivered_age_seconds";
const LAG_MESSAGES: &str = "hub_kafka_consumer_lag_messages";
const LAG_SECONDS: &str = "hub_kafka_consumer_lag_seconds";

fn oldest(metrics: &str) -> Option<f64> {
    values(metrics, OLDEST, "sink=\"crm\"").first().copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_lag_gauges_while_stalled_and_while_idle() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    stalled_then_idle(bus, &hub_tests::kafka::unique("lagmetrics")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_oldest_undelivered_while_stalled_and_while_idle() {
    stalled_then_idle(TestBus::Embedded, "hub").await;
}

async fn stalled_then_idle(bus: TestBus, prefix: &str) {
    let kafka = matches!(bus, TestBus::Kafka { .. });
    let sink_group = format!("group=\"{prefix}-sink-crm\"");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, prefix).await.unwrap();
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let started = Instant::now();

    // Idle from the start: the sink reports 0, not nothing.
    scrape_until(&mut hub, port, "the sink's gauge at 0", |m| {
        oldest(m) == Some(0.0)
    })
    .await;

    // Stall: every write refused.
    crm.inject_status(503, 1_000_000);
    let file = demo_data::generate(&Options {
        customers: CUSTOMERS,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        first_id: 1,
        version: 1,
        ..Options::default()
    });
    let dropped = Instant::now();
    drop_file(&dir.path().join("inbox"), "customers.csv", &file.bytes).unwrap();
    let first = scrape_until(&mut hub, port, "a pending event", |m| {
        oldest(m).is_some_and(|a| a > 0.0)
    })
    .await;
    let first_age = oldest(&first).unwrap();
    // Two seconds later (by the hub's own gauge, not a sleep) it has grown with the clock.
    let second = scrape_until(&mut hub, port, "the age to grow by 2 s", |m| {
        oldest(m).is_some_and(|a| a >= first_age + 2.0)
    })
    .await;
    let stalled_for = dropped.elapsed().as_secs_f64();
    let second_age = oldest(&second).unwrap();
    // The event time (the file's modification time) is before the drop: the age covers the
    // whole stall.
    assert!(
        second_age >= stalled_for - 1.0,
        "age {second_age} s after a stall of at least {stalled_for} s"
    );
    assert_eq!(crm.contacts_len(), 0, "a write went through the stall");
    if kafka {
        let lagging = scrape_until(&mut hub, port, "consumer lag of the sink group", |m| {
            values(m, LAG_MESSAGES, &sink_group).iter().sum::<f64>() >= CUSTOMERS as f64
                && values(m, LAG_SECONDS, &sink_group)
                    .iter()
                    .any(|s| *s >= 2.0)
        })
        .await;
        let lag_seconds = values(&lagging, LAG_SECONDS, &sink_group);
        eprintln!(
            "figures (stalled): oldest undelivered {second_age:.1} s after {stalled_for:.1} s; \
             lag {} messages, {lag_seconds:?} s",
            values(&lagging, LAG_MESSAGES, &sink_group)
                .iter()
                .sum::<f64>()
        );
    }

    // Recover: everything arrives, then the gauges read exactly 0 and stay there.
    crm.clear_faults();
    wait_for("every customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= CUSTOMERS)
    })
    .await
    .unwrap();
    let idle = |m: &str| {
        oldest(m) == Some(0.0)
            && (!kafka
                || (!values(m, LAG_MESSAGES, &sink_group).is_empty()
                    && values(m, LAG_MESSAGES, &sink_group)
                        .iter()
                        .chain(values(m, LAG_SECONDS, &sink_group).iter())
                        .all(|v| *v == 0.0)))
    };
    scrape_until(&mut hub, port, "every lag gauge at 0", idle).await;
    // Stays 0: every scrape over the next 3 s (not a value set once and left).
    let idle_since = Instant::now();
    let mut scrapes = 0;
    while idle_since.elapsed() < Duration::from_secs(3) {
        let m = scrape(port).await.unwrap();
        assert!(idle(&m), "a lag gauge left 0 while idle:\n{m}");
        let all_groups = samples(&m, LAG_MESSAGES);
        assert!(
            all_groups.iter().all(|(_, v)| *v == 0.0),
            "a consumer group lags while idle: {all_groups:?}"
        );
        scrapes += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(scrapes >= 5);
    assert_eq!(crm.total_writes(), CUSTOMERS as u64);
    eprintln!(
        "figures ({}): whole run {:?}",
        if kafka { "kafka" } else { "embedded" },
        started.elapsed()
    );
}
