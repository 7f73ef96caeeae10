//! Walking one pass through the upstream's pages, and the cursor it leaves behind.
//!
//! A pass starts at the persisted cursor and asks for records whose cursor field is at or
//! after it (`>=`: records sharing the boundary value are read again rather than lost).
//! The upstream must order records by the cursor field; then, after any page, every record
//! not yet read has a cursor value at or after the largest one seen, which is therefore the
//! position to persist — once the page's records are durable.
//!
//! With page numbers or offsets the walk is keyset-style: after a full page the next request
//! asks again from the largest value seen, page one, instead of "page + 1" of the original
//! query, so records that change during the pass (and move to the end of the order) cannot
//! shift an unread record onto a page already read. Only when a whole page shares one
//! cursor value does the walk step to the next page of the same value. With cursor tokens
//! and Link headers the upstream leads; the hub sends its cursor on the first request only.
//!
//! Records read twice by the `>=` boundary (or repeated by the upstream on two consecutive
//! pages) are recognised by the SHA-256 of their JSON and dropped from the later page.

use std::collections::HashSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::config::{CursorKind, PaginationConfig};
use super::error::RestPollError;
use super::path::JsonPath;

/// A position in the upstream's change order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CursorValue {
    /// A change timestamp.
    Time(DateTime<Utc>),
    /// A change sequence number.
    Seq(i64),
}

impl CursorValue {
    /// The start of time for `kind`: the epoch, or sequence 0.
    pub fn origin(kind: CursorKind) -> CursorValue {
        match kind {
            CursorKind::UpdatedSince => CursorValue::Time(DateTime::<Utc>::UNIX_EPOCH),
            CursorKind::Sequence => CursorValue::Seq(0),
        }
    }

    /// Parses a persisted or configured cursor.
    pub fn parse(kind: CursorKind, text: &str) -> Result<CursorValue, String> {
        let t = text.trim();
        match kind {
            CursorKind::UpdatedSince => DateTime::parse_from_rfc3339(t)
                .map(|d| CursorValue::Time(d.with_timezone(&Utc)))
                .map_err(|e| format!("not an RFC 3339 timestamp: {e}")),
            CursorKind::Sequence => t
                .parse::<i64>()
                .map(CursorValue::Seq)
                .map_err(|_| "not an integer sequence number".to_string()),
        }
    }

    /// The cursor value a record carries in its cursor field.
    pub fn of_field(kind: CursorKind, value: Option<&Value>) -> Result<CursorValue, String> {
        match (kind, value) {
            (_, None | Some(Value::Null)) => Err("missing".into()),
            (CursorKind::UpdatedSince, Some(Value::String(s))) => Self::parse(kind, s),
            (CursorKind::UpdatedSince, Some(_)) => Err("must be an RFC 3339 string".into()),
            (CursorKind::Sequence, Some(Value::Number(n))) => n
                .as_i64()
                .map(CursorValue::Seq)
                .ok_or_else(|| "must be an integer".into()),
            (CursorKind::Sequence, Some(Value::String(s))) => Self::parse(kind, s),
            (CursorKind::Sequence, Some(_)) => Err("must be an integer".into()),
        }
    }

    /// The form sent to the upstream and persisted.
    pub fn render(&self) -> String {
        match self {
            CursorValue::Time(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            CursorValue::Seq(n) => n.to_string(),
        }
    }

    /// The value as a record version: the sequence, or the timestamp in milliseconds.
    pub fn as_version(&self) -> i64 {
        match self {
            CursorValue::Time(t) => t.timestamp_millis(),
            CursorValue::Seq(n) => *n,
        }
    }

    /// The value as an event time, when it is one.
    pub fn as_time(&self) -> Option<DateTime<Utc>> {
        match self {
            CursorValue::Time(t) => Some(*t),
            CursorValue::Seq(_) => None,
        }
    }
}

/// What to ask for next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageRequest {
    /// The collection URL with these query parameters (besides the configured ones).
    Query(Vec<(String, String)>),
    /// A URL the upstream named (Link header), used as it is.
    Url(reqwest::Url),
}

