//! The hub's configuration: one TOML file.
//!
//! Loading never stops at the first problem: every section and every `[[sources]]` /
//! `[[sinks]]` entry is checked on its own, and within an entry each offending key is set
//! aside and the entry checked again, so `hub validate` lists every problem at once, each
//! with its key path and line. Static checks (this module) do no IO; [`check_environment`]
//! separately checks what the running machine must provide (secrets, folders).
//!
//! Secrets are never written inline: a secret field holds a reference, `env:NAME` or
//! `file:PATH`, resolved by [`resolve_secret`] when the hub starts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use adapters::crm::rest::CrmRestConfig;
use adapters::file_drop::FileDropConfig;
use mapping::Entity;
use mapping::columns::PartyColumns;

use crate::bus::kafka::KafkaConfig;

/// The whole configuration after static validation.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder of the config file; relative paths in the config are relative to it.
    pub base_dir: PathBuf,
    pub hub: HubSection,
    pub bus: BusSection,
    pub store: StoreSection,
    /// Which database holds the hub's state; absent means SQLite (`[store] path`).
    pub state: StateSection,
    pub http: HttpSection,
    pub sources: Vec<SourceConfig>,
    pub sinks: Vec<SinkConfig>,
    /// Screening and monitoring; absent means sinks read the canonical topic directly.
    pub compliance: Option<ComplianceSection>,
    /// Golden records; absent means the CRM receives source records keyed by source id.
    pub master_data: Option<MasterDataSection>,
    /// Bars and mandatory fields of `hub quality`; absent means the defaults.
    pub quality: Option<mapping::mdm::quality::QualityConfig>,
    /// API callers: tokens by hash, OIDC issuers, the mass-read limit.
    pub auth: Option<crate::auth::section::AuthSection>,
    /// The audit log's place and chain key.
    pub audit: Option<crate::audit::AuditSection>,
    /// Scheduled reconciliation of a source with the CRM; absent means none is scheduled.
    pub reconcile: Option<ReconcileSection>,
    /// Keys encrypting personal fields at rest; absent means values are stored as they are.
    pub encryption: Option<EncryptionSection>,
}

/// `[encryption]`: the keys of field encryption at rest (docs/pii.md). Keys are references
/// (`env:NAME`, `file:path`) to 32 bytes written as 64 hex digits or base64; `active`
/// encrypts new values, every listed key decrypts (so keep a retired key until `hub keys
/// rotate` has re-encrypted its values).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSection {
    pub active: String,
    pub keys: BTreeMap<String, String>,
}

/// `[hub]`: process-wide settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubSection {
    /// Folder for local state (embedded bus, state store). Default `var`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

impl Default for HubSection {
    fn default() -> Self {
        HubSection {
            data_dir: default_data_dir(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("var")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// Durable on local disk; the default when no Kafka is configured.
    #[default]
    Embedded,
    /// An Apache Kafka cluster.
    Kafka,
}

/// `[bus]`: which bus carries events, and its topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    /// `embedded` (default) or `kafka`.
    #[serde(default)]
    pub kind: BusKind,
    /// Prefix of every topic name, e.g. `hub` gives `hub.canonical`. Default `hub`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// Settings of the embedded bus.
    #[serde(default)]
    pub embedded: EmbeddedSection,
    /// Settings of the Kafka bus; required when `kind = "kafka"`.
    pub kafka: Option<KafkaConfig>,
    /// How often `hub run` counts the pending dead letters for `hub_dlq_depth` (a listing
    /// counts them too). Default 60; 0 leaves the gauge to listings.
    #[serde(default = "default_dlq_depth_refresh_secs")]
    pub dlq_depth_refresh_secs: u64,
}

fn default_dlq_depth_refresh_secs() -> u64 {
    60
}

impl Default for BusSection {
    fn default() -> Self {
        BusSection {
            kind: BusKind::Embedded,
            topic_prefix: default_topic_prefix(),
            embedded: EmbeddedSection::default(),
            kafka: None,
            dlq_depth_refresh_secs: default_dlq_depth_refresh_secs(),
        }
    }
}

impl BusSection {
    pub fn canonical_topic(&self) -> String {
        format!("{}.canonical", self.topic_prefix)
    }
    pub fn dlq_topic(&self) -> String {
        format!("{}.dlq", self.topic_prefix)
    }
    /// Records the screening stage passed on to the CRM sinks.
    pub fn cleared_topic(&self) -> String {
        format!("{}.cleared", self.topic_prefix)
    }
    /// Records of non-file sources that could not be mapped, with their reasons.
    pub fn quarantine_topic(&self) -> String {
        format!("{}.quarantine", self.topic_prefix)
    }
    /// Screening results and 115-FZ alerts, for compliance.
    pub fn compliance_topic(&self) -> String {
        format!("{}.compliance", self.topic_prefix)
    }
    /// Golden records (keyed by golden id) and every non-party record, for the CRM sinks.
    pub fn golden_topic(&self) -> String {
        format!("{}.golden", self.topic_prefix)
    }
    /// Records sink `sink` parked after their in-place retries, waiting to be tried again.
    pub fn retry_topic(&self, sink: &str) -> String {
        format!("{}.retry.{sink}", self.topic_prefix)
    }
}

fn default_topic_prefix() -> String {
    "hub".to_string()
}

/// `[bus.embedded]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedSection {
    /// Database file of the embedded bus. Default `<data_dir>/bus.db`.
    pub path: Option<PathBuf>,
    /// Partitions per topic. Default 4.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Every this many seconds, events every consumer group has committed are deleted from
    /// the canonical topic, so the file does not grow without bound. 0 keeps everything.
    /// Default 300. (A consumer group added later starts at the oldest event still kept.)
    #[serde(default = "default_compact_every")]
    pub compact_every_secs: u64,
}

impl Default for EmbeddedSection {
    fn default() -> Self {
        EmbeddedSection {
            path: None,
            partitions: default_partitions(),
            compact_every_secs: default_compact_every(),
        }
    }
}

fn default_compact_every() -> u64 {
    300
}

fn default_partitions() -> u32 {
    4
}

/// `[store]`: the hub's own state (file ledger, delivered versions).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSection {
    /// SQLite database file. Default `<data_dir>/state.db`.
    pub path: Option<PathBuf>,
}

/// Where the hub's state (file ledger, delivered versions, cursors, webhook ids, dead-letter
/// actions) is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// A SQLite file beside the hub (`[store] path`): one hub process.
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several hub processes in one Kafka consumer group
    /// (docs/scale-out.md).
    Postgres,
}

/// `[state]`: the backend of the state store.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// `sqlite` (default) or `postgres`.
    #[serde(default)]
    pub store: StateBackend,
    /// PostgreSQL connection URL, a secret reference (`env:NAME` or `file:PATH`); the schema
    /// is the URL's `search_path` (`?options=-c%20search_path%3D<schema>`).
    #[serde(default)]
    pub postgres_url: Option<String>,
}

/// `[http]`: health, readiness and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Listen address. Default `127.0.0.1:9464`; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token of the admin API (dead letters: `/api/dlq`), a secret reference
    /// (`env:NAME` or `file:PATH`); without it the admin API is not mounted.
    #[serde(default)]
    pub admin_token: Option<String>,
    /// Serve HTTPS (`[http.tls]`, docs/tls.md); absent means plain HTTP, which a `listen`
    /// address off loopback refuses unless `allow_plain_http = true`.
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Allow plain HTTP on a `listen` address that is not loopback (a TLS-terminating
    /// proxy on a private segment). Default false.
    #[serde(default)]
    pub allow_plain_http: bool,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: default_listen(),
            admin_token: None,
            tls: None,
            allow_plain_http: false,
        }
    }
}

/// `[http.tls]`: the listener's certificate and, optionally, the CA its clients'
/// certificates must chain to. Paths are relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain of the listener, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM bundle of CAs for client certificates: when set, every client must present a
    /// certificate chaining to one of them (mTLS), probes and `/metrics` included.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn default_listen() -> String {
    "127.0.0.1:9464".to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Delimited files dropped into a folder.
    FileDrop,
    /// A SOAP service polled for changed records (`[sources.soap]`, docs/sources-soap.md).
    Soap,
    /// A core-banking REST API polled page by page from a persisted cursor.
    RestPoll,
    /// Events a core system pushes to `POST /webhooks/{name}`, HMAC-signed.
    Webhook,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; appears in metrics, logs and envelopes.
    pub name: String,
    /// The system the source reads (`abs`, `cards`, ...): the name mastership rules and
    /// cross-references use. Default: the source's name.
    #[serde(default)]
    pub system: Option<String>,
    /// Adapter kind.
    pub kind: SourceKind,
    /// Canonical entity the source delivers. Only `party` is mapped so far.
    #[serde(default = "default_entity")]
    pub entity: Entity,
    /// Settings for `kind = "file_drop"`.
    pub file_drop: Option<FileDropConfig>,
    /// Source column → canonical field, for customer files.
    #[serde(default)]
    pub columns: Option<PartyColumns>,
    /// A bank file format instead of customer columns: `format = "camt"`, `"mt940"`,
    /// `"one_c"`, `"csv_statement"` or `"fixed_width"` with its settings
    /// (docs/file-formats.md). Yields accounts, balances and transactions.
    #[serde(default)]
    pub reader: Option<adapters::formats::FormatConfig>,
    /// Source record → canonical model, for REST, SOAP and webhook sources
    /// (docs/mapping.md).
    #[serde(default)]
    pub mapping: Option<mapping::declarative::RecordMapping>,
    /// Settings for `kind = "rest_poll"` (docs/sources-http.md).
    #[serde(default)]
    pub rest_poll: Option<adapters::rest_poll::RestPollConfig>,
    /// Settings for `kind = "webhook"` (docs/sources-http.md).
    #[serde(default)]
    pub webhook: Option<adapters::webhook::WebhookConfig>,
    /// Settings for `kind = "soap"` (docs/sources-soap.md); `ws_security.password` is a
    /// secret reference.
    #[serde(default)]
    pub soap: Option<adapters::soap::SoapConfig>,
}

fn default_entity() -> Entity {
    Entity::Party
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// A CRM with a REST upsert-by-external-id API.
    CrmRest,
    /// Salesforce: sObject upsert by external id, sObject Collections (docs/crm-connectors.md).
    Salesforce,
    /// Microsoft Dynamics 365 / Dataverse: upsert by alternate key.
    Dynamics,
    /// Bitrix24: find by origin id, then add or update, in batches.
    Bitrix24,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::CrmRest => "crm_rest",
            SinkKind::Salesforce => "salesforce",
            SinkKind::Dynamics => "dynamics",
            SinkKind::Bitrix24 => "bitrix24",
        }
    }
}

