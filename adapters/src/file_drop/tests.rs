use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::*;

fn setup() -> (tempfile::TempDir, FileDropConfig) {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("inbox");
    fs::create_dir_all(&inbox).unwrap();
    (dir, FileDropConfig::new(inbox))
}

fn write(path: &Path, content: &[u8]) {
    fs::write(path, content).unwrap();
}

fn set_mtime(path: &Path, t: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

fn read(bytes: &[u8], encoding: Encoding) -> Result<CsvReader, FileDropError> {
    CsvReader::from_bytes("customers.csv", bytes.to_vec(), encoding, b';')
}

// ---------- config ----------

#[test]
fn config_defaults_and_unknown_fields() {
    let cfg: FileDropConfig = serde_json::from_str(r#"{ "inbox": "/data/in" }"#).unwrap();
    assert_eq!(cfg, FileDropConfig::new("/data/in"));
    assert_eq!(cfg.pattern, "*.csv");
    assert_eq!(cfg.encoding, Encoding::Utf8);
    assert_eq!(cfg.delimiter, ';');
    assert_eq!(cfg.settle_ms, 2000);
    assert_eq!(cfg.poll_interval_ms, 1000);
    assert_eq!(cfg.work_dir(), Path::new("/data/in"));
    assert_eq!(cfg.processing_dir(), Path::new("/data/in/processing"));
    cfg.validate().unwrap();

    let cfg: FileDropConfig = serde_json::from_str(
        r#"{ "inbox": "/in", "work_dir": "/work", "encoding": "windows-1251",
             "delimiter": "|", "done_marker": ".done", "settle_ms": 0 }"#,
    )
    .unwrap();
    assert_eq!(cfg.encoding, Encoding::Windows1251);
    assert_eq!(cfg.delimiter_byte(), b'|');
    assert_eq!(cfg.archive_dir(), Path::new("/work/archive"));
    assert_eq!(cfg.quarantine_dir(), Path::new("/work/quarantine"));
    assert_eq!(cfg.failed_dir(), Path::new("/work/failed"));

    let err = serde_json::from_str::<FileDropConfig>(r#"{ "inbox": "/in", "inbx": 1 }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field"), "{err}");
    let err = serde_json::from_str::<FileDropConfig>(r#"{ "inbox": "/in", "encoding": "koi8-r" }"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown variant"), "{err}");
}

#[test]
fn config_validation() {
    let mut cfg = FileDropConfig::new("/in");
    cfg.delimiter = 'ж';
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("field delimiter")
    );
    cfg.delimiter = ';';
    cfg.pattern = "*a*.csv".into();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("field pattern")
    );
    cfg.pattern = "*.csv".into();
    cfg.done_marker = Some(String::new());
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("field done_marker")
    );
    cfg.done_marker = None;
    cfg.poll_interval_ms = 0;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("field poll_interval_ms")
    );
}

#[test]
fn pattern_matching() {
    let mut cfg = FileDropConfig::new("/in");
    assert!(cfg.matches("a.csv"));
    assert!(cfg.matches("A.CSV"));
    assert!(!cfg.matches("a.csv.part"));
    assert!(!cfg.matches(".a.csv"));
    cfg.pattern = "cust_*".into();
    assert!(cfg.matches("cust_2024.txt"));
    assert!(!cfg.matches("acct_2024.txt"));
    cfg.pattern = "cust_*.csv".into();
    assert!(cfg.matches("cust_.csv"));
    assert!(!cfg.matches("cust.csv"));
    cfg.pattern = "exact.csv".into();
    assert!(cfg.matches("exact.csv"));
    assert!(!cfg.matches("exact.csv2"));
    cfg.pattern = "*".into();
    cfg.done_marker = Some(".done".into());
    assert!(cfg.matches("x.csv"));
    assert!(!cfg.matches("x.csv.done"));
}

// ---------- settle / done-marker / claim ----------

#[test]
fn settle_needs_unchanged_size_and_mtime_for_the_interval() {
    let (_dir, cfg) = setup();
    let file = cfg.inbox.join("a.csv");
    write(&file, b"id\n1\n");
    write(&cfg.inbox.join("notes.txt"), b"ignored");
    fs::create_dir(cfg.inbox.join("sub.csv")).unwrap();

    let mut tracker = SettleTracker::new();
    let t0 = Instant::now();
    assert!(
        tracker.scan_ready(&cfg, t0).unwrap().is_empty(),
        "first sight is never ready"
    );
    assert_eq!(tracker.tracked(), 1);
    assert!(
        tracker
            .scan_ready(&cfg, t0 + Duration::from_millis(1500))
            .unwrap()
            .is_empty()
    );

    // The writer appends: the clock restarts.
    write(&file, b"id\n1\n2\n");
    let t1 = t0 + Duration::from_millis(1900);
    assert!(tracker.scan_ready(&cfg, t1).unwrap().is_empty());
    assert!(
        tracker
            .scan_ready(&cfg, t1 + Duration::from_millis(1999))
            .unwrap()
            .is_empty()
    );
    let ready = tracker
        .scan_ready(&cfg, t1 + Duration::from_millis(2000))
        .unwrap();
    assert_eq!(ready, vec![file.clone()]);

    // Once the file is gone, it is forgotten.
    fs::remove_file(&file).unwrap();
    assert!(
        tracker
            .scan_ready(&cfg, t1 + Duration::from_secs(3))
            .unwrap()
            .is_empty()
    );
    assert_eq!(tracker.tracked(), 0);
}

