//! The vendor CRM connectors against their simulators: per connector, per documented
//! error, which failures are retried in place (and then succeed), which come back as
//! permanent failures for the dead-letter topic, which come back for review; batching; and
//! the rate limits (Dataverse's `Retry-After`, Bitrix24's leaky bucket).
//!
//! Backoffs are configured small so every test stays within a few seconds; the waits the
//! tests measure are the ones the CRMs ask for.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use adapters::crm::bitrix24::{Bitrix24Config, Bitrix24Connector};
use adapters::crm::connector::{ContactWrite, CrmConnector, CrmFailure, RetryPolicy, WriteOutcome};
use adapters::crm::dynamics::{DynamicsConfig, DynamicsConnector};
use adapters::crm::salesforce::{SalesforceConfig, SalesforceConnector};
use hub_tests::crm_sim::Fault;
use hub_tests::crm_sim::bitrix24::Bitrix24Sim;
use hub_tests::crm_sim::dynamics::DynamicsSim;
use hub_tests::crm_sim::salesforce::SalesforceSim;
use serde_json::{Value, json};

const TOKEN: &str = "test-token";

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Small, fast retries: four attempts, 20 ms doubling to 200 ms, a 2 s timeout.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        timeout_ms: 2_000,
        max_attempts: 4,
        initial_backoff_ms: 20,
        max_backoff_ms: 200,
    }
}

/// A synthetic customer (no real person): canonical fields as the hub carries them.
fn person(i: usize) -> ContactWrite {
    ContactWrite {
        external_id: format!("G{i:010}"),
        version: 1,
        source: "golden".to_owned(),
        envelope_id: format!("env-{i}"),
        fields: json!({
            "kind": "person",
            "last_name": format!("Testov{i}"),
            "first_name": "Ivan",
            "birth_date": "1980-01-02",
            "phones": [format!("+7900{i:07}")],
            "emails": [format!("client{i}@example.test")],
            "addresses": [{ "kind": "primary", "text": format!("Test street {i}"), "postal_code": "101000" }],
        }),
    }
}

fn people(n: usize) -> Vec<ContactWrite> {
    (0..n).map(person).collect()
}

fn with_fields(mut w: ContactWrite, patch: Value) -> ContactWrite {
    if let (Some(obj), Some(p)) = (w.fields.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            obj.insert(k.clone(), v.clone());
        }
    }
    w
}

