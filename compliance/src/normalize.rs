//! A name as the matcher compares it: folded tokens with a role and a script-independent key,
//! honorifics dropped, legal forms taken out into classes, numerals and abbreviations read.
//!
//! Contract: [`normalize_name`] is pure and deterministic; every token of the result has a
//! non-empty `key`. A name made only of titles or legal forms keeps them as name tokens, so
//! that "LLC" alone is still a (weak) name rather than nothing.

mod vocab;

use std::collections::HashMap;
use std::sync::OnceLock;

use mapping::names;

use crate::entry::EntityKind;

pub use vocab::LegalClass;

/// What a token is to the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenRole {
    /// A given name, surname or word of an organisation's name.
    Name,
    /// A Russian/Turkic patronymic (…ovich, …evna, …ogly): optional when one side lacks it.
    Patronymic,
    /// al, bin, de, van, the, of …: compared but of little weight.
    Particle,
    /// A single letter of a person's name.
    Initial,
    /// A number (digits, number words, ordinals, roman numerals of organisations).
    Number,
}

/// One token of a normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameToken {
    /// Folded text (see `mapping::names::fold`).
    pub text: String,
    /// `mapping::names::latin_key` of the text; a canonical spelling for particles, digits
    /// for numbers, the key's first letter for initials.
    pub key: String,
    pub role: TokenRole,
}

/// How a name is read, from the entity kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameKind {
    Person,
    Organization,
    /// Unknown kind: titles and legal forms are both looked for, cautiously.
    Unknown,
}

impl NameKind {
    pub fn of(kind: Option<EntityKind>) -> NameKind {
        match kind {
            Some(EntityKind::Person) => NameKind::Person,
            Some(EntityKind::Organization | EntityKind::Vessel | EntityKind::Aircraft) => {
                NameKind::Organization
            }
            Some(EntityKind::Unknown) | None => NameKind::Unknown,
        }
    }
}

/// A normalised name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizedName {
    pub tokens: Vec<NameToken>,
    /// Legal forms found (sorted, deduplicated).
    pub legal_forms: Vec<LegalClass>,
}

impl NormalizedName {
    /// Whether the name has a token that can carry a match by itself.
    pub fn has_name_tokens(&self) -> bool {
        self.tokens
            .iter()
            .any(|t| matches!(t.role, TokenRole::Name | TokenRole::Patronymic))
    }
}

/// Normalises one name of a person, organisation or unknown entity.
pub fn normalize_name(raw: &str, kind: NameKind) -> NormalizedName {
    let vocab = Vocab::get();
    let mut words: Vec<String> = names::tokens(&split_camel_case(raw))
        .into_iter()
        .map(|w| unleet(&w))
        .collect();
    let mut keys = KeyCache::default();
    merge_abd(&mut words, &mut keys);
    if kind != NameKind::Person {
        join_single_letters(&mut words);
    }
    let legal_forms = take_legal_forms(&mut words, kind, vocab, &mut keys);
    if kind != NameKind::Organization && legal_forms.is_empty() {
        drop_titles(&mut words, vocab, &mut keys);
    }
    if kind != NameKind::Person {
        for w in words.iter_mut() {
            if let Some(full) = vocab.abbreviations.get(w.as_str()) {
                *w = (*full).to_string();
            }
        }
    }
    let tokens = assign_roles(words, kind, vocab, &mut keys);
    NormalizedName {
        tokens,
        legal_forms,
    }
}

/// Keys of the words of one name, each computed once (the steps above look words up
/// several times).
#[derive(Default)]
struct KeyCache(Vec<(String, String)>);

impl KeyCache {
    fn key(&mut self, word: &str) -> String {
        if let Some((_, k)) = self.0.iter().find(|(w, _)| w == word) {
            return k.clone();
        }
        let k = names::latin_key(word);
        self.0.push((word.to_string(), k.clone()));
        k
    }
}

/// Splits "AlisherUsmanov" and "SiemensAG" at a lower→upper case change with at least
/// three letters before and two after, so "McKesson", "LeBron" and "GmbH" stay whole.
fn split_camel_case(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::with_capacity(raw.len() + 4);
    let mut run = 0usize;
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphabetic() {
            let boundary = c.is_uppercase()
                && i > 0
                && chars[i - 1].is_lowercase()
                && run >= 3
                && chars.get(i + 1).is_some_and(|n| n.is_alphabetic());
            if boundary {
                out.push(' ');
                run = 0;
            }
            run += 1;
        } else {
            run = 0;
        }
        out.push(c);
    }
    out
}

