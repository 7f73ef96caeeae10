//! Matching end to end on small inline data: deterministic keys, transliterated and
//! mistyped duplicates, and the hard non-matches that must stay apart.

use super::*;
use crate::mdm::generate::{CustomersConfig, customers};
use crate::mdm::pairs::pair_metrics;
use crate::model::PartyKind;

/// A person record with the usual fields; tests change what they need.
fn rec(id: &str, given: &str, surname: &str, patronymic: &str, dob: &str) -> MatchRecord {
    MatchRecord {
        source: "abs".into(),
        source_id: id.into(),
        given_name: Some(given.into()).filter(|s: &String| !s.is_empty()),
        surname: Some(surname.into()).filter(|s: &String| !s.is_empty()),
        patronymic: Some(patronymic.into()).filter(|s: &String| !s.is_empty()),
        birth_date: Some(dob.into()).filter(|s: &String| !s.is_empty()),
        street: Some("ул. Ленина".into()),
        street_number: Some("12".into()),
        address_extra: Some("кв. 5".into()),
        locality: Some("Москва".into()),
        postcode: Some("101000".into()),
        ..MatchRecord::default()
    }
}

fn same(result: &MatchResult, a: usize, b: usize) -> bool {
    result.clusters[a] == result.clusters[b]
}

fn dedup(records: &[MatchRecord]) -> MatchResult {
    deduplicate(records, &MatchConfig::default()).expect("default config is valid")
}

#[test]
fn transliterated_and_mistyped_duplicates_merge() {
    let a = MatchRecord {
        phone: Some("+7 912 345-67-89".into()),
        ..rec("1", "Сергей", "Иванов", "Петрович", "1980-02-03")
    };
    let b = MatchRecord {
        source: "cards".into(),
        phone: Some("89123456789".into()),
        street: Some("ulitsa Lenina".into()),
        locality: Some("Moskva".into()),
        address_extra: Some("kv. 5".into()),
        ..rec("c-9", "SERGEY", "IVANOV", "PETROVICH", "03.02.1980")
    };
    // Ё/Е, a typo, and given name and surname swapped.
    let c = rec("2", "Сергей", "Иваонв", "Пётрович", "1980-02-03");
    let d = rec("3", "Иванов", "Сергей", "Петрович", "1980-02-03");
    let r = dedup(&[a, b, c, d]);
    assert!(same(&r, 0, 1), "romanised duplicate");
    assert!(same(&r, 0, 2), "typo and ё");
    assert!(same(&r, 0, 3), "swapped names");
    assert_eq!(r.stats.clusters, 1);
}

#[test]
fn twins_stay_apart() {
    // Same surname, patronymic, birth date and flat; different given names.
    let a = rec("1", "Владислав", "Петров", "Филиппович", "1995-03-27");
    let b = rec("2", "Владимир", "Петров", "Филиппович", "1995-03-27");
    let c = rec("3", "Анна", "Петрова", "Филипповна", "1995-03-27");
    let r = dedup(&[a.clone(), b, c]);
    assert_eq!(r.stats.clusters, 3, "{:?}", r.kept_apart);
    assert!(
        r.kept_apart
            .iter()
            .all(|p| p.kind == PairKind::HardNonMatch(HardNonMatch::GivenName))
    );
    // A twin's own duplicate still merges with them.
    let a2 = MatchRecord {
        source: "cards".into(),
        ..rec("c1", "VLADISLAV", "PETROV", "FILIPPOVICH", "1995-03-27")
    };
    let b = rec("2", "Владимир", "Петров", "Филиппович", "1995-03-27");
    let r = dedup(&[a, b, a2]);
    assert!(same(&r, 0, 2));
    assert!(!same(&r, 0, 1) && !same(&r, 1, 2));
}

