//! Synthetic Russian customers with known identities, for evaluating and benchmarking the
//! matcher. Deterministic: the same seed gives the same data on every machine, and entity
//! `e` is generated from its own random stream, so any range of entities can be generated
//! on its own (in parallel).
//!
//! What makes it hard, by design:
//! - one system writes Cyrillic, the other romanises under a random scheme (GOST 7.79-B,
//!   ICAO 9303, BGN/PCGN, informal), often in capitals; Ё is written Е about half the time;
//! - typos (substitution, deletion, doubled letter, swap of neighbours) in names and
//!   addresses, day–month swaps and one-digit errors in birth dates, postcode typos,
//!   given name and surname swapped, street types written differently;
//! - identifiers (SNILS, INN, phone, e-mail, patronymic) missing from many duplicates, and
//!   phones and e-mails changed over time;
//! - hard non-matches: of every 50 entities, one is the son of another (same name and
//!   address, different birth date and patronymic), one is the twin of another (same
//!   surname, patronymic, birth date and address, different given name), one is a namesake
//!   (same surname and given name, elsewhere) and one a namesake born the same day.

use std::io::Write;

use super::febrl::{COLUMNS, EXTRA_COLUMNS};
use super::matching::MatchRecord;
use super::rng::SplitMix64;
use crate::names::{self, Scheme};

/// Male given names with their patronymics (masculine, feminine), most common first.
const MALE: &[(&str, &str, &str)] = &[
    ("Александр", "Александрович", "Александровна"),
    ("Сергей", "Сергеевич", "Сергеевна"),
    ("Дмитрий", "Дмитриевич", "Дмитриевна"),
    ("Андрей", "Андреевич", "Андреевна"),
    ("Алексей", "Алексеевич", "Алексеевна"),
    ("Максим", "Максимович", "Максимовна"),
    ("Евгений", "Евгеньевич", "Евгеньевна"),
    ("Иван", "Иванович", "Ивановна"),
    ("Михаил", "Михайлович", "Михайловна"),
    ("Артём", "Артёмович", "Артёмовна"),
    ("Владимир", "Владимирович", "Владимировна"),
    ("Николай", "Николаевич", "Николаевна"),
    ("Павел", "Павлович", "Павловна"),
    ("Денис", "Денисович", "Денисовна"),
    ("Игорь", "Игоревич", "Игоревна"),
    ("Роман", "Романович", "Романовна"),
    ("Олег", "Олегович", "Олеговна"),
    ("Виктор", "Викторович", "Викторовна"),
    ("Юрий", "Юрьевич", "Юрьевна"),
    ("Антон", "Антонович", "Антоновна"),
    ("Никита", "Никитич", "Никитична"),
    ("Илья", "Ильич", "Ильинична"),
    ("Кирилл", "Кириллович", "Кирилловна"),
    ("Владислав", "Владиславович", "Владиславовна"),
    ("Константин", "Константинович", "Константиновна"),
    ("Анатолий", "Анатольевич", "Анатольевна"),
    ("Василий", "Васильевич", "Васильевна"),
    ("Пётр", "Петрович", "Петровна"),
    ("Григорий", "Григорьевич", "Григорьевна"),
    ("Егор", "Егорович", "Егоровна"),
    ("Вадим", "Вадимович", "Вадимовна"),
    ("Виталий", "Витальевич", "Витальевна"),
    ("Борис", "Борисович", "Борисовна"),
    ("Георгий", "Георгиевич", "Георгиевна"),
    ("Леонид", "Леонидович", "Леонидовна"),
    ("Валерий", "Валерьевич", "Валерьевна"),
    ("Вячеслав", "Вячеславович", "Вячеславовна"),
    ("Фёдор", "Фёдорович", "Фёдоровна"),
    ("Степан", "Степанович", "Степановна"),
    ("Яков", "Яковлевич", "Яковлевна"),
    ("Тимур", "Тимурович", "Тимуровна"),
    ("Руслан", "Русланович", "Руслановна"),
    ("Геннадий", "Геннадьевич", "Геннадьевна"),
    ("Семён", "Семёнович", "Семёновна"),
    ("Матвей", "Матвеевич", "Матвеевна"),
    ("Лев", "Львович", "Львовна"),
    ("Глеб", "Глебович", "Глебовна"),
    ("Ярослав", "Ярославович", "Ярославовна"),
    ("Станислав", "Станиславович", "Станиславовна"),
    ("Эдуард", "Эдуардович", "Эдуардовна"),
    ("Аркадий", "Аркадьевич", "Аркадьевна"),
    ("Тимофей", "Тимофеевич", "Тимофеевна"),
    ("Филипп", "Филиппович", "Филипповна"),
    ("Захар", "Захарович", "Захаровна"),
    ("Арсений", "Арсеньевич", "Арсеньевна"),
];

