//! The comparison vector of a pair: for each compared attribute, an agreement level.
//!
//! Contract: level 0 means the attribute is missing on either side and is neutral (weight
//! 0); level 1 is exact agreement; higher levels are weaker agreement, the last one is
//! disagreement. Strings are compared on their keys (see `prepare`), so a level never
//! depends on the script or romanisation scheme. Given name and surname are also compared
//! crosswise, so a record with the two swapped still agrees.

use serde::{Deserialize, Serialize};

use super::compare::{damerau_levenshtein, jaro_winkler, one_edit, within_one_edit};
use super::prepare::{Features, Interner, Sym};

/// Number of compared attributes.
pub const COMPARISONS: usize = 14;

/// Largest number of levels of any comparison, missing included.
pub(crate) const MAX_LEVELS: usize = 6;

/// Agreement levels of one pair, indexed like [`Comparison::ALL`].
pub type Levels = [u8; COMPARISONS];

/// An attribute the matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Given name (compared crosswise with the surname for swapped names).
    GivenName,
    /// Surname or organisation name.
    Surname,
    /// Patronymic.
    Patronymic,
    /// Date of birth.
    BirthDate,
    /// Phone number.
    Phone,
    /// E-mail address.
    Email,
    /// House number.
    StreetNumber,
    /// Street name.
    Street,
    /// Further address detail.
    AddressExtra,
    /// City, town or suburb.
    Locality,
    /// Postal code.
    Postcode,
    /// Region or state.
    Region,
    /// INN, SNILS, passport, OGRN where both records have the same kind.
    NationalId,
    /// An identifier that may carry typos (FEBRL's social security id).
    OtherId,
}

impl Comparison {
    /// Every comparison, in vector order.
    pub const ALL: [Comparison; COMPARISONS] = [
        Comparison::GivenName,
        Comparison::Surname,
        Comparison::Patronymic,
        Comparison::BirthDate,
        Comparison::Phone,
        Comparison::Email,
        Comparison::StreetNumber,
        Comparison::Street,
        Comparison::AddressExtra,
        Comparison::Locality,
        Comparison::Postcode,
        Comparison::Region,
        Comparison::NationalId,
        Comparison::OtherId,
    ];

    /// Names of the levels after "missing" (level 1 first).
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Comparison::GivenName | Comparison::Surname => &["exact", "close", "near", "different"],
            Comparison::Patronymic
            | Comparison::Street
            | Comparison::AddressExtra
            | Comparison::Locality => &["exact", "close", "different"],
            Comparison::BirthDate => &[
                "exact",
                "day_month_swapped",
                "one_digit",
                "same_year",
                "different",
            ],
            Comparison::Phone | Comparison::Postcode | Comparison::NationalId => {
                &["exact", "one_digit", "different"]
            }
            Comparison::Email => &["exact", "close", "different"],
            Comparison::OtherId => &["exact", "one_edit", "different"],
            Comparison::StreetNumber | Comparison::Region => &["exact", "different"],
        }
    }

    /// Number of levels including "missing" (level 0).
    pub(crate) fn level_count(self) -> usize {
        self.levels().len() + 1
    }

    /// The "different" level.
    pub(crate) fn different(self) -> u8 {
        // At most 5 levels after missing, so this fits a u8.
        self.levels().len() as u8
    }
}

/// Remembered levels of symbol pairs: names and address words repeat, and a lookup is
/// cheaper than Jaro-Winkler. A small direct-mapped cache per thread (about 600 KB, so it
/// stays in the processor's cache); a colliding pair simply replaces the older one.
#[derive(Debug)]
pub(crate) struct Memo {
    names: Slots,
    places: Slots,
}

#[derive(Debug)]
struct Slots {
    keys: Vec<u64>,
    levels: Vec<u8>,
    bits: u32,
}

const MEMO_BITS: u32 = 15;
/// One pair of records compares a handful of symbol pairs: a tiny table, since clearing
/// the full one costs more than the comparisons it saves.
const PAIR_MEMO_BITS: u32 = 4;

impl Slots {
    fn new(bits: u32) -> Self {
        Slots {
            // Key 0 (the pair 0, 0) never occurs: missing values are answered before lookup.
            keys: vec![0; 1 << bits],
            levels: vec![0; 1 << bits],
            bits,
        }
    }