/// One `[[sinks]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name; its consumer group is `<topic_prefix>-sink-<name>`.
    pub name: String,
    /// Connector kind.
    pub kind: SinkKind,
    /// Only events from these sources; empty means all. Golden records, made from several
    /// sources, always pass.
    #[serde(default)]
    pub sources: Vec<String>,
    /// Settings for `kind = "crm_rest"`; `token` is a secret reference.
    pub crm_rest: Option<CrmRestConfig>,
    /// Settings for `kind = "salesforce"`; `access_token` is a secret reference.
    #[serde(default)]
    pub salesforce: Option<adapters::crm::salesforce::SalesforceConfig>,
    /// Settings for `kind = "dynamics"`; `access_token` is a secret reference.
    #[serde(default)]
    pub dynamics: Option<adapters::crm::dynamics::DynamicsConfig>,
    /// Settings for `kind = "bitrix24"`; `webhook_url` (it carries the token) is a secret
    /// reference.
    #[serde(default)]
    pub bitrix24: Option<adapters::crm::bitrix24::Bitrix24Config>,
    /// Which canonical entities this sink delivers; default: parties (CRM contacts).
    #[serde(default = "default_sink_entities")]
    pub entities: Vec<Entity>,
    /// Retry topic and circuit breaker (`[sinks.delivery]`); defaults when absent.
    #[serde(default)]
    pub delivery: DeliveryConfig,
}

fn default_sink_entities() -> Vec<Entity> {
    vec![Entity::Party]
}

/// `[sinks.delivery]`: what a sink does with records that keep failing transiently, and
/// when it stops sending to a CRM that fails as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Seconds a record that still fails after its in-place retries waits on the retry
    /// topic `<prefix>.retry.<sink>` before each further try; after the last one it goes to
    /// the dead-letter topic. Empty: no retry topic, the sink holds the batch until the
    /// record goes through (one stuck record then holds its partition). Default
    /// `[5, 30, 120, 600]`.
    #[serde(default = "default_retry_delays")]
    pub retry_delays_secs: Vec<u64>,
    /// Consecutive passes that acknowledged nothing and failed transiently, over at least
    /// two different records, that open the circuit. Default 3.
    #[serde(default = "default_breaker_failures")]
    pub breaker_failures: u32,
    /// Seconds the circuit first stays open (nothing is sent); then one probe request.
    /// Default 1.
    #[serde(default = "default_breaker_open_secs")]
    pub breaker_open_secs: u64,
    /// Each failed probe doubles the open time up to this many seconds, which bounds how
    /// long after the CRM is back the sink notices it. Default 5.
    #[serde(default = "default_breaker_max_open_secs")]
    pub breaker_max_open_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_delays_secs: default_retry_delays(),
            breaker_failures: default_breaker_failures(),
            breaker_open_secs: default_breaker_open_secs(),
            breaker_max_open_secs: default_breaker_max_open_secs(),
        }
    }
}

/// The longest delay a retry or an open circuit may be given: a week.
pub const MAX_DELIVERY_DELAY_SECS: u64 = 7 * 24 * 60 * 60;

fn default_retry_delays() -> Vec<u64> {
    vec![5, 30, 120, 600]
}
fn default_breaker_failures() -> u32 {
    3
}
fn default_breaker_open_secs() -> u64 {
    1
}
fn default_breaker_max_open_secs() -> u64 {
    5
}

/// Which loader reads a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListFormat {
    /// OFAC SDN legacy CSV set: `path` is the folder with sdn.csv, add.csv, alt.csv and
    /// sdn_comments.csv.
    OfacCsv,
    /// UN Security Council consolidated list XML.
    UnXml,
    /// EU consolidated financial sanctions list XML.
    EuXml,
    /// A national list in the CSV shape of docs/compliance-lists.md.
    NationalCsv,
    /// The bank's own stop-list CSV (docs/compliance-lists.md).
    OwnCsv,
}

/// One `[[compliance.lists]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    /// Name in results, metrics and hits ("un", "ofac-sdn", ...).
    pub name: String,
    pub format: ListFormat,
    /// File (or folder, for `ofac_csv`), relative to the config file.
    pub path: PathBuf,
}

/// The `[compliance]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplianceSection {
    #[serde(default)]
    pub lists: Vec<ListConfig>,
    /// Score from which a name match is a potential hit (0..1); default: the engine's.
    #[serde(default = "default_screen_threshold")]
    pub threshold: f64,
    /// How often list files are checked for a new version.
    #[serde(default = "default_reload_every")]
    pub reload_every_secs: u64,
    /// Bearer token of the compliance API (a secret reference); without it the API is off.
    #[serde(default)]
    pub api_token: Option<String>,
    /// An external AML/KYC screening provider (docs/aml-provider.md), asked in addition to
    /// the lists; `api_key` is a secret reference.
    #[serde(default)]
    pub provider: Option<adapters::aml::AmlConfig>,
    /// 115-FZ transaction-monitoring rules; defaults documented in docs/monitoring-115fz.md.
    #[serde(default)]
    pub monitoring: compliance::monitoring::MonitoringConfig,
}

/// Where golden records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GoldenBackend {
    /// A SQLite file beside the hub (one hub process).
    #[default]
    Sqlite,
    /// A PostgreSQL database shared by several hub processes.
    Postgres,
}

/// The `[master_data]` section (docs/master-data.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MasterDataSection {
    /// `sqlite` (default) or `postgres`.
    #[serde(default)]
    pub store: GoldenBackend,
    /// SQLite file; default `<data_dir>/golden.db`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// PostgreSQL connection URL, a secret reference (`env:NAME` or `file:PATH`).
    #[serde(default)]
    pub postgres_url: Option<String>,
    /// Bearer token of the data-steward API (a secret reference); without it the API is off.
    #[serde(default)]
    pub api_token: Option<String>,
    /// Matcher thresholds and settings (`auto_merge`, `review`, ...).
    #[serde(default)]
    pub matching: mapping::mdm::matching::MatchConfig,
    /// Per entity and field: master system, fallbacks, survivorship rule.
    #[serde(default)]
    pub mastership: mapping::mdm::mastership::MastershipConfig,
}

/// `[reconcile]`: a reconciliation of one source with one sink's CRM run inside the hub
/// (docs/reconcile.md); also what `POST /api/reconcile/runs` starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileSection {
    /// The source (core bank) to compare.
    pub source: String,
    /// The sink whose CRM is compared; may be left out when one sink delivers the source.
    #[serde(default)]
    pub sink: Option<String>,
    /// Run every this many seconds (the first run one period after the start); absent:
    /// only runs started through the API.
    #[serde(default)]
    pub every_secs: Option<u64>,
}

impl ReconcileSection {
    /// Problems `hub validate` reports, as (field, message).
    pub fn problems(&self, config: &Config) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !config.sources.iter().any(|s| s.name == self.source) {
            out.push(("source", format!("no source named `{}`", self.source)));
        }
        if let Some(sink) = &self.sink
            && !config.sinks.iter().any(|s| &s.name == sink)
        {
            out.push(("sink", format!("no sink named `{sink}`")));
        }
        if self.every_secs == Some(0) {
            out.push(("every_secs", "must be at least 1".to_owned()));
        }
        out
    }
}

fn default_screen_threshold() -> f64 {
    compliance::DEFAULT_THRESHOLD
}

fn default_reload_every() -> u64 {
    300
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `sources[1].file_drop.encoding`.
    pub path: String,
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.path, self.message),
            None => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem of one config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} problem(s) found",
            self.file.display(),
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  {}: {p}", self.file.display())?;
        }
        Ok(())
    }
}

/// Reads and statically validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        problems: vec![Problem {
            path: "(file)".into(),
            line: None,
            message: format!("cannot read config file: {e}"),
        }],
    })?;
    let base_dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    parse(&text, base_dir).map_err(|problems| ConfigError {
        file: path.to_path_buf(),
        problems,
    })
}

const TOP_LEVEL: &[&str] = &[
    "hub",
    "bus",
    "store",
    "state",
    "http",
    "sources",
    "sinks",
    "compliance",
    "master_data",
    "quality",
    "auth",
    "audit",
    "reconcile",
    "encryption",
];

/// Parses and validates config text; `base_dir` anchors relative paths.
pub fn parse(text: &str, base_dir: PathBuf) -> Result<Config, Vec<Problem>> {
    let lines = LineIndex::new(text);
    let root: toml::Table = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            return Err(vec![Problem {
                path: "(syntax)".into(),
                line: e.span().map(|s| lines.line_of(s.start)),
                message: e.message().trim().to_string(),
            }]);
        }
    };
    let spans = SpanIndex::new(text);
    let mut problems = Vec::new();
    for key in root.keys() {
        if !TOP_LEVEL.contains(&key.as_str()) {
            problems.push(Problem {
                path: key.clone(),
                line: spans.line(&[Seg::Key(key.clone())], &lines),
                message: format!(
                    "unknown section `{key}`, expected one of {}",
                    TOP_LEVEL.join(", ")
                ),
            });
        }
    }
    let section = |name: &str| -> Option<toml::Value> { root.get(name).cloned() };
    let hub: Option<HubSection> =
        section_of(section("hub"), &[seg("hub")], &spans, &lines, &mut problems);
    let bus: Option<BusSection> =
        section_of(section("bus"), &[seg("bus")], &spans, &lines, &mut problems);
    let store: Option<StoreSection> = section_of(
        section("store"),
        &[seg("store")],
        &spans,
        &lines,
        &mut problems,
    );
    let state: Option<StateSection> = section_of(
        section("state"),
        &[seg("state")],
        &spans,
        &lines,
        &mut problems,
    );
    let http: Option<HttpSection> = section_of(
        section("http"),
        &[seg("http")],
        &spans,
        &lines,
        &mut problems,
    );
    let compliance: Option<ComplianceSection> = section_of(
        section("compliance"),
        &[seg("compliance")],
        &spans,
        &lines,
        &mut problems,
    );
    let master_data: Option<MasterDataSection> = section_of(
        section("master_data"),
        &[seg("master_data")],
        &spans,
        &lines,
        &mut problems,
    );
    let quality: Option<mapping::mdm::quality::QualityConfig> = section_of(
        section("quality"),
        &[seg("quality")],
        &spans,
        &lines,
        &mut problems,
    );
    let auth: Option<crate::auth::section::AuthSection> = section_of(
        section("auth"),
        &[seg("auth")],
        &spans,
        &lines,
        &mut problems,
    );
    let audit: Option<crate::audit::AuditSection> = section_of(
        section("audit"),
        &[seg("audit")],
        &spans,
        &lines,
        &mut problems,
    );
    let encryption: Option<EncryptionSection> = section_of(
        section("encryption"),
        &[seg("encryption")],
        &spans,
        &lines,
        &mut problems,
    );
    if let Some(e) = &encryption {
        encryption_checks(e, &spans, &lines, &mut problems);
    }
    let reconcile: Option<ReconcileSection> = section_of(
        section("reconcile"),
        &[seg("reconcile")],
        &spans,
        &lines,
        &mut problems,
    );
    if let Some(a) = &auth {
        for (path, message) in a.problems() {
            problems.push(Problem {
                line: spans.line(&[seg("auth")], &lines),
                path,
                message,
            });
        }
    }
    if let Some(r) = audit.as_ref().and_then(|a| a.key.as_ref())
        && let Err(message) = SecretRef::parse(r)
    {
        problems.push(Problem {
            path: "audit.key".into(),
            line: spans.line(&[seg("audit"), seg("key")], &lines),
            message,
        });
    }
    let sources: Vec<Option<SourceConfig>> =
        entries_of(section("sources"), "sources", &spans, &lines, &mut problems);
    let sinks: Vec<Option<SinkConfig>> =
        entries_of(section("sinks"), "sinks", &spans, &lines, &mut problems);

    // Relative paths of [bus.kafka.security] are relative to the config file, like the rest.
    let mut bus = bus;
    // So are the TLS files of the listener, the sinks and the AML provider.
    let (mut http, mut sinks, mut compliance) = (http, sinks, compliance);
    resolve_tls_paths(&mut http, &mut sinks, &mut compliance, &base_dir);
    if let Some(k) = bus.as_mut().and_then(|b| b.kafka.as_mut()) {
        k.security.base_dir = base_dir.clone();
    }
    let config = Config {
        base_dir,
        hub: hub.unwrap_or_default(),
        bus: bus.unwrap_or_default(),
        store: store.unwrap_or_default(),
        state: state.unwrap_or_default(),
        http: http.unwrap_or_default(),
        sources: sources.iter().flatten().cloned().collect(),
        sinks: sinks.iter().flatten().cloned().collect(),
        compliance: if root.contains_key("compliance") {
            compliance
        } else {
            None
        },
        master_data: if root.contains_key("master_data") {
            master_data
        } else {
            None
        },
        quality: if root.contains_key("quality") {
            quality
        } else {
            None
        },
        auth: if root.contains_key("auth") {
            auth
        } else {
            None
        },
        audit: if root.contains_key("audit") {
            audit
        } else {
            None
        },
        reconcile: if root.contains_key("reconcile") {
            reconcile
        } else {
            None
        },
        encryption: if root.contains_key("encryption") {
            encryption
        } else {
            None
        },
    };
    // Names of every source entry, valid or not, so a sink naming a broken source is not
    // also told that the source does not exist.
    let source_names: BTreeSet<String> = match root.get("sources") {
        Some(toml::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.get("name").and_then(|n| n.as_str()).map(str::to_string))
            .collect(),
        _ => BTreeSet::new(),
    };
    semantic_checks(
        &config,
        &sources,
        &sinks,
        &source_names,
        &spans,
        &lines,
        &mut problems,
    );
    if let Some(r) = &config.reconcile {
        for (field, message) in r.problems(&config) {
            problems.push(Problem {
                path: format!("reconcile.{field}"),
                line: spans.line(&[seg("reconcile"), seg(field)], &lines),
                message,
            });
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| p.line.unwrap_or(usize::MAX));
        Err(problems)
    }
}

