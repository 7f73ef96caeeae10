use chrono::NaiveDate;
use mapping::Direction;

use super::{balances, entities, read, transactions};
use crate::formats::mt940::Mt940Config;
use crate::formats::{ErrorScope, FormatConfig, Record};

pub(super) fn mt940() -> FormatConfig {
    FormatConfig::Mt940(Mt940Config::default())
}

/// Two statements in SWIFT envelopes, CRLF line ends.
pub(super) const TWO_STATEMENTS: &str =
    "{1:F01TESTBANKAXXX0000000000}{2:O9401200240301TESTBANKAXXX00000000002403011200N}{4:\r
:20:STMT0301\r
:25:TESTBANKA/4081781000001\r
:28C:00061/001\r
:60F:C240229EUR1000,00\r
:61:2403010301D80,00NTRFINV-2024-17//BR24030100001\r
Stadtwerke Nord\r
:86:Abschlag Maerz\r
Vertrag 55-1\r
:61:2403010301C250,50NTRFNONREF//BR24030100002\r
:86:Invoice 2024-117\r
:62F:C240301EUR1170,50\r
:64:C240301EUR1170,50\r
-}{5:{CHK:0123456789AB}}\r
{1:F01TESTBANKAXXX0000000000}{2:O9401200240302TESTBANKAXXX00000000002403021200N}{4:\r
:20:STMT0302\r
:25:TESTBANKA/4081781000001\r
:28C:00062/001\r
:60F:C240301EUR1170,50\r
:61:240302RD5,00NCHGNONREF\r
:62F:C240302EUR1175,50\r
-}\r
";

#[test]
fn mt940_statements_balances_and_entries() {
    let (items, errors) = read(&mt940(), TWO_STATEMENTS.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        entities(&items),
        [
            "account",
            "statement",
            "balance",
            "transaction",
            "transaction",
            "balance",
            "balance",
            "statement",
            "balance",
            "transaction",
            "balance"
        ],
        "the second statement of the same account brings no second account record"
    );
    let Record::Account(a) = &items[0].record else {
        panic!()
    };
    assert_eq!(
        (a.source_id.as_str(), a.currency.as_str()),
        ("TESTBANKA/4081781000001", "EUR")
    );
    let Record::Statement(s) = &items[1].record else {
        panic!()
    };
    assert_eq!(s.kind, "mt940");
    assert_eq!(s.sequence.as_deref(), Some("00061/001"));
    assert_eq!(s.source_id, "TESTBANKA/4081781000001/STMT0301/00061/001");

    let t = transactions(&items);
    assert_eq!(
        t[0].source_id,
        "TESTBANKA/4081781000001/STMT0301/00061/001/1"
    );
    assert_eq!(t[0].direction, Direction::Debit);
    assert_eq!(t[0].amount_minor, 8000);
    assert_eq!(t[0].value_date, NaiveDate::from_ymd_opt(2024, 3, 1));
    assert_eq!(t[0].booked_at.to_rfc3339(), "2024-03-01T00:00:00+00:00");
    assert_eq!(t[0].bank_transaction_code.as_deref(), Some("NTRF"));
    assert_eq!(t[0].customer_reference.as_deref(), Some("INV-2024-17"));
    assert_eq!(t[0].bank_reference.as_deref(), Some("BR24030100001"));
    assert_eq!(
        t[0].purpose.as_deref(),
        Some("Abschlag Maerz\nVertrag 55-1")
    );
    assert_eq!(t[1].direction, Direction::Credit);
    assert_eq!(t[1].customer_reference, None, "NONREF is no reference");
    // RD: reversal of a debit is a credit.
    assert_eq!(t[2].direction, Direction::Credit);
    assert_eq!(t[2].purpose, None);

    let b = balances(&items);
    assert_eq!(
        b.iter().map(|b| b.kind.as_str()).collect::<Vec<_>>(),
        ["OPBD", "CLBD", "CLAV", "OPBD", "CLBD"]
    );
    assert_eq!(b[1].amount_minor, 117_050);
    // Line numbers are the lines the tags start on.
    assert_eq!(items[3].location.line, 6);
    assert_eq!(items[4].location.line, 10);
}

#[test]
fn supplementary_line_without_86_is_the_purpose() {
    let text = ":20:X\n:25:ACC1\n:28C:1\n:60F:D240101PLN10,\n:61:2401020102CN0,01NTRFNONREF//MB1\n911-TRANSAKCJA\n:62F:D240102PLN9,99\n-\n";
    let (items, errors) = read(&mt940(), text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t[0].purpose.as_deref(), Some("911-TRANSAKCJA"));
    assert_eq!(t[0].amount_minor, 1);
    assert_eq!(balances(&items)[0].amount_minor, -1000);
}

#[test]
fn banners_and_non_standard_tags() {
    let text = "Export of account 1\n\n-----\n:20:X\n:25:ACC1\n:28C:1\n:NS:22SOME NAME\n23More\n:60F:C240101HUF100,00\n:61:2401010101DF2,00S   X\n:NS:01526715\n15Someone\n:62F:C240101HUF98,00\n";
    let (items, errors) = read(&mt940(), text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].bank_transaction_code.as_deref(), Some("S"));
    assert_eq!(t[0].customer_reference.as_deref(), Some("X"));
}

