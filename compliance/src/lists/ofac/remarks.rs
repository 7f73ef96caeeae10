//! Facts inside the free-text remarks of OFAC's legacy SDN file.
//!
//! Remarks are `;`-separated statements such as `DOB 01 Jan 1960`, `alt. DOB circa 1965`,
//! `nationality Syria`, `citizen Korea, North`, `Passport N302083 (Thailand) issued 2001`,
//! `National ID No. 3101701873838 (Thailand)`, `Tax ID No. 7707083893 (Russia)`,
//! `Registration Number 1027700132195 (Russia)`, `a.k.a. 'PACHO'`. Statements of other kinds
//! (gender, addresses, "Linked To", vessel data, ...) are left alone.
//!
//! The quoted `a.k.a.` names of the remarks are the ones OFAC calls weak: they are kept as
//! [`NameStrength::Weak`](crate::NameStrength::Weak) aliases.

use crate::entry::{IdKind, Identifier, PartialDate};

use super::super::{country, dates, ids};

/// What one entry's remarks state.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Facts {
    pub birth_dates: Vec<PartialDate>,
    pub nationalities: Vec<&'static str>,
    pub identifiers: Vec<Identifier>,
    pub weak_aliases: Vec<String>,
    /// Statements recognised but unreadable; phrased without personal data.
    pub notes: Vec<String>,
}

