//! End to end on the real Apache Kafka broker: golden records into the CRM.
//!
//! The same person arrives from the core bank (Cyrillic, with INN) and from the card system
//! (Latin name and phone only) and becomes ONE CRM contact, keyed by golden id, carrying both
//! cross-references. A field staff typed into the CRM survives later bank updates. A data
//! steward's merge of two golden records merges their CRM contacts; an unmerge splits a
//! contact again.

use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::sandbox_crm::SandboxCrm;
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(120);
const TOKEN: &str = "steward-test-token";

const HEADER: &str = "КлиентИД;Версия;Тип;Фамилия;Имя;Отчество;Наименование;ИНН;СНИЛС;ОГРН;Паспорт;ДатаРождения;Телефон;ЭлПочта;Адрес;Индекс;Сегмент;Статус";

fn cp1251(rows: &[&str]) -> Vec<u8> {
    let text = std::iter::once(HEADER)
        .chain(rows.iter().copied())
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n";
    encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
}

/// Core bank: identity with INN (invented people; the INNs carry valid check digits).
fn abs_file(version: u32, email: &str) -> Vec<u8> {
    cp1251(&[
        &format!(
            "C-200;{version};ФЛ;Иванова;Мария;Петровна;;500123456750;;;;14.02.1984;+79161234567;{email};г. Москва, ул. Ленина, д. 5, кв. 12;101000;mass;active"
        ),
        "C-201;1;ФЛ;Петров;Иван;Сергеевич;;771234567859;;;;01.06.1979;+79035550011;;;;mass;active",
    ])
}

/// Card system: a name in Latin script and a phone, nothing else.
fn cards_file() -> Vec<u8> {
    cp1251(&[
        "K-900;1;ФЛ;Ivanova;Maria;;;;;;;;+7 916 123-45-67;;;;;",
        "K-901;1;ФЛ;Petrov;Ivan;;;;;;;;+79990001122;;;;;",
    ])
}

fn golden_config(dir: &Path, config: &Path) {
    std::fs::create_dir_all(dir.join("cards")).unwrap();
    std::fs::write(dir.join("steward.token"), TOKEN).unwrap();
    let text = std::fs::read_to_string(config).unwrap();
    // The core-bank source reads system `abs`, which masters identity by default.
    let mut text = text.replacen(
        "name = \"abs-customers\"\n",
        "name = \"abs-customers\"\nsystem = \"abs\"\n",
        1,
    );
    let columns = integration_hub::demo_data::COLUMNS_TOML;
    text.push_str(&format!(
        r#"
[master_data]
api_token = "file:steward.token"

[[sources]]
name = "card-holders"
system = "cards"
kind = "file_drop"
entity = "party"

[sources.file_drop]
inbox = "cards"
encoding = "windows-1251"
delimiter = ";"
done_marker = ".done"
poll_interval_ms = 100

[sources.columns]
{columns}"#
    ));
    std::fs::write(config, text).unwrap();
}

