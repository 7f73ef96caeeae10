//! Configuration of the Bitrix24 connector.
//!
//! Contract: every field but `webhook_url` has a default; `Debug` never shows the webhook's
//! secret; [`Bitrix24Config::validate`] rejects what the client cannot work with, without
//! any network access.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crm::connector::{ConnectorError, FieldMap, RetryPolicy, check_base_url, is_identifier};

use super::NAME;

/// The most commands one `batch` call takes (Bitrix24's limit).
pub const MAX_BATCH_COMMANDS: usize = 50;

/// The contact fields that hold several values (`crm_multifield`): written as
/// `[{"VALUE", "VALUE_TYPE"}]` and replaced value by value on update.
pub const MULTI_FIELDS: &[&str] = &["PHONE", "EMAIL", "WEB", "IM"];

/// The default mapping of canonical fields to contact fields. `PHONE` and `EMAIL` take the
/// whole lists.
pub const DEFAULT_FIELDS: &[(&str, &str)] = &[
    ("last_name", "LAST_NAME"),
    ("first_name", "NAME"),
    ("middle_name", "SECOND_NAME"),
    ("birth_date", "BIRTHDATE"),
    ("phones", "PHONE"),
    ("emails", "EMAIL"),
    ("addresses[0].text", "ADDRESS"),
    ("addresses[0].postal_code", "ADDRESS_POSTAL_CODE"),
];

/// An example configuration (TOML), as the docs show it; a test parses it.
pub const EXAMPLE: &str = r#"
webhook_url = "https://bank.bitrix24.ru/rest/1/abcdef0123456789/"
originator_id = "integration-hub"
batch_size = 50
requests_per_second = 2.0
burst = 40
value_type = "WORK"

[fields]
last_name = "LAST_NAME"
first_name = "NAME"
phones = "PHONE"
emails = "EMAIL"

[retry]
max_attempts = 6
"#;

/// Where the portal is, how to tag the contacts, how fast and hard to try.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bitrix24Config {
    /// The inbound webhook, `https://<portal>/rest/<user id>/<secret>/`, resolved by the
    /// runtime (it is a credential: never logged). Needs the `crm` scope.
    pub webhook_url: String,
    /// `ORIGINATOR_ID` of the contacts the hub writes (the external system's name); a
    /// contact is found by `ORIGIN_ID` = external id and this. Default `integration-hub`.
    #[serde(default = "default_originator_id")]
    pub originator_id: String,
    /// Records per round: 2 to 50 find with one `batch` call and write with a second one;
    /// 1 calls `crm.contact.list` and `crm.contact.add`/`update` directly. Default 50.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Requests per second the client allows itself on average (the portal drains its
    /// counter at 2 per second, 5 on Enterprise). Default 2.
    #[serde(default = "default_requests_per_second")]
    pub requests_per_second: f64,
    /// Requests the client may send at once after a quiet spell (the portal blocks above
    /// 50, 250 on Enterprise). Default 40: ten below the limit, for network jitter and
    /// other applications of the same portal.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// `VALUE_TYPE` of phone numbers and e-mail addresses the hub adds. Default `WORK`.
    #[serde(default = "default_value_type")]
    pub value_type: String,
    /// Canonical field path → contact field name; replaces the defaults
    /// ([`DEFAULT_FIELDS`]) when given. Canonical fields without an entry are not sent.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
    /// Clear a mapped field the record lacks (an empty value; every value of a multiple
    /// field deleted) instead of leaving the CRM's value. Default false.
    #[serde(default)]
    pub clear_missing: bool,
    /// How long to wait, at least, after `429 OPERATION_TIME_LIMIT` (a method blocked for
    /// spending too much execution time; the block lasts up to 10 minutes), in
    /// milliseconds. Default 60000.
    #[serde(default = "default_operation_limit_pause_ms")]
    pub operation_limit_pause_ms: u64,
    /// Timeouts and in-place retries.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// TLS of this endpoint: extra CA bundle, client certificate (docs/tls.md).
    #[serde(default, skip_serializing_if = "crate::tls::ClientTls::is_empty")]
    pub tls: crate::tls::ClientTls,
    /// Allow `http://` to a host that is not loopback (a trusted segment, a TLS-terminating
    /// proxy on the same host). Default false: such a URL is refused (docs/tls.md).
    #[serde(default)]
    pub allow_plain_http: bool,
}

fn default_originator_id() -> String {
    "integration-hub".to_owned()
}

fn default_batch_size() -> usize {
    MAX_BATCH_COMMANDS
}

