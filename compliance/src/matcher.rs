//! Scores one screened subject against one list entry and explains the score.
//!
//! Contract: [`score_entry`] is pure and deterministic (same subject, entry and token
//! statistics → the same score, to four decimals, and the same explanation). The score is in
//! 0..=1: the best name comparison over every name pair (see [`align`]), then identifiers,
//! date of birth and nationality raise or lower it (see [`evidence`]); an identifier equal on
//! both sides gives [`evidence::ID_MATCH_SCORE`] whatever the names. A subject of a known kind
//! is compared only with entries of a compatible kind (a person never hits a company).

pub mod align;
pub mod evidence;
pub mod similarity;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::entry::{EntityKind, ListEntry, NameStrength, Subject};
use crate::normalize::{self, LegalClass, NameKind, NormalizedName, TokenRole};

/// The threshold a score must reach to be a hit, chosen by reasoning rather than fitted:
/// a name pair reaches 0.80 when all its tokens agree up to a typo per token or one
/// optional part (patronymic, middle name) is missing, and stays below it when any token
/// contradicts (see [`align`]).
pub const DEFAULT_THRESHOLD: f64 = 0.80;

/// Cap on the score of a weak alias without supporting evidence (birth date, nationality or
/// identifier agreeing): below any sensible threshold.
pub const WEAK_ALIAS_CAP: f64 = 0.7;

/// Penalty when both names carry legal forms and none are compatible (ООО vs АО).
const LEGAL_FORM_CONFLICT: f64 = -0.2;

/// A list entry the subject matched, with the score explained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub list: String,
    pub entry_id: String,
    /// 0..=1.
    pub score: f64,
    /// The subject's name that matched best.
    pub query_name: String,
    /// The entry's name it matched.
    pub matched_name: String,
    /// How the score came about, in the order applied.
    pub parts: Vec<ScorePart>,
}

/// What a part of the score is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    Name,
    LegalForm,
    WeakAlias,
    Identifier,
    BirthDate,
    Nationality,
}

/// One contribution to a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorePart {
    pub factor: Factor,
    /// Added to the score (the name part is the base score itself).
    pub contribution: f64,
    pub detail: String,
}

/// Document frequencies of token keys over an indexed set of names, giving each token a
/// weight by rarity: 1 for a key seen once, lower the more names share it.
#[derive(Debug, Clone, Default)]
pub struct TokenStats {
    df: HashMap<String, u32>,
    names: u32,
}

/// Below this many names the counts say nothing about rarity; only the built-in generic
/// word list lowers weights.
const MIN_NAMES_FOR_RARITY: u32 = 500;
const MIN_WEIGHT: f64 = 0.15;

impl TokenStats {
    /// Counts the name and patronymic keys of `names` (each key once per name).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a NormalizedName>) -> TokenStats {
        let mut stats = TokenStats::default();
        for n in names {
            stats.names += 1;
            let mut seen: Vec<&str> = Vec::new();
            for t in &n.tokens {
                if matches!(t.role, TokenRole::Name | TokenRole::Patronymic)
                    && !seen.contains(&t.key.as_str())
                {
                    seen.push(&t.key);
                    *stats.df.entry(t.key.clone()).or_insert(0) += 1;
                }
            }
        }
        stats
    }

    /// The weight of a name token with this key.
    pub fn weight(&self, key: &str) -> f64 {
        let prior = normalize::prior_weight(key);
        if self.names < MIN_NAMES_FOR_RARITY {
            return prior;
        }
        let df = self.df.get(key).copied().unwrap_or(0).max(1) as f64;
        let n = self.names as f64;
        let rarity = (1.0 + n / df).ln() / (1.0 + n).ln();
        rarity.min(prior).clamp(MIN_WEIGHT, 1.0)
    }
}

/// A token with its weight.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub text: String,
    pub key: String,
    /// Other readings of the key (GOST 7.79-B `x` = х, `c` = ц); usually empty.
    pub alt_keys: Vec<String>,
    pub role: TokenRole,
    pub weight: f64,
}