/// Cross-field rules that serde cannot express.
fn semantic_checks(
    config: &Config,
    sources: &[Option<SourceConfig>],
    sinks: &[Option<SinkConfig>],
    source_names: &BTreeSet<String>,
    spans: &SpanIndex<'_>,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) {
    let mut add = |path: Vec<Seg>, message: String| {
        problems.push(Problem {
            path: render_path(&path),
            line: spans.line(&path, lines),
            message,
        });
    };
    if config.bus.kind == BusKind::Kafka && config.bus.kafka.is_none() {
        add(
            vec![seg("bus"), seg("kind")],
            "`kind = \"kafka\"` needs a [bus.kafka] section".into(),
        );
    }
    if let Some(k) = &config.bus.kafka {
        for (field, message) in k.security.problems(&k.bootstrap_servers) {
            add(
                vec![seg("bus"), seg("kafka"), seg("security"), seg(field)],
                message,
            );
        }
    }
    if config.bus.topic_prefix.is_empty()
        || !config
            .bus
            .topic_prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        add(
            vec![seg("bus"), seg("topic_prefix")],
            "must be non-empty and use only letters, digits, '.', '_' and '-'".into(),
        );
    }
    if config.bus.embedded.partitions == 0 || config.bus.embedded.partitions > 256 {
        add(
            vec![seg("bus"), seg("embedded"), seg("partitions")],
            "must be between 1 and 256".into(),
        );
    }
    if config.http.listen.parse::<std::net::SocketAddr>().is_err() {
        add(
            vec![seg("http"), seg("listen")],
            "must be an address like 127.0.0.1:9464".into(),
        );
    }
    if let Some(t) = &config.http.admin_token
        && let Err(e) = SecretRef::parse(t)
    {
        add(vec![seg("http"), seg("admin_token")], e);
    }
    for (path, message) in transport_security_problems(config, sources, sinks) {
        add(path, message);
    }
    let mut names = BTreeSet::new();
    for (i, s) in sources.iter().enumerate() {
        let Some(s) = s else { continue };
        let at = |k: &str| vec![seg("sources"), Seg::Index(i), seg(k)];
        if !valid_name(&s.name) {
            add(
                at("name"),
                "must be non-empty and use only letters, digits, '_' and '-'".into(),
            );
        } else if !names.insert(s.name.clone()) {
            add(at("name"), format!("duplicate source name `{}`", s.name));
        }
        // The declarative mapping compiles, whatever the source kind. Secret references
        // are only checked for their form here; check_environment resolves secrets.
        if let Some(m) = &s.mapping {
            let placeholder = "0".repeat(mapping::declarative::MIN_PAN_KEY_BYTES);
            let secrets = |r: &str| SecretRef::parse(r).map(|_| placeholder.clone());
            if let Err(problems) = m.compile(&secrets) {
                for p in problems {
                    let mut path = at("mapping");
                    path.extend(p.path.iter().map(|k| seg(k)));
                    add(path, p.reason);
                }
            }
        }
        // One block of checks per source kind.
        if s.kind == SourceKind::RestPoll || s.kind == SourceKind::Webhook {
            let (table, kind) = match s.kind {
                SourceKind::RestPoll => ("rest_poll", "rest_poll"),
                _ => ("webhook", "webhook"),
            };
            let settings = match s.kind {
                SourceKind::RestPoll => s.rest_poll.as_ref().map(|c| {
                    c.validate().err().map(|e| match e {
                        adapters::rest_poll::RestPollError::Config { field, reason } => {
                            (field, reason)
                        }
                        other => (String::new(), other.to_string()),
                    })
                }),
                _ => s.webhook.as_ref().map(|c| {
                    c.validate().err().map(|e| match e {
                        adapters::webhook::VerifyError::Config { field, reason } => (field, reason),
                        other => (String::new(), other.to_string()),
                    })
                }),
            };
            match settings {
                None => add(
                    at("kind"),
                    format!("`kind = \"{kind}\"` needs a [sources.{table}] table"),
                ),
                Some(Some((field, reason))) => {
                    let mut path = at(table);
                    path.extend(field.split('.').filter(|f| !f.is_empty()).map(seg));
                    add(path, reason);
                }
                Some(None) => {}
            }
            if s.mapping.is_none() {
                add(
                    at("kind"),
                    format!(
                        "`kind = \"{kind}\"` needs a [sources.mapping] table (docs/mapping.md)"
                    ),
                );
            }
            for (key, given) in [
                ("file_drop", s.file_drop.is_some()),
                ("columns", s.columns.is_some()),
                ("reader", s.reader.is_some()),
            ] {
                if given {
                    add(at(key), format!("not used by `kind = \"{kind}\"`"));
                }
            }
        }
        if s.kind != SourceKind::RestPoll && s.rest_poll.is_some() {
            add(at("rest_poll"), "only for `kind = \"rest_poll\"`".into());
        }
        if s.kind != SourceKind::Webhook && s.webhook.is_some() {
            add(at("webhook"), "only for `kind = \"webhook\"`".into());
        }
        if s.kind == SourceKind::Soap {
            match &s.soap {
                None => add(
                    at("kind"),
                    "`kind = \"soap\"` needs a [sources.soap] table".into(),
                ),
                Some(soap) => {
                    // Field paths such as `operations[1].record_path`.
                    for (field, reason) in soap.problems() {
                        let mut path = at("soap");
                        for part in field.split('.') {
                            match part.split_once('[') {
                                Some((key, index)) => {
                                    path.push(seg(key));
                                    if let Ok(n) = index.trim_end_matches(']').parse() {
                                        path.push(Seg::Index(n));
                                    }
                                }
                                None => path.push(seg(part)),
                            }
                        }
                        add(path, reason);
                    }
                    if let Some(ws) = &soap.ws_security
                        && let Err(e) = SecretRef::parse(&ws.password)
                    {
                        let mut path = at("soap");
                        path.extend([seg("ws_security"), seg("password")]);
                        add(path, e);
                    }
                }
            }
            if s.mapping.is_none() {
                add(
                    at("kind"),
                    "`kind = \"soap\"` needs a [sources.mapping] table (docs/mapping.md)".into(),
                );
            }
            for (key, given) in [
                ("file_drop", s.file_drop.is_some()),
                ("columns", s.columns.is_some()),
                ("reader", s.reader.is_some()),
            ] {
                if given {
                    add(at(key), "not used by `kind = \"soap\"`".into());
                }
            }
        }
        if s.kind != SourceKind::Soap && s.soap.is_some() {
            add(at("soap"), "only for `kind = \"soap\"`".into());
        }
        if s.kind == SourceKind::FileDrop {
            let how = [s.columns.is_some(), s.reader.is_some(), s.mapping.is_some()]
                .iter()
                .filter(|x| **x)
                .count();
            match (&s.columns, &s.reader) {
                _ if how == 0 => add(
                    at("columns"),
                    "a file drop needs [sources.columns] (customer files), [sources.reader] (bank file formats) or [sources.mapping] (CSV feeds such as card files)".into(),
                ),
                _ if how > 1 => add(
                    at("reader"),
                    "give one of [sources.columns], [sources.reader] and [sources.mapping]".into(),
                ),
                (None, None) => {}
                (Some(_), Some(_)) => {}
                (None, Some(r)) => {
                    if let Err(e) = r.validate() {
                        add(at("reader"), e);
                    }
                }
                (Some(_), None) => {
                    if s.entity != Entity::Party {
                        add(
                            at("entity"),
                            "customer columns map to `party`; use [sources.reader] for other records".into(),
                        );
                    }
                }
            }
            match &s.file_drop {
                None => add(
                    at("kind"),
                    "`kind = \"file_drop\"` needs a [sources.file_drop] table".into(),
                ),
                Some(fd) => {
                    if let Err(e) = fd.validate() {
                        add(at("file_drop"), e.to_string());
                    }
                }
            }
        }
    }
    if let Some(c) = &config.compliance {
        if !(c.threshold > 0.0 && c.threshold <= 1.0) {
            add(
                vec![seg("compliance"), seg("threshold")],
                "must be above 0 and at most 1".into(),
            );
        }
        let mut list_names = BTreeSet::new();
        for (i, l) in c.lists.iter().enumerate() {
            if !valid_name(&l.name) || !list_names.insert(l.name.clone()) {
                add(
                    vec![seg("compliance"), seg("lists"), Seg::Index(i), seg("name")],
                    format!(
                        "list names must be unique and use only letters, digits, '_' and '-' (`{}`)",
                        l.name
                    ),
                );
            }
        }
        if let Some(t) = &c.api_token
            && let Err(e) = SecretRef::parse(t)
        {
            add(vec![seg("compliance"), seg("api_token")], e);
        }
        if let Some(p) = &c.provider
            && let Err(e) = SecretRef::parse(&p.api_key)
        {
            add(vec![seg("compliance"), seg("provider"), seg("api_key")], e);
        }
    }
    if let Some(q) = &config.quality
        && let Err(e) = q.check()
    {
        add(vec![seg("quality")], e.to_string());
    }
    if let Some(m) = &config.master_data {
        let at = |k: &str| vec![seg("master_data"), seg(k)];
        if let Err(e) = m.matching.check() {
            add(at("matching"), e.to_string());
        }
        if let Err(e) = m.mastership.validate() {
            add(at("mastership"), e.to_string());
        }
        match (m.store, &m.postgres_url) {
            (GoldenBackend::Postgres, None) => add(
                at("postgres_url"),
                "`store = \"postgres\"` needs `postgres_url` (a secret reference)".into(),
            ),
            (GoldenBackend::Postgres, Some(url)) => {
                if let Err(e) = SecretRef::parse(url) {
                    add(at("postgres_url"), e);
                }
            }
            (GoldenBackend::Sqlite, Some(_)) => add(
                at("postgres_url"),
                "only used with `store = \"postgres\"`".into(),
            ),
            (GoldenBackend::Sqlite, None) => {}
        }
        if let Some(t) = &m.api_token
            && let Err(e) = SecretRef::parse(t)
        {
            add(at("api_token"), e);
        }
    }
    for (path, message) in shared_state_problems(config, sinks) {
        add(path, message);
    }
    let mut sink_names = BTreeSet::new();
    for (i, s) in sinks.iter().enumerate() {
        let Some(s) = s else { continue };
        let at = |k: &str| vec![seg("sinks"), Seg::Index(i), seg(k)];
        if !valid_name(&s.name) {
            add(
                at("name"),
                "must be non-empty and use only letters, digits, '_' and '-'".into(),
            );
        } else if !sink_names.insert(s.name.clone()) {
            add(at("name"), format!("duplicate sink name `{}`", s.name));
        }
        for src in &s.sources {
            if !source_names.contains(src) {
                add(at("sources"), format!("no source named `{src}`"));
            }
        }
        let tables = [
            (SinkKind::CrmRest, s.crm_rest.is_some()),
            (SinkKind::Salesforce, s.salesforce.is_some()),
            (SinkKind::Dynamics, s.dynamics.is_some()),
            (SinkKind::Bitrix24, s.bitrix24.is_some()),
        ];
        for (kind, present) in tables {
            if kind == s.kind && !present {
                add(
                    at("kind"),
                    format!("`kind = \"{0}\"` needs a [sinks.{0}] table", kind.as_str()),
                );
            } else if kind != s.kind && present {
                add(
                    at(kind.as_str()),
                    format!("only used with `kind = \"{}\"`", kind.as_str()),
                );
            }
        }
        if s.kind != SinkKind::CrmRest && config.master_data.is_some() {
            add(
                at("kind"),
                format!(
                    "golden records need a CRM that can merge contacts; the {} connector \
                     cannot yet, so use it without [master_data]",
                    s.kind.as_str()
                ),
            );
        }
        let vendor_check =
            |table: &str, secret_field: &str, secret: &str, checked: Result<(), String>| {
                let mut out = Vec::new();
                if let Err(e) = SecretRef::parse(secret) {
                    out.push((
                        vec![seg("sinks"), Seg::Index(i), seg(table), seg(secret_field)],
                        e,
                    ));
                }
                if let Err(e) = checked {
                    out.push((vec![seg("sinks"), Seg::Index(i), seg(table)], e));
                }
                out
            };
        let mut vendor_problems = Vec::new();
        if let Some(c) = &s.salesforce {
            let mut probe = c.clone();
            probe.access_token = "placeholder".into();
            vendor_problems.extend(vendor_check(
                "salesforce",
                "access_token",
                &c.access_token,
                probe.validate().map(drop).map_err(|e| e.to_string()),
            ));
        }
        if let Some(c) = &s.dynamics {
            let mut probe = c.clone();
            probe.access_token = "placeholder".into();
            vendor_problems.extend(vendor_check(
                "dynamics",
                "access_token",
                &c.access_token,
                probe.validate().map(drop).map_err(|e| e.to_string()),
            ));
        }
        if let Some(c) = &s.bitrix24 {
            // The webhook URL carries the token: only its reference is in the file, so the
            // URL itself is checked when the hub starts.
            let mut probe = c.clone();
            probe.webhook_url = "https://portal.invalid/rest/1/placeholder/".into();
            vendor_problems.extend(vendor_check(
                "bitrix24",
                "webhook_url",
                &c.webhook_url,
                probe.validate().map(drop).map_err(|e| e.to_string()),
            ));
        }
        for (path, message) in vendor_problems {
            add(path, message);
        }
        let d = &s.delivery;
        let delivery = |k: &str| vec![seg("sinks"), Seg::Index(i), seg("delivery"), seg(k)];
        if let Some(bad) = d
            .retry_delays_secs
            .iter()
            .find(|secs| **secs == 0 || **secs > MAX_DELIVERY_DELAY_SECS)
        {
            add(
                delivery("retry_delays_secs"),
                format!("{bad}: each delay must be 1 to {MAX_DELIVERY_DELAY_SECS} seconds"),
            );
        }
        if d.breaker_failures == 0 {
            add(delivery("breaker_failures"), "must be at least 1".into());
        }
        if d.breaker_open_secs == 0 || d.breaker_open_secs > MAX_DELIVERY_DELAY_SECS {
            add(
                delivery("breaker_open_secs"),
                format!("must be 1 to {MAX_DELIVERY_DELAY_SECS} seconds"),
            );
        }
        if d.breaker_max_open_secs < d.breaker_open_secs
            || d.breaker_max_open_secs > MAX_DELIVERY_DELAY_SECS
        {
            add(
                delivery("breaker_max_open_secs"),
                format!(
                    "must be at least breaker_open_secs ({}) and at most {MAX_DELIVERY_DELAY_SECS}",
                    d.breaker_open_secs
                ),
            );
        }
        match (s.kind, &s.crm_rest) {
            (_, None) => {}
            (_, Some(crm)) => {
                if !(crm.base_url.starts_with("http://") || crm.base_url.starts_with("https://")) {
                    add(
                        vec![
                            seg("sinks"),
                            Seg::Index(i),
                            seg("crm_rest"),
                            seg("base_url"),
                        ],
                        "must start with http:// or https://".into(),
                    );
                }
                if let Some(token) = &crm.token
                    && let Err(e) = SecretRef::parse(token)
                {
                    add(
                        vec![seg("sinks"), Seg::Index(i), seg("crm_rest"), seg("token")],
                        e,
                    );
                }
            }
        }
    }
    if sources.iter().flatten().count() > 0 && sinks.iter().flatten().count() == 0 {
        add(
            vec![seg("sinks")],
            "no sink configured: events would have nowhere to go".into(),
        );
    }
}

