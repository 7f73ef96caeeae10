//! The webhook intake (signature, time window, event split, event ids, declarative
//! mapping) over thousands of seeded mutations of valid deliveries: the checks of the
//! `webhook_body` fuzz target, run by `cargo test` so CI exercises them on stable Rust.

mod mutation;
#[path = "../../fuzz/fuzz_targets/webhook_checks.rs"]
mod webhook_checks;

use mutation::{Rng, mutate};

/// Mutated deliveries per run (about a second in a debug build).
const ROUNDS: usize = 20_000;

#[test]
fn seeds_pass_the_checks() {
    for seed in webhook_checks::seeds() {
        webhook_checks::check(&seed);
    }
}

#[test]
fn mutated_deliveries_never_break_the_intake() {
    let seeds = webhook_checks::seeds();
    let mut rng = Rng(0x5EED_0F3B_400C);
    for round in 0..ROUNDS {
        let input = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        let mut data = mutate(&mut rng, input, other);
        // Keep the flags byte meaningful half of the time: it picks signed or not.
        if round % 2 == 0 && !data.is_empty() {
            data[0] = input[0];
        }
        let outcome = std::panic::catch_unwind(|| webhook_checks::check(&data));
        assert!(
            outcome.is_ok(),
            "round {round}: the intake failed on input {:?}",
            String::from_utf8_lossy(&data)
        );
    }
}
