//! The golden store's suite, run on SQLite and on PostgreSQL (`HUB_TEST_POSTGRES`, started
//! by `scripts/postgres.sh start`). Each PostgreSQL test works in a schema of its own, so
//! the tests run in parallel.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::{Value, json};

use mapping::mdm::mastership::{FieldRule, MastershipConfig};
use mapping::{Address, Party};

use super::*;
use crate::sql::test_schema::{self, PgSchema};

// ---------------------------------------------------------------- fixtures ----

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    /// The same suite with the personal columns encrypted (crypto::fields).
    SqliteEncrypted,
    PostgresEncrypted,
}

/// Keys k1 and k2 of the encrypted runs; `active` encrypts.
fn test_cipher(active: &str) -> Arc<FieldCipher> {
    Arc::new(
        FieldCipher::new(
            active,
            [
                ("k1".to_string(), [0x11; 32]),
                ("k2".to_string(), [0x22; 32]),
            ],
        )
        .expect("test keys"),
    )
}

/// A store on a fresh database; dropping it removes the database.
struct Fixture {
    store: GoldenStore,
    _sqlite_dir: Option<tempfile::TempDir>,
    _pg_schema: Option<PgSchema>,
}

impl std::ops::Deref for Fixture {
    type Target = GoldenStore;
    fn deref(&self) -> &GoldenStore {
        &self.store
    }
}

fn postgres_url() -> String {
    test_schema::postgres_url("the golden store")
}

fn open_with(backend: Backend, settings: MdmSettings) -> Fixture {
    let cipher = match backend {
        Backend::SqliteEncrypted | Backend::PostgresEncrypted => Some(test_cipher("k1")),
        Backend::Sqlite | Backend::Postgres => None,
    };
    let mut f = open_plain(backend, settings);
    f.store = f.store.with_cipher(cipher);
    f
}

fn open_plain(backend: Backend, settings: MdmSettings) -> Fixture {
    match backend {
        Backend::Sqlite | Backend::SqliteEncrypted => {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = GoldenStore::open_sqlite(&dir.path().join("golden.db"), settings)
                .expect("open sqlite store");
            Fixture {
                store,
                _sqlite_dir: Some(dir),
                _pg_schema: None,
            }
        }
        Backend::Postgres | Backend::PostgresEncrypted => {
            let schema = PgSchema::create("the golden store", "t");
            let store =
                GoldenStore::open_postgres(&schema.store_url(), settings).expect("open pg store");
            Fixture {
                store,
                _sqlite_dir: None,
                _pg_schema: Some(schema),
            }
        }
    }
}

fn open(backend: Backend) -> Fixture {
    open_with(backend, MdmSettings::default())
}

// ------------------------------------------------------------------- data ----

const INN_IVANOV: &str = "500100732259";

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0)
        .single()
        .expect("valid test time")
}

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn event(system: &str, source_id: &str, version: i64, secs: i64, party: Party) -> PartyEvent {
    PartyEvent {
        system: system.into(),
        source: format!("{system}_files"),
        source_id: source_id.into(),
        version,
        event_id: format!("{system}-{source_id}-v{version}"),
        event_time: t(secs),
        party,
    }
}

/// Core banking's Sergey Ivanov: INN, Cyrillic name, birth date, phone, address, segment.
fn abs_ivanov() -> Party {
    Party {
        source_id: "A-100".into(),
        last_name: Some("Иванов".into()),
        first_name: Some("Сергей".into()),
        middle_name: Some("Петрович".into()),
        inn: Some(INN_IVANOV.into()),
        birth_date: date(1980, 2, 3),
        phones: vec!["+79161234567".into()],
        addresses: vec![Address {
            kind: "primary".into(),
            text: "Москва, ул. Ленина, д. 1, кв. 5".into(),
            postal_code: Some("101000".into()),
        }],
        segment: Some("mass".into()),
        ..Party::default()
    }
}

/// The card system's view of the same man: Latin name and phones only, no INN.
fn cards_ivanov() -> Party {
    Party {
        source_id: "C-7".into(),
        last_name: Some("Ivanov".into()),
        first_name: Some("Sergey".into()),
        phones: vec!["+79161234567".into(), "+79031112233".into()],
        segment: Some("gold".into()),
        ..Party::default()
    }
}

/// The card system's record of the same man with a birth date one digit off and no phone:
/// probable, not sure.
fn cards_ivanov_unsure() -> Party {
    Party {
        source_id: "C-8".into(),
        last_name: Some("Ivanov".into()),
        first_name: Some("Sergey".into()),
        birth_date: date(1980, 2, 8),
        emails: vec!["s.ivanov@example.ru".into()],
        ..Party::default()
    }
}

fn abs_kuznetsova() -> Party {
    Party {
        source_id: "A-200".into(),
        last_name: Some("Кузнецова".into()),
        first_name: Some("Анна".into()),
        middle_name: Some("Викторовна".into()),
        birth_date: date(1990, 5, 17),
        phones: vec!["+79115550202".into()],
        ..Party::default()
    }
}

fn values(store: &GoldenStore, golden_id: &str) -> BTreeMap<String, Value> {
    store
        .golden(golden_id)
        .expect("golden")
        .expect("golden exists")
        .record
        .fields
        .into_iter()
        .map(|(k, v)| (k, v.value))
        .collect()
}

fn view(store: &GoldenStore, golden_id: &str) -> GoldenView {
    store
        .golden(golden_id)
        .expect("golden")
        .expect("golden exists")
}

fn drain_outbox(store: &GoldenStore) -> Vec<GoldenOut> {
    let out = store.outbox(1_000).expect("outbox");
    let ids: Vec<i64> = out.iter().map(|o| o.outbox_id).collect();
    store.outbox_done(&ids).expect("outbox done");
    out
}

