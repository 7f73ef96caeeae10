//! Errors of the AML screening provider client.
//!
//! Contract: a message names the caller's reference, the status, the provider's error code
//! or what is wrong with its answer — never the subject's names, dates or identifiers, nor
//! the provider's free-text message (it may echo them). [`AmlError::is_transient`] tells the
//! retry loop and the caller whether trying again can help.

use std::time::Duration;

use thiserror::Error;

/// Why a screening did not come back.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AmlError {
    /// A configuration value the client cannot work with.
    #[error("invalid aml provider config: field {field}: {reason}")]
    Config {
        /// The config field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the aml provider http client: {reason}")]
    Client {
        /// What went wrong.
        reason: String,
    },
    /// The request was refused before sending (for example a subject without a name).
    #[error("cannot send the screening request for reference {reference}: {reason}")]
    Request {
        /// The caller's reference (`<invalid>` when the reference itself is the problem).
        reference: String,
        /// What is wrong, by field.
        reason: String,
    },
    /// No complete answer within the configured timeout.
    #[error("aml provider did not answer within {timeout_ms} ms (reference {reference})")]
    Timeout {
        /// The caller's reference.
        reference: String,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// The provider could not be reached.
    #[error("cannot connect to the aml provider (reference {reference}): {reason}")]
    Connect {
        /// The caller's reference.
        reference: String,
        /// The transport's complaint.
        reason: String,
    },
    /// The exchange broke off half-way.
    #[error("aml provider request failed (reference {reference}): {reason}")]
    Transport {
        /// The caller's reference.
        reference: String,
        /// The transport's complaint.
        reason: String,
    },
    /// The provider answered with an error status.
    #[error(
        "aml provider answered {status}{} for reference {reference}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        status_hint(*status)
    )]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error.code` of the answer's body, if it had a usable one.
        code: Option<String>,
        /// The answer's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// The caller's reference.
        reference: String,
    },
    /// A success status whose body is not a complete screening result.
    #[error(
        "aml provider answered {status} for reference {reference} with an unusable body: {reason}"
    )]
    BadResponse {
        /// The HTTP status.
        status: u16,
        /// The caller's reference.
        reference: String,
        /// What is wrong with the body, by JSON path (values are not repeated).
        reason: String,
    },
    /// The final error of [`super::AmlClient::screen`], with how many attempts were made;
    /// everything else is answered by the last attempt's error.
    #[error("{last} (after {attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Attempts {
        /// Attempts made, the first one included.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<AmlError>,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => ": check the api key",
        429 => ": rate limited",
        _ => "",
    }
}

/// Statuses worth another attempt.
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl AmlError {
    /// Whether another attempt may succeed (rate limit, server trouble, timeout, network).
    pub fn is_transient(&self) -> bool {
        match self {
            AmlError::Attempts { last, .. } => last.is_transient(),
            AmlError::Timeout { .. } | AmlError::Connect { .. } | AmlError::Transport { .. } => {
                true
            }
            AmlError::Status { status, .. } => transient_status(*status),
            AmlError::Config { .. }
            | AmlError::Client { .. }
            | AmlError::Request { .. }
            | AmlError::BadResponse { .. } => false,
        }
    }

    /// Whether the provider refused the API key (401, 403).
    pub fn is_auth(&self) -> bool {
        matches!(
            self.last(),
            AmlError::Status {
                status: 401 | 403,
                ..
            }
        )
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self.last() {
            AmlError::Status { status, .. } | AmlError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the provider asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.last() {
            AmlError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `error.code` of the provider's answer, if any.
    pub fn code(&self) -> Option<&str> {
        match self.last() {
            AmlError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// How many attempts were made, when the error comes from the retry loop.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            AmlError::Attempts { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// The error of the last attempt (the error itself when it is not from the retry loop).
    pub fn last(&self) -> &AmlError {
        match self {
            AmlError::Attempts { last, .. } => last.last(),
            other => other,
        }
    }
}
