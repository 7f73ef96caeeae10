//! 1C ClientBankExchange 1.02/1.03: the exchange file between 1C accounting and a
//! client-bank system (bank statements into 1C, payment orders out of it).
//!
//! Contract:
//! - The first non-blank line is `1CClientBankExchange`; otherwise the file is rejected.
//!   Lines are `Key=Value`; sections are `СекцияРасчСчет` … `КонецРасчСчет` (an account's
//!   balances) and `СекцияДокумент[=kind]` … `КонецДокумента` (one payment document); the
//!   file ends with `КонецФайла`. A file without it is truncated: after the records before
//!   the cut, the last item is a [`File`](super::ErrorScope::File)-scope error.
//! - Encoding: `Кодировка=Windows` is windows-1251, `Кодировка=DOS` cp866. With no encoding
//!   configured, the header's declaration decides (the first 64 KiB are looked at; a file
//!   whose head is UTF-8 is read as UTF-8). A line that is valid UTF-8 is taken as UTF-8 in
//!   any case (Cyrillic single-byte text practically never is).
//! - An account section gives an [`Account`], a [`Statement`] for its period and the
//!   opening and closing [`Balance`]s; opening + received − paid must equal closing, else a
//!   [`Record`](super::ErrorScope::Record)-scope error for the section.
//! - A document gives a [`Transaction`] relative to the file's accounts (the header's
//!   `РасчСчет` lines and the account sections): a debit when the payer's account is one of
//!   them, a credit when the payee's is, both when both are. When neither is and the file
//!   has one account, 1C's own rule applies: a filled `ДатаСписано` makes it a debit of that
//!   account, a filled `ДатаПоступило` a credit. A file with no accounts (1C → bank payment
//!   orders) gives a debit of each payer's account. A document that still cannot be placed,
//!   or lacks the amount, date or accounts, is a record error naming the line of
//!   `СекцияДокумент` and the key.
//! - Amounts are roubles (`RUB`). Transaction ids are `{account}/{Дата}/{Номер}/{payer
//!   account}`: a payment order's number is unique per payer and date.

use std::collections::VecDeque;
use std::io::{self, BufRead, Cursor};

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use mapping::{Account, Balance, Direction, Statement, Transaction};
use serde::{Deserialize, Serialize};

use super::number::parse_amount;
use super::text::{self, Lines};
use super::{FormatError, Item, ItemResult, Location, Record};
use crate::file_drop::Encoding;

/// How much of the file's head is looked at for `Кодировка`.
const SNIFF_BYTES: usize = 64 * 1024;

/// The most keys one section may have (a document has about 60); more is a broken file.
const MAX_KEYS: usize = 1000;

/// The most text one section may hold, 1 MiB.
const MAX_SECTION_BYTES: usize = 1 << 20;

/// The most accounts a file may name; more is a broken file.
const MAX_ACCOUNTS: usize = 1000;

/// 1C files carry roubles.
const CURRENCY: &str = "RUB";

/// Settings of the 1C reader.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OneCConfig {
    /// `windows-1251`, `cp866` or `utf-8`; absent (the default): taken from the file's
    /// `Кодировка` line.
    #[serde(default)]
    pub encoding: Option<Encoding>,
}

/// The section being read.
#[derive(Debug)]
enum Section {
    /// Before the first section.
    Header,
    Account(Block),
    Document(Block),
    /// After `КонецФайла`.
    Done,
}

/// The keys of one section.
#[derive(Debug, Default)]
struct Block {
    line: u64,
    kind: Option<String>,
    keys: Vec<(String, String)>,
    bytes: usize,
    /// The first problem (key, reason; the key empty when no key is at fault).
    problem: Option<(String, String)>,
}