// ---- TLS: listener and client files, the plain-HTTP rule (docs/tls.md) ----

/// The client TLS tables of a sink, with the table name (`crm_rest`, ...).
fn sink_tls_mut(s: &mut SinkConfig) -> Vec<&mut adapters::tls::ClientTls> {
    let mut out = Vec::new();
    if let Some(c) = s.crm_rest.as_mut() {
        out.push(&mut c.tls);
    }
    if let Some(c) = s.salesforce.as_mut() {
        out.push(&mut c.tls);
    }
    if let Some(c) = s.dynamics.as_mut() {
        out.push(&mut c.tls);
    }
    if let Some(c) = s.bitrix24.as_mut() {
        out.push(&mut c.tls);
    }
    out
}

/// Every outgoing endpoint with a client TLS table: (key path of its table, URL field and
/// URL — `None` when the URL is a secret reference —, `allow_plain_http`, TLS table).
type Endpoint<'a> = (
    Vec<Seg>,
    Option<(&'static str, &'a str)>,
    bool,
    &'a adapters::tls::ClientTls,
);

fn client_endpoints<'a>(config: &'a Config, sinks: &'a [Option<SinkConfig>]) -> Vec<Endpoint<'a>> {
    let mut out: Vec<Endpoint<'a>> = Vec::new();
    for (i, s) in sinks.iter().enumerate() {
        let Some(s) = s else { continue };
        let at = |t: &str| vec![seg("sinks"), Seg::Index(i), seg(t)];
        if let Some(c) = &s.crm_rest {
            out.push((
                at("crm_rest"),
                Some(("base_url", &c.base_url)),
                c.allow_plain_http,
                &c.tls,
            ));
        }
        if let Some(c) = &s.salesforce {
            out.push((
                at("salesforce"),
                Some(("instance_url", &c.instance_url)),
                c.allow_plain_http,
                &c.tls,
            ));
        }
        if let Some(c) = &s.dynamics {
            out.push((
                at("dynamics"),
                Some(("org_url", &c.org_url)),
                c.allow_plain_http,
                &c.tls,
            ));
        }
        // The Bitrix24 URL is a secret reference: its client applies the rule at start.
        if let Some(c) = &s.bitrix24 {
            out.push((at("bitrix24"), None, c.allow_plain_http, &c.tls));
        }
    }
    if let Some(p) = config.compliance.as_ref().and_then(|c| c.provider.as_ref()) {
        out.push((
            vec![seg("compliance"), seg("provider")],
            Some(("base_url", &p.base_url)),
            p.allow_plain_http,
            &p.tls,
        ));
    }
    out
}

/// Makes the TLS file paths of the listener, the sinks and the AML provider relative to the
/// config file's folder. (REST and SOAP sources resolve theirs when their client is built.)
fn resolve_tls_paths(
    http: &mut Option<HttpSection>,
    sinks: &mut [Option<SinkConfig>],
    compliance: &mut Option<ComplianceSection>,
    base_dir: &Path,
) {
    if let Some(t) = http.as_mut().and_then(|h| h.tls.as_mut()) {
        for p in [&mut t.cert_file, &mut t.key_file]
            .into_iter()
            .chain(t.client_ca_file.as_mut())
        {
            if p.is_relative() {
                *p = base_dir.join(&*p);
            }
        }
    }
    for s in sinks.iter_mut().flatten() {
        for tls in sink_tls_mut(s) {
            tls.resolve_paths(base_dir);
        }
    }
    if let Some(p) = compliance.as_mut().and_then(|c| c.provider.as_mut()) {
        p.tls.resolve_paths(base_dir);
    }
}

