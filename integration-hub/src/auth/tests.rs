use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use super::jwt::{Issuer, JwtError};
use super::*;

/// A 2048-bit RSA key made for these tests only (PKCS#8, DER, base64).
const TEST_RSA_PKCS8: &str = "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQC6d8msx0YuI8QNvD+xRDbEo5LDg9LL8w7vmOvJTNQ0l+nrkEnuMDI+AUjUtVIED4B3d/VcFsU61ohKQEPAHBNEScvA9wVbFWc2U9VZvFH6tp7XMiCAPps8FXdrGnE1RbeD9x9gHhwAiytPgBMMIQXH6kENcdzo7jnPhsXo3dpYJTJxzRwOZ6iloJJ/AuNVOXW8Bk14/5m3ETaXqOUWRW/05s2m8mQ7lG1gllc+keYJC1E0JfBzTQPY8rVPef+ubE3DjgwuHyYB0Fj5nAJ1vra/QZoDnWYpjxjWYrQEj49GGKTKUT2JLvgHXFgrsxV5spjPj68bKytMQNIbCXJTz7PVAgMBAAECggEAGXzSJjm+0AO3gqEem55VVh99qhfUsmfwvLNMV2GXB/FT2g0I7fPMikkmqVx3b3Km/q147jN2lgpI6s1J9XJg986WeTPKmZ6dUwG2geOJ2RkpMQT7CEyGb3oHrq4Yl02GPhWDRmIXNcPQEbfR4rCI18CfT7UmmvglEsa7Oo9Ijw+aFVDjabupghGxBVI/6t0qA+kaVtl+SokGYh8LYRWjpScoytk0wO/WMWaMvn/0YlmjRpE3S9yZethegNsbbdsb9iKdHDrAHEhZuEkiyw4hwZitm6ISeyWNqT2xIRdPUDxWSprD1QD2uKHlklzEIIAsDnvfs3HlAZC2YkBpDu8U6QKBgQD/gXTpnMEditNRvgnmVUGMXYRg3ZofqMX5lWU5igDELVgjSvbMIjCCTgMNISCXk3yfqFUgAYG/2S8HfvBWt2rUuT29aHVOAD0l0tAacQOrAspXtmbmrc04+rPI+MyqhoI2+nmOPuByjZJnobThVivg6lAjnsfoLflpv12E29MzwwKBgQC61COX0fv0nyPQA5RqiQ3G7kdyaOAoQ+znwc8k4rcwpMifcT6mJ8bShHcbj3K1ybCY9qAfHfMfNOxkcu2PVOWkq+7vpB35aaRnUQKSy0NIGayboH9s334t2lR8xTf+bJuO0ifckGn2xQuMZR4yY02pPrLhLn8G5EYm1Ih0JWR4hwKBgG5X6zTEpMXsYWzI5J+brC5BaN0odto7Whx6f3fE+KXAa3L6efEYxthPdpPh/aBYapbM7M5guDcxRVU4ZfUdSz7JLTeyeA6SndXK4GK68fmVv+r3dCMlZh64bpJZmJIAexXhQEPFNctjBppIxMQYIeUFbEyl0vGbgT5BDdNF2EVfAoGAUogaPRwW+IZAlMiwDKwEuQdT6penxkHTasH0FvBMSqHQupaVPWM+8opv723cF7BEYh44t+ZMG1IOx4T5qqKvW6JUR+qxDxf692UTBPPkAfrNhGZPRDIqlGjpf8DDrpId2ea+kzH8jXWYV2noAAxcJ1K6RL18gfffgZHLwbsu+gsCgYB2lnSAod1e4hixdfM3KeNhj3GTDEmIOTs5s6Gma2DhKu/uuam0LqgBmxN/2CDf1cx46NKtkH3lPEa74sTxZMcp3wUB8PMLs2gm3kopxhr35lHJXatW2D1uZTyuhNQJJxb/+GFSw40iJXoSXjD249v1bPZRGaTndASR1fqO+/Gw9g==";

const ISS: &str = "https://sso.bank.example/realms/crm";

fn b64(v: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(v)
}

fn rsa() -> RsaKeyPair {
    RsaKeyPair::from_pkcs8(&STANDARD.decode(TEST_RSA_PKCS8).unwrap()).unwrap()
}

fn ec() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let der =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        der.as_ref(),
        &rng,
    )
    .unwrap()
}

fn jwks(rsa: &RsaKeyPair, ec: &EcdsaKeyPair) -> String {
    let p = ec.public_key().as_ref();
    let c: signature::RsaPublicKeyComponents<Vec<u8>> = rsa.public().into();
    json!({ "keys": [
        { "kty": "RSA", "kid": "r1", "n": b64(&c.n), "e": b64(&c.e) },
        { "kty": "EC", "crv": "P-256", "kid": "e1", "x": b64(&p[1..33]), "y": b64(&p[33..65]) },
        { "kty": "oct", "kid": "ignored", "k": "c2VjcmV0" },
    ]})
    .to_string()
}

fn sign(alg: &str, kid: &str, claims: &Value, rsa: &RsaKeyPair, ec: &EcdsaKeyPair) -> String {
    let head = b64(json!({ "alg": alg, "kid": kid, "typ": "JWT" })
        .to_string()
        .as_bytes());
    let body = b64(claims.to_string().as_bytes());
    let msg = format!("{head}.{body}");
    let rng = SystemRandom::new();
    let sig = match alg {
        "RS256" => {
            let mut sig = vec![0u8; rsa.public().modulus_len()];
            rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, msg.as_bytes(), &mut sig)
                .unwrap();
            sig
        }
        _ => ec.sign(&rng, msg.as_bytes()).unwrap().as_ref().to_vec(),
    };
    format!("{msg}.{}", b64(&sig))
}

