//! A realistic, deterministic customer export like a core banking system drops: a
//! `;`-separated file with Russian headers, encoded in windows-1251, with persons and
//! organisations whose INN, SNILS and OGRN carry valid check digits — plus, on request, a
//! share of invalid rows (each with the one field that is wrong) and of exact re-sent rows.
//! Used by `hub demo`, `hub bench` and the end-to-end tests, which check their results
//! against what the generator says it wrote.

use std::collections::BTreeMap;

/// The header row, in the order of the cells.
pub const HEADER: &[&str] = &[
    "КлиентИД",
    "Версия",
    "Тип",
    "Фамилия",
    "Имя",
    "Отчество",
    "Наименование",
    "ИНН",
    "СНИЛС",
    "ОГРН",
    "Паспорт",
    "ДатаРождения",
    "Телефон",
    "ЭлПочта",
    "Адрес",
    "Индекс",
    "Сегмент",
    "Статус",
];

/// The `[sources.columns]` table that maps [`HEADER`] to the canonical party.
pub const COLUMNS_TOML: &str = r#"key = "КлиентИД"
version = "Версия"
kind = "Тип"
last_name = "Фамилия"
first_name = "Имя"
middle_name = "Отчество"
full_name = "Наименование"
inn = "ИНН"
snils = "СНИЛС"
ogrn = "ОГРН"
passport = "Паспорт"
birth_date = "ДатаРождения"
phone = "Телефон"
email = "ЭлПочта"
address = "Адрес"
postal_code = "Индекс"
segment = "Сегмент"
status = "Статус"
"#;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub customers: usize,
    /// Share of rows made invalid, 0.0..=1.0.
    pub invalid_ratio: f64,
    /// Share of rows sent a second time, unchanged, later in the file.
    pub resend_ratio: f64,
    pub seed: u64,
    /// First customer number, so several files can hold different customers.
    pub first_id: u64,
    /// Version written in every row (change sequence at the source).
    pub version: i64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            customers: 10_000,
            invalid_ratio: 0.03,
            resend_ratio: 0.01,
            seed: 20261125,
            first_id: 1,
            version: 1,
        }
    }
}

/// What the generator wrote.
#[derive(Debug, Clone, Default)]
pub struct Generated {
    /// The file, windows-1251.
    pub bytes: Vec<u8>,
    /// Data rows written (customers + re-sent rows).
    pub rows: usize,
    /// Keys of the valid customers (each must reach the CRM exactly once).
    pub valid_keys: Vec<String>,
    /// Invalid rows: 1-based line number in the file → the canonical field that is wrong.
    pub invalid: BTreeMap<u64, &'static str>,
    /// Rows sent twice.
    pub resent: usize,
}

/// Generates the export.
pub fn generate(opts: &Options) -> Generated {
    let mut rng = Rng(opts.seed);
    let mut out = Generated::default();
    let mut text = String::with_capacity(opts.customers * 200);
    text.push_str(&HEADER.join(";"));
    text.push_str("\r\n");
    let mut line: u64 = 1;
    let mut earlier: Vec<String> = Vec::new();
    for i in 0..opts.customers {
        let id = format!("C{:08}", opts.first_id + i as u64);
        let mut cells = if rng.below(10) == 0 {
            organisation(&mut rng, &id, opts.version)
        } else {
            person(&mut rng, &id, opts.version)
        };
        let invalid = rng.unit() < opts.invalid_ratio;
        line += 1;
        if invalid {
            let field = spoil(&mut rng, &mut cells);
            out.invalid.insert(line, field);
        } else {
            out.valid_keys.push(id.clone());
        }
        let row = cells.join(";");
        text.push_str(&row);
        text.push_str("\r\n");
        out.rows += 1;
        if !invalid && rng.unit() < opts.resend_ratio {
            earlier.push(row);
        }
        // Re-send a few rows a little later, as an export job that retried a page would.
        if earlier.len() >= 8 || (i + 1 == opts.customers && !earlier.is_empty()) {
            for r in earlier.drain(..) {
                line += 1;
                text.push_str(&r);
                text.push_str("\r\n");
                out.rows += 1;
                out.resent += 1;
            }
        }
    }
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&text);
    out.bytes = bytes.into_owned();
    out
}

