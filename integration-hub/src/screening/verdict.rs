//! From a party's hits and the officers' earlier decisions to a verdict. Pure.

use serde::{Deserialize, Serialize};

use super::engine::HitView;
use super::store::Mark;

/// What happens to a screened party.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// No hit left: the party goes on to the CRM. `suppressed` counts hits that an officer
    /// already marked false positive for the same screened data.
    Clear { suppressed: usize },
    /// Hits to review: the party is held back.
    Potential(Vec<HitView>),
    /// A hit on an entry an officer confirmed for this party: held back.
    Confirmed(Vec<HitView>),
}

/// `marks`: (list, entry id, subject hash at the decision, decision).
pub fn decide(
    hits: Vec<HitView>,
    marks: &[(String, String, String, Mark)],
    subject_hash: &str,
) -> Verdict {
    let total = hits.len();
    let mark_of = |h: &HitView| {
        marks
            .iter()
            .find(|(l, e, _, _)| *l == h.list && *e == h.entry_id)
            .map(|(_, _, hash, m)| (hash.as_str(), *m))
    };
    let remaining: Vec<HitView> = hits
        .into_iter()
        .filter(
            |h| !matches!(mark_of(h), Some((hash, Mark::FalsePositive)) if hash == subject_hash),
        )
        .collect();
    if remaining.is_empty() {
        return Verdict::Clear { suppressed: total };
    }
    if remaining
        .iter()
        .any(|h| matches!(mark_of(h), Some((_, Mark::Confirmed))))
    {
        Verdict::Confirmed(remaining)
    } else {
        Verdict::Potential(remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(entry: &str) -> HitView {
        HitView {
            list: "un".into(),
            entry_id: entry.into(),
            score: 0.95,
            query_name: "q".into(),
            matched_name: "m".into(),
            explanation: serde_json::Value::Null,
        }
    }

    fn mark(entry: &str, hash: &str, m: Mark) -> (String, String, String, Mark) {
        ("un".into(), entry.into(), hash.into(), m)
    }

    #[test]
    fn no_hits_is_clear() {
        assert_eq!(decide(vec![], &[], "h"), Verdict::Clear { suppressed: 0 });
    }

    #[test]
    fn a_false_positive_is_not_raised_again_for_the_same_data() {
        let marks = [mark("E1", "h1", Mark::FalsePositive)];
        assert_eq!(
            decide(vec![hit("E1")], &marks, "h1"),
            Verdict::Clear { suppressed: 1 }
        );
    }

    #[test]
    fn a_false_positive_is_raised_again_when_the_data_changed() {
        let marks = [mark("E1", "h1", Mark::FalsePositive)];
        assert_eq!(
            decide(vec![hit("E1")], &marks, "h2"),
            Verdict::Potential(vec![hit("E1")])
        );
    }

    #[test]
    fn a_false_positive_does_not_cover_another_entry() {
        let marks = [mark("E1", "h1", Mark::FalsePositive)];
        assert_eq!(
            decide(vec![hit("E1"), hit("E2")], &marks, "h1"),
            Verdict::Potential(vec![hit("E2")])
        );
    }

    #[test]
    fn a_confirmed_entry_stays_confirmed() {
        let marks = [mark("E1", "h0", Mark::Confirmed)];
        assert_eq!(
            decide(vec![hit("E1")], &marks, "h1"),
            Verdict::Confirmed(vec![hit("E1")])
        );
    }
}
