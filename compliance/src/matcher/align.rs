//! The name score: tokens of the screened name and of a list name are paired (in any
//! order, one-to-one, joined or split words allowed), and the score is the weighted share of
//! agreeing evidence.
//!
//! ```text
//! score = Σ pairs w·sim / (Σ pairs w + Σ unmatched λ·pw)
//! ```
//! `w` is the list token's weight (its rarity), `pw = max(w, 0.5)` the weight an unmatched
//! token costs. λ says how much a missing token contradicts the match:
//! - when both names have unmatched name tokens or initials, they name different people or
//!   companies (a swapped surname, a different patronymic, "Hans O." vs "Hans Joachim"):
//!   λ = 1;
//! - when only one side has unmatched tokens, they are extra names: for persons λ = 0.25
//!   (middle, father's and tribal names are often left out on either side) once at least
//!   two name tokens agree, 0.5 when only one does ("William Ward" is not "Abu al-Ward"),
//!   0.1 for a patronymic (optional); for organisations 0.5 (an extra word is often another
//!   company of a group).
//!
//! Arabic lineage is read too: "Salman bin Muhammad" (Salman, son of Muhammad) contradicts
//! "Muhammad bin Salman" although every token pairs.
//!
//! A name matched only through initials, particles or numbers is capped at 0.5, and a match
//! whose paired name tokens weigh less than [`MIN_EVIDENCE`] in total is scaled down, so that
//! generic words ("Mohammed", "Bank") never make a hit by themselves.

use super::similarity::key_sim;
use super::{PreparedName, TokenInfo};
use crate::normalize::{NameKind, TokenRole};

/// Paired name-token weight below which the score is scaled down proportionally.
pub const MIN_EVIDENCE: f64 = 0.6;
/// Score ceiling when no name token (only initials, particles, numbers) matched.
pub const NO_NAME_TOKEN_CAP: f64 = 0.5;
/// Pair weight and similarity of an initial standing for a name ("V." for "Vladimir").
const INITIAL_WEIGHT: f64 = 0.5;
const INITIAL_SIM: f64 = 0.9;

/// Penalty factors λ (see the module comment); the index uses the smallest per role as its
/// bound, so keep [`min_lambda`] in step.
fn lambda(role: TokenRole, substitution: bool, person: bool, one_name_pair: bool) -> f64 {
    match (role, substitution) {
        (TokenRole::Particle, _) => 0.0,
        (TokenRole::Name | TokenRole::Patronymic | TokenRole::Initial, true) => 1.0,
        (TokenRole::Number, true) => 0.5,
        (TokenRole::Patronymic, false) if person => 0.1,
        (TokenRole::Name | TokenRole::Patronymic, false) => {
            if person && !one_name_pair {
                0.25
            } else {
                0.5
            }
        }
        (TokenRole::Number, false) => 0.3,
        (TokenRole::Initial, false) => 0.2,
    }
}

/// Factor applied when the names pair up but read father and son the other way round.
const LINEAGE_REVERSED: f64 = 0.7;

/// The smallest λ a token of `role` can get (for the index's upper bound).
pub fn min_lambda(role: TokenRole) -> f64 {
    match role {
        TokenRole::Name => 0.25,
        TokenRole::Patronymic => 0.1,
        // Not indexed: the index treats them optimistically instead.
        TokenRole::Particle | TokenRole::Number | TokenRole::Initial => 0.0,
    }
}

/// What an unmatched token costs before λ.
pub fn penalty_weight(role: TokenRole, weight: f64) -> f64 {
    match role {
        TokenRole::Name | TokenRole::Patronymic => weight.max(0.5),
        TokenRole::Number | TokenRole::Initial => 0.3,
        TokenRole::Particle => 0.0,
    }
}

/// One pairing of query tokens `q` with list tokens `c` (spans of one to three tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub q: (usize, usize),
    pub c: (usize, usize),
    pub sim: f64,
    pub weight: f64,
    /// A name or patronymic pairing (not an initial, particle or number).
    pub is_name: bool,
}

/// The name comparison in numbers, for the score and its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct NameScore {
    pub score: f64,
    pub pairs: Vec<Pair>,
    pub unmatched_query: Vec<usize>,
    pub unmatched_list: Vec<usize>,
    pub substitution: bool,
    pub capped: bool,
    /// "X bin Y" on one side pairs with "Y bin X" on the other.
    pub lineage_reversed: bool,
}

fn is_wordlike(role: TokenRole) -> bool {
    matches!(role, TokenRole::Name | TokenRole::Patronymic)
}

