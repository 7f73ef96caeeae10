//! SWIFT MT940 (customer statement) and MT942 (interim transaction report).
//!
//! Contract:
//! - The file is read line by line. SWIFT envelope blocks (`{1:...}{2:...}{4:` before the
//!   text, `-}` and `{5:...}` after it) are optional; a line `-` (or `-}`, `-XXX`) ends a
//!   message. Lines before the first tag and between messages (bank banners, `940`, file
//!   descriptions) are skipped. Several statements per file and per message are read.
//! - A tag starts a line (`:20:`, `:61:`, `:60F:` ...); the lines after it up to the next
//!   tag are its continuation (multi-line `:86:`, the supplementary line of `:61:`).
//! - Tags read: `:20:` (starts a statement), `:25:`, `:28:`/`:28C:`, `:60F:`/`:60M:`,
//!   `:61:`, `:86:`, `:62F:`/`:62M:`, `:64:`, `:65:`, and for MT942 `:34F:`, `:13:`/`:13D:`,
//!   `:90D:`/`:90C:`. `:21:`, `:940:` (a bank's file banner) and the non-standard `:NS:`
//!   (bank-specific free format) are skipped. Any other tag is a
//!   [`Record`](super::ErrorScope::Record)-scope error naming it, and its content is
//!   skipped.
//! - Per statement: an [`Account`] (from `:25:`) and a [`Statement`] record, a [`Balance`]
//!   per balance tag, a [`Transaction`] per `:61:` whose purpose is the `:86:` lines after it.
//!   A bad `:61:` or balance is one record error naming the line, the tag and the subfield.
//! - An MT942's `:90D:`/`:90C:` count and sum must match its `:61:` entries, and an MT940
//!   must have a closing balance; otherwise (a truncated or corrupted file) the last item is
//!   a [`File`](super::ErrorScope::File)-scope error.
//! - Two-digit years are 19YY from 80 on, 20YY below. A date-only booking is midnight UTC.
//! - Transaction ids are `{account}/{:20:}/{:28C:}/{entry number}`.

use std::collections::VecDeque;
use std::io::BufRead;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use mapping::{Account, Balance, Direction, Statement, Transaction};
use serde::{Deserialize, Serialize};

use super::number::{currency_exponent, parse_amount};
use super::text::{self, Lines};
use super::{FormatError, Item, ItemResult, Location, Record};
use crate::file_drop::Encoding;

/// The longest tag value, continuation lines included; SWIFT allows far less (`:86:` is
/// 6 lines of 65 characters), so a longer one is a broken file.
const MAX_TAG_BYTES: usize = 64 * 1024;

/// Settings of the MT940 reader.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mt940Config {
    /// The character encoding: `utf-8` (default), `windows-1251` or `cp866`. SWIFT text is
    /// ASCII; this matters for the free text of `:86:`.
    #[serde(default)]
    pub encoding: Encoding,
}

/// A tag with its value, lines joined by `\n`.
#[derive(Debug)]
struct Tag {
    name: String,
    value: String,
    line: u64,
    too_long: bool,
}

/// A `:61:` line read, waiting for its `:86:`.
#[derive(Debug)]
struct PendingEntry {
    line: u64,
    result: Result<Transaction, (String, String)>,
    supplementary: Option<String>,
    purpose: Vec<String>,
}

/// One statement being read.
#[derive(Debug, Default)]
struct StatementState {
    line: u64,
    reference: String,
    account: Option<String>,
    sequence: Option<String>,
    currency: Option<String>,
    created_at: Option<DateTime<Utc>>,
    interim: bool,
    header_sent: bool,
    header_failed: bool,
    has_closing: bool,
    entries: u64,
    entry_errors: u64,
    debits: (u64, i64),
    credits: (u64, i64),
    last_entry_date: Option<NaiveDate>,
    pending: Option<PendingEntry>,
}

/// The records of an MT940/MT942 file, read as they are asked for.
pub struct Mt940Reader<R> {
    file: String,
    lines: Lines<R>,
    encoding: Encoding,
    tag: Option<Tag>,
    statement: Option<StatementState>,
    last_account: Option<String>,
    out: VecDeque<ItemResult>,
    finished: bool,
}

