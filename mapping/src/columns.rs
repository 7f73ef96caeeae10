//! Config-driven mapping of a delimited-file row to a canonical [`Party`].
//!
//! Contract: [`PartyColumns`] names, per canonical field, the source column holding it.
//! [`PartyColumns::bind`] resolves those names against a header row once and reports every
//! problem at once; [`BoundColumns::map_row`] then maps each data row, returning the party or
//! every field error of that row (an invalid optional field is an error too, so bad data is
//! quarantined rather than dropped). Cells are trimmed; an empty cell is absent.
//! [`BoundColumns::map_row_lenient`] runs the same checks but keeps a row's party with its
//! invalid values as text, for the data-quality report over raw rows.

use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};

use crate::model::{Address, Party, PartyKind};
use crate::validate::{self, FieldError};

/// Source column names for each canonical party field. Column names match header cells
/// exactly (case-sensitive) after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyColumns {
    /// Column with the party's id at the source (required; becomes the entity key).
    pub key: String,
    /// Column with the change version: an integer sequence, or a timestamp
    /// `YYYY-MM-DD HH:MM:SS` (taken as UTC) or RFC 3339, turned into epoch milliseconds.
    #[serde(default)]
    pub version: Option<String>,
    /// Column with the party kind: `person`/`ФЛ`/`P` or `organisation`/`ЮЛ`/`O` (any case);
    /// without it, or when empty, the party is a person.
    #[serde(default)]
    pub kind: Option<String>,
    /// Column with the surname.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Column with the given name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Column with the patronymic.
    #[serde(default)]
    pub middle_name: Option<String>,
    /// Column with the organisation name.
    #[serde(default)]
    pub full_name: Option<String>,
    /// Column with the taxpayer number.
    #[serde(default)]
    pub inn: Option<String>,
    /// Column with the pension insurance number.
    #[serde(default)]
    pub snils: Option<String>,
    /// Column with the state registration number (13 or 15 digits).
    #[serde(default)]
    pub ogrn: Option<String>,
    /// Column with the passport series and number.
    #[serde(default)]
    pub passport: Option<String>,
    /// Column with the birth date (`YYYY-MM-DD` or `DD.MM.YYYY`).
    #[serde(default)]
    pub birth_date: Option<String>,
    /// Column with phone numbers, several separated by `,`.
    #[serde(default)]
    pub phone: Option<String>,
    /// Column with e-mail addresses, several separated by `,`.
    #[serde(default)]
    pub email: Option<String>,
    /// Column with the address as one line of text.
    #[serde(default)]
    pub address: Option<String>,
    /// Column with the postal code of that address.
    #[serde(default)]
    pub postal_code: Option<String>,
    /// Column with the customer segment.
    #[serde(default)]
    pub segment: Option<String>,
    /// Column with the customer status.
    #[serde(default)]
    pub status: Option<String>,
    /// Canonical field names (as above, for example `inn`) that every row must have. When
    /// empty: `last_name` and `first_name` for persons, `full_name` for organisations. The
    /// key is always required.
    #[serde(default)]
    pub required: Vec<String>,
}

/// A problem with the configured columns against a header row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A configured column is not in the header.
    #[error("column `{column}` for field {field} not found in header")]
    MissingColumn {
        /// Canonical field name.
        field: String,
        /// Configured column name.
        column: String,
    },
    /// A configured column appears more than once in the header.
    #[error("column `{column}` for field {field} appears more than once in header")]
    DuplicateColumn {
        /// Canonical field name.
        field: String,
        /// Configured column name.
        column: String,
    },
    /// A configured column name is empty.
    #[error("column name for field {field} is empty")]
    EmptyColumnName {
        /// Canonical field name.
        field: String,
    },
    /// `required` names something that is not a canonical party field.
    #[error("required field `{field}` is not a party field")]
    UnknownRequiredField {
        /// The name as configured.
        field: String,
    },
    /// `required` names a field that has no configured column.
    #[error("required field {field} has no configured column")]
    RequiredFieldNotMapped {
        /// Canonical field name.
        field: String,
    },
}

