//! The comparison key of one name token: the same for a Cyrillic name and its usual Latin
//! spellings under any scheme, so that an index and a similarity measure can ignore how a
//! name was romanised.
//!
//! Contract: the key is a short string over lower-case ASCII letters plus six class symbols:
//! `S` (ш, щ: sh, shch, shh, sch), `Z` (ж: zh), `Q` (ч: ch, tch, tsch), `C` (ц: ts, tz, cz),
//! `H` (х and h: kh, h), `I` (the i/y/j glide: и, й, ы, i, y, j, dj, dzh). Repeated symbols
//! collapse; the glide vanishes before `e` (Yevgeny = Evgenii, Andreyev = Andreev) and
//! glide + `o` becomes `e` (Fyodor = Fedor: ё is written e, yo or io). Digits and letters of
//! other scripts pass through.
//!
//! The rules are deliberately many-to-one: a key is for candidate generation and for
//! measuring how close two spellings are, never for display.

use super::{fold, has_cyrillic};

/// See [`super::latin_key`].
pub(crate) fn latin_key(token: &str) -> String {
    key_of_latin(&latin_of(token), Reading::default())
}

/// See [`super::latin_keys`].
pub(crate) fn latin_keys(token: &str) -> Vec<String> {
    let latin = latin_of(token);
    let mut keys = vec![key_of_latin(&latin, Reading::default())];
    let bytes = latin.as_bytes();
    let has_x = bytes.contains(&b'x');
    let has_soft_c = bytes
        .windows(2)
        .any(|w| w[0] == b'c' && matches!(w[1], b'e' | b'i' | b'y'));
    let mut push = |r: Reading| {
        let k = key_of_latin(&latin, r);
        if !keys.contains(&k) {
            keys.push(k);
        }
    };
    if has_x {
        push(Reading {
            gost_x: true,
            gost_c: false,
        });
    }
    if has_soft_c {
        push(Reading {
            gost_x: false,
            gost_c: true,
        });
    }
    if has_x && has_soft_c {
        push(Reading {
            gost_x: true,
            gost_c: true,
        });
    }
    keys
}

/// How to read the Latin letters whose value depends on the scheme that produced them.
#[derive(Clone, Copy, Default)]
struct Reading {
    /// `x` is GOST 7.79-B's х (kh) rather than ks.
    gost_x: bool,
    /// `c` before e, i, y is GOST 7.79-B's ц (ts) rather than s.
    gost_c: bool,
}

/// The token folded, with Cyrillic (and Cyrillic disguised with Latin look-alikes) written
/// in the plain Latin the key rules read.
fn latin_of(token: &str) -> String {
    let folded = if token.bytes().all(|b| b.is_ascii_lowercase()) {
        token.to_string()
    } else if is_mixed_script(token) {
        fold(&unconfuse(token))
    } else {
        fold(token)
    };
    if has_cyrillic(&folded) {
        cyrillic_to_latin(&folded)
    } else {
        folded
    }
}

/// A token with both Latin and Cyrillic letters is a typo or a disguise ("Ивaнов" with a
/// Latin a); such tokens are read as Cyrillic.
fn is_mixed_script(token: &str) -> bool {
    let mut latin = false;
    let mut cyrillic = false;
    for c in token.chars() {
        if c.is_ascii_alphabetic() {
            latin = true;
        } else if matches!(c, '\u{0400}'..='\u{04FF}') {
            cyrillic = true;
        }
    }
    latin && cyrillic
}

/// Latin letters that look like Cyrillic ones, replaced by them.
fn unconfuse(token: &str) -> String {
    token
        .chars()
        .map(|c| match c {
            'A' | 'a' => 'а',
            'B' => 'в',
            'C' | 'c' => 'с',
            'E' | 'e' => 'е',
            'H' => 'н',
            'K' | 'k' => 'к',
            'M' | 'm' => 'м',
            'O' | 'o' => 'о',
            'P' | 'p' => 'р',
            'T' | 't' => 'т',
            'X' | 'x' => 'х',
            'Y' | 'y' => 'у',
            other => other,
        })
        .collect()
}

/// Folded Cyrillic to a plain Latin spelling the key rules below understand.
fn cyrillic_to_latin(folded: &str) -> String {
    let mut out = String::with_capacity(folded.len() + 4);
    for c in folded.chars() {
        let latin = match c {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' | 'ґ' => "g",
            'д' => "d",
            'е' | 'ё' | 'э' => "e",
            'є' => "ye",
            'ж' => "zh",
            'з' => "z",
            'и' | 'і' => "i",
            'ї' => "yi",
            'й' | 'ы' => "y",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' | 'ў' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ъ' | 'ь' | ' ' => "",
            'ю' => "yu",
            'я' => "ya",
            _ => {
                out.push(c);
                continue;
            }
        };
        out.push_str(latin);
    }
    out
}

