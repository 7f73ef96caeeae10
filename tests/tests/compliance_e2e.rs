//! End to end on the real Apache Kafka broker: a customer on a sanctions list (listed in
//! Latin script, arriving from the core bank in Cyrillic) raises a potential hit on
//! `<prefix>.compliance` and in the compliance API and does not reach the CRM, while the
//! other customers of the same file do; once a compliance officer marks the hit false
//! positive, the customer reaches the CRM. A 1C bank statement with a payment above the
//! mandatory-control threshold raises a 115-FZ alert on the topic and in the API.

use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, test_bed, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};

const SETTLE: Duration = Duration::from_secs(120);
const TOKEN: &str = "compliance-test-token";

/// A one-person UN list in the consolidated list's XML shape (invented person).
const UN_LIST: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<CONSOLIDATED_LIST dateGenerated="2026-11-01T00:00:00.000Z">
  <INDIVIDUALS>
    <INDIVIDUAL>
      <DATAID>9900001</DATAID>
      <VERSIONNUM>1</VERSIONNUM>
      <FIRST_NAME>ALEKSANDR</FIRST_NAME>
      <SECOND_NAME>VIKTOROVICH</SECOND_NAME>
      <THIRD_NAME>KOLESNIKOV</THIRD_NAME>
      <UN_LIST_TYPE>Test</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDi.999</REFERENCE_NUMBER>
      <LISTED_ON>2020-01-01</LISTED_ON>
      <NATIONALITY><VALUE>Russian Federation</VALUE></NATIONALITY>
      <INDIVIDUAL_ALIAS><QUALITY/><ALIAS_NAME/></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_DATE_OF_BIRTH>
        <TYPE_OF_DATE>EXACT</TYPE_OF_DATE>
        <DATE>1971-03-05</DATE>
      </INDIVIDUAL_DATE_OF_BIRTH>
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES/>
</CONSOLIDATED_LIST>
"#;

const HEADER: &str = "КлиентИД;Версия;Тип;Фамилия;Имя;Отчество;Наименование;ИНН;СНИЛС;ОГРН;Паспорт;ДатаРождения;Телефон;ЭлПочта;Адрес;Индекс;Сегмент;Статус";

fn customers() -> Vec<u8> {
    let rows = [
        HEADER,
        "C-100;1;ФЛ;Колесников;Александр;Викторович;;;;;;05.03.1971;+79161112233;;;;mass;active",
        "C-101;1;ФЛ;Петрова;Анна;Сергеевна;;;;;;12.07.1985;+79162223344;;;;mass;active",
        "C-102;1;ФЛ;Смирнов;Дмитрий;Олегович;;;;;;30.11.1990;+79163334455;;;;mass;active",
    ];
    let text = rows.join("\r\n") + "\r\n";
    encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
}

/// A 1C statement of account 40817810000000000001 with one outgoing payment of
/// 1,500,000.00 RUB — above the mandatory-control threshold.
fn statement() -> Vec<u8> {
    let text = "1CClientBankExchange
ВерсияФормата=1.03
Кодировка=Windows
Отправитель=Тестовый банк
Получатель=
ДатаСоздания=20.11.2026
ВремяСоздания=10:00:00
ДатаНачала=20.11.2026
ДатаКонца=20.11.2026
РасчСчет=40817810000000000001
СекцияРасчСчет
ДатаНачала=20.11.2026
ДатаКонца=20.11.2026
РасчСчет=40817810000000000001
НачальныйОстаток=2000000.00
ВсегоПоступило=0.00
ВсегоСписано=1500000.00
КонечныйОстаток=500000.00
КонецРасчСчет
СекцияДокумент=Платежное поручение
Номер=17
Дата=20.11.2026
Сумма=1500000.00
ПлательщикСчет=40817810000000000001
ДатаСписано=20.11.2026
ПлательщикИНН=
Плательщик1=Клиент банка
ПолучательСчет=40702810900000000002
ДатаПоступило=
ПолучательИНН=7707083893
Получатель1=ООО Получатель
ПолучательБИК=044525225
НазначениеПлатежа=Оплата по договору 5
КонецДокумента
КонецФайла
";
    encoding_rs::WINDOWS_1251
        .encode(&text.replace('\n', "\r\n"))
        .0
        .into_owned()
}

fn compliance_config(dir: &Path) -> String {
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::create_dir_all(dir.join("statements")).unwrap();
    std::fs::write(dir.join("lists/un.xml"), UN_LIST).unwrap();
    std::fs::write(dir.join("compliance.token"), TOKEN).unwrap();
    r#"
[compliance]
api_token = "file:compliance.token"
reload_every_secs = 1

[[compliance.lists]]
name = "un"
format = "un_xml"
path = "lists/un.xml"

[[sources]]
name = "abs-statements"
kind = "file_drop"

[sources.file_drop]
inbox = "statements"
pattern = "*.txt"
done_marker = ".done"
poll_interval_ms = 100

[sources.reader]
format = "one_c"
"#
    .to_string()
}

