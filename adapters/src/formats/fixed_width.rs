//! Fixed-width files: every field at a fixed character position, the layout given in
//! config, optionally several record types (header, detail, trailer) told apart by a code.
//!
//! Contract:
//! - [`FixedWidthLayout`] names the encoding, where the record-type code is, and per record
//!   type its role and fields (canonical name, 1-based start, length or inclusive end,
//!   whether to trim). Positions count characters after decoding. A line shorter than a
//!   field leaves that field empty. [`FixedWidthLayout::validate`] rejects layouts the
//!   reader cannot use, before any file is read.
//! - Detail records become [`Transaction`]s; the field name says what a field is (see
//!   [`DETAIL_FIELDS`]). `amount` and `booked_at` are required; `account` and `currency`
//!   may come from the detail, the last header record, or the layout. An amount is signed
//!   (a minus or parentheses make a debit) unless a `direction` field says debit or credit;
//!   `implied_decimals` reads amounts written without a separator. Dates are read with
//!   `format` (chrono syntax, default `%Y%m%d`).
//! - A trailer's `count` must equal the number of detail records since the last trailer (or
//!   the start), and its `total` the sum of their amounts (without sign); a mismatch, or
//!   detail records with no trailer after them when the layout has one, is a
//!   [`File`](super::ErrorScope::File)-scope error (the file is truncated or corrupted). A
//!   bad detail record is a [`Record`](super::ErrorScope::Record)-scope error naming the
//!   line and field; the total is then not checked, the count still is.
//! - Without an `id` field a transaction's id is `{file name}:{line}`: stable when the same
//!   file is read again, distinct between files.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mapping::{Direction, Transaction};
use serde::{Deserialize, Serialize};

use super::number::{currency_exponent, parse_amount, parse_implied};
use super::text::{self, Lines};
use super::{FormatError, Item, ItemResult, Location, Record};
use crate::file_drop::Encoding;

/// The fields a detail record may have.
pub const DETAIL_FIELDS: &[&str] = &[
    "id",
    "account",
    "amount",
    "currency",
    "direction",
    "booked_at",
    "value_date",
    "counterparty_name",
    "counterparty_inn",
    "counterparty_account",
    "counterparty_bic",
    "purpose",
    "bank_reference",
    "customer_reference",
    "bank_transaction_code",
    "status",
];

/// The fields a header record may have: defaults for the detail records after it.
pub const HEADER_FIELDS: &[&str] = &["account", "currency"];

/// The fields a trailer record may have.
pub const TRAILER_FIELDS: &[&str] = &["count", "total"];

/// The layout of a fixed-width file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedWidthLayout {
    /// `utf-8` (default), `windows-1251` or `cp866`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Where the record-type code is; absent: every line is a record of the only record
    /// type.
    #[serde(default)]
    pub record_type: Option<Span>,
    /// The record types.
    pub records: Vec<RecordLayout>,
    /// The account of every transaction when neither a header nor a detail gives one.
    #[serde(default)]
    pub account: Option<String>,
    /// The currency when neither a header nor a detail gives one.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A run of characters in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    /// 1-based position of the first character.
    pub start: usize,
    /// Number of characters (or give `end`).
    #[serde(default)]
    pub length: Option<usize>,
    /// 1-based position of the last character, inclusive (or give `length`).
    #[serde(default)]
    pub end: Option<usize>,
}

impl Span {
    /// 0-based start and exclusive end, if the span is well-formed.
    fn range(&self) -> Option<(usize, usize)> {
        let start = self.start.checked_sub(1)?;
        let end = match (self.length, self.end) {
            (Some(len), None) if len > 0 => start.checked_add(len)?,
            (None, Some(end)) if end >= self.start => end,
            _ => return None,
        };
        Some((start, end))
    }
}

/// What a record type is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Defaults (account, currency) for the details after it; starts a batch.
    Header,
    /// One transaction.
    Detail,
    /// Count and total of the details before it; ends a batch.
    Trailer,
    /// Read and ignored.
    Skip,
}

/// One record type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordLayout {
    /// The record-type code (compared after trimming); required when the layout has a
    /// `record_type`.
    #[serde(default)]
    pub code: Option<String>,
    /// What the record is for.
    pub role: Role,
    /// Its fields.
    #[serde(default)]
    pub fields: Vec<FieldLayout>,
}

