//! CRM sinks: clients that deliver customer records to the CRM.
//!
//! - [`rest`]: the generic REST CRM API (idempotent `PUT` per contact).

pub mod rest;
