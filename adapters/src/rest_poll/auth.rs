//! Credentials for the upstream: an API-key header, or an OAuth 2.0 client-credentials
//! token cached until shortly before it expires; and the TLS settings (custom CA bundle,
//! client certificate for mTLS) applied to the HTTP client.
//!
//! Contract: secrets are resolved once, when the client is built, and live only in header
//! values marked sensitive; no error or log line carries them. The token is fetched by one
//! caller at a time (others wait for it) and refreshed when less than a tenth of its
//! lifetime (at most 60 s) is left, or at once after the upstream refused it with `401`.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::config::{AuthConfig, TlsConfig};
use super::error::RestPollError;
use super::rate_limit::RateLimiter;
use crate::crm::rest::service::{MAX_RETRY_AFTER, error_chain, parse_retry_after};

/// Lifetime assumed for a token whose answer gives none.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
/// The largest token answer read.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// How requests are authenticated.
pub(crate) enum Auth {
    None,
    ApiKey {
        name: HeaderName,
        value: HeaderValue,
    },
    OAuth2(OAuth2),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::ApiKey { name, .. } => write!(f, "ApiKey({name}: <hidden>)"),
            Auth::OAuth2(o) => write!(f, "OAuth2({}, client {})", o.token_url, o.client_id),
        }
    }
}

/// The client-credentials grant and its cached token.
pub(crate) struct OAuth2 {
    token_url: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    cached: Mutex<Option<Token>>,
}

struct Token {
    header: HeaderValue,
    refresh_at: Instant,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct TokenError {
    #[serde(default)]
    error: Option<String>,
}

impl Auth {
    /// Builds the credentials of `cfg`, resolving secret references with `resolve`.
    pub(crate) fn new(
        cfg: &AuthConfig,
        resolve: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Auth, RestPollError> {
        let setup = |field: &str, reason: String| RestPollError::Setup {
            field: field.to_string(),
            reason,
        };
        match cfg {
            AuthConfig::None => Ok(Auth::None),
            AuthConfig::ApiKey { header, key } => {
                let name = HeaderName::from_bytes(header.as_bytes())
                    .map_err(|_| setup("auth.header", "not a valid header name".into()))?;
                let key = resolve(key).map_err(|e| setup("auth.key", e))?;
                let mut value = HeaderValue::from_str(&key).map_err(|_| {
                    setup(
                        "auth.key",
                        "the key cannot be put into a header (visible ASCII only)".into(),
                    )
                })?;
                value.set_sensitive(true);
                Ok(Auth::ApiKey { name, value })
            }
            AuthConfig::Oauth2 {
                token_url,
                client_id,
                client_secret,
                scope,
            } => Ok(Auth::OAuth2(OAuth2 {
                token_url: token_url.clone(),
                client_id: client_id.clone(),
                client_secret: resolve(client_secret)
                    .map_err(|e| setup("auth.client_secret", e))?,
                scope: scope.clone(),
                cached: Mutex::new(None),
            })),
        }
    }

    /// The header to send, fetching a token first when needed.
    pub(crate) async fn header(
        &self,
        http: &reqwest::Client,
        limiter: Option<&RateLimiter>,
    ) -> Result<Option<(HeaderName, HeaderValue)>, RestPollError> {
        match self {
            Auth::None => Ok(None),
            Auth::ApiKey { name, value } => Ok(Some((name.clone(), value.clone()))),
            Auth::OAuth2(o) => Ok(Some((
                reqwest::header::AUTHORIZATION,
                o.bearer(http, limiter).await?,
            ))),
        }
    }

    /// Forgets a token the upstream refused; true when there was one to forget (so a new
    /// one is worth a try).
    pub(crate) async fn invalidate(&self) -> bool {
        match self {
            Auth::OAuth2(o) => o.cached.lock().await.take().is_some(),
            _ => false,
        }
    }
}

impl OAuth2 {
    async fn bearer(
        &self,
        http: &reqwest::Client,
        limiter: Option<&RateLimiter>,
    ) -> Result<HeaderValue, RestPollError> {
        // Held across the token request: concurrent callers wait for one fetch.
        let mut cached = self.cached.lock().await;
        if let Some(t) = cached.as_ref()
            && Instant::now() < t.refresh_at
        {
            return Ok(t.header.clone());
        }
        let token = self.fetch(http, limiter).await?;
        let header = token.header.clone();
        *cached = Some(token);
        Ok(header)
    }

