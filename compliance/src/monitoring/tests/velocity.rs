use super::*;

fn monitor(max_count: u32) -> Monitor {
    let mut cfg = only(RuleId::Velocity);
    cfg.velocity.max_count = max_count;
    Monitor::new(cfg).unwrap()
}

#[test]
fn more_than_n_operations_within_the_window() {
    let mut m = monitor(3);
    let evals = feed(
        &mut m,
        &[
            debit("a", rub(10, 0), 0),
            credit("b", rub(10, 0), 5),
            debit("c", rub(10, 0), 10),
            debit("d", rub(10, 0), 23),
        ],
    );
    assert!(
        evals[..3].iter().all(|e| e.alerts.is_empty()),
        "3 is not more than 3"
    );
    let a = &evals[3].alerts[0];
    assert_eq!(a.rule, RuleId::Velocity);
    assert_eq!(ids(a), ["a", "b", "c", "d"]);
    assert_eq!(
        a.reason,
        "4 operations totalling 40.00 RUB within 24 h (limits: more than 3 operations or more \
         than 5 000 000.00 RUB)"
    );
}

#[test]
fn four_operations_over_more_than_the_window_do_not_fire() {
    let mut m = monitor(3);
    let evals = feed(
        &mut m,
        &[
            debit("a", rub(10, 0), 0),
            debit("b", rub(10, 0), 8),
            debit("c", rub(10, 0), 16),
            debit("d", rub(10, 0), 25),
        ],
    );
    assert!(alerts(&evals).is_empty());
}

#[test]
fn a_total_above_the_limit() {
    let mut m = monitor(30);
    let at_limit = feed(
        &mut m,
        &[
            credit("a", rub(2_500_000, 0), 0),
            debit("b", rub(2_500_000, 0), 1),
        ],
    );
    assert!(
        alerts(&at_limit).is_empty(),
        "exactly 5 000 000.00 is not above the limit"
    );
    let over = feed(&mut m, &[debit("c", rub(0, 1), 2)]);
    let a = &over[0].alerts[0];
    assert_eq!(ids(a), ["a", "b", "c"]);
    assert_eq!(a.total_rub_minor, Some(rub(5_000_000, 1)));
}

#[test]
fn a_late_arrival_inside_the_window_counts() {
    let mut m = monitor(3);
    let evals = feed(
        &mut m,
        &[
            debit("d", rub(10, 0), 20),
            debit("b", rub(10, 0), 10),
            debit("c", rub(10, 0), 15),
            debit("a", rub(10, 0), 1),
        ],
    );
    let all = alerts(&evals);
    assert_eq!(all.len(), 1);
    assert_eq!(ids(all[0]), ["a", "b", "c", "d"]);
}
