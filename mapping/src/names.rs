//! Person and organisation names across scripts: folding, tokens, romanisation of Cyrillic
//! and a script-independent comparison key per token.
//!
//! Contract: every function is pure, total (any `&str` in, never a panic) and deterministic.
//! [`fold`] and [`tokens`] are for comparing text; [`romanize`] renders Cyrillic under one
//! named scheme; [`latin_key`] is the comparison key that makes Иванов, Ivanov and Ivanoff
//! (or Юлия, Yuliya, Iuliia and Julia) equal, for indexes and similarity measures.

mod fold_table;
mod key;
mod translit;

/// A romanisation scheme for Cyrillic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// GOST 7.79-2000 system B (ASCII with backtick marks; Russian official use).
    Gost779B,
    /// ICAO Doc 9303, as in Russian international passports issued since 2013.
    Icao9303,
    /// BGN/PCGN 1947 (US and UK geographic names; common in English-language lists).
    BgnPcgn,
    /// What people commonly type: Sergey, Dmitry, Alexey, Vasilyev.
    Informal,
}

impl Scheme {
    /// Every scheme, for generating spelling variants.
    pub const ALL: [Scheme; 4] = [
        Scheme::Gost779B,
        Scheme::Icao9303,
        Scheme::BgnPcgn,
        Scheme::Informal,
    ];
}

/// Lower case, diacritics stripped (é→e, ß→ss, ø→o ...), ё→е, й kept, punctuation/hyphens→space, spaces collapsed.
///
/// Apostrophes and the similar marks (`'`, `` ` ``, `’`, `ʼ`, `ʹ`, `ʺ`) are removed without
/// a space: inside a name they mark a soft sign or an elision (Vasil'ev, O'Brien), not a word
/// boundary. Letters of other scripts are lower-cased and kept.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let push = |out: &mut String, text: &str, space: &mut bool| {
        if *space && !out.is_empty() {
            out.push(' ');
        }
        *space = false;
        out.push_str(text);
    };
    let mut buf = [0u8; 4];
    for c in s.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                push(
                    &mut out,
                    c.to_ascii_lowercase().encode_utf8(&mut buf),
                    &mut space,
                );
            } else if !matches!(c, '\'' | '`') {
                space = true;
            }
            continue;
        }
        if is_join_mark(c) {
            continue;
        }
        if is_combining_mark(c) {
            // A decomposed й (и + breve) stays й; every other mark is dropped.
            if c == '\u{0306}' && out.ends_with('и') {
                out.pop();
                out.push('й');
            }
            continue;
        }
        if let Some(base) = fold_table::base_letters(c) {
            push(&mut out, base, &mut space);
            continue;
        }
        if c.is_alphanumeric() {
            let lower = c.to_lowercase().next().unwrap_or(c);
            let lower = match lower {
                'ё' => 'е',
                'ѐ' => 'е',
                'ѝ' => 'и',
                other => other,
            };
            push(&mut out, lower.encode_utf8(&mut buf), &mut space);
            continue;
        }
        space = true;
    }
    out
}

/// Apostrophe-like marks: removed without leaving a word boundary.
fn is_join_mark(c: char) -> bool {
    matches!(
        c,
        '\u{00B4}'
            | '\u{02B9}'
            | '\u{02BA}'
            | '\u{02BB}'
            | '\u{02BC}'
            | '\u{02BD}'
            | '\u{02C8}'
            | '\u{2018}'
            | '\u{2019}'
            | '\u{201B}'
            | '\u{2032}'
            | '\u{2033}'
    )
}

