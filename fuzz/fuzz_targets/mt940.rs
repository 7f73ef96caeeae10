#![no_main]

use adapters::formats::FormatConfig;
use adapters::formats::mt940::Mt940Config;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    common::check(&FormatConfig::Mt940(Mt940Config::default()), data);
});
