//! Encryption at rest of the stores' personal fields (docs/pii.md).
//!
//! - [`fields`]: the AES-256-GCM value format `enc:v1:<key id>:<base64>`.
//! - [`of_config`]: the keys `[encryption]` names, resolved from their references.
//! - [`rotate`]: `hub keys rotate` — re-encrypts stored values with the active key.

pub mod fields;
pub mod rotate;

use std::sync::Arc;

use anyhow::Context;

use crate::config::{Config, EncryptionSection, resolve_secret};
pub use fields::{CipherError, FieldCipher};

/// The cipher of `[encryption]`, or `None` when the section is absent (values are then
/// stored as they are, and plain values are read as before).
pub fn of_config(config: &Config) -> anyhow::Result<Option<Arc<FieldCipher>>> {
    match &config.encryption {
        Some(section) => Ok(Some(Arc::new(of_section(section, &config.base_dir)?))),
        None => Ok(None),
    }
}

/// Resolves every key reference of the section (`env:NAME`, `file:path`) and builds the
/// cipher. Errors name the key id and the reference kind, never the material.
pub fn of_section(
    section: &EncryptionSection,
    base_dir: &std::path::Path,
) -> anyhow::Result<FieldCipher> {
    let mut keys = Vec::with_capacity(section.keys.len());
    for (id, reference) in &section.keys {
        let text = resolve_secret(reference, base_dir)
            .map_err(|e| anyhow::anyhow!("encryption.keys.{id}: {e}"))?;
        let material =
            fields::parse_key(&text).map_err(|e| anyhow::anyhow!("encryption.keys.{id}: {e}"))?;
        keys.push((id.clone(), material));
    }
    FieldCipher::new(&section.active, keys)
        .map_err(|e| anyhow::anyhow!("encryption: {e}"))
        .context("cannot set up field encryption")
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::config::{Config, parse};

    fn config(section: &str, base: &Path) -> Result<Config, Vec<String>> {
        parse(section, base.to_path_buf()).map_err(|ps| ps.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn the_section_names_keys_by_reference_and_both_encodings_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/k1"), format!("{}\n", "ab".repeat(32))).unwrap();
        std::fs::write(
            dir.path().join("keys/k2"),
            "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=",
        )
        .unwrap();
        let cfg = config(
            "[encryption]\nactive = \"k2\"\n\n[encryption.keys]\nk1 = \"file:keys/k1\"\n\
             k2 = \"file:keys/k2\"\n",
            dir.path(),
        )
        .unwrap();
        let cipher = super::of_config(&cfg).unwrap().expect("configured");
        assert_eq!(cipher.active(), "k2");
        let sealed = cipher.seal("x", "r").unwrap();
        assert!(sealed.starts_with("enc:v1:k2:"));
        // Absent section: no cipher.
        let plain = config("[hub]\n", dir.path()).unwrap();
        assert!(super::of_config(&plain).unwrap().is_none());
    }

    #[test]
    fn problems_are_reported_with_their_place_and_never_the_material() {
        let base = PathBuf::from("/etc/hub");
        let errs = config(
            "[encryption]\nactive = \"k9\"\n\n[encryption.keys]\nk1 = \"plain-text-key\"\n\
             \"bad:id\" = \"env:HUB_K\"\n",
            &base,
        )
        .unwrap_err()
        .join("\n");
        assert!(
            errs.contains("encryption.active") && errs.contains("`k9`"),
            "{errs}"
        );
        assert!(errs.contains("encryption.keys.k1"), "{errs}");
        assert!(errs.contains("encryption.keys.bad:id"), "{errs}");
        assert!(errs.contains("line 2"), "{errs}");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("short"), "00112233").unwrap();
        let cfg = config(
            "[encryption]\nactive = \"k1\"\n\n[encryption.keys]\nk1 = \"file:short\"\n",
            dir.path(),
        )
        .unwrap();
        let e = format!("{:#}", super::of_config(&cfg).unwrap_err());
        assert!(
            e.contains("encryption.keys.k1") && e.contains("32 bytes"),
            "{e}"
        );
        assert!(!e.contains("00112233"), "{e}");
        let cfg = config(
            "[encryption]\nactive = \"k1\"\n\n[encryption.keys]\nk1 = \"env:HUB_TEST_UNSET_KEY_K1\"\n",
            dir.path(),
        )
        .unwrap();
        let e = format!("{:#}", super::of_config(&cfg).unwrap_err());
        assert!(e.contains("HUB_TEST_UNSET_KEY_K1"), "{e}");
    }
}
