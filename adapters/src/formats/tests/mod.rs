//! Tests of the format readers on small files written here (invented names, accounts and
//! amounts in the formats' real shapes).

mod camt;
mod config;
mod csv_statement;
mod fixed_width;
mod mt940;
mod mutation;
mod onec;
mod real_samples;

use mapping::{Balance, Transaction};

use super::{FormatConfig, FormatError, Item, Record};

/// Reads `bytes` with `config` to the end: the records and the errors, in order. An open
/// error is the only error.
pub(crate) fn read(config: &FormatConfig, bytes: &[u8]) -> (Vec<Item>, Vec<FormatError>) {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    match config.from_bytes("sample", bytes.to_vec()) {
        Ok(records) => {
            for item in records {
                match item {
                    Ok(i) => items.push(i),
                    Err(e) => errors.push(e),
                }
            }
        }
        Err(e) => errors.push(e),
    }
    (items, errors)
}

pub(crate) fn transactions(items: &[Item]) -> Vec<&Transaction> {
    items
        .iter()
        .filter_map(|i| match &i.record {
            Record::Transaction(t) => Some(t),
            _ => None,
        })
        .collect()
}

pub(crate) fn balances(items: &[Item]) -> Vec<&Balance> {
    items
        .iter()
        .filter_map(|i| match &i.record {
            Record::Balance(b) => Some(b),
            _ => None,
        })
        .collect()
}

pub(crate) fn entities(items: &[Item]) -> Vec<&'static str> {
    items.iter().map(|i| i.record.entity()).collect()
}

/// windows-1251 bytes of `text`.
pub(crate) fn cp1251(text: &str) -> Vec<u8> {
    encoding_rs::WINDOWS_1251.encode(text).0.into_owned()
}

/// cp866 bytes of `text`.
pub(crate) fn cp866(text: &str) -> Vec<u8> {
    encoding_rs::IBM866.encode(text).0.into_owned()
}
