//! Helpers for suites that run against the real Kafka broker of `scripts/kafka.sh`.
//!
//! Suites never start or fake a broker on their own: the test script starts one first, and a
//! suite that cannot reach it fails. Names made by [`unique`] keep reruns against the same broker
//! (and its kept data) from seeing each other's topics and groups.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use integration_hub::bus::Bus;

/// The broker address: `KAFKA_BOOTSTRAP`, or the script's default `127.0.0.1:9092`.
pub fn bootstrap() -> String {
    std::env::var("KAFKA_BOOTSTRAP")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned())
}

/// `prefix` followed by an id unique to this process and call, usable as a topic or group name.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{nanos:x}-{n}", std::process::id())
}

/// The broker control script: `KAFKA_SCRIPT`, or `scripts/kafka.sh` of this workspace.
pub fn script() -> PathBuf {
    match std::env::var_os("KAFKA_SCRIPT") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("scripts")
            .join("kafka.sh"),
    }
}

/// Runs `scripts/kafka.sh <command>` and fails unless it exits 0.
pub fn run_script(command: &str) -> anyhow::Result<()> {
    let path = script();
    let status = Command::new("bash")
        .arg(&path)
        .arg(command)
        .status()
        .with_context(|| format!("cannot run {}", path.display()))?;
    if !status.success() {
        bail!("{} {command} failed: {status}", path.display());
    }
    Ok(())
}

/// Pings `bus` until it answers or `within` has passed; the last error otherwise.
pub async fn wait_reachable(bus: &dyn Bus, within: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match bus.ping().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(e).with_context(|| format!("bus not reachable within {within:?}"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_topic_names() {
        let a = unique("t");
        let b = unique("t");
        assert_ne!(a, b);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
        );
        assert!(a.len() < 100);
    }
}
