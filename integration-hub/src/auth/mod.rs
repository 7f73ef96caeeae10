//! Who may call the API: callers authenticate with an API token (the hub keeps only its
//! SHA-256) or a JWT from a configured OIDC issuer; each caller has roles, and every route
//! names the roles it admits (in its [`crate::api_doc::Endpoint`]), so the route table is
//! also the authorisation matrix.
//!
//! - `operator`: runs the hub — pipelines, dead letters, golden records one at a time.
//! - `compliance`: screening cases, decisions, alerts; nobody else but auditors sees them.
//! - `auditor`: reads — the audit log, compliance results, counts; changes nothing.
//! - `admin`: configuration-level actions — data-steward merges and unmerges, dead letters.
//!
//! A layer in front of every route authenticates the request once ([`protect`]); each
//! route's own layer then admits or refuses the caller ([`authorize`]) and counts reads of
//! personal data per caller ([`reads`]), raising an alarm when one caller reads unusually
//! many records.

pub mod jwt;
pub mod reads;
pub mod section;
pub mod tokens;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::api_doc::{Access, Endpoint};
use crate::http::json_error;

/// A caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Operator,
    Compliance,
    Auditor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Operator, Role::Compliance, Role::Auditor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Compliance => "compliance",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name or the JWT's subject; appears in the audit log and in metrics.
    pub name: String,
    pub roles: Vec<Role>,
    /// `token` or `oidc:<issuer>`.
    pub via: String,
}

impl Principal {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

/// What the front layer found out about a request.
#[derive(Debug, Clone)]
pub enum Authn {
    /// No `Authorization` header.
    Anonymous,
    Principal(Principal),
    /// Credentials were presented and refused, with the reason (never the credential).
    Refused(String),
}

/// The credentials the hub accepts.
#[derive(Default)]
pub struct Auth {
    /// SHA-256 of each token → its caller.
    tokens: HashMap<[u8; 32], Principal>,
    issuers: Vec<jwt::Issuer>,
    reads: reads::ReadWatch,
}

impl Auth {
    /// Accepts `token` for a caller named `name` with `roles` (tests, and the per-module
    /// tokens of earlier configs).
    pub fn with_token(mut self, token: &str, name: &str, roles: &[Role]) -> Auth {
        let p = self
            .tokens
            .entry(tokens::digest(token))
            .or_insert_with(|| Principal {
                name: name.to_string(),
                roles: Vec::new(),
                via: "token".into(),
            });
        for r in roles {
            if !p.roles.contains(r) {
                p.roles.push(*r);
            }
        }
        p.roles.sort();
        self
    }

    /// Accepts a token known only by its SHA-256.
    pub fn with_token_digest(mut self, digest: [u8; 32], name: &str, roles: &[Role]) -> Auth {
        self.tokens.insert(
            digest,
            Principal {
                name: name.to_string(),
                roles: roles.to_vec(),
                via: "token".into(),
            },
        );
        self
    }

    pub fn with_issuer(mut self, issuer: jwt::Issuer) -> Auth {
        self.issuers.push(issuer);
        self
    }

    pub fn with_read_limit(mut self, limit: u32, window: std::time::Duration) -> Auth {
        self.reads = reads::ReadWatch::new(limit, window);
        self
    }

    /// The read counter (tests and metrics).
    pub fn reads(&self) -> &reads::ReadWatch {
        &self.reads
    }

    /// Finds the caller of a request from its `Authorization: Bearer` header: a known
    /// token, else a JWT of a configured issuer.
    pub fn authenticate(&self, headers: &HeaderMap) -> Authn {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Authn::Anonymous;
        };
        let Some(given) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
            return Authn::Refused("the Authorization header must be `Bearer <token>`".into());
        };
        let given = given.trim();
        // The digest of a token is compared, not the token: lookup time does not depend on
        // how much of a guessed token is right.
        if let Some(p) = self.tokens.get(&tokens::digest(given)) {
            return Authn::Principal(p.clone());
        }
        if jwt::looks_like_jwt(given) && !self.issuers.is_empty() {
            let now = chrono::Utc::now().timestamp();
            let mut last = String::from("no issuer accepted the token");
            for issuer in &self.issuers {
                match issuer.verify(given, now) {
                    Ok(p) => return Authn::Principal(p),
                    Err(jwt::JwtError::OtherIssuer) => {}
                    Err(e) => last = e.to_string(),
                }
            }
            return Authn::Refused(last);
        }
        Authn::Refused("unknown token".into())
    }
}

/// Authenticates every request to `router` with `auth`; each route then admits or refuses
/// the caller by its roles.
pub fn protect(router: Router, auth: Arc<Auth>) -> Router {
    router.layer(axum::middleware::from_fn(
        move |mut req: Request, next: Next| {
            let auth = auth.clone();
            async move {
                let authn = auth.authenticate(req.headers());
                req.extensions_mut().insert(authn);
                req.extensions_mut().insert(auth);
                next.run(req).await
            }
        },
    ))
}

/// The route layer of `ep`: admits callers whose roles the endpoint lists; counts reads of
/// personal data.
pub async fn authorize(ep: &'static Endpoint, req: Request, next: Next) -> Response {
    let roles = match ep.access {
        Access::Public | Access::WebhookSignature => return next.run(req).await,
        Access::Roles(roles) => roles,
    };
    let action = format!("{} {}", ep.method.to_uppercase(), ep.path);
    let target = req.uri().path().to_string();
    let principal = match req.extensions().get::<Authn>() {
        Some(Authn::Principal(p)) => p.clone(),
        Some(Authn::Refused(why)) => {
            refused(ep.path, "unauthenticated");
            crate::audit::record("unknown", &action, &target, "401", why);
            return json_error(StatusCode::UNAUTHORIZED, why);
        }
        Some(Authn::Anonymous) | None => {
            refused(ep.path, "unauthenticated");
            crate::audit::record("anonymous", &action, &target, "401", "no credential");
            return json_error(
                StatusCode::UNAUTHORIZED,
                "a bearer token (API token or OIDC JWT) is required",
            );
        }
    };
    if !principal.has_any(roles) {
        refused(ep.path, "forbidden");
        crate::audit::record(
            &principal.name,
            &action,
            &target,
            "403",
            "role not admitted",
        );
        let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        return json_error(
            StatusCode::FORBIDDEN,
            &format!("this route is for the roles {}", names.join(", ")),
        );
    }
    let auth = req.extensions().get::<Arc<Auth>>().cloned();
    let mut req = req;
    req.extensions_mut().insert(principal.clone());
    let res = next.run(req).await;
    // Every change, and every read of personal data, is written down with its outcome.
    if ep.method != "get" || ep.personal_data {
        crate::audit::record(
            &principal.name,
            &action,
            &target,
            res.status().as_str(),
            &principal.via,
        );
    }
    if ep.personal_data
        && res.status().is_success()
        && let Some(auth) = auth
    {
        auth.reads.record(&principal.name);
    }
    res.into_response()
}

/// Counts a refused call (`hub_api_refused_total`) and logs it without the credential.
fn refused(path: &'static str, why: &'static str) {
    metrics::counter!("hub_api_refused_total", "route" => path, "reason" => why).increment(1);
    tracing::warn!(
        event = "api_refused",
        route = path,
        reason = why,
        "api call refused"
    );
}

#[cfg(test)]
mod tests;
