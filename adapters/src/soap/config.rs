//! Configuration of the SOAP source (`[sources.soap]` in the hub's config).
//!
//! Contract: `endpoint`, `version` and at least one operation are required, every other
//! field has a default; `ws_security.password` holds whatever the runtime put there (a
//! secret reference in the file, the resolved password once the hub resolved it) and
//! `Debug` never shows it; [`SoapConfig::validate`] rejects values the client cannot work
//! with, without any IO (reading the TLS files is the client's job).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::envelope::RequestTemplate;
use super::error::SoapError;

/// Which SOAP version the service speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
pub enum SoapVersion {
    /// SOAP 1.1: `text/xml`, `SOAPAction` header, `faultcode`/`faultstring` faults.
    #[serde(rename = "1.1")]
    V11,
    /// SOAP 1.2: `application/soap+xml` with an `action` parameter, `Code`/`Reason` faults.
    #[serde(rename = "1.2")]
    V12,
}

impl SoapVersion {
    /// The namespace of the `Envelope` element.
    pub fn namespace(self) -> &'static str {
        match self {
            SoapVersion::V11 => "http://schemas.xmlsoap.org/soap/envelope/",
            SoapVersion::V12 => "http://www.w3.org/2003/05/soap-envelope",
        }
    }

    /// The version whose envelope namespace is `ns`.
    pub fn from_namespace(ns: &str) -> Option<SoapVersion> {
        [SoapVersion::V11, SoapVersion::V12]
            .into_iter()
            .find(|v| v.namespace() == ns)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SoapVersion::V11 => "1.1",
            SoapVersion::V12 => "1.2",
        }
    }
}

impl std::fmt::Display for SoapVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the password travels in the UsernameToken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PasswordType {
    /// `PasswordDigest`: Base64(SHA-1(nonce + created + password)); the password itself
    /// never crosses the wire. The default.
    #[default]
    Digest,
    /// `PasswordText`: the password in clear (inside TLS only).
    Text,
}

/// `[sources.soap.ws_security]`: a WS-Security UsernameToken in every request's header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSecurityConfig {
    pub username: String,
    /// A secret reference (`env:NAME`, `file:PATH`) in the config file; the runtime
    /// replaces it by the resolved password before it builds the client.
    pub password: String,
    /// `digest` (default) or `text`.
    #[serde(default)]
    pub password_type: PasswordType,
}

impl std::fmt::Debug for WsSecurityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsSecurityConfig")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .field("password_type", &self.password_type)
            .finish()
    }
}

/// `[sources.soap.tls]`: trust and client identity for `https://` endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapTlsConfig {
    /// PEM file of the certificate authorities to trust instead of the system's (a bank's
    /// internal CA). Relative paths are resolved by the runtime.
    #[serde(default)]
    pub ca_bundle: Option<PathBuf>,
    /// PEM file of the client certificate chain for mutual TLS; needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client's private key (PKCS#8, PKCS#1 or SEC1); needs `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

/// One `[[sources.soap.operations]]` entry: an operation called on every poll.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationConfig {
    /// The operation's name; it names the cursor and appears in logs and quarantine
    /// locations.
    pub name: String,
    /// The action URI: the `SOAPAction` header (1.1) or the `action` parameter of the
    /// content type (1.2). Empty sends `SOAPAction: ""` (1.1) and no parameter (1.2).
    #[serde(default)]
    pub soap_action: String,
    /// The XML that goes inside `Body`, with `{{cursor}}`, `{{page}}` and `{{today}}`
    /// placeholders (filled in XML-escaped).
    pub request_template: String,
    /// The record element's path below `Body`, local names joined by `/`, e.g.
    /// `GetCustomersChangedSinceResponse/Customers/Customer`.
    pub record_path: String,
    /// Path of the cursor field in a record as converted to JSON (`/`-joined keys, e.g.
    /// `ChangedAt` or `@changed`). The highest value seen in a pass becomes `{{cursor}}`
    /// of the next pass. Without it `{{cursor}}` stays `initial_cursor`.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// `{{cursor}}` of the very first pass. Default empty.
    #[serde(default)]
    pub initial_cursor: String,
    /// Paging: `true` asks for pages `first_page`, `first_page + 1`, … until a page has no
    /// record; `false` (default) makes one call per pass.
    #[serde(default)]
    pub paged: bool,
    /// Number of the first page. Default 1.
    #[serde(default = "default_first_page")]
    pub first_page: u32,
}

fn default_first_page() -> u32 {
    1
}

/// `[sources.soap]`: where the service is and how to talk to it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapConfig {
    /// The service URL, `http://` or `https://`.
    pub endpoint: String,
    /// `"1.1"` or `"1.2"`.
    pub version: SoapVersion,
    /// The operations called on every poll, in order.
    pub operations: Vec<OperationConfig>,
    /// A UsernameToken in every request, when set.
    #[serde(default)]
    pub ws_security: Option<WsSecurityConfig>,
    /// CA bundle and client certificate for `https://`.
    #[serde(default)]
    pub tls: SoapTlsConfig,
    /// Timeout of one attempt (connect, send, whole answer), in milliseconds. Default 60000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per call, the first one included. Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with every retry and gets
    /// a random jitter. Default 500.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of the doubling delay, in milliseconds. Default 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Pause between two polls, in milliseconds. Default 60000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// The largest answer taken, in bytes; a larger one is refused. Default 4 GiB.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// The largest single record element, in bytes of XML. Default 16 MiB.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// The most pages one pass of a paged operation asks for (a guard against a service
    /// that never returns an empty page). Default 100000.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    /// Folder the answers are spooled to while they are parsed (deleted at once, so
    /// nothing is left behind). Default: the system's temporary folder; the hub uses its
    /// data folder, since a temporary folder may be memory-backed.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Allow `http://` to a host that is not loopback (a trusted segment, a TLS-terminating
    /// proxy on the same host). Default false: such a URL is refused (docs/tls.md).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn default_timeout_ms() -> u64 {
    60_000
}
fn default_max_attempts() -> u32 {
    5
}
fn default_initial_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_ms() -> u64 {
    30_000
}
fn default_poll_interval_ms() -> u64 {
    60_000
}
fn default_max_response_bytes() -> u64 {
    4 << 30
}
fn default_max_record_bytes() -> u64 {
    16 << 20
}
fn default_max_pages() -> u32 {
    100_000
}

