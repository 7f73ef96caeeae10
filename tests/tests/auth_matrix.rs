//! Roles and least privilege on a running `hub`: every route of the API × every role (and
//! no token, and a wrong one) against the route table's rules; the mass-read alarm; the
//! audit log written by those calls verifies, and `hub audit verify` finds an edit.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use hub_tests::hub::{HubProcess, TestBus, drop_file, hub_bin, test_bed};
use integration_hub::api_doc::{Access, all_endpoints};
use integration_hub::auth::Role;
use integration_hub::auth::tokens::digest;

const SETTLE: Duration = Duration::from_secs(60);

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
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES/>
</CONSOLIDATED_LIST>
"#;

const HEADER: &str = "КлиентИД;Версия;Тип;Фамилия;Имя;Отчество;Наименование;ИНН;СНИЛС;ОГРН;Паспорт;ДатаРождения;Телефон;ЭлПочта;Адрес;Индекс;Сегмент;Статус";

fn customers() -> Vec<u8> {
    let text = [
        HEADER,
        "C-300;1;ФЛ;Смирнова;Анна;Игоревна;;;;;;12.04.1990;+79161230001;;;;mass;active",
    ]
    .join("\r\n")
        + "\r\n";
    encoding_rs::WINDOWS_1251.encode(&text).0.into_owned()
}

/// The token of each role (and one with every role, as an admin-auditor might hold).
fn tokens() -> BTreeMap<Role, String> {
    Role::ALL
        .into_iter()
        .map(|r| (r, format!("matrix-{}-token", r.as_str())))
        .collect()
}

fn add_sections(dir: &Path, config: &Path, read_limit: u32) {
    std::fs::create_dir_all(dir.join("lists")).unwrap();
    std::fs::write(dir.join("lists/un.xml"), UN_LIST).unwrap();
    let mut text = std::fs::read_to_string(config).unwrap();
    text = text.replacen(
        "name = \"abs-customers\"\n",
        "name = \"abs-customers\"\nsystem = \"abs\"\n",
        1,
    );
    text.push_str(&format!(
        "\n[compliance]\nreload_every_secs = 60\n\n[[compliance.lists]]\nname = \"un\"\n\
         format = \"un_xml\"\npath = \"lists/un.xml\"\n\n[master_data]\n\n\
         [auth]\nmass_read_limit = {read_limit}\nmass_read_window_secs = 600\n"
    ));
    for (role, token) in tokens() {
        text.push_str(&format!(
            "\n[[auth.tokens]]\nname = \"{}-caller\"\nroles = [\"{}\"]\nsha256 = \"{}\"\n",
            role.as_str(),
            role.as_str(),
            hex::encode(digest(&token))
        ));
    }
    std::fs::write(config, text).unwrap();
}