const LAST_M: &[&str] = &[
    "Иванов",
    "Смирнов",
    "Кузнецов",
    "Попов",
    "Васильев",
    "Петров",
    "Соколов",
    "Михайлов",
    "Новиков",
    "Фёдоров",
    "Морозов",
    "Волков",
    "Алексеев",
    "Лебедев",
    "Семёнов",
    "Егоров",
    "Павлов",
    "Козлов",
    "Степанов",
    "Николаев",
    "Орлов",
    "Андреев",
    "Макаров",
    "Никитин",
];
const FIRST_M: &[&str] = &[
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Артём",
    "Николай",
    "Владимир",
    "Павел",
    "Юрий",
    "Олег",
    "Игорь",
];
const FIRST_F: &[&str] = &[
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Анна",
    "Мария",
    "Светлана",
    "Юлия",
    "Екатерина",
    "Анастасия",
    "Дарья",
    "Марина",
    "Людмила",
    "Галина",
    "Вера",
];
const PATRONYMIC_ROOTS: &[&str] = &[
    "Александров",
    "Сергеев",
    "Дмитриев",
    "Андреев",
    "Алексеев",
    "Иванов",
    "Михайлов",
    "Николаев",
    "Владимиров",
    "Павлов",
    "Петров",
    "Юрьев",
    "Олегов",
    "Игорев",
];
const STREETS: &[&str] = &[
    "ул. Ленина",
    "ул. Гагарина",
    "пр-т Мира",
    "ул. Садовая",
    "ул. Советская",
    "ул. Школьная",
    "ул. Лесная",
    "наб. Невская",
    "ул. Молодёжная",
    "пер. Цветочный",
];
const CITIES: &[(&str, &str)] = &[
    ("г. Москва", "1"),
    ("г. Санкт-Петербург", "19"),
    ("г. Новосибирск", "63"),
    ("г. Екатеринбург", "62"),
    ("г. Казань", "42"),
    ("г. Нижний Новгород", "60"),
    ("г. Самара", "44"),
    ("г. Омск", "64"),
];
const COMPANY_WORDS: &[&str] = &[
    "Ромашка",
    "Вектор",
    "Север",
    "Гранит",
    "Альфа",
    "Меридиан",
    "Восход",
    "Орион",
    "Заря",
    "Прогресс",
    "Стройинвест",
    "Техносервис",
];
const SEGMENTS: &[&str] = &["mass", "affluent", "private", "sme", "corporate"];

fn person(rng: &mut Rng, id: &str, version: i64) -> Vec<String> {
    let female = rng.below(2) == 0;
    let mut last = pick(rng, LAST_M).to_string();
    let first = if female {
        pick(rng, FIRST_F)
    } else {
        pick(rng, FIRST_M)
    };
    let root = pick(rng, PATRONYMIC_ROOTS);
    let middle = if female {
        last.push('а');
        format!("{root}на")
    } else {
        format!("{root}ич")
    };
    let inn = inn12(rng);
    let snils = snils(rng);
    let passport = format!("{:04} {:06}", 1000 + rng.below(8999), rng.below(999_999));
    let birth = format!(
        "{:02}.{:02}.{}",
        1 + rng.below(28),
        1 + rng.below(12),
        1940 + rng.below(65)
    );
    let phone = phone(rng);
    let email = format!(
        "{}.{}{}@{}",
        translit_login(first),
        translit_login(&last),
        rng.below(1000),
        pick(
            rng,
            &["mail.ru", "yandex.ru", "bk.ru", "gmail.com", "inbox.ru"]
        )
    );
    let (city, zip_prefix) = CITIES[rng.below(CITIES.len() as u64) as usize];
    let address = format!(
        "{city}, {}, д. {}, кв. {}",
        pick(rng, STREETS),
        1 + rng.below(150),
        1 + rng.below(300)
    );
    let zip = format!(
        "{zip_prefix}{:0width$}",
        rng.below(10_000),
        width = 6 - zip_prefix.len()
    );
    vec![
        id.to_string(),
        version.to_string(),
        "ФЛ".into(),
        last,
        first.to_string(),
        middle,
        String::new(),
        inn,
        snils,
        String::new(),
        passport,
        birth,
        phone,
        email,
        address,
        zip,
        pick(rng, &SEGMENTS[..3]).to_string(),
        "active".into(),
    ]
}

fn organisation(rng: &mut Rng, id: &str, version: i64) -> Vec<String> {
    let name = format!(
        "{} «{}-{}»",
        pick(rng, &["ООО", "АО", "ПАО"]),
        pick(rng, COMPANY_WORDS),
        rng.below(1000)
    );
    let (city, zip_prefix) = CITIES[rng.below(CITIES.len() as u64) as usize];
    vec![
        id.to_string(),
        version.to_string(),
        "ЮЛ".into(),
        String::new(),
        String::new(),
        String::new(),
        name,
        inn10(rng),
        String::new(),
        ogrn(rng),
        String::new(),
        String::new(),
        phone(rng),
        format!(
            "info{}@{}.ru",
            rng.below(10_000),
            pick(rng, &["corp", "firm", "group"])
        ),
        format!("{city}, {}, д. {}", pick(rng, STREETS), 1 + rng.below(150)),
        format!(
            "{zip_prefix}{:0width$}",
            rng.below(10_000),
            width = 6 - zip_prefix.len()
        ),
        pick(rng, &SEGMENTS[3..]).to_string(),
        "active".into(),
    ]
}

