//! JWTs from an OIDC issuer: signature checked against the issuer's JSON Web Key Set (read
//! by reference from a file or an environment variable, so key rotation is a file change
//! and a restart, with no network call in the request path), then `iss`, `aud`, `exp` and
//! `nbf`, then the roles claim. RS256 and ES256 only: `none` and the shared-secret HS*
//! algorithms are refused.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::Value;

use super::{Principal, Role};

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Not this issuer's token (another configured issuer may take it).
    #[error("token of another issuer")]
    OtherIssuer,
    #[error("algorithm {0} is not accepted (RS256 and ES256 are)")]
    Algorithm(String),
    #[error("no key {0} in the issuer's key set")]
    UnknownKey(String),
    #[error("signature does not verify")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not valid yet")]
    NotYet,
    #[error("token is for another audience")]
    Audience,
    #[error("token carries no role of this hub")]
    NoRole,
}

/// A public key of the issuer.
enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point.
    P256(Vec<u8>),
}

/// A configured issuer with its keys.
pub struct Issuer {
    issuer: String,
    audience: String,
    keys: BTreeMap<String, Key>,
    roles_claim: String,
    name_claim: String,
    /// Claim value → role; empty means role names are used as they are.
    role_map: BTreeMap<String, Role>,
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(s: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "not base64url".to_string())
}

impl Issuer {
    /// An issuer from its JWKS document. Keys of other types are passed over; a set with
    /// no usable key is an error.
    pub fn new(
        issuer: &str,
        audience: &str,
        jwks_json: &str,
        roles_claim: &str,
        name_claim: &str,
        role_map: BTreeMap<String, Role>,
    ) -> Result<Issuer, String> {
        let jwks: Jwks = serde_json::from_str(jwks_json)
            .map_err(|e| format!("key set is not JWKS JSON: {e}"))?;
        let mut keys = BTreeMap::new();
        for (i, k) in jwks.keys.iter().enumerate() {
            let kid = k.kid.clone().unwrap_or_default();
            let key = match (k.kty.as_str(), k.crv.as_deref()) {
                ("RSA", _) => {
                    let (Some(n), Some(e)) = (&k.n, &k.e) else {
                        return Err(format!("key {i}: an RSA key needs n and e"));
                    };
                    Key::Rsa {
                        n: b64(n).map_err(|m| format!("key {i}: n is {m}"))?,
                        e: b64(e).map_err(|m| format!("key {i}: e is {m}"))?,
                    }
                }
                ("EC", Some("P-256")) => {
                    let (Some(x), Some(y)) = (&k.x, &k.y) else {
                        return Err(format!("key {i}: an EC key needs x and y"));
                    };
                    let (x, y) = (
                        b64(x).map_err(|m| format!("key {i}: x is {m}"))?,
                        b64(y).map_err(|m| format!("key {i}: y is {m}"))?,
                    );
                    if x.len() != 32 || y.len() != 32 {
                        return Err(format!("key {i}: P-256 coordinates must be 32 bytes"));
                    }
                    let mut point = vec![4u8];
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    Key::P256(point)
                }
                _ => continue,
            };
            keys.insert(kid, key);
        }
        if keys.is_empty() {
            return Err("the key set has no RSA or P-256 key".into());
        }
        Ok(Issuer {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            keys,
            roles_claim: roles_claim.to_string(),
            name_claim: name_claim.to_string(),
            role_map,
        })
    }

    /// Verifies `token` at `now` (Unix seconds) and returns its caller.
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("a JWT has three parts"));
        };
        let header: Value = decode_json(h).ok_or(JwtError::Malformed("header"))?;
        let claims: Value = decode_json(p).ok_or(JwtError::Malformed("claims"))?;
        // The issuer is checked first so that with several issuers each token is judged
        // by its own.
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwtError::OtherIssuer);
        }
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        let kid = header.get("kid").and_then(Value::as_str).unwrap_or("");
        let key = self
            .keys
            .get(kid)
            .ok_or_else(|| JwtError::UnknownKey(kid.to_string()))?;
        let sig = b64(sig).map_err(|_| JwtError::Malformed("signature"))?;
        let message = &token.as_bytes()[..h.len() + 1 + p.len()];
        let ok = match (alg, key) {
            ("RS256", Key::Rsa { n, e }) => RsaPublicKeyComponents { n, e }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, message, &sig)
                .is_ok(),
            ("ES256", Key::P256(point)) => {
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, &sig)
                    .is_ok()
            }
            ("RS256" | "ES256", _) => false,
            (other, _) => return Err(JwtError::Algorithm(other.to_string())),
        };
        if !ok {
            return Err(JwtError::Signature);
        }
        let exp = claims.get("exp").and_then(Value::as_i64);
        match exp {
            Some(exp) if now <= exp + LEEWAY_SECS => {}
            Some(_) => return Err(JwtError::Expired),
            None => return Err(JwtError::Malformed("exp missing")),
        }
        if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64)
            && now + LEEWAY_SECS < nbf
        {
            return Err(JwtError::NotYet);
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == &self.audience,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&self.audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(JwtError::Audience);
        }
        let mut roles: Vec<Role> = claim_strings(claims.get(&self.roles_claim))
            .filter_map(|v| {
                if self.role_map.is_empty() {
                    Role::parse(v)
                } else {
                    self.role_map.get(v).copied()
                }
            })
            .collect();
        roles.sort();
        roles.dedup();
        if roles.is_empty() {
            return Err(JwtError::NoRole);
        }
        let name = claims
            .get(&self.name_claim)
            .and_then(Value::as_str)
            .ok_or(JwtError::Malformed("subject missing"))?;
        Ok(Principal {
            name: name.to_string(),
            roles,
            via: format!("oidc:{}", self.issuer),
        })
    }
}

fn decode_json(part: &str) -> Option<Value> {
    serde_json::from_slice(&b64(part).ok()?).ok()
}

/// A claim as strings: an array of strings, or one string of space-separated values.
fn claim_strings(v: Option<&Value>) -> Box<dyn Iterator<Item = &str> + '_> {
    match v {
        Some(Value::Array(a)) => Box::new(a.iter().filter_map(Value::as_str)),
        Some(Value::String(s)) => Box::new(s.split_whitespace()),
        _ => Box::new(std::iter::empty()),
    }
}

/// Whether a bearer value has a JWT's shape (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("ey")
}
