//! The AML screening provider client: one screening per call, retried inside.
//!
//! Contract: see the module documentation of [`crate::aml`]. The client is cheap to clone
//! and safe to share between tasks; TLS uses rustls with the ring provider, installed
//! process-wide on first construction unless another provider already was. Redirects are
//! not followed: a `POST` must not turn into a `GET`, nor the key travel elsewhere.

use std::sync::atomic::{AtomicU32, Ordering};

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::api::{ProviderMatch, ScreenRequest, error_code, parse_screen_response};
use super::config::AmlConfig;
use super::error::AmlError;
use crate::crm::rest::service::{MAX_RETRY_AFTER, error_chain, parse_retry_after};

/// The largest answer read; a screening result is a few kilobytes, so more is a fault.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// A client of the provider's screening API.
#[derive(Clone)]
pub struct AmlClient {
    http: reqwest::Client,
    screen_url: String,
    authorization: HeaderValue,
    cfg: AmlConfig,
}

impl std::fmt::Debug for AmlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmlClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl AmlClient {
    /// Validates the config and builds the HTTP client.
    pub fn new(cfg: AmlConfig) -> Result<Self, AmlError> {
        cfg.validate()?;
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("integration-hub-aml/", env!("CARGO_PKG_VERSION")));
        let http = cfg
            .tls
            .apply(builder)
            .map_err(|e| AmlError::Client {
                reason: e.to_string(),
            })?
            .build()
            .map_err(|e| AmlError::Client {
                reason: error_chain(&e),
            })?;
        let mut authorization =
            HeaderValue::from_str(&format!("Bearer {}", cfg.api_key)).map_err(|_| {
                AmlError::Config {
                    field: "api_key",
                    reason: "cannot be put into a header".to_owned(),
                }
            })?;
        authorization.set_sensitive(true);
        Ok(AmlClient {
            http,
            screen_url: format!("{}/v1/screen", cfg.base_url.trim_end_matches('/')),
            authorization,
            cfg,
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &AmlConfig {
        &self.cfg
    }

    /// The URL screenings are posted to.
    pub fn screen_url(&self) -> &str {
        &self.screen_url
    }

    /// Screens a subject, retrying transient failures with jittered exponential backoff
    /// that never undercuts a `Retry-After`. Returns the matches scored at least
    /// `min_score`, highest score first; or, as [`AmlError::Attempts`], the first permanent
    /// error or the last transient one once `max_attempts` attempts were made.
    pub async fn screen(&self, request: &ScreenRequest) -> Result<Vec<ProviderMatch>, AmlError> {
        self.screen_counted(request)
            .await
            .map(|(matches, _attempts)| matches)
    }

    /// [`AmlClient::screen`], also returning how many attempts it took.
    pub async fn screen_counted(
        &self,
        request: &ScreenRequest,
    ) -> Result<(Vec<ProviderMatch>, u32), AmlError> {
        // A request the provider can only reject is not sent, let alone retried.
        request.check()?;
        let attempts = AtomicU32::new(0);
        let counter = &attempts;
        let reference = request.reference.as_str();
        let result = (|| async move {
            counter.fetch_add(1, Ordering::Relaxed);
            self.screen_once(request).await
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(AmlError::is_transient)
        .adjust(|err, next| {
            next.map(|delay| match err.retry_after() {
                Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
                None => delay,
            })
        })
        .notify(|err, delay| {
            tracing::warn!(
                reference,
                attempt = counter.load(Ordering::Relaxed),
                max_attempts = self.cfg.max_attempts,
                status = err.status(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "aml screening failed, retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        match result {
            Ok(matches) => Ok((matches, made)),
            Err(err) => {
                tracing::warn!(
                    reference,
                    attempts = made,
                    transient = err.is_transient(),
                    auth = err.is_auth(),
                    status = err.status(),
                    error = %err,
                    "aml screening gave up"
                );
                Err(AmlError::Attempts {
                    attempts: made,
                    last: Box::new(err),
                })
            }
        }
    }

    /// One attempt, without retries.
    pub async fn screen_once(
        &self,
        request: &ScreenRequest,
    ) -> Result<Vec<ProviderMatch>, AmlError> {
        request.check()?;
        let reference = request.reference.as_str();
        let body = serde_json::to_vec(request).map_err(|e| AmlError::Request {
            reference: reference.to_owned(),
            reason: format!("cannot encode the body: {:?}", e.classify()),
        })?;
        let mut response = self
            .http
            .post(&self.screen_url)
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, self.authorization.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e, reference))?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        if !response.status().is_success() {
            // The status decides; a body that cannot be read only costs the error code.
            let code = self
                .read_body(&mut response, status, reference)
                .await
                .ok()
                .and_then(|bytes| error_code(&bytes));
            return Err(AmlError::Status {
                status,
                code,
                retry_after,
                reference: reference.to_owned(),
            });
        }
        let bytes = self.read_body(&mut response, status, reference).await?;
        let mut matches =
            parse_screen_response(&bytes, reference).map_err(|reason| AmlError::BadResponse {
                status,
                reference: reference.to_owned(),
                reason,
            })?;
        matches.retain(|m| m.score >= self.cfg.min_score);
        // Stable: equal scores keep the provider's order.
        matches.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(matches)
    }

    /// The whole body, refusing one larger than [`MAX_RESPONSE_BYTES`] without buffering it.
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        status: u16,
        reference: &str,
    ) -> Result<Vec<u8>, AmlError> {
        let too_large = || AmlError::BadResponse {
            status,
            reference: reference.to_owned(),
            reason: format!("the body is larger than {MAX_RESPONSE_BYTES} bytes"),
        };
        let announced = response.content_length().unwrap_or(0);
        if usize::try_from(announced)
            .ok()
            .is_none_or(|n| n > MAX_RESPONSE_BYTES)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e, reference))?
        {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn backoff(&self) -> ExponentialBuilder {
        crate::transport::backoff(
            self.cfg.initial_backoff(),
            self.cfg.max_backoff(),
            self.cfg.max_attempts,
        )
    }

    fn transport_error(&self, e: reqwest::Error, reference: &str) -> AmlError {
        use crate::transport::Failure;
        let reference = reference.to_owned();
        match crate::transport::classify(e) {
            Failure::Timeout => AmlError::Timeout {
                reference,
                timeout_ms: self.cfg.timeout_ms,
            },
            Failure::Request(reason) => AmlError::Request { reference, reason },
            Failure::Connect(reason) => AmlError::Connect { reference, reason },
            Failure::Transport(reason) => AmlError::Transport { reference, reason },
        }
    }
}
