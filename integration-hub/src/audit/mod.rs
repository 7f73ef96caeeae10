//! The audit log: every API action (who, what, on which record, with what outcome), every
//! read of personal data through the API, compliance decisions, merges and unmerges, and
//! every batch of CRM writes. Append-only JSON lines in `<data_dir>/audit.log`, each entry
//! chained to the one before by a hash over the previous hash and the entry, so `hub audit
//! verify` finds any entry edited, reordered or deleted.
//!
//! With `[audit] key` (a secret reference) the chain uses HMAC-SHA256 with that key: then
//! even someone able to rewrite the file cannot forge a consistent chain without the key.
//! Deleting entries at the end is found against the head file (`audit.log.head`: the last
//! sequence number and hash, rewritten after every append), and against the head the hub
//! logs every minute (`event=audit_head`), which a log store keeps out of the hub's reach.
//!
//! Entries carry ids, route names and counts, never personal data.

pub mod api;
pub mod verify;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ring::hmac;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One entry as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub at: String,
    /// The caller (`principal name`), or `hub` / `sink:<name>` for the hub's own acts.
    pub actor: String,
    pub action: String,
    /// What was acted on: a route with its ids, a golden id, a sink and batch.
    pub target: String,
    pub outcome: String,
    pub detail: String,
    /// Hex hash of the entry before (64 zeros for the first).
    pub prev: String,
    /// Hex hash over `prev` and every field above.
    pub hash: String,
}

/// The fields a hash covers, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: &'a str,
    actor: &'a str,
    action: &'a str,
    target: &'a str,
    outcome: &'a str,
    detail: &'a str,
}

/// How the chain's hashes are made.
#[derive(Clone)]
pub enum Chain {
    Sha256,
    Hmac(hmac::Key),
}

impl Chain {
    pub fn keyed(key: &[u8]) -> Chain {
        Chain::Hmac(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The hash of `e` after `prev`.
    pub fn hash(&self, prev: &str, e: &Entry) -> String {
        let body = serde_json::to_vec(&Hashed {
            seq: e.seq,
            at: &e.at,
            actor: &e.actor,
            action: &e.action,
            target: &e.target,
            outcome: &e.outcome,
            detail: &e.detail,
        })
        .unwrap_or_default();
        match self {
            Chain::Sha256 => {
                let mut h = Sha256::new();
                h.update(prev.as_bytes());
                h.update(b"\n");
                h.update(&body);
                hex::encode(h.finalize())
            }
            Chain::Hmac(key) => {
                let mut ctx = hmac::Context::with_key(key);
                ctx.update(prev.as_bytes());
                ctx.update(b"\n");
                ctx.update(&body);
                hex::encode(ctx.sign().as_ref())
            }
        }
    }
}

pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The head file beside a log.
pub fn head_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".head");
    PathBuf::from(p)
}

struct Writer {
    file: File,
    seq: u64,
    last: String,
}

