//! A sample in the shape of the EU Financial Sanctions Files XML (schema 1.1): attributes and
//! elements as the published file uses them; the people and companies are invented.

use super::{TempDir, entry, names};
use crate::entry::{EntityKind, IdKind, NameStrength, PartialDate};
use crate::lists::{ListError, Progress, eu};

const EU: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<export xmlns="http://eu.europa.ec/fpi/fsd/export" generationDate="2025-03-14T18:05:12.345+01:00" globalFileId="151234">
  <sanctionEntity designationDetails="" unitedNationId="" euReferenceNumber="EU.9001.12" logicalId="90001">
    <remark>Invented person for a loader test.</remark>
    <regulation regulationType="amendment" organisationType="council" publicationDate="2022-03-09" entryIntoForceDate="2022-03-09" numberTitle="2022/396 (OJ L80)" programme="RUS" logicalId="7001">
      <publicationUrl>https://eur-lex.europa.eu/legal-content/EN/TXT/PDF/?uri=CELEX:32022R0396</publicationUrl>
    </regulation>
    <subjectType code="person" classificationCode="P"/>
    <nameAlias firstName="Петр" middleName="Сергеевич" lastName="Смирнов" wholeName="Петр Сергеевич Смирнов" function="" gender="M" title="" nameLanguage="RU" strong="true" regulationLanguage="en" logicalId="8001"/>
    <nameAlias firstName="Petr" middleName="Sergeevich" lastName="SMIRNOV" wholeName="Petr Sergeevich SMIRNOV" function="Businessman" gender="M" title="" nameLanguage="" strong="true" regulationLanguage="en" logicalId="8002"/>
    <nameAlias firstName="Pyotr" middleName="" lastName="Smirnoff" wholeName="" function="" gender="M" title="" nameLanguage="" strong="true" regulationLanguage="en" logicalId="8003"/>
    <nameAlias firstName="" middleName="" lastName="" wholeName="Petya" function="" gender="" title="" nameLanguage="" strong="false" regulationLanguage="en" logicalId="8004"/>
    <citizenship region="" countryIso2Code="RU" countryDescription="RUSSIAN FEDERATION" regulationLanguage="en" logicalId="8101"/>
    <citizenship region="" countryIso2Code="00" countryDescription="UNKNOWN" regulationLanguage="en" logicalId="8102"/>
    <birthdate circa="false" calendarType="GREGORIAN" city="Leningrad" zipCode="" birthdate="1965-10-07" dayOfMonth="7" monthOfYear="10" year="1965" region="" place="" countryIso2Code="RU" countryDescription="RUSSIAN FEDERATION" regulationLanguage="en" logicalId="8201"/>
    <birthdate circa="true" calendarType="GREGORIAN" city="" zipCode="" year="1966" region="" place="" countryIso2Code="00" regulationLanguage="en" logicalId="8202"/>
    <birthdate circa="false" calendarType="GREGORIAN" yearRangeFrom="1963" yearRangeTo="1964" countryIso2Code="00" regulationLanguage="en" logicalId="8203"/>
    <identification diplomatic="false" knownExpired="false" knownFalse="false" reportedLost="false" revokedByIssuer="false" issuedBy="" issuedDate="" validFrom="" validTo="" latinNumber="" nameOnDocument="" number="72 1234567" region="" countryIso2Code="RU" countryDescription="RUSSIAN FEDERATION" identificationTypeCode="passport" identificationTypeDescription="National passport" regulationLanguage="en" logicalId="8301"/>
    <identification number="780123456789" countryIso2Code="RU" identificationTypeCode="fiscalcode" identificationTypeDescription="Fiscal code" regulationLanguage="en" logicalId="8302"/>
    <address city="Saint Petersburg" street="Nevsky prospekt 1" poBox="" zipCode="191186" region="" place="" asAtListingTime="false" countryIso2Code="RU" countryDescription="RUSSIAN FEDERATION" regulationLanguage="en" logicalId="8401"/>
  </sanctionEntity>
  <sanctionEntity designationDetails="" unitedNationId="" euReferenceNumber="EU.9002.55" logicalId="90002">
    <regulation programme="RUS" numberTitle="2022/396 (OJ L80)" logicalId="7001"/>
    <regulation programme="BLR" numberTitle="2022/398 (OJ L82)" logicalId="7002"/>
    <subjectType code="enterprise" classificationCode="E"/>
    <nameAlias wholeName="Joint Stock Company &quot;Severny Metall&quot;" nameLanguage="" strong="true" logicalId="8501"/>
    <nameAlias wholeName="АО «Северный металл»" nameLanguage="RU" strong="true" logicalId="8502"/>
    <identification number="1027800000084" countryIso2Code="RU" identificationTypeCode="regnumber" identificationTypeDescription="Registration Number" logicalId="8601"/>
    <identification number="" latinNumber="" identificationTypeCode="other" logicalId="8602"/>
  </sanctionEntity>
  <sanctionEntity euReferenceNumber="EU.9003.1">
    <subjectType code="person" classificationCode="P"/>
    <nameAlias wholeName="No Logical Id" strong="true"/>
  </sanctionEntity>
  <sanctionEntity euReferenceNumber="EU.9004.1" logicalId="90004">
    <subjectType code="person" classificationCode="P"/>
    <nameAlias wholeName="" firstName="" lastName="" strong="true"/>
  </sanctionEntity>