impl<R: BufRead> Mt940Reader<R> {
    /// Reads `source`; `file` names it in messages.
    pub fn new(file: &str, source: R, config: &Mt940Config) -> Self {
        Mt940Reader {
            file: file.to_owned(),
            lines: Lines::new(source),
            encoding: config.encoding,
            tag: None,
            statement: None,
            last_account: None,
            out: VecDeque::new(),
            finished: false,
        }
    }

    fn record_error(&mut self, line: u64, field: &str, reason: impl Into<String>) {
        self.out.push_back(Err(FormatError::record(
            &self.file,
            Location::line(line),
            Some(field),
            reason,
        )));
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

    fn pump(&mut self) {
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
                Ok(l) => l.into_owned(),
                Err(reason) => {
                    self.file_error(number, None, reason);
                    return;
                }
            };
            self.on_line(number, &line);
        }
    }

    fn on_line(&mut self, number: u64, raw: &str) {
        let line = raw.trim_matches(|c: char| c.is_ascii_control() && c != '\t');
        let mut content = line;
        if content.starts_with('{') {
            if content.starts_with("{5:") || content.starts_with("-}") {
                self.end_message();
                return;
            }
            match content.find("{4:") {
                Some(at) => content = content.get(at + 3..).unwrap_or_default(),
                None => return,
            }
        }
        if is_message_end(content) {
            self.end_message();
            return;
        }
        if content.trim().is_empty() {
            return;
        }
        if let Some((name, value)) = split_tag(content) {
            self.flush_tag();
            self.tag = Some(Tag {
                name: name.to_owned(),
                value: value.to_owned(),
                line: number,
                too_long: false,
            });
            return;
        }
        // A continuation line; outside a message (no tag open) it is a banner and skipped.
        if let Some(tag) = self.tag.as_mut() {
            if tag.value.len() + content.len() + 1 > MAX_TAG_BYTES {
                tag.too_long = true;
            } else {
                tag.value.push('\n');
                tag.value.push_str(content);
            }
        }
    }

    fn end_message(&mut self) {
        self.flush_tag();
        self.finish_statement();
    }

    fn end_of_file(&mut self) {
        self.flush_tag();
        self.finish_statement();
        self.finished = true;
    }

    /// Handles the tag that was being read, now that it is complete.
    fn flush_tag(&mut self) {
        let Some(tag) = self.tag.take() else { return };
        if tag.too_long {
            self.record_error(
                tag.line,
                &format!(":{}:", tag.name),
                format!(
                    "tag is longer than {} KiB; its content is skipped",
                    MAX_TAG_BYTES >> 10
                ),
            );
            return;
        }
        let name = tag.name.as_str();
        if name == "20" {
            self.finish_statement();
            self.statement = Some(StatementState {
                line: tag.line,
                reference: tag.value.trim().to_owned(),
                ..StatementState::default()
            });
            return;
        }
        if matches!(name, "940" | "NS" | "21") {
            return;
        }
        let known = matches!(
            name,
            "25" | "28"
                | "28C"
                | "60F"
                | "60M"
                | "61"
                | "86"
                | "62F"
                | "62M"
                | "64"
                | "65"
                | "34F"
                | "13"
                | "13D"
                | "90D"
                | "90C"
        );
        if !known {
            self.record_error(
                tag.line,
                &format!(":{name}:"),
                "unsupported tag; its content is skipped",
            );
            return;
        }
        if self.statement.is_none() {
            self.record_error(
                tag.line,
                &format!(":{name}:"),
                "tag outside a statement (no :20: before it); skipped",
            );
            return;
        }
        if name != "86" {
            self.emit_pending();
        }
        match name {
            "25" => self.with_statement(|s| s.account = non_empty(tag.value.trim())),
            "28" | "28C" => self.with_statement(|s| s.sequence = non_empty(tag.value.trim())),
            "60F" | "60M" | "62F" | "62M" | "64" | "65" => self.on_balance(&tag),
            "61" => self.on_entry(&tag),
            "86" => self.on_information(&tag),
            "34F" => self.on_floor_limit(&tag),
            "13" | "13D" => self.on_date_time(&tag),
            "90D" | "90C" => self.on_totals(&tag),
            _ => {}
        }
    }

    fn with_statement(&mut self, f: impl FnOnce(&mut StatementState)) {
        if let Some(s) = self.statement.as_mut() {
            f(s);
        }
    }

    /// Emits the account and statement records once; false if the statement cannot have
    /// records (no account).
    fn send_header(&mut self) -> bool {
        let Some(s) = self.statement.as_mut() else {
            return false;
        };
        if s.header_sent {
            return !s.header_failed;
        }
        s.header_sent = true;
        let location = Location::line(s.line);
        let Some(account) = s.account.clone() else {
            s.header_failed = true;
            let line = s.line;
            self.record_error(
                line,
                ":25:",
                "statement has no account (:25:); its records are skipped",
            );
            return false;
        };
        let statement_id = statement_id(s);
        if self.last_account.as_deref() != Some(account.as_str()) {
            self.last_account = Some(account.clone());
            self.out.push_back(Ok(Item {
                location: location.clone(),
                record: Record::Account(Account {
                    source_id: account.clone(),
                    number: account.clone(),
                    currency: s.currency.clone().unwrap_or_default(),
                    ..Account::default()
                }),
            }));
        }
        self.out.push_back(Ok(Item {
            location,
            record: Record::Statement(Statement {
                source_id: statement_id,
                account_source_id: account,
                kind: if s.interim { "mt942" } else { "mt940" }.to_owned(),
                sequence: s.sequence.clone(),
                created_at: s.created_at,
                from_date: None,
                to_date: None,
            }),
        }));
        true
    }

    fn on_balance(&mut self, tag: &Tag) {
        let kind = match tag.name.as_str() {
            "60F" => "OPBD",
            "62F" => "CLBD",
            "60M" | "62M" => "ITBD",
            "64" => "CLAV",
            _ => "FWAV",
        };
        let field = format!(":{}:", tag.name);
        let parsed = parse_balance(tag.value.trim());
        if let Some(s) = self.statement.as_mut() {
            if tag.name.starts_with("62") {
                s.has_closing = true;
            }
            if let Ok((_, _, currency)) = &parsed
                && s.currency.is_none()
            {
                s.currency = Some(currency.clone());
            }
        }
        let (amount, date, currency) = match parsed {
            Ok(p) => p,
            Err((sub, reason)) => {
                self.record_error(tag.line, &format!("{field} {sub}"), reason);
                return;
            }
        };
        if !self.send_header() {
            return;
        }
        let Some(s) = self.statement.as_ref() else {
            return;
        };
        let Some(account) = s.account.clone() else {
            return;
        };
        let balance = Balance {
            account_source_id: account,
            statement_source_id: Some(statement_id(s)),
            kind: kind.to_owned(),
            amount_minor: amount,
            currency,
            date,
        };
        self.out.push_back(Ok(Item {
            location: Location::line(tag.line),
            record: Record::Balance(balance),
        }));
    }

    fn on_entry(&mut self, tag: &Tag) {
        let Some(s) = self.statement.as_mut() else {
            return;
        };
        s.entries += 1;
        let index = s.entries;
        let currency = s.currency.clone();
        let account = s.account.clone().unwrap_or_default();
        let id = format!("{account}/{}/{index}", statement_id_suffix(s));
        let (first, rest) = match tag.value.split_once('\n') {
            Some((a, b)) => (a, Some(b)),
            None => (tag.value.as_str(), None),
        };
        let result = match currency {
            None => Err((
                "currency".to_owned(),
                "no currency: the statement has no :60F: or :34F: before this entry".to_owned(),
            )),
            Some(ccy) => parse_entry(first, &ccy).map(|e| {
                let supplementary = e.extra.clone();
                (e, supplementary)
            }),
        };
        let (result, supplementary) = match result {
            Ok((entry, extra)) => {
                let rest_text = rest.map(|r| r.replace('\n', " ").trim().to_owned());
                let supplementary = [extra, rest_text]
                    .into_iter()
                    .flatten()
                    .filter(|t| !t.is_empty())
                    .collect::<Vec<_>>();
                let supplementary = (!supplementary.is_empty()).then(|| supplementary.join(" "));
                (
                    Ok(entry.into_transaction(id, account, s.currency.clone().unwrap_or_default())),
                    supplementary,
                )
            }
            Err(e) => (Err(e), None),
        };
        if let Ok(t) = &result {
            let sums = match t.direction {
                Direction::Debit => &mut s.debits,
                Direction::Credit => &mut s.credits,
            };
            sums.0 += 1;
            sums.1 = sums.1.saturating_add(t.amount_minor);
            s.last_entry_date = Some(t.booked_at.date_naive());
        } else {
            s.entry_errors += 1;
        }
        s.pending = Some(PendingEntry {
            line: tag.line,
            result,
            supplementary,
            purpose: Vec::new(),
        });
    }

    /// `:86:` after a `:61:` is that entry's information; elsewhere it is about the
    /// statement and not kept.
    fn on_information(&mut self, tag: &Tag) {
        if let Some(pending) = self.statement.as_mut().and_then(|s| s.pending.as_mut()) {
            let text = tag
                .value
                .lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join("\n");
            let text = text.trim();
            if !text.is_empty() {
                pending.purpose.push(text.to_owned());
            }
        }
    }

    fn on_floor_limit(&mut self, tag: &Tag) {
        let value = tag.value.trim();
        let currency = value.get(..3).filter(|c| currency_exponent(c).is_some());
        match currency {
            Some(c) => {
                let c = c.to_owned();
                self.with_statement(|s| {
                    s.interim = true;
                    if s.currency.is_none() {
                        s.currency = Some(c);
                    }
                });
            }
            None => self.record_error(tag.line, ":34F: currency", "not an ISO 4217 currency code"),
        }
    }

    fn on_date_time(&mut self, tag: &Tag) {
        match parse_date_time_indication(tag.value.trim()) {
            Some(t) => self.with_statement(|s| {
                s.interim = true;
                s.created_at = Some(t);
            }),
            None => self.record_error(
                tag.line,
                &format!(":{}:", tag.name),
                "not a date-time YYMMDDhhmm with an optional +hhmm offset",
            ),
        }
    }

    /// `:90D:`/`:90C:`: number and sum of debit/credit entries, checked against the
    /// entries read.
    fn on_totals(&mut self, tag: &Tag) {
        let field = format!(":{}:", tag.name);
        let Some((count, amount)) = parse_totals(tag.value.trim()) else {
            self.record_error(tag.line, &field, "not a count, currency and amount");
            return;
        };
        let Some(s) = self.statement.as_mut() else {
            return;
        };
        s.interim = true;
        if s.entry_errors > 0 {
            // The bad entries were reported; the totals cannot match without them.
            return;
        }
        let (seen_count, seen_sum) = if tag.name == "90D" {
            s.debits
        } else {
            s.credits
        };
        if seen_count != count || seen_sum != amount {
            let side = if tag.name == "90D" { "debit" } else { "credit" };
            self.file_error(
                tag.line,
                Some(&field),
                format!(
                    "the {side} entries do not add up: the tag says {count} entries, the file has \
                     {seen_count}, or their sum differs; the file looks truncated or corrupted"
                ),
            );
        }
    }

    /// Emits the `:61:` entry waiting for its `:86:`.
    fn emit_pending(&mut self) {
        let Some(pending) = self.statement.as_mut().and_then(|s| s.pending.take()) else {
            return;
        };
        if !self.send_header() {
            return;
        }
        let location = Location::line(pending.line);
        match pending.result {
            Ok(mut t) => {
                let purpose = if pending.purpose.is_empty() {
                    pending.supplementary
                } else {
                    Some(pending.purpose.join("\n"))
                };
                t.purpose = purpose;
                self.out.push_back(Ok(Item {
                    location,
                    record: Record::Transaction(t),
                }));
            }
            Err((sub, reason)) => {
                self.out.push_back(Err(FormatError::record(
                    &self.file,
                    location,
                    Some(&format!(":61: {sub}")),
                    reason,
                )));
            }
        }
    }

    fn finish_statement(&mut self) {
        self.emit_pending();
        let Some(s) = self.statement.as_ref() else {
            return;
        };
        let (line, interim, has_closing, header_sent) =
            (s.line, s.interim, s.has_closing, s.header_sent);
        if !header_sent {
            self.send_header();
        }
        self.statement = None;
        if !interim && !has_closing && !self.finished {
            self.file_error(
                line,
                Some(":62F:"),
                "statement has no closing balance (:62F: or :62M:); the file looks truncated",
            );
        }
    }
}

