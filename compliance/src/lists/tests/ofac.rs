use super::{Calls, TempDir, entry, names};
use crate::entry::{EntityKind, IdKind, NameStrength, PartialDate};
use crate::lists::ofac::{self, OfacFiles, split_surname};
use std::path::Path;

use crate::lists::{ListError, Progress};

const SDN: &[u8] = b"36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"a.k.a. 'AEROCARIBE'.\"\r
100,\"IVANOV, Ivan Petrovich\",\"individual\",\"UKRAINE-EO13661] [RUSSIA-EO14024\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 01 Jan 1960; alt. DOB circa 1962; nationality Russia; Passport 4510123456 (Russia); Tax ID No. 500100732259 (Russia); Gender Male.\"\r
200,\"SEA STAR\",\"vessel\",\"IRAN\",-0- ,\"9BXY\",\"Crude Oil Tanker\",\"150,000\",\"80,000\",\"Panama\",\"NIOC\",-0- \r
300,\"ACME TRADING LLC\",-0- ,\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"Registration Number 1027700132195 (Russia); Tax ID No. 7707083\"\r
301,\"SHORT ROW\",-0- ,\"SDGT\"\r
X7,\"BAD ID\",-0- ,\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r
36,\"DUPLICATE\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r
400,-0- ,\"individual\",\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r
500,\"M\xdcLLER, J\xfcrgen\",\"individual\",\"SDGT\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,\"DOB 1965 to 1967.\"\r
\x1a";

const ALT: &str = "36,12,\"aka\",\"AERO-CARIBBEAN\",-0- \r
100,50,\"aka\",\"IVANOV, Ivan\",-0- \r
100,51,\"fka\",\"IVANOFF, Ivan\",\"weak aka\"\r
100,52,\"nka\",\"\",-0- \r
777,53,\"aka\",\"ORPHAN\",-0- \r
300,54,\"aka\",\"ACME\",-0- \r
";

const ADD: &str = "36,25,-0- ,\"Havana\",\"Cuba\",-0- \r
100,26,\"Tverskaya 1\",\"Moscow\",\"Russia\",-0- \r
888,27,-0- ,-0- ,\"Spain\",-0- \r
";

// The remarks of 300 are cut mid-number; the comment continues them without a separator.
const COMMENTS: &str = "300,\"893 (Russia); a.k.a. 'ACME'.\"\r
999,\"orphan continuation\"\r
\x1a";

fn write_set(dir: &TempDir) -> &Path {
    dir.write("sdn.csv", SDN);
    dir.write("alt.csv", ALT);
    dir.write("add.csv", ADD);
    dir.write("sdn_comments.csv", COMMENTS);
    dir.path()
}

