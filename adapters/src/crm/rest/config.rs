//! Configuration of the REST CRM sink.
//!
//! Contract: every field but `base_url` has a default; `Debug` never shows the token;
//! [`CrmRestConfig::validate`] rejects values the client cannot work with.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::CrmError;

/// Where the CRM is and how hard to try.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmRestConfig {
    /// The API root, `http://` or `https://`; `/contacts/{external_id}` is appended.
    pub base_url: String,
    /// The bearer token, already resolved by the runtime (no `env:`/`file:` references
    /// here). No `Authorization` header is sent without one.
    #[serde(default)]
    pub token: Option<String>,
    /// Timeout of one attempt (connect, send, answer), in milliseconds. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per upsert, the first one included. Default 8.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with every retry and gets
    /// a random jitter of up to the same amount. Default 200.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of the doubling delay, in milliseconds (before jitter). Default 30000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// How many contact keys may be in flight at once; used by the runtime. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// TLS of this endpoint: extra CA bundle, client certificate (docs/tls.md).
    #[serde(default, skip_serializing_if = "crate::tls::ClientTls::is_empty")]
    pub tls: crate::tls::ClientTls,
    /// Allow `http://` to a host that is not loopback (a trusted segment, a TLS-terminating
    /// proxy on the same host). Default false: such a URL is refused (docs/tls.md).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_max_attempts() -> u32 {
    8
}

fn default_initial_backoff_ms() -> u64 {
    200
}

fn default_max_backoff_ms() -> u64 {
    30_000
}

fn default_concurrency() -> usize {
    8
}

impl std::fmt::Debug for CrmRestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmRestConfig")
            .field("base_url", &self.base_url)
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .field("concurrency", &self.concurrency)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl CrmRestConfig {
    /// A configuration with every default and the given base URL.
    pub fn new(base_url: impl Into<String>) -> Self {
        CrmRestConfig {
            base_url: base_url.into(),
            token: None,
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            concurrency: default_concurrency(),
            tls: crate::tls::ClientTls::default(),
            allow_plain_http: false,
        }
    }

    /// Checks the values the client relies on.
    pub fn validate(&self) -> Result<(), CrmError> {
        let bad = |field: &'static str, reason: &str| CrmError::Config {
            field,
            reason: reason.to_owned(),
        };
        let url = reqwest::Url::parse(&self.base_url)
            .map_err(|e| bad("base_url", &format!("not a url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("base_url", "must start with http:// or https://"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("base_url", "must not have a query or a fragment"));
        }
        if url.cannot_be_a_base() || url.host().is_none() {
            return Err(bad("base_url", "must name a host"));
        }
        if let Some(token) = &self.token {
            if token.is_empty() {
                return Err(bad("token", "must not be empty when set"));
            }
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(bad(
                    "token",
                    "must be visible ASCII without spaces (it goes into a header)",
                ));
            }
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
        if self.concurrency == 0 {
            return Err(bad("concurrency", "must be at least 1"));
        }
        Ok(())
    }

    /// `timeout_ms` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// `initial_backoff_ms` as a duration.
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms)
    }

    /// `max_backoff_ms` as a duration.
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
}
