//! Scale-out: three `hub run` processes with one configuration — Kafka bus, six partitions,
//! the PostgreSQL state store — share the work of one sink's consumer group, and one of them
//! runs the file-drop source. The one running the source is killed with SIGKILL in the
//! middle of the load. Checked: every customer reaches the CRM exactly once with its latest
//! version; the killed instance's partitions were taken over by the survivors (their
//! deliveries stall until the group notices the death, then resume); a survivor took the
//! source over and ingests the next file.
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
/// A write can repeat only for keys the CRM acknowledged but the killed instance had not yet
/// recorded: one group of 32 acknowledgements plus the 16 requests in flight.
const MAX_REPEATS: u64 = 48;

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
concurrency = 16
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

    // The load: 20,000 customers.
    let first = generate(1, CUSTOMERS, 1, 11);
    let inbox = base.join("inbox");
    let dropped_at = Instant::now();
    drop_file(&inbox, "customers_1.csv", &first.bytes).unwrap();
    wait_for("a quarter of the customers delivered", STEP, || {
        for h in hubs.iter_mut().flatten() {
            h.assert_running()?;
        }
        Ok(crm.contacts_len() >= CUSTOMERS / 4)
    })
    .await
    .unwrap();

    // SIGKILL the instance running the source, mid-load.
    let before_kill = crm.contacts_len();
    let load_secs = dropped_at.elapsed().as_secs_f64();
    hubs[holder].take().unwrap().kill9().unwrap();
    let killed_at: DateTime<Utc> = Utc::now();
    let killed_instant = Instant::now();
    assert!(
        before_kill < CUSTOMERS,
        "the kill came after the whole load was delivered; nothing was tested"
    );

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

    // The killed instance's partitions moved. Per partition of the canonical topic: the
    // first delivery after the kill. The survivors' partitions go on at once; the killed
    // instance's wait until the group notices its death, then a survivor delivers them.
    let partition_of = partitions_of_keys(&prefix, total).await.unwrap();
    let mut first_after: BTreeMap<i32, DateTime<Utc>> = BTreeMap::new();
    let mut before: BTreeMap<i32, u64> = BTreeMap::new();
    for c in crm.snapshot() {
        // Customers written once: their last write is their only delivery.
        if expected.get(&c.external_id) != Some(&1) || c.writes != 1 {
            continue;
        }
        let Some(&p) = partition_of.get(&c.external_id) else {
            continue;
        };
        if c.updated_at <= killed_at {
            *before.entry(p).or_default() += 1;
        } else {
            let e = first_after.entry(p).or_insert(c.updated_at);
            if c.updated_at < *e {
                *e = c.updated_at;
            }
        }
    }
    let partitions: BTreeSet<i32> = partition_of.values().copied().collect();
    assert_eq!(partitions.len(), PARTITIONS as usize, "{partitions:?}");
    assert!(
        partitions.iter().all(|p| first_after.contains_key(p)),
        "records delivered after the kill must include every partition: {first_after:?}"
    );
    let gaps: BTreeMap<i32, f64> = first_after
        .iter()
        .map(|(p, t)| (*p, (*t - killed_at).num_milliseconds() as f64 / 1000.0))
        .collect();
    let taken_over: Vec<i32> = gaps
        .iter()
        .filter(|(_, g)| **g >= 1.0)
        .map(|(p, _)| *p)
        .collect();
    assert!(
        !taken_over.is_empty(),
        "no partition waited for the killed instance's session to expire: {gaps:?}"
    );
    assert!(
        taken_over.len() < PARTITIONS as usize,
        "every partition stalled: the survivors did not go on with their own: {gaps:?}"
    );
    let partition_takeover = taken_over
        .iter()
        .filter_map(|p| gaps.get(p))
        .fold(0.0_f64, |a, b| a.max(*b));

    // The survivors stop cleanly.
    for h in hubs.iter_mut() {
        if let Some(h) = h.take() {
            let status = h.terminate(Duration::from_secs(30)).unwrap();
            assert!(status.success(), "hub exited with {status} after SIGTERM");
        }
    }
    eprintln!(
        "scale-out: {before_kill} of {CUSTOMERS} delivered by {INSTANCES} instances in \
         {load_secs:.1} s before the kill ({:.0} records/s); partitions before the kill \
         {before:?}; killed instance's partitions {taken_over:?} resumed {partition_takeover:.1} s \
         after the kill; source taken over after {:.1} s; all {total} delivered {:.1} s \
         after the kill; repeated writes {repeats}; test {:.1} s",
        before_kill as f64 / load_secs,
        source_takeover.as_secs_f64(),
        all_delivered.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    drop(schema);
}
