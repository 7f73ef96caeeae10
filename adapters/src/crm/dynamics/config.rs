//! Configuration of the Dynamics 365 / Dataverse connector.
//!
//! Contract: every field but `org_url` and `access_token` has a default; `Debug` never shows
//! the token; [`DynamicsConfig::validate`] rejects what the client cannot work with, without
//! any network access.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crm::connector::{ConnectorError, FieldMap, RetryPolicy, check_base_url, is_identifier};

use super::NAME;

/// Dataverse refuses more than 52 concurrent requests per user (service protection).
pub const MAX_CONCURRENCY: usize = 52;

/// The default mapping of canonical fields to contact columns (logical names).
pub const DEFAULT_FIELDS: &[(&str, &str)] = &[
    ("last_name", "lastname"),
    ("first_name", "firstname"),
    ("middle_name", "middlename"),
    ("birth_date", "birthdate"),
    ("phones[0]", "telephone1"),
    ("phones[1]", "mobilephone"),
    ("emails[0]", "emailaddress1"),
    ("addresses[0].text", "address1_line1"),
    ("addresses[0].postal_code", "address1_postalcode"),
];

/// An example configuration (TOML), as the docs show it; a test parses it.
pub const EXAMPLE: &str = r#"
org_url = "https://bank.crm4.dynamics.com"
api_version = "v9.2"
entity_set = "contacts"
key_field = "hub_goldenid"
id_field = "contactid"
access_token = "eyJ0eXAi..."
return_representation = true
duplicate_detection = true
concurrency = 8

[fields]
last_name = "lastname"
first_name = "firstname"
"phones[0]" = "telephone1"
"emails[0]" = "emailaddress1"

[retry]
max_attempts = 6
"#;

/// Where the environment is, which table and alternate key to upsert, how hard to try.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsConfig {
    /// The environment URL, `https://<org>.crm4.dynamics.com` (no path).
    pub org_url: String,
    /// Web API version, `v<major>.<minor>`. Default `v9.2`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The entity set written. Default `contacts`.
    #[serde(default = "default_entity_set")]
    pub entity_set: String,
    /// The column of the single-column alternate key the upsert addresses records by
    /// (`contacts(hub_goldenid='G1')`); the key must exist and be active in the
    /// environment. Default `hub_goldenid`.
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// The table's primary key column, read from the answer. Default `contactid`.
    #[serde(default = "default_id_field")]
    pub id_field: String,
    /// An OAuth 2.0 access token for the environment, already obtained and resolved by the
    /// runtime (client credentials through Microsoft Entra ID are not done here).
    pub access_token: String,
    /// Send `Prefer: return=representation` (with `$select` of the id column) so the answer
    /// tells created (`201`) from updated (`200`); without it both are `204` and `created`
    /// is reported `false`. Default true.
    #[serde(default = "yes")]
    pub return_representation: bool,
    /// Send `MSCRM.SuppressDuplicateDetection: false`, so the environment's duplicate
    /// detection rules run and a likely duplicate comes back for review. Default true.
    #[serde(default = "yes")]
    pub duplicate_detection: bool,
    /// Requests in flight at once (one record each), 1 to 52. Default 8.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Canonical field path → column logical name; replaces the defaults
    /// ([`DEFAULT_FIELDS`]) when given. Canonical fields without an entry are not sent.
    #[serde(default)]
    pub fields: Option<BTreeMap<String, String>>,
    /// Send `null` for a mapped field the record lacks (Dataverse then clears it) instead of
    /// leaving the CRM's value. Default false.
    #[serde(default)]
    pub clear_missing: bool,
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
    "v9.2".to_owned()
}

fn default_entity_set() -> String {
    "contacts".to_owned()
}

fn default_key_field() -> String {
    "hub_goldenid".to_owned()
}

fn default_id_field() -> String {
    "contactid".to_owned()
}

fn default_concurrency() -> usize {
    8
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for DynamicsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamicsConfig")
            .field("org_url", &self.org_url)
            .field("api_version", &self.api_version)
            .field("entity_set", &self.entity_set)
            .field("key_field", &self.key_field)
            .field("id_field", &self.id_field)
            .field("access_token", &"<hidden>")
            .field("return_representation", &self.return_representation)
            .field("duplicate_detection", &self.duplicate_detection)
            .field("concurrency", &self.concurrency)
            .field("fields", &self.fields)
            .field("clear_missing", &self.clear_missing)
            .field("retry", &self.retry)
            .field("tls", &self.tls)
            .field("allow_plain_http", &self.allow_plain_http)
            .finish()
    }
}

impl DynamicsConfig {
    /// A configuration with every default, for this environment and token.
    pub fn new(org_url: impl Into<String>, access_token: impl Into<String>) -> Self {
        DynamicsConfig {
            org_url: org_url.into(),
            api_version: default_api_version(),
            entity_set: default_entity_set(),
            key_field: default_key_field(),
            id_field: default_id_field(),
            access_token: access_token.into(),
            return_representation: true,
            duplicate_detection: true,
            concurrency: default_concurrency(),
            fields: None,
            clear_missing: false,
            retry: RetryPolicy::default(),
            tls: crate::tls::ClientTls::default(),
            allow_plain_http: false,
        }
    }

    /// Checks every value; returns the field map in use.
    pub fn validate(&self) -> Result<FieldMap, ConnectorError> {
        check_base_url(NAME, "org_url", &self.org_url)?;
        let version_ok = self
            .api_version
            .strip_prefix('v')
            .and_then(|v| v.split_once('.'))
            .is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.bytes().all(|c| c.is_ascii_digit())
                    && b.bytes().all(|c| c.is_ascii_digit())
            });
        if !version_ok {
            return Err(ConnectorError::config(
                NAME,
                "api_version",
                "must look like v9.2",
            ));
        }
        for (field, value) in [
            ("entity_set", &self.entity_set),
            ("key_field", &self.key_field),
            ("id_field", &self.id_field),
        ] {
            if !is_identifier(value) {
                return Err(ConnectorError::config(
                    NAME,
                    field,
                    "must be a logical name (ascii letters, digits and _)",
                ));
            }
        }
        if !(1..=MAX_CONCURRENCY).contains(&self.concurrency) {
            return Err(ConnectorError::config(
                NAME,
                "concurrency",
                format!("must be 1 to {MAX_CONCURRENCY}"),
            ));
        }
        self.retry.validate(NAME)?;
        let map = match &self.fields {
            Some(table) => FieldMap::new(NAME, table)?,
            None => FieldMap::defaults(NAME, DEFAULT_FIELDS),
        };
        if map.has_target(&self.key_field) {
            return Err(ConnectorError::config(
                NAME,
                "fields",
                "must not map a field onto the key column (the url carries it)",
            ));
        }
        Ok(map)
    }
}