impl<R: BufRead> Iterator for Mt940Reader<R> {
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

/// `-`, `-}`, `-XXX`: the end of a message text block.
fn is_message_end(line: &str) -> bool {
    let t = line.trim();
    t == "-" || t.starts_with("-}") || t == "-XXX"
}

/// `:61:rest` → `("61", "rest")`. A tag is 2 digits with an optional letter, or a short
/// run of letters and digits (`:NS:`, `:940:`).
fn split_tag(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(':')?;
    let end = rest.find(':')?;
    let name = rest.get(..end)?;
    let ok = (1..=4).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then(|| (name, rest.get(end + 1..).unwrap_or_default()))
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_owned())
}

fn statement_id_suffix(s: &StatementState) -> String {
    match &s.sequence {
        Some(seq) => format!("{}/{seq}", s.reference),
        None => s.reference.clone(),
    }
}

fn statement_id(s: &StatementState) -> String {
    format!(
        "{}/{}",
        s.account.as_deref().unwrap_or_default(),
        statement_id_suffix(s)
    )
}

/// `YYMMDD`, 19YY from 80 on.
fn parse_yymmdd(text: &str) -> Option<NaiveDate> {
    if text.len() != 6 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let yy: i32 = text.get(..2)?.parse().ok()?;
    let mm: u32 = text.get(2..4)?.parse().ok()?;
    let dd: u32 = text.get(4..6)?.parse().ok()?;
    let year = if yy >= 80 { 1900 + yy } else { 2000 + yy };
    NaiveDate::from_ymd_opt(year, mm, dd)
}

