//! Scale-out: three `hub run` processes with one configuration — Kafka bus, six partitions,
//! the PostgreSQL state store — share the work of one sink's consumer group, and one of them
//! runs the file-drop source. The one running the source is killed with SIGKILL in the
//! middle of the load. Checked: every customer reaches the CRM exactly once with its latest
//! version; the killed instance's partitions moved to the survivors once the group noticed the
//! death (read from the instances' `partitions_assigned` log lines), and nothing of them was
//! delivered before; the survivors kept their own partitions through the rebalance
//! (cooperative assignment: no revocation) and went on delivering meanwhile; a survivor took
//! the source over and ingests the next files.
//!
//! Runs on the real broker (`scripts/kafka.sh`) and PostgreSQL (`HUB_TEST_POSTGRES`,
//! `scripts/postgres.sh`); without `HUB_TEST_POSTGRES` it fails, it never skips.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hub_tests::hub::{HubProcess, drop_file, files_in, init, wait_for};
use integration_hub::bus::Bus;
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::demo_data::{self, COLUMNS_TOML, Generated, Options};
use integration_hub::sandbox_crm::SandboxCrm;
use integration_hub::sql::Db;
use integration_hub::sql::postgres::PgDb;

const INSTANCES: usize = 3;
const PARTITIONS: u32 = 6;
const CUSTOMERS: usize = 20_000;
/// Kafka's session timeout in the test config: how long a killed member keeps its partitions.
const SESSION_TIMEOUT_MS: u32 = 6_000;
const SOURCE: &str = "abs-customers";
/// Everything the test waits for together stays well under two minutes.
const STEP: Duration = Duration::from_secs(45);
/// Requests in flight per instance, and the CRM's answer time: delivery (at most
/// 3 × 8 / 15 ms = 1,600 records/s) stays behind the source, so every partition still has
/// work queued when the file is wholly published.
const CONCURRENCY: u64 = 8;
const CRM_LATENCY: Duration = Duration::from_millis(15);
/// A write can repeat only for keys the CRM acknowledged but the killed instance had not yet
/// recorded: one group of 32 acknowledgements plus the requests in flight.
const MAX_REPEATS: u64 = 32 + CONCURRENCY;

fn postgres_url() -> String {
    match std::env::var("HUB_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "HUB_TEST_POSTGRES is not set: run `scripts/postgres.sh start` and \
             `export HUB_TEST_POSTGRES=$(scripts/postgres.sh url)` (this suite never skips)"
        ),
    }
}

/// Runs `sql` on the admin connection. The PostgreSQL client blocks on a runtime of its
/// own, so it runs on a thread of its own, never on the test's async task.
fn admin_batch(admin: &str, sql: &str) -> Result<(), String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut db = PgDb::connect(admin, 0).map_err(|e| e.to_string())?;
            db.batch(sql).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the admin thread panicked".into()))
    })
}

/// A schema of its own for this run, dropped at the end.
struct Schema {
    admin: String,
    name: String,
}

