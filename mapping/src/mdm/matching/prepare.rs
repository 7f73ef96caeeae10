//! Normalisation of match records into compact, comparable features.
//!
//! Contract: every text value is reduced to a script- and scheme-independent key (names and
//! address words through [`crate::names::latin_key`]), so Иванов and Ivanoff, «ул. Ленина»
//! and «ulitsa Lenina» compare equal. Keys are interned: a record holds 4-byte symbols, and
//! equal keys have equal symbols. Numbers (birth date, phone, national ids) are held as
//! integers; 0 and symbol 0 mean "missing". A value that cannot be read is missing, never an
//! error: the matcher must accept whatever the sources hold.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::record::MatchRecord;
use crate::model::PartyKind;
use crate::names;
use crate::validate;

/// An interned key; 0 is the empty (missing) key.
pub(crate) type Sym = u32;

/// Generation marker found in a name: none, junior, senior.
pub(crate) const GEN_NONE: u8 = 0;
pub(crate) const GEN_JUNIOR: u8 = 1;
pub(crate) const GEN_SENIOR: u8 = 2;

/// Index of each deterministic national id in [`Features::ids`].
pub(crate) const ID_INN: usize = 0;
pub(crate) const ID_SNILS: usize = 1;
pub(crate) const ID_PASSPORT: usize = 2;
pub(crate) const ID_OGRN: usize = 3;

/// The comparable features of one record (about 100 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Features {
    /// Name keys (script-independent).
    pub given: Sym,
    pub surname: Sym,
    pub patronymic: Sym,
    /// Folded names (script kept): a typo in a same-script pair is one edit here, while
    /// the key rules can turn it into two.
    pub given_f: Sym,
    pub surname_f: Sym,
    pub patronymic_f: Sym,
    /// Birth date digits `YYYYMMDD` as a number; 0 when missing.
    pub dob: u32,
    /// Phone digits (country code included) as a number; 0 when missing.
    pub phone: u64,
    pub email: Sym,
    pub street_number: Sym,
    pub street: Sym,
    pub extra: Sym,
    pub locality: Sym,
    pub postcode: Sym,
    pub region: Sym,
    pub other_id: Sym,
    /// Valid INN, SNILS, passport, OGRN digits as numbers; 0 when missing or invalid.
    pub ids: [u64; 4],
    pub organisation: bool,
    pub generation: u8,
    /// Which input of a linkage the record belongs to (0 or 1); 0 for deduplication.
    pub side: u8,
}

/// A record's normalised values before interning (built in parallel, interned in order).
#[derive(Debug, Default)]
pub(crate) struct Normalized {
    given: NameForms,
    surname: NameForms,
    patronymic: NameForms,
    email: String,
    street_number: String,
    street: String,
    extra: String,
    locality: String,
    postcode: String,
    region: String,
    other_id: String,
    dob: u32,
    phone: u64,
    ids: [u64; 4],
    organisation: bool,
    generation: u8,
    /// Hashes of the record's own reference and its cross-references.
    refs: Vec<u64>,
}

/// Name tokens that mark a generation rather than a name.
const JUNIOR: [&str; 6] = ["jr", "junior", "младший", "мл", "mladshii", "mladshiy"];
const SENIOR: [&str; 6] = ["sr", "senior", "старший", "ст", "starshii", "starshiy"];

/// Address words that name a kind of street or place, in Russian (full, abbreviated and
/// romanised) and English: dropped so that «ул. Ленина» equals «Lenina street».
#[rustfmt::skip]
const PLACE_WORDS: &[&str] = &[
    // Russian
    "ул", "улица", "пр", "просп", "проспект", "пркт", "пер", "переулок", "ш", "шоссе", "б",
    "бул", "бульвар", "пл", "площадь", "наб", "набережная", "проезд", "туп", "тупик", "мкр",
    "микрорайон", "д", "дом", "г", "город", "пос", "поселок", "пгт", "с", "село", "дер",
    "деревня", "обл", "область", "край", "респ", "республика", "р", "н", "район", "т",
    // romanised
    "ul", "ulitsa", "ulica", "ulitca", "ulitza", "ulicza", "pr", "prt", "t", "b", "d", "r", "n", "prosp", "prospekt", "per", "pereulok", "sh",
    "shosse", "bul", "bulvar", "ploshchad", "ploshhad", "ploschad", "nab", "naberezhnaya",
    "naberezhnaia", "naberezhnaja", "proezd", "tup", "tupik", "mkr", "mikrorayon", "mikroraion",
    "dom", "g", "gorod", "pos", "poselok", "pgt", "selo", "der", "derevnya", "derevnia", "obl",
    "oblast", "kray", "krai", "resp", "respublika", "rayon", "raion", "rn",
    // English
    "street", "st", "road", "rd", "avenue", "ave", "av", "crescent", "cres", "circuit", "cct",
    "place", "pl", "drive", "dr", "court", "ct", "close", "lane", "ln", "way", "parade",
    "terrace", "tce", "boulevard", "blvd", "highway", "hwy",
];