impl Block {
    fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// What the header says.
#[derive(Debug, Default)]
struct Header {
    accounts: Vec<String>,
    document_kind: Option<String>,
    created_date: Option<String>,
    created_time: Option<String>,
}

/// The records of a 1C ClientBankExchange file, read as they are asked for.
pub struct OneCReader<R> {
    file: String,
    lines: Lines<io::Chain<Cursor<Vec<u8>>, R>>,
    sniff_failure: Option<io::ErrorKind>,
    encoding: Encoding,
    seen_first_line: bool,
    section: Section,
    header: Header,
    out: VecDeque<ItemResult>,
    finished: bool,
}

impl<R: BufRead> OneCReader<R> {
    /// Reads `source`; `file` names it in messages.
    pub fn new(file: &str, source: R, config: &OneCConfig) -> Self {
        let sniffed = text::sniff(source, SNIFF_BYTES);
        let encoding = config
            .encoding
            .unwrap_or_else(|| detect_encoding(&sniffed.head));
        OneCReader {
            file: file.to_owned(),
            lines: Lines::new(sniffed.source),
            sniff_failure: sniffed.failure,
            encoding,
            seen_first_line: false,
            section: Section::Header,
            header: Header::default(),
            out: VecDeque::new(),
            finished: false,
        }
    }

    /// The encoding the file is read in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    fn file_error(&mut self, line: u64, field: Option<&str>, reason: impl Into<String>) {
        self.out.push_back(Err(FormatError::file(
            &self.file,
            Location::line(line),
            field,
            reason,
        )));
        self.finished = true;
    }

    fn record_error(&mut self, line: u64, field: Option<&str>, reason: impl Into<String>) {
        self.out.push_back(Err(FormatError::record(
            &self.file,
            Location::line(line),
            field,
            reason,
        )));
    }

    fn pump(&mut self) {
        if let Some(kind) = self.sniff_failure.take() {
            self.file_error(0, None, format!("read failed: {kind}"));
            return;
        }
        while self.out.is_empty() && !self.finished {
            match self.lines.advance() {
                Ok(true) => {}
                Ok(false) => {
                    self.end_of_file();
                    return;
                }
                Err(e) => {
                    let line = self.lines.number();
                    self.file_error(line, None, e.reason());
                    return;
                }
            }
            let number = self.lines.number();
            let line = match text::decode(self.lines.bytes(), self.encoding) {
                Ok(l) => l.trim().to_owned(),
                Err(reason) => {
                    self.file_error(number, None, reason);
                    return;
                }
            };
            self.on_line(number, &line);
        }
    }

    fn on_line(&mut self, number: u64, line: &str) {
        if line.is_empty() {
            return;
        }
        if !self.seen_first_line {
            self.seen_first_line = true;
            if line != "1CClientBankExchange" {
                self.file_error(
                    number,
                    None,
                    "not a 1C ClientBankExchange file: the first line must be 1CClientBankExchange",
                );
            }
            return;
        }
        if matches!(self.section, Section::Done) {
            return;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (line, ""),
        };
        match key {
            "СекцияРасчСчет" => self.open(number, true, None),
            "СекцияДокумент" => self.open(number, false, non_empty(value)),
            "КонецРасчСчет" => self.close_account(number),
            "КонецДокумента" => self.close_document(number),
            "КонецФайла" => {
                self.close_open_section();
                self.section = Section::Done;
            }
            _ => self.on_key(number, key, value, line.contains('=')),
        }
    }

