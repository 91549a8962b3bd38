//! The contacts of the tenants' address books (the types are `crate::contacts`'s):
//! personal ones of a user and the tenant's shared ones, with their numbers, which the
//! call path looks callers up in.

use super::StoreResult;
use crate::contacts::{Contact, ContactId, ContactNumber, ContactOwner};
use async_trait::async_trait;
use tsps_actors::{TenantId, UserId};

/// Contacts: `ContactOwner::User` for personal ones, `Shared` for the tenant's. A
/// contact asked for under another owner (or tenant) is `NotFound` ("contact").
#[async_trait]
pub trait Contacts: Send + Sync {
    /// `contact.tenant_id` must equal `tenant` (else `Invalid`); numbers already E.164.
    async fn create_contact(&self, tenant: TenantId, contact: &Contact) -> StoreResult<()>;
    /// Several contacts in one transaction (an import): all or none.
    async fn create_contacts(&self, tenant: TenantId, contacts: &[Contact]) -> StoreResult<()>;
    async fn get_contact(
        &self,
        tenant: TenantId,
        owner: ContactOwner,
        id: ContactId,
    ) -> StoreResult<Contact>;
    /// By name, then id.
    async fn list_contacts(
        &self,
        tenant: TenantId,
        owner: ContactOwner,
    ) -> StoreResult<Vec<Contact>>;
    /// Replaces fields and numbers of the contact with `contact.id` under `contact.owner`.
    async fn update_contact(&self, tenant: TenantId, contact: &Contact) -> StoreResult<()>;
    async fn delete_contact(
        &self,
        tenant: TenantId,
        owner: ContactOwner,
        id: ContactId,
    ) -> StoreResult<()>;
    /// Every number the user may be called from that a contact names: the user's own
    /// contacts first, then the tenant-shared ones; each part by number. Used by the
    /// call path to find the caller.
    async fn contact_lookup_table(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> StoreResult<Vec<ContactNumber>>;
}
