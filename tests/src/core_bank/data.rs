//! The generated bank: customers, their accounts and their transactions, each a pure
//! function of (seed, index, version), so a bank of any size costs no memory; only the
//! changes made after generation (a version bump per change) are kept.
//!
//! Change order: customer `i` (0-based) starts at version 1, change sequence `i + 1` and
//! `updated_at = 2024-01-01T00:00:00Z + i / TIES_PER_SECOND seconds`, so every
//! [`TIES_PER_SECOND`] customers share a timestamp (exercising `>=` cursors). A change gives
//! the customer the next version, the next sequence after every earlier one, and a strictly
//! later timestamp; listings order by sequence, which is also timestamp order.
//!
//! Identifiers carry valid check digits (INN, account control keys); names, passports,
//! phones and addresses are Russian in shape. The SOAP face of the simulator reads the
//! same [`Bank`].

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

/// Customers per shared timestamp.
pub const TIES_PER_SECOND: u64 = 3;
/// The servicing bank's BIC (account control keys are computed for it).
pub const BIC: &str = "044525225";

/// The change clock's origin: the first customer's `updated_at`.
pub fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// A small, fast deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one (seed, stream, index, version) — independent streams per record.
    pub fn for_record(seed: u64, stream: u64, index: u64, version: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.0 ^= r.next_u64().wrapping_add(index);
        r.0 ^= r
            .next_u64()
            .wrapping_add(version.wrapping_mul(0xD1B5_4A32_D192_ED03));
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const STREAM_CUSTOMER: u64 = 1;
const STREAM_CONTACT: u64 = 2;
const STREAM_ACCOUNTS: u64 = 3;
const STREAM_TRANSACTIONS: u64 = 4;

/// One change of a customer after generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub index: u64,
    pub version: u64,
    pub seq: u64,
    pub updated_at: DateTime<Utc>,
}

/// Where a customer stands in the change order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct State {
    pub index: u64,
    pub version: u64,
    pub seq: u64,
    pub updated_at: DateTime<Utc>,
}

/// A generated bank of `customers` customers.
#[derive(Debug, Clone)]
pub struct Bank {
    seed: u64,
    customers: u64,
    /// Every change, in change order.
    log: Vec<Change>,
    /// Customer index → position of its latest change in `log`.
    latest: HashMap<u64, usize>,
}

impl Bank {
    pub fn new(customers: u64, seed: u64) -> Bank {
        Bank {
            seed,
            customers,
            log: Vec::new(),
            latest: HashMap::new(),
        }
    }

    /// How many customers the bank has.
    pub fn len(&self) -> u64 {
        self.customers
    }

    pub fn is_empty(&self) -> bool {
        self.customers == 0
    }

    /// Changes made so far.
    pub fn changes(&self) -> &[Change] {
        &self.log
    }

    /// The external id of customer `index`.
    pub fn customer_id(index: u64) -> String {
        format!("C{:08}", index + 1)
    }

    /// The index of an external id, when it names a customer of this bank.
    pub fn index_of(&self, id: &str) -> Option<u64> {
        let n: u64 = id.strip_prefix('C')?.parse().ok()?;
        (1..=self.customers).contains(&n).then(|| n - 1)
    }

    fn base_time(index: u64) -> DateTime<Utc> {
        epoch() + Duration::seconds(i64::try_from(index / TIES_PER_SECOND).unwrap_or(i64::MAX))
    }

    /// The current state of customer `index`.
    pub fn state(&self, index: u64) -> State {
        match self.latest.get(&index).and_then(|&p| self.log.get(p)) {
            Some(c) => State {
                index,
                version: c.version,
                seq: c.seq,
                updated_at: c.updated_at,
            },
            None => State {
                index,
                version: 1,
                seq: index + 1,
                updated_at: Self::base_time(index),
            },
        }
    }

    /// Changes customer `index` (a new version, later in the change order than everything
    /// before); `now` is its change time unless that would not be later than the last one.
    pub fn change(&mut self, index: u64, now: DateTime<Utc>) -> Option<Change> {
        if index >= self.customers {
            return None;
        }
        let last_time = self
            .log
            .last()
            .map(|c| c.updated_at)
            .unwrap_or_else(|| Self::base_time(self.customers.saturating_sub(1)));
        // The API shows milliseconds: keep no more, so that what a client reads is exact.
        let now = DateTime::<Utc>::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        let updated_at = if now > last_time {
            now
        } else {
            last_time + Duration::milliseconds(1)
        };
        let change = Change {
            index,
            version: self.state(index).version + 1,
            seq: self.customers + self.log.len() as u64 + 1,
            updated_at,
        };
        self.latest.insert(index, self.log.len());
        self.log.push(change);
        Some(change)
    }