    fn get_or(&mut self, a: Sym, b: Sym, f: impl FnOnce() -> u8) -> u8 {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = (u64::from(lo) << 32) | u64::from(hi);
        // Multiplicative hashing: the top bits of the product index the table.
        let slot = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - self.bits)) as usize;
        if self.keys[slot] == key {
            return self.levels[slot];
        }
        let l = f();
        self.keys[slot] = key;
        self.levels[slot] = l;
        l
    }
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            names: Slots::new(MEMO_BITS),
            places: Slots::new(MEMO_BITS),
        }
    }
}

impl Memo {
    /// A memo for scoring one pair of records.
    pub(crate) fn for_one_pair() -> Self {
        Memo {
            names: Slots::new(PAIR_MEMO_BITS),
            places: Slots::new(PAIR_MEMO_BITS),
        }
    }

    fn name(&mut self, s: &Interner, a: Sym, b: Sym) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        if a == b {
            return 1;
        }
        self.names.get_or(a, b, || name_level(s, a, b))
    }

    /// The better of the key and the folded-name levels (a name is a (key, folded) pair).
    fn name_both(&mut self, s: &Interner, a: (Sym, Sym), b: (Sym, Sym)) -> u8 {
        let by_key = self.name(s, a.0, b.0);
        if by_key <= 1 {
            return by_key;
        }
        // Folded names of different scripts never agree: skip them.
        let script = |x: Sym| s.get(x).as_bytes().first().map(|c| c.is_ascii());
        if script(a.1) != script(b.1) {
            return by_key;
        }
        best(by_key, self.name(s, a.1, b.1))
    }

    fn patronymic(&mut self, s: &Interner, a: Sym, b: Sym) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        if a == b {
            return 1;
        }
        self.names.get_or(a, b, || patronymic_level(s, a, b))
    }

    fn place(&mut self, s: &Interner, a: Sym, b: Sym) -> u8 {
        if a == 0 || b == 0 {
            return 0;
        }
        if a == b {
            return 1;
        }
        self.places.get_or(a, b, || place_level(s, a, b))
    }
}

/// The stronger of two levels of one comparison (0, missing, only if both are).
fn best(a: u8, b: u8) -> u8 {
    match (a, b) {
        (0, x) | (x, 0) => x,
        (x, y) => x.min(y),
    }
}

/// Jaro-Winkler at or above this is a "close" name (a typo or a spelling variant).
const NAME_CLOSE: f64 = 0.92;
/// Jaro-Winkler at or above this is a "near" name.
const NAME_NEAR: f64 = 0.80;
/// Jaro-Winkler at or above this is a "close" address word.
const PLACE_CLOSE: f64 = 0.90;

/// The level of two name keys: exact, close (one edit or JW ≥ 0.92), near (JW ≥ 0.80, an
/// initial, or a shared token of a multi-word name), different.
pub(crate) fn name_level(strings: &Interner, a: Sym, b: Sym) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (x, y) = (strings.get(a), strings.get(b));
    if within_one_edit(x, y) {
        return 2;
    }
    let jw = jaro_winkler(x, y);
    if jw >= NAME_CLOSE {
        return 2;
    }
    if jw >= NAME_NEAR || is_initial_of(x, y) || is_initial_of(y, x) || share_token(x, y) {
        return 3;
    }
    4
}

fn is_initial_of(short: &str, long: &str) -> bool {
    let mut c = short.chars();
    matches!((c.next(), c.next()), (Some(i), None) if long.starts_with(i))
}

fn share_token(x: &str, y: &str) -> bool {
    (x.contains(' ') || y.contains(' ')) && x.split(' ').any(|t| y.split(' ').any(|u| t == u))
}

/// Given-name and surname levels, taking the crosswise comparison when it agrees better
/// (names entered in the wrong fields).
pub(crate) fn names_levels(s: &Interner, memo: &mut Memo, a: &Features, b: &Features) -> (u8, u8) {
    let given = memo.name_both(s, (a.given, a.given_f), (b.given, b.given_f));
    let surname = memo.name_both(s, (a.surname, a.surname_f), (b.surname, b.surname_f));
    if (1..=2).contains(&given) && (1..=2).contains(&surname) {
        return (given, surname);
    }
    let g_x = memo.name_both(s, (a.given, a.given_f), (b.surname, b.surname_f));
    let s_x = memo.name_both(s, (a.surname, a.surname_f), (b.given, b.given_f));
    // Swapped when one name agrees crosswise within a typo and the other at least nearly
    // (a swap and a typo together), and that is better than the direct comparison.
    let swapped = ((1..=2).contains(&g_x) && (1..=3).contains(&s_x))
        || ((1..=3).contains(&g_x) && (1..=2).contains(&s_x));
    let rank = |l: u8| if l == 0 { 5 } else { l };
    if swapped && rank(g_x) + rank(s_x) < rank(given) + rank(surname) {
        return (g_x, s_x);
    }
    (given, surname)
}

