//! The chaos suite, on the real Apache Kafka broker: a `hub run` process carries customer
//! files into the sandbox CRM while
//! 1. it is killed with SIGKILL ten times, at spread-out points of progress, during a
//!    100,000-record load, and restarted each time;
//! 2. the Kafka broker is restarted when about half of a load is delivered;
//! 3. the CRM fails 30 % of its writes (5xx and timeouts) for a minute.
//!
//! Every load holds later versions of some customers (update files interleaved with the
//! base files), invalid rows (quarantined) and customers the CRM refuses for good (`422`).
//! After each: every good customer in the CRM exactly once at its latest version, the
//! dead-letter topic holding exactly the refused records, and the counts reconciled: rows
//! read = delivered + superseded older versions + dead-lettered + quarantined.
//!
//! The cases run one at a time (one restarts the broker), each with its own topic prefix
//! and data folder. Waiting is bounded polling; the one-minute fault window is a deliberate
//! duration.

use std::time::{Duration, Instant};

use hub_tests::chaos::{Bed, Load, LoadSpec, build_load, crm_complete, verify, wait_for_async};
use hub_tests::hub::{HubProcess, files_in, wait_for};
use hub_tests::kafka::{run_script, unique};
use tokio::sync::Mutex;

/// Held by every case: one restarts the broker, and all share two cores.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// Longest wait for one step of a case.
const STEP: Duration = Duration::from_secs(150);

