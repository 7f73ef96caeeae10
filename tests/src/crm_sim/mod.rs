//! Simulated vendor CRMs for the connector tests and the connector benchmark: each an axum
//! server reproducing the endpoints the connectors use, their error bodies, their rate
//! limits, their validation and the duplicates a real org can hold.
//!
//! - [`salesforce`]: REST API upsert by external id, single and sObject Collections; a
//!   request budget (`403 REQUEST_LIMIT_EXCEEDED`), `300` / `DUPLICATE_EXTERNAL_ID` for a
//!   pre-seeded duplicate external id, per-record errors on demand (`UNABLE_TO_LOCK_ROW`...).
//! - [`dynamics`]: Dataverse Web API upsert by alternate key; service protection (`429` with
//!   `Retry-After` after N requests in a sliding window), duplicate detection (`0x80040333`).
//! - [`bitrix24`]: webhook REST with `crm.contact.list/add/update` and `batch`; the portal's
//!   leaky bucket (`503 QUERY_LIMIT_EXCEEDED`), `ORIGIN_ID` duplicates, multiple fields.
//!
//! Each keeps its state for assertions (records by external id, request, write and
//! rejection counts) and takes injected faults, queued and consumed one per HTTP request
//! ([`Fault`]). Customer data is never logged.

pub mod bitrix24;
pub mod dynamics;
pub mod salesforce;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::task::JoinHandle;

/// What the next request gets instead of (or before) its normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Served normally (to place a later fault on a later request).
    Pass,
    /// Answered with this status and the CRM's error body for it (nothing is written).
    Status(u16),
    /// Served normally, but the answer is held this long (longer than the client's
    /// timeout): the CRM applied a write the client never hears about.
    Hang(Duration),
}

/// A queue of faults, each used by `count` requests in order.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    queue: VecDeque<(Fault, u32)>,
}

impl Faults {
    pub(crate) fn push(&mut self, fault: Fault, count: u32) {
        if count > 0 {
            self.queue.push_back((fault, count));
        }
    }

    pub(crate) fn next(&mut self) -> Option<Fault> {
        let (fault, left) = self.queue.front_mut()?;
        let fault = *fault;
        *left -= 1;
        if *left == 0 {
            self.queue.pop_front();
        }
        Some(fault)
    }

    pub(crate) fn pending(&self) -> u64 {
        self.queue.iter().map(|(_, n)| u64::from(*n)).sum()
    }
}

/// Binds `addr` (`127.0.0.1:0` for any port) and serves `app` in a background task.
pub(crate) async fn serve(
    app: Router,
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((local, task))
}

/// The number of characters of a string value (the CRMs limit characters, not bytes).
pub(crate) fn chars(v: &serde_json::Value) -> usize {
    v.as_str().map_or(0, |s| s.chars().count())
}