    fn on_key(&mut self, number: u64, key: &str, value: &str, has_equals: bool) {
        match &mut self.section {
            Section::Header => match key {
                "РасчСчет" => {
                    if let Some(v) = non_empty(value) {
                        self.add_account(number, v);
                    }
                }
                "Документ" => self.header.document_kind = non_empty(value),
                "ДатаСоздания" => self.header.created_date = non_empty(value),
                "ВремяСоздания" => self.header.created_time = non_empty(value),
                _ => {}
            },
            Section::Account(block) | Section::Document(block) => {
                block.bytes = block.bytes.saturating_add(key.len() + value.len());
                let problem = if !has_equals {
                    Some(format!("line {number} is not Key=Value"))
                } else if block.keys.len() >= MAX_KEYS {
                    Some(format!("section has more than {MAX_KEYS} keys"))
                } else if block.bytes > MAX_SECTION_BYTES {
                    Some(format!(
                        "section holds more than {} MiB",
                        MAX_SECTION_BYTES >> 20
                    ))
                } else {
                    block.keys.push((key.to_owned(), value.to_owned()));
                    None
                };
                if let Some(reason) = problem
                    && block.problem.is_none()
                {
                    block.problem = Some((String::new(), reason));
                }
            }
            Section::Done => {}
        }
    }

    /// Adds one of the file's own accounts.
    fn add_account(&mut self, number: u64, account: String) {
        if self.header.accounts.contains(&account) {
            return;
        }
        if self.header.accounts.len() >= MAX_ACCOUNTS {
            self.file_error(
                number,
                Some("РасчСчет"),
                format!("the file names more than {MAX_ACCOUNTS} accounts"),
            );
            return;
        }
        self.header.accounts.push(account);
    }

    fn open(&mut self, number: u64, account: bool, kind: Option<String>) {
        self.close_open_section();
        let block = Block {
            line: number,
            kind,
            ..Block::default()
        };
        self.section = if account {
            Section::Account(block)
        } else {
            Section::Document(block)
        };
    }

    /// A section still open when another starts (or the file ends) was never closed.
    fn close_open_section(&mut self) {
        let open = std::mem::replace(&mut self.section, Section::Header);
        match open {
            Section::Account(block) => {
                self.record_error(
                    block.line,
                    Some("КонецРасчСчет"),
                    "account section is not closed",
                );
            }
            Section::Document(block) => {
                self.record_error(block.line, Some("КонецДокумента"), "document is not closed");
            }
            Section::Header | Section::Done => {}
        }
    }

    fn close_account(&mut self, number: u64) {
        let Section::Account(block) = std::mem::replace(&mut self.section, Section::Header) else {
            self.record_error(number, Some("КонецРасчСчет"), "no account section is open");
            return;
        };
        let location = Location::line(block.line);
        match account_records(&block, &self.header) {
            Ok(records) => {
                if let Some(Record::Account(a)) = records.first() {
                    self.add_account(block.line, a.source_id.clone());
                }
                for record in records {
                    self.out.push_back(Ok(Item {
                        location: location.clone(),
                        record,
                    }));
                }
            }
            Err((field, reason)) => {
                let field = (!field.is_empty()).then_some(field.as_str());
                self.record_error(block.line, field, reason);
            }
        }
    }

    fn close_document(&mut self, number: u64) {
        let Section::Document(block) = std::mem::replace(&mut self.section, Section::Header) else {
            self.record_error(number, Some("КонецДокумента"), "no document is open");
            return;
        };
        let location = Location::line(block.line);
        match document_transactions(&block, &self.header) {
            Ok(list) => {
                for t in list {
                    self.out.push_back(Ok(Item {
                        location: location.clone(),
                        record: Record::Transaction(t),
                    }));
                }
            }
            Err((field, reason)) => {
                let field = (!field.is_empty()).then_some(field.as_str());
                self.record_error(block.line, field, reason);
            }
        }
    }

    fn end_of_file(&mut self) {
        let number = self.lines.number();
        if !self.seen_first_line {
            self.file_error(number, None, "the file is empty");
            return;
        }
        if !matches!(self.section, Section::Done) {
            self.close_open_section();
            self.file_error(
                number,
                Some("КонецФайла"),
                "the file ends without КонецФайла; it looks truncated",
            );
            return;
        }
        self.finished = true;
    }
}

impl<R: BufRead> Iterator for OneCReader<R> {
    type Item = ItemResult;

