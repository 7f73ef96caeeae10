//! Configuration of the AML screening provider client.
//!
//! Contract: `base_url` and `api_key` are required, every other field has a default; the key
//! is already resolved from its secret reference by the runtime and `Debug` never shows it;
//! [`AmlConfig::validate`] rejects values the client cannot work with, without any IO.

use std::time::Duration;

use serde::Deserialize;

use super::error::AmlError;

/// Where the provider is, how to authenticate and how hard to try.
///
/// Not `Serialize` on purpose: the resolved key must not end up in a dumped config.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmlConfig {
    /// The API root, `http://` or `https://`; `/v1/screen` is appended.
    pub base_url: String,
    /// The provider's API key, resolved by the runtime from its secret reference; sent as
    /// `Authorization: Bearer <key>`.
    pub api_key: String,
    /// Timeout of one attempt (connect, send, answer), in milliseconds. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts per screening, the first one included. Default 5.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Delay before the first retry, in milliseconds; it doubles with every retry and gets
    /// a random jitter of up to the same amount. Default 200.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Upper bound of the doubling delay, in milliseconds (before jitter). Default 10000.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Matches the provider scores below this (0..1) are dropped. Default 0: keep every
    /// match the provider reports, its own threshold already applied.
    #[serde(default)]
    pub min_score: f64,
    /// TLS of this endpoint: extra CA bundle, client certificate (docs/tls.md).
    #[serde(default)]
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
    5
}

fn default_initial_backoff_ms() -> u64 {
    200
}

fn default_max_backoff_ms() -> u64 {
    10_000
}

impl std::fmt::Debug for AmlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmlConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<hidden>")
            .field("timeout_ms", &self.timeout_ms)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff_ms", &self.initial_backoff_ms)
            .field("max_backoff_ms", &self.max_backoff_ms)
            .field("min_score", &self.min_score)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl AmlConfig {
    /// A configuration with every default, the given base URL and API key.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        AmlConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeout_ms: default_timeout_ms(),
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            min_score: 0.0,
            tls: crate::tls::ClientTls::default(),
            allow_plain_http: false,
        }
    }

    /// Checks the values the client relies on. The messages never repeat the key.
    pub fn validate(&self) -> Result<(), AmlError> {
        let bad = |field: &'static str, reason: &str| AmlError::Config {
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
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "base_url",
                "must not carry credentials (the key goes into api_key)",
            ));
        }
        if self.api_key.is_empty() {
            return Err(bad("api_key", "must not be empty"));
        }
        if !self.api_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "api_key",
                "must be visible ASCII without spaces (it goes into a header)",
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
        if !(0.0..=1.0).contains(&self.min_score) {
            return Err(bad("min_score", "must be a number from 0 to 1"));
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