/// One field of a record type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldLayout {
    /// The canonical field it holds (see [`DETAIL_FIELDS`], [`HEADER_FIELDS`],
    /// [`TRAILER_FIELDS`]).
    pub name: String,
    /// 1-based position of the first character.
    pub start: usize,
    /// Number of characters (or give `end`).
    #[serde(default)]
    pub length: Option<usize>,
    /// 1-based position of the last character, inclusive (or give `length`).
    #[serde(default)]
    pub end: Option<usize>,
    /// Whether to trim surrounding spaces (default true).
    #[serde(default = "default_trim")]
    pub trim: bool,
    /// Date format in chrono syntax for `booked_at` and `value_date`; default `%Y%m%d`.
    #[serde(default)]
    pub format: Option<String>,
    /// For `amount` and `total`: the amount has no separator and its last digits are the
    /// fraction.
    #[serde(default)]
    pub implied_decimals: Option<u32>,
    /// For `direction`: the code of a debit (default `D`).
    #[serde(default)]
    pub debit: Option<String>,
    /// For `direction`: the code of a credit (default `C`).
    #[serde(default)]
    pub credit: Option<String>,
}

fn default_trim() -> bool {
    true
}

impl FieldLayout {
    fn span(&self) -> Span {
        Span {
            start: self.start,
            length: self.length,
            end: self.end,
        }
    }
}

impl FixedWidthLayout {
    /// Checks the layout without reading any file.
    pub fn validate(&self) -> Result<(), String> {
        if self.records.is_empty() {
            return Err("records: at least one record type is needed".to_owned());
        }
        if let Some(span) = &self.record_type {
            if span.range().is_none() {
                return Err("record_type: start must be 1 or more, with a length of 1 or more or an end not before start".to_owned());
            }
            let mut codes = Vec::new();
            for (i, r) in self.records.iter().enumerate() {
                let code = r.code.as_deref().map(str::trim).unwrap_or_default();
                if code.is_empty() {
                    return Err(format!("records[{i}].code: required with record_type"));
                }
                if codes.contains(&code) {
                    return Err(format!("records[{i}].code: appears twice"));
                }
                codes.push(code);
            }
        } else if self.records.len() != 1 {
            return Err("record_type: required when there are several record types".to_owned());
        }
        for (i, r) in self.records.iter().enumerate() {
            let allowed = match r.role {
                Role::Header => HEADER_FIELDS,
                Role::Detail => DETAIL_FIELDS,
                Role::Trailer => TRAILER_FIELDS,
                Role::Skip => &[],
            };
            for (j, f) in r.fields.iter().enumerate() {
                let at = format!("records[{i}].fields[{j}]");
                if !allowed.contains(&f.name.as_str()) {
                    return Err(format!(
                        "{at}.name: not a field of a {:?} record; one of {}",
                        r.role,
                        allowed.join(", ")
                    ));
                }
                if f.span().range().is_none() {
                    return Err(format!(
                        "{at}: start must be 1 or more, with a length of 1 or more or an end not before start"
                    ));
                }
                if r.fields.iter().filter(|g| g.name == f.name).count() > 1 {
                    return Err(format!("{at}.name: appears twice"));
                }
                if f.implied_decimals.is_some_and(|d| d > 6) {
                    return Err(format!("{at}.implied_decimals: at most 6"));
                }
            }
            if r.role == Role::Detail {
                for required in ["amount", "booked_at"] {
                    if !r.fields.iter().any(|f| f.name == required) {
                        return Err(format!(
                            "records[{i}]: a detail record needs a {required} field"
                        ));
                    }
                }
            }
        }
        for (name, value) in [("currency", &self.currency)] {
            if value
                .as_deref()
                .is_some_and(|c| currency_exponent(c).is_none())
            {
                return Err(format!("{name}: not an ISO 4217 currency code"));
            }
        }
        Ok(())
    }

    fn has_trailer(&self) -> bool {
        self.records.iter().any(|r| r.role == Role::Trailer)
    }
}

/// The details since the last trailer.
#[derive(Debug, Default)]
struct Batch {
    details: u64,
    errors: u64,
    total: i128,
    account: Option<String>,
    currency: Option<String>,
}

/// The records of a fixed-width file, read as they are asked for.
pub struct FixedWidthReader<R> {
    file: String,
    lines: Lines<R>,
    layout: Arc<FixedWidthLayout>,
    layout_error: Option<String>,
    batch: Batch,
    trailers: u64,
    offsets: Vec<usize>,
    out: VecDeque<ItemResult>,
    finished: bool,
}