fn golden_of(store: &GoldenStore, system: &str, source_id: &str) -> String {
    store
        .golden_by_xref(system, source_id)
        .expect("lookup")
        .expect("xref known")
}

// ------------------------------------------------------------------ tests ----

fn creates_a_golden_record(b: Backend) {
    let s = open(b);
    let out = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap();
    assert_eq!(out.action, IngestAction::Created);
    assert_eq!(out.golden_id, "G0000000001");
    assert!(out.merged.is_empty());
    assert_eq!(out.reviews_opened, 0);

    let v = view(&s, "G0000000001");
    assert_eq!(v.state, GoldenState::Active);
    assert_eq!(v.version, 1);
    assert_eq!(v.xrefs.len(), 1);
    assert_eq!(v.xrefs[0].source, "abs_files");
    assert_eq!(v.xrefs[0].event_time, t(10));
    let party = v.party.expect("party");
    assert_eq!(party.source_id, "G0000000001");
    assert_eq!(party.last_name.as_deref(), Some("Иванов"));
    assert_eq!(party.inn.as_deref(), Some(INN_IVANOV));
    assert!(party.addresses[0].text.contains("Ленина"));

    assert_eq!(
        golden_of(&s, "abs", "A-100"),
        "G0000000001",
        "lookup by cross-reference"
    );
    assert_eq!(s.golden_by_xref("abs", "nope").unwrap(), None);
    assert_eq!(s.golden("G0000000099").unwrap(), None);

    let stats = s.stats().unwrap();
    assert_eq!(
        stats,
        GoldenStats {
            goldens_active: 1,
            goldens_merged: 0,
            xrefs: 1,
            reviews_open: 0,
            outbox: 1
        }
    );
    // A second, unrelated party gets the next id.
    let out = s
        .ingest(&event("abs", "A-200", 1, 11, abs_kuznetsova()))
        .unwrap();
    assert_eq!(
        (out.action, out.golden_id.as_str()),
        (IngestAction::Created, "G0000000002")
    );
}

fn replay_changes_nothing(b: Backend) {
    let s = open(b);
    let e1 = event("abs", "A-100", 3, 10, abs_ivanov());
    s.ingest(&e1).unwrap();
    drain_outbox(&s);
    let history = s.history("G0000000001", None, 100).unwrap().len();

    for replay in [e1.clone(), event("abs", "A-100", 2, 50, abs_kuznetsova())] {
        let out = s.ingest(&replay).unwrap();
        assert_eq!(out.action, IngestAction::Unchanged);
        assert_eq!(out.golden_id, "G0000000001");
    }
    assert!(s.outbox(10).unwrap().is_empty(), "a replay queues nothing");
    assert_eq!(s.history("G0000000001", None, 100).unwrap().len(), history);
    assert_eq!(view(&s, "G0000000001").version, 1);
    assert_eq!(
        values(&s, "G0000000001")["last_name"],
        json!("Иванов"),
        "an older version never overwrites"
    );
    // The same batch through ingest_many: all unchanged.
    let outs = s.ingest_many(&[e1.clone(), e1]).unwrap();
    assert!(outs.iter().all(|o| o.action == IngestAction::Unchanged));
}

fn bank_and_card_records_join(b: Backend) {
    let s = open(b);
    let a = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap();
    let c = s
        .ingest(&event("cards", "C-7", 1, 20, cards_ivanov()))
        .unwrap();
    assert_eq!(c.action, IngestAction::Attached);
    assert_eq!(c.golden_id, a.golden_id);
    assert_eq!(s.stats().unwrap().goldens_active, 1);

    let v = view(&s, &a.golden_id);
    assert_eq!(v.version, 2);
    let refs: Vec<(&str, &str)> = v
        .xrefs
        .iter()
        .map(|x| (x.system.as_str(), x.source_id.as_str()))
        .collect();
    assert_eq!(refs, [("abs", "A-100"), ("cards", "C-7")]);
    // Core banking masters names and segment; phones take the newest list.
    let f = &v.record.fields;
    assert_eq!(f["last_name"].value, json!("Иванов"));
    assert_eq!(f["first_name"].value, json!("Сергей"));
    assert_eq!(f["last_name"].provenance.system, "abs");
    assert_eq!(f["segment"].value, json!("mass"));
    assert_eq!(f["phones"].value, json!(["+79161234567", "+79031112233"]));
    assert_eq!(f["phones"].provenance.system, "cards");
    assert_eq!(f["phones"].provenance.event_id, "cards-C-7-v1");
    assert_eq!(f["inn"].value, json!(INN_IVANOV));
    // Both systems' candidates are kept with provenance.
    assert_eq!(
        v.record.candidates["last_name"]["cards"].value,
        json!("Ivanov")
    );

    let out = drain_outbox(&s);
    assert_eq!(out.len(), 1, "one pending entry per golden id");
    assert_eq!(out[0].golden_id, a.golden_id);
    assert_eq!(out[0].version, 2);
    assert_eq!(out[0].event_time, t(20));
    assert_eq!(out[0].xrefs.len(), 2);
    assert_eq!(out[0].party.source_id, a.golden_id);
}

fn event_order_does_not_matter(b: Backend) {
    let events = [
        event("abs", "A-100", 1, 10, abs_ivanov()),
        event("cards", "C-7", 1, 20, cards_ivanov()),
        event("cards", "C-8", 1, 30, cards_ivanov_unsure()),
    ];
    let forward = open(b);
    for e in &events {
        forward.ingest(e).unwrap();
    }
    let backward = open(b);
    for e in events.iter().rev() {
        backward.ingest(e).unwrap();
    }
    let fid = golden_of(&forward, "abs", "A-100");
    let bid = golden_of(&backward, "abs", "A-100");
    assert_eq!(golden_of(&forward, "cards", "C-7"), fid);
    assert_eq!(golden_of(&backward, "cards", "C-7"), bid);
    assert_eq!(values(&forward, &fid), values(&backward, &bid));
    assert_eq!(
        view(&forward, &fid).record.candidates,
        view(&backward, &bid).record.candidates
    );
}

