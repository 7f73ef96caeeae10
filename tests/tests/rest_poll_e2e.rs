//! End to end on the real Kafka broker: a `hub run` process polls the core-banking REST
//! simulator (5,000 customers, OAuth 2.0, page numbers) into the sandbox CRM while the
//! simulator fails in every way it knows — 5xx, 429 with Retry-After, an invalid-JSON page,
//! a page of the wrong shape, a request hanging past the client's timeout, a record
//! repeated on the next page — and the hub is killed with SIGKILL in the middle of a pass
//! and restarted. Every customer must be in the CRM exactly once at its latest version,
//! with no version regression and the cursor persisted; then customers changed at the
//! bank arrive with the next poll, and only they are written again.

use std::path::Path;
use std::time::{Duration, Instant};

use hub_tests::core_bank::{Bank, CoreBankSim, FaultSpec, Paging, customer_mapping};
use hub_tests::hub::{HubProcess, TestBus, free_port, test_bed, wait_for};
use integration_hub::sandbox_crm::SandboxCrm;
use integration_hub::store::Store;

const CUSTOMERS: u64 = 5_000;
const SOURCE: &str = "abs-rest";
const SETTLE: Duration = Duration::from_secs(40);

fn config_text(prefix: &str, sim: &str, crm: &str, port: u16) -> String {
    format!(
        r#"[hub]
data_dir = "var"

[bus]
kind = "kafka"
topic_prefix = "{prefix}"

[bus.kafka]
bootstrap_servers = "{bootstrap}"

[http]
listen = "127.0.0.1:{port}"

[[sources]]
name = "{SOURCE}"
kind = "rest_poll"

[sources.rest_poll]
base_url = "{sim}"
path = "/api/v1/customers"
records_path = "data"
rate_limit_per_sec = 10
timeout_ms = 1000
max_attempts = 8
initial_backoff_ms = 50
max_backoff_ms = 500
poll_interval_ms = 500

[sources.rest_poll.cursor]
kind = "updated_since"
param = "updated_since"
field = "updated_at"

[sources.rest_poll.pagination]
kind = "page_number"
page_size = 100

[sources.rest_poll.auth]
kind = "oauth2"
token_url = "{sim}/oauth/token"
client_id = "hub"
client_secret = "file:abs.secret"
scope = "customers:read"
{mapping}
[[sinks]]
name = "crm"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "{crm}"
token = "file:crm.token"
concurrency = 16
max_attempts = 6
initial_backoff_ms = 50
max_backoff_ms = 2000
"#,
        bootstrap = hub_tests::kafka::bootstrap(),
        mapping = customer_mapping("$", None),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_poll_reaches_crm_exactly_once_through_faults_sigkill_and_changes() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let prefix = hub_tests::kafka::unique("rest");
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    let (crm, _, _) = test_bed(dir.path(), &bus, &prefix).await.unwrap();
    let sim = CoreBankSim::new(CUSTOMERS, 20_261_125)
        .with_paging(Paging::PageNumber)
        .with_oauth2("hub", "s3cret:with/odd chars", Duration::from_secs(3));
    let (sim_addr, _sim_task) = sim.serve("127.0.0.1:0").await.unwrap();
    std::fs::write(dir.path().join("abs.secret"), "s3cret:with/odd chars").unwrap();
    let crm_url = format!("http://{}", crm_addr(&crm).await);
    let port = free_port().unwrap();
    let config = dir.path().join("rest.toml");
    std::fs::write(
        &config,
        config_text(&prefix, &format!("http://{sim_addr}"), &crm_url, port),
    )
    .unwrap();
    let log = dir.path().join("hub.log");

    // Faults for the first pages: two 503s, a 429 asking for a second, a cut-off page, a
    // page of the wrong shape, a request hanging past the 1 s timeout, a repeated record.
    for f in [
        FaultSpec::Status {
            status: 503,
            count: 2,
        },
        FaultSpec::RateLimit {
            retry_after_secs: 1,
            count: 1,
        },
        FaultSpec::InvalidJson { count: 1 },
        FaultSpec::WrongShape { count: 1 },
        FaultSpec::Hang {
            millis: 2_500,
            count: 1,
        },
        FaultSpec::RepeatRecord { count: 1 },
    ] {
        sim.inject(f);
    }
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_for("the first faults consumed", SETTLE, || {
        hub.assert_running()?;
        Ok(sim.pending_faults() == 0 && crm.contacts_len() > 0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    // More faults in the middle of the pass, then a SIGKILL while it is still going.
    sim.inject(FaultSpec::Status {
        status: 502,
        count: 1,
    });
    sim.inject(FaultSpec::RepeatRecord { count: 1 });
    sim.inject(FaultSpec::Latency {
        millis: 200,
        count: 2,
    });
    wait_for("a third of the customers delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() as u64 >= CUSTOMERS / 3)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    hub.kill9().unwrap();
    let at_kill = crm.contacts_len() as u64;
    let store = dir.path().join("var").join("state.db");
    let cursor_at_kill = persisted_cursor(&store);
    assert!(
        at_kill < CUSTOMERS,
        "the kill came after the pass; nothing was tested"
    );
    let cursor_at_kill = cursor_at_kill.expect("a cursor was persisted before the kill");
    eprintln!("killed with {at_kill} customers delivered, cursor {cursor_at_kill}");

    // Restarted, the hub reads on from the persisted cursor.
    let mut hub = HubProcess::start(&config, &log).unwrap();
    let bank = sim.bank();
    wait_for("every customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() as u64 >= CUSTOMERS)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    assert_latest(&crm, &bank);
    let writes = crm.total_writes();
    let repeats = writes - CUSTOMERS;
    eprintln!("repeated CRM writes after the restart: {repeats}");
    assert!(repeats <= 48, "{repeats} repeated writes");
    assert_eq!(
        crm.stats().replays,
        repeats,
        "a repeated write carried other data"
    );

    // Customers changed at the bank arrive with the next poll; nothing else is written.
    let changed = sim.change_next(50);
    let bank = sim.bank();
    wait_for("the changed customers at their new version", SETTLE, || {
        hub.assert_running()?;
        Ok(changed.iter().all(|&i| {
            crm.contact(&Bank::customer_id(i))
                .is_some_and(|c| c.version == bank.state(i).updated_at.timestamp_millis())
        }))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    assert_latest(&crm, &bank);
    // Let another poll go by: it must find nothing new to write.
    let requests = sim.stats().requests;
    wait_for("another poll", SETTLE, || {
        Ok(sim.stats().requests >= requests + 2)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    assert_eq!(crm.total_writes(), writes + changed.len() as u64);

    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
    let expected_cursor = bank
        .ordered(None, None)
        .map(|s| s.updated_at)
        .max()
        .unwrap();
    assert_eq!(
        persisted_cursor(&store).as_deref(),
        Some(
            adapters::rest_poll::CursorValue::Time(expected_cursor)
                .render()
                .as_str()
        ),
        "the cursor is the last change read"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    for needle in [
        "\"rest_page\"",
        "\"rest_pass_done\"",
        "page fetch failed, retrying",
        "no answer within 1000 ms",
        "upstream answered 429: rate limited",
        "unusable page: not JSON",
        "`data` is not an array of records",
    ] {
        assert!(log_text.contains(needle), "no {needle} in the log");
    }
    assert_no_pii(&log_text, &bank);
    let stats = sim.stats();
    eprintln!(
        "simulator: {} requests, {} pages, {} records, {} tokens, {} faults; took {:?}",
        stats.requests,
        stats.pages_served,
        stats.records_served,
        stats.tokens_granted,
        stats.faults_served,
        started.elapsed()
    );
    assert!(
        stats.tokens_granted >= 2,
        "the 3 s token was never refreshed"
    );
}

async fn crm_addr(crm: &SandboxCrm) -> std::net::SocketAddr {
    // test_bed's config names the CRM it started; serve the same sandbox a second time on
    // a port we know, so this test writes its own config.
    let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
    addr
}

fn persisted_cursor(store: &Path) -> Option<String> {
    Store::open(store).unwrap().cursor_get(SOURCE).unwrap()
}

/// Every customer is in the CRM at its latest version (the change time in ms, the cursor
/// fallback since the mapping gives no version), and no version ever went down.
fn assert_latest(crm: &SandboxCrm, bank: &Bank) {
    assert_eq!(crm.contacts_len() as u64, bank.len(), "unexpected contacts");
    for i in 0..bank.len() {
        let id = Bank::customer_id(i);
        let c = crm
            .contact(&id)
            .unwrap_or_else(|| panic!("customer {id} missing from the CRM"));
        assert_eq!(
            c.version,
            bank.state(i).updated_at.timestamp_millis(),
            "customer {id} not at its latest version"
        );
    }
    assert_eq!(crm.version_regressions(), 0);
}

/// No INN, e-mail or phone of the first customers appears in the hub's log.
fn assert_no_pii(log: &str, bank: &Bank) {
    for i in 0..500 {
        let c = bank.customer(i);
        for field in ["inn", "email", "passport", "last_name"] {
            if let Some(v) = c[field].as_str().filter(|v| v.len() >= 6) {
                assert!(!log.contains(v), "customer {i}: {field} found in the log");
            }
        }
    }
}

/// The last lines of the hub's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