/// Digits standing for letters inside a word ("Ig0r Sech1n") are read as those letters.
fn unleet(word: &str) -> String {
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    let digits = word.chars().filter(|c| c.is_ascii_digit()).count();
    let ordinal = word.starts_with(|c: char| c.is_ascii_digit())
        && ["st", "nd", "rd", "th"].iter().any(|s| word.ends_with(s));
    if digits == 0 || letters < 3 || digits * 2 > letters || ordinal {
        return word.to_string();
    }
    word.chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'i',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            '9' => 'g',
            other => other,
        })
        .collect()
}

/// `abd al X`, `abd el X`, `абд ал X`, `abdel X`, `abdoul X`, `abd X` → `abdul X`.
fn merge_abd(words: &mut Vec<String>, keys: &mut KeyCache) {
    let mut i = 0;
    while i < words.len() {
        let key = keys.key(&words[i]);
        if key == "abd"
            && words
                .get(i + 1)
                .is_some_and(|n| matches!(keys.key(n).as_str(), "al" | "el" | "ul"))
        {
            words[i] = "abdul".to_string();
            words.remove(i + 1);
        } else if key == "abd" || vocab::ABD_FORMS.contains(&words[i].as_str()) {
            words[i] = "abdul".to_string();
        }
        i += 1;
    }
}

/// Runs of single letters (dotted acronyms "A.B.C.", "L.L.C.") become one word.
fn join_single_letters(words: &mut Vec<String>) {
    let mut out: Vec<String> = Vec::with_capacity(words.len());
    let mut run = String::new();
    let mut run_len = 0;
    let single = |w: &str| w.chars().count() == 1 && w.chars().all(char::is_alphabetic);
    for w in words.drain(..) {
        if single(&w) {
            run.push_str(&w);
            run_len += 1;
            continue;
        }
        flush_run(&mut out, &mut run, &mut run_len);
        out.push(w);
    }
    flush_run(&mut out, &mut run, &mut run_len);
    *words = out;
}

fn flush_run(out: &mut Vec<String>, run: &mut String, run_len: &mut usize) {
    if *run_len > 0 {
        out.push(std::mem::take(run));
        *run_len = 0;
    }
}

/// Removes legal forms (longest phrase first, compared by key so any script and
/// romanisation matches) and returns their classes. In a person's name only forms of three
/// letters or more are looked for; in a name of unknown kind short forms only at the end.
fn take_legal_forms(
    words: &mut Vec<String>,
    kind: NameKind,
    vocab: &Vocab,
    cache: &mut KeyCache,
) -> Vec<LegalClass> {
    let keys: Vec<String> = words.iter().map(|w| cache.key(w)).collect();
    let mut keep = vec![true; words.len()];
    let mut found: Vec<(usize, usize, LegalClass, bool)> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let matched = vocab.legal_forms.iter().find(|form| {
            let n = form.keys.len();
            i + n <= keys.len()
                && keys[i..i + n] == form.keys[..]
                && (!form.short || kind != NameKind::Person)
        });
        match matched {
            Some(form) => {
                found.push((i, form.keys.len(), form.class, form.short));
                i += form.keys.len();
            }
            None => i += 1,
        }
    }
    if kind == NameKind::Unknown {
        // A short form ("Co", "SA", "AB") in a name of unknown kind counts only inside the
        // trailing run of legal forms ("Nanshan Group Co Ltd"), never as a first name.
        let mut end = words.len();
        let mut trailing = vec![false; found.len()];
        for (k, (start, len, _, _)) in found.iter().enumerate().rev() {
            if start + len == end {
                trailing[k] = true;
                end = *start;
            }
        }
        let mut t = trailing.into_iter();
        found.retain(|(start, _, _, short)| (t.next().unwrap_or(false) && *start > 0) || !*short);
    }
    for (start, len, _, _) in &found {
        keep[*start..*start + *len]
            .iter_mut()
            .for_each(|k| *k = false);
    }
    if found.is_empty() || keep.iter().all(|k| !k) {
        // Nothing found, or the name is only a legal form: keep it as it is.
        return Vec::new();
    }
    let mut k = keep.into_iter();
    words.retain(|_| k.next().unwrap_or(true));
    let mut classes: Vec<LegalClass> = found.into_iter().map(|f| f.2).collect();
    classes.sort();
    classes.dedup();
    classes
}

