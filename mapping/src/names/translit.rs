//! Romanisation of Cyrillic (Russian, with the Ukrainian and Belarusian letters that appear in
//! Russian documents) under the schemes a bank meets in names:
//!
//! - GOST 7.79-2000 system B (ASCII only; `ц` is `c` before i, e, y, j and `cz` elsewhere;
//!   `ъ`, `ь`, `ы`, `э` use the backtick marks `` `` ``, `` ` ``, `` y` ``, `` e` ``);
//! - ICAO Doc 9303 (machine-readable travel documents; Russian passports since 2013):
//!   `ё`→e, `й`→i, `х`→kh, `ц`→ts, `щ`→shch, `ъ`→ie, `ь` dropped, `ю`→iu, `я`→ia;
//! - BGN/PCGN 1947: `е`/`ё` are `ye`/`yë` at the start of a word and after a vowel, `й`,
//!   `ъ` or `ь`; `й`→y; `ъ`→ʺ, `ь`→ʹ (the optional separating dot is not written);
//! - Informal: what people type (Sergey, Yuri, Alexey, Vasilyev): BGN-like without marks,
//!   `ий`/`ый` at the end of a word → y, `кс` → x, `е`/`ё` after `ъ`/`ь` → ye/yo.
//!
//! Letters other than Cyrillic pass through unchanged. Case follows the source: a capital
//! becomes a capitalised digraph (`Щ`→`Shch`) inside a mixed-case word and all capitals
//! (`SHCH`) inside an all-capital word.

use super::Scheme;

/// Russian vowels, for the BGN/PCGN `ye` rule and GOST's `c`/`cz` choice.
const VOWELS: &str = "аеёиоуыэюяіїє";

/// Letters whose GOST 7.79-B romanisation starts with i, e, y or j (so `ц` before them is `c`).
const GOST_SOFT_FOLLOWERS: &str = "еёийыэюяіїє";

fn is_cyrillic_letter(c: char) -> bool {
    matches!(c, '\u{0400}'..='\u{04FF}' | '\u{0500}'..='\u{052F}') && c.is_alphabetic()
}

/// The lower-case Cyrillic letter at `i`, composing a following combining breve or
/// diaeresis (decomposed `й`/`ё`), and how many chars it used.
fn letter_at(chars: &[char], i: usize) -> Option<(char, bool, usize)> {
    let c = *chars.get(i)?;
    if !is_cyrillic_letter(c) {
        return None;
    }
    let upper = c.is_uppercase();
    let lower = c.to_lowercase().next().unwrap_or(c);
    match (lower, chars.get(i + 1)) {
        ('и', Some('\u{0306}')) => Some(('й', upper, 2)),
        ('е', Some('\u{0308}')) => Some(('ё', upper, 2)),
        ('і', Some('\u{0308}')) => Some(('ї', upper, 2)),
        ('у', Some('\u{0306}')) => Some(('ў', upper, 2)),
        _ => Some((lower, upper, 1)),
    }
}

/// One Cyrillic letter under a scheme, given its neighbours (lower case; `None` when the
/// neighbour is not a Cyrillic letter). `consumed_next` tells the caller to skip the next
/// letter (Informal `ий`/`ый` → y, `кс` → x).
struct Out {
    text: &'static str,
    consumed_next: bool,
}

fn out(text: &'static str) -> Out {
    Out {
        text,
        consumed_next: false,
    }
}

