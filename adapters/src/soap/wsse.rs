//! WS-Security UsernameToken (OASIS Username Token Profile 1.0/1.1).
//!
//! Contract: `PasswordDigest` = Base64(SHA-1(nonce + created + password)), where `nonce`
//! is the raw nonce bytes (sent Base64-encoded), `created` the exact `wsu:Created` text and
//! `password` its UTF-8 bytes. Every call of [`security_header`] with a fresh nonce from
//! [`fresh_nonce`] gives a token the server has never seen, so retries pass a replay check.
//! The password never appears in a `Debug` output, an error or a log line.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, SecondsFormat, Utc};
use sha1::{Digest, Sha1};

use super::config::{PasswordType, WsSecurityConfig};
use super::envelope::xml_escape;

pub const WSSE_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
pub const WSU_NS: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
pub const PASSWORD_TEXT: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText";
pub const PASSWORD_DIGEST: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
pub const BASE64_BINARY: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// Bytes of a nonce.
pub const NONCE_LEN: usize = 16;

/// Base64(SHA-1(nonce + created + password)).
pub fn password_digest(nonce: &[u8], created: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    STANDARD.encode(h.finalize())
}

/// A nonce from the operating system's random source.
pub fn fresh_nonce() -> Result<[u8; NONCE_LEN], String> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n).map_err(|e| format!("no random nonce: {e}"))?;
    Ok(n)
}

/// `wsu:Created` text of an instant: UTC, milliseconds, `Z`.
pub fn created_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The `wsse:Security` header element with a UsernameToken; the `soap` prefix must be the
/// envelope's (it marks the header `mustUnderstand`).
pub fn security_header(
    cfg: &WsSecurityConfig,
    nonce: &[u8],
    created: DateTime<Utc>,
) -> Result<String, String> {
    let created = created_text(created);
    let username = xml_escape(&cfg.username)
        .ok_or_else(|| "ws_security.username holds a character xml cannot carry".to_owned())?;
    let (kind, password) = match cfg.password_type {
        PasswordType::Digest => (
            PASSWORD_DIGEST,
            password_digest(nonce, &created, &cfg.password),
        ),
        PasswordType::Text => (
            PASSWORD_TEXT,
            xml_escape(&cfg.password).ok_or_else(|| {
                "ws_security.password holds a character xml cannot carry".to_owned()
            })?,
        ),
    };
    Ok(format!(
        concat!(
            "<wsse:Security xmlns:wsse=\"{wsse}\" xmlns:wsu=\"{wsu}\" soap:mustUnderstand=\"1\">",
            "<wsse:UsernameToken>",
            "<wsse:Username>{username}</wsse:Username>",
            "<wsse:Password Type=\"{kind}\">{password}</wsse:Password>",
            "<wsse:Nonce EncodingType=\"{b64}\">{nonce}</wsse:Nonce>",
            "<wsu:Created>{created}</wsu:Created>",
            "</wsse:UsernameToken></wsse:Security>"
        ),
        wsse = WSSE_NS,
        wsu = WSU_NS,
        username = username,
        kind = kind,
        password = password,
        b64 = BASE64_BINARY,
        nonce = STANDARD.encode(nonce),
        created = created,
    ))
}

/// What a server took from a UsernameToken, to check it ([`UsernameToken::verify`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    /// The `Type` attribute of `Password` (empty means text).
    pub password_type: String,
    pub password: String,
    /// The nonce as sent (Base64).
    pub nonce: String,
    pub created: String,
}

impl std::fmt::Debug for UsernameToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password_type", &self.password_type)
            .field("password", &"<hidden>")
            .field("nonce", &self.nonce)
            .field("created", &self.created)
            .finish()
    }
}

impl UsernameToken {
    /// Whether the token proves knowledge of `password`: its digest for `PasswordDigest`,
    /// the password itself for `PasswordText`. Comparison time does not depend on where the
    /// values differ.
    pub fn verify(&self, password: &str) -> bool {
        if self.password_type == PASSWORD_DIGEST || self.password_type.ends_with("#PasswordDigest")
        {
            let Ok(nonce) = STANDARD.decode(self.nonce.trim()) else {
                return false;
            };
            let expected = password_digest(&nonce, &self.created, password);
            return constant_time_eq(expected.as_bytes(), self.password.trim().as_bytes());
        }
        constant_time_eq(password.as_bytes(), self.password.as_bytes())
    }

    /// Whether this token was sent as a digest.
    pub fn is_digest(&self) -> bool {
        self.password_type.ends_with("#PasswordDigest")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
