//! Configuration of a REST polling source (`[sources.rest_poll]` in the hub's config).
//!
//! Contract: `base_url`, `path` and `cursor` are required, everything else has a default;
//! secrets (`auth.key`, `auth.client_secret`) are references (`env:NAME`, `file:PATH`) that
//! the runtime resolves, never values; [`RestPollConfig::validate`] checks everything the
//! client relies on without any IO and names the offending field.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::RestPollError;
use super::path::JsonPath;

/// Where the upstream is, how to page through it and how hard to try.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestPollConfig {
    /// The API root, `http://` or `https://`, for example `https://abs.bank.local`.
    pub base_url: String,
    /// The collection path below `base_url`, for example `/api/v1/customers`.
    pub path: String,
    /// Fixed query parameters sent with every page request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// What the hub remembers between polls.
    pub cursor: CursorConfig,
    /// How the upstream splits a result into pages. Default: page numbers.
    #[serde(default)]
    pub pagination: PaginationConfig,
    /// Where the array of records is in a page's JSON: `data`, `$.result.items`; empty or
    /// `$` when the page is the array itself. Default `data`.
    #[serde(default = "default_records_path")]
    pub records_path: String,
    /// How the hub authenticates. Default: no authentication.
    #[serde(default)]
    pub auth: AuthConfig,
    /// A custom CA bundle and/or a client certificate (mTLS).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// At most this many requests per second to the upstream (token requests included);
    /// 0 means no limit. Default 0.
    #[serde(default)]
    pub rate_limit_per_sec: f64,
    /// Timeout of one request (connect, send, whole answer), in milliseconds. Default 30000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per page, the first one included. Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with every retry and gets
    /// a random jitter of up to the same amount. Default 500.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of the doubling delay, in milliseconds (before jitter). Default 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Pause between the end of one pass and the start of the next, in milliseconds.
    /// Default 60000.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// The largest page body read, in bytes; a larger one is a bad page. Default 32 MiB.
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: usize,
    /// Allow `http://` to a host that is not loopback (a trusted segment, a TLS-terminating
    /// proxy on the same host). Default false: such a URL is refused (docs/tls.md).
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// The kind of value the cursor holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CursorKind {
    /// An RFC 3339 change timestamp; the upstream returns records changed at or after it.
    UpdatedSince,
    /// An integer change sequence; the upstream returns records at or after it.
    Sequence,
}

/// `[sources.rest_poll.cursor]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// `updated_since` or `sequence`.
    pub kind: CursorKind,
    /// The query parameter that carries it, for example `updated_since`.
    pub param: String,
    /// Path of the record field that carries the record's cursor value, e.g. `updated_at`.
    pub field: String,
    /// The value of the very first poll (RFC 3339 or an integer). Default: the epoch / 0.
    #[serde(default)]
    pub initial: Option<String>,
}

/// `[sources.rest_poll.pagination]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginationConfig {
    /// `?page=N&page_size=S`, pages counted from `first_page`; a short page is the last.
    PageNumber {
        #[serde(default = "default_page_param")]
        page_param: String,
        #[serde(default = "default_size_param")]
        size_param: String,
        #[serde(default = "default_page_size")]
        page_size: u32,
        #[serde(default = "default_first_page")]
        first_page: u64,
    },
    /// `?offset=N&limit=S`; a short page is the last.
    Offset {
        #[serde(default = "default_offset_param")]
        offset_param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
        #[serde(default = "default_page_size")]
        page_size: u32,
    },
    /// The response names the next page by an opaque token at `next_path`, sent back as
    /// `token_param`; no token (absent, null or empty) ends the pass.
    CursorToken {
        #[serde(default = "default_token_param")]
        token_param: String,
        #[serde(default = "default_next_path")]
        next_path: String,
        #[serde(default = "default_size_param")]
        size_param: String,
        #[serde(default = "default_page_size")]
        page_size: u32,
    },
    /// The response names the next page's URL in a `Link: <...>; rel="next"` header.
    LinkHeader {
        #[serde(default = "default_size_param")]
        size_param: String,
        #[serde(default = "default_page_size")]
        page_size: u32,
    },
}

impl Default for PaginationConfig {
    fn default() -> Self {
        PaginationConfig::PageNumber {
            page_param: default_page_param(),
            size_param: default_size_param(),
            page_size: default_page_size(),
            first_page: default_first_page(),
        }
    }
}