/// Two or three adjacent tokens read as one word.
#[derive(Debug, Clone, PartialEq)]
pub struct Compound {
    pub start: usize,
    pub len: usize,
    pub key: String,
    pub weight: f64,
}

/// Tokens of a name beyond this are ignored: pairing is quadratic in the tokens, and no
/// real name has this many.
pub const MAX_TOKENS: usize = 24;

/// A name ready for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedName {
    pub raw: String,
    pub kind: NameKind,
    pub strength: NameStrength,
    pub tokens: Vec<TokenInfo>,
    pub compounds: Vec<Compound>,
    pub legal_forms: Vec<LegalClass>,
}

impl PreparedName {
    pub fn new(raw: &str, kind: NameKind, strength: NameStrength, stats: &TokenStats) -> Self {
        Self::from_normalized(
            raw,
            kind,
            strength,
            normalize::normalize_name(raw, kind),
            stats,
        )
    }

    pub fn from_normalized(
        raw: &str,
        kind: NameKind,
        strength: NameStrength,
        norm: NormalizedName,
        stats: &TokenStats,
    ) -> Self {
        let tokens: Vec<TokenInfo> = norm
            .tokens
            .into_iter()
            .take(MAX_TOKENS)
            .map(|t| {
                let weight = match t.role {
                    TokenRole::Name | TokenRole::Patronymic => stats.weight(&t.key),
                    other => align::optimistic_weight(other),
                };
                let alt_keys = if matches!(t.role, TokenRole::Name | TokenRole::Patronymic)
                    && t.text.contains(['x', 'c'])
                {
                    mapping::names::latin_keys(&t.text)
                        .into_iter()
                        .filter(|k| *k != t.key)
                        .collect()
                } else {
                    Vec::new()
                };
                TokenInfo {
                    text: t.text,
                    key: t.key,
                    alt_keys,
                    role: t.role,
                    weight,
                }
            })
            .collect();
        let compounds = compounds_of(&tokens);
        PreparedName {
            raw: raw.to_string(),
            kind,
            strength,
            tokens,
            compounds,
            legal_forms: norm.legal_forms,
        }
    }

    /// The smallest penalty each name token costs when unmatched (see [`align::min_lambda`]).
    pub fn min_penalty(t: &TokenInfo) -> f64 {
        align::min_lambda(t.role) * align::penalty_weight(t.role, t.weight)
    }
}

/// Spans of two and three adjacent tokens (not numbers) with at least one name token,
/// keyed as one word: "Alisher Usmanov" for "AlisherUsmanov", "van der bilt" for "vanderbilt".
fn compounds_of(tokens: &[TokenInfo]) -> Vec<Compound> {
    let mut out = Vec::new();
    for start in 0..tokens.len() {
        for len in 2..=3 {
            let Some(span) = tokens.get(start..start + len) else {
                break;
            };
            if span.iter().any(|t| t.role == TokenRole::Number) {
                break;
            }
            if !span
                .iter()
                .any(|t| matches!(t.role, TokenRole::Name | TokenRole::Patronymic))
            {
                continue;
            }
            let text: String = span.iter().map(|t| t.text.as_str()).collect();
            out.push(Compound {
                start,
                len,
                key: mapping::names::latin_key(&text),
                weight: span.iter().map(|t| t.weight).sum(),
            });
        }
    }
    out
}

/// A list entry ready for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedEntry {
    pub names: Vec<PreparedName>,
}

impl PreparedEntry {
    pub fn new(entry: &ListEntry, stats: &TokenStats) -> Self {
        let kind = NameKind::of(Some(entry.kind));
        PreparedEntry {
            names: entry
                .names
                .iter()
                .map(|n| PreparedName::new(&n.full, kind, n.strength, stats))
                .collect(),
        }
    }
}

