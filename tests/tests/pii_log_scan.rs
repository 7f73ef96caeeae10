//! PII never reaches the logs. A `hub run` process (embedded bus, field encryption on) goes
//! through the flows where personal data classically leaks into log lines, each with
//! PLANTED values:
//! - a windows-1251 customer file with good rows and rows failing validation (a bad phone,
//!   a bad INN, a bad e-mail: the rejected values are the classic leak);
//! - webhooks: a malformed body carrying personal data, an event whose fields fail
//!   validation, a good event;
//! - a CRM that rejects every record with an error code naming the value and a body
//!   echoing the record (a tiny stub as a second sink);
//! - compliance screening with a hit on a sanctions list (names).
//!
//! Then every line the hub wrote to stderr is scanned for every planted value (and the
//! digits-only form of the numbers); the test fails listing the lines. It also asserts that
//! masked tags appear, so it proves something was masked rather than that nothing was
//! logged, and that the compliance store on disk holds none of the planted names.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::put;
use hub_tests::core_bank::{Signing, WebhookSender, customer_mapping};
use hub_tests::hub::{HubProcess, TestBus, drop_file, hub_bin, test_bed, wait_for};
use serde_json::{Value, json};

const SETTLE: Duration = Duration::from_secs(90);
const TOKEN: &str = "pii-compliance-token";
const HOOK_SECRET: &str = "whsec-pii-0123456789";

// ------------------------------------------------------------- planted values ----

/// On the sanctions list (in Latin script) and in the file (in Cyrillic): a hit.
const HIT_LAST: &str = "Колесников";
const HIT_FIRST: &str = "Александр";
const HIT_MIDDLE: &str = "Викторович";
const HIT_INN: &str = "773612345650";
const HIT_SNILS: &str = "157-432-981 88";
const HIT_PASSPORT: &str = "4509 123456";
const HIT_PHONE: &str = "+79161112233";
const HIT_EMAIL: &str = "kolesnikov.a@example.ru";

const GOOD_LAST: &str = "Петрова";
const GOOD_FIRST: &str = "Анна";
const GOOD_INN: &str = "502987654365";
const GOOD_PHONE: &str = "+79162223344";
const GOOD_EMAIL: &str = "petrova.anna@example.com";

/// Rows that fail validation: the rejected value is what must not leak.
const BAD_PHONE: &str = "+7 916 123 45 678";
const BAD_INN: &str = "770155522270";
const BAD_EMAIL: &str = "smirnov.d@@example";
const BAD_LAST: &str = "Смирнов";

/// Webhook values.
const HOOK_LAST: &str = "Воронцов";
const HOOK_EMAIL: &str = "vorontsov@example.org";
const HOOK_PHONE: &str = "+79035556677";
const HOOK_PAN: &str = "4276 3800 1234 5679";
const HOOK_SNILS: &str = "204-615-379 38";
const HOOK_BAD_EMAIL: &str = "sokolova@example";
const HOOK_BAD_PHONE: &str = "+7 903 12";

/// Every planted value; numbers are also searched for in digits-only form.
fn planted() -> Vec<String> {
    let values = [
        HIT_LAST,
        HIT_FIRST,
        HIT_MIDDLE,
        HIT_INN,
        HIT_SNILS,
        HIT_PASSPORT,
        HIT_PHONE,
        HIT_EMAIL,
        GOOD_LAST,
        GOOD_INN,
        GOOD_PHONE,
        GOOD_EMAIL,
        BAD_PHONE,
        BAD_INN,
        BAD_EMAIL,
        BAD_LAST,
        HOOK_LAST,
        HOOK_EMAIL,
        HOOK_PHONE,
        HOOK_PAN,
        HOOK_SNILS,
        HOOK_BAD_EMAIL,
        HOOK_BAD_PHONE,
        "Соколова",
        "KOLESNIKOV",
    ];
    let mut out: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    for v in values {
        let digits: String = v.chars().filter(char::is_ascii_digit).collect();
        // Short digit strings would match unrelated numbers (counts, ports, times).
        if digits.len() >= 10 && digits != v {
            out.push(digits);
        }
    }
    out
}

// --------------------------------------------------------------------- inputs ----