fn crm_mastered_field_never_from_a_bank(b: Backend) {
    // The canonical party has no CRM-only field (notes, marketing consent), so the test
    // masters `segment` by the CRM alone, as such a field is by default.
    let mut mastership = MastershipConfig::default();
    mastership
        .entities
        .get_mut("party")
        .expect("party rules")
        .fields
        .insert("segment".into(), FieldRule::mastered_by("crm"));
    let settings = MdmSettings {
        mastership,
        ..MdmSettings::default()
    };
    let s = open_with(b, settings);
    let g = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap()
        .golden_id;
    s.ingest(&event("cards", "C-7", 1, 20, cards_ivanov()))
        .unwrap();
    assert!(
        !values(&s, &g).contains_key("segment"),
        "no bank value for a CRM field"
    );

    let crm = Party {
        source_id: "R-1".into(),
        inn: Some(INN_IVANOV.into()),
        last_name: Some("Иванов".into()),
        segment: Some("vip".into()),
        ..Party::default()
    };
    let out = s.ingest(&event("crm", "R-1", 1, 30, crm)).unwrap();
    assert_eq!(out.golden_id, g, "the shared INN joins the CRM record");
    assert_eq!(values(&s, &g)["segment"], json!("vip"));

    // A newer bank value still does not win.
    let mut newer = abs_ivanov();
    newer.segment = Some("private".into());
    s.ingest(&event("abs", "A-100", 2, 40, newer)).unwrap();
    assert_eq!(values(&s, &g)["segment"], json!("vip"));
    let history = s.history(&g, Some("segment"), 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].system, "crm");

    // With the default rules, segment is core banking's alone: the card value never wins.
    let d = open(b);
    let g = d
        .ingest(&event("cards", "C-7", 1, 20, cards_ivanov()))
        .unwrap()
        .golden_id;
    assert!(!values(&d, &g).contains_key("segment"));
}

fn father_and_son_stay_apart(b: Backend) {
    let s = open(b);
    let address = Address {
        kind: "primary".into(),
        text: "Тула, ул. Мира, д. 7, кв. 12".into(),
        postal_code: Some("300041".into()),
    };
    let father = Party {
        source_id: "A-1".into(),
        last_name: Some("Сидоров".into()),
        first_name: Some("Иван".into()),
        middle_name: Some("Петрович".into()),
        birth_date: date(1955, 4, 10),
        phones: vec!["+79265550101".into()],
        addresses: vec![address.clone()],
        ..Party::default()
    };
    let son = Party {
        source_id: "A-2".into(),
        middle_name: Some("Иванович".into()),
        birth_date: date(1985, 7, 21),
        ..father.clone()
    };
    let f = s.ingest(&event("abs", "A-1", 1, 10, father)).unwrap();
    let o = s.ingest(&event("abs", "A-2", 1, 20, son)).unwrap();
    assert_eq!(o.action, IngestAction::Created);
    assert_ne!(f.golden_id, o.golden_id);
    assert_eq!(o.reviews_opened, 0);
    assert_eq!(s.stats().unwrap().reviews_open, 0);

    // A card record that matches the son by name and phone must not pull the father in:
    // joining the son's golden record is fine, the father's is refused.
    let card = Party {
        source_id: "C-1".into(),
        last_name: Some("Sidorov".into()),
        first_name: Some("Ivan".into()),
        middle_name: Some("Ivanovich".into()),
        birth_date: date(1985, 7, 21),
        phones: vec!["+79265550101".into()],
        ..Party::default()
    };
    let c = s.ingest(&event("cards", "C-1", 1, 30, card)).unwrap();
    assert_eq!(c.golden_id, o.golden_id);
    assert!(c.merged.is_empty());
    assert_ne!(golden_of(&s, "abs", "A-1"), golden_of(&s, "abs", "A-2"));
}

/// Ingests the abs record and the unsure card record; returns their golden ids and the
/// review between them.
fn unsure_pair(s: &GoldenStore) -> (String, String, Review) {
    let a = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap();
    let c = s
        .ingest(&event("cards", "C-8", 1, 20, cards_ivanov_unsure()))
        .unwrap();
    assert_eq!(c.action, IngestAction::Created);
    assert_eq!(c.reviews_opened, 1);
    let open = s.reviews(Some(ReviewStatus::Open), 10).unwrap();
    assert_eq!(open.len(), 1);
    (a.golden_id, c.golden_id, open[0].clone())
}