fn is_combining_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// fold() then split on whitespace.
pub fn tokens(s: &str) -> Vec<String> {
    fold(s)
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether `s` has at least one Cyrillic letter.
pub fn has_cyrillic(s: &str) -> bool {
    s.chars()
        .any(|c| matches!(c, '\u{0400}'..='\u{04FF}' | '\u{0500}'..='\u{052F}'))
}

/// Romanise Cyrillic text under one scheme (Latin text passes through folded).
///
/// The result is folded: lower case, no diacritics (BGN/PCGN's ë is written e) and no
/// apostrophe marks (GOST's `` ` `` and BGN's ʹ ʺ are dropped). Use [`romanize_strict`] for the
/// scheme's exact letters and the source's case.
pub fn romanize(s: &str, scheme: Scheme) -> String {
    fold(&translit::romanize_strict(s, scheme))
}

/// Romanise Cyrillic text exactly as the scheme's table writes it, keeping case, spacing,
/// marks (`Ry`bakov`, `Ilʹich`) and every non-Cyrillic character.
pub fn romanize_strict(s: &str, scheme: Scheme) -> String {
    translit::romanize_strict(s, scheme)
}

/// A script- and scheme-independent comparison key for one name token: Иванов, Ivanov, Ivanoff → same;
/// Сергей, Sergei, Sergey, Sergej → same; Щукин/Shchukin/Shhukin/Schukin → same; Юлия/Yuliya/Iuliia/Julia → same;
/// Ё/Е and ъ/ь differences vanish. Must be cheap (called per token on millions of records).
///
/// A token with inner punctuation is keyed as one word. The key's alphabet is documented in
/// the `key` module: lower-case ASCII plus the class symbols `S Z Q C H I`.
pub fn latin_key(token: &str) -> String {
    key::latin_key(token)
}

/// Every key `token` may have, the [`latin_key`] first: Latin letters whose value depends on
/// the romanisation that produced them give more than one (GOST 7.79-B writes х as `x`,
/// which elsewhere is ks, and ц as `c` before i, e, y, j, which elsewhere is s). Most tokens
/// have one key.
pub fn latin_keys(token: &str) -> Vec<String> {
    key::latin_keys(token)
}

/// The consonant skeleton of a [`latin_key`]: its first symbol, then every symbol that is
/// not a vowel or the i/y/j glide, repeats collapsed. Mohammed, Muhammad and Mohamed share
/// one skeleton; use it to find candidates whose vowels differ, not to decide a match.
pub fn skeleton(key: &str) -> String {
    key::skeleton(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_case_diacritics_punctuation() {
        assert_eq!(fold("  José-María  GARCÍA "), "jose maria garcia");
        assert_eq!(fold("Straße Ørsted Łódź"), "strasse orsted lodz");
        assert_eq!(fold("O'Brien, Jr."), "obrien jr");
        assert_eq!(fold("ООО «Ромашка»"), "ооо ромашка");
        assert_eq!(fold("Ёлкин Йошкар"), "елкин йошкар");
        assert_eq!(fold("Nguyễn Văn Thiệu"), "nguyen van thieu");
        assert_eq!(fold(""), "");
        assert_eq!(fold("---"), "");
    }

    #[test]
    fn fold_keeps_short_i_and_drops_decomposed_marks() {
        // и + combining breve is й; е + combining diaeresis is е; e + combining acute is e.
        assert_eq!(fold("Серге\u{0438}\u{0306}"), "сергей");
        assert_eq!(fold("Алёна Але\u{0308}на"), "алена алена");
        assert_eq!(fold("Jose\u{0301}"), "jose");
    }

    #[test]
    fn fold_drops_apostrophe_marks_inside_words() {
        assert_eq!(
            fold("Vasil'ev Vasil’ev Ilʹich Obʺyedkov Ry`bakov"),
            "vasilev vasilev ilich obyedkov rybakov"
        );
    }

    #[test]
    fn tokens_split_on_folded_spaces() {
        assert_eq!(
            tokens("Иванов-Петров  Сергей"),
            ["иванов", "петров", "сергей"]
        );
        assert!(tokens(" ,. ").is_empty());
    }

    #[test]
    fn cyrillic_detection() {
        assert!(has_cyrillic("Ivan Иванов"));
        assert!(!has_cyrillic("Ivan Ivanov"));
    }

    #[test]
    fn romanize_is_folded() {
        assert_eq!(romanize("Хрущёв", Scheme::BgnPcgn), "khrushchev");
        assert_eq!(romanize("Рыбаков Ильич", Scheme::Gost779B), "rybakov ilich");
        assert_eq!(
            romanize("Müller Щукин", Scheme::Icao9303),
            "muller shchukin"
        );
    }

    #[test]
    fn every_scheme_gives_the_same_key() {
        for name in [
            "Иванов Сергей Петрович",
            "Щукина Юлия",
            "Хрущёв Фёдор",
            "Васильев Дмитрий Ильич",
        ] {
            let want: Vec<String> = tokens(name).iter().map(|t| latin_key(t)).collect();
            for scheme in Scheme::ALL {
                let got: Vec<String> = tokens(&romanize(name, scheme))
                    .iter()
                    .map(|t| latin_key(t))
                    .collect();
                assert_eq!(got, want, "{name} under {scheme:?}");
            }
        }
    }

    #[test]
    fn total_on_arbitrary_text() {
        for s in [
            "\u{0306}",
            "\u{0306}и",
            "ʹʺ",
            "𝔘𝔫𝔦",
            "中文 名字",
            "x",
            "ЬЪ",
            "\u{FEFF}",
        ] {
            let _ = latin_key(s);
            let _ = romanize(s, Scheme::Gost779B);
            let _ = skeleton(&latin_key(s));
        }
    }
}
