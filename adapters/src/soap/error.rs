//! Errors of the SOAP adapter.
//!
//! Contract: a message names the operation, and for a bad answer the element path, byte
//! offset and line; a fault shows its code, subcode and fault string (cut to 256
//! characters). Nothing a record holds is ever part of a message.
//! [`SoapError::is_transient`] tells the retry loop and the runtime whether trying again can
//! help.

use std::time::Duration;

use thiserror::Error;

use super::fault::SoapFault;

/// Where and why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason} at byte {offset}, line {line}{}", path_suffix(.path))]
pub struct ParseError {
    /// Byte offset in the answer where the problem was found.
    pub offset: u64,
    /// 1-based line of that offset.
    pub line: u64,
    /// Element path (local names, from `Envelope`) of the innermost open element.
    pub path: String,
    /// What is wrong; never a value from the answer.
    pub reason: String,
}

fn path_suffix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(", in {path}")
    }
}

/// Why a call did not give records.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SoapError {
    /// A configuration value the client cannot work with.
    #[error("invalid soap config: {field}: {reason}")]
    Config { field: String, reason: String },
    /// The HTTP client could not be built (TLS files, provider).
    #[error("cannot build the soap http client: {reason}")]
    Client { reason: String },
    /// The request could not be built (template, header values).
    #[error("operation {operation}: cannot build the request: {reason}")]
    Request { operation: String, reason: String },
    /// No connection to the service.
    #[error("operation {operation}: cannot connect: {reason}")]
    Connect { operation: String, reason: String },
    /// The attempt took longer than the timeout.
    #[error("operation {operation}: no complete answer within {timeout_ms} ms")]
    Timeout { operation: String, timeout_ms: u64 },
    /// The connection broke while sending or receiving.
    #[error("operation {operation}: transport error: {reason}")]
    Transport { operation: String, reason: String },
    /// An HTTP error status without a SOAP fault in the body.
    #[error("operation {operation}: http status {status} without a soap fault")]
    Status {
        operation: String,
        status: u16,
        retry_after: Option<Duration>,
    },
    /// The service answered with a SOAP fault.
    #[error("operation {operation}: {fault} (http status {status})")]
    Fault {
        operation: String,
        status: u16,
        fault: SoapFault,
        retry_after: Option<Duration>,
    },
    /// The answer is larger than `max_response_bytes`.
    #[error("operation {operation}: the answer is larger than {limit} bytes")]
    TooLarge { operation: String, limit: u64 },
    /// The answer could not be spooled to disk.
    #[error("operation {operation}: cannot spool the answer: {reason}")]
    Spool { operation: String, reason: String },
    /// The answer is not a SOAP envelope of the configured version, or not well-formed.
    #[error("operation {operation}: bad answer: {error}")]
    BadResponse {
        operation: String,
        error: ParseError,
    },
    /// Retries used up (or a permanent error met) after `attempts` attempts.
    #[error("{last} (after {attempts} attempt(s))")]
    Attempts { attempts: u32, last: Box<SoapError> },
}

impl SoapError {
    /// Whether the same call may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            SoapError::Connect { .. }
            | SoapError::Timeout { .. }
            | SoapError::Transport { .. }
            | SoapError::Spool { .. } => true,
            SoapError::Status { status, .. } => matches!(status, 408 | 425 | 429 | 500..=599),
            SoapError::Fault { fault, .. } => fault.is_transient(),
            // A broken answer is most often a cut connection or an overloaded server
            // writing half a page; the next attempt asks again.
            SoapError::BadResponse { .. } => true,
            SoapError::Attempts { last, .. } => last.is_transient(),
            SoapError::Config { .. }
            | SoapError::Client { .. }
            | SoapError::Request { .. }
            | SoapError::TooLarge { .. } => false,
        }
    }

    /// The wait the service asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SoapError::Status { retry_after, .. } | SoapError::Fault { retry_after, .. } => {
                *retry_after
            }
            SoapError::Attempts { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The fault, when the service answered with one.
    pub fn fault(&self) -> Option<&SoapFault> {
        match self {
            SoapError::Fault { fault, .. } => Some(fault),
            SoapError::Attempts { last, .. } => last.fault(),
            _ => None,
        }
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            SoapError::Status { status, .. } | SoapError::Fault { status, .. } => Some(*status),
            SoapError::Attempts { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The innermost error (the last attempt's).
    pub fn last(&self) -> &SoapError {
        match self {
            SoapError::Attempts { last, .. } => last.last(),
            other => other,
        }
    }
}