impl PaginationConfig {
    /// Records asked for per page.
    pub fn page_size(&self) -> u32 {
        match self {
            PaginationConfig::PageNumber { page_size, .. }
            | PaginationConfig::Offset { page_size, .. }
            | PaginationConfig::CursorToken { page_size, .. }
            | PaginationConfig::LinkHeader { page_size, .. } => *page_size,
        }
    }
}

/// `[sources.rest_poll.auth]`.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// No credentials (an upstream reached through a trusted network or mTLS only).
    #[default]
    None,
    /// A static key in a request header.
    ApiKey {
        /// The header, for example `X-Api-Key`.
        #[serde(default = "default_api_key_header")]
        header: String,
        /// Secret reference of the key (`env:NAME` or `file:PATH`).
        key: String,
    },
    /// OAuth 2.0 client credentials grant; the token is cached until shortly before it
    /// expires and sent as `Authorization: Bearer`.
    Oauth2 {
        /// The token endpoint.
        token_url: String,
        client_id: String,
        /// Secret reference of the client secret.
        client_secret: String,
        /// Space-separated scopes to ask for.
        #[serde(default)]
        scope: Option<String>,
    },
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The fields hold references, not secrets, but keep the habit: no secret material.
        match self {
            AuthConfig::None => f.write_str("None"),
            AuthConfig::ApiKey { header, key } => f
                .debug_struct("ApiKey")
                .field("header", header)
                .field("key", &reference_kind(key))
                .finish(),
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => f
                .debug_struct("Oauth2")
                .field("token_url", token_url)
                .field("client_id", client_id)
                .field("client_secret", &reference_kind(client_secret))
                .field("scope", scope)
                .finish(),
        }
    }
}

fn reference_kind(r: &str) -> &'static str {
    if r.starts_with("env:") {
        "env:<name>"
    } else if r.starts_with("file:") {
        "file:<path>"
    } else {
        "<hidden>"
    }
}

/// `[sources.rest_poll.tls]`: paths are relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates trusted instead of the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate chain for mTLS (needs `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate (PKCS#8, PKCS#1 or SEC1).
    #[serde(default)]
    pub client_key: Option<PathBuf>,
}

