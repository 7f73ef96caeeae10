//! `hub keys rotate`: re-encrypts every stored personal value that is not under the active
//! key (older keys and plain values), in small batches, each its own transaction, so it runs
//! alongside a running hub. Progress goes to the caller one line per batch; the line names
//! the store, the part and counts, never a value.

/// One batch's result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Rows read.
    pub scanned: u64,
    /// Rows re-encrypted (the others were already under the active key).
    pub changed: u64,
    /// Where the next batch starts; `None` when the batch read no row.
    pub next: Option<String>,
}

/// A store with encrypted columns.
pub trait Rotatable {
    /// The store's name in progress lines.
    fn store_name(&self) -> &'static str;
    /// Its parts (tables), rotated in this order.
    fn parts(&self) -> &'static [&'static str];
    /// Re-encrypts up to `limit` rows of `part` after the cursor `after` in one transaction.
    fn rotate_batch(&self, part: &str, after: Option<&str>, limit: usize) -> Result<Batch, String>;
}

/// Totals of a rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub scanned: u64,
    pub changed: u64,
}

/// Rotates every part of every store, `batch` rows at a time, reporting each batch.
pub fn run(
    stores: &[&dyn Rotatable],
    batch: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Totals> {
    let batch = batch.max(1);
    let mut totals = Totals::default();
    for store in stores {
        for part in store.parts() {
            let (mut scanned, mut changed) = (0u64, 0u64);
            let mut after: Option<String> = None;
            loop {
                let b = store
                    .rotate_batch(part, after.as_deref(), batch)
                    .map_err(|e| anyhow::anyhow!("{} {part}: {e}", store.store_name()))?;
                scanned += b.scanned;
                changed += b.changed;
                let Some(next) = b.next else { break };
                progress(&format!(
                    "{} {part}: {scanned} rows read, {changed} re-encrypted",
                    store.store_name()
                ));
                after = Some(next);
            }
            progress(&format!(
                "{} {part}: done, {scanned} rows read, {changed} re-encrypted",
                store.store_name()
            ));
            totals.scanned += scanned;
            totals.changed += changed;
        }
    }
    Ok(totals)
}

/// `hub keys rotate --config`: opens the stores the config names (golden store with
/// `[master_data]`, compliance store with `[compliance]`) with the `[encryption]` keys and
/// rotates them. Blocks: call it from `spawn_blocking` in async code.
pub fn run_config(
    config: &crate::config::Config,
    batch: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Totals> {
    use anyhow::Context;
    let Some(cipher) = super::of_config(config)? else {
        anyhow::bail!("no [encryption] section: nothing to rotate to");
    };
    progress(&format!("re-encrypting with key `{}`", cipher.active()));
    let golden = crate::golden::open(config)?;
    let compliance = match &config.compliance {
        Some(_) => Some(
            crate::screening::store::ComplianceStore::open(
                &config.data_dir().join("compliance.db"),
            )
            .context("cannot open the compliance store")?
            .with_cipher(Some(cipher.clone())),
        ),
        None => None,
    };
    let mut stores: Vec<&dyn Rotatable> = Vec::new();
    if let Some(g) = &golden {
        stores.push(&**g);
    }
    if let Some(c) = &compliance {
        stores.push(c);
    }
    if stores.is_empty() {
        progress("no store with personal data configured ([master_data], [compliance])");
    }
    run(&stores, batch, progress)
}