/// Static transport-security rules: no plain HTTP off loopback unless the endpoint allows
/// it (listener and clients alike), and coherent client TLS tables.
fn transport_security_problems(
    config: &Config,
    sources: &[Option<SourceConfig>],
    sinks: &[Option<SinkConfig>],
) -> Vec<(Vec<Seg>, String)> {
    let mut out = Vec::new();
    let http = &config.http;
    if let Ok(addr) = http.listen.parse::<std::net::SocketAddr>()
        && !addr.ip().is_loopback()
        && http.tls.is_none()
        && !http.allow_plain_http
    {
        out.push((
            vec![seg("http"), seg("listen")],
            format!(
                "plain http on {addr} (not loopback) is refused: admin tokens, webhook bodies \
                 and customer data would cross the network unencrypted; add [http.tls] \
                 (docs/tls.md) or set `[http] allow_plain_http = true`"
            ),
        ));
    }
    for (mut table, url, allow, tls) in client_endpoints(config, sinks) {
        if let Some((field, url)) = url
            && let Some(reason) = adapters::tls::plain_http_problem(url, allow)
        {
            let mut path = table.clone();
            path.push(seg(field));
            out.push((path, reason));
        }
        table.push(seg("tls"));
        for (field, reason) in tls.problems() {
            let mut path = table.clone();
            path.push(seg(field));
            out.push((path, reason));
        }
    }
    for (i, s) in sources.iter().enumerate() {
        let Some(s) = s else { continue };
        let at = |t: &str, f: &str| vec![seg("sources"), Seg::Index(i), seg(t), seg(f)];
        if let Some(c) = &s.rest_poll
            && let Some(reason) = adapters::tls::plain_http_problem(&c.base_url, c.allow_plain_http)
        {
            out.push((at("rest_poll", "base_url"), reason));
        }
        if let Some(c) = &s.soap
            && let Some(reason) = adapters::tls::plain_http_problem(&c.endpoint, c.allow_plain_http)
        {
            out.push((at("soap", "endpoint"), reason));
        }
    }
    out
}

/// TLS files the running machine must provide (listener, sinks, AML provider).
fn tls_file_problems(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let missing = |what: String, p: &Path| {
        (!p.is_file()).then(|| format!("{what}: {} does not exist", p.display()))
    };
    if let Some(t) = &config.http.tls {
        let files = [
            ("cert_file", Some(&t.cert_file)),
            ("key_file", Some(&t.key_file)),
        ]
        .into_iter()
        .chain([("client_ca_file", t.client_ca_file.as_ref())]);
        for (field, p) in files {
            if let Some(p) = p {
                out.extend(missing(format!("http.tls.{field}"), &config.resolve(p)));
            }
        }
    }
    let sinks: Vec<Option<SinkConfig>> = config.sinks.iter().cloned().map(Some).collect();
    for (table, _, _, tls) in client_endpoints(config, &sinks) {
        for (field, p) in tls.files() {
            out.extend(missing(
                format!("{}.tls.{field}", render_path(&table)),
                &config.resolve(p),
            ));
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A reference to a secret held outside the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<SecretRef, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() {
                return Err("secret reference `env:` needs a variable name".into());
            }
            return Ok(SecretRef::Env(name.to_string()));
        }
        if let Some(path) = s.strip_prefix("file:") {
            if path.is_empty() {
                return Err("secret reference `file:` needs a path".into());
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        Err("secrets must be references (`env:NAME` or `file:PATH`), never inline values".into())
    }
}

/// Resolves a secret reference; `base_dir` anchors relative `file:` paths.
/// Key ids and references of `[encryption]`; the key material is read when the cipher is
/// built (`crypto::of_config`), not here.
fn encryption_checks(
    e: &EncryptionSection,
    spans: &SpanIndex,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) {
    if !e.keys.contains_key(&e.active) {
        problems.push(Problem {
            path: "encryption.active".into(),
            line: spans.line(&[seg("encryption"), seg("active")], lines),
            message: format!(
                "active key `{}` is not listed in [encryption.keys]",
                e.active
            ),
        });
    }
    for (id, reference) in &e.keys {
        let path = [seg("encryption"), seg("keys"), seg(id)];
        if !crate::crypto::fields::valid_key_id(id) {
            problems.push(Problem {
                path: format!("encryption.keys.{id}"),
                line: spans.line(&path, lines),
                message: "a key id is 1-32 letters, digits or `-`".into(),
            });
        }
        if let Err(message) = SecretRef::parse(reference) {
            problems.push(Problem {
                path: format!("encryption.keys.{id}"),
                line: spans.line(&path, lines),
                message,
            });
        }
    }
}

pub fn resolve_secret(reference: &str, base_dir: &Path) -> Result<String, String> {
    match SecretRef::parse(reference)? {
        SecretRef::Env(name) => {
            std::env::var(&name).map_err(|_| format!("environment variable `{name}` is not set"))
        }
        SecretRef::File(p) => {
            let p = base_dir.join(p);
            std::fs::read_to_string(&p)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| format!("cannot read secret file {}: {e}", p.display()))
        }
    }
}

// ---- [bus.kafka.security] ----

/// How the hub's Kafka clients protect their connections to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KafkaProtocol {
    /// No encryption, no authentication: loopback brokers only unless `allow_plaintext`.
    #[default]
    Plaintext,
    /// TLS; the broker's certificate is checked against `ca_file` (or the system's CAs).
    Ssl,
    /// SCRAM authentication without TLS: refused unless `allow_plaintext_sasl`.
    SaslPlaintext,
    /// SCRAM authentication over TLS.
    SaslSsl,
}

impl KafkaProtocol {
    /// The value of librdkafka's `security.protocol`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaProtocol::SaslSsl => "sasl_ssl",
        }
    }
    fn uses_tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }
    fn uses_sasl(self) -> bool {
        matches!(self, KafkaProtocol::SaslPlaintext | KafkaProtocol::SaslSsl)
    }
}

/// The SASL mechanisms the hub supports: SCRAM only (the password never crosses the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum ScramMechanism {
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
}

impl ScramMechanism {
    /// The value of librdkafka's `sasl.mechanisms`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScramMechanism::ScramSha512 => "SCRAM-SHA-512",
            ScramMechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// `[bus.kafka.security]`: encryption and authentication towards the brokers. Absent means
/// `plaintext`, which is accepted for loopback brokers only.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext` (default), `ssl`, `sasl_ssl`, or `sasl_plaintext` (refused unless
    /// `allow_plaintext_sasl`).
    #[serde(default)]
    pub protocol: KafkaProtocol,
    /// `SCRAM-SHA-512` (default) or `SCRAM-SHA-256`; used by the `sasl_*` protocols.
    #[serde(default)]
    pub sasl_mechanism: ScramMechanism,
    /// SCRAM user name; required by the `sasl_*` protocols.
    #[serde(default)]
    pub username: Option<String>,
    /// SCRAM password, by reference only: `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub password: Option<String>,
    /// PEM bundle of the CAs that may sign the brokers' certificates (a bank's internal CA);
    /// absent means the system's trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM certificate the hub presents to the brokers (mutual TLS); needs `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Unencrypted PEM private key of `cert_file`; keep it readable by the hub's user only.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Accepts `plaintext` / `sasl_plaintext` to brokers that are not on a loopback address.
    #[serde(default)]
    pub allow_plaintext: bool,
    /// Accepts `sasl_plaintext` (SCRAM without TLS: events travel unencrypted).
    #[serde(default)]
    pub allow_plaintext_sasl: bool,
    /// Folder relative paths and `file:` references are resolved against: the config file's
    /// folder, set by [`parse`]; empty (the working directory) for settings built in code.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

impl fmt::Debug for KafkaSecurity {
    /// The password reference is left out: it is a secret's address, and a mistyped inline
    /// secret must not reach a log through a debug print before validation refuses it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSecurity")
            .field("protocol", &self.protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("allow_plaintext_sasl", &self.allow_plaintext_sasl)
            .finish()
    }
}

impl KafkaSecurity {
    /// Static problems of this section, as (field, reason), for brokers at `bootstrap_servers`.
    /// Does no IO: files and secrets are checked by [`check_environment`].
    pub fn problems(&self, bootstrap_servers: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let p = self.protocol;
        if p == KafkaProtocol::SaslPlaintext && !self.allow_plaintext_sasl {
            out.push((
                "protocol",
                "`sasl_plaintext` sends events unencrypted; use `sasl_ssl`, or set \
                 `allow_plaintext_sasl = true`"
                    .to_string(),
            ));
        }
        if !p.uses_tls()
            && !self.allow_plaintext
            && let Some(host) = non_loopback_broker(bootstrap_servers)
        {
            out.push((
                "protocol",
                format!(
                    "`{}` to broker {host}, which is not a loopback address, is refused; use \
                     `ssl` or `sasl_ssl`, or set `allow_plaintext = true`",
                    p.as_str()
                ),
            ));
        }
        if p.uses_sasl() {
            match &self.username {
                None => out.push(("username", format!("required with `{}`", p.as_str()))),
                Some(u) if u.trim().is_empty() => {
                    out.push(("username", "must not be empty".to_string()))
                }
                Some(_) => {}
            }
            match &self.password {
                None => out.push((
                    "password",
                    format!("required with `{}` (`env:NAME` or `file:PATH`)", p.as_str()),
                )),
                Some(r) => {
                    if let Err(e) = SecretRef::parse(r) {
                        out.push(("password", e));
                    }
                }
            }
        } else {
            for (field, set) in [
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
            ] {
                if set {
                    out.push((
                        field,
                        format!("only used with `sasl_ssl`, not `{}`", p.as_str()),
                    ));
                }
            }
        }
        if !p.uses_tls() {
            for (field, set) in [
                ("ca_file", self.ca_file.is_some()),
                ("cert_file", self.cert_file.is_some()),
                ("key_file", self.key_file.is_some()),
            ] {
                if set {
                    out.push((
                        field,
                        format!("only used with `ssl` or `sasl_ssl`, not `{}`", p.as_str()),
                    ));
                }
            }
        } else if self.cert_file.is_some() != self.key_file.is_some() {
            let missing = if self.cert_file.is_some() {
                "key_file"
            } else {
                "cert_file"
            };
            out.push((
                missing,
                "mutual TLS needs both `cert_file` and `key_file`".to_string(),
            ));
        }
        out
    }