fn unsure_pair_opens_a_review(b: Backend) {
    let s = open(b);
    let (ga, gc, r) = unsure_pair(&s);
    assert_ne!(ga, gc);
    assert_eq!(r.status, ReviewStatus::Open);
    assert_eq!(r.reason, "probable");
    assert!(
        r.probability >= 0.5 && r.probability < 0.95,
        "{}",
        r.probability
    );
    let mut goldens = [r.golden_a.clone(), r.golden_b.clone()];
    goldens.sort();
    assert_eq!(goldens, [ga, gc]);
    assert_eq!(s.review(r.id).unwrap().as_ref(), Some(&r));
    assert_eq!(s.review(r.id + 100).unwrap(), None);
    assert!(
        s.reviews(Some(ReviewStatus::Merged), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.reviews(None, 10).unwrap().len(), 1);
    assert_eq!(s.stats().unwrap().reviews_open, 1);

    // The same record again, newer but with the same values: no second review.
    s.ingest(&event("cards", "C-8", 2, 25, cards_ivanov_unsure()))
        .unwrap();
    assert_eq!(s.reviews(None, 10).unwrap().len(), 1);
}

fn review_merge_merges(b: Backend) {
    let s = open(b);
    let (ga, gc, r) = unsure_pair(&s);
    drain_outbox(&s);
    let decided = s
        .decide_review(r.id, ReviewDecision::Merge, "steward.anna")
        .unwrap();
    assert_eq!(decided.status, ReviewStatus::Merged);
    assert_eq!(decided.decided_by.as_deref(), Some("steward.anna"));
    assert!(decided.decided_at.is_some());
    assert_eq!(decided.golden_a, decided.golden_b);

    let (survivor, loser) = (ga.clone().min(gc.clone()), ga.max(gc));
    let lv = view(&s, &loser);
    assert_eq!(lv.state, GoldenState::Merged);
    assert_eq!(lv.merged_into.as_deref(), Some(survivor.as_str()));
    assert!(lv.xrefs.is_empty());
    let sv = view(&s, &survivor);
    assert_eq!(sv.xrefs.len(), 2);
    assert_eq!(sv.absorbed, std::slice::from_ref(&loser));
    assert_eq!(golden_of(&s, "cards", "C-8"), survivor);
    // The card record's e-mail arrived with the merge, recorded as the review's doing.
    assert_eq!(
        sv.record.fields["emails"].value,
        json!(["s.ivanov@example.ru"])
    );
    let h = s.history(&survivor, Some("emails"), 10).unwrap();
    assert_eq!(h[0].reason, "review");
    assert_eq!(h[0].actor.as_deref(), Some("steward.anna"));

    let out = drain_outbox(&s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].golden_id, survivor);
    assert_eq!(out[0].absorbed, [loser]);
    assert_eq!(
        s.stats().unwrap(),
        GoldenStats {
            goldens_active: 1,
            goldens_merged: 1,
            xrefs: 2,
            reviews_open: 0,
            outbox: 0
        }
    );

    // A decided review cannot be decided again.
    for d in [ReviewDecision::Merge, ReviewDecision::KeepApart] {
        assert!(matches!(
            s.decide_review(r.id, d, "steward.boris"),
            Err(StoreError::Conflict(_))
        ));
    }
    assert!(matches!(
        s.decide_review(9_999, ReviewDecision::Merge, "steward.boris"),
        Err(StoreError::NotFound(_))
    ));
}

fn keep_apart_prevents_auto_merge(b: Backend) {
    let s = open(b);
    let (ga, gc, r) = unsure_pair(&s);
    let decided = s
        .decide_review(r.id, ReviewDecision::KeepApart, "steward.anna")
        .unwrap();
    assert_eq!(decided.status, ReviewStatus::KeptApart);
    assert!(matches!(
        s.decide_review(r.id, ReviewDecision::Merge, "steward.anna"),
        Err(StoreError::Conflict(_))
    ));

    // Now the card record carries the bank's phone: alone, a certain merge.
    let mut sure = cards_ivanov_unsure();
    sure.phones = vec!["+79161234567".into()];
    let out = s.ingest(&event("cards", "C-8", 2, 30, sure)).unwrap();
    assert_eq!(out.action, IngestAction::Updated);
    assert!(out.merged.is_empty());
    assert_eq!(
        out.reviews_opened, 0,
        "the steward decided this pair already"
    );
    assert_eq!(golden_of(&s, "abs", "A-100"), ga);
    assert_eq!(golden_of(&s, "cards", "C-8"), gc);
    assert_eq!(s.stats().unwrap().goldens_active, 2);
}

fn later_inn_merges_two_goldens(b: Backend) {
    let s = open(b);
    let a = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap();
    let card = Party {
        source_id: "C-9".into(),
        last_name: Some("Ivanov".into()),
        first_name: Some("Sergey".into()),
        phones: vec!["+79037778899".into()],
        ..Party::default()
    };
    let c = s
        .ingest(&event("cards", "C-9", 1, 20, card.clone()))
        .unwrap();
    assert_eq!(
        c.action,
        IngestAction::Created,
        "a namesake, as far as we know"
    );
    assert_ne!(a.golden_id, c.golden_id);
    drain_outbox(&s);

    let with_inn = Party {
        inn: Some(INN_IVANOV.into()),
        ..card
    };
    let out = s.ingest(&event("cards", "C-9", 2, 30, with_inn)).unwrap();
    assert_eq!(out.action, IngestAction::Updated);
    assert_eq!(out.golden_id, a.golden_id, "the older id survives");
    assert_eq!(out.merged, std::slice::from_ref(&c.golden_id));
    assert_eq!(view(&s, &c.golden_id).state, GoldenState::Merged);
    assert_eq!(golden_of(&s, "cards", "C-9"), a.golden_id);
    let out = drain_outbox(&s);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].golden_id, a.golden_id);
    assert_eq!(out[0].absorbed, std::slice::from_ref(&c.golden_id));
    let merge_history = s.history(&a.golden_id, Some("phones"), 10).unwrap();
    assert_eq!(merge_history[0].reason, "merge");
    assert_eq!(merge_history[0].new, Some(json!(["+79037778899"])));
}