#[test]
fn unknown_tag_is_a_record_error_and_reading_goes_on() {
    let text = ":20:X\n:25:ACC1\n:28C:1\n:60F:C240101EUR1,00\n:99Z:whatever\n:61:240101C1,00NTRFNONREF\n:62F:C240101EUR2,00\n";
    let (items, errors) = read(&mt940(), text.as_bytes());
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location.line, 5);
    assert_eq!(errors[0].field.as_deref(), Some(":99Z:"));
    assert!(!errors[0].is_fatal());
    assert_eq!(transactions(&items).len(), 1);
}

#[test]
fn bad_entries_name_line_tag_and_subfield() {
    let text = ":20:X\n:25:ACC1\n:28C:1\n:60F:C240101EUR1,00\n:61:240101C1.00NTRFNONREF\n:86:first\n:61:241301C1,00NTRFNONREF\n:61:240102C2,00NTRFNONREF\n:62F:C249999EUR2,00\n:62F:C240102EUR3,00\n";
    let (items, errors) = read(&mt940(), text.as_bytes());
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        [
            "file sample line 5: field :61: amount: not an amount with one decimal comma",
            "file sample line 7: field :61: value date: not a date YYMMDD",
            "file sample line 9: field :62F: date: not a date YYMMDD",
        ]
    );
    assert!(errors.iter().all(|e| e.scope == ErrorScope::Record));
    let t = transactions(&items);
    assert_eq!(t.len(), 1);
    assert_eq!(
        t[0].source_id, "ACC1/X/1/3",
        "entry numbers count the bad ones too"
    );
}

#[test]
fn statement_cut_before_its_closing_balance_is_a_file_error() {
    let text = ":20:X\n:25:ACC1\n:28C:1\n:60F:C240101EUR1,00\n:61:240101C1,00NTRFNONREF\n:86:text";
    let (items, errors) = read(&mt940(), text.as_bytes());
    assert_eq!(
        transactions(&items).len(),
        1,
        "what came before the cut is delivered"
    );
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert_eq!(errors[0].location.line, 1);
    assert_eq!(errors[0].field.as_deref(), Some(":62F:"));
}

#[test]
fn no_currency_and_no_account_are_reported() {
    let text = ":20:X\n:25:ACC1\n:28C:1\n:61:240101C1,00NTRFNONREF\n:62F:C240101EUR2,00\n";
    let (_, errors) = read(&mt940(), text.as_bytes());
    assert_eq!(errors[0].field.as_deref(), Some(":61: currency"));
    let text = ":20:X\n:28C:1\n:60F:C240101EUR1,00\n:62F:C240101EUR2,00\n";
    let (items, errors) = read(&mt940(), text.as_bytes());
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field.as_deref(), Some(":25:"));
    let (_, errors) = read(&mt940(), b":25:ACC\n:60F:C240101EUR1,00\n");
    assert!(errors[0].reason.contains("no :20:"), "{}", errors[0]);
}

pub(super) const MT942: &str = ":20:INTRADAY7\n:25:ACC-942\n:28C:7/1\n:34F:EURD0,\n:13D:2403011015+0100\n:61:2403010301D10,00NTRFA1\n:61:2403010301D5,50NTRFA2\n:61:2403010301C100,00NTRFA3\n:86:Gutschrift\n:90D:2EUR15,50\n:90C:1EUR100,00\n-\n";

#[test]
fn mt942_interim_report_with_checked_totals() {
    let (items, errors) = read(&mt940(), MT942.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    let Record::Statement(s) = &items[1].record else {
        panic!()
    };
    assert_eq!(s.kind, "mt942");
    assert_eq!(
        s.created_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-03-01T09:15:00+00:00")
    );
    let t = transactions(&items);
    assert_eq!(t.len(), 3);
    assert_eq!(t[2].purpose.as_deref(), Some("Gutschrift"));
    assert_eq!(t[0].currency, "EUR");

    let bad = MT942.replace(":90D:2EUR15,50", ":90D:3EUR25,50");
    let (items, errors) = read(&mt940(), bad.as_bytes());
    assert_eq!(transactions(&items).len(), 3);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert_eq!(errors[0].field.as_deref(), Some(":90D:"));
    assert_eq!(errors[0].location.line, 10);
}

#[test]
fn encodings_and_control_characters() {
    let text = "\u{1}\r\n:20:X\r\n:25:40702810000000000001\r\n:28C:1\r\n:60F:C240101RUB1,00\r\n:61:240101C1,00NTRFNONREF\r\n:86:Оплата по счёту\r\n:62F:C240101RUB2,00\r\n-\u{3}\r\n";
    let config = FormatConfig::Mt940(Mt940Config {
        encoding: crate::file_drop::Encoding::Windows1251,
    });
    let (items, errors) = read(&config, &super::cp1251(text));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        transactions(&items)[0].purpose.as_deref(),
        Some("Оплата по счёту")
    );

    let (_, errors) = read(&mt940(), &super::cp1251(text));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].reason, "not valid utf-8");
    assert_eq!(errors[0].location.line, 7);
}