/// Waits until the load is complete in the CRM and every file archived, the sink and its
/// retry task have committed everything, and every refused record is on the dead-letter
/// topic; `hub` must stay up meanwhile.
async fn settle(bed: &Bed, load: &Load, hub: &mut HubProcess) {
    let archive = bed.inbox().join("archive");
    wait_for("every file archived and the CRM complete", STEP, || {
        hub.assert_running()?;
        Ok(files_in(&archive, ".csv").len() == load.files.len() && crm_complete(&bed.crm, load))
    })
    .await
    .unwrap();
    wait_for_async("the sink drained its topics", STEP, || async {
        Ok(bed.sink_lag().await? == 0)
    })
    .await
    .unwrap();
    hub.assert_running().unwrap();
    wait_for_async("a dead letter for every refused customer", STEP, || async {
        let keys: std::collections::BTreeSet<String> = bed
            .dead_letters()
            .await?
            .into_iter()
            .map(|l| l.key)
            .collect();
        Ok(keys.len() >= load.rejected.len())
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_during_a_100k_record_load() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    const KILLS: u64 = 10;
    let load = build_load(&LoadSpec {
        base_files: 8,
        base_customers: 11_000,
        update_files: 4,
        update_customers: 3_000,
        rejected: 300,
        invalid_ratio: 0.01,
        seed: 41,
    });
    assert_eq!(load.rows, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let bed = Bed::new(dir.path(), &unique("chaos-kill"), &load, 10_000)
        .await
        .unwrap();
    let log = dir.path().join("hub.log");

    // Two files at first, one more at every kill: at even kills just before it, so the hub
    // dies while reading that file (it must read it again from the start), at odd kills
    // after the restart, so the hub dies while only delivering.
    let mut to_drop = load.files.iter();
    for f in to_drop.by_ref().take(2) {
        bed.drop_file(f).unwrap();
    }
    let processing = bed.inbox().join("processing");
    let mut hub = HubProcess::start(&bed.config, &log).unwrap();
    let mut kills = Vec::new();
    for i in 1..=KILLS {
        // By delivered count: evenly over the contacts the load must leave in the CRM.
        let at = load.latest.len() as u64 * i / (KILLS + 1);
        wait_for(&format!("{at} CRM writes before kill {i}"), STEP, || {
            hub.assert_running()?;
            Ok(bed.crm.total_writes() >= at)
        })
        .await
        .unwrap();
        let mid_read = i % 2 == 0;
        if mid_read && let Some(f) = to_drop.next() {
            // Killed once a part of the file is on the bus (or once it was read whole, if
            // reading outran the look).
            let published = bed.canonical_end().await.unwrap();
            bed.drop_file(f).unwrap();
            let part = (f.rows / 4) as i64;
            wait_for_async(&format!("a part of {} published", f.name), STEP, || async {
                Ok(bed.canonical_end().await? >= published + part)
            })
            .await
            .unwrap();
        }
        hub.kill9().unwrap();
        let reading = files_in(&processing, ".csv").len();
        kills.push((bed.crm.total_writes(), reading));
        hub = HubProcess::start(&bed.config, &log).unwrap();
        if !mid_read && let Some(f) = to_drop.next() {
            bed.drop_file(f).unwrap();
        }
    }
    for f in to_drop {
        bed.drop_file(f).unwrap();
    }
    assert!(
        kills.last().is_some_and(|(w, _)| *w < load.good_rows),
        "the last kill came after the load was delivered"
    );
    assert!(
        kills.iter().filter(|(_, reading)| *reading > 0).count() >= 3,
        "too few kills while a file was being read: {kills:?}"
    );
    settle(&bed, &load, &mut hub).await;
    let r = verify(&bed, &load).await.unwrap();
    let elapsed = started.elapsed();
    eprintln!(
        "chaos sigkill: {} rows in {} files, {KILLS} kills at (CRM writes, files being read) \
         {kills:?}; {r:?}; {:.0} s, {:.0} rows/s",
        load.rows,
        load.files.len(),
        elapsed.as_secs_f64(),
        load.rows as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        r.dlq_duplicates, 0,
        "a refused record is listed more than once"
    );
    // A second copy on the topic needs a kill between writing a letter and remembering it:
    // at most one batch of letters per kill.
    assert!(
        r.dlq_copies <= KILLS * 16,
        "{} second copies of letters for {KILLS} kills",
        r.dlq_copies
    );
    // A write repeats only when the hub died between the CRM's acknowledgement and its
    // record of it: at most one group of 32 plus 16 in flight per kill, each the same
    // envelope again (a replay to the CRM).
    assert!(
        r.crm_replays <= KILLS * 48,
        "{} repeated writes after {KILLS} kills",
        r.crm_replays
    );
    let status = hub.terminate(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "hub exited with {status} after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_in_the_middle_of_a_load() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let load = build_load(&LoadSpec {
        base_files: 2,
        base_customers: 9_000,
        update_files: 1,
        update_customers: 2_000,
        rejected: 50,
        invalid_ratio: 0.01,
        seed: 43,
    });
    let dir = tempfile::tempdir().unwrap();
    let bed = Bed::new(dir.path(), &unique("chaos-broker"), &load, 10_000)
        .await
        .unwrap();
    let mut hub = HubProcess::start(&bed.config, &dir.path().join("hub.log")).unwrap();
    for f in &load.files {
        bed.drop_file(f).unwrap();
    }
    let half = load.latest.len() as u64 / 2;
    wait_for("half of the load delivered", STEP, || {
        hub.assert_running()?;
        Ok(bed.crm.total_writes() >= half)
    })
    .await
    .unwrap();
    let at_restart = bed.crm.total_writes();
    let restart_began = Instant::now();
    tokio::task::spawn_blocking(|| run_script("restart"))
        .await
        .unwrap()
        .unwrap();
    let restart_took = restart_began.elapsed();
    let after_restart = bed.crm.total_writes();
    assert!(
        at_restart < load.good_rows,
        "the broker restarted after the load was delivered"
    );
    settle(&bed, &load, &mut hub).await;
    let r = verify(&bed, &load).await.unwrap();
    let (read, dead, quarantined) = (
        bed.metric("hub_source_records_read_total").await.unwrap(),
        bed.metric("hub_dead_letters_total").await.unwrap(),
        bed.metric("hub_source_records_quarantined_total")
            .await
            .unwrap(),
    );
    eprintln!(
        "chaos broker restart: {} rows; broker restart began at {at_restart} CRM writes and \
         took {:.1} s ({after_restart} writes by its end); {r:?}; hub metrics: read {read}, \
         dead letters {dead}, quarantined {quarantined}; {:.0} s",
        load.rows,
        restart_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        r.dlq_duplicates, 0,
        "a refused record is listed more than once"
    );
    assert_eq!(
        r.dlq_copies, 0,
        "no letter is written twice without a crash"
    );
    assert_eq!(r.crm_replays, 0, "no write repeats without a crash");
    assert_eq!(quarantined as u64, load.invalid);
    hub.assert_running().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_failing_thirty_percent_for_a_minute() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    const WINDOW: Duration = Duration::from_secs(60);
    // The hub gives up on a request after 1 s; a timed-out write is held back for 1.5 s.
    const CRM_TIMEOUT_MS: u64 = 1_000;
    let load = build_load(&LoadSpec {
        base_files: 2,
        base_customers: 9_000,
        update_files: 1,
        update_customers: 2_000,
        rejected: 50,
        invalid_ratio: 0.01,
        seed: 47,
    });
    let dir = tempfile::tempdir().unwrap();
    let bed = Bed::new(dir.path(), &unique("chaos-crm"), &load, CRM_TIMEOUT_MS)
        .await
        .unwrap();
    let mut hub = HubProcess::start(&bed.config, &dir.path().join("hub.log")).unwrap();
    for f in &load.files {
        bed.drop_file(f).unwrap();
    }
    wait_for("the load under way", STEP, || {
        hub.assert_running()?;
        Ok(bed.crm.total_writes() >= 2_000)
    })
    .await
    .unwrap();
    let before = bed.crm.stats();
    bed.crm.inject_flaky(
        30,
        50,
        Duration::from_millis(CRM_TIMEOUT_MS * 3 / 2),
        WINDOW,
        20261126,
    );
    // The window's length is the point of the case: wait it out, watching the hub.
    wait_for("the end of the fault window", WINDOW + STEP, || {
        hub.assert_running()?;
        Ok(!bed.crm.flaky_active())
    })
    .await
    .unwrap();
    let during = bed.crm.stats();
    let window_writes = during.writes - before.writes;
    let failed = during.flaky_errors + during.flaky_timeouts;
    // Requests the CRM saw in the window: applied writes, plus failures not applied.
    let requests = window_writes + failed - during.flaky_timeouts_applied;
    let share = failed as f64 / requests.max(1) as f64;
    assert!(
        during.writes < load.good_rows,
        "the load was delivered before the window ended"
    );
    settle(&bed, &load, &mut hub).await;
    let r = verify(&bed, &load).await.unwrap();
    let retries = bed.metric("hub_sink_retries_total").await.unwrap();
    let dead = bed.metric("hub_dead_letters_total").await.unwrap();
    eprintln!(
        "chaos crm faults: {} rows; in the {} s window: {requests} requests, {} 5xx, {} \
         timeouts ({} applied), {window_writes} writes applied; failure share {share:.3}; \
         hub retries {retries}, dead letters {dead}; {r:?}; {:.0} s",
        load.rows,
        WINDOW.as_secs(),
        during.flaky_errors,
        during.flaky_timeouts,
        during.flaky_timeouts_applied,
        started.elapsed().as_secs_f64()
    );
    assert!(
        (0.2..=0.4).contains(&share) && during.flaky_errors > 0 && during.flaky_timeouts > 0,
        "the window failed {failed} of {requests} requests"
    );
    assert!(retries > 0.0, "no retries counted");
    // The retries and the breaker dead-lettered no good record: only the refused ones.
    assert_eq!(dead as u64, load.rejected.len() as u64);
    assert_eq!(r.dlq_duplicates, 0);
    assert_eq!(
        r.dlq_copies, 0,
        "no letter is written twice without a crash"
    );
    hub.assert_running().unwrap();
}