fn unmerge_splits_and_stays_split(b: Backend) {
    let s = open(b);
    let abs = event("abs", "A-100", 1, 10, abs_ivanov());
    let card = event("cards", "C-7", 1, 20, cards_ivanov());
    let g = s.ingest(&abs).unwrap().golden_id;
    assert_eq!(s.ingest(&card).unwrap().golden_id, g);
    drain_outbox(&s);

    let new_id = s.unmerge(&g, "cards", "C-7", "steward.anna").unwrap();
    assert_ne!(new_id, g);
    assert_eq!(golden_of(&s, "cards", "C-7"), new_id);
    assert_eq!(golden_of(&s, "abs", "A-100"), g);
    // The remaining golden record is rebuilt without the card record's values.
    let rest = values(&s, &g);
    assert_eq!(rest["phones"], json!(["+79161234567"]));
    assert_eq!(view(&s, &g).xrefs.len(), 1);
    let detached = values(&s, &new_id);
    assert_eq!(detached["last_name"], json!("Ivanov"));
    let h = s.history(&g, Some("phones"), 10).unwrap();
    assert_eq!(h[0].reason, "unmerge");
    assert_eq!(h[0].actor.as_deref(), Some("steward.anna"));
    assert_eq!(h[0].old, Some(json!(["+79161234567", "+79031112233"])));
    assert_eq!(s.history(&new_id, None, 10).unwrap()[0].reason, "unmerge");

    let mut out: Vec<String> = drain_outbox(&s).into_iter().map(|o| o.golden_id).collect();
    out.sort();
    let mut both = vec![g.clone(), new_id.clone()];
    both.sort();
    assert_eq!(out, both);

    // Replaying the old events changes nothing; a newer card version is kept apart.
    for e in [&abs, &card] {
        assert_eq!(s.ingest(e).unwrap().action, IngestAction::Unchanged);
    }
    let newer = event("cards", "C-7", 2, 40, cards_ivanov());
    let out = s.ingest(&newer).unwrap();
    assert_eq!(out.action, IngestAction::Updated);
    assert_eq!(out.golden_id, new_id);
    assert!(out.merged.is_empty());
    assert_eq!(out.reviews_opened, 0);
    assert_eq!(s.stats().unwrap().goldens_active, 2);

    // A golden record of one source record has nothing to detach.
    assert!(matches!(
        s.unmerge(&g, "abs", "A-100", "steward.anna"),
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.unmerge(&g, "cards", "C-7", "steward.anna"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.unmerge(&g, "cards", "nope", "steward.anna"),
        Err(StoreError::NotFound(_))
    ));
}

fn unmerge_drops_the_absorbed_id(b: Backend) {
    let s = open(b);
    let g1 = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap()
        .golden_id;
    let g2 = s
        .ingest(&event("abs", "A-200", 1, 11, abs_kuznetsova()))
        .unwrap()
        .golden_id;
    s.merge(&g1, &g2, "steward.anna").unwrap();
    assert_eq!(view(&s, &g1).absorbed, std::slice::from_ref(&g2));
    let g3 = s.unmerge(&g1, "abs", "A-200", "steward.anna").unwrap();
    assert!(view(&s, &g1).absorbed.is_empty());
    assert!(view(&s, &g3).absorbed.is_empty());
    // Rebuilt from the remaining member alone.
    assert_eq!(values(&s, &g1)["phones"], json!(["+79161234567"]));
    assert_eq!(values(&s, &g3)["phones"], json!(["+79115550202"]));
}

fn history_has_provenance(b: Backend) {
    let s = open(b);
    let g = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap()
        .golden_id;
    s.ingest(&event("cards", "C-7", 4, 20, cards_ivanov()))
        .unwrap();
    let phones = s.history(&g, Some("phones"), 10).unwrap();
    assert_eq!(phones.len(), 2, "newest first");
    let (newest, first) = (&phones[0], &phones[1]);
    assert_eq!(newest.golden_id, g);
    assert_eq!(newest.field, "phones");
    assert_eq!(newest.system, "cards");
    assert_eq!(newest.event_id, "cards-C-7-v4");
    assert_eq!(newest.version, 4);
    assert_eq!(newest.event_time, t(20));
    assert_eq!(newest.reason, "event");
    assert_eq!(newest.actor, None);
    assert_eq!(newest.old, Some(json!(["+79161234567"])));
    assert_eq!(first.old, None);
    assert_eq!(first.system, "abs");
    assert!(newest.id > first.id);

    let all = s.history(&g, None, 100).unwrap();
    assert!(all.iter().any(|h| h.field == "inn" && h.system == "abs"));
    // Names come from abs only: the card record's Latin names changed nothing.
    assert_eq!(
        all.iter().filter(|h| h.field == "last_name").count(),
        1,
        "no history for a candidate that did not win"
    );
    assert_eq!(s.history(&g, None, 2).unwrap().len(), 2);
}

fn outbox_and_done(b: Backend) {
    let s = open(b);
    let g1 = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap()
        .golden_id;
    let g2 = s
        .ingest(&event("abs", "A-200", 1, 11, abs_kuznetsova()))
        .unwrap()
        .golden_id;
    let out = s.outbox(10).unwrap();
    assert_eq!(
        out.iter().map(|o| o.golden_id.as_str()).collect::<Vec<_>>(),
        [g1.as_str(), g2.as_str()],
        "oldest first"
    );
    assert_eq!(s.outbox(1).unwrap().len(), 1);
    s.outbox_done(&[out[0].outbox_id, 12_345]).unwrap();
    let left = s.outbox(10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].golden_id, g2);

    // A change re-queues g1 behind g2; an entry renders the record as it is now.
    let mut newer = abs_ivanov();
    newer.phones = vec!["+79160000001".into()];
    s.ingest(&event("abs", "A-100", 2, 30, newer)).unwrap();
    let out = s.outbox(10).unwrap();
    assert_eq!(
        out.iter().map(|o| o.golden_id.as_str()).collect::<Vec<_>>(),
        [g2.as_str(), g1.as_str()]
    );
    assert_eq!(out[1].version, 2);
    assert_eq!(out[1].party.phones, ["+79160000001"]);
    assert_eq!(out[1].event_time, t(30));
    // A newer version that changes no value is not published again.
    drain_outbox(&s);
    let mut same = abs_ivanov();
    same.phones = vec!["+79160000001".into()];
    assert_eq!(
        s.ingest(&event("abs", "A-100", 3, 40, same))
            .unwrap()
            .action,
        IngestAction::Updated
    );
    assert!(s.outbox(10).unwrap().is_empty());
    s.outbox_done(&[]).unwrap();
}

