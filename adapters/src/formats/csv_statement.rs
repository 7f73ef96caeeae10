//! Bank-statement CSV: one transaction per row, columns named in config.
//!
//! Contract:
//! - Decoding, quoting, line numbers and the file-level checks (wrong encoding, bad header)
//!   are the file drop's [`CsvReader`]: UTF-8, windows-1251 or cp866, any ASCII delimiter,
//!   streamed in bounded memory. A problem found there before the first row is the error of
//!   [`CsvStatementConfig::open`].
//! - [`StatementColumns`] names the header of each field; every named column must be in the
//!   header (else the open fails, naming the column). `date` and `amount` are required. The
//!   account and currency come from their columns or, when those are not named, from
//!   `account` and `currency` in the config.
//! - Amounts follow [`super::number`]: decimal comma or point, space, no-break-space or
//!   apostrophe thousands separators, a minus or parentheses for negative. With a
//!   `direction` column its value (one of `debit_values` or `credit_values`, any case)
//!   decides and the amount's sign is dropped; without it a negative amount is a debit.
//! - A bad row is a [`Record`](super::ErrorScope::Record)-scope error naming the line and
//!   the column; the other rows still come. A row the parser cannot read past (an overlong
//!   row), or a last row cut short (too few cells, a quote never closed) ends the file with a
//!   [`File`](super::ErrorScope::File)-scope error.
//! - Without an `id` column a transaction's id is `{file name}:{line}`.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mapping::{Direction, Transaction};
use serde::{Deserialize, Serialize};

use super::number::{currency_exponent, parse_amount};
use super::{FormatError, Item, ItemResult, Location, Record};
use crate::file_drop::csv_reader::{CsvReader, Row, RowError, RowErrorKind};
use crate::file_drop::{Encoding, FileDropError};

/// Which header holds each field of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatementColumns {
    /// The booking date or date-time (required).
    pub date: String,
    /// The amount (required); signed unless `direction` is given.
    pub amount: String,
    /// ISO 4217 currency code; without it, the config's `currency`.
    #[serde(default)]
    pub currency: Option<String>,
    /// Debit or credit, as one of `debit_values` / `credit_values`.
    #[serde(default)]
    pub direction: Option<String>,
    /// The account (or masked card) the row is booked on; without it, the config's
    /// `account`.
    #[serde(default)]
    pub account: Option<String>,
    /// The transaction's id at the bank.
    #[serde(default)]
    pub id: Option<String>,
    /// The value date.
    #[serde(default)]
    pub value_date: Option<String>,
    /// The counterparty's name.
    #[serde(default)]
    pub counterparty: Option<String>,
    /// The counterparty's taxpayer number.
    #[serde(default)]
    pub counterparty_inn: Option<String>,
    /// The counterparty's account.
    #[serde(default)]
    pub counterparty_account: Option<String>,
    /// The counterparty's bank code.
    #[serde(default)]
    pub counterparty_bic: Option<String>,
    /// The payment purpose or description.
    #[serde(default)]
    pub purpose: Option<String>,
    /// The bank's status of the row (kept as given, for example `OK`, `FAILED`).
    #[serde(default)]
    pub status: Option<String>,
    /// The bank's reference.
    #[serde(default)]
    pub bank_reference: Option<String>,
    /// The customer's reference or document number.
    #[serde(default)]
    pub customer_reference: Option<String>,
    /// A transaction type or category code (an MCC, for example).
    #[serde(default)]
    pub bank_transaction_code: Option<String>,
}