/// A SWIFT amount: digits with one decimal comma.
fn parse_swift_amount(text: &str, currency: &str) -> Result<i64, String> {
    let exponent =
        currency_exponent(currency).ok_or_else(|| "not an ISO 4217 currency code".to_owned())?;
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit() || b == b',')
        || text.matches(',').count() != 1
    {
        return Err("not an amount with one decimal comma".to_owned());
    }
    parse_amount(text, exponent).map_err(|e| e.to_string())
}

/// `C190825EUR1111,10` → (signed minor units, date, currency).
fn parse_balance(value: &str) -> Result<(i64, NaiveDate, String), (String, String)> {
    let bad = |sub: &str, reason: &str| (sub.to_owned(), reason.to_owned());
    let mark = value.get(..1).ok_or_else(|| bad("mark", "missing"))?;
    let negative = match mark {
        "C" => false,
        "D" => true,
        _ => return Err(bad("mark", "must be C or D")),
    };
    let date = value
        .get(1..7)
        .and_then(parse_yymmdd)
        .ok_or_else(|| bad("date", "not a date YYMMDD"))?;
    let currency = value
        .get(7..10)
        .filter(|c| currency_exponent(c).is_some())
        .ok_or_else(|| bad("currency", "not an ISO 4217 currency code"))?;
    let amount = parse_swift_amount(value.get(10..).unwrap_or_default().trim(), currency)
        .map_err(|r| ("amount".to_owned(), r))?;
    Ok((
        if negative { -amount } else { amount },
        date,
        currency.to_owned(),
    ))
}