/// A name's comparable forms.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NameForms {
    /// Its tokens' latin keys joined by a space.
    pub key: String,
    /// Its folded tokens joined by a space.
    pub folded: String,
    /// A generation marker found among the tokens (removed from both forms).
    pub generation: u8,
}

/// The forms of a name.
pub(crate) fn name_forms(value: &str) -> NameForms {
    let mut f = NameForms::default();
    for t in names::tokens(value) {
        if JUNIOR.contains(&t.as_str()) {
            f.generation = GEN_JUNIOR;
            continue;
        }
        if SENIOR.contains(&t.as_str()) {
            f.generation = GEN_SENIOR;
            continue;
        }
        let k = names::latin_key(&t);
        if k.is_empty() {
            continue;
        }
        if !f.key.is_empty() {
            f.key.push(' ');
            f.folded.push(' ');
        }
        f.key.push_str(&k);
        f.folded.push_str(&t);
    }
    f
}

/// The key of a name and its generation marker.
#[cfg(test)]
pub(crate) fn name_key(value: &str) -> (String, u8) {
    let f = name_forms(value);
    (f.key, f.generation)
}

/// The key of an address part: latin keys of its words without street and place types; if
/// only such words are present, they are kept (the value is then the type word itself).
pub(crate) fn place_key(value: &str) -> String {
    let toks = names::tokens(value);
    let kept: Vec<&String> = toks
        .iter()
        .filter(|t| !PLACE_WORDS.contains(&t.as_str()))
        .collect();
    let words: Vec<&String> = if kept.is_empty() {
        toks.iter().collect()
    } else {
        kept
    };
    let mut out = String::new();
    for t in words {
        let k = names::latin_key(t);
        if k.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&k);
    }
    out
}

/// Letters and digits of a value, folded, without separators (house numbers, postcodes,
/// other ids).
fn compact(value: &str) -> String {
    names::fold(value).chars().filter(|c| *c != ' ').collect()
}

/// Birth date digits as `YYYYMMDD`. Accepts `YYYYMMDD`, `YYYY-MM-DD` (also `.` or `/`) and
/// `DD.MM.YYYY` (also `-` or `/`). Month and day are not range-checked: a typo such as month
/// 14 still shares its year and day with the true date.
pub(crate) fn parse_dob(value: &str) -> u32 {
    let v = value.trim();
    let parts: Vec<&str> = v
        .split(['-', '.', '/', ' '])
        .filter(|p| !p.is_empty())
        .collect();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let num = |s: &str| s.parse::<u32>().ok();
    let (y, m, d) = match parts.as_slice() {
        [one] if one.len() == 8 && all_digits(one) => {
            match (num(&one[..4]), num(&one[4..6]), num(&one[6..])) {
                (Some(y), Some(m), Some(d)) => (y, m, d),
                _ => return 0,
            }
        }
        [a, b, c] if all_digits(a) && all_digits(b) && all_digits(c) => {
            if a.len() == 4 && b.len() <= 2 && c.len() <= 2 {
                match (num(a), num(b), num(c)) {
                    (Some(y), Some(m), Some(d)) => (y, m, d),
                    _ => return 0,
                }
            } else if c.len() == 4 && a.len() <= 2 && b.len() <= 2 {
                match (num(c), num(b), num(a)) {
                    (Some(y), Some(m), Some(d)) => (y, m, d),
                    _ => return 0,
                }
            } else {
                return 0;
            }
        }
        _ => return 0,
    };
    if !(1000..=2999).contains(&y) || m > 99 || d > 99 {
        return 0;
    }
    y * 10_000 + m * 100 + d
}

/// Phone digits: the E.164 form when the number is valid, otherwise its digits when there
/// are 7 to 15 of them; 0 when unreadable.
pub(crate) fn parse_phone(value: &str) -> u64 {
    let digits: String = match validate::phone(value) {
        Ok(e164) => e164.chars().filter(char::is_ascii_digit).collect(),
        Err(_) => value.chars().filter(char::is_ascii_digit).collect(),
    };
    if !(7..=15).contains(&digits.len()) {
        return 0;
    }
    digits.parse().unwrap_or(0)
}