#[test]
fn father_and_son_stay_apart() {
    // Same name and address; the patronymic and birth date differ.
    let father = rec("1", "Иван", "Сидоров", "Петрович", "1955-06-01");
    let son = rec("2", "Иван", "Сидоров", "Иванович", "1983-09-14");
    let r = dedup(&[father.clone(), son.clone()]);
    assert!(!same(&r, 0, 1));
    // Without patronymics the birth dates alone keep them apart.
    let f = MatchRecord {
        patronymic: None,
        ..father.clone()
    };
    let s = MatchRecord {
        patronymic: None,
        ..son
    };
    let r = dedup(&[f, s]);
    assert!(!same(&r, 0, 1));
    // Without birth dates either, a generation marker does.
    let f = MatchRecord {
        patronymic: None,
        birth_date: None,
        surname: Some("Сидоров ст.".into()),
        ..father.clone()
    };
    let s = MatchRecord {
        source_id: "2".into(),
        patronymic: None,
        birth_date: None,
        surname: Some("Sidorov Jr".into()),
        ..father
    };
    let score = score_pair(&Model::reasoned(), &f, &s);
    assert_eq!(score.hard_non_match, Some(HardNonMatch::Generation));
    assert_eq!(score.decide(&MatchConfig::default()), Decision::Distinct);
}

#[test]
fn namesakes_stay_apart() {
    // A common name, different birth dates and addresses.
    let a = MatchRecord {
        phone: Some("+79001112233".into()),
        ..rec("1", "Сергей", "Иванов", "", "1980-02-03")
    };
    let b = MatchRecord {
        street: Some("пр-т Мира".into()),
        street_number: Some("7".into()),
        postcode: Some("129110".into()),
        phone: Some("+79005556677".into()),
        ..rec("2", "Сергей", "Иванов", "", "1974-11-21")
    };
    let r = dedup(&[a.clone(), b.clone()]);
    assert!(!same(&r, 0, 1));
    // Born the same day but elsewhere with another phone: not enough to merge.
    let b = MatchRecord {
        birth_date: Some("1980-02-03".into()),
        locality: Some("Тула".into()),
        ..b
    };
    let s = score_pair(&Model::reasoned(), &a, &b);
    assert_ne!(s.decide(&MatchConfig::default()), Decision::Merge, "{s:?}");
}

#[test]
fn deterministic_keys_merge_whatever_the_score() {
    // Married name, new address: the INN says it is the same person.
    let a = MatchRecord {
        inn: Some("500100732259".into()),
        ..rec("1", "Анна", "Смирнова", "", "1990-01-01")
    };
    let b = MatchRecord {
        inn: Some("5001 0073 2259".into()),
        street: Some("ул. Садовая".into()),
        postcode: Some("190000".into()),
        ..rec("2", "Анна", "Кузнецова", "", "1990-01-01")
    };
    // The same SNILS and passport on an otherwise different record merge too.
    let c = MatchRecord {
        snils: Some("112-233-445 95".into()),
        ..rec("3", "Олег", "Попов", "", "1970-05-05")
    };
    let d = MatchRecord {
        snils: Some("11223344595".into()),
        ..rec("4", "Oleg", "Popov", "", "")
    };
    let e = MatchRecord {
        passport: Some("4510 123456".into()),
        ..rec("5", "Ян", "Ким", "", "")
    };
    let f = MatchRecord {
        passport: Some("4510123456".into()),
        ..rec("6", "Yan", "Kim", "", "2001-01-01")
    };
    // A known cross-reference: the card record names the core-bank id.
    let g = rec("7", "Пётр", "Зуев", "", "1960-01-01");
    let h = MatchRecord {
        source: "cards".into(),
        links: vec![SourceRef {
            system: "abs".into(),
            id: "7".into(),
        }],
        ..rec("c7", "Petr", "Zuev", "", "")
    };
    let r = dedup(&[a, b, c, d, e, f, g, h]);
    for (x, y) in [(0, 1), (2, 3), (4, 5), (6, 7)] {
        assert!(same(&r, x, y), "{x} {y}");
    }
    let keys: Vec<PairKind> = r.merges.iter().map(|p| p.kind).collect();
    for k in [
        DeterministicKey::Inn,
        DeterministicKey::Snils,
        DeterministicKey::Passport,
        DeterministicKey::CrossReference,
    ] {
        assert!(keys.contains(&PairKind::Key(k)), "{k:?} in {keys:?}");
    }
    assert_eq!(r.stats.clusters, 4);
}