/// The subfields of a `:61:` line.
#[derive(Debug)]
struct Entry {
    value_date: NaiveDate,
    entry_date: Option<NaiveDate>,
    direction: Direction,
    amount: i64,
    code: String,
    customer_reference: Option<String>,
    bank_reference: Option<String>,
    extra: Option<String>,
}

impl Entry {
    fn into_transaction(self, source_id: String, account: String, currency: String) -> Transaction {
        let booked = self.entry_date.unwrap_or(self.value_date);
        Transaction {
            source_id,
            account_source_id: account,
            amount_minor: self.amount,
            currency,
            booked_at: booked.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc(),
            direction: self.direction,
            counterparty_name: None,
            counterparty_inn: None,
            counterparty_account: None,
            purpose: None,
            value_date: Some(self.value_date),
            bank_reference: self.bank_reference,
            customer_reference: self.customer_reference,
            end_to_end_id: None,
            counterparty_bic: None,
            counterparty_country: None,
            bank_transaction_code: Some(self.code),
            status: None,
        }
    }
}

/// `6!n[4!n]2a[1!a]15d1!a3!c16x[//16x][34x]`:
/// `1908240824D5,34N426NONREF//B123 extra`.
fn parse_entry(line: &str, currency: &str) -> Result<Entry, (String, String)> {
    let bad = |sub: &str, reason: &str| (sub.to_owned(), reason.to_owned());
    let value_date = line
        .get(..6)
        .and_then(parse_yymmdd)
        .ok_or_else(|| bad("value date", "not a date YYMMDD"))?;
    let mut rest = line.get(6..).unwrap_or_default();
    let mut entry_date = None;
    if let Some(mmdd) = rest
        .get(..4)
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
    {
        entry_date = Some(
            entry_date_near(mmdd, value_date)
                .ok_or_else(|| bad("entry date", "not a date MMDD"))?,
        );
        rest = rest.get(4..).unwrap_or_default();
    }
    let (direction, after_mark) = if let Some(r) = rest.strip_prefix("RC") {
        (Direction::Debit, r)
    } else if let Some(r) = rest.strip_prefix("RD") {
        (Direction::Credit, r)
    } else if let Some(r) = rest.strip_prefix('C') {
        (Direction::Credit, r)
    } else if let Some(r) = rest.strip_prefix('D') {
        (Direction::Debit, r)
    } else {
        return Err(bad("mark", "must be C, D, RC or RD"));
    };
    rest = after_mark;
    // The optional funds code is a letter; the amount starts with a digit.
    if rest.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
        rest = rest.get(1..).unwrap_or_default();
    }
    let amount_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b',')
        .count();
    let amount_text = rest.get(..amount_len).unwrap_or_default();
    let amount = parse_swift_amount(amount_text, currency).map_err(|r| ("amount".to_owned(), r))?;
    rest = rest.get(amount_len..).unwrap_or_default();
    let code = rest
        .get(..4)
        .filter(|c| c.starts_with(['N', 'F', 'S']))
        .ok_or_else(|| bad("transaction type", "must be N, F or S and three characters"))?;
    rest = rest.get(4..).unwrap_or_default();
    let (customer, bank, extra) = match rest.split_once("//") {
        Some((customer, after)) => {
            let (bank, extra) = split_chars(after, 16);
            (customer.trim(), bank.trim(), extra.trim())
        }
        None => {
            let (customer, extra) = split_chars(rest, 16);
            (customer.trim(), "", extra.trim())
        }
    };
    let reference = |r: &str| (!r.is_empty() && r != "NONREF").then(|| r.to_owned());
    Ok(Entry {
        value_date,
        entry_date,
        direction,
        amount,
        code: code.trim().to_owned(),
        customer_reference: reference(customer),
        bank_reference: reference(bank),
        extra: non_empty(extra),
    })
}

