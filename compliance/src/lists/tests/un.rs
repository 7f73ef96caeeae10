use super::{Calls, TempDir, entry, names};
use crate::entry::{EntityKind, IdKind, NameStrength, PartialDate};
use crate::lists::{ListError, PROGRESS_EVERY, Progress, un};

const UN: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<CONSOLIDATED_LIST xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" dateGenerated="2026-02-27T00:00:09.554Z">
  <INDIVIDUALS>
    <INDIVIDUAL>
      <DATAID>1001</DATAID>
      <FIRST_NAME>AHMED</FIRST_NAME>
      <SECOND_NAME>ALI</SECOND_NAME>
      <THIRD_NAME>HASSAN</THIRD_NAME>
      <UN_LIST_TYPE>Al-Qaida</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDi.901</REFERENCE_NUMBER>
      <NAME_ORIGINAL_SCRIPT>أحمد علي</NAME_ORIGINAL_SCRIPT>
      <NATIONALITY><VALUE>Iran (Islamic Republic of)</VALUE><VALUE>former Soviet Union</VALUE></NATIONALITY>
      <INDIVIDUAL_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>Ahmad Ali</ALIAS_NAME></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_ALIAS><QUALITY>Low</QUALITY><ALIAS_NAME>Abu &amp; Ali</ALIAS_NAME></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_ALIAS><QUALITY/><ALIAS_NAME/></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>EXACT</TYPE_OF_DATE><DATE>1970-05-17</DATE></INDIVIDUAL_DATE_OF_BIRTH>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>APPROXIMATELY</TYPE_OF_DATE><YEAR>1968</YEAR></INDIVIDUAL_DATE_OF_BIRTH>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>BETWEEN</TYPE_OF_DATE><FROM_YEAR>1972</FROM_YEAR><TO_YEAR>1973</TO_YEAR></INDIVIDUAL_DATE_OF_BIRTH>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE/></INDIVIDUAL_DATE_OF_BIRTH>
      <INDIVIDUAL_DOCUMENT><TYPE_OF_DOCUMENT>Passport</TYPE_OF_DOCUMENT><NUMBER>K-123 456</NUMBER><ISSUING_COUNTRY>Pakistan</ISSUING_COUNTRY></INDIVIDUAL_DOCUMENT>
      <INDIVIDUAL_DOCUMENT><TYPE_OF_DOCUMENT>National Identification Number</TYPE_OF_DOCUMENT><NUMBER>77&#50;1</NUMBER></INDIVIDUAL_DOCUMENT>
      <INDIVIDUAL_DOCUMENT/>
      <INDIVIDUAL_ADDRESS><CITY>Quetta</CITY><COUNTRY>Pakistan</COUNTRY></INDIVIDUAL_ADDRESS>
    </INDIVIDUAL>
    <INDIVIDUAL>
      <DATAID>1002</DATAID>
      <FIRST_NAME>NO</FIRST_NAME>
      <SECOND_NAME>REFERENCE</SECOND_NAME>
      <REFERENCE_NUMBER/>
    </INDIVIDUAL>
    <INDIVIDUAL>
      <DATAID>1003</DATAID>
      <REFERENCE_NUMBER>QDi.903</REFERENCE_NUMBER>
      <FIRST_NAME> </FIRST_NAME>
    </INDIVIDUAL>
    <INDIVIDUAL>
      <DATAID>1004</DATAID>
      <FIRST_NAME>Ivan</FIRST_NAME>
      <SECOND_NAME>Ivanov</SECOND_NAME>
      <REFERENCE_NUMBER>QDi.904</REFERENCE_NUMBER>
      <NATIONALITY><VALUE>Russian Federation</VALUE></NATIONALITY>
      <INDIVIDUAL_ALIAS><QUALITY>a.k.a.</QUALITY><ALIAS_NAME>Ivan Ivanoff</ALIAS_NAME><DATE_OF_BIRTH>1958-02-22</DATE_OF_BIRTH></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_DATE_OF_BIRTH><TYPE_OF_DATE>BETWEEN</TYPE_OF_DATE><FROM_YEAR>1990</FROM_YEAR><TO_YEAR>1950</TO_YEAR></INDIVIDUAL_DATE_OF_BIRTH>
    </INDIVIDUAL>
    <INDIVIDUAL>
      <DATAID>1005</DATAID>
      <FIRST_NAME>REPEATED</FIRST_NAME>
      <REFERENCE_NUMBER>QDi.901</REFERENCE_NUMBER>
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES>
    <ENTITY>
      <DATAID>2001</DATAID>
      <FIRST_NAME>GLOBAL RELIEF &lt;GRF&gt;</FIRST_NAME>
      <UN_LIST_TYPE>Al-Qaida</UN_LIST_TYPE>
      <REFERENCE_NUMBER>QDe.901</REFERENCE_NUMBER>
      <ENTITY_ALIAS><QUALITY>f.k.a.</QUALITY><ALIAS_NAME>GRF</ALIAS_NAME></ENTITY_ALIAS>
      <ENTITY_ADDRESS><COUNTRY/></ENTITY_ADDRESS>
    </ENTITY>
  </ENTITIES>