/// Female given names, most common first.
#[rustfmt::skip]
const FEMALE: &[&str] = &[
    "Елена", "Ольга", "Наталья", "Татьяна", "Ирина", "Светлана", "Анна", "Мария", "Екатерина",
    "Юлия", "Анастасия", "Марина", "Галина", "Людмила", "Надежда", "Валентина", "Дарья",
    "Ксения", "Алёна", "Александра", "Виктория", "Евгения", "Оксана", "Полина", "Вера",
    "Любовь", "Лариса", "Нина", "Тамара", "Алина", "Кристина", "Елизавета", "Софья", "Варвара",
    "Маргарита", "Вероника", "Диана", "Инна", "Жанна", "Зоя", "Раиса", "Лидия", "Антонина",
    "Алла", "Карина", "Ульяна", "Яна", "Олеся", "Эльвира", "Таисия", "Василиса", "Милана",
    "Фаина", "Снежана", "Клавдия", "Зинаида",
];

/// Surnames in their masculine form, most common first.
#[rustfmt::skip]
const SURNAMES: &[&str] = &[
    "Иванов", "Смирнов", "Кузнецов", "Попов", "Васильев", "Петров", "Соколов", "Михайлов",
    "Новиков", "Фёдоров", "Морозов", "Волков", "Алексеев", "Лебедев", "Семёнов", "Егоров",
    "Павлов", "Козлов", "Степанов", "Николаев", "Орлов", "Андреев", "Макаров", "Никитин",
    "Захаров", "Зайцев", "Соловьёв", "Борисов", "Яковлев", "Григорьев", "Романов", "Воробьёв",
    "Сергеев", "Кузьмин", "Фролов", "Александров", "Дмитриев", "Королёв", "Гусев", "Киселёв",
    "Ильин", "Максимов", "Поляков", "Сорокин", "Виноградов", "Ковалёв", "Белов", "Медведев",
    "Антонов", "Тарасов", "Жуков", "Баранов", "Филиппов", "Комаров", "Давыдов", "Беляев",
    "Герасимов", "Богданов", "Осипов", "Сидоров", "Матвеев", "Титов", "Марков", "Миронов",
    "Крылов", "Куликов", "Карпов", "Власов", "Мельников", "Денисов", "Гаврилов", "Тихонов",
    "Казаков", "Афанасьев", "Данилов", "Савельев", "Тимофеев", "Фомин", "Чернов", "Абрамов",
    "Мартынов", "Ефимов", "Федотов", "Щербаков", "Назаров", "Калинин", "Исаев", "Чернышёв",
    "Быков", "Маслов", "Родионов", "Коновалов", "Лазарев", "Воронин", "Климов", "Филатов",
    "Пономарёв", "Голубев", "Кудрявцев", "Прохоров", "Наумов", "Потапов", "Журавлёв",
    "Овчинников", "Трофимов", "Леонов", "Соболев", "Ермаков", "Колесников", "Гончаров",
    "Емельянов", "Никифоров", "Грачёв", "Котов", "Гришин", "Ефремов", "Архипов", "Громов",
    "Кириллов", "Малышев", "Панов", "Моисеев", "Румянцев", "Акимов", "Кондратьев", "Бирюков",
    "Горбунов", "Анисимов", "Ерёмин", "Тихомиров", "Галкин", "Лукьянов", "Михеев", "Скворцов",
    "Юдин", "Белоусов", "Нестеров", "Симонов", "Прокофьев", "Харитонов", "Князев", "Цветков",
    "Левин", "Митрофанов", "Воронов", "Аксёнов", "Софронов", "Мальцев", "Логинов", "Горшков",
    "Савин", "Краснов", "Майоров", "Демидов", "Елисеев", "Рыбаков", "Сафонов", "Плотников",
    "Дёмин", "Хохлов", "Жданов", "Ёлкин", "Щукин", "Хрущёв", "Чайковский", "Вишневский",
    "Островский", "Покровский", "Шевченко", "Бондаренко", "Коваленко", "Ткаченко", "Кравченко",
    "Черных", "Седых", "Ким", "Пак", "Юсупов", "Ахметов", "Гарипов", "Шубин", "Зуев",
    "Субботин", "Лыткин", "Ширяев", "Тюрин", "Кожевников", "Пестов", "Рожков", "Зыков", "Уткин",
    "Щеглов", "Ящук", "Эйдельман", "Юрьев", "Ягодкин",
];

/// Streets (the name as used after «ул.»).
#[rustfmt::skip]
const STREETS: &[&str] = &[
    "Ленина", "Советская", "Мира", "Молодёжная", "Центральная", "Школьная", "Садовая", "Лесная",
    "Новая", "Набережная", "Заречная", "Зелёная", "Октябрьская", "Комсомольская",
    "Первомайская", "Победы", "Кирова", "Горького", "Чехова", "Пушкина", "Гагарина",
    "Лермонтова", "Некрасова", "Суворова", "Мичурина", "Строителей", "Рабочая", "Гоголя",
    "Королёва", "Жукова", "Островского", "Чкалова", "Маяковского", "Калинина", "Фрунзе",
    "Дзержинского", "Куйбышева", "Свердлова", "Толстого", "Тургенева", "Степная", "Полевая",
    "Луговая", "Южная", "Северная", "Солнечная", "Вокзальная", "Речная", "Парковая", "Дачная",
    "Заводская", "Пролетарская", "Космонавтов", "Юбилейная", "Шевченко", "Щорса", "Чапаева",
    "Энтузиастов", "Ульяновская", "Ясная",
];