fn drop_titles(words: &mut Vec<String>, vocab: &Vocab, cache: &mut KeyCache) {
    let keys: Vec<String> = words.iter().map(|w| cache.key(w)).collect();
    let mut keep = vec![true; words.len()];
    for i in 0..words.len() {
        let cyrillic = names::has_cyrillic(&words[i]);
        if (!cyrillic && vocab.titles.contains(words[i].as_str()))
            || (cyrillic && words[i].chars().count() > 1 && vocab.title_keys.contains(&keys[i]))
        {
            keep[i] = false;
        }
        for phrase in vocab::TITLE_PHRASES {
            let n = phrase.len();
            if i + n <= words.len()
                && words[i..i + n]
                    .iter()
                    .zip(phrase.iter())
                    .all(|(a, b)| a == b)
            {
                keep[i..i + n].iter_mut().for_each(|k| *k = false);
            }
        }
    }
    if keep.iter().any(|k| *k) {
        let mut k = keep.into_iter();
        words.retain(|_| k.next().unwrap_or(true));
    }
}

fn assign_roles(
    words: Vec<String>,
    kind: NameKind,
    vocab: &Vocab,
    cache: &mut KeyCache,
) -> Vec<NameToken> {
    let mut tokens: Vec<NameToken> = Vec::with_capacity(words.len());
    let name_like = words.len();
    for w in words {
        if kind != NameKind::Person {
            if let Some(n) = read_number(&w, kind, vocab) {
                push_number(&mut tokens, w, n);
                continue;
            }
        } else if w.bytes().all(|b| b.is_ascii_digit()) {
            let value = w.trim_start_matches('0').to_string();
            tokens.push(NameToken {
                text: w,
                key: if value.is_empty() { "0".into() } else { value },
                role: TokenRole::Number,
            });
            continue;
        }
        let key = cache.key(&w);
        if name_like > 1 {
            // Latin particles by spelling (by key "Jin" would read as "in"); Cyrillic ones
            // (ал, бин, ибн, эль, ван, фон) by key.
            let canon = if names::has_cyrillic(&w) {
                vocab.particles_by_key.get(&key).copied()
            } else {
                vocab.particles.get(w.as_str()).copied()
            };
            if let Some(canon) = canon {
                tokens.push(NameToken {
                    text: w,
                    key: canon.to_string(),
                    role: TokenRole::Particle,
                });
                continue;
            }
        }
        if key.is_empty() {
            continue;
        }
        let role =
            if kind != NameKind::Organization && w.chars().count() == 1 && key.chars().count() == 1
            {
                TokenRole::Initial
            } else if kind != NameKind::Organization && is_patronymic(&w) {
                TokenRole::Patronymic
            } else {
                TokenRole::Name
            };
        let key = if role == TokenRole::Initial {
            key.chars().take(1).collect()
        } else {
            key
        };
        tokens.push(NameToken { text: w, key, role });
    }
    tokens
}

/// Numbers: digits ("1st" too), number words and, in organisation names, roman numerals.
fn read_number(w: &str, kind: NameKind, vocab: &Vocab) -> Option<u32> {
    let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &w[digits.len()..];
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(suffix, "" | "st" | "nd" | "rd" | "th")
    {
        return digits.parse().ok();
    }
    if let Some(n) = vocab.cardinals.get(w) {
        return Some(*n);
    }
    if kind == NameKind::Organization {
        return vocab.roman.get(w).copied();
    }
    None
}

/// Adds a number token, joining "forty" + "four" (or "forty" + "4") into 44.
fn push_number(tokens: &mut Vec<NameToken>, text: String, n: u32) {
    if let Some(last) = tokens.last_mut()
        && last.role == TokenRole::Number
        && let Ok(prev) = last.key.parse::<u32>()
        && (20..100).contains(&prev)
        && prev % 10 == 0
        && n < 10
    {
        last.key = (prev + n).to_string();
        last.text.push(' ');
        last.text.push_str(&text);
        return;
    }
    tokens.push(NameToken {
        text,
        key: n.to_string(),
        role: TokenRole::Number,
    });
}

fn is_patronymic(w: &str) -> bool {
    w.chars().count() >= 7 && vocab::PATRONYMIC_ENDINGS.iter().any(|e| w.ends_with(e))
}

