use mapping::Direction;

use super::{balances, cp866, cp1251, entities, read, transactions};
use crate::file_drop::Encoding;
use crate::formats::onec::OneCConfig;
use crate::formats::{FormatConfig, Record};

pub(super) fn onec() -> FormatConfig {
    FormatConfig::OneC(OneCConfig::default())
}

/// A bank statement for 1C with one account section and three documents: one paid from the
/// account, one received, one between two accounts of the file.
pub(super) fn statement(encoding_line: &str) -> String {
    format!(
        "1CClientBankExchange\r
ВерсияФормата=1.03\r
{encoding_line}\r
Отправитель=Банк Тестовый\r
Получатель=Бухгалтерия\r
ДатаСоздания=05.03.2024\r
ВремяСоздания=09:30:00\r
ДатаНачала=01.03.2024\r
ДатаКонца=04.03.2024\r
РасчСчет=40702810900000000001\r
РасчСчет=40702810900000000002\r
СекцияРасчСчет\r
ДатаНачала=01.03.2024\r
ДатаКонца=04.03.2024\r
РасчСчет=40702810900000000001\r
НачальныйОстаток=10 000,00\r
ВсегоПоступило=2500.50\r
ВсегоСписано=1200.00\r
КонечныйОстаток=11300.50\r
КонецРасчСчет\r
СекцияДокумент=Платежное поручение\r
Номер=15\r
Дата=01.03.2024\r
Сумма=1200.00\r
ПлательщикСчет=40702810900000000001\r
ДатаСписано=02.03.2024\r
Плательщик=ИНН 7701000001 ООО \"Ландыш\"\r
ПлательщикИНН=7701000001\r
ПлательщикРасчСчет=40702810900000000001\r
ПолучательСчет=40702810500000000077\r
ДатаПоступило=\r
Получатель1=ИП Сидоров П.П.\r
ПолучательИНН=770100000077\r
ПолучательБИК=044525000\r
НазначениеПлатежа=Оплата по счёту №12 от 28.02.2024, НДС не облагается\r
КонецДокумента\r
СекцияДокумент=Платежное поручение\r
Номер=301\r
Дата=03.03.2024\r
Сумма=2500.50\r
ПлательщикСчет=40802810300000000555\r
Плательщик1=ООО \"Клён\"\r
ПлательщикИНН=7702000002\r
ПолучательСчет=40702810900000000001\r
ДатаПоступило=04.03.2024\r
Получатель1=ООО \"Ландыш\"\r
НазначениеПлатежа1=Оплата по договору 7\r
НазначениеПлатежа2=в т.ч. НДС 20%\r
КонецДокумента\r
СекцияДокумент=Платежное поручение\r
Номер=16\r
Дата=04.03.2024\r
Сумма=100\r
ПлательщикСчет=40702810900000000001\r
ПолучательСчет=40702810900000000002\r
НазначениеПлатежа=Перевод между своими счетами\r
КонецДокумента\r
КонецФайла\r
"
    )
}

#[test]
fn windows_1251_statement_with_auto_encoding() {
    let bytes = cp1251(&statement("Кодировка=Windows"));
    let (items, errors) = read(&onec(), &bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        entities(&items),
        [
            "account",
            "statement",
            "balance",
            "balance",
            "transaction",
            "transaction",
            "transaction",
            "transaction"
        ]
    );
    let Record::Statement(s) = &items[1].record else {
        panic!()
    };
    assert_eq!(s.kind, "1c");
    assert_eq!(
        s.created_at.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-03-05T09:30:00+00:00")
    );
    let b = balances(&items);
    assert_eq!((b[0].kind.as_str(), b[0].amount_minor), ("OPBD", 1_000_000));
    assert_eq!((b[1].kind.as_str(), b[1].amount_minor), ("CLBD", 1_130_050));

    let t = transactions(&items);
    let paid = t[0];
    assert_eq!(paid.direction, Direction::Debit);
    assert_eq!(paid.account_source_id, "40702810900000000001");
    assert_eq!(paid.amount_minor, 120_000);
    assert_eq!(
        paid.source_id,
        "40702810900000000001/2024-03-01/15/40702810900000000001"
    );
    assert_eq!(
        paid.booked_at.to_rfc3339(),
        "2024-03-02T00:00:00+00:00",
        "ДатаСписано"
    );
    assert_eq!(paid.counterparty_name.as_deref(), Some("ИП Сидоров П.П."));
    assert_eq!(paid.counterparty_inn.as_deref(), Some("770100000077"));
    assert_eq!(
        paid.counterparty_account.as_deref(),
        Some("40702810500000000077")
    );
    assert_eq!(paid.counterparty_bic.as_deref(), Some("044525000"));
    assert_eq!(paid.customer_reference.as_deref(), Some("15"));
    assert_eq!(
        paid.bank_transaction_code.as_deref(),
        Some("Платежное поручение")
    );
    assert_eq!(
        paid.purpose.as_deref(),
        Some("Оплата по счёту №12 от 28.02.2024, НДС не облагается")
    );

    let received = t[1];
    assert_eq!(received.direction, Direction::Credit);
    assert_eq!(received.account_source_id, "40702810900000000001");
    assert_eq!(received.counterparty_name.as_deref(), Some("ООО \"Клён\""));
    assert_eq!(received.booked_at.to_rfc3339(), "2024-03-04T00:00:00+00:00");
    assert_eq!(
        received.purpose.as_deref(),
        Some("Оплата по договору 7\nв т.ч. НДС 20%")
    );

    // Between two accounts of the file: a debit of one and a credit of the other.
    assert_eq!(t[2].direction, Direction::Debit);
    assert_eq!(t[2].account_source_id, "40702810900000000001");
    assert_eq!(t[3].direction, Direction::Credit);
    assert_eq!(t[3].account_source_id, "40702810900000000002");
    assert_eq!(t[3].amount_minor, 10_000);
    assert_ne!(t[2].source_id, t[3].source_id);
    assert_eq!(items[4].location.line, 21);
}

