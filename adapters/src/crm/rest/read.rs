//! [`CrmReader`] for the generic REST CRM: `GET /contacts/{external_id}` and the keyset
//! listing `GET /contacts?after=&limit=`, both retried like a write. The cursor of
//! [`CrmReader::list`] is the external id to list after; a limit above
//! [`MAX_LIST_LIMIT`] is cut to it.

use async_trait::async_trait;

use super::error::CrmError;
use super::service::CrmRestClient;
use super::service::MAX_LIST_LIMIT;
use crate::crm::connector::CrmFailure;
use crate::crm::read::{ContactPage, CrmContact, CrmReader};

#[async_trait]
impl CrmReader for CrmRestClient {
    fn reader_name(&self) -> &'static str {
        "crm_rest"
    }

    async fn get(&self, external_id: &str) -> Result<Option<CrmContact>, CrmFailure> {
        self.get_with_retry(external_id)
            .await
            .map(|(contact, _)| contact)
            .map_err(|e| failure(&e))
    }

    async fn list(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Option<ContactPage>, CrmFailure> {
        let (page, _) = self
            .list_contacts_with_retry(cursor, limit.clamp(1, MAX_LIST_LIMIT))
            .await
            .map_err(|e| failure(&e))?;
        Ok(Some(ContactPage {
            contacts: page.contacts.into_iter().map(|c| c.contact).collect(),
            next: page.next,
        }))
    }
}

/// The connectors' failure shape of a client error (message safe to log).
fn failure(e: &CrmError) -> CrmFailure {
    let last = e.last();
    let base = if e.is_auth() {
        CrmFailure::auth(e.to_string())
    } else if e.is_transient() {
        CrmFailure::transient(e.to_string())
    } else {
        CrmFailure::permanent(e.to_string())
    };
    let mut f = base
        .with_code(last.code().map(str::to_owned))
        .with_retry_after(last.retry_after());
    if let Some(status) = last.status() {
        f = f.with_status(status);
    }
    f.attempts = e.attempts().unwrap_or(1);
    f
}