impl<R: BufRead> FixedWidthReader<R> {
    /// Reads `source` with `layout`; `file` names it in messages. An invalid layout is the
    /// first and only item.
    pub fn new(file: &str, source: R, layout: &FixedWidthLayout) -> Self {
        FixedWidthReader {
            file: file.to_owned(),
            lines: Lines::new(source),
            layout: Arc::new(layout.clone()),
            layout_error: layout.validate().err(),
            batch: Batch::default(),
            trailers: 0,
            offsets: Vec::new(),
            out: VecDeque::new(),
            finished: false,
        }
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
        if let Some(reason) = self.layout_error.take() {
            self.file_error(0, None, format!("invalid fixed-width layout: {reason}"));
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
            let line = match text::decode(self.lines.bytes(), self.layout.encoding) {
                Ok(l) => l.into_owned(),
                Err(reason) => {
                    self.file_error(number, None, reason);
                    return;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            self.on_line(number, &line);
        }
    }

    fn on_line(&mut self, number: u64, line: &str) {
        self.offsets.clear();
        self.offsets.extend(line.char_indices().map(|(i, _)| i));
        self.offsets.push(line.len());
        let index = match &self.layout.record_type {
            None => Some(0),
            Some(span) => {
                let code = slice(line, &self.offsets, span).trim().to_owned();
                self.layout
                    .records
                    .iter()
                    .position(|r| r.code.as_deref().map(str::trim) == Some(code.as_str()))
            }
        };
        let Some(index) = index else {
            self.out.push_back(Err(FormatError::record(
                &self.file,
                Location::line(number),
                Some("record_type"),
                "unknown record type code",
            )));
            return;
        };
        let layout = Arc::clone(&self.layout);
        let Some(record) = layout.records.get(index) else {
            return;
        };
        let values: Vec<(&str, String)> = record
            .fields
            .iter()
            .map(|f| {
                let raw = slice(line, &self.offsets, &f.span());
                let v = if f.trim { raw.trim() } else { raw };
                (f.name.as_str(), v.to_owned())
            })
            .collect();
        match record.role {
            Role::Skip => {}
            Role::Header => {
                self.batch = Batch::default();
                for (name, value) in values {
                    let value = (!value.is_empty()).then_some(value);
                    match name {
                        "account" => self.batch.account = value,
                        "currency" => self.batch.currency = value,
                        _ => {}
                    }
                }
            }
            Role::Detail => self.on_detail(number, record, values),
            Role::Trailer => self.on_trailer(number, record, values),
        }
    }

    fn on_detail(&mut self, number: u64, record: &RecordLayout, values: Vec<(&str, String)>) {
        self.batch.details += 1;
        let result = self.detail(number, record, &values);
        match result {
            Ok(t) => {
                self.batch.total += i128::from(t.amount_minor);
                self.out.push_back(Ok(Item {
                    location: Location::line(number),
                    record: Record::Transaction(t),
                }));
            }
            Err((field, reason)) => {
                self.batch.errors += 1;
                self.out.push_back(Err(FormatError::record(
                    &self.file,
                    Location::line(number),
                    Some(&field),
                    reason,
                )));
            }
        }
    }

    fn detail(
        &self,
        number: u64,
        record: &RecordLayout,
        values: &[(&str, String)],
    ) -> Result<Transaction, (String, String)> {
        let get = |name: &str| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        let field = |name: &str| record.fields.iter().find(|f| f.name == name);
        let owned = |name: &str| get(name).map(str::to_owned);
        let missing = |name: &str| (name.to_owned(), "missing".to_owned());

        let account = owned("account")
            .or_else(|| self.batch.account.clone())
            .or_else(|| self.layout.account.clone())
            .ok_or_else(|| missing("account"))?;
        let currency = owned("currency")
            .or_else(|| self.batch.currency.clone())
            .or_else(|| self.layout.currency.clone())
            .ok_or_else(|| missing("currency"))?;
        let exponent = currency_exponent(&currency).ok_or_else(|| {
            (
                "currency".to_owned(),
                "not an ISO 4217 currency code".to_owned(),
            )
        })?;
        let amount_text = get("amount").ok_or_else(|| missing("amount"))?;
        let signed = read_amount(amount_text, field("amount"), exponent)
            .map_err(|r| ("amount".to_owned(), r))?;
        let direction = match (get("direction"), field("direction")) {
            (Some(code), Some(f)) => {
                let debit = f.debit.as_deref().unwrap_or("D");
                let credit = f.credit.as_deref().unwrap_or("C");
                if code == debit {
                    Direction::Debit
                } else if code == credit {
                    Direction::Credit
                } else {
                    return Err((
                        "direction".to_owned(),
                        "is neither the debit nor the credit code".to_owned(),
                    ));
                }
            }
            (None, Some(_)) => return Err(missing("direction")),
            _ if signed < 0 => Direction::Debit,
            _ => Direction::Credit,
        };
        let booked_text = get("booked_at").ok_or_else(|| missing("booked_at"))?;
        let booked_at = read_date_time(booked_text, field("booked_at")).ok_or_else(|| {
            (
                "booked_at".to_owned(),
                "not a date in the layout's format".to_owned(),
            )
        })?;
        let value_date = match get("value_date") {
            Some(v) => Some(
                read_date_time(v, field("value_date"))
                    .ok_or_else(|| {
                        (
                            "value_date".to_owned(),
                            "not a date in the layout's format".to_owned(),
                        )
                    })?
                    .date_naive(),
            ),
            None => None,
        };
        Ok(Transaction {
            source_id: owned("id").unwrap_or_else(|| format!("{}:{number}", self.file)),
            account_source_id: account,
            amount_minor: signed
                .checked_abs()
                .ok_or_else(|| ("amount".to_owned(), "amount is too large".to_owned()))?,
            currency,
            booked_at,
            direction,
            counterparty_name: owned("counterparty_name"),
            counterparty_inn: owned("counterparty_inn"),
            counterparty_account: owned("counterparty_account"),
            purpose: owned("purpose"),
            value_date,
            bank_reference: owned("bank_reference"),
            customer_reference: owned("customer_reference"),
            end_to_end_id: None,
            counterparty_bic: owned("counterparty_bic"),
            counterparty_country: None,
            bank_transaction_code: owned("bank_transaction_code"),
            status: owned("status"),
        })
    }

    fn on_trailer(&mut self, number: u64, record: &RecordLayout, values: Vec<(&str, String)>) {
        let batch = std::mem::take(&mut self.batch);
        self.trailers += 1;
        let field = |name: &str| record.fields.iter().find(|f| f.name == name);
        let get = |name: &str| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(text) = get("count") {
            match text.trim().parse::<u64>() {
                Ok(count) if count == batch.details => {}
                Ok(count) => {
                    self.file_error(
                        number,
                        Some("count"),
                        format!(
                            "the trailer counts {count} detail records, the file has {}; \
                             it looks truncated or corrupted",
                            batch.details
                        ),
                    );
                    return;
                }
                Err(_) => {
                    self.file_error(number, Some("count"), "not a whole number");
                    return;
                }
            }
        }
        if let Some(text) = get("total") {
            let currency = batch
                .currency
                .clone()
                .or_else(|| self.layout.currency.clone());
            let exponent = currency.as_deref().and_then(currency_exponent).unwrap_or(2);
            match read_amount(text, field("total"), exponent) {
                Ok(total) if batch.errors > 0 || i128::from(total).abs() == batch.total.abs() => {}
                Ok(_) => {
                    self.file_error(
                        number,
                        Some("total"),
                        "the trailer total differs from the sum of the detail amounts; \
                         the file looks truncated or corrupted",
                    );
                }
                Err(reason) => self.file_error(number, Some("total"), reason),
            }
        }
    }

    fn end_of_file(&mut self) {
        let number = self.lines.number();
        if self.layout.has_trailer() && (self.batch.details > 0 || self.trailers == 0) {
            self.file_error(
                number,
                None,
                "no trailer record after the last detail records; the file looks truncated",
            );
            return;
        }
        self.finished = true;
    }
}

impl<R: BufRead> Iterator for FixedWidthReader<R> {
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

/// The characters of `span` in `line` (`offsets` are the byte offsets of its characters
/// plus its length); empty past the end of the line.
fn slice<'a>(line: &'a str, offsets: &[usize], span: &Span) -> &'a str {
    let Some((start, end)) = span.range() else {
        return "";
    };
    let last = offsets.len().saturating_sub(1);
    let from = offsets.get(start.min(last)).copied().unwrap_or(line.len());
    let to = offsets.get(end.min(last)).copied().unwrap_or(line.len());
    line.get(from..to).unwrap_or_default()
}

/// A signed amount in minor units.
fn read_amount(text: &str, field: Option<&FieldLayout>, exponent: u32) -> Result<i64, String> {
    match field.and_then(|f| f.implied_decimals) {
        Some(implied) => parse_implied(text, implied, exponent),
        None => parse_amount(text, exponent),
    }
    .map_err(|e| e.to_string())
}

/// A date or date-time in the field's format (midnight UTC for a date).
fn read_date_time(text: &str, field: Option<&FieldLayout>) -> Option<DateTime<Utc>> {
    let format = field.and_then(|f| f.format.as_deref()).unwrap_or("%Y%m%d");
    if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(text, format)
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
