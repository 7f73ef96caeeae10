//! The wire shapes of the CRM contact API (see the module documentation of
//! [`crate::crm::rest`]).
//!
//! Contract: `ContactUpsert`'s `Debug` hides `fields`, which hold customer data; a merge
//! carries external ids and an envelope id only.

use serde::{Deserialize, Serialize};

/// The body of `PUT /contacts/{external_id}`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactUpsert {
    /// The contact's key in the source system; also the last path segment.
    pub external_id: String,
    /// Monotonic per source entity; the CRM keeps the highest.
    pub version: i64,
    /// Name of the source the record came from.
    pub source: String,
    /// The envelope the record travelled in; also the `Idempotency-Key`.
    pub envelope_id: String,
    /// The contact's fields as the CRM names them.
    pub fields: serde_json::Value,
}

impl std::fmt::Debug for ContactUpsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let field_count = self.fields.as_object().map_or(0, serde_json::Map::len);
        f.debug_struct("ContactUpsert")
            .field("external_id", &self.external_id)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("envelope_id", &self.envelope_id)
            .field("fields", &format_args!("<{field_count} fields hidden>"))
            .finish()
    }
}

/// The CRM's acknowledgement of an upsert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmAck {
    /// The CRM's own id of the contact.
    pub id: String,
    /// The external id the CRM stored.
    pub external_id: String,
    /// The version the CRM stored.
    pub version: i64,
    /// Whether the contact was created (`201`) rather than updated (`200`).
    pub created: bool,
}

/// The body of `POST /contacts/{survivor}/merge`: merge the contact `from` into the one in
/// the path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactMerge {
    /// The external id of the contact that is merged away (the loser).
    pub from: String,
    /// The envelope that asked for the merge; also the `Idempotency-Key`.
    pub envelope_id: String,
}

/// The CRM's acknowledgement of a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeAck {
    /// Whether this call merged the loser; `false` when there was nothing to merge (the
    /// loser never reached the CRM, or this merge was already applied).
    pub merged: bool,
    /// The CRM's own id of the surviving contact, when the CRM named it.
    pub id: Option<String>,
}

/// One contact of `GET /contacts?after=&limit=`: the contact and the source named by its
/// last write, when the CRM reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedContact {
    /// The contact (its `Debug` hides the fields).
    pub contact: crate::crm::read::CrmContact,
    /// The `source` of the last `PUT`, when the CRM stores it.
    pub source: Option<String>,
}

/// One page of `GET /contacts?after=&limit=`, ordered by external id.
#[derive(Debug, Clone, PartialEq)]
pub struct ContactList {
    /// The contacts of this page.
    pub contacts: Vec<ListedContact>,
    /// The external id to pass as `after` for the next page; `None` on the last one.
    pub next: Option<String>,
}
