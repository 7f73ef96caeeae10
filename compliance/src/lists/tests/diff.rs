use crate::entry::{EntityKind, EntryName, ListEntry, ListSnapshot, NameStrength};
use crate::lists::{ListDiff, diff};

fn e(id: &str, name: &str) -> ListEntry {
    ListEntry {
        list: "un".into(),
        id: id.into(),
        kind: EntityKind::Person,
        names: vec![EntryName {
            full: name.into(),
            strength: NameStrength::Primary,
        }],
        birth_dates: vec![],
        nationalities: vec![],
        identifiers: vec![],
        programs: vec![],
        is_pep: false,
    }
}

fn snap(version: &str, entries: Vec<ListEntry>) -> ListSnapshot {
    ListSnapshot {
        list: "un".into(),
        version: version.into(),
        published: None,
        entries,
        problems: vec![],
    }
}

#[test]
fn added_removed_changed_sorted_by_id() {
    let old = snap("a", vec![e("3", "C"), e("1", "A"), e("2", "B")]);
    let mut changed = e("2", "B");
    changed.nationalities.push("ir".into());
    let new = snap("b", vec![e("4", "D"), e("1", "A"), changed, e("0", "Z")]);
    assert_eq!(
        diff(&old, &new),
        ListDiff {
            added: vec!["0".into(), "4".into()],
            removed: vec!["3".into()],
            changed: vec!["2".into()],
        }
    );
    assert!(diff(&new, &new).is_empty());
    assert_eq!(diff(&snap("x", vec![]), &old).added.len(), 3);
}
