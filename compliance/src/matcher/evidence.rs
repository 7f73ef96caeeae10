//! Evidence besides the name: identifiers, date of birth, nationality. Each gives a score
//! delta and an explanation; missing data on either side is neutral.

use crate::entry::{IdKind, Identifier, ListEntry, PartialDate, Subject};

/// Score of an entry whose identifier equals one of the subject's, whatever the names say.
pub const ID_MATCH_SCORE: f64 = 0.99;
/// The largest amount the birth date and nationality can add together.
pub const MAX_BONUS: f64 = DOB_EXACT_BONUS + NATIONALITY_BONUS;

const DOB_EXACT_BONUS: f64 = 0.07;
const DOB_YEAR_BONUS: f64 = 0.04;
const DOB_MONTH_DIFFERS: f64 = -0.05;
const DOB_DAY_DIFFERS: f64 = -0.03;
const DOB_YEAR_OFF_BY_ONE: f64 = -0.12;
const DOB_YEAR_DIFFERS: f64 = -0.25;
const NATIONALITY_BONUS: f64 = 0.02;
const NATIONALITY_DIFFERS: f64 = -0.05;
/// A different number of a kind that identifies one person or company for good.
const UNIQUE_ID_DIFFERS: f64 = -0.5;
/// A different passport or national id: people hold several over time.
const DOCUMENT_DIFFERS: f64 = -0.3;

/// The outcome of comparing one kind of evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub delta: f64,
    pub detail: String,
    /// The evidence agrees (supports a weak alias).
    pub supports: bool,
}

/// Identifiers: `Some(true)` with the matching id when one is equal, `Some(false)` with the
/// conflict when same-kind ids all differ, `None` when nothing is comparable.
pub fn identifiers(subject: &Subject, entry: &ListEntry) -> Option<(bool, Evidence)> {
    let mut conflict: Option<Evidence> = None;
    for s in &subject.identifiers {
        let s_value = canonical_value(&s.value);
        if s_value.is_empty() {
            continue;
        }
        let mut comparable = false;
        for e in &entry.identifiers {
            if !same_family(s.kind, e.kind) || !countries_compatible(s, e) {
                continue;
            }
            comparable = true;
            if canonical_value(&e.value) == s_value {
                return Some((
                    true,
                    Evidence {
                        delta: 0.0,
                        detail: format!("{} {} equal", kind_name(s.kind), s_value),
                        supports: true,
                    },
                ));
            }
        }
        if comparable && conflict.is_none() && s.kind != IdKind::Other {
            let delta = match s.kind {
                IdKind::Passport | IdKind::NationalId => DOCUMENT_DIFFERS,
                _ => UNIQUE_ID_DIFFERS,
            };
            conflict = Some(Evidence {
                delta,
                detail: format!("{} differs from the listed one(s)", kind_name(s.kind)),
                supports: false,
            });
        }
    }
    conflict.map(|c| (false, c))
}

fn canonical_value(v: &str) -> String {
    v.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect()
}

/// Russian INN is a tax id; other kinds compare only with themselves.
fn same_family(a: IdKind, b: IdKind) -> bool {
    a == b
        || matches!(
            (a, b),
            (IdKind::Inn, IdKind::TaxId) | (IdKind::TaxId, IdKind::Inn)
        )
}

fn countries_compatible(a: &Identifier, b: &Identifier) -> bool {
    match (&a.country, &b.country) {
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => true,
    }
}

fn kind_name(kind: IdKind) -> &'static str {
    match kind {
        IdKind::Passport => "passport",
        IdKind::NationalId => "national id",
        IdKind::Inn => "inn",
        IdKind::Ogrn => "ogrn",
        IdKind::TaxId => "tax id",
        IdKind::Registration => "registration number",
        IdKind::Other => "identifier",
    }
}

/// Date of birth: the best agreement with any of the entry's dates.
pub fn birth_date(subject: Option<PartialDate>, entry: &[PartialDate]) -> Option<Evidence> {
    let s = subject?;
    entry
        .iter()
        .map(|e| compare_dates(s, *e))
        .max_by(|a, b| a.delta.total_cmp(&b.delta))
}

fn compare_dates(s: PartialDate, e: PartialDate) -> Evidence {
    let years_apart = s.year.abs_diff(e.year);
    let (delta, detail) = if years_apart == 1 {
        (
            DOB_YEAR_OFF_BY_ONE,
            format!("birth year {} vs listed {}", s.year, e.year),
        )
    } else if years_apart > 1 {
        (
            DOB_YEAR_DIFFERS,
            format!("birth year {} vs listed {}", s.year, e.year),
        )
    } else if differs(s.month, e.month) {
        (
            DOB_MONTH_DIFFERS,
            format!("birth month differs in {}", s.year),
        )
    } else if differs(s.day, e.day) {
        (DOB_DAY_DIFFERS, format!("birth day differs in {}", s.year))
    } else if s.month.is_some() && s.day.is_some() && e.month.is_some() && e.day.is_some() {
        (DOB_EXACT_BONUS, "birth date equal".to_string())
    } else {
        (DOB_YEAR_BONUS, format!("birth year {} agrees", s.year))
    };
    Evidence {
        delta,
        supports: delta > 0.0,
        detail,
    }
}

fn differs(a: Option<u8>, b: Option<u8>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x != y)
}

/// Nationality: agrees when the subject's is among the entry's.
pub fn nationality(subject: Option<&str>, entry: &[String]) -> Option<Evidence> {
    let s = subject?.trim();
    if s.is_empty() || entry.is_empty() {
        return None;
    }
    if entry.iter().any(|e| e.eq_ignore_ascii_case(s)) {
        Some(Evidence {
            delta: NATIONALITY_BONUS,
            detail: format!("nationality {} agrees", s.to_ascii_lowercase()),
            supports: true,
        })
    } else {
        Some(Evidence {
            delta: NATIONALITY_DIFFERS,
            detail: format!("nationality {} not among listed", s.to_ascii_lowercase()),
            supports: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(year: i32, month: Option<u8>, day: Option<u8>) -> PartialDate {
        PartialDate { year, month, day }
    }

    #[test]
    fn birth_dates() {
        let e = [date(1970, Some(5), Some(1))];
        assert!(
            birth_date(Some(date(1970, Some(5), Some(1))), &e)
                .unwrap()
                .delta
                > 0.0
        );
        assert!(birth_date(Some(date(1970, None, None)), &e).unwrap().delta > 0.0);
        assert!(birth_date(Some(date(1971, None, None)), &e).unwrap().delta < 0.0);
        assert!(birth_date(Some(date(1980, None, None)), &e).unwrap().delta <= -0.2);
        assert!(birth_date(None, &e).is_none());
        assert!(birth_date(Some(date(1970, None, None)), &[]).is_none());
        // The best of several listed dates counts.
        let many = [date(1960, None, None), date(1970, None, None)];
        assert!(
            birth_date(Some(date(1970, None, None)), &many)
                .unwrap()
                .delta
                > 0.0
        );
    }

    #[test]
    fn nationalities() {
        let e = vec!["ru".to_string(), "cy".to_string()];
        assert!(nationality(Some("RU"), &e).unwrap().supports);
        assert!(nationality(Some("de"), &e).unwrap().delta < 0.0);
        assert!(nationality(None, &e).is_none());
        assert!(nationality(Some("ru"), &[]).is_none());
    }
}
