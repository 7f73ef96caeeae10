//! `hub quality` end to end: windows-1251 customer exports with planted bad phones, a bad
//! INN, missing fields, an unreadable row and a duplicate, two sources configured with
//! `[sources.columns]` and a `[quality]` table; the report counts every raw row (also the
//! ones the pipeline quarantines), and the exit code says which bars hold.

use std::path::Path;
use std::process::{Command, Output};

use hub_tests::hub::hub_bin;
use integration_hub::demo_data::{COLUMNS_TOML, HEADER};
use serde_json::Value;

/// A 12-digit person's INN with the check digits of the published rule (written here
/// independently of the validator under test) for a 10-digit body.
fn inn12(body: u64) -> String {
    let mut d: Vec<u32> = format!("{body:010}")
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    for weights in [
        &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8][..],
        &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8][..],
    ] {
        let sum: u32 = d.iter().zip(weights).map(|(a, b)| a * b).sum();
        d.push(sum % 11 % 10);
    }
    d.iter().map(|x| x.to_string()).collect()
}

const SURNAMES: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
];
const GIVEN: &[&str] = &[
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Артём",
];

const PATRONYMICS: &[&str] = &[
    "Петрович",
    "Сергеевич",
    "Олегович",
    "Юрьевич",
    "Игоревич",
    "Павлович",
    "Николаевич",
];
const STREETS: &[&str] = &[
    "ул. Ленина",
    "ул. Гагарина",
    "пр-т Мира",
    "ул. Садовая",
    "наб. Невская",
    "пер. Цветочный",
    "ул. Лесная",
    "ул. Школьная",
    "ул. Советская",
    "ул. Молодёжная",
    "ул. Полевая",
];

/// One customer row in the layout of `HEADER`; `n` makes every value distinct.
fn person(id: &str, n: usize, with_email: bool) -> Vec<String> {
    vec![
        id.to_string(),
        "1".into(),
        "ФЛ".into(),
        SURNAMES[n % SURNAMES.len()].into(),
        GIVEN[n % GIVEN.len()].into(),
        PATRONYMICS[n % PATRONYMICS.len()].into(),
        String::new(),
        inn12(7_700_000_000 + n as u64 * 7919),
        String::new(),
        String::new(),
        String::new(),
        format!("{:02}.{:02}.{}", 1 + n % 28, 1 + n % 12, 1950 + n),
        format!("+7900{:07}", 1_000_000 + n * 37),
        if with_email {
            format!("client{n}@mail.ru")
        } else {
            String::new()
        },
        format!("г. Москва, {}, д. {}", STREETS[n % STREETS.len()], n + 1),
        format!("{}", 101_000 + n * 13),
        "mass".into(),
        "active".into(),
    ]
}

fn write_export(inbox: &Path, name: &str, rows: &[Vec<String>]) {
    std::fs::create_dir_all(inbox).expect("inbox");
    let mut text = HEADER.join(";");
    text.push_str("\r\n");
    for r in rows {
        text.push_str(&r.join(";"));
        text.push_str("\r\n");
    }
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(&text);
    assert!(!unmappable);
    std::fs::write(inbox.join(name), bytes).expect("write export");
}

fn source(name: &str, inbox: &str) -> String {
    format!(
        "[[sources]]\nname = \"{name}\"\nkind = \"file_drop\"\n[sources.file_drop]\n\
         inbox = \"{inbox}\"\nencoding = \"windows-1251\"\n[sources.columns]\n{COLUMNS_TOML}\n"
    )
}

/// Core banking: 20 customers and a second record of the first (same INN), one bad phone,
/// one INN with a wrong check digit, one birth date missing.
fn abs_rows() -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = (0..20).map(|n| person(&format!("A{n}"), n, true)).collect();
    rows[3][12] = "12345".into();
    let inn = &mut rows[5][7];
    let last = inn.pop().and_then(|c| c.to_digit(10)).expect("digit");
    inn.push(char::from(b'0' + ((last + 1) % 10) as u8));
    rows[7][11] = String::new();
    let mut again = rows[0].clone();
    again[0] = "A100".into();
    rows.push(again);
    rows
}

/// Cards: 10 customers without e-mails; three bad phones, one surname missing, one row
/// with two cells short.
fn cards_rows() -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = (0..10)
        .map(|n| person(&format!("K{n}"), 20 + n, false))
        .collect();
    rows[1][12] = "8 900".into();
    rows[2][12] = "12".into();
    rows[3][12] = "+7 900 12".into();
    rows[4][3] = String::new();
    rows[6].truncate(16);
    rows
}

fn setup(dir: &Path) -> std::path::PathBuf {
    write_export(&dir.join("abs_in"), "abs_2025-06-01.csv", &abs_rows());
    write_export(&dir.join("cards_in"), "cards_2025-06-01.csv", &cards_rows());
    let config = format!(
        "[hub]\ndata_dir = \"var\"\n\n[quality]\nmin_valid_contacts = 0.9\nmin_complete = 0.95\n\n{}\n{}",
        source("abs", "abs_in"),
        source("cards", "cards_in")
    ) + "\n[[sinks]]\nname = \"crm\"\nkind = \"crm_rest\"\n[sinks.crm_rest]\nbase_url = \"http://127.0.0.1:9\"\n";
    let path = dir.join("hub.toml");
    std::fs::write(&path, config).expect("config");
    path
}

fn quality(config: &Path, extra: &[&str]) -> Output {
    Command::new(hub_bin())
        .args(["quality", "--config"])
        .arg(config)
        .args(extra)
        .output()
        .expect("run hub quality")
}

