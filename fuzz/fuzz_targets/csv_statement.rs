#![no_main]

use adapters::file_drop::Encoding;
use adapters::formats::FormatConfig;
use adapters::formats::csv_statement::CsvStatementConfig;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the encoding, so all three decoders are reached.
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let mut config = CsvStatementConfig::new("date", "amount");
    config.encoding = match pick % 3 {
        0 => Encoding::Utf8,
        1 => Encoding::Windows1251,
        _ => Encoding::Cp866,
    };
    config.columns.currency = Some("ccy".into());
    config.columns.account = Some("account".into());
    config.columns.direction = Some("dc".into());
    config.columns.purpose = Some("purpose".into());
    common::check(&FormatConfig::CsvStatement(config), rest);
});
