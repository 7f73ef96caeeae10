//! Errors of the REST polling client.
//!
//! Contract: a message says what failed and where (page number, status, which part of the
//! answer), never a record's values or a secret; [`RestPollError::is_transient`] tells the
//! retry loop whether another attempt at the same page can help.

use std::time::Duration;

use thiserror::Error;

/// Why a page (or a token) could not be had.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RestPollError {
    /// A configuration value the client cannot work with.
    #[error("invalid rest_poll config: field {field}: {reason}")]
    Config {
        /// The config field, for example `pagination.page_size`.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A secret reference could not be resolved, or a file for TLS could not be read.
    #[error("rest_poll {field}: {reason}")]
    Setup {
        /// The config field.
        field: String,
        /// What went wrong.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the rest_poll http client: {reason}")]
    Client {
        /// What went wrong.
        reason: String,
    },
    /// No answer within the configured timeout.
    #[error("page {page}: no answer within {timeout_ms} ms")]
    Timeout {
        /// The page of the pass (1-based).
        page: u64,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// The upstream could not be reached, or the exchange broke off.
    #[error("page {page}: transport error: {reason}")]
    Transport {
        /// The page of the pass (1-based).
        page: u64,
        /// The transport's complaint.
        reason: String,
    },
    /// The upstream answered with an error status.
    #[error("page {page}: upstream answered {status}{}", status_hint(*status))]
    Status {
        /// The page of the pass (1-based).
        page: u64,
        /// The HTTP status.
        status: u16,
        /// The answer's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// A success status whose body is not a usable page (not JSON, no records array, ...).
    #[error("page {page}: unusable page: {reason}")]
    BadPage {
        /// The page of the pass (1-based).
        page: u64,
        /// What is wrong with it (never the content).
        reason: String,
    },
    /// A record of the page has no usable cursor value: the pass cannot know how far it got.
    #[error("page {page}, record {record}: cursor field `{field}`: {reason}")]
    BadCursor {
        /// The page of the pass (1-based).
        page: u64,
        /// The record's index in the page (0-based).
        record: usize,
        /// The configured cursor field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OAuth 2.0 token endpoint did not give a token.
    #[error("oauth2 token request failed: {reason}")]
    Token {
        /// What went wrong (status, error code, transport problem).
        reason: String,
        /// Whether another attempt can help.
        transient: bool,
        /// The endpoint's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The final error of a retried page fetch, with the number of attempts made.
    #[error("{last} (after {attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Attempts {
        /// Attempts made, the first one included.
        attempts: u32,
        /// The error of the last attempt.
        last: Box<RestPollError>,
    },
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => ": check the credentials",
        429 => ": rate limited",
        _ => "",
    }
}

/// Statuses worth another attempt: timeouts, rate limits, server trouble.
pub(crate) fn transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

impl RestPollError {
    /// Whether another attempt at the same request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            RestPollError::Attempts { last, .. } => last.is_transient(),
            RestPollError::Timeout { .. } | RestPollError::Transport { .. } => true,
            RestPollError::Status { status, .. } => transient_status(*status),
            // A truncated or garbled page is most often a proxy or transport hiccup; if it
            // persists the retries run out and the pass stops without moving the cursor.
            RestPollError::BadPage { .. } => true,
            RestPollError::Token { transient, .. } => *transient,
            RestPollError::Config { .. }
            | RestPollError::Setup { .. }
            | RestPollError::Client { .. }
            | RestPollError::BadCursor { .. } => false,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestPollError::Attempts { last, .. } => last.status(),
            RestPollError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the upstream asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RestPollError::Attempts { last, .. } => last.retry_after(),
            RestPollError::Status { retry_after, .. }
            | RestPollError::Token { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// How many attempts were made, when the error comes from the retry loop.
    pub fn attempts(&self) -> Option<u32> {
        match self {
            RestPollError::Attempts { attempts, .. } => Some(*attempts),
            _ => None,
        }
    }

    /// The error of the last attempt (the error itself when it is not from the retry loop).
    pub fn last(&self) -> &RestPollError {
        match self {
            RestPollError::Attempts { last, .. } => last.last(),
            other => other,
        }
    }
}
