//! National list and own stop-list (the same `;` CSV machinery).

use super::{Calls, TempDir, entry, names};
use crate::entry::{EntityKind, IdKind, NameStrength, PartialDate};
use crate::lists::{ListError, Progress, national, own};

const NATIONAL: &str = "\u{feff}id;kind;name;aliases;birth_date;birth_place;inn;ogrn;passport;nationality;program
1001;ФЛ;ИВАНОВ ИВАН ИВАНОВИЧ;IVANOV IVAN|ИВАНОВ И.И.;05.03.1975|1976;г. Москва;500100732259;;4510 123456;Россия|UA;терроризм
1002;organization;ООО \"РОМАШКА\";Romashka LLC;;;7707083893;1027700132195;;RU;экстремизм
1003;person;ПЕТРОВ ПЕТР;;31.02.1980;;123;;;Narnia;терроризм
;person;БЕЗ ИДЕНТИФИКАТОРА;;;;;;;;
1004;person;;;;;;;;;
1001;person;ПОВТОР;;;;;;;;
1005;person;ЛИШНИЕ;;;;;;;;;;;extra
1006;кто-то;НЕИЗВЕСТНЫЙ ВИД;;;;;;;;
";

#[test]
fn national_csv_in_utf8() {
    let dir = TempDir::new();
    let path = dir.write("national.csv", NATIONAL);
    let mut calls = Calls::default();
    let loaded = national::load_detailed(&path, &mut calls.callback()).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(s.list, "national");
    let ids: Vec<&str> = s.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["1001", "1002", "1003", "1006"]);

    let p = entry(&s.entries, "1001");
    assert_eq!(p.kind, EntityKind::Person);
    assert_eq!(
        names(p),
        [
            ("ИВАНОВ ИВАН ИВАНОВИЧ", NameStrength::Primary),
            ("IVANOV IVAN", NameStrength::Alias),
            ("ИВАНОВ И.И.", NameStrength::Alias),
        ]
    );
    assert_eq!(
        p.birth_dates,
        [
            PartialDate {
                year: 1975,
                month: Some(3),
                day: Some(5)
            },
            PartialDate {
                year: 1976,
                month: None,
                day: None
            },
        ]
    );
    assert_eq!(p.nationalities, ["ru", "ua"]);
    let ids: Vec<(IdKind, &str)> = p
        .identifiers
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (IdKind::Inn, "500100732259"),
            (IdKind::Passport, "4510123456")
        ]
    );
    assert_eq!(p.programs, ["терроризм"]);

    let org = entry(&s.entries, "1002");
    assert_eq!(org.kind, EntityKind::Organization);
    assert_eq!(org.names[0].full, "ООО \"РОМАШКА\"");
    assert_eq!(org.identifiers.len(), 2);

    // Bad fields are dropped with a note; the entry stays.
    let bad = entry(&s.entries, "1003");
    assert!(
        bad.birth_dates.is_empty() && bad.identifiers.is_empty() && bad.nationalities.is_empty()
    );
    let notes: Vec<(Option<&str>, &str)> = loaded
        .notes
        .iter()
        .map(|n| (n.entry_id.as_deref(), n.reason.as_str()))
        .collect();
    assert_eq!(
        notes,
        [
            (
                Some("1003"),
                "field inn: must have 10 or 12 digits, got 3; value ignored"
            ),
            (
                Some("1003"),
                "field birth_date: expected yyyy, yyyy-mm, yyyy-mm-dd, mm.yyyy or dd.mm.yyyy; value ignored"
            ),
            (
                Some("1003"),
                "field nationality: \"Narnia\" is not a known country code or name; value ignored"
            ),
            (
                Some("1006"),
                "kind is not person or organization; kind left unknown"
            ),
        ]
    );
    assert_eq!(entry(&s.entries, "1006").kind, EntityKind::Unknown);

    let problems: Vec<(Option<&str>, &str, &str)> = s
        .problems
        .iter()
        .map(|p| {
            (
                p.entry_id.as_deref(),
                p.location.as_str(),
                p.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        [
            (None, "national.csv line 5", "id is empty; row skipped"),
            (
                Some("1004"),
                "national.csv line 6",
                "name is empty; row skipped"
            ),
            (
                Some("1001"),
                "national.csv line 7",
                "duplicate id; the first row is kept"
            ),
            (
                Some("1005"),
                "national.csv line 8",
                "14 fields but the header names 11; row skipped (a ';' inside a value must be quoted)"
            ),
        ]
    );
    let last = calls.0.last().copied().unwrap();
    assert_eq!(last.entries_done, 8);
    assert_eq!(last.bytes_done, last.bytes_total);
}

#[test]
fn national_csv_in_windows_1251_reads_the_same() {
    let dir = TempDir::new();
    let utf8 = dir.write("utf8.csv", NATIONAL);
    let (cp1251, _, unmappable) =
        encoding_rs::WINDOWS_1251.encode(NATIONAL.trim_start_matches('\u{feff}'));
    assert!(!unmappable);
    let legacy = dir.write("cp1251.csv", &cp1251);
    let mut noop = |_: Progress| {};
    let a = national::load(&utf8, &mut noop).unwrap();
    let b = national::load(&legacy, &mut noop).unwrap();
    assert_eq!(a.entries, b.entries);
    assert_ne!(a.version, b.version, "the version is over the bytes");
}

#[test]
fn header_problems_are_whole_file_errors() {
    let dir = TempDir::new();
    let mut noop = |_: Progress| {};
    let path = dir.write("n.csv", "id;name;aliases\n1;X;\n");
    let err = national::load(&path, &mut noop).unwrap_err();
    assert!(matches!(err, ListError::Format { .. }));
    assert!(
        err.to_string()
            .ends_with("n.csv: line 1: header lacks required column(s): kind"),
        "{err}"
    );

    let path = dir.write("n.csv", "id;kind;name;name\n");
    let err = national::load(&path, &mut noop).unwrap_err();
    assert!(
        err.to_string().contains("column name appears twice"),
        "{err}"
    );

    let path = dir.write("n.csv", "");
    assert!(national::load(&path, &mut noop).is_err());

    // Unknown columns are ignored with a note; column order is free.
    let path = dir.write("n.csv", "name;comment;kind;id\nX;anything;person;7\n");
    let loaded = national::load_detailed(&path, &mut noop).unwrap();
    assert_eq!(loaded.snapshot.entries[0].id, "7");
    assert_eq!(loaded.notes.len(), 1);
    assert!(
        loaded.notes[0]
            .reason
            .contains("\"comment\" is not part of the format")
    );
}

#[test]
fn own_stop_list() {
    let dir = TempDir::new();
    let path = dir.write(
        "own.csv",
        "id;kind;name;inn;ogrn;passport;birth_date;reason\n\
         S-1;person;Сидоров Сидор;500100732259;;4510 123456;1980-07-01;отказ в обслуживании\n\
         S-2;organization;ООО Тест;7707083894;1027700132195;;;мошенничество\n\
         S-3;person;;;;;;\n",
    );
    let mut noop = |_: Progress| {};
    let loaded = own::load_detailed(&path, &mut noop).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(s.list, "own");
    assert_eq!(s.entries.len(), 2);
    let p = entry(&s.entries, "S-1");
    assert_eq!(p.programs, ["отказ в обслуживании"]);
    assert_eq!(
        p.birth_dates,
        [PartialDate {
            year: 1980,
            month: Some(7),
            day: Some(1)
        }]
    );
    assert_eq!(p.identifiers.len(), 2);
    let org = entry(&s.entries, "S-2");
    let ids: Vec<IdKind> = org.identifiers.iter().map(|i| i.kind).collect();
    assert_eq!(ids, [IdKind::Ogrn], "the inn fails its check digits");
    assert_eq!(
        loaded.notes[0].reason,
        "field inn: checksum mismatch; value ignored"
    );
    assert_eq!(s.problems.len(), 1);
    assert_eq!(s.problems[0].entry_id.as_deref(), Some("S-3"));
}