/// The canonical fields a column can be configured for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Key,
    Version,
    Kind,
    LastName,
    FirstName,
    MiddleName,
    FullName,
    Inn,
    Snils,
    Ogrn,
    Passport,
    BirthDate,
    Phone,
    Email,
    Address,
    PostalCode,
    Segment,
    Status,
}

const FIELD_COUNT: usize = 18;

impl Field {
    const ALL: [Field; FIELD_COUNT] = [
        Field::Key,
        Field::Version,
        Field::Kind,
        Field::LastName,
        Field::FirstName,
        Field::MiddleName,
        Field::FullName,
        Field::Inn,
        Field::Snils,
        Field::Ogrn,
        Field::Passport,
        Field::BirthDate,
        Field::Phone,
        Field::Email,
        Field::Address,
        Field::PostalCode,
        Field::Segment,
        Field::Status,
    ];

    fn name(self) -> &'static str {
        match self {
            Field::Key => "key",
            Field::Version => "version",
            Field::Kind => "kind",
            Field::LastName => "last_name",
            Field::FirstName => "first_name",
            Field::MiddleName => "middle_name",
            Field::FullName => "full_name",
            Field::Inn => "inn",
            Field::Snils => "snils",
            Field::Ogrn => "ogrn",
            Field::Passport => "passport",
            Field::BirthDate => "birth_date",
            Field::Phone => "phone",
            Field::Email => "email",
            Field::Address => "address",
            Field::PostalCode => "postal_code",
            Field::Segment => "segment",
            Field::Status => "status",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl PartyColumns {
    fn column(&self, f: Field) -> Option<&str> {
        let c = match f {
            Field::Key => return Some(&self.key),
            Field::Version => &self.version,
            Field::Kind => &self.kind,
            Field::LastName => &self.last_name,
            Field::FirstName => &self.first_name,
            Field::MiddleName => &self.middle_name,
            Field::FullName => &self.full_name,
            Field::Inn => &self.inn,
            Field::Snils => &self.snils,
            Field::Ogrn => &self.ogrn,
            Field::Passport => &self.passport,
            Field::BirthDate => &self.birth_date,
            Field::Phone => &self.phone,
            Field::Email => &self.email,
            Field::Address => &self.address,
            Field::PostalCode => &self.postal_code,
            Field::Segment => &self.segment,
            Field::Status => &self.status,
        };
        c.as_deref()
    }

    /// Resolves every configured column against `headers` (cells trimmed, a byte-order mark
    /// stripped from the first). Reports all missing, duplicated or empty column names and
    /// bad `required` entries at once.
    pub fn bind(&self, headers: &[String]) -> Result<BoundColumns, Vec<HeaderError>> {
        let names: Vec<&str> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = if i == 0 {
                    h.strip_prefix('\u{feff}').unwrap_or(h)
                } else {
                    h
                };
                h.trim()
            })
            .collect();
        let mut errors = Vec::new();
        let mut index = [None; FIELD_COUNT];
        for f in Field::ALL {
            let Some(column) = self.column(f) else {
                continue;
            };
            let column = column.trim();
            let field = f.name().to_string();
            if column.is_empty() {
                errors.push(HeaderError::EmptyColumnName { field });
                continue;
            }
            let mut hits = names.iter().enumerate().filter(|(_, n)| **n == column);
            match (hits.next(), hits.next()) {
                (Some((i, _)), None) => index[f as usize] = Some(i),
                (None, _) => errors.push(HeaderError::MissingColumn {
                    field,
                    column: column.to_string(),
                }),
                (Some(_), Some(_)) => errors.push(HeaderError::DuplicateColumn {
                    field,
                    column: column.to_string(),
                }),
            }
        }
        let mut required = Vec::new();
        for name in &self.required {
            match Field::from_name(name.trim()) {
                None => errors.push(HeaderError::UnknownRequiredField {
                    field: name.clone(),
                }),
                Some(f) if self.column(f).is_none() => {
                    errors.push(HeaderError::RequiredFieldNotMapped {
                        field: f.name().to_string(),
                    })
                }
                Some(f) => required.push(f),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(BoundColumns {
            width: headers.len(),
            index,
            required,
        })
    }
}

/// A party mapped from one row, with its entity key and optional version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedParty {
    /// The source id (also in `party.source_id`).
    pub key: String,
    /// The change version in the row, if configured and present.
    pub version: Option<i64>,
    /// The canonical party.
    pub party: Party,
}

/// A row mapped by [`BoundColumns::map_row_lenient`]: the party with the row's invalid
/// values kept as text, and every field error [`BoundColumns::map_row`] would report. Not a
/// canonical party when `errors` is not empty: for measuring, never for publishing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LenientParty {
    /// The party as far as the row could be read.
    pub mapped: MappedParty,
    /// Every field error of the row; empty when `map_row` would accept it.
    pub errors: Vec<FieldError>,
}