#[test]
fn settle_detects_mtime_change_without_size_change() {
    let (_dir, cfg) = setup();
    let file = cfg.inbox.join("a.csv");
    write(&file, b"id\n1\n");
    let mut tracker = SettleTracker::new();
    let t0 = Instant::now();
    tracker.scan_ready(&cfg, t0).unwrap();
    set_mtime(&file, SystemTime::now() - Duration::from_secs(3600));
    assert!(
        tracker
            .scan_ready(&cfg, t0 + Duration::from_secs(3))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tracker
            .scan_ready(&cfg, t0 + Duration::from_secs(6))
            .unwrap(),
        vec![file]
    );
}

#[test]
fn ready_files_are_ordered_by_mtime_then_name() {
    let (_dir, mut cfg) = setup();
    cfg.settle_ms = 0;
    let now = SystemTime::now();
    for (name, age) in [("c.csv", 30), ("a.csv", 10), ("b.csv", 30)] {
        let p = cfg.inbox.join(name);
        write(&p, b"id\n");
        set_mtime(&p, now - Duration::from_secs(age));
    }
    let ready = SettleTracker::new()
        .scan_ready(&cfg, Instant::now())
        .unwrap();
    assert_eq!(names(&ready), ["b.csv", "c.csv", "a.csv"]);
}

#[test]
fn done_marker_decides_readiness() {
    let (_dir, mut cfg) = setup();
    cfg.done_marker = Some(".done".into());
    cfg.settle_ms = 0;
    let file = cfg.inbox.join("a.csv");
    write(&file, b"id\n1\n");
    let mut tracker = SettleTracker::new();
    let later = Instant::now() + Duration::from_secs(3600);
    assert!(
        tracker.scan_ready(&cfg, later).unwrap().is_empty(),
        "no marker, not ready"
    );

    let marker = cfg.inbox.join("a.csv.done");
    write(&marker, b"");
    assert_eq!(
        tracker.scan_ready(&cfg, Instant::now()).unwrap(),
        vec![file.clone()]
    );

    // A marker older than its data file is a leftover: the data is still being written.
    set_mtime(&marker, SystemTime::now() - Duration::from_secs(60));
    assert!(tracker.scan_ready(&cfg, later).unwrap().is_empty());

    // An orphan marker is not a data file.
    fs::remove_file(&file).unwrap();
    assert!(tracker.scan_ready(&cfg, later).unwrap().is_empty());
}