fn steward_merge_and_errors(b: Backend) {
    let s = open(b);
    let g1 = s
        .ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap()
        .golden_id;
    let g2 = s
        .ingest(&event("abs", "A-200", 1, 11, abs_kuznetsova()))
        .unwrap()
        .golden_id;
    let card = s
        .ingest(&event("cards", "C-8", 1, 12, cards_ivanov_unsure()))
        .unwrap()
        .golden_id;
    assert!(matches!(
        s.merge(&g1, &g1, "steward.anna"),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.merge(&g1, "G0000000404", "steward.anna"),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.merge(&g1, &g2, " "),
        Err(StoreError::Invalid(_))
    ));
    // The survivor may be the newer id when the steward says so; chains are followed.
    s.merge(&g2, &g1, "steward.anna").unwrap();
    s.merge(&card, &g2, "steward.anna").unwrap();
    assert!(matches!(
        s.merge(&g1, &card, "steward.anna"),
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(golden_of(&s, "abs", "A-100"), card);
    let v = view(&s, &card);
    assert_eq!(v.absorbed, [g1.clone(), g2.clone()]);
    assert_eq!(v.xrefs.len(), 3);
    // The merge closed the open review between the two records.
    let reviews = s.reviews(None, 10).unwrap();
    assert!(reviews.iter().all(|r| r.status == ReviewStatus::Superseded));
    assert_eq!(view(&s, &g1).merged_into.as_deref(), Some(g2.as_str()));
    assert!(view(&s, &g1).party.is_none());
}

fn rejects_malformed_events(b: Backend) {
    let s = open(b);
    let mut e = event("abs", "A-100", 1, 10, abs_ivanov());
    e.source_id = " ".into();
    assert!(matches!(s.ingest(&e), Err(StoreError::Invalid(_))));
    let good = event("abs", "A-200", 1, 10, abs_kuznetsova());
    let err = s.ingest_many(&[good, e]).unwrap_err();
    assert!(matches!(&err, StoreError::Invalid(m) if m.contains("event 1")));
    assert_eq!(
        s.stats().unwrap().xrefs,
        0,
        "a refused batch writes nothing"
    );
}

fn ingest_many_matches_single_ingest(b: Backend) {
    let events = [
        event("abs", "A-100", 1, 10, abs_ivanov()),
        event("cards", "C-7", 1, 20, cards_ivanov()),
        event("abs", "A-200", 1, 30, abs_kuznetsova()),
        event("cards", "C-8", 1, 40, cards_ivanov_unsure()),
    ];
    let batch = open(b);
    let outs = batch.ingest_many(&events).unwrap();
    let single = open(b);
    let singles: Vec<IngestOutcome> = events.iter().map(|e| single.ingest(e).unwrap()).collect();
    assert_eq!(outs, singles);
    assert_eq!(batch.stats().unwrap(), single.stats().unwrap());
}

fn reopens_an_existing_store(b: Backend) {
    // Opening applies the schema again; it must be idempotent and keep the counters.
    match b {
        Backend::Sqlite | Backend::SqliteEncrypted => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("golden.db");
            {
                let s = GoldenStore::open_sqlite(&path, MdmSettings::default()).unwrap();
                s.ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
                    .unwrap();
            }
            let s = GoldenStore::open_sqlite(&path, MdmSettings::default()).unwrap();
            let out = s
                .ingest(&event("abs", "A-200", 1, 10, abs_kuznetsova()))
                .unwrap();
            assert_eq!(out.golden_id, "G0000000002");
        }
        Backend::Postgres | Backend::PostgresEncrypted => {
            let f = open(b);
            f.ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
                .unwrap();
            let schema = f._pg_schema.as_ref().unwrap();
            let again =
                GoldenStore::open_postgres(&schema.search_path_url(), MdmSettings::default())
                    .unwrap()
                    .with_cipher(f.store.cipher.clone());
            let out = again
                .ingest(&event("abs", "A-200", 1, 10, abs_kuznetsova()))
                .unwrap();
            assert_eq!(out.golden_id, "G0000000002");
            // Both connections see one store.
            assert_eq!(f.stats().unwrap().goldens_active, 2);
        }
    }
}

fn views_serialise(b: Backend) {
    let s = open(b);
    let (_, _, r) = unsure_pair(&s);
    let review = serde_json::to_value(&r).unwrap();
    assert_eq!(review["status"], json!("open"));
    assert_eq!(review["a"]["system"], json!("abs"));
    let g = golden_of(&s, "abs", "A-100");
    let v = serde_json::to_value(view(&s, &g)).unwrap();
    assert_eq!(v["state"], json!("active"));
    assert_eq!(v["party"]["source_id"], json!(g));
    let h = serde_json::to_value(s.history(&g, None, 1).unwrap()).unwrap();
    assert!(h[0]["event_time"].is_string());
    assert_eq!(
        serde_json::to_value(s.stats().unwrap()).unwrap()["reviews_open"],
        json!(1)
    );
    assert_eq!(
        serde_json::from_value::<ReviewDecision>(json!("keep_apart")).unwrap(),
        ReviewDecision::KeepApart
    );
}

/// A connection the server closed (restart, failover) is replaced at the next call.
fn postgres_reconnects(b: Backend) {
    let s = open(b);
    s.ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .unwrap();
    let name = s._pg_schema.as_ref().map(|p| p.name.clone()).unwrap();
    let mut admin = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls).unwrap();
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "the store's one connection");
    let out = s
        .ingest(&event("abs", "A-200", 1, 10, abs_kuznetsova()))
        .unwrap();
    assert_eq!(out.golden_id, "G0000000002");
    assert_eq!(s.stats().unwrap().xrefs, 2);
}

