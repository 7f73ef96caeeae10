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

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(root: &str, version: Option<&str>) -> mapping::declarative::CompiledMapping {
        let text = customer_mapping(root, version);
        let table: toml::Table = toml::from_str(&text).unwrap();
        let section = table["sources"]["mapping"].clone();
        let spec: mapping::declarative::RecordMapping = section.try_into().unwrap();
        spec.compile(&|_| Err("no secrets".into())).unwrap()
    }

    #[test]
    fn every_generated_customer_maps_cleanly() {
        let bank = Bank::new(3_000, 20_261_125);
        let direct = compiled("$", None);
        let in_event = compiled("$.customer", Some("$.customer.version"));
        for i in 0..bank.len() {
            let m = direct
                .apply(&bank.customer(i))
                .unwrap_or_else(|e| panic!("customer {i}: {e:?}"));
            assert_eq!(m.key, Bank::customer_id(i));
            assert_eq!(m.version, None);
            let m = in_event
                .apply(&customer_event(&bank, i, "e"))
                .unwrap_or_else(|e| panic!("event {i}: {e:?}"));
            assert_eq!(m.version, Some(1));
        }
    }
}
