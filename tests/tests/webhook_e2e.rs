//! End to end on the real Kafka broker: the core bank pushes signed customer events to
//! `POST /webhooks/abs-hooks` of a `hub run` process. Signed events reach the sandbox CRM;
//! a wrong, missing or tampered signature is refused with 401 and nothing of it is
//! published; a stale timestamp is refused with 401 "stale"; a repeated event id is
//! answered 200 "duplicate" without a second CRM write — also after a restart of the hub;
//! an oversized body gets 413; a record that cannot be mapped goes to quarantine. A second
//! hub whose bus is unreachable answers 503 with Retry-After: 2xx means durable.

use std::path::Path;
use std::time::Duration;

use hub_tests::core_bank::{Bank, Signing, WebhookSender, customer_event, customer_mapping};
use hub_tests::hub::{HubProcess, TestBus, free_port, test_bed, wait_for};
use integration_hub::sandbox_crm::SandboxCrm;
use serde_json::json;

const SOURCE: &str = "abs-hooks";
const SECRET: &str = "whsec-core-bank-0123456789";
const SETTLE: Duration = Duration::from_secs(40);

fn config_text(prefix: &str, bootstrap: &str, crm: &str, port: u16) -> String {
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
kind = "webhook"

[sources.webhook]
secret = "file:hook.secret"
event_id_path = "$.event_id"
max_body_bytes = 65536
ack_timeout_ms = 3000
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
        mapping = customer_mapping("$.customer", Some("$.customer.version")),
    )
}

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("hook.secret"), SECRET).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn wait_listening(port: u16, hub: &mut HubProcess) {
    wait_for("the hub's HTTP listener", SETTLE, || {
        hub.assert_running()?;
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&hub.log)));
}