const HEADER: &str = "КлиентИД;Версия;Тип;Фамилия;Имя;Отчество;Наименование;ИНН;СНИЛС;ОГРН;Паспорт;ДатаРождения;Телефон;ЭлПочта;Адрес;Индекс;Сегмент;Статус";

fn customer_file() -> Vec<u8> {
    let rows = [
        HEADER.to_string(),
        format!(
            "C-900;1;ФЛ;{HIT_LAST};{HIT_FIRST};{HIT_MIDDLE};;{HIT_INN};{HIT_SNILS};;{HIT_PASSPORT};05.03.1971;{HIT_PHONE};{HIT_EMAIL};г. Москва, ул. Тверская, д. 7;125009;mass;active"
        ),
        format!(
            "C-901;1;ФЛ;{GOOD_LAST};{GOOD_FIRST};Сергеевна;;{GOOD_INN};;;;12.07.1985;{GOOD_PHONE};{GOOD_EMAIL};;;mass;active"
        ),
        format!(
            "C-902;1;ФЛ;{BAD_LAST};Дмитрий;Олегович;;;;;;30.11.1990;{BAD_PHONE};;;;mass;active"
        ),
        format!("C-903;1;ФЛ;{BAD_LAST};Олег;Павлович;;{BAD_INN};;;;01.02.1960;;;;;mass;active"),
        format!("C-904;1;ФЛ;{BAD_LAST};Илья;Дмитриевич;;;;;;02.03.1995;;{BAD_EMAIL};;;mass;active"),
    ];
    let text = rows.join("\r\n") + "\r\n";
    encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
}

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

fn extra_config(dir: &Path, echo_crm: &str) -> String {
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    std::fs::write(dir.join("lists/un.xml"), UN_LIST).unwrap();
    std::fs::write(dir.join("compliance.token"), TOKEN).unwrap();
    std::fs::write(dir.join("hook.secret"), HOOK_SECRET).unwrap();
    // Key material in both documented forms: hex (k1) and base64 (k2).
    std::fs::write(dir.join("keys/k1"), "11".repeat(32)).unwrap();
    std::fs::write(
        dir.join("keys/k2"),
        "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=\n",
    )
    .unwrap();
    format!(
        r#"
[encryption]
active = "k1"

[encryption.keys]
k1 = "file:keys/k1"
k2 = "file:keys/k2"

[compliance]
api_token = "file:compliance.token"
reload_every_secs = 1

[[compliance.lists]]
name = "un"
format = "un_xml"
path = "lists/un.xml"

[[sources]]
name = "abs-hooks"
kind = "webhook"

[sources.webhook]
secret = "file:hook.secret"
event_id_path = "$.event_id"
max_body_bytes = 65536
ack_timeout_ms = 3000
{mapping}
[[sinks]]
name = "crm-echo"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "{echo_crm}"
token = "file:crm.token"
concurrency = 4
max_attempts = 2
initial_backoff_ms = 50
max_backoff_ms = 200
"#,
        mapping = customer_mapping("$.customer", Some("$.customer.version")),
    )
}

// ------------------------------------------------------------- echoing CRM ----

/// Digits of the first string value under a key containing `part`, anywhere in `v`.
fn digits_under(v: &Value, part: &str) -> Option<String> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let hit = k.to_ascii_lowercase().contains(part);
            let own = match x {
                Value::String(s) if hit => Some(s.clone()),
                Value::Array(a) if hit => a.iter().find_map(|e| e.as_str().map(str::to_string)),
                _ => None,
            };
            own.map(|s| s.chars().filter(char::is_ascii_digit).collect())
                .filter(|d: &String| !d.is_empty())
                .or_else(|| digits_under(x, part))
        }),
        Value::Array(a) => a.iter().find_map(|x| digits_under(x, part)),
        _ => None,
    }
}

