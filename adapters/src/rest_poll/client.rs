//! The REST polling client: one page fetch per call, with or without retries.
//!
//! Contract: [`RestPollClient::fetch`] makes one attempt (after the rate limit and, for
//! OAuth 2.0, a token when none is cached; a `401` with a cached token gets one fresh token
//! and one more try). [`RestPollClient::fetch_with_retry`] retries transient failures —
//! timeouts, transport errors, `408`, `429`, `5xx`, a page that is not JSON or lacks its
//! records array — with jittered exponential backoff that never undercuts a `Retry-After`
//! (capped at 5 minutes), up to `max_attempts`; any other `4xx` is permanent and returned
//! at once. Redirects are not followed (credentials must not travel elsewhere).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, LINK};
use serde_json::Value;

use super::auth::{Auth, apply_tls, read_limited};
use super::config::{PaginationConfig, RestPollConfig};
use super::error::RestPollError;
use super::pagination::{CursorValue, Page, PageRequest, Pass, RawPage, next_link};
use super::path::JsonPath;
use super::rate_limit::RateLimiter;
use crate::crm::rest::service::{MAX_RETRY_AFTER, error_chain, parse_retry_after};

/// A client of one upstream collection.
#[derive(Clone)]
pub struct RestPollClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    cfg: RestPollConfig,
    collection: reqwest::Url,
    auth: Auth,
    limiter: Option<RateLimiter>,
    records_path: JsonPath,
    cursor_field: JsonPath,
    next_path: Option<JsonPath>,
}