fn counts(v: &Value) -> (u64, u64) {
    (
        v["passed"].as_u64().expect("passed"),
        v["checked"].as_u64().expect("checked"),
    )
}

#[test]
fn quality_report_counts_every_raw_row_and_applies_the_bars() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = setup(dir.path());

    let out = quality(&config, &["--format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let report = &json["report"];
    assert_eq!(report["pass"], false);

    let abs = &report["sources"][0];
    assert_eq!(abs["source"], "abs");
    assert_eq!(abs["records"], 21);
    assert_eq!(counts(&abs["phones"]), (20, 21));
    assert_eq!(counts(&abs["emails"]), (21, 21));
    assert_eq!(counts(&abs["valid_contacts"]), (41, 42));
    assert_eq!(counts(&abs["inns"]), (20, 21));
    // 21 records × last_name, first_name, birth_date, phones; one birth date missing.
    assert_eq!(counts(&abs["completeness"]), (83, 84));
    assert_eq!(counts(&abs["complete_records"]), (20, 21));
    assert_eq!(counts(&abs["fields"]["birth_date"]), (20, 21));
    // The bad phone and the bad INN would go to quarantine; they are counted above.
    assert_eq!(abs["rejected"], 2);
    assert_eq!(abs["unreadable"], 0);
    assert_eq!(
        abs["errors_by_field"],
        serde_json::json!({"inn": 1, "phone": 1})
    );
    assert_eq!(abs["duplicates"]["duplicate_records"], 1);
    assert_eq!(abs["duplicates"]["parties"], 20);
    assert_eq!(abs["pass"], true);

    let cards = &report["sources"][1];
    assert_eq!(cards["source"], "cards");
    assert_eq!(cards["records"], 10);
    assert_eq!(counts(&cards["phones"]), (6, 9));
    assert_eq!(counts(&cards["emails"]), (0, 0));
    assert_eq!(counts(&cards["valid_contacts"]), (6, 9));
    // The unreadable row misses all four fields, row 5 its surname.
    assert_eq!(counts(&cards["completeness"]), (35, 40));
    assert_eq!(cards["rejected"], 5);
    assert_eq!(cards["unreadable"], 1);
    assert_eq!(
        cards["errors_by_field"],
        serde_json::json!({"last_name": 1, "phone": 3, "row": 1})
    );
    assert_eq!(cards["pass"], false);
    assert_eq!(
        cards["failures"],
        serde_json::json!([
            "valid contacts 66.7% below 90.0%",
            "mandatory fields 87.5% complete, below 95.0%"
        ])
    );
    // Across the two sources only the abs duplicate is one party twice.
    assert_eq!(report["across_sources"]["duplicate_records"], 1);
    assert_eq!(json["inputs"][1]["files"][0]["rows"], 10);

    // The text report: counts, shares, verdicts, the overall verdict last.
    let out = quality(&config, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).expect("utf-8 text");
    for line in [
        "Source abs: PASS",
        "  valid phones       20 of 21 (95.2%)",
        "  valid contacts     41 of 42 (97.6%)",
        "  quarantined        2 of 21 (9.5%) by the mapping; records with an error in: inn 1, phone 1",
        "Source cards: FAIL",
        "  valid phones       6 of 9 (66.7%)",
        "  unreadable rows    1 (counted as missing every mandatory field)",
        "  verdict            FAIL: valid contacts 66.7% below 90.0%; mandatory fields 87.5% complete, below 95.0%",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    assert!(
        text.ends_with("Overall: FAIL (1 of 2 sources fail: cards)\n"),
        "{text}"
    );
    // No customer value reaches the report.
    for value in ["Иванов", "12345", "client0@mail.ru"] {
        assert!(!text.contains(value), "`{value}` in:\n{text}");
    }

    // The passing source alone passes; lower bars let the failing one pass too.
    let out = quality(&config, &["--source", "abs"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("Overall: PASS (1 of 1 sources pass)\n")
    );
    let out = quality(
        &config,
        &[
            "--source",
            "cards",
            "--min-valid-contacts",
            "60%",
            "--min-complete",
            "0.85",
            "--no-duplicates",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A report that cannot be made exits 2 and says why.
    let out = quality(&config, &["--source", "crm"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no source named `crm`; configured: abs, cards")
    );
}

/// `GET /api/quality` of a running hub gives the report `hub quality` prints, to operators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_gives_the_same_report() {
    hub_tests::hub::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = setup(dir.path());
    let cli = quality(&config, &["--format", "json"]);
    let cli: Value = serde_json::from_slice(&cli.stdout).expect("json report");

    let port = hub_tests::hub::free_port().expect("port");
    let token = "quality-operator-token";
    let mut text = std::fs::read_to_string(&config).expect("config");
    text = text.replacen(
        "[hub]\n",
        &format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n\n[[auth.tokens]]\nname = \"ops\"\n\
             roles = [\"operator\"]\nsha256 = \"{}\"\n\n[hub]\n",
            hex::encode(integration_hub::auth::tokens::digest(token))
        ),
        1,
    );
    std::fs::write(&config, text).expect("config");
    let _hub = hub_tests::hub::HubProcess::start(&config, &dir.path().join("hub.log"))
        .expect("hub starts");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/quality");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let api: Value = loop {
        if let Ok(r) = client.get(&url).bearer_auth(token).send().await
            && r.status() == 200
        {
            break r.json().await.expect("json");
        }
        assert!(std::time::Instant::now() < deadline, "no report from {url}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(api["report"], cli["report"]);
    let anonymous = client.get(&url).send().await.expect("answer");
    assert_eq!(anonymous.status(), 401);
}
