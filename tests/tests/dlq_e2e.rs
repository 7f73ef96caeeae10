//! Dead letters an operator can see, replay and discard, end to end: a CRM rejects three
//! customers for good, so three records land in the dead-letter topic of a running `hub`;
//! `hub dlq list` shows them with the reason and the origin (never the customer's data);
//! once the CRM accepts again, `hub dlq replay ID` delivers one, a second replay is a no-op,
//! `hub dlq discard` retires another, and the admin API (bearer `http.admin_token`) lists and
//! replays the third. Runs on the real Apache Kafka broker and on the embedded bus, where the
//! CLI opens the bus file beside the running hub.

use std::path::Path;
use std::time::{Duration, Instant};

use hub_tests::hub::{HubProcess, TestBus, drop_file, hub_bin, test_bed, wait_for};
use integration_hub::demo_data::{self, Options};
use serde_json::Value;

const SETTLE: Duration = Duration::from_secs(180);
const ADMIN_TOKEN: &str = "admin-test-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_dead_letters_are_listed_replayed_once_and_discarded() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    scenario(bus, &hub_tests::kafka::unique("dlq")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_dead_letters_are_listed_replayed_once_and_discarded() {
    scenario(TestBus::Embedded, "hub").await;
}

/// What `hub dlq …` printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn hub_dlq(config: &Path, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(hub_bin());
    cmd.args(["--log-format", "text", "dlq"])
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..]);
    let out = cmd.output().await.expect("cannot run hub dlq");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `hub dlq list --status all --format json`, parsed.
async fn listing(config: &Path) -> Value {
    let r = hub_dlq(config, &["list", "--status", "all", "--format", "json"]).await;
    assert_eq!(r.code, 0, "hub dlq list failed: {}", r.stderr);
    serde_json::from_str(&r.stdout).expect("list --format json prints JSON")
}