#[test]
fn claim_moves_removes_marker_and_fingerprints() {
    let (_dir, mut cfg) = setup();
    cfg.done_marker = Some(".done".into());
    let file = cfg.inbox.join("a.csv");
    write(&file, b"abc");
    write(&cfg.inbox.join("a.csv.done"), b"");

    let claimed = claim(&file, &cfg).unwrap();
    assert_eq!(claimed.path, cfg.processing_dir().join("a.csv"));
    assert_eq!(claimed.original_name, "a.csv");
    assert_eq!(claimed.size, 3);
    assert_eq!(
        claimed.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        claimed.modified,
        fs::metadata(&claimed.path).unwrap().modified().unwrap()
    );
    assert!(!file.exists());
    assert!(!cfg.inbox.join("a.csv.done").exists());
    assert_eq!(fs::read(&claimed.path).unwrap(), b"abc");

    // processing/ lives in the inbox but is a directory, so it is never picked up.
    cfg.settle_ms = 0;
    assert!(
        SettleTracker::new()
            .scan_ready(&cfg, Instant::now())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn claim_of_a_name_still_in_processing_waits() {
    let (_dir, cfg) = setup();
    let file = cfg.inbox.join("a.csv");
    write(&file, b"first");
    let first = claim(&file, &cfg).unwrap();
    write(&file, b"second");
    let err = claim(&file, &cfg).unwrap_err();
    assert!(
        matches!(err, FileDropError::AlreadyProcessing { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("a.csv"));
    assert_eq!(
        fs::read(&file).unwrap(),
        b"second",
        "the new file stays in the inbox"
    );
    assert_eq!(
        fs::read(&first.path).unwrap(),
        b"first",
        "the claimed file is untouched"
    );

    finish(&first, &cfg, Outcome::Archived).unwrap();
    let second = claim(&file, &cfg).unwrap();
    assert_ne!(first.sha256, second.sha256);
}

#[test]
fn claim_of_a_vanished_file_is_an_io_error_naming_it() {
    let (_dir, cfg) = setup();
    let err = claim(&cfg.inbox.join("gone.csv"), &cfg).unwrap_err();
    assert!(matches!(err, FileDropError::Io { .. }));
    assert!(err.to_string().contains("gone.csv"), "{err}");
}

#[test]
fn recover_returns_files_left_in_processing_after_a_crash() {
    let (dir, mut cfg) = setup();
    cfg.work_dir = Some(dir.path().join("work"));
    assert!(recover(&cfg).unwrap().is_empty(), "no processing/ yet");

    for name in ["a.csv", "b.csv"] {
        write(&cfg.inbox.join(name), name.as_bytes());
    }
    let a = claim(&cfg.inbox.join("a.csv"), &cfg).unwrap();
    let b = claim(&cfg.inbox.join("b.csv"), &cfg).unwrap();
    assert!(a.path.starts_with(dir.path().join("work/processing")));
    // Crash: nothing in memory survives; a new run recovers from disk.
    let mut recovered = recover(&cfg).unwrap();
    recovered.sort_by(|x, y| x.original_name.cmp(&y.original_name));
    assert_eq!(recovered, vec![a.clone(), b.clone()]);

    finish(&a, &cfg, Outcome::Archived).unwrap();
    finish(&b, &cfg, Outcome::Failed).unwrap();
    assert!(recover(&cfg).unwrap().is_empty());
    assert!(dir.path().join("work/archive/a.csv").exists());
    assert!(dir.path().join("work/failed/b.csv").exists());
}

#[test]
fn finish_never_overwrites() {
    let (_dir, cfg) = setup();
    let file = cfg.inbox.join("daily.csv");
    let mut targets = Vec::new();
    for day in 1..=3 {
        write(&file, format!("day {day}").as_bytes());
        let claimed = claim(&file, &cfg).unwrap();
        targets.push(finish(&claimed, &cfg, Outcome::Archived).unwrap());
    }
    assert_eq!(names(&targets), ["daily.csv", "daily.csv.1", "daily.csv.2"]);
    for (day, target) in targets.iter().enumerate() {
        assert_eq!(
            fs::read_to_string(target).unwrap(),
            format!("day {}", day + 1)
        );
    }
    write(&file, b"bad");
    let claimed = claim(&file, &cfg).unwrap();
    let failed = finish(&claimed, &cfg, Outcome::Failed).unwrap();
    assert_eq!(failed, cfg.failed_dir().join("daily.csv"));
}

// ---------- decoding ----------

#[test]
fn windows_1251_file_is_decoded() {
    let text = "id;фамилия;имя\r\n1;Иванов;Пётр\r\n2;Ёлкина;«Анна»\r\n";
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1251.encode(text);
    assert!(!unmappable);
    let reader = read(&bytes, Encoding::Windows1251).unwrap();
    assert_eq!(reader.headers(), ["id", "фамилия", "имя"]);
    let rows: Vec<Row> = reader.map(Result::unwrap).collect();
    assert_eq!(
        rows,
        vec![
            Row {
                line: 2,
                cells: vec!["1".into(), "Иванов".into(), "Пётр".into()]
            },
            Row {
                line: 3,
                cells: vec!["2".into(), "Ёлкина".into(), "«Анна»".into()]
            },
        ]
    );
}

#[test]
fn ascii_only_file_reads_in_either_encoding() {
    for encoding in [Encoding::Utf8, Encoding::Windows1251] {
        let rows = read(b"id;name\n1;x\n", encoding).unwrap().read_all();
        assert_eq!(
            rows,
            vec![Ok(Row {
                line: 2,
                cells: vec!["1".into(), "x".into()]
            })]
        );
    }
}

#[test]
fn utf8_bom_is_stripped() {
    let reader = read("\u{FEFF}id;имя\n1;Анна\n".as_bytes(), Encoding::Utf8).unwrap();
    assert_eq!(reader.headers(), ["id", "имя"]);
    assert_eq!(reader.read_all()[0].as_ref().unwrap().cells[1], "Анна");
}

#[test]
fn windows_1251_bytes_under_utf8_config_are_rejected_with_the_line() {
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode("id;name\n1;Smith\n2;Иванов\n");
    let err = read(&bytes, Encoding::Utf8).unwrap_err();
    assert!(
        matches!(err, FileDropError::NotUtf8 { line: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "file customers.csv line 3: not valid utf-8; is the file windows-1251?"
    );
}

#[test]
fn utf8_bytes_under_windows_1251_config_are_rejected() {
    let err = read(
        "id;name\n1;Smith\n2;Иванов\n".as_bytes(),
        Encoding::Windows1251,
    )
    .unwrap_err();
    assert!(
        matches!(err, FileDropError::LooksLikeUtf8 { line: 3, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "file customers.csv line 3: looks like utf-8, configured windows-1251"
    );

    let err = read("\u{FEFF}id\n1\n".as_bytes(), Encoding::Windows1251).unwrap_err();
    assert!(
        matches!(err, FileDropError::LooksLikeUtf8 { line: 1, .. }),
        "{err:?}"
    );

    // A UTF-8 file cut in the middle of a character is still recognised.
    let mut bytes = "id;name\n1;Иванов Пётр Сергеевич\n2;Ж".as_bytes().to_vec();
    bytes.pop();
    let err = read(&bytes, Encoding::Windows1251).unwrap_err();
    assert!(
        matches!(err, FileDropError::LooksLikeUtf8 { line: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn real_windows_1251_text_is_not_mistaken_for_utf8() {
    // Upper-case Cyrillic next to « » and ё can form valid UTF-8 pairs by accident.
    let text = "id;name\n1;ООО «ВЕКТОР»\n2;Пётр Семёнов\n3;ЗАО «ГРАНИТ-В»\n4;Иванов\n";
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(text);
    let rows = read(&bytes, Encoding::Windows1251).unwrap().read_all();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].as_ref().unwrap().cells[1], "ООО «ВЕКТОР»");
}

// ---------- parsing ----------

#[test]
fn wrong_cell_count_is_reported_per_row_and_reading_goes_on() {
    let data = "id;name;phone\n1;a;100\n2;b\n3;c;300;extra\n4;d;400\n";
    let reader = read(data.as_bytes(), Encoding::Utf8).unwrap();
    let rows = reader.read_all();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].as_ref().unwrap().line, 2);
    let e = rows[1].as_ref().unwrap_err();
    assert_eq!(e.line, 3);
    assert_eq!(
        e.kind,
        RowErrorKind::WrongCellCount {
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "file customers.csv line 3: row has 2 cells, the header has 3"
    );
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!(
        e.kind,
        RowErrorKind::WrongCellCount {
            expected: 3,
            found: 4
        }
    );
    assert!(!e.to_string().contains("300"), "no values in messages");
    assert_eq!(rows[3].as_ref().unwrap().cells, ["4", "d", "400"]);
}

#[test]
fn truncated_last_row_names_file_and_line_and_keeps_earlier_rows() {
    let data = "id;name;phone\n1;a;100\n2;b;200\n3;c";
    let rows = read(data.as_bytes(), Encoding::Utf8).unwrap().read_all();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].is_ok() && rows[1].is_ok());
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!(
        e.kind,
        RowErrorKind::Truncated {
            expected: 3,
            found: 2
        }
    );
    assert_eq!(
        e.to_string(),
        "file customers.csv line 4: last row has 2 of 3 cells; the file looks truncated"
    );
}

#[test]
fn unterminated_quote_at_the_end_is_a_truncation() {
    let data = "id;name;note\n1;a;\"ok \"\"quoted\"\"\"\n2;b;\"multi\nline\"\n3;c;\"cut here\n";
    let rows = read(data.as_bytes(), Encoding::Utf8).unwrap().read_all();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].as_ref().unwrap().cells[2], "ok \"quoted\"");
    let second = rows[1].as_ref().unwrap();
    assert_eq!((second.line, second.cells[2].as_str()), (3, "multi\nline"));
    let e = rows[2].as_ref().unwrap_err();
    assert_eq!((e.line, &e.kind), (5, &RowErrorKind::UnterminatedQuote));
    assert!(
        e.to_string().starts_with("file customers.csv line 5:"),
        "{e}"
    );
}

#[test]
fn unterminated_quote_in_the_last_cell_with_full_cell_count() {
    let data = "id;name\n1;a\n2;\"Ива";
    let rows = read(data.as_bytes(), Encoding::Utf8).unwrap().read_all();
    assert_eq!(
        rows[1].as_ref().unwrap_err().kind,
        RowErrorKind::UnterminatedQuote
    );
    assert!(!rows[1].as_ref().unwrap_err().to_string().contains("Ива"));
}

#[test]
fn stray_quote_inside_an_unquoted_cell_is_not_a_truncation() {
    let data = "id;name\n1;12\" screen\n";
    let rows = read(data.as_bytes(), Encoding::Utf8).unwrap().read_all();
    assert_eq!(
        rows,
        vec![Ok(Row {
            line: 2,
            cells: vec!["1".into(), "12\" screen".into()]
        })]
    );
}

#[test]
fn line_numbers_are_physical_lines() {
    let data = "\nid;note\r\n\r\n1;\"a\r\nb\r\nc\"\r\n\r\n2;x\r\n3;y";
    let reader = read(data.as_bytes(), Encoding::Utf8).unwrap();
    let lines: Vec<u64> = reader.map(|r| r.unwrap().line).collect();
    assert_eq!(lines, [4, 8, 9]);
}

#[test]
fn header_names_are_trimmed_and_must_be_unique() {
    let reader = read(b" id ;name\t\n1;x\n", Encoding::Utf8).unwrap();
    assert_eq!(reader.headers(), ["id", "name"]);
    let err = read(b"id;name;id\n1;x;1\n", Encoding::Utf8).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file customers.csv line 1: bad header row: column id appears twice"
    );
}

#[test]
fn empty_file_and_broken_header_are_file_level_errors() {
    for data in [&b""[..], b"\n\n", b"\xEF\xBB\xBF"] {
        let err = read(data, Encoding::Utf8).unwrap_err();
        assert!(matches!(err, FileDropError::Header { .. }), "{err:?}");
        assert!(err.to_string().contains("empty"), "{err}");
    }
    let err = read(b"id;\"name\n", Encoding::Utf8).unwrap_err();
    assert!(err.to_string().contains("never closed"), "{err}");
}

#[test]
fn header_only_file_has_no_rows() {
    assert!(
        read(b"id;name\n", Encoding::Utf8)
            .unwrap()
            .read_all()
            .is_empty()
    );
}

#[test]
fn other_delimiters_and_open_from_disk() {
    let (_dir, mut cfg) = setup();
    cfg.delimiter = ',';
    cfg.encoding = Encoding::Windows1251;
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode("id,name\n1,\"Петров, Иван\"\n");
    let path = cfg.inbox.join("x.csv");
    write(&path, &bytes);
    let reader = CsvReader::open(&path, &cfg).unwrap();
    assert_eq!(reader.file(), "x.csv");
    assert_eq!(
        reader.read_all()[0].as_ref().unwrap().get(1),
        Some("Петров, Иван")
    );

    let err = CsvReader::open(&cfg.inbox.join("missing.csv"), &cfg).unwrap_err();
    assert!(err.to_string().contains("missing.csv"), "{err}");
}

#[test]
fn a_large_file_reads_whole() {
    let mut data = String::from("id;name;phone\n");
    for i in 0..100_000 {
        data.push_str(&format!("{i};Имя Фамилия {i};+7900{i:07}\n"));
    }
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&data);
    let rows = read(&bytes, Encoding::Windows1251).unwrap().read_all();
    assert_eq!(rows.len(), 100_000);
    let last = rows.last().unwrap().as_ref().unwrap();
    assert_eq!((last.line, last.cells[0].as_str()), (100_001, "99999"));
}

// ---------- streaming ----------

fn read_chunked(
    bytes: &[u8],
    encoding: Encoding,
    chunk: usize,
) -> Result<CsvReader, FileDropError> {
    CsvReader::from_bytes_chunked("customers.csv", bytes.to_vec(), encoding, b';', chunk)
}

const UTF8_BOM_BYTES: &[u8] = b"\xEF\xBB\xBF";

type ReadOutcome = Result<(Vec<String>, Vec<Result<Row, RowError>>), String>;

/// Everything a reader gives: its headers and rows, or the error of opening it.
fn outcome(reader: Result<CsvReader, FileDropError>) -> ReadOutcome {
    reader
        .map(|r| (r.headers().to_vec(), r.read_all()))
        .map_err(|e| e.to_string())
}

#[test]
fn chunk_size_never_changes_the_outcome() {
    let cp1251 = |s: &str| encoding_rs::WINDOWS_1251.encode(s).0.into_owned();
    let mut cut_utf8 = "id;name\n1;Иванов Пётр\n2;Ж".as_bytes().to_vec();
    cut_utf8.pop();
    let cases: Vec<(Vec<u8>, Encoding)> = vec![
        (
            "\u{FEFF}id;имя\r\n1;Анна\r\n2;€ 😀\r\n".into(),
            Encoding::Utf8,
        ),
        ("\u{FEFF}id;имя\n1;Анна\n".into(), Encoding::Windows1251),
        (
            cp1251("id;имя\r\n1;«Анна»\r\n\r\n2;Ёлкина\r\n"),
            Encoding::Windows1251,
        ),
        (cp1251("id;name\n1;Smith\n2;Иванов\n"), Encoding::Utf8),
        ("id;name\n1;Smith\n2;Иванов\n".into(), Encoding::Windows1251),
        (cut_utf8.clone(), Encoding::Utf8),
        (cut_utf8, Encoding::Windows1251),
        (b"id;name\n1;a\n2;\x98\n".to_vec(), Encoding::Windows1251),
        (
            "\nid;note\r\n\r\n1;\"a\r\nb\r\nc\"\r\n\r\n2;x\r\n3;y".into(),
            Encoding::Utf8,
        ),
        (
            "id;name;note\n1;a;\"ok \"\"q\"\"\"\n2;b\n3;c;\"cut\n".into(),
            Encoding::Utf8,
        ),
        ("id;name\n1;12\" screen\n2;x;y\n3;z".into(), Encoding::Utf8),
        (b"id;\"name\n".to_vec(), Encoding::Utf8),
        (b"\r\n\r\n".to_vec(), Encoding::Utf8),
        (b"\xEF\xBB\xBF".to_vec(), Encoding::Utf8),
        (b" id ;name;id\n".to_vec(), Encoding::Utf8),
    ];
    for (bytes, encoding) in &cases {
        let expected = outcome(read(bytes, *encoding));
        for chunk in (1..=12).chain([17, 64, 4096]) {
            assert_eq!(
                outcome(read_chunked(bytes, *encoding, chunk)),
                expected,
                "chunk {chunk}, {encoding}, {:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
}

#[test]
fn multibyte_character_split_across_chunks() {
    // Two-, three- and four-byte characters; every chunk size up to 8 cuts some of them.
    let data = "id;имя\n1;Ж€😀\n2;ё\n";
    for chunk in 1..=8 {
        let reader = read_chunked(data.as_bytes(), Encoding::Utf8, chunk).unwrap();
        assert_eq!(reader.headers(), ["id", "имя"]);
        let rows: Vec<Row> = reader.map(Result::unwrap).collect();
        assert_eq!(
            rows,
            vec![
                Row {
                    line: 2,
                    cells: vec!["1".into(), "Ж€😀".into()]
                },
                Row {
                    line: 3,
                    cells: vec!["2".into(), "ё".into()]
                },
            ],
            "chunk {chunk}"
        );
    }

    // A byte-order mark cut by the boundary is still stripped, or still refused (even when
    // the rest of the file is windows-1251).
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("id;имя\n1;Иванов Пётр\n");
    let bom_then_cp1251 = [UTF8_BOM_BYTES, cp1251.as_ref()].concat();
    for chunk in 1..=3 {
        let err = read_chunked(&bom_then_cp1251, Encoding::Windows1251, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::LooksLikeUtf8 { line: 1, .. }),
            "{err:?}"
        );
        let reader = read_chunked("\u{FEFF}id;x\n1;2\n".as_bytes(), Encoding::Utf8, chunk);
        assert_eq!(reader.unwrap().headers(), ["id", "x"], "chunk {chunk}");
        let err =
            read_chunked("\u{FEFF}id\n1\n".as_bytes(), Encoding::Windows1251, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::LooksLikeUtf8 { line: 1, .. }),
            "{err:?}"
        );
    }

    // Encoding errors name the same line whatever the chunk size.
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("id;name\n1;Smith\n2;Иванов\n");
    let mut cut = "id;name\n1;x\n2;Ж".as_bytes().to_vec();
    cut.pop();
    for chunk in 1..=9 {
        let err = read_chunked(&cp1251, Encoding::Utf8, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::NotUtf8 { line: 3, .. }),
            "{err:?}"
        );
        let err = read_chunked(&cut, Encoding::Utf8, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::NotUtf8 { line: 3, .. }),
            "{err:?}"
        );
        let utf8 = "id;name\n1;Smith\n\n2;Иванов\n".as_bytes();
        let err = read_chunked(utf8, Encoding::Windows1251, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::LooksLikeUtf8 { line: 4, .. }),
            "{err:?}"
        );
    }
}

#[test]
fn crlf_line_numbers_across_chunk_boundaries() {
    let data = "\r\nid;note\r\n\r\n1;\"a\r\nb\"\r\n\r\n\r\n2;x\r\n3;y\r\n";
    for chunk in (1..=16).chain([4096]) {
        let reader = read_chunked(data.as_bytes(), Encoding::Utf8, chunk).unwrap();
        let rows: Vec<Row> = reader.map(Result::unwrap).collect();
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [4, 8, 9], "chunk {chunk}");
        assert_eq!(rows[0].cells[1], "a\r\nb", "chunk {chunk}");

        // A header after blank lines is named by its own line.
        let err = read_chunked(b"\r\n\n\r\nid;id\r\n1;2\r\n", Encoding::Utf8, chunk).unwrap_err();
        assert!(
            matches!(err, FileDropError::Header { line: 4, .. }),
            "{err:?}"
        );
    }

    let mut data = String::from("id;name\r\n");
    for i in 0..1000 {
        data.push_str(&format!("{i};Имя {i}\r\n"));
    }
    for chunk in [5, 7, 64] {
        let reader = read_chunked(data.as_bytes(), Encoding::Utf8, chunk).unwrap();
        for (i, row) in reader.enumerate() {
            let row = row.unwrap();
            assert_eq!(row.line, i as u64 + 2, "chunk {chunk}");
            assert_eq!(row.cells[0], i.to_string());
        }
    }
}

