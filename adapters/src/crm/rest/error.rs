//! Errors of the REST CRM client.
//!
//! Contract: a message says what failed (status, error code, envelope id, transport
//! problem), never what was sent; [`CrmError::is_transient`] tells the retry loop and the
//! runtime whether trying again can help.

use std::time::Duration;

use thiserror::Error;

/// Why an upsert or a merge did not go through.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CrmError {
    /// A configuration value the client cannot work with.
    #[error("invalid crm rest config: field {field}: {reason}")]
    Config {
        /// The config field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the crm http client: {reason}")]
    Client {
        /// What went wrong.
        reason: String,
    },
    /// The request could not be built (for example an envelope id that cannot be a header).
    #[error("cannot build the crm request for envelope {envelope_id}: {reason}")]
    Request {
        /// The envelope of the upsert.
        envelope_id: String,
        /// What went wrong.
        reason: String,
    },
    /// No answer within the configured timeout.
    #[error("crm did not answer within {timeout_ms} ms (envelope {envelope_id})")]
    Timeout {
        /// The envelope of the upsert.
        envelope_id: String,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// The CRM could not be reached.
    #[error("cannot connect to the crm (envelope {envelope_id}): {reason}")]
    Connect {
        /// The envelope of the upsert.
        envelope_id: String,
        /// The transport's complaint.
        reason: String,
    },
    /// The exchange broke off half-way.
    #[error("crm request failed (envelope {envelope_id}): {reason}")]
    Transport {
        /// The envelope of the upsert.
        envelope_id: String,
        /// The transport's complaint.
        reason: String,
    },
    /// The CRM answered with an error status.
    #[error(
        "crm answered {status}{} for envelope {envelope_id}{}",
        code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default(),
        status_hint(*status)
    )]
    Status {
        /// The HTTP status.
        status: u16,
        /// The `error` code of the answer's body, if it had a usable one.
        code: Option<String>,
        /// The answer's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// The envelope of the upsert.
        envelope_id: String,
    },
    /// The final error of [`super::CrmRestClient::upsert_with_retry`] and
    /// [`super::CrmRestClient::merge_with_retry`], with how many attempts were made;
    /// everything else is answered by the last attempt's error.
    #[error("{last} (after {attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Attempts {
        /// Attempts made, the first one included.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<CrmError>,
    },
    /// A success status whose body is not a contact or merge acknowledgement.
    #[error("crm answered {status} for envelope {envelope_id} with an unusable body: {reason}")]
    BadResponse {
        /// The HTTP status.
        status: u16,
        /// The envelope of the upsert.
        envelope_id: String,
        /// What is wrong with the body.
        reason: String,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => ": check the token",
        429 => ": rate limited",
        _ => "",
    }
}

/// Statuses worth another attempt.
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl CrmError {
    /// Whether another attempt may succeed (rate limit, server trouble, timeout, network).
    pub fn is_transient(&self) -> bool {
        match self {
            CrmError::Attempts { last, .. } => last.is_transient(),
            CrmError::Timeout { .. } | CrmError::Connect { .. } | CrmError::Transport { .. } => {
                true
            }
            CrmError::Status { status, .. } => transient_status(*status),
            CrmError::Config { .. }
            | CrmError::Client { .. }
            | CrmError::Request { .. }
            | CrmError::BadResponse { .. } => false,
        }
    }

    /// Whether the CRM refused the credentials (401, 403).
    pub fn is_auth(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// Whether the CRM refused a write because the contact was merged into another one
    /// (`409` with code `merged`): permanent, the contact must not be recreated.
    pub fn is_merged(&self) -> bool {
        self.status() == Some(409) && self.code() == Some("merged")
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CrmError::Attempts { last, .. } => last.status(),
            CrmError::Status { status, .. } | CrmError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the CRM asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CrmError::Attempts { last, .. } => last.retry_after(),
            CrmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The `error` code of the CRM's answer, if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            CrmError::Attempts { last, .. } => last.code(),
            CrmError::Status { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// How many attempts were made, when the error comes from the retry loop.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            CrmError::Attempts { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// The error of the last attempt (the error itself when it is not from the retry loop).
    pub fn last(&self) -> &CrmError {
        match self {
            CrmError::Attempts { last, .. } => last.last(),
            other => other,
        }
    }

    /// The message (same as `Display`): safe to log, it holds no payload.
    pub fn message(&self) -> String {
        self.to_string()
    }
}
