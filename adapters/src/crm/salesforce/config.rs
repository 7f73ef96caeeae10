//! Configuration of the Salesforce connector.
//!
//! Contract: every field but `instance_url` and `access_token` has a default; `Debug` never
//! shows the token; [`SalesforceConfig::validate`] rejects what the client cannot work with,
//! without any network access.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crm::connector::{ConnectorError, FieldMap, RetryPolicy, check_base_url, is_identifier};

use super::NAME;

/// The most records one sObject Collections request takes (Salesforce's limit).
pub const MAX_COLLECTION: usize = 200;

/// The oldest API version with upsert through sObject Collections.
const MIN_API_VERSION: (u32, u32) = (46, 0);

/// The default mapping of canonical fields to Contact fields. `MiddleName` is left out: it
/// exists only where the org enabled middle names.
pub const DEFAULT_FIELDS: &[(&str, &str)] = &[
    ("last_name", "LastName"),
    ("first_name", "FirstName"),
    ("birth_date", "Birthdate"),
    ("phones[0]", "Phone"),
    ("phones[1]", "MobilePhone"),
    ("emails[0]", "Email"),
    ("addresses[0].text", "MailingStreet"),
    ("addresses[0].postal_code", "MailingPostalCode"),
];

/// An example configuration (TOML), as the docs show it; a test parses it.
pub const EXAMPLE: &str = r#"
instance_url = "https://bank.my.salesforce.com"
api_version = "v60.0"
sobject = "Contact"
external_id_field = "Hub_Golden_Id__c"
access_token = "00D...!AQ0A..."
batch_size = 200
clear_missing = false
request_limit_pause_ms = 60000

[fields]
last_name = "LastName"
first_name = "FirstName"
"phones[0]" = "Phone"
"emails[0]" = "Email"
segment = "Segment__c"

[retry]
timeout_ms = 30000
max_attempts = 6
initial_backoff_ms = 500
max_backoff_ms = 30000
"#;

/// Where the org is, which object and external id field to upsert, how hard to try.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// The org's My Domain URL, `https://<domain>.my.salesforce.com` (no path).
    pub instance_url: String,
    /// REST API version, `v<major>.<minor>`, at least `v46.0` (upsert through sObject
    /// Collections). Default `v60.0`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The sObject written. Default `Contact`.
    #[serde(default = "default_sobject")]
    pub sobject: String,
    /// The external id field the upsert matches on (unique, External ID in the org).
    /// Default `Hub_Golden_Id__c`.
    #[serde(default = "default_external_id_field")]
    pub external_id_field: String,
    /// An OAuth 2.0 access token, already obtained and resolved by the runtime: the OAuth
    /// flows (JWT bearer, client credentials) and refreshing are not done here.
    pub access_token: String,
    /// Records per request: 2 to 200 use sObject Collections (one request per chunk), 1
    /// upserts each record on its own. Default 200.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Canonical field path → Contact field name; replaces the defaults
    /// ([`DEFAULT_FIELDS`]) when given. Canonical fields without an entry are not sent.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
    /// Send `null` for a mapped field the record lacks (Salesforce then clears it) instead
    /// of leaving the CRM's value. Default false.
    #[serde(default)]
    pub clear_missing: bool,
    /// How long to wait, at least, after `REQUEST_LIMIT_EXCEEDED` (the org's API request
    /// budget is spent; it refills over 24 hours), in milliseconds. Default 60000.
    #[serde(default = "default_request_limit_pause_ms")]
    pub request_limit_pause_ms: u64,
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

fn default_api_version() -> String {
    "v60.0".to_owned()
}

fn default_sobject() -> String {
    "Contact".to_owned()
}

fn default_external_id_field() -> String {
    "Hub_Golden_Id__c".to_owned()
}

fn default_batch_size() -> usize {
    MAX_COLLECTION
}

fn default_request_limit_pause_ms() -> u64 {
    60_000
}

impl std::fmt::Debug for SalesforceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SalesforceConfig")
            .field("instance_url", &self.instance_url)
            .field("api_version", &self.api_version)
            .field("sobject", &self.sobject)
            .field("external_id_field", &self.external_id_field)
            .field("access_token", &"<hidden>")
            .field("batch_size", &self.batch_size)
            .field("fields", &self.fields)
            .field("clear_missing", &self.clear_missing)
            .field("request_limit_pause_ms", &self.request_limit_pause_ms)
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl SalesforceConfig {
    /// A configuration with every default, for this org and token.
    pub fn new(instance_url: impl Into<String>, access_token: impl Into<String>) -> Self {
        SalesforceConfig {
            instance_url: instance_url.into(),
            api_version: default_api_version(),
            sobject: default_sobject(),
            external_id_field: default_external_id_field(),
            access_token: access_token.into(),
            batch_size: default_batch_size(),
            fields: None,
            clear_missing: false,
            request_limit_pause_ms: default_request_limit_pause_ms(),
            retry: RetryPolicy::default(),
            tls: crate::tls::ClientTls::default(),
            allow_plain_http: false,
        }
    }

    /// Checks every value; returns the field map in use.
    pub fn validate(&self) -> Result<FieldMap, ConnectorError> {
        check_base_url(NAME, "instance_url", &self.instance_url)?;
        parse_api_version(&self.api_version)?;
        if !is_identifier(&self.sobject) {
            return Err(ConnectorError::config(
                NAME,
                "sobject",
                "must be an API name (ascii letters, digits and _)",
            ));
        }
        if !is_identifier(&self.external_id_field) {
            return Err(ConnectorError::config(
                NAME,
                "external_id_field",
                "must be an API name (ascii letters, digits and _)",
            ));
        }
        if !(1..=MAX_COLLECTION).contains(&self.batch_size) {
            return Err(ConnectorError::config(
                NAME,
                "batch_size",
                format!("must be 1 to {MAX_COLLECTION}"),
            ));
        }
        self.retry.validate(NAME)?;
        let map = match &self.fields {
            Some(table) => FieldMap::new(NAME, table)?,
            None => FieldMap::defaults(NAME, DEFAULT_FIELDS),
        };
        if map.has_target(&self.external_id_field) {
            return Err(ConnectorError::config(
                NAME,
                "fields",
                "must not map a field onto the external id field (the connector sets it)",
            ));
        }
        Ok(map)
    }

    /// `request_limit_pause_ms` as a duration.
    pub fn request_limit_pause(&self) -> Duration {
        Duration::from_millis(self.request_limit_pause_ms)
    }
}

fn parse_api_version(v: &str) -> Result<(u32, u32), ConnectorError> {
    let bad = |reason: &str| ConnectorError::config(NAME, "api_version", reason);
    let Some(rest) = v.strip_prefix('v') else {
        return Err(bad("must look like v60.0"));
    };
    let Some((major, minor)) = rest.split_once('.') else {
        return Err(bad("must look like v60.0"));
    };
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        return Err(bad("must look like v60.0"));
    };
    if (major, minor) < MIN_API_VERSION {
        return Err(bad(
            "must be v46.0 or later (upsert through sObject Collections)",
        ));
    }
    Ok((major, minor))
}
