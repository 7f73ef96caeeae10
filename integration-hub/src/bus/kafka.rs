//! The Kafka bus: the production backend, on an Apache Kafka cluster.
//!
//! Contract (on top of the one in [`crate::bus`]):
//! - The producer is idempotent with `acks=all`, at most 5 requests in flight per connection and
//!   the murmur2 partitioner on the key, so a key always lands on the same partition and its
//!   messages keep their publish order, retries included. `publish` enqueues every message, then
//!   waits for every delivery report; it fails if any message failed. Messages of a failed
//!   `publish` may still have been written (the caller publishes them again: at least once).
//! - Topics are created on first use by `publish` or `subscribe` with
//!   [`KafkaConfig::default_partitions`] partitions and [`KafkaConfig::replication_factor`]
//!   replicas (an existing topic is left as it is); [`KafkaBus::ensure_topic`] does it explicitly.
//!   The producer never lets the broker create a topic implicitly.
//! - Consumers never commit on their own (no auto commit, no automatic offset store): only
//!   `commit` moves the group's position, synchronously. A new group starts at the earliest
//!   offset.
//! - `poll` waits at most `wait` for the first record, then takes what is already fetched, up to
//!   `max`. Right after `subscribe` the group is still being assigned partitions, which can take
//!   a few seconds: polls return empty batches until then.
//! - Partitions are assigned with `cooperative-sticky` (KIP-429): when a member joins or dies,
//!   only the partitions that change owner stop; every other member goes on with its own
//!   through the rebalance. Each assignment and revocation is logged (`partitions_assigned`,
//!   `partitions_revoked`, see `bus::lag`). `extra` may choose another strategy.
//! - A commit refused because the group is rebalancing or this member's generation is gone
//!   (`REBALANCE_IN_PROGRESS`, `ILLEGAL_GENERATION`, `UNKNOWN_MEMBER_ID`, a lost assignment)
//!   is logged and not an error: the effects of the records are already recorded by the
//!   caller, the partition's next owner reads them again from the previous commit and finds
//!   them done. Failing the caller instead would restart it, and its new member would start
//!   yet another rebalance.
//! - Dropping a consumer leaves the group at once (it blocks the dropping thread for the short
//!   leave round trip), so its partitions move to the remaining members without waiting for the
//!   session timeout; nothing is committed on drop. A killed process's partitions move after
//!   [`KafkaConfig::session_timeout_ms`].
//! - Every consumer reports its consumer lag per assigned partition (`bus::lag`), from
//!   librdkafka statistics every [`KafkaConfig::stats_interval_ms`] and from its own reads
//!   and commits.
//! - Transient consumer errors (a broker restarting, a leader moving) are logged and retried by
//!   the client; only fatal ones reach the caller.
//! - Encryption and authentication (TLS, SCRAM) come from [`KafkaConfig::security`] only, for
//!   every client alike; `extra` cannot set them. When the broker refuses a connection (a
//!   wrong password, an untrusted certificate), `ping`, `publish` and `subscribe` name that
//!   reason in their error; the password never appears in an error or a log line.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer as _};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::time::Instant;

use super::lag::{self, LagConsumer, LagContext, LagState};
use super::{Bus, BusError, Consumer, Offsets, OutMessage, Record, deadline_after};
use crate::config::KafkaSecurity;

/// How long a metadata request (ping, topic checks) may take.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a created topic may take to show up with a leader for every partition.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `poll` waits for each further record once it has one.
const DRAIN_WAIT: Duration = Duration::from_millis(2);
/// How long `poll` pauses after a transient consumer error.
const ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long `publish` retries enqueueing while the producer queue is full.
const QUEUE_FULL_TIMEOUT: Duration = Duration::from_secs(60);

/// Settings the bus sets itself to keep its contract; `extra` may not override them.
const RESERVED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "client.id",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
    "request.required.acks",
    "max.in.flight.requests.per.connection",
    "max.in.flight",
    "statistics.interval.ms",
];