    async fn fetch(
        &self,
        http: &reqwest::Client,
        limiter: Option<&RateLimiter>,
    ) -> Result<Token, RestPollError> {
        let failed =
            |reason: String, transient: bool, retry_after: Option<Duration>| RestPollError::Token {
                reason,
                transient,
                retry_after,
            };
        if let Some(l) = limiter {
            l.acquire().await;
        }
        // Built in a block: the serializer is not `Send` and must not live across an await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        let started = Instant::now();
        // RFC 6749 2.3.1: the client id and secret, form-encoded, as HTTP Basic credentials.
        let id = form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect::<String>();
        let secret =
            form_urlencoded::byte_serialize(self.client_secret.as_bytes()).collect::<String>();
        let response = http
            .post(&self.token_url)
            .basic_auth(id, Some(secret))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let e = e.without_url();
                failed(error_chain(&e), true, None)
            })?;
        let status = response.status();
        let retry_after = parse_retry_after(response.headers()).map(|d| d.min(MAX_RETRY_AFTER));
        let bytes = read_limited(response, MAX_TOKEN_BYTES)
            .await
            .map_err(|reason| failed(reason, true, None))?;
        if !status.is_success() {
            let code = serde_json::from_slice::<TokenError>(&bytes)
                .ok()
                .and_then(|e| e.error)
                .filter(|c| crate::crm::rest::service::usable_code(c));
            let transient = super::error::transient_status(status.as_u16());
            return Err(failed(
                format!(
                    "token endpoint answered {}{}",
                    status.as_u16(),
                    code.map(|c| format!(" ({c})")).unwrap_or_default()
                ),
                transient,
                retry_after,
            ));
        }
        let answer: TokenAnswer = serde_json::from_slice(&bytes).map_err(|_| {
            failed(
                "token answer is not JSON with an access_token".into(),
                true,
                None,
            )
        })?;
        if let Some(kind) = &answer.token_type
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(failed(
                format!("token type `{kind}` is not supported (only bearer)"),
                false,
                None,
            ));
        }
        let lifetime = match &answer.expires_in {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(Duration::from_secs),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok().map(Duration::from_secs),
            _ => None,
        }
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let margin = (lifetime / 10).min(Duration::from_secs(60));
        let mut header = HeaderValue::from_str(&format!("Bearer {}", answer.access_token))
            .map_err(|_| {
                failed(
                    "the access token cannot be put into a header".into(),
                    false,
                    None,
                )
            })?;
        header.set_sensitive(true);
        tracing::debug!(
            token_url = %self.token_url,
            lifetime_secs = lifetime.as_secs(),
            "oauth2 token obtained"
        );
        Ok(Token {
            header,
            // Counted from when the request was sent: the token may be older than its answer.
            refresh_at: started + lifetime.saturating_sub(margin),
        })
    }
}

/// Reads a body of at most `max` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, String> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("answer larger than {max} bytes"));
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        let e = e.without_url();
        error_chain(&e)
    })? {
        if out.len() + chunk.len() > max {
            return Err(format!("answer larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Applies a CA bundle and a client certificate to `builder` through the shared client
/// TLS ([`crate::tls::ClientTls`]); `base_dir` anchors relative paths. A REST source's
/// `ca_file` is trusted *instead of* the system's store, as it always was here. The errors
/// name the field and the file.
pub fn apply_tls(
    builder: reqwest::ClientBuilder,
    tls: &TlsConfig,
    base_dir: &Path,
) -> Result<reqwest::ClientBuilder, RestPollError> {
    let mut shared = crate::tls::ClientTls {
        ca_only: tls.ca_file.is_some(),
        ca_file: tls.ca_file.clone(),
        client_cert: tls.client_cert.clone(),
        client_key: tls.client_key.clone(),
    };
    shared.resolve_paths(base_dir);
    shared.apply(builder).map_err(|e| RestPollError::Setup {
        field: if e.field == "tls.client_cert" && tls.client_key.is_none() {
            "tls".into()
        } else {
            e.field
        },
        reason: e.reason,
    })
}