/// The hub calls the store from `spawn_blocking`: opening, writing and reading there must
/// work, and dropping the store on an async task must not panic.
async fn from_spawn_blocking(b: Backend) {
    let fixture = tokio::task::spawn_blocking(move || open(b))
        .await
        .expect("open in spawn_blocking");
    let fixture = Arc::new(fixture);
    let f = fixture.clone();
    let out =
        tokio::task::spawn_blocking(move || f.ingest(&event("abs", "A-100", 1, 10, abs_ivanov())))
            .await
            .expect("join")
            .expect("ingest");
    assert_eq!(out.action, IngestAction::Created);
    let f = fixture.clone();
    let pending = tokio::task::spawn_blocking(move || f.outbox(10))
        .await
        .expect("join")
        .expect("outbox");
    assert_eq!(pending.len(), 1);
    // Drops the store (and a PostgreSQL connection) on this async task.
    let Ok(fixture) = Arc::try_unwrap(fixture) else {
        panic!("the fixture is still shared");
    };
    let Fixture {
        store,
        _sqlite_dir,
        _pg_schema,
    } = fixture;
    drop(store);
    // Schema clean-up connects synchronously: do it off the async task.
    tokio::task::spawn_blocking(move || drop((_sqlite_dir, _pg_schema)))
        .await
        .expect("clean up");
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(super::Backend::Sqlite) } )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn from_spawn_blocking() { super::from_spawn_blocking(super::Backend::Sqlite).await }
        }
        mod postgres {
            $( #[test] fn $name() { super::$name(super::Backend::Postgres) } )*
            #[test] fn reconnects() { super::postgres_reconnects(super::Backend::Postgres) }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn from_spawn_blocking() { super::from_spawn_blocking(super::Backend::Postgres).await }
        }
        mod sqlite_encrypted {
            $( #[test] fn $name() { super::$name(super::Backend::SqliteEncrypted) } )*
        }
        mod postgres_encrypted {
            $( #[test] fn $name() { super::$name(super::Backend::PostgresEncrypted) } )*
        }
    };
}

suite!(
    creates_a_golden_record,
    replay_changes_nothing,
    bank_and_card_records_join,
    event_order_does_not_matter,
    crm_mastered_field_never_from_a_bank,
    father_and_son_stay_apart,
    unsure_pair_opens_a_review,
    review_merge_merges,
    keep_apart_prevents_auto_merge,
    later_inn_merges_two_goldens,
    unmerge_splits_and_stays_split,
    unmerge_drops_the_absorbed_id,
    history_has_provenance,
    outbox_and_done,
    steward_merge_and_errors,
    rejects_malformed_events,
    ingest_many_matches_single_ingest,
    reopens_an_existing_store,
    views_serialise,
);

// ------------------------------------------------------ encryption at rest ----

/// Every text cell of the tables holding personal data, read through the store's own
/// connection (the same on both backends).
fn stored_cells(store: &GoldenStore) -> Vec<String> {
    store
        .run(TxKind::Read, |tx| {
            let mut out = Vec::new();
            for sql in [
                "SELECT record FROM golden",
                "SELECT event FROM golden_xref",
                "SELECT match_record FROM golden_xref",
                "SELECT old_value FROM golden_history WHERE old_value IS NOT NULL",
                "SELECT new_value FROM golden_history WHERE new_value IS NOT NULL",
            ] {
                for r in tx.db.query(sql, &[])? {
                    out.push(r.text(0)?);
                }
            }
            Ok(out)
        })
        .expect("read stored cells")
}

/// Values planted in the fixtures' parties that must never be stored in clear.
const PLANTED: [&str; 5] = [
    "Иванов",
    "Кузнецова",
    INN_IVANOV,
    "79161234567",
    "s.ivanov@example.ru",
];

fn ingest_people(store: &GoldenStore) {
    for e in [
        event("abs", "A-100", 1, 10, abs_ivanov()),
        event("cards", "C-7", 1, 20, cards_ivanov()),
        event("cards", "C-8", 1, 30, cards_ivanov_unsure()),
        event("abs", "A-200", 1, 40, abs_kuznetsova()),
    ] {
        store.ingest(&e).expect("ingest");
    }
}

/// A store's golden views and histories, to compare before and after a rotation.
fn snapshot(store: &GoldenStore) -> Vec<(GoldenView, Vec<HistoryEntry>)> {
    let mut ids: Vec<String> = ["A-100", "A-200"]
        .iter()
        .map(|id| golden_of(store, "abs", id))
        .collect();
    ids.push(golden_of(store, "cards", "C-8"));
    ids.iter()
        .map(|g| {
            (
                view(store, g),
                store.history(g, None, 1_000).expect("history"),
            )
        })
        .collect()
}

/// A second store on the fixture's database (another process's view of it).
fn reopen(f: &Fixture, cipher: Option<Arc<FieldCipher>>) -> GoldenStore {
    let store = match (&f._sqlite_dir, &f._pg_schema) {
        (Some(dir), _) => {
            GoldenStore::open_sqlite(&dir.path().join("golden.db"), MdmSettings::default())
        }
        (None, Some(schema)) => {
            GoldenStore::open_postgres(&schema.search_path_url(), MdmSettings::default())
        }
        (None, None) => panic!("fixture without a database"),
    };
    store.expect("reopen").with_cipher(cipher)
}

fn nothing_personal_is_stored_in_clear(b: Backend) {
    let f = open(b);
    ingest_people(&f);
    let cells = stored_cells(&f);
    assert!(cells.len() > 10, "{} cells", cells.len());
    for cell in &cells {
        assert!(cell.starts_with("enc:v1:k1:"), "a personal column in clear");
        for planted in PLANTED {
            assert!(!cell.contains(planted), "{planted} stored in clear");
        }
    }
    // Lookups by id keys still work: the index holds hashes, not values.
    let out = f
        .ingest(&event(
            "crm",
            "X-1",
            1,
            50,
            Party {
                source_id: "X-1".into(),
                last_name: Some("Иванов".into()),
                inn: Some(INN_IVANOV.into()),
                ..Party::default()
            },
        ))
        .expect("ingest by INN");
    assert_eq!(out.golden_id, golden_of(&f, "abs", "A-100"));
    // And the SQLite file itself (with its WAL) holds none of the planted values.
    if let Some(dir) = &f._sqlite_dir {
        for entry in std::fs::read_dir(dir.path()).expect("list db dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read db file");
            for planted in PLANTED {
                let found = bytes
                    .windows(planted.len())
                    .any(|w| w == planted.as_bytes());
                assert!(!found, "{planted} found in the raw SQLite file");
            }
        }
    }
}

