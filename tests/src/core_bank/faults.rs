//! Faults the core-banking simulator can be told to answer with, queued in order and
//! consumed by the data endpoints (`GET /api/v1/...`), one use per request; the token
//! endpoint is never faulted. Injected with the Rust methods or `POST /_sim/faults`:
//! `{ "kind": "status", "status": 503, "count": 2 }`,
//! `{ "kind": "rate_limit", "retry_after_secs": 1 }`, `{ "kind": "latency", "millis": 300 }`,
//! `{ "kind": "hang", "millis": 5000 }`, `{ "kind": "invalid_json" }`,
//! `{ "kind": "wrong_shape" }`, `{ "kind": "repeat_record" }`, `{ "kind": "clear" }`.

use serde::{Deserialize, Serialize};

/// A fault as injected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultSpec {
    /// Answer with this status (no body worth reading).
    Status {
        status: u16,
        #[serde(default = "one")]
        count: u32,
    },
    /// Answer `429` with `Retry-After`.
    RateLimit {
        retry_after_secs: u64,
        #[serde(default = "one")]
        count: u32,
    },
    /// Serve normally, but only after `millis`.
    Latency {
        millis: u64,
        #[serde(default = "one")]
        count: u32,
    },
    /// Hold the request for `millis` (longer than the client's timeout), then serve.
    Hang {
        millis: u64,
        #[serde(default = "one")]
        count: u32,
    },
    /// `200` with a body that is cut off mid-JSON.
    InvalidJson {
        #[serde(default = "one")]
        count: u32,
    },
    /// `200` with valid JSON of the wrong shape (`data` is an object).
    WrongShape {
        #[serde(default = "one")]
        count: u32,
    },
    /// The next page starts with the last record of the page before it, again.
    RepeatRecord {
        #[serde(default = "one")]
        count: u32,
    },
    /// Drop every queued fault.
    Clear,
}

fn one() -> u32 {
    1
}

/// One use of a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Status(u16),
    RateLimit(u64),
    Latency(u64),
    Hang(u64),
    InvalidJson,
    WrongShape,
    RepeatRecord,
}

impl FaultSpec {
    /// The fault and how many requests it answers; `None` for [`FaultSpec::Clear`].
    pub fn split(&self) -> Option<(Fault, u32)> {
        Some(match *self {
            FaultSpec::Status { status, count } => (Fault::Status(status), count),
            FaultSpec::RateLimit {
                retry_after_secs,
                count,
            } => (Fault::RateLimit(retry_after_secs), count),
            FaultSpec::Latency { millis, count } => (Fault::Latency(millis), count),
            FaultSpec::Hang { millis, count } => (Fault::Hang(millis), count),
            FaultSpec::InvalidJson { count } => (Fault::InvalidJson, count),
            FaultSpec::WrongShape { count } => (Fault::WrongShape, count),
            FaultSpec::RepeatRecord { count } => (Fault::RepeatRecord, count),
            FaultSpec::Clear => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_from_json_with_default_counts() {
        let s: FaultSpec = serde_json::from_str(r#"{"kind":"status","status":503}"#).unwrap();
        assert_eq!(s.split(), Some((Fault::Status(503), 1)));
        let s: FaultSpec =
            serde_json::from_str(r#"{"kind":"rate_limit","retry_after_secs":2,"count":3}"#)
                .unwrap();
        assert_eq!(s.split(), Some((Fault::RateLimit(2), 3)));
        let s: FaultSpec = serde_json::from_str(r#"{"kind":"clear"}"#).unwrap();
        assert_eq!(s.split(), None);
    }
}