#[test]
fn quoted_cell_with_line_breaks_keeps_the_lines_exact() {
    let data = "id;note;n\n1;\"first\nsecond\r\nthird\";a\n2;x;b\n\n3;\"\";c\n4;\"\n\";d\n5;e;f";
    for chunk in (1..=10).chain([4096]) {
        let rows: Vec<Row> = read_chunked(data.as_bytes(), Encoding::Utf8, chunk)
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let lines: Vec<(u64, &str)> = rows.iter().map(|r| (r.line, r.cells[0].as_str())).collect();
        assert_eq!(
            lines,
            [(2, "1"), (5, "2"), (7, "3"), (8, "4"), (10, "5")],
            "chunk {chunk}"
        );
        assert_eq!(rows[0].cells[1], "first\nsecond\r\nthird");
        assert_eq!(rows[3].cells[1], "\n");
    }
}

#[test]
fn every_windows_1251_byte_is_defined() {
    // 0x98 has no letter in windows-1251; it decodes to the control character U+0098.
    let rows = read(b"id;name\n1;a\x98\n", Encoding::Windows1251)
        .unwrap()
        .read_all();
    assert_eq!(rows[0].as_ref().unwrap().cells[1], "a\u{98}");
}

#[test]
fn bytes_that_stop_decoding_part_way_end_the_rows_with_the_line() {
    // The encoding check normally refuses these files in `open`; if the file changes
    // afterwards, the rows before the bad bytes come through and reading stops there.
    let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("id;name\n1;a\n2;\"x\ny Иванов\"\n3;c\n");
    for chunk in [1, 3, 4096] {
        let reader =
            CsvReader::from_bytes_unchecked("c.csv", cp1251.to_vec(), Encoding::Utf8, b';', chunk)
                .unwrap();
        let rows = reader.read_all();
        assert_eq!(rows.len(), 2, "chunk {chunk}");
        assert_eq!(rows[0].as_ref().unwrap().line, 2);
        let e = rows[1].as_ref().unwrap_err();
        assert_eq!(e.line, 4, "the line of the bad byte");
        assert_eq!(e.reason(), "unreadable row: not valid utf-8");
        assert!(!e.to_string().contains('y'), "{e}");
    }

    let err =
        CsvReader::from_bytes_unchecked("c.csv", b"id;\xFF\n".to_vec(), Encoding::Utf8, b';', 2)
            .unwrap_err();
    assert!(
        matches!(err, FileDropError::NotUtf8 { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_large_file_is_streamed_from_disk() {
    use std::io::Write;

    let (_dir, mut cfg) = setup();
    cfg.encoding = Encoding::Windows1251;
    let path = cfg.inbox.join("big.csv");
    let rows = 200_000u64;
    {
        let mut out = std::io::BufWriter::new(fs::File::create(&path).unwrap());
        out.write_all(b"id;name;phone\r\n").unwrap();
        for i in 0..rows {
            // Every thousandth name is quoted and spans two lines.
            let line = if i % 1000 == 0 {
                format!("{i};\"Имя\r\nФамилия {i}\";+7900{i:07}\r\n")
            } else {
                format!("{i};Имя Фамилия {i};+7900{i:07}\r\n")
            };
            let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode(&line);
            out.write_all(&bytes).unwrap();
        }
        out.flush().unwrap();
    }

    for chunk in [64 * 1024, 1000] {
        let reader = CsvReader::open_chunked(&path, &cfg, chunk).unwrap();
        assert_eq!(reader.headers(), ["id", "name", "phone"]);
        let (mut count, mut line) = (0u64, 2u64);
        for row in reader {
            let row = row.unwrap();
            assert_eq!(row.line, line, "chunk {chunk}");
            assert_eq!(row.cells[0], count.to_string());
            line += if count % 1000 == 0 { 2 } else { 1 };
            count += 1;
        }
        assert_eq!(count, rows, "chunk {chunk}");
    }
}

#[test]
fn a_quote_never_closed_does_not_pull_the_rest_of_the_file_into_one_row() {
    let mut data = b"id;name\n1;a\n\n2;\"never closed\n".to_vec();
    while data.len() < 9 << 20 {
        data.extend_from_slice(b"3;x\n");
    }
    let rows = read_chunked(&data, Encoding::Utf8, 64 * 1024)
        .unwrap()
        .read_all();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].as_ref().unwrap().line, 2);
    let e = rows[1].as_ref().unwrap_err();
    assert_eq!(e.line, 4);
    assert_eq!(
        e.reason(),
        "unreadable row: row is longer than 8 MiB; is a quote never closed?"
    );

    let mut data = b"\n\"id;name\n".to_vec();
    data.resize(9 << 20, b'x');
    let err = read_chunked(&data, Encoding::Utf8, 64 * 1024).unwrap_err();
    assert_eq!(
        err.to_string(),
        "file customers.csv line 2: bad header row: row is longer than 8 MiB; is a quote never closed?"
    );
}

#[test]
fn reader_can_move_to_a_blocking_thread() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<CsvReader>();
}

// ---------- quarantine ----------

#[test]
fn quarantine_writes_line_field_reason() {
    let (_dir, cfg) = setup();
    let mut q = QuarantineWriter::create(&cfg, "customers.csv").unwrap();
    q.add(3, "phone", "not a phone number").unwrap();
    q.add(7, "inn", "bad checksum;\nsee rules").unwrap();
    let row_error = read(b"id;name\n1\n2;x\n", Encoding::Utf8)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    q.add_row_error(&row_error).unwrap();
    assert_eq!(q.entries(), 3);
    let tmp = cfg
        .quarantine_dir()
        .join("customers.csv.quarantine.csv.tmp");
    assert!(tmp.exists());
    let path = q.finish().unwrap().unwrap();
    assert_eq!(
        path,
        cfg.quarantine_dir().join("customers.csv.quarantine.csv")
    );
    assert!(!tmp.exists());
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "line;field;reason\n3;phone;not a phone number\n7;inn;\"bad checksum; see rules\"\n\
         2;;row has 1 cells, the header has 2\n"
    );
}

