//! Users and what is kept per user: the personal feature server's profile and
//! presence, the tenant tier's policy ([`UserPolicy`]) and the subscriber table (who
//! may watch the user).

use super::{StoreResult, UserPolicy};
use async_trait::async_trait;
use tsps_actors::feature::{Presence, Profile};
use tsps_actors::model::User;
use tsps_actors::presence::WatchRule;
use tsps_actors::{TenantId, UserId};

/// Users with their profiles, policies and watch rules. `user.tenant_id` must equal
/// `tenant` (else `Invalid`); a user of another tenant is `NotFound` ("user").
#[async_trait]
pub trait Users: Send + Sync {
    async fn create_user(&self, tenant: TenantId, user: &User) -> StoreResult<()>;
    async fn get_user(&self, tenant: TenantId, id: UserId) -> StoreResult<User>;
    async fn find_user_by_extension(
        &self,
        tenant: TenantId,
        extension: &str,
    ) -> StoreResult<Option<User>>;
    /// By extension.
    async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>>;
    async fn update_user(&self, tenant: TenantId, user: &User) -> StoreResult<()>;
    /// Deletes the user with its devices, DIDs and bindings; call records keep the
    /// call but lose the link to the user.
    async fn delete_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()>;

    // The personal feature server.
    /// The user's profile and presence: the defaults (`Profile::default()`,
    /// available) when none were stored.
    async fn get_profile(&self, tenant: TenantId, user: UserId)
        -> StoreResult<(Profile, Presence)>;
    /// Replaces the profile (validated by the caller); keeps the presence.
    async fn put_profile(
        &self,
        tenant: TenantId,
        user: UserId,
        profile: &Profile,
    ) -> StoreResult<()>;
    /// Keeps the profile.
    async fn set_presence(
        &self,
        tenant: TenantId,
        user: UserId,
        presence: Presence,
    ) -> StoreResult<()>;

    /// Accept when none was stored.
    async fn get_user_policy(&self, tenant: TenantId, user: UserId) -> StoreResult<UserPolicy>;
    /// `Invalid` unless `external_uri` is set exactly for mode external.
    async fn put_user_policy(
        &self,
        tenant: TenantId,
        user: UserId,
        policy: &UserPolicy,
    ) -> StoreResult<()>;
    /// Every user of the tenant with its policy (accept when none stored), by extension.
    async fn list_user_policies(&self, tenant: TenantId) -> StoreResult<Vec<(UserId, UserPolicy)>>;

    // The subscriber table: who may watch a user (`tsps_actors::presence::rules`); the
    // directory snapshot carries it to SIP and the portal.
    /// `Anyone` when nothing is stored; watchers that were deleted since are left out.
    async fn get_watch_rule(&self, tenant: TenantId, user: UserId) -> StoreResult<WatchRule>;
    /// `Anyone` removes the restriction. Each listed watcher must be a user of `tenant`
    /// (`Invalid` otherwise); duplicates are dropped.
    async fn put_watch_rule(
        &self,
        tenant: TenantId,
        user: UserId,
        rule: &WatchRule,
    ) -> StoreResult<()>;
}