    /// Customer states in change order from the first whose sequence is `>= since_seq` and
    /// whose `updated_at >= since` (either filter optional).
    pub fn ordered(
        &self,
        since: Option<DateTime<Utc>>,
        since_seq: Option<u64>,
    ) -> impl Iterator<Item = State> + '_ {
        // Unchanged customers first (their sequence is their index + 1), from the first
        // that can pass the filters; then the latest change of each changed customer.
        let mut first = since_seq.map_or(0, |s| s.saturating_sub(1));
        if let Some(t) = since {
            let secs = (t - epoch()).num_milliseconds().max(0);
            // The first index whose base time is at or after `t`.
            let whole = u64::try_from((secs + 999) / 1000).unwrap_or(u64::MAX);
            first = first.max(whole.saturating_mul(TIES_PER_SECOND));
        }
        let base = (first..self.customers)
            .filter(|i| !self.latest.contains_key(i))
            .map(|i| self.state(i));
        let changed = self
            .log
            .iter()
            .enumerate()
            .filter(|(p, c)| self.latest.get(&c.index) == Some(p))
            .map(|(_, c)| State {
                index: c.index,
                version: c.version,
                seq: c.seq,
                updated_at: c.updated_at,
            });
        base.chain(changed).filter(move |s| {
            since.is_none_or(|t| s.updated_at >= t) && since_seq.is_none_or(|q| s.seq >= q)
        })
    }

    /// The customer as the REST API shows it.
    pub fn customer(&self, index: u64) -> Value {
        let st = self.state(index);
        let mut r = Rng::for_record(self.seed, STREAM_CUSTOMER, index, 0);
        let organisation = r.below(10) == 0;
        let id = Self::customer_id(index);
        // Contact details and segment change with the version; identity does not.
        let mut c = Rng::for_record(self.seed, STREAM_CONTACT, index, st.version);
        let (city, zip_prefix) = CITIES[c.below(CITIES.len() as u64) as usize];
        let address = json!({
            "text": format!("{city}, {}, д. {}, кв. {}", c.pick(STREETS), 1 + c.below(150), 1 + c.below(300)),
            "postal_code": format!("{zip_prefix}{:03}", c.below(1_000)),
        });
        let phone = phone(&mut c);
        let segment = c.pick(SEGMENTS);
        let common = json!({
            "id": id,
            "seq": st.seq,
            "version": st.version,
            "updated_at": st.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "phone": phone,
            "address": address,
            "segment": segment,
            "status": "active",
        });
        let mut v = common;
        if organisation {
            let name = format!(
                "{} «{}»",
                r.pick(&["ООО", "АО", "ПАО"]),
                r.pick(COMPANY_WORDS)
            );
            v["type"] = json!("UL");
            v["full_name"] = json!(name);
            v["inn"] = json!(inn10(&mut r));
            v["email"] = json!(format!("info{}@{}", index, c.pick(DOMAINS)));
        } else {
            let female = r.below(2) == 0;
            let mut last = r.pick(LAST_NAMES).to_string();
            let first = if female {
                r.pick(FIRST_F)
            } else {
                r.pick(FIRST_M)
            };
            let root = r.pick(PATRONYMIC_ROOTS);
            let middle = if female {
                last.push('а');
                format!("{root}на")
            } else {
                format!("{root}ич")
            };
            let birth = NaiveDate::from_ymd_opt(
                1945 + r.below(60) as i32,
                1 + r.below(12) as u32,
                1 + r.below(28) as u32,
            )
            .unwrap_or_default();
            v["type"] = json!("FL");
            v["last_name"] = json!(last);
            v["first_name"] = json!(first);
            v["middle_name"] = json!(middle);
            v["inn"] = json!(inn12(&mut r));
            v["passport"] = json!(format!(
                "{:04} {:06}",
                1000 + r.below(8999),
                1 + r.below(999_998)
            ));
            v["birth_date"] = json!(birth.format("%Y-%m-%d").to_string());
            v["email"] = json!(format!(
                "client{}.v{}@{}",
                index,
                st.version,
                c.pick(DOMAINS)
            ));
        }
        v
    }

    /// How many accounts customer `index` holds (1 to 3).
    pub fn account_count(&self, index: u64) -> u64 {
        1 + Rng::for_record(self.seed, STREAM_ACCOUNTS, index, 0).below(3)
    }

    /// Account `k` of customer `index`.
    pub fn account(&self, index: u64, k: u64) -> Option<Value> {
        if index >= self.customers || k >= self.account_count(index) {
            return None;
        }
        let mut r = Rng::for_record(self.seed, STREAM_ACCOUNTS, index, k + 1);
        let (prefix, currency) = match r.below(6) {
            0 => ("40817840", "USD"),
            1 => ("40817978", "EUR"),
            _ => ("40817810", "RUB"),
        };
        let number = account_number(prefix, index * 3 + k);
        let opened = epoch() - Duration::days(30 + r.below(3000) as i64);
        Some(json!({
            "id": format!("A{:08}-{k}", index + 1),
            "customer_id": Self::customer_id(index),
            "number": number,
            "currency": currency,
            "bic": BIC,
            "opened_on": opened.format("%Y-%m-%d").to_string(),
            "status": "open",
            "updated_at": Self::base_time(index).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }))
    }

    /// Transactions of account `k` of customer `index` (0 to 4).
    pub fn transactions(&self, index: u64, k: u64) -> Vec<Value> {
        let Some(account) = self.account(index, k) else {
            return Vec::new();
        };
        let mut r = Rng::for_record(self.seed, STREAM_TRANSACTIONS, index, k + 1);
        let n = r.below(5);
        (0..n)
            .map(|t| {
                let booked = Self::base_time(index) + Duration::minutes(t as i64 * 7 + 1);
                let credit = r.below(2) == 0;
                json!({
                    "id": format!("T{:08}-{k}-{t}", index + 1),
                    "account_id": account["id"],
                    "amount": format!("{}.{:02}", 10 + r.below(250_000), r.below(100)),
                    "currency": account["currency"],
                    "direction": if credit { "credit" } else { "debit" },
                    "booked_at": booked.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "purpose": r.pick(PURPOSES),
                })
            })
            .collect()
    }
}