#[test]
fn loads_the_legacy_set_and_reports_bad_rows() {
    let dir = TempDir::new();
    let files = write_set(&dir);
    let mut calls = Calls::default();
    let loaded = ofac::load_detailed(files, &mut calls.callback()).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(s.list, "ofac-sdn");
    assert_eq!(s.published, None);
    assert_eq!(s.version.len(), 16);
    let ids: Vec<&str> = s.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["36", "100", "200", "300", "500"]);

    let org = entry(&s.entries, "36");
    assert_eq!(org.kind, EntityKind::Organization);
    assert_eq!(
        names(org),
        [
            ("AEROCARIBBEAN AIRLINES", NameStrength::Primary),
            ("AEROCARIBE", NameStrength::Weak),
            ("AERO-CARIBBEAN", NameStrength::Alias),
        ]
    );
    assert_eq!(org.programs, ["CUBA"]);

    let person = entry(&s.entries, "100");
    assert_eq!(person.kind, EntityKind::Person);
    assert_eq!(
        names(person),
        [
            ("IVANOV, Ivan Petrovich", NameStrength::Primary),
            ("IVANOV, Ivan", NameStrength::Alias),
            ("IVANOFF, Ivan", NameStrength::Weak),
        ]
    );
    assert_eq!(person.programs, ["UKRAINE-EO13661", "RUSSIA-EO14024"]);
    assert_eq!(
        person.birth_dates,
        [
            PartialDate {
                year: 1960,
                month: Some(1),
                day: Some(1)
            },
            PartialDate {
                year: 1962,
                month: None,
                day: None
            },
        ]
    );
    assert_eq!(person.nationalities, ["ru"]);
    let ids: Vec<(IdKind, &str)> = person
        .identifiers
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (IdKind::Passport, "4510123456"),
            (IdKind::Inn, "500100732259")
        ]
    );

    let vessel = entry(&s.entries, "200");
    assert_eq!(vessel.kind, EntityKind::Vessel);
    assert_eq!(vessel.nationalities, ["pa"], "the flag state");

    // The continuation completed the cut INN and added an alias, which alt.csv also gives
    // as a good alias: the stronger one wins.
    let acme = entry(&s.entries, "300");
    let ids: Vec<(IdKind, &str)> = acme
        .identifiers
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert_eq!(
        ids,
        [(IdKind::Ogrn, "1027700132195"), (IdKind::Inn, "7707083893")]
    );
    assert_eq!(
        names(acme),
        [
            ("ACME TRADING LLC", NameStrength::Primary),
            ("ACME", NameStrength::Alias)
        ]
    );

    // A Latin-1 line is read, not lost.
    let latin = entry(&s.entries, "500");
    assert_eq!(latin.names[0].full, "MÜLLER, Jürgen");
    assert_eq!(latin.birth_dates.len(), 3);
    assert!(
        loaded
            .notes
            .iter()
            .any(|n| n.location == "sdn.csv" && n.reason.contains("latin-1"))
    );

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
            (
                Some("301"),
                "sdn.csv line 5",
                "expected 12 fields, got 4; entry skipped"
            ),
            (
                None,
                "sdn.csv line 6",
                "ent_num is not a number; row skipped"
            ),
            (
                Some("36"),
                "sdn.csv line 7",
                "duplicate ent_num; the first entry is kept"
            ),
            (
                Some("400"),
                "sdn.csv line 8",
                "SDN_Name is empty; entry skipped"
            ),
            (
                Some("999"),
                "sdn_comments.csv line 2",
                "remarks continuation for an ent_num not in the sdn file; row skipped"
            ),
            (
                Some("100"),
                "alt.csv line 4",
                "alt_name is empty; alias skipped"
            ),
            (
                Some("777"),
                "alt.csv line 5",
                "alias for an ent_num not in the sdn file; row skipped"
            ),
            (
                Some("888"),
                "add.csv line 3",
                "address for an ent_num not in the sdn file; row skipped"
            ),
        ]
    );

    assert_eq!(loaded.addresses.len(), 2);
    assert_eq!(loaded.addresses[1].entry_id, "100");
    assert_eq!(loaded.addresses[1].country.as_deref(), Some("ru"));
    assert_eq!(loaded.addresses[0].street, None);

    let last = calls.0.last().copied().unwrap();
    assert_eq!(
        last.entries_done, 9,
        "every sdn row is counted, loaded or not"
    );
    assert_eq!(last.bytes_done, last.bytes_total);
    let total = (SDN.len() + ALT.len() + ADD.len() + COMMENTS.len()) as u64;
    assert_eq!(last.bytes_total, total);
}

#[test]
fn version_follows_the_bytes_of_every_file() {
    let dir = TempDir::new();
    let files = write_set(&dir);
    let mut noop = |_: Progress| {};
    let first = ofac::load(files, &mut noop).unwrap();
    let again = ofac::load(files, &mut noop).unwrap();
    assert_eq!(first.version, again.version);
    assert_eq!(first, again, "loading is deterministic");
    dir.write("alt.csv", ALT.replace("AERO-CARIBBEAN", "AERO-CARIBEAN"));
    let changed = ofac::load(files, &mut noop).unwrap();
    assert_ne!(first.version, changed.version);
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = TempDir::new();
    dir.write("sdn.csv", SDN);
    let mut noop = |_: Progress| {};
    let err = ofac::load(dir.path(), &mut noop).unwrap_err();
    assert!(matches!(err, ListError::Io { .. }));
    assert!(err.to_string().contains("add.csv"), "{err}");

    // Side files may be left out on purpose.
    let only_sdn = OfacFiles {
        sdn: dir.path().join("sdn.csv"),
        add: None,
        alt: None,
        comments: None,
    };
    let s = ofac::load(&only_sdn, &mut noop).unwrap();
    assert_eq!(s.entries.len(), 5);
}

#[test]
fn surname_split() {
    assert_eq!(
        split_surname("CRUZ, Juan M. de la"),
        Some(("CRUZ", "Juan M. de la"))
    );
    assert_eq!(
        split_surname("AL-ZAWAHIRI, Ayman"),
        Some(("AL-ZAWAHIRI", "Ayman"))
    );
    assert_eq!(split_surname("BANCO NACIONAL DE CUBA"), None);
    assert_eq!(split_surname(", x"), None);
}