    fn next(&mut self) -> Option<ItemResult> {
        self.pump();
        let item = self.out.pop_front()?;
        if matches!(&item, Err(e) if e.is_fatal()) {
            // Nothing follows a file-level error.
            self.out.clear();
            self.finished = true;
        }
        Some(item)
    }
}

type FieldProblem = (String, String);

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn missing(key: &str) -> FieldProblem {
    (key.to_owned(), "missing".to_owned())
}

fn date(block: &Block, key: &str) -> Result<Option<NaiveDate>, FieldProblem> {
    match block.get(key) {
        None => Ok(None),
        Some(v) => NaiveDate::parse_from_str(v, "%d.%m.%Y")
            .map(Some)
            .map_err(|_| (key.to_owned(), "not a date DD.MM.YYYY".to_owned())),
    }
}

fn amount(block: &Block, key: &str) -> Result<Option<i64>, FieldProblem> {
    match block.get(key) {
        None => Ok(None),
        Some(v) => parse_amount(v, 2)
            .map(Some)
            .map_err(|e| (key.to_owned(), e.to_string())),
    }
}

/// The account, statement and balances of a `СекцияРасчСчет`.
fn account_records(block: &Block, header: &Header) -> Result<Vec<Record>, FieldProblem> {
    if let Some(p) = &block.problem {
        return Err(p.clone());
    }
    let account = block
        .get("РасчСчет")
        .ok_or_else(|| missing("РасчСчет"))?
        .to_owned();
    let from = date(block, "ДатаНачала")?.ok_or_else(|| missing("ДатаНачала"))?;
    let to = date(block, "ДатаКонца")?.unwrap_or(from);
    let opening = amount(block, "НачальныйОстаток")?.ok_or_else(|| missing("НачальныйОстаток"))?;
    let received = amount(block, "ВсегоПоступило")?;
    let paid = amount(block, "ВсегоСписано")?;
    let closing = amount(block, "КонечныйОстаток")?;
    if let (Some(received), Some(paid), Some(closing)) = (received, paid, closing) {
        let expected = opening
            .checked_add(received)
            .and_then(|v| v.checked_sub(paid));
        if expected != Some(closing) {
            return Err((
                "КонечныйОстаток".to_owned(),
                "does not equal НачальныйОстаток + ВсегоПоступило − ВсегоСписано".to_owned(),
            ));
        }
    }
    let statement_id = format!("{account}/{from}/{to}");
    let created_at = header.created_date.as_deref().and_then(|d| {
        let day = NaiveDate::parse_from_str(d, "%d.%m.%Y").ok()?;
        let time = header
            .created_time
            .as_deref()
            .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M:%S").ok())
            .unwrap_or_default();
        Some(NaiveDateTime::new(day, time).and_utc())
    });
    let mut records = vec![
        Record::Account(Account {
            source_id: account.clone(),
            number: account.clone(),
            currency: CURRENCY.to_owned(),
            ..Account::default()
        }),
        Record::Statement(Statement {
            source_id: statement_id.clone(),
            account_source_id: account.clone(),
            kind: "1c".to_owned(),
            sequence: None,
            created_at,
            from_date: Some(from),
            to_date: Some(to),
        }),
        Record::Balance(Balance {
            account_source_id: account.clone(),
            statement_source_id: Some(statement_id.clone()),
            kind: "OPBD".to_owned(),
            amount_minor: opening,
            currency: CURRENCY.to_owned(),
            date: from,
        }),
    ];
    if let Some(closing) = closing {
        records.push(Record::Balance(Balance {
            account_source_id: account,
            statement_source_id: Some(statement_id),
            kind: "CLBD".to_owned(),
            amount_minor: closing,
            currency: CURRENCY.to_owned(),
            date: to,
        }));
    }
    Ok(records)
}

/// One side of a payment document.
struct Side<'a> {
    account: Option<&'a str>,
    settlement: Option<&'a str>,
    name: Option<String>,
    inn: Option<&'a str>,
    bic: Option<&'a str>,
}