/// A CRM that refuses every record with 422, an error code naming the offending value (as
/// some CRMs do: `duplicate_inn_<inn>`) and a message echoing the whole record.
async fn echo_crm() -> (String, Arc<AtomicUsize>) {
    async fn reject(
        State(seen): State<Arc<AtomicUsize>>,
        Json(body): Json<Value>,
    ) -> (StatusCode, Json<Value>) {
        seen.fetch_add(1, Ordering::SeqCst);
        let code = if let Some(inn) = digits_under(&body, "inn") {
            format!("duplicate_inn_{inn}")
        } else if let Some(phone) = digits_under(&body, "phone") {
            format!("invalid_phone_{phone}")
        } else {
            "rejected".to_string()
        };
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(
                json!({"error": code, "message": format!("record rejected: {body}"), "record": body}),
            ),
        )
    }
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/contacts/{external_id}", put(reject))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

// ---------------------------------------------------------------------- test ----

async fn potential_case(port: u16) -> anyhow::Result<Option<Value>> {
    let res = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{port}/api/compliance/cases?status=potential"
        ))
        .bearer_auth(TOKEN)
        .send()
        .await?;
    if !res.status().is_success() {
        return Ok(None);
    }
    let cases: Value = res.json().await?;
    Ok(cases["cases"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["party_key"] == "C-900").cloned()))
}