/// A subject ready for comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedQuery<'a> {
    pub subject: &'a Subject,
    pub kind: NameKind,
    pub names: Vec<PreparedName>,
}

impl<'a> PreparedQuery<'a> {
    pub fn new(subject: &'a Subject, stats: &TokenStats) -> Self {
        let kind = NameKind::of(subject.kind);
        PreparedQuery {
            subject,
            kind,
            names: subject
                .names
                .iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| PreparedName::new(n, kind, NameStrength::Primary, stats))
                .collect(),
        }
    }
}

/// Whether a subject of kind `s` may match an entry of kind `e`.
pub fn kinds_compatible(s: Option<EntityKind>, e: EntityKind) -> bool {
    match (s, e) {
        (None | Some(EntityKind::Unknown), _) | (_, EntityKind::Unknown) => true,
        (Some(EntityKind::Person), k) | (Some(k), EntityKind::Person) => k == EntityKind::Person,
        _ => true,
    }
}

/// Scores `query` against `entry` (prepared with the same statistics). `None` when the
/// kinds are incompatible, nothing at all agrees or the score is below `min_score` (the
/// explanation is only written for scores that reach it).
pub fn score_entry(
    query: &PreparedQuery<'_>,
    entry: &ListEntry,
    prepared: &PreparedEntry,
    min_score: f64,
) -> Option<Hit> {
    let subject = query.subject;
    if !kinds_compatible(subject.kind, entry.kind) {
        return None;
    }
    let ids = evidence::identifiers(subject, entry);
    let is_person = entry.kind == EntityKind::Person
        || (entry.kind == EntityKind::Unknown && subject.kind == Some(EntityKind::Person));
    let dob = if is_person || entry.kind == EntityKind::Unknown {
        evidence::birth_date(subject.birth_date, &entry.birth_dates)
    } else {
        None
    };
    let nat = evidence::nationality(subject.nationality.as_deref(), &entry.nationalities);
    let supported = ids.as_ref().is_some_and(|(m, _)| *m)
        || dob.as_ref().is_some_and(|d| d.supports)
        || nat.as_ref().is_some_and(|n| n.supports);

    // The best name pair, with a weak alias capped unless something else supports it.
    let mut best: Option<(f64, usize, usize, align::NameScore, f64)> = None;
    for (qi, qn) in query.names.iter().enumerate() {
        for (ci, cn) in prepared.names.iter().enumerate() {
            let person = align::reads_as_person(cn.kind, query.kind);
            let ns = align::score_names(qn, cn, person);
            if ns.score <= 0.0 {
                continue;
            }
            let legal = legal_form_delta(qn, cn);
            let mut s = (ns.score + legal).max(0.0);
            if cn.strength == NameStrength::Weak && !supported {
                s = s.min(WEAK_ALIAS_CAP);
            }
            if best.as_ref().is_none_or(|b| s > b.0) {
                best = Some((s, qi, ci, ns, legal));
            }
        }
    }
    let id_match = ids.as_ref().is_some_and(|(m, _)| *m);
    if best.is_none() && !id_match {
        return None;
    }
    let mut parts = Vec::new();
    let (mut score, qi, ci) = match &best {
        Some((s, qi, ci, ns, legal)) => {
            let cn = &prepared.names[*ci];
            // The detail is written below, once the score is known to be worth explaining.
            parts.push(ScorePart {
                factor: Factor::Name,
                contribution: round4(ns.score),
                detail: String::new(),
            });
            if *legal != 0.0 {
                parts.push(ScorePart {
                    factor: Factor::LegalForm,
                    contribution: round4(*legal),
                    detail: "legal forms incompatible".to_string(),
                });
            }
            if cn.strength == NameStrength::Weak {
                let capped = !supported && (ns.score + legal) > WEAK_ALIAS_CAP;
                parts.push(ScorePart {
                    factor: Factor::WeakAlias,
                    contribution: if capped {
                        round4(s - (ns.score + legal).max(0.0))
                    } else {
                        0.0
                    },
                    detail: if supported {
                        "weak alias supported by other evidence".to_string()
                    } else {
                        format!("weak alias without other evidence: capped at {WEAK_ALIAS_CAP}")
                    },
                });
            }
            (*s, *qi, *ci)
        }
        None => (0.0, 0, 0),
    };
    for ev in [
        dob.as_ref().map(|e| (Factor::BirthDate, e)),
        nat.as_ref().map(|e| (Factor::Nationality, e)),
    ]
    .into_iter()
    .flatten()
    {
        if best.is_some() {
            score += ev.1.delta;
            parts.push(ScorePart {
                factor: ev.0,
                contribution: ev.1.delta,
                detail: ev.1.detail.clone(),
            });
        }
    }
    if let Some((matched, ev)) = &ids {
        if *matched {
            let raised = ID_MATCH_FLOOR.max(score);
            parts.push(ScorePart {
                factor: Factor::Identifier,
                contribution: round4(raised - score),
                detail: ev.detail.clone(),
            });
            score = raised;
        } else {
            score += ev.delta;
            parts.push(ScorePart {
                factor: Factor::Identifier,
                contribution: ev.delta,
                detail: ev.detail.clone(),
            });
        }
    }
    let score = round4(score.clamp(0.0, 1.0));
    if score < min_score {
        return None;
    }
    if let Some((_, qi, ci, ns, _)) = &best {
        parts[0].detail = explain_names(&query.names[*qi], &prepared.names[*ci], ns);
    }
    Some(Hit {
        list: entry.list.clone(),
        entry_id: entry.id.clone(),
        score,
        query_name: query
            .names
            .get(qi)
            .map(|n| n.raw.clone())
            .unwrap_or_default(),
        matched_name: prepared
            .names
            .get(ci)
            .map(|n| n.raw.clone())
            .unwrap_or_default(),
        parts,
    })
}