async fn api_get(port: u16, path: &str) -> serde_json::Value {
    let res = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res.json().await.unwrap()
}

/// Every message on the compliance topic so far.
async fn compliance_messages(bus: &KafkaBus, topic: &str, group: &str) -> Vec<serde_json::Value> {
    let mut consumer = bus.subscribe(group, topic).await.unwrap();
    let mut out = Vec::new();
    loop {
        let batch = consumer.poll(100, Duration::from_secs(3)).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(
            batch
                .iter()
                .map(|r| serde_json::from_slice::<serde_json::Value>(&r.payload).unwrap()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_sanctioned_customer_is_held_until_compliance_decides() {
    let bootstrap = hub_tests::kafka::bootstrap();
    let bus_kind = TestBus::Kafka {
        bootstrap: bootstrap.clone(),
    };
    let prefix = hub_tests::kafka::unique("compliance");
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &bus_kind, &prefix).await.unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&compliance_config(dir.path()));
    std::fs::write(&config, text).unwrap();
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();

    // The API refuses callers without the compliance token.
    wait_for("the hub answers", SETTLE, || {
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await
    .unwrap();
    let anonymous = reqwest::get(format!("http://127.0.0.1:{port}/api/compliance/cases"))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // 1. Three customers; one is on the list in Latin script.
    drop_file(&dir.path().join("inbox"), "customers.csv", &customers()).unwrap();
    wait_for("the two clear customers in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact("C-101").is_some() && crm.contact("C-102").is_some())
    })
    .await
    .unwrap();
    let mut case = serde_json::Value::Null;
    for _ in 0..100 {
        let cases = api_get(port, "/api/compliance/cases?status=potential").await;
        if let Some(c) = cases["cases"].as_array().and_then(|a| a.first()) {
            case = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(case["party_key"], "C-100", "{case}");
    assert_eq!(case["hits"][0]["list"], "un", "{case}");
    assert!(
        case["hits"][0]["explanation"].is_object() || case["hits"][0]["explanation"].is_array(),
        "{case}"
    );
    assert!(
        crm.contact("C-100").is_none(),
        "a customer with a potential hit must not reach the CRM"
    );

    let bus = KafkaBus::new(&KafkaConfig::new(bootstrap.clone())).unwrap();
    let topic = format!("{prefix}.compliance");
    let messages = compliance_messages(&bus, &topic, &hub_tests::kafka::unique("reader")).await;
    let potential: Vec<_> = messages
        .iter()
        .filter(|m| m["type"] == "screening" && m["status"] == "potential")
        .collect();
    assert_eq!(potential.len(), 1, "{messages:?}");
    assert_eq!(potential[0]["party_key"], "C-100");
    assert_eq!(
        messages
            .iter()
            .filter(|m| m["type"] == "screening" && m["status"] == "clear")
            .count(),
        2
    );

    // 2. The officer finds it is another person: the customer reaches the CRM.
    let id = case["id"].as_i64().unwrap();
    let res = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/compliance/cases/{id}/decision"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({
            "decision": "false_positive",
            "officer": "officer-7",
            "comment": "different date of birth in the passport copy"
        }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    wait_for("the released customer in the CRM", SETTLE, || {
        hub.assert_running()?;
        Ok(crm.contact("C-100").is_some())
    })
    .await
    .unwrap();
    // The hold and the officer's decision are in the audit log by case, with ids only.
    let audit = std::fs::read_to_string(dir.path().join("var/audit.log")).unwrap();
    let entry = |action: &str| {
        audit
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["action"] == action && e["target"] == format!("case {id}").as_str())
            .unwrap_or_else(|| panic!("no {action} entry for case {id} in:\n{audit}"))
    };
    let hold = entry("screening_hold");
    assert_eq!(hold["actor"], "screening");
    assert_eq!(hold["outcome"], "potential");
    assert!(
        hold["detail"].as_str().unwrap().contains(":C-100 v1 held"),
        "{hold}"
    );
    let decision = entry("compliance_decision");
    assert_eq!(decision["actor"], "compliance-token");
    assert_eq!(decision["outcome"], "false_positive");
    assert_eq!(decision["detail"], "officer officer-7");
    assert!(!audit.contains("Колесников") && !audit.contains("Kolesnikov"));
    let again = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/api/compliance/cases/{id}/decision"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"decision": "confirmed", "officer": "officer-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "a decided case takes no second decision"
    );

    // 3. A payment above the mandatory-control threshold raises an alert.
    let statements = dir.path().join("statements");
    std::fs::write(statements.join("statement.txt"), statement()).unwrap();
    std::fs::write(statements.join("statement.txt.done"), b"").unwrap();
    let mut alerts = serde_json::Value::Null;
    for _ in 0..300 {
        alerts = api_get(port, "/api/compliance/alerts").await;
        if alerts["alerts"].as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list = alerts["alerts"].as_array().cloned().unwrap_or_default();
    assert!(
        list.iter().any(|a| a["rule"] == "mandatory_control"),
        "{alerts}"
    );
    let messages = compliance_messages(&bus, &topic, &hub_tests::kafka::unique("reader")).await;
    assert!(
        messages
            .iter()
            .any(|m| m["type"] == "alert" && m["rule"] == "mandatory_control"),
        "{messages:?}"
    );
    // The statement's records are not CRM contacts.
    assert_eq!(crm.contacts_len(), 3);

    // 4. The list changes: a new entry matches a customer already in the CRM. Only the new
    //    entry is screened against the stored parties; a case opens for that customer.
    let updated = UN_LIST.replace("  </INDIVIDUALS>", NEW_ENTRY);
    std::fs::write(dir.path().join("lists/un.xml"), updated).unwrap();
    let mut new_case = serde_json::Value::Null;
    for _ in 0..300 {
        let cases = api_get(port, "/api/compliance/cases?status=potential").await;
        if let Some(c) = cases["cases"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["party_key"] == "C-101"))
        {
            new_case = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(new_case["hits"][0]["entry_id"], "QDi.998", "{new_case}");

    // 5. A full re-screen does not raise the false positive again (same data, same entry).
    let before = api_get(port, "/api/compliance/summary").await["full_rescreens_done"]
        .as_u64()
        .unwrap();
    let res = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/compliance/rescreen"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let mut done = before;
    for _ in 0..300 {
        done = api_get(port, "/api/compliance/summary").await["full_rescreens_done"]
            .as_u64()
            .unwrap();
        if done > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(done > before, "the re-screen did not run");
    let cases = api_get(port, "/api/compliance/cases").await;
    let for_c100: Vec<_> = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["party_key"] == "C-100")
        .collect();
    assert_eq!(for_c100.len(), 1, "{cases}");
    assert_eq!(for_c100[0]["status"], "false_positive");
    hub.terminate(Duration::from_secs(30)).unwrap();
}

/// A second listed person, added to the list while the hub runs (invented).
const NEW_ENTRY: &str = r#"    <INDIVIDUAL>
      <DATAID>9900002</DATAID>
      <VERSIONNUM>1</VERSIONNUM>
      <FIRST_NAME>ANNA</FIRST_NAME>
      <SECOND_NAME>SERGEYEVNA</SECOND_NAME>
      <THIRD_NAME>PETROVA</THIRD_NAME>
      <UN_LIST_TYPE>Test</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDi.998</REFERENCE_NUMBER>
      <LISTED_ON>2026-11-20</LISTED_ON>
      <INDIVIDUAL_ALIAS><QUALITY/><ALIAS_NAME/></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_DATE_OF_BIRTH>
        <TYPE_OF_DATE>EXACT</TYPE_OF_DATE>
        <DATE>1985-07-12</DATE>
      </INDIVIDUAL_DATE_OF_BIRTH>
    </INDIVIDUAL>
  </INDIVIDUALS>"#;

/// An external screening provider (the AML simulator) answers beside the lists: a customer
/// it reports is held, the others reach the CRM; the provider failing twice with 503 is
/// retried and nobody passes unscreened. Embedded bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_provider_hits_hold_customers_too() {
    use adapters::aml::simulator::{AmlSimulator, Fault, SimEntry};
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "hub")
        .await
        .unwrap();
    let sim = AmlSimulator::new(
        "provider-key",
        [SimEntry::new("pep", "PEP-77", "Смирнов Дмитрий Олегович")],
    );
    sim.inject(Fault::Status(503), 2);
    let (addr, _task) = sim.clone().serve("127.0.0.1:0").await.unwrap();
    std::fs::write(dir.path().join("compliance.token"), TOKEN).unwrap();
    std::fs::write(dir.path().join("provider.key"), "provider-key").unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[compliance]
api_token = "file:compliance.token"

[compliance.provider]
base_url = "http://{addr}"
api_key = "file:provider.key"
initial_backoff_ms = 50
"#
    ));
    std::fs::write(&config, text).unwrap();
    let mut hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &customers()).unwrap();
    wait_for(
        "the customers the provider does not report in the CRM",
        SETTLE,
        || {
            hub.assert_running()?;
            Ok(crm.contact("C-100").is_some() && crm.contact("C-101").is_some())
        },
    )
    .await
    .unwrap();
    let mut case = serde_json::Value::Null;
    for _ in 0..100 {
        let cases = api_get(port, "/api/compliance/cases?status=potential").await;
        if let Some(c) = cases["cases"].as_array().and_then(|a| a.first()) {
            case = c.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(case["party_key"], "C-102", "{case}");
    assert_eq!(case["hits"][0]["list"], "pep", "{case}");
    assert!(crm.contact("C-102").is_none());
    assert_eq!(sim.pending_faults(), 0, "the injected 503s were retried");
    hub.terminate(Duration::from_secs(30)).unwrap();
}
