//! The masking layer every log line passes through: personal data that reached a message
//! (a CRM's error body echoing a record, a SOAP fault, a value in a mapping error) is
//! replaced by a tag before the line leaves the process.
//!
//! What is recognised, in this order (a later pass never sees what an earlier one tagged):
//! 1. a value next to a personal-data key (`inn=…`, `"phone":"…"`, `\"Email\":\"…\"`,
//!    `LastName: …`): replaced whatever its shape, so an invalid INN or e-mail echoed in an
//!    error is masked too — except an unquoted lower-case word, which is prose (`phones:
//!    must have…`); name keys only when the value looks like a name (capitalised words), so
//!    `"name":"crm-main"` stays;
//! 2. e-mail addresses (ASCII local part and domain with a letter TLD) → `[email]`;
//! 3. runs of digits (single spaces, `-`, `(`, `)` between groups, optional leading `+`):
//!    `+` and 8–15 digits → `[phone]`; 13–19 digits passing Luhn → `[pan]`; 10 or 12 digits
//!    with INN check digits → `[inn]`; 11 digits with the SNILS check number → `[snils]`;
//!    11 digits starting 7 or 8, or 10 starting 9 → `[phone]`; 10 digits grouped 4+6 or
//!    2+2+6 → `[passport]`. A run touching a letter or `.` (hex ids, `G0000000001`,
//!    `C-100`, decimals) or shaped like a date is left alone; `_` separates
//!    (`duplicate_inn_500100732259`);
//! 4. two or three capitalised Cyrillic words in a row → `[name]`.
//!
//! Limits (docs/pii.md): Latin names are recognised only next to a name key; a lone
//! Cyrillic surname, initials and non-ASCII e-mail addresses are not; a bare 10-digit
//! number without INN check digits (e.g. a mistyped INN) is masked only next to a key; a
//! purely numeric source key that happens to carry valid check digits is masked as well.

mod detect;

use std::borrow::Cow;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// Masks personal data in one line (or several); borrowed when nothing was found.
pub fn mask(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    for pass in [
        keyed as fn(&str) -> Option<String>,
        emails,
        digit_runs,
        cyrillic_names,
    ] {
        if let Some(changed) = pass(&out) {
            out = Cow::Owned(changed);
        }
    }
    out
}

// ------------------------------------------------------------------ keyed values ----

/// The tag of a personal-data key, compared in lower case without trailing digits
/// (`emailaddress1`, `telephone1`).
fn key_tag(key: &str) -> Option<&'static str> {
    let k = key.trim_end_matches(|c: char| c.is_ascii_digit());
    let tag = match k {
        "inn" | "tax_id" | "taxid" => "[inn]",
        "snils" => "[snils]",
        "phone" | "phones" | "mobile" | "mobilephone" | "homephone" | "telephone" | "tel"
        | "phone_number" | "phonenumber" | "mobile_phone" => "[phone]",
        "email" | "e_mail" | "emails" | "emailaddress" | "email_address" => "[email]",
        "passport" | "passport_number" | "passportnumber" => "[passport]",
        "pan" | "card_number" | "cardnumber" => "[pan]",
        "name" | "full_name" | "fullname" | "first_name" | "firstname" | "last_name"
        | "lastname" | "middle_name" | "middlename" | "surname" | "patronymic" | "given_name"
        | "family_name" | "fio" => NAME,
        _ => return None,
    };
    Some(tag)
}

