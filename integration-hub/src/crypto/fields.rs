//! Field encryption at rest: AES-256-GCM with a random 96-bit nonce per value.
//!
//! A stored value is `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`. The key id in the
//! value names the key that decrypts it, so values written before a rotation stay readable
//! while the old key is configured. The additional authenticated data is the version and key
//! id plus the record the value belongs to (`golden.record G0000000001`): a value copied into
//! another record, or relabelled with another key id, fails authentication.
//!
//! A value without the `enc:` prefix is plain text written before encryption was enabled; it
//! is read as is (and re-encrypted by `hub keys rotate`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// The prefix of every encrypted value.
pub const PREFIX: &str = "enc:v1:";

/// Why a stored value could not be encrypted or decrypted. Names the record (ids, table
/// and column), never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CipherError {
    #[error("{record}: encrypted with key `{key}`, which [encryption.keys] does not configure")]
    UnknownKey { record: String, key: String },
    #[error(
        "{record}: encrypted value fails authentication (altered, truncated, or copied from \
         another record)"
    )]
    Tampered { record: String },
    #[error("{record}: not a valid enc:v1 value ({reason})")]
    Malformed {
        record: String,
        reason: &'static str,
    },
    #[error(
        "{record}: the value is encrypted but no [encryption] section is configured to read it"
    )]
    NoKeys { record: String },
    #[error("{record}: encryption failed (no randomness from the system)")]
    Seal { record: String },
}

/// The configured keys: one active (used to encrypt), all usable to decrypt.
pub struct FieldCipher {
    active: String,
    keys: BTreeMap<String, LessSafeKey>,
    rng: SystemRandom,
}

impl std::fmt::Debug for FieldCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key ids only: never the key material.
        f.debug_struct("FieldCipher")
            .field("active", &self.active)
            .field("keys", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Whether `id` is a usable key id: 1–32 of `A-Z a-z 0-9 -`, so it never contains the `:`
/// that ends it in a stored value.
pub fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parses 32 bytes of key material written as 64 hex digits or standard base64.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let t = text.trim();
    let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(t).map_err(|_| "not hex".to_string())?
    } else {
        STANDARD
            .decode(t)
            .map_err(|_| "neither 64 hex digits nor base64".to_string())?
    };
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must be 32 bytes (AES-256), found {}", bytes.len()))
}

/// The key id of a stored value, if it is encrypted.
pub fn key_id_of(stored: &str) -> Option<&str> {
    stored.strip_prefix(PREFIX)?.split_once(':').map(|(k, _)| k)
}

fn aad(key: &str, record: &str) -> Vec<u8> {
    format!("{PREFIX}{key}:{record}").into_bytes()
}

impl FieldCipher {
    /// Keys by id; `active` must be one of them.
    pub fn new(
        active: &str,
        keys: impl IntoIterator<Item = (String, [u8; 32])>,
    ) -> Result<FieldCipher, String> {
        let mut map = BTreeMap::new();
        for (id, material) in keys {
            if !valid_key_id(&id) {
                return Err(format!("key id `{id}`: use 1-32 letters, digits or `-`"));
            }
            let key = UnboundKey::new(&AES_256_GCM, &material)
                .map_err(|_| format!("key `{id}`: not a valid AES-256 key"))?;
            map.insert(id, LessSafeKey::new(key));
        }
        if !map.contains_key(active) {
            return Err(format!(
                "active key `{active}` is not among the configured keys"
            ));
        }
        Ok(FieldCipher {
            active: active.to_string(),
            keys: map,
            rng: SystemRandom::new(),
        })
    }

    /// The id of the key new values are encrypted with.
    pub fn active(&self) -> &str {
        &self.active
    }

    /// Whether a stored value is already encrypted with the active key.
    pub fn is_current(&self, stored: &str) -> bool {
        key_id_of(stored) == Some(self.active.as_str())
    }

    /// Encrypts `plain` for `record` with the active key.
    pub fn seal(&self, plain: &str, record: &str) -> Result<String, CipherError> {
        let key = self
            .keys
            .get(&self.active)
            .ok_or_else(|| CipherError::UnknownKey {
                record: record.to_string(),
                key: self.active.clone(),
            })?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CipherError::Seal {
            record: record.to_string(),
        })?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain.as_bytes());
        let mut body = buf.split_off(NONCE_LEN);
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&self.active, record)),
            &mut body,
        )
        .map_err(|_| CipherError::Seal {
            record: record.to_string(),
        })?;
        buf.extend_from_slice(&body);
        Ok(format!("{PREFIX}{}:{}", self.active, STANDARD.encode(&buf)))
    }

    /// Decrypts a stored value of `record`; a plain value is returned as it is.
    pub fn open<'a>(&self, stored: &'a str, record: &str) -> Result<Cow<'a, str>, CipherError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(Cow::Borrowed(stored));
        };
        let malformed = |reason| CipherError::Malformed {
            record: record.to_string(),
            reason,
        };
        let (key_id, body) = rest.split_once(':').ok_or_else(|| malformed("no key id"))?;
        let key = self
            .keys
            .get(key_id)
            .ok_or_else(|| CipherError::UnknownKey {
                record: record.to_string(),
                key: key_id.to_string(),
            })?;
        let mut bytes = STANDARD.decode(body).map_err(|_| malformed("not base64"))?;
        if bytes.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(malformed("too short"));
        }
        let mut ct = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| malformed("nonce"))?;
        let plain = key
            .open_in_place(nonce, Aad::from(aad(key_id, record)), &mut ct)
            .map_err(|_| CipherError::Tampered {
                record: record.to_string(),
            })?;
        let text = std::str::from_utf8(plain).map_err(|_| malformed("not UTF-8 inside"))?;
        Ok(Cow::Owned(text.to_string()))
    }
}

