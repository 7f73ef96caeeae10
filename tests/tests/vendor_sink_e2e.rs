//! A `hub` process delivering into a vendor CRM: the Salesforce connector against the
//! Salesforce simulator. Customers reach the CRM as Contacts upserted by external id; a row
//! lock is retried; a record the CRM's validation refuses is dead-lettered; a record whose
//! external id matches two CRM records is parked on the dead-letter topic marked for review,
//! not retried.

use std::time::Duration;

use hub_tests::crm_sim::salesforce::SalesforceSim;
use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::embedded::EmbeddedBus;
use serde_json::json;

const SETTLE: Duration = Duration::from_secs(60);
const SF_TOKEN: &str = "00Dsim!session";

const HEADER: &str = "КлиентИД;Версия;Тип;Фамилия;Имя;Отчество;Наименование;ИНН;СНИЛС;ОГРН;Паспорт;ДатаРождения;Телефон;ЭлПочта;Адрес;Индекс;Сегмент;Статус";

fn customers() -> Vec<u8> {
    let rows = [
        HEADER,
        "S-1;1;ФЛ;Орлова;Вера;Игоревна;;;;;;03.04.1988;+79160000001;;;;mass;active",
        "S-2;1;ФЛ;Зайцев;Павел;Андреевич;;;;;;21.09.1975;+79160000002;;;;mass;active",
        "S-3;1;ФЛ;Белова;Ольга;Романовна;;;;;;15.12.1991;+79160000003;;;;mass;active",
        "S-4;1;ФЛ;Крылов;Юрий;Олегович;;;;;;08.08.1969;+79160000004;;;;mass;active",
    ];
    let text = rows.join("\r\n") + "\r\n";
    encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salesforce_sink_delivers_retries_dead_letters_and_parks_conflicts_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let (_rest_crm, config, _port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let sim = SalesforceSim::new(SF_TOKEN);
    let (addr, _task) = sim.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    // S-2 exists twice in the CRM: a data conflict for a person.
    sim.seed("S-2", json!({ "LastName": "Zaitsev" }));
    sim.seed("S-2", json!({ "LastName": "Zaytsev" }));
    // S-3 meets a row lock twice (transient), S-4 a validation rule (permanent).
    sim.fail_record("S-3", "UNABLE_TO_LOCK_ROW", 2);
    sim.fail_record("S-4", "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1);

    // Replace the REST CRM sink with a Salesforce one.
    std::fs::write(dir.path().join("sf.token"), SF_TOKEN).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let head = &text[..text.find("[[sinks]]").unwrap()];
    let text = format!(
        r#"{head}[[sinks]]
name = "salesforce"
kind = "salesforce"

[sinks.salesforce]
instance_url = "http://{addr}"
access_token = "file:sf.token"

[sinks.salesforce.retry]
max_attempts = 4
initial_backoff_ms = 20
max_backoff_ms = 200
"#
    );
    std::fs::write(&config, text).unwrap();

    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &customers()).unwrap();

    wait_for("S-1 and S-3 in Salesforce", SETTLE, || {
        hub.assert_running()?;
        Ok(sim.record("S-1").is_some() && sim.record("S-3").is_some())
    })
    .await
    .unwrap();
    // The dead-letter topic ends up holding exactly S-2 (review) and S-4 (dead letter).
    let bus = EmbeddedBus::open(&dir.path().join("var").join("bus.db"), 4).unwrap();
    let mut dlq = bus.subscribe("test-reader", "hub.dlq").await.unwrap();
    let mut letters = Vec::new();
    for _ in 0..300 {
        letters.extend(dlq.poll(10, Duration::from_millis(200)).await.unwrap());
        if letters.len() >= 2 {
            break;
        }
    }
    let mut by_key: Vec<(String, String, String)> = letters
        .iter()
        .map(|l| {
            (
                l.key.clone(),
                l.header("disposition").unwrap_or("").to_string(),
                l.header("error").unwrap_or("").to_string(),
            )
        })
        .collect();
    by_key.sort();
    assert_eq!(by_key.len(), 2, "{by_key:?}");
    assert_eq!(by_key[0].0, "S-2");
    assert_eq!(by_key[0].1, "review");
    assert_eq!(by_key[1].0, "S-4");
    assert_eq!(by_key[1].1, "dead_letter");
    assert!(
        by_key[1].2.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
        "{by_key:?}"
    );

    let vera = sim.record("S-1").unwrap();
    assert_eq!(vera["LastName"], "Орлова");
    assert_eq!(vera["Phone"], "+79160000001");
    // The conflict is left for a person: both CRM records are untouched, none was added.
    assert!(sim.record("S-2").is_none(), "two records still carry S-2");
    assert!(sim.record("S-4").is_none());
    hub.terminate(Duration::from_secs(30)).unwrap();
}