/// Birth-date level: exact, day and month swapped, one digit off (or two adjacent digits
/// swapped), same year, different.
pub(crate) fn dob_level(a: u32, b: u32) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (ya, ma, da) = (a / 10_000, a / 100 % 100, a % 100);
    let (yb, mb, db) = (b / 10_000, b / 100 % 100, b % 100);
    if ya == yb && ma == db && da == mb {
        return 2;
    }
    if one_edit(&digits8(a), &digits8(b)) {
        return 3;
    }
    if ya == yb {
        return 4;
    }
    5
}

fn digits8(x: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    let mut v = x;
    for slot in out.iter_mut().rev() {
        // v % 10 is a single digit.
        *slot = (v % 10) as u8;
        v /= 10;
    }
    out
}

/// Decimal digits of a number, most significant first, in a fixed buffer.
fn digits_of(x: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut v = x;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = (v % 10) as u8;
        v /= 10;
        if v == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Level of two numbers: exact, one digit off, different.
pub(crate) fn number_level(a: u64, b: u64) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (mut ba, mut bb) = ([0u8; 20], [0u8; 20]);
    if one_edit(digits_of(a, &mut ba), digits_of(b, &mut bb)) {
        2
    } else {
        3
    }
}

/// Level of two short codes (postcode, other id): exact, one edit, different.
pub(crate) fn code_level(s: &Interner, a: Sym, b: Sym) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    if within_one_edit(s.get(a), s.get(b)) {
        2
    } else {
        3
    }
}

/// Level of two exact-only values: exact, different.
pub(crate) fn exact_level(a: Sym, b: Sym) -> u8 {
    match (a, b) {
        (0, _) | (_, 0) => 0,
        _ if a == b => 1,
        _ => 2,
    }
}

/// Level of two address parts: exact, close (one edit or JW ≥ 0.90), different.
pub(crate) fn place_level(s: &Interner, a: Sym, b: Sym) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (x, y) = (s.get(a), s.get(b));
    if within_one_edit(x, y) || jaro_winkler(x, y) >= PLACE_CLOSE {
        2
    } else {
        3
    }
}

/// E-mail level: exact, close (one edit, or the same mailbox name at another domain),
/// different.
pub(crate) fn email_level(s: &Interner, a: Sym, b: Sym) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (x, y) = (s.get(a), s.get(b));
    if within_one_edit(x, y) || (!mailbox(x).is_empty() && mailbox(x) == mailbox(y)) {
        2
    } else {
        3
    }
}

/// The part of an e-mail address before `@`.
fn mailbox(e: &str) -> &str {
    e.split('@').next().unwrap_or("")
}

/// National ids of the same kind on both records: any equal → exact; else any one digit
/// apart → one digit; else any present on both → different; none on both → missing.
pub(crate) fn national_id_level(a: &[u64; 4], b: &[u64; 4]) -> u8 {
    let mut best = 0u8;
    for (x, y) in a.iter().zip(b) {
        let l = number_level(*x, *y);
        if l != 0 && (best == 0 || l < best) {
            best = l;
        }
    }
    best
}

/// The full comparison vector of two records.
pub(crate) fn levels(s: &Interner, memo: &mut Memo, a: &Features, b: &Features) -> Levels {
    let (given, surname) = names_levels(s, memo, a, b);
    [
        given,
        surname,
        best(
            memo.patronymic(s, a.patronymic, b.patronymic),
            memo.patronymic(s, a.patronymic_f, b.patronymic_f),
        ),
        dob_level(a.dob, b.dob),
        number_level(a.phone, b.phone),
        email_level(s, a.email, b.email),
        exact_level(a.street_number, b.street_number),
        memo.place(s, a.street, b.street),
        memo.place(s, a.extra, b.extra),
        memo.place(s, a.locality, b.locality),
        code_level(s, a.postcode, b.postcode),
        exact_level(a.region, b.region),
        national_id_level(&a.ids, &b.ids),
        code_level(s, a.other_id, b.other_id),
    ]
}

