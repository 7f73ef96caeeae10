//! The webhook intake of `POST /webhooks/{source}` without the HTTP server: signature and
//! time window, the body split into events, event ids and the declarative mapping of each
//! event. The checks live in `webhook_checks.rs`, shared with the stable seeded-mutation
//! test `tests/tests/webhook_body_mutation.rs`.

#![no_main]

use libfuzzer_sys::fuzz_target;

mod webhook_checks;

fuzz_target!(|data: &[u8]| {
    webhook_checks::check(data);
});
