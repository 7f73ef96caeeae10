//! Screening throughput and latency against UN + OFAC.
//!
//! ```text
//! cargo run --release -p compliance --example screen_bench -- <sanctions fixture dir> [parties] [threads]
//! ```
//! Generates `parties` (default 1,000,000) parties with a fixed-seed generator: Russian
//! persons in Cyrillic and romanised, Russian companies, Latin-script persons, and 5 %
//! rewritten list names (typo, order, Cyrillic). Screens them on `threads` (default 2)
//! threads, then measures single-query latency on one thread.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use compliance::index::Index;
use compliance::lists::{ofac, un};
use compliance::{DEFAULT_THRESHOLD, EntityKind, ListEntry, PartialDate, Subject};
use mapping::names::{self, Scheme};

const SURNAMES: &[&str] = &[
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
    "Захаров",
    "Зайцев",
    "Соловьёв",
    "Борисов",
    "Яковлев",
    "Григорьев",
    "Романов",
    "Воробьёв",
    "Сергеев",
    "Кузьмин",
    "Фролов",
    "Александров",
    "Дмитриев",
    "Королёв",
    "Гусев",
    "Киселёв",
    "Ильин",
    "Максимов",
    "Поляков",
    "Сорокин",
    "Виноградов",
    "Ковалёв",
    "Белов",
    "Медведев",
    "Антонов",
    "Тарасов",
    "Жуков",
    "Баранов",
    "Филиппов",
    "Комаров",
    "Давыдов",
    "Беляев",
    "Герасимов",
    "Богданов",
    "Осипов",
    "Сидоров",
    "Матвеев",
    "Титов",
    "Марков",
    "Миронов",
    "Крылов",
    "Куликов",
    "Карпов",
    "Власов",
    "Мельников",
    "Денисов",
    "Гаврилов",
    "Тихонов",
    "Щукин",
    "Цветков",
    "Хохлов",
    "Чернов",
    "Шубин",
    "Юдин",
    "Ющенко",
    "Шевченко",
];
const MALE: &[&str] = &[
    "Александр",
    "Сергей",
    "Дмитрий",
    "Андрей",
    "Алексей",
    "Максим",
    "Евгений",
    "Иван",
    "Михаил",
    "Николай",
    "Артём",
    "Владимир",
    "Павел",
    "Олег",
    "Игорь",
    "Юрий",
    "Роман",
    "Виктор",
    "Денис",
    "Антон",
    "Илья",
    "Константин",
    "Василий",
    "Фёдор",
    "Григорий",
];
const FEMALE: &[&str] = &[
    "Елена",
    "Ольга",
    "Наталья",
    "Татьяна",
    "Ирина",
    "Светлана",
    "Юлия",
    "Анна",
    "Мария",
    "Екатерина",
    "Анастасия",
    "Марина",
    "Людмила",
    "Галина",
    "Ксения",
    "Дарья",
    "Вера",
];
const COMPANY_WORDS: &[&str] = &[
    "Ромашка",
    "Вектор",
    "Альфа",
    "Сибирь",
    "Урал",
    "Техно",
    "Строй",
    "Инвест",
    "Торг",
    "Транс",
    "Энерго",
    "Агро",
    "Сервис",
    "Капитал",
    "Северный",
    "Волга",
    "Меридиан",
    "Гранит",
    "Прогресс",
    "Лидер",
    "Партнёр",
    "Стандарт",
    "Континент",
    "Ресурс",
    "Логистик",
    "Холдинг",
];
const FORMS: &[&str] = &["ООО", "АО", "ПАО", "ЗАО", "ИП", "LLC", "JSC"];
const LATIN_GIVEN: &[&str] = &[
    "John", "Michael", "David", "Maria", "Anna", "Peter", "Thomas", "Laura", "Carlos", "Ahmed",
    "Mohammed", "Ali", "Fatima", "Omar", "Li", "Wei", "Hans", "Pierre", "Giulia", "Yusuf",
];
const LATIN_FAMILY: &[&str] = &[
    "Smith", "Johnson", "Brown", "Garcia", "Martinez", "Müller", "Schmidt", "Rossi", "Dubois",
    "Hassan", "Khan", "Rahman", "Chen", "Wang", "Kowalski", "Novak", "Silva", "Santos", "Yilmaz",
    "Kaya",
];

/// SplitMix64: a fixed, fast generator so that every run screens the same parties.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn patronymic(father: &str, female: bool) -> String {
    let stem = father.trim_end_matches(['й', 'ь']);
    let soft = father.ends_with(['й', 'ь']);
    match (soft, female) {
        (false, false) => format!("{stem}ович"),
        (false, true) => format!("{stem}овна"),
        (true, false) => format!("{stem}евич"),
        (true, true) => format!("{stem}евна"),
    }
}

