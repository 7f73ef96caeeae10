//! Card-processing feed end to end on the real Apache Kafka broker: a card file with full
//! card numbers (issued, activated, blocked, limit changed, reissued) is mapped at the edge —
//! each PAN tokenised with a keyed HMAC and masked to first 6 / last 4 — and delivered; a row
//! with a number failing the Luhn check is quarantined without the number. Then every place
//! the hub writes is scanned for any of the full numbers: every message of every hub topic on
//! the broker (payloads and headers), every file under the hub's data folder and the inbox
//! (state stores, quarantine, archive), the hub's log, and what the CRM received. None may
//! hold a full PAN.

use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};

const SETTLE: Duration = Duration::from_secs(120);
const CARDS: usize = 40;

/// A Luhn-valid 16-digit number with the given 15-digit body.
fn luhn_complete(body: &str) -> String {
    let digits: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
    let mut sum = 0;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = *d;
        if i % 2 == 0 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

fn pans() -> Vec<String> {
    (0..CARDS)
        .map(|i| luhn_complete(&format!("220220{:09}", 314_159 + i * 7_919)))
        .collect()
}

fn card_file(pans: &[String], bad_pan: &str) -> Vec<u8> {
    let events = [
        "issued",
        "activated",
        "blocked",
        "limit_changed",
        "reissued",
    ];
    let mut text = String::from("card_id;client_id;pan;event;status;limit\n");
    for (i, pan) in pans.iter().enumerate() {
        text.push_str(&format!(
            "K-{i};C-{i};{pan};{};active;{}\n",
            events[i % events.len()],
            50_000 + i
        ));
    }
    // A typo in the number: the Luhn check fails; the row is quarantined.
    text.push_str(&format!("K-BAD;C-BAD;{bad_pan};issued;active;1000\n"));
    text.into_bytes()
}

const CARD_SOURCE: &str = r#"
[[sources]]
name = "card-feed"
kind = "file_drop"

[sources.file_drop]
inbox = "cards"
pattern = "*.csv"
delimiter = ";"
done_marker = ".done"
poll_interval_ms = 100
keep_processed = false

[sources.mapping]
entity = "card"
key = "$.card_id"
pan_key = "file:pan.key"

[sources.mapping.fields]
source_id = "$.card_id"
party_source_id = "$.client_id"
token = { path = "$.pan", transforms = ["tokenize_pan"] }
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
event = "$.event"
status = "$.status"
"#;

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn assert_no_pan(place: &str, bytes: &[u8], pans: &[String]) {
    let text = String::from_utf8_lossy(bytes);
    for pan in pans {
        assert!(
            !text.contains(pan.as_str()),
            "a full card number was found in {place}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_card_feed_never_stores_a_full_pan() {
    let bootstrap = hub_tests::kafka::bootstrap();
    let prefix = hub_tests::kafka::unique("cards");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _port) = test_bed(
        dir.path(),
        &TestBus::Kafka {
            bootstrap: bootstrap.clone(),
        },
        &prefix,
    )
    .await
    .unwrap();
    std::fs::create_dir_all(dir.path().join("cards")).unwrap();
    std::fs::write(
        dir.path().join("pan.key"),
        "k3y-for-card-tokens-0123456789abcdef",
    )
    .unwrap();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "kind = \"crm_rest\"\n",
        "kind = \"crm_rest\"\nentities = [\"party\", \"card\"]\n",
    );
    std::fs::write(&config, format!("{text}{CARD_SOURCE}")).unwrap();
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();

    let pans = pans();
    let bad_pan = {
        let mut p = pans[0].clone();
        // Change the last digit: the check digit no longer fits.
        let last = p.pop().unwrap().to_digit(10).unwrap();
        p.push(char::from_digit((last + 1) % 10, 10).unwrap());
        p
    };
    drop_file(
        &dir.path().join("cards"),
        "cards_2026-11-25.csv",
        &card_file(&pans, &bad_pan),
    )
    .unwrap();
    wait_for(
        "every card in the CRM and the file processed",
        SETTLE,
        || {
            hub.assert_running()?;
            let processing = dir.path().join("cards/processing");
            Ok(crm.contacts_len() >= CARDS
                && std::fs::read_dir(&processing)
                    .map(|d| d.count() == 0)
                    .unwrap_or(true)
                && !dir.path().join("cards/cards_2026-11-25.csv").exists())
        },
    )
    .await
    .unwrap();
    hub.terminate(Duration::from_secs(30)).unwrap();

    // What the CRM received: masked number and token, never the number.
    let first = crm.contact("K-0").expect("card K-0 delivered");
    let body = serde_json::to_string(&first.fields).unwrap();
    assert!(
        body.contains(&format!("{}******{}", &pans[0][..6], &pans[0][12..])),
        "{body}"
    );
    for c in crm.snapshot() {
        assert_no_pan(
            "the CRM",
            serde_json::to_string(&c.fields).unwrap().as_bytes(),
            &pans,
        );
    }
    assert!(crm.contact("K-BAD").is_none());
    // The processed file is gone (keep_processed = false): no archive copy with the numbers.
    assert!(
        !dir.path().join("cards/archive").exists()
            || std::fs::read_dir(dir.path().join("cards/archive"))
                .unwrap()
                .count()
                == 0
    );

    // Every message of every topic of this hub on the broker.
    let bus = KafkaBus::new(&KafkaConfig::new(bootstrap)).unwrap();
    let mut seen = 0;
    for suffix in ["canonical", "dlq", "quarantine"] {
        let topic = format!("{prefix}.{suffix}");
        let mut consumer = bus
            .subscribe(&hub_tests::kafka::unique("scan"), &topic)
            .await
            .unwrap();
        loop {
            let batch = consumer.poll(500, Duration::from_secs(3)).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for r in &batch {
                seen += 1;
                assert_no_pan(&format!("topic {topic}"), &r.payload, &pans);
                for (k, v) in &r.headers {
                    assert_no_pan(&format!("header {k} on {topic}"), v.as_bytes(), &pans);
                }
            }
        }
    }
    assert!(seen >= CARDS, "only {seen} messages scanned");

    // Every file the hub wrote: state stores, quarantine, and the log.
    let mut files = Vec::new();
    files_under(&dir.path().join("var"), &mut files);
    files_under(&dir.path().join("cards"), &mut files);
    files.push(log.clone());
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("quarantine")),
        "{files:?}"
    );
    for f in &files {
        assert_no_pan(&f.display().to_string(), &std::fs::read(f).unwrap(), &pans);
        assert_no_pan(
            &f.display().to_string(),
            &std::fs::read(f).unwrap(),
            std::slice::from_ref(&bad_pan),
        );
    }
    let quarantine: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".quarantine.csv"))
        .collect();
    let q = std::fs::read_to_string(quarantine[0]).unwrap();
    assert!(
        q.contains("pan") || q.contains("token") || q.contains("masked_pan"),
        "{q}"
    );
}
