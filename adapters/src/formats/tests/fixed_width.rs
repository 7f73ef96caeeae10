use mapping::Direction;

use super::{cp866, read, transactions};
use crate::formats::{ErrorScope, FormatConfig};

/// A processing centre's daily file: header (account, currency), details, trailer (count,
/// total with implied decimals), in cp866.
const LAYOUT: &str = r#"
format = "fixed_width"
encoding = "cp866"
record_type = { start = 1, length = 1 }

[[records]]
code = "H"
role = "header"
fields = [
  { name = "account", start = 2, length = 20 },
  { name = "currency", start = 22, length = 3 },
]

[[records]]
code = "D"
role = "detail"
fields = [
  { name = "id", start = 2, length = 8 },
  { name = "booked_at", start = 10, length = 8 },
  { name = "direction", start = 18, length = 1, debit = "-", credit = "+" },
  { name = "amount", start = 19, length = 12, implied_decimals = 2 },
  { name = "counterparty_name", start = 31, end = 50 },
  { name = "purpose", start = 51, length = 30 },
]

[[records]]
code = "T"
role = "trailer"
fields = [
  { name = "count", start = 2, length = 6 },
  { name = "total", start = 8, length = 14, implied_decimals = 2 },
]
"#;

pub(super) fn config() -> FormatConfig {
    toml::from_str(LAYOUT).expect("the layout parses")
}

fn line(parts: &[(&str, usize)]) -> String {
    parts
        .iter()
        .map(|(text, width)| format!("{text:<width$}"))
        .collect()
}

fn detail(id: &str, date: &str, sign: &str, amount: &str, name: &str, purpose: &str) -> String {
    line(&[
        ("D", 1),
        (id, 8),
        (date, 8),
        (sign, 1),
        (amount, 12),
        (name, 20),
        (purpose, 30),
    ])
}

pub(super) fn file(details: &[String], trailer: &str) -> String {
    let mut text = line(&[("H", 1), ("40817810000000000042", 20), ("RUB", 3)]);
    text.push_str("\r\n");
    for d in details {
        text.push_str(d);
        text.push_str("\r\n");
    }
    text.push_str(trailer);
    text.push_str("\r\n");
    text
}

pub(super) fn good_details() -> Vec<String> {
    vec![
        detail(
            "00000001",
            "20240301",
            "-",
            "000000123456",
            "Аптека Здоровье",
            "покупка",
        ),
        detail(
            "00000002",
            "20240302",
            "+",
            "000000005000",
            "Иванова М.",
            "возврат",
        ),
    ]
}

#[test]
fn header_details_trailer_in_cp866() {
    let text = file(&good_details(), "T00000200000000128456");
    let (items, errors) = read(&config(), &cp866(&text));
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 2);
    assert_eq!(t[0].source_id, "00000001");
    assert_eq!(t[0].account_source_id, "40817810000000000042");
    assert_eq!(t[0].currency, "RUB");
    assert_eq!(t[0].amount_minor, 123_456);
    assert_eq!(t[0].direction, Direction::Debit);
    assert_eq!(t[0].booked_at.to_rfc3339(), "2024-03-01T00:00:00+00:00");
    assert_eq!(t[0].counterparty_name.as_deref(), Some("Аптека Здоровье"));
    assert_eq!(t[0].purpose.as_deref(), Some("покупка"));
    assert_eq!(t[1].direction, Direction::Credit);
    assert_eq!(items[0].location.line, 2);
}

#[test]
fn trailer_count_and_total_are_checked() {
    let (items, errors) = read(
        &config(),
        &cp866(&file(&good_details(), "T00000300000000128456")),
    );
    assert_eq!(transactions(&items).len(), 2);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].scope, ErrorScope::File);
    assert_eq!(errors[0].field.as_deref(), Some("count"));
    assert_eq!(errors[0].location.line, 4);

    let (_, errors) = read(
        &config(),
        &cp866(&file(&good_details(), "T00000200000000128457")),
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field.as_deref(), Some("total"));
    assert!(errors[0].is_fatal());
}