const NAME: &str = "[name]";

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn keyed(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_alphabetic() || (i > 0 && is_word_byte(b[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        // Lower-cased on the stack: this runs for every word of every line.
        let mut lower = [0u8; 20];
        let Some(dst) = lower.get_mut(..i - start) else {
            continue;
        };
        for (d, c) in dst.iter_mut().zip(&b[start..i]) {
            *d = c.to_ascii_lowercase();
        }
        let Ok(key) = std::str::from_utf8(dst) else {
            continue;
        };
        let Some(tag) = key_tag(key) else { continue };
        let Some((from, to)) = value_after_key(b, i, tag) else {
            continue;
        };
        let value = &s[from..to];
        let quoted = from > 0 && b[from - 1] == b'"';
        // A bare lower-case word is prose (`phones: must have 8 to 15 digits`), not a value.
        let prose = !quoted && value.bytes().all(|c| c.is_ascii_lowercase());
        if value.is_empty()
            || value.starts_with('[')
            || prose
            || (tag == NAME && !looks_like_name(value))
        {
            continue;
        }
        let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
        o.push_str(&s[copied..from]);
        o.push_str(tag);
        copied = to;
        i = to;
    }
    out.map(|mut o| {
        o.push_str(&s[copied..]);
        o
    })
}

/// The value after a key ending at `i`: `key":"v"`, `key\":\"v\"`, `key=v`, `key: v`.
fn value_after_key(b: &[u8], mut i: usize, tag: &str) -> Option<(usize, usize)> {
    // The key's closing quote, plain or escaped inside a JSON string.
    if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'"') {
        i += 2;
    } else if b.get(i) == Some(&b'"') {
        i += 1;
    }
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if !matches!(b.get(i), Some(b':' | b'=')) {
        return None;
    }
    i += 1;
    while b.get(i) == Some(&b' ') {
        i += 1;
    }
    if b.get(i) == Some(&b'\\') && b.get(i + 1) == Some(&b'"') {
        // Escaped quotes: the value ends at the next `\"`.
        let from = i + 2;
        let mut j = from;
        while j + 1 < b.len() && !(b[j] == b'\\' && b[j + 1] == b'"') {
            j += 1;
        }
        return (j + 1 < b.len()).then_some((from, j));
    }
    if b.get(i) == Some(&b'"') {
        let from = i + 1;
        let mut j = from;
        while j < b.len() && b[j] != b'"' {
            j += if b[j] == b'\\' { 2 } else { 1 };
        }
        return (j <= b.len()).then_some((from, j.min(b.len())));
    }
    // A bare value: up to a delimiter; a space continues it only into the next word of a
    // name (`LastName: Ivanov Petr`) or the next group of a number (`phone=8 912 345 67 89`).
    let from = i;
    let first = *b.get(from)?;
    let delimiter = |c: u8| {
        matches!(
            c,
            b' ' | b',' | b';' | b'}' | b']' | b'"' | b'\\' | b'\n' | b'\r' | b'\t'
        )
    };
    let mut j = from;
    loop {
        while j < b.len() && !delimiter(b[j]) {
            j += 1;
        }
        let next = b.get(j + 1).copied();
        let continues = b.get(j) == Some(&b' ')
            && next.is_some_and(|n| {
                if tag == NAME {
                    (first.is_ascii_uppercase() || first >= 0x80)
                        && (n.is_ascii_uppercase() || n >= 0x80)
                } else {
                    (first.is_ascii_digit() || matches!(first, b'+' | b'('))
                        && (n.is_ascii_digit() || n == b'(')
                }
            });
        if !continues {
            break;
        }
        j += 1;
    }
    Some((from, j))
}

/// One to four words, each starting with an upper-case letter, of letters, `-`, `'` and `.`.
fn looks_like_name(v: &str) -> bool {
    let words: Vec<&str> = v.split([' ', '\u{a0}']).filter(|w| !w.is_empty()).collect();
    !words.is_empty()
        && words.len() <= 4
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_uppercase)
                && w.chars()
                    .all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '.'))
        })
}

// ------------------------------------------------------------------------ e-mails ----

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn emails(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if !b.contains(&b'@') {
        return None;
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'@' {
            i += 1;
            continue;
        }
        let mut l = i;
        while l > copied && is_local(b[l - 1]) {
            l -= 1;
        }
        let mut r = i + 1;
        while r < b.len() && is_domain(b[r]) {
            r += 1;
        }
        while r > i + 1 && matches!(b[r - 1], b'.' | b'-') {
            r -= 1;
        }
        let domain = &s[i + 1..r];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(host, tld)| {
            !host.is_empty() && tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic())
        });
        if l < i && tld_ok {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..l]);
            o.push_str("[email]");
            copied = r;
            i = r;
        } else {
            i += 1;
        }
    }
    out.map(|mut o| {
        o.push_str(&s[copied..]);
        o
    })
}

// ------------------------------------------------------------------- digit runs ----