/// Appends key symbols, collapsing repeated letters (not digits) and applying the glide rules.
struct KeyBuf(String);

impl KeyBuf {
    fn push(&mut self, sym: char) {
        let last = self.0.chars().next_back();
        if last == Some(sym) && sym.is_ascii_alphabetic() {
            return;
        }
        if last == Some('I') && sym == 'e' {
            self.0.pop();
            if self.0.ends_with('e') {
                return;
            }
        } else if last == Some('I') && sym == 'o' {
            self.0.pop();
            if !self.0.ends_with('e') {
                self.0.push('e');
            }
            return;
        }
        self.0.push(sym);
    }
}

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u' | b'y')
}

fn key_of_latin(latin: &str, reading: Reading) -> String {
    let s: Vec<u8> = latin.bytes().filter(|b| *b != b' ').collect();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let starts = |i: usize, pat: &[u8]| s.get(i..i + pat.len()) == Some(pat);
    let mut key = KeyBuf(String::with_capacity(s.len()));
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if !c.is_ascii() {
            // Another script: copy the whole UTF-8 sequence.
            let len = match c {
                0xF0..=0xFF => 4,
                0xE0..=0xEF => 3,
                _ => 2,
            };
            let end = (i + len).min(s.len());
            if let Ok(text) = std::str::from_utf8(&s[i..end]) {
                key.0.push_str(text);
            }
            i = end;
            continue;
        }
        let (sym, used): (&str, usize) = if starts(i, b"shch") {
            ("S", 4)
        } else if starts(i, b"tsch") {
            ("Q", 4)
        } else if starts(i, b"sch") || starts(i, b"shh") {
            ("S", 3)
        } else if starts(i, b"tch") {
            ("Q", 3)
        } else if starts(i, b"dzh") {
            ("I", 3)
        } else if starts(i, b"sh") {
            ("S", 2)
        } else if starts(i, b"ch") {
            ("Q", 2)
        } else if starts(i, b"zh") {
            ("Z", 2)
        } else if starts(i, b"kh") {
            ("H", 2)
        } else if starts(i, b"ts") || starts(i, b"tz") || starts(i, b"cz") {
            ("C", 2)
        } else if starts(i, b"dj") {
            ("I", 2)
        } else if starts(i, b"gh") {
            ("g", 2)
        } else if starts(i, b"ph") {
            ("f", 2)
        } else if starts(i, b"th") {
            ("t", 2)
        } else if starts(i, b"dh") {
            ("d", 2)
        } else if starts(i, b"ck") {
            ("k", 2)
        } else if starts(i, b"ou") || starts(i, b"oo") {
            // French ou and English oo are u: Youssef = Yusuf, Noor = Nur, Mahmood = Mahmud.
            ("u", 2)
        } else if starts(i, b"ff") && i + 2 == s.len() {
            // Ivanoff, Romanoff: the old French-style -ov.
            ("v", 2)
        } else {
            let sym = match c {
                b'c' if matches!(at(i + 1), b'e' | b'i' | b'y') => {
                    if reading.gost_c {
                        "C"
                    } else {
                        "s"
                    }
                }
                b'c' | b'q' => "k",
                b'w' => "v",
                b'i' | b'y' | b'j' => "I",
                // Word-final h after a vowel is silent (Abdullah = Abdulla).
                b'h' if i + 1 == s.len() && i > 0 && is_vowel(s[i - 1]) => "",
                b'h' => "H",
                // x is ks in Alexander/Maxim/Xenia but GOST 7.79-B's х in Axmed/Xasan.
                b'x' if reading.gost_x => "H",
                b'x' => {
                    let next = at(i + 1);
                    let consonant_next = next.is_ascii_alphabetic() && !is_vowel(next);
                    if (i == 0 && !matches!(next, b'e' | b'i' | b'y'))
                        || (consonant_next && next != b's')
                    {
                        "H"
                    } else {
                        "ks"
                    }
                }
                _ => {
                    key.push(c as char);
                    i += 1;
                    continue;
                }
            };
            (sym, 1)
        };
        for ch in sym.chars() {
            key.push(ch);
        }
        i += used;
    }
    key.0
}