/// Prefixes of client settings that only `[bus.kafka.security]` may set: one place decides
/// encryption and authentication, so `extra` can neither weaken TLS nor hold a secret inline.
const SECURITY_PREFIXES: &[&str] = &[
    "security.protocol",
    "sasl.",
    "ssl.ca.",
    "ssl.certificate.",
    "ssl.key.",
    "ssl.keystore.",
    "ssl.endpoint.identification.algorithm",
    "enable.ssl.certificate.verification",
];

/// Kafka connection settings, as found under `[bus.kafka]` in the hub's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Comma-separated `host:port` list of brokers. Required in a configuration file.
    pub bootstrap_servers: String,
    /// Client id sent to the brokers (shows in broker logs and quotas).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// Further client settings passed as they are to producer, consumer and admin client (for
    /// example `socket.keepalive.enable`, `ssl.cipher.suites`). Settings the bus relies on (see
    /// the module documentation) and security settings (see `security`) are refused.
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
    /// `[bus.kafka.security]`: TLS and SCRAM towards the brokers; absent means plaintext,
    /// accepted for loopback brokers only. Boxed: read only when a client is created, and it
    /// would otherwise triple the size of every value holding a `KafkaConfig`.
    #[serde(default)]
    pub security: Box<KafkaSecurity>,
    /// Consumer session timeout: how long a silent consumer keeps its partitions.
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u32,
    /// Partition count of topics the bus creates.
    #[serde(default = "default_partitions")]
    pub default_partitions: u32,
    /// Replication factor of topics the bus creates.
    #[serde(default = "default_replication_factor")]
    pub replication_factor: u16,
    /// How often consumers take librdkafka statistics (high watermark and committed offset
    /// per partition, for the consumer lag gauges); 0 turns them off (the gauges then rely
    /// on cached watermarks and the consumer's own commits only).
    #[serde(default = "default_stats_interval_ms")]
    pub stats_interval_ms: u32,
}

fn default_client_id() -> String {
    "integration-hub".into()
}
fn default_session_timeout_ms() -> u32 {
    6000
}
fn default_partitions() -> u32 {
    4
}
fn default_replication_factor() -> u16 {
    1
}
fn default_stats_interval_ms() -> u32 {
    5000
}

impl Default for KafkaConfig {
    /// A single local broker on the default port.
    fn default() -> KafkaConfig {
        KafkaConfig::new("127.0.0.1:9092")
    }
}