/// A run of digits: where it starts and ends, its digits and its group lengths (fixed
/// arrays: no allocation per number on a hot path).
struct Run {
    start: usize,
    end: usize,
    plus: bool,
    digits: [u8; MAX_RUN_DIGITS + 1],
    n: usize,
    groups: [usize; MAX_RUN_DIGITS + 1],
    n_groups: usize,
}

impl Run {
    fn digits(&self) -> &[u8] {
        &self.digits[..self.n]
    }

    fn groups(&self) -> &[usize] {
        &self.groups[..self.n_groups]
    }
}

const MAX_RUN_DIGITS: usize = 19;

/// A letter or digit (any script): a number touching one is part of an identifier. `_` is
/// not: `duplicate_inn_500100732259` (a CRM's error code) still shows its INN.
fn is_alnum_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

fn left_boundary(b: &[u8], i: usize) -> bool {
    match i.checked_sub(1).map(|p| b[p]) {
        None => true,
        Some(c) if is_alnum_byte(c) || c == b'.' => false,
        // `C-100`: a hyphen inside an identifier.
        Some(b'-') => !(i >= 2 && is_alnum_byte(b[i - 2])),
        Some(_) => true,
    }
}

fn scan_run(b: &[u8], start: usize) -> Run {
    let plus = b[start] == b'+';
    let mut i = if plus { start + 1 } else { start };
    let mut run = Run {
        start,
        end: i,
        plus,
        digits: [0; MAX_RUN_DIGITS + 1],
        n: 0,
        groups: [0; MAX_RUN_DIGITS + 1],
        n_groups: 0,
    };
    let mut group = 0;
    loop {
        while i < b.len() && b[i].is_ascii_digit() && run.n <= MAX_RUN_DIGITS {
            run.digits[run.n] = b[i] - b'0';
            run.n += 1;
            group += 1;
            i += 1;
        }
        run.end = i;
        // At most one group per digit, so the array never overflows.
        if let Some(g) = run.groups.get_mut(run.n_groups) {
            *g = group;
            run.n_groups += 1;
        }
        group = 0;
        // Up to two separators between groups: `+7 (912) 345-67-89`.
        let mut j = i;
        while j < b.len() && j - i < 2 && matches!(b[j], b' ' | b'-' | b'(' | b')') {
            j += 1;
        }
        if j > i && j < b.len() && b[j].is_ascii_digit() && run.n <= MAX_RUN_DIGITS {
            i = j;
            continue;
        }
        return run;
    }
}

fn right_boundary(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if is_alnum_byte(*c) => false,
        Some(b'.') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

fn classify(r: &Run) -> Option<&'static str> {
    let (n, digits, groups) = (r.n, r.digits(), r.groups());
    if n > MAX_RUN_DIGITS {
        return None;
    }
    if r.plus {
        return (8..=15).contains(&n).then_some("[phone]");
    }
    // `2026-11-26`: a date, whatever follows.
    if groups.starts_with(&[4, 2, 2]) {
        return None;
    }
    if detect::pan(digits) {
        return Some("[pan]");
    }
    if detect::inn(digits) {
        return Some("[inn]");
    }
    if detect::snils(digits) {
        return Some("[snils]");
    }
    match (n, digits.first()) {
        (11, Some(7 | 8)) | (10, Some(9)) => return Some("[phone]"),
        _ => {}
    }
    if n == 10 && (groups == [4, 6] || groups == [2, 2, 6]) {
        return Some("[passport]");
    }
    None
}

fn digit_runs(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let starts =
            c.is_ascii_digit() || (c == b'+' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        if !starts || !left_boundary(b, i) {
            // Skip the rest of a word or number so no run starts in its middle.
            if is_alnum_byte(c) {
                while i < b.len() && is_alnum_byte(b[i]) {
                    i += 1;
                }
            } else {
                i += 1;
            }
            continue;
        }
        let run = scan_run(b, i);
        let tag = if right_boundary(b, run.end) {
            classify(&run)
        } else {
            None
        };
        match tag {
            Some(tag) => {
                let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
                o.push_str(&s[copied..run.start]);
                o.push_str(tag);
                copied = run.end;
                i = run.end;
            }
            None => {
                i = run.end.max(i + 1);
                // The rest of a number touching a letter (`123abc`) is not a new run.
                while i < b.len() && is_alnum_byte(b[i]) {
                    i += 1;
                }
            }
        }
    }
    out.map(|mut o| {
        o.push_str(&s[copied..]);
        o
    })
}