async fn scenario(bus: TestBus, prefix: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, prefix).await.unwrap();
    // The admin API, guarded by a token read from a file.
    std::fs::write(dir.path().join("admin.token"), ADMIN_TOKEN).unwrap();
    let listen = format!("listen = \"127.0.0.1:{port}\"\n");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            &listen,
            &format!("{listen}admin_token = \"file:admin.token\"\n"),
        )
        .replace("[bus]\n", "[bus]\ndlq_depth_refresh_secs = 1\n");
    std::fs::write(&config, text).unwrap();

    let g = demo_data::generate(&Options {
        customers: 40,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    // The CRM rejects the first three writes for good (422: not retried).
    crm.inject_status(422, 3);
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &g.bytes).unwrap();
    wait_for("all but three customers delivered", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contacts_len() >= g.valid_keys.len() - 3 && crm.pending_faults() == 0)
    })
    .await
    .unwrap();

    // The running hub counts them by itself: nobody has listed them yet.
    dlq_depth_reaches(port, 3).await;

    // 1. `hub dlq list` shows the three, pending, with reason and origin.
    let deadline = Instant::now() + SETTLE;
    let letters = loop {
        let l = listing(&config).await;
        let letters = l["dead_letters"].as_array().cloned().unwrap_or_default();
        if letters.len() >= 3 || Instant::now() > deadline {
            break letters;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(letters.len(), 3, "{letters:?}");
    let canonical = format!("{prefix}.canonical");
    for l in &letters {
        assert_eq!(l["status"], "pending");
        assert_eq!(l["sink"], "crm");
        assert_eq!(l["origin_topic"], canonical.as_str());
        assert!(l["error"].as_str().unwrap().contains("422"), "{l}");
        assert!(crm.contact(l["key"].as_str().unwrap()).is_none());
    }
    let id = |i: usize| letters[i]["id"].as_str().unwrap().to_string();
    let key = |i: usize| letters[i]["key"].as_str().unwrap().to_string();
    let text = hub_dlq(&config, &["list"]).await;
    assert_eq!(text.code, 0, "{}", text.stderr);
    for i in 0..3 {
        assert!(
            text.stdout.contains(&format!(
                "{}  pending  sink:crm  source=abs-customers",
                id(i)
            )),
            "{}",
            text.stdout
        );
    }
    assert!(text.stdout.contains(&format!("origin={canonical}/")));
    assert!(text.stdout.contains("3 pending, 0 replayed, 0 discarded"));

    // 2. The CRM accepts again (the fault was used up): a replay delivers the first one.
    let r = hub_dlq(&config, &["replay", &id(0), "--by", "e2e"]).await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("{}: replayed to {canonical}", id(0))),
        "{}",
        r.stdout
    );
    wait_for("the replayed customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact(&key(0)).is_some())
    })
    .await
    .unwrap();
    assert_eq!(crm.writes_for(&key(0)), 1);

    // 3. Replaying it again does nothing and says so.
    let r = hub_dlq(&config, &["replay", &id(0)]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("already replayed at"), "{}", r.stdout);
    assert!(r.stdout.contains("by e2e"), "{}", r.stdout);

    // 4. The second one is discarded, and then refused for replay.
    let r = hub_dlq(
        &config,
        &[
            "discard",
            &id(1),
            "--reason",
            "closed account",
            "--by",
            "e2e",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains(&format!("{}: discarded", id(1))));
    let r = hub_dlq(&config, &["replay", &id(1)]).await;
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("discarded at"), "{}", r.stdout);

    // The hub's count follows the replay and the discard made by the command line.
    dlq_depth_reaches(port, 1).await;

    // 5. The admin API: no token, no answer; with it, the third is listed and replayed.
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/api/dlq");
    let res = http.get(&base).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let v: Value = http
        .get(&base)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["counts"]["pending"], 1, "{v}");
    assert_eq!(v["dead_letters"][0]["id"], id(2).as_str());
    let res = http
        .post(format!("{base}/{}/replay", id(2)))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "by": "api-e2e" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["outcome"], "replayed");
    let res = http
        .post(format!("{base}/{}/replay", id(1)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    wait_for(
        "the customer replayed through the API in the CRM",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(crm.contact(&key(2)).is_some())
        },
    )
    .await
    .unwrap();

    // 6. Nothing is left to replay; the discarded customer stays out of the CRM.
    let r = hub_dlq(&config, &["replay", "--all-pending"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("replayed 0 pending"), "{}", r.stdout);
    let l = listing(&config).await;
    assert_eq!(l["counts"]["replayed"], 2, "{l}");
    assert_eq!(l["counts"]["discarded"], 1, "{l}");
    assert_eq!(l["counts"]["pending"], 0, "{l}");
    assert_eq!(crm.contacts_len(), g.valid_keys.len() - 1);
    assert!(crm.contact(&key(1)).is_none());
    assert_eq!(crm.version_regressions(), 0);
    hub.assert_running().unwrap();

    // 7. The listing never shows a customer's data; `show --payload` does, on request.
    let delivered = crm.contact(&key(0)).unwrap().fields;
    let text = hub_dlq(&config, &["list", "--status", "all"]).await.stdout;
    let shown = hub_dlq(&config, &["show", &id(0)]).await.stdout;
    let with_payload = hub_dlq(&config, &["show", &id(0), "--payload"])
        .await
        .stdout;
    let mut checked = 0;
    for value in strings(&delivered) {
        // Codes such as `person` are not customer data (and are words of the report).
        let code = value.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if value.chars().count() < 6 || value == key(0) || code {
            continue;
        }
        assert!(!text.contains(&value), "list shows customer data");
        assert!(
            !shown.contains(&value),
            "show without --payload shows customer data"
        );
        assert!(
            with_payload.contains(&value),
            "show --payload lacks {value}"
        );
        checked += 1;
    }
    assert!(checked >= 2, "no customer field was checked: {delivered}");
}

/// Every string inside `v`.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.values().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

/// Waits until the hub's `/metrics` shows `hub_dlq_depth` = `want`.
async fn dlq_depth_reaches(port: u16, want: u64) {
    let deadline = Instant::now() + SETTLE;
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(res) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && let Ok(text) = res.text().await
        {
            last = text
                .lines()
                .find(|l| l.starts_with("hub_dlq_depth "))
                .unwrap_or_default()
                .to_string();
            if last == format!("hub_dlq_depth {want}") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("hub_dlq_depth never reached {want}; last: {last:?}");
}