async fn api(port: u16, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match method {
        "POST" => client.post(url).json(&body.unwrap_or(Value::Null)),
        _ => client.get(url),
    };
    let res = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn golden_of(port: u16, system: &str, id: &str) -> Option<String> {
    let (status, body) = api(port, "GET", &format!("/api/mdm/xref/{system}/{id}"), None).await;
    (status == 200).then(|| body["golden_id"].as_str().unwrap().to_string())
}

/// The cross-references a CRM contact carries, as `system:id`, sorted.
fn xrefs(crm: &SandboxCrm, golden: &str) -> Vec<String> {
    let Some(c) = crm.contact(golden) else {
        return Vec::new();
    };
    let mut out: Vec<String> = c.fields["xrefs"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{}:{}",
                        x["system"].as_str().unwrap_or(""),
                        x["id"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_one_person_from_two_systems_is_one_crm_contact_and_unmerge_splits_it() {
    let bus = TestBus::Kafka {
        bootstrap: hub_tests::kafka::bootstrap(),
    };
    let prefix = hub_tests::kafka::unique("golden");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus, &prefix).await.unwrap();
    golden_config(dir.path(), &config);
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    wait_for("the hub answers", SETTLE, || {
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await
    .unwrap();
    let anonymous = reqwest::get(format!("http://127.0.0.1:{port}/api/mdm/summary"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // 1. The core bank's two customers: two golden records, two contacts.
    drop_file(
        &dir.path().join("inbox"),
        "abs-1.csv",
        &abs_file(1, "maria@example.org"),
    )
    .unwrap();
    let mut maria = None;
    for _ in 0..600 {
        hub.assert_running().unwrap();
        maria = golden_of(port, "abs", "C-200").await;
        if maria.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let maria = maria.expect("C-200 has a golden record");
    let ivan = golden_of(port, "abs", "C-201")
        .await
        .expect("C-201 has a golden record");
    assert_ne!(maria, ivan);
    wait_for("both golden records in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact(&maria).is_some() && crm.contact(&ivan).is_some())
    })
    .await
    .unwrap();
    assert_eq!(xrefs(&crm, &maria), ["abs:C-200"]);

    // 2. The card system's record of Maria (Latin name, phone only) joins her golden
    //    record: still one contact, now with both cross-references.
    drop_file(&dir.path().join("cards"), "cards-1.csv", &cards_file()).unwrap();
    wait_for(
        "Maria's contact carries both cross-references",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(xrefs(&crm, &maria) == ["abs:C-200", "cards:K-900"])
        },
    )
    .await
    .unwrap();
    assert_eq!(
        golden_of(port, "cards", "K-900").await.as_deref(),
        Some(maria.as_str())
    );
    let petrov_card = golden_of(port, "cards", "K-901")
        .await
        .expect("K-901 has a golden record");
    assert_ne!(
        petrov_card, ivan,
        "a name alone with another phone is not auto-merged"
    );
    wait_for("the card-only Petrov in the CRM", SETTLE, || {
        Ok(crm.contact(&petrov_card).is_some())
    })
    .await
    .unwrap();
    let contact = crm.contact(&maria).unwrap();
    // The core bank masters names: the Cyrillic spelling survives.
    assert_eq!(contact.fields["last_name"], "Иванова");
    assert_eq!(contact.fields["source_id"], maria.as_str());
    assert_eq!(
        crm.live_contacts().len(),
        3,
        "Maria, Ivan and the card-only Petrov"
    );

    // 3. A note staff typed into the CRM survives the bank's next update of Maria.
    let mut note = serde_json::Map::new();
    note.insert("notes".into(), json!("prefers calls after 18:00"));
    crm.crm_fields_set(&maria, note)
        .expect("Maria's contact is live");
    drop_file(
        &dir.path().join("inbox"),
        "abs-2.csv",
        &abs_file(2, "m.ivanova@example.org"),
    )
    .unwrap();
    wait_for("Maria's new e-mail in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm
            .contact(&maria)
            .is_some_and(|c| c.fields["emails"] == json!(["m.ivanova@example.org"])))
    })
    .await
    .unwrap();
    let contact = crm.contact(&maria).unwrap();
    assert_eq!(contact.crm_fields["notes"], "prefers calls after 18:00");

    // 4. A steward merges the card-only Petrov into Ivan's golden record: the CRM merges the
    //    two contacts, it does not keep two.
    let (status, body) = api(
        port,
        "POST",
        "/api/mdm/merge",
        Some(json!({ "survivor": ivan, "loser": petrov_card, "steward": "steward-1" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for("the CRM merged Petrov's contacts", SETTLE, || {
        hub.assert_running()?;
        Ok(crm
            .contact(&petrov_card)
            .is_some_and(|c| c.merged_into.as_deref() == Some(ivan.as_str()))
            && xrefs(&crm, &ivan) == ["abs:C-201", "cards:K-901"])
    })
    .await
    .unwrap();
    assert_eq!(crm.live_contacts().len(), 2);

    // 5. Unmerge: the card record of Maria is split off into a new golden record, which
    //    becomes a contact of its own; Maria's contact keeps only the core bank's record.
    let (status, body) = api(
        port,
        "POST",
        &format!("/api/mdm/golden/{maria}/unmerge"),
        Some(json!({ "system": "cards", "source_id": "K-900", "steward": "steward-1" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let split = body["new_golden_id"].as_str().unwrap().to_string();
    assert_ne!(split, maria);
    wait_for(
        "the CRM shows two contacts for the split record",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(xrefs(&crm, &split) == ["cards:K-900"] && xrefs(&crm, &maria) == ["abs:C-200"])
        },
    )
    .await
    .unwrap();
    assert_eq!(crm.live_contacts().len(), 3);
    assert_eq!(
        golden_of(port, "cards", "K-900").await.as_deref(),
        Some(split.as_str())
    );

    // The field history names where Maria's e-mail came from.
    let (status, body) = api(
        port,
        "GET",
        &format!("/api/mdm/golden/{maria}/history?field=emails"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let history = body["history"].as_array().unwrap();
    assert!(
        history.iter().any(|h| h["system"] == "abs"),
        "history of emails: {body}"
    );
    assert_eq!(crm.version_regressions(), 0);

    // The steward's merge and unmerge are in the audit log, by golden id, naming the steward.
    let audit = std::fs::read_to_string(dir.path().join("var/audit.log")).unwrap();
    let entries: Vec<serde_json::Value> = audit
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let entry = |action: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} entry in:\n{audit}"))
    };
    let merge = entry("mdm_merge");
    assert_eq!(merge["target"], ivan.as_str());
    assert_eq!(
        merge["detail"],
        format!("absorbed {petrov_card}; steward steward-1").as_str()
    );
    let unmerge = entry("mdm_unmerge");
    assert_eq!(unmerge["target"], maria.as_str());
    assert_eq!(
        unmerge["outcome"],
        format!("new golden record {split}").as_str()
    );
    assert_eq!(
        unmerge["detail"],
        "cards:K-900 split off; steward steward-1"
    );
    assert_eq!(merge["actor"], unmerge["actor"]);
    assert_ne!(merge["actor"], "unauthenticated");
    hub.terminate(Duration::from_secs(30)).unwrap();
}