fn failure(o: &WriteOutcome) -> &CrmFailure {
    match o {
        WriteOutcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn assert_all_written(outcomes: &[WriteOutcome], created: bool) {
    for (i, o) in outcomes.iter().enumerate() {
        match o {
            WriteOutcome::Written { created: c, .. } => assert_eq!(*c, created, "record {i}"),
            other => panic!("record {i}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Salesforce

async fn salesforce(
    configure: impl FnOnce(&mut SalesforceConfig),
) -> (SalesforceSim, SalesforceConnector) {
    let sim = SalesforceSim::new(TOKEN);
    let (addr, _) = sim.serve(any_port()).await.unwrap();
    let mut cfg = SalesforceConfig::new(format!("http://{addr}"), TOKEN);
    cfg.retry = fast_retry();
    configure(&mut cfg);
    (sim, SalesforceConnector::new(cfg).unwrap())
}

#[tokio::test]
async fn salesforce_450_records_take_3_collection_requests() {
    let (sim, sf) = salesforce(|_| {}).await;
    assert_eq!((sf.name(), sf.max_batch()), ("salesforce", 200));
    let batch = people(450);
    let out = sf.write_batch(&batch).await;
    assert_eq!(out.len(), 450);
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert_eq!(stats.collection_requests, 3);
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.largest_collection, 200);
    assert_eq!(sim.len(), 450);
    // The ids are the org's, in input order, and the fields arrived mapped.
    for (w, o) in batch.iter().zip(&out).step_by(97) {
        let WriteOutcome::Written { crm_id, .. } = o else {
            unreachable!()
        };
        assert_eq!(
            sim.external_id_of(crm_id).as_deref(),
            Some(w.external_id.as_str())
        );
    }
    let r = sim.record("G0000000007").unwrap();
    assert_eq!(r["LastName"], "Testov7");
    assert_eq!(r["Phone"], "+79000000007");
    assert_eq!(r["MailingPostalCode"], "101000");
    // Writing again updates.
    let out = sf.write_batch(&batch).await;
    assert_all_written(&out, false);
    assert_eq!(sim.len(), 450);
    assert_eq!(sim.stats().updated, 450);
}

#[tokio::test]
async fn salesforce_repeated_key_goes_into_a_later_request_in_order() {
    let (sim, sf) = salesforce(|_| {}).await;
    let first = person(1);
    let second = with_fields(person(1), json!({ "last_name": "Renamed", "version": 2 }));
    let out = sf.write_batch(&[first, person(2), second]).await;
    assert!(out.iter().all(WriteOutcome::is_written), "{out:?}");
    assert_eq!(sim.stats().collection_requests, 2);
    assert_eq!(sim.record("G0000000001").unwrap()["LastName"], "Renamed");
}

#[tokio::test]
async fn salesforce_transient_errors_are_retried_until_written() {
    let (sim, sf) = salesforce(|_| {}).await;
    sim.inject(Fault::Status(503), 1);
    sim.inject(Fault::Status(500), 1);
    sim.fail_record("G0000000003", "UNABLE_TO_LOCK_ROW", 1);
    let out = sf.write_batch(&people(10)).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    // 503, 500, the collection, then only the locked record: four attempts, the most the
    // test policy allows.
    assert_eq!(stats.requests, 4);
    assert_eq!(stats.collection_requests, 2);
    assert_eq!(stats.faults_served, 2);
    assert_eq!(sim.len(), 10);
}

#[tokio::test]
async fn salesforce_permanent_errors_are_failed_at_once() {
    let (sim, sf) = salesforce(|_| {}).await;
    sim.fail_record("G0000000004", "FIELD_CUSTOM_VALIDATION_EXCEPTION", 1);
    let mut batch = people(6);
    batch[1] = with_fields(person(1), json!({ "last_name": null }));
    batch[2] = with_fields(person(2), json!({ "last_name": "x".repeat(81) }));
    batch[3] = with_fields(person(3), json!({ "emails": ["not-an-address"] }));
    let out = sf.write_batch(&batch).await;
    assert!(out[0].is_written() && out[5].is_written());
    for (i, code, field) in [
        (1, "REQUIRED_FIELD_MISSING", "LastName"),
        (2, "STRING_TOO_LONG", "LastName"),
        (3, "INVALID_EMAIL_ADDRESS", "Email"),
        (4, "FIELD_CUSTOM_VALIDATION_EXCEPTION", ""),
    ] {
        let f = failure(&out[i]);
        assert!(!f.transient && !f.auth, "{i}: {f:?}");
        assert_eq!(f.code.as_deref(), Some(code), "{i}");
        assert_eq!(f.attempts, 1, "{i}: not retried");
        assert!(f.message.contains(field), "{i}: {}", f.message);
        assert!(
            !f.message.contains("x".repeat(20).as_str()),
            "no values in messages"
        );
    }
    assert_eq!(sim.stats().requests, 1, "nothing was retried");
}

#[tokio::test]
async fn salesforce_unknown_field_fails_the_whole_request_permanently() {
    let (sim, sf) = salesforce(|cfg| {
        cfg.fields = Some(
            [("last_name", "LastName"), ("inn", "Inn__c")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    })
    .await;
    let batch: Vec<ContactWrite> = (0..3)
        .map(|i| with_fields(person(i), json!({ "inn": "7707083893" })))
        .collect();
    let out = sf.write_batch(&batch).await;
    for o in &out {
        let f = failure(o);
        assert!(!f.transient);
        assert_eq!(
            (f.status, f.code.as_deref()),
            (Some(400), Some("INVALID_FIELD"))
        );
    }
    assert!(sim.is_empty());
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn salesforce_duplicate_external_id_comes_back_for_review() {
    for batch_size in [200, 1] {
        let (sim, sf) = salesforce(|cfg| cfg.batch_size = batch_size).await;
        sim.seed("G0000000001", json!({ "LastName": "One" }));
        sim.seed("G0000000001", json!({ "LastName": "Two" }));
        let out = sf.write_batch(&people(3)).await;
        assert!(out[0].is_written() && out[2].is_written(), "{out:?}");
        match &out[1] {
            WriteOutcome::Review { reason } => {
                assert!(
                    reason.contains("DUPLICATE_EXTERNAL_ID") || reason.contains("300"),
                    "{reason}"
                );
            }
            other => panic!("batch size {batch_size}: {other:?}"),
        }
        let expected_requests = if batch_size == 1 { 3 } else { 1 };
        assert_eq!(
            sim.stats().requests,
            expected_requests,
            "reviews are not retried"
        );
        assert_eq!(sim.stats().duplicates, 1);
    }
}

#[tokio::test]
async fn salesforce_request_limit_waits_the_configured_pause_then_succeeds() {
    let (sim, sf) = salesforce(|cfg| cfg.request_limit_pause_ms = 400).await;
    sim.set_budget(Some(0));
    let refill = {
        let sim = sim.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            sim.set_budget(None);
        })
    };
    let started = Instant::now();
    let out = sf.write_batch(&people(5)).await;
    refill.await.unwrap();
    assert_all_written(&out, true);
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let stats = sim.stats();
    assert_eq!((stats.limit_rejections, stats.requests), (1, 2));

    // A budget that stays spent: transient, with the pause, after every attempt.
    sim.set_budget(Some(0));
    let out = sf.write_batch(&[person(9)]).await;
    let f = failure(&out[0]);
    assert!(f.transient && !f.auth);
    assert_eq!(
        (f.status, f.code.as_deref()),
        (Some(403), Some("REQUEST_LIMIT_EXCEEDED"))
    );
    assert_eq!(f.retry_after, Some(Duration::from_millis(400)));
    assert_eq!(f.attempts, 4);
}

#[tokio::test]
async fn salesforce_rejected_session_is_flagged_auth_and_not_retried() {
    let sim = SalesforceSim::new(TOKEN);
    let (addr, _) = sim.serve(any_port()).await.unwrap();
    let mut cfg = SalesforceConfig::new(format!("http://{addr}"), "expired-token");
    cfg.retry = fast_retry();
    let out = SalesforceConnector::new(cfg)
        .unwrap()
        .write_batch(&people(2))
        .await;
    for o in &out {
        let f = failure(o);
        assert!(f.auth && f.transient, "{f:?}");
        assert_eq!(f.code.as_deref(), Some("INVALID_SESSION_ID"));
    }
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn salesforce_single_upserts_and_204_updates_read_the_id() {
    let (sim, sf) = salesforce(|cfg| cfg.batch_size = 1).await;
    let batch = people(3);
    assert_all_written(&sf.write_batch(&batch).await, true);
    assert_eq!(sim.stats().single_requests, 3);
    sim.answer_updates_with_204(true);
    let out = sf.write_batch(&batch).await;
    assert_all_written(&out, false);
    let WriteOutcome::Written { crm_id, .. } = &out[1] else {
        unreachable!()
    };
    assert_eq!(Some(crm_id.clone()), sim.id_of("G0000000001"));
    assert_eq!(sim.stats().reads, 3);
    assert_eq!(sim.stats().collection_requests, 0);
}

#[tokio::test]
async fn salesforce_answer_after_the_timeout_is_retried_without_duplicates() {
    let (sim, sf) = salesforce(|cfg| cfg.retry.timeout_ms = 300).await;
    sim.inject(Fault::Hang(Duration::from_millis(600)), 1);
    let out = sf.write_batch(&people(20)).await;
    // The org applied the first request; the retry updated the same records.
    assert_all_written(&out, false);
    assert_eq!(sim.len(), 20);
    assert_eq!((sim.stats().created, sim.stats().updated), (20, 20));
}

// ---------------------------------------------------------------------------------------
// Dynamics 365 / Dataverse

async fn dynamics(configure: impl FnOnce(&mut DynamicsConfig)) -> (DynamicsSim, DynamicsConnector) {
    let sim = DynamicsSim::new(TOKEN);
    let (addr, _) = sim.serve(any_port()).await.unwrap();
    let mut cfg = DynamicsConfig::new(format!("http://{addr}"), TOKEN);
    cfg.retry = fast_retry();
    configure(&mut cfg);
    (sim, DynamicsConnector::new(cfg).unwrap())
}

#[tokio::test]
async fn dynamics_upserts_each_record_with_bounded_concurrency() {
    let (sim, dy) = dynamics(|_| {}).await;
    assert_eq!((dy.name(), dy.max_batch()), ("dynamics", 1));
    let batch = people(300);
    let out = dy.write_batch(&batch).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert_eq!((stats.requests, stats.created), (300, 300));
    assert!(stats.peak_concurrency <= 8, "{stats:?}");
    assert_eq!(stats.without_odata_headers, 0);
    let WriteOutcome::Written { crm_id, .. } = &out[42] else {
        unreachable!()
    };
    assert_eq!(Some(crm_id.clone()), sim.id_of("G0000000042"));
    let row = sim.row("G0000000042").unwrap();
    assert_eq!(row["lastname"], "Testov42");
    assert_eq!(row["telephone1"], "+79000000042");
    assert_eq!(row["address1_postalcode"], "101000");
    assert_all_written(&dy.write_batch(&batch).await, false);
    assert_eq!(sim.len(), 300);
}

#[tokio::test]
async fn dynamics_service_protection_429_is_waited_out_per_retry_after() {
    let (sim, dy) = dynamics(|cfg| cfg.retry.max_attempts = 8).await;
    sim.set_request_limit(Some((40, Duration::from_secs(1))));
    let started = Instant::now();
    let out = dy.write_batch(&people(100)).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert!(stats.throttled > 0, "the limit was reached: {stats:?}");
    assert_eq!(
        stats.early_after_throttle, 0,
        "no request sent during a Retry-After: {stats:?}"
    );
    assert_eq!(stats.created, 100);
    // 100 requests at 40 per second need two more windows.
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dynamics_errors_are_retried_failed_or_reviewed_as_documented() {
    let (sim, dy) = dynamics(|_| {}).await;
    sim.seed(
        "G-other",
        json!({ "lastname": "Other", "emailaddress1": "client5@example.test" }),
    );
    sim.fail_key("G0000000001", 412, 2);
    sim.fail_key("G0000000002", 503, 1);
    let mut batch = people(6);
    batch[3] = with_fields(person(3), json!({ "last_name": "x".repeat(51) }));
    batch[4] = with_fields(person(4), json!({ "last_name": null }));
    let out = dy.write_batch(&batch).await;
    assert!(out[0].is_written(), "{:?}", out[0]);
    let retried = [&out[1], &out[2]];
    assert!(
        retried.iter().all(|o| o.is_written()),
        "412 and 503 are retried: {out:?}"
    );
    let too_long = failure(&out[3]);
    assert_eq!(
        (too_long.transient, too_long.code.as_deref()),
        (false, Some("0x80044331"))
    );
    let no_name = failure(&out[4]);
    assert_eq!(
        (no_name.transient, no_name.code.as_deref()),
        (false, Some("0x80040265"))
    );
    assert_eq!(no_name.attempts, 1);
    match &out[5] {
        WriteOutcome::Review { reason } => assert!(reason.contains("0x80040333"), "{reason}"),
        other => panic!("duplicate email: {other:?}"),
    }
    assert_eq!(sim.stats().duplicates, 1, "a review is not retried");
    assert_eq!(sim.len(), 1 + 3);
}

#[tokio::test]
async fn dynamics_unknown_column_and_rejected_token() {
    let (sim, dy) = dynamics(|cfg| {
        cfg.fields = Some(
            [("last_name", "lastname"), ("inn", "new_inn")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
    })
    .await;
    let out = dy
        .write_batch(&[with_fields(person(1), json!({ "inn": "7707083893" }))])
        .await;
    let f = failure(&out[0]);
    assert_eq!(
        (f.transient, f.status, f.code.as_deref()),
        (false, Some(400), Some("0x0"))
    );
    assert!(sim.is_empty());

    let sim = DynamicsSim::new(TOKEN);
    let (addr, _) = sim.serve(any_port()).await.unwrap();
    let mut cfg = DynamicsConfig::new(format!("http://{addr}"), "wrong");
    cfg.retry = fast_retry();
    let out = DynamicsConnector::new(cfg)
        .unwrap()
        .write_batch(&people(1))
        .await;
    let f = failure(&out[0]);
    assert!(f.auth && f.transient && f.attempts == 1, "{f:?}");
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn dynamics_204_answers_carry_the_id_in_odata_entity_id() {
    let (sim, dy) = dynamics(|cfg| {
        cfg.return_representation = false;
        cfg.duplicate_detection = false;
    })
    .await;
    let quoted = ContactWrite {
        external_id: "O'Brien & Co/1".to_owned(),
        ..person(1)
    };
    let out = dy.write_batch(&[quoted]).await;
    match &out[0] {
        WriteOutcome::Written { crm_id, created } => {
            assert_eq!(Some(crm_id.clone()), sim.id_of("O'Brien & Co/1"));
            assert!(!created, "a 204 does not tell");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn dynamics_answer_after_the_timeout_is_retried_without_duplicates() {
    let (sim, dy) = dynamics(|cfg| cfg.retry.timeout_ms = 300).await;
    sim.inject(Fault::Hang(Duration::from_millis(600)), 2);
    let out = dy.write_batch(&people(10)).await;
    assert!(out.iter().all(WriteOutcome::is_written), "{out:?}");
    assert_eq!(sim.len(), 10);
}

// ---------------------------------------------------------------------------------------
// Bitrix24

async fn bitrix24(
    sim: &Bitrix24Sim,
    configure: impl FnOnce(&mut Bitrix24Config),
) -> Bitrix24Connector {
    let (addr, _) = sim.serve(any_port()).await.unwrap();
    let mut cfg = Bitrix24Config::new(sim.webhook_url(addr));
    cfg.retry = fast_retry();
    configure(&mut cfg);
    Bitrix24Connector::new(cfg).unwrap()
}

#[tokio::test]
async fn bitrix24_450_records_take_batches_of_50_commands() {
    let sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&sim, |_| {}).await;
    assert_eq!((bx.name(), bx.max_batch()), ("bitrix24", 50));
    let batch = people(450);
    let out = bx.write_batch(&batch).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    // Nine chunks: a batch of finds and a batch of adds each.
    assert_eq!(
        (stats.requests, stats.batch_requests, stats.largest_batch),
        (18, 18, 50)
    );
    assert_eq!((stats.lists, stats.adds), (450, 450));
    assert_eq!(stats.limit_rejections, 0);
    let found = sim.contacts_with_origin("G0000000123");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["LAST_NAME"], "Testov123");
    assert_eq!(found[0]["ORIGINATOR_ID"], "integration-hub");
    assert_eq!(found[0]["PHONE"], json!(["+79000000123"]));
    let WriteOutcome::Written { crm_id, .. } = &out[123] else {
        unreachable!()
    };
    assert_eq!(found[0]["ID"], json!(crm_id));
    // Again: found, updated, nothing added.
    assert_all_written(&bx.write_batch(&batch).await, false);
    assert_eq!((sim.len(), sim.stats().updates), (450, 450));
}

#[tokio::test]
async fn bitrix24_default_pacing_stays_under_the_portal_limit() {
    // The portal's documented bucket (blocks above 50, drains 2/s) and the client's
    // defaults (2/s, burst 40): 44 requests, 4 past the burst.
    let sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&sim, |_| {}).await;
    let started = Instant::now();
    let out = bx.write_batch(&people(1_100)).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert_eq!(stats.requests, 44);
    assert_eq!(stats.limit_rejections, 0, "{stats:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bitrix24_recovers_from_query_limit_exceeded() {
    // A client that does not pace itself against a tight portal bucket.
    let sim = Bitrix24Sim::new("1", "secret");
    sim.set_limit(Some((3, 20.0)));
    let bx = bitrix24(&sim, |cfg| {
        cfg.requests_per_second = 1_000.0;
        cfg.burst = 1_000;
        cfg.batch_size = 10;
        cfg.retry.max_attempts = 10;
    })
    .await;
    let out = bx.write_batch(&people(200)).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert!(stats.limit_rejections > 0, "{stats:?}");
    assert_eq!((sim.len(), stats.adds), (200, 200), "no record added twice");
}

#[tokio::test]
async fn bitrix24_errors_are_retried_failed_or_reviewed_as_documented() {
    let sim = Bitrix24Sim::new("1", "secret");
    sim.seed(
        "G0000000001",
        "integration-hub",
        json!({ "LAST_NAME": "One" }),
    );
    sim.seed(
        "G0000000001",
        "integration-hub",
        json!({ "LAST_NAME": "Two" }),
    );
    // Same ORIGIN_ID from another system: not ours, not a duplicate.
    sim.seed(
        "G0000000002",
        "other-system",
        json!({ "LAST_NAME": "Else" }),
    );
    sim.fail_origin("G0000000005", "INTERNAL_SERVER_ERROR", 1);
    let bx = bitrix24(&sim, |_| {}).await;
    sim.inject(Fault::Status(500), 1);
    let mut batch = people(6);
    batch[3] = with_fields(person(3), json!({ "last_name": null }));
    batch[4] = with_fields(person(4), json!({ "emails": ["not-an-address"] }));
    let out = bx.write_batch(&batch).await;
    match &out[1] {
        WriteOutcome::Review { reason } => assert!(reason.contains("2 contacts"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(
        out[0].is_written() && out[2].is_written() && out[5].is_written(),
        "{out:?}"
    );
    for i in [3, 4] {
        let f = failure(&out[i]);
        assert!(!f.transient, "{i}: {f:?}");
        assert_eq!(f.code.as_deref(), Some("ERROR_CORE"), "{i}");
        assert_eq!(f.status, None, "{i}: a command error inside a batch answer");
    }
    // The first batch call failed (500), the retry found everything; record 5's add failed
    // once inside the batch and was retried with its find.
    let stats = sim.stats();
    assert_eq!(stats.faults_served, 1);
    assert_eq!(sim.contacts_with_origin("G0000000005").len(), 1);
    assert_eq!(
        sim.contacts_with_origin("G0000000001").len(),
        2,
        "left for review"
    );
    assert_eq!(
        sim.contacts_with_origin("G0000000002").len(),
        2,
        "ours was added beside"
    );
}

#[tokio::test]
async fn bitrix24_expired_token_is_flagged_auth_and_not_retried() {
    let sim = Bitrix24Sim::new("1", "secret");
    sim.set_auth_error(Some("expired_token"));
    let bx = bitrix24(&sim, |_| {}).await;
    let out = bx.write_batch(&people(3)).await;
    for o in &out {
        let f = failure(o);
        assert!(f.auth && f.transient, "{f:?}");
        assert_eq!(
            (f.status, f.code.as_deref()),
            (Some(401), Some("expired_token"))
        );
    }
    assert_eq!(sim.stats().requests, 1);
}

#[tokio::test]
async fn bitrix24_update_replaces_multiple_field_values() {
    let sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&sim, |_| {}).await;
    let w = with_fields(person(1), json!({ "phones": ["+71", "+72"] }));
    assert_all_written(&bx.write_batch(&[w]).await, true);
    let w = with_fields(
        person(1),
        json!({ "phones": ["+72", "+73"], "last_name": "Renamed" }),
    );
    assert_all_written(&bx.write_batch(&[w]).await, false);
    let found = sim.contacts_with_origin("G0000000001");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["PHONE"], json!(["+72", "+73"]));
    assert_eq!(found[0]["LAST_NAME"], "Renamed");
    assert_eq!(
        found[0]["EMAIL"],
        json!(["client1@example.test"]),
        "unchanged values stay"
    );
}

#[tokio::test]
async fn bitrix24_answer_after_the_timeout_does_not_add_twice() {
    let sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&sim, |cfg| cfg.retry.timeout_ms = 300).await;
    // The finds pass; the batch of adds is applied but answered too late.
    sim.inject(Fault::Pass, 1);
    sim.inject(Fault::Hang(Duration::from_millis(600)), 1);
    let out = bx.write_batch(&people(30)).await;
    assert_all_written(&out, false);
    let stats = sim.stats();
    assert_eq!((sim.len(), stats.adds, stats.updates), (30, 30, 30));
}

#[tokio::test]
async fn bitrix24_without_batching_calls_the_methods_directly() {
    let sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&sim, |cfg| cfg.batch_size = 1).await;
    let out = bx.write_batch(&people(5)).await;
    assert_all_written(&out, true);
    let stats = sim.stats();
    assert_eq!(
        (stats.requests, stats.batch_requests, stats.commands),
        (10, 0, 10)
    );
}

#[tokio::test]
async fn every_connector_returns_one_outcome_per_input_including_empty_ids() {
    let (_sf_sim, sf) = salesforce(|_| {}).await;
    let (_dy_sim, dy) = dynamics(|_| {}).await;
    let bx_sim = Bitrix24Sim::new("1", "secret");
    let bx = bitrix24(&bx_sim, |_| {}).await;
    let connectors: [&dyn CrmConnector; 3] = [&sf, &dy, &bx];
    let batch = vec![
        person(1),
        ContactWrite {
            external_id: String::new(),
            ..person(2)
        },
        person(3),
    ];
    for c in connectors {
        let out = c.write_batch(&batch).await;
        assert_eq!(out.len(), 3, "{}", c.name());
        assert!(
            out[0].is_written() && out[2].is_written(),
            "{}: {out:?}",
            c.name()
        );
        let f = failure(&out[1]);
        assert!(
            !f.transient && f.message.contains("empty"),
            "{}: {f:?}",
            c.name()
        );
        assert!(c.write_batch(&[]).await.is_empty());
    }
}
