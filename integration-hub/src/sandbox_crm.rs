//! The sandbox CRM: an in-memory implementation of the CRM contact API that `hub demo`, the
//! `hub sandbox-crm` command and the end-to-end tests deliver to.
//!
//! It implements the API documented in `adapters::crm::rest` faithfully:
//!
//! - `PUT /contacts/{external_id}` with a JSON body `{ external_id, version, source,
//!   envelope_id, fields }` and the headers `Idempotency-Key: <envelope_id>` and, when the
//!   sandbox has a token, `Authorization: Bearer <token>`. Answers `201` when the contact is
//!   created, `200` when it is updated, both with `{ "id", "external_id", "version" }`.
//!   The CRM id is assigned on first create and never changes.
//!   A `PUT` replaces only `fields`, what the integration owns; the contact's `crm_fields`
//!   (what staff type in the CRM: notes, consent, preferences) are never touched by it. A
//!   `PUT` to the external id of a contact merged into another is refused with `409`
//!   `merged` (the body also names `merged_into`): a merged contact is never recreated.
//! - `PATCH /contacts/{external_id}/crm-fields` with a JSON object simulates staff editing
//!   the contact in the CRM: its keys are merged into `crm_fields`, a `null` value removes a
//!   key. Same token as `PUT`; `200` with the contact, `404` for an unknown contact, `409`
//!   `merged` for a merged one, `400` for a body that is not a JSON object.
//! - `POST /contacts/{survivor}/merge` with `{ "from": "<loser>", "envelope_id": "..." }`
//!   and the same `Idempotency-Key` and token rules as `PUT` merges the loser into the
//!   survivor: the loser's `crm_fields` the survivor lacks are copied to it (staff data is
//!   not lost), the loser leaves the live contacts and stays as a tombstone whose
//!   `merged_into` names the survivor, and the survivor's `merged_from` gains the loser.
//!   Answers `200` `{ "id", "external_id", "merged": true }` (ids of the survivor). It is
//!   idempotent: a loser that does not exist, or was already merged into this survivor,
//!   gives `200` with `"merged": false`. A survivor that does not exist gives `404`
//!   `not_found` (the caller creates it first); a loser merged into another contact, or a
//!   survivor that was itself merged away, `409` (`conflict`, `merged`); survivor and loser
//!   the same, `422` `same_contact`.
//! - `GET /contacts/{external_id}`: the contact with both `fields` and `crm_fields`, or
//!   `404`. A merged contact is answered `200` with its tombstone: `merged_into` set (it is
//!   `null` on live contacts), the state it had when it was merged.
//! - `GET /contacts?after=<external id>&limit=<n>`: the live contacts in external-id order
//!   (byte order), keyset paging: those after `after` (from the first without it), at most
//!   `limit` (default 100, `400` `bad_request` outside 1..=1,000), each as `GET` returns it
//!   (with `source`, the source of its last write); `{ "contacts": [...], "next": <id> }`,
//!   `next` being the `after` of the next page, `null` on the last one. Merged contacts
//!   (tombstones) are not listed. Same token and rate limit as `GET`.
//! - Errors carry `{ "error": "<code>", "message": "..." }`: `400` for a body that is not
//!   JSON or a missing `Idempotency-Key`, `401` for a missing or wrong token, `422` for a body
//!   without the required fields, an `external_id` that differs from the path or an
//!   `Idempotency-Key` that differs from `envelope_id`, `429` with `Retry-After` when rate
//!   limited, and whatever status a fault asks for.
//!
//! Every accepted `PUT` is applied and counted as a write of its external id, including a
//! repeat of the same envelope and including a version lower than the stored one: that one
//! is applied too, like a CRM that trusts its callers, and counted as a version regression
//! (a correct hub never causes one).
//!
//! Rate limit: optionally a token bucket of `max_rps` requests per second (burst of the
//! same size) over the `/contacts` routes; a request over it gets `429` and a `Retry-After`
//! of the whole seconds until the next token.
//!
//! Faults, queued in order and consumed by the writes of the integration (`PUT
//! /contacts/...` and `POST /contacts/.../merge`) only, before anything else is looked at: `status` answers with that status (nothing is applied),
//! `rate_limit` answers `429` with the given `Retry-After`, `delay` applies the write at once
//! but holds the answer back for the given time — the "committed, but the caller timed out"
//! case. They are injected with the Rust methods or with `POST /_sandbox/faults`:
//! `{ "kind": "status", "status": 503, "count": 5 }`,
//! `{ "kind": "rate_limit", "retry_after_secs": 1, "count": 3 }`,
//! `{ "kind": "delay", "millis": 15000, "count": 2 }`, `{ "kind": "clear" }`
//! (`count` defaults to 1). A `key_status` fault,
//! `{ "kind": "key_status", "external_id": "C1", "status": 503, "count": 6 }`, answers only
//! the next `count` writes of that one contact (upserts of it, merges into it) with `status`,
//! ahead of the queue, and leaves every other contact alone: one record stuck while the
//! rest of the CRM works.
//!
//! Two more modes serve chaos tests. A *flaky window*,
//! `{ "kind": "flaky", "percent": 30, "timeout_percent": 50, "timeout_millis": 1500,
//! "duration_millis": 60000, "seed": 7 }`, makes `percent` % of the writes made in the next
//! `duration_millis` fail, then the CRM is healthy again (a new window replaces the old one).
//! Of the failures, `timeout_percent` % (default 50) are timeouts — the answer is held back
//! for `timeout_millis`, which a test sets above the hub's request timeout; every other
//! timeout is applied before it is held (committed, but the caller timed out) and the rest
//! are not applied and end in `504` — and the others are answered `500`, `502` or `503`
//! at once. Whether a write fails is decided by a seeded hash of the contact's external id
//! and how many writes of it the window saw, not by arrival order, so a run with the same
//! seed and the same writes per contact fails the same writes however requests interleave.
//! *Rejected keys*,
//! `{ "kind": "reject_keys", "external_ids": ["C7", "C9"], "status": 422 }` (`status`
//! defaults to `422`), answer every write of those contacts with `status` until cleared:
//! records the CRM refuses for good. `clear` also ends a flaky window and forgets rejected
//! keys. `GET /_sandbox/stats` returns the counters and
//! `GET /_sandbox/contacts` every stored contact, merged ones included. The admin routes
//! need no token.
//!
//! Contact fields and CRM fields are customer data: they are never logged, and `Debug`
//! hides them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, put};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// A contact as the sandbox stores it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredContact {
    /// The CRM id, assigned on first create.
    pub id: String,
    /// The caller's key of the contact.
    pub external_id: String,
    /// The version of the last write.
    pub version: i64,
    /// The source named by the last write.
    pub source: String,
    /// The envelope of the last write.
    pub envelope_id: String,
    /// The fields of the last write: what the integration owns.
    pub fields: Value,
    /// The fields staff edit in the CRM (an object); a `PUT` never changes them.
    #[serde(default = "empty_object")]
    pub crm_fields: Value,
    /// For a merged contact (a tombstone), the external id of the contact it was merged
    /// into; `None` for a live contact.
    #[serde(default)]
    pub merged_into: Option<String>,
    /// The external ids of the contacts merged into this one, oldest first.
    #[serde(default)]
    pub merged_from: Vec<String>,
    /// How many writes this contact received.
    pub writes: u64,
    /// When the contact was created.
    pub created_at: DateTime<Utc>,
    /// When it was last written.
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for StoredContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field_count = self.fields.as_object().map_or(0, serde_json::Map::len);
        let crm_field_count = self.crm_fields.as_object().map_or(0, serde_json::Map::len);
        f.debug_struct("StoredContact")
            .field("id", &self.id)
            .field("external_id", &self.external_id)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("envelope_id", &self.envelope_id)
            .field("fields", &format_args!("<{field_count} fields hidden>"))
            .field(
                "crm_fields",
                &format_args!("<{crm_field_count} fields hidden>"),
            )
            .field("merged_into", &self.merged_into)
            .field("merged_from", &self.merged_from)
            .field("writes", &self.writes)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// The counters of `GET /_sandbox/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxStats {
    /// Live contacts (merged ones are not counted).
    pub contacts: usize,
    /// Contacts merged into another, kept as tombstones.
    #[serde(default)]
    pub merged_contacts: usize,
    /// Merges applied (a merge answered `"merged": false` is not counted).
    #[serde(default)]
    pub merges: u64,
    /// Accepted `PATCH .../crm-fields` requests (simulated staff edits).
    #[serde(default)]
    pub crm_field_edits: u64,
    /// Requests refused with `409` (writes to a merged contact, conflicting merges).
    #[serde(default)]
    pub conflicts: u64,
    /// Writes applied (every accepted `PUT`).
    pub writes: u64,
    /// Accepted `PUT`s whose version was lower than the stored one.
    pub version_regressions: u64,
    /// Accepted `PUT`s that repeated the envelope of the stored state.
    pub replays: u64,
    /// Requests refused with `400`, `401` or `422`.
    pub rejected: u64,
    /// Requests refused by the rate limit.
    pub rate_limited: u64,
    /// Requests answered by an injected `status` or `rate_limit` fault.
    pub faults_served: u64,
    /// Writes a flaky window answered with `500`, `502` or `503`.
    #[serde(default)]
    pub flaky_errors: u64,
    /// Writes a flaky window held back as timeouts (applied or not).
    #[serde(default)]
    pub flaky_timeouts: u64,
    /// Of those, the writes applied before the answer was held back.
    #[serde(default)]
    pub flaky_timeouts_applied: u64,
    /// Writes refused because their contact is a rejected key.
    #[serde(default)]
    pub key_rejections: u64,
}

