//! Finding full card numbers (PANs) left in mapped text.
//!
//! Contract: a candidate is a run of 13 to 19 ASCII digits with no digit right before or
//! after it, or a whole chain of digit groups joined by single spaces or hyphens in a card
//! layout (groups of four with a shorter last group: 4-4-4-1 .. 4-4-4-4-3; 4-6-5, 4-6-4); either must pass the Luhn
//! check. Such a number is masked like [`crate::model::mask_pan`] does (first six and last
//! four digits kept, separators kept). Chains that only contain a card layout inside them
//! (an IBAN written in groups) are not candidates, which keeps false alarms rare.

use std::borrow::Cow;
use std::ops::Range;

/// Byte ranges of every card number found in `text`, in order.
pub fn find(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    // Most texts have too few digits to hold a card number.
    if b.iter().filter(|c| c.is_ascii_digit()).count() < 13 {
        return found;
    }
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A chain: digit groups separated by exactly one space or hyphen.
        let start = i;
        let mut groups: Vec<Range<usize>> = Vec::new();
        loop {
            let g = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(g..i);
            let joined =
                i + 1 < b.len() && (b[i] == b' ' || b[i] == b'-') && b[i + 1].is_ascii_digit();
            if !joined {
                break;
            }
            i += 1;
        }
        let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if groups.len() > 1 && card_layout(&lens) && luhn(text, start..i) {
            found.push(start..i);
            continue;
        }
        for g in groups {
            if (13..=19).contains(&g.len()) && luhn(text, g.clone()) {
                found.push(g);
            }
        }
    }
    found
}

/// Whether `text` holds a card number.
pub fn contains(text: &str) -> bool {
    !find(text).is_empty()
}

/// `text` with every card number in it masked.
pub fn mask(text: &str) -> Cow<'_, str> {
    let found = find(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in found {
        out.push_str(&text[last..r.start]);
        let total = text[r.clone()].bytes().filter(u8::is_ascii_digit).count();
        let mut seen = 0;
        for c in text[r.clone()].chars() {
            if c.is_ascii_digit() {
                seen += 1;
                if seen > 6 && seen <= total - 4 {
                    out.push('*');
                    continue;
                }
            }
            out.push(c);
        }
        last = r.end;
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

fn card_layout(lens: &[usize]) -> bool {
    match lens {
        [4, 4, 4, last] => (1..=7).contains(last),
        [4, 4, 4, 4, last] => (1..=3).contains(last),
        [4, 6, 5] | [4, 6, 4] => true,
        _ => false,
    }
}

/// The Luhn check over the digits in `text[range]`, which has 13 to 19 of them.
fn luhn(text: &str, range: Range<usize>) -> bool {
    let digits: Vec<u32> = text[range]
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|d| u32::from(d - b'0'))
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum % 10 == 0
}
