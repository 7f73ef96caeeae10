#![no_main]

use adapters::formats::FormatConfig;
use adapters::formats::camt::CamtConfig;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::check(&FormatConfig::Camt(CamtConfig::default()), data);
});