</CONSOLIDATED_LIST>
"#;

#[test]
fn loads_individuals_and_entities() {
    let dir = TempDir::new();
    let path = dir.write("consolidated.xml", UN);
    let mut calls = Calls::default();
    let loaded = un::load_detailed(&path, &mut calls.callback()).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(s.list, "un");
    assert_eq!(s.published.as_deref(), Some("2026-02-27T00:00:09.554Z"));
    let ids: Vec<&str> = s.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["QDi.901", "QDi.904", "QDe.901"]);

    let a = entry(&s.entries, "QDi.901");
    assert_eq!(a.kind, EntityKind::Person);
    assert_eq!(
        names(a),
        [
            ("AHMED ALI HASSAN", NameStrength::Primary),
            ("أحمد علي", NameStrength::Alias),
            ("Ahmad Ali", NameStrength::Alias),
            ("Abu & Ali", NameStrength::Weak),
        ]
    );
    assert_eq!(a.programs, ["Al-Qaida"]);
    let y = |year| PartialDate {
        year,
        month: None,
        day: None,
    };
    assert_eq!(
        a.birth_dates,
        [
            PartialDate {
                year: 1970,
                month: Some(5),
                day: Some(17)
            },
            y(1968),
            y(1972),
            y(1973)
        ]
    );
    assert_eq!(a.nationalities, ["ir"]);
    let docs: Vec<(IdKind, &str, Option<&str>)> = a
        .identifiers
        .iter()
        .map(|i| (i.kind, i.value.as_str(), i.country.as_deref()))
        .collect();
    assert_eq!(
        docs,
        [
            (IdKind::Passport, "K123456", Some("pk")),
            (IdKind::NationalId, "7721", None)
        ]
    );

    let b = entry(&s.entries, "QDi.904");
    assert_eq!(
        b.birth_dates,
        [PartialDate {
            year: 1958,
            month: Some(2),
            day: Some(22)
        }]
    );
    assert_eq!(b.nationalities, ["ru"]);

    let e = entry(&s.entries, "QDe.901");
    assert_eq!(e.kind, EntityKind::Organization);
    assert_eq!(
        names(e),
        [
            ("GLOBAL RELIEF <GRF>", NameStrength::Primary),
            ("GRF", NameStrength::Alias)
        ]
    );

    let problems: Vec<(Option<&str>, &str)> = s
        .problems
        .iter()
        .map(|p| (p.entry_id.as_deref(), p.reason.as_str()))
        .collect();
    assert_eq!(
        problems,
        [
            (
                None,
                "missing REFERENCE_NUMBER (DATAID 1002); entry skipped"
            ),
            (
                Some("QDi.903"),
                "no name (FIRST_NAME..FOURTH_NAME empty); entry skipped"
            ),
            (
                Some("QDi.901"),
                "duplicate REFERENCE_NUMBER; the first entry is kept"
            ),
        ]
    );
    assert!(
        s.problems[0]
            .location
            .starts_with("consolidated.xml: CONSOLIDATED_LIST/INDIVIDUALS/INDIVIDUAL at byte ")
    );
    let notes: Vec<(Option<&str>, &str)> = loaded
        .notes
        .iter()
        .map(|p| (p.entry_id.as_deref(), p.reason.as_str()))
        .collect();
    assert_eq!(
        notes,
        [
            (
                Some("QDi.901"),
                "nationality \"former Soviet Union\" not recognised; ignored"
            ),
            (
                Some("QDi.904"),
                "INDIVIDUAL_DATE_OF_BIRTH range is reversed or longer than 30 years; ignored"
            ),
        ]
    );
    assert_eq!(loaded.addresses.len(), 1);
    assert_eq!(loaded.addresses[0].country.as_deref(), Some("pk"));
    let last = calls.0.last().copied().unwrap();
    assert_eq!(
        (last.entries_done, last.bytes_done, last.bytes_total),
        (6, UN.len() as u64, UN.len() as u64)
    );
}