/// Statement prefixes naming an identifier, and its kind.
const ID_LABELS: &[(&str, IdKind)] = &[
    ("Passport ", IdKind::Passport),
    ("National ID No. ", IdKind::NationalId),
    ("Identification Number ", IdKind::NationalId),
    ("Cedula No. ", IdKind::NationalId),
    ("D.N.I. ", IdKind::NationalId),
    ("Tax ID No. ", IdKind::TaxId),
    ("Registration Number ", IdKind::Registration),
    ("Registration ID ", IdKind::Registration),
    ("Public Registration Number ", IdKind::Registration),
    ("INN ", IdKind::Inn),
    ("OGRN ", IdKind::Ogrn),
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

pub(crate) fn parse(remarks: &str) -> Facts {
    let mut facts = Facts::default();
    for raw in remarks.split(';') {
        let s = raw.trim();
        let s = s.strip_suffix('.').unwrap_or(s).trim();
        let s = s.strip_prefix("alt. ").unwrap_or(s);
        if let Some(rest) = s.strip_prefix("DOB ") {
            match birth_dates(rest) {
                Some(list) => {
                    for d in list {
                        if !facts.birth_dates.contains(&d) {
                            facts.birth_dates.push(d);
                        }
                    }
                }
                None => facts
                    .notes
                    .push("unreadable DOB in remarks; ignored".into()),
            }
        } else if let Some(rest) = s
            .strip_prefix("nationality ")
            .or_else(|| s.strip_prefix("citizen "))
        {
            let name = rest.strip_prefix("possibly ").unwrap_or(rest);
            match country::from_name(name) {
                Some(code) if !facts.nationalities.contains(&code) => {
                    facts.nationalities.push(code)
                }
                Some(_) => {}
                None if country::is_unknown(name) => {}
                None => facts.notes.push(format!(
                    "nationality {name:?} in remarks not recognised; ignored"
                )),
            }
        } else if let Some(rest) = ["a.k.a. ", "f.k.a. ", "n.k.a. "]
            .iter()
            .find_map(|p| s.strip_prefix(p))
        {
            let name = quoted(rest);
            if !name.is_empty() && !facts.weak_aliases.iter().any(|a| a == name) {
                facts.weak_aliases.push(name.to_owned());
            }
        } else if let Some((kind, rest)) = ID_LABELS
            .iter()
            .find_map(|(label, kind)| s.strip_prefix(label).map(|r| (*kind, r)))
        {
            identifier(kind, rest, &mut facts);
        }
    }
    facts
}

/// The text between the first and the last single quote (names may hold apostrophes:
/// `'ABU-'UMAR'`), or the whole text when it is not quoted.
fn quoted(s: &str) -> &str {
    let s = s.trim();
    match (s.find('\''), s.rfind('\'')) {
        (Some(a), Some(b)) if b > a => s[a + 1..b].trim(),
        _ => s,
    }
}

/// `NUMBER (Country) issued ... expires ...`; the country is optional. The number itself may
/// hold parentheses (`D489833(9) (Hong Kong)`, `13/Ta Ta Na (Naing)019077 (Burma)`), so the last
/// parenthesised group that names a country wins, then the first group.
fn identifier(kind: IdKind, rest: &str, facts: &mut Facts) {
    let group = |open: usize| {
        let inside = &rest[open + 2..];
        let close = inside.find(')').unwrap_or(inside.len());
        (&rest[..open], Some(inside[..close].trim()))
    };
    let (number, country_name) = match (rest.rfind(" ("), rest.find(" (")) {
        (Some(last), _) if country::from_name(group(last).1.unwrap_or("")).is_some() => group(last),
        (_, Some(first)) => group(first),
        _ => (rest, None),
    };
    let number = [" issued", " expires", " issue date"]
        .iter()
        .filter_map(|m| number.find(m))
        .min()
        .map_or(number, |cut| &number[..cut]);
    let mut code = match country_name {
        Some(name) if country::is_unknown(name) => None,
        Some(name) => {
            let code = country::from_name(name);
            if code.is_none() {
                facts.notes.push(format!(
                    "identifier country {name:?} in remarks not recognised; kept without country"
                ));
            }
            code
        }
        None => None,
    };
    if matches!(kind, IdKind::Inn | IdKind::Ogrn) && code.is_none() {
        code = Some("ru");
    }
    if let Some(id) = ids::identifier(kind, number, code.map(str::to_owned))
        && !facts.identifiers.contains(&id)
    {
        facts.identifiers.push(id);
    }
}

/// `01 Jan 1960`, `Jan 1960`, `1960`, `circa 1960` (year only), `1965 to 1967` and
/// `01 Jan 1960 to 31 Dec 1962` (every year of the range).
fn birth_dates(text: &str) -> Option<Vec<PartialDate>> {
    let text = text.trim();
    let (circa, text) = match text.strip_prefix("circa ") {
        Some(rest) => (true, rest.trim()),
        None => (false, text),
    };
    if let Some((from, to)) = text.split_once(" to ") {
        let (from, to) = (one_date(from)?, one_date(to)?);
        return dates::year_range(from.year, to.year);
    }
    // "1979-1982"
    if let Some((from, to)) = text.split_once('-')
        && let (Some(from), Some(to)) = (one_date(from), one_date(to))
        && from.month.is_none()
        && to.month.is_none()
    {
        return dates::year_range(from.year, to.year);
    }
    let mut d = one_date(text)?;
    if circa {
        d.month = None;
        d.day = None;
    }
    Some(vec![d])
}

fn one_date(text: &str) -> Option<PartialDate> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let year = |s: &str| -> Option<i32> {
        (s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let month = |s: &str| -> Option<u32> {
        let lower = s.to_ascii_lowercase();
        let idx = MONTHS.iter().position(|m| lower.starts_with(m))?;
        u32::try_from(idx + 1).ok()
    };
    match parts.as_slice() {
        [y] => dates::partial(year(y)?, None, None),
        [m, y] => dates::partial(year(y)?, Some(month(m)?), None),
        [d, m, y] => dates::partial(year(y)?, Some(month(m)?), Some(d.parse().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pd(y: i32, m: Option<u8>, d: Option<u8>) -> PartialDate {
        PartialDate {
            year: y,
            month: m,
            day: d,
        }
    }

    #[test]
    fn birth_date_forms() {
        let f = parse(
            "DOB 01 Jan 1960; alt. DOB circa 1965; DOB 1970 to 1972; DOB Feb 1980; \
             DOB 01 Jan 1990 to 31 Dec 1991; DOB circa 1954-1955; DOB 1955.",
        );
        assert_eq!(
            f.birth_dates,
            vec![
                pd(1960, Some(1), Some(1)),
                pd(1965, None, None),
                pd(1970, None, None),
                pd(1971, None, None),
                pd(1972, None, None),
                pd(1980, Some(2), None),
                pd(1990, None, None),
                pd(1991, None, None),
                pd(1954, None, None),
                pd(1955, None, None),
            ]
        );
        assert!(f.notes.is_empty());
        let f = parse("DOB 31 Feb 1960; DOB sometime");
        assert!(f.birth_dates.is_empty());
        assert_eq!(f.notes.len(), 2);
    }

    #[test]
    fn nationality_and_identifiers() {
        let f = parse(
            "nationality Korea, North; citizen possibly Palestinian; nationality Atlantis; \
             Passport D489833(9) (Hong Kong) issued 01 Jan 2000 expires 01 Jan 2010; \
             alt. Passport 472235761 expires 06 Jun 2017; \
             National ID No. 660000 73767 (Belgium); Tax ID No. 7707083893 (Russia); \
             Registration Number 1027700132195 (Russia); Registration ID 1234 (Narnia); \
             National ID No. 13/Ta Na (Naing)019077 (Burma); \
             INN 500100732259; Gender Male; Linked To: SOMETHING.",
        );
        assert_eq!(f.nationalities, vec!["kp", "ps"]);
        let got: Vec<(IdKind, &str, Option<&str>)> = f
            .identifiers
            .iter()
            .map(|i| (i.kind, i.value.as_str(), i.country.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (IdKind::Passport, "D4898339", Some("hk")),
                (IdKind::Passport, "472235761", None),
                (IdKind::NationalId, "66000073767", Some("be")),
                (IdKind::Inn, "7707083893", Some("ru")),
                (IdKind::Ogrn, "1027700132195", Some("ru")),
                (IdKind::Registration, "1234", None),
                (IdKind::NationalId, "13TANANAING019077", Some("mm")),
                (IdKind::Inn, "500100732259", Some("ru")),
            ]
        );
        assert_eq!(f.notes.len(), 2, "{:?}", f.notes);
    }

    #[test]
    fn quoted_aliases_are_weak_and_keep_apostrophes() {
        let f = parse("a.k.a. 'BNC'; a.k.a. 'ABU-'UMAR'; f.k.a. 'OLD NAME'.");
        assert_eq!(f.weak_aliases, vec!["BNC", "ABU-'UMAR", "OLD NAME"]);
    }
}
