//! The SOAP client: one call per operation and page, retried inside, the answer spooled to
//! disk.
//!
//! Contract: see the module documentation of [`crate::soap`]. The client is cheap to clone
//! and safe to share between tasks. TLS uses rustls with the ring provider (installed
//! process-wide on first construction unless another provider already was), the system's
//! roots or the configured CA bundle only, and a client certificate when configured.
//! Redirects are not followed: a `POST` must not turn into a `GET`, nor the credentials
//! travel elsewhere. Every attempt carries a fresh nonce and `Created`.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use tokio::io::AsyncWriteExt;

use super::config::{OperationConfig, SoapConfig, SoapVersion};
use super::envelope::{
    RequestTemplate, TemplateVars, build_envelope, content_type, soap_action_header,
};
use super::error::SoapError;
use super::response::{RecordReader, probe_fault};
use super::wsse;

/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The most bytes of a fault taken (a fault with a huge `detail` is still read, up to here).
const MAX_FAULT_BYTES: u64 = 1 << 20;

/// Read buffer of the record reader.
const READ_BUFFER: usize = 256 * 1024;

/// An operation with its parsed template.
#[derive(Debug, Clone)]
struct Operation {
    cfg: OperationConfig,
    template: RequestTemplate,
}

/// A client of one SOAP service.
#[derive(Clone)]
pub struct SoapClient {
    http: reqwest::Client,
    cfg: Arc<SoapConfig>,
    operations: Arc<Vec<Operation>>,
}

impl std::fmt::Debug for SoapClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoapClient")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// An answer on disk, checked to be an envelope of the configured version whose body is not
/// a fault. Its records are read with [`SpooledResponse::records`]; the file is anonymous
/// and goes away with this value.
#[derive(Debug)]
pub struct SpooledResponse {
    file: File,
    /// Bytes of the answer.
    pub len: u64,
    /// HTTP status (2xx).
    pub status: u16,
    version: SoapVersion,
    operation: String,
    record_path: String,
    max_record_bytes: u64,
}

impl SpooledResponse {
    /// The records of the answer, read from disk as they are asked for (blocking IO: call
    /// from a blocking thread).
    pub fn records(mut self) -> Result<RecordReader<BufReader<File>>, SoapError> {
        self.file
            .seek(SeekFrom::Start(0))
            .map_err(|e| SoapError::Spool {
                operation: self.operation.clone(),
                reason: format!("cannot rewind the spooled answer: {}", e.kind()),
            })?;
        RecordReader::new(
            BufReader::with_capacity(READ_BUFFER, self.file),
            &self.record_path,
            Some(self.version),
            self.max_record_bytes,
        )
        .map_err(|reason| SoapError::Config {
            field: format!("operation {}: record_path", self.operation),
            reason,
        })
    }
}