/// A fault to inject, as posted to `/_sandbox/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultSpec {
    /// Answer the next `count` writes with `status` and apply nothing.
    Status {
        /// The HTTP status to answer with.
        status: u16,
        /// How many requests it applies to.
        #[serde(default = "one")]
        count: u32,
    },
    /// Answer the next `count` writes with `429` and this `Retry-After`.
    RateLimit {
        /// The `Retry-After` in seconds.
        retry_after_secs: u64,
        /// How many requests it applies to.
        #[serde(default = "one")]
        count: u32,
    },
    /// Apply the next `count` writes at once but answer only after `millis`.
    Delay {
        /// How long to hold the answer back.
        millis: u64,
        /// How many requests it applies to.
        #[serde(default = "one")]
        count: u32,
    },
    /// Answer the next `count` writes of the contact `external_id` (upserts of it and merges
    /// into it) with `status` and apply nothing; other contacts are not affected.
    KeyStatus {
        /// The contact whose writes fail.
        external_id: String,
        /// The HTTP status to answer with.
        status: u16,
        /// How many of its writes it applies to.
        #[serde(default = "one")]
        count: u32,
    },
    /// For `duration_millis` from now, `percent` % of the writes fail: `timeout_percent` %
    /// of those as timeouts held for `timeout_millis`, the rest as `500`/`502`/`503`.
    Flaky {
        /// Share of the writes that fail, 0 to 100.
        percent: u8,
        /// Share of the failures that are timeouts, 0 to 100.
        #[serde(default = "half")]
        timeout_percent: u8,
        /// How long a timed-out write's answer is held back.
        timeout_millis: u64,
        /// How long the window lasts.
        duration_millis: u64,
        /// Seed of the decisions.
        #[serde(default)]
        seed: u64,
    },
    /// Answer every write of these contacts with `status` until cleared.
    RejectKeys {
        /// The contacts refused for good.
        external_ids: Vec<String>,
        /// The HTTP status to answer with.
        #[serde(default = "unprocessable_status")]
        status: u16,
    },
    /// Drop every queued fault, end a flaky window and forget rejected keys.
    Clear,
}

fn one() -> u32 {
    1
}

fn half() -> u8 {
    50
}

fn unprocessable_status() -> u16 {
    422
}

/// A flaky window in force.
#[derive(Debug)]
struct Flaky {
    until: Instant,
    /// Failures per 10,000 writes.
    per_10k: u64,
    timeout_percent: u64,
    hold: Duration,
    seed: u64,
    /// Writes seen per contact in this window.
    seen: HashMap<String, u64>,
}

/// What a flaky window does with one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlakyOutcome {
    Pass,
    Error(StatusCode),
    /// A timeout; `applied` says whether the write is applied before the answer is held.
    Timeout {
        applied: bool,
    },
}

impl Flaky {
    /// The fate of the next write of `external_id`: a pure function of the seed, the id and
    /// how many writes of it the window saw before.
    fn decide(&mut self, external_id: &str) -> FlakyOutcome {
        let n = self.seen.entry(external_id.to_owned()).or_insert(0);
        let nth = *n;
        *n += 1;
        let roll =
            splitmix64(self.seed ^ fnv1a(external_id) ^ nth.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if roll % 10_000 >= self.per_10k {
            return FlakyOutcome::Pass;
        }
        let kind = splitmix64(roll);
        if kind % 100 < self.timeout_percent {
            return FlakyOutcome::Timeout {
                applied: (kind >> 32) & 1 == 0,
            };
        }
        let status = match (kind >> 8) % 3 {
            0 => StatusCode::INTERNAL_SERVER_ERROR,
            1 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        };
        FlakyOutcome::Error(status)
    }
}

/// SplitMix64's output function: a well-mixed 64-bit hash of `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over the bytes of `s`: stable across runs and platforms, unlike the std hasher.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Status(StatusCode),
    RateLimit(u64),
    Delay(Duration),
}

#[derive(Debug)]
struct TokenBucket {
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(max_rps: u32) -> Self {
        let per_sec = f64::from(max_rps.max(1));
        TokenBucket {
            per_sec,
            tokens: per_sec,
            last: Instant::now(),
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.per_sec);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Live contacts by external id.
    contacts: BTreeMap<String, StoredContact>,
    /// Tombstones of merged contacts by external id; never in `contacts` at the same time.
    merged: BTreeMap<String, StoredContact>,
    merges: u64,
    crm_field_edits: u64,
    conflicts: u64,
    next_id: u64,
    total_writes: u64,
    version_regressions: u64,
    replays: u64,
    rejected: u64,
    rate_limited: u64,
    faults_served: u64,
    token: Option<String>,
    bucket: Option<TokenBucket>,
    faults: VecDeque<(Fault, u32)>,
    /// Faults of single contacts by external id, each queue served in order.
    key_faults: BTreeMap<String, VecDeque<(StatusCode, u32)>>,
    /// Contacts whose every write is refused, with the status to refuse with.
    rejected_keys: HashMap<String, StatusCode>,
    flaky: Option<Flaky>,
    flaky_errors: u64,
    flaky_timeouts: u64,
    flaky_timeouts_applied: u64,
    key_rejections: u64,
}

impl Inner {
    /// Consumes one use of the first fault queued for `external_id`.
    fn next_key_fault(&mut self, external_id: &str) -> Option<StatusCode> {
        let queue = self.key_faults.get_mut(external_id)?;
        let (status, left) = queue.front_mut()?;
        let status = *status;
        *left = left.saturating_sub(1);
        if *left == 0 {
            queue.pop_front();
        }
        if queue.is_empty() {
            self.key_faults.remove(external_id);
        }
        Some(status)
    }

    /// Consumes one use of the first queued fault.
    fn next_fault(&mut self) -> Option<Fault> {
        let (fault, left) = self.faults.front_mut()?;
        let fault = *fault;
        *left = left.saturating_sub(1);
        if *left == 0 {
            self.faults.pop_front();
        }
        Some(fault)
    }

    fn rate_limit(&mut self) -> Result<(), Refusal> {
        let Some(bucket) = self.bucket.as_mut() else {
            return Ok(());
        };
        bucket.take(Instant::now()).map_err(|wait| {
            self.rate_limited += 1;
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            rate_limited(secs.max(1))
        })
    }

    fn authorize(&mut self, headers: &HeaderMap) -> Result<(), Refusal> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented == Some(token.as_str()) {
            return Ok(());
        }
        self.rejected += 1;
        Err(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        ))
    }

    /// The live contact or, failing that, the tombstone with this external id.
    fn find(&self, external_id: &str) -> Option<&StoredContact> {
        self.contacts
            .get(external_id)
            .or_else(|| self.merged.get(external_id))
    }

    /// The `409 merged` answer when `external_id` was merged into another contact.
    fn refuse_merged(&mut self, external_id: &str) -> Result<(), Refusal> {
        let Some(into) = self
            .merged
            .get(external_id)
            .and_then(|t| t.merged_into.clone())
        else {
            return Ok(());
        };
        self.conflicts += 1;
        Err(Refusal {
            merged_into: Some(into),
            ..error(
                StatusCode::CONFLICT,
                "merged",
                "the contact was merged into another contact",
            )
        })
    }

    /// Applies a staff edit to a live contact's `crm_fields`: keys are merged, `null`
    /// removes a key.
    fn edit_crm_fields(
        &mut self,
        external_id: &str,
        patch: Map<String, Value>,
    ) -> Result<StoredContact, Refusal> {
        self.refuse_merged(external_id)?;
        let Some(contact) = self.contacts.get_mut(external_id) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no contact with this external id",
            ));
        };
        let mut fields = take_object(&mut contact.crm_fields);
        for (key, value) in patch {
            if value.is_null() {
                fields.remove(&key);
            } else {
                fields.insert(key, value);
            }
        }
        contact.crm_fields = Value::Object(fields);
        contact.updated_at = Utc::now();
        self.crm_field_edits += 1;
        Ok(contact.clone())
    }
}

