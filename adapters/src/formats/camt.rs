//! ISO 20022 bank-to-customer cash management messages: camt.053 (statement), camt.052
//! (account report) and camt.054 (debit/credit notification), any version.
//!
//! Contract:
//! - Elements are matched on local names, so every version namespace (`camt.053.001.02`
//!   to `.13` and later) reads the same. The message is the first child of a `Document`
//!   element (which may sit inside an envelope); any other message, such as a pain.001
//!   payment initiation or a pain.002 status report, is rejected with one
//!   [`File`](super::ErrorScope::File)-scope error naming it.
//! - The XML is pulled event by event with a reused buffer; what is held is the current
//!   element path, one statement's header, and one entry with its transaction details
//!   (at most [`MAX_TX_PER_ENTRY`] and [`MAX_ENTRY_BYTES`]). A single XML event larger than [`MAX_EVENT_BYTES`],
//!   nesting deeper than [`MAX_DEPTH`], a DTD, a non-UTF-8 encoding declaration, malformed
//!   XML and a file that ends inside an element are each one
//!   [`File`](super::ErrorScope::File)-scope error.
//! - Per statement (`Stmt`, `Rpt`, `Ntfctn`): an [`Account`] and a [`Statement`] record
//!   (before its first balance or transaction), a [`Balance`] per `Bal`, and a
//!   [`Transaction`] per entry (`Ntry`), or one per `NtryDtls/TxDtls` when an entry has
//!   several (each with its own amount; when none of them has an amount, one transaction
//!   for the entry with every detail's purpose). The counterparty is the debtor of a credit
//!   and the creditor of a debit. A bad entry or balance is one
//!   [`Record`](super::ErrorScope::Record)-scope error naming the element path with its
//!   index and the field; the others still come.
//! - Transaction ids are `{account}/{statement id}/{entry number}` with `/{detail number}`
//!   when an entry has several details: stable when the same file is read again.

use std::collections::VecDeque;
use std::io::{self, BufRead};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use mapping::{Account, Balance, Direction, Statement, Transaction};
use quick_xml::events::{BytesRef, BytesStart, Event};
use serde::{Deserialize, Serialize};

use super::number::{currency_exponent, parse_amount};
use super::{FormatError, Item, ItemResult, Location, Record};

/// The largest single XML event (a tag or a run of text), 4 MiB (checked every 64 KiB, so an
/// event may pass it by less than that). Real camt elements are a few hundred bytes; the
/// limit keeps one broken or hostile file from taking the memory.
pub const MAX_EVENT_BYTES: u64 = 4 << 20;

/// The deepest element nesting taken; camt messages nest about 12 deep.
pub const MAX_DEPTH: usize = 64;

/// The most transaction details one entry may carry (a batch booking); more is an error
/// for that entry, since they are held until the entry ends.
pub const MAX_TX_PER_ENTRY: usize = 10_000;

/// The most text one entry (with its details) may hold, 16 MiB.
pub const MAX_ENTRY_BYTES: usize = 16 << 20;

/// The longest text of one element; longer is an error for that record.
const MAX_TEXT_CHARS: usize = 64 * 1024;

/// Settings of the camt reader (none yet: every supported message and version is read the
/// same way).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CamtConfig {}

/// Which camt message the file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Report,
    Statement,
    Notification,
}

impl MessageKind {
    fn from_root(name: &str) -> Option<Self> {
        match name {
            "BkToCstmrAcctRpt" => Some(MessageKind::Report),
            "BkToCstmrStmt" => Some(MessageKind::Statement),
            "BkToCstmrDbtCdtNtfctn" => Some(MessageKind::Notification),
            _ => None,
        }
    }

    fn code(self) -> &'static str {
        match self {
            MessageKind::Report => "camt.052",
            MessageKind::Statement => "camt.053",
            MessageKind::Notification => "camt.054",
        }
    }

    /// The element of one statement, report or notification.
    fn part(self) -> &'static str {
        match self {
            MessageKind::Report => "Rpt",
            MessageKind::Statement => "Stmt",
            MessageKind::Notification => "Ntfctn",
        }
    }
}

/// What well-known non-statement messages are, for the rejection message.
fn describe_other_message(root: &str, namespace: Option<&str>) -> String {
    let known = match root {
        "CstmrCdtTrfInitn" => Some("pain.001 customer credit transfer initiation"),
        "CstmrPmtStsRpt" => Some("pain.002 payment status report"),
        "CstmrDrctDbtInitn" => Some("pain.008 direct debit initiation"),
        "FIToFICstmrCdtTrf" => Some("pacs.008 interbank credit transfer"),
        "FIToFIPmtStsRpt" => Some("pacs.002 interbank payment status report"),
        _ => None,
    };
    let what = match (known, namespace.and_then(message_id_of_namespace)) {
        (Some(k), _) => k.to_owned(),
        (None, Some(ns)) => ns,
        (None, None) => format!("message {root}"),
    };
    format!(
        "not a bank statement: the file is a {what}; only camt.052, camt.053 and camt.054 are read"
    )
}

/// `pain.001.001.03` from `urn:iso:std:iso:20022:tech:xsd:pain.001.001.03`.
fn message_id_of_namespace(ns: &str) -> Option<String> {
    let id = ns.rsplit(':').next()?;
    let ok = id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.');
    ok.then(|| id.to_owned())
}

