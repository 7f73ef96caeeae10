//! Connectors to the outside world.
//!
//! - [`file_drop`]: the mechanics of a directory that legacy systems drop customer files into:
//!   finding complete files, claiming them, decoding and parsing them, quarantining bad rows
//!   and archiving what was processed. The hub runtime drives the loop.
//! - [`crm`]: sinks that deliver customer records into the CRM.

pub mod crm;
pub mod file_drop;