impl Schema {
    fn create(admin: &str, name: &str) -> Schema {
        admin_batch(admin, &format!("CREATE SCHEMA {name}"))
            .expect("create the test schema in HUB_TEST_POSTGRES");
        Schema {
            admin: admin.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The URL the hubs use: the schema as `search_path`.
    fn url(&self) -> String {
        let sep = if self.admin.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}options=-c%20search_path%3D{}",
            self.admin, self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = admin_batch(
            &self.admin,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// The one configuration every instance runs, with absolute paths for what they share
/// (inbox, secrets); `data_dir` stays relative, so each copy keeps its own local folder.
fn config_text(prefix: &str, base: &Path, crm: &str) -> String {
    format!(
        r#"[hub]
data_dir = "var"

[bus]
kind = "kafka"
topic_prefix = "{prefix}"

[bus.kafka]
bootstrap_servers = "{bootstrap}"
default_partitions = {PARTITIONS}
session_timeout_ms = {SESSION_TIMEOUT_MS}

[state]
store = "postgres"
postgres_url = "file:{state_url}"

[http]
listen = "127.0.0.1:0"

[[sources]]
name = "{SOURCE}"
kind = "file_drop"
entity = "party"

[sources.file_drop]
inbox = "{inbox}"
encoding = "windows-1251"
delimiter = ";"
done_marker = ".done"
poll_interval_ms = 100

[sources.columns]
{COLUMNS_TOML}
[[sinks]]
name = "crm"
kind = "crm_rest"

[sinks.crm_rest]
base_url = "{crm}"
token = "file:{token}"
concurrency = {CONCURRENCY}
max_attempts = 6
initial_backoff_ms = 50
max_backoff_ms = 2000

[sinks.delivery]
retry_delays_secs = []
"#,
        bootstrap = hub_tests::kafka::bootstrap(),
        state_url = base.join("state.url").display(),
        inbox = base.join("inbox").display(),
        token = base.join("crm.token").display(),
    )
}

fn log_of(hub: &HubProcess) -> String {
    std::fs::read_to_string(&hub.log).unwrap_or_default()
}

/// The live instances whose logs say they took the source's lease.
fn source_holder(hubs: &[Option<HubProcess>]) -> Vec<usize> {
    hubs.iter()
        .enumerate()
        .filter_map(|(i, h)| h.as_ref().map(|h| (i, log_of(h))))
        .filter(|(_, log)| log.contains("source_lease_taken"))
        .map(|(i, _)| i)
        .collect()
}

fn generate(first_id: u64, customers: usize, version: i64, seed: u64) -> Generated {
    demo_data::generate(&Options {
        customers,
        invalid_ratio: 0.0,
        resend_ratio: 0.0,
        seed,
        first_id,
        version,
    })
}

/// Which partition of the canonical topic each key went to, read back by an observer group.
async fn partitions_of_keys(prefix: &str, keys: usize) -> anyhow::Result<HashMap<String, i32>> {
    let bus = KafkaBus::new(&KafkaConfig::new(hub_tests::kafka::bootstrap()))?;
    let topic = format!("{prefix}.canonical");
    let mut consumer = bus.subscribe(&format!("{prefix}-observer"), &topic).await?;
    let mut out = HashMap::new();
    let deadline = Instant::now() + STEP;
    while out.len() < keys {
        anyhow::ensure!(
            Instant::now() < deadline,
            "read {} of {keys} keys from {topic}",
            out.len()
        );
        for r in consumer.poll(5_000, Duration::from_millis(500)).await? {
            out.insert(r.key, r.partition);
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_load_and_survive_a_sigkill() {
    init();
    let started = Instant::now();
    let admin = postgres_url();
    let prefix = hub_tests::kafka::unique("scale");
    let schema = Schema::create(&admin, &prefix.replace('-', "_"));
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    std::fs::create_dir_all(base.join("inbox")).unwrap();
    std::fs::write(base.join("state.url"), schema.url()).unwrap();
    let token = "test-token";
    std::fs::write(base.join("crm.token"), token).unwrap();
    let crm = SandboxCrm::new().with_token(token);
    crm.inject_delay(CRM_LATENCY, u32::MAX);
    let (addr, _crm_task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
    let text = config_text(&prefix, base, &format!("http://{addr}"));

    // Three instances, one configuration text; each copy in a folder of its own.
    let mut hubs: Vec<Option<HubProcess>> = Vec::new();
    for i in 0..INSTANCES {
        let home = base.join(format!("hub{i}"));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join("hub.toml"), &text).unwrap();
        hubs.push(Some(
            HubProcess::start(&home.join("hub.toml"), &home.join("hub.log")).unwrap(),
        ));
    }
    // All three up and coordinated: one runs the source, two stand by.
    wait_for("one instance runs the source, two stand by", STEP, || {
        for h in hubs.iter_mut().flatten() {
            h.assert_running()?;
        }
        let standby = hubs
            .iter()
            .flatten()
            .filter(|h| log_of(h).contains("source_standby"))
            .count();
        Ok(source_holder(&hubs).len() == 1 && standby == INSTANCES - 1)
    })
    .await
    .unwrap();
    let holder = source_holder(&hubs)[0];
    let group = format!("{prefix}-sink-crm");
    // The sink's group settled: two partitions each, all six owned.
    wait_for(
        "the sink's partitions spread over the three instances",
        STEP,
        || {
            let owned: Vec<BTreeSet<i32>> = hubs
                .iter()
                .flatten()
                .map(|h| owned(&assignment_changes(&log_of(h), &group)))
                .collect();
            let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
            Ok(all.len() == PARTITIONS as usize
                && owned
                    .iter()
                    .all(|o| o.len() == PARTITIONS as usize / INSTANCES))
        },
    )
    .await
    .unwrap();

    // The load: 20,000 customers.
    let first = generate(1, CUSTOMERS, 1, 11);
    let inbox = base.join("inbox");
    let dropped_at = Instant::now();
    drop_file(&inbox, "customers_1.csv", &first.bytes).unwrap();
    // The file wholly published (archived), so every partition has work queued, and a
    // quarter delivered.
    wait_for("the file published and a quarter delivered", STEP, || {
        for h in hubs.iter_mut().flatten() {
            h.assert_running()?;
        }
        Ok(crm.contacts_len() >= CUSTOMERS / 4
            && !files_in(&inbox.join("archive"), ".csv").is_empty())
    })
    .await
    .unwrap();

    // SIGKILL the instance running the source, mid-load.
    let before_kill = crm.contacts_len();
    let load_secs = dropped_at.elapsed().as_secs_f64();
    let killed_log = log_of(hubs[holder].as_ref().unwrap());
    hubs[holder].take().unwrap().kill9().unwrap();
    let killed_at: DateTime<Utc> = Utc::now();
    let killed_instant = Instant::now();
    let killed_partitions = owned(&assignment_changes(&killed_log, &group));
    assert!(
        before_kill < CUSTOMERS,
        "the kill came after the whole load was delivered; nothing was tested"
    );
    assert_eq!(killed_partitions.len(), PARTITIONS as usize / INSTANCES);

    // A survivor takes the source over.
    wait_for("a survivor takes the source over", STEP, || {
        for h in hubs.iter_mut().flatten() {
            h.assert_running()?;
        }
        Ok(!source_holder(&hubs).is_empty())
    })
    .await
    .unwrap();
    let source_takeover = killed_instant.elapsed();

    // The next files go through the survivor: newer versions of the first 2,000 customers
    // and 1,000 new ones.
    let updates = generate(1, 2_000, 2, 12);
    let newcomers = generate(CUSTOMERS as u64 + 1, 1_000, 2, 13);
    drop_file(&inbox, "customers_2.csv", &updates.bytes).unwrap();
    drop_file(&inbox, "customers_3.csv", &newcomers.bytes).unwrap();
    let total = CUSTOMERS + newcomers.valid_keys.len();
    let mut expected: BTreeMap<String, i64> = BTreeMap::new();
    for (g, v) in [(&first, 1), (&updates, 2), (&newcomers, 2)] {
        for k in &g.valid_keys {
            expected.insert(k.clone(), v);
        }
    }
    assert_eq!(expected.len(), total);
    wait_for("every customer at its latest version", STEP, || {
        for h in hubs.iter_mut().flatten() {
            h.assert_running()?;
        }
        if crm.contacts_len() < total || files_in(&inbox.join("archive"), ".csv").len() < 3 {
            return Ok(false);
        }
        Ok(expected
            .iter()
            .all(|(k, v)| crm.contact(k).is_some_and(|c| c.version == *v)))
    })
    .await
    .unwrap();
    let all_delivered = killed_instant.elapsed();

    // Exactly once, newest version, nothing older written over newer.
    assert_eq!(crm.contacts_len(), total);
    assert_eq!(crm.version_regressions(), 0);
    let writes_expected =
        (first.valid_keys.len() + updates.valid_keys.len() + newcomers.valid_keys.len()) as u64;
    let repeats = crm.total_writes() - writes_expected;
    assert!(
        repeats <= MAX_REPEATS,
        "{repeats} repeated CRM writes after the kill"
    );
    assert_eq!(
        crm.stats().replays,
        repeats,
        "a repeated write carried other data"
    );
    assert!(files_in(&inbox.join("processing"), ".csv").is_empty());

    // The killed instance's partitions moved to the survivors once the group noticed the
    // death; the survivors kept their own (cooperative assignment revokes nothing of theirs).
    let mut moved_at: BTreeMap<i32, DateTime<Utc>> = BTreeMap::new();
    for h in hubs.iter().flatten() {
        for c in assignment_changes(&log_of(h), &group) {
            if c.at <= killed_at {
                continue;
            }
            assert!(
                c.assigned,
                "a survivor lost partitions {:?} after the kill",
                c.partitions
            );
            for p in c.partitions {
                moved_at.entry(p).or_insert(c.at);
            }
        }
    }
    assert_eq!(
        moved_at.keys().copied().collect::<BTreeSet<i32>>(),
        killed_partitions,
        "after the kill the survivors took exactly the killed instance's partitions"
    );
    let first_move = *moved_at.values().min().unwrap();
    let last_move = *moved_at.values().max().unwrap();

    // Per CRM contact, its last write: nothing of the killed instance's partitions was
    // delivered between the kill (plus what it had in flight) and their move; the survivors
    // delivered meanwhile.
    let partition_of = partitions_of_keys(&prefix, total).await.unwrap();
    eprintln!("{}", timeline(&crm, &partition_of, killed_at));
    let in_flight_end = killed_at + chrono::Duration::milliseconds(500);
    let mut survivors_meanwhile = 0u64;
    for c in crm.snapshot() {
        let Some(p) = partition_of.get(&c.external_id) else {
            continue;
        };
        if c.updated_at <= in_flight_end || c.updated_at >= first_move {
            continue;
        }
        if let Some(moved) = moved_at.get(p) {
            assert!(
                c.updated_at >= *moved,
                "{} (partition {p}) was written at {} after the kill, before its partition moved at \
                 {moved}",
                c.external_id,
                c.updated_at
            );
        } else {
            survivors_meanwhile += 1;
        }
    }
    assert!(
        survivors_meanwhile > 0,
        "the survivors delivered nothing while the group waited for the dead member's session"
    );
    let secs = |t: DateTime<Utc>| (t - killed_at).num_milliseconds() as f64 / 1000.0;

    // The survivors stop cleanly.
    for h in hubs.iter_mut() {
        if let Some(h) = h.take() {
            let status = h.terminate(Duration::from_secs(30)).unwrap();
            assert!(status.success(), "hub exited with {status} after SIGTERM");
        }
    }
    eprintln!(
        "scale-out: {before_kill} of {CUSTOMERS} delivered by {INSTANCES} instances in \
         {load_secs:.1} s before the kill ({:.0} records/s); killed instance's partitions \
         {killed_partitions:?} moved {:.1}-{:.1} s after the kill; {survivors_meanwhile} \
         customers delivered by the survivors meanwhile; source taken over after {:.1} s; all \
         {total} delivered {:.1} s after the kill; repeated writes {repeats}; test {:.1} s",
        before_kill as f64 / load_secs,
        secs(first_move),
        secs(last_move),
        source_takeover.as_secs_f64(),
        all_delivered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(schema);
}

/// One change of an instance's share of the sink's consumer group, from its log.
#[derive(Debug)]
struct AssignmentChange {
    at: DateTime<Utc>,
    assigned: bool,
    partitions: Vec<i32>,
}

/// The `partitions_assigned` / `partitions_revoked` lines of `group` in a hub's JSON log.
fn assignment_changes(log: &str, group: &str) -> Vec<AssignmentChange> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["group"].as_str() == Some(group))
        .filter_map(|v| {
            let assigned = match v["event"].as_str()? {
                "partitions_assigned" => true,
                "partitions_revoked" => false,
                _ => return None,
            };
            Some(AssignmentChange {
                at: v["timestamp"].as_str()?.parse().ok()?,
                assigned,
                partitions: v["partitions"]
                    .as_str()?
                    .split(',')
                    .filter_map(|p| p.parse().ok())
                    .collect(),
            })
        })
        .collect()
}

/// The partitions an instance owns after `changes`.
fn owned(changes: &[AssignmentChange]) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for c in changes {
        for p in &c.partitions {
            if c.assigned {
                out.insert(*p);
            } else {
                out.remove(p);
            }
        }
    }
    out
}

/// Per partition, the CRM's last write of each customer in half-second buckets from the kill:
/// what a failed run shows about who delivered when.
fn timeline(
    crm: &SandboxCrm,
    partition_of: &HashMap<String, i32>,
    killed_at: DateTime<Utc>,
) -> String {
    let mut rows: BTreeMap<i32, BTreeMap<i64, u32>> = BTreeMap::new();
    for c in crm.snapshot() {
        if let Some(&p) = partition_of.get(&c.external_id) {
            let bucket = (c.updated_at - killed_at)
                .num_milliseconds()
                .div_euclid(500);
            *rows.entry(p).or_default().entry(bucket).or_default() += 1;
        }
    }
    let mut out = String::from("last writes per partition, 0.5 s buckets from the kill:\n");
    for (p, buckets) in rows {
        let cells: Vec<String> = (0..=24)
            .map(|b| buckets.get(&b).map_or("-".into(), |n| n.to_string()))
            .collect();
        out.push_str(&format!("  p{p}: {}\n", cells.join(" ")));
    }
    out
}
