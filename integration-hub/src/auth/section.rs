//! `[auth]`: API tokens (by SHA-256), OIDC issuers and the mass-read limit.
//!
//! ```toml
//! [auth]
//! mass_read_limit = 200        # personal records one caller may read ...
//! mass_read_window_secs = 600  # ... in this many seconds before an alarm
//!
//! [[auth.tokens]]              # made by `hub auth token --name ops-robot --role operator`
//! name = "ops-robot"
//! roles = ["operator"]
//! sha256 = "9f86d08..."
//!
//! [[auth.oidc]]
//! issuer = "https://sso.bank.example/realms/crm"
//! audience = "integration-hub"
//! jwks = "file:keys/sso-jwks.json"  # a reference, like every secret
//! roles_claim = "roles"             # default
//! name_claim = "sub"                # default
//! role_map = { "hub-operators" = "operator", "aml-officers" = "compliance" }
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::{Auth, Role, jwt, tokens};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
    #[serde(default)]
    pub oidc: Vec<OidcIssuer>,
    #[serde(default = "default_limit")]
    pub mass_read_limit: u32,
    #[serde(default = "default_window")]
    pub mass_read_window_secs: u64,
}

fn default_limit() -> u32 {
    super::reads::DEFAULT_LIMIT
}

fn default_window() -> u64 {
    super::reads::DEFAULT_WINDOW.as_secs()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub roles: Vec<Role>,
    /// SHA-256 of the token in hex; the token itself is never in the config.
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    pub issuer: String,
    pub audience: String,
    /// The issuer's JSON Web Key Set, by reference (`file:` or `env:`).
    pub jwks: String,
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    #[serde(default = "default_name_claim")]
    pub name_claim: String,
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
}

fn default_roles_claim() -> String {
    "roles".into()
}

fn default_name_claim() -> String {
    "sub".into()
}

impl AuthSection {
    /// Problems `hub validate` reports, as (field path, message).
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, t) in self.tokens.iter().enumerate() {
            let at = format!("auth.tokens[{i}]");
            if t.name.trim().is_empty() {
                out.push((format!("{at}.name"), "must not be empty".into()));
            } else if !names.insert(t.name.clone()) {
                out.push((format!("{at}.name"), format!("`{}` is used twice", t.name)));
            }
            if t.roles.is_empty() {
                out.push((format!("{at}.roles"), "name at least one role".into()));
            }
            if let Err(e) = tokens::parse_digest(&t.sha256) {
                out.push((format!("{at}.sha256"), e));
            }
        }
        for (i, o) in self.oidc.iter().enumerate() {
            let at = format!("auth.oidc[{i}]");
            if !o.issuer.starts_with("https://") {
                out.push((
                    format!("{at}.issuer"),
                    "an issuer is an https:// URL".into(),
                ));
            }
            if o.audience.trim().is_empty() {
                out.push((format!("{at}.audience"), "must not be empty".into()));
            }
            if let Err(e) = crate::config::SecretRef::parse(&o.jwks) {
                out.push((format!("{at}.jwks"), e));
            }
        }
        if self.mass_read_limit == 0 || self.mass_read_window_secs == 0 {
            out.push((
                "auth.mass_read_limit".into(),
                "the limit and its window must be positive".into(),
            ));
        }
        out
    }

    /// The credentials of this section; key sets are read now.
    pub fn build(&self, base_dir: &Path) -> anyhow::Result<Auth> {
        let mut auth = Auth::default().with_read_limit(
            self.mass_read_limit,
            Duration::from_secs(self.mass_read_window_secs),
        );
        for t in &self.tokens {
            let digest = tokens::parse_digest(&t.sha256)
                .map_err(|e| anyhow::anyhow!("auth.tokens `{}`: {e}", t.name))?;
            auth = auth.with_token_digest(digest, &t.name, &t.roles);
        }
        for o in &self.oidc {
            let jwks = crate::config::resolve_secret(&o.jwks, base_dir)
                .map_err(|e| anyhow::anyhow!("auth.oidc `{}`: jwks: {e}", o.issuer))?;
            let issuer = jwt::Issuer::new(
                &o.issuer,
                &o.audience,
                &jwks,
                &o.roles_claim,
                &o.name_claim,
                o.role_map.clone(),
            )
            .map_err(|e| anyhow::anyhow!("auth.oidc `{}`: {e}", o.issuer))?;
            auth = auth.with_issuer(issuer);
        }
        Ok(auth)
    }
}