fn russian_person(rng: &mut Rng) -> (String, bool) {
    let female = rng.below(2) == 0;
    let surname = rng.pick(SURNAMES);
    let surname = if female {
        format!("{surname}а")
    } else {
        surname.to_string()
    };
    let given = if female {
        rng.pick(FEMALE)
    } else {
        rng.pick(MALE)
    };
    let father = rng.pick(MALE);
    let name = match rng.below(3) {
        0 => format!("{surname} {given} {}", patronymic(father, female)),
        1 => format!("{given} {}", surname),
        _ => format!("{given} {} {surname}", patronymic(father, female)),
    };
    (name, female)
}

/// A list name rewritten as a bank might hold it.
fn near_list_name(rng: &mut Rng, entries: &[&ListEntry]) -> (String, EntityKind) {
    let e = entries[rng.below(entries.len())];
    let name = e.names.first().map(|n| n.full.clone()).unwrap_or_default();
    let mut words: Vec<String> = name.split_whitespace().map(str::to_string).collect();
    match rng.below(4) {
        0 if words.len() > 1 => words.rotate_right(1),
        1 => {
            let w = rng.below(words.len().max(1));
            if let Some(word) = words.get_mut(w)
                && word.chars().count() > 4
            {
                let mut chars: Vec<char> = word.chars().collect();
                let at = 1 + rng.below(chars.len() - 2);
                chars.swap(at, at + 1);
                *word = chars.into_iter().collect();
            }
        }
        2 => return (compliance::eval::cyrillic_rendering(&name), e.kind),
        _ => {}
    }
    (words.join(" "), e.kind)
}

fn party(i: u64, list: &[&ListEntry]) -> Subject {
    let mut rng = Rng(0x5EED_0000 ^ i.wrapping_mul(0x9E37_79B9));
    let year = 1950 + rng.below(55) as i32;
    let dob = Some(PartialDate {
        year,
        month: Some(1 + rng.below(12) as u8),
        day: Some(1 + rng.below(28) as u8),
    });
    let roll = rng.below(100);
    let (name, kind, birth_date, nationality) = if roll < 45 {
        (
            russian_person(&mut rng).0,
            EntityKind::Person,
            dob,
            Some("ru"),
        )
    } else if roll < 65 {
        let scheme = Scheme::ALL[rng.below(Scheme::ALL.len())];
        let name = names::romanize_strict(&russian_person(&mut rng).0, scheme);
        (name, EntityKind::Person, dob, Some("ru"))
    } else if roll < 80 {
        let name = format!(
            "{} «{} {}»",
            rng.pick(FORMS),
            rng.pick(COMPANY_WORDS),
            rng.pick(COMPANY_WORDS)
        );
        (name, EntityKind::Organization, None, None)
    } else if roll < 95 {
        let name = format!("{} {}", rng.pick(LATIN_GIVEN), rng.pick(LATIN_FAMILY));
        (name, EntityKind::Person, dob, None)
    } else {
        let (name, kind) = near_list_name(&mut rng, list);
        (name, kind, None, None)
    };
    Subject {
        kind: Some(kind),
        names: vec![name],
        birth_date: if kind == EntityKind::Person {
            birth_date
        } else {
            None
        },
        nationality: nationality.map(str::to_string),
        identifiers: Vec::new(),
    }
}

/// A made-up word of two to four syllables.
fn syllable_word(rng: &mut Rng) -> String {
    const ONSETS: &[&str] = &[
        "b", "d", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "kh", "ch", "br",
        "tr", "st", "gr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ei", "ou"];
    let syllables = 2 + rng.below(3);
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(rng.pick(ONSETS));
        w.push_str(rng.pick(VOWELS));
    }
    if rng.below(2) == 0 {
        w.push_str(rng.pick(ONSETS));
    }
    w
}

/// User + system CPU time of this process, from /proc (Linux); `None` elsewhere.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on Linux.
    Some((utime + stime) / 100.0)
}

