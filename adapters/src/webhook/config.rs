//! Configuration of a webhook source (`[sources.webhook]` in the hub's config).
//!
//! Contract: only `secret` is required; it is a reference (`env:NAME`, `file:PATH`) the
//! runtime resolves, never the value; [`WebhookConfig::validate`] checks everything the
//! verifier relies on without any IO and names the offending field.

use std::time::Duration;

use serde::Deserialize;

use super::verify::VerifyError;

/// How deliveries are authenticated, identified and bounded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Secret reference of the shared HMAC key.
    pub secret: String,
    /// Header carrying `sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`.
    /// Default `X-Hub-Signature`.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Header carrying the signing time in Unix seconds. Default `X-Hub-Timestamp`.
    #[serde(default = "default_timestamp_header")]
    pub timestamp_header: String,
    /// How far the signing time may be from the hub's clock, in seconds. Default 300.
    #[serde(default = "default_tolerance_secs")]
    pub tolerance_secs: u64,
    /// Path of each event's id within the event, e.g. `id` or `$.meta.event_id`.
    /// Give this or `event_id_header`. Default `id`.
    #[serde(default)]
    pub event_id_path: Option<String>,
    /// Header carrying the delivery's id (one id for the whole body), e.g.
    /// `X-Hub-Delivery`. Give this or `event_id_path`.
    #[serde(default)]
    pub event_id_header: Option<String>,
    /// The largest body accepted, in bytes; a larger one is answered `413`. Default 1 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long accepted ids are remembered to answer repeats as duplicates, in seconds.
    /// At least `tolerance_secs` (a replayed request is refused as stale after that).
    /// Default 86400.
    #[serde(default = "default_keep_ids_secs")]
    pub keep_ids_secs: u64,
    /// How long the hub waits for the bus to acknowledge a delivery before it answers
    /// `503`, in milliseconds. Default 10000.
    #[serde(default = "default_ack_timeout_ms")]
    pub ack_timeout_ms: u64,
}

fn default_signature_header() -> String {
    "X-Hub-Signature".into()
}
fn default_timestamp_header() -> String {
    "X-Hub-Timestamp".into()
}
fn default_tolerance_secs() -> u64 {
    300
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_keep_ids_secs() -> u64 {
    86_400
}
fn default_ack_timeout_ms() -> u64 {
    10_000
}

/// Where each event's id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventIdSource {
    /// A field of each event.
    Path(crate::rest_poll::JsonPath),
    /// A header of the delivery.
    Header(reqwest::header::HeaderName),
}

impl WebhookConfig {
    /// A config with every default and the given secret reference.
    pub fn new(secret: impl Into<String>) -> Self {
        WebhookConfig {
            secret: secret.into(),
            signature_header: default_signature_header(),
            timestamp_header: default_timestamp_header(),
            tolerance_secs: default_tolerance_secs(),
            event_id_path: None,
            event_id_header: None,
            max_body_bytes: default_max_body_bytes(),
            keep_ids_secs: default_keep_ids_secs(),
            ack_timeout_ms: default_ack_timeout_ms(),
        }
    }

    /// Checks every value the verifier relies on; the error names the field.
    pub fn validate(&self) -> Result<(), VerifyError> {
        let bad = |field: &str, reason: &str| VerifyError::Config {
            field: field.to_string(),
            reason: reason.to_string(),
        };
        match self.secret.split_once(':') {
            Some(("env" | "file", rest)) if !rest.is_empty() => {}
            _ => {
                return Err(bad(
                    "secret",
                    "secrets must be references (`env:NAME` or `file:PATH`), never inline values",
                ));
            }
        }
        for (field, h) in [
            ("signature_header", &self.signature_header),
            ("timestamp_header", &self.timestamp_header),
        ] {
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
                return Err(bad(field, "not a valid header name"));
            }
        }
        self.event_id()?;
        if self.tolerance_secs == 0 {
            return Err(bad("tolerance_secs", "must be greater than zero"));
        }
        if self.max_body_bytes < 64 {
            return Err(bad("max_body_bytes", "must be at least 64"));
        }
        if self.keep_ids_secs < self.tolerance_secs {
            return Err(bad(
                "keep_ids_secs",
                "must not be smaller than tolerance_secs (a replay inside the window must be recognised)",
            ));
        }
        if self.ack_timeout_ms == 0 {
            return Err(bad("ack_timeout_ms", "must be greater than zero"));
        }
        Ok(())
    }

    /// Where event ids come from: the header, the path, or the default path `id`.
    pub fn event_id(&self) -> Result<EventIdSource, VerifyError> {
        let bad = |field: &str, reason: String| VerifyError::Config {
            field: field.to_string(),
            reason,
        };
        match (&self.event_id_path, &self.event_id_header) {
            (Some(_), Some(_)) => Err(bad(
                "event_id_path",
                "give either event_id_path or event_id_header, not both".into(),
            )),
            (None, Some(h)) => reqwest::header::HeaderName::from_bytes(h.as_bytes())
                .map(EventIdSource::Header)
                .map_err(|_| bad("event_id_header", "not a valid header name".into())),
            (path, None) => {
                let p = crate::rest_poll::JsonPath::parse(path.as_deref().unwrap_or("id"))
                    .map_err(|e| bad("event_id_path", e))?;
                if p.is_root() {
                    return Err(bad(
                        "event_id_path",
                        "must name a field of the event".into(),
                    ));
                }
                Ok(EventIdSource::Path(p))
            }
        }
    }

    /// `tolerance_secs` as a duration.
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(self.tolerance_secs)
    }

    /// `ack_timeout_ms` as a duration.
    pub fn ack_timeout(&self) -> Duration {
        Duration::from_millis(self.ack_timeout_ms)
    }
}