const ID_MATCH_FLOOR: f64 = evidence::ID_MATCH_SCORE;

fn legal_form_delta(q: &PreparedName, c: &PreparedName) -> f64 {
    if q.legal_forms.is_empty() || c.legal_forms.is_empty() {
        return 0.0;
    }
    let compatible = q
        .legal_forms
        .iter()
        .any(|a| c.legal_forms.iter().any(|b| a.compatible(*b)));
    if compatible { 0.0 } else { LEGAL_FORM_CONFLICT }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// "sergey~sergei 1.00 (w 0.45); ivanov~ivanov 1.00 (w 0.92); list only: petrovich (patronymic)".
fn explain_names(q: &PreparedName, c: &PreparedName, ns: &align::NameScore) -> String {
    let span = |toks: &[TokenInfo], (s, l): (usize, usize)| {
        toks[s..s + l]
            .iter()
            .map(|t| t.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out: Vec<String> = ns
        .pairs
        .iter()
        .map(|p| {
            format!(
                "{}~{} {:.2} (w {:.2})",
                span(&q.tokens, p.q),
                span(&c.tokens, p.c),
                p.sim,
                p.weight
            )
        })
        .collect();
    let list = |toks: &[TokenInfo], idx: &[usize]| {
        idx.iter()
            .filter(|i| toks[**i].role != TokenRole::Particle)
            .map(|i| match toks[*i].role {
                TokenRole::Patronymic => format!("{} (patronymic)", toks[*i].text),
                _ => toks[*i].text.clone(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let qo = list(&q.tokens, &ns.unmatched_query);
    let co = list(&c.tokens, &ns.unmatched_list);
    let tag = if ns.substitution {
        "contradicting"
    } else {
        "extra"
    };
    if !qo.is_empty() {
        out.push(format!("{tag} in query: {qo}"));
    }
    if !co.is_empty() {
        out.push(format!("{tag} in list: {co}"));
    }
    if ns.capped {
        out.push("little name evidence: capped".to_string());
    }
    out.join("; ")
}

#[cfg(test)]
mod tests;