/// Delivers a sentinel event and waits for it in the CRM, so that the CRM has had the time
/// to receive what earlier deliveries might have published.
async fn settle(
    sender: &WebhookSender,
    crm: &SandboxCrm,
    bank: &Bank,
    index: u64,
    hub: &mut HubProcess,
) {
    let event = customer_event(bank, index, &format!("sentinel-{index}"));
    let a = sender.send(&event, Signing::Valid).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    let id = Bank::customer_id(index);
    wait_for("the sentinel in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact(&id).is_some())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&hub.log)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_reach_crm_once_and_everything_else_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = hub_tests::kafka::unique("hooks");
    let bootstrap = hub_tests::kafka::bootstrap();
    let bus = TestBus::Kafka {
        bootstrap: bootstrap.clone(),
    };
    let (crm, _, _) = test_bed(dir.path(), &bus, &prefix).await.unwrap();
    let (crm_addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
    let port = free_port().unwrap();
    let config = write_config(
        dir.path(),
        "hooks.toml",
        &config_text(&prefix, &bootstrap, &format!("http://{crm_addr}"), port),
    );
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_listening(port, &mut hub).await;
    let url = format!("http://127.0.0.1:{port}/webhooks/{SOURCE}");
    let sender = WebhookSender::new(&url, SECRET);
    let bank = Bank::new(1_000, 77);

    // 1. Signed events: one per delivery and ten in one batch.
    for i in 0..5 {
        let a = sender
            .send(
                &customer_event(&bank, i, &format!("evt-{i}")),
                Signing::Valid,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{a:?}");
        assert_eq!(a.body["status"], "accepted");
        assert_eq!(a.body["published"], 1);
    }
    let batch = json!({
        "events": (5..15)
            .map(|i| customer_event(&bank, i, &format!("evt-{i}")))
            .collect::<Vec<_>>()
    });
    let a = sender.send(&batch, Signing::Valid).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["published"], 10);
    wait_for("15 customers in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= 15)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", log_tail(&log)));
    for i in 0..15 {
        let c = crm.contact(&Bank::customer_id(i)).expect("delivered");
        assert_eq!(c.version, 1);
        assert_eq!(c.source, SOURCE);
    }

    // 2. Refused: wrong secret, tampered body, no signature (401 "signature mismatch");
    // a timestamp ten minutes old (401 "stale"). None of these customers may arrive.
    for (i, signing, error) in [
        (100, Signing::WrongSecret, "signature mismatch"),
        (101, Signing::Tampered, "signature mismatch"),
        (102, Signing::Unsigned, "signature mismatch"),
        (103, Signing::Stale(600), "stale"),
    ] {
        let a = sender
            .send(&customer_event(&bank, i, &format!("bad-{i}")), signing)
            .await
            .unwrap();
        assert_eq!(a.status, 401, "{signing:?}: {a:?}");
        assert_eq!(a.body, json!({ "error": error }), "{signing:?}");
    }
    settle(&sender, &crm, &bank, 200, &mut hub).await;
    for i in 100..104 {
        assert!(
            crm.contact(&Bank::customer_id(i)).is_none(),
            "a refused delivery was published"
        );
    }

    // 3. A replayed delivery: 200 "duplicate", no second CRM write.
    let writes = crm.total_writes();
    let again = sender
        .send(&customer_event(&bank, 3, "evt-3"), Signing::Valid)
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.body, json!({"status": "duplicate"}));
    let again = sender.send(&batch, Signing::Valid).await.unwrap();
    assert_eq!(again.body, json!({"status": "duplicate"}));
    settle(&sender, &crm, &bank, 201, &mut hub).await;
    assert_eq!(
        crm.total_writes(),
        writes + 1,
        "only the sentinel was written"
    );

    // 4. Too large: 413. A record that cannot be mapped (bad INN): quarantined, not sent.
    let mut big = customer_event(&bank, 300, "big");
    big["padding"] = json!("x".repeat(70_000));
    let a = sender.send(&big, Signing::Valid).await.unwrap();
    assert_eq!(a.status, 413, "{a:?}");
    let mut bad = customer_event(&bank, 301, "bad-inn");
    bad["customer"]["inn"] = json!("7700000001");
    let a = sender.send(&bad, Signing::Valid).await.unwrap();
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["quarantined"], 1);
    assert_eq!(a.body["published"], 0);

    // 5. The record of accepted ids survives a restart.
    let status = hub.terminate(Duration::from_secs(30)).unwrap();
    assert!(status.success());
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_listening(port, &mut hub).await;
    let again = sender
        .send(&customer_event(&bank, 7, "evt-7"), Signing::Valid)
        .await
        .unwrap();
    assert_eq!(again.body, json!({"status": "duplicate"}), "{again:?}");
    settle(&sender, &crm, &bank, 202, &mut hub).await;
    assert_eq!(crm.total_writes(), writes + 2);
    assert_eq!(crm.version_regressions(), 0);

    // 6. 2xx only when durable: a hub whose bus cannot be reached answers 503.
    let other = tempfile::tempdir().unwrap();
    let closed = free_port().unwrap();
    let other_port = free_port().unwrap();
    let other_config = write_config(
        other.path(),
        "hooks.toml",
        &config_text(
            &prefix,
            &format!("127.0.0.1:{closed}"),
            &format!("http://{crm_addr}"),
            other_port,
        ),
    );
    std::fs::write(other.path().join("crm.token"), "test-token").unwrap();
    let mut down = HubProcess::start(&other_config, &other.path().join("hub.log")).unwrap();
    wait_listening(other_port, &mut down).await;
    let to_down = WebhookSender::new(
        format!("http://127.0.0.1:{other_port}/webhooks/{SOURCE}"),
        SECRET,
    );
    let a = to_down
        .send(&customer_event(&bank, 400, "evt-400"), Signing::Valid)
        .await
        .unwrap();
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("5"));
    down.kill9().unwrap();
    // Its id was not recorded: the same event is accepted by the working hub.
    let a = sender
        .send(&customer_event(&bank, 400, "evt-400"), Signing::Valid)
        .await
        .unwrap();
    assert_eq!(a.body["status"], "accepted", "{a:?}");

    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("webhook_refused"));
    assert!(log_text.contains("webhook_duplicate"));
    for i in 0..15 {
        let c = bank.customer(i);
        for field in ["inn", "email", "last_name"] {
            if let Some(v) = c[field].as_str().filter(|v| v.len() >= 6) {
                assert!(!log_text.contains(v), "{field} of customer {i} in the log");
            }
        }
    }
    hub.terminate(Duration::from_secs(30)).unwrap();
}

/// The last lines of the hub's log, for a failure message.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