#[test]
fn keys_respect_kind_and_placeholders() {
    // An organisation and a person never merge, even on one OGRN/INN value.
    let org = MatchRecord {
        kind: PartyKind::Organisation,
        surname: Some("ООО Ромашка".into()),
        ogrn: Some("1027700132195".into()),
        inn: Some("7707083893".into()),
        ..MatchRecord {
            source: "abs".into(),
            source_id: "o1".into(),
            ..MatchRecord::default()
        }
    };
    let org2 = MatchRecord {
        source_id: "o2".into(),
        surname: Some("Romashka LLC".into()),
        ..org.clone()
    };
    let person = MatchRecord {
        inn: Some("7707083893".into()),
        ..rec("p", "Иван", "Ромашкин", "", "1980-01-01")
    };
    let r = dedup(&[org, org2, person]);
    assert!(same(&r, 0, 1));
    assert!(!same(&r, 0, 2));
    // One INN on 30 different people is a placeholder: not used, and reported.
    let surnames = [
        "Волков",
        "Гусев",
        "Жуков",
        "Зайцев",
        "Котов",
        "Лебедев",
        "Морозов",
        "Новиков",
        "Орлов",
        "Павлов",
        "Рыбаков",
        "Соколов",
        "Титов",
        "Уткин",
        "Фомин",
        "Хохлов",
        "Цветков",
        "Чернов",
        "Шубин",
        "Щукин",
        "Юдин",
        "Яковлев",
        "Абрамов",
        "Белов",
        "Власов",
        "Галкин",
        "Демидов",
        "Ежов",
        "Жданов",
        "Быков",
    ];
    let given = ["Иван", "Олег", "Пётр", "Глеб", "Лев", "Марк"];
    let many: Vec<MatchRecord> = surnames
        .iter()
        .enumerate()
        .map(|(i, s)| MatchRecord {
            inn: Some("500100732259".into()),
            street: Some(format!("ул. {s}а")),
            postcode: Some(format!("1{:05}", i * 997)),
            ..rec(
                &i.to_string(),
                given[i % given.len()],
                s,
                "",
                &format!("{}-0{}-1{}", 1940 + 2 * i, 1 + i % 9, i % 10),
            )
        })
        .collect();
    let r = dedup(&many);
    assert_eq!(r.stats.skipped_key_groups, 1);
    assert_eq!(r.stats.clusters, 30);
}

#[test]
fn linkage_compares_only_across() {
    let left = vec![
        rec("1", "Сергей", "Иванов", "Петрович", "1980-02-03"),
        rec("2", "Сергей", "Иванов", "Петрович", "1980-02-03"),
    ];
    let right = vec![MatchRecord {
        source: "cards".into(),
        ..rec("c1", "Sergey", "Ivanov", "Petrovich", "1980-02-03")
    }];
    let r = link(&left, &right, &MatchConfig::default()).unwrap();
    assert_eq!(r.clusters.len(), 3);
    // Both left records join the right one (and so each other, through it).
    assert!(same(&r, 0, 2) && same(&r, 1, 2));
    assert!(r.merges.iter().all(|p| p.b == 2));
}