fn claims(now: i64) -> Value {
    json!({ "iss": ISS, "aud": ["integration-hub"], "sub": "a.petrova",
            "exp": now + 300, "iat": now, "roles": ["operator", "unrelated"] })
}

#[test]
fn rs256_and_es256_tokens_of_the_issuer_are_accepted_with_their_roles() {
    let (rsa, ec) = (rsa(), ec());
    let issuer = Issuer::new(
        ISS,
        "integration-hub",
        &jwks(&rsa, &ec),
        "roles",
        "sub",
        BTreeMap::new(),
    )
    .unwrap();
    let now = 1_800_000_000;
    for (alg, kid) in [("RS256", "r1"), ("ES256", "e1")] {
        let p = issuer
            .verify(&sign(alg, kid, &claims(now), &rsa, &ec), now)
            .unwrap();
        assert_eq!(p.name, "a.petrova");
        assert_eq!(p.roles, vec![Role::Operator]);
        assert_eq!(p.via, format!("oidc:{ISS}"));
    }
}

#[test]
fn forged_expired_foreign_and_unsigned_tokens_are_refused() {
    let (rsa, ec) = (rsa(), ec());
    let issuer = Issuer::new(
        ISS,
        "integration-hub",
        &jwks(&rsa, &ec),
        "roles",
        "sub",
        BTreeMap::new(),
    )
    .unwrap();
    let now = 1_800_000_000;
    let good = sign("ES256", "e1", &claims(now), &rsa, &ec);

    // A changed claim breaks the signature.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut c = claims(now);
    c["roles"] = json!(["admin"]);
    parts[1] = b64(c.to_string().as_bytes());
    assert_eq!(
        issuer.verify(&parts.join("."), now),
        Err(JwtError::Signature)
    );

    // Signed by another key under the same kid.
    let other = sign("ES256", "e1", &claims(now), &rsa, &super::tests::ec());
    assert_eq!(issuer.verify(&other, now), Err(JwtError::Signature));

    assert_eq!(issuer.verify(&good, now + 300 + 61), Err(JwtError::Expired));
    let mut c = claims(now);
    c["nbf"] = json!(now + 600);
    assert_eq!(
        issuer.verify(&sign("RS256", "r1", &c, &rsa, &ec), now),
        Err(JwtError::NotYet)
    );
    let mut c = claims(now);
    c["aud"] = json!("another-app");
    assert_eq!(
        issuer.verify(&sign("RS256", "r1", &c, &rsa, &ec), now),
        Err(JwtError::Audience)
    );
    let mut c = claims(now);
    c["iss"] = json!("https://elsewhere.example");
    assert_eq!(
        issuer.verify(&sign("RS256", "r1", &c, &rsa, &ec), now),
        Err(JwtError::OtherIssuer)
    );
    let mut c = claims(now);
    c["roles"] = json!(["unrelated"]);
    assert_eq!(
        issuer.verify(&sign("RS256", "r1", &c, &rsa, &ec), now),
        Err(JwtError::NoRole)
    );
    assert_eq!(
        issuer.verify(&sign("RS256", "zz", &claims(now), &rsa, &ec), now),
        Err(JwtError::UnknownKey("zz".into()))
    );
    // alg=none, and an RS256 header over an EC key.
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"e1"}"#),
        b64(claims(now).to_string().as_bytes())
    );
    assert!(matches!(
        issuer.verify(&none, now),
        Err(JwtError::Malformed(_)) | Err(JwtError::Algorithm(_))
    ));
    let mixed = sign("ES256", "e1", &claims(now), &rsa, &ec).replacen(
        &b64(json!({ "alg": "ES256", "kid": "e1", "typ": "JWT" })
            .to_string()
            .as_bytes()),
        &b64(json!({ "alg": "RS256", "kid": "e1", "typ": "JWT" })
            .to_string()
            .as_bytes()),
        1,
    );
    assert_eq!(issuer.verify(&mixed, now), Err(JwtError::Signature));
}

#[test]
fn a_role_map_translates_group_names() {
    let (rsa, ec) = (rsa(), ec());
    let map = BTreeMap::from([("aml-officers".to_string(), Role::Compliance)]);
    let issuer = Issuer::new(
        ISS,
        "integration-hub",
        &jwks(&rsa, &ec),
        "groups",
        "sub",
        map,
    )
    .unwrap();
    let now = 1_800_000_000;
    let mut c = claims(now);
    c["groups"] = json!("staff aml-officers");
    let p = issuer
        .verify(&sign("RS256", "r1", &c, &rsa, &ec), now)
        .unwrap();
    assert_eq!(p.roles, vec![Role::Compliance]);
}

#[test]
fn tokens_are_known_by_digest_and_roles_of_one_token_add_up() {
    let auth = Auth::default()
        .with_token("t-1", "ops", &[Role::Operator])
        .with_token("t-1", "ops", &[Role::Auditor]);
    let mut h = HeaderMap::new();
    assert!(matches!(auth.authenticate(&h), Authn::Anonymous));
    h.insert(header::AUTHORIZATION, "Bearer t-1".parse().unwrap());
    match auth.authenticate(&h) {
        Authn::Principal(p) => assert_eq!(p.roles, vec![Role::Operator, Role::Auditor]),
        other => panic!("{other:?}"),
    }
    h.insert(header::AUTHORIZATION, "Bearer t-2".parse().unwrap());
    assert!(matches!(auth.authenticate(&h), Authn::Refused(_)));
    h.insert(header::AUTHORIZATION, "Basic dDox".parse().unwrap());
    assert!(matches!(auth.authenticate(&h), Authn::Refused(_)));
}