#[test]
fn dos_encoding_is_detected_from_the_header() {
    let bytes = cp866(&statement("Кодировка=DOS"));
    let (items, errors) = read(&onec(), &bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        transactions(&items)[0].counterparty_name.as_deref(),
        Some("ИП Сидоров П.П.")
    );
    // Configured explicitly, the same.
    let config = FormatConfig::OneC(OneCConfig {
        encoding: Some(Encoding::Cp866),
    });
    let (again, _) = read(&config, &bytes);
    assert_eq!(items, again);
}

#[test]
fn utf8_file_and_a_utf8_line_in_a_windows_file() {
    let text = statement("Кодировка=Windows");
    let (items, errors) = read(&onec(), text.as_bytes());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(transactions(&items).len(), 4);

    // An exporter that writes its last line in UTF-8 into a windows-1251 file.
    let body = text.trim_end_matches("КонецФайла\r\n");
    let mut bytes = cp1251(body);
    bytes.extend_from_slice("КонецФайла\n".as_bytes());
    let (items, errors) = read(&onec(), &bytes);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(transactions(&items).len(), 4);
}

#[test]
fn outgoing_payment_orders_without_accounts() {
    let text = "1CClientBankExchange\nВерсияФормата=1.02\nКодировка=Windows\nДокумент=Платежное поручение\nСекцияДокумент\nНомер=1\nДата=10.06.2024\nСумма=175000.00\nПлательщик1=ООО \"Ландыш\"\nПлательщикРасчСчет=40702810900000000001\nПолучательСчет=40702810500000000077\nПолучатель1=ООО \"Василёк\"\nКонецДокумента\nКонецФайла\n";
    let (items, errors) = read(&onec(), &cp1251(text));
    assert!(errors.is_empty(), "{errors:?}");
    let t = transactions(&items);
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].direction, Direction::Debit);
    assert_eq!(t[0].account_source_id, "40702810900000000001");
    assert_eq!(t[0].counterparty_name.as_deref(), Some("ООО \"Василёк\""));
    assert_eq!(
        t[0].bank_transaction_code.as_deref(),
        Some("Платежное поручение")
    );
}

#[test]
fn bad_documents_are_record_errors_naming_line_and_key() {
    let text = statement("Кодировка=Windows")
        .replacen("Сумма=1200.00", "Сумма=12O0.00", 1)
        .replacen("Дата=03.03.2024", "Дата=31.02.2024", 1)
        .replacen(
            "ПолучательСчет=40702810900000000002",
            "ПолучательСчет=40702810000000099999",
            1,
        )
        .replacen(
            "ПлательщикСчет=40702810900000000001\r\nПолучательСчет=4070281000",
            "ПлательщикСчет=40702810000000088888\r\nПолучательСчет=4070281000",
            1,
        );
    let (items, errors) = read(&onec(), &cp1251(&text));
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        [
            "file sample line 21: field Сумма: amount has a character that is not a digit, separator or sign",
            "file sample line 37: field Дата: not a date DD.MM.YYYY",
            "file sample line 50: field ПлательщикСчет: neither the payer's nor the payee's account is an account of this file",
        ]
    );
    assert!(errors.iter().all(|e| !e.is_fatal()));
    assert_eq!(transactions(&items).len(), 0);
    assert_eq!(balances(&items).len(), 2);
}

#[test]
fn balance_section_must_add_up() {
    let text = statement("Кодировка=Windows")
        .replace("КонечныйОстаток=11300.50", "КонечныйОстаток=11300.49");
    let (items, errors) = read(&onec(), &cp1251(&text));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].location.line, 12);
    assert_eq!(errors[0].field.as_deref(), Some("КонечныйОстаток"));
    assert_eq!(transactions(&items).len(), 4, "documents still come");
}

#[test]
fn truncated_and_foreign_files() {
    let text = statement("Кодировка=Windows");
    let cut = &text[..text
        .find("КонецДокумента\r\nСекцияДокумент=Платежное поручение\r\nНомер=16")
        .unwrap()];
    let (items, errors) = read(&onec(), &cp1251(cut));
    assert_eq!(
        transactions(&items).len(),
        1,
        "the first document was complete"
    );
    let described: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        described,
        [
            "file sample line 37: field КонецДокумента: document is not closed",
            "file sample line 48: field КонецФайла: the file ends without КонецФайла; it looks truncated",
        ]
    );
    assert!(errors[1].is_fatal());

    let (items, errors) = read(&onec(), b"Date;Amount\n01.01.2024;5\n");
    assert!(items.is_empty());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .reason
            .starts_with("not a 1C ClientBankExchange file")
    );
    let (_, errors) = read(&onec(), b"");
    assert_eq!(errors[0].reason, "the file is empty");
}

#[test]
fn a_line_without_equals_spoils_only_its_document() {
    let text = statement("Кодировка=Windows").replacen(
        "Номер=301\r\n",
        "Номер=301\r\nпродолжение назначения без ключа\r\n",
        1,
    );
    let (items, errors) = read(&onec(), &cp1251(&text));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].field, None);
    assert_eq!(errors[0].location.line, 37);
    assert_eq!(errors[0].reason, "line 39 is not Key=Value");
    assert_eq!(transactions(&items).len(), 3);
}
