//! The core bank as a webhook sender: signs a body with the shared secret (HMAC-SHA256 over
//! `"<timestamp>.<body>"`, `X-Hub-Signature: sha256=<hex>`, `X-Hub-Timestamp`) — correctly,
//! or in one of the ways a hub must refuse — and posts it.

use serde_json::{Value, json};

use super::data::Bank;

/// How a delivery is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// Correctly, now.
    Valid,
    /// With another secret.
    WrongSecret,
    /// Correctly, but this many seconds ago.
    Stale(i64),
    /// Correctly, then one byte of the body changed.
    Tampered,
    /// No signature header at all.
    Unsigned,
}

/// What the hub answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

/// Posts signed deliveries to one URL.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

impl WebhookSender {
    pub fn new(url: impl Into<String>, secret: impl Into<Vec<u8>>) -> Self {
        WebhookSender {
            http: reqwest::Client::new(),
            url: url.into(),
            secret: secret.into(),
        }
    }

    /// Signs `body` as `signing` says and posts it.
    pub async fn send(&self, body: &Value, signing: Signing) -> anyhow::Result<Answer> {
        let bytes = serde_json::to_vec(body)?;
        self.send_bytes(bytes, signing).await
    }

    /// Signs raw bytes as `signing` says and posts them.
    pub async fn send_bytes(&self, mut bytes: Vec<u8>, signing: Signing) -> anyhow::Result<Answer> {
        let now = chrono::Utc::now().timestamp();
        let ts = match signing {
            Signing::Stale(secs) => now - secs,
            _ => now,
        };
        let secret: &[u8] = match signing {
            Signing::WrongSecret => b"not the shared secret",
            _ => &self.secret,
        };
        let signature = adapters::webhook::sign(secret, ts, &bytes);
        if signing == Signing::Tampered
            && let Some(b) = bytes.iter_mut().rev().find(|b| b.is_ascii_alphanumeric())
        {
            *b = if *b == b'0' { b'1' } else { b'0' };
        }
        let mut req = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("X-Hub-Timestamp", ts.to_string())
            .body(bytes);
        if signing != Signing::Unsigned {
            req = req.header("X-Hub-Signature", signature);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let text = resp.text().await?;
        Ok(Answer {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        })
    }
}

/// A `customer.updated` event for customer `index` as the bank stands now.
pub fn customer_event(bank: &Bank, index: u64, event_id: &str) -> Value {
    json!({
        "event_id": event_id,
        "type": "customer.updated",
        "customer": bank.customer(index),
    })
}