fn romanize_letter(
    c: char,
    prev: Option<char>,
    next: Option<char>,
    after_next: Option<char>,
    scheme: Scheme,
) -> Option<Out> {
    let common = match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' => "g",
        'д' => "d",
        'ж' => "zh",
        'з' => "z",
        'и' => "i",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' => "u",
        'ф' => "f",
        'ч' => "ch",
        'ш' => "sh",
        'і' => "i",
        _ => "",
    };
    let text = match scheme {
        Scheme::Gost779B => match c {
            'е' => "e",
            'ё' => "yo",
            'й' => "j",
            'х' => "x",
            'ц' => match next {
                Some(n) if GOST_SOFT_FOLLOWERS.contains(n) => "c",
                _ => "cz",
            },
            'щ' => "shh",
            'ъ' => "``",
            'ы' => "y`",
            'ь' => "`",
            'э' => "e`",
            'ю' => "yu",
            'я' => "ya",
            'ї' => "yi",
            'є' => "ye",
            'ґ' => "g`",
            'ў' => "u`",
            _ => common,
        },
        Scheme::Icao9303 => match c {
            'е' | 'ё' | 'э' => "e",
            'й' => "i",
            'х' => "kh",
            'ц' => "ts",
            'щ' => "shch",
            'ъ' => "ie",
            'ы' => "y",
            'ь' => "",
            'ю' => "iu",
            'я' => "ia",
            'ї' => "i",
            'є' => "ie",
            'ґ' => "g",
            'ў' => "u",
            _ => common,
        },
        Scheme::BgnPcgn => {
            let iotated = match prev {
                None => true,
                Some(p) => VOWELS.contains(p) || matches!(p, 'й' | 'ъ' | 'ь'),
            };
            match c {
                'е' if iotated => "ye",
                'е' | 'э' => "e",
                'ё' if iotated => "yë",
                'ё' => "ë",
                'й' => "y",
                'х' => "kh",
                'ц' => "ts",
                'щ' => "shch",
                'ъ' => "\u{02BA}",
                'ы' => "y",
                'ь' => "\u{02B9}",
                'ю' => "yu",
                'я' => "ya",
                'ї' => "yi",
                'є' => "ye",
                'ґ' => "g",
                'ў' => "w",
                _ => common,
            }
        }
        Scheme::Informal => {
            let after_sign = matches!(prev, Some('ъ' | 'ь'));
            match c {
                'и' | 'ы' if next == Some('й') && after_next.is_none() => {
                    return Some(Out {
                        text: "y",
                        consumed_next: true,
                    });
                }
                'к' if next == Some('с') => {
                    return Some(Out {
                        text: "x",
                        consumed_next: true,
                    });
                }
                'е' if after_sign => "ye",
                'е' | 'э' => "e",
                'ё' => "yo",
                'й' => "y",
                'х' => "kh",
                'ц' => "ts",
                'щ' => "shch",
                'ъ' | 'ь' => "",
                'ы' => "y",
                'ю' => "yu",
                'я' => "ya",
                'ї' => "yi",
                'є' => "ye",
                'ґ' => "g",
                'ў' => "w",
                _ => common,
            }
        }
    };
    if text.is_empty() && !matches!(c, 'ь' | 'ъ') {
        // A Cyrillic letter outside these tables (Serbian, Kazakh, ...): the caller keeps it.
        return None;
    }
    Some(out(text))
}

/// Romanises `s` under `scheme`, keeping case, spacing and every non-Cyrillic character.
pub(crate) fn romanize_strict(s: &str, scheme: Scheme) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut result = String::with_capacity(s.len() * 2);
    let mut prev: Option<(char, bool)> = None;
    let mut i = 0;
    while i < chars.len() {
        let Some((c, upper, used)) = letter_at(&chars, i) else {
            result.push(chars[i]);
            prev = None;
            i += 1;
            continue;
        };
        let next = letter_at(&chars, i + used);
        let after_next = next.and_then(|(_, _, n)| letter_at(&chars, i + used + n));
        let rendered = romanize_letter(
            c,
            prev.map(|p| p.0),
            next.map(|n| n.0),
            after_next.map(|n| n.0),
            scheme,
        );
        let Some(rendered) = rendered else {
            result.push(chars[i]);
            prev = Some((c, upper));
            i += used;
            continue;
        };
        let mut advance = used;
        let mut next_after = next;
        if rendered.consumed_next {
            if let Some((_, _, n)) = next {
                advance += n;
            }
            next_after = after_next;
        }
        push_cased(
            &mut result,
            rendered.text,
            upper,
            prev.is_some_and(|p| p.1),
            next_after.map(|n| n.1),
        );
        prev = Some((c, upper));
        i += advance;
    }
    result
}