/// Polls `f` every 50 ms until it gives a value, for at most [`SETTLE`].
async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {SETTLE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A concrete path for a route: every `{param}` filled with a harmless value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') {
                match seg {
                    "{system}" => "abs",
                    "{source_id}" => "C-404",
                    "{id}" => "1",
                    _ => "x",
                }
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn call(port: u16, method: &str, path: &str, token: Option<&str>) -> u16 {
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut req = match method {
        "post" => client.post(url).json(&serde_json::json!({})),
        _ => client.get(url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_admits_exactly_its_roles_and_every_call_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (_crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "matrix")
        .await
        .unwrap();
    add_sections(dir.path(), &config, 1_000);
    let hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    poll("the hub answers", || async {
        reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .ok()
            .filter(|r| r.status().is_success())
            .map(|_| ())
    })
    .await;

    let tokens = tokens();
    let mut checked = 0;
    let mut failures = Vec::new();
    for ep in all_endpoints() {
        let path = concrete(ep.path);
        match ep.access {
            Access::Public => {
                let s = call(port, ep.method, &path, None).await;
                if s != 200 {
                    failures.push(format!("{} {path} public: {s}", ep.method));
                }
                checked += 1;
            }
            // Webhook routes check their signature (tests/tests/webhook_e2e.rs).
            Access::WebhookSignature => {}
            Access::Roles(allowed) => {
                let anonymous = call(port, ep.method, &path, None).await;
                let wrong = call(port, ep.method, &path, Some("not-a-token")).await;
                if anonymous != 401 || wrong != 401 {
                    failures.push(format!(
                        "{} {path}: no token {anonymous}, wrong token {wrong} (want 401)",
                        ep.method
                    ));
                }
                for (role, token) in &tokens {
                    let s = call(port, ep.method, &path, Some(token)).await;
                    let admitted = allowed.contains(role);
                    let ok = if admitted {
                        s != 401 && s != 403
                    } else {
                        s == 403
                    };
                    if !ok {
                        failures.push(format!(
                            "{} {path} as {}: {s} (admitted: {admitted})",
                            ep.method,
                            role.as_str()
                        ));
                    }
                    checked += 1;
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every API is in the table the matrix walked.
    let paths: Vec<&str> = all_endpoints().iter().map(|e| e.path).collect();
    for p in [
        "/api/dlq",
        "/api/compliance/cases",
        "/api/mdm/golden/{id}",
        "/api/audit",
    ] {
        assert!(paths.contains(&p), "{p} is not in the route table");
    }
    println!("{checked} route × caller checks");

    // Least privilege, spelled out: compliance results are for compliance and auditors.
    let cases = "/api/compliance/cases";
    assert_eq!(
        call(port, "get", cases, Some(&tokens[&Role::Operator])).await,
        403
    );
    assert_eq!(
        call(port, "get", cases, Some(&tokens[&Role::Admin])).await,
        403
    );
    assert_eq!(
        call(port, "get", cases, Some(&tokens[&Role::Auditor])).await,
        200
    );

    // The calls above are in the audit log, and it verifies.
    let audit = dir.path().join("var/audit.log");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(
        text.contains("\"actor\":\"operator-caller\""),
        "audit log lacks the operator"
    );
    assert!(text.contains("\"outcome\":\"403\""));
    let verify = |cfg: &Path| {
        std::process::Command::new(hub_bin())
            .args(["--log-format", "text", "audit", "verify", "--config"])
            .arg(cfg)
            .output()
            .unwrap()
    };
    hub.terminate(Duration::from_secs(30)).unwrap();
    let out = verify(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // One edited entry is found and named.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[4] = lines[4].replace("\"outcome\":\"", "\"outcome\":\"9");
    std::fs::write(&audit, lines.join("\n") + "\n").unwrap();
    let out = verify(&config);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("line 5: entry 5 was edited"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_reading_many_golden_records_raises_the_mass_read_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let (_crm, config, port) = test_bed(dir.path(), &TestBus::Embedded, "massread")
        .await
        .unwrap();
    add_sections(dir.path(), &config, 5);
    let hub = HubProcess::start(&config, &dir.path().join("hub.log")).unwrap();
    drop_file(&dir.path().join("inbox"), "customers.csv", &customers()).unwrap();
    let operator = tokens()[&Role::Operator].clone();
    let client = reqwest::Client::new();
    let xref = format!("http://127.0.0.1:{port}/api/mdm/xref/abs/C-300");
    let golden = poll("the golden record exists", || {
        let (client, xref, operator) = (client.clone(), xref.clone(), operator.clone());
        async move {
            let r = client.get(&xref).bearer_auth(&operator).send().await.ok()?;
            let v: serde_json::Value = r.json().await.ok()?;
            v["golden_id"].as_str().map(str::to_string)
        }
    })
    .await;
    let metric = |body: &str| -> f64 {
        body.lines()
            .find(|l| l.starts_with("hub_mass_read_alarms_total") && l.contains("operator-caller"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let scrape = || async {
        reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Five reads are within the limit; the sixth raises the alarm, once.
    for i in 1..=7 {
        let s = client
            .get(format!("http://127.0.0.1:{port}/api/mdm/golden/{golden}"))
            .bearer_auth(&operator)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 200, "read {i}");
        let alarms = metric(&scrape().await);
        assert_eq!(alarms, if i <= 5 { 0.0 } else { 1.0 }, "after read {i}");
    }
    // Reading is still allowed (an alarm, not a block), and the audit log says who.
    let audit = std::fs::read_to_string(dir.path().join("var/audit.log")).unwrap();
    let alarm = audit
        .lines()
        .find(|l| l.contains("mass_read_alarm"))
        .expect("an audit entry for the alarm");
    assert!(alarm.contains("operator-caller"), "{alarm}");
    // No listing of golden records exists to export them with.
    assert!(
        !all_endpoints()
            .iter()
            .any(|e| e.method == "get" && e.path == "/api/mdm/golden"),
        "a bulk listing of golden records must not exist"
    );
    drop(hub);
}