/// Compares a query name with a list name. `person` says whether the pair is read as a
/// person's names (the list entry is a person, or unknown while the subject is one).
pub fn score_names(q: &PreparedName, c: &PreparedName, person: bool) -> NameScore {
    let mut cands: Vec<Pair> = Vec::new();
    for (i, qt) in q.tokens.iter().enumerate() {
        for (j, ct) in c.tokens.iter().enumerate() {
            let sim = token_sim(qt, ct);
            if sim > 0.0 {
                cands.push(Pair {
                    q: (i, 1),
                    c: (j, 1),
                    sim,
                    weight: ct.weight,
                    is_name: is_wordlike(qt.role),
                });
            }
        }
    }
    compound_pairs(q, c, &mut cands);
    // Best similarity first; at equal similarity single tokens before joined ones, heavier
    // before lighter, then by position: a deterministic greedy one-to-one assignment.
    cands.sort_by(|a, b| {
        b.sim
            .total_cmp(&a.sim)
            .then((a.q.1 + a.c.1).cmp(&(b.q.1 + b.c.1)))
            .then(b.weight.total_cmp(&a.weight))
            .then(a.q.cmp(&b.q))
            .then(a.c.cmp(&b.c))
    });
    let mut q_used = vec![false; q.tokens.len()];
    let mut c_used = vec![false; c.tokens.len()];
    let mut pairs = Vec::new();
    for p in cands {
        let qs = p.q.0..p.q.0 + p.q.1;
        let cs = p.c.0..p.c.0 + p.c.1;
        if q_used[qs.clone()].iter().any(|u| *u) || c_used[cs.clone()].iter().any(|u| *u) {
            continue;
        }
        q_used[qs].iter_mut().for_each(|u| *u = true);
        c_used[cs].iter_mut().for_each(|u| *u = true);
        pairs.push(p);
    }
    pair_initials(q, c, &mut q_used, &mut c_used, &mut pairs);

    let unmatched_query: Vec<usize> = (0..q.tokens.len()).filter(|i| !q_used[*i]).collect();
    let unmatched_list: Vec<usize> = (0..c.tokens.len()).filter(|j| !c_used[*j]).collect();
    let core = |role: TokenRole| is_wordlike(role) || role == TokenRole::Initial;
    let substitution = unmatched_query.iter().any(|i| core(q.tokens[*i].role))
        && unmatched_list.iter().any(|j| core(c.tokens[*j].role));
    let s: f64 = pairs.iter().map(|p| p.weight * p.sim).sum();
    let m: f64 = pairs.iter().map(|p| p.weight).sum();
    let one_name_pair = pairs.iter().filter(|p| p.is_name).count() < 2;
    let mut pen = 0.0;
    for i in &unmatched_query {
        let t = &q.tokens[*i];
        pen +=
            lambda(t.role, substitution, person, one_name_pair) * penalty_weight(t.role, t.weight);
    }
    for j in &unmatched_list {
        let t = &c.tokens[*j];
        pen +=
            lambda(t.role, substitution, person, one_name_pair) * penalty_weight(t.role, t.weight);
    }
    let mut score = if m > 0.0 { s / (m + pen) } else { 0.0 };
    let lineage_reversed = lineage_reversed(q, c, &pairs);
    if lineage_reversed {
        score *= LINEAGE_REVERSED;
    }
    let evidence: f64 = pairs.iter().filter(|p| p.is_name).map(|p| p.weight).sum();
    let mut capped = false;
    if evidence == 0.0 {
        capped = score > NO_NAME_TOKEN_CAP;
        score = score.min(NO_NAME_TOKEN_CAP);
    } else if evidence < MIN_EVIDENCE {
        capped = true;
        score *= evidence / MIN_EVIDENCE;
    }
    NameScore {
        score,
        pairs,
        unmatched_query,
        unmatched_list,
        substitution,
        capped,
        lineage_reversed,
    }
}

/// Whether a "X bin Y" of one name is paired as "Y bin X" in the other: the names on both
/// sides of a `bin` (particles skipped) paired crosswise with those around a `bin` of the
/// other name.
fn lineage_reversed(q: &PreparedName, c: &PreparedName, pairs: &[Pair]) -> bool {
    let is_bin =
        |t: &TokenInfo| t.role == TokenRole::Particle && matches!(t.key.as_str(), "bin" | "bint");
    let neighbours = |n: &PreparedName, at: usize| {
        let before = n.tokens[..at]
            .iter()
            .rposition(|t| t.role != TokenRole::Particle);
        let after = n.tokens[at + 1..]
            .iter()
            .position(|t| t.role != TokenRole::Particle)
            .map(|p| p + at + 1);
        before.zip(after)
    };
    let paired = |qi: usize, cj: usize| {
        pairs
            .iter()
            .any(|p| p.q.1 == 1 && p.c.1 == 1 && p.q.0 == qi && p.c.0 == cj)
    };
    let q_bins: Vec<(usize, usize)> = (0..q.tokens.len())
        .filter(|i| is_bin(&q.tokens[*i]))
        .filter_map(|i| neighbours(q, i))
        .collect();
    if q_bins.is_empty() {
        return false;
    }
    (0..c.tokens.len())
        .filter(|j| is_bin(&c.tokens[*j]))
        .filter_map(|j| neighbours(c, j))
        .any(|(c_before, c_after)| {
            q_bins
                .iter()
                .any(|(q_before, q_after)| paired(*q_before, c_after) && paired(*q_after, c_before))
        })
}