/// Street types: Cyrillic spellings and romanised ones.
#[rustfmt::skip]
const STREET_TYPES: &[&str] = &["ул.", "улица", "пр-т", "проспект", "пер.", "бульвар", "ш."];

/// City, region, first four postcode digits.
const CITIES: &[(&str, &str, &str)] = &[
    ("Москва", "г. Москва", "1010"),
    ("Санкт-Петербург", "г. Санкт-Петербург", "1900"),
    ("Новосибирск", "Новосибирская обл.", "6300"),
    ("Екатеринбург", "Свердловская обл.", "6200"),
    ("Казань", "Респ. Татарстан", "4200"),
    ("Нижний Новгород", "Нижегородская обл.", "6030"),
    ("Челябинск", "Челябинская обл.", "4540"),
    ("Самара", "Самарская обл.", "4430"),
    ("Омск", "Омская обл.", "6440"),
    ("Ростов-на-Дону", "Ростовская обл.", "3440"),
    ("Уфа", "Респ. Башкортостан", "4500"),
    ("Красноярск", "Красноярский край", "6600"),
    ("Воронеж", "Воронежская обл.", "3940"),
    ("Пермь", "Пермский край", "6140"),
    ("Волгоград", "Волгоградская обл.", "4000"),
    ("Краснодар", "Краснодарский край", "3500"),
    ("Саратов", "Саратовская обл.", "4100"),
    ("Тюмень", "Тюменская обл.", "6250"),
    ("Ижевск", "Удмуртская Респ.", "4260"),
    ("Барнаул", "Алтайский край", "6560"),
    ("Ульяновск", "Ульяновская обл.", "4320"),
    ("Иркутск", "Иркутская обл.", "6640"),
    ("Хабаровск", "Хабаровский край", "6800"),
    ("Ярославль", "Ярославская обл.", "1500"),
    ("Владивосток", "Приморский край", "6900"),
    ("Томск", "Томская обл.", "6340"),
    ("Оренбург", "Оренбургская обл.", "4600"),
    ("Кемерово", "Кемеровская обл.", "6500"),
    ("Рязань", "Рязанская обл.", "3900"),
    ("Тверь", "Тверская обл.", "1700"),
    ("Тула", "Тульская обл.", "3000"),
    ("Киров", "Кировская обл.", "6100"),
    ("Курск", "Курская обл.", "3050"),
    ("Брянск", "Брянская обл.", "2410"),
    ("Иваново", "Ивановская обл.", "1530"),
    ("Белгород", "Белгородская обл.", "3080"),
    ("Архангельск", "Архангельская обл.", "1630"),
    ("Мурманск", "Мурманская обл.", "1830"),
    ("Чебоксары", "Чувашская Респ.", "4280"),
    ("Якутск", "Респ. Саха (Якутия)", "6770"),
];

#[rustfmt::skip]
const MAIL_DOMAINS: &[&str] = &[
    "mail.ru", "yandex.ru", "gmail.com", "bk.ru", "list.ru", "inbox.ru", "rambler.ru",
];

/// One person as the truth knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// Female?
    pub female: bool,
    /// Surname in Cyrillic (gendered form).
    pub surname: String,
    /// Given name in Cyrillic.
    pub given: String,
    /// Patronymic in Cyrillic.
    pub patronymic: String,
    /// Birth date (year, month, day).
    pub dob: (u32, u32, u32),
    /// City index into the city table.
    pub city: usize,
    /// Street index.
    pub street: usize,
    /// House number.
    pub house: u32,
    /// Flat number (0: a house).
    pub flat: u32,
    /// Mobile phone, 10 national digits.
    pub phone: u64,
    /// E-mail address.
    pub email: String,
    /// SNILS, 11 digits with a valid check number.
    pub snils: String,
    /// INN of a person, 12 digits with valid check digits.
    pub inn: String,
}

/// The feminine form of a masculine surname.
pub fn feminine_surname(s: &str) -> String {
    for (m, f) in [
        ("ский", "ская"),
        ("цкий", "цкая"),
        ("ой", "ая"),
        ("ый", "ая"),
    ] {
        if let Some(stem) = s.strip_suffix(m) {
            return format!("{stem}{f}");
        }
    }
    if ["ов", "ев", "ёв", "ин", "ын"]
        .iter()
        .any(|e| s.ends_with(e))
    {
        return format!("{s}а");
    }
    s.to_owned()
}

/// The masculine form of a surname (inverse of [`feminine_surname`]).
pub fn masculine_surname(s: &str) -> String {
    for (f, m) in [("ская", "ский"), ("цкая", "цкий")] {
        if let Some(stem) = s.strip_suffix(f) {
            return format!("{stem}{m}");
        }
    }
    if ["ова", "ева", "ёва", "ина", "ына"]
        .iter()
        .any(|e| s.ends_with(e))
    {
        return s.trim_end_matches('а').to_owned();
    }
    s.to_owned()
}

/// A rank skewed towards the start of a list of `n` (common values first).
fn skewed(rng: &mut SplitMix64, n: usize) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    ((u * u * n as f64) as usize).min(n.saturating_sub(1))
}

