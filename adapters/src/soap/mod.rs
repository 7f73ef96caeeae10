//! The SOAP source adapter: calls a core-banking SOAP service (1.1 or 1.2), authenticates
//! with a WS-Security UsernameToken, and streams the records out of the answer.
//!
//! # Contract
//!
//! - **Requests** ([`envelope`]): the body of each operation is a template with
//!   `{{cursor}}`, `{{page}}` and `{{today}}` placeholders, XML-escaped when filled in. SOAP
//!   1.1 requests go out as `text/xml; charset=utf-8` with a `SOAPAction` header, SOAP 1.2
//!   requests as `application/soap+xml; charset=utf-8; action="..."`.
//! - **Security** ([`wsse`]): `PasswordText`, or `PasswordDigest` =
//!   Base64(SHA-1(nonce + created + password)) with a fresh random nonce and `wsu:Created`
//!   for every request (retries included, so a replay cache on the server never sees the
//!   same nonce twice).
//! - **Answers** ([`client`], [`response`]): the body is spooled to an anonymous temporary
//!   file while it arrives, then pulled through an XML parser one event at a time; a record
//!   element at the configured path below `Body` is turned into JSON
//!   ([`response::RecordReader`]) and handed out on its own, so memory stays bounded by the
//!   largest record, whatever the size of the answer. Elements are matched on local names:
//!   prefixes differ between services and between answers.
//! - **Faults** ([`fault`]): a `Fault` as the first child of `Body` is a fault whatever the
//!   HTTP status (SOAP 1.1 servers answer 500, some answer 200). Client/Sender faults (and
//!   version, must-understand and encoding faults) are permanent; Server/Receiver faults are
//!   transient and retried in place, as are timeouts, connection failures, 408, 429 and 5xx
//!   answers without a fault. `Retry-After` is honoured.
//! - **No personal data** in an error or log line: errors carry the operation, the element
//!   path, byte offset and line, the fault code and the fault string (cut to 256
//!   characters) — never a record's values.

pub mod client;
pub mod config;
pub mod envelope;
pub mod error;
pub mod fault;
pub mod response;
pub mod wsse;
pub mod xml_json;

#[cfg(test)]
mod tests;

pub use client::{SoapClient, SpooledResponse};
pub use config::{
    OperationConfig, PasswordType, SoapConfig, SoapTlsConfig, SoapVersion, WsSecurityConfig,
};
pub use envelope::{RequestTemplate, TemplateVars};
pub use error::{ParseError, SoapError};
pub use fault::{FaultClass, SoapFault};
pub use response::{RecordReader, SoapRecord};