#[test]
fn quarantine_after_a_crash_is_rewritten_not_appended() {
    let (_dir, cfg) = setup();
    let final_path = cfg.quarantine_dir().join("c.csv.quarantine.csv");

    // First run completes its quarantine list, then crashes before archiving.
    let mut q = QuarantineWriter::create(&cfg, "c.csv").unwrap();
    q.add(2, "email", "invalid").unwrap();
    q.finish().unwrap();

    // Second run crashes half-way: the finished list is untouched, no temp file remains.
    let mut q = QuarantineWriter::create(&cfg, "c.csv").unwrap();
    q.add(2, "email", "invalid").unwrap();
    drop(q);
    assert!(
        !cfg.quarantine_dir()
            .join("c.csv.quarantine.csv.tmp")
            .exists()
    );
    assert_eq!(
        fs::read_to_string(&final_path).unwrap(),
        "line;field;reason\n2;email;invalid\n"
    );

    // Third run processes the file again from the start.
    let mut q = QuarantineWriter::create(&cfg, "c.csv").unwrap();
    q.add(2, "email", "invalid").unwrap();
    q.finish().unwrap();
    assert_eq!(
        fs::read_to_string(&final_path).unwrap(),
        "line;field;reason\n2;email;invalid\n"
    );
}

#[test]
fn quarantine_with_nothing_recorded_writes_nothing() {
    let (_dir, cfg) = setup();
    let q = QuarantineWriter::create(&cfg, "clean.csv").unwrap();
    assert_eq!(q.finish().unwrap(), None);
    assert_eq!(fs::read_dir(cfg.quarantine_dir()).unwrap().count(), 0);

    let q = QuarantineWriter::create(&cfg, "x.csv").unwrap();
    q.abandon();
    assert_eq!(fs::read_dir(cfg.quarantine_dir()).unwrap().count(), 0);

    assert!(QuarantineWriter::create(&cfg, "../x.csv").is_err());
}