fn default_requests_per_second() -> f64 {
    2.0
}

fn default_burst() -> u32 {
    40
}

fn default_value_type() -> String {
    "WORK".to_owned()
}

fn default_operation_limit_pause_ms() -> u64 {
    60_000
}

impl std::fmt::Debug for Bitrix24Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitrix24Config")
            .field("webhook_url", &redacted_webhook(&self.webhook_url))
            .field("originator_id", &self.originator_id)
            .field("batch_size", &self.batch_size)
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .field("value_type", &self.value_type)
            .field("fields", &self.fields)
            .field("clear_missing", &self.clear_missing)
            .field("operation_limit_pause_ms", &self.operation_limit_pause_ms)
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

/// The webhook URL with its secret (the segment after the user id) hidden.
pub fn redacted_webhook(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}/rest/<user>/<hidden>/",
            u.scheme(),
            u.host_str().unwrap_or("")
        ),
        Err(_) => "<unparsable, hidden>".to_owned(),
    }
}

impl Bitrix24Config {
    /// A configuration with every default, for this webhook.
    pub fn new(webhook_url: impl Into<String>) -> Self {
        Bitrix24Config {
            webhook_url: webhook_url.into(),
            originator_id: default_originator_id(),
            batch_size: default_batch_size(),
            requests_per_second: default_requests_per_second(),
            burst: default_burst(),
            value_type: default_value_type(),
            fields: None,
            clear_missing: false,
            operation_limit_pause_ms: default_operation_limit_pause_ms(),
            retry: RetryPolicy::default(),
            tls: crate::tls::ClientTls::default(),
            allow_plain_http: false,
        }
    }

    /// Checks every value; returns the field map in use.
    pub fn validate(&self) -> Result<FieldMap, ConnectorError> {
        // Errors about the URL never repeat it: it holds the secret.
        let url = check_base_url(NAME, "webhook_url", &self.webhook_url).map_err(|_| {
            ConnectorError::config(
                NAME,
                "webhook_url",
                "must be an http(s) url without query or fragment",
            )
        })?;
        // The URL is a secret reference in the config file, so `hub validate` cannot see
        // its scheme: the plain-HTTP rule is applied here, when the resolved URL is known.
        // The message names the host only, never the token in the path.
        if let Some(reason) =
            crate::tls::plain_http_problem(&self.webhook_url, self.allow_plain_http)
        {
            return Err(ConnectorError::config(NAME, "webhook_url", reason));
        }
        let segments: Vec<&str> = url
            .path()
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        if !matches!(segments.as_slice(), [.., "rest", _, _]) {
            return Err(ConnectorError::config(
                NAME,
                "webhook_url",
                "must end with /rest/<user id>/<secret>/",
            ));
        }
        if self.originator_id.is_empty() || self.originator_id.len() > 255 {
            return Err(ConnectorError::config(
                NAME,
                "originator_id",
                "must be 1 to 255 characters",
            ));
        }
        if !(1..=MAX_BATCH_COMMANDS).contains(&self.batch_size) {
            return Err(ConnectorError::config(
                NAME,
                "batch_size",
                format!("must be 1 to {MAX_BATCH_COMMANDS}"),
            ));
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(ConnectorError::config(
                NAME,
                "requests_per_second",
                "must be a number greater than zero",
            ));
        }
        if self.burst == 0 {
            return Err(ConnectorError::config(NAME, "burst", "must be at least 1"));
        }
        if !is_identifier(&self.value_type) {
            return Err(ConnectorError::config(
                NAME,
                "value_type",
                "must be a VALUE_TYPE such as WORK or MOBILE",
            ));
        }
        self.retry.validate(NAME)?;
        let map = match &self.fields {
            Some(table) => FieldMap::new(NAME, table)?,
            None => FieldMap::defaults(NAME, DEFAULT_FIELDS),
        };
        for reserved in ["ID", "ORIGIN_ID", "ORIGINATOR_ID"] {
            if map.has_target(reserved) {
                return Err(ConnectorError::config(
                    NAME,
                    "fields",
                    format!("must not map a field onto {reserved} (the connector sets it)"),
                ));
            }
        }
        Ok(map)
    }

    /// The webhook URL with a trailing slash; methods are appended to it.
    pub fn base(&self) -> String {
        let mut base = self.webhook_url.clone();
        if !base.ends_with('/') {
            base.push('/');
        }
        base
    }

    /// `operation_limit_pause_ms` as a duration.
    pub fn operation_limit_pause(&self) -> Duration {
        Duration::from_millis(self.operation_limit_pause_ms)
    }
}
