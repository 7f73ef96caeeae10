//! Connectors to the outside world.
//!
//! - [`file_drop`]: the mechanics of a directory that legacy systems drop customer files into:
//!   finding complete files, claiming them, decoding and parsing them, quarantining bad rows
//!   and archiving what was processed. The hub runtime drives the loop.
//! - [`formats`]: streaming readers of the bank file formats a core bank or processing
//!   centre drops (statement CSV, fixed width, ISO 20022 camt, SWIFT MT940/MT942, 1C
//!   ClientBankExchange) into canonical records.
//! - [`crm`]: sinks that deliver customer records into the CRM.
//! - [`tls`]: CA bundles, client certificates and the plain-HTTP rule of every client.

pub mod aml;
pub mod crm;
pub mod file_drop;
pub mod formats;
pub mod rest_poll;
pub mod soap;
pub mod tls;
mod transport;
pub mod webhook;