#[test]
fn broken_or_foreign_documents_are_errors_naming_the_file() {
    let dir = TempDir::new();
    let mut noop = |_: Progress| {};
    let cut = &UN[..UN.find("<ENTITIES>").unwrap()];
    let path = dir.write("cut.xml", cut);
    let err = un::load(&path, &mut noop).unwrap_err();
    assert!(matches!(err, ListError::Xml { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("{}: not well-formed xml", path.display())),
        "{err}"
    );

    let path = dir.write(
        "mismatch.xml",
        "<CONSOLIDATED_LIST><INDIVIDUALS></ENTITIES></CONSOLIDATED_LIST>",
    );
    assert!(matches!(
        un::load(&path, &mut noop),
        Err(ListError::Xml { .. })
    ));

    let path = dir.write("other.xml", "<export><sanctionEntity/></export>");
    let err = un::load(&path, &mut noop).unwrap_err();
    assert!(
        err.to_string()
            .contains("root element: is export, expected CONSOLIDATED_LIST"),
        "{err}"
    );

    let path = dir.write("empty.xml", "");
    assert!(matches!(
        un::load(&path, &mut noop),
        Err(ListError::Format { .. })
    ));

    let err = un::load(&dir.path().join("absent.xml"), &mut noop).unwrap_err();
    assert!(err.to_string().starts_with("cannot read ") && err.to_string().contains("absent.xml"));
}

#[test]
fn progress_is_reported_every_thousand_entries_and_at_the_end() {
    let mut xml = String::from("<CONSOLIDATED_LIST><ENTITIES>");
    for i in 0..2_500 {
        xml.push_str(&format!(
            "<ENTITY><FIRST_NAME>E{i}</FIRST_NAME><REFERENCE_NUMBER>E.{i}</REFERENCE_NUMBER></ENTITY>"
        ));
    }
    xml.push_str("</ENTITIES></CONSOLIDATED_LIST>");
    let dir = TempDir::new();
    let path = dir.write("big.xml", &xml);
    let mut calls = Calls::default();
    let s = un::load(&path, &mut calls.callback()).unwrap();
    assert_eq!(s.entries.len(), 2_500);
    let done: Vec<u64> = calls.0.iter().map(|p| p.entries_done).collect();
    assert_eq!(done, [PROGRESS_EVERY, 2 * PROGRESS_EVERY, 2_500]);
    assert!(
        calls
            .0
            .windows(2)
            .all(|w| w[0].bytes_done <= w[1].bytes_done)
    );
    assert!(calls.0[0].bytes_done > 0 && calls.0[0].bytes_done < xml.len() as u64);
}