/// Columns resolved against one header row; maps that file's data rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundColumns {
    width: usize,
    index: [Option<usize>; FIELD_COUNT],
    /// Explicitly required fields; empty means the defaults by kind.
    required: Vec<Field>,
}

/// Collapses runs of whitespace into one space.
fn text(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses a change version: a non-negative integer, `YYYY-MM-DD HH:MM:SS[.fff]` as UTC, or
/// RFC 3339; timestamps become epoch milliseconds.
fn parse_version(v: &str) -> Result<i64, FieldError> {
    const F: &str = "version";
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v
            .parse::<i64>()
            .map_err(|_| FieldError::new(F, "integer out of range"));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f") {
        return Ok(t.and_utc().timestamp_millis());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_millis());
    }
    Err(FieldError::new(
        F,
        "expected a non-negative integer or a timestamp (yyyy-mm-dd hh:mm:ss or rfc 3339)",
    ))
}

fn parse_kind(v: &str) -> Result<PartyKind, FieldError> {
    match v.to_lowercase().as_str() {
        "person" | "фл" | "p" => Ok(PartyKind::Person),
        "organisation" | "organization" | "юл" | "o" => Ok(PartyKind::Organisation),
        _ => Err(FieldError::new(
            "kind",
            "unknown party kind, expected person (фл, p) or organisation (юл, o)",
        )),
    }
}

/// Validates each `,`-separated entry of a cell, numbering entries in errors when several.
/// An invalid entry is reported and kept as written (see [`BoundColumns::map_row_lenient`]).
fn list(
    cell: &str,
    check: fn(&str) -> Result<String, FieldError>,
    errors: &mut Vec<FieldError>,
) -> Vec<String> {
    let entries: Vec<&str> = cell
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        match check(e) {
            Ok(v) if !out.contains(&v) => out.push(v),
            Ok(_) => {}
            Err(mut err) => {
                if entries.len() > 1 {
                    err.reason = format!("entry {} of {}: {}", i + 1, entries.len(), err.reason);
                }
                errors.push(err);
                if !out.iter().any(|o| o == e) {
                    out.push((*e).to_string());
                }
            }
        }
    }
    out
}

