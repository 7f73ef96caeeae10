//! Helpers of the chaos suite (`tests/tests/chaos.rs`): a customer load in several files with
//! later versions of some customers and customers the CRM refuses for good, a test bed on the
//! real Kafka broker, the lag of a consumer group (to know the pipeline drained), the
//! dead-letter topic read through the hub's own reader, and the check that every record of
//! the load ended where it must: the CRM at its latest version, the dead-letter topic, or
//! the quarantine.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use integration_hub::bus::kafka::{KafkaBus, KafkaConfig};
use integration_hub::config::BusKind;
use integration_hub::demo::{ConfigSpec, config_text};
use integration_hub::demo_data::{self, Options};
use integration_hub::dlq::{Dlq, ListQuery, LogEnd, StatusFilter};
use integration_hub::sandbox_crm::SandboxCrm;
use integration_hub::store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::hub::{files_in, free_port, init};

/// The CRM token the test beds use.
const TOKEN: &str = "chaos-token";

/// The shape of a load.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    /// Files of new customers (version 1) and customers in each.
    pub base_files: usize,
    pub base_customers: usize,
    /// Files of later versions (version 2) of the first `update_customers` customers of the
    /// first `update_files` base files, with other data.
    pub update_files: usize,
    pub update_customers: usize,
    /// Customers the CRM refuses for good, taken from base files no update touches.
    pub rejected: usize,
    /// Share of rows made invalid (quarantined).
    pub invalid_ratio: f64,
    pub seed: u64,
}

impl LoadSpec {
    /// Data rows in all files.
    pub fn rows(&self) -> usize {
        self.base_files * self.base_customers + self.update_files * self.update_customers
    }
}

/// One file of a load.
#[derive(Debug, Clone)]
pub struct LoadFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Data rows.
    pub rows: usize,
    /// 1-based lines of the invalid rows.
    pub invalid_lines: BTreeSet<u64>,
}

/// A load and what must come of it.
#[derive(Debug, Clone, Default)]
pub struct Load {
    /// In drop order.
    pub files: Vec<LoadFile>,
    /// Every customer the CRM must hold, with the version it must hold (the newest valid).
    pub latest: BTreeMap<String, i64>,
    /// Customers the CRM refuses: each must be on the dead-letter topic, once.
    pub rejected: BTreeSet<String>,
    /// Data rows in all files.
    pub rows: u64,
    /// Invalid rows (each must be in a quarantine file).
    pub invalid: u64,
    /// Valid rows of customers the CRM accepts.
    pub good_rows: u64,
}

/// Builds the load: base files interleaved with update files, so later versions arrive while
/// earlier ones are still on their way.
pub fn build_load(spec: &LoadSpec) -> Load {
    let mut load = Load::default();
    let mut base = Vec::new();
    let mut valid_rows: Vec<(String, i64)> = Vec::new();
    for b in 0..spec.base_files {
        let g = demo_data::generate(&Options {
            customers: spec.base_customers,
            invalid_ratio: spec.invalid_ratio,
            resend_ratio: 0.0,
            seed: spec.seed.wrapping_add(b as u64),
            first_id: 1 + (b * spec.base_customers) as u64,
            version: 1,
        });
        valid_rows.extend(g.valid_keys.iter().map(|k| (k.clone(), 1)));
        base.push((format!("base_{b:02}.csv"), g));
    }
    let mut updates = Vec::new();
    for u in 0..spec.update_files.min(spec.base_files) {
        let g = demo_data::generate(&Options {
            customers: spec.update_customers.min(spec.base_customers),
            invalid_ratio: spec.invalid_ratio,
            resend_ratio: 0.0,
            seed: spec.seed.wrapping_add(1_000 + u as u64),
            first_id: 1 + (u * spec.base_customers) as u64,
            version: 2,
        });
        valid_rows.extend(g.valid_keys.iter().map(|k| (k.clone(), 2)));
        updates.push((format!("update_{u:02}.csv"), g));
    }
    // Refused customers come from base files no update touches, spread evenly.
    let untouched: Vec<&String> = base
        .iter()
        .skip(spec.update_files)
        .flat_map(|(_, g)| g.valid_keys.iter())
        .collect();
    if spec.rejected > 0 && !untouched.is_empty() {
        let step = (untouched.len() / spec.rejected).max(1);
        load.rejected = untouched
            .iter()
            .step_by(step)
            .take(spec.rejected)
            .map(|k| (*k).clone())
            .collect();
    }
    for (key, version) in valid_rows {
        if load.rejected.contains(&key) {
            continue;
        }
        load.good_rows += 1;
        let v = load.latest.entry(key).or_insert(version);
        *v = (*v).max(version);
    }
    // Drop order: an update file after every second base file.
    let mut updates = updates.into_iter();
    for (i, b) in base.into_iter().enumerate() {
        load.files.push(load_file(b));
        if i % 2 == 1
            && let Some(u) = updates.next()
        {
            load.files.push(load_file(u));
        }
    }
    load.files.extend(updates.map(load_file));
    load.rows = load.files.iter().map(|f| f.rows as u64).sum();
    load.invalid = load
        .files
        .iter()
        .map(|f| f.invalid_lines.len() as u64)
        .sum();
    load
}

