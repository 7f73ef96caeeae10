//! A simulated core-banking system for the end-to-end tests of the HTTP sources.
//!
//! - [`data`]: a generated bank (100,000+ customers cost nothing: every customer, account
//!   and transaction is a function of its index; only later changes are kept).
//! - [`rest`]: its REST API — paged customer listings by change cursor (page numbers,
//!   offsets, cursor tokens or Link headers), OAuth 2.0 client credentials or an API key,
//!   request counters.
//! - [`faults`]: what it can be told to do wrong (latency, `5xx`, `429` with `Retry-After`,
//!   hanging past the client's timeout, malformed pages, a record repeated on the next page).
//! - [`webhooks`]: the bank as a webhook sender, signing correctly or not.

pub mod data;
pub mod faults;
pub mod rest;
pub mod soap;
pub mod webhooks;

pub use data::Bank;
pub use faults::FaultSpec;
pub use rest::{CoreBankSim, Paging, SimStats};
pub use webhooks::{Signing, WebhookSender, customer_event};

/// The `[sources.mapping]` section for the simulator's customer records, found at `root`
/// (`$` for a record itself, `$.customer` inside a webhook event); `version` names the
/// version path or is empty to let the source supply one.
pub fn customer_mapping(root: &str, version: Option<&str>) -> String {
    let version = version
        .map(|v| format!("version = \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[sources.mapping]
entity = "party"
key = "{root}.id"
{version}
[sources.mapping.fields]
kind = {{ path = "{root}.type", map = {{ FL = "person", UL = "organisation" }} }}
last_name = "{root}.last_name"
first_name = "{root}.first_name"
middle_name = "{root}.middle_name"
full_name = "{root}.full_name"
inn = {{ path = "{root}.inn", validate = "inn" }}
passport = {{ path = "{root}.passport", validate = "passport" }}
birth_date = "{root}.birth_date"
phones = {{ path = "{root}.phone", validate = "phone" }}
emails = {{ path = "{root}.email", validate = "email" }}
address = "{root}.address.text"
postal_code = "{root}.address.postal_code"
segment = "{root}.segment"
status = "{root}.status"
"#
    )
}