#[test]
fn review_between_thresholds() {
    let a = rec("1", "Сергей", "Иванов", "", "1980-02-03");
    let b = MatchRecord {
        street: None,
        street_number: None,
        address_extra: None,
        postcode: None,
        locality: Some("Тверь".into()),
        ..rec("2", "Сергей", "Иванов", "", "1980-02-03")
    };
    let s = score_pair(&Model::reasoned(), &a, &b);
    // Name and birth date agree, the town differs: likely, not certain.
    let cfg = MatchConfig {
        auto_merge: 0.999_999,
        review: 0.01,
        ..MatchConfig::default()
    };
    assert_eq!(s.decide(&cfg), Decision::Review, "{s:?}");
    let r = deduplicate(&[a, b], &cfg).unwrap();
    assert_eq!(r.review.len(), 1);
    assert_eq!(r.review[0].kind, PairKind::Review);
    assert!(!same(&r, 0, 1));
}

#[test]
fn config_is_checked_and_parses() {
    let bad = MatchConfig {
        review: 0.99,
        auto_merge: 0.9,
        ..MatchConfig::default()
    };
    assert_eq!(
        deduplicate(&[], &bad).unwrap_err().to_string(),
        "match config: review must not be above auto_merge"
    );
    let bad = MatchConfig {
        window: 0,
        ..MatchConfig::default()
    };
    assert!(bad.check().is_err());
    let bad = MatchConfig {
        blocking: vec![],
        ..MatchConfig::default()
    };
    assert!(bad.check().is_err());
    let mut model = Model::reasoned();
    model.prior_log2_odds = f64::NAN;
    let bad = MatchConfig {
        model: Some(model),
        ..MatchConfig::default()
    };
    assert!(
        bad.check()
            .unwrap_err()
            .to_string()
            .starts_with("match config: model:")
    );
    let c: MatchConfig =
        toml::from_str("auto_merge = 0.99\nblocking = [\"phone\", \"birth_date\"]\n").unwrap();
    assert_eq!(c.blocking, vec![BlockingKey::Phone, BlockingKey::BirthDate]);
    assert!(toml::from_str::<MatchConfig>("auto_merj = 0.99\n").is_err());
    // Empty input is fine.
    let r = deduplicate(&[], &MatchConfig::default()).unwrap();
    assert!(r.clusters.is_empty());
}

#[test]
fn blocking_keys_are_shared_by_duplicates() {
    let a = MatchRecord {
        phone: Some("+79123456789".into()),
        ..rec("1", "Сергей", "Иванов", "", "1980-02-03")
    };
    let b = MatchRecord {
        phone: Some("8 912 345 67 89".into()),
        ..rec("2", "Sergei", "Ivanoff", "", "1980-02-03")
    };
    let ka = blocking_keys(&a, &BlockingKey::ALL);
    let kb = blocking_keys(&b, &BlockingKey::ALL);
    let shared = ka.iter().filter(|k| kb.contains(k)).count();
    assert!(shared >= 5, "{ka:?} {kb:?}");
}

/// A generated base large enough to train on: the unsupervised model finds the
/// duplicates and keeps the families apart. Light sampling keeps the test quick.
#[test]
fn trained_model_on_generated_customers() {
    let base = CustomersConfig {
        records: 3_000,
        duplicate_share: 0.1,
        seed: 11,
    };
    let data = customers(&base, 0..base.entities());
    let truth: Vec<u64> = data.iter().map(|d| d.0).collect();
    let records: Vec<MatchRecord> = data.into_iter().map(|d| d.1).collect();
    let cfg = MatchConfig {
        u_pairs: 20_000,
        em_pairs: 20_000,
        ..MatchConfig::default()
    };
    let r = deduplicate(&records, &cfg).unwrap();
    assert!(
        r.model.training.u_pairs > 0,
        "trained, not the reasoned fallback"
    );
    let m = pair_metrics(&r.clusters, &truth, &[], false);
    assert!(m.f1 >= 0.97, "{}", m.line());
    // Threads change nothing.
    let one = deduplicate(
        &records,
        &MatchConfig {
            threads: 1,
            ..cfg.clone()
        },
    )
    .unwrap();
    let two = deduplicate(&records, &MatchConfig { threads: 2, ..cfg }).unwrap();
    assert_eq!(one.clusters, two.clusters);
    assert_eq!(one.model, two.model);
}