/// Appends `text` in the case of its source letter: a capital inside an all-capital word
/// gives all capitals, otherwise only the first letter is capitalised.
fn push_cased(
    result: &mut String,
    text: &str,
    upper: bool,
    prev_upper: bool,
    next_upper: Option<bool>,
) {
    if !upper {
        result.push_str(text);
        return;
    }
    let all_caps = match next_upper {
        Some(n) => n,
        None => prev_upper,
    };
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        result.extend(first.to_uppercase());
    }
    if all_caps {
        result.extend(chars.flat_map(char::to_uppercase));
    } else {
        result.extend(chars);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> [String; 4] {
        [
            romanize_strict(s, Scheme::Gost779B),
            romanize_strict(s, Scheme::Icao9303),
            romanize_strict(s, Scheme::BgnPcgn),
            romanize_strict(s, Scheme::Informal),
        ]
    }

    #[test]
    fn plain_consonants_and_vowels_agree_across_schemes() {
        for r in all("Абвгдзклмнопрстуф") {
            assert_eq!(r, "Abvgdzklmnoprstuf");
        }
        assert_eq!(
            all("Иван"),
            ["Ivan", "Ivan", "Ivan", "Ivan"].map(String::from)
        );
    }

    #[test]
    fn hushing_consonants() {
        // ж ч ш are the same everywhere; щ differs.
        assert_eq!(all("Жучкова"), ["Zhuchkova"; 4].map(String::from));
        assert_eq!(all("Шишкин"), ["Shishkin"; 4].map(String::from));
        assert_eq!(
            all("Щукин"),
            ["Shhukin", "Shchukin", "Shchukin", "Shchukin"].map(String::from)
        );
        assert_eq!(
            all("ЩУКИН"),
            ["SHHUKIN", "SHCHUKIN", "SHCHUKIN", "SHCHUKIN"].map(String::from)
        );
    }

    #[test]
    fn kha_and_tse() {
        assert_eq!(
            all("Хабаров"),
            ["Xabarov", "Khabarov", "Khabarov", "Khabarov"].map(String::from)
        );
        // GOST B: c before i, e, y, j; cz elsewhere.
        assert_eq!(romanize_strict("Цветков", Scheme::Gost779B), "Czvetkov");
        assert_eq!(romanize_strict("Цыганов", Scheme::Gost779B), "Cy`ganov");
        assert_eq!(romanize_strict("Царицын", Scheme::Gost779B), "Czaricy`n");
        assert_eq!(romanize_strict("Цветков", Scheme::Icao9303), "Tsvetkov");
        assert_eq!(romanize_strict("Цветков", Scheme::BgnPcgn), "Tsvetkov");
    }

    #[test]
    fn iotated_vowels() {
        assert_eq!(
            all("Юлия"),
            ["Yuliya", "Iuliia", "Yuliya", "Yuliya"].map(String::from)
        );
        assert_eq!(
            all("Ёлкин"),
            ["Yolkin", "Elkin", "Yëlkin", "Yolkin"].map(String::from)
        );
        assert_eq!(
            all("Хрущёв"),
            ["Xrushhyov", "Khrushchev", "Khrushchëv", "Khrushchyov"].map(String::from)
        );
        // BGN/PCGN: ye at the start and after vowels only.
        assert_eq!(
            romanize_strict("Евгений Андреев", Scheme::BgnPcgn),
            "Yevgeniy Andreyev"
        );
        assert_eq!(
            romanize_strict("Евгений Андреев", Scheme::Icao9303),
            "Evgenii Andreev"
        );
        assert_eq!(
            romanize_strict("Евгений Андреев", Scheme::Gost779B),
            "Evgenij Andreev"
        );
        assert_eq!(
            romanize_strict("Евгений Андреев", Scheme::Informal),
            "Evgeny Andreev"
        );
    }

    #[test]
    fn short_i() {
        assert_eq!(
            all("Сергей"),
            ["Sergej", "Sergei", "Sergey", "Sergey"].map(String::from)
        );
        assert_eq!(
            all("Дмитрий"),
            ["Dmitrij", "Dmitrii", "Dmitriy", "Dmitry"].map(String::from)
        );
        // Decomposed й (и + combining breve) is the same letter.
        assert_eq!(
            romanize_strict("Серге\u{0438}\u{0306}", Scheme::Icao9303),
            "Sergei"
        );
    }

    #[test]
    fn hard_and_soft_signs_yery_and_e() {
        assert_eq!(
            all("Объедков"),
            ["Ob``edkov", "Obieedkov", "Obʺyedkov", "Obyedkov"].map(String::from)
        );
        assert_eq!(
            all("Ильич"),
            ["Il`ich", "Ilich", "Ilʹich", "Ilich"].map(String::from)
        );
        assert_eq!(
            all("Васильев"),
            ["Vasil`ev", "Vasilev", "Vasilʹyev", "Vasilyev"].map(String::from)
        );
        assert_eq!(
            all("Рыбаков"),
            ["Ry`bakov", "Rybakov", "Rybakov", "Rybakov"].map(String::from)
        );
        assert_eq!(
            all("Эрнст"),
            ["E`rnst", "Ernst", "Ernst", "Ernst"].map(String::from)
        );
    }

    #[test]
    fn informal_ks_and_endings() {
        assert_eq!(
            romanize_strict("Алексей Максимов", Scheme::Informal),
            "Alexey Maximov"
        );
        assert_eq!(romanize_strict("Белый", Scheme::Informal), "Bely");
        assert_eq!(romanize_strict("Белый", Scheme::Icao9303), "Belyi");
    }

    #[test]
    fn ukrainian_letters() {
        assert_eq!(romanize_strict("Ґалаґан", Scheme::Icao9303), "Galagan");
        assert_eq!(romanize_strict("Їжакевич", Scheme::Gost779B), "Yizhakevich");
        assert_eq!(romanize_strict("Євген", Scheme::Icao9303), "Ievgen");
        assert_eq!(romanize_strict("Київ", Scheme::Icao9303), "Kiiv");
    }

    #[test]
    fn non_cyrillic_passes_through() {
        assert_eq!(
            romanize_strict("ООО «Ромашка», ИНН 77", Scheme::Icao9303),
            "OOO «Romashka», INN 77"
        );
        assert_eq!(romanize_strict("Müller", Scheme::Gost779B), "Müller");
    }
}
