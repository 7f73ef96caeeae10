//! Quarantine for records of non-file sources (REST, SOAP, webhooks): a record that cannot be
//! mapped is published to `<prefix>.quarantine` with its reason, so it is kept, visible and
//! replayable, while the good records of the same page go on. (File sources keep their
//! quarantine next to the file: `quarantine/<file>.quarantine.csv`.)
//!
//! Headers: `source`, `key` (when known), `location` (page, record index, element),
//! `field`, `reason`, `quarantined_at`. Payload: the record as received. The log line carries
//! source, location, field and reason only — never the record's values.

use crate::bus::OutMessage;
use crate::telemetry;

use super::Ctx;

/// One record a source could not map.
#[derive(Debug, Clone)]
pub struct Quarantined {
    pub key: Option<String>,
    /// Where the record was: "page 3, record 17", "POST /webhooks/abs, id evt-9", ...
    pub location: String,
    pub field: String,
    pub reason: String,
    /// The record as received (JSON, XML text, ...).
    pub raw: Vec<u8>,
}

/// Publishes `items` to the quarantine topic; returns once the bus acknowledged them, so a
/// source may advance its cursor past them.
pub async fn publish(ctx: &Ctx, source: &str, items: Vec<Quarantined>) -> anyhow::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now().to_rfc3339();
    let mut msgs = Vec::with_capacity(items.len());
    for q in &items {
        telemetry::record_quarantined(&ctx.stats, source, &q.location, &q.field, &q.reason);
        let mut headers = vec![
            ("source".to_string(), source.to_string()),
            ("location".to_string(), q.location.clone()),
            ("field".to_string(), q.field.clone()),
            ("reason".to_string(), q.reason.clone()),
            ("quarantined_at".to_string(), now.clone()),
        ];
        if let Some(k) = &q.key {
            headers.push(("key".to_string(), k.clone()));
        }
        msgs.push(OutMessage {
            key: q
                .key
                .clone()
                .unwrap_or_else(|| format!("{source}:{}", q.location)),
            headers,
            payload: q.raw.clone(),
        });
    }
    ctx.bus
        .publish(&ctx.config.bus.quarantine_topic(), msgs)
        .await?;
    Ok(())
}