/// Takes the object out of `value` (an empty one if it holds anything else); the caller
/// puts it back.
fn take_object(value: &mut Value) -> Map<String, Value> {
    match std::mem::take(value) {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// A cheaply clonable handle on one sandbox CRM; every clone sees the same contacts.
#[derive(Debug, Clone, Default)]
pub struct SandboxCrm {
    inner: Arc<Mutex<Inner>>,
}

impl SandboxCrm {
    /// An empty sandbox without token, rate limit or faults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `Authorization: Bearer <token>` on the `/contacts` routes.
    pub fn with_token(self, token: impl Into<String>) -> Self {
        self.set_token(Some(token.into()));
        self
    }

    /// Allows at most `max_rps` requests per second on the `/contacts` routes.
    pub fn with_rate_limit(self, max_rps: u32) -> Self {
        self.set_rate_limit(Some(max_rps));
        self
    }

    /// Sets or removes the required token.
    pub fn set_token(&self, token: Option<String>) {
        self.lock().token = token;
    }

    /// Sets or removes the rate limit (requests per second).
    pub fn set_rate_limit(&self, max_rps: Option<u32>) {
        self.lock().bucket = max_rps.map(TokenBucket::new);
    }

    /// Queues a fault (or clears the queue for [`FaultSpec::Clear`]).
    pub fn inject(&self, fault: FaultSpec) {
        let mut inner = self.lock();
        let (fault, count) = match fault {
            FaultSpec::Clear => {
                inner.faults.clear();
                inner.key_faults.clear();
                inner.rejected_keys.clear();
                inner.flaky = None;
                return;
            }
            FaultSpec::Flaky {
                percent,
                timeout_percent,
                timeout_millis,
                duration_millis,
                seed,
            } => {
                inner.flaky = Some(Flaky {
                    until: Instant::now() + Duration::from_millis(duration_millis),
                    per_10k: u64::from(percent.min(100)) * 100,
                    timeout_percent: u64::from(timeout_percent.min(100)),
                    hold: Duration::from_millis(timeout_millis),
                    seed,
                    seen: HashMap::new(),
                });
                return;
            }
            FaultSpec::RejectKeys {
                external_ids,
                status,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
                for id in external_ids {
                    inner.rejected_keys.insert(id, status);
                }
                return;
            }
            FaultSpec::KeyStatus {
                external_id,
                status,
                count,
            } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if count > 0 {
                    inner
                        .key_faults
                        .entry(external_id)
                        .or_default()
                        .push_back((status, count));
                }
                return;
            }
            FaultSpec::Status { status, count } => {
                let status =
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (Fault::Status(status), count)
            }
            FaultSpec::RateLimit {
                retry_after_secs,
                count,
            } => (Fault::RateLimit(retry_after_secs), count),
            FaultSpec::Delay { millis, count } => {
                (Fault::Delay(Duration::from_millis(millis)), count)
            }
        };
        if count > 0 {
            inner.faults.push_back((fault, count));
        }
    }

    /// Answers the next `count` writes with `status`.
    pub fn inject_status(&self, status: u16, count: u32) {
        self.inject(FaultSpec::Status { status, count });
    }

    /// Answers the next `count` writes with `429` and `Retry-After: retry_after_secs`.
    pub fn inject_rate_limit(&self, retry_after_secs: u64, count: u32) {
        self.inject(FaultSpec::RateLimit {
            retry_after_secs,
            count,
        });
    }

    /// Applies the next `count` writes but answers each only after `delay`.
    pub fn inject_delay(&self, delay: Duration, count: u32) {
        self.inject(FaultSpec::Delay {
            millis: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            count,
        });
    }

    /// Answers the next `count` writes of the contact `external_id` with `status`.
    pub fn inject_key_status(&self, external_id: &str, status: u16, count: u32) {
        self.inject(FaultSpec::KeyStatus {
            external_id: external_id.to_owned(),
            status,
            count,
        });
    }

    /// Drops every queued fault, ends a flaky window and forgets rejected keys.
    pub fn clear_faults(&self) {
        self.inject(FaultSpec::Clear);
    }

    /// For `duration` from now, `percent` % of the writes fail: `timeout_percent` % of those
    /// as timeouts whose answer is held back for `timeout` (half of them applied first), the
    /// rest as `500`, `502` or `503`. Decided by `seed` (see the module documentation).
    pub fn inject_flaky(
        &self,
        percent: u8,
        timeout_percent: u8,
        timeout: Duration,
        duration: Duration,
        seed: u64,
    ) {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.inject(FaultSpec::Flaky {
            percent,
            timeout_percent,
            timeout_millis: millis(timeout),
            duration_millis: millis(duration),
            seed,
        });
    }

    /// Whether a flaky window is in force now.
    pub fn flaky_active(&self) -> bool {
        self.lock()
            .flaky
            .as_ref()
            .is_some_and(|f| Instant::now() < f.until)
    }

    /// Answers every write of these contacts with `status` until the faults are cleared.
    pub fn reject_keys<I, S>(&self, external_ids: I, status: u16)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.inject(FaultSpec::RejectKeys {
            external_ids: external_ids.into_iter().map(Into::into).collect(),
            status,
        });
    }

    /// How many requests the queued faults (those of single contacts included) will still
    /// answer.
    pub fn pending_faults(&self) -> u64 {
        let inner = self.lock();
        let queued: u64 = inner.faults.iter().map(|(_, n)| u64::from(*n)).sum();
        let keyed: u64 = inner
            .key_faults
            .values()
            .flatten()
            .map(|(_, n)| u64::from(*n))
            .sum();
        queued + keyed
    }

    /// The contact with this external id: the live one, or the tombstone of a merged one
    /// (`merged_into` set).
    pub fn contact(&self, external_id: &str) -> Option<StoredContact> {
        self.lock().find(external_id).cloned()
    }

    /// The version of the live contact with this external id, without copying its fields
    /// (cheap enough to poll over many contacts).
    pub fn contact_version(&self, external_id: &str) -> Option<i64> {
        self.lock().contacts.get(external_id).map(|c| c.version)
    }

    /// How many live contacts there are (merged ones are not counted).
    pub fn contacts_len(&self) -> usize {
        self.lock().contacts.len()
    }

    /// Every live contact, ordered by external id.
    pub fn live_contacts(&self) -> Vec<StoredContact> {
        self.lock().contacts.values().cloned().collect()
    }

    /// Applies a staff edit to the `crm_fields` of a live contact, as `PATCH
    /// /contacts/{external_id}/crm-fields` does (keys merged, `null` removes a key), without
    /// the token and rate limit. The contact afterwards, or `None` when there is no live
    /// contact with this external id.
    pub fn crm_fields_set(
        &self,
        external_id: &str,
        patch: Map<String, Value>,
    ) -> Option<StoredContact> {
        self.lock().edit_crm_fields(external_id, patch).ok()
    }

    /// Removes a live contact as if it had been deleted in the CRM behind the hub's back
    /// (tests of reconciliation and repair); the contact removed, if there was one.
    pub fn delete_contact(&self, external_id: &str) -> Option<StoredContact> {
        self.lock().contacts.remove(external_id)
    }

    /// How many writes this external id received (live or merged).
    pub fn writes_for(&self, external_id: &str) -> u64 {
        self.lock().find(external_id).map_or(0, |c| c.writes)
    }

    /// How many writes were applied in all.
    pub fn total_writes(&self) -> u64 {
        self.lock().total_writes
    }

    /// How many writes carried a version lower than the stored one.
    pub fn version_regressions(&self) -> u64 {
        self.lock().version_regressions
    }

    /// How many requests were refused with `400`, `401` or `422`.
    pub fn rejected(&self) -> u64 {
        self.lock().rejected
    }

    /// All counters at once.
    pub fn stats(&self) -> SandboxStats {
        let inner = self.lock();
        SandboxStats {
            contacts: inner.contacts.len(),
            merged_contacts: inner.merged.len(),
            merges: inner.merges,
            crm_field_edits: inner.crm_field_edits,
            conflicts: inner.conflicts,
            writes: inner.total_writes,
            version_regressions: inner.version_regressions,
            replays: inner.replays,
            rejected: inner.rejected,
            rate_limited: inner.rate_limited,
            faults_served: inner.faults_served,
            flaky_errors: inner.flaky_errors,
            flaky_timeouts: inner.flaky_timeouts,
            flaky_timeouts_applied: inner.flaky_timeouts_applied,
            key_rejections: inner.key_rejections,
        }
    }

    /// Every stored contact, live ones and tombstones of merged ones, ordered by external
    /// id.
    pub fn snapshot(&self) -> Vec<StoredContact> {
        let inner = self.lock();
        let mut all: Vec<StoredContact> = inner
            .contacts
            .values()
            .chain(inner.merged.values())
            .cloned()
            .collect();
        all.sort_by(|a, b| a.external_id.cmp(&b.external_id));
        all
    }

    /// The HTTP routes of this sandbox.
    pub fn router(&self) -> Router {
        router(self.clone())
    }

    /// Binds `addr` (port 0 picks a free one) and serves this sandbox in a background task
    /// until the task is aborted or the runtime ends.
    pub async fn serve(
        self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = router(self);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "sandbox crm stopped serving");
            }
        });
        tracing::info!(addr = %local, "sandbox crm listening");
        Ok((local, task))
    }

    /// Like [`SandboxCrm::serve`], over TLS with `tls` (a CRM behind a bank's private CA,
    /// or one that requires client certificates).
    pub async fn serve_tls(
        self,
        addr: impl tokio::net::ToSocketAddrs,
        tls: std::sync::Arc<rustls::ServerConfig>,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let listener = crate::tls_listener::TlsListener::new(listener, tls)?;
        let local = axum::serve::Listener::local_addr(&listener)?;
        let app = router(self);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "sandbox crm stopped serving");
            }
        });
        tracing::info!(addr = %local, "sandbox crm listening (tls)");
        Ok((local, task))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters for a sandbox: keep serving.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Faults and rate limit in front of a write (upsert or merge) of the contact
    /// `external_id`: an answer, or the delay to apply.
    fn gate_write(&self, external_id: &str) -> Result<Option<Duration>, Refusal> {
        let mut inner = self.lock();
        if let Some(status) = inner.rejected_keys.get(external_id).copied() {
            inner.key_rejections += 1;
            return Err(error(
                status,
                "rejected",
                "the sandbox refuses every write of this contact",
            ));
        }
        if let Some(status) = inner.next_key_fault(external_id) {
            inner.faults_served += 1;
            return Err(error(
                status,
                "injected_fault",
                "fault injected by the sandbox for this contact",
            ));
        }
        let delay = match inner.next_fault() {
            Some(Fault::Status(status)) => {
                inner.faults_served += 1;
                return Err(error(
                    status,
                    "injected_fault",
                    "fault injected by the sandbox",
                ));
            }
            Some(Fault::RateLimit(secs)) => {
                inner.faults_served += 1;
                return Err(rate_limited(secs));
            }
            Some(Fault::Delay(delay)) => Some(delay),
            None => None,
        };
        let flaky = match inner.flaky.as_mut() {
            Some(f) if Instant::now() < f.until => Some((f.decide(external_id), f.hold)),
            Some(_) => {
                inner.flaky = None;
                None
            }
            None => None,
        };
        match flaky {
            Some((FlakyOutcome::Error(status), _)) => {
                inner.flaky_errors += 1;
                return Err(error(
                    status,
                    "injected_fault",
                    "flaky window of the sandbox",
                ));
            }
            Some((FlakyOutcome::Timeout { applied: false }, hold)) => {
                inner.flaky_timeouts += 1;
                return Err(Refusal {
                    hold: Some(hold),
                    ..error(
                        StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "flaky window of the sandbox: not applied",
                    )
                });
            }
            Some((FlakyOutcome::Timeout { applied: true }, hold)) => {
                inner.flaky_timeouts += 1;
                inner.flaky_timeouts_applied += 1;
                inner.rate_limit()?;
                return Ok(Some(delay.map_or(hold, |d| d.max(hold))));
            }
            Some((FlakyOutcome::Pass, _)) | None => {}
        }
        inner.rate_limit()?;
        Ok(delay)
    }

    /// Authorises, validates and applies one write.
    fn apply_put(&self, path_id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        let mut inner = self.lock();
        if let Err(refusal) = inner.authorize(headers) {
            return refusal.into_response();
        }
        let upsert = match validate(path_id, headers, body) {
            Ok(u) => u,
            Err(refusal) => {
                inner.rejected += 1;
                return refusal.into_response();
            }
        };
        if let Err(refusal) = inner.refuse_merged(&upsert.external_id) {
            return refusal.into_response();
        }
        let now = Utc::now();
        let inner = &mut *inner;
        inner.total_writes += 1;
        let next_id = inner.next_id + 1;
        let mut created = false;
        let contact = inner
            .contacts
            .entry(upsert.external_id.clone())
            .or_insert_with(|| {
                created = true;
                StoredContact {
                    id: format!("crm-{next_id:08}"),
                    external_id: upsert.external_id.clone(),
                    version: upsert.version,
                    source: String::new(),
                    envelope_id: String::new(),
                    fields: Value::Null,
                    crm_fields: empty_object(),
                    merged_into: None,
                    merged_from: Vec::new(),
                    writes: 0,
                    created_at: now,
                    updated_at: now,
                }
            });
        if created {
            inner.next_id = next_id;
        } else {
            inner.version_regressions += u64::from(contact.version > upsert.version);
            inner.replays += u64::from(contact.envelope_id == upsert.envelope_id);
        }
        contact.version = upsert.version;
        contact.source = upsert.source;
        contact.envelope_id = upsert.envelope_id;
        contact.fields = upsert.fields;
        contact.writes += 1;
        contact.updated_at = now;
        let status = if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = json!({
            "id": contact.id,
            "external_id": contact.external_id,
            "version": contact.version,
        });
        (status, axum::Json(body)).into_response()
    }

    /// Authorises, validates and applies one merge of `from` into `survivor_id`.
    fn apply_merge(&self, survivor_id: &str, headers: &HeaderMap, body: &[u8]) -> Response {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if let Err(refusal) = inner.authorize(headers) {
            return refusal.into_response();
        }
        let merge = match validate_merge(headers, body) {
            Ok(m) => m,
            Err(refusal) => {
                inner.rejected += 1;
                return refusal.into_response();
            }
        };
        let loser_id = merge.from;
        if loser_id == survivor_id {
            inner.rejected += 1;
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "same_contact",
                "a contact cannot be merged into itself",
            )
            .into_response();
        }
        let Some(survivor_crm_id) = inner.find(survivor_id).map(|c| c.id.clone()) else {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                "no contact with the survivor's external id",
            )
            .into_response();
        };
        let answer = |merged: bool| {
            let body =
                json!({ "id": survivor_crm_id, "external_id": survivor_id, "merged": merged });
            (StatusCode::OK, axum::Json(body)).into_response()
        };
        // A replay is answered before the survivor's own state is looked at, so repeating an
        // old merge stays harmless after the survivor was merged on.
        if let Some(into) = inner
            .merged
            .get(&loser_id)
            .and_then(|t| t.merged_into.clone())
        {
            if into == survivor_id {
                return answer(false);
            }
            inner.conflicts += 1;
            return Refusal {
                merged_into: Some(into),
                ..error(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the contact to merge was merged into another contact",
                )
            }
            .into_response();
        }
        if let Err(refusal) = inner.refuse_merged(survivor_id) {
            return refusal.into_response();
        }
        let Some(mut loser) = inner.contacts.remove(&loser_id) else {
            // Nothing to merge: the loser never reached the CRM.
            return answer(false);
        };
        let Some(survivor) = inner.contacts.get_mut(survivor_id) else {
            // The survivor was found live above under the same lock; this only keeps a slip
            // in that reasoning from losing the loser.
            inner.contacts.insert(loser_id, loser);
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the survivor disappeared during the merge",
            )
            .into_response();
        };
        let now = Utc::now();
        let mut kept = take_object(&mut survivor.crm_fields);
        if let Value::Object(staff) = &loser.crm_fields {
            for (key, value) in staff {
                kept.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        survivor.crm_fields = Value::Object(kept);
        survivor.merged_from.push(loser_id.clone());
        survivor.updated_at = now;
        loser.merged_into = Some(survivor_id.to_owned());
        loser.updated_at = now;
        inner.merged.insert(loser_id, loser);
        inner.merges += 1;
        answer(true)
    }
}