/// Lines of `text` containing `needle`, numbered from 1.
fn lines_with<'a>(text: &'a str, needle: &str) -> Vec<(usize, &'a str)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, l)| (i + 1, l))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_personal_data_never_reaches_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "pii")
        .await
        .unwrap();
    let (echo_url, echo_seen) = echo_crm().await;
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&extra_config(dir.path(), &echo_url));
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("hub.log");
    let mut hub = HubProcess::start(&config, &log).unwrap();
    wait_for("the hub answers", SETTLE, || {
        hub.assert_running()?;
        Ok(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
    })
    .await
    .unwrap();

    // 1. The customer file: two good rows (one on the list), three failing validation.
    drop_file(
        &dir.path().join("inbox"),
        "customers_2026-11-26.csv",
        &customer_file(),
    )
    .unwrap();

    // 2. Webhooks.
    let hooks = WebhookSender::new(
        format!("http://127.0.0.1:{port}/webhooks/abs-hooks"),
        HOOK_SECRET,
    );
    // A malformed body (cut short) full of personal data.
    let malformed = format!(
        r#"{{"event_id":"e-bad","customer":{{"id":"W-9","last_name":"{HOOK_LAST}","email":"{HOOK_EMAIL}","phone":"{HOOK_PHONE}","card":"{HOOK_PAN}","snils":"{HOOK_SNILS}""#
    );
    let answer = hooks
        .send_bytes(malformed.into_bytes(), Signing::Valid)
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    // Not JSON objects at all, with personal data in the text.
    let answer = hooks
        .send_bytes(
            format!("[\"{HOOK_LAST}\", \"{HOOK_PHONE}\"]").into_bytes(),
            Signing::Valid,
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 400, "{answer:?}");
    // An event whose e-mail and phone fail validation.
    let invalid = json!({"event_id": "e-invalid", "type": "customer.updated", "customer": {
        "id": "W-2", "version": 1, "type": "FL", "last_name": "Соколова", "first_name": "Мария",
        "email": HOOK_BAD_EMAIL, "phone": HOOK_BAD_PHONE, "segment": "mass", "status": "active"}});
    let answer = hooks.send(&invalid, Signing::Valid).await.unwrap();
    assert!(answer.status < 500, "{answer:?}");
    // A good event: reaches the sandbox CRM, is refused by the echoing one.
    let good = json!({"event_id": "e-good", "type": "customer.updated", "customer": {
        "id": "W-1", "version": 1, "type": "FL", "last_name": HOOK_LAST, "first_name": "Игорь",
        "middle_name": "Петрович", "phone": HOOK_PHONE, "email": HOOK_EMAIL,
        "segment": "mass", "status": "active"}});
    let answer = hooks.send(&good, Signing::Valid).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");

    // 3. Wait for every flow's outcome.
    wait_for(
        "good records in the CRM, file processed, both refused by the echo CRM",
        SETTLE,
        || {
            hub.assert_running()?;
            let processing = dir.path().join("inbox/processing");
            Ok(crm.contact("C-901").is_some()
                && crm.contact("W-1").is_some()
                && !dir.path().join("inbox/customers_2026-11-26.csv").exists()
                && std::fs::read_dir(&processing)
                    .map(|d| d.count() == 0)
                    .unwrap_or(true)
                && echo_seen.load(Ordering::SeqCst) >= 2)
        },
    )
    .await
    .unwrap();
    let deadline = Instant::now() + SETTLE;
    let case = loop {
        hub.assert_running().unwrap();
        if let Some(c) = potential_case(port).await.unwrap() {
            break c;
        }
        assert!(Instant::now() < deadline, "no potential case for C-900");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(case["hits"][0]["list"], "un", "{case}");
    assert!(
        crm.contact("C-900").is_none(),
        "a held customer reached the CRM"
    );
    wait_for("the echo CRM's refusals in the log", SETTLE, || {
        hub.assert_running()?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        Ok(text.lines().filter(|l| l.contains("422")).count() >= 2)
    })
    .await
    .unwrap();
    // 4. Key rotation while the hub runs (it knows k2 already; k2 becomes active).
    let rotated = dir.path().join("hub-k2.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&rotated, text.replace("active = \"k1\"", "active = \"k2\"")).unwrap();
    let rotate = tokio::process::Command::new(hub_bin())
        .args(["keys", "rotate", "--batch", "1", "--config"])
        .arg(&rotated)
        .output()
        .await
        .unwrap();
    let progress = String::from_utf8_lossy(&rotate.stdout).to_string();
    assert!(
        rotate.status.success(),
        "{progress}\n{}",
        String::from_utf8_lossy(&rotate.stderr)
    );
    assert!(progress.contains("compliance cases: done"), "{progress}");
    assert!(progress.contains("re-encrypted"), "{progress}");
    let db = rusqlite::Connection::open(dir.path().join("var/compliance.db")).unwrap();
    let cells: Vec<String> = db
        .prepare(
            "SELECT subject FROM screened UNION ALL SELECT hits FROM cases \
             UNION ALL SELECT envelope FROM cases WHERE envelope IS NOT NULL",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(cells.len() >= 3, "{cells:?}");
    for c in &cells {
        assert!(c.starts_with("enc:v1:k2:"), "not re-encrypted with k2");
    }
    drop(db);
    // The running hub still reads the case, now under k2.
    let again = potential_case(port)
        .await
        .unwrap()
        .expect("the case after rotation");
    assert_eq!(again["hits"], case["hits"]);
    hub.terminate(Duration::from_secs(30)).unwrap();

    // 5. Scan every line (the rotation's stderr is a hub log too).
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&String::from_utf8_lossy(&rotate.stderr));
    text.push_str(&progress);
    let line_count = text.lines().count();
    assert!(
        line_count > 10,
        "too few log lines to prove anything: {line_count}"
    );
    let mut leaks = Vec::new();
    for value in planted() {
        for (n, line) in lines_with(&text, &value) {
            leaks.push(format!("line {n} holds `{value}`: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "personal data in the hub's log:\n{}",
        leaks.join("\n")
    );

    let tags = [
        "[name]",
        "[email]",
        "[phone]",
        "[inn]",
        "[snils]",
        "[passport]",
        "[pan]",
    ];
    let counts: Vec<String> = tags
        .iter()
        .map(|t| format!("{t} {}", text.matches(t).count()))
        .collect();
    println!(
        "{line_count} log lines scanned; masked: {}",
        counts.join(", ")
    );
    if std::env::var_os("PII_SCAN_PRINT").is_some() {
        println!("{text}");
    }

    // Something was masked: the echo CRM's error codes named an INN and a phone.
    for tag in ["[inn]", "[phone]"] {
        assert!(
            !lines_with(&text, tag).is_empty(),
            "no {tag} in the log: the masking layer was not exercised\n{text}"
        );
    }

    // 6. At rest: the compliance store (subjects, hits, the held envelope) is encrypted.
    let mut checked = 0;
    for entry in std::fs::read_dir(dir.path().join("var")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("compliance.db") {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        checked += bytes.len();
        for value in [HIT_LAST, HIT_INN, HIT_EMAIL, GOOD_LAST] {
            let found = bytes.windows(value.len()).any(|w| w == value.as_bytes());
            assert!(!found, "`{value}` in clear in {name}");
        }
    }
    assert!(checked > 0, "no compliance store found");
}
