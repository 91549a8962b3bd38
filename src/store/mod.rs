//! Persistence: sqlx repositories for PostgreSQL and the embedded SQLite default.
//!
//! Only this module knows SQL. Both backends implement [`Store`]; one contract test
//! suite runs against each (see `tests/store_contract.rs`). Row types stay private and
//! are converted to the domain types of `tsps_actors::model`.
//!
//! [`open`] picks the backend from the URL scheme and runs the migrations under `sql/`.
//! Tenant-scoped methods take the `TenantId` first and never see a row of another
//! tenant: a user of tenant A asked for under tenant B is `NotFound`.

mod account;
mod policy;
mod postgres;
mod quota;
mod sql;
mod sqlite;
mod token;

pub use account::{
    CallHistoryQuery, CallSide, LoginCandidate, OperatorAccount, OperatorCandidate, SessionAccount,
    SessionRecord, SessionSubject, UserAccount, UserRole,
};
pub use policy::{PolicyMode, UserPolicy};
pub use postgres::PgStore;
pub use quota::{Quotas, TenantQuotas};
pub use sqlite::SqliteStore;
pub use token::{ApiToken, ApiTokenId};

use crate::contacts::{Contact, ContactId, ContactNumber, ContactOwner, TenantSettings};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tsps_actors::feature::{Presence, Profile};
use tsps_actors::model::{Binding, CallRecord, Device, Did, ExternalPhone, Tenant, Trunk, User};
use tsps_actors::presence::WatchRule;
use tsps_actors::{DeviceId, Directory, TenantId, TrunkId, UserId};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{entity} not found: {key}")]
    NotFound { entity: &'static str, key: String },
    #[error("{entity} already exists: {key}")]
    AlreadyExists { entity: &'static str, key: String },
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid data: {0}")]
    Invalid(String),
    #[error("database error: {0}")]
    Db(#[source] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything tsps keeps durably. Tenant-scoped calls take the `TenantId` first.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The whole provisioned directory (tenants, users, devices, external phones, DIDs,
    /// trunks, the subscriber table).
    async fn load_directory(&self) -> StoreResult<Directory>;

    /// Inserts or refreshes one registration binding, keyed by (tenant, device, contact).
    async fn save_binding(&self, binding: &Binding) -> StoreResult<()>;
    async fn remove_binding(
        &self,
        tenant: TenantId,
        device: DeviceId,
        contact: &str,
    ) -> StoreResult<()>;
    async fn remove_device_bindings(&self, tenant: TenantId, device: DeviceId) -> StoreResult<()>;
    /// Bindings not yet expired at `now` (loaded at start so registrations survive a restart).
    async fn load_bindings(&self, now: DateTime<Utc>) -> StoreResult<Vec<Binding>>;

    async fn insert_call_record(&self, record: &CallRecord) -> StoreResult<()>;
    /// Several records in one transaction: all or none.
    async fn insert_call_records(&self, records: &[CallRecord]) -> StoreResult<()>;
    /// Newest first.
    async fn list_call_records(&self, tenant: TenantId, limit: u32)
        -> StoreResult<Vec<CallRecord>>;

    /// One user's calls (as caller or callee), newest first, filtered by `query`; the
    /// same records as [`Store::list_call_records`], legs included.
    async fn list_user_call_records(
        &self,
        tenant: TenantId,
        user: UserId,
        query: &CallHistoryQuery,
    ) -> StoreResult<Vec<CallRecord>>;

    /// Bindings of one tenant not yet expired at `now`, by device and contact.
    async fn list_bindings(
        &self,
        tenant: TenantId,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Binding>>;

    // Tenants. The domain is stored as given: callers pass it lower case.
    async fn create_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant>;
    async fn find_tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>>;
    /// By domain.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;
    /// Changes name, time zone and domain. A domain change is refused with `Conflict`
    /// while the tenant has devices: their digest HA1s are computed over the domain.
    async fn update_tenant(&self, tenant: &Tenant) -> StoreResult<()>;
    /// Deletes the tenant with everything in it (users, devices, DIDs, trunks,
    /// bindings, call records).
    async fn delete_tenant(&self, id: TenantId) -> StoreResult<()>;

    // Users. `user.tenant_id` must equal `tenant` (else `Invalid`).
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

    // Portal accounts: a role per user (`user` unless set) and an optional argon2id
    // password hash, which only these methods read or write.
    async fn get_user_account(&self, tenant: TenantId, id: UserId) -> StoreResult<UserAccount>;
    /// By extension.
    async fn list_user_accounts(&self, tenant: TenantId) -> StoreResult<Vec<UserAccount>>;
    /// The user whose extension is `login`, else the one whose portal login is `login`.
    async fn find_login(
        &self,
        tenant: TenantId,
        login: &str,
    ) -> StoreResult<Option<LoginCandidate>>;
    async fn set_user_role(&self, tenant: TenantId, id: UserId, role: UserRole) -> StoreResult<()>;
    async fn get_password_hash(&self, tenant: TenantId, id: UserId) -> StoreResult<Option<String>>;
    /// `None` removes the password (the user can no longer log in).
    async fn set_password_hash(
        &self,
        tenant: TenantId,
        id: UserId,
        hash: Option<&str>,
    ) -> StoreResult<()>;

    // Platform operators: portal accounts outside every tenant. The caller passes the
    // login lower case.
    /// `AlreadyExists` ("operator") for a login taken.
    async fn create_operator(
        &self,
        operator: &OperatorAccount,
        password_hash: &str,
    ) -> StoreResult<()>;
    async fn find_operator(&self, login: &str) -> StoreResult<Option<OperatorCandidate>>;
    /// By login.
    async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>>;
    /// Deletes the operator with its sessions; `NotFound` ("operator") for none.
    async fn delete_operator(&self, login: &str) -> StoreResult<()>;

    // Portal sessions of users and operators, keyed by the SHA-256 of the session id.
    // They go with their user (or operator).
    /// `NotFound` ("user") when the user does not exist in its tenant, ("operator") when
    /// the operator does not exist.
    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The session with its account as of now (role changes apply at once).
    async fn get_session(
        &self,
        id_hash: &str,
    ) -> StoreResult<Option<(SessionRecord, SessionAccount)>>;
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Idempotent: ending a session that is gone is not an error.
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    /// Ends every session of the user except `keep` (after a password change).
    async fn delete_user_sessions(
        &self,
        tenant: TenantId,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<u64>;
    /// Deletes sessions (of users and operators) past their absolute end at `now` or
    /// idle since `idle_since`.
    async fn delete_expired_sessions(
        &self,
        now: DateTime<Utc>,
        idle_since: DateTime<Utc>,
    ) -> StoreResult<u64>;

    // API tokens of integrations, keyed by the SHA-256 of the secret. They go with their
    // tenant.
    /// `AlreadyExists` ("api token") for a name taken in the tenant; `token.tenant_id`
    /// must equal `tenant` (else `Invalid`).
    async fn create_api_token(&self, tenant: TenantId, token: &ApiToken) -> StoreResult<()>;
    /// By name.
    async fn list_api_tokens(&self, tenant: TenantId) -> StoreResult<Vec<ApiToken>>;
    /// The token whose secret hashes to `secret_hash`, of any tenant, expired or not.
    async fn find_api_token(&self, secret_hash: &str) -> StoreResult<Option<ApiToken>>;
    /// `NotFound` ("api token") for none of this id in `tenant`.
    async fn delete_api_token(&self, tenant: TenantId, id: ApiTokenId) -> StoreResult<()>;

    // Devices. The store only sees HA1s, never passwords.
    async fn create_device(&self, tenant: TenantId, device: &Device) -> StoreResult<()>;
    async fn get_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<Device>;
    async fn find_device_by_username(
        &self,
        tenant: TenantId,
        sip_username: &str,
    ) -> StoreResult<Option<Device>>;
    /// All devices of the tenant, or only those of `user`; by SIP user name.
    async fn list_devices(
        &self,
        tenant: TenantId,
        user: Option<UserId>,
    ) -> StoreResult<Vec<Device>>;
    /// Changes owner, SIP user name, HA1s and the remote answer flag.
    async fn update_device(&self, tenant: TenantId, device: &Device) -> StoreResult<()>;
    async fn delete_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<()>;

    // External phones of a user (numbers already E.164), unique per user and number. One
    // asked for under another user (or tenant) is `NotFound` ("external phone").
    async fn create_external_phone(
        &self,
        tenant: TenantId,
        phone: &ExternalPhone,
    ) -> StoreResult<()>;
    /// By number.
    async fn list_external_phones(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> StoreResult<Vec<ExternalPhone>>;
    /// Changes number and label of the phone `phone.id` of `phone.user_id`.
    async fn update_external_phone(
        &self,
        tenant: TenantId,
        phone: &ExternalPhone,
    ) -> StoreResult<()>;
    async fn delete_external_phone(
        &self,
        tenant: TenantId,
        user: UserId,
        id: DeviceId,
    ) -> StoreResult<()>;

    // DIDs, keyed by E.164 number (unique across tenants).
    async fn create_did(&self, tenant: TenantId, did: &Did) -> StoreResult<()>;
    async fn get_did(&self, tenant: TenantId, number: &str) -> StoreResult<Did>;
    /// By number.
    async fn list_dids(&self, tenant: TenantId) -> StoreResult<Vec<Did>>;
    /// Routes the number to another user of the same tenant.
    async fn update_did(&self, tenant: TenantId, did: &Did) -> StoreResult<()>;
    async fn delete_did(&self, tenant: TenantId, number: &str) -> StoreResult<()>;

    // Trunks.
    async fn create_trunk(&self, tenant: TenantId, trunk: &Trunk) -> StoreResult<()>;
    async fn get_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<Trunk>;
    async fn find_trunk_by_name(&self, tenant: TenantId, name: &str) -> StoreResult<Option<Trunk>>;
    /// By name.
    async fn list_trunks(&self, tenant: TenantId) -> StoreResult<Vec<Trunk>>;
    async fn update_trunk(&self, tenant: TenantId, trunk: &Trunk) -> StoreResult<()>;
    async fn delete_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<()>;

    // The personal feature server. A user of another tenant is `NotFound` ("user").
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

    /// The defaults when none were stored; `NotFound` ("tenant") for no such tenant.
    async fn get_tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings>;
    async fn put_tenant_settings(
        &self,
        tenant: TenantId,
        settings: &TenantSettings,
    ) -> StoreResult<()>;

    /// The tenant's own quotas (none set: all `None`); `NotFound` for no such tenant.
    async fn get_tenant_quotas(&self, tenant: TenantId) -> StoreResult<TenantQuotas>;
    async fn put_tenant_quotas(&self, tenant: TenantId, quotas: &TenantQuotas) -> StoreResult<()>;
    /// Contacts of the tenant: of `owner` when given (a user's personal ones), else all
    /// (shared and personal).
    async fn count_contacts(&self, tenant: TenantId, owner: Option<UserId>) -> StoreResult<u64>;
    /// SIP devices of the tenant.
    async fn count_devices(&self, tenant: TenantId) -> StoreResult<u64>;

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

    // Contacts: `ContactOwner::User` for personal ones, `Shared` for the tenant's. A
    // contact asked for under another owner (or tenant) is `NotFound` ("contact").
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

pub type DynStore = Arc<dyn Store>;

/// Opens the store named by `url` and brings its schema up to date.
///
/// `sqlite:` URLs (`sqlite://tsps.db`, `sqlite::memory:`) open the embedded database,
/// creating the file if missing, in WAL mode with foreign keys on. `postgres://` and
/// `postgresql://` URLs connect to PostgreSQL.
pub async fn open(url: &str, max_connections: u32) -> StoreResult<DynStore> {
    let max_connections = max_connections.max(1);
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, max_connections).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::open(url, max_connections).await?))
    } else {
        // Never echo the URL: it may carry a password.
        Err(StoreError::Invalid(
            "database url must start with sqlite:, postgres:// or postgresql://".into(),
        ))
    }
}

/// The guard behind "`user.tenant_id` must equal `tenant`": a caller cannot write a row
/// into one tenant while holding the id of another.
pub(crate) fn same_tenant(
    tenant: TenantId,
    found: TenantId,
    entity: &'static str,
) -> StoreResult<()> {
    if tenant == found {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{entity} names tenant {found} but was written under tenant {tenant}"
        )))
    }
}

/// The current directory snapshot, shared by the SIP layer and the API. Provisioning
/// writes go to the store first, then [`SharedDirectory::reload`] swaps in a new snapshot.
#[derive(Clone)]
pub struct SharedDirectory {
    current: Arc<arc_swap::ArcSwap<Directory>>,
    store: DynStore,
}

impl SharedDirectory {
    pub async fn load(store: DynStore) -> StoreResult<Self> {
        let dir = store.load_directory().await?;
        Ok(Self {
            current: Arc::new(arc_swap::ArcSwap::from_pointee(dir)),
            store,
        })
    }

    /// The snapshot as of now; cheap (one atomic load and an `Arc` clone).
    pub fn get(&self) -> Arc<Directory> {
        self.current.load_full()
    }

    pub async fn reload(&self) -> StoreResult<()> {
        let dir = self.store.load_directory().await?;
        self.current.store(Arc::new(dir));
        Ok(())
    }

    pub fn store(&self) -> &DynStore {
        &self.store
    }
}