/// Encrypts with `cipher` when one is configured; otherwise stores the plain value.
pub fn seal_opt(
    cipher: Option<&FieldCipher>,
    plain: String,
    record: &str,
) -> Result<String, CipherError> {
    match cipher {
        Some(c) => c.seal(&plain, record),
        None => Ok(plain),
    }
}

/// Decrypts with `cipher` when one is configured. Plain values always pass; an encrypted
/// value without a cipher is an error naming the record.
pub fn open_opt<'a>(
    cipher: Option<&FieldCipher>,
    stored: &'a str,
    record: &str,
) -> Result<Cow<'a, str>, CipherError> {
    match cipher {
        Some(c) => c.open(stored, record),
        None if stored.starts_with(PREFIX) => Err(CipherError::NoKeys {
            record: record.to_string(),
        }),
        None => Ok(Cow::Borrowed(stored)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher(active: &str) -> FieldCipher {
        FieldCipher::new(
            active,
            [("k1".to_string(), [1u8; 32]), ("k2".to_string(), [2u8; 32])],
        )
        .unwrap()
    }

    #[test]
    fn a_value_round_trips_and_each_encryption_differs() {
        let c = cipher("k1");
        let a = c
            .seal("Иванов Иван, ИНН 7707083893", "golden.record G1")
            .unwrap();
        let b = c
            .seal("Иванов Иван, ИНН 7707083893", "golden.record G1")
            .unwrap();
        assert!(a.starts_with("enc:v1:k1:"), "{a}");
        assert_ne!(a, b, "random nonces");
        assert!(!a.contains("7707083893"));
        assert_eq!(
            c.open(&a, "golden.record G1").unwrap(),
            "Иванов Иван, ИНН 7707083893"
        );
        assert_eq!(c.open("plain", "x").unwrap(), "plain");
    }

    #[test]
    fn a_tampered_value_names_the_record_not_the_value() {
        let c = cipher("k1");
        let sealed = c.seal("secret-7707083893", "golden.record G1").unwrap();
        // Flip one character of the base64 body.
        let mut chars: Vec<char> = sealed.chars().collect();
        let at = chars.len() - 5;
        chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        let e = c.open(&tampered, "golden.record G1").unwrap_err();
        assert!(matches!(e, CipherError::Tampered { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("golden.record G1"), "{text}");
        assert!(
            !text.contains("7707083893") && !text.contains(&tampered),
            "{text}"
        );
        // Moved to another record: fails too.
        let e = c.open(&sealed, "golden.record G2").unwrap_err();
        assert!(matches!(e, CipherError::Tampered { .. }));
        // Relabelled with another key id.
        let relabelled = sealed.replacen("enc:v1:k1:", "enc:v1:k2:", 1);
        assert!(matches!(
            c.open(&relabelled, "golden.record G1").unwrap_err(),
            CipherError::Tampered { .. }
        ));
        assert!(matches!(
            c.open("enc:v1:k1:%%%", "r").unwrap_err(),
            CipherError::Malformed { .. }
        ));
        assert!(matches!(
            c.open("enc:v1:k1:AAAA", "r").unwrap_err(),
            CipherError::Malformed { .. }
        ));
    }

    #[test]
    fn an_unknown_or_missing_key_is_a_clear_error() {
        let old = cipher("k2");
        let sealed = old.seal("x", "case 1 envelope").unwrap();
        let only_k1 = FieldCipher::new("k1", [("k1".to_string(), [1u8; 32])]).unwrap();
        let e = only_k1.open(&sealed, "case 1 envelope").unwrap_err();
        assert_eq!(
            e,
            CipherError::UnknownKey {
                record: "case 1 envelope".into(),
                key: "k2".into()
            }
        );
        assert!(e.to_string().contains("`k2`"));
        let e = open_opt(None, &sealed, "case 1 envelope").unwrap_err();
        assert!(matches!(e, CipherError::NoKeys { .. }), "{e}");
        assert_eq!(open_opt(None, "plain", "r").unwrap(), "plain");
        assert!(FieldCipher::new("k9", [("k1".to_string(), [1u8; 32])]).is_err());
        assert!(FieldCipher::new("a:b", [("a:b".to_string(), [1u8; 32])]).is_err());
    }

    #[test]
    fn after_rotation_old_values_stay_readable() {
        let before = cipher("k1");
        let after = cipher("k2");
        let old = before.seal("v", "r").unwrap();
        assert!(!after.is_current(&old));
        assert_eq!(after.open(&old, "r").unwrap(), "v");
        let new = after.seal(&after.open(&old, "r").unwrap(), "r").unwrap();
        assert!(after.is_current(&new));
        assert_eq!(key_id_of(&new), Some("k2"));
    }

    #[test]
    fn key_material_is_hex_or_base64_of_32_bytes() {
        assert_eq!(parse_key(&"ab".repeat(32)).unwrap(), [0xab; 32]);
        assert_eq!(parse_key(&STANDARD.encode([7u8; 32])).unwrap(), [7; 32]);
        assert!(parse_key("abcd").unwrap_err().contains("32 bytes"));
        assert!(parse_key("not a key!").is_err());
        let dbg = format!("{:?}", cipher("k1"));
        assert!(dbg.contains("k1") && !dbg.contains("[1, 1"), "{dbg}");
    }
}