fn rotation_re_encrypts_every_value_and_keeps_it_readable(b: Backend) {
    // Plain values first (a store from before encryption was enabled), then k1, then k2.
    let f = open_plain(b, MdmSettings::default());
    f.ingest(&event("abs", "A-100", 1, 10, abs_ivanov()))
        .expect("ingest plain");
    let k1 = reopen(&f, Some(test_cipher("k1")));
    k1.ingest(&event("cards", "C-7", 1, 20, cards_ivanov()))
        .expect("ingest k1");
    k1.ingest(&event("cards", "C-8", 1, 30, cards_ivanov_unsure()))
        .expect("ingest k1");
    k1.ingest(&event("abs", "A-200", 1, 40, abs_kuznetsova()))
        .expect("ingest k1");
    let cells = stored_cells(&k1);
    assert!(
        cells.iter().any(|c| !c.starts_with("enc:")),
        "some plain values"
    );
    assert!(
        cells.iter().any(|c| c.starts_with("enc:v1:k1:")),
        "some k1 values"
    );
    let before = snapshot(&k1);

    let k2 = reopen(&f, Some(test_cipher("k2")));
    let mut lines = Vec::new();
    let totals =
        crate::crypto::rotate::run(&[&k2], 3, &mut |l| lines.push(l.to_string())).expect("rotate");
    assert_eq!(totals.scanned, rows_with_personal_data(&k2));
    assert!(totals.changed > 0 && totals.changed <= totals.scanned);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("golden_history") && l.contains("done")),
        "{lines:?}"
    );
    for cell in stored_cells(&k2) {
        assert!(
            cell.starts_with("enc:v1:k2:"),
            "a value not under the active key"
        );
    }
    // A store with only k2 reads everything: nothing still needs k1.
    let only_k2 = reopen(
        &f,
        Some(Arc::new(
            FieldCipher::new("k2", [("k2".to_string(), [0x22; 32])]).expect("key"),
        )),
    );
    assert_eq!(snapshot(&only_k2), before);
    // A second run finds nothing to do.
    let again = crate::crypto::rotate::run(&[&k2], 3, &mut |_| {}).expect("rotate again");
    assert_eq!(again.changed, 0);
    // Without keys the encrypted store refuses clearly, naming the record.
    let none = reopen(&f, None);
    let e = none
        .golden(&golden_of(&k2, "abs", "A-100"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("golden.record G") && e.contains("no [encryption]"),
        "{e}"
    );
}

/// Rows of the tables a rotation reads.
fn rows_with_personal_data(store: &GoldenStore) -> u64 {
    store
        .run(TxKind::Read, |tx| {
            let mut n = 0;
            for table in ["golden", "golden_xref", "golden_history"] {
                let r = tx.db.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?;
                n += one(r, "count")?.int(0)?;
            }
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .expect("count")
}

fn tampering_is_an_error_naming_the_record(b: Backend) {
    let f = open(b);
    ingest_people(&f);
    let g = golden_of(&f, "abs", "A-100");
    let other = golden_of(&f, "abs", "A-200");
    // Copy another record's ciphertext over this one: authenticated to G…2, not G…1.
    f.run(TxKind::Write, |tx| {
        tx.db.execute(
            "UPDATE golden SET record = (SELECT record FROM golden WHERE golden_id = $1) \
             WHERE golden_id = $2",
            &[Param::from(&other), Param::from(&g)],
        )?;
        Ok(())
    })
    .expect("tamper");
    let e = f.golden(&g).unwrap_err().to_string();
    assert!(
        e.contains(&format!("golden.record {g}")) && e.contains("authentication"),
        "{e}"
    );
    for planted in PLANTED {
        assert!(!e.contains(planted), "{e}");
    }
}

mod encryption {
    use super::Backend;
    #[test]
    fn sqlite_nothing_personal_is_stored_in_clear() {
        super::nothing_personal_is_stored_in_clear(Backend::SqliteEncrypted)
    }
    #[test]
    fn postgres_nothing_personal_is_stored_in_clear() {
        super::nothing_personal_is_stored_in_clear(Backend::PostgresEncrypted)
    }
    #[test]
    fn sqlite_rotation() {
        super::rotation_re_encrypts_every_value_and_keeps_it_readable(Backend::Sqlite)
    }
    #[test]
    fn postgres_rotation() {
        super::rotation_re_encrypts_every_value_and_keeps_it_readable(Backend::Postgres)
    }
    #[test]
    fn sqlite_tampering() {
        super::tampering_is_an_error_naming_the_record(Backend::SqliteEncrypted)
    }
    #[test]
    fn postgres_tampering() {
        super::tampering_is_an_error_naming_the_record(Backend::PostgresEncrypted)
    }
}