/// The word lists as lookup tables, built once.
struct Vocab {
    titles: std::collections::HashSet<&'static str>,
    /// Title keys, for Cyrillic words (Шейх, Хаджи, Мулла, Доктор).
    title_keys: std::collections::HashSet<String>,
    particles: HashMap<&'static str, &'static str>,
    /// Particle key → canonical spelling, for Cyrillic words (two letters or more).
    particles_by_key: HashMap<String, &'static str>,
    abbreviations: HashMap<&'static str, &'static str>,
    cardinals: HashMap<&'static str, u32>,
    roman: HashMap<&'static str, u32>,
    /// Longest first.
    legal_forms: Vec<LegalForm>,
    /// Generic word key → weight.
    generic: HashMap<String, f64>,
}

struct LegalForm {
    keys: Vec<String>,
    class: LegalClass,
    short: bool,
}

impl Vocab {
    fn get() -> &'static Vocab {
        static VOCAB: OnceLock<Vocab> = OnceLock::new();
        VOCAB.get_or_init(Vocab::build)
    }

    fn build() -> Vocab {
        let mut legal_forms: Vec<LegalForm> = vocab::LEGAL_FORMS
            .iter()
            .map(|(form, class)| LegalForm {
                keys: form.split(' ').map(names::latin_key).collect(),
                class: *class,
                short: vocab::is_short_form(form),
            })
            .collect();
        // Longest phrase first; among equals the table order stays (stable sort).
        legal_forms.sort_by_key(|f| std::cmp::Reverse(f.keys.len()));
        let mut generic = HashMap::new();
        for w in vocab::GENERIC_PERSON.iter().chain(vocab::GENERIC_ORG) {
            generic.insert(names::latin_key(w), vocab::GENERIC_WEIGHT);
        }
        Vocab {
            titles: vocab::TITLES.iter().copied().collect(),
            title_keys: vocab::TITLES
                .iter()
                .filter(|t| t.chars().count() > 1)
                .map(|t| names::latin_key(t))
                .collect(),
            particles: vocab::PARTICLES.iter().copied().collect(),
            particles_by_key: vocab::PARTICLES
                .iter()
                .filter(|(w, _)| w.chars().count() > 1)
                .map(|(w, c)| (names::latin_key(w), *c))
                .collect(),
            abbreviations: vocab::ABBREVIATIONS.iter().copied().collect(),
            cardinals: vocab::CARDINALS.iter().copied().collect(),
            roman: vocab::ROMAN.iter().copied().collect(),
            legal_forms,
            generic,
        }
    }
}

