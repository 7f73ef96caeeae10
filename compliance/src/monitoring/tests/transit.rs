use super::*;

fn monitor() -> Monitor {
    Monitor::new(only(RuleId::Transit)).unwrap()
}

#[test]
fn money_in_and_ninety_percent_out_within_the_window() {
    let mut m = monitor();
    let evals = feed(
        &mut m,
        &[
            credit("in", rub(1_000_000, 0), 0),
            debit("out1", rub(500_000, 0), 1),
            debit("out2", rub(400_000, 0), 30),
        ],
    );
    assert!(evals[1].alerts.is_empty(), "50% is not enough");
    let a = &evals[2].alerts[0];
    assert_eq!(a.rule, RuleId::Transit);
    assert_eq!(ids(a), ["in", "out1", "out2"]);
    assert_eq!(
        a.reason,
        "incoming 1 000 000.00 RUB followed by 2 outgoing operation(s) of 900 000.00 RUB (90%) \
         within 2 days (limit: 90% or more)"
    );
    // The incoming operation is reported once.
    let more = feed(&mut m, &[debit("out3", rub(100_000, 0), 31)]);
    assert!(more[0].alerts.is_empty());
}

#[test]
fn just_below_the_share_or_outside_the_window_does_not_fire() {
    let mut m = monitor();
    let below = feed(
        &mut m,
        &[
            credit("in", rub(1_000_000, 0), 0),
            debit("out", rub(899_999, 99), 1),
        ],
    );
    assert!(alerts(&below).is_empty());

    let mut m = monitor();
    let late = feed(
        &mut m,
        &[
            credit("in", rub(1_000_000, 0), 0),
            debit("before", rub(950_000, 0), -1),
            debit("after", rub(950_000, 0), 49),
        ],
    );
    assert!(alerts(&late).is_empty(), "before the credit or after 48 h");

    let mut m = monitor();
    let small = feed(
        &mut m,
        &[
            credit("in", rub(99_999, 99), 0),
            debit("out", rub(99_999, 99), 1),
        ],
    );
    assert!(
        alerts(&small).is_empty(),
        "below the minimum incoming amount"
    );
}

#[test]
fn outgoing_operations_arriving_before_the_incoming_one() {
    let mut m = monitor();
    let evals = feed(
        &mut m,
        &[
            debit("out1", rub(600_000, 0), 5),
            debit("out2", rub(400_000, 0), 6),
            credit("in", rub(1_000_000, 0), 4),
        ],
    );
    let all = alerts(&evals);
    assert_eq!(all.len(), 1);
    assert_eq!(ids(all[0]), ["in", "out1", "out2"]);
}