impl<'a> Side<'a> {
    fn of(block: &'a Block, who: &str) -> Self {
        let key = |suffix: &str| format!("{who}{suffix}");
        // `Плательщик1` is the name alone; `Плательщик` may be "ИНН 123 Name" or "123, Name".
        let name = block
            .get(&key("1"))
            .map(str::to_owned)
            .or_else(|| block.get(who).map(strip_inn_prefix));
        Side {
            account: block.get(&key("Счет")),
            settlement: block.get(&key("РасчСчет")),
            name,
            inn: block.get(&key("ИНН")),
            bic: block.get(&key("БИК")),
        }
    }

    /// The account number, preferring `…Счет` over `…РасчСчет`.
    fn number(&self) -> Option<&'a str> {
        self.account.or(self.settlement)
    }

    fn is_one_of(&self, accounts: &[String]) -> bool {
        [self.account, self.settlement]
            .into_iter()
            .flatten()
            .any(|a| accounts.iter().any(|x| x == a))
    }
}

/// `7777777777, ООО "Ромашка"` or `ИНН 7777777777 ООО "Ромашка"` → the name.
fn strip_inn_prefix(v: &str) -> String {
    let rest = v.strip_prefix("ИНН").map(str::trim_start).unwrap_or(v);
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if (10..=12).contains(&digits) {
        let after = rest.get(digits..).unwrap_or_default();
        let after = after.trim_start_matches([',', ' ']);
        if !after.is_empty() {
            return after.to_owned();
        }
    }
    v.to_owned()
}

/// The transactions of a `СекцияДокумент` relative to the file's accounts.
fn document_transactions(block: &Block, header: &Header) -> Result<Vec<Transaction>, FieldProblem> {
    if let Some(p) = &block.problem {
        return Err(p.clone());
    }
    let number = block.get("Номер").ok_or_else(|| missing("Номер"))?;
    let doc_date = date(block, "Дата")?.ok_or_else(|| missing("Дата"))?;
    let sum = amount(block, "Сумма")?.ok_or_else(|| missing("Сумма"))?;
    if sum < 0 {
        return Err(("Сумма".to_owned(), "must not be negative".to_owned()));
    }
    let payer = Side::of(block, "Плательщик");
    let payee = Side::of(block, "Получатель");
    let payer_number = payer.number().ok_or_else(|| missing("ПлательщикСчет"))?;
    let payee_number = payee.number();
    let debited = date(block, "ДатаСписано")?;
    let credited = date(block, "ДатаПоступило")?;
    let mut sides = Vec::new();
    let mut fallback = None;
    if header.accounts.is_empty() {
        sides.push(Direction::Debit);
    } else {
        if payer.is_one_of(&header.accounts) {
            sides.push(Direction::Debit);
        }
        if payee.is_one_of(&header.accounts) {
            sides.push(Direction::Credit);
        }
        // 1C's own rule when no account matches (a statement whose document names other
        // accounts): the filled date of the one account says debit or credit.
        if sides.is_empty()
            && let [only] = header.accounts.as_slice()
        {
            match (debited, credited) {
                (Some(_), None) => fallback = Some((Direction::Debit, only.as_str())),
                (None, Some(_)) => fallback = Some((Direction::Credit, only.as_str())),
                _ => {}
            }
        }
        if sides.is_empty() && fallback.is_none() {
            return Err((
                "ПлательщикСчет".to_owned(),
                "neither the payer's nor the payee's account is an account of this file".to_owned(),
            ));
        }
    }
    let purpose = block
        .get("НазначениеПлатежа")
        .map(str::to_owned)
        .or_else(|| {
            let lines: Vec<&str> = (1..=6)
                .filter_map(|i| block.get(&format!("НазначениеПлатежа{i}")))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        });
    let kind = block.kind.clone().or_else(|| header.document_kind.clone());
    let sides: Vec<(Direction, Option<&str>)> = match fallback {
        Some((direction, account)) => vec![(direction, Some(account))],
        None => sides.into_iter().map(|d| (d, None)).collect(),
    };
    sides
        .into_iter()
        .map(|(direction, account)| {
            let (other, booked) = match direction {
                Direction::Debit => (&payee, debited),
                Direction::Credit => (&payer, credited),
            };
            let account = match (account, direction) {
                (Some(account), _) => account,
                (None, Direction::Debit) => payer_number,
                (None, Direction::Credit) => {
                    payee_number.ok_or_else(|| missing("ПолучательСчет"))?
                }
            };
            let booked = booked.unwrap_or(doc_date);
            Ok(Transaction {
                source_id: format!("{account}/{doc_date}/{number}/{payer_number}"),
                account_source_id: account.to_owned(),
                amount_minor: sum,
                currency: CURRENCY.to_owned(),
                booked_at: booked.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
                direction,
                counterparty_name: other.name.clone(),
                counterparty_inn: other.inn.map(str::to_owned),
                counterparty_account: other.number().map(str::to_owned),
                purpose: purpose.clone(),
                value_date: None,
                bank_reference: None,
                customer_reference: Some(number.to_owned()),
                end_to_end_id: None,
                counterparty_bic: other.bic.map(str::to_owned),
                counterparty_country: None,
                bank_transaction_code: kind.clone(),
                status: None,
            })
        })
        .collect()
}