/// The consonant skeleton of a key: its first symbol, then its symbols other than vowels
/// and the glide. Mohammed, Muhammad and Mohamed share one skeleton.
pub(crate) fn skeleton(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for (i, c) in key.chars().enumerate() {
        let keep = i == 0 || !matches!(c, 'a' | 'e' | 'o' | 'u' | 'I');
        if keep && !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(names: &[&str]) {
        let first = latin_key(names[0]);
        for n in names {
            assert_eq!(latin_key(n), first, "{n} vs {}", names[0]);
        }
    }

    #[test]
    fn surnames_in_any_script_and_scheme() {
        same(&["Иванов", "Ivanov", "IVANOV", "Ivanoff", "Iwanow"]);
        same(&["Щукин", "Shchukin", "Shhukin", "Schukin", "SHCHUKIN"]);
        same(&["Хабаров", "Khabarov", "Habarov"]);
        same(&["Цветков", "Tsvetkov", "Czvetkov", "Tzvetkov"]);
        same(&["Жуков", "Zhukov"]);
        same(&["Чехов", "Chekhov", "Tchekhov"]);
        same(&[
            "Васильев",
            "Vasilyev",
            "Vasiliev",
            "Vasilev",
            "Vasil'ev",
            "Vasil`ev",
        ]);
        same(&["Андреев", "Andreyev", "Andreev"]);
        same(&["Объедков", "Obieedkov", "Ob``edkov", "Obʺyedkov"]);
        same(&[
            "Хрущёв",
            "Хрущев",
            "Khrushchev",
            "Khrushchyov",
            "Khrushchëv",
        ]);
    }

    #[test]
    fn given_names_in_any_script_and_scheme() {
        same(&["Сергей", "Sergei", "Sergey", "Sergej", "SERGEY"]);
        same(&["Юлия", "Yuliya", "Iuliia", "Julia", "Yulia"]);
        same(&[
            "Дмитрий",
            "Dmitriy",
            "Dmitrii",
            "Dmitry",
            "Dmitrij",
            "Dmitri",
        ]);
        same(&["Евгений", "Yevgeniy", "Evgenii", "Evgeny", "Jewgenij"]);
        same(&["Фёдор", "Федор", "Fyodor", "Fedor", "Fiodor"]);
        same(&["Алексей", "Aleksei", "Alexey", "Alexei", "Aleksey"]);
        same(&["Наталья", "Natalya", "Natalia", "Natal'ya"]);
        same(&["Илья", "Ilya", "Ilia", "Il'ya"]);
        same(&["Ксения", "Kseniya", "Xenia", "Ksenia"]);
        same(&["Джамал", "Jamal", "Djamal", "Dzhamal"]);
    }

    #[test]
    fn yo_and_signs_vanish() {
        same(&["Семён", "Семен", "Semyon", "Semen"]);
        same(&["Ольга", "Olga", "Ol'ga"]);
        same(&["Объём", "Обём"]);
    }

    #[test]
    fn arabic_names_share_a_skeleton() {
        let k = |s| skeleton(&latin_key(s));
        assert_eq!(k("Mohammed"), k("Muhammad"));
        assert_eq!(k("Mohamed"), k("Muhammad"));
        assert_eq!(k("Abdullah"), k("Abdulla"));
        assert_eq!(latin_key("Abdullah"), latin_key("Abdulla"));
        assert_eq!(latin_key("Axmed"), latin_key("Ahmed"));
        assert_eq!(latin_key("Noor"), latin_key("Nur"));
        assert_eq!(latin_key("Mahmood"), latin_key("Mahmud"));
    }

    #[test]
    fn gost_x_and_c_have_alternative_keys() {
        // GOST 7.79-B writes х as x and ц as c before i, e, y, j.
        assert!(latin_keys("Xasan").contains(&latin_key("Хасан")));
        assert!(latin_keys("Mixail").contains(&latin_key("Михаил")));
        assert!(latin_keys("Cyganov").contains(&latin_key("Цыганов")));
        assert_eq!(latin_keys("Alexandr")[0], latin_key("Александр"));
        assert_eq!(latin_keys("Ivanov"), [latin_key("Ivanov")]);
        assert_eq!(latin_keys("Иванов"), [latin_key("Ivanov")]);
    }

    #[test]
    fn mixed_script_tokens_are_read_as_cyrillic() {
        // A Latin "a" and "o" inside a Cyrillic word.
        same(&["Ивaнoв", "Иванов"]);
    }

    #[test]
    fn different_names_keep_different_keys() {
        assert_ne!(latin_key("Ivanov"), latin_key("Ivanova"));
        assert_ne!(latin_key("Petrov"), latin_key("Petrova"));
        assert_ne!(latin_key("Sergey"), latin_key("Sergeev"));
        assert_ne!(latin_key("Maria"), latin_key("Mario"));
    }

    #[test]
    fn other_scripts_and_digits_pass_through() {
        assert_eq!(latin_key("محمد"), "محمد");
        assert_eq!(latin_key("007"), "007");
        assert_eq!(latin_key(""), "");
    }
}