impl SoapClient {
    /// Validates the config, reads the TLS files and builds the HTTP client.
    pub fn new(cfg: SoapConfig) -> Result<Self, SoapError> {
        cfg.validate()?;
        let operations = cfg
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| {
                RequestTemplate::parse(&op.request_template)
                    .map(|template| Operation {
                        cfg: op.clone(),
                        template,
                    })
                    .map_err(|reason| SoapError::Config {
                        field: format!("operations[{i}].request_template"),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Installing fails harmlessly when a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .timeout(cfg.timeout())
            .connect_timeout(cfg.timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("integration-hub-soap/", env!("CARGO_PKG_VERSION")));
        // The shared client TLS; a SOAP source's `ca_bundle` is trusted instead of the
        // system's store, as it always was here.
        let tls = crate::tls::ClientTls {
            ca_only: cfg.tls.ca_bundle.is_some(),
            ca_file: cfg.tls.ca_bundle.clone(),
            client_cert: cfg.tls.client_cert.clone(),
            client_key: cfg.tls.client_key.clone(),
        };
        builder = tls.apply(builder).map_err(|e| SoapError::Client {
            reason: e.to_string().replacen("tls.ca_file", "tls.ca_bundle", 1),
        })?;
        let http = builder.build().map_err(|e| SoapError::Client {
            reason: error_chain(&e),
        })?;
        Ok(SoapClient {
            http,
            cfg: Arc::new(cfg),
            operations: Arc::new(operations),
        })
    }

    /// The configuration the client was built with.
    pub fn config(&self) -> &SoapConfig {
        &self.cfg
    }

    fn operation(&self, name: &str) -> Result<&Operation, SoapError> {
        self.operations
            .iter()
            .find(|o| o.cfg.name == name)
            .ok_or_else(|| SoapError::Request {
                operation: name.to_owned(),
                reason: "no such operation is configured".to_owned(),
            })
    }

    /// The request document of one attempt: the filled template in an envelope, with a
    /// UsernameToken made of `nonce` and `created` when WS-Security is configured.
    pub fn request_document(
        &self,
        operation: &str,
        vars: &TemplateVars,
        nonce: &[u8],
        created: chrono::DateTime<Utc>,
    ) -> Result<String, SoapError> {
        let op = self.operation(operation)?;
        let bad = |reason: String| SoapError::Request {
            operation: operation.to_owned(),
            reason,
        };
        let body = op.template.render(vars).map_err(bad)?;
        let security = match &self.cfg.ws_security {
            Some(ws) => Some(wsse::security_header(ws, nonce, created).map_err(bad)?),
            None => None,
        };
        Ok(build_envelope(self.cfg.version, security.as_deref(), &body))
    }

    /// Calls `operation`, retrying transient failures (timeouts, connection failures, 408,
    /// 429, 5xx, Server/Receiver faults) with jittered exponential backoff that never
    /// undercuts a `Retry-After`. Returns the spooled answer and the attempts made; or, as
    /// [`SoapError::Attempts`], the first permanent error or the last transient one.
    pub async fn call(
        &self,
        operation: &str,
        vars: &TemplateVars,
    ) -> Result<(SpooledResponse, u32), SoapError> {
        let attempts = AtomicU32::new(0);
        let counter = &attempts;
        let result = (|| async move {
            counter.fetch_add(1, Ordering::Relaxed);
            self.call_once(operation, vars).await
        })
        .retry(self.backoff())
        .sleep(tokio::time::sleep)
        .when(SoapError::is_transient)
        .adjust(|err, next| {
            next.map(|delay| match err.retry_after() {
                Some(asked) => delay.max(asked.min(MAX_RETRY_AFTER)),
                None => delay,
            })
        })
        .notify(|err, delay| {
            tracing::warn!(
                operation,
                page = vars.page,
                attempt = counter.load(Ordering::Relaxed),
                max_attempts = self.cfg.max_attempts,
                status = err.status(),
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                error = %err,
                "soap call failed, retrying"
            );
        })
        .await;
        let made = attempts.load(Ordering::Relaxed);
        match result {
            Ok(r) => Ok((r, made)),
            Err(err) => Err(SoapError::Attempts {
                attempts: made,
                last: Box::new(err),
            }),
        }
    }

    /// The delays between attempts of [`SoapClient::call`] (`max_attempts - 1` of them);
    /// the runtime uses the same schedule when an answer turns out broken while its
    /// records are read.
    pub fn retry_delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        backon::BackoffBuilder::build(self.backoff())
    }

    fn backoff(&self) -> ExponentialBuilder {
        crate::transport::backoff(
            self.cfg.initial_backoff(),
            self.cfg.max_backoff(),
            self.cfg.max_attempts,
        )
    }

    /// One attempt, without retries.
    pub async fn call_once(
        &self,
        operation: &str,
        vars: &TemplateVars,
    ) -> Result<SpooledResponse, SoapError> {
        let op = self.operation(operation)?;
        let nonce = wsse::fresh_nonce().map_err(|reason| SoapError::Request {
            operation: operation.to_owned(),
            reason,
        })?;
        let document = self.request_document(operation, vars, &nonce, Utc::now())?;
        let version = self.cfg.version;
        let action = op.cfg.soap_action.as_str();
        let mut request = self
            .http
            .post(&self.cfg.endpoint)
            .header(CONTENT_TYPE, content_type(version, action))
            .header(ACCEPT, "text/xml, application/soap+xml")
            .body(document);
        if let Some(v) = soap_action_header(version, action) {
            request = request.header("SOAPAction", v);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(e, operation))?;
        let status = response.status().as_u16();
        let retry_after = parse_retry_after(response.headers());
        let (file, len) = self.spool(response, operation).await?;
        let max_record_bytes = self.cfg.max_record_bytes;
        let success = (200..300).contains(&status);
        // The body's first child decides between a fault and records; reading that far is
        // a few kilobytes, but it is file IO all the same.
        let (file, probe) = tokio::task::spawn_blocking(move || {
            let mut file = file;
            let probe = file
                .seek(SeekFrom::Start(0))
                .map_err(|e| e.kind())
                .map(|_| {
                    // A successful answer must be of the configured version; a fault may come
                    // in the other one (a version-mismatch fault does).
                    let expected = success.then_some(version);
                    probe_fault(
                        BufReader::new(&file),
                        expected,
                        MAX_FAULT_BYTES.max(max_record_bytes),
                    )
                });
            (file, probe)
        })
        .await
        .map_err(|e| SoapError::Spool {
            operation: operation.to_owned(),
            reason: format!("the reading thread failed: {e}"),
        })?;
        let probe = probe.map_err(|kind| SoapError::Spool {
            operation: operation.to_owned(),
            reason: format!("cannot rewind the spooled answer: {kind}"),
        })?;
        match probe {
            Ok(Some(fault)) => Err(SoapError::Fault {
                operation: operation.to_owned(),
                status,
                fault,
                retry_after,
            }),
            Ok(None) | Err(_) if !success => Err(SoapError::Status {
                operation: operation.to_owned(),
                status,
                retry_after,
            }),
            Err(error) => Err(SoapError::BadResponse {
                operation: operation.to_owned(),
                error,
            }),
            Ok(None) => Ok(SpooledResponse {
                file,
                len,
                status,
                version,
                operation: operation.to_owned(),
                record_path: op.cfg.record_path.clone(),
                max_record_bytes,
            }),
        }
    }

    /// Writes the body to an anonymous file as it arrives, refusing more than
    /// `max_response_bytes`.
    async fn spool(
        &self,
        mut response: reqwest::Response,
        operation: &str,
    ) -> Result<(File, u64), SoapError> {
        let spool_err = |what: &str, e: std::io::Error| SoapError::Spool {
            operation: operation.to_owned(),
            reason: format!("{what}: {}", e.kind()),
        };
        let dir = self.cfg.spool_dir.clone();
        let file = tokio::task::spawn_blocking(move || match dir {
            Some(d) => std::fs::create_dir_all(&d).and_then(|()| tempfile::tempfile_in(&d)),
            None => tempfile::tempfile(),
        })
        .await
        .map_err(|e| SoapError::Spool {
            operation: operation.to_owned(),
            reason: format!("the spooling thread failed: {e}"),
        })?
        .map_err(|e| spool_err("cannot create the spool file", e))?;
        let mut out =
            tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file));
        let limit = self.cfg.max_response_bytes;
        let mut len: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e, operation))?
        {
            len += chunk.len() as u64;
            if len > limit {
                return Err(SoapError::TooLarge {
                    operation: operation.to_owned(),
                    limit,
                });
            }
            out.write_all(&chunk)
                .await
                .map_err(|e| spool_err("cannot write the spool file", e))?;
        }
        out.flush()
            .await
            .map_err(|e| spool_err("cannot write the spool file", e))?;
        let file = out.into_inner().into_std().await;
        Ok((file, len))
    }

    fn transport_error(&self, e: reqwest::Error, operation: &str) -> SoapError {
        use crate::transport::Failure;
        let operation = operation.to_owned();
        match crate::transport::classify(e) {
            Failure::Timeout => SoapError::Timeout {
                operation,
                timeout_ms: self.cfg.timeout_ms,
            },
            Failure::Request(reason) => SoapError::Request { operation, reason },
            Failure::Connect(reason) => SoapError::Connect { operation, reason },
            Failure::Transport(reason) => SoapError::Transport { operation, reason },
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date.
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// An error and its sources, joined; reqwest's own text is short and the cause is below it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