fn resident_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.trim_start_matches("VmRSS:").trim().to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("usage: screen_bench <sanctions fixture dir> [parties] [threads]");
        return ExitCode::from(2);
    };
    let parties: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let threads: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2).max(1);

    let t = Instant::now();
    let un = match un::load(&dir.join("un_consolidated.xml"), &mut |_| {}) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ofac = match ofac::load(&ofac::OfacFiles::in_dir(&dir.join("ofac")), &mut |_| {}) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let loaded = t.elapsed();
    let mut entries: Vec<ListEntry> = un.entries.iter().chain(&ofac.entries).cloned().collect();
    // SCREEN_BENCH_ENTRIES=N pads the lists with generated names (random syllables, as
    // diverse as a large list's) to N entries, to see how the index scales.
    let target: usize = std::env::var("SCREEN_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut rng = Rng(0x0E27_E1E5);
    while entries.len() < target {
        let words = 2 + rng.below(2);
        let name = (0..words)
            .map(|_| syllable_word(&mut rng))
            .collect::<Vec<_>>()
            .join(" ");
        let kind = if rng.below(4) == 0 {
            EntityKind::Organization
        } else {
            EntityKind::Person
        };
        entries.push(ListEntry {
            list: "synthetic".into(),
            id: entries.len().to_string(),
            kind,
            names: vec![compliance::EntryName {
                full: name,
                strength: compliance::NameStrength::Primary,
            }],
            birth_dates: Vec::new(),
            nationalities: Vec::new(),
            identifiers: Vec::new(),
            programs: Vec::new(),
            is_pep: false,
        });
    }
    let t = Instant::now();
    let index = Index::build(entries);
    println!(
        "lists loaded in {loaded:.2?}; index of {} entries / {} names built in {:.2?}; resident {}",
        index.len(),
        index.name_count(),
        t.elapsed(),
        resident_memory().unwrap_or_else(|| "n/a".into())
    );
    let list: Vec<&ListEntry> = index.entries().iter().collect();

    // Throughput: all parties over `threads` threads. CPU time of the process is read too:
    // on a machine shared with other work the wall time understates what two cores do.
    let cpu_start = process_cpu_seconds();
    let start = Instant::now();
    let results: Vec<(u64, u64, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let index = &index;
                let list = &list;
                s.spawn(move || {
                    let (mut hits, mut n, mut busy) = (0u64, 0u64, Duration::ZERO);
                    let mut i = t;
                    while i < parties {
                        let p = party(i, list);
                        let q = Instant::now();
                        if !index.screen(&p, DEFAULT_THRESHOLD).is_empty() {
                            hits += 1;
                        }
                        busy += q.elapsed();
                        n += 1;
                        i += threads;
                    }
                    (hits, n, busy)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let wall = start.elapsed();
    let cpu = process_cpu_seconds().zip(cpu_start).map(|(b, a)| b - a);
    let hits: u64 = results.iter().map(|r| r.0).sum();
    let screened: u64 = results.iter().map(|r| r.1).sum();
    let busy: Duration = results.iter().map(|r| r.2).sum();
    println!(
        "{screened} parties on {threads} threads in {wall:.2?}: {:.0} parties/s (wall, generation included); \
         {:.0} parties/s per thread screening only; {hits} with hits ({:.2} %)",
        screened as f64 / wall.as_secs_f64(),
        screened as f64 / busy.as_secs_f64(),
        hits as f64 * 100.0 / screened.max(1) as f64
    );

    if let Some(cpu) = cpu {
        let per_cpu_second = screened as f64 / cpu;
        println!(
            "process CPU time {cpu:.1} s: {per_cpu_second:.0} parties per CPU-second \
             (generation included), {:.0} parties/s on {threads} dedicated cores",
            per_cpu_second * threads as f64
        );
    }

    // Latency: one thread, one query at a time. Each query is timed three times: the first
    // timing is what a caller sees; the fastest of the three filters out the time the thread
    // spent preempted on a busy machine.
    let sample = parties.min(200_000);
    let mut first: Vec<Duration> = Vec::with_capacity(sample as usize);
    let mut best: Vec<(Duration, u64)> = Vec::with_capacity(sample as usize);
    for i in 0..sample {
        let p = party(i, &list);
        let mut times = [Duration::ZERO; 3];
        for t in times.iter_mut() {
            let q = Instant::now();
            let _ = index.screen(&p, DEFAULT_THRESHOLD);
            *t = q.elapsed();
        }
        first.push(times[0]);
        best.push((times.iter().copied().min().unwrap_or_default(), i));
    }
    if std::env::var_os("SCREEN_BENCH_SLOWEST").is_some() {
        let mut slow = best.clone();
        slow.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
        for (d, i) in slow.iter().take(15) {
            let p = party(*i, &list);
            println!("  slow {d:.1?} {:?} {:?}", p.kind, p.names);
        }
    }
    first.sort_unstable();
    let mut best: Vec<Duration> = best.into_iter().map(|b| b.0).collect();
    best.sort_unstable();
    let pct = |v: &[Duration], p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    for (label, v) in [("as measured", &first), ("fastest of 3", &best)] {
        println!(
            "single query over {sample} parties, {label}: p50 {:.1?} p90 {:.1?} p99 {:.1?} p99.9 {:.1?} max {:.1?}",
            pct(v, 0.50),
            pct(v, 0.90),
            pct(v, 0.99),
            pct(v, 0.999),
            v[v.len() - 1]
        );
    }
    ExitCode::SUCCESS
}
