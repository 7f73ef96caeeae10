//! End to end on the real Kafka broker: a `hub run` process polls the SOAP face of the
//! core-banking simulator (WS-Security UsernameToken with PasswordDigest, 250 customers a
//! page) into the sandbox CRM while the simulator answers with Server/Receiver faults and a
//! 503 (retried in place), an answer cut off in the middle of a record (the page is asked
//! for again), and a Client/Sender fault (the pass stops, the next poll goes on from the
//! page it stopped at); then customers change at the bank and the hub is killed with
//! SIGKILL in the middle of the pass that reads them, and restarted. Every valid customer
//! must be in the CRM exactly once at its latest version, every customer with a broken INN
//! in the quarantine topic with its operation, page and record, and the persisted position
//! at the last change. SOAP 1.2 carries that scenario; SOAP 1.1 carries a shorter one, and
//! both bindings of the DailyInfo-shaped rates service are read through the client.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use adapters::soap::{OperationConfig, SoapClient, SoapConfig, SoapVersion, TemplateVars};
use hub_tests::core_bank::Bank;
use hub_tests::core_bank::soap::{
    CUSTOMERS_ACTION, CUSTOMERS_PATH, CUSTOMERS_RECORD_PATH, CUSTOMERS_TEMPLATE, CoreBankSoap,
    DAILY_INFO_ACTION, DAILY_INFO_PATH, RATES_RECORD_PATH, RATES_TEMPLATE, SoapFaultSpec, rates_on,
    soap_customer_mapping,
};
use hub_tests::hub::{HubProcess, TestBus, free_port, test_bed, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::sandbox_crm::SandboxCrm;
use integration_hub::store::Store;

const SOURCE: &str = "abs-soap";
const PASSWORD: &str = "p@ss w0rd&<digest>";
const SETTLE: Duration = Duration::from_secs(40);

fn config_text(prefix: &str, endpoint: &str, version: SoapVersion, crm: &str, port: u16) -> String {
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
kind = "soap"

[sources.soap]
endpoint = "{endpoint}"
version = "{version}"
timeout_ms = 2000
max_attempts = 6
initial_backoff_ms = 50
max_backoff_ms = 400
poll_interval_ms = 300

[sources.soap.ws_security]
username = "hub"
password = "file:soap.password"
password_type = "digest"

[[sources.soap.operations]]
name = "customers"
soap_action = "{CUSTOMERS_ACTION}"
request_template = '{CUSTOMERS_TEMPLATE}'
record_path = "{CUSTOMERS_RECORD_PATH}"
cursor_field = "ChangedAt"
paged = true
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
        version = version.as_str(),
        mapping = soap_customer_mapping(),
    )
}

/// The simulator, the CRM and a config for `version`; returns what the test needs.
struct Bed {
    dir: tempfile::TempDir,
    sim: CoreBankSoap,
    crm: SandboxCrm,
    config: std::path::PathBuf,
    log: std::path::PathBuf,
    prefix: String,
}