/// An open audit log.
pub struct AuditLog {
    path: PathBuf,
    chain: Chain,
    w: Mutex<Writer>,
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain from the last entry. A log whose
    /// last line is not a whole entry (a crash mid-write) is refused: `hub audit verify`
    /// names the line, and an operator decides.
    pub fn open(path: &Path, chain: Chain) -> anyhow::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let (mut seq, mut last) = (0u64, GENESIS.to_string());
        if path.exists() {
            let f = File::open(path)?;
            for (i, line) in BufReader::new(f).lines().enumerate() {
                let line = line?;
                let n = i + 1;
                if line.trim().is_empty() {
                    continue;
                }
                let e: Entry = serde_json::from_str(&line).map_err(|err| {
                    anyhow::anyhow!(
                        "audit log {} line {n} is not an entry ({err}); run `hub audit verify`",
                        path.display()
                    )
                })?;
                seq = e.seq;
                last = e.hash;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            chain,
            w: Mutex::new(Writer { file, seq, last }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an entry, durable when this returns.
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> anyhow::Result<Entry> {
        let mut w = self
            .w
            .lock()
            .map_err(|_| anyhow::anyhow!("audit log lock poisoned"))?;
        // Another process (a `hub dlq` command beside the running hub) may append to the same
        // log: the file lock orders the writers, and the head file says where the chain is.
        w.file.lock()?;
        let appended = self.append_locked(&mut w, actor, action, target, outcome, detail);
        w.file.unlock()?;
        appended
    }

    fn append_locked(
        &self,
        w: &mut Writer,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &str,
    ) -> anyhow::Result<Entry> {
        if let Some((seq, hash)) = read_head(&self.path)
            && seq >= w.seq
        {
            (w.seq, w.last) = (seq, hash);
        }
        let mut e = Entry {
            seq: w.seq + 1,
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            actor: actor.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            outcome: outcome.to_string(),
            detail: detail.to_string(),
            prev: w.last.clone(),
            hash: String::new(),
        };
        e.hash = self.chain.hash(&e.prev, &e);
        let mut line = serde_json::to_vec(&e)?;
        line.push(b'\n');
        w.file.write_all(&line)?;
        w.file.sync_data()?;
        w.seq = e.seq;
        w.last = e.hash.clone();
        write_head(&self.path, e.seq, &e.hash)?;
        metrics::gauge!("hub_audit_last_seq").set(e.seq as f64);
        Ok(e)
    }

    /// The last sequence number and hash.
    pub fn head(&self) -> (u64, String) {
        match self.w.lock() {
            Ok(w) => (w.seq, w.last.clone()),
            Err(_) => (0, GENESIS.to_string()),
        }
    }
}

/// The last sequence number and hash the head file records.
fn read_head(log: &Path) -> Option<(u64, String)> {
    let text = std::fs::read_to_string(head_path(log)).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.to_string()))
}

/// Rewrites the head file atomically (write beside, rename).
fn write_head(log: &Path, seq: u64, hash: &str) -> std::io::Result<()> {
    let head = head_path(log);
    let tmp = head.with_extension("head.tmp");
    std::fs::write(&tmp, format!("{seq} {hash}\n"))?;
    std::fs::rename(&tmp, &head)
}

static GLOBAL: OnceLock<AuditLog> = OnceLock::new();

/// Makes `log` the process's audit log (once; later calls are ignored).
pub fn install(log: AuditLog) {
    let _ = GLOBAL.set(log);
}

/// The process's audit log, when one is installed.
pub fn global() -> Option<&'static AuditLog> {
    GLOBAL.get()
}

/// Appends to the process's audit log. A failed append is logged as an error and counted
/// (`hub_audit_failures_total`): the action itself already happened.
pub fn record(actor: &str, action: &str, target: &str, outcome: &str, detail: &str) {
    let Some(log) = GLOBAL.get() else {
        return;
    };
    if let Err(e) = log.append(actor, action, target, outcome, detail) {
        metrics::counter!("hub_audit_failures_total").increment(1);
        tracing::error!(event = "audit_failed", action, error = %e, "cannot append to the audit log");
    }
}

/// An entry for a decision a caller made through an API (a compliance decision, a merge):
/// the authenticated principal is the actor, the person the request names (officer,
/// steward) is in `detail`. The API call itself has its own entry.
pub fn decision(
    principal: Option<&crate::auth::Principal>,
    action: &str,
    target: &str,
    outcome: &str,
    detail: &str,
) {
    let actor = principal.map_or("unauthenticated", |p| p.name.as_str());
    record(actor, action, target, outcome, detail);
}

/// An entry for something the hub noticed (not a caller's action).
pub fn system_event(action: &str, subject: &str, detail: &str) {
    record("hub", action, subject, "raised", detail);
}

/// Logs the head every `every` until `shutdown`: an anchor outside the hub's reach.
pub async fn log_heads(
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Some(log) = GLOBAL.get() {
            let (seq, hash) = log.head();
            tracing::info!(event = "audit_head", seq, hash = %hash, "audit log head");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// `[audit]`: where the log is and the key of its chain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// Default `<data_dir>/audit.log`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// HMAC key of the chain, a secret reference (`env:` or `file:`); without it the chain
    /// is plain SHA-256.
    #[serde(default)]
    pub key: Option<String>,
}

/// The log path and chain of a config.
pub fn of_config(config: &crate::config::Config) -> anyhow::Result<(PathBuf, Chain)> {
    let section = config.audit.clone().unwrap_or_default();
    let path = match &section.path {
        Some(p) => config.resolve(p),
        None => config.data_dir().join("audit.log"),
    };
    let chain = match &section.key {
        Some(r) => {
            let key = crate::config::resolve_secret(r, &config.base_dir)
                .map_err(|e| anyhow::anyhow!("audit.key: {e}"))?;
            Chain::keyed(key.as_bytes())
        }
        None => Chain::Sha256,
    };
    Ok((path, chain))
}
