use mapping::Direction;

use super::{cp866, cp1251, read, transactions};
use crate::file_drop::Encoding;
use crate::formats::csv_statement::CsvStatementConfig;
use crate::formats::{ErrorScope, FormatConfig};

/// A card statement in the shape Russian retail banks export: signed amounts with decimal
/// comma and space thousands separators, a status column.
pub(super) const CARD_STATEMENT: &str =
    "Дата операции;Дата платежа;Номер карты;Статус;Сумма операции;Валюта операции;Описание;MCC
\"02.03.2024 11:20:00\";02.03.2024;*4242;OK;-1 850,50;RUB;Продукты у дома;5411
\"03.03.2024 09:00:00\";03.03.2024;*4242;OK;25\u{a0}000,00;RUB;Зарплата;
\"04.03.2024 18:45:10\";04.03.2024;*4242;FAILED;(300,00);RUB;\"Кафе \"\"Ромашка\"\"\";5812
";

pub(super) fn card_config(encoding: Encoding) -> FormatConfig {
    let mut c = CsvStatementConfig::new("Дата операции", "Сумма операции");
    c.encoding = encoding;
    c.columns.currency = Some("Валюта операции".into());
    c.columns.account = Some("Номер карты".into());
    c.columns.value_date = Some("Дата платежа".into());
    c.columns.status = Some("Статус".into());
    c.columns.purpose = Some("Описание".into());
    c.columns.bank_transaction_code = Some("MCC".into());
    FormatConfig::CsvStatement(c)
}

#[test]
fn windows_1251_card_statement() {
    let (items, errors) = read(&card_config(Encoding::Windows1251), &cp1251(CARD_STATEMENT));
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 3);
    assert_eq!(
        (t[0].amount_minor, t[0].direction),
        (185_050, Direction::Debit)
    );
    assert_eq!(t[0].booked_at.to_rfc3339(), "2024-03-02T11:20:00+00:00");
    assert_eq!(t[0].account_source_id, "*4242");
    assert_eq!(t[0].bank_transaction_code.as_deref(), Some("5411"));
    assert_eq!(t[0].source_id, "sample:2");
    assert_eq!(
        (t[1].amount_minor, t[1].direction),
        (2_500_000, Direction::Credit)
    );
    assert_eq!(t[1].bank_transaction_code, None);
    assert_eq!(
        (t[2].amount_minor, t[2].direction),
        (30_000, Direction::Debit)
    );
    assert_eq!(t[2].status.as_deref(), Some("FAILED"));
    assert_eq!(t[2].purpose.as_deref(), Some("Кафе \"Ромашка\""));
    assert_eq!(items[2].location.line, 4);
}

#[test]
fn cp866_and_utf8_read_the_same() {
    let (a, errors) = read(&card_config(Encoding::Cp866), &cp866(CARD_STATEMENT));
    assert!(errors.is_empty(), "{errors:?}");
    let (b, _) = read(&card_config(Encoding::Utf8), CARD_STATEMENT.as_bytes());
    let (c, _) = read(&card_config(Encoding::Windows1251), &cp1251(CARD_STATEMENT));
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[test]
fn wrong_encoding_is_refused_at_open() {
    let (items, errors) = read(&card_config(Encoding::Utf8), &cp1251(CARD_STATEMENT));
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert_eq!(errors[0].location.line, 1);
    assert!(
        errors[0].reason.contains("not valid utf-8"),
        "{}",
        errors[0]
    );

    let (_, errors) = read(&card_config(Encoding::Cp866), CARD_STATEMENT.as_bytes());
    assert!(
        errors[0].reason.contains("looks like utf-8"),
        "{}",
        errors[0]
    );
}

#[test]
fn direction_column_and_fixed_account() {
    let text = "date,amount,dc,payee\n2024-03-01,\"1,234.00\",D,Acme\n2024-03-02,10.5,credit,\n2024-03-03,5,X,\n";
    let mut c = CsvStatementConfig::new("date", "amount");
    c.delimiter = ',';
    c.account = Some("ACC-9".into());
    c.currency = Some("USD".into());
    c.columns.direction = Some("dc".into());
    c.columns.counterparty = Some("payee".into());
    let (items, errors) = read(&FormatConfig::CsvStatement(c), text.as_bytes());
    let t = transactions(&items);
    assert_eq!(
        (t[0].amount_minor, t[0].direction),
        (123_400, Direction::Debit)
    );
    assert_eq!(t[0].counterparty_name.as_deref(), Some("Acme"));
    assert_eq!(
        (t[1].amount_minor, t[1].direction),
        (1050, Direction::Credit)
    );
    assert_eq!(t[1].account_source_id, "ACC-9");
    assert_eq!(t[1].currency, "USD");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "file sample line 4: field dc: is neither a debit nor a credit value"
    );
}

#[test]
fn bad_rows_name_line_and_column() {
    let text = "Дата операции;Сумма операции;Валюта операции;Номер карты\n31.02.2024;1,00;RUB;*1\n01.03.2024;12 34,00;RUB;*1\n01.03.2024;1,00;RUR1;*1\n01.03.2024;1,00;RUB\n01.03.2024;;RUB;*1\n";
    let mut c = CsvStatementConfig::new("Дата операции", "Сумма операции");
    c.columns.currency = Some("Валюта операции".into());
    c.columns.account = Some("Номер карты".into());
    let (items, errors) = read(&FormatConfig::CsvStatement(c), text.as_bytes());
    assert!(items.is_empty());
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        [
            "file sample line 2: field Дата операции: not a date in any configured format",
            "file sample line 3: field Сумма операции: amount has misplaced group separators",
            "file sample line 4: field Валюта операции: not an ISO 4217 currency code",
            "file sample line 5: row has 3 cells, the header has 4",
            "file sample line 6: field Сумма операции: empty",
        ]
    );
    assert!(errors.iter().all(|e| e.scope == ErrorScope::Record));
}

#[test]
fn truncated_last_row_ends_the_file() {
    let text = "date;amount\n2024-03-01;1,00\n2024-03-02;\"2,0";
    let mut c = CsvStatementConfig::new("date", "amount");
    c.account = Some("A".into());
    c.currency = Some("RUB".into());
    let (items, errors) = read(&FormatConfig::CsvStatement(c), text.as_bytes());
    assert_eq!(transactions(&items).len(), 1);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].is_fatal());
    assert_eq!(errors[0].location.line, 3);
}

#[test]
fn missing_column_and_bad_config_fail_at_open() {
    let mut c = CsvStatementConfig::new("Дата операции", "Сумма");
    c.account = Some("A".into());
    c.currency = Some("RUB".into());
    let (_, errors) = read(
        &FormatConfig::CsvStatement(c.clone()),
        CARD_STATEMENT.as_bytes(),
    );
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "file sample line 1: field Сумма: column named in the config is not in the header"
    );
    c.currency = None;
    let (_, errors) = read(&FormatConfig::CsvStatement(c), CARD_STATEMENT.as_bytes());
    assert!(
        errors[0].reason.contains("currency: needed"),
        "{}",
        errors[0]
    );
}
