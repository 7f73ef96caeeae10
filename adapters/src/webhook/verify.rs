//! Authenticating a webhook delivery and taking its events apart.
//!
//! The sender signs `"<timestamp>.<body>"` with HMAC-SHA256 under the shared secret and
//! sends `X-Hub-Signature: sha256=<hex>` and `X-Hub-Timestamp: <unix seconds>`. The hub
//! recomputes the MAC and compares in constant time; only a correctly signed delivery has
//! its timestamp judged (older or newer than the tolerance → stale), so an unsigned caller
//! learns nothing but "signature mismatch". A replay of a signed request is stopped by the
//! timestamp window and, inside it, by the record of accepted event ids ([`SeenIds`], kept
//! by the runtime in its store for at least the window).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::config::EventIdSource;

type HmacSha256 = Hmac<Sha256>;

/// Why a delivery was refused (or the config rejected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A configuration value that cannot work.
    #[error("invalid webhook config: field {field}: {reason}")]
    Config {
        /// The config field.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The signature is missing, malformed or wrong. `detail` is for the hub's log only;
    /// the sender is told "signature mismatch".
    #[error("signature mismatch ({detail})")]
    Signature {
        /// Which of the checks failed.
        detail: &'static str,
    },
    /// Correctly signed, but outside the time window.
    #[error("stale: signed {age_secs} s away from the hub's clock (tolerance {tolerance_secs} s)")]
    Stale {
        /// Seconds between the signing time and now (absolute).
        age_secs: u64,
        /// The configured tolerance.
        tolerance_secs: u64,
    },
}

/// The ids of events a source has accepted, kept by the runtime (it survives restarts).
pub trait SeenIds: Send + Sync {
    /// For each of `ids`, whether it was accepted before.
    fn seen(&self, source: &str, ids: &[String]) -> Result<Vec<bool>, String>;
    /// Records `ids` as accepted at `at`. Called only after their events are durable.
    fn record(&self, source: &str, ids: &[String], at: DateTime<Utc>) -> Result<(), String>;
}

/// The signature header value for `body` signed at `timestamp` (Unix seconds) under
/// `secret`: `sha256=<lowercase hex>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("hmac accepts every key length"));
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Checks deliveries against one secret.
pub struct Verifier {
    secret: Vec<u8>,
    tolerance_secs: u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &"<hidden>")
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

impl Verifier {
    /// A verifier for `secret` (resolved) accepting signing times within `tolerance_secs`.
    pub fn new(secret: impl Into<Vec<u8>>, tolerance_secs: u64) -> Verifier {
        Verifier {
            secret: secret.into(),
            tolerance_secs,
        }
    }

    /// Checks the signature, then the time window; returns the signing time.
    pub fn verify(
        &self,
        signature: Option<&[u8]>,
        timestamp: Option<&[u8]>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<i64, VerifyError> {
        let sig = |detail| VerifyError::Signature { detail };
        let signature = signature.ok_or(sig("no signature header"))?;
        let timestamp = timestamp.ok_or(sig("no timestamp header"))?;
        let ts: i64 = std::str::from_utf8(timestamp)
            .ok()
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or(sig("timestamp is not Unix seconds"))?;
        let hex_part = signature
            .strip_prefix(b"sha256=")
            .ok_or(sig("signature is not sha256=<hex>"))?;
        let given = hex::decode(hex_part.trim_ascii()).map_err(|_| sig("signature is not hex"))?;
        // Constant-time comparison inside `verify_slice`.
        mac(&self.secret, ts, body)
            .verify_slice(&given)
            .map_err(|_| sig("mac differs"))?;
        let age = now.timestamp().abs_diff(ts);
        if age > self.tolerance_secs {
            return Err(VerifyError::Stale {
                age_secs: age,
                tolerance_secs: self.tolerance_secs,
            });
        }
        Ok(ts)
    }
}

/// The events of a body: the elements of `{"events": [...]}`, or the one object it is.
pub fn split_events(body: &[u8]) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "body is not JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    match value {
        Value::Object(mut m) => match m.remove("events") {
            Some(Value::Array(events)) if m.is_empty() => Ok(events),
            Some(Value::Array(_)) => Err("a body with `events` must hold nothing else".into()),
            Some(_) => Err("`events` must be an array".into()),
            None => Ok(vec![Value::Object(m)]),
        },
        _ => Err("body must be a JSON object: one event, or {\"events\": [...]}".into()),
    }
}

/// The id of each event (or why it has none): from `source`, with `header` the value of the
/// delivery's id header when that is the source. With a header id and several events,
/// event `i` gets `<id>#<i>` so that each stays distinct.
pub fn event_ids(
    events: &[Value],
    source: &EventIdSource,
    header: Option<&[u8]>,
) -> Vec<Result<String, String>> {
    match source {
        EventIdSource::Header(name) => {
            let id = header
                .and_then(|h| std::str::from_utf8(h).ok())
                .map(str::trim)
                .filter(|h| !h.is_empty() && h.len() <= 200);
            events
                .iter()
                .enumerate()
                .map(|(i, _)| match id {
                    Some(id) if events.len() == 1 => Ok(id.to_string()),
                    Some(id) => Ok(format!("{id}#{i}")),
                    None => Err(format!("no usable `{name}` header")),
                })
                .collect()
        }
        EventIdSource::Path(path) => events
            .iter()
            .map(|e| match path.find(e) {
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 200 => {
                    Ok(s.trim().to_string())
                }
                Some(Value::Number(n)) => Ok(n.to_string()),
                Some(Value::String(_)) => Err("event id is empty or longer than 200".into()),
                Some(_) => Err("event id must be a string or a number".into()),
                None => Err(format!("no event id at `{path}`")),
            })
            .collect(),
    }
}
