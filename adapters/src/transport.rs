//! What every HTTP client of the adapters shares: the retry schedule and the classes of
//! transport failure. Each client maps a [`Failure`] into its own error type, which names
//! what was being sent (envelope, reference, operation).

use std::time::Duration;

use backon::ExponentialBuilder;

use crate::crm::rest::service::error_chain;

/// Exponential backoff with jitter, doubling from `initial` up to `max`, for at most
/// `max_attempts` attempts in all (so `max_attempts - 1` retries).
pub(crate) fn backoff(initial: Duration, max: Duration, max_attempts: u32) -> ExponentialBuilder {
    let retries = usize::try_from(max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    ExponentialBuilder::default()
        .with_jitter()
        .with_factor(2.0)
        .with_min_delay(initial)
        .with_max_delay(max)
        .with_max_times(retries)
}

/// A request that got no HTTP answer, by what went wrong. Reasons never carry the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No answer within the client's timeout.
    Timeout,
    /// The request could not be built.
    Request(String),
    /// No connection to the peer.
    Connect(String),
    /// The connection broke or the body could not be read.
    Transport(String),
}

pub(crate) fn classify(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        return Failure::Timeout;
    }
    let e = e.without_url();
    if e.is_builder() {
        Failure::Request(error_chain(&e))
    } else if e.is_connect() {
        Failure::Connect(error_chain(&e))
    } else {
        Failure::Transport(error_chain(&e))
    }
}