/// An amount as written, with its currency attribute.
#[derive(Debug, Clone, Default)]
struct RawAmount {
    text: String,
    currency: Option<String>,
}

/// A party of a transaction detail.
#[derive(Debug, Clone, Default)]
struct PartyInfo {
    name: Option<String>,
    account: Option<String>,
    country: Option<String>,
    bic: Option<String>,
}

/// A bank transaction code: domain, family and sub-family, or a proprietary code.
#[derive(Debug, Clone, Default)]
struct TxCode {
    domain: Option<String>,
    family: Option<String>,
    sub_family: Option<String>,
    proprietary: Option<String>,
}

impl TxCode {
    fn take(&mut self, rel: &str, value: &str) -> bool {
        let slot = match rel {
            "/BkTxCd/Domn/Cd" => &mut self.domain,
            "/BkTxCd/Domn/Fmly/Cd" => &mut self.family,
            "/BkTxCd/Domn/Fmly/SubFmlyCd" => &mut self.sub_family,
            "/BkTxCd/Prtry/Cd" => &mut self.proprietary,
            _ => return false,
        };
        *slot = non_empty(value);
        true
    }

    fn render(&self) -> Option<String> {
        match (&self.domain, &self.family, &self.sub_family) {
            (Some(d), Some(f), Some(s)) => Some(format!("{d}/{f}/{s}")),
            (Some(d), Some(f), None) => Some(format!("{d}/{f}")),
            (Some(d), None, _) => Some(d.clone()),
            _ => self.proprietary.clone(),
        }
    }
}

/// One `TxDtls` being read.
#[derive(Debug, Clone, Default)]
struct TxState {
    base: usize,
    index: u64,
    amount: Option<RawAmount>,
    direction: Option<String>,
    end_to_end_id: Option<String>,
    bank_reference: Option<String>,
    debtor: PartyInfo,
    creditor: PartyInfo,
    unstructured: Vec<String>,
    structured_ref: Option<String>,
    additional: Option<String>,
    code: TxCode,
}

/// One `Ntry` being read.
#[derive(Debug, Default)]
struct EntryState {
    base: usize,
    line: u64,
    index: u64,
    amount: Option<RawAmount>,
    direction: Option<String>,
    status: Option<String>,
    booked: Option<String>,
    value: Option<String>,
    bank_reference: Option<String>,
    additional: Option<String>,
    code: TxCode,
    details: Vec<TxState>,
    detail: Option<TxState>,
    detail_count: u64,
    /// Bytes of text kept for the entry and its details.
    kept: usize,
    /// The first problem found while reading the entry (field, reason).
    problem: Option<(String, String)>,
}

/// One `Bal` being read.
#[derive(Debug, Default)]
struct BalanceState {
    base: usize,
    line: u64,
    index: u64,
    kind: Option<String>,
    amount: Option<RawAmount>,
    direction: Option<String>,
    date: Option<String>,
    problem: Option<(String, String)>,
}

/// One statement, report or notification being read.
#[derive(Debug, Default)]
struct PartState {
    base: usize,
    line: u64,
    index: u64,
    id: Option<String>,
    sequence: Option<String>,
    legal_sequence: Option<String>,
    created: Option<String>,
    from: Option<String>,
    to: Option<String>,
    account_id: Option<String>,
    currency: Option<String>,
    owner: Option<String>,
    servicer_bic: Option<String>,
    header_sent: bool,
    header_failed: bool,
    balance: Option<BalanceState>,
    balance_count: u64,
    entry: Option<EntryState>,
    entry_count: u64,
}

/// The message found in the file.
#[derive(Debug)]
struct Message {
    kind: MessageKind,
    /// The element path of the message root, such as `Document/BkToCstmrStmt`.
    prefix: String,
    /// The path length (in bytes of `path`) of the message root.
    base: usize,
}

/// The records of a camt file, read as they are asked for.
pub struct CamtReader<R: BufRead> {
    file: String,
    xml: quick_xml::Reader<Metered<R>>,
    buf: Vec<u8>,
    /// The current element path, `/`-joined local names with a leading `/`.
    path: String,
    /// The length of `path` before each open element.
    marks: Vec<usize>,
    text: String,
    text_problem: Option<&'static str>,
    currency_attr: Option<String>,
    document_namespace: Option<String>,
    document_depth: Option<usize>,
    message: Option<Message>,
    message_seen: bool,
    part: Option<PartState>,
    part_count: u64,
    last_account: Option<String>,
    out: VecDeque<ItemResult>,
    finished: bool,
}

impl<R: BufRead> CamtReader<R> {
    /// Reads `source`; `file` names it in messages.
    pub fn new(file: &str, source: R, _config: &CamtConfig) -> Self {
        let mut xml = quick_xml::Reader::from_reader(Metered::new(source));
        let config = xml.config_mut();
        config.expand_empty_elements = true;
        config.trim_text(true);
        CamtReader {
            file: file.to_owned(),
            xml,
            buf: Vec::with_capacity(4096),
            path: String::new(),
            marks: Vec::new(),
            text: String::new(),
            text_problem: None,
            currency_attr: None,
            document_namespace: None,
            document_depth: None,
            message: None,
            message_seen: false,
            part: None,
            part_count: 0,
            last_account: None,
            out: VecDeque::new(),
            finished: false,
        }
    }