/// The routes of the sandbox CRM over `state`.
pub fn router(state: SandboxCrm) -> Router {
    Router::new()
        .route("/contacts", get(list_contacts))
        .route("/contacts/{external_id}", put(put_contact).get(get_contact))
        .route(
            "/contacts/{external_id}/crm-fields",
            patch(patch_crm_fields),
        )
        .route("/contacts/{external_id}/merge", post(merge_contact))
        .route("/_sandbox/faults", post(post_fault))
        .route("/_sandbox/stats", get(get_stats))
        .route("/_sandbox/contacts", get(get_contacts))
        .fallback(not_found)
        .with_state(state)
}

/// Binds `addr` and serves a new, empty sandbox; returns the bound address, a handle on the
/// sandbox and the serving task.
pub async fn serve(
    addr: impl tokio::net::ToSocketAddrs,
) -> std::io::Result<(SocketAddr, SandboxCrm, JoinHandle<()>)> {
    let crm = SandboxCrm::new();
    let (local, task) = crm.clone().serve(addr).await?;
    Ok((local, crm, task))
}

struct Merge {
    from: String,
}

/// Checks headers and body of a merge: `{ "from", "envelope_id" }` and an `Idempotency-Key`
/// equal to `envelope_id`, as for a `PUT`.
fn validate_merge(headers: &HeaderMap, body: &[u8]) -> Result<Merge, Refusal> {
    let idempotency_key = idempotency_key(headers)?;
    let mut body = json_object(body)?;
    let from = take_text(&mut body, "from")?;
    let envelope_id = take_text(&mut body, "envelope_id")?;
    if let Some(extra) = body.keys().next() {
        return Err(unprocessable(
            "unknown_field",
            &format!("{extra} is not a contact merge field"),
        ));
    }
    if idempotency_key != envelope_id.as_bytes() {
        return Err(unprocessable(
            "idempotency_key_mismatch",
            "Idempotency-Key differs from envelope_id",
        ));
    }
    Ok(Merge { from })
}

fn unprocessable(code: &'static str, message: &str) -> Refusal {
    error(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// The non-empty `Idempotency-Key` of a write.
fn idempotency_key(headers: &HeaderMap) -> Result<&[u8], Refusal> {
    headers
        .get("idempotency-key")
        .map(HeaderValue::as_bytes)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                "missing_idempotency_key",
                "the Idempotency-Key header is required",
            )
        })
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, Refusal> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the body must be a JSON object",
        )),
    }
}

/// Removes a required non-empty string from a request body.
fn take_text(body: &mut Map<String, Value>, name: &str) -> Result<String, Refusal> {
    match body.remove(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(unprocessable(
            "invalid_field",
            &format!("{name} must be a non-empty string"),
        )),
        None => Err(unprocessable(
            "missing_field",
            &format!("{name} is required"),
        )),
    }
}

struct Upsert {
    external_id: String,
    version: i64,
    source: String,
    envelope_id: String,
    fields: Value,
}

/// Checks headers and body of a write; the answer to send back when they are wrong.
fn validate(path_id: &str, headers: &HeaderMap, body: &[u8]) -> Result<Upsert, Refusal> {
    let idempotency_key = idempotency_key(headers)?;
    let mut body = json_object(body)?;
    let external_id = take_text(&mut body, "external_id")?;
    let source = take_text(&mut body, "source")?;
    let envelope_id = take_text(&mut body, "envelope_id")?;
    let version = match body.remove("version") {
        Some(v) => v
            .as_i64()
            .ok_or_else(|| unprocessable("invalid_field", "version must be an integer"))?,
        None => return Err(unprocessable("missing_field", "version is required")),
    };
    let fields = match body.remove("fields") {
        Some(v @ Value::Object(_)) => v,
        Some(_) => return Err(unprocessable("invalid_field", "fields must be an object")),
        None => return Err(unprocessable("missing_field", "fields is required")),
    };
    if let Some(extra) = body.keys().next() {
        return Err(unprocessable(
            "unknown_field",
            &format!("{extra} is not a contact upsert field"),
        ));
    }
    if external_id != path_id {
        return Err(unprocessable(
            "external_id_mismatch",
            "external_id differs from the one in the path",
        ));
    }
    if idempotency_key != envelope_id.as_bytes() {
        return Err(unprocessable(
            "idempotency_key_mismatch",
            "Idempotency-Key differs from envelope_id",
        ));
    }
    Ok(Upsert {
        external_id,
        version,
        source,
        envelope_id,
        fields,
    })
}

