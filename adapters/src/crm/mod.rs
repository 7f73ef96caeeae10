//! CRM sinks: clients that deliver customer records to the CRM.
//!
//! - [`rest`]: the generic REST CRM API (idempotent `PUT` per contact).
//! - [`connector`]: the interface the sink calls to deliver into a vendor CRM
//!   ([`connector::CrmConnector`]), with the shared retry loop and field mapping.
//! - [`salesforce`]: Salesforce REST API, upsert by external id (sObject Collections).
//! - [`dynamics`]: Dynamics 365 / Dataverse Web API, upsert by alternate key.
//! - [`bitrix24`]: Bitrix24 REST through an inbound webhook, find by `ORIGIN_ID` then add or
//!   update, in `batch` calls of up to 50 commands, paced to the portal's request limit.
//! - [`read`]: reading contacts back ([`read::CrmReader`]), for dry runs and reconciliation.

pub mod bitrix24;
pub mod connector;
pub mod dynamics;
pub mod read;
pub mod rest;
pub mod salesforce;