fn id_number(value: Option<&str>, check: fn(&str) -> Result<String, validate::FieldError>) -> u64 {
    let Some(v) = value else { return 0 };
    // Sources group digits with spaces or hyphens; the validators of INN and OGRN do not.
    let v: String = v
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\u{a0}'))
        .collect();
    match check(&v) {
        Ok(s) => s
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// A stable 64-bit hash (FNV-1a); used for reference keys and blocking keys, so equal inputs
/// give equal hashes in every process.
pub(crate) fn fnv64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            // A separator that cannot occur in text, so ("ab","c") ≠ ("a","bc").
            h ^= 0xff;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        for b in *p {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The hash of a record reference (system, id).
pub(crate) fn ref_hash(system: &str, id: &str) -> u64 {
    fnv64(&[system.trim().as_bytes(), id.trim().as_bytes()])
}

fn opt(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Remembered name and address keys: the same names, streets and cities recur across
/// records, and keying them costs more than a lookup. One per thread; bounded.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    names: HashMap<String, NameForms, FxBuild>,
    places: HashMap<String, String, FxBuild>,
}

/// Entries per table before it is cleared.
const KEY_CACHE_LIMIT: usize = 200_000;

impl KeyCache {
    fn name(&mut self, v: Option<&str>) -> NameForms {
        let Some(v) = v else {
            return NameForms::default();
        };
        if let Some(f) = self.names.get(v) {
            return f.clone();
        }
        let f = name_forms(v);
        if self.names.len() >= KEY_CACHE_LIMIT {
            self.names.clear();
        }
        self.names.insert(v.to_owned(), f.clone());
        f
    }

    fn place(&mut self, v: Option<&str>) -> String {
        let Some(v) = v else { return String::new() };
        if let Some(k) = self.places.get(v) {
            return k.clone();
        }
        let k = place_key(v);
        if self.places.len() >= KEY_CACHE_LIMIT {
            self.places.clear();
        }
        self.places.insert(v.to_owned(), k.clone());
        k
    }
}

/// Normalises one record.
pub(crate) fn normalize(r: &MatchRecord) -> Normalized {
    normalize_with(r, &mut KeyCache::default())
}

/// Normalises one record, reusing keys already computed.
pub(crate) fn normalize_with(r: &MatchRecord, cache: &mut KeyCache) -> Normalized {
    let given = cache.name(opt(&r.given_name));
    let surname = cache.name(opt(&r.surname));
    let patronymic = cache.name(opt(&r.patronymic));
    let generation = given
        .generation
        .max(surname.generation)
        .max(patronymic.generation);
    let mut refs = vec![ref_hash(&r.source, &r.source_id)];
    for l in &r.links {
        if !l.system.trim().is_empty() && !l.id.trim().is_empty() {
            refs.push(ref_hash(&l.system, &l.id));
        }
    }
    Normalized {
        given,
        surname,
        patronymic,
        email: opt(&r.email).map(|e| e.to_lowercase()).unwrap_or_default(),
        street_number: opt(&r.street_number).map(compact).unwrap_or_default(),
        street: cache.place(opt(&r.street)),
        extra: cache.place(opt(&r.address_extra)),
        locality: cache.place(opt(&r.locality)),
        postcode: opt(&r.postcode).map(compact).unwrap_or_default(),
        region: cache.place(opt(&r.region)),
        other_id: opt(&r.other_id).map(compact).unwrap_or_default(),
        dob: opt(&r.birth_date).map(parse_dob).unwrap_or(0),
        phone: opt(&r.phone).map(parse_phone).unwrap_or(0),
        ids: [
            id_number(opt(&r.inn), validate::inn),
            id_number(opt(&r.snils), validate::snils),
            id_number(opt(&r.passport), validate::passport),
            id_number(opt(&r.ogrn), validate::ogrn),
        ],
        organisation: r.kind == PartyKind::Organisation,
        generation,
        refs,
    }
}

/// A fast non-cryptographic hasher for interning (keys are not attacker-chosen hash-flooding
/// material in a batch job; the map is private to one run).
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;

/// Interned keys: one text arena with offsets; lookup by 64-bit hash, verified against the
/// arena, with a side table for the rare hash collision.
#[derive(Debug)]
pub(crate) struct Interner {
    arena: String,
    /// Start of symbol i in `arena`; symbol i ends where i + 1 starts.
    starts: Vec<u32>,
    by_hash: HashMap<u64, Sym, FxBuild>,
    collided: HashMap<Box<str>, Sym, FxBuild>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            arena: String::new(),
            // Symbol 0 is the empty key.
            starts: vec![0, 0],
            by_hash: HashMap::default(),
            collided: HashMap::default(),
        }
    }
}

impl Interner {
    /// The text of a symbol.
    pub(crate) fn get(&self, s: Sym) -> &str {
        let i = s as usize;
        match (self.starts.get(i), self.starts.get(i + 1)) {
            (Some(&a), Some(&b)) => self.arena.get(a as usize..b as usize).unwrap_or(""),
            _ => "",
        }
    }

    fn intern(&mut self, s: &str) -> Sym {
        self.intern_hashed(s, fnv64(&[s.as_bytes()]))
    }

    fn intern_hashed(&mut self, s: &str, h: u64) -> Sym {
        if s.is_empty() {
            return 0;
        }
        if let Some(&sym) = self.by_hash.get(&h) {
            if self.get(sym) == s {
                return sym;
            }
            if let Some(&sym) = self.collided.get(s) {
                return sym;
            }
            let sym = self.push(s);
            self.collided.insert(s.into(), sym);
            return sym;
        }
        let sym = self.push(s);
        self.by_hash.insert(h, sym);
        sym
    }

    fn push(&mut self, s: &str) -> Sym {
        // Symbols are u32: a set of over four billion distinct keys is out of scope.
        let sym = (self.starts.len() - 1) as Sym;
        self.arena.push_str(s);
        self.starts.push(self.arena.len() as u32);
        sym
    }

    /// Memory held, in bytes (for reports).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.arena.capacity()
            + self.starts.capacity() * 4
            + self.by_hash.capacity() * 16
            + self.collided.capacity() * 24
    }
}