impl std::fmt::Debug for RestPollClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestPollClient")
            .field("collection", &self.inner.collection.as_str())
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl RestPollClient {
    /// Validates `cfg`, resolves its secrets with `resolve`, reads its TLS files (relative
    /// to `base_dir`) and builds the HTTP client.
    pub fn new(
        cfg: RestPollConfig,
        base_dir: &Path,
        resolve: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<Self, RestPollError> {
        cfg.validate()?;
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!(
                "integration-hub-rest-poll/",
                env!("CARGO_PKG_VERSION")
            ));
        if let Some(tls) = &cfg.tls {
            builder = apply_tls(builder, tls, base_dir)?;
        }
        let http = builder.build().map_err(|e| RestPollError::Client {
            reason: error_chain(&e),
        })?;
        let collection = collection_url(&cfg)?;
        let auth = Auth::new(&cfg.auth, resolve)?;
        let config_err = |field: &str, reason: String| RestPollError::Config {
            field: field.to_string(),
            reason,
        };
        let records_path =
            JsonPath::parse(&cfg.records_path).map_err(|e| config_err("records_path", e))?;
        let cursor_field =
            JsonPath::parse(&cfg.cursor.field).map_err(|e| config_err("cursor.field", e))?;
        let next_path = match &cfg.pagination {
            PaginationConfig::CursorToken { next_path, .. } => Some(
                JsonPath::parse(next_path).map_err(|e| config_err("pagination.next_path", e))?,
            ),
            _ => None,
        };
        Ok(RestPollClient {
            inner: Arc::new(Inner {
                http,
                limiter: RateLimiter::new(cfg.rate_limit_per_sec),
                cfg,
                collection,
                auth,
                records_path,
                cursor_field,
                next_path,
            }),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &RestPollConfig {
        &self.inner.cfg
    }

    /// The cursor a source starts from when it has none persisted.
    pub fn initial_cursor(&self) -> Result<CursorValue, RestPollError> {
        let c = &self.inner.cfg.cursor;
        match &c.initial {
            Some(text) => {
                CursorValue::parse(c.kind, text).map_err(|reason| RestPollError::Config {
                    field: "cursor.initial".into(),
                    reason,
                })
            }
            None => Ok(CursorValue::origin(c.kind)),
        }
    }

    /// A new pass starting at `start`.
    pub fn pass(&self, start: CursorValue) -> Pass {
        let cfg = &self.inner.cfg;
        Pass::new(
            cfg.cursor.kind,
            cfg.pagination.clone(),
            self.inner.cursor_field.clone(),
            start,
        )
    }

    /// The URL of a page request.
    pub fn url_of(&self, request: &PageRequest) -> reqwest::Url {
        match request {
            PageRequest::Url(u) => u.clone(),
            PageRequest::Query(params) => {
                let mut url = self.inner.collection.clone();
                {
                    let mut pairs = url.query_pairs_mut();
                    for (k, v) in &self.inner.cfg.query {
                        pairs.append_pair(k, v);
                    }
                    for (k, v) in params {
                        pairs.append_pair(k, v);
                    }
                }
                url
            }
        }
    }

    /// One attempt at page `page` (its number in the pass, for error messages).
    pub async fn fetch(&self, request: &PageRequest, page: u64) -> Result<RawPage, RestPollError> {
        let url = self.url_of(request);
        let response = match self.send(&url, page).await? {
            (r, true) if r.status() == StatusCode::UNAUTHORIZED => {
                // A cached token the upstream no longer accepts (revoked, clock skew): one
                // fresh token, one more try.
                if self.inner.auth.invalidate().await {
                    self.send(&url, page).await?.0
                } else {
                    r
                }
            }
            (r, _) => r,
        };
        let status = response.status();
        if !status.is_success() {
            return Err(RestPollError::Status {
                page,
                status: status.as_u16(),
                retry_after: parse_retry_after(response.headers()),
            });
        }
        let link = match response.headers().get(LINK).and_then(|v| v.to_str().ok()) {
            Some(h) => next_link(h),
            None => None,
        };
        let bytes = read_limited(response, self.inner.cfg.max_page_bytes)
            .await
            .map_err(|reason| {
                if reason.starts_with("answer larger") {
                    RestPollError::BadPage { page, reason }
                } else {
                    RestPollError::Transport { page, reason }
                }
            })?;
        self.parse_page(&bytes, &url, link.as_deref(), page)
    }

    /// Sends one GET; the flag says whether a cached credential that may be stale was used.
    async fn send(
        &self,
        url: &reqwest::Url,
        page: u64,
    ) -> Result<(reqwest::Response, bool), RestPollError> {
        let inner = &self.inner;
        let auth = inner
            .auth
            .header(&inner.http, inner.limiter.as_ref())
            .await?;
        if let Some(l) = &inner.limiter {
            l.acquire().await;
        }
        let mut request = inner
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json");
        let refreshable = matches!(inner.auth, Auth::OAuth2(_));
        if let Some((name, value)) = auth {
            request = request.header(name, value);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                RestPollError::Timeout {
                    page,
                    timeout_ms: inner.cfg.timeout_ms,
                }
            } else {
                let e = e.without_url();
                RestPollError::Transport {
                    page,
                    reason: error_chain(&e),
                }
            }
        })?;
        Ok((response, refreshable))
    }

    fn parse_page(
        &self,
        bytes: &[u8],
        url: &reqwest::Url,
        link: Option<&str>,
        page: u64,
    ) -> Result<RawPage, RestPollError> {
        let bad = |reason: String| RestPollError::BadPage { page, reason };
        let mut body: Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ))
        })?;
        let next_token = match &self.inner.next_path {
            Some(p) => match p.find(&body) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) if s.is_empty() => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(_) => {
                    return Err(bad(format!(
                        "next-page token at `{p}` is neither a string nor a number"
                    )));
                }
            },
            None => None,
        };
        let next_link = match link {
            Some(target) => Some(self.resolve_link(url, target).map_err(bad)?),
            None => None,
        };
        let records = match self.inner.records_path.take(&mut body) {
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(bad(format!(
                    "`{}` is not an array of records",
                    self.inner.records_path
                )));
            }
            None => {
                return Err(bad(format!(
                    "no records array at `{}`",
                    self.inner.records_path
                )));
            }
        };
        Ok(RawPage {
            records,
            next_token,
            next_link,
        })
    }

    /// A `rel="next"` target, resolved against the request; it must stay on the upstream's
    /// origin, since the credentials go with it.
    pub(crate) fn resolve_link(
        &self,
        url: &reqwest::Url,
        target: &str,
    ) -> Result<reqwest::Url, String> {
        let next = url
            .join(target)
            .map_err(|e| format!("the Link header's next URL is not a URL: {e}"))?;
        let base = &self.inner.collection;
        if next.scheme() != base.scheme()
            || next.host_str() != base.host_str()
            || next.port_or_known_default() != base.port_or_known_default()
        {
            return Err("the Link header's next URL leaves the upstream's origin".into());
        }
        Ok(next)
    }

    /// Fetches a page, retrying transient failures (see the module documentation). Returns
    /// the page and the number of attempts made; or, as [`RestPollError::Attempts`], the
    /// first permanent error or the last transient one.
    pub async fn fetch_with_retry(
        &self,
        request: &PageRequest,
        page: u64,
    ) -> Result<(RawPage, u32), RestPollError> {
        let attempts = AtomicU32::new(0);
        let counter = &attempts;
        let cfg = &self.inner.cfg;
        let result = (|| async move {
            counter.fetch_add(1, Ordering::Relaxed);
            self.fetch(request, page).await
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(RestPollError::is_transient)
        .adjust(|err, next| {
            next.map(|delay| match err.retry_after() {
                Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
                None => delay,
            })
        })
        .notify(|err, delay| {
            tracing::warn!(
                page,
                attempt = counter.load(Ordering::Relaxed),
                max_attempts = cfg.max_attempts,
                status = err.status(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "page fetch failed, retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        match result {
            Ok(p) => Ok((p, made)),
            Err(err) => Err(RestPollError::Attempts {
                attempts: made,
                last: Box::new(err),
            }),
        }
    }

    /// Fetches the next page of `pass` (with retries) and moves the pass past it. An error
    /// ends the pass: its cursor must not be persisted beyond the last page returned.
    pub async fn next_page(&self, pass: &mut Pass) -> Result<(Page, u32), RestPollError> {
        let request = pass.request(&self.inner.cfg.cursor.param);
        let (raw, attempts) = self.fetch_with_retry(&request, pass.next_number()).await?;
        Ok((pass.advance(raw)?, attempts))
    }

    fn backoff(&self) -> ExponentialBuilder {
        let cfg = &self.inner.cfg;
        crate::transport::backoff(
            std::time::Duration::from_millis(cfg.initial_backoff_ms),
            std::time::Duration::from_millis(cfg.max_backoff_ms),
            cfg.max_attempts,
        )
    }
}

/// `base_url` joined with `path` (a base with a path of its own keeps it).
fn collection_url(cfg: &RestPollConfig) -> Result<reqwest::Url, RestPollError> {
    let joined = format!("{}{}", cfg.base_url.trim_end_matches('/'), cfg.path);
    let mut url = reqwest::Url::parse(&joined).map_err(|e| RestPollError::Config {
        field: "path".into(),
        reason: format!("base_url + path is not a URL: {e}"),
    })?;
    // Query parameters of base_url are kept; ours are appended after them.
    if url.query() == Some("") {
        url.set_query(None);
    }
    Ok(url)
}