fn load_file((name, g): (String, demo_data::Generated)) -> LoadFile {
    LoadFile {
        name,
        rows: g.rows,
        invalid_lines: g.invalid.keys().copied().collect(),
        bytes: g.bytes,
    }
}

/// A test bed on the real broker in `dir`: a sandbox CRM requiring a token, which refuses
/// the load's rejected customers with `422`, and a config with the CRM request timeout
/// `crm_timeout_ms` and short retry-topic delays.
pub struct Bed {
    pub crm: SandboxCrm,
    pub config: PathBuf,
    pub port: u16,
    pub prefix: String,
    pub bootstrap: String,
    pub dir: PathBuf,
}

impl Bed {
    pub async fn new(
        dir: &Path,
        prefix: &str,
        load: &Load,
        crm_timeout_ms: u64,
    ) -> anyhow::Result<Bed> {
        init();
        std::fs::write(dir.join("crm.token"), TOKEN)?;
        let crm = SandboxCrm::new().with_token(TOKEN);
        crm.reject_keys(load.rejected.iter().cloned(), 422);
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await?;
        let port = free_port()?;
        let bootstrap = crate::kafka::bootstrap();
        let crm_extra = format!(
            "timeout_ms = {crm_timeout_ms}\nmax_attempts = 6\ninitial_backoff_ms = 50\n\
             max_backoff_ms = 1000\n\n[sinks.delivery]\nretry_delays_secs = [1, 2, 5]\n"
        );
        let text = config_text(&ConfigSpec {
            bus: BusKind::Kafka,
            topic_prefix: prefix,
            kafka_bootstrap: &bootstrap,
            http_listen: Some(&format!("127.0.0.1:{port}")),
            crm_base_url: &format!("http://{addr}"),
            crm_extra: &crm_extra,
        });
        std::fs::create_dir_all(dir.join("inbox"))?;
        let config = dir.join("hub.toml");
        std::fs::write(&config, text)?;
        Ok(Bed {
            crm,
            config,
            port,
            prefix: prefix.to_owned(),
            bootstrap,
            dir: dir.to_path_buf(),
        })
    }

    pub fn inbox(&self) -> PathBuf {
        self.dir.join("inbox")
    }

    pub fn drop_file(&self, f: &LoadFile) -> anyhow::Result<()> {
        crate::hub::drop_file(&self.inbox(), &f.name, &f.bytes)
    }

    /// Records of the sink's topic and of its retry topic not yet committed by the sink
    /// and its retry task.
    pub async fn sink_lag(&self) -> anyhow::Result<i64> {
        let (b, p) = (self.bootstrap.clone(), self.prefix.clone());
        tokio::task::spawn_blocking(move || {
            let main = group_lag(&b, &format!("{p}-sink-crm"), &format!("{p}.canonical"))?;
            let retry = group_lag(
                &b,
                &format!("{p}-sink-crm-retry"),
                &format!("{p}.retry.crm"),
            )?;
            Ok(main + retry)
        })
        .await?
    }

    /// Records ever published to `<prefix>.canonical` (the sum of its high watermarks).
    pub async fn canonical_end(&self) -> anyhow::Result<i64> {
        let (b, p) = (self.bootstrap.clone(), self.prefix.clone());
        tokio::task::spawn_blocking(move || {
            let marks = watermarks(&b, &format!("{p}.canonical"))?;
            Ok(marks.iter().map(|(_, _, high)| high).sum())
        })
        .await?
    }

    /// Every dead letter on `<prefix>.dlq`, read with the hub's own reader.
    pub async fn dead_letters(&self) -> anyhow::Result<Vec<integration_hub::dlq::DeadLetter>> {
        Ok(self.dead_letter_listing().await?.0)
    }