/// Normalised, interned records plus their reference hashes: the matcher's working set.
#[derive(Debug, Default)]
pub struct RecordSet {
    pub(crate) features: Vec<Features>,
    pub(crate) strings: Interner,
    /// (reference hash, record index) for every record's own reference and links.
    pub(crate) refs: Vec<(u64, u32)>,
}

/// The record set is full: matching indexes records with 32-bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("match: more than {max} records in one run", max = u32::MAX - 1)]
pub struct TooManyRecords;

impl RecordSet {
    /// An empty set.
    pub fn new() -> Self {
        RecordSet::default()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Normalises `records` (on up to `threads` threads) and appends them on `side` (0 for
    /// deduplication and the left input of a linkage, 1 for its right input).
    pub fn extend(
        &mut self,
        records: &[MatchRecord],
        side: u8,
        threads: usize,
    ) -> Result<(), TooManyRecords> {
        if self.features.len() + records.len() >= u32::MAX as usize {
            return Err(TooManyRecords);
        }
        let threads = threads.max(1);
        let per = records.len().div_ceil(threads).max(1);
        let normalized: Vec<Vec<Normalized>> = std::thread::scope(|s| {
            let handles: Vec<_> = records
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        let mut cache = KeyCache::default();
                        chunk
                            .iter()
                            .map(|r| normalize_with(r, &mut cache))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                // A normalising thread only panics on a bug; fall back to this thread then.
                .zip(records.chunks(per))
                .map(|(h, chunk)| {
                    h.join()
                        .unwrap_or_else(|_| chunk.iter().map(normalize).collect())
                })
                .collect()
        });
        for n in normalized.into_iter().flatten() {
            self.push(n, side);
        }
        Ok(())
    }

    /// A set of a few records on side 0, normalised on this thread.
    pub(crate) fn of(records: &[&MatchRecord]) -> Self {
        let mut set = RecordSet::new();
        for r in records {
            set.push(normalize(r), 0);
        }
        set
    }

    fn push(&mut self, n: Normalized, side: u8) {
        let idx = self.features.len() as u32;
        let s = &mut self.strings;
        let f = Features {
            given: s.intern(&n.given.key),
            surname: s.intern(&n.surname.key),
            patronymic: s.intern(&n.patronymic.key),
            given_f: s.intern(&n.given.folded),
            surname_f: s.intern(&n.surname.folded),
            patronymic_f: s.intern(&n.patronymic.folded),
            dob: n.dob,
            phone: n.phone,
            email: s.intern(&n.email),
            street_number: s.intern(&n.street_number),
            street: s.intern(&n.street),
            extra: s.intern(&n.extra),
            locality: s.intern(&n.locality),
            postcode: s.intern(&n.postcode),
            region: s.intern(&n.region),
            other_id: s.intern(&n.other_id),
            ids: n.ids,
            organisation: n.organisation,
            generation: n.generation,
            side,
        };
        self.features.push(f);
        for r in n.refs {
            self.refs.push((r, idx));
        }
    }

    /// Approximate memory held, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.features.capacity() * std::mem::size_of::<Features>()
            + self.refs.capacity() * 16
            + self.strings.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_key_across_scripts_and_mark_generations() {
        assert_eq!(name_key("Иванов").0, name_key("Ivanoff").0);
        assert_eq!(name_key("Сергей").0, name_key("Sergey").0);
        assert_eq!(name_key("Ёлкин").0, name_key("Елкин").0);
        assert_eq!(name_key("Петров мл.").1, GEN_JUNIOR);
        assert_eq!(name_key("Petrov Jr").0, name_key("Петров").0);
        assert_eq!(name_key("Smith Sr").1, GEN_SENIOR);
        assert_eq!(name_key(" , ").0, "");
    }

    #[test]
    fn place_words_are_dropped() {
        assert_eq!(place_key("ул. Ленина"), place_key("ulitsa Lenina"));
        assert_eq!(place_key("Lenina street"), place_key("Ленина"));
        assert_eq!(place_key("г. Москва"), place_key("Moskva"));
        // A value made only of a place word keeps it.
        assert_eq!(place_key("street"), names::latin_key("street"));
    }

    #[test]
    fn birth_dates() {
        assert_eq!(parse_dob("19800203"), 19_800_203);
        assert_eq!(parse_dob("1980-02-03"), 19_800_203);
        assert_eq!(parse_dob("03.02.1980"), 19_800_203);
        assert_eq!(parse_dob("3/2/1980"), 19_800_203);
        // A typo keeps its digits.
        assert_eq!(parse_dob("19801403"), 19_801_403);
        for bad in [
            "",
            "1980",
            "198002031",
            "ab.cd.efgh",
            "1980-02",
            "0000-01-01",
        ] {
            assert_eq!(parse_dob(bad), 0, "{bad}");
        }
    }

    #[test]
    fn phones_and_ids() {
        assert_eq!(parse_phone("8 (912) 345-67-89"), 79_123_456_789);
        assert_eq!(parse_phone("+7 912 345 67 89"), 79_123_456_789);
        assert_eq!(parse_phone("12-34"), 0);
        let r = MatchRecord {
            inn: Some("500100732259".into()),
            snils: Some("112-233-445 95".into()),
            passport: Some("4510 123456".into()),
            ogrn: Some("1027700132195".into()),
            ..MatchRecord::default()
        };
        let n = normalize(&r);
        assert_eq!(
            n.ids,
            [
                500_100_732_259,
                11_223_344_595,
                4_510_123_456,
                1_027_700_132_195
            ]
        );
        // An id failing its checksum is not a key.
        let r = MatchRecord {
            inn: Some("500100732258".into()),
            ..MatchRecord::default()
        };
        assert_eq!(normalize(&r).ids[ID_INN], 0);
    }

    #[test]
    fn interning_gives_equal_symbols_for_equal_keys() {
        let mut set = RecordSet::new();
        let a = MatchRecord {
            source: "abs".into(),
            source_id: "1".into(),
            surname: Some("Иванов".into()),
            street: Some("ул. Ленина".into()),
            ..MatchRecord::default()
        };
        let b = MatchRecord {
            source: "cards".into(),
            source_id: "1".into(),
            surname: Some("Ivanov".into()),
            street: Some("Lenina ul.".into()),
            ..MatchRecord::default()
        };
        set.extend(&[a, b], 0, 2).unwrap();
        let (fa, fb) = (set.features[0], set.features[1]);
        assert_eq!(fa.surname, fb.surname);
        assert_ne!(fa.surname, 0);
        assert_eq!(fa.street, fb.street);
        assert_eq!(fa.given, 0);
        assert_eq!(set.strings.get(0), "");
        assert_eq!(set.strings.get(fa.surname), names::latin_key("иванов"));
        // Own references differ by system.
        assert_eq!(set.refs.len(), 2);
        assert_ne!(set.refs[0].0, set.refs[1].0);
    }

    #[test]
    fn interner_survives_hash_collisions() {
        let mut i = Interner::default();
        // Two different keys under one hash.
        let a = i.intern_hashed("alpha", 7);
        let b = i.intern_hashed("beta", 7);
        assert_ne!(a, b);
        assert_eq!(i.intern_hashed("alpha", 7), a);
        assert_eq!(i.intern_hashed("beta", 7), b);
        assert_eq!(i.get(a), "alpha");
        assert_eq!(i.get(b), "beta");
        assert_eq!(i.intern(""), 0);
        assert_eq!(i.get(999), "");
    }
}