/// The encoding from the head of the file: UTF-8 if the head is UTF-8 with non-ASCII text,
/// else what `Кодировка=` says (`DOS` cp866, anything else windows-1251).
fn detect_encoding(head: &[u8]) -> Encoding {
    let valid_utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        // A character cut at the end of the sniffed head is fine.
        Err(e) => e.error_len().is_none(),
    };
    if valid_utf8 && !head.is_ascii() {
        return Encoding::Utf8;
    }
    for encoding in [Encoding::Windows1251, Encoding::Cp866] {
        let (key, _, _) = encoding.codec().encode("Кодировка=");
        for line in head.split(|&b| b == b'\n') {
            if let Some(value) = line.strip_prefix(key.as_ref()) {
                let value = String::from_utf8_lossy(value);
                return if value.trim().eq_ignore_ascii_case("dos") {
                    Encoding::Cp866
                } else {
                    Encoding::Windows1251
                };
            }
        }
    }
    Encoding::Windows1251
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_without_inn() {
        assert_eq!(
            strip_inn_prefix("7777777777, ООО \"Ромашка\""),
            "ООО \"Ромашка\""
        );
        assert_eq!(strip_inn_prefix("ИНН 771234567890 ИП Петров"), "ИП Петров");
        assert_eq!(strip_inn_prefix("ООО Лютик"), "ООО Лютик");
        assert_eq!(strip_inn_prefix("123, x"), "123, x");
    }

    #[test]
    fn encoding_from_header() {
        let mut cp866 = b"1CClientBankExchange\r\n".to_vec();
        cp866.extend_from_slice(&encoding_rs::IBM866.encode("Кодировка=DOS\r\n").0);
        assert_eq!(detect_encoding(&cp866), Encoding::Cp866);
        let mut cp1251 = b"1CClientBankExchange\r\n".to_vec();
        cp1251.extend_from_slice(&encoding_rs::WINDOWS_1251.encode("Кодировка=Windows\r\n").0);
        assert_eq!(detect_encoding(&cp1251), Encoding::Windows1251);
        let utf8 = "1CClientBankExchange\nКодировка=Windows\n".as_bytes();
        assert_eq!(detect_encoding(utf8), Encoding::Utf8);
        assert_eq!(
            detect_encoding(b"1CClientBankExchange\n"),
            Encoding::Windows1251
        );
    }
}
