//! Golden records: one per real customer, across the source systems (docs/master-data.md).
//!
//! `store` keeps golden records, cross-references, field history and the review queue;
//! `stage` matches the parties on the bus into it and publishes the golden records the CRM
//! sinks read; `api` is the data stewards' API.

pub mod api;
pub mod stage;
pub mod store;

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, GoldenBackend, resolve_secret};
use store::{GoldenStore, MdmSettings};

/// Opens the golden-record store `[master_data]` names, if the section is present.
pub fn open(config: &Config) -> anyhow::Result<Option<Arc<GoldenStore>>> {
    let Some(section) = &config.master_data else {
        return Ok(None);
    };
    let settings = MdmSettings {
        mastership: section.mastership.clone(),
        matching: section.matching.clone(),
        ..MdmSettings::default()
    };
    let store = match section.store {
        GoldenBackend::Sqlite => {
            let path = config
                .golden_path()
                .context("master_data is configured, so the golden path is known")?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            GoldenStore::open_sqlite(&path, settings)
                .with_context(|| format!("cannot open golden store {}", path.display()))?
        }
        GoldenBackend::Postgres => {
            let reference = section
                .postgres_url
                .as_deref()
                .context("master_data.postgres_url is required with store = \"postgres\"")?;
            let url = resolve_secret(reference, &config.base_dir)
                .map_err(|e| anyhow::anyhow!("master_data.postgres_url: {e}"))?;
            // The URL may carry a password: never in the error.
            GoldenStore::open_postgres(&url, settings)
                .context("cannot open the golden store on PostgreSQL")?
        }
    };
    // Personal columns encrypted at rest when [encryption] is configured (docs/pii.md).
    let store = store.with_cipher(crate::crypto::of_config(config)?);
    Ok(Some(Arc::new(store)))
}