// ---------------------------------------------------------------- Cyrillic names ----

fn is_cyr_upper(c: char) -> bool {
    ('А'..='Я').contains(&c) || c == 'Ё'
}

fn is_cyr_lower(c: char) -> bool {
    ('а'..='я').contains(&c) || c == 'ё'
}

/// The end of a capitalised Cyrillic word at `i` (`Петров`, `Римская-Корсакова`).
fn cyr_word(s: &str, i: usize) -> Option<usize> {
    let mut chars = s[i..].char_indices();
    let (_, first) = chars.next()?;
    if !is_cyr_upper(first) {
        return None;
    }
    let mut end = i + first.len_utf8();
    let mut lower = 0;
    let mut after_hyphen = false;
    for (off, c) in chars {
        if is_cyr_lower(c) {
            lower += 1;
            after_hyphen = false;
        } else if c == '-' && lower > 0 && !after_hyphen {
            after_hyphen = true;
            continue;
        } else if after_hyphen && is_cyr_upper(c) {
            after_hyphen = false;
            lower = 0;
        } else {
            break;
        }
        end = i + off + c.len_utf8();
    }
    (lower > 0).then_some(end)
}

fn cyrillic_names(s: &str) -> Option<String> {
    // Capital Cyrillic letters are two bytes starting 0xD0.
    if !s.as_bytes().contains(&0xD0) {
        return None;
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut prev: Option<char> = None;
    let mut iter = s.char_indices();
    while let Some((i, c)) = iter.next() {
        let boundary = !prev.is_some_and(char::is_alphanumeric);
        prev = Some(c);
        if !boundary || !is_cyr_upper(c) {
            continue;
        }
        let Some(mut end) = cyr_word(s, i) else {
            continue;
        };
        let mut words = 1;
        while words < 3 {
            let rest = &s[end..];
            let sep = if rest.starts_with(' ') {
                1
            } else if rest.starts_with('\u{a0}') {
                2
            } else {
                break;
            };
            match cyr_word(s, end + sep) {
                Some(e) => {
                    end = e;
                    words += 1;
                }
                None => break,
            }
        }
        let followed_by_letter = s[end..].chars().next().is_some_and(char::is_alphanumeric);
        if words >= 2 && !followed_by_letter {
            let o = out.get_or_insert_with(|| String::with_capacity(s.len()));
            o.push_str(&s[copied..i]);
            o.push_str(NAME);
            copied = end;
        }
        // Continue after the words seen (masked or not).
        for (j, c) in iter.by_ref() {
            prev = Some(c);
            if j + c.len_utf8() >= end {
                break;
            }
        }
    }
    out.map(|mut o| {
        o.push_str(&s[copied..]);
        o
    })
}

// ---------------------------------------------------------------------- writer ----

/// A `MakeWriter` whose writers mask each event before passing it to `inner`.
/// tracing-subscriber's fmt layer formats an event into one buffer and writes it through a
/// writer made for that event, so one writer sees exactly one whole line.
#[derive(Debug, Clone)]
pub struct MaskingMakeWriter<M> {
    inner: M,
}

impl<M> MaskingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        MaskingMakeWriter { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for MaskingMakeWriter<M> {
    type Writer = MaskingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter {
            inner: self.inner.make_writer(),
            buf: Vec::with_capacity(512),
        }
    }
}

/// Collects one event's bytes; masks and writes them on flush or drop.
pub struct MaskingWriter<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> MaskingWriter<W> {
    fn emit(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf);
        let masked = mask(&text);
        let r = self.inner.write_all(masked.as_bytes());
        self.buf.clear();
        r?;
        self.inner.flush()
    }
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Only whole lines are masked: a flush mid-line waits for the rest.
        if self.buf.ends_with(b"\n") {
            self.emit()
        } else {
            Ok(())
        }
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report a failed log write, as with the plain writer.
        let _ = self.emit();
    }
}

#[cfg(test)]
mod tests;
