//! Reading contacts back from a CRM: what `hub backfill --dry-run` compares the source with,
//! and what a reconcile (bank vs CRM by per-record hashes) can build on.
//!
//! Contract:
//! - [`CrmReader::get`] looks one contact up by the hub's external id with a single request:
//!   `Ok(None)` when the CRM has no such contact, `Ok(Some(contact))` otherwise. Transient
//!   failures (timeouts, 429, 5xx) are retried in place like writes; what is left is a
//!   [`CrmFailure`] whose message names the CRM, status and error code, never a field value.
//! - [`CrmReader::list`] pages through every contact the integration owns, when the CRM's
//!   API offers such a listing; `Ok(None)` when it does not (the caller then reads by id).
//! - [`CrmContact::fields`] are in the shape the sink writes them: the canonical payload for
//!   the generic REST CRM, the CRM's own field names for a vendor connector (see
//!   [`crate::crm::connector::FieldMap`]). `Debug` hides them: they are customer data.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::crm::connector::CrmFailure;

/// A contact as the CRM holds it.
#[derive(Clone, PartialEq)]
pub struct CrmContact {
    /// The CRM's own id of the contact, when it has one.
    pub crm_id: Option<String>,
    /// The hub's key of the contact (source key or golden id).
    pub external_id: String,
    /// The version of the last write, when the CRM stores it (the generic REST CRM does;
    /// vendor CRMs do not).
    pub version: Option<i64>,
    /// The fields the integration owns, as the sink wrote them.
    pub fields: Map<String, Value>,
    /// For a contact merged into another in the CRM: the survivor's external id. Writes to
    /// it are refused, so a backfill cannot repair it.
    pub merged_into: Option<String>,
}

impl std::fmt::Debug for CrmContact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmContact")
            .field("crm_id", &self.crm_id)
            .field("external_id", &self.external_id)
            .field("version", &self.version)
            .field(
                "fields",
                &format_args!("<{} fields hidden>", self.fields.len()),
            )
            .field("merged_into", &self.merged_into)
            .finish()
    }
}

/// One page of [`CrmReader::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct ContactPage {
    /// The contacts of this page.
    pub contacts: Vec<CrmContact>,
    /// What to pass to get the next page; `None` on the last one.
    pub next: Option<String>,
}

/// Reads contacts from a CRM. See the module documentation for the contract.
#[async_trait]
pub trait CrmReader: Send + Sync {
    /// `"crm_rest"`, `"salesforce"`, `"dynamics"` or `"bitrix24"`.
    fn reader_name(&self) -> &'static str;

    /// The contact with this external id, or `None` when the CRM has none.
    async fn get(&self, external_id: &str) -> Result<Option<CrmContact>, CrmFailure>;

    /// A page of every contact, starting after `cursor` (`None`: the first page), at most
    /// `limit` contacts; `Ok(None)` when the CRM's API has no such listing.
    async fn list(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Option<ContactPage>, CrmFailure> {
        let _ = (cursor, limit);
        Ok(None)
    }
}