/// Settings of a bank-statement CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvStatementConfig {
    /// `utf-8` (default), `windows-1251` or `cp866`.
    #[serde(default)]
    pub encoding: Encoding,
    /// The cell separator, one ASCII character; default `;`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Which header holds each field.
    pub columns: StatementColumns,
    /// The account of every row when there is no account column.
    #[serde(default)]
    pub account: Option<String>,
    /// The currency of every row when there is no currency column.
    #[serde(default)]
    pub currency: Option<String>,
    /// Date formats tried in order (chrono syntax); a format with a time reads date-times.
    #[serde(default = "default_date_formats")]
    pub date_formats: Vec<String>,
    /// Values of the direction column meaning debit (compared ignoring case).
    #[serde(default = "default_debit_values")]
    pub debit_values: Vec<String>,
    /// Values of the direction column meaning credit (compared ignoring case).
    #[serde(default = "default_credit_values")]
    pub credit_values: Vec<String>,
}

fn default_delimiter() -> char {
    ';'
}

fn default_date_formats() -> Vec<String> {
    [
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%d.%m.%Y",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_debit_values() -> Vec<String> {
    ["D", "DBIT", "debit", "Д", "дебет", "расход", "списание"]
        .map(str::to_owned)
        .to_vec()
}

fn default_credit_values() -> Vec<String> {
    [
        "C",
        "CRDT",
        "credit",
        "К",
        "кредит",
        "приход",
        "поступление",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl CsvStatementConfig {
    /// A config with every default and the given required columns.
    pub fn new(date: &str, amount: &str) -> Self {
        CsvStatementConfig {
            encoding: Encoding::default(),
            delimiter: default_delimiter(),
            columns: StatementColumns {
                date: date.to_owned(),
                amount: amount.to_owned(),
                ..StatementColumns::default()
            },
            account: None,
            currency: None,
            date_formats: default_date_formats(),
            debit_values: default_debit_values(),
            credit_values: default_credit_values(),
        }
    }

    /// Checks the settings without reading any file.
    pub fn validate(&self) -> Result<(), String> {
        if !self.delimiter.is_ascii() || matches!(self.delimiter, '"' | '\n' | '\r') {
            return Err(
                "delimiter: must be one ASCII character other than a quote or a line break"
                    .to_owned(),
            );
        }
        if self.columns.date.trim().is_empty() || self.columns.amount.trim().is_empty() {
            return Err("columns: date and amount must name header columns".to_owned());
        }
        if self.columns.account.is_none() && self.account.is_none() {
            return Err("account: needed when columns.account is not given".to_owned());
        }
        if self.columns.currency.is_none() {
            match self.currency.as_deref() {
                None => {
                    return Err("currency: needed when columns.currency is not given".to_owned());
                }
                Some(c) if currency_exponent(c).is_none() => {
                    return Err("currency: not an ISO 4217 currency code".to_owned());
                }
                Some(_) => {}
            }
        }
        if self.date_formats.is_empty() {
            return Err("date_formats: at least one format is needed".to_owned());
        }
        Ok(())
    }

    fn delimiter_byte(&self) -> u8 {
        u8::try_from(self.delimiter).unwrap_or(b';')
    }

    /// Opens the file at `path` (checking its encoding and header) and streams its rows.
    pub fn open(&self, path: &Path) -> Result<CsvStatementReader, FormatError> {
        let file = super::file_name(path);
        self.check(&file)?;
        let reader = CsvReader::open_with(path, self.encoding, self.delimiter_byte())
            .map_err(|e| open_error(&file, &e))?;
        CsvStatementReader::new(reader, self)
    }

    /// Streams the rows of `bytes` in memory (tests, small files); `file` names it.
    pub fn from_bytes(
        &self,
        file: &str,
        bytes: Vec<u8>,
    ) -> Result<CsvStatementReader, FormatError> {
        self.check(file)?;
        let reader = CsvReader::from_bytes(file, bytes, self.encoding, self.delimiter_byte())
            .map_err(|e| open_error(file, &e))?;
        CsvStatementReader::new(reader, self)
    }

    fn check(&self, file: &str) -> Result<(), FormatError> {
        self.validate().map_err(|reason| {
            FormatError::file(
                file,
                Location::whole_file(),
                None,
                format!("invalid csv statement config: {reason}"),
            )
        })
    }
}

/// A file-level error of the CSV reader, with its line when it has one.
fn open_error(file: &str, e: &FileDropError) -> FormatError {
    let line = match e {
        FileDropError::NotUtf8 { line, .. }
        | FileDropError::LooksLikeUtf8 { line, .. }
        | FileDropError::Undecodable { line, .. }
        | FileDropError::Header { line, .. } => *line,
        _ => 0,
    };
    // The file drop's messages already name the file and line; keep only the reason.
    let text = e.to_string();
    let reason = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, r)| r)
        .to_owned();
    FormatError::file(file, Location::line(line), None, reason)
}

/// Column indexes resolved against the header.
#[derive(Debug, Default)]
struct Bound {
    date: usize,
    amount: usize,
    currency: Option<usize>,
    direction: Option<usize>,
    account: Option<usize>,
    id: Option<usize>,
    value_date: Option<usize>,
    counterparty: Option<usize>,
    counterparty_inn: Option<usize>,
    counterparty_account: Option<usize>,
    counterparty_bic: Option<usize>,
    purpose: Option<usize>,
    status: Option<usize>,
    bank_reference: Option<usize>,
    customer_reference: Option<usize>,
    bank_transaction_code: Option<usize>,
}

/// The transactions of a statement CSV, read as they are asked for.
pub struct CsvStatementReader {
    file: String,
    rows: CsvReader,
    bound: Bound,
    config: Arc<CsvStatementConfig>,
    finished: bool,
}

impl std::fmt::Debug for CsvStatementReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvStatementReader")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl CsvStatementReader {
    fn new(rows: CsvReader, config: &CsvStatementConfig) -> Result<Self, FormatError> {
        let file = rows.file().to_owned();
        let headers = rows.headers();
        let find = |name: &str| -> Result<usize, FormatError> {
            headers
                .iter()
                .position(|h| h == name.trim())
                .ok_or_else(|| {
                    FormatError::file(
                        &file,
                        Location::line(1),
                        Some(name),
                        "column named in the config is not in the header",
                    )
                })
        };
        let opt = |name: &Option<String>| name.as_deref().map(find).transpose();
        let c = &config.columns;
        let bound = Bound {
            date: find(&c.date)?,
            amount: find(&c.amount)?,
            currency: opt(&c.currency)?,
            direction: opt(&c.direction)?,
            account: opt(&c.account)?,
            id: opt(&c.id)?,
            value_date: opt(&c.value_date)?,
            counterparty: opt(&c.counterparty)?,
            counterparty_inn: opt(&c.counterparty_inn)?,
            counterparty_account: opt(&c.counterparty_account)?,
            counterparty_bic: opt(&c.counterparty_bic)?,
            purpose: opt(&c.purpose)?,
            status: opt(&c.status)?,
            bank_reference: opt(&c.bank_reference)?,
            customer_reference: opt(&c.customer_reference)?,
            bank_transaction_code: opt(&c.bank_transaction_code)?,
        };
        Ok(CsvStatementReader {
            file,
            rows,
            bound,
            config: Arc::new(config.clone()),
            finished: false,
        })
    }

    fn transaction(&self, row: &Row) -> Result<Transaction, (String, String)> {
        let c = &self.config.columns;
        let b = &self.bound;
        let cell = |i: Option<usize>| {
            i.and_then(|i| row.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let owned = |i: Option<usize>| cell(i).map(str::to_owned);
        let name = |n: &Option<String>| n.clone().unwrap_or_default();
        let missing = |column: &str| (column.to_owned(), "empty".to_owned());

        let account = match b.account {
            Some(_) => owned(b.account).ok_or_else(|| missing(&name(&c.account)))?,
            None => self.config.account.clone().unwrap_or_default(),
        };
        let currency = match b.currency {
            Some(_) => owned(b.currency).ok_or_else(|| missing(&name(&c.currency)))?,
            None => self.config.currency.clone().unwrap_or_default(),
        };
        let currency_column = c.currency.as_deref().unwrap_or("currency");
        let exponent = currency_exponent(&currency).ok_or_else(|| {
            (
                currency_column.to_owned(),
                "not an ISO 4217 currency code".to_owned(),
            )
        })?;
        let amount_text = cell(Some(b.amount)).ok_or_else(|| missing(&c.amount))?;
        let signed =
            parse_amount(amount_text, exponent).map_err(|e| (c.amount.clone(), e.to_string()))?;
        let direction = match b.direction {
            Some(_) => {
                let column = name(&c.direction);
                let value = cell(b.direction).ok_or_else(|| missing(&column))?;
                let is = |list: &[String]| {
                    list.iter()
                        .any(|v| v.to_lowercase() == value.to_lowercase())
                };
                if is(&self.config.debit_values) {
                    Direction::Debit
                } else if is(&self.config.credit_values) {
                    Direction::Credit
                } else {
                    return Err((column, "is neither a debit nor a credit value".to_owned()));
                }
            }
            None if signed < 0 => Direction::Debit,
            None => Direction::Credit,
        };
        let date_text = cell(Some(b.date)).ok_or_else(|| missing(&c.date))?;
        let booked_at = self.date_time(date_text).ok_or_else(|| {
            (
                c.date.clone(),
                "not a date in any configured format".to_owned(),
            )
        })?;
        let value_date = match cell(b.value_date) {
            Some(v) => Some(
                self.date_time(v)
                    .ok_or_else(|| {
                        (
                            name(&c.value_date),
                            "not a date in any configured format".to_owned(),
                        )
                    })?
                    .date_naive(),
            ),
            None => None,
        };
        Ok(Transaction {
            source_id: owned(b.id).unwrap_or_else(|| format!("{}:{}", self.file, row.line)),
            account_source_id: account,
            amount_minor: signed
                .checked_abs()
                .ok_or_else(|| (c.amount.clone(), "amount is too large".to_owned()))?,
            currency,
            booked_at,
            direction,
            counterparty_name: owned(b.counterparty),
            counterparty_inn: owned(b.counterparty_inn),
            counterparty_account: owned(b.counterparty_account),
            purpose: owned(b.purpose),
            value_date,
            bank_reference: owned(b.bank_reference),
            customer_reference: owned(b.customer_reference),
            end_to_end_id: None,
            counterparty_bic: owned(b.counterparty_bic),
            counterparty_country: None,
            bank_transaction_code: owned(b.bank_transaction_code),
            status: owned(b.status),
        })
    }

    /// The first configured format that reads `text` (midnight UTC for a date).
    fn date_time(&self, text: &str) -> Option<DateTime<Utc>> {
        self.config.date_formats.iter().find_map(|f| {
            NaiveDateTime::parse_from_str(text, f)
                .map(|t| t.and_utc())
                .ok()
                .or_else(|| {
                    NaiveDate::parse_from_str(text, f)
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                        .map(|t| t.and_utc())
                })
        })
    }
}

impl Iterator for CsvStatementReader {
    type Item = ItemResult;

    fn next(&mut self) -> Option<ItemResult> {
        if self.finished {
            return None;
        }
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(e) => return Some(Err(self.row_error(e))),
        };
        let location = Location::line(row.line);
        Some(match self.transaction(&row) {
            Ok(t) => Ok(Item {
                location,
                record: Record::Transaction(t),
            }),
            Err((field, reason)) => Err(FormatError::record(
                &self.file,
                location,
                Some(&field),
                reason,
            )),
        })
    }
}

impl CsvStatementReader {
    fn row_error(&mut self, e: RowError) -> FormatError {
        let location = Location::line(e.line);
        match e.kind {
            // The parser stopped, or the file was cut short: nothing after this is reliable.
            RowErrorKind::Malformed { .. }
            | RowErrorKind::Truncated { .. }
            | RowErrorKind::UnterminatedQuote => {
                self.finished = true;
                FormatError::file(&self.file, location, None, e.reason())
            }
            _ => FormatError::record(&self.file, location, None, e.reason()),
        }
    }
}