/// A SNILS with a valid check number (the number part above 001-001-998).
pub fn snils_number(rng: &mut SplitMix64) -> String {
    let body: u64 = 2_000_000 + rng.below(997_000_000);
    let d: Vec<u32> = format!("{body:09}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let sum: u32 = d
        .iter()
        .zip([9, 8, 7, 6, 5, 4, 3, 2, 1])
        .map(|(x, w)| x * w)
        .sum();
    let check = match sum {
        0..=99 => sum,
        100 | 101 => 0,
        _ => match sum % 101 {
            100 => 0,
            m => m,
        },
    };
    format!("{body:09}{check:02}")
}

/// A person's 12-digit INN with valid check digits (region code from the city).
pub fn inn_number(rng: &mut SplitMix64) -> String {
    let body = 1_000_000_000 + rng.below(8_999_999_999);
    let mut d: Vec<u32> = format!("{body:010}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let w11 = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    let c11 = d.iter().zip(w11).map(|(x, w)| x * w).sum::<u32>() % 11 % 10;
    d.push(c11);
    let w12 = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
    let c12 = d.iter().zip(w12).map(|(x, w)| x * w).sum::<u32>() % 11 % 10;
    d.push(c12);
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

fn date_between(rng: &mut SplitMix64, from_year: u32, to_year: u32) -> (u32, u32, u32) {
    let y = from_year + rng.below(u64::from(to_year - from_year + 1)) as u32;
    let m = 1 + rng.below(12) as u32;
    let days = match m {
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    (y, m, 1 + rng.below(days) as u32)
}

/// Latin spelling of a name for e-mail addresses.
fn email_local(given: &str, surname: &str, year: u32, rng: &mut SplitMix64) -> String {
    let g = names::romanize(given, Scheme::Informal).replace(' ', "");
    let s = names::romanize(surname, Scheme::Informal).replace(' ', "");
    let initial: String = g.chars().take(1).collect();
    // Personal mailboxes are unique: every form carries digits.
    match rng.below(4) {
        0 => format!("{initial}.{s}{}", rng.below(10_000)),
        1 => format!("{g}.{s}{}", year % 100),
        2 => format!("{s}{year}"),
        _ => format!("{g}_{s}{}", rng.below(1000)),
    }
}

fn email_for(given: &str, surname: &str, year: u32, rng: &mut SplitMix64) -> String {
    let local = email_local(given, surname, year, rng);
    let domain = rng.pick(MAIL_DOMAINS).copied().unwrap_or("mail.ru");
    format!("{local}@{domain}")
}

/// A new person from `rng`, born between the given years.
fn fresh_person(rng: &mut SplitMix64, female: bool, years: (u32, u32)) -> Person {
    let father = MALE[skewed(rng, MALE.len())];
    let base = SURNAMES[skewed(rng, SURNAMES.len())];
    let surname = if female {
        feminine_surname(base)
    } else {
        base.to_owned()
    };
    let (given, patronymic) = if female {
        (
            FEMALE[skewed(rng, FEMALE.len())].to_owned(),
            father.2.to_owned(),
        )
    } else {
        (
            MALE[skewed(rng, MALE.len())].0.to_owned(),
            father.1.to_owned(),
        )
    };
    let dob = date_between(rng, years.0, years.1);
    let email = email_for(&given, &surname, dob.0, rng);
    Person {
        female,
        surname,
        given,
        patronymic,
        dob,
        city: skewed(rng, CITIES.len()),
        street: rng.index(STREETS.len()),
        house: 1 + rng.below(150) as u32,
        flat: if rng.chance(0.8) {
            1 + rng.below(300) as u32
        } else {
            0
        },
        phone: 9_000_000_000 + rng.below(999_999_999),
        email,
        snils: snils_number(rng),
        inn: inn_number(rng),
    }
}

/// How entity `e` relates to others (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Anchor of a father–son pair (a man born 1945–1975).
    Father,
    /// Son of entity e − 1.
    Son,
    /// Anchor of a twin pair.
    TwinA,
    /// Twin of entity e − 1.
    TwinB,
    /// Namesake of entity e − 4 (a father), living elsewhere.
    Namesake,
    /// Namesake of entity e − 5 born the same day, living elsewhere.
    NamesakeSameDay,
    /// Anyone else.
    Plain,
}

fn role(e: u64) -> Role {
    match e % 50 {
        0 => Role::Father,
        1 => Role::Son,
        2 => Role::TwinA,
        3 => Role::TwinB,
        4 => Role::Namesake,
        5 => Role::NamesakeSameDay,
        _ => Role::Plain,
    }
}

/// Entity `e` of the population `seed`. Related entities are derived from their anchor,
/// regenerated from its own stream, so every entity can be generated independently.
pub fn person(seed: u64, e: u64) -> Person {
    let mut rng = SplitMix64::for_item(seed, e);
    match role(e) {
        Role::Father => fresh_person(&mut rng, false, (1945, 1975)),
        Role::TwinA | Role::Plain => {
            let female = rng.chance(0.5);
            fresh_person(&mut rng, female, (1940, 2005))
        }
        Role::Son => {
            let father = person(seed, e - 1);
            let mut son = fresh_person(&mut rng, false, (1960, 2005));
            let patronymic = MALE
                .iter()
                .find(|m| m.0 == father.given)
                .map_or(son.patronymic.clone(), |m| m.1.to_owned());
            let gap = 20 + rng.below(15) as u32;
            son.surname = father.surname.clone();
            son.given = father.given.clone();
            son.patronymic = patronymic;
            son.dob = (father.dob.0 + gap, son.dob.1, son.dob.2);
            son.city = father.city;
            son.street = father.street;
            son.house = father.house;
            son.flat = father.flat;
            son.email = email_for(&son.given, &son.surname, son.dob.0, &mut rng);
            son
        }
        Role::TwinB => {
            let twin = person(seed, e - 1);
            let female = rng.chance(0.5);
            let mut p = fresh_person(&mut rng, female, (1940, 2005));
            let base_surname = masculine_surname(&twin.surname);
            p.surname = if female {
                feminine_surname(&base_surname)
            } else {
                base_surname
            };
            // Same father: the patronymic agrees, in the twin's gender.
            let father = MALE
                .iter()
                .find(|m| m.1 == twin.patronymic || m.2 == twin.patronymic);
            if let Some(f) = father {
                p.patronymic = if female { f.2 } else { f.1 }.to_owned();
            }
            // A different given name, even when the draw repeats the twin's.
            while p.given == twin.given {
                p.given = if female {
                    FEMALE[rng.index(FEMALE.len())].to_owned()
                } else {
                    MALE[rng.index(MALE.len())].0.to_owned()
                };
            }
            p.dob = twin.dob;
            p.city = twin.city;
            p.street = twin.street;
            p.house = twin.house;
            p.flat = twin.flat;
            p.email = email_for(&p.given, &p.surname, p.dob.0, &mut rng);
            p
        }
        Role::Namesake | Role::NamesakeSameDay => {
            let back = if role(e) == Role::Namesake { 4 } else { 5 };
            let other = person(seed, e - back);
            let mut p = fresh_person(&mut rng, other.female, (1940, 2005));
            p.surname = other.surname.clone();
            p.given = other.given.clone();
            if role(e) == Role::NamesakeSameDay {
                p.dob = other.dob;
            }
            while p.city == other.city {
                p.city = rng.index(CITIES.len());
            }
            p.email = email_for(&p.given, &p.surname, p.dob.0, &mut rng);
            p
        }
    }
}

/// Whether entity `e` takes part in a hard non-match (a father, son, twin or namesake).
pub fn is_hard_case(e: u64) -> bool {
    role(e) != Role::Plain
}

/// One typo: substitution, deletion, doubled letter or swap of neighbours, at a random
/// position; letters are replaced by letters of the same script.
pub fn typo(s: &str, rng: &mut SplitMix64) -> String {
    let mut c: Vec<char> = s.chars().collect();
    let letters: Vec<usize> = (0..c.len()).filter(|&i| c[i].is_alphabetic()).collect();
    let Some(&i) = rng.pick(&letters) else {
        return s.to_owned();
    };
    let cyr = "абвгдежзиклмнопрстуфхцчшщыэюя";
    let lat = "abcdefghijklmnopqrstuvwxyz";
    let alphabet: Vec<char> = if names::has_cyrillic(&c[i].to_string()) {
        cyr
    } else {
        lat
    }
    .chars()
    .collect();
    let upper = c[i].is_uppercase();
    match rng.below(4) {
        0 => {
            let mut r = alphabet[rng.index(alphabet.len())];
            if upper {
                r = r.to_uppercase().next().unwrap_or(r);
            }
            c[i] = r;
        }
        1 if c.len() > 3 => {
            c.remove(i);
        }
        2 => {
            let x = c[i];
            c.insert(i, x);
        }
        _ => {
            if i + 1 < c.len() && c[i + 1].is_alphabetic() {
                c.swap(i, i + 1);
            } else if i > 0 && c[i - 1].is_alphabetic() {
                c.swap(i - 1, i);
            }
        }
    }
    c.into_iter().collect()
}

/// One random digit changed.
fn digit_typo(s: &str, rng: &mut SplitMix64) -> String {
    let mut c: Vec<char> = s.chars().collect();
    let digits: Vec<usize> = (0..c.len()).filter(|&i| c[i].is_ascii_digit()).collect();
    if let Some(&i) = rng.pick(&digits) {
        let old = c[i];
        while c[i] == old {
            c[i] = char::from(b'0' + rng.below(10) as u8);
        }
    }
    c.into_iter().collect()
}

/// Ё written as Е (as most keyboards and many systems do).
fn drop_yo(s: &str) -> String {
    s.replace('ё', "е").replace('Ё', "Е")
}

/// How a rendering of a person is corrupted.
#[derive(Debug, Clone, Copy)]
pub struct Noise {
    /// Chance of a typo per name field.
    pub name_typo: f64,
    /// Chance of a typo per address field.
    pub address_typo: f64,
    /// Chance that given name and surname are swapped.
    pub swap_names: f64,
    /// Chance that the birth date has a day–month swap or a one-digit error.
    pub dob_error: f64,
    /// Chance that the birth date is missing.
    pub dob_missing: f64,
    /// Chance that SNILS is missing (and, separately, that it carries a typo: a quarter of
    /// this).
    pub snils_missing: f64,
    /// Chance that INN is missing.
    pub inn_missing: f64,
    /// Chance that the patronymic is missing.
    pub patronymic_missing: f64,
    /// Chance that the phone is missing; a present one is a different (newer) number with
    /// a third of this chance.
    pub phone_missing: f64,
    /// Chance that the e-mail is missing; a present one is different with half this chance.
    pub email_missing: f64,
}

impl Noise {
    /// A clean rendering (the system of record).
    pub const CLEAN: Noise = Noise {
        name_typo: 0.0,
        address_typo: 0.0,
        swap_names: 0.0,
        dob_error: 0.0,
        dob_missing: 0.0,
        snils_missing: 0.1,
        inn_missing: 0.1,
        patronymic_missing: 0.0,
        phone_missing: 0.1,
        email_missing: 0.3,
    };

    /// A second system with its own errors and gaps.
    pub const DIRTY: Noise = Noise {
        name_typo: 0.15,
        address_typo: 0.15,
        swap_names: 0.05,
        dob_error: 0.06,
        dob_missing: 0.05,
        snils_missing: 0.6,
        inn_missing: 0.7,
        patronymic_missing: 0.4,
        phone_missing: 0.3,
        email_missing: 0.4,
    };
}

/// The script a rendering uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Script {
    /// Cyrillic; `keep_yo` false writes Ё as Е.
    Cyrillic {
        /// Whether Ё is kept.
        keep_yo: bool,
    },
    /// Romanised under a scheme, in capitals or not.
    Latin {
        /// The scheme.
        scheme: Scheme,
        /// All capitals (as card systems emboss).
        capitals: bool,
    },
}

impl Script {
    /// A random script: Cyrillic with chance `cyrillic`, otherwise a random scheme.
    pub fn random(rng: &mut SplitMix64, cyrillic: f64) -> Script {
        if rng.chance(cyrillic) {
            Script::Cyrillic {
                keep_yo: rng.chance(0.5),
            }
        } else {
            Script::Latin {
                scheme: Scheme::ALL[rng.index(Scheme::ALL.len())],
                capitals: rng.chance(0.5),
            }
        }
    }

    fn text(self, s: &str) -> String {
        match self {
            Script::Cyrillic { keep_yo: true } => s.to_owned(),
            Script::Cyrillic { keep_yo: false } => drop_yo(s),
            Script::Latin { scheme, capitals } => {
                let r = names::romanize_strict(s, scheme);
                if capitals { r.to_uppercase() } else { r }
            }
        }
    }
}

/// A person rendered as one system would hold them.
pub fn render(
    p: &Person,
    source: &str,
    rec_id: String,
    script: Script,
    noise: &Noise,
    rng: &mut SplitMix64,
) -> MatchRecord {
    let maybe_typo = |s: String, chance: f64, rng: &mut SplitMix64| {
        if rng.chance(chance) { typo(&s, rng) } else { s }
    };
    let mut given = maybe_typo(script.text(&p.given), noise.name_typo, rng);
    let mut surname = maybe_typo(script.text(&p.surname), noise.name_typo, rng);
    if rng.chance(noise.swap_names) {
        std::mem::swap(&mut given, &mut surname);
    }
    let patronymic = (!rng.chance(noise.patronymic_missing))
        .then(|| maybe_typo(script.text(&p.patronymic), noise.name_typo / 2.0, rng));

    let (mut y, mut m, mut d) = p.dob;
    let dob_missing = rng.chance(noise.dob_missing);
    if rng.chance(noise.dob_error) {
        if d <= 12 && d != m && rng.chance(0.5) {
            std::mem::swap(&mut m, &mut d);
        } else {
            let s = digit_typo(&format!("{y:04}{m:02}{d:02}"), rng);
            y = s.get(..4).and_then(|x| x.parse().ok()).unwrap_or(y);
            m = s.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(m);
            d = s.get(6..).and_then(|x| x.parse().ok()).unwrap_or(d);
        }
    }
    let birth_date = (!dob_missing).then(|| match script {
        Script::Cyrillic { .. } => format!("{d:02}.{m:02}.{y:04}"),
        Script::Latin { .. } => format!("{y:04}-{m:02}-{d:02}"),
    });

    let (city, region, post) = CITIES[p.city % CITIES.len()];
    let street_type = STREET_TYPES[rng.index(STREET_TYPES.len())];
    let street_name = STREETS[p.street % STREETS.len()];
    let street = if rng.chance(0.5) {
        format!("{street_type} {street_name}")
    } else {
        format!("{street_name} {street_type}")
    };
    let street = maybe_typo(script.text(&street), noise.address_typo, rng);
    let extra = (p.flat > 0).then(|| script.text(&format!("кв. {}", p.flat)));
    let locality = maybe_typo(
        script.text(&if rng.chance(0.5) {
            format!("г. {city}")
        } else {
            city.to_owned()
        }),
        noise.address_typo,
        rng,
    );
    let mut postcode = format!("{post}{:02}", (p.street * 7 + p.house as usize) % 100);
    if rng.chance(noise.address_typo / 3.0) {
        postcode = digit_typo(&postcode, rng);
    }
    let street_number = (!rng.chance(noise.address_typo / 3.0)).then(|| p.house.to_string());

    let phone = if rng.chance(noise.phone_missing) {
        None
    } else {
        let number = if rng.chance(noise.phone_missing / 3.0) {
            9_000_000_000 + rng.below(999_999_999)
        } else {
            p.phone
        };
        let s = format!("{number:010}");
        Some(match rng.below(3) {
            0 => format!("+7{s}"),
            1 => format!("8{s}"),
            _ => format!("+7 ({}) {}-{}-{}", &s[..3], &s[3..6], &s[6..8], &s[8..]),
        })
    };
    let email = if rng.chance(noise.email_missing) {
        None
    } else if rng.chance(noise.email_missing / 2.0) {
        Some(email_for(&p.given, &p.surname, p.dob.0, rng))
    } else {
        Some(p.email.clone())
    };
    let snils = if rng.chance(noise.snils_missing) {
        None
    } else if rng.chance(noise.snils_missing / 4.0) {
        Some(digit_typo(&p.snils, rng))
    } else {
        Some(p.snils.clone())
    };
    let inn = (!rng.chance(noise.inn_missing)).then(|| p.inn.clone());

    MatchRecord {
        source: source.to_owned(),
        source_id: rec_id,
        given_name: Some(given),
        surname: Some(surname),
        patronymic,
        birth_date,
        phone,
        email,
        street_number,
        street: Some(street),
        address_extra: extra,
        locality: Some(locality),
        postcode: Some(postcode),
        region: Some(script.text(region)),
        other_id: snils,
        inn,
        ..MatchRecord::default()
    }
}

/// Records with the entity (person) each belongs to.
pub type Labelled = Vec<(u64, MatchRecord)>;

/// Settings of the two-system set.
#[derive(Debug, Clone, Copy)]
pub struct LinkageConfig {
    /// People in the core bank (system A, Cyrillic).
    pub persons: u64,
    /// Share of them also in the card system (system B, romanised); hard cases always are.
    pub in_both: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for LinkageConfig {
    fn default() -> Self {
        LinkageConfig {
            persons: 5_000,
            in_both: 0.6,
            seed: 20_240_501,
        }
    }
}

/// The two-system set: core bank records in Cyrillic (`rec-N-org`) and card-system records
/// romanised with errors and gaps (`rec-N-dup-0`), each with the entity number N.
pub fn linkage_set(config: &LinkageConfig) -> (Labelled, Labelled) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for e in 0..config.persons {
        let p = person(config.seed, e);
        let mut rng = SplitMix64::for_item(config.seed ^ 0xa5a5, e);
        let script = Script::Cyrillic {
            keep_yo: rng.chance(0.5),
        };
        a.push((
            e,
            render(
                &p,
                "abs",
                format!("rec-{e}-org"),
                script,
                &Noise::CLEAN,
                &mut rng,
            ),
        ));
        if is_hard_case(e) || rng.chance(config.in_both) {
            let script = Script::random(&mut rng, 0.0);
            b.push((
                e,
                render(
                    &p,
                    "cards",
                    format!("rec-{e}-dup-0"),
                    script,
                    &Noise::DIRTY,
                    &mut rng,
                ),
            ));
        }
    }
    (a, b)
}

/// Settings of the one-system customer base for the benchmark.
#[derive(Debug, Clone, Copy)]
pub struct CustomersConfig {
    /// Records wanted.
    pub records: u64,
    /// Share of the records that are duplicates of another record (0.1 = 10%).
    pub duplicate_share: f64,
    /// Seed.
    pub seed: u64,
}

impl CustomersConfig {
    /// Number of distinct people: records × (1 − duplicate share).
    pub fn entities(&self) -> u64 {
        ((self.records as f64) * (1.0 - self.duplicate_share)).round() as u64
    }
}

/// Records of entities `range` of a customer base: each entity once, and a duplicate for
/// the share of entities that makes `duplicate_share` of all records duplicates. Originals
/// are Cyrillic (70%) or romanised; duplicates are rendered in a random script with the
/// second system's errors and gaps.
pub fn customers(config: &CustomersConfig, range: std::ops::Range<u64>) -> Vec<(u64, MatchRecord)> {
    let entities = config.entities().max(1);
    let dups = config.records.saturating_sub(entities);
    let mut out = Vec::with_capacity((range.end - range.start) as usize * 11 / 10);
    for e in range {
        let p = person(config.seed, e);
        let mut rng = SplitMix64::for_item(config.seed ^ 0x5a5a, e);
        let script = Script::random(&mut rng, 0.7);
        out.push((
            e,
            render(
                &p,
                "bank",
                format!("rec-{e}-org"),
                script,
                &Noise::CLEAN,
                &mut rng,
            ),
        ));
        // Entity e has a duplicate when the running count of duplicates steps up at e.
        if (e + 1) * dups / entities > e * dups / entities {
            let script = Script::random(&mut rng, 0.5);
            out.push((
                e,
                render(
                    &p,
                    "bank",
                    format!("rec-{e}-dup-0"),
                    script,
                    &Noise::DIRTY,
                    &mut rng,
                ),
            ));
        }
    }
    out
}

/// Writes records in the FEBRL layout with the extra columns (patronymic, phone, email,
/// inn, snils, passport).
pub fn write_febrl<W: Write>(out: W, records: &[(u64, MatchRecord)]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    let header: Vec<&str> = COLUMNS
        .iter()
        .chain(EXTRA_COLUMNS.iter())
        .copied()
        .collect();
    w.write_record(&header)?;
    let s = |v: &Option<String>| v.clone().unwrap_or_default();
    for (_, r) in records {
        w.write_record([
            r.source_id.clone(),
            s(&r.given_name),
            s(&r.surname),
            s(&r.street_number),
            s(&r.street),
            s(&r.address_extra),
            s(&r.locality),
            s(&r.postcode),
            s(&r.region),
            s(&r.birth_date),
            s(&r.other_id),
            s(&r.patronymic),
            s(&r.phone),
            s(&r.email),
            s(&r.inn),
            s(&r.snils),
            s(&r.passport),
        ])?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate;

    #[test]
    fn identifiers_are_valid() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..200 {
            validate::snils(&snils_number(&mut rng)).unwrap();
            validate::inn(&inn_number(&mut rng)).unwrap();
        }
    }

    #[test]
    fn feminine_forms() {
        assert_eq!(feminine_surname("Иванов"), "Иванова");
        assert_eq!(feminine_surname("Королёв"), "Королёва");
        assert_eq!(feminine_surname("Чайковский"), "Чайковская");
        assert_eq!(feminine_surname("Шевченко"), "Шевченко");
        assert_eq!(feminine_surname("Ким"), "Ким");
        for m in ["Иванов", "Королёв", "Чайковский", "Шевченко", "Ильин"]
        {
            assert_eq!(masculine_surname(&feminine_surname(m)), m);
        }
    }

    #[test]
    fn deterministic_and_independent_of_range() {
        let c = CustomersConfig {
            records: 1_000,
            duplicate_share: 0.1,
            seed: 7,
        };
        let all = customers(&c, 0..c.entities());
        let split: Vec<_> = customers(&c, 0..300)
            .into_iter()
            .chain(customers(&c, 300..c.entities()))
            .collect();
        assert_eq!(all, split);
        assert_eq!(all.len(), 1_000);
        let dups = all.iter().filter(|r| r.1.source_id.contains("dup")).count();
        assert_eq!(dups, 100);
    }

    #[test]
    fn families_are_hard_cases() {
        let seed = 3;
        let father = person(seed, 50);
        let son = person(seed, 51);
        assert_eq!(
            (father.surname.as_str(), father.given.as_str()),
            (son.surname.as_str(), son.given.as_str())
        );
        assert_ne!(father.patronymic, son.patronymic);
        assert!(son.dob.0 >= father.dob.0 + 20);
        assert_eq!(
            (father.street, father.house, father.flat),
            (son.street, son.house, son.flat)
        );
        let t1 = person(seed, 52);
        let t2 = person(seed, 53);
        assert_eq!(t1.dob, t2.dob);
        assert_ne!(t1.given, t2.given);
        assert_eq!((t1.street, t1.house), (t2.street, t2.house));
        assert_eq!(
            masculine_surname(&t1.surname),
            masculine_surname(&t2.surname)
        );
        let n = person(seed, 55);
        assert_eq!(
            (n.surname.as_str(), n.given.as_str(), n.dob),
            (father.surname.as_str(), father.given.as_str(), father.dob)
        );
        assert_ne!(n.city, father.city);
        assert!(is_hard_case(53) && !is_hard_case(56));
    }

    #[test]
    fn renders_scripts_and_writes_febrl() {
        let p = person(1, 10);
        let mut rng = SplitMix64::new(2);
        let lat = render(
            &p,
            "cards",
            "rec-10-dup-0".into(),
            Script::Latin {
                scheme: Scheme::Icao9303,
                capitals: true,
            },
            &Noise::CLEAN,
            &mut rng,
        );
        assert!(!names::has_cyrillic(lat.surname.as_deref().unwrap_or("")));
        let cyr = render(
            &p,
            "abs",
            "rec-10-org".into(),
            Script::Cyrillic { keep_yo: false },
            &Noise::CLEAN,
            &mut rng,
        );
        assert!(names::has_cyrillic(cyr.surname.as_deref().unwrap_or("")));
        assert!(!cyr.given_name.as_deref().unwrap_or("").contains('ё'));
        let mut buf = Vec::new();
        write_febrl(&mut buf, &[(10, cyr), (10, lat)]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with("rec_id,given_name,surname,"));
        let back =
            crate::mdm::febrl::read_from(text.as_bytes(), std::path::Path::new("g.csv"), "g")
                .unwrap();
        assert_eq!(back.entities, vec![10, 10]);
    }

    #[test]
    fn typos_change_one_thing() {
        let mut rng = SplitMix64::new(5);
        for _ in 0..100 {
            let t = typo("Иванов", &mut rng);
            assert!(
                crate::mdm::matching::compare::damerau_levenshtein("Иванов", &t) <= 1,
                "{t}"
            );
            assert!(names::has_cyrillic(&t));
        }
        assert_eq!(typo("123", &mut rng), "123");
    }
}