/// A comparison vector built step by step with a running weight and an upper bound.
struct Bounded<'w> {
    levels: Levels,
    weight: f64,
    /// The largest weight the comparisons not yet made could still add.
    open: f64,
    weights: &'w [[f64; MAX_LEVELS]; COMPARISONS],
    best: &'w [f64; COMPARISONS],
    floor: f64,
}

impl Bounded<'_> {
    /// Records a level; false when the weight can no longer reach the floor.
    fn set(&mut self, c: Comparison, level: u8) -> bool {
        let k = c as usize;
        self.levels[k] = level;
        self.weight += self.weights[k][usize::from(level)];
        self.open -= self.best[k];
        self.weight + self.open >= self.floor
    }
}

/// The comparison vector and its weight, or `None` as soon as the weight cannot reach
/// `floor` whatever the remaining comparisons give. Cheap comparisons (numbers, codes,
/// exact symbols) come first, names next and address words last, so most non-matches are
/// dismissed before any string similarity is computed.
pub(crate) fn levels_bounded(
    s: &Interner,
    memo: &mut Memo,
    a: &Features,
    b: &Features,
    weights: &[[f64; MAX_LEVELS]; COMPARISONS],
    best_weights: &[f64; COMPARISONS],
    floor: f64,
) -> Option<(Levels, f64)> {
    let mut v = Bounded {
        levels: [0; COMPARISONS],
        weight: 0.0,
        open: best_weights.iter().sum(),
        weights,
        best: best_weights,
        floor,
    };
    let cheap = [
        (Comparison::BirthDate, dob_level(a.dob, b.dob)),
        (Comparison::NationalId, national_id_level(&a.ids, &b.ids)),
        (Comparison::Phone, number_level(a.phone, b.phone)),
        (
            Comparison::StreetNumber,
            exact_level(a.street_number, b.street_number),
        ),
        (Comparison::Region, exact_level(a.region, b.region)),
    ];
    for (c, l) in cheap {
        if !v.set(c, l) {
            return None;
        }
    }
    if !v.set(Comparison::Postcode, code_level(s, a.postcode, b.postcode))
        || !v.set(Comparison::OtherId, code_level(s, a.other_id, b.other_id))
        || !v.set(Comparison::Email, email_level(s, a.email, b.email))
    {
        return None;
    }
    let (given, surname) = names_levels(s, memo, a, b);
    if !v.set(Comparison::Surname, surname) || !v.set(Comparison::GivenName, given) {
        return None;
    }
    let patronymic = best(
        memo.patronymic(s, a.patronymic, b.patronymic),
        memo.patronymic(s, a.patronymic_f, b.patronymic_f),
    );
    if !v.set(Comparison::Patronymic, patronymic)
        || !v.set(Comparison::Street, memo.place(s, a.street, b.street))
        || !v.set(Comparison::Locality, memo.place(s, a.locality, b.locality))
        || !v.set(Comparison::AddressExtra, memo.place(s, a.extra, b.extra))
    {
        return None;
    }
    Some((v.levels, v.weight))
}

/// Patronymic level: exact, close (JW ≥ 0.92, or within one edit, or two for a patronymic
/// of eight or more letters: they are long and often mistyped), different (another
/// father's name: Петрович and Павлович are three edits apart).
pub(crate) fn patronymic_level(s: &Interner, a: Sym, b: Sym) -> u8 {
    if a == 0 || b == 0 {
        return 0;
    }
    if a == b {
        return 1;
    }
    let (x, y) = (s.get(a), s.get(b));
    if within_one_edit(x, y) {
        return 2;
    }
    let jw = jaro_winkler(x, y);
    if jw >= NAME_CLOSE {
        return 2;
    }
    // Two edits in eight or more letters keep Jaro-Winkler well above 0.75: the distance
    // (the costlier measure) is computed only then.
    let long = x.chars().count().min(y.chars().count()) >= 8;
    if long && jw >= 0.75 && damerau_levenshtein(x, y) <= 2 {
        2
    } else {
        3
    }
}