/// Makes exactly one field of a row invalid; returns the canonical field's name.
fn spoil(rng: &mut Rng, cells: &mut [String]) -> &'static str {
    let is_person = cells[2] == "ФЛ";
    match rng.below(5) {
        0 => {
            // Wrong check digit.
            let inn = &mut cells[7];
            let last = inn.pop().and_then(|c| c.to_digit(10)).unwrap_or(0);
            inn.push(char::from(b'0' + ((last + 1) % 10) as u8));
            "inn"
        }
        1 => {
            cells[12] = format!("{}", 1000 + rng.below(9000));
            "phone"
        }
        2 => {
            cells[13] = cells[13].replace('@', " at ");
            "email"
        }
        3 if is_person => {
            cells[3].clear();
            "last_name"
        }
        3 => {
            cells[6].clear();
            "full_name"
        }
        _ if is_person => {
            cells[11] = format!("{:02}.{:02}.{}", 1 + rng.below(28), 1 + rng.below(12), 2090);
            "birth_date"
        }
        _ => {
            cells[7].truncate(9);
            "inn"
        }
    }
}

fn pick<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len() as u64) as usize]
}

fn digits(rng: &mut Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.below(10) as u32).collect()
}

fn weighted(d: &[u32], w: &[u32]) -> u32 {
    d.iter().zip(w).map(|(a, b)| a * b).sum::<u32>() % 11 % 10
}

fn join(d: &[u32]) -> String {
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

/// A 12-digit person INN with valid check digits (region code 77..79 style prefix).
fn inn12(rng: &mut Rng) -> String {
    let mut d = vec![7, 7];
    d.extend(digits(rng, 8));
    let n11 = weighted(&d, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]);
    d.push(n11);
    let n12 = weighted(&d, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]);
    d.push(n12);
    join(&d)
}

/// A 10-digit organisation INN with a valid check digit.
fn inn10(rng: &mut Rng) -> String {
    let mut d = vec![7, 7];
    d.extend(digits(rng, 7));
    let c = weighted(&d, &[2, 4, 10, 3, 5, 9, 4, 6, 8]);
    d.push(c);
    join(&d)
}

/// A 13-digit OGRN with a valid check digit.
fn ogrn(rng: &mut Rng) -> String {
    let mut d = vec![1, 0, 2, 7, 7];
    d.extend(digits(rng, 7));
    let first12: u64 = join(&d).parse().unwrap_or(0);
    d.push((first12 % 11 % 10) as u32);
    join(&d)
}

/// A SNILS "123-456-789 01" with a valid check number.
fn snils(rng: &mut Rng) -> String {
    let mut d = digits(rng, 9);
    d[0] = 1 + rng.below(9) as u32; // stay above the range that has no check number
    let sum: u32 = d.iter().enumerate().map(|(i, x)| x * (9 - i as u32)).sum();
    let check = match sum {
        s if s < 100 => s,
        100 | 101 => 0,
        s => {
            let m = s % 101;
            if m == 100 { 0 } else { m }
        }
    };
    let s = join(&d);
    format!("{}-{}-{} {:02}", &s[0..3], &s[3..6], &s[6..9], check)
}

fn phone(rng: &mut Rng) -> String {
    let n = format!("9{:02}{:07}", rng.below(100), rng.below(10_000_000));
    match rng.below(3) {
        0 => format!("+7 ({}) {}-{}-{}", &n[0..3], &n[3..6], &n[6..8], &n[8..10]),
        1 => format!("8{n}"),
        _ => format!("+7{n}"),
    }
}

fn translit_login(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        let t = match c {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'е' | 'ё' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' => "i",
            'й' => "y",
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
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ы' => "y",
            'э' => "e",
            'ю' => "yu",
            'я' => "ya",
            _ => "",
        };
        out.push_str(t);
    }
    out
}

/// SplitMix64: small, fast and deterministic across platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapping::validate;

    #[test]
    fn generated_identifiers_pass_the_validators() {
        let mut rng = Rng(7);
        for _ in 0..500 {
            assert!(validate::inn(&inn12(&mut rng)).is_ok());
            assert!(validate::inn(&inn10(&mut rng)).is_ok());
            assert!(validate::snils(&snils(&mut rng)).is_ok());
            assert!(validate::ogrn(&ogrn(&mut rng)).is_ok());
            assert!(validate::phone(&phone(&mut rng)).is_ok());
        }
    }

    #[test]
    fn generation_is_deterministic_and_counts_add_up() {
        let opts = Options {
            customers: 2000,
            ..Options::default()
        };
        let a = generate(&opts);
        let b = generate(&opts);
        assert_eq!(a.bytes, b.bytes);
        assert_eq!(a.valid_keys.len() + a.invalid.len(), 2000);
        assert_eq!(a.rows, 2000 + a.resent);
        assert!(!a.invalid.is_empty() && a.resent > 0);
    }
}