    fn line(&self) -> u64 {
        self.xml.get_ref().line()
    }

    fn fatal(&mut self, field: Option<&str>, reason: impl Into<String>) {
        let location = self.current_location();
        self.out
            .push_back(Err(FormatError::file(&self.file, location, field, reason)));
        self.finished = true;
    }

    /// The element path of the innermost open element, for file-level errors.
    fn current_location(&self) -> Location {
        let path = self.path.trim_start_matches('/');
        if path.is_empty() {
            Location::line(self.line())
        } else {
            Location::element(self.line(), path)
        }
    }

    /// Reads events until there is something to hand out or the file ends.
    fn pump(&mut self) {
        while self.out.is_empty() && !self.finished {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            self.xml.get_mut().reset_event();
            match self.xml.read_event_into(&mut buf) {
                Ok(event) => self.on_event(event),
                Err(e) => {
                    let reason = describe_xml_error(&e, self.xml.get_ref().over_limit());
                    self.fatal(None, reason);
                }
            }
            self.buf = buf;
        }
    }

    fn on_event(&mut self, event: Event<'_>) {
        match event {
            Event::Start(start) => self.on_start(&start),
            Event::End(_) => self.on_end(),
            Event::Text(t) => match t.decode() {
                Ok(s) => self.push_text(&s),
                Err(_) => self.text_problem = Some("not valid utf-8"),
            },
            Event::CData(c) => match c.decode() {
                Ok(s) => self.push_text(&s),
                Err(_) => self.text_problem = Some("not valid utf-8"),
            },
            Event::GeneralRef(r) => self.on_reference(&r),
            Event::Decl(decl) => {
                if let Some(Ok(enc)) = decl.encoding() {
                    let enc = String::from_utf8_lossy(&enc).to_ascii_lowercase();
                    if enc != "utf-8" && enc != "utf8" {
                        self.fatal(
                            None,
                            "the xml declaration names an encoding other than utf-8; \
                             iso 20022 files are utf-8",
                        );
                    }
                }
            }
            Event::DocType(_) => {
                self.fatal(None, "a document type declaration (DTD) is not allowed");
            }
            Event::Eof => self.on_eof(),
            Event::Empty(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }

    fn push_text(&mut self, s: &str) {
        if self.text.len() + s.len() > MAX_TEXT_CHARS {
            self.text_problem = Some("text is longer than 64 KiB");
            return;
        }
        self.text.push_str(s);
    }

    fn on_reference(&mut self, r: &BytesRef<'_>) {
        match r.resolve_char_ref() {
            Ok(Some(c)) => {
                let mut tmp = [0u8; 4];
                self.push_text(c.encode_utf8(&mut tmp));
            }
            Ok(None) => {
                let name = r.decode().unwrap_or_default();
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => self.push_text(s),
                    None => self.text_problem = Some("unknown entity reference"),
                }
            }
            Err(_) => self.text_problem = Some("bad character reference"),
        }
    }

    fn on_start(&mut self, start: &BytesStart<'_>) {
        if self.marks.len() >= MAX_DEPTH {
            self.fatal(None, format!("elements nest deeper than {MAX_DEPTH}"));
            return;
        }
        let local = start.local_name();
        let Ok(name) = std::str::from_utf8(local.as_ref()) else {
            self.fatal(None, "an element name is not valid utf-8");
            return;
        };
        self.marks.push(self.path.len());
        self.path.push('/');
        self.path.push_str(name);
        self.text.clear();
        self.text_problem = None;
        self.currency_attr = None;
        let depth = self.marks.len();

        if name == "Amt" {
            self.currency_attr = attribute(start, b"Ccy");
        }
        if self.message.is_none() {
            self.find_message(start, name, depth);
            return;
        }
        self.open_element();
    }

    /// Before the message root: looks for `Document` and its first child.
    fn find_message(&mut self, start: &BytesStart<'_>, name: &str, depth: usize) {
        if self.document_depth.is_none() {
            if name == "Document" {
                self.document_depth = Some(depth);
                self.document_namespace = attribute(start, b"xmlns");
            }
            return;
        }
        if self.document_depth.map(|d| d + 1) != Some(depth) {
            return;
        }
        match MessageKind::from_root(name) {
            Some(kind) => {
                self.message_seen = true;
                self.message = Some(Message {
                    kind,
                    prefix: self.path.trim_start_matches('/').to_owned(),
                    base: self.path.len(),
                });
            }
            None => {
                let reason = describe_other_message(name, self.document_namespace.as_deref());
                self.fatal(None, reason);
            }
        }
    }

    /// Opens the statement, balance, entry or detail context an element starts.
    fn open_element(&mut self) {
        let line = self.line();
        let path_len = self.path.len();
        let Some(message) = &self.message else { return };
        let rel_to_message = self.path.get(message.base..).unwrap_or_default();
        if self.part.is_none() {
            if rel_to_message.strip_prefix('/') == Some(message.kind.part()) {
                self.part_count += 1;
                self.part = Some(PartState {
                    base: path_len,
                    line,
                    index: self.part_count,
                    ..PartState::default()
                });
            }
            return;
        }
        let Some(part) = self.part.as_mut() else {
            return;
        };
        let rel = self.path.get(part.base..).unwrap_or_default();
        if let Some(entry) = part.entry.as_mut() {
            if entry.detail.is_none()
                && rel.get(entry.base - part.base..) == Some("/NtryDtls/TxDtls")
            {
                entry.detail_count += 1;
                entry.detail = Some(TxState {
                    base: path_len,
                    index: entry.detail_count,
                    ..TxState::default()
                });
            }
            return;
        }
        if part.balance.is_some() {
            return;
        }
        match rel {
            "/Bal" => {
                part.balance_count += 1;
                part.balance = Some(BalanceState {
                    base: path_len,
                    line,
                    index: part.balance_count,
                    ..BalanceState::default()
                });
            }
            "/Ntry" => {
                part.entry_count += 1;
                part.entry = Some(EntryState {
                    base: path_len,
                    line,
                    index: part.entry_count,
                    ..EntryState::default()
                });
            }
            _ => {}
        }
    }

    fn on_end(&mut self) {
        // Taken out and put back, so the buffer is reused without a copy.
        let mut text = std::mem::take(&mut self.text);
        let problem = self.text_problem.take();
        let currency = self.currency_attr.take();
        if self.message.is_some() {
            self.close_element(text.trim(), problem, currency);
        }
        text.clear();
        self.text = text;
        if let Some(mark) = self.marks.pop() {
            // Leaving the message root ends the message.
            if self
                .message
                .as_ref()
                .is_some_and(|m| m.base == self.path.len())
            {
                self.message = None;
                self.document_depth = None;
            }
            self.path.truncate(mark);
        }
    }

    /// Takes the value of a closing element into the open context, or finishes the
    /// context the element is.
    fn close_element(
        &mut self,
        value: &str,
        problem: Option<&'static str>,
        currency: Option<String>,
    ) {
        let path_len = self.path.len();
        let Some(part) = self.part.as_mut() else {
            return;
        };
        // Every context ends at its own element; an empty leaf says nothing, and a parent's
        // (empty) text must not overwrite what its children gave (`Sts` after `Sts/Cd`).
        let ends_context = path_len == part.base
            || part.entry.as_ref().is_some_and(|e| {
                e.base == path_len || e.detail.as_ref().is_some_and(|d| d.base == path_len)
            })
            || part.balance.as_ref().is_some_and(|b| b.base == path_len);
        if value.is_empty() && problem.is_none() && !ends_context {
            return;
        }
        let rel = self.path.get(part.base..).unwrap_or_default();

        if let Some(entry) = part.entry.as_mut() {
            let entry_rel = rel.get(entry.base - part.base..).unwrap_or_default();
            if let Some(detail) = entry.detail.as_mut() {
                if path_len == detail.base {
                    if let Some(detail) = entry.detail.take() {
                        if entry.details.len() < MAX_TX_PER_ENTRY {
                            entry.details.push(detail);
                        } else if entry.problem.is_none() {
                            entry.problem = Some((
                                "NtryDtls/TxDtls".to_owned(),
                                format!(
                                    "entry has more than {MAX_TX_PER_ENTRY} transaction details"
                                ),
                            ));
                        }
                    }
                    return;
                }
                let detail_rel = self.path.get(detail.base..).unwrap_or_default();
                if let Some(reason) = problem {
                    if entry.problem.is_none() {
                        entry.problem = Some((
                            format!("NtryDtls/TxDtls[{}]{}", detail.index, detail_rel),
                            reason.to_owned(),
                        ));
                    }
                    return;
                }
                if keep(&mut entry.kept, value, &mut entry.problem) {
                    take_detail_field(detail, detail_rel, value, currency);
                }
                return;
            }
            if path_len == entry.base {
                let (index, line) = (entry.index, entry.line);
                let location = self.part_location(entry_location_suffix(index), line);
                self.finish_entry(location);
                return;
            }
            if let Some(reason) = problem {
                if entry.problem.is_none() {
                    entry.problem = Some((
                        entry_rel.trim_start_matches('/').to_owned(),
                        reason.to_owned(),
                    ));
                }
                return;
            }
            if keep(&mut entry.kept, value, &mut entry.problem) {
                take_entry_field(entry, entry_rel, value, currency);
            }
            return;
        }

        if let Some(balance) = part.balance.as_mut() {
            if path_len == balance.base {
                let (index, line) = (balance.index, balance.line);
                let location = self.part_location(format!("/Bal[{index}]"), line);
                self.finish_balance(location);
                return;
            }
            let bal_rel = rel.get(balance.base - part.base..).unwrap_or_default();
            if let Some(reason) = problem {
                if balance.problem.is_none() {
                    balance.problem = Some((
                        bal_rel.trim_start_matches('/').to_owned(),
                        reason.to_owned(),
                    ));
                }
                return;
            }
            match bal_rel {
                "/Tp/CdOrPrtry/Cd" | "/Tp/CdOrPrtry/Prtry" => balance.kind = non_empty(value),
                "/Amt" => {
                    balance.amount = Some(RawAmount {
                        text: value.to_owned(),
                        currency,
                    })
                }
                "/CdtDbtInd" => balance.direction = non_empty(value),
                "/Dt/Dt" | "/Dt/DtTm" => balance.date = non_empty(value),
                _ => {}
            }
            return;
        }

        if path_len == part.base {
            self.finish_part();
            return;
        }
        if problem.is_some() {
            // A header field that cannot be read is treated as absent; the records that
            // need it report it.
            return;
        }
        match rel {
            "/Id" => part.id = non_empty(value),
            "/ElctrncSeqNb" => part.sequence = non_empty(value),
            "/LglSeqNb" => part.legal_sequence = non_empty(value),
            "/CreDtTm" => part.created = non_empty(value),
            "/FrToDt/FrDtTm" => part.from = non_empty(value),
            "/FrToDt/ToDtTm" => part.to = non_empty(value),
            "/Acct/Id/IBAN" | "/Acct/Id/Othr/Id" => part.account_id = non_empty(value),
            "/Acct/Ccy" => part.currency = non_empty(value),
            "/Acct/Ownr/Nm" => part.owner = non_empty(value),
            "/Acct/Svcr/FinInstnId/BIC" | "/Acct/Svcr/FinInstnId/BICFI" => {
                part.servicer_bic = non_empty(value)
            }
            _ => {}
        }
    }

    /// The location of a balance or entry: the part's element path plus `suffix`.
    fn part_location(&self, suffix: String, line: u64) -> Location {
        let (prefix, part_name) = match &self.message {
            Some(m) => (m.prefix.as_str(), m.kind.part()),
            None => ("", ""),
        };
        let index = self.part.as_ref().map_or(0, |p| p.index);
        Location::element(line, format!("{prefix}/{part_name}[{index}]{suffix}"))
    }

    /// Emits the account and statement records once, before the part's first balance or
    /// transaction (or at its end when it has neither). `currency` is the fallback when the
    /// account has none.
    fn send_header(&mut self, currency: Option<&str>) -> bool {
        let Some(message) = &self.message else {
            return false;
        };
        let kind = message.kind;
        let location = self.part_location(String::new(), self.part.as_ref().map_or(0, |p| p.line));
        let Some(part) = self.part.as_mut() else {
            return false;
        };
        if part.header_sent {
            return !part.header_failed;
        }
        part.header_sent = true;
        let Some(account_id) = part.account_id.clone() else {
            part.header_failed = true;
            self.out.push_back(Err(FormatError::record(
                &self.file,
                location,
                Some("Acct/Id"),
                "statement has no account id (IBAN or Othr/Id); its records are skipped",
            )));
            return false;
        };
        let statement_id = part
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{}", kind.code(), part.index));
        let currency = part
            .currency
            .clone()
            .or_else(|| currency.map(str::to_owned))
            .unwrap_or_default();
        if self.last_account.as_deref() != Some(account_id.as_str()) {
            self.last_account = Some(account_id.clone());
            self.out.push_back(Ok(Item {
                location: location.clone(),
                record: Record::Account(Account {
                    source_id: account_id.clone(),
                    number: account_id.clone(),
                    currency,
                    owner_name: part.owner.clone(),
                    servicer_bic: part.servicer_bic.clone(),
                    ..Account::default()
                }),
            }));
        }
        let created_at = part.created.as_deref().and_then(parse_date_time);
        let from_date = part.from.as_deref().and_then(parse_date_or_time);
        let to_date = part.to.as_deref().and_then(parse_date_or_time);
        self.out.push_back(Ok(Item {
            location,
            record: Record::Statement(Statement {
                source_id: statement_id,
                account_source_id: account_id,
                kind: kind.code().to_owned(),
                sequence: part
                    .sequence
                    .clone()
                    .or_else(|| part.legal_sequence.clone()),
                created_at,
                from_date,
                to_date,
            }),
        }));
        true
    }

    fn part_ids(&self) -> (String, String) {
        let kind = self.message.as_ref().map_or("camt", |m| m.kind.code());
        match &self.part {
            Some(p) => (
                p.account_id.clone().unwrap_or_default(),
                p.id.clone()
                    .unwrap_or_else(|| format!("{kind}-{}", p.index)),
            ),
            None => (String::new(), String::new()),
        }
    }

    fn finish_balance(&mut self, location: Location) {
        let Some(balance) = self.part.as_mut().and_then(|p| p.balance.take()) else {
            return;
        };
        let currency = balance.amount.as_ref().and_then(|a| a.currency.clone());
        if !self.send_header(currency.as_deref()) {
            return;
        }
        let (account, statement) = self.part_ids();
        let result = build_balance(balance, account, statement)
            .map(|b| Item {
                location: location.clone(),
                record: Record::Balance(b),
            })
            .map_err(|(field, reason)| {
                FormatError::record(&self.file, location, Some(&field), reason)
            });
        self.out.push_back(result);
    }

    fn finish_entry(&mut self, location: Location) {
        let Some(entry) = self.part.as_mut().and_then(|p| p.entry.take()) else {
            return;
        };
        let currency = entry.amount.as_ref().and_then(|a| a.currency.clone());
        if !self.send_header(currency.as_deref()) {
            return;
        }
        let (account, statement) = self.part_ids();
        for result in build_transactions(entry, &account, &statement) {
            self.out.push_back(
                result
                    .map(|t| Item {
                        location: location.clone(),
                        record: Record::Transaction(t),
                    })
                    .map_err(|(field, reason)| {
                        FormatError::record(&self.file, location.clone(), Some(&field), reason)
                    }),
            );
        }
    }

    fn finish_part(&mut self) {
        self.send_header(None);
        self.part = None;
    }

    fn on_eof(&mut self) {
        self.finished = true;
        if !self.marks.is_empty() {
            let location = self.current_location();
            self.out.push_back(Err(FormatError::file(
                &self.file,
                location,
                None,
                "the file ends inside this element; it looks truncated",
            )));
            return;
        }
        if !self.message_seen {
            self.out.push_back(Err(FormatError::file(
                &self.file,
                Location::line(self.line()),
                None,
                "no ISO 20022 Document element with a camt.052, camt.053 or camt.054 message",
            )));
        }
    }
}

impl<R: BufRead> Iterator for CamtReader<R> {
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

/// Counts `value` against [`MAX_ENTRY_BYTES`]; false (and the entry's problem) once an
/// entry holds more, so that a batch entry cannot take the memory.
fn keep(kept: &mut usize, value: &str, problem: &mut Option<(String, String)>) -> bool {
    *kept = kept.saturating_add(value.len());
    if *kept <= MAX_ENTRY_BYTES {
        return true;
    }
    if problem.is_none() {
        *problem = Some((
            "NtryDtls".to_owned(),
            format!(
                "entry holds more than {} MiB of text",
                MAX_ENTRY_BYTES >> 20
            ),
        ));
    }
    false
}

fn entry_location_suffix(index: u64) -> String {
    format!("/Ntry[{index}]")
}

fn take_entry_field(entry: &mut EntryState, rel: &str, value: &str, currency: Option<String>) {
    if entry.code.take(rel, value) {
        return;
    }
    match rel {
        "/Amt" => {
            entry.amount = Some(RawAmount {
                text: value.to_owned(),
                currency,
            })
        }
        "/CdtDbtInd" => entry.direction = non_empty(value),
        "/Sts" | "/Sts/Cd" | "/Sts/Prtry" => entry.status = non_empty(value),
        "/BookgDt/Dt" | "/BookgDt/DtTm" => entry.booked = non_empty(value),
        "/ValDt/Dt" | "/ValDt/DtTm" => entry.value = non_empty(value),
        "/AcctSvcrRef" => entry.bank_reference = non_empty(value),
        "/AddtlNtryInf" => entry.additional = non_empty(value),
        _ => {}
    }
}

fn take_detail_field(tx: &mut TxState, rel: &str, value: &str, currency: Option<String>) {
    if tx.code.take(rel, value) {
        return;
    }
    match rel {
        "/Amt" | "/AmtDtls/TxAmt/Amt" => {
            // `Amt` (version 3 on) wins over the older `AmtDtls/TxAmt/Amt`.
            if rel == "/Amt" || tx.amount.is_none() {
                tx.amount = Some(RawAmount {
                    text: value.to_owned(),
                    currency,
                });
            }
        }
        "/CdtDbtInd" => tx.direction = non_empty(value),
        "/Refs/EndToEndId" => {
            tx.end_to_end_id = non_empty(value).filter(|v| v != "NOTPROVIDED");
        }
        "/Refs/AcctSvcrRef" => tx.bank_reference = non_empty(value),
        "/RmtInf/Ustrd" => {
            if let Some(v) = non_empty(value) {
                tx.unstructured.push(v);
            }
        }
        "/RmtInf/Strd/CdtrRefInf/Ref" => tx.structured_ref = non_empty(value),
        "/AddtlTxInf" => tx.additional = non_empty(value),
        _ => {
            if let Some(rest) = rel.strip_prefix("/RltdPties/") {
                take_party_field(tx, rest, value);
            } else if let Some(rest) = rel.strip_prefix("/RltdAgts/") {
                match rest {
                    "DbtrAgt/FinInstnId/BIC" | "DbtrAgt/FinInstnId/BICFI" => {
                        tx.debtor.bic = non_empty(value)
                    }
                    "CdtrAgt/FinInstnId/BIC" | "CdtrAgt/FinInstnId/BICFI" => {
                        tx.creditor.bic = non_empty(value)
                    }
                    _ => {}
                }
            }
        }
    }
}

/// `RltdPties/...`: names, countries and accounts of debtor and creditor, in the version 2
/// (`Dbtr/Nm`) and version 8 (`Dbtr/Pty/Nm`) shapes.
fn take_party_field(tx: &mut TxState, rest: &str, value: &str) {
    let (party, field) = if let Some(f) = rest.strip_prefix("Dbtr/") {
        (&mut tx.debtor, f)
    } else if let Some(f) = rest.strip_prefix("Cdtr/") {
        (&mut tx.creditor, f)
    } else if let Some(f) = rest.strip_prefix("DbtrAcct/") {
        if matches!(f, "Id/IBAN" | "Id/Othr/Id") {
            tx.debtor.account = non_empty(value);
        }
        return;
    } else if let Some(f) = rest.strip_prefix("CdtrAcct/") {
        if matches!(f, "Id/IBAN" | "Id/Othr/Id") {
            tx.creditor.account = non_empty(value);
        }
        return;
    } else {
        return;
    };
    let field = field.strip_prefix("Pty/").unwrap_or(field);
    match field {
        "Nm" => party.name = non_empty(value),
        "PstlAdr/Ctry" => party.country = non_empty(value),
        _ => {}
    }
}

type FieldProblem = (String, String);

fn build_balance(
    balance: BalanceState,
    account: String,
    statement: String,
) -> Result<Balance, FieldProblem> {
    if let Some(problem) = balance.problem {
        return Err(problem);
    }
    let kind = balance.kind.ok_or_else(|| missing("Tp/CdOrPrtry/Cd"))?;
    let raw = balance.amount.ok_or_else(|| missing("Amt"))?;
    let (magnitude, currency) = amount_of(&raw, "Amt")?;
    let direction = direction_of(balance.direction.as_deref(), "CdtDbtInd")?;
    let date_text = balance.date.ok_or_else(|| missing("Dt"))?;
    let date =
        parse_date_or_time(&date_text).ok_or_else(|| ("Dt".to_owned(), "not a date".to_owned()))?;
    Ok(Balance {
        account_source_id: account,
        statement_source_id: Some(statement),
        kind,
        amount_minor: match direction {
            Direction::Credit => magnitude,
            Direction::Debit => -magnitude,
        },
        currency,
        date,
    })
}

/// The transactions of one entry: one, or one per transaction detail when it has several.
fn build_transactions(
    entry: EntryState,
    account: &str,
    statement: &str,
) -> Vec<Result<Transaction, FieldProblem>> {
    if let Some(problem) = entry.problem {
        return vec![Err(problem)];
    }
    let base = match entry_base(&entry, account, statement) {
        Ok(b) => b,
        Err(p) => return vec![Err(p)],
    };
    let amounts = entry.details.iter().filter(|d| d.amount.is_some()).count();
    match entry.details.len() {
        0 => vec![Ok(base)],
        1 => {
            let detail = entry.details.into_iter().next().unwrap_or_default();
            vec![Ok(apply_detail(base, &detail))]
        }
        // Several details none of which has an amount cannot be split: one transaction for
        // the entry, described by its first detail, with every detail's purpose.
        _ if amounts == 0 => {
            let purposes: Vec<String> = entry.details.iter().filter_map(purpose_of).collect();
            let first = entry.details.first().cloned().unwrap_or_default();
            let mut t = apply_detail(base, &first);
            if !purposes.is_empty() {
                t.purpose = Some(purposes.join("\n"));
            }
            vec![Ok(t)]
        }
        _ => entry
            .details
            .iter()
            .map(|detail| {
                let field = |f: &str| format!("NtryDtls/TxDtls[{}]/{f}", detail.index);
                let raw = detail.amount.as_ref().ok_or_else(|| {
                    (
                        field("Amt"),
                        "entry has several transaction details and this one has no amount"
                            .to_owned(),
                    )
                })?;
                let (amount, currency) = amount_of(raw, &field("Amt"))?;
                let direction = match detail.direction.as_deref() {
                    Some(d) => direction_of(Some(d), &field("CdtDbtInd"))?,
                    None => base.direction,
                };
                let mut t = Transaction {
                    source_id: format!("{}/{}", base.source_id, detail.index),
                    amount_minor: amount,
                    currency,
                    direction,
                    ..base.clone()
                };
                t = apply_detail(t, detail);
                Ok(t)
            })
            .collect(),
    }
}

/// The transaction as the entry alone describes it.
fn entry_base(
    entry: &EntryState,
    account: &str,
    statement: &str,
) -> Result<Transaction, FieldProblem> {
    let raw = entry.amount.as_ref().ok_or_else(|| missing("Amt"))?;
    let (amount, currency) = amount_of(raw, "Amt")?;
    let direction = direction_of(entry.direction.as_deref(), "CdtDbtInd")?;
    let value_date = match &entry.value {
        Some(v) => Some(
            parse_date_or_time(v).ok_or_else(|| ("ValDt".to_owned(), "not a date".to_owned()))?,
        ),
        None => None,
    };
    let booked_at = match &entry.booked {
        Some(b) => parse_date_time(b)
            .ok_or_else(|| ("BookgDt".to_owned(), "not a date or date-time".to_owned()))?,
        None => match value_date {
            Some(d) => midnight(d),
            None => return Err(missing("BookgDt")),
        },
    };
    Ok(Transaction {
        source_id: format!("{account}/{statement}/{}", entry.index),
        account_source_id: account.to_owned(),
        amount_minor: amount,
        currency,
        booked_at,
        direction,
        counterparty_name: None,
        counterparty_inn: None,
        counterparty_account: None,
        purpose: entry.additional.clone(),
        value_date,
        bank_reference: entry.bank_reference.clone(),
        customer_reference: None,
        end_to_end_id: None,
        counterparty_bic: None,
        counterparty_country: None,
        bank_transaction_code: entry.code.render(),
        status: entry.status.clone(),
    })
}

/// Adds what a transaction detail says: references, the counterparty, the purpose.
fn apply_detail(mut t: Transaction, detail: &TxState) -> Transaction {
    let party = match t.direction {
        Direction::Credit => &detail.debtor,
        Direction::Debit => &detail.creditor,
    };
    t.counterparty_name = party.name.clone();
    t.counterparty_account = party.account.clone();
    t.counterparty_bic = party.bic.clone();
    t.counterparty_country = party.country.clone();
    t.end_to_end_id = detail.end_to_end_id.clone();
    if detail.bank_reference.is_some() {
        t.bank_reference = detail.bank_reference.clone();
    }
    if let Some(code) = detail.code.render() {
        t.bank_transaction_code = Some(code);
    }
    if let Some(purpose) = purpose_of(detail) {
        t.purpose = Some(purpose);
    }
    t
}

/// The unstructured remittance lines, else the structured creditor reference, else the
/// additional information.
fn purpose_of(detail: &TxState) -> Option<String> {
    if detail.unstructured.is_empty() {
        detail
            .structured_ref
            .clone()
            .or_else(|| detail.additional.clone())
    } else {
        Some(detail.unstructured.join(" "))
    }
}

fn missing(field: &str) -> FieldProblem {
    (field.to_owned(), "missing".to_owned())
}

/// A non-negative decimal amount with its currency, in minor units.
fn amount_of(raw: &RawAmount, field: &str) -> Result<(i64, String), FieldProblem> {
    let currency = raw.currency.clone().ok_or_else(|| {
        (
            format!("{field}@Ccy"),
            "missing currency attribute".to_owned(),
        )
    })?;
    let exponent = currency_exponent(&currency).ok_or_else(|| {
        (
            format!("{field}@Ccy"),
            "not an ISO 4217 currency code".to_owned(),
        )
    })?;
    // xs:decimal: digits with at most one point; the lenient parser takes the rest.
    if raw.text.is_empty() || !raw.text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err((
            field.to_owned(),
            "not a non-negative decimal amount".to_owned(),
        ));
    }
    let value = parse_amount(&raw.text, exponent).map_err(|e| (field.to_owned(), e.to_string()))?;
    Ok((value, currency))
}

fn direction_of(value: Option<&str>, field: &str) -> Result<Direction, FieldProblem> {
    match value {
        Some("CRDT") => Ok(Direction::Credit),
        Some("DBIT") => Ok(Direction::Debit),
        Some(_) => Err((field.to_owned(), "must be CRDT or DBIT".to_owned())),
        None => Err(missing(field)),
    }
}

fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// `2014-12-30`, `2014-12-30+01:00`, `2014-12-30Z`, or a date-time (its date).
fn parse_date_or_time(text: &str) -> Option<NaiveDate> {
    let head = text.get(..10)?;
    let date = NaiveDate::parse_from_str(head, "%Y-%m-%d").ok()?;
    let rest = text.get(10..)?;
    let ok = rest.is_empty()
        || rest == "Z"
        || rest.starts_with('T')
        || ((rest.starts_with('+') || rest.starts_with('-')) && rest.len() == 6);
    ok.then_some(date)
}

/// An ISO date-time with or without offset (without is taken as UTC), or a date (midnight
/// UTC).
fn parse_date_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if text.len() <= 16 {
        return parse_date_or_time(text).map(midnight);
    }
    None
}