impl KafkaConfig {
    /// Settings for `bootstrap_servers` with every other field at its default.
    pub fn new(bootstrap_servers: impl Into<String>) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: default_client_id(),
            extra: BTreeMap::new(),
            security: Box::default(),
            session_timeout_ms: default_session_timeout_ms(),
            default_partitions: default_partitions(),
            replication_factor: default_replication_factor(),
            stats_interval_ms: default_stats_interval_ms(),
        }
    }

    fn validate(&self) -> Result<(), BusError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(BusError::Config("kafka bootstrap_servers is empty".into()));
        }
        if let Some(k) = self.extra.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(BusError::Config(format!(
                "kafka setting {k} is managed by the bus and cannot be set in extra"
            )));
        }
        if let Some(k) = self
            .extra
            .keys()
            .find(|k| SECURITY_PREFIXES.iter().any(|p| k.starts_with(p)))
        {
            return Err(BusError::Config(format!(
                "kafka setting {k} cannot be set in extra; use [bus.kafka.security]"
            )));
        }
        if let Some((field, reason)) = self
            .security
            .problems(&self.bootstrap_servers)
            .into_iter()
            .next()
        {
            return Err(BusError::Config(format!(
                "kafka security.{field}: {reason}"
            )));
        }
        if self.session_timeout_ms < 1000 {
            return Err(BusError::Config(format!(
                "kafka session_timeout_ms must be at least 1000, got {}",
                self.session_timeout_ms
            )));
        }
        if self.default_partitions == 0 || self.default_partitions > i32::MAX as u32 {
            return Err(BusError::Config(format!(
                "kafka default_partitions must be positive, got {}",
                self.default_partitions
            )));
        }
        if self.replication_factor == 0 {
            return Err(BusError::Config(
                "kafka replication_factor must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The settings shared by every client: servers, id, then `extra`. Without the security
    /// settings: see [`KafkaConfig::client_config`].
    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in &self.extra {
            c.set(k, v);
        }
        c
    }

    /// The settings of a plain client (admin, metadata, watermarks): servers, id, `extra`,
    /// then `[bus.kafka.security]` with the password resolved. Resolving reads the
    /// environment or the secret file, so a rotated password is picked up by the next client.
    pub fn client_config(&self) -> Result<ClientConfig, BusError> {
        let mut c = self.base();
        self.apply_security(&mut c)?;
        Ok(c)
    }

    /// Sets `[bus.kafka.security]`'s settings on `c`. Applied directly (never copied through
    /// `config_map`, which masks the password).
    fn apply_security(&self, c: &mut ClientConfig) -> Result<(), BusError> {
        let settings = self
            .security
            .client_settings()
            .map_err(|e| BusError::Config(format!("kafka {e}")))?;
        for (k, v) in settings {
            c.set(k, v);
        }
        Ok(())
    }

    fn producer_config(&self) -> Result<ClientConfig, BusError> {
        let mut c = ClientConfig::new();
        c.set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .set("allow.auto.create.topics", "false");
        if lz4_available()? {
            c.set("compression.type", "lz4");
        }
        // `extra` may override the tunables above, never the contract below.
        for (k, v) in self.base().config_map() {
            c.set(k, v);
        }
        self.apply_security(&mut c)?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("max.in.flight.requests.per.connection", "5");
        Ok(c)
    }

    fn consumer_config(&self, group: &str) -> Result<ClientConfig, BusError> {
        let mut c = ClientConfig::new();
        c.set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 3).max(100).to_string(),
            );
        for (k, v) in self.base().config_map() {
            c.set(k, v);
        }
        self.apply_security(&mut c)?;
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("statistics.interval.ms", self.stats_interval_ms.to_string());
        Ok(c)
    }
}

/// Whether the linked client library was built with LZ4 support.
fn lz4_available() -> Result<bool, BusError> {
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .map_err(|e| BusError::Config(format!("cannot read kafka client features: {e}")))?;
    Ok(features.split(',').any(|f| f.trim() == "lz4"))
}

fn kafka_err(context: &str, e: KafkaError) -> BusError {
    match e {
        KafkaError::ClientConfig(..) | KafkaError::ClientCreation(_) => {
            BusError::Config(format!("{context}: {e}"))
        }
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        | KafkaError::MetadataFetch(RDKafkaErrorCode::OperationTimedOut)
        | KafkaError::ConsumerCommit(RDKafkaErrorCode::OperationTimedOut) => {
            BusError::Timeout(format!("{context}: {e}"))
        }
        _ => BusError::Io(format!("{context}: {e}")),
    }
}

fn join_err(e: tokio::task::JoinError) -> BusError {
    BusError::Io(format!("kafka worker failed: {e}"))
}

/// How long a recorded TLS or authentication failure explains a later failed operation.
const SECURITY_FAILURE_RELEVANCE: Duration = Duration::from_secs(60);

/// Context of the producer and the admin client. librdkafka reports why a connection failed
/// (a refused SCRAM password, an untrusted broker certificate) only through this callback;
/// the failed request itself just says "broker transport failure". The last such reason is
/// kept so [`KafkaBus::explain`] can name it. librdkafka never puts `sasl.password` in these
/// reasons.
#[derive(Clone, Default)]
struct SecurityContext {
    last_failure: Arc<Mutex<Option<(std::time::Instant, String)>>>,
}