    /// The librdkafka settings for this section, the password resolved. The values are
    /// handed straight to the client; the password is never logged (librdkafka and rdkafka
    /// both redact `sasl.password`).
    pub fn client_settings(&self) -> Result<Vec<(&'static str, String)>, String> {
        let p = self.protocol;
        let mut out = vec![("security.protocol", p.as_str().to_string())];
        if p.uses_sasl() {
            let username = self
                .username
                .clone()
                .ok_or("security.username is required with a sasl protocol")?;
            let reference = self
                .password
                .as_deref()
                .ok_or("security.password is required with a sasl protocol")?;
            let password = resolve_secret(reference, &self.base_dir)
                .map_err(|e| format!("security.password: {e}"))?;
            if password.is_empty() {
                return Err("security.password: the secret is empty".to_string());
            }
            out.push(("sasl.mechanisms", self.sasl_mechanism.as_str().to_string()));
            out.push(("sasl.username", username));
            out.push(("sasl.password", password));
        }
        if p.uses_tls() {
            // Hostname verification stays on (librdkafka's default `https`).
            for (key, file) in [
                ("ssl.ca.location", &self.ca_file),
                ("ssl.certificate.location", &self.cert_file),
                ("ssl.key.location", &self.key_file),
            ] {
                if let Some(f) = file {
                    out.push((key, self.base_dir.join(f).display().to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Problems only the running machine can show: the password resolves, the files exist.
    fn environment_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.protocol.uses_sasl()
            && let Some(r) = &self.password
            && let Err(e) = resolve_secret(r, &self.base_dir)
        {
            out.push(format!("bus.kafka.security.password: {e}"));
        }
        if self.protocol.uses_tls() {
            for (field, file) in [
                ("ca_file", &self.ca_file),
                ("cert_file", &self.cert_file),
                ("key_file", &self.key_file),
            ] {
                if let Some(f) = file
                    && !self.base_dir.join(f).is_file()
                {
                    out.push(format!(
                        "bus.kafka.security.{field}: {} does not exist",
                        self.base_dir.join(f).display()
                    ));
                }
            }
        }
        out
    }
}

/// The first broker of a `host:port,...` list whose host is not a loopback name or address.
fn non_loopback_broker(bootstrap_servers: &str) -> Option<String> {
    bootstrap_servers
        .split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .find(|b| !is_loopback_broker(b))
        .map(str::to_string)
}

fn is_loopback_broker(broker: &str) -> bool {
    // librdkafka accepts an optional `protocol://` prefix.
    let b = broker.split_once("://").map_or(broker, |(_, rest)| rest);
    let host = if let Some(rest) = b.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(h, _)| h)
    } else {
        b.rsplit_once(':').map_or(b, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.hub.data_dir)
    }
    pub fn bus_path(&self) -> PathBuf {
        match &self.bus.embedded.path {
            Some(p) => self.resolve(p),
            None => self.data_dir().join("bus.db"),
        }
    }
    /// The topic the CRM sinks read: golden records when master data is configured, else
    /// what screening cleared, else the canonical topic.
    pub fn sink_topic(&self) -> String {
        if self.master_data.is_some() {
            self.bus.golden_topic()
        } else {
            self.golden_input_topic()
        }
    }

    /// The topic the golden stage reads: what screening cleared, or the canonical topic
    /// when compliance is not configured.
    pub fn golden_input_topic(&self) -> String {
        if self.compliance.is_some() {
            self.bus.cleared_topic()
        } else {
            self.bus.canonical_topic()
        }
    }

    /// The system a source reads, as mastership rules and cross-references name it.
    pub fn system_of<'a>(&'a self, source: &'a str) -> &'a str {
        self.sources
            .iter()
            .find(|s| s.name == source)
            .and_then(|s| s.system.as_deref())
            .unwrap_or(source)
    }

    /// The golden-record SQLite file.
    pub fn golden_path(&self) -> Option<PathBuf> {
        let m = self.master_data.as_ref()?;
        Some(match &m.path {
            Some(p) => self.resolve(p),
            None => self.data_dir().join("golden.db"),
        })
    }

    pub fn store_path(&self) -> PathBuf {
        match &self.store.path {
            Some(p) => self.resolve(p),
            None => self.data_dir().join("state.db"),
        }
    }
    /// A file-drop config with its folders resolved against the config's folder.
    pub fn file_drop(&self, source: &SourceConfig) -> Option<FileDropConfig> {
        source.file_drop.as_ref().map(|fd| {
            let mut fd = fd.clone();
            fd.inbox = self.resolve(&fd.inbox);
            fd.work_dir = fd.work_dir.as_ref().map(|w| self.resolve(w));
            fd
        })
    }
}

/// `[state]`: the URL's form, and — with the PostgreSQL store, meant for several hub
/// processes — every feature whose state would stay one process's and silently split
/// across instances (docs/scale-out.md).
fn shared_state_problems(config: &Config, sinks: &[Option<SinkConfig>]) -> Vec<(Vec<Seg>, String)> {
    let mut out = Vec::new();
    let at = |k: &str| vec![seg("state"), seg(k)];
    match (config.state.store, &config.state.postgres_url) {
        (StateBackend::Postgres, None) => out.push((
            at("postgres_url"),
            "`store = \"postgres\"` needs `postgres_url` (a secret reference)".into(),
        )),
        (StateBackend::Postgres, Some(url)) => {
            if let Err(e) = SecretRef::parse(url) {
                out.push((at("postgres_url"), e));
            }
        }
        (StateBackend::Sqlite, Some(_)) => out.push((
            at("postgres_url"),
            "only used with `store = \"postgres\"`".into(),
        )),
        (StateBackend::Sqlite, None) => {}
    }
    if config.state.store != StateBackend::Postgres {
        return out;
    }
    let why = "with `[state] store = \"postgres\"` several hub processes share the state";
    if config.store.path.is_some() {
        out.push((
            vec![seg("store"), seg("path")],
            "the SQLite state file is not used with `[state] store = \"postgres\"`".into(),
        ));
    }
    if config.bus.kind != BusKind::Kafka {
        out.push((
            vec![seg("bus"), seg("kind")],
            format!(
                "{why} and split the work through Kafka consumer groups; the embedded bus \
                 is one process's: use `kind = \"kafka\"`"
            ),
        ));
    }
    if config.compliance.is_some() {
        out.push((
            vec![seg("compliance")],
            format!(
                "{why}, but compliance state (cases, holds, screened versions, alerts) is \
                 one process's SQLite file (compliance.db) and would split across \
                 instances: run screening in a single hub with the SQLite state store"
            ),
        ));
    }
    if let Some(m) = &config.master_data
        && m.store != GoldenBackend::Postgres
    {
        out.push((
            vec![seg("master_data"), seg("store")],
            format!(
                "{why}; golden records in a SQLite file would split across instances: use \
                 `store = \"postgres\"`"
            ),
        ));
    }
    for (i, s) in sinks.iter().enumerate() {
        let Some(s) = s else { continue };
        if !s.delivery.retry_delays_secs.is_empty() {
            out.push((
                vec![
                    seg("sinks"),
                    Seg::Index(i),
                    seg("delivery"),
                    seg("retry_delays_secs"),
                ],
                format!(
                    "{why}; a parked record's retry may run in another instance than the \
                     sink delivering newer versions of the same key, so an older version \
                     could overwrite a newer one in the CRM: set `retry_delays_secs = []` \
                     (failing records then hold their partition until they go through)"
                ),
            ));
        }
    }
    out
}

/// What the machine must provide for this config: secrets resolvable, folders present or
/// creatable. Reported separately from static problems.
pub fn check_environment(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if let (BusKind::Kafka, Some(k)) = (config.bus.kind, &config.bus.kafka) {
        out.extend(k.security.environment_problems());
    }
    for s in &config.sinks {
        if let Some(crm) = &s.crm_rest
            && let Some(token) = &crm.token
            && let Err(e) = resolve_secret(token, &config.base_dir)
        {
            out.push(format!("sinks `{}`: crm_rest.token: {e}", s.name));
        }
        let vendor_secrets = [
            (
                "salesforce.access_token",
                s.salesforce.as_ref().map(|c| &c.access_token),
            ),
            (
                "dynamics.access_token",
                s.dynamics.as_ref().map(|c| &c.access_token),
            ),
            (
                "bitrix24.webhook_url",
                s.bitrix24.as_ref().map(|c| &c.webhook_url),
            ),
        ];
        for (field, secret) in vendor_secrets {
            if let Some(r) = secret
                && let Err(e) = resolve_secret(r, &config.base_dir)
            {
                out.push(format!("sinks `{}`: {field}: {e}", s.name));
            }
        }
    }
    for s in &config.sources {
        if let Some(fd) = config.file_drop(s)
            && !fd.inbox.is_dir()
        {
            out.push(format!(
                "sources `{}`: inbox {} does not exist or is not a folder",
                s.name,
                fd.inbox.display()
            ));
        }
        // Secrets and TLS files of the HTTP sources.
        let mut refs: Vec<(String, &str)> = Vec::new();
        if let Some(rp) = &s.rest_poll {
            refs.extend(
                rp.secret_refs()
                    .into_iter()
                    .map(|(f, r)| (format!("rest_poll.{f}"), r)),
            );
            for (field, file) in rp.tls.iter().flat_map(|t| {
                [
                    ("ca_file", &t.ca_file),
                    ("client_cert", &t.client_cert),
                    ("client_key", &t.client_key),
                ]
            }) {
                if let Some(p) = file
                    && !config.resolve(p).is_file()
                {
                    out.push(format!(
                        "sources `{}`: rest_poll.tls.{field}: {} does not exist",
                        s.name,
                        config.resolve(p).display()
                    ));
                }
            }
        }
        if let Some(wh) = &s.webhook {
            refs.push(("webhook.secret".into(), wh.secret.as_str()));
        }
        for (field, r) in refs {
            if let Err(e) = resolve_secret(r, &config.base_dir) {
                out.push(format!("sources `{}`: {field}: {e}", s.name));
            }
        }
    }
    for s in &config.sources {
        if let Some(soap) = &s.soap
            && let Some(ws) = &soap.ws_security
            && let Err(e) = resolve_secret(&ws.password, &config.base_dir)
        {
            out.push(format!(
                "sources `{}`: soap.ws_security.password: {e}",
                s.name
            ));
        }
        if let Some(m) = &s.mapping
            && let Some(k) = &m.pan_key
            && let Err(e) = resolve_secret(k, &config.base_dir)
        {
            out.push(format!("sources `{}`: mapping.pan_key: {e}", s.name));
        }
    }
    if let Some(t) = &config.http.admin_token
        && let Err(e) = resolve_secret(t, &config.base_dir)
    {
        out.push(format!("http.admin_token: {e}"));
    }
    if let Some(r) = &config.state.postgres_url
        && let Err(e) = resolve_secret(r, &config.base_dir)
    {
        out.push(format!("state.postgres_url: {e}"));
    }
    if let Some(m) = &config.master_data {
        for (field, r) in [
            ("postgres_url", &m.postgres_url),
            ("api_token", &m.api_token),
        ] {
            if let Some(r) = r
                && let Err(e) = resolve_secret(r, &config.base_dir)
            {
                out.push(format!("master_data.{field}: {e}"));
            }
        }
    }
    if let Some(c) = &config.compliance {
        if let Some(t) = &c.api_token
            && let Err(e) = resolve_secret(t, &config.base_dir)
        {
            out.push(format!("compliance.api_token: {e}"));
        }
        if let Some(p) = &c.provider
            && let Err(e) = resolve_secret(&p.api_key, &config.base_dir)
        {
            out.push(format!("compliance.provider.api_key: {e}"));
        }
        for l in &c.lists {
            let p = config.resolve(&l.path);
            if !p.exists() {
                out.push(format!(
                    "compliance list `{}`: {} does not exist",
                    l.name,
                    p.display()
                ));
            }
        }
    }
    out.extend(tls_file_problems(config));
    out
}

// ---- per-section deserialisation that collects every problem ----

fn seg(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for p in path {
        match p {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn entries_of<T: DeserializeOwned>(
    value: Option<toml::Value>,
    name: &str,
    spans: &SpanIndex<'_>,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) -> Vec<Option<T>> {
    let Some(value) = value else {
        return Vec::new();
    };
    let toml::Value::Array(items) = value else {
        problems.push(Problem {
            path: name.to_string(),
            line: spans.line(&[seg(name)], lines),
            message: format!("must be an array of tables: write [[{name}]]"),
        });
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            section_of(
                Some(item),
                &[seg(name), Seg::Index(i)],
                spans,
                lines,
                problems,
            )
        })
        .collect()
}

/// Deserialises one section; on an error, records it, removes the offending key and tries
/// again, so one bad key does not hide the next.
fn section_of<T: DeserializeOwned>(
    value: Option<toml::Value>,
    at: &[Seg],
    spans: &SpanIndex<'_>,
    lines: &LineIndex,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    let mut value = value?;
    let mut removed: Vec<String> = Vec::new();
    for _ in 0..64 {
        let result: Result<T, _> = serde_path_to_error::deserialize(value.clone());
        // What is left once the offending keys are set aside still goes through the
        // cross-field checks, so they can report their problems in the same run.
        let err = match result {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        let mut path: Vec<Seg> = at.to_vec();
        for s in err.path().iter() {
            match s {
                serde_path_to_error::Segment::Seq { index } => path.push(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => path.push(Seg::Key(key.clone())),
                serde_path_to_error::Segment::Enum { variant } => {
                    path.push(Seg::Key(variant.clone()))
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let message = err.inner().message().trim().to_string();
        // A key we set aside ourselves is not a second problem.
        if let Some(field) = missing_field(&message)
            && removed.iter().any(|r| r == field)
        {
            return None;
        }
        problems.push(Problem {
            path: render_path(&path),
            line: spans.line(&path, lines),
            message: message.clone(),
        });
        let rel = &path[at.len()..];
        let removable = !rel.is_empty() && missing_field(&message).is_none();
        if !removable || !remove_at(&mut value, rel) {
            return None;
        }
        if let Some(Seg::Key(k)) = rel.last() {
            removed.push(k.clone());
        }
    }
    None
}

fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

fn remove_at(value: &mut toml::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut cur = value;
    for p in parents {
        cur = match (p, cur) {
            (Seg::Key(k), toml::Value::Table(t)) => match t.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Seg::Index(i), toml::Value::Array(a)) => match a.get_mut(*i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Seg::Key(k), toml::Value::Table(t)) => t.remove(k).is_some(),
        (Seg::Index(i), toml::Value::Array(a)) if *i < a.len() => {
            a.remove(*i);
            true
        }
        _ => false,
    }
}

/// Maps byte offsets to 1-based lines.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// The spanned parse of the file, to find the line of a key path.
struct SpanIndex<'a> {
    root: Option<toml::Spanned<toml::de::DeTable<'a>>>,
}

impl<'a> SpanIndex<'a> {
    fn new(text: &'a str) -> Self {
        SpanIndex {
            root: toml::de::DeTable::parse(text).ok(),
        }
    }

    /// The line of the deepest part of `path` found in the file.
    fn line(&self, path: &[Seg], lines: &LineIndex) -> Option<usize> {
        let root = self.root.as_ref()?;
        let mut best: Option<usize> = None;
        let mut table: Option<&toml::de::DeTable<'a>> = Some(root.get_ref());
        let mut value: Option<&toml::de::DeValue<'a>> = None;
        for p in path {
            match p {
                Seg::Key(k) => {
                    let t = match (table, value) {
                        (Some(t), _) => t,
                        (None, Some(toml::de::DeValue::Table(t))) => t,
                        _ => break,
                    };
                    let Some((key, v)) = t.get_key_value(k.as_str()) else {
                        break;
                    };
                    best = Some(key.span().start);
                    value = Some(v.get_ref());
                    table = None;
                }
                Seg::Index(i) => {
                    let Some(toml::de::DeValue::Array(a)) = value else {
                        break;
                    };
                    let Some(v) = a.get(*i) else { break };
                    best = Some(v.span().start);
                    value = Some(v.get_ref());
                }
            }
        }
        best.map(|o| lines.line_of(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_index_maps_offsets() {
        let l = LineIndex::new("a\nbb\nccc");
        assert_eq!(l.line_of(0), 1);
        assert_eq!(l.line_of(2), 2);
        assert_eq!(l.line_of(5), 3);
        assert_eq!(l.line_of(7), 3);
    }

    #[test]
    fn secret_refs_must_be_references() {
        assert_eq!(
            SecretRef::parse("env:CRM_TOKEN"),
            Ok(SecretRef::Env("CRM_TOKEN".into()))
        );
        assert!(SecretRef::parse("file:/run/secrets/crm").is_ok());
        assert!(SecretRef::parse("s3cr3t").is_err());
        assert!(SecretRef::parse("env:").is_err());
    }

    const SINK: &str = "[[sinks]]\nname = \"crm\"\nkind = \"crm_rest\"\n\
                        [sinks.crm_rest]\nbase_url = \"http://127.0.0.1:9\"\n";

    #[test]
    fn delivery_table_defaults_and_values() {
        let cfg = parse(SINK, PathBuf::from(".")).unwrap();
        assert_eq!(cfg.sinks[0].delivery, DeliveryConfig::default());
        assert_eq!(cfg.sinks[0].delivery.retry_delays_secs, [5, 30, 120, 600]);
        assert_eq!(cfg.bus.retry_topic("crm"), "hub.retry.crm");
        let text = format!(
            "{SINK}[sinks.delivery]\nretry_delays_secs = [1, 1]\nbreaker_failures = 2\n\
             breaker_open_secs = 3\nbreaker_max_open_secs = 30\n"
        );
        let d = parse(&text, PathBuf::from(".")).unwrap().sinks[0]
            .delivery
            .clone();
        assert_eq!(
            d,
            DeliveryConfig {
                retry_delays_secs: vec![1, 1],
                breaker_failures: 2,
                breaker_open_secs: 3,
                breaker_max_open_secs: 30,
            }
        );
    }

    #[test]
    fn delivery_table_problems_are_reported() {
        let text = format!(
            "{SINK}[sinks.delivery]\nretry_delays_secs = [5, 0]\nbreaker_failures = 0\n\
             breaker_open_secs = 10\nbreaker_max_open_secs = 5\nbreaker = 1\n"
        );
        let problems = parse(&text, PathBuf::from(".")).unwrap_err();
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let has = |needle: &str| rendered.iter().any(|r| r.contains(needle));
        assert!(
            has("sinks[0].delivery.breaker: unknown field"),
            "{rendered:#?}"
        );
        assert!(
            has("sinks[0].delivery.retry_delays_secs: 0: each delay"),
            "{rendered:#?}"
        );
        assert!(has("sinks[0].delivery.breaker_failures"), "{rendered:#?}");
        assert!(
            has("sinks[0].delivery.breaker_max_open_secs: must be at least breaker_open_secs (10)"),
            "{rendered:#?}"
        );
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_annotated_example_parses() {
        let text = include_str!("../../examples/hub.toml");
        let cfg = parse(text, PathBuf::from("/etc/hub")).unwrap();
        assert_eq!(cfg.sources.len(), 1);
        assert_eq!(cfg.sinks.len(), 1);
        assert_eq!(cfg.bus.kind, BusKind::Embedded);
        assert_eq!(cfg.bus.canonical_topic(), "hub.canonical");
        assert_eq!(cfg.data_dir(), PathBuf::from("/etc/hub/var"));
        assert_eq!(
            cfg.sources[0]
                .columns
                .as_ref()
                .and_then(|c| c.inn.as_deref()),
            Some("ИНН")
        );
        let compliance = cfg
            .compliance
            .as_ref()
            .expect("the example configures compliance");
        assert_eq!(compliance.lists.len(), 2);
        // Screening feeds the golden stage; the sinks read golden records.
        assert_eq!(cfg.golden_input_topic(), "hub.cleared");
        assert_eq!(cfg.sink_topic(), "hub.golden");
        assert_eq!(cfg.system_of("abs-customers"), "abs");
        let md = cfg
            .master_data
            .as_ref()
            .expect("the example configures master data");
        assert_eq!(md.store, GoldenBackend::Sqlite);
        assert_eq!(md.matching.auto_merge, 0.95);
        assert_eq!(
            compliance.monitoring.mandatory_control.threshold_rub,
            1_000_000
        );
    }

    #[test]
    fn master_data_problems_are_reported() {
        let text = r#"
[master_data]
store = "postgres"
api_token = "plain-token"

[master_data.matching]
auto_merge = 0.4
review = 0.6
"#;
        let problems = parse(text, PathBuf::from(".")).unwrap_err();
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let has = |needle: &str| rendered.iter().any(|r| r.contains(needle));
        assert!(has("master_data.postgres_url"), "{rendered:#?}");
        assert!(has("master_data.api_token"), "{rendered:#?}");
        assert!(has("master_data.matching"), "{rendered:#?}");
        let ok = parse(
            "[master_data]\nstore = \"postgres\"\npostgres_url = \"env:PG_URL\"\n",
            PathBuf::from("."),
        )
        .unwrap();
        assert_eq!(ok.master_data.unwrap().store, GoldenBackend::Postgres);
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = r#"
[bus]
kind = "kafka"
topic_prefx = "x"

[[sources]]
name = "a"
kind = "file_drop"
colour = "blue"
[sources.file_drop]
inbox = "in"
encoding = "koi8-r"
[sources.columns]
key = "id"

[[sources]]
name = "a"
kind = "ftp"
[sources.columns]
key = "id"

[[sinks]]
name = "crm"
kind = "crm_rest"
sources = ["nope"]
[sinks.crm_rest]
base_url = "crm.local"
token = "plain-secret"

[metrics]
x = 1
"#;
        let problems = parse(text, PathBuf::from(".")).unwrap_err();
        let rendered: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let has = |needle: &str| rendered.iter().any(|r| r.contains(needle));
        assert!(
            has("line 4: bus.topic_prefx: unknown field"),
            "{rendered:#?}"
        );
        assert!(
            has("line 9: sources[0].colour: unknown field"),
            "{rendered:#?}"
        );
        assert!(has("sources[0].file_drop.encoding"), "{rendered:#?}");
        assert!(has("sources[1].kind"), "{rendered:#?}");
        assert!(
            has("sinks[0].sources: no source named `nope`"),
            "{rendered:#?}"
        );
        assert!(has("sinks[0].crm_rest.base_url"), "{rendered:#?}");
        assert!(
            has("sinks[0].crm_rest.token: secrets must be references"),
            "{rendered:#?}"
        );
        assert!(has("line 30: metrics: unknown section"), "{rendered:#?}");
        assert!(
            has("bus.kind: `kind = \"kafka\"` needs a [bus.kafka] section"),
            "{rendered:#?}"
        );
        assert!(problems.len() >= 9, "{rendered:#?}");
    }
}

#[cfg(test)]
mod kafka_security_tests {
    use std::collections::BTreeMap;

    use super::*;

    fn kafka(bootstrap: &str, security: &str) -> Result<Config, Vec<String>> {
        let text = format!(
            "[bus]\nkind = \"kafka\"\n\n[bus.kafka]\nbootstrap_servers = \"{bootstrap}\"\n\n\
             [bus.kafka.security]\n{security}"
        );
        parse(&text, PathBuf::from("/etc/hub"))
            .map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn sasl_ssl_section_parses_with_paths_relative_to_the_config() {
        let cfg = kafka(
            "kafka-1.bank.local:9094,kafka-2.bank.local:9094",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"SCRAM-SHA-256\"\nusername = \"hub\"\n\
             password = \"env:KAFKA_PASSWORD\"\nca_file = \"tls/bank-ca.pem\"\n\
             cert_file = \"tls/hub.pem\"\nkey_file = \"tls/hub.key\"\n",
        )
        .unwrap();
        let kafka = cfg.bus.kafka.unwrap();
        let s: &KafkaSecurity = &kafka.security;
        assert_eq!(s.protocol, KafkaProtocol::SaslSsl);
        assert_eq!(s.sasl_mechanism, ScramMechanism::ScramSha256);
        assert_eq!(s.base_dir, PathBuf::from("/etc/hub"));
        // A variable no test sets.
        let settings = KafkaSecurity {
            password: Some("env:HUB_TEST_KAFKA_SECURITY_PW".into()),
            ..s.clone()
        };
        // Unset: the error names the variable and nothing else.
        let err = settings.client_settings().unwrap_err();
        assert!(err.contains("HUB_TEST_KAFKA_SECURITY_PW"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "pw-from-file\n").unwrap();
        let settings = KafkaSecurity {
            password: Some("file:pw".into()),
            base_dir: dir.path().to_path_buf(),
            ..s.clone()
        };
        let map: BTreeMap<&str, String> = settings.client_settings().unwrap().into_iter().collect();
        assert_eq!(map["security.protocol"], "sasl_ssl");
        assert_eq!(map["sasl.mechanisms"], "SCRAM-SHA-256");
        assert_eq!(map["sasl.password"], "pw-from-file");
        assert_eq!(
            PathBuf::from(&map["ssl.ca.location"]),
            dir.path().join("tls/bank-ca.pem")
        );
        assert_eq!(
            PathBuf::from(&map["ssl.key.location"]),
            dir.path().join("tls/hub.key")
        );
    }

    #[test]
    fn defaults_are_plaintext_and_scram_sha_512() {
        let cfg = kafka("127.0.0.1:9092", "").unwrap();
        let s = cfg.bus.kafka.unwrap().security;
        assert_eq!(s.protocol, KafkaProtocol::Plaintext);
        assert_eq!(s.sasl_mechanism, ScramMechanism::ScramSha512);
        // No [bus.kafka.security] at all is plaintext too.
        let cfg = parse(
            "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"localhost:9092\"\n",
            PathBuf::from("."),
        )
        .unwrap();
        assert_eq!(
            cfg.bus.kafka.unwrap().security.protocol,
            KafkaProtocol::Plaintext
        );
    }

    #[test]
    fn plaintext_is_refused_for_a_remote_broker_unless_allowed() {
        let errs = kafka("127.0.0.1:9092,kafka-2.bank.local:9092", "").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("bus.kafka.security.protocol")
                    && e.contains("kafka-2.bank.local:9092")
                    && e.contains("allow_plaintext = true")),
            "{errs:#?}"
        );
        for local in [
            "127.0.0.1:9092",
            "localhost:9092",
            "[::1]:9092",
            "127.0.0.2:1",
        ] {
            assert!(kafka(local, "").is_ok(), "{local}");
        }
        assert!(kafka("10.0.0.5:9092", "allow_plaintext = true\n").is_ok());
        // TLS needs no permission.
        assert!(kafka("10.0.0.5:9093", "protocol = \"ssl\"\n").is_ok());
    }

    #[test]
    fn sasl_without_tls_is_refused_unless_allowed() {
        let sasl = "protocol = \"sasl_plaintext\"\nusername = \"hub\"\npassword = \"env:P\"\n";
        let errs = kafka("127.0.0.1:9092", sasl).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("line 8: bus.kafka.security.protocol")
                    && e.contains("allow_plaintext_sasl")),
            "{errs:#?}"
        );
        assert!(
            kafka(
                "127.0.0.1:9092",
                &format!("{sasl}allow_plaintext_sasl = true\n")
            )
            .is_ok()
        );
        // Remote and without TLS: both permissions are needed.
        let errs = kafka(
            "kafka-1.bank.local:9092",
            &format!("{sasl}allow_plaintext_sasl = true\n"),
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("allow_plaintext = true")),
            "{errs:#?}"
        );
    }

    #[test]
    fn sasl_needs_a_user_and_a_password_reference_never_an_inline_password() {
        let errs = kafka("k:9094", "protocol = \"sasl_ssl\"\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("security.username: required")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("security.password: required")),
            "{errs:#?}"
        );
        let errs = kafka(
            "k:9094",
            "protocol = \"sasl_ssl\"\nusername = \"hub\"\npassword = \"Hunter2-inline\"\n",
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("security.password: secrets must be references")),
            "{errs:#?}"
        );
        assert!(
            !errs.iter().any(|e| e.contains("Hunter2-inline")),
            "{errs:#?}"
        );
        let errs = kafka(
            "k:9094",
            "protocol = \"sasl_ssl\"\nsasl_mechanism = \"PLAIN\"\n",
        )
        .unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("sasl_mechanism")),
            "{errs:#?}"
        );
    }

    #[test]
    fn tls_files_need_tls_and_mutual_tls_needs_both_files() {
        let errs = kafka("127.0.0.1:9092", "ca_file = \"ca.pem\"\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("security.ca_file: only used")),
            "{errs:#?}"
        );
        let errs = kafka("k:9093", "protocol = \"ssl\"\ncert_file = \"hub.pem\"\n").unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("security.key_file: mutual TLS")),
            "{errs:#?}"
        );
        let errs = kafka(
            "k:9093",
            "protocol = \"ssl\"\nusername = \"hub\"\nverify = false\n",
        )
        .unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("security.username: only used")),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("security.verify: unknown field")),
            "{errs:#?}"
        );
    }

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("../../docs/kafka-security.md");
        let block = doc
            .split("### Example")
            .nth(1)
            .and_then(|rest| rest.split("```toml").nth(1))
            .and_then(|rest| rest.split("```").next())
            .expect("docs/kafka-security.md has a toml example");
        // Uncomment one level: `# key = …` becomes a setting, `# # …` stays a comment.
        let text: String = block
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = parse(&text, PathBuf::from("/etc/hub")).unwrap();
        let s = cfg.bus.kafka.unwrap().security;
        assert_eq!(s.protocol, KafkaProtocol::SaslSsl);
        assert_eq!(s.username.as_deref(), Some("integration-hub"));
        assert_eq!(
            s.ca_file.as_deref(),
            Some(Path::new("/etc/hub/tls/bank-root-ca.pem"))
        );
    }

    #[test]
    fn debug_output_never_shows_the_password_reference() {
        let s = KafkaSecurity {
            protocol: KafkaProtocol::SaslSsl,
            username: Some("hub".into()),
            password: Some("file:/run/secrets/kafka".into()),
            ..KafkaSecurity::default()
        };
        let shown = format!("{s:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("/run/secrets"),
            "{shown}"
        );
    }

    #[test]
    fn environment_check_names_missing_secrets_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"k:9094\"\n\
                    [bus.kafka.security]\nprotocol = \"sasl_ssl\"\nusername = \"hub\"\n\
                    password = \"file:missing-pw\"\nca_file = \"missing-ca.pem\"\n";
        let cfg = parse(text, dir.path().to_path_buf()).unwrap();
        let problems = check_environment(&cfg);
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("bus.kafka.security.password: cannot read")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("bus.kafka.security.ca_file:")
                    && p.contains("missing-ca.pem")),
            "{problems:#?}"
        );
    }
}

