use super::*;

fn monitor() -> Monitor {
    Monitor::new(only(RuleId::Structuring)).unwrap()
}

#[test]
fn three_just_below_the_threshold_within_seven_days() {
    let mut m = monitor();
    let evals = feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            credit("b", rub(999_999, 99), 50),
            debit("c", rub(900_000, 0), 160),
        ],
    );
    assert!(evals[0].alerts.is_empty() && evals[1].alerts.is_empty());
    let a = &evals[2].alerts[0];
    assert_eq!(a.rule, RuleId::Structuring);
    assert_eq!(ids(a), ["a", "b", "c"]);
    assert_eq!(a.total_rub_minor, Some(rub(2_849_999, 99)));
    assert_eq!(
        a.reason,
        "3 operations each between 900 000.00 RUB and just below the mandatory-control threshold \
         of 1 000 000.00 RUB within 7 days"
    );
}

#[test]
fn does_not_fire_just_outside_the_band_or_the_window() {
    let mut m = monitor();
    let below_band = feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 1),
            debit("c", rub(899_999, 99), 2),
            debit("d", rub(1_000_000, 0), 3),
        ],
    );
    assert!(
        alerts(&below_band).is_empty(),
        "899 999.99 and 1 000 000.00 are outside the band"
    );

    let mut m = monitor();
    let spread = feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 100),
            debit("c", rub(950_000, 0), 169),
        ],
    );
    assert!(
        alerts(&spread).is_empty(),
        "169 h apart is outside a 168 h window"
    );
}

#[test]
fn one_alert_per_burst_then_a_new_one_for_new_operations() {
    let mut m = monitor();
    let evals = feed(
        &mut m,
        &[
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 1),
            debit("c", rub(950_000, 0), 2),
            debit("d", rub(950_000, 0), 3),
            debit("e", rub(950_000, 0), 4),
            debit("f", rub(950_000, 0), 5),
        ],
    );
    let all = alerts(&evals);
    assert_eq!(all.len(), 2);
    assert_eq!(ids(all[0]), ["a", "b", "c"]);
    assert_eq!(ids(all[1]), ["d", "e", "f"]);
    assert_ne!(all[0].id, all[1].id);
}

#[test]
fn out_of_order_arrival_finds_the_same_operations() {
    let mut m = monitor();
    let evals = feed(
        &mut m,
        &[
            debit("c", rub(950_000, 0), 48),
            debit("a", rub(950_000, 0), 0),
            debit("b", rub(950_000, 0), 24),
        ],
    );
    let all = alerts(&evals);
    assert_eq!(all.len(), 1);
    assert_eq!(ids(all[0]), ["a", "b", "c"], "in booking order");
    assert_eq!(all[0].booked_at, at(24), "completed by b");
}
