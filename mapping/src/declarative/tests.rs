//! Tests of the declarative mapping: paths, transforms, validators, compile errors, whole
//! records of every entity, and that a card number never leaks.

use chrono::NaiveDate;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::path::JsonPath;
use super::transform::{Transform, decimal_to_minor};
use super::*;

const KEY: &str = "0123456789abcdef0123456789abcdef-test-key";

fn secrets(reference: &str) -> Result<String, String> {
    match reference {
        "env:PAN_KEY" => Ok(KEY.to_string()),
        "env:SHORT" => Ok("short".to_string()),
        other => Err(format!("secret {other} is not set")),
    }
}

fn mapping(toml_text: &str) -> RecordMapping {
    toml::from_str(toml_text).expect("mapping parses")
}

fn compile(toml_text: &str) -> CompiledMapping {
    mapping(toml_text)
        .compile(&secrets)
        .expect("mapping compiles")
        .with_today(NaiveDate::from_ymd_opt(2025, 6, 1).expect("date"))
}

fn compile_errors(toml_text: &str) -> Vec<String> {
    match mapping(toml_text).compile(&secrets) {
        Ok(_) => panic!("mapping should not compile"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// The payload is exactly what the canonical struct serialises to.
fn assert_canonical(entity: Entity, payload: &Value) {
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
        let t: T = serde_json::from_value(v.clone()).expect("fits the struct");
        serde_json::to_value(&t).expect("serialises")
    }
    let back = match entity {
        Entity::Party => round::<crate::model::Party>(payload),
        Entity::Account => round::<crate::model::Account>(payload),
        Entity::Card => round::<crate::model::Card>(payload),
        Entity::Transaction => round::<crate::model::Transaction>(payload),
        other => panic!("not mapped: {other:?}"),
    };
    assert_eq!(&back, payload);
}

fn errors_of(m: &CompiledMapping, record: &Value) -> Vec<String> {
    match m.apply(record) {
        Ok(r) => panic!("record should fail, got {}", r.payload),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

/// Appends the Luhn check digit to a digit string (the published rule, written here
/// independently of the code under test).
fn with_luhn(body: &str) -> String {
    let mut sum = 0;
    for (i, c) in body.chars().rev().enumerate() {
        let mut x = c.to_digit(10).expect("digit");
        if i % 2 == 0 {
            x *= 2;
            if x > 9 {
                x -= 9;
            }
        }
        sum += x;
    }
    format!("{body}{}", (10 - sum % 10) % 10)
}

// ---- paths ----

fn sel(path: &str, v: &Value) -> Vec<Option<Value>> {
    let p = JsonPath::parse(path).expect("path parses");
    let mut out = Vec::new();
    p.select(v, &mut out);
    out.into_iter().map(|o| o.cloned()).collect()
}

#[test]
fn path_nested_index_and_missing() {
    let v = json!({"a": {"b": {"c": 7}}, "list": [{"x": 1}, {"x": 2}], "n": null});
    let get = |p: &str| JsonPath::parse(p).expect("parses").get(&v).cloned();
    assert_eq!(get("$.a.b.c"), Some(json!(7)));
    assert_eq!(get("$.list[1].x"), Some(json!(2)));
    assert_eq!(get("$.list[5].x"), None);
    assert_eq!(get("$.a.missing"), None);
    assert_eq!(get("$.a.b.c.d"), None);
    assert_eq!(get("$.n"), Some(Value::Null));
    assert_eq!(get("$"), Some(v.clone()));
    // An object where a list is expected counts as a list of one (XML converted to JSON).
    assert_eq!(get("$.a[0].b.c"), Some(json!(7)));
    assert_eq!(get("$.a[1]"), None);
}

#[test]
fn path_wildcard_keeps_positions() {
    let v = json!({"contacts": [{"phone": "1"}, {"email": "e"}, {"phone": "3"}], "one": {"phone": "9"}});
    assert_eq!(
        sel("$.contacts[*].phone", &v),
        vec![Some(json!("1")), None, Some(json!("3"))]
    );
    assert_eq!(sel("$.one[*].phone", &v), vec![Some(json!("9"))]);
    assert_eq!(sel("$.none[*].phone", &v), Vec::<Option<Value>>::new());
    assert_eq!(sel("$.contacts[0].phone", &v), vec![Some(json!("1"))]);
}

#[test]
fn path_cyrillic_and_quoted_keys() {
    let v = json!({"клиент": {"Фамилия": "Иванов", "Дата рождения": "01.02.1980", "a.b": 1, "q\"k": 2}});
    let get = |p: &str| JsonPath::parse(p).expect("parses").get(&v).cloned();
    assert_eq!(get("$.клиент.Фамилия"), Some(json!("Иванов")));
    assert_eq!(get("$[\"клиент\"][\"Фамилия\"]"), Some(json!("Иванов")));
    assert_eq!(get("$.клиент['Дата рождения']"), Some(json!("01.02.1980")));
    assert_eq!(get("$.клиент[\"a.b\"]"), Some(json!(1)));
    assert_eq!(get("$.клиент[\"q\\\"k\"]"), Some(json!(2)));
}

#[test]
fn path_parse_errors() {
    for (p, want) in [
        ("a.b", "must start with `$`"),
        ("$.", "empty name"),
        ("$.a..b", "empty name"),
        ("$.a[", "expected a number"),
        ("$.a[1", "expected `]`"),
        ("$.a[\"x]", "unclosed quote"),
        ("$.a[*][*]", "at most one `[*]`"),
        ("$.a b", "expected `.` or `[`"),
        ("$.a[99999999999999999999999]", "index too large"),
    ] {
        let e = JsonPath::parse(p).expect_err(p);
        assert!(e.contains(want), "{p}: {e}");
    }
}

// ---- transforms ----

#[test]
fn text_transforms() {
    let t = |t: Transform, v: &str| t.apply(v, None).expect("applies");
    assert_eq!(t(Transform::Trim, "  a b \t"), "a b");
    assert_eq!(t(Transform::Upper, "иван ivan"), "ИВАН IVAN");
    assert_eq!(t(Transform::Lower, "ИВАН Ivan"), "иван ivan");
    assert_eq!(
        t(Transform::TitleCase, "иванов-ПЕТРОВ анна-мария"),
        "Иванов-Петров Анна-Мария"
    );
    assert_eq!(t(Transform::TitleCase, "o'brien"), "O'Brien");
    assert_eq!(
        t(Transform::DigitsOnly, "+7 (912) 345-67-89"),
        "79123456789"
    );
    assert_eq!(t(Transform::CollapseSpaces, "  a   b\t\nc "), "a b c");
    assert_eq!(t(Transform::Abs, "-12.50"), "12.50");
    assert_eq!(t(Transform::Abs, "7"), "7");
    assert_eq!(t(Transform::SignToDirection, "-1"), "debit");
    assert_eq!(t(Transform::SignToDirection, "0.01"), "credit");
    assert!(Transform::Abs.apply("x", None).is_err());
    assert_eq!(Transform::from_name("innn"), None);
}

#[test]
fn decimal_to_minor_forms() {
    for (v, want) in [
        ("1234.56", 123_456),
        ("1 234,56", 123_456),
        ("1\u{a0}234,5", 123_450),
        ("1,234.56", 123_456),
        ("1.234,56", 123_456),
        ("1,234,567", 123_456_700),
        ("12 345 678,90", 1_234_567_890),
        ("1'234.5", 123_450),
        ("12", 1200),
        ("-0.5", -50),
        ("+3,00", 300),
        (".5", 50),
        ("10.000", 1000),
    ] {
        assert_eq!(decimal_to_minor(v), Ok(want), "{v}");
    }
    for (v, want) in [
        ("1.234", "more than two decimal places"),
        ("12a", "not a decimal amount"),
        ("", "not a decimal amount"),
        ("1e5", "not a decimal amount"),
        ("1.2.3,4", "not a decimal amount"),
        ("12 34", "not a decimal amount"),
        ("1234 567", "not a decimal amount"),
        ("1 234 56", "not a decimal amount"),
        ("99999999999999999999", "amount too large"),
    ] {
        assert_eq!(decimal_to_minor(v), Err(want.to_string()), "{v}");
    }
}

#[test]
fn mask_and_tokenize_pan() {
    let m = compile(
        r#"
entity = "card"
key = "$.id"
pan_key = "env:PAN_KEY"
[fields]
party_source_id = "$.client"
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
token = { path = "$.pan", transforms = ["tokenize_pan"] }
"#,
    );
    let r = m
        .apply(&json!({"id": "c1", "client": "p1", "pan": "4111 1111 1111 1111"}))
        .expect("maps");
    assert_eq!(r.payload["masked_pan"], "411111******1111");
    let token = r.payload["token"].as_str().expect("token").to_string();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    // Same digits, same token, whatever the formatting; another card, another token.
    let again = m
        .apply(&json!({"id": "c1", "client": "p1", "pan": "4111111111111111"}))
        .expect("maps");
    assert_eq!(again.payload["token"], token.as_str());
    let other = m
        .apply(&json!({"id": "c1", "client": "p1", "pan": "5555555555554444"}))
        .expect("maps");
    assert_ne!(other.payload["token"], token.as_str());
    // HMAC-SHA256 of the digits under the key, as computed by a reference implementation.
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(KEY.as_bytes()).expect("key");
    mac.update(b"4111111111111111");
    assert_eq!(token, hex::encode(mac.finalize().into_bytes()));

    let e = errors_of(
        &m,
        &json!({"id": "c1", "client": "p1", "pan": "4111111111111112"}),
    );
    assert_eq!(
        e,
        vec![
            "field masked_pan: card number invalid (Luhn)",
            "field token: card number invalid (Luhn)"
        ]
    );
}

// ---- validators through a mapping ----

#[test]
fn each_validator() {
    let m = compile(
        r#"
entity = "party"
key = "$.id"
[fields]
last_name = "$.ln"
first_name = "$.fn"
inn = { path = "$.inn", validate = "inn" }
snils = "$.snils"
ogrn = "$.ogrn"
passport = "$.passport"
phones = { path = "$.phones", validate = "phone" }
emails = { path = "$.emails", split = "," }
segment = { path = "$.acct", validate = "account" }
status = { path = "$.bic", validate = "bic" }
"address" = "$.addr"
"postal_code" = "$.zip"
"#,
    );
    let good = json!({
        "id": "1", "ln": "Иванов", "fn": "Иван", "inn": "500100732259", "snils": "11223344595",
        "ogrn": "1027700132195", "passport": "45 10 123456", "phones": ["8 912 345-67-89", "+79123456789"],
        "emails": "A@Example.RU, b@example.ru", "acct": "40817810099910004312", "bic": "044525225",
        "addr": "Москва, ул. Тверская, 1", "zip": "125009"
    });
    let r = m.apply(&good).expect("maps");
    let p = &r.payload;
    assert_eq!(p["snils"], "112-233-445 95");
    assert_eq!(p["passport"], "4510 123456");
    assert_eq!(p["phones"], json!(["+79123456789"]));
    assert_eq!(p["emails"], json!(["a@example.ru", "b@example.ru"]));
    assert_eq!(p["addresses"][0]["postal_code"], "125009");
    assert_eq!(p["addresses"][0]["kind"], "primary");

    let bad = json!({
        "id": "1", "ln": "Иванов", "fn": "Иван", "inn": "500100732258", "snils": "11223344596",
        "ogrn": "1027700132196", "passport": "4510 12345", "phones": ["12345"],
        "emails": "not-an-email", "acct": "4081781009991000431", "bic": "04452522",
        "addr": "Москва", "zip": "12500"
    });
    let e = errors_of(&m, &bad);
    assert_eq!(
        e,
        vec![
            "field emails: not a valid e-mail address: missing '@'",
            "field inn: checksum mismatch",
            "field ogrn: checksum mismatch",
            "field passport: must have 10 digits (4 series + 6 number), got 9",
            "field phones: must have 10 or 11 digits, or start with '+', got 5 digits",
            "field postal_code: must have 6 digits, got 5",
            "field segment: must have 20 digits, got 19",
            "field snils: checksum mismatch",
            "field status: must have 9 digits, got 8",
        ]
    );
    for line in &e {
        for v in [
            "500100732258",
            "11223344596",
            "1027700132196",
            "not-an-email",
        ] {
            assert!(!line.contains(v), "{line} repeats a value");
        }
    }
}

// ---- compile errors ----

#[test]
fn compile_errors_name_their_path() {
    let e = compile_errors(
        r#"
entity = "account"
key = "$.id[*]"
timezone = "Moscow"
pan_key = "env:PAN_KEY"
op = { path = "deleted", delete_when = [] }
[fields]
party_source_id = { path = "$.owner", transforms = ["trim", "innn"] }
number = { path = "$.num", validate = "snils" }
currency = { path = "$.cur", validate = "innx" }
bic = { path = "$.bic", date_format = "%d.%m.%Y" }
opened_on = { path = "$.opened", date_format = "%Q" }
status = { path = "$.st", concat = ["$.a"] }
nickname = "$.nick"
owner_name = { concat = ["$.a", "$.b[*]"], separator = " " }
closed_on = { path = "$.closed", default = "not a date" }
"#,
    );
    assert_eq!(
        e,
        vec![
            "key: the path selects several values ([*]) but the field holds one",
            "timezone: expected UTC or an offset such as +03:00",
            "op.path: bad path: a path must start with `$`",
            "op.delete_when: needs at least one non-empty value",
            "fields.bic: date_format applies only to date fields",
            "fields.closed_on: default: expected format yyyy-mm-dd or dd.mm.yyyy",
            "fields.currency: unknown validator \"innx\"; expected one of inn, snils, ogrn, passport, phone, email, account, bic, currency, postal_code, pan",
            "fields.nickname: unknown field `nickname` for entity account; expected one of source_id, party_source_id, number, currency, bic, opened_on, closed_on, status, owner_name, servicer_bic",
            "fields.number: this field is always checked as account; validate = \"snils\" conflicts",
            "fields.opened_on: bad date_format `%Q`",
            "fields.owner_name: concat paths cannot use [*]",
            "fields.party_source_id: unknown transform \"innn\"; expected one of trim, upper, lower, title_case, digits_only, collapse_spaces, mask_pan, tokenize_pan, decimal_to_minor, abs, sign_to_direction",
            "fields.status: give only one of path, concat or value",
        ]
    );
}

#[test]
fn compile_errors_for_requirements_and_keys() {
    let e = compile_errors(
        r#"
entity = "card"
key = { path = "$.pan", transforms = ["tokenize_pan"] }
[fields]
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
"#,
    );
    assert_eq!(
        e,
        vec![
            "fields: field `party_source_id` is required for entity card but has no rule",
            "fields: field `token` is required for entity card but has no rule",
            "pan_key: tokenize_pan is used, so the mapping needs pan_key (a secret reference such as env:PAN_KEY)",
        ]
    );
    let base = r#"
entity = "card"
key = "$.id"
pan_key = "REF"
[fields]
party_source_id = "$.p"
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
token = { path = "$.pan", transforms = ["tokenize_pan"] }
"#;
    assert_eq!(
        compile_errors(&base.replace("REF", "env:SHORT")),
        vec!["pan_key: the key must have at least 32 bytes, it has 5"]
    );
    assert_eq!(
        compile_errors(&base.replace("REF", "env:NOPE")),
        vec!["pan_key: secret env:NOPE is not set"]
    );
    assert_eq!(
        compile_errors(
            r#"
entity = "balance"
key = { value = "x" }
"#
        ),
        vec![
            "entity: entity `balance` cannot be mapped here; expected party, account, card or transaction",
            "key: the key must come from the record, not from `value` or `default`",
        ]
    );
    assert_eq!(
        compile_errors(
            r#"
entity = "party"
key = "$.id"
[fields]
kind = { path = "$.t", map = { FL = "person", UL = "company" } }
phones = { path = "$.p", split = "" }
last_name = { path = "$.l", split = "," }
"address" = "$.a"
"addresses.0.text" = "$.b"
"addresses.*.postal_code" = "$.z[*]"
birth_date = { path = "$.dob", datetime_format = "%d" }
"#
        ),
        vec![
            "fields.\"addresses.0.text\": maps `addresses.0.text`, which another rule already maps",
            "fields.birth_date: datetime_format applies only to timestamp fields (and version)",
            "fields.kind: map entry `UL` gives a value that is not one of person, organisation",
            "fields.last_name: split applies only to list fields (phones, emails)",
            "fields.phones: split must not be empty",
            "fields: use either fixed address indexes (addresses.0.text) or `addresses.*`, not both",
        ]
    );
}

#[test]
fn unknown_keys_in_toml_are_refused() {
    let e = toml::from_str::<RecordMapping>(
        r#"
entity = "party"
key = "$.id"
[fields]
inn = { path = "$.inn", validator = "inn" }
"#,
    )
    .expect_err("unknown key");
    assert!(e.to_string().contains("unknown field `validator`"), "{e}");
    let e = toml::from_str::<RecordMapping>("entity = \"party\"\nkey = \"$.id\"\nextra = 1\n")
        .expect_err("unknown key");
    assert!(e.to_string().contains("unknown field `extra`"), "{e}");
    let e = toml::from_str::<RecordMapping>("entity = \"party\"\nkey = 5\n").expect_err("bad type");
    assert!(e.to_string().contains("a path such as"), "{e}");
}

#[test]
fn the_documented_example_parses_and_compiles() {
    let m = compile(
        r#"
entity = "party"
key = "$.clientId"
version = "$.changeSeq"
event_time = "$.updatedAt"
timezone = "+03:00"
op = { path = "$.deleted", delete_when = "true" }
pan_key = "env:PAN_KEY"
[fields]
last_name = "$.person.lastName"
first_name = { path = "$.person.firstName", transforms = ["trim", "title_case"] }
middle_name = { path = "$.person.middleName", transforms = ["trim", "title_case"] }
kind = { path = "$.type", map = { FL = "person", UL = "organisation" }, default = "person" }
inn = { path = "$.inn", validate = "inn" }
birth_date = { path = "$.dob", date_format = "%d.%m.%Y" }
phones = { path = "$.contacts[*].phone", validate = "phone" }
full_name = { concat = ["$.person.lastName", "$.person.firstName", "$.person.middleName"], separator = " " }
"#,
    );
    let r = m
        .apply(&json!({
            "clientId": 42, "changeSeq": "17", "updatedAt": "2025-05-01 10:00:00",
            "type": "FL", "inn": "500100732259", "dob": "12.03.1985",
            "person": {"lastName": "Иванов", "firstName": "  иван ", "middleName": "ПЕТРОВИЧ"},
            "contacts": [{"phone": "+7 912 345-67-89"}, {"email": "x@y.ru"}, {"phone": "8 (495) 123-45-67"}]
        }))
        .expect("maps");
    assert_eq!(r.key, "42");
    assert_eq!(r.version, Some(17));
    assert_eq!(r.op, Op::Upsert);
    assert_eq!(
        r.event_time.map(|t| t.to_rfc3339()),
        Some("2025-05-01T07:00:00+00:00".to_string())
    );
    assert_eq!(
        r.payload,
        json!({
            "kind": "person", "source_id": "42", "last_name": "Иванов", "first_name": "Иван",
            "middle_name": "Петрович", "full_name": "Иванов иван ПЕТРОВИЧ",
            "inn": "500100732259", "birth_date": "1985-03-12",
            "phones": ["+79123456789", "+74951234567"], "emails": [], "addresses": []
        })
    );
}

// ---- whole records ----

#[test]
fn full_party_with_addresses_and_all_errors() {
    let m = compile(
        r#"
entity = "party"
key = { path = "$.id", transforms = ["trim"] }
version = "$.modified"
[fields]
kind = { path = "$.type", map = { "ФЛ" = "person", "ЮЛ" = "organisation" } }
last_name = { path = "$.fio.last", transforms = ["collapse_spaces", "title_case"] }
first_name = { path = "$.fio.first", transforms = ["title_case"] }
full_name = "$.org"
inn = "$.inn"
ogrn = "$.ogrn"
birth_date = "$.born"
emails = { path = "$.mail", transforms = ["trim"] }
"addresses.*.text" = "$.addr[*].line"
"addresses.*.kind" = { path = "$.addr[*].type", map = { reg = "registration", fact = "actual" } }
"addresses.*.postal_code" = "$.addr[*].zip"
segment = { path = "$.seg", default = "retail" }
status = { value = "active" }
"#,
    );
    let r = m
        .apply(&json!({
            "id": " 7 ", "modified": "2025-01-02T03:04:05.678Z", "type": "ЮЛ",
            "org": "ООО «Ромашка»", "inn": "7707083893", "ogrn": "1027700132195",
            "mail": ["info@romashka.ru", "INFO@romashka.ru "],
            "addr": [{"line": "Москва, Тверская, 1", "type": "reg", "zip": "125009"},
                     {"line": "Москва, Арбат, 2"}]
        }))
        .expect("maps");
    assert_eq!(r.key, "7");
    assert_eq!(r.version, Some(1_735_787_045_678));
    assert_canonical(Entity::Party, &r.payload);
    assert_eq!(
        r.payload,
        json!({
            "kind": "organisation", "source_id": "7", "full_name": "ООО «Ромашка»",
            "inn": "7707083893", "ogrn": "1027700132195", "phones": [],
            "emails": ["info@romashka.ru"],
            "addresses": [
                {"kind": "registration", "text": "Москва, Тверская, 1", "postal_code": "125009"},
                {"kind": "other", "text": "Москва, Арбат, 2"}
            ],
            "segment": "retail", "status": "active"
        })
    );
    // Every problem of the record at once, none quoting a value.
    let e = errors_of(
        &m,
        &json!({
            "modified": "yesterday", "type": "ИП", "inn": "7707083894", "born": "31.02.1990",
            "fio": {"last": {"x": 1}}, "mail": "nobody",
            "addr": [{"zip": "1"}, {"line": "x", "type": "home"}]
        }),
    );
    assert_eq!(
        e,
        vec![
            "field key: is required but missing",
            "field version: expected a non-negative integer or a timestamp (rfc 3339 or yyyy-mm-dd hh:mm:ss)",
            "field addresses.*.kind: value has no entry in map",
            "field addresses.*.postal_code: must have 6 digits, got 1",
            "field birth_date: not a valid calendar date",
            "field emails: not a valid e-mail address: missing '@'",
            "field inn: checksum mismatch",
            "field kind: value has no entry in map",
            "field last_name: expected a text value, found an object",
        ]
    );
}

#[test]
fn lenient_mapping_keeps_invalid_values_for_a_report() {
    let m = compile(
        r#"
entity = "party"
key = "$.id"
[fields]
kind = { path = "$.type", map = { "ФЛ" = "person", "ЮЛ" = "organisation" } }
last_name = "$.last"
inn = "$.inn"
birth_date = "$.born"
phones = { path = "$.tel", split = "," }
emails = "$.mail"
"#,
    );
    let lenient = m.lenient();
    assert_eq!(lenient.entity(), Entity::Party);
    let record = json!({
        "type": "ИП", "last": "Иванов", "inn": " 7707083894 ", "born": "31.02.1990",
        "tel": "8 912 345 67 89, 12345", "mail": "nobody"
    });
    let r = lenient.apply(&record).expect("a lenient payload");
    // The errors are those of the strict mapping, which refuses the record.
    let strict: Vec<String> = errors_of(&m, &record);
    let lenient_errors: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lenient_errors, strict);
    assert_eq!(
        r.errors
            .iter()
            .map(|e| e.field.as_str())
            .collect::<Vec<_>>(),
        ["key", "birth_date", "emails", "inn", "kind", "phones"]
    );
    // Values failing a validator stay as written (trimmed); values failing a map or a date
    // are left out; a valid phone is normalised.
    assert_canonical(Entity::Party, &r.record.payload);
    assert_eq!(
        r.record.payload,
        json!({
            "kind": "person", "source_id": "", "last_name": "Иванов", "inn": "7707083894",
            "phones": ["+79123456789", "12345"], "emails": ["nobody"], "addresses": []
        })
    );
    assert_eq!(r.record.key, "");

    // A clean record maps the same either way, with no errors.
    let clean = json!({"id": "1", "last": "Петров", "inn": "7707083893"});
    let l = lenient.apply(&clean).expect("maps");
    assert!(l.errors.is_empty());
    assert_eq!(l.record, m.apply(&clean).expect("maps"));
}

#[test]
fn lenient_mapping_never_keeps_a_card_number() {
    let m = compile(
        r#"
entity = "card"
key = "$.id"
pan_key = "env:PAN_KEY"
[fields]
party_source_id = "$.client"
token = { path = "$.pan", transforms = ["tokenize_pan"] }
masked_pan = { path = "$.pan", validate = "pan" }
status = "$.status"
"#,
    );
    // A 16-digit number failing the Luhn check is not kept by `validate = "pan"`, and a
    // valid one in free text is masked as in the strict mapping.
    let good_pan = with_luhn("427638001234567");
    let last = good_pan
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .expect("digit");
    let bad_pan = format!("{}{}", &good_pan[..15], (last + 1) % 10);
    let r = m.lenient().apply(&json!({
        "id": "c1", "client": "p1", "pan": bad_pan, "status": format!("card {good_pan}")
    }));
    let text = match r {
        Ok(r) => r.record.payload.to_string(),
        Err(e) => e
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    };
    assert!(!text.contains(&bad_pan), "{text}");
    assert!(!text.contains(&good_pan), "{text}");
}

#[test]
fn birth_date_range_and_formats() {
    let m = compile(
        r#"
entity = "party"
key = "$.id"
[fields]
birth_date = "$.d"
"#,
    );
    let date = |d: &str| {
        m.apply(&json!({"id": "1", "d": d}))
            .map(|r| r.payload["birth_date"].clone())
    };
    assert_eq!(date("1985-03-12").expect("ok"), "1985-03-12");
    assert_eq!(date("12.03.1985").expect("ok"), "1985-03-12");
    assert_eq!(date("1985-03-12T00:00:00+03:00").expect("ok"), "1985-03-12");
    assert_eq!(
        date("2030-01-01").expect_err("future")[0].reason,
        "must not be in the future"
    );
    assert_eq!(
        date("1899-12-31").expect_err("old")[0].reason,
        "must not be before 1900"
    );
}

#[test]
fn account_checks_control_key_with_bic() {
    let m = compile(
        r#"
entity = "account"
key = "$.id"
[fields]
party_source_id = "$.client"
number = "$.number"
currency = { path = "$.ccy", transforms = ["upper"] }
bic = "$.bic"
opened_on = { path = "$.opened", date_format = "%d/%m/%Y" }
status = { path = "$.closed", map = { "0" = "open", "1" = "closed" } }
"#,
    );
    let r = m
        .apply(
            &json!({"id": "a1", "client": 42, "number": "40817810899910004312",
                       "ccy": "rub", "bic": "044525225", "opened": "01/02/2020", "closed": 0}),
        )
        .expect("maps");
    assert_eq!(
        r.payload,
        json!({"source_id": "a1", "party_source_id": "42", "number": "40817810899910004312",
               "currency": "RUB", "bic": "044525225", "opened_on": "2020-02-01", "status": "open"})
    );
    let e = errors_of(
        &m,
        &json!({"id": "a1", "client": "42", "number": "40817810099910004313", "ccy": "RUBL",
                "bic": "044525225", "opened": "2020-02-01"}),
    );
    assert_eq!(
        e,
        vec![
            "field currency: must have 3 letters, got 4",
            "field opened_on: expected a date in the format %d/%m/%Y",
            "field number: control key mismatch for the given bic",
        ]
    );
    // Required fields of an upsert.
    let e = errors_of(&m, &json!({"id": "a1"}));
    assert_eq!(
        e,
        vec![
            "field currency: is required but missing",
            "field number: is required but missing",
            "field party_source_id: is required but missing",
        ]
    );
}

#[test]
fn card_event_is_mapped() {
    let m = compile(
        r#"
entity = "card"
key = "$.cardId"
version = { path = "$.ts", datetime_format = "%d.%m.%Y %H:%M:%S" }
timezone = "+03:00"
pan_key = "env:PAN_KEY"
[fields]
party_source_id = "$.holder.id"
account_source_id = "$.account"
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
token = { path = "$.pan", transforms = ["tokenize_pan"] }
previous_token = { path = "$.oldPan", transforms = ["tokenize_pan"] }
expiry = "$.exp"
event = { path = "$.type", map = { ISSUE = "issued", BLOCK = "blocked", LIMIT = "limit_changed", REISSUE = "reissued" } }
limit_minor = { path = "$.limit.amount", transforms = ["decimal_to_minor"] }
limit_currency = "$.limit.currency"
status = "$.status"
"#,
    );
    let pan = with_luhn("220220123456789");
    let old = with_luhn("220220987654321");
    let r = m
        .apply(
            &json!({"cardId": "K-1", "ts": "01.06.2025 12:00:00", "holder": {"id": "p1"},
                       "account": "a1", "pan": pan, "oldPan": old, "exp": "12/29",
                       "type": "REISSUE", "limit": {"amount": "150 000,00", "currency": "RUB"},
                       "status": "active"}),
        )
        .expect("maps");
    assert_eq!(r.version, Some(1_748_768_400_000));
    let p = &r.payload;
    assert_canonical(Entity::Card, p);
    assert_eq!(p["event"], "reissued");
    assert_eq!(p["limit_minor"], 15_000_000);
    assert_eq!(p["limit_currency"], "RUB");
    assert_eq!(p["masked_pan"], format!("220220******{}", &pan[12..]));
    assert_ne!(p["token"], p["previous_token"]);
    let card: crate::model::Card = serde_json::from_value(p.clone()).expect("a card");
    assert_eq!(card.event, Some(crate::model::CardEvent::Reissued));
    let text = p.to_string();
    assert!(!text.contains(&pan) && !text.contains(&old));

    let e = errors_of(
        &m,
        &json!({"cardId": "K-1", "holder": {"id": "p1"}, "pan": pan, "type": "LOST",
                "limit": {"amount": "-5"}}),
    );
    assert_eq!(
        e,
        vec![
            "field event: value has no entry in map",
            "field limit_minor: must not be negative",
            "field limit_currency: is required when limit_minor is given",
        ]
    );
}

#[test]
fn transaction_is_mapped() {
    let m = compile(
        r#"
entity = "transaction"
key = "$.id"
event_time = "$.booked"
[fields]
account_source_id = "$.account"
amount_minor = { path = "$.amount", transforms = ["abs", "decimal_to_minor"] }
direction = { path = "$.amount", transforms = ["sign_to_direction"] }
currency = "$.ccy"
booked_at = "$.booked"
value_date = "$.valueDate"
counterparty_name = "$.cp.name"
counterparty_inn = "$.cp.inn"
counterparty_account = "$.cp.account"
purpose = { path = "$.purpose", transforms = ["collapse_spaces"] }
"#,
    );
    let r = m
        .apply(&json!({"id": "t1", "account": "a1", "amount": -1234.5, "ccy": "RUB",
                       "booked": "2025-05-01T10:00:00+03:00", "valueDate": "2025-05-02",
                       "cp": {"name": "ООО Ромашка", "inn": "7707083893", "account": "40702810900000000001"},
                       "purpose": "Оплата   по счёту 15"}))
        .expect("maps");
    assert_eq!(r.payload["amount_minor"], 123_450);
    assert_eq!(r.payload["direction"], "debit");
    assert_eq!(r.payload["booked_at"], "2025-05-01T07:00:00Z");
    assert_eq!(r.payload["purpose"], "Оплата по счёту 15");
    assert_canonical(Entity::Transaction, &r.payload);
    let t: crate::model::Transaction = serde_json::from_value(r.payload).expect("a transaction");
    assert_eq!(t.value_date, NaiveDate::from_ymd_opt(2025, 5, 2));

    let e = errors_of(
        &m,
        &json!({"id": "t2", "account": "a1", "amount": "12.345", "ccy": "RUB", "booked": "вчера"}),
    );
    assert_eq!(
        e,
        vec![
            "field event_time: expected a timestamp: rfc 3339, yyyy-mm-dd hh:mm:ss or yyyy-mm-dd",
            "field amount_minor: more than two decimal places",
            "field booked_at: expected a timestamp: rfc 3339, yyyy-mm-dd hh:mm:ss or yyyy-mm-dd",
        ]
    );
    // A negative amount without `abs` breaks the sign convention.
    let signed = compile(
        r#"
entity = "transaction"
key = "$.id"
[fields]
account_source_id = "$.account"
amount_minor = { path = "$.amount", transforms = ["decimal_to_minor"] }
direction = { value = "credit" }
currency = { value = "RUB" }
booked_at = "$.booked"
"#,
    );
    assert_eq!(
        errors_of(
            &signed,
            &json!({"id": "t", "account": "a", "amount": "-1", "booked": "2025-01-01"})
        ),
        vec![
            "field amount_minor: must not be negative: use abs, and sign_to_direction for the direction"
        ]
    );
}

#[test]
fn deletions_need_only_the_key() {
    let m = compile(
        r#"
entity = "account"
key = "$.id"
op = { path = "$.op", delete_when = ["D", "deleted"] }
[fields]
party_source_id = "$.client"
number = "$.number"
currency = "$.ccy"
"#,
    );
    let r = m
        .apply(&json!({"id": "a1", "op": "d"}))
        .expect("a deletion");
    assert_eq!(r.op, Op::Delete);
    assert_eq!(r.payload, json!({"source_id": "a1"}));
    let r = m
        .apply(&json!({"id": "a1", "op": "DELETED "}))
        .expect("a deletion");
    assert_eq!(r.op, Op::Delete);
    assert!(m.apply(&json!({"id": "a1", "op": "U"})).is_err());
    let bool_op = compile(
        r#"
entity = "party"
key = "$.id"
op = { path = "$.deleted", delete_when = "true" }
"#,
    );
    assert_eq!(
        bool_op
            .apply(&json!({"id": 1, "deleted": true}))
            .expect("ok")
            .op,
        Op::Delete
    );
    assert_eq!(
        bool_op
            .apply(&json!({"id": 1, "deleted": false}))
            .expect("ok")
            .op,
        Op::Upsert
    );
    assert_eq!(bool_op.apply(&json!({"id": 1})).expect("ok").op, Op::Upsert);
}

#[test]
fn key_problems() {
    let m = compile("entity = \"party\"\nkey = \"$.id\"\n");
    assert_eq!(
        errors_of(&m, &json!({})),
        vec!["field key: is required but missing"]
    );
    assert_eq!(
        errors_of(&m, &json!({"id": "  "})),
        vec!["field key: is required but missing"]
    );
    assert_eq!(
        errors_of(&m, &json!({"id": {"a": 1}})),
        vec!["field key: expected a text value, found an object"]
    );
    assert_eq!(m.key_of(&json!({"id": 5})), Some("5".to_string()));
    assert_eq!(m.key_of(&json!({"id": [1]})), None);
    assert_eq!(m.entity(), Entity::Party);
    // The PAN key never shows in Debug output.
    let with_key = compile(
        r#"
entity = "party"
key = { path = "$.id", transforms = ["tokenize_pan"] }
pan_key = "env:PAN_KEY"
"#,
    );
    assert!(!format!("{with_key:?}").contains(KEY));
}

#[test]
fn csv_rows_use_the_same_mapping() {
    let headers: Vec<String> = ["ID", "Фамилия", "Имя", "Телефоны", "ID"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cells: Vec<String> = [
        "17",
        "петров",
        "пётр",
        "89123456789, +7 (495) 123-45-67",
        "dup",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let v = csv_row_to_value(&headers, &cells);
    assert_eq!(v["ID"], "17");
    assert_eq!(v["Имя"], "пётр");
    let short = csv_row_to_value(&headers, &cells[..2]);
    assert!(short.get("Имя").is_none());
    let m = compile(
        r#"
entity = "party"
key = "$.ID"
[fields]
last_name = { path = "$.Фамилия", transforms = ["title_case"] }
first_name = { path = '$["Имя"]', transforms = ["title_case"] }
phones = { path = "$.Телефоны", split = "," }
"#,
    );
    let r = m.apply(&v).expect("maps");
    assert_eq!(r.payload["last_name"], "Петров");
    assert_eq!(r.payload["first_name"], "Пётр");
    assert_eq!(r.payload["phones"], json!(["+79123456789", "+74951234567"]));
}

#[test]
fn every_target_field_fits_its_struct() {
    // One rule per field of each entity's table, with a valid value, must produce a
    // payload the struct accepts and keeps: the table and model.rs agree.
    for (entity, fields) in [
        (Entity::Party, super::targets::fields_of(Entity::Party)),
        (Entity::Account, super::targets::fields_of(Entity::Account)),
        (Entity::Card, super::targets::fields_of(Entity::Card)),
        (
            Entity::Transaction,
            super::targets::fields_of(Entity::Transaction),
        ),
    ] {
        let fields = fields.expect("mappable");
        let mut record = serde_json::Map::new();
        let mut rules = std::collections::BTreeMap::new();
        for t in fields {
            let value = sample_value(t.name, t.kind);
            record.insert(t.name.to_string(), value);
            rules.insert(t.name.to_string(), FieldRule::Path(format!("$.{}", t.name)));
        }
        record.insert("k".into(), json!("key-1"));
        let m = RecordMapping {
            entity,
            key: FieldRule::Path("$.k".into()),
            version: None,
            event_time: None,
            timezone: None,
            op: None,
            pan_key: None,
            fields: rules,
        }
        .compile(&secrets)
        .expect("compiles");
        let r = m
            .apply(&Value::Object(record))
            .unwrap_or_else(|e| panic!("{}: {e:?}", entity.as_str()));
        assert_canonical(entity, &r.payload);
        for t in fields {
            assert!(
                r.payload.get(t.name).is_some(),
                "{}: {} lost",
                entity.as_str(),
                t.name
            );
        }
    }
}

fn sample_value(name: &str, kind: super::targets::Kind) -> Value {
    use super::targets::Kind;
    match (name, kind) {
        ("inn" | "counterparty_inn", _) => json!("7707083893"),
        ("snils", _) => json!("11223344595"),
        ("ogrn", _) => json!("1027700132195"),
        ("passport", _) => json!("4510 123456"),
        ("phones", _) => json!(["+79123456789"]),
        ("emails", _) => json!(["a@b.ru"]),
        ("number", _) => json!("40817810899910004312"),
        ("bic", _) => json!("044525225"),
        ("currency" | "limit_currency", _) => json!("RUB"),
        ("masked_pan", _) => json!("411111******1111"),
        (_, Kind::Enum(allowed)) => json!(allowed[0]),
        (_, Kind::Date) => json!("2020-01-02"),
        (_, Kind::DateTime) => json!("2020-01-02T03:04:05.678+03:00"),
        (_, Kind::Int) => json!(100),
        (_, _) => json!("x"),
    }
}

// ---- card numbers never leak ----

#[test]
fn card_numbers_in_other_fields() {
    let pan = "4111111111111111";
    let m = compile(
        r#"
entity = "transaction"
key = "$.id"
[fields]
account_source_id = "$.account"
amount_minor = "$.amount"
direction = { value = "debit" }
currency = { value = "RUB" }
booked_at = "$.booked"
purpose = "$.purpose"
counterparty_account = "$.to"
bank_reference = "$.ref"
"#,
    );
    let r = m
        .apply(
            &json!({"id": "t", "account": "a", "amount": 100, "booked": "2025-01-01",
                       "purpose": "перевод на карту 4111 1111 1111 1111, спасибо",
                       "to": pan, "ref": "4111111111111111"}),
        )
        .expect("maps");
    assert_eq!(
        r.payload["purpose"],
        "перевод на карту 4111 11** **** 1111, спасибо"
    );
    assert_eq!(r.payload["counterparty_account"], "411111******1111");
    // Identifiers are left alone: 16-digit references pass the Luhn check one time in ten.
    assert_eq!(r.payload["bank_reference"], pan);

    let card = compile(
        r#"
entity = "card"
key = "$.pan"
[fields]
party_source_id = "$.p"
masked_pan = "$.pan"
token = "$.pan"
"#,
    );
    assert_eq!(
        errors_of(&card, &json!({"p": "1", "pan": "4111-1111-1111-1111"})),
        vec![
            "field key: looks like a full card number; map it with mask_pan or tokenize_pan",
            "field masked_pan: looks like a full card number; map it with mask_pan or tokenize_pan",
            "field token: looks like a full card number; map it with mask_pan or tokenize_pan",
        ]
    );
    assert_eq!(card.key_of(&json!({"pan": pan})), None);
    // Already masked numbers and IBAN-like groups pass.
    assert!(
        card.apply(&json!({"p": "1", "pan": "411111******1111"}))
            .is_ok()
    );
    assert!(!pan::contains("DE89 3704 0044 0532 0130 00"));
    assert!(pan::contains("x4111111111111111y"));
    assert!(!pan::contains("4111111111111112"));
    assert!(!pan::contains("41111111111111111111"));
}

fn digit_runs(s: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            cur.push(c);
        } else if !cur.is_empty() {
            runs.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        runs.push(cur);
    }
    runs
}

fn leaks(text: &str, pan: &str) -> bool {
    let compact: String = text.chars().filter(|c| *c != ' ' && *c != '-').collect();
    digit_runs(text)
        .iter()
        .chain(digit_runs(&compact).iter())
        .any(|r| (13..=19).contains(&r.len()) && r.contains(pan))
        || compact.contains(pan)
}

fn leak_mapping() -> CompiledMapping {
    compile(
        r#"
entity = "card"
key = { path = "$.pan", transforms = ["tokenize_pan"] }
pan_key = "env:PAN_KEY"
[fields]
party_source_id = "$.holder"
masked_pan = { path = "$.pan", transforms = ["mask_pan"] }
token = { path = "$.pan", transforms = ["tokenize_pan"] }
previous_token = { path = "$.pan", transforms = ["trim", "tokenize_pan"] }
status = "$.note"
expiry = { path = "$.pan", validate = "pan" }
"#,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_valid_pan_never_leaks(
        body in "[2-6][0-9]{11,17}",
        sep in prop_oneof![Just(""), Just(" "), Just("-")],
        broken in any::<bool>(),
    ) {
        let pan = with_luhn(&body);
        // The number as a source may write it: grouped by four, or flipped to a bad check
        // digit so every step fails.
        let shown = if broken {
            let last = pan.chars().last().and_then(|c| c.to_digit(10)).unwrap_or(0);
            format!("{}{}", &pan[..pan.len() - 1], (last + 1) % 10)
        } else {
            pan.clone()
        };
        let grouped: String = shown
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join(sep);
        let m = leak_mapping();
        let record = json!({"pan": grouped, "holder": "h", "note": format!("card {grouped} ok")});
        match m.apply(&record) {
            Ok(r) => {
                let out = serde_json::to_string(&r).expect("json");
                prop_assert!(!leaks(&out, &pan), "output leaks: {out}");
                prop_assert!(!leaks(&out, &shown));
                prop_assert!(!leaks(&r.key, &pan));
            }
            Err(errors) => {
                for e in errors {
                    let text = format!("{e} {e:?}");
                    prop_assert!(!leaks(&text, &pan), "error leaks: {text}");
                    prop_assert!(!leaks(&text, &shown), "error leaks: {text}");
                }
            }
        }
        if let Some(k) = m.key_of(&record) {
            prop_assert!(!leaks(&k, &pan));
        }
        // The transforms on their own.
        let masked = format!("{:?}", Transform::MaskPan.apply(&grouped, None));
        prop_assert!(!leaks(&masked, &pan) && !leaks(&masked, &shown), "{masked}");
        let in_text = format!("x {grouped} y");
        let pan_mask = pan::mask(&in_text);
        if !broken {
            prop_assert!(!leaks(&pan_mask, &pan), "{pan_mask}");
        }
    }
}

#[test]
fn timestamps_formats_and_offsets() {
    let m = compile(
        r#"
entity = "transaction"
key = "$.id"
version = { path = "$.v", datetime_format = "%s" }
event_time = { path = "$.t", datetime_format = "%d.%m.%Y %H:%M %z" }
timezone = "-05:00"
[fields]
account_source_id = { value = "a" }
amount_minor = { value = "1" }
currency = { value = "RUB" }
direction = { value = "credit" }
booked_at = { path = "$.b", datetime_format = "%d/%m/%Y %H:%M" }
value_date = "$.d"
"#,
    );
    let r = m
        .apply(
            &json!({"id": "x", "v": "1700000000", "t": "01.02.2025 10:30 +0300",
                       "b": "01/02/2025 10:30", "d": "2025-02-01"}),
        )
        .expect("maps");
    // With a format, a version is a time: epoch seconds become milliseconds.
    assert_eq!(r.version, Some(1_700_000_000_000));
    assert_eq!(
        r.event_time.map(|t| t.to_rfc3339()),
        Some("2025-02-01T07:30:00+00:00".to_string())
    );
    assert_eq!(r.payload["booked_at"], "2025-02-01T15:30:00Z");
    let r = m
        .apply(&json!({"id": "x", "b": "01/02/2025 10:30"}))
        .expect("maps");
    assert_eq!((r.version, r.event_time), (None, None));
    // Without a format, a naive timestamp is in `timezone`.
    let naive = compile(
        r#"
entity = "party"
key = "$.id"
version = "$.v"
timezone = "+03:00"
"#,
    );
    let r = naive
        .apply(&json!({"id": "x", "v": "2025-02-01 10:30:00"}))
        .expect("maps");
    assert_eq!(r.version, Some(1_738_395_000_000));
    assert_eq!(
        errors_of(
            &m,
            &json!({"id": "x", "t": "2025-02-01", "b": "2025-02-01 10:30"})
        ),
        vec![
            "field event_time: expected a timestamp in the format %d.%m.%Y %H:%M %z",
            "field booked_at: expected a timestamp in the format %d/%m/%Y %H:%M",
        ]
    );
}

#[test]
fn compiled_mappings_are_shareable() {
    fn shareable<T: Send + Sync + Clone>() {}
    shareable::<CompiledMapping>();
}