impl ClientContext for SecurityContext {
    fn error(&self, error: KafkaError, reason: &str) {
        let security = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SSL
                    | RDKafkaErrorCode::SaslAuthenticationFailed
            )
        );
        if !security {
            // Transient (a broker restarting): the client retries on its own.
            tracing::warn!(error = %error, reason, "kafka client error");
            return;
        }
        tracing::error!(error = %error, reason, "kafka broker refused the connection");
        let mut last = self.last_failure.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((std::time::Instant::now(), reason.to_owned()));
    }
}

/// A bus on a Kafka cluster. Cheap to clone; clones share the producer.
#[derive(Clone)]
pub struct KafkaBus {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: KafkaConfig,
    producer: FutureProducer<SecurityContext>,
    admin: AdminClient<SecurityContext>,
    /// Shared by the producer and the admin client.
    security: SecurityContext,
    /// Topics known to exist with leaders.
    known_topics: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.inner.cfg.bootstrap_servers)
            .field("client_id", &self.inner.cfg.client_id)
            .finish()
    }
}

impl KafkaBus {
    /// Creates the producer and the admin client. Connects lazily: an unreachable cluster shows
    /// in [`Bus::ping`] and in the first operation, not here.
    pub fn new(cfg: &KafkaConfig) -> Result<KafkaBus, BusError> {
        cfg.validate()?;
        let security = SecurityContext::default();
        let producer: FutureProducer<SecurityContext> = cfg
            .producer_config()?
            .create_with_context(security.clone())
            .map_err(|e| kafka_err("cannot create kafka producer", e))?;
        let admin: AdminClient<SecurityContext> = cfg
            .client_config()?
            .create_with_context(security.clone())
            .map_err(|e| kafka_err("cannot create kafka admin client", e))?;
        Ok(KafkaBus {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                producer,
                admin,
                security,
                known_topics: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The settings this bus was created with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.cfg
    }

    /// `e` with the TLS or authentication failure the client recorded shortly before, if
    /// any: the failed request alone only says the transport failed.
    fn explain(&self, e: BusError) -> BusError {
        let last = self
            .inner
            .security
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some((at, reason)) = last else { return e };
        if at.elapsed() > SECURITY_FAILURE_RELEVANCE {
            return e;
        }
        match e {
            BusError::Io(m) => BusError::Io(format!("{m}; broker connection failed: {reason}")),
            BusError::Timeout(m) => {
                BusError::Timeout(format!("{m}; broker connection failed: {reason}"))
            }
            other => other,
        }
    }

    /// Creates `name` with `partitions` partitions and `replication` replicas unless it exists,
    /// then waits until every partition has a leader. An existing topic is left unchanged.
    pub async fn ensure_topic(
        &self,
        name: &str,
        partitions: u32,
        replication: u16,
    ) -> Result<(), BusError> {
        let partitions = i32::try_from(partitions)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| BusError::Config(format!("invalid partition count {partitions}")))?;
        if name.is_empty() {
            return Err(BusError::Config("topic name is empty".into()));
        }
        let topic = NewTopic::new(
            name,
            partitions,
            TopicReplication::Fixed(replication.into()),
        );
        let opts = AdminOptions::new()
            .request_timeout(Some(METADATA_TIMEOUT))
            .operation_timeout(Some(METADATA_TIMEOUT));
        let results = self
            .inner
            .admin
            .create_topics([&topic], &opts)
            .await
            .map_err(|e| kafka_err(&format!("cannot create topic {name}"), e))?;
        let mut refused = None;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                // Possibly not allowed to create but the topic exists: checked below.
                Err((_, code)) => refused = Some(code),
            }
        }
        match self.wait_for_topic(name, refused.is_some()).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match refused {
                    Some(code) => BusError::Io(format!("cannot create topic {name}: {code}")),
                    None => e,
                });
            }
        }
        self.known_topics().insert(name.to_owned());
        Ok(())
    }

    fn known_topics(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        // A set of names stays consistent even if a holder panicked.
        self.inner
            .known_topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Creates `topic` with the default settings the first time this bus uses it.
    async fn ensure_known(&self, topic: &str) -> Result<(), BusError> {
        if self.known_topics().contains(topic) {
            return Ok(());
        }
        let cfg = &self.inner.cfg;
        self.ensure_topic(topic, cfg.default_partitions, cfg.replication_factor)
            .await
            .map_err(|e| self.explain(e))
    }

    /// Waits until metadata shows `name` with a leader for every partition. With `once`, checks
    /// a single time.
    async fn wait_for_topic(&self, name: &str, once: bool) -> Result<(), BusError> {
        let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
        loop {
            let producer = self.inner.producer.clone();
            let topic = name.to_owned();
            let state = tokio::task::spawn_blocking(move || {
                let md = producer
                    .client()
                    .fetch_metadata(Some(&topic), METADATA_TIMEOUT)
                    .map_err(|e| kafka_err("cannot fetch kafka metadata", e))?;
                let ready = md.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && !t.partitions().is_empty()
                        && t.partitions()
                            .iter()
                            .all(|p| p.error().is_none() && p.leader() >= 0)
                });
                Ok::<bool, BusError>(ready)
            })
            .await
            .map_err(join_err)??;
            if state {
                return Ok(());
            }
            if once || Instant::now() >= deadline {
                return Err(BusError::Timeout(format!(
                    "topic {name} has no leader for every partition"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn enqueue(&self, topic: &str, m: &OutMessage) -> Result<Option<DeliveryFuture>, BusError> {
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let record = FutureRecord::to(topic)
            .key(m.key.as_str())
            .payload(m.payload.as_slice())
            .headers(headers);
        match self.inner.producer.send_result(record) {
            Ok(f) => Ok(Some(f)),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => Ok(None),
            Err((e, _)) => Err(kafka_err(&format!("cannot publish to {topic}"), e)),
        }
    }
}

#[async_trait]
impl Bus for KafkaBus {
    async fn publish(&self, topic: &str, messages: Vec<OutMessage>) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        self.ensure_known(topic).await?;
        let mut pending = Vec::with_capacity(messages.len());
        for m in &messages {
            let started = Instant::now();
            loop {
                match self.enqueue(topic, m)? {
                    Some(f) => {
                        pending.push(f);
                        break;
                    }
                    None if started.elapsed() < QUEUE_FULL_TIMEOUT => {
                        // Let deliveries drain the queue; the order of `messages` is kept.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    None => {
                        return Err(BusError::Timeout(format!(
                            "producer queue for {topic} stayed full"
                        )));
                    }
                }
            }
        }
        let mut first_error = None;
        for f in pending {
            let outcome = match f.await {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => kafka_err(&format!("delivery to {topic} failed"), e),
                Err(_) => BusError::Io(format!("delivery to {topic} was cancelled")),
            };
            first_error.get_or_insert(outcome);
        }
        match first_error {
            Some(e) => Err(self.explain(e)),
            None => Ok(()),
        }
    }

    async fn subscribe(&self, group: &str, topic: &str) -> Result<Box<dyn Consumer>, BusError> {
        if group.is_empty() {
            return Err(BusError::Config("consumer group name is empty".into()));
        }
        self.ensure_known(topic).await?;
        let lag = LagState::new(group, topic);
        let consumer: LagConsumer = self
            .inner
            .cfg
            .consumer_config(group)?
            .create_with_context(LagContext { state: lag.clone() })
            .map_err(|e| kafka_err("cannot create kafka consumer", e))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| kafka_err(&format!("cannot subscribe to {topic}"), e))?;
        let consumer = Arc::new(consumer);
        lag::register(&consumer);
        Ok(Box::new(KafkaConsumer {
            consumer,
            topic: topic.to_owned(),
            lag,
        }))
    }

    async fn ping(&self) -> Result<(), BusError> {
        let producer = self.inner.producer.clone();
        tokio::task::spawn_blocking(move || {
            let md = producer
                .client()
                .fetch_metadata(None, METADATA_TIMEOUT)
                .map_err(|e| kafka_err("kafka cluster unreachable", e))?;
            if md.brokers().is_empty() {
                return Err(BusError::Io("kafka cluster reports no broker".into()));
            }
            Ok(())
        })
        .await
        .map_err(join_err)?
        .map_err(|e| self.explain(e))
    }
}

/// A member of one consumer group, subscribed to one topic.
pub struct KafkaConsumer {
    consumer: Arc<LagConsumer>,
    topic: String,
    /// What the lag gauges need from this consumer's reads and commits.
    lag: Arc<LagState>,
}

fn to_record(m: &BorrowedMessage<'_>) -> Record {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let value = h
                        .value
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                        .unwrap_or_default();
                    (h.key.to_owned(), value)
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: m.topic().to_owned(),
        partition: m.partition(),
        offset: m.offset(),
        key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        headers,
        payload: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max: usize, wait: Duration) -> Result<Vec<Record>, BusError> {
        let deadline = deadline_after(wait);
        let mut out = Vec::new();
        while out.len() < max {
            let timeout = if out.is_empty() {
                deadline.saturating_duration_since(Instant::now())
            } else {
                DRAIN_WAIT
            };
            match tokio::time::timeout(timeout, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(m)) => {
                    self.lag
                        .read(m.partition(), m.offset(), m.timestamp().to_millis());
                    out.push(to_record(&m));
                }
                Ok(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                    return Err(kafka_err(&format!("consuming {} failed", self.topic), e));
                }
                Ok(Err(e)) => {
                    tracing::warn!(topic = %self.topic, error = %e, "kafka consumer error, retrying");
                    if !out.is_empty() {
                        break;
                    }
                    // Errors come as single events; pause briefly in case they repeat.
                    let pause = (Instant::now() + ERROR_PAUSE).min(deadline);
                    tokio::time::sleep_until(pause).await;
                    if Instant::now() >= deadline {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    async fn commit(&mut self, offsets: &Offsets) -> Result<(), BusError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::with_capacity(offsets.len());
        for (&p, &o) in offsets {
            tpl.add_partition_offset(&self.topic, p, Offset::Offset(o))
                .map_err(|e| kafka_err("invalid offset to commit", e))?;
        }
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let done =
            tokio::task::spawn_blocking(move || match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => Ok(true),
                Err(KafkaError::ConsumerCommit(code)) if membership_changed(code) => {
                    tracing::warn!(
                        topic = %topic,
                        error = %code,
                        "offsets not committed: the consumer group is rebalancing; the partitions' \
                         next owner reads these records again and finds them done"
                    );
                    Ok(false)
                }
                Err(e) => Err(kafka_err(&format!("cannot commit offsets of {topic}"), e)),
            })
            .await
            .map_err(join_err)??;
        if !done {
            return Ok(());
        }
        for (&p, &o) in offsets {
            self.lag.committed(p, o);
        }
        Ok(())
    }
}

/// Commit errors that say the group moved on (a rebalance, a new generation, this member
/// evicted), not that the cluster or the request is broken.
fn membership_changed(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::FencedInstanceId
            | RDKafkaErrorCode::AssignmentLost
    )
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        // Leave the group now rather than after the session timeout; the consumer's own drop
        // then closes it, which commits nothing since auto commit is off.
        self.consumer.unsubscribe();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: KafkaConfig = serde_json::from_str(r#"{"bootstrap_servers": "b:9092"}"#).unwrap();
        assert_eq!(cfg, KafkaConfig::new("b:9092"));
        assert_eq!(cfg.session_timeout_ms, 6000);
        assert_eq!(cfg.default_partitions, 4);
        assert!(
            serde_json::from_str::<KafkaConfig>(r#"{"bootstrap_servers": "b", "nope": 1}"#)
                .is_err()
        );
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"client_id": "x"}"#).is_err());
    }

    #[test]
    fn reserved_settings_are_refused() {
        let mut cfg = KafkaConfig::default();
        cfg.extra.insert("enable.auto.commit".into(), "true".into());
        assert!(matches!(KafkaBus::new(&cfg), Err(BusError::Config(_))));
        let mut cfg = KafkaConfig::default();
        cfg.extra
            .insert("socket.keepalive.enable".into(), "true".into());
        assert!(KafkaBus::new(&cfg).is_ok());
    }

    #[test]
    fn security_settings_only_come_from_the_security_section() {
        for key in [
            "security.protocol",
            "sasl.password",
            "ssl.ca.location",
            "ssl.endpoint.identification.algorithm",
            "enable.ssl.certificate.verification",
        ] {
            let mut cfg = KafkaConfig::default();
            cfg.extra.insert(key.into(), "x".into());
            let err = KafkaBus::new(&cfg).unwrap_err().to_string();
            assert!(err.contains("[bus.kafka.security]"), "{key}: {err}");
        }
    }

    #[test]
    fn sasl_ssl_settings_reach_every_client_with_the_password_resolved() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret-value\n").unwrap();
        let mut cfg = KafkaConfig::new("kafka-1.bank.local:9094");
        *cfg.security = KafkaSecurity {
            protocol: crate::config::KafkaProtocol::SaslSsl,
            username: Some("hub".into()),
            password: Some("file:pw".into()),
            ca_file: Some("ca.pem".into()),
            base_dir: dir.path().to_path_buf(),
            ..KafkaSecurity::default()
        };
        cfg.validate().unwrap();
        let ca = dir.path().join("ca.pem").display().to_string();
        for c in [
            cfg.producer_config().unwrap(),
            cfg.consumer_config("g").unwrap(),
            cfg.client_config().unwrap(),
        ] {
            assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
            assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
            assert_eq!(c.get("sasl.username"), Some("hub"));
            assert_eq!(c.get("sasl.password"), Some("s3cret-value"));
            assert_eq!(c.get("ssl.ca.location"), Some(ca.as_str()));
            // Neither the bus's nor rdkafka's debug output carries the password.
            assert!(!format!("{c:?}").contains("s3cret-value"));
        }
        assert!(!format!("{cfg:?}").contains("file:pw"));
    }

    #[test]
    fn an_unreadable_password_is_named_without_the_bus_starting() {
        let mut cfg = KafkaConfig::new("kafka-1.bank.local:9094");
        *cfg.security = KafkaSecurity {
            protocol: crate::config::KafkaProtocol::SaslSsl,
            username: Some("hub".into()),
            password: Some("env:HUB_TEST_KAFKA_PASSWORD_NEVER_SET".into()),
            ..KafkaSecurity::default()
        };
        let err = KafkaBus::new(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("security.password") && err.contains("HUB_TEST_KAFKA_PASSWORD_NEVER_SET"),
            "{err}"
        );
    }

    #[test]
    fn plaintext_to_a_remote_broker_is_refused_by_the_bus_too() {
        let err = KafkaBus::new(&KafkaConfig::new("kafka-1.bank.local:9092"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow_plaintext"), "{err}");
        let mut cfg = KafkaConfig::new("kafka-1.bank.local:9092");
        cfg.security.allow_plaintext = true;
        assert!(KafkaBus::new(&cfg).is_ok());
    }

    #[test]
    fn contract_settings_win() {
        let mut cfg = KafkaConfig::default();
        cfg.extra.insert("linger.ms".into(), "20".into());
        let p = cfg.producer_config().unwrap();
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("linger.ms"), Some("20"));
        let c = cfg.consumer_config("g").unwrap();
        assert_eq!(c.get("group.id"), Some("g"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(c.get("heartbeat.interval.ms"), Some("2000"));
    }

    #[test]
    fn bundled_client_has_lz4() {
        assert!(lz4_available().unwrap());
    }
}