/// Similarity of two single tokens by role.
fn token_sim(a: &TokenInfo, b: &TokenInfo) -> f64 {
    match (a.role, b.role) {
        (TokenRole::Name | TokenRole::Patronymic, TokenRole::Name | TokenRole::Patronymic) => {
            let mut best = key_sim(&a.key, &b.key, 2);
            if best < 1.0 && (!a.alt_keys.is_empty() || !b.alt_keys.is_empty()) {
                for x in std::iter::once(&a.key).chain(&a.alt_keys) {
                    for y in std::iter::once(&b.key).chain(&b.alt_keys) {
                        best = best.max(key_sim(x, y, 2));
                    }
                }
            }
            best
        }
        (TokenRole::Particle, TokenRole::Particle) | (TokenRole::Number, TokenRole::Number)
            if a.key == b.key =>
        {
            1.0
        }
        _ => 0.0,
    }
}

/// Joined and split words: one token against two or three adjacent tokens of the other
/// name ("AlisherUsmanov" / "Alisher Usmanov", "Plat Ono Vich" / "Platonovich").
fn compound_pairs(q: &PreparedName, c: &PreparedName, cands: &mut Vec<Pair>) {
    for comp in &c.compounds {
        for (i, qt) in q.tokens.iter().enumerate() {
            if !is_wordlike(qt.role) {
                continue;
            }
            let sim = key_sim(&qt.key, &comp.key, 1);
            if sim > 0.0 {
                cands.push(Pair {
                    q: (i, 1),
                    c: (comp.start, comp.len),
                    sim,
                    weight: comp.weight,
                    is_name: true,
                });
            }
        }
    }
    for comp in &q.compounds {
        for (j, ct) in c.tokens.iter().enumerate() {
            if !is_wordlike(ct.role) {
                continue;
            }
            let sim = key_sim(&comp.key, &ct.key, 1);
            if sim > 0.0 {
                cands.push(Pair {
                    q: (comp.start, comp.len),
                    c: (j, 1),
                    sim,
                    weight: ct.weight,
                    is_name: true,
                });
            }
        }
    }
}

/// Initials pair with a remaining name token starting with the same letter, or with an
/// equal initial, after all full tokens are paired.
fn pair_initials(
    q: &PreparedName,
    c: &PreparedName,
    q_used: &mut [bool],
    c_used: &mut [bool],
    pairs: &mut Vec<Pair>,
) {
    let first = |k: &str| k.chars().next();
    // By folded letter or by key letter: "J." stands for "Jean" (key "ean"), "С." for "Sergey".
    let same_initial = |a: &TokenInfo, b: &TokenInfo| {
        first(&a.text) == first(&b.text) || first(&a.key) == first(&b.key)
    };
    for (i, qt) in q.tokens.iter().enumerate() {
        if q_used[i] {
            continue;
        }
        for (j, ct) in c.tokens.iter().enumerate() {
            if c_used[j] {
                continue;
            }
            let sim = match (qt.role, ct.role) {
                (TokenRole::Initial, TokenRole::Initial) if qt.key == ct.key => 1.0,
                (TokenRole::Initial, r) | (r, TokenRole::Initial)
                    if is_wordlike(r) && same_initial(qt, ct) =>
                {
                    INITIAL_SIM
                }
                _ => continue,
            };
            q_used[i] = true;
            c_used[j] = true;
            pairs.push(Pair {
                q: (i, 1),
                c: (j, 1),
                sim,
                weight: INITIAL_WEIGHT,
                is_name: false,
            });
            break;
        }
    }
}

/// The most a query token of `role` can add to the paired weight without being found by
/// the index (particles, numbers and initials are not indexed).
pub fn optimistic_weight(role: TokenRole) -> f64 {
    match role {
        TokenRole::Particle => 0.1,
        TokenRole::Number => 0.3,
        TokenRole::Initial => INITIAL_WEIGHT,
        TokenRole::Name | TokenRole::Patronymic => 0.0,
    }
}

/// Whether a list name is read as a person's.
pub fn reads_as_person(list_kind: NameKind, query_kind: NameKind) -> bool {
    match list_kind {
        NameKind::Person => true,
        NameKind::Organization => false,
        NameKind::Unknown => query_kind == NameKind::Person,
    }
}