// ---------- whole cycle ----------

#[test]
fn full_cycle_claim_read_quarantine_archive() {
    let (_dir, mut cfg) = setup();
    cfg.encoding = Encoding::Windows1251;
    cfg.done_marker = Some(".done".into());
    let (bytes, _, _) = encoding_rs::WINDOWS_1251.encode("id;name\n1;Анна\n2\n3;Олег\n");
    write(&cfg.inbox.join("in.csv"), &bytes);
    write(&cfg.inbox.join("in.csv.done"), b"");

    let mut tracker = SettleTracker::new();
    let ready = tracker.scan_ready(&cfg, Instant::now()).unwrap();
    let claimed = claim(&ready[0], &cfg).unwrap();
    let reader = CsvReader::open(&claimed.path, &cfg).unwrap();
    let mut q = QuarantineWriter::create(&cfg, &claimed.original_name).unwrap();
    let mut good = 0;
    for row in reader {
        match row {
            Ok(_) => good += 1,
            Err(e) => q.add_row_error(&e).unwrap(),
        }
    }
    assert_eq!(good, 2);
    assert!(q.finish().unwrap().is_some());
    let archived = finish(&claimed, &cfg, Outcome::Archived).unwrap();
    assert_eq!(fs::read(archived).unwrap(), bytes.as_ref());
    assert!(
        fs::read_dir(&cfg.inbox)
            .unwrap()
            .all(|e| e.unwrap().file_type().unwrap().is_dir())
    );
}

#[test]
fn read_file_returns_headers_and_rows() {
    let (_dir, cfg) = setup();
    let path = cfg.inbox.join("r.csv");
    write(&path, "id;имя\n1;Анна\n2\n".as_bytes());
    let file = read_file(&path, &cfg).unwrap();
    assert_eq!(file.file, "r.csv");
    assert_eq!(file.headers, ["id", "имя"]);
    assert_eq!(file.rows.len(), 2);
    assert_eq!(file.rows[0].as_ref().unwrap().cells, ["1", "Анна"]);
    let e = file.rows[1].as_ref().unwrap_err();
    assert_eq!(
        e.reason(),
        "last row has 1 of 2 cells; the file looks truncated"
    );

    let err = read_file(&cfg.inbox.join("gone.csv"), &cfg).unwrap_err();
    assert!(err.is_not_found());
    assert!(
        !FileDropError::NotUtf8 {
            file: "x".into(),
            line: 1
        }
        .is_not_found()
    );
}
