//! The admin APIs' JSON bodies (dead letters, compliance decisions, data-steward merges)
//! over thousands of seeded mutations of valid bodies, sent through the hub's router: the
//! checks of the `admin_json` fuzz target, run by `cargo test` so CI exercises them on
//! stable Rust.

#[path = "../../fuzz/fuzz_targets/admin_checks.rs"]
mod admin_checks;
mod mutation;

use admin_checks::AdminHub;
use axum::http::StatusCode;
use mutation::{Rng, mutate};

/// Mutated bodies per run.
const ROUNDS: usize = 3000;

#[test]
fn seeds_reach_the_handlers() {
    let hub = AdminHub::start();
    for seed in admin_checks::seeds() {
        let (status, answer) = hub.send(&seed).expect("a seed has route and shape bytes");
        // Past authentication and the JSON extractor: the handler answered.
        assert!(
            !matches!(
                status,
                StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
                    | StatusCode::UNSUPPORTED_MEDIA_TYPE
                    | StatusCode::UNPROCESSABLE_ENTITY
                    | StatusCode::METHOD_NOT_ALLOWED
            ),
            "seed {:?}: {status} {}",
            String::from_utf8_lossy(&seed[2..]),
            String::from_utf8_lossy(&answer)
        );
        // Extractor refusals are plain text; the handlers answer JSON.
        assert!(
            serde_json::from_slice::<serde_json::Value>(&answer).is_ok(),
            "seed {:?}: not answered by its handler: {status} {}",
            String::from_utf8_lossy(&seed[2..]),
            String::from_utf8_lossy(&answer)
        );
        hub.check(&seed);
    }
}

#[test]
fn mutated_bodies_never_break_the_admin_apis() {
    let hub = AdminHub::start();
    let seeds = admin_checks::seeds();
    let mut rng = Rng(0xAD_0015_0B0D);
    for round in 0..ROUNDS {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let mut data = mutate(&mut rng, input, other);
        // Keep route and shape of the seed most of the time, so the body is what varies.
        if round % 4 != 0 && data.len() >= 2 {
            data[0] = input[0];
            data[1] = input[1];
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hub.check(&data)));
        assert!(
            outcome.is_ok(),
            "round {round}: the admin API failed on input {:?}",
            String::from_utf8_lossy(&data)
        );
    }
}
