//! The embedded bus does not grow without bound: events every consumer group has committed
//! are deleted by the retention task, and nothing undelivered is.

use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::demo_data::{self, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_events_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, _) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[bus.embedded]\ncompact_every_secs = 1\n");
    std::fs::write(&config, text).unwrap();

    let g = demo_data::generate(&Options {
        customers: 500,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        ..Options::default()
    });
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &g.bytes).unwrap();
    wait_for("all delivered", Duration::from_secs(120), || {
        hub.assert_running()?;
        Ok(crm.contacts_len() == g.valid_keys.len())
    })
    .await
    .unwrap();
    let db = dir.path().join("var").join("bus.db");
    wait_for("canonical topic compacted", Duration::from_secs(60), || {
        let conn = rusqlite::Connection::open(&db)?;
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM messages WHERE topic = 'hub.canonical'",
            [],
            |r| r.get(0),
        )?;
        Ok(n == 0)
    })
    .await
    .unwrap();
    let log = std::fs::read_to_string(dir.path().join("hub.log")).unwrap();
    assert!(log.contains("\"bus_compacted\""));
    assert_eq!(crm.contacts_len(), g.valid_keys.len());
}