/// One record of a page, with its cursor value (or why it has none).
#[derive(Debug, Clone, PartialEq)]
pub struct PageRecord {
    /// The record's index in the page as received (0-based).
    pub index: usize,
    /// The record as received.
    pub value: Value,
    /// Its cursor value; a record without one cannot be placed and is the caller's to
    /// quarantine (it does not move the cursor).
    pub cursor: Result<CursorValue, String>,
}

/// What a page response holds, as the client extracted it.
#[derive(Debug, Clone, PartialEq)]
pub struct RawPage {
    /// The records array.
    pub records: Vec<Value>,
    /// The next-page token at `next_path` (cursor-token pagination).
    pub next_token: Option<String>,
    /// The `rel="next"` URL of the Link header (Link-header pagination).
    pub next_link: Option<reqwest::Url>,
}

/// One page of a pass, ready for mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The page's number in the pass (1-based).
    pub number: u64,
    /// Records not seen before in this pass.
    pub records: Vec<PageRecord>,
    /// Records dropped as repeats of records already read in this pass.
    pub repeated: usize,
    /// The cursor to persist once this page's records are durable.
    pub cursor_after: CursorValue,
    /// Whether this was the last page of the pass.
    pub last: bool,
}

/// The state of one pass through the upstream.
#[derive(Debug)]
pub struct Pass {
    kind: CursorKind,
    pagination: PaginationConfig,
    cursor_field: JsonPath,
    /// The cursor value of the current request.
    query_cursor: CursorValue,
    /// Page of the current request among those of `query_cursor` (0-based).
    page_in_cursor: u64,
    token: Option<String>,
    link: Option<reqwest::Url>,
    number: u64,
    max_seen: CursorValue,
    /// Digests of the records at `max_seen`, to drop them when read again.
    at_max: HashSet<[u8; 32]>,
    done: bool,
}

impl Pass {
    /// A pass starting at `start`.
    pub fn new(
        kind: CursorKind,
        pagination: PaginationConfig,
        cursor_field: JsonPath,
        start: CursorValue,
    ) -> Pass {
        Pass {
            kind,
            pagination,
            cursor_field,
            query_cursor: start.clone(),
            page_in_cursor: 0,
            token: None,
            link: None,
            number: 0,
            max_seen: start,
            at_max: HashSet::new(),
            done: false,
        }
    }

    /// Whether the last page was read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The number the next page will have (1-based).
    pub fn next_number(&self) -> u64 {
        self.number + 1
    }

    /// The largest cursor value seen so far (the start, before any page).
    pub fn max_seen(&self) -> &CursorValue {
        &self.max_seen
    }

    /// The request for the next page; `cursor_param` carries the cursor.
    pub fn request(&self, cursor_param: &str) -> PageRequest {
        if let Some(url) = &self.link {
            return PageRequest::Url(url.clone());
        }
        let mut q = vec![(cursor_param.to_string(), self.query_cursor.render())];
        match &self.pagination {
            PaginationConfig::PageNumber {
                page_param,
                size_param,
                page_size,
                first_page,
            } => {
                q.push((
                    page_param.clone(),
                    first_page.saturating_add(self.page_in_cursor).to_string(),
                ));
                q.push((size_param.clone(), page_size.to_string()));
            }
            PaginationConfig::Offset {
                offset_param,
                limit_param,
                page_size,
            } => {
                let offset = self.page_in_cursor.saturating_mul(u64::from(*page_size));
                q.push((offset_param.clone(), offset.to_string()));
                q.push((limit_param.clone(), page_size.to_string()));
            }
            PaginationConfig::CursorToken {
                token_param,
                size_param,
                page_size,
                ..
            } => {
                if let Some(t) = &self.token {
                    q.push((token_param.clone(), t.clone()));
                }
                q.push((size_param.clone(), page_size.to_string()));
            }
            PaginationConfig::LinkHeader {
                size_param,
                page_size,
            } => q.push((size_param.clone(), page_size.to_string())),
        }
        PageRequest::Query(q)
    }