async fn put_contact(
    State(crm): State<SandboxCrm>,
    Path(external_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gated_write(&crm, &external_id, "contact upsert", |crm| {
        crm.apply_put(&external_id, &headers, &body)
    })
    .await
}

/// A write to contact `id` through the write gate (faults, rate limit, flaky window): the
/// gate's refusal, or `apply`'s answer after any delay the gate asked for.
async fn gated_write(
    crm: &SandboxCrm,
    id: &str,
    what: &str,
    apply: impl FnOnce(&SandboxCrm) -> Response,
) -> Response {
    let delay = match crm.gate_write(id) {
        Ok(delay) => delay,
        Err(answer) => return answer.after_hold().await,
    };
    let answer = apply(crm);
    tracing::debug!(status = answer.status().as_u16(), what, "sandbox crm write");
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    answer
}

async fn get_contact(
    State(crm): State<SandboxCrm>,
    Path(external_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = {
        let mut inner = crm.lock();
        if let Err(answer) = inner.rate_limit() {
            return answer.into_response();
        }
        if let Err(answer) = inner.authorize(&headers) {
            return answer.into_response();
        }
        inner.find(&external_id).cloned()
    };
    match found {
        Some(contact) => (StatusCode::OK, axum::Json(contact)).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no contact with this external id",
        )
        .into_response(),
    }
}

/// The page size of `GET /contacts` without `limit`, and the largest allowed.
const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 1_000;

#[derive(Deserialize)]
struct ListQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

async fn list_contacts(
    State(crm): State<SandboxCrm>,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let limit = match q.limit.as_deref().map(str::parse::<usize>) {
        None => LIST_DEFAULT,
        Some(Ok(n)) if (1..=LIST_MAX).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("limit must be a number from 1 to {LIST_MAX}"),
            )
            .into_response();
        }
    };
    let (contacts, more) = {
        let mut inner = crm.lock();
        if let Err(answer) = inner.rate_limit() {
            return answer.into_response();
        }
        if let Err(answer) = inner.authorize(&headers) {
            return answer.into_response();
        }
        let from = match &q.after {
            Some(after) => std::ops::Bound::Excluded(after.clone()),
            None => std::ops::Bound::Unbounded,
        };
        let mut range = inner
            .contacts
            .range((from, std::ops::Bound::Unbounded))
            .map(|(_, c)| c);
        let page: Vec<StoredContact> = range.by_ref().take(limit).cloned().collect();
        (page, range.next().is_some())
    };
    let next = if more {
        contacts.last().map(|c| c.external_id.clone())
    } else {
        None
    };
    (
        StatusCode::OK,
        axum::Json(json!({ "contacts": contacts, "next": next })),
    )
        .into_response()
}

async fn patch_crm_fields(
    State(crm): State<SandboxCrm>,
    Path(external_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = crm.lock();
    if let Err(answer) = inner.rate_limit() {
        return answer.into_response();
    }
    if let Err(answer) = inner.authorize(&headers) {
        return answer.into_response();
    }
    let patch = match json_object(&body) {
        Ok(patch) => patch,
        Err(answer) => {
            inner.rejected += 1;
            return answer.into_response();
        }
    };
    match inner.edit_crm_fields(&external_id, patch) {
        Ok(contact) => (StatusCode::OK, axum::Json(contact)).into_response(),
        Err(answer) => answer.into_response(),
    }
}

async fn merge_contact(
    State(crm): State<SandboxCrm>,
    Path(survivor): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    gated_write(&crm, &survivor, "contact merge", |crm| {
        crm.apply_merge(&survivor, &headers, &body)
    })
    .await
}

async fn post_fault(State(crm): State<SandboxCrm>, body: Bytes) -> Response {
    let spec: FaultSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_fault",
                "expected {\"kind\": \"status\"|\"key_status\"|\"rate_limit\"|\"delay\"|\"flaky\"|\"reject_keys\"|\"clear\", ...}",
            )
            .into_response();
        }
    };
    let status = match &spec {
        FaultSpec::Status { status, .. }
        | FaultSpec::KeyStatus { status, .. }
        | FaultSpec::RejectKeys { status, .. } => Some(*status),
        _ => None,
    };
    if let FaultSpec::Flaky {
        percent,
        timeout_percent,
        ..
    } = &spec
        && (*percent > 100 || *timeout_percent > 100)
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_fault",
            "percent and timeout_percent must be between 0 and 100",
        )
        .into_response();
    }
    if status.is_some_and(|status| !(100..=599).contains(&status)) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_fault",
            "status must be between 100 and 599",
        )
        .into_response();
    }
    crm.inject(spec);
    let pending = crm.pending_faults();
    (StatusCode::OK, axum::Json(json!({ "pending": pending }))).into_response()
}

async fn get_stats(State(crm): State<SandboxCrm>) -> Response {
    (StatusCode::OK, axum::Json(crm.stats())).into_response()
}

async fn get_contacts(State(crm): State<SandboxCrm>) -> Response {
    (StatusCode::OK, axum::Json(crm.snapshot())).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route").into_response()
}

/// An error answer: `{ "error": code, "message": message }`, maybe with `Retry-After`, and
/// with `merged_into` when the contact was merged into another.
#[derive(Debug)]
struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
    merged_into: Option<String>,
    /// How long to hold the answer back (a timeout the caller sees).
    hold: Option<Duration>,
}

impl Refusal {
    /// The answer, after holding it back as asked.
    async fn after_hold(self) -> Response {
        if let Some(hold) = self.hold {
            tokio::time::sleep(hold).await;
        }
        self.into_response()
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let (Some(into), Value::Object(map)) = (self.merged_into, &mut body) {
            map.insert("merged_into".to_owned(), Value::String(into));
        }
        let mut answer = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            answer
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        answer
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        code,
        message: message.into(),
        retry_after_secs: None,
        merged_into: None,
        hold: None,
    }
}

