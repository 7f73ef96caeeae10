#![no_main]

use adapters::formats::FormatConfig;
use adapters::formats::onec::OneCConfig;
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    // Encoding from the file's header, as in production.
    common::check(&FormatConfig::OneC(OneCConfig::default()), data);
});