/// `[state]`: its validation and the features refused with the shared PostgreSQL store.
#[cfg(test)]
mod state_tests {
    use super::*;

    const SINK: &str = r#"
[[sinks]]
name = "crm"
kind = "crm_rest"
[sinks.crm_rest]
base_url = "http://127.0.0.1:1"
"#;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, PathBuf::from("/etc/hub")) {
            Ok(_) => Vec::new(),
            Err(ps) => ps
                .iter()
                .map(|p| format!("{}: {}", p.path, p.message))
                .collect(),
        }
    }

    #[test]
    fn absent_state_is_sqlite() {
        let cfg = parse("", PathBuf::from("/etc/hub")).unwrap();
        assert_eq!(cfg.state.store, StateBackend::Sqlite);
        assert_eq!(cfg.state.postgres_url, None);
    }

    #[test]
    fn postgres_state_with_kafka_and_no_retry_topics_is_valid() {
        let text = format!(
            "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n\
             [state]\nstore = \"postgres\"\npostgres_url = \"env:HUB_STATE_PG\"\n{SINK}\
             [sinks.delivery]\nretry_delays_secs = []\n"
        );
        let cfg = parse(&text, PathBuf::from("/etc/hub")).unwrap();
        assert_eq!(cfg.state.store, StateBackend::Postgres);
        assert_eq!(cfg.state.postgres_url.as_deref(), Some("env:HUB_STATE_PG"));
    }

    #[test]
    fn url_must_be_a_secret_reference_and_only_with_postgres() {
        let p = problems("[state]\nstore = \"postgres\"\n");
        assert!(
            p.iter()
                .any(|p| p.starts_with("state.postgres_url: `store")),
            "{p:?}"
        );
        let p =
            problems("[state]\nstore = \"postgres\"\npostgres_url = \"postgres://u:pw@h/db\"\n");
        assert!(
            p.iter().any(|p| p.starts_with("state.postgres_url:")),
            "{p:?}"
        );
        let p = problems("[state]\npostgres_url = \"env:X\"\n");
        assert_eq!(
            p,
            ["state.postgres_url: only used with `store = \"postgres\"`"]
        );
        let p = problems("[state]\nstore = \"mysql\"\n");
        assert!(p.iter().any(|p| p.starts_with("state")), "{p:?}");
    }

    #[test]
    fn postgres_state_refuses_what_would_split_across_instances() {
        let text = format!(
            "[store]\npath = \"state.db\"\n\
             [state]\nstore = \"postgres\"\npostgres_url = \"env:HUB_STATE_PG\"\n\
             [compliance]\n[master_data]\n{SINK}"
        );
        let p = problems(&text);
        for path in [
            "store.path",
            "bus.kind",
            "compliance",
            "master_data.store",
            "sinks[0].delivery.retry_delays_secs",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(&format!("{path}: "))),
                "no problem at {path}: {p:?}"
            );
        }
        // The same features with the SQLite state store are fine.
        let text = format!("[compliance]\n[master_data]\n{SINK}");
        assert_eq!(problems(&text), Vec::<String>::new());
    }

    #[test]
    fn check_environment_resolves_the_url() {
        let text = "[bus]\nkind = \"kafka\"\n[bus.kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n\
                    [state]\nstore = \"postgres\"\npostgres_url = \"file:missing-state-url\"\n";
        let cfg = parse(text, PathBuf::from("/nonexistent-hub-dir")).unwrap();
        let env = check_environment(&cfg);
        assert!(
            env.iter().any(|e| e.starts_with("state.postgres_url: ")),
            "{env:?}"
        );
    }
}
