//! Partial dates as lists write them.

use crate::entry::PartialDate;

/// A range of birth years longer than this is treated as an error in the list, not expanded.
pub(crate) const MAX_YEAR_RANGE: i32 = 30;

const MIN_YEAR: i32 = 1800;
const MAX_YEAR: i32 = 2100;

fn year(y: i32) -> Option<PartialDate> {
    (MIN_YEAR..=MAX_YEAR).contains(&y).then_some(PartialDate {
        year: y,
        month: None,
        day: None,
    })
}

/// A checked date from parts; day/month are checked against the calendar.
pub(crate) fn partial(y: i32, month: Option<u32>, day: Option<u32>) -> Option<PartialDate> {
    let mut d = year(y)?;
    if let Some(m) = month {
        if !(1..=12).contains(&m) {
            return None;
        }
        d.month = u8::try_from(m).ok();
        if let Some(day) = day {
            chrono::NaiveDate::from_ymd_opt(y, m, day)?;
            d.day = u8::try_from(day).ok();
        }
    } else if day.is_some() {
        return None;
    }
    Some(d)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (a time part after `T` is ignored).
pub(crate) fn iso(s: &str) -> Option<PartialDate> {
    let s = s.trim();
    let s = s.split('T').next().unwrap_or(s);
    let parts: Vec<&str> = s.split('-').collect();
    match parts.as_slice() {
        [y] if y.len() == 4 => year(num(y)?),
        [y, m] if y.len() == 4 => partial(num(y)?, Some(num(m)?), None),
        [y, m, d] if y.len() == 4 => partial(num(y)?, Some(num(m)?), Some(num(d)?)),
        _ => None,
    }
}

/// ISO forms, or the Russian `DD.MM.YYYY` / `MM.YYYY`.
pub(crate) fn iso_or_dotted(s: &str) -> Option<PartialDate> {
    let s = s.trim();
    if !s.contains('.') {
        return iso(s);
    }
    let parts: Vec<&str> = s.split('.').collect();
    match parts.as_slice() {
        [m, y] if y.len() == 4 => partial(num(y)?, Some(num(m)?), None),
        [d, m, y] if y.len() == 4 => partial(num(y)?, Some(num(m)?), Some(num(d)?)),
        _ => None,
    }
}

/// Every year from `from` to `to` as year-only dates; `None` for a reversed or too long range.
pub(crate) fn year_range(from: i32, to: i32) -> Option<Vec<PartialDate>> {
    if to < from || to - from > MAX_YEAR_RANGE {
        return None;
    }
    (from..=to).map(year).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: Option<u8>, day: Option<u8>) -> PartialDate {
        PartialDate {
            year: y,
            month: m,
            day,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(iso("1960"), Some(d(1960, None, None)));
        assert_eq!(iso("1960-02"), Some(d(1960, Some(2), None)));
        assert_eq!(iso("1960-02-29T00:00:00"), Some(d(1960, Some(2), Some(29))));
        assert_eq!(iso("1961-02-29"), None);
        assert_eq!(iso("60"), None);
        assert_eq!(iso_or_dotted("05.03.1975"), Some(d(1975, Some(3), Some(5))));
        assert_eq!(iso_or_dotted("03.1975"), Some(d(1975, Some(3), None)));
        assert_eq!(iso_or_dotted("1975-03-05"), Some(d(1975, Some(3), Some(5))));
        assert_eq!(iso_or_dotted("5/3/1975"), None);
        assert_eq!(year_range(1965, 1967).map(|v| v.len()), Some(3));
        assert_eq!(year_range(1967, 1965), None);
        assert_eq!(year_range(1900, 1990), None);
    }
}
