//! The JSON bodies of the admin APIs (dead-letter replay and discard, compliance
//! decisions, data-steward merge, unmerge and review decisions), sent through the hub's own
//! router. The checks live in `admin_checks.rs`, shared with the stable seeded-mutation
//! test `tests/tests/admin_json_mutation.rs`.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

mod admin_checks;

/// One hub for the whole run: opening it per input would measure SQLite, not the parsers.
fn hub() -> &'static admin_checks::AdminHub {
    static HUB: OnceLock<admin_checks::AdminHub> = OnceLock::new();
    HUB.get_or_init(admin_checks::AdminHub::start)
}

fuzz_target!(|data: &[u8]| {
    hub().check(data);
});