impl BoundColumns {
    fn cell<'a>(&self, row: &'a [String], f: Field) -> Option<&'a str> {
        self.index[f as usize]
            .and_then(|i| row.get(i))
            .map(|c| c.trim())
            .filter(|c| !c.is_empty())
    }

    /// Maps one data row to a party. Returns every field error of the row at once; a row
    /// whose cell count differs from the header is rejected as a whole (field `row`).
    pub fn map_row(
        &self,
        row: &[String],
        today: NaiveDate,
    ) -> Result<MappedParty, Vec<FieldError>> {
        let lenient = self.map_row_lenient(row, today)?;
        if lenient.errors.is_empty() {
            Ok(lenient.mapped)
        } else {
            Err(lenient.errors)
        }
    }

    /// Maps one data row for measuring the raw data (the data-quality report): the same
    /// checks as [`BoundColumns::map_row`], but a row with field errors still yields its
    /// party. A value that fails its validator (INN, SNILS, OGRN, passport, postal code,
    /// a phone or e-mail entry) stays in the party as its trimmed source text, so a report
    /// can count it as present and invalid; a version, kind or birth date that cannot be
    /// read is left out (the kind is then a person); a missing key is an empty key. Only a
    /// row whose cell count differs from the header has no party (the `Err`), since its
    /// cells cannot be told apart.
    pub fn map_row_lenient(
        &self,
        row: &[String],
        today: NaiveDate,
    ) -> Result<LenientParty, Vec<FieldError>> {
        if row.len() != self.width {
            return Err(vec![FieldError::new(
                "row",
                format!("expected {} cells, got {}", self.width, row.len()),
            )]);
        }
        let mut errors = Vec::new();
        let cell = |f| self.cell(row, f);
        // An invalid value is reported and kept as written: `map_row` drops the whole party
        // on any error, the lenient caller wants to see the value.
        let mut check = |f: Field, v: &str, r: Result<String, FieldError>| match r {
            Ok(v) => Some(v),
            Err(e) => {
                errors.push(e.in_field(f.name()));
                Some(v.to_string())
            }
        };

        let key = cell(Field::Key).map(str::to_string);
        let inn = cell(Field::Inn).and_then(|v| check(Field::Inn, v, validate::inn(v)));
        let snils = cell(Field::Snils).and_then(|v| check(Field::Snils, v, validate::snils(v)));
        let ogrn = cell(Field::Ogrn).and_then(|v| check(Field::Ogrn, v, validate::ogrn(v)));
        let passport =
            cell(Field::Passport).and_then(|v| check(Field::Passport, v, validate::passport(v)));
        let postal_code = cell(Field::PostalCode)
            .and_then(|v| check(Field::PostalCode, v, validate::postal_code(v)));
        let version = cell(Field::Version).and_then(|v| match parse_version(v) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(e);
                None
            }
        });
        let mut kind_known = true;
        let kind = match cell(Field::Kind).map(parse_kind) {
            None => PartyKind::Person,
            Some(Ok(k)) => k,
            Some(Err(e)) => {
                errors.push(e);
                kind_known = false;
                PartyKind::Person
            }
        };
        let birth_date =
            cell(Field::BirthDate).and_then(|v| match validate::birth_date(v, today) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(e);
                    None
                }
            });
        let phones = cell(Field::Phone)
            .map(|v| list(v, validate::phone, &mut errors))
            .unwrap_or_default();
        let emails = cell(Field::Email)
            .map(|v| list(v, validate::email, &mut errors))
            .unwrap_or_default();
        let mut addresses = Vec::new();
        match cell(Field::Address) {
            Some(a) => addresses.push(Address {
                kind: "primary".to_string(),
                text: text(a),
                postal_code,
            }),
            None if cell(Field::PostalCode).is_some() => errors.push(FieldError::new(
                Field::PostalCode.name(),
                "given without an address",
            )),
            None => {}
        }

        let defaults: &[Field] = match (kind_known, kind) {
            (false, _) => &[],
            (true, PartyKind::Person) => &[Field::LastName, Field::FirstName],
            (true, PartyKind::Organisation) => &[Field::FullName],
        };
        let required = if self.required.is_empty() {
            defaults
        } else {
            &self.required
        };
        for &f in std::iter::once(&Field::Key).chain(required) {
            let present = match f {
                Field::Phone | Field::Email => {
                    cell(f).is_some_and(|c| c.split(',').any(|e| !e.trim().is_empty()))
                }
                _ => cell(f).is_some(),
            };
            if !present {
                let reason = if self.index[f as usize].is_none() {
                    "is required but no column is configured for it"
                } else {
                    "is required but empty"
                };
                let e = FieldError::new(f.name(), reason);
                if !errors.contains(&e) {
                    errors.push(e);
                }
            }
        }

        let key = key.unwrap_or_default();
        Ok(LenientParty {
            mapped: MappedParty {
                version,
                party: Party {
                    kind,
                    source_id: key.clone(),
                    last_name: cell(Field::LastName).map(text),
                    first_name: cell(Field::FirstName).map(text),
                    middle_name: cell(Field::MiddleName).map(text),
                    full_name: cell(Field::FullName).map(text),
                    inn,
                    snils,
                    ogrn,
                    passport,
                    birth_date,
                    phones,
                    emails,
                    addresses,
                    segment: cell(Field::Segment).map(text),
                    status: cell(Field::Status).map(text),
                },
                key,
            },
            errors,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()
    }

    const HEADER: &[&str] = &[
        "\u{feff}Код клиента",
        " Версия ",
        "Тип",
        "Фамилия",
        "Имя",
        "Отчество",
        "Наименование",
        "ИНН",
        "СНИЛС",
        "ОГРН",
        "Паспорт",
        "Дата рождения",
        "Телефон",
        "Email",
        "Адрес",
        "Индекс",
        "Сегмент",
        "Статус",
    ];

    fn config() -> PartyColumns {
        let c = |s: &str| Some(s.to_string());
        PartyColumns {
            key: "Код клиента".into(),
            version: c("Версия"),
            kind: c("Тип"),
            last_name: c("Фамилия"),
            first_name: c("Имя"),
            middle_name: c("Отчество"),
            full_name: c("Наименование"),
            inn: c("ИНН"),
            snils: c("СНИЛС"),
            ogrn: c("ОГРН"),
            passport: c("Паспорт"),
            birth_date: c("Дата рождения"),
            phone: c("Телефон"),
            email: c("Email"),
            address: c("Адрес"),
            postal_code: c("Индекс"),
            segment: c("Сегмент"),
            status: c("Статус"),
            required: Vec::new(),
        }
    }

    fn person_row() -> Vec<String> {
        strings(&[
            " 000123 ",
            "2024-05-01 12:30:00",
            "ФЛ",
            "Иванов",
            "Иван",
            "Иванович",
            "",
            "500100732259",
            "112-233-445 95",
            "",
            "45 10 123456",
            "14.03.1985",
            "8 (912) 345-67-89, +7 912 345 67 89, 4951234567",
            "Ivan.Ivanov@Mail.RU",
            "г. Москва,  ул. Тверская, д. 1",
            "125009",
            "VIP",
            "активен",
        ])
    }

    fn bound() -> BoundColumns {
        config().bind(&strings(HEADER)).unwrap()
    }

    fn reasons(errors: &[FieldError]) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn maps_a_person_with_cyrillic_headers() {
        let m = bound().map_row(&person_row(), today()).unwrap();
        assert_eq!(m.key, "000123");
        assert_eq!(m.version, Some(1_714_566_600_000));
        let p = m.party;
        assert_eq!(p.kind, PartyKind::Person);
        assert_eq!(p.source_id, "000123");
        assert_eq!(p.last_name.as_deref(), Some("Иванов"));
        assert_eq!(p.first_name.as_deref(), Some("Иван"));
        assert_eq!(p.middle_name.as_deref(), Some("Иванович"));
        assert_eq!(p.full_name, None);
        assert_eq!(p.inn.as_deref(), Some("500100732259"));
        assert_eq!(p.snils.as_deref(), Some("112-233-445 95"));
        assert_eq!(p.ogrn, None);
        assert_eq!(p.passport.as_deref(), Some("4510 123456"));
        assert_eq!(p.birth_date, NaiveDate::from_ymd_opt(1985, 3, 14));
        assert_eq!(p.phones, ["+79123456789", "+74951234567"]);
        assert_eq!(p.emails, ["ivan.ivanov@mail.ru"]);
        assert_eq!(
            p.addresses,
            [Address {
                kind: "primary".into(),
                text: "г. Москва, ул. Тверская, д. 1".into(),
                postal_code: Some("125009".into()),
            }]
        );
        assert_eq!(p.segment.as_deref(), Some("VIP"));
        assert_eq!(p.status.as_deref(), Some("активен"));
    }

    #[test]
    fn maps_an_organisation_with_minimal_config() {
        let cols = PartyColumns {
            key: "ID".into(),
            version: Some("SEQ".into()),
            kind: Some("Вид".into()),
            full_name: Some("Наименование".into()),
            inn: Some("ИНН".into()),
            ogrn: Some("ОГРН".into()),
            ..PartyColumns::default()
        };
        let b = cols
            .bind(&strings(&[
                "ID",
                "SEQ",
                "Вид",
                "Наименование",
                "ИНН",
                "ОГРН",
                "Лишняя",
            ]))
            .unwrap();
        let row = strings(&[
            "42",
            "17",
            "юл",
            "ПАО  Ромашка",
            "7707083893",
            "1027700132195",
            "x",
        ]);
        let m = b.map_row(&row, today()).unwrap();
        assert_eq!(m.version, Some(17));
        assert_eq!(m.party.kind, PartyKind::Organisation);
        assert_eq!(m.party.full_name.as_deref(), Some("ПАО Ромашка"));
        assert_eq!(m.party.ogrn.as_deref(), Some("1027700132195"));
        assert!(m.party.phones.is_empty() && m.party.addresses.is_empty());

        for (k, want) in [("O", PartyKind::Organisation), ("", PartyKind::Person)] {
            let mut r = row.clone();
            r[2] = k.into();
            let res = b.map_row(&r, today());
            if want == PartyKind::Person {
                // a person by default, and then last and first name are required
                assert_eq!(
                    reasons(&res.unwrap_err()),
                    [
                        "field last_name: is required but no column is configured for it",
                        "field first_name: is required but no column is configured for it",
                    ]
                );
            } else {
                assert_eq!(res.unwrap().party.kind, want);
            }
        }
    }

    #[test]
    fn kind_values() {
        for (v, k) in [
            ("person", PartyKind::Person),
            ("ФЛ", PartyKind::Person),
            ("p", PartyKind::Person),
            ("Organisation", PartyKind::Organisation),
            ("ЮЛ", PartyKind::Organisation),
            ("O", PartyKind::Organisation),
        ] {
            assert_eq!(parse_kind(v).unwrap(), k, "{v}");
        }
        assert_eq!(
            parse_kind("ИП").unwrap_err().to_string(),
            "field kind: unknown party kind, expected person (фл, p) or organisation (юл, o)"
        );
    }

    #[test]
    fn version_values() {
        assert_eq!(parse_version("0").unwrap(), 0);
        assert_eq!(parse_version("1970-01-01 00:00:01").unwrap(), 1000);
        assert_eq!(parse_version("1970-01-01 00:00:01.250").unwrap(), 1250);
        assert_eq!(parse_version("1970-01-01T03:00:01+03:00").unwrap(), 1000);
        assert_eq!(
            parse_version("2024-05-01T12:30:00Z").unwrap(),
            1_714_566_600_000
        );
        assert_eq!(
            parse_version("99999999999999999999").unwrap_err().reason,
            "integer out of range"
        );
        for bad in ["-5", "01.05.2024", "v7"] {
            assert_eq!(parse_version(bad).unwrap_err().field, "version", "{bad}");
        }
    }

    #[test]
    fn reports_every_invalid_field_at_once() {
        let mut row = person_row();
        row[1] = "вчера".into();
        row[2] = "ИП".into();
        row[7] = "500100732258".into();
        row[8] = "112-233-445 96".into();
        row[9] = "123".into();
        row[10] = "4510 12345".into();
        row[11] = "14.03.2085".into();
        row[12] = "8 912 345 67 89, 12345".into();
        row[13] = "ivan.mail.ru".into();
        row[15] = "12500".into();
        let errors = bound().map_row(&row, today()).unwrap_err();
        assert_eq!(
            reasons(&errors),
            [
                "field inn: checksum mismatch",
                "field snils: checksum mismatch",
                "field ogrn: must have 13 or 15 digits, got 3",
                "field passport: must have 10 digits (4 series + 6 number), got 9",
                "field postal_code: must have 6 digits, got 5",
                "field version: expected a non-negative integer or a timestamp \
                 (yyyy-mm-dd hh:mm:ss or rfc 3339)",
                "field kind: unknown party kind, expected person (фл, p) or organisation (юл, o)",
                "field birth_date: must not be in the future",
                "field phone: entry 2 of 2: must have 10 or 11 digits, or start with '+', \
                 got 5 digits",
                "field email: not a valid e-mail address: missing '@'",
            ]
        );
        // no reason repeats a rejected value
        for e in &errors {
            for v in ["500100732258", "445 96", "12345", "ivan.mail.ru", "2085"] {
                assert!(!e.reason.contains(v), "{e}");
            }
        }
    }

    #[test]
    fn lenient_mapping_keeps_invalid_values_as_text() {
        let mut row = person_row();
        row[0] = String::new();
        row[1] = "вчера".into();
        row[2] = "ИП".into();
        row[7] = " 500100732258 ".into();
        row[11] = "14.03.2085".into();
        row[12] = "8 912 345 67 89, 12345, 12345".into();
        row[13] = "ivan.mail.ru".into();
        let l = bound().map_row_lenient(&row, today()).unwrap();
        // The same errors the strict mapping reports.
        assert_eq!(l.errors, bound().map_row(&row, today()).unwrap_err());
        assert_eq!(
            l.errors
                .iter()
                .map(|e| e.field.as_str())
                .collect::<Vec<_>>(),
            [
                "inn",
                "version",
                "kind",
                "birth_date",
                "phone",
                "phone",
                "email",
                "key"
            ]
        );
        let p = &l.mapped.party;
        assert_eq!(l.mapped.key, "");
        assert_eq!(l.mapped.version, None);
        // An unreadable kind is a person; an unreadable date is left out.
        assert_eq!(p.kind, PartyKind::Person);
        assert_eq!(p.birth_date, None);
        // A failing value stays as written (trimmed); a valid one is normalised; a repeated
        // invalid entry is kept once.
        assert_eq!(p.inn.as_deref(), Some("500100732258"));
        assert_eq!(p.phones, ["+79123456789", "12345"]);
        assert_eq!(p.emails, ["ivan.mail.ru"]);
        assert_eq!(p.snils.as_deref(), Some("112-233-445 95"));
        assert_eq!(p.last_name.as_deref(), Some("Иванов"));

        // A clean row: the lenient party is the strict one.
        let clean = bound().map_row_lenient(&person_row(), today()).unwrap();
        assert!(clean.errors.is_empty());
        assert_eq!(
            clean.mapped,
            bound().map_row(&person_row(), today()).unwrap()
        );

        // Cells that cannot be aligned with the header give no party.
        let mut short = person_row();
        short.pop();
        assert_eq!(
            reasons(&bound().map_row_lenient(&short, today()).unwrap_err()),
            ["field row: expected 18 cells, got 17"]
        );
    }

    #[test]
    fn missing_required_fields() {
        let mut row = person_row();
        row[0] = "  ".into();
        row[4] = String::new();
        let errors = bound().map_row(&row, today()).unwrap_err();
        assert_eq!(
            reasons(&errors),
            [
                "field key: is required but empty",
                "field first_name: is required but empty"
            ]
        );

        let mut org = person_row();
        org[2] = "ЮЛ".into();
        let errors = bound().map_row(&org, today()).unwrap_err();
        assert_eq!(reasons(&errors), ["field full_name: is required but empty"]);
        org[6] = "ООО «Ромашка»".into();
        assert!(bound().map_row(&org, today()).is_ok());
    }

    #[test]
    fn explicit_required_list_replaces_defaults() {
        let mut cols = config();
        cols.required = strings(&["inn", " phone ", "key"]);
        let b = cols.bind(&strings(HEADER)).unwrap();
        let mut row = person_row();
        row[3] = String::new();
        row[4] = String::new();
        assert!(b.map_row(&row, today()).is_ok());
        row[7] = String::new();
        row[12] = " , ".into();
        assert_eq!(
            reasons(&b.map_row(&row, today()).unwrap_err()),
            [
                "field inn: is required but empty",
                "field phone: is required but empty"
            ]
        );
    }

    #[test]
    fn postal_code_without_address_is_an_error() {
        let mut row = person_row();
        row[14] = String::new();
        assert_eq!(
            reasons(&bound().map_row(&row, today()).unwrap_err()),
            ["field postal_code: given without an address"]
        );
        row[15] = String::new();
        assert!(
            bound()
                .map_row(&row, today())
                .unwrap()
                .party
                .addresses
                .is_empty()
        );
    }

    #[test]
    fn wrong_cell_count_is_rejected() {
        let mut row = person_row();
        row.pop();
        assert_eq!(
            reasons(&bound().map_row(&row, today()).unwrap_err()),
            ["field row: expected 18 cells, got 17"]
        );
        row.push("a".into());
        row.push("b".into());
        assert_eq!(
            reasons(&bound().map_row(&row, today()).unwrap_err()),
            ["field row: expected 18 cells, got 19"]
        );
    }

    #[test]
    fn bind_reports_all_header_problems() {
        let mut cols = config();
        cols.segment = Some("  ".into());
        cols.required = strings(&["inn", "foo"]);
        cols.passport = None;
        cols.required.push("passport".into());
        let header = strings(&["Код клиента", "Фамилия", "Имя", "Имя", "Версия"]);
        cols.last_name = Some("Имя".into());
        let errors: Vec<String> = cols
            .bind(&header)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [
                "column `Тип` for field kind not found in header",
                "column `Имя` for field last_name appears more than once in header",
                "column `Имя` for field first_name appears more than once in header",
                "column `Отчество` for field middle_name not found in header",
                "column `Наименование` for field full_name not found in header",
                "column `ИНН` for field inn not found in header",
                "column `СНИЛС` for field snils not found in header",
                "column `ОГРН` for field ogrn not found in header",
                "column `Дата рождения` for field birth_date not found in header",
                "column `Телефон` for field phone not found in header",
                "column `Email` for field email not found in header",
                "column `Адрес` for field address not found in header",
                "column `Индекс` for field postal_code not found in header",
                "column name for field segment is empty",
                "column `Статус` for field status not found in header",
                "required field `foo` is not a party field",
                "required field passport has no configured column",
            ]
        );
    }

    #[test]
    fn bind_matches_trimmed_case_sensitive_and_strips_bom() {
        let cols = PartyColumns {
            key: " id ".into(),
            inn: Some("ИНН".into()),
            required: strings(&["key"]),
            ..PartyColumns::default()
        };
        let b = cols
            .bind(&strings(&["\u{feff} id", "инн ", "ИНН"]))
            .unwrap();
        let m = b
            .map_row(&strings(&["7", "1", "7707083893"]), today())
            .unwrap();
        assert_eq!(m.key, "7");
        assert_eq!(m.version, None);
        assert_eq!(m.party.inn.as_deref(), Some("7707083893"));

        let err = cols.bind(&strings(&["id", "Инн"])).unwrap_err();
        assert_eq!(
            err,
            [HeaderError::MissingColumn {
                field: "inn".into(),
                column: "ИНН".into()
            }]
        );
        // a byte-order mark is only stripped from the first header
        assert!(cols.bind(&strings(&["ИНН", "\u{feff}id"])).is_err());
    }

    #[test]
    fn config_deserialises_and_rejects_unknown_fields() {
        let cols: PartyColumns = serde_json::from_value(serde_json::json!({
            "key": "Код клиента",
            "inn": "ИНН",
            "phone": "Телефон",
            "required": ["inn"]
        }))
        .unwrap();
        assert_eq!(cols.key, "Код клиента");
        assert_eq!(cols.inn.as_deref(), Some("ИНН"));
        assert_eq!(cols.last_name, None);
        assert_eq!(cols.required, ["inn"]);
        let err = serde_json::from_value::<PartyColumns>(serde_json::json!({
            "key": "id",
            "telephone": "Телефон"
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `telephone`"),
            "{err}"
        );
        assert!(serde_json::from_value::<PartyColumns>(serde_json::json!({"inn": "ИНН"})).is_err());
    }
}