/// The value of attribute `name` (local name), unescaped.
fn attribute(start: &BytesStart<'_>, name: &[u8]) -> Option<String> {
    start
        .attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name || a.key.as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// The parser's complaint in words that carry no content of the file.
fn describe_xml_error(e: &quick_xml::Error, over_limit: bool) -> String {
    use quick_xml::Error as E;
    match e {
        E::Io(_) if over_limit => {
            format!(
                "an xml element or text is larger than {} MiB",
                MAX_EVENT_BYTES >> 20
            )
        }
        E::Io(io) => format!("read failed: {}", io.kind()),
        E::Syntax(s) => format!("malformed xml: {s}"),
        E::IllFormed(i) => format!("malformed xml: {i}"),
        E::InvalidAttr(_) => "malformed xml: bad attribute".to_owned(),
        E::Encoding(_) => "not valid utf-8".to_owned(),
        E::Escape(_) => "malformed xml: bad escape".to_owned(),
        E::Namespace(_) => "malformed xml: bad namespace".to_owned(),
    }
}

/// The source as the XML parser reads it: counts line feeds for locations and refuses to
/// hand out more than [`MAX_EVENT_BYTES`] for one event.
struct Metered<R> {
    inner: R,
    line_feeds: u64,
    since_event: u64,
    over_limit: bool,
}

impl<R> Metered<R> {
    fn new(inner: R) -> Self {
        Metered {
            inner,
            line_feeds: 0,
            since_event: 0,
            over_limit: false,
        }
    }

    fn reset_event(&mut self) {
        self.since_event = 0;
    }

    fn line(&self) -> u64 {
        self.line_feeds + 1
    }

    fn over_limit(&self) -> bool {
        self.over_limit
    }
}

impl<R: BufRead> io::Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Metered<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.since_event > MAX_EVENT_BYTES {
            self.over_limit = true;
            return Err(io::Error::other("xml event too large"));
        }
        // At most 64 KiB at a time, so that the limit is checked within a long event even
        // when the source holds everything in memory.
        let available = self.inner.fill_buf()?;
        Ok(available
            .get(..available.len().min(64 * 1024))
            .unwrap_or(available))
    }

    fn consume(&mut self, amt: usize) {
        // The parser consumes only what `fill_buf` handed it, so this reads nothing new.
        if amt > 0
            && let Ok(available) = self.inner.fill_buf()
            && let Some(used) = available.get(..amt)
        {
            self.line_feeds += memchr::memchr_iter(b'\n', used).count() as u64;
        }
        self.since_event += amt as u64;
        self.inner.consume(amt);
    }
}