/// Splits after `n` characters.
fn split_chars(s: &str, n: usize) -> (&str, &str) {
    match s.char_indices().nth(n) {
        Some((at, _)) => (s.get(..at).unwrap_or(s), s.get(at..).unwrap_or_default()),
        None => (s, ""),
    }
}

/// The entry date `MMDD` in the year that puts it nearest the value date (a booking on
/// 31 December for a value date of 2 January is in the year before).
fn entry_date_near(mmdd: &str, value_date: NaiveDate) -> Option<NaiveDate> {
    let mm: u32 = mmdd.get(..2)?.parse().ok()?;
    let dd: u32 = mmdd.get(2..4)?.parse().ok()?;
    let year = value_date.year();
    [year, year - 1, year + 1]
        .into_iter()
        .filter_map(|y| NaiveDate::from_ymd_opt(y, mm, dd))
        .min_by_key(|d| (*d - value_date).num_days().abs())
}

/// `:13D:` `1710111200+0100` or `:13:` `1710111200`.
fn parse_date_time_indication(value: &str) -> Option<DateTime<Utc>> {
    let stamp = value.get(..10)?;
    let naive = NaiveDateTime::parse_from_str(&format!("20{stamp}"), "%Y%m%d%H%M").ok()?;
    let naive = if stamp.get(..2)?.parse::<u32>().ok()? >= 80 {
        naive.checked_sub_months(chrono::Months::new(1200))?
    } else {
        naive
    };
    let offset = match value.get(10..).unwrap_or_default() {
        "" => FixedOffset::east_opt(0)?,
        o => {
            let sign = match o.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let hh: i32 = o.get(1..3)?.parse().ok()?;
            let mm: i32 = o.get(3..5)?.parse().ok()?;
            if o.len() != 5 {
                return None;
            }
            FixedOffset::east_opt(sign * (hh * 3600 + mm * 60))?
        }
    };
    offset
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

/// `:90D:` `3EUR123,45` → (3, minor units).
fn parse_totals(value: &str) -> Option<(u64, i64)> {
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let count: u64 = value.get(..digits)?.parse().ok()?;
    let currency = value.get(digits..digits + 3)?;
    let amount = parse_swift_amount(value.get(digits + 3..)?, currency).ok()?;
    Some((count, amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_subfields() {
        let e = parse_entry("1908240824D5,34N426NONREF", "EUR").unwrap();
        assert_eq!(e.value_date, NaiveDate::from_ymd_opt(2019, 8, 24).unwrap());
        assert_eq!(e.entry_date, e.value_date.into());
        assert_eq!(e.direction, Direction::Debit);
        assert_eq!(e.amount, 534);
        assert_eq!(e.code, "N426");
        assert_eq!(e.customer_reference, None);

        let e = parse_entry("0910010930DK2214,00NCHGGebyrer ifolge//nota", "DKK").unwrap();
        assert_eq!(e.entry_date, NaiveDate::from_ymd_opt(2009, 9, 30));
        assert_eq!(e.amount, 221_400);
        assert_eq!(e.customer_reference.as_deref(), Some("Gebyrer ifolge"));
        assert_eq!(e.bank_reference.as_deref(), Some("nota"));

        let e = parse_entry("100722C3,68NTRFNONREF", "EUR").unwrap();
        assert_eq!(e.entry_date, None);
        assert_eq!(e.direction, Direction::Credit);

        let e = parse_entry("1701020101RC10,NMSCREF1//BANK2", "PLN").unwrap();
        assert_eq!(e.direction, Direction::Debit);
        assert_eq!(e.amount, 1000);
        assert_eq!(e.entry_date, NaiveDate::from_ymd_opt(2017, 1, 1));

        let e = parse_entry("1612300102C1,00NTRFX", "EUR").unwrap();
        assert_eq!(e.entry_date, NaiveDate::from_ymd_opt(2017, 1, 2));
    }

    #[test]
    fn entry_errors_name_the_subfield() {
        assert_eq!(parse_entry("19082", "EUR").unwrap_err().0, "value date");
        assert_eq!(
            parse_entry("191324D1,00NTRF", "EUR").unwrap_err().0,
            "value date"
        );
        assert_eq!(parse_entry("190824X1,00NTRF", "EUR").unwrap_err().0, "mark");
        assert_eq!(
            parse_entry("190824D1.00NTRF", "EUR").unwrap_err().0,
            "amount"
        );
        assert_eq!(parse_entry("190824DNTRF", "EUR").unwrap_err().0, "amount");
        assert_eq!(
            parse_entry("190824D1,00", "EUR").unwrap_err().0,
            "transaction type"
        );
        assert_eq!(
            parse_entry("1908241399D1,00NTRF", "EUR").unwrap_err().0,
            "entry date"
        );
    }

    #[test]
    fn balances_and_totals() {
        let (amount, date, ccy) = parse_balance("D171011HUF627311,30").unwrap();
        assert_eq!((amount, ccy.as_str()), (-62_731_130, "HUF"));
        assert_eq!(date, NaiveDate::from_ymd_opt(2017, 10, 11).unwrap());
        assert_eq!(parse_balance("C990101JPY100,").unwrap().0, 100);
        assert_eq!(parse_balance("X171011EUR1,00").unwrap_err().0, "mark");
        assert_eq!(parse_balance("C171011EU").unwrap_err().0, "currency");
        assert_eq!(parse_totals("3EUR123,45"), Some((3, 12_345)));
        assert_eq!(parse_totals("EUR1,00"), None);
        let t = parse_date_time_indication("1710111200+0100").unwrap();
        assert_eq!(t.to_rfc3339(), "2017-10-11T11:00:00+00:00");
        assert!(parse_date_time_indication("17101112").is_none());
    }

    #[test]
    fn tags() {
        assert_eq!(split_tag(":61:abc"), Some(("61", "abc")));
        assert_eq!(split_tag(":NS:22x"), Some(("NS", "22x")));
        assert_eq!(split_tag(":60F:C1"), Some(("60F", "C1")));
        assert_eq!(split_tag("Z RACH.: 5611"), None);
        assert_eq!(split_tag(": not a tag"), None);
        assert!(is_message_end("-"));
        assert!(is_message_end("-}"));
        assert!(!is_message_end("-5 EUR"));
    }
}