#[test]
fn missing_trailer_is_a_truncated_file() {
    let text = file(&good_details(), "");
    let (items, errors) = read(&config(), &cp866(&text));
    assert_eq!(transactions(&items).len(), 2);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert!(errors[0].reason.contains("truncated"), "{}", errors[0]);
}

#[test]
fn bad_details_are_record_errors_and_the_count_still_holds() {
    let details = vec![
        detail("00000001", "20240230", "-", "000000123456", "A", "x"),
        detail("00000002", "20240302", "*", "000000005000", "B", "y"),
        detail("00000003", "20240302", "+", "0000000050O0", "C", "z"),
        detail("00000004", "20240302", "+", "000000000100", "D", "w"),
        line(&[("X", 1), ("junk", 10)]),
    ];
    let (items, errors) = read(&config(), &cp866(&file(&details, "T00000400000000000000")));
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        [
            "file sample line 2: field booked_at: not a date in the layout's format",
            "file sample line 3: field direction: is neither the debit nor the credit code",
            "file sample line 4: field amount: amount has a character that is not a digit, separator or sign",
            "file sample line 6: field record_type: unknown record type code",
        ]
    );
    // The total is not checked once a detail failed; the count (4 details) matches.
    assert_eq!(transactions(&items).len(), 1);
}

#[test]
fn single_record_type_with_signed_amounts_and_layout_defaults() {
    let layout = r#"
        format = "fixed_width"
        account = "ACC-1"
        currency = "EUR"
        [[records]]
        role = "detail"
        fields = [
          { name = "booked_at", start = 1, length = 10, format = "%d.%m.%Y" },
          { name = "amount", start = 11, length = 12 },
          { name = "purpose", start = 23, length = 40, trim = false },
        ]
    "#;
    let config: FormatConfig = toml::from_str(layout).unwrap();
    let text = "01.03.2024   -1 234,56Miete\n02.03.2024      (5,00)\n03.03.2024       10.00Zins";
    let (items, errors) = read(&config, text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(
        (t[0].amount_minor, t[0].direction),
        (123_456, Direction::Debit)
    );
    assert_eq!((t[1].amount_minor, t[1].direction), (500, Direction::Debit));
    assert_eq!(
        (t[2].amount_minor, t[2].direction),
        (1000, Direction::Credit)
    );
    assert_eq!(t[0].account_source_id, "ACC-1");
    assert_eq!(t[0].source_id, "sample:1");
    assert_eq!(
        t[0].purpose.as_deref(),
        Some("Miete"),
        "untrimmed, but nothing past the line"
    );
    assert_eq!(t[1].purpose, None);
}

#[test]
fn invalid_layouts_are_refused_before_reading() {
    let FormatConfig::FixedWidth(mut layout) = config() else {
        panic!("the layout is fixed width")
    };
    assert_eq!(layout.validate(), Ok(()));
    layout.records[1].fields[0].name = "colour".into();
    let reason = layout.validate().unwrap_err();
    assert!(
        reason.starts_with("records[1].fields[0].name: not a field"),
        "{reason}"
    );

    let FormatConfig::FixedWidth(mut layout2) = config() else {
        panic!("the layout is fixed width")
    };
    layout2.records[1].fields[1].length = Some(0);
    assert!(
        layout2
            .validate()
            .unwrap_err()
            .contains("length of 1 or more")
    );
    layout2.records[1].fields[1].length = None;
    layout2.records[1].fields[1].end = Some(5);
    assert!(layout2.validate().is_err(), "end before start");

    let config = FormatConfig::FixedWidth(layout);
    let (items, errors) = read(&config, b"anything");
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].reason.starts_with("invalid fixed-width layout"),
        "{}",
        errors[0]
    );
}
