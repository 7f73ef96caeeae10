#![no_main]

use adapters::file_drop::Encoding;
use adapters::formats::FormatConfig;
use adapters::formats::fixed_width::{FieldLayout, FixedWidthLayout, RecordLayout, Role, Span};
use libfuzzer_sys::fuzz_target;

mod common;

fn field(name: &str, start: usize, length: usize) -> FieldLayout {
    FieldLayout {
        name: name.into(),
        start,
        length: Some(length),
        end: None,
        trim: true,
        format: None,
        implied_decimals: (name == "amount" || name == "total").then_some(2),
        debit: None,
        credit: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let layout = FixedWidthLayout {
        encoding: Encoding::Cp866,
        record_type: Some(Span {
            start: 1,
            length: Some(1),
            end: None,
        }),
        records: vec![
            RecordLayout {
                code: Some("H".into()),
                role: Role::Header,
                fields: vec![field("account", 2, 20), field("currency", 22, 3)],
            },
            RecordLayout {
                code: Some("D".into()),
                role: Role::Detail,
                fields: vec![
                    field("id", 2, 8),
                    field("booked_at", 10, 8),
                    field("direction", 18, 1),
                    field("amount", 19, 12),
                    field("purpose", 31, 30),
                ],
            },
            RecordLayout {
                code: Some("T".into()),
                role: Role::Trailer,
                fields: vec![field("count", 2, 6), field("total", 8, 14)],
            },
        ],
        account: None,
        currency: None,
    };
    common::check(&FormatConfig::FixedWidth(layout), data);
});