    /// The dead letters as `hub dlq list` shows them, and how many second copies of a
    /// letter the topic holds (written again by a hub killed between writing a letter and
    /// remembering it; the listing shows each letter once).
    pub async fn dead_letter_listing(
        &self,
    ) -> anyhow::Result<(Vec<integration_hub::dlq::DeadLetter>, u64)> {
        let cfg = KafkaConfig::new(self.bootstrap.clone());
        let bus = Arc::new(KafkaBus::new(&cfg)?);
        // A store of its own: only for the (absent) operator actions the listing shows.
        let store = Arc::new(Store::open(&self.dir.join("dlq-reader.db"))?);
        let dlq = Dlq::new(
            bus,
            store,
            format!("{}.dlq", self.prefix),
            LogEnd::KafkaWatermarks(cfg),
        );
        let listing = dlq
            .list(&ListQuery {
                sink: None,
                status: StatusFilter::All,
                limit: usize::MAX,
            })
            .await?;
        Ok((listing.dead_letters, listing.counts.copies))
    }

    /// A counter of the running hub's `/metrics`, summed over its labels (0 when absent).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }
}

/// How far the consumer group `group` is behind on `topic`: the sum over partitions of the
/// high watermark minus the committed offset (the low watermark when nothing is committed).
/// A topic that does not exist yet has no lag. Asks the broker without joining the group.
pub fn group_lag(bootstrap: &str, group: &str, topic: &str) -> anyhow::Result<i64> {
    let consumer = client(bootstrap, group)?;
    let marks = watermarks(bootstrap, topic)?;
    if marks.is_empty() {
        return Ok(0);
    }
    let mut tpl = TopicPartitionList::new();
    for (p, _, _) in &marks {
        tpl.add_partition(topic, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, KAFKA_TIMEOUT)
        .with_context(|| format!("committed offsets of {group} on {topic}"))?;
    let mut lag = 0;
    for (p, low, high) in marks {
        let at = match committed.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o.max(low),
            _ => low,
        };
        lag += (high - at).max(0);
    }
    Ok(lag)
}

const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

fn client(bootstrap: &str, group: &str) -> anyhow::Result<BaseConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .context("cannot create a kafka client")
}

/// `(partition, low, high)` watermarks of every partition of `topic`; none for a topic that
/// does not exist yet.
fn watermarks(bootstrap: &str, topic: &str) -> anyhow::Result<Vec<(i32, i64, i64)>> {
    let consumer = client(bootstrap, "chaos-watermarks")?;
    let md = consumer
        .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
        .with_context(|| format!("metadata of {topic}"))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    t.partitions()
        .iter()
        .map(|p| {
            let (low, high) = consumer
                .fetch_watermarks(topic, p.id(), KAFKA_TIMEOUT)
                .with_context(|| format!("watermarks of {topic}/{}", p.id()))?;
            Ok((p.id(), low, high))
        })
        .collect()
}