fn default_records_path() -> String {
    "data".into()
}
fn default_timeout_ms() -> u64 {
    30_000
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
fn default_max_page_bytes() -> usize {
    32 * 1024 * 1024
}
fn default_page_param() -> String {
    "page".into()
}
fn default_size_param() -> String {
    "page_size".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_token_param() -> String {
    "cursor".into()
}
fn default_next_path() -> String {
    "next_cursor".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_first_page() -> u64 {
    1
}
fn default_api_key_header() -> String {
    "X-Api-Key".into()
}

/// The largest page size accepted; more makes one page a memory problem.
pub const MAX_PAGE_SIZE: u32 = 10_000;

impl RestPollConfig {
    /// A config with every default for `base_url` + `path`, an `updated_since` cursor in
    /// the query parameter `updated_since` read from the record field `updated_at`.
    pub fn new(base_url: impl Into<String>, path: impl Into<String>) -> Self {
        RestPollConfig {
            base_url: base_url.into(),
            path: path.into(),
            query: BTreeMap::new(),
            cursor: CursorConfig {
                kind: CursorKind::UpdatedSince,
                param: "updated_since".into(),
                field: "updated_at".into(),
                initial: None,
            },
            pagination: PaginationConfig::default(),
            records_path: default_records_path(),
            auth: AuthConfig::None,
            tls: None,
            rate_limit_per_sec: 0.0,
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            poll_interval_ms: default_poll_interval_ms(),
            max_page_bytes: default_max_page_bytes(),
            allow_plain_http: false,
        }
    }

    /// Checks every value the client relies on; the error names the field.
    pub fn validate(&self) -> Result<(), RestPollError> {
        let bad = |field: &str, reason: &str| RestPollError::Config {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        check_url(&self.base_url).map_err(|r| bad("base_url", &r))?;
        if !self.path.starts_with('/') {
            return Err(bad("path", "must start with '/'"));
        }
        if self.path.contains(['?', '#']) {
            return Err(bad(
                "path",
                "must not hold a query or a fragment (use `query`)",
            ));
        }
        if self.cursor.param.trim().is_empty() {
            return Err(bad("cursor.param", "must not be empty"));
        }
        JsonPath::parse(&self.cursor.field).map_err(|e| bad("cursor.field", &e))?;
        if JsonPath::parse(&self.cursor.field).is_ok_and(|p| p.is_root()) {
            return Err(bad("cursor.field", "must name a field of the record"));
        }
        if let Some(initial) = &self.cursor.initial {
            super::pagination::CursorValue::parse(self.cursor.kind, initial)
                .map_err(|e| bad("cursor.initial", &e))?;
        }
        JsonPath::parse(&self.records_path).map_err(|e| bad("records_path", &e))?;
        let size = self.pagination.page_size();
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(bad(
                "pagination.page_size",
                &format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let params: Vec<(&str, &String)> = match &self.pagination {
            PaginationConfig::PageNumber {
                page_param,
                size_param,
                ..
            } => vec![
                ("pagination.page_param", page_param),
                ("pagination.size_param", size_param),
            ],
            PaginationConfig::Offset {
                offset_param,
                limit_param,
                ..
            } => vec![
                ("pagination.offset_param", offset_param),
                ("pagination.limit_param", limit_param),
            ],
            PaginationConfig::CursorToken {
                token_param,
                next_path,
                size_param,
                ..
            } => {
                let p = JsonPath::parse(next_path).map_err(|e| bad("pagination.next_path", &e))?;
                if p.is_root() {
                    return Err(bad(
                        "pagination.next_path",
                        "must name a field of the response",
                    ));
                }
                vec![
                    ("pagination.token_param", token_param),
                    ("pagination.size_param", size_param),
                ]
            }
            PaginationConfig::LinkHeader { size_param, .. } => {
                vec![("pagination.size_param", size_param)]
            }
        };
        for (field, value) in params {
            if value.trim().is_empty() {
                return Err(bad(field, "must not be empty"));
            }
            if *value == self.cursor.param {
                return Err(bad(field, "must differ from cursor.param"));
            }
        }
        match &self.auth {
            AuthConfig::None => {}
            AuthConfig::ApiKey { header, key } => {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(bad("auth.header", "not a valid header name"));
                }
                check_reference(key).map_err(|r| bad("auth.key", &r))?;
            }
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_secret,
                ..
            } => {
                check_url(token_url).map_err(|r| bad("auth.token_url", &r))?;
                if client_id.trim().is_empty() {
                    return Err(bad("auth.client_id", "must not be empty"));
                }
                check_reference(client_secret).map_err(|r| bad("auth.client_secret", &r))?;
            }
        }
        if let Some(tls) = &self.tls
            && tls.client_cert.is_some() != tls.client_key.is_some()
        {
            return Err(bad(
                "tls",
                "client_cert and client_key go together (mTLS needs both)",
            ));
        }
        if !(self.rate_limit_per_sec >= 0.0 && self.rate_limit_per_sec.is_finite()) {
            return Err(bad(
                "rate_limit_per_sec",
                "must be 0 (no limit) or positive",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(bad("timeout_ms", "must be greater than zero"));
        }
        if self.max_attempts == 0 {
            return Err(bad("max_attempts", "must be at least 1"));
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(bad(
                "max_backoff_ms",
                "must not be smaller than initial_backoff_ms",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(bad("poll_interval_ms", "must be greater than zero"));
        }
        if self.max_page_bytes < 1024 {
            return Err(bad("max_page_bytes", "must be at least 1024"));
        }
        Ok(())
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `poll_interval_ms` as a duration.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    /// The secret references this config holds, with the field each is in, for the
    /// runtime's environment check.
    pub fn secret_refs(&self) -> Vec<(&'static str, &str)> {
        match &self.auth {
            AuthConfig::None => Vec::new(),
            AuthConfig::ApiKey { key, .. } => vec![("auth.key", key.as_str())],
            AuthConfig::Oauth2 { client_secret, .. } => {
                vec![("auth.client_secret", client_secret.as_str())]
            }
        }
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a url: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if u.host().is_none() {
        return Err("must name a host".into());
    }
    if u.fragment().is_some() {
        return Err("must not have a fragment".into());
    }
    Ok(())
}

/// Secrets are references, never inline values (the same rule as the rest of the config).
fn check_reference(r: &str) -> Result<(), String> {
    match r.split_once(':') {
        Some(("env" | "file", rest)) if !rest.is_empty() => Ok(()),
        _ => Err(
            "secrets must be references (`env:NAME` or `file:PATH`), never inline values".into(),
        ),
    }
}