impl std::fmt::Debug for SoapConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoapConfig")
            .field("endpoint", &self.endpoint)
            .field("version", &self.version)
            .field("operations", &self.operations)
            .field("ws_security", &self.ws_security)
            .field("tls", &self.tls)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .field("poll_interval_ms", &self.poll_interval_ms)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("max_pages", &self.max_pages)
            .field("spool_dir", &self.spool_dir)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl SoapConfig {
    /// A configuration with every default, one endpoint and no operation yet.
    pub fn new(endpoint: impl Into<String>, version: SoapVersion) -> Self {
        SoapConfig {
            endpoint: endpoint.into(),
            version,
            operations: Vec::new(),
            ws_security: None,
            tls: SoapTlsConfig::default(),
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            poll_interval_ms: default_poll_interval_ms(),
            max_response_bytes: default_max_response_bytes(),
            max_record_bytes: default_max_record_bytes(),
            max_pages: default_max_pages(),
            spool_dir: None,
            allow_plain_http: false,
        }
    }

    /// Every problem of the values, each with its field path (`operations[1].record_path`).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let mut bad = |field: &str, reason: &str| out.push((field.to_owned(), reason.to_owned()));
        match reqwest::Url::parse(&self.endpoint) {
            Err(e) => bad("endpoint", &format!("not a url: {e}")),
            Ok(url) => {
                if !matches!(url.scheme(), "http" | "https") {
                    bad("endpoint", "must start with http:// or https://");
                } else if url.cannot_be_a_base() || url.host().is_none() {
                    bad("endpoint", "must name a host");
                }
            }
        }
        if self.operations.is_empty() {
            bad("operations", "at least one operation is needed");
        }
        let mut names = BTreeSet::new();
        for (i, op) in self.operations.iter().enumerate() {
            let at = |f: &str| format!("operations[{i}].{f}");
            if op.name.is_empty()
                || !op
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            {
                bad(&at("name"), "must be letters, digits, `_`, `-` or `.`");
            } else if !names.insert(op.name.as_str()) {
                bad(&at("name"), "another operation has this name");
            }
            if op.soap_action.chars().any(|c| c.is_control() || c == '"') {
                bad(
                    &at("soap_action"),
                    "must not hold quotes or control characters",
                );
            }
            if let Err(e) = RequestTemplate::parse(&op.request_template) {
                bad(&at("request_template"), &e);
            }
            if let Err(e) = split_path(&op.record_path) {
                bad(&at("record_path"), &e);
            }
            if let Some(c) = &op.cursor_field
                && let Err(e) = split_path(c)
            {
                bad(&at("cursor_field"), &e);
            }
            if op.paged
                && RequestTemplate::parse(&op.request_template).is_ok_and(|t| !t.uses("page"))
            {
                bad(
                    &at("request_template"),
                    "a paged operation must use {{page}}, or every page would be the same",
                );
            }
        }
        if let Some(ws) = &self.ws_security {
            if ws.username.is_empty() {
                bad("ws_security.username", "must not be empty");
            }
            if ws.password.is_empty() {
                bad("ws_security.password", "must not be empty");
            }
        }
        if self.tls.client_cert.is_some() != self.tls.client_key.is_some() {
            bad(
                "tls",
                "client_cert and client_key go together: set both or neither",
            );
        }
        if self.timeout_ms == 0 {
            bad("timeout_ms", "must be greater than zero");
        }
        if self.max_attempts == 0 {
            bad("max_attempts", "must be at least 1");
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            bad(
                "max_backoff_ms",
                "must not be smaller than initial_backoff_ms",
            );
        }
        if self.poll_interval_ms == 0 {
            bad("poll_interval_ms", "must be greater than zero");
        }
        if self.max_response_bytes == 0 {
            bad("max_response_bytes", "must be greater than zero");
        }
        if self.max_record_bytes == 0 {
            bad("max_record_bytes", "must be greater than zero");
        }
        if self.max_pages == 0 {
            bad("max_pages", "must be at least 1");
        }
        out
    }

    /// The first problem of [`SoapConfig::problems`], as an error.
    pub fn validate(&self) -> Result<(), SoapError> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some((field, reason)) => Err(SoapError::Config { field, reason }),
        }
    }

    /// The operation named `name`.
    pub fn operation(&self, name: &str) -> Option<&OperationConfig> {
        self.operations.iter().find(|o| o.name == name)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }
}

/// Splits a `/`-joined path of names; every segment must be a plain name.
pub fn split_path(path: &str) -> Result<Vec<String>, String> {
    if path.trim().is_empty() {
        return Err("must not be empty".to_owned());
    }
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect();
    for s in &segments {
        if s.is_empty() {
            return Err("has an empty segment (`//`)".to_owned());
        }
        if s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '&' | '"'))
        {
            return Err(format!("segment `{s}` is not a name"));
        }
        if s.contains(':') {
            return Err(format!(
                "segment `{s}` has a prefix; paths match local names, write it without"
            ));
        }
    }
    Ok(segments)
}