    /// Takes in the answer to [`Pass::request`] and moves the pass on.
    pub fn advance(&mut self, raw: RawPage) -> Result<Page, RestPollError> {
        self.number += 1;
        let number = self.number;
        let received = raw.records.len();
        let boundary = self.max_seen.clone();
        let mut records = Vec::with_capacity(received);
        let mut repeated = 0;
        let mut page_max: Option<CursorValue> = None;
        let mut new_at_max: Vec<([u8; 32], CursorValue)> = Vec::new();
        for (index, value) in raw.records.into_iter().enumerate() {
            let cursor = CursorValue::of_field(self.kind, self.cursor_field.find(&value));
            if let Ok(c) = &cursor {
                let digest = digest(&value);
                if *c == boundary && self.at_max.contains(&digest) {
                    repeated += 1;
                    continue;
                }
                if page_max.as_ref().is_none_or(|m| c > m) {
                    page_max = Some(c.clone());
                }
                if *c >= boundary {
                    new_at_max.push((digest, c.clone()));
                }
            }
            records.push(PageRecord {
                index,
                value,
                cursor,
            });
        }
        // The new maximum and the digests of the records that sit at it.
        if let Some(m) = &page_max
            && *m > self.max_seen
        {
            self.max_seen = m.clone();
            self.at_max.clear();
        }
        for (d, c) in new_at_max {
            if c == self.max_seen {
                self.at_max.insert(d);
            }
        }
        self.step(received, page_max, raw.next_token, raw.next_link)?;
        Ok(Page {
            number,
            records,
            repeated,
            cursor_after: self.max_seen.clone(),
            last: self.done,
        })
    }

    fn step(
        &mut self,
        received: usize,
        page_max: Option<CursorValue>,
        next_token: Option<String>,
        next_link: Option<reqwest::Url>,
    ) -> Result<(), RestPollError> {
        let number = self.number;
        let full = received >= self.pagination.page_size() as usize;
        match &self.pagination {
            PaginationConfig::PageNumber { .. } | PaginationConfig::Offset { .. } => {
                if !full {
                    self.done = true;
                } else if page_max.is_some_and(|m| m > self.query_cursor) {
                    // Keyset step: ask again from the largest value seen.
                    self.query_cursor = self.max_seen.clone();
                    self.page_in_cursor = 0;
                } else {
                    // A whole page at one cursor value: the next page of that value.
                    self.page_in_cursor += 1;
                }
            }
            PaginationConfig::CursorToken { .. } => match next_token {
                None => self.done = true,
                Some(_) if received == 0 => self.done = true,
                Some(t) if self.token.as_deref() == Some(t.as_str()) => {
                    return Err(RestPollError::BadPage {
                        page: number,
                        reason: "the upstream gave the same next-page token again".into(),
                    });
                }
                Some(t) => self.token = Some(t),
            },
            PaginationConfig::LinkHeader { .. } => match next_link {
                None => self.done = true,
                Some(_) if received == 0 => self.done = true,
                Some(u) if self.link.as_ref() == Some(&u) => {
                    return Err(RestPollError::BadPage {
                        page: number,
                        reason: "the upstream linked the same page as next again".into(),
                    });
                }
                Some(u) => self.link = Some(u),
            },
        }
        Ok(())
    }
}

fn digest(v: &Value) -> [u8; 32] {
    // serde_json writes object keys in a stable order for a given parse, so the same record
    // received twice gives the same bytes.
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

/// The `rel="next"` target of an HTTP `Link` header value (RFC 8288), as written.
pub fn next_link(header: &str) -> Option<String> {
    for part in split_links(header) {
        let part = part.trim();
        let Some(rest) = part.strip_prefix('<') else {
            continue;
        };
        let Some(end) = rest.find('>') else {
            continue;
        };
        let target = &rest[..end];
        let is_next = rest[end + 1..].split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.to_string());
        }
    }
    None
}

/// Splits a Link header at the commas between links (not those inside `<...>` or quotes).
fn split_links(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_angle, mut in_quote, mut start) = (false, false, 0);
    for (i, c) in header.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}