fn rate_limited(retry_after_secs: u64) -> Refusal {
    Refusal {
        retry_after_secs: Some(retry_after_secs),
        ..error(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use adapters::crm::rest::{ContactUpsert, CrmError, CrmRestClient, CrmRestConfig, MergeAck};

    fn http() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    fn upsert(external_id: &str, version: i64) -> ContactUpsert {
        ContactUpsert {
            external_id: external_id.to_owned(),
            version,
            source: "abs".to_owned(),
            envelope_id: format!("env-{external_id}-{version}"),
            fields: json!({ "last_name": "Петрова", "phone": "+79990001122" }),
        }
    }

    fn client(addr: SocketAddr, token: Option<&str>) -> CrmRestClient {
        CrmRestClient::new(CrmRestConfig {
            token: token.map(str::to_owned),
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
            timeout_ms: 2_000,
            ..CrmRestConfig::new(format!("http://{addr}"))
        })
        .unwrap()
    }

    #[tokio::test]
    async fn create_update_and_read_back() {
        let crm = SandboxCrm::new().with_token("tkn");
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, Some("tkn"));

        let first = c.upsert(&upsert("C/1 ж", 1)).await.unwrap();
        assert!(first.created);
        assert_eq!((first.external_id.as_str(), first.version), ("C/1 ж", 1));
        let second = c.upsert(&upsert("C/1 ж", 2)).await.unwrap();
        assert!(!second.created);
        assert_eq!(second.id, first.id, "the crm id is stable");
        c.upsert(&upsert("C-2", 7)).await.unwrap();

        assert_eq!(crm.contacts_len(), 2);
        assert_eq!(crm.writes_for("C/1 ж"), 2);
        assert_eq!(crm.writes_for("nobody"), 0);
        assert_eq!(crm.total_writes(), 3);
        assert_eq!(crm.version_regressions(), 0);
        let stored = crm.contact("C/1 ж").unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(stored.fields["last_name"], "Петрова");
        assert!(!format!("{stored:?}").contains("Петрова"));
        let ids: Vec<String> = crm.snapshot().into_iter().map(|c| c.external_id).collect();
        assert_eq!(ids, ["C-2", "C/1 ж"]);

        let got: Value = http()
            .get(c.contact_url("C/1 ж"))
            .bearer_auth("tkn")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            (got["id"].as_str(), got["version"].as_i64()),
            (Some(first.id.as_str()), Some(2))
        );
        let missing = http()
            .get(c.contact_url("nobody"))
            .bearer_auth("tkn")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
    }

    #[tokio::test]
    async fn version_regressions_and_replays_are_applied_and_counted() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, None);
        c.upsert(&upsert("K", 5)).await.unwrap();
        c.upsert(&upsert("K", 5)).await.unwrap();
        c.upsert(&upsert("K", 3)).await.unwrap();
        let stats = crm.stats();
        assert_eq!(
            (
                stats.contacts,
                stats.writes,
                stats.replays,
                stats.version_regressions
            ),
            (1, 3, 1, 1)
        );
        assert_eq!(
            crm.contact("K").unwrap().version,
            3,
            "applied like a real CRM would"
        );
    }

    #[tokio::test]
    async fn token_is_required_when_configured() {
        let crm = SandboxCrm::new().with_token("right");
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        for token in [None, Some("wrong")] {
            let err = client(addr, token)
                .upsert_with_retry(&upsert("A", 1))
                .await
                .unwrap_err();
            assert_eq!(err.status(), Some(401));
            assert!(err.is_auth() && !err.is_transient());
            assert_eq!(err.attempts(), Some(1));
        }
        assert_eq!(crm.rejected(), 2);
        assert_eq!(crm.total_writes(), 0);
    }

    #[tokio::test]
    async fn invalid_bodies_are_refused() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        let url = format!("http://{addr}/contacts/A");
        let good = json!({
            "external_id": "A", "version": 1, "source": "s", "envelope_id": "e", "fields": {}
        });
        let with = |key: &str, value: Value| {
            let mut body = good.clone();
            match value {
                Value::Null => body.as_object_mut().unwrap().remove(key),
                v => body.as_object_mut().unwrap().insert(key.to_owned(), v),
            };
            body
        };
        let cases: Vec<(Value, Option<&str>, u16, &str)> = vec![
            (good.clone(), None, 400, "missing_idempotency_key"),
            (json!([1]), Some("e"), 400, "invalid_json"),
            (
                with("external_id", Value::Null),
                Some("e"),
                422,
                "missing_field",
            ),
            (with("fields", Value::Null), Some("e"), 422, "missing_field"),
            (
                with("external_id", json!("B")),
                Some("e"),
                422,
                "external_id_mismatch",
            ),
            (with("version", json!("1")), Some("e"), 422, "invalid_field"),
            (with("fields", json!([])), Some("e"), 422, "invalid_field"),
            (with("source", json!("")), Some("e"), 422, "invalid_field"),
            (with("x", json!(1)), Some("e"), 422, "unknown_field"),
            (good.clone(), Some("other"), 422, "idempotency_key_mismatch"),
        ];
        let n = cases.len() as u64;
        for (body, key, status, code) in cases {
            let mut req = http().put(&url).json(&body);
            if let Some(key) = key {
                req = req.header("Idempotency-Key", key);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status().as_u16(), status, "{code}");
            let answer: Value = res.json().await.unwrap();
            assert_eq!(answer["error"], code);
        }
        assert_eq!(crm.rejected(), n);
        assert_eq!(crm.contacts_len(), 0);
        let res = http()
            .put(&url)
            .header("Idempotency-Key", "e")
            .json(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }

    #[tokio::test]
    async fn injected_faults_are_served_in_order_then_the_write_lands() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        crm.inject_status(503, 3);
        crm.inject_rate_limit(1, 1);
        assert_eq!(crm.pending_faults(), 4);
        let started = Instant::now();
        let (ack, attempts) = client(addr, None)
            .upsert_with_retry(&upsert("F", 1))
            .await
            .unwrap();
        assert_eq!(attempts, 5);
        assert!(ack.created);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        let stats = crm.stats();
        assert_eq!((stats.faults_served, stats.writes), (4, 1));
        assert_eq!(crm.pending_faults(), 0);
    }

    #[tokio::test]
    async fn a_key_fault_answers_only_that_contact_then_lets_it_through() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        crm.inject_key_status("STUCK", 503, 2);
        crm.inject_status(502, 1);
        assert_eq!(crm.pending_faults(), 3);
        let c = client(addr, None);
        // The contact's own fault comes first; the queue is left for the others.
        let err = c.upsert(&upsert("STUCK", 1)).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        let err = c.upsert(&upsert("OTHER", 1)).await.unwrap_err();
        assert_eq!(err.status(), Some(502));
        c.upsert(&upsert("OTHER", 1)).await.unwrap();
        let err = c.upsert(&upsert("STUCK", 1)).await.unwrap_err();
        assert_eq!(err.status(), Some(503));
        assert_eq!(crm.pending_faults(), 0);
        c.upsert(&upsert("STUCK", 1)).await.unwrap();
        let stats = crm.stats();
        assert_eq!((stats.faults_served, stats.writes), (3, 2));

        // Over HTTP, and cleared with the rest.
        let res = http()
            .post(format!("http://{addr}/_sandbox/faults"))
            .json(&json!({ "kind": "key_status", "external_id": "X", "status": 500, "count": 4 }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(crm.pending_faults(), 4);
        crm.clear_faults();
        assert_eq!(crm.pending_faults(), 0);
    }

    #[tokio::test]
    async fn faults_over_http_and_clear() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        let faults = format!("http://{addr}/_sandbox/faults");
        let post = |body: Value| http().post(&faults).json(&body).send();
        let res = post(json!({ "kind": "status", "status": 502, "count": 2 }))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        post(json!({ "kind": "rate_limit", "retry_after_secs": 1, "count": 3 }))
            .await
            .unwrap();
        let res = post(json!({ "kind": "delay", "millis": 10 }))
            .await
            .unwrap();
        assert_eq!(res.json::<Value>().await.unwrap()["pending"], 6);
        for bad in [
            json!({ "kind": "boom" }),
            json!({ "kind": "status", "status": 42 }),
        ] {
            assert_eq!(post(bad).await.unwrap().status(), 400);
        }

        let c = client(addr, None);
        let err = c.upsert(&upsert("A", 1)).await.unwrap_err();
        assert_eq!(err.status(), Some(502));
        assert_eq!(err.code(), Some("injected_fault"));
        c.upsert(&upsert("A", 1)).await.unwrap_err();
        let err = c.upsert(&upsert("A", 1)).await.unwrap_err();
        assert_eq!(
            (err.status(), err.retry_after()),
            (Some(429), Some(Duration::from_secs(1)))
        );

        post(json!({ "kind": "clear" })).await.unwrap();
        assert_eq!(crm.pending_faults(), 0);
        c.upsert(&upsert("A", 1)).await.unwrap();

        let stats: SandboxStats = http()
            .get(format!("http://{addr}/_sandbox/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats, crm.stats());
        assert_eq!(
            (stats.contacts, stats.writes, stats.faults_served),
            (1, 1, 3)
        );
        let all: Vec<Value> = http()
            .get(format!("http://{addr}/_sandbox/contacts"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.len(), 1);
    }

    #[tokio::test]
    async fn delay_applies_the_write_but_times_the_caller_out() {
        let (addr, crm, _task) = serve("127.0.0.1:0").await.unwrap();
        crm.inject_delay(Duration::from_millis(1500), 1);
        let c = CrmRestClient::new(CrmRestConfig {
            timeout_ms: 300,
            initial_backoff_ms: 10,
            max_backoff_ms: 50,
            ..CrmRestConfig::new(format!("http://{addr}"))
        })
        .unwrap();
        let err = c.upsert(&upsert("D", 1)).await.unwrap_err();
        assert!(matches!(err, CrmError::Timeout { .. }), "{err:?}");
        assert_eq!(
            crm.writes_for("D"),
            1,
            "committed although the caller timed out"
        );
        let (ack, attempts) = c.upsert_with_retry(&upsert("D", 1)).await.unwrap();
        assert_eq!((attempts, ack.created), (1, false));
        assert_eq!(crm.stats().replays, 1);
        assert_eq!(crm.version_regressions(), 0);
    }

    #[tokio::test]
    async fn rate_limit_answers_429_with_retry_after() {
        let crm = SandboxCrm::new().with_rate_limit(2);
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, None);
        let mut limited = None;
        for i in 0..5 {
            if let Err(e) = c.upsert(&upsert(&format!("R{i}"), 1)).await {
                limited = Some(e);
                break;
            }
        }
        let err = limited.expect("a burst over the limit is refused");
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(1)));
        assert!(crm.stats().rate_limited >= 1);
        let (_, attempts) = c.upsert_with_retry(&upsert("R-last", 1)).await.unwrap();
        assert!(attempts >= 1);
        crm.set_rate_limit(None);
        for i in 0..10 {
            c.upsert(&upsert(&format!("S{i}"), 1)).await.unwrap();
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// `PATCH /contacts/{id}/crm-fields` as staff would, with the token `tkn`.
    async fn staff_edit(c: &CrmRestClient, external_id: &str, body: Value) -> reqwest::Response {
        http()
            .patch(format!("{}/crm-fields", c.contact_url(external_id)))
            .bearer_auth("tkn")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A sandbox with the token `tkn` and live contacts `G1`, `G2`, `G3`, each with staff
    /// notes; `G2` also has a marketing consent.
    async fn three_contacts() -> (SandboxCrm, CrmRestClient, JoinHandle<()>) {
        let crm = SandboxCrm::new().with_token("tkn");
        let (addr, task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, Some("tkn"));
        for id in ["G1", "G2", "G3"] {
            c.upsert(&upsert(id, 1)).await.unwrap();
            crm.crm_fields_set(id, object(json!({ "notes": format!("called {id}") })))
                .unwrap();
        }
        crm.crm_fields_set("G2", object(json!({ "marketing_consent": true })))
            .unwrap();
        (crm, c, task)
    }

    #[tokio::test]
    async fn crm_fields_survive_put_and_staff_edits_merge_keys() {
        let (crm, c, _task) = three_contacts().await;
        let res = staff_edit(
            &c,
            "G1",
            json!({ "contact_preferences": "email", "notes": null, "vip": "Иванов" }),
        )
        .await;
        assert_eq!(res.status(), 200);
        let edited: Value = res.json().await.unwrap();
        assert_eq!(
            edited["crm_fields"],
            json!({ "contact_preferences": "email", "vip": "Иванов" })
        );

        let mut next = upsert("G1", 2);
        next.fields = json!({ "last_name": "Сидорова" });
        let ack = c.upsert(&next).await.unwrap();
        assert!(!ack.created);
        let stored = crm.contact("G1").unwrap();
        assert_eq!(
            stored.fields,
            json!({ "last_name": "Сидорова" }),
            "fields replaced"
        );
        assert_eq!(
            stored.crm_fields,
            json!({ "contact_preferences": "email", "vip": "Иванов" }),
            "a PUT never touches crm_fields"
        );
        let debug = format!("{stored:?}");
        assert!(
            !debug.contains("Иванов") && !debug.contains("email") && !debug.contains("Сидорова"),
            "{debug}"
        );
        assert!(debug.contains("<2 fields hidden>"), "{debug}");

        let got: Value = http()
            .get(c.contact_url("G1"))
            .bearer_auth("tkn")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(got["fields"]["last_name"], "Сидорова");
        assert_eq!(got["crm_fields"]["contact_preferences"], "email");
        assert_eq!(
            (got["merged_into"].clone(), got["merged_from"].clone()),
            (Value::Null, json!([]))
        );

        assert_eq!(
            staff_edit(&c, "nobody", json!({ "a": 1 })).await.status(),
            404
        );
        let res = staff_edit(&c, "G1", json!(["not", "an", "object"])).await;
        assert_eq!(res.status(), 400);
        let res = http()
            .patch(format!("{}/crm-fields", c.contact_url("G1")))
            .json(&json!({ "notes": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "same token as PUT");
        let stats = crm.stats();
        assert_eq!(
            (stats.crm_field_edits, stats.rejected, stats.writes),
            (5, 2, 4)
        );
        assert!(crm.crm_fields_set("nobody", Map::new()).is_none());
    }

    #[tokio::test]
    async fn merge_applies_moves_crm_fields_and_leaves_a_tombstone() {
        let (crm, c, _task) = three_contacts().await;
        let survivor_id = crm.contact("G1").unwrap().id;
        let (ack, attempts) = c.merge_with_retry("G1", "G2", "env-m1").await.unwrap();
        assert_eq!(attempts, 1);
        assert_eq!(
            ack,
            MergeAck {
                merged: true,
                id: Some(survivor_id)
            }
        );

        let survivor = crm.contact("G1").unwrap();
        assert_eq!(
            survivor.crm_fields,
            json!({ "notes": "called G1", "marketing_consent": true }),
            "the survivor's own notes win; what it lacked comes from the loser"
        );
        assert_eq!(survivor.merged_from, ["G2"]);
        assert_eq!(survivor.merged_into, None);
        let loser = crm.contact("G2").unwrap();
        assert_eq!(loser.merged_into.as_deref(), Some("G1"));
        assert_eq!(loser.writes, 1, "the tombstone keeps its history");

        let live: Vec<String> = crm
            .live_contacts()
            .into_iter()
            .map(|c| c.external_id)
            .collect();
        assert_eq!(live, ["G1", "G3"]);
        assert_eq!(crm.contacts_len(), 2);
        assert_eq!(crm.snapshot().len(), 3, "the snapshot includes tombstones");
        let stats = crm.stats();
        assert_eq!(
            (stats.contacts, stats.merged_contacts, stats.merges),
            (2, 1, 1)
        );

        let res = http()
            .get(c.contact_url("G2"))
            .bearer_auth("tkn")
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "a merged contact is answered with its tombstone"
        );
        let got: Value = res.json().await.unwrap();
        assert_eq!(got["merged_into"], "G1");
        let all: Vec<StoredContact> = http()
            .get(format!("{}/_sandbox/contacts", c.config().base_url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all.len(), 3);
    }

    #[tokio::test]
    async fn merge_replay_and_missing_loser_are_not_merges() {
        let (crm, c, _task) = three_contacts().await;
        assert!(c.merge("G1", "G2", "env-m1").await.unwrap().merged);
        let replay = c.merge("G1", "G2", "env-m1").await.unwrap();
        assert!(!replay.merged, "a replay changes nothing");
        let missing = c.merge("G1", "never-delivered", "env-m2").await.unwrap();
        assert!(!missing.merged);
        assert_eq!(missing.id, replay.id);
        // The survivor merged on: an old merge repeated is still a harmless replay.
        assert!(c.merge("G3", "G1", "env-m3").await.unwrap().merged);
        assert!(!c.merge("G1", "G2", "env-m1").await.unwrap().merged);
        let stats = crm.stats();
        assert_eq!(
            (
                stats.merges,
                stats.contacts,
                stats.merged_contacts,
                stats.conflicts
            ),
            (2, 1, 2, 0)
        );
        let g3 = crm.contact("G3").unwrap();
        assert_eq!(g3.merged_from, ["G1"]);
        assert_eq!(
            g3.crm_fields,
            json!({ "notes": "called G3", "marketing_consent": true }),
            "staff data carried along a chain of merges"
        );
    }

    #[tokio::test]
    async fn merge_conflicts_and_refusals() {
        let (crm, c, _task) = three_contacts().await;
        c.merge("G1", "G2", "env-m1").await.unwrap();

        let err = c.merge_with_retry("G3", "G2", "env-m2").await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(409), Some("conflict")));
        assert_eq!(err.attempts(), Some(1), "permanent");
        let err = c.merge_with_retry("G9", "G3", "env-m3").await.unwrap_err();
        assert_eq!((err.status(), err.code()), (Some(404), Some("not_found")));
        assert!(!err.is_transient());
        let err = c.merge_with_retry("G2", "G3", "env-m4").await.unwrap_err();
        assert!(err.is_merged(), "a survivor merged away: {err}");
        assert!(
            crm.contact("G3").unwrap().merged_into.is_none(),
            "nothing applied"
        );

        let url = c.merge_url("G1");
        let raw = |key: Option<&'static str>, body: Value| {
            let mut req = http().post(&url).bearer_auth("tkn").json(&body);
            if let Some(key) = key {
                req = req.header("Idempotency-Key", key);
            }
            req.send()
        };
        let cases: Vec<(Option<&'static str>, Value, u16, &str)> = vec![
            (
                Some("e"),
                json!({ "from": "G1", "envelope_id": "e" }),
                422,
                "same_contact",
            ),
            (
                None,
                json!({ "from": "G3", "envelope_id": "e" }),
                400,
                "missing_idempotency_key",
            ),
            (Some("e"), json!("G3"), 400, "invalid_json"),
            (
                Some("e"),
                json!({ "envelope_id": "e" }),
                422,
                "missing_field",
            ),
            (
                Some("e"),
                json!({ "from": "", "envelope_id": "e" }),
                422,
                "invalid_field",
            ),
            (
                Some("e"),
                json!({ "from": "G3", "envelope_id": "e", "x": 1 }),
                422,
                "unknown_field",
            ),
            (
                Some("f"),
                json!({ "from": "G3", "envelope_id": "e" }),
                422,
                "idempotency_key_mismatch",
            ),
        ];
        let before = crm.rejected();
        for (key, body, status, code) in &cases {
            let res = raw(*key, body.clone()).await.unwrap();
            assert_eq!(res.status().as_u16(), *status, "{code}");
            let answer: Value = res.json().await.unwrap();
            assert_eq!(answer["error"], *code);
        }
        assert_eq!(crm.rejected() - before, cases.len() as u64);
        let res = http()
            .post(&url)
            .header("Idempotency-Key", "e")
            .json(&json!({ "from": "G3", "envelope_id": "e" }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "same token as PUT");
        let stats = crm.stats();
        assert_eq!((stats.merges, stats.conflicts, stats.contacts), (1, 2, 2));
    }

    #[tokio::test]
    async fn put_to_a_merged_contact_is_refused() {
        let (crm, c, _task) = three_contacts().await;
        c.merge("G1", "G2", "env-m1").await.unwrap();
        let writes = crm.total_writes();
        let err = c.upsert_with_retry(&upsert("G2", 2)).await.unwrap_err();
        assert!(err.is_merged() && !err.is_transient(), "{err}");
        assert_eq!(err.attempts(), Some(1));
        let res = http()
            .put(c.contact_url("G2"))
            .bearer_auth("tkn")
            .header("Idempotency-Key", "env-G2-3")
            .json(&upsert("G2", 3))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 409);
        let answer: Value = res.json().await.unwrap();
        assert_eq!(
            (answer["error"].as_str(), answer["merged_into"].as_str()),
            (Some("merged"), Some("G1"))
        );
        assert_eq!(crm.total_writes(), writes, "nothing written");
        assert_eq!(crm.contact("G2").unwrap().version, 1);
        assert_eq!(crm.contacts_len(), 2, "never recreated");
        assert_eq!(
            staff_edit(&c, "G2", json!({ "notes": "x" })).await.status(),
            409
        );
        assert_eq!(crm.stats().conflicts, 3);
    }

    #[tokio::test]
    async fn merges_pass_the_fault_gate_and_are_retried() {
        let (crm, c, _task) = three_contacts().await;
        crm.inject_status(503, 2);
        crm.inject_rate_limit(1, 1);
        let started = Instant::now();
        let (ack, attempts) = c.merge_with_retry("G1", "G2", "env-m1").await.unwrap();
        assert_eq!((attempts, ack.merged), (4, true));
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "Retry-After honoured"
        );
        assert_eq!((crm.stats().faults_served, crm.stats().merges), (3, 1));

        // Applied, but the caller timed out: the retry is answered as a replay.
        crm.inject_delay(Duration::from_millis(1500), 1);
        let impatient = CrmRestClient::new(CrmRestConfig {
            timeout_ms: 300,
            ..c.config().clone()
        })
        .unwrap();
        let (ack, attempts) = impatient
            .merge_with_retry("G1", "G3", "env-m2")
            .await
            .unwrap();
        assert_eq!((attempts, ack.merged), (2, false));
        assert_eq!(
            crm.contact("G3").unwrap().merged_into.as_deref(),
            Some("G1")
        );
        assert_eq!(crm.stats().merges, 2);
    }

    #[tokio::test]
    async fn a_flaky_window_fails_the_share_asked_with_5xx_then_ends() {
        let crm = SandboxCrm::new();
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, None);
        crm.inject_flaky(30, 0, Duration::ZERO, Duration::from_secs(600), 7);
        assert!(crm.flaky_active());
        let mut failed = 0u64;
        for i in 0..1000 {
            if let Err(e) = c.upsert(&upsert(&format!("F{i}"), 1)).await {
                assert!(
                    matches!(e.status(), Some(500 | 502 | 503)) && e.is_transient(),
                    "{e}"
                );
                failed += 1;
            }
        }
        // 30 % of 1,000 with a binomial spread of about 15.
        assert!((240..=360).contains(&failed), "{failed} of 1000 failed");
        let stats = crm.stats();
        assert_eq!((stats.flaky_errors, stats.writes), (failed, 1000 - failed));
        assert_eq!(stats.flaky_timeouts, 0);

        // A window of no length is over at once: the CRM is healthy again.
        crm.inject_flaky(100, 0, Duration::ZERO, Duration::ZERO, 7);
        assert!(!crm.flaky_active());
        c.upsert(&upsert("after", 1)).await.unwrap();
        assert_eq!(crm.stats().flaky_errors, failed);
    }

    #[tokio::test]
    async fn flaky_timeouts_hold_the_answer_past_the_callers_timeout() {
        let crm = SandboxCrm::new();
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let impatient = CrmRestClient::new(CrmRestConfig {
            timeout_ms: 100,
            max_attempts: 1,
            ..CrmRestConfig::new(format!("http://{addr}"))
        })
        .unwrap();
        crm.inject_flaky(
            100,
            100,
            Duration::from_millis(400),
            Duration::from_secs(600),
            3,
        );
        let ids: Vec<String> = (0..12).map(|i| format!("T{i}")).collect();
        for id in &ids {
            let err = impatient.upsert(&upsert(id, 1)).await.unwrap_err();
            assert!(err.is_transient(), "{err}");
            assert!(err.to_string().contains("did not answer"), "{err}");
        }
        let stats = crm.stats();
        assert_eq!(stats.flaky_timeouts, 12);
        let applied = ids.iter().filter(|id| crm.contact(id).is_some()).count() as u64;
        assert_eq!(applied, stats.flaky_timeouts_applied);
        assert!(
            applied > 0 && applied < 12,
            "both kinds of timeout: {applied} of 12 applied"
        );
        crm.clear_faults();
        assert!(!crm.flaky_active());
    }

    #[test]
    fn flaky_decisions_depend_on_seed_key_and_count_not_on_arrival_order() {
        let window = |seed| Flaky {
            until: Instant::now() + Duration::from_secs(60),
            per_10k: 3000,
            timeout_percent: 50,
            hold: Duration::from_millis(10),
            seed,
            seen: HashMap::new(),
        };
        let keys: Vec<String> = (0..200).map(|i| format!("K{i}")).collect();
        let (mut a, mut b) = (window(11), window(11));
        let forward: Vec<FlakyOutcome> = keys.iter().map(|k| a.decide(k)).collect();
        let mut backward: Vec<FlakyOutcome> = keys.iter().rev().map(|k| b.decide(k)).collect();
        backward.reverse();
        assert_eq!(forward, backward);
        // The second write of a key is decided afresh, not a copy of the first.
        let second: Vec<FlakyOutcome> = keys.iter().map(|k| a.decide(k)).collect();
        assert_ne!(forward, second);
        let other: Vec<FlakyOutcome> = keys.iter().map(|k| window(12).decide(k)).collect();
        assert_ne!(forward, other, "another seed, other failures");
        let kinds = |v: &[FlakyOutcome]| {
            (
                v.iter()
                    .filter(|o| matches!(o, FlakyOutcome::Error(_)))
                    .count(),
                v.iter()
                    .filter(|o| matches!(o, FlakyOutcome::Timeout { .. }))
                    .count(),
            )
        };
        let (errors, timeouts) = kinds(&forward);
        assert!(
            errors > 10 && timeouts > 10,
            "{errors} errors, {timeouts} timeouts"
        );
    }

    #[tokio::test]
    async fn rejected_keys_are_refused_for_good_until_cleared() {
        let crm = SandboxCrm::new();
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, None);
        let res = http()
            .post(format!("http://{addr}/_sandbox/faults"))
            .json(&json!({ "kind": "reject_keys", "external_ids": ["R1", "R2"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        for _ in 0..3 {
            let err = c.upsert_with_retry(&upsert("R1", 1)).await.unwrap_err();
            assert_eq!(
                (err.status(), err.attempts()),
                (Some(422), Some(1)),
                "{err}"
            );
            assert!(!err.is_transient());
        }
        c.upsert(&upsert("OK1", 1)).await.unwrap();
        assert!(crm.contact("R1").is_none());
        assert_eq!(crm.stats().key_rejections, 3);
        crm.clear_faults();
        c.upsert(&upsert("R1", 1)).await.unwrap();
        assert_eq!(crm.contacts_len(), 2);

        for (body, code) in [
            (
                json!({ "kind": "flaky", "percent": 101, "timeout_millis": 1, "duration_millis": 1 }),
                400,
            ),
            (
                json!({ "kind": "reject_keys", "external_ids": ["X"], "status": 99 }),
                400,
            ),
            (
                json!({ "kind": "flaky", "percent": 30, "timeout_millis": 1500, "duration_millis": 60000 }),
                200,
            ),
        ] {
            let res = http()
                .post(format!("http://{addr}/_sandbox/faults"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), code, "{body}");
        }
        assert!(crm.flaky_active());
    }

    #[test]
    fn token_bucket_refills() {
        let mut bucket = TokenBucket::new(2);
        let t0 = bucket.last;
        assert!(bucket.take(t0).is_ok());
        assert!(bucket.take(t0).is_ok());
        let wait = bucket.take(t0).unwrap_err();
        assert!(
            wait <= Duration::from_millis(500) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(bucket.take(t0 + Duration::from_millis(500)).is_ok());
        assert!(bucket.take(t0 + Duration::from_secs(10)).is_ok());
    }

    #[test]
    fn fault_specs_parse() {
        let spec: FaultSpec =
            serde_json::from_str(r#"{ "kind": "status", "status": 503, "count": 5 }"#).unwrap();
        assert_eq!(
            spec,
            FaultSpec::Status {
                status: 503,
                count: 5
            }
        );
        let spec: FaultSpec =
            serde_json::from_str(r#"{ "kind": "delay", "millis": 15000 }"#).unwrap();
        assert_eq!(
            spec,
            FaultSpec::Delay {
                millis: 15000,
                count: 1
            }
        );
        let spec: FaultSpec = serde_json::from_str(r#"{ "kind": "clear" }"#).unwrap();
        assert_eq!(spec, FaultSpec::Clear);
        let spec: FaultSpec = serde_json::from_str(
            r#"{ "kind": "flaky", "percent": 30, "timeout_millis": 1500, "duration_millis": 60000 }"#,
        )
        .unwrap();
        assert_eq!(
            spec,
            FaultSpec::Flaky {
                percent: 30,
                timeout_percent: 50,
                timeout_millis: 1500,
                duration_millis: 60000,
                seed: 0
            }
        );
        let spec: FaultSpec =
            serde_json::from_str(r#"{ "kind": "reject_keys", "external_ids": ["C1"] }"#).unwrap();
        assert_eq!(
            spec,
            FaultSpec::RejectKeys {
                external_ids: vec!["C1".into()],
                status: 422
            }
        );
    }

    #[tokio::test]
    async fn listing_pages_live_contacts_by_external_id() {
        let crm = SandboxCrm::new().with_token("tkn");
        let (addr, _task) = crm.clone().serve("127.0.0.1:0").await.unwrap();
        let c = client(addr, Some("tkn"));
        for id in ["C3", "C1", "C5", "C2", "C4"] {
            c.upsert(&upsert(id, 1)).await.unwrap();
        }
        let merge = c.merge("C4", "C5", "env-m").await.unwrap();
        assert!(merge.merged);
        assert!(crm.delete_contact("C3").is_some());
        assert!(crm.delete_contact("C3").is_none());
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, _) = c
                .list_contacts_with_retry(after.as_deref(), 2)
                .await
                .unwrap();
            for l in &page.contacts {
                assert_eq!(l.source.as_deref(), Some("abs"));
                assert_eq!(l.contact.fields["last_name"], "Петрова");
                seen.push(l.contact.external_id.clone());
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        // Deleted and merged-away contacts are not listed.
        assert_eq!(seen, ["C1", "C2", "C4"]);
        let base = format!("http://{addr}/contacts");
        for bad in ["0", "1001", "x"] {
            let res = http()
                .get(format!("{base}?limit={bad}"))
                .bearer_auth("tkn")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 400, "limit={bad}");
        }
        let res = http().get(&base).send().await.unwrap();
        assert_eq!(res.status(), 401, "the token is required");
        let all: Value = http()
            .get(&base)
            .bearer_auth("tkn")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(all["contacts"].as_array().map(Vec::len), Some(3));
        assert!(all["next"].is_null());
    }
}