/// A 20-digit account number with a valid control key (position 9) for [`BIC`].
fn account_number(prefix: &str, serial: u64) -> String {
    let mut digits: Vec<u32> = format!("{prefix}0{:011}", serial % 100_000_000_000)
        .chars()
        .filter_map(|c| c.to_digit(10))
        .collect();
    let bic_tail: Vec<u32> = BIC.chars().skip(6).filter_map(|c| c.to_digit(10)).collect();
    let weights = [7u32, 1, 3];
    let sum: u32 = bic_tail
        .iter()
        .chain(digits.iter())
        .enumerate()
        .map(|(i, d)| d * weights[i % 3] % 10)
        .sum();
    // The key digit sits at account position 8 (0-based), overall position 11 → weight 3;
    // 3 * 7 = 21 ≡ 1 (mod 10), so the key is the negated sum times 7.
    digits[8] = ((10 - sum % 10) % 10) * 7 % 10;
    digits.iter().map(|d| char::from(b'0' + *d as u8)).collect()
}

fn weighted(d: &[u32], w: &[u32]) -> u32 {
    d.iter().zip(w).map(|(a, b)| a * b).sum::<u32>() % 11 % 10
}

fn digits(r: &mut Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| r.below(10) as u32).collect()
}

fn join(d: &[u32]) -> String {
    d.iter().map(|x| char::from(b'0' + *x as u8)).collect()
}