/// Polls the async `cond` every 250 ms until it holds or `within` passes.
pub async fn wait_for_async<F, Fut>(what: &str, within: Duration, mut cond: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {within:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Whether every customer of `load` is in the CRM at its latest version. Cheap enough to
/// poll: it looks at the versions only once the number of contacts is right.
pub fn crm_complete(crm: &SandboxCrm, load: &Load) -> bool {
    crm.contacts_len() == load.latest.len()
        && load
            .latest
            .iter()
            .all(|(k, v)| crm.contact_version(k) == Some(*v))
}

/// What a load came to, for the report.
#[derive(Debug, Clone, Default)]
pub struct Reconciled {
    pub rows_read: u64,
    pub delivered: u64,
    pub superseded: u64,
    pub dead_lettered: u64,
    pub quarantined: u64,
    /// Dead letters beyond one per refused record, as listed (must be 0).
    pub dlq_duplicates: u64,
    /// Second copies on the topic itself, hidden by the listing.
    pub dlq_copies: u64,
    pub crm_writes: u64,
    /// CRM writes beyond one per delivered version.
    pub crm_replays: u64,
}

/// Checks the end state of `load` on `bed` (after the pipeline drained) and reconciles the
/// counts: rows read = delivered + superseded + dead-lettered + quarantined, where each term
/// but "superseded" (older versions of customers that reached the CRM, known from the load)
/// is measured on what the hub produced. Dead letters repeating one record are counted, not
/// failed: the caller decides.
pub async fn verify(bed: &Bed, load: &Load) -> anyhow::Result<Reconciled> {
    let crm = &bed.crm;
    // The CRM: every good customer once, at its latest version; no refused one.
    let mut wrong = Vec::new();
    for (k, v) in &load.latest {
        match crm.contact_version(k) {
            Some(got) if got == *v => {}
            got => wrong.push(format!("{k}: expected version {v}, CRM has {got:?}")),
        }
    }
    ensure!(
        wrong.is_empty(),
        "{} customers wrong in the CRM, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    ensure!(
        crm.contacts_len() == load.latest.len(),
        "the CRM holds {} contacts, expected {}",
        crm.contacts_len(),
        load.latest.len()
    );
    let refused_in_crm: Vec<&String> = load
        .rejected
        .iter()
        .filter(|k| crm.contact(k).is_some())
        .collect();
    ensure!(
        refused_in_crm.is_empty(),
        "refused customers in the CRM: {refused_in_crm:?}"
    );
    let stats = crm.stats();
    ensure!(
        stats.version_regressions == 0,
        "{} version regressions in the CRM",
        stats.version_regressions
    );

    // Files: every one archived, none left behind or failed; the quarantine holds exactly
    // the invalid rows, by line.
    let inbox = bed.inbox();
    ensure!(
        files_in(&inbox.join("archive"), ".csv").len() == load.files.len(),
        "archived {} of {} files",
        files_in(&inbox.join("archive"), ".csv").len(),
        load.files.len()
    );
    ensure!(files_in(&inbox.join("processing"), ".csv").is_empty());
    ensure!(
        files_in(&inbox.join("failed"), "").is_empty(),
        "files failed"
    );
    let mut quarantined = 0u64;
    for f in &load.files {
        let lines = quarantine_lines(&inbox, &f.name)?;
        ensure!(
            lines == f.invalid_lines,
            "{}: quarantined lines differ from the invalid rows ({} vs {})",
            f.name,
            lines.len(),
            f.invalid_lines.len()
        );
        quarantined += lines.len() as u64;
    }

    // The dead-letter topic: exactly the refused customers, for the CRM's 422.
    let (letters, copies) = bed.dead_letter_listing().await?;
    let mut by_envelope: BTreeMap<String, &integration_hub::dlq::DeadLetter> = BTreeMap::new();
    for l in &letters {
        ensure!(
            l.error.contains("422"),
            "dead letter {} ({}) for another reason: {}",
            l.id,
            l.key,
            l.error
        );
        let id = l
            .envelope_id
            .clone()
            .with_context(|| format!("dead letter {} has no envelope id", l.id))?;
        by_envelope.insert(id, l);
    }
    let keys: BTreeSet<String> = by_envelope.values().map(|l| l.key.clone()).collect();
    let missing: Vec<&String> = load.rejected.difference(&keys).collect();
    let extra: Vec<&String> = keys.difference(&load.rejected).collect();
    ensure!(
        missing.is_empty() && extra.is_empty(),
        "dead letters differ from the refused customers: missing {missing:?}, not refused {extra:?}"
    );
    ensure!(
        by_envelope.len() == load.rejected.len(),
        "{} distinct dead-lettered records for {} refused customers",
        by_envelope.len(),
        load.rejected.len()
    );

    let r = Reconciled {
        rows_read: load.rows,
        delivered: crm.contacts_len() as u64,
        superseded: load.good_rows - load.latest.len() as u64,
        dead_lettered: by_envelope.len() as u64,
        quarantined,
        dlq_duplicates: (letters.len() - by_envelope.len()) as u64,
        dlq_copies: copies,
        crm_writes: stats.writes,
        crm_replays: stats.replays,
    };
    ensure!(
        r.rows_read == r.delivered + r.superseded + r.dead_lettered + r.quarantined,
        "counts do not reconcile: {r:?}"
    );
    Ok(r)
}

/// The distinct line numbers in the quarantine file of `file`.
fn quarantine_lines(inbox: &Path, file: &str) -> anyhow::Result<BTreeSet<u64>> {
    let path = inbox
        .join("quarantine")
        .join(format!("{file}.quarantine.csv"));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    text.lines()
        .skip(1)
        .enumerate()
        .map(|(i, line)| {
            line.split(';')
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .with_context(|| format!("{}: line {}: no line number", path.display(), i + 2))
        })
        .collect()
}
