//! API tokens: random, shown once when made, kept by the hub only as their SHA-256. A token
//! has 256 random bits, so a plain SHA-256 is enough to make a stolen config useless
//! (a slow password hash guards guessable passwords, which these are not).

use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// The prefix of tokens the hub makes, so leaked ones are easy to recognise in scans.
pub const PREFIX: &str = "hub_";

/// SHA-256 of a token.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A new token and its SHA-256 in hex.
pub fn generate() -> anyhow::Result<(String, String)> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let token = format!("{PREFIX}{}", hex::encode(bytes));
    let hash = hex::encode(digest(&token));
    Ok((token, hash))
}

/// Parses a hex SHA-256 as written in the config.
pub fn parse_digest(hex_text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|_| "sha256 must be 64 hexadecimal digits".to_string())?;
    bytes
        .try_into()
        .map_err(|_| "sha256 must be 64 hexadecimal digits".to_string())
}

/// The lines `hub auth token` prints: the token once, and the config entry to add.
pub fn config_entry(name: &str, roles: &[super::Role], hash: &str) -> String {
    let roles: Vec<String> = roles
        .iter()
        .map(|r| format!("\"{}\"", r.as_str()))
        .collect();
    format!(
        "[[auth.tokens]]\nname = \"{name}\"\nroles = [{}]\nsha256 = \"{hash}\"\n",
        roles.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_matches_its_digest_and_nothing_else() {
        let (token, hash) = generate().unwrap();
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64);
        assert_eq!(parse_digest(&hash).unwrap(), digest(&token));
        let (other, _) = generate().unwrap();
        assert_ne!(digest(&other), digest(&token));
        assert!(parse_digest("abc").is_err());
        assert!(parse_digest(&"zz".repeat(32)).is_err());
    }
}