async fn bed(customers: u64, version: SoapVersion, invalid_every: u64) -> Bed {
    let dir = tempfile::tempdir().unwrap();
    let prefix = hub_tests::kafka::unique("soap");
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    let (crm, _, _) = test_bed(dir.path(), &bus, &prefix).await.unwrap();
    let sim = CoreBankSoap::new(customers, 20_251_125)
        .with_credentials("hub", PASSWORD)
        .with_page_size(250)
        .with_invalid_every(invalid_every);
    let (sim_addr, _task) = sim.serve("127.0.0.1:0").await.unwrap();
    std::fs::write(dir.path().join("soap.password"), PASSWORD).unwrap();
    // test_bed's config names the CRM it started; serve the same sandbox on a port we know.
    let (crm_addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
    let config = dir.path().join("soap.toml");
    std::fs::write(
        &config,
        config_text(
            &prefix,
            &format!("http://{sim_addr}{CUSTOMERS_PATH}"),
            version,
            &format!("http://{crm_addr}"),
            free_port().unwrap(),
        ),
    )
    .unwrap();
    let log = dir.path().join("hub.log");
    Bed {
        dir,
        sim,
        crm,
        config,
        log,
        prefix,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap12_customers_reach_crm_exactly_once_through_faults_broken_answers_and_sigkill() {
    let started = Instant::now();
    let customers = 3_000;
    let b = bed(customers, SoapVersion::V12, 101).await;
    let (sim, crm) = (&b.sim, &b.crm);
    let invalid: BTreeSet<String> = (0..customers)
        .filter(|&i| sim.is_invalid(i))
        .map(Bank::customer_id)
        .collect();
    let valid = customers - invalid.len() as u64;

    // Request by request: two Receiver faults and a 503 (retried in place), page 1 cut off
    // in the middle of a record (asked for again), pages 1 to 3, then a Sender fault on
    // page 4: the pass stops there and the next poll goes on from page 4.
    for f in [
        SoapFaultSpec::ReceiverFault { count: 2 },
        SoapFaultSpec::Status {
            status: 503,
            retry_after_secs: Some(0),
            count: 1,
        },
        SoapFaultSpec::Malformed { count: 1 },
        SoapFaultSpec::Pass { count: 3 },
        SoapFaultSpec::SenderFault { count: 1 },
    ] {
        sim.inject(f);
    }
    let mut hub = HubProcess::start(&b.config, &b.log).unwrap();
    wait_for("every valid customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() as u64 >= valid)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&b.log)));
    assert_eq!(sim.pending_faults(), 0);
    let bank = sim.bank();
    assert_latest(crm, &bank, &invalid);
    assert_eq!(
        crm.total_writes(),
        valid,
        "a retried or re-read page caused CRM writes"
    );
    let log_text = std::fs::read_to_string(&b.log).unwrap();
    for needle in [
        "soap call failed, retrying",
        "soap answer broken while reading, asking again",
        "\"soap_pass_stopped\"",
        "\"soap_pass_complete\"",
    ] {
        assert!(log_text.contains(needle), "no {needle} in the log");
    }
    let stopped = log_text
        .lines()
        .find(|l| l.contains("\"soap_pass_stopped\""))
        .unwrap();
    for needle in ["\"Sender\"", "\"customers\"", "injected client fault"] {
        assert!(stopped.contains(needle), "{needle} missing from: {stopped}");
    }

    // Customers change at the bank; the pass reading them is slowed down and the hub is
    // killed in the middle of it, then restarted.
    let changed = sim.change_next(1_200);
    let changed_valid: Vec<u64> = changed
        .iter()
        .copied()
        .filter(|&i| !sim.is_invalid(i))
        .collect();
    sim.inject(SoapFaultSpec::Latency {
        millis: 400,
        count: 40,
    });
    let bank = sim.bank();
    let arrived = |crm: &SandboxCrm| {
        changed_valid
            .iter()
            .filter(|&&i| {
                crm.contact(&Bank::customer_id(i))
                    .is_some_and(|c| c.version == bank.state(i).updated_at.timestamp_millis())
            })
            .count()
    };
    wait_for("part of the changed customers delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(arrived(crm) >= 250)
    })
    .await
    .unwrap();
    hub.kill9().unwrap();
    let at_kill = arrived(crm);
    assert!(
        at_kill < changed_valid.len(),
        "the kill came after the pass; nothing was tested"
    );
    let store = b.dir.path().join("var").join("state.db");
    eprintln!(
        "killed with {at_kill} of {} changed customers delivered, position {:?}",
        changed_valid.len(),
        position(&store)
    );
    sim.clear_faults();
    let mut hub = HubProcess::start(&b.config, &b.log).unwrap();
    wait_for("every changed customer at its new version", SETTLE, || {
        hub.assert_running()?;
        Ok(arrived(crm) == changed_valid.len())
    })
    .await
    .unwrap();
    assert_latest(crm, &bank, &invalid);
    let expected = valid + changed_valid.len() as u64;
    let repeats = crm.total_writes() - expected;
    eprintln!("repeated CRM writes after the restart: {repeats}");
    assert!(repeats <= 48, "{repeats} repeated writes");
    assert_eq!(
        crm.stats().replays,
        repeats,
        "a repeated write carried other data"
    );

    // Every customer with a broken INN is in the quarantine topic, named by its operation,
    // page and record; none of them reached the CRM.
    let quarantined = quarantined_keys(&b.prefix, invalid.len()).await;
    assert_eq!(quarantined, invalid);

    // A pass after the last change finds nothing new to write.
    let writes = crm.total_writes();
    let requests = sim.stats().requests;
    wait_for("another poll", SETTLE, || {
        Ok(sim.stats().requests >= requests + 2)
    })
    .await
    .unwrap();
    assert_eq!(crm.total_writes(), writes);

    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
    let last_change = bank
        .ordered(None, None)
        .map(|s| s.updated_at)
        .max()
        .unwrap();
    let p = position(&store).expect("a position was persisted");
    // (A pass under way at the SIGTERM has the same `since`: it started from there.)
    assert_eq!(
        p["since"],
        last_change.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "the cursor is the last change read"
    );
    let log_text = std::fs::read_to_string(&b.log).unwrap();
    assert_no_pii(&log_text, &bank);
    let stats = sim.stats();
    assert!(stats.soap12 > 0 && stats.soap11 == 0);
    assert_eq!(
        stats.auth_failures, 0,
        "every attempt carried a valid, fresh token"
    );
    eprintln!(
        "simulator: {} requests, {} pages, {} records, {} faults; took {:?}",
        stats.requests,
        stats.pages_served,
        stats.records_served,
        stats.faults_served,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap11_customers_reach_crm_with_server_faults_retried() {
    let customers = 1_000;
    let b = bed(customers, SoapVersion::V11, 10_000).await;
    let (sim, crm) = (&b.sim, &b.crm);
    let invalid: BTreeSet<String> = (0..customers)
        .filter(|&i| sim.is_invalid(i))
        .map(Bank::customer_id)
        .collect();
    for f in [
        SoapFaultSpec::Pass { count: 1 },
        SoapFaultSpec::ReceiverFault { count: 1 },
        SoapFaultSpec::Status {
            status: 500,
            retry_after_secs: None,
            count: 1,
        },
    ] {
        sim.inject(f);
    }
    let mut hub = HubProcess::start(&b.config, &b.log).unwrap();
    let valid = customers - invalid.len() as u64;
    wait_for("every valid customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() as u64 >= valid)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&b.log)));
    assert_latest(crm, &sim.bank(), &invalid);
    assert_eq!(crm.total_writes(), valid);
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "hub exited with {status}");
    let stats = sim.stats();
    assert!(stats.soap11 > 0 && stats.soap12 == 0);
    assert_eq!(stats.faults_served, 2);
}

fn client_config(endpoint: String, version: SoapVersion, op: OperationConfig) -> SoapConfig {
    let mut cfg = SoapConfig::new(endpoint, version);
    cfg.operations = vec![op];
    cfg.max_attempts = 3;
    cfg.initial_backoff_ms = 10;
    cfg.max_backoff_ms = 50;
    cfg.timeout_ms = 5_000;
    cfg
}

fn rates_operation() -> OperationConfig {
    OperationConfig {
        name: "rates".into(),
        soap_action: DAILY_INFO_ACTION.into(),
        request_template: RATES_TEMPLATE.into(),
        record_path: RATES_RECORD_PATH.into(),
        cursor_field: None,
        initial_cursor: String::new(),
        paged: false,
        first_page: 1,
    }
}

#[tokio::test]
async fn daily_info_rates_in_both_bindings() {
    hub_tests::hub::init();
    let sim = CoreBankSoap::new(1, 1);
    let (addr, _task) = sim.serve("127.0.0.1:0").await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let vars = TemplateVars {
        cursor: String::new(),
        page: 1,
        today,
    };
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let client = SoapClient::new(client_config(
            format!("http://{addr}{DAILY_INFO_PATH}"),
            version,
            rates_operation(),
        ))
        .unwrap();
        // A broken answer first: the records before the break, then a parse error.
        sim.inject(SoapFaultSpec::Malformed { count: 1 });
        let (answer, _) = client.call("rates", &vars).await.unwrap();
        let items: Vec<_> =
            tokio::task::spawn_blocking(move || answer.records().unwrap().collect())
                .await
                .unwrap();
        assert!(
            items.last().unwrap().is_err(),
            "{version}: the cut answer ends in an error"
        );
        let (answer, attempts) = client.call("rates", &vars).await.unwrap();
        assert_eq!(attempts, 1);
        let rates: Vec<serde_json::Value> = tokio::task::spawn_blocking(move || {
            answer
                .records()
                .unwrap()
                .map(|r| r.unwrap().value)
                .collect()
        })
        .await
        .unwrap();
        let expected = rates_on(today);
        assert_eq!(rates.len(), expected.len(), "{version}");
        for (got, want) in rates.iter().zip(&expected) {
            assert_eq!(got["VchCode"], want.char_code);
            assert_eq!(got["Vname"], want.name, "padding is trimmed");
            assert_eq!(got["Vnom"], want.nominal.to_string());
            assert_eq!(got["Vcurs"], format!("{:.4}", want.rate));
            assert_eq!(got["VunitRate"], want.unit_rate());
        }
    }
    let stats = sim.stats();
    assert_eq!((stats.soap11, stats.soap12), (2, 2));
}

fn customers_operation() -> OperationConfig {
    OperationConfig {
        name: "customers".into(),
        soap_action: CUSTOMERS_ACTION.into(),
        request_template: CUSTOMERS_TEMPLATE.into(),
        record_path: CUSTOMERS_RECORD_PATH.into(),
        cursor_field: Some("ChangedAt".into()),
        initial_cursor: String::new(),
        paged: true,
        first_page: 1,
    }
}

#[tokio::test]
async fn ws_security_is_checked_by_the_simulator() {
    hub_tests::hub::init();
    let sim = CoreBankSoap::new(600, 5)
        .with_credentials("hub", PASSWORD)
        .with_page_size(250);
    let (addr, _task) = sim.serve("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{addr}{CUSTOMERS_PATH}");
    let vars = TemplateVars {
        cursor: String::new(),
        page: 3,
        today: chrono::Utc::now().date_naive(),
    };
    for version in [SoapVersion::V11, SoapVersion::V12] {
        let mut cfg = client_config(endpoint.clone(), version, customers_operation());
        cfg.ws_security = Some(adapters::soap::WsSecurityConfig {
            username: "hub".into(),
            password: PASSWORD.into(),
            password_type: adapters::soap::PasswordType::Digest,
        });
        let good = SoapClient::new(cfg.clone()).unwrap();
        let (answer, _) = good.call("customers", &vars).await.unwrap();
        let n = tokio::task::spawn_blocking(move || answer.records().unwrap().count())
            .await
            .unwrap();
        assert_eq!(n, 100, "{version}: the last page holds the rest");

        // A wrong password is a permanent fault: one attempt, no retry.
        let mut bad_cfg = cfg.clone();
        if let Some(ws) = &mut bad_cfg.ws_security {
            ws.password = "wrong".into();
        }
        let before = sim.stats().requests;
        let err = SoapClient::new(bad_cfg)
            .unwrap()
            .call("customers", &vars)
            .await
            .unwrap_err();
        assert!(!err.is_transient(), "{err}");
        assert_eq!(
            err.fault().unwrap().code,
            match version {
                SoapVersion::V11 => "FailedAuthentication",
                SoapVersion::V12 => "Sender",
            }
        );
        assert!(
            !err.to_string().contains("wrong"),
            "the password is not in the error"
        );
        assert_eq!(
            sim.stats().requests,
            before,
            "refused before the fault queue"
        );

        // The same token twice: the nonce is refused the second time.
        let nonce = match version {
            SoapVersion::V11 => [7u8; 16],
            SoapVersion::V12 => [8u8; 16],
        };
        let doc = good
            .request_document("customers", &vars, &nonce, chrono::Utc::now())
            .unwrap();
        let http = reqwest::Client::new();
        let send = || {
            let req = http.post(&endpoint).body(doc.clone());
            match version {
                SoapVersion::V11 => req
                    .header("content-type", "text/xml; charset=utf-8")
                    .header("soapaction", format!("\"{CUSTOMERS_ACTION}\"")),
                SoapVersion::V12 => req.header(
                    "content-type",
                    format!("application/soap+xml; charset=utf-8; action=\"{CUSTOMERS_ACTION}\""),
                ),
            }
            .send()
        };
        assert_eq!(send().await.unwrap().status(), 200);
        let again = send().await.unwrap();
        assert_ne!(again.status(), 200);
        let body = again.text().await.unwrap();
        let fault = adapters::soap::fault::parse_fault(body.as_bytes())
            .unwrap()
            .unwrap();
        assert!(fault.reason.contains("nonce"), "{fault}");
    }
    assert_eq!(sim.stats().auth_failures, 4);
}

#[tokio::test]
async fn a_large_page_streams_through_the_client() {
    hub_tests::hub::init();
    // One page of 40,000 customers, about 28 MB of XML.
    let sim = CoreBankSoap::new(40_000, 9).with_page_size(40_000);
    let (addr, _task) = sim.serve("127.0.0.1:0").await.unwrap();
    let mut cfg = client_config(
        format!("http://{addr}{CUSTOMERS_PATH}"),
        SoapVersion::V12,
        customers_operation(),
    );
    cfg.timeout_ms = 30_000;
    let client = SoapClient::new(cfg).unwrap();
    let vars = TemplateVars {
        cursor: String::new(),
        page: 1,
        today: chrono::Utc::now().date_naive(),
    };
    let (answer, _) = client.call("customers", &vars).await.unwrap();
    let bytes = answer.len;
    assert!(bytes > 20_000_000, "{bytes} bytes");
    let bank = sim.bank();
    let (count, last_id) = tokio::task::spawn_blocking(move || {
        let mut count = 0u64;
        let mut last = String::new();
        for r in answer.records().unwrap() {
            let r = r.unwrap();
            last = r.value["@id"].as_str().unwrap().to_owned();
            count += 1;
        }
        (count, last)
    })
    .await
    .unwrap();
    assert_eq!(count, 40_000);
    assert_eq!(last_id, Bank::customer_id(bank.len() - 1));
}

/// The stored position of the customers operation.
fn position(store: &Path) -> Option<serde_json::Value> {
    let text = Store::open(store)
        .unwrap()
        .cursor_get(&format!("{SOURCE}#customers"))
        .unwrap()?;
    serde_json::from_str(&text).ok()
}

/// Every valid customer is in the CRM at its latest version (its change time in ms), no
/// invalid one is, and no version ever went down.
fn assert_latest(crm: &SandboxCrm, bank: &Bank, invalid: &BTreeSet<String>) {
    assert_eq!(
        crm.contacts_len() as u64,
        bank.len() - invalid.len() as u64,
        "unexpected contacts"
    );
    for i in 0..bank.len() {
        let id = Bank::customer_id(i);
        if invalid.contains(&id) {
            assert!(crm.contact(&id).is_none(), "customer {id} has a broken INN");
            continue;
        }
        let c = crm
            .contact(&id)
            .unwrap_or_else(|| panic!("customer {id} missing from the CRM"));
        assert_eq!(
            c.version,
            bank.state(i).updated_at.timestamp_millis(),
            "customer {id} not at its latest version"
        );
        assert_eq!(c.source, SOURCE);
    }
    assert_eq!(crm.version_regressions(), 0);
}

/// The distinct keys in the quarantine topic, once `expected` of them arrived.
async fn quarantined_keys(prefix: &str, expected: usize) -> BTreeSet<String> {
    let bus = KafkaBus::new(&KafkaConfig::new(hub_tests::kafka::bootstrap())).unwrap();
    let topic = format!("{prefix}.quarantine");
    let mut consumer = bus
        .subscribe(&hub_tests::kafka::unique("soap-q"), &topic)
        .await
        .unwrap();
    let mut keys = BTreeSet::new();
    let deadline = Instant::now() + SETTLE;
    while keys.len() < expected && Instant::now() < deadline {
        for r in consumer
            .poll(500, Duration::from_millis(500))
            .await
            .unwrap()
        {
            assert_eq!(r.header("source"), Some(SOURCE));
            assert_eq!(r.header("field"), Some("inn"));
            let location = r.header("location").unwrap_or_default();
            assert!(
                location.starts_with("operation customers, page ")
                    && location.contains(", record ")
                    && location.contains(CUSTOMERS_RECORD_PATH),
                "{location}"
            );
            keys.insert(r.key.clone());
        }
    }
    keys
}

/// No INN, e-mail, passport or last name of the first customers appears in the log.
fn assert_no_pii(log: &str, bank: &Bank) {
    for i in 0..500 {
        let c = bank.customer(i);
        for field in ["inn", "email", "passport", "last_name", "phone"] {
            if let Some(v) = c[field].as_str().filter(|v| v.len() >= 6) {
                assert!(!log.contains(v), "customer {i}: {field} found in the log");
            }
        }
    }
    assert!(!log.contains(PASSWORD), "the password is in the log");
}

/// The last lines of the hub's log, for a failure message.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