</export>
"#;

#[test]
fn loads_persons_and_enterprises() {
    let dir = TempDir::new();
    let path = dir.write("eu.xml", EU);
    let mut noop = |_: Progress| {};
    let loaded = eu::load_detailed(&path, &mut noop).unwrap();
    let s = &loaded.snapshot;
    assert_eq!(s.list, "eu");
    assert_eq!(
        s.published.as_deref(),
        Some("2025-03-14T18:05:12.345+01:00")
    );
    let ids: Vec<&str> = s.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["90001", "90002"]);

    let p = entry(&s.entries, "90001");
    assert_eq!(p.kind, EntityKind::Person);
    assert_eq!(
        names(p),
        [
            ("Petr Sergeevich SMIRNOV", NameStrength::Primary),
            ("Петр Сергеевич Смирнов", NameStrength::Alias),
            ("Pyotr Smirnoff", NameStrength::Alias),
            ("Petya", NameStrength::Weak),
        ]
    );
    let y = |year| PartialDate {
        year,
        month: None,
        day: None,
    };
    assert_eq!(
        p.birth_dates,
        [
            PartialDate {
                year: 1965,
                month: Some(10),
                day: Some(7)
            },
            y(1966),
            y(1963),
            y(1964)
        ]
    );
    assert_eq!(p.nationalities, ["ru"]);
    let ids: Vec<(IdKind, &str)> = p
        .identifiers
        .iter()
        .map(|i| (i.kind, i.value.as_str()))
        .collect();
    assert_eq!(
        ids,
        [
            (IdKind::Passport, "721234567"),
            (IdKind::Inn, "780123456789")
        ]
    );
    assert_eq!(p.programs, ["RUS"]);

    let org = entry(&s.entries, "90002");
    assert_eq!(org.kind, EntityKind::Organization);
    assert_eq!(org.names[0].full, "Joint Stock Company \"Severny Metall\"");
    assert_eq!(org.names[1].full, "АО «Северный металл»");
    assert_eq!(org.identifiers.len(), 1);
    assert_eq!(org.identifiers[0].kind, IdKind::Ogrn);
    assert_eq!(org.programs, ["RUS", "BLR"]);

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
                "missing logicalId (euReferenceNumber EU.9003.1); entry skipped"
            ),
            (Some("90004"), "no nameAlias with a name; entry skipped"),
        ]
    );
    assert!(
        s.problems[1]
            .location
            .starts_with("eu.xml: export/sanctionEntity at byte ")
    );
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
    assert_eq!(loaded.addresses.len(), 1);
}

#[test]
fn a_un_file_given_as_eu_is_refused() {
    let dir = TempDir::new();
    let path = dir.write("eu.xml", "<CONSOLIDATED_LIST/>");
    let mut noop = |_: Progress| {};
    let err = eu::load(&path, &mut noop).unwrap_err();
    assert!(matches!(err, ListError::Format { .. }));
    assert!(err.to_string().contains("expected export"), "{err}");
}