/// The background weight of a token key: below 1 for the generic name words of
/// [`vocab::GENERIC_PERSON`] and [`vocab::GENERIC_ORG`], 1 otherwise.
pub fn prior_weight(key: &str) -> f64 {
    Vocab::get().generic.get(key).copied().unwrap_or(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(raw: &str, kind: NameKind) -> Vec<(String, TokenRole)> {
        normalize_name(raw, kind)
            .tokens
            .into_iter()
            .map(|t| (t.text, t.role))
            .collect()
    }

    fn texts(raw: &str, kind: NameKind) -> Vec<String> {
        keys(raw, kind).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn titles_are_dropped_from_persons() {
        assert_eq!(
            texts("Mr. Rami Makhlouf", NameKind::Person),
            ["rami", "makhlouf"]
        );
        assert_eq!(texts("Dr Sheikh Isa", NameKind::Person), ["isa"]);
        assert_eq!(texts("г-н Иванов", NameKind::Person), ["иванов"]);
        // A title alone is kept rather than leaving nothing.
        assert_eq!(texts("Sheikh", NameKind::Person), ["sheikh"]);
        // Organisation words that look like titles stay.
        assert_eq!(
            texts("General Motors", NameKind::Organization),
            ["general", "motors"]
        );
    }

    #[test]
    fn legal_forms_in_any_script_become_classes() {
        let n = normalize_name("ООО «Ромашка»", NameKind::Organization);
        assert_eq!(n.tokens.len(), 1);
        assert_eq!(n.legal_forms, [LegalClass::Limited]);
        for raw in [
            "Romashka LLC",
            "Romashka Limited Liability Company",
            "OOO Romashka",
            "Romashka o.o.o.",
            "Общество с ограниченной ответственностью Ромашка",
        ] {
            let m = normalize_name(raw, NameKind::Organization);
            assert_eq!(m.legal_forms, [LegalClass::Limited], "{raw}");
            assert_eq!(m.tokens.len(), 1, "{raw}");
            assert_eq!(m.tokens[0].key, n.tokens[0].key, "{raw}");
        }
        for raw in [
            "ПАО Газпром",
            "OAO Gazprom",
            "Gazprom JSC",
            "Open Joint Stock Company Gazprom",
            "ЗАО Газпром",
        ] {
            assert_eq!(
                normalize_name(raw, NameKind::Organization).legal_forms,
                [LegalClass::JointStock],
                "{raw}"
            );
        }
    }

    #[test]
    fn a_name_that_is_only_a_legal_form_keeps_it() {
        let n = normalize_name("LLC", NameKind::Organization);
        assert!(n.legal_forms.is_empty());
        assert_eq!(n.tokens.len(), 1);
    }

    #[test]
    fn short_legal_forms_are_not_taken_from_person_names() {
        assert_eq!(texts("Ko Tae Bin", NameKind::Person).len(), 3);
        assert_eq!(
            texts("Nicolás Maduro LLC", NameKind::Person),
            ["nicolas", "maduro"]
        );
    }

    #[test]
    fn particles_initials_patronymics() {
        let k = keys("Sergey Viktorovich Lavrov", NameKind::Person);
        assert_eq!(k[1].1, TokenRole::Patronymic);
        let k = keys("Usama ibn Laden", NameKind::Person);
        assert_eq!(k[1].1, TokenRole::Particle);
        // Particles and titles are recognised in Cyrillic too.
        let k = keys("Шейх Али Хассан Ал Маджид", NameKind::Person);
        assert_eq!(k.len(), 4);
        assert_eq!(k[2].1, TokenRole::Particle);
        let n = normalize_name("Usama bin Laden", NameKind::Person);
        let m = normalize_name("Usama ibn Laden", NameKind::Person);
        assert_eq!(n.tokens[1].key, m.tokens[1].key);
        let k = keys("V. Putin", NameKind::Person);
        assert_eq!(k[0], ("v".to_string(), TokenRole::Initial));
        assert_eq!(
            keys("Сергей Петрович Иванов", NameKind::Person)[1].1,
            TokenRole::Patronymic
        );
    }

    #[test]
    fn abd_compounds_are_one_spelling() {
        assert_eq!(
            texts("'Abd al-Aziz al-Nuristani", NameKind::Person),
            ["abdul", "aziz", "al", "nuristani"]
        );
        assert_eq!(texts("Abdel Aziz", NameKind::Person), ["abdul", "aziz"]);
    }

    #[test]
    fn numbers_and_acronyms_in_organisations() {
        let n = normalize_name("Brigade Forty-Four", NameKind::Organization);
        assert_eq!(n.tokens[1].key, "44");
        let n = normalize_name("Brigade Forty 4", NameKind::Organization);
        assert_eq!(n.tokens[1].key, "44");
        let n = normalize_name("1st International Bank", NameKind::Organization);
        assert_eq!(n.tokens[0].key, "1");
        assert_eq!(
            normalize_name("First Bank Int'l", NameKind::Organization).tokens[2].text,
            "international"
        );
        assert_eq!(texts("A.B.C. Company", NameKind::Organization), ["abc"]);
    }

    #[test]
    fn camel_case_and_digits_for_letters() {
        assert_eq!(
            texts("Volkswagen GmbH", NameKind::Organization),
            ["volkswagen"]
        );
        assert_eq!(
            texts("AlisherUsmanov", NameKind::Person),
            ["alisher", "usmanov"]
        );
        assert_eq!(texts("McKesson", NameKind::Organization), ["mckesson"]);
        assert_eq!(texts("Ig0r Sech1n", NameKind::Person), ["igor", "sechin"]);
        assert_eq!(
            texts("Trust 2004 1", NameKind::Organization),
            ["trust", "2004", "1"]
        );
    }

    #[test]
    fn generic_words_weigh_less() {
        assert!(prior_weight(&names::latin_key("Mohammed")) < 1.0);
        assert!(prior_weight(&names::latin_key("Muhammad")) < 1.0);
        assert!(prior_weight(&names::latin_key("Bank")) < 1.0);
        assert_eq!(prior_weight(&names::latin_key("Makhlouf")), 1.0);
    }
}