/// A 12-digit person INN with valid check digits.
fn inn12(r: &mut Rng) -> String {
    let mut d = vec![7, 7];
    d.extend(digits(r, 8));
    d.push(weighted(&d, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
    d.push(weighted(&d, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
    join(&d)
}

/// A 10-digit organisation INN with a valid check digit.
fn inn10(r: &mut Rng) -> String {
    let mut d = vec![7, 7];
    d.extend(digits(r, 7));
    d.push(weighted(&d, &[2, 4, 10, 3, 5, 9, 4, 6, 8]));
    join(&d)
}

fn phone(r: &mut Rng) -> String {
    let n = format!("9{:02}{:07}", r.below(100), r.below(10_000_000));
    match r.below(3) {
        0 => format!("+7 ({}) {}-{}-{}", &n[0..3], &n[3..6], &n[6..8], &n[8..10]),
        1 => format!("8{n}"),
        _ => format!("+7{n}"),
    }
}

const LAST_NAMES: &[&str] = &[
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
    "Дмитрий",
    "Максим",
    "Сергей",
    "Андрей",
    "Алексей",
    "Артём",
    "Илья",
    "Кирилл",
    "Михаил",
    "Никита",
    "Матвей",
    "Роман",
    "Егор",
    "Арсений",
    "Иван",
];
const FIRST_F: &[&str] = &[
    "Анастасия",
    "Мария",
    "Анна",
    "Виктория",
    "Екатерина",
    "Наталья",
    "Марина",
    "Полина",
    "Дарья",
    "Алиса",
    "Ксения",
    "Елена",
    "Ольга",
    "Татьяна",
    "Ирина",
    "Юлия",
];
const PATRONYMIC_ROOTS: &[&str] = &[
    "Александров",
    "Дмитриев",
    "Сергеев",
    "Андреев",
    "Алексеев",
    "Михайлов",
    "Иванов",
    "Петров",
    "Николаев",
    "Владимиров",
];
const STREETS: &[&str] = &[
    "ул. Ленина",
    "ул. Мира",
    "пр-т Победы",
    "ул. Садовая",
    "ул. Гагарина",
    "ул. Советская",
    "ул. Лесная",
    "наб. Фонтанки",
];
const CITIES: &[(&str, &str)] = &[
    ("г. Москва", "101"),
    ("г. Санкт-Петербург", "190"),
    ("г. Казань", "420"),
    ("г. Новосибирск", "630"),
    ("г. Екатеринбург", "620"),
    ("г. Нижний Новгород", "603"),
];
const COMPANY_WORDS: &[&str] = &[
    "Ромашка",
    "Вектор",
    "Север",
    "Гранит",
    "Альфа-Строй",
    "ТехноПром",
    "Весна",
    "Меридиан",
];
const SEGMENTS: &[&str] = &["mass", "affluent", "private"];
const DOMAINS: &[&str] = &["mail.ru", "yandex.ru", "bk.ru", "inbox.ru", "example.ru"];
const PURPOSES: &[&str] = &[
    "Оплата по счёту",
    "Перевод собственных средств",
    "Заработная плата",
    "Возврат займа",
    "Оплата услуг связи",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_a_function_of_index_and_version() {
        let a = Bank::new(100_000, 7);
        let b = Bank::new(100_000, 7);
        assert_eq!(a.customer(99_999), b.customer(99_999));
        assert_ne!(a.customer(1), a.customer(2));
        assert_ne!(Bank::new(10, 8).customer(1), a.customer(1));
        assert_eq!(a.customer(0)["id"], "C00000001");
        assert_eq!(a.index_of("C00100000"), Some(99_999));
        assert_eq!(a.index_of("C00100001"), None);
    }

    #[test]
    fn identifiers_pass_the_hubs_validators() {
        let bank = Bank::new(2_000, 1);
        for i in 0..2_000 {
            let c = bank.customer(i);
            let inn = c["inn"].as_str().unwrap();
            mapping::validate::inn(inn).unwrap_or_else(|e| panic!("customer {i}: {e}"));
            mapping::validate::phone(c["phone"].as_str().unwrap()).unwrap();
            mapping::validate::email(c["email"].as_str().unwrap()).unwrap();
            mapping::validate::postal_code(c["address"]["postal_code"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("customer {i}: {e}"));
            if let Some(p) = c["passport"].as_str() {
                mapping::validate::passport(p).unwrap();
            }
            for k in 0..bank.account_count(i) {
                let a = bank.account(i, k).unwrap();
                mapping::validate::account_number(a["number"].as_str().unwrap(), Some(BIC))
                    .unwrap_or_else(|e| panic!("account {i}/{k}: {e}"));
            }
        }
    }

    #[test]
    fn changes_move_a_customer_to_the_end_of_the_order() {
        let mut bank = Bank::new(10, 1);
        let t = epoch() + Duration::days(400);
        let c = bank.change(4, t).unwrap();
        assert_eq!((c.version, c.seq), (2, 11));
        let c2 = bank.change(4, t).unwrap();
        assert_eq!((c2.version, c2.seq), (3, 12));
        assert!(c2.updated_at > c.updated_at);
        let order: Vec<u64> = bank.ordered(None, None).map(|s| s.index).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 5, 6, 7, 8, 9, 4]);
        assert_eq!(bank.customer(4)["version"], 3);
        // Filters: by time (3 customers per second) and by sequence.
        let since = epoch() + Duration::seconds(2);
        let from_time: Vec<u64> = bank.ordered(Some(since), None).map(|s| s.index).collect();
        assert_eq!(from_time, vec![6, 7, 8, 9, 4]);
        let from_seq: Vec<u64> = bank.ordered(None, Some(9)).map(|s| s.index).collect();
        assert_eq!(from_seq, vec![8, 9, 4]);
        let mid = epoch() + Duration::milliseconds(1_500);
        let from_mid: Vec<u64> = bank.ordered(Some(mid), None).map(|s| s.index).collect();
        assert_eq!(from_mid, vec![6, 7, 8, 9, 4]);
        assert!(bank.change(10, t).is_none());
    }
}
