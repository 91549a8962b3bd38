//! Persistence: sqlx repositories for PostgreSQL and the embedded SQLite default.
//!
//! Only this module knows SQL. [`Store`] is the composition of one repository trait
//! per aggregate, each in its own file: [`Registrations`] (the directory snapshot,
//! bindings), [`CallLog`], [`Tenants`] (with settings, quotas and counts), [`Users`]
//! (with profiles, policies, watch rules), [`Accounts`] (portal accounts, operators),
//! [`Sessions`], [`ApiTokens`], [`Devices`] (with external phones), [`Numbers`] (DIDs),
//! [`Trunks`] and [`Contacts`]. Callers hold a [`DynStore`], on which every method can
//! be called as it is; code that holds a backend itself (`PgStore`, `SqliteStore`) or
//! names an aggregate's method brings the traits into scope with
//! `use crate::store::prelude::*`.
//!
//! Both backends implement every aggregate with the same statements (`sql/` in this
//! module: one file per aggregate); one contract test suite runs against each (see
//! `tests/store_contract.rs`). Row types stay private and are converted to the domain
//! types of `tsps_actors::model`.
//!
//! [`open`] picks the backend from the URL scheme and runs the migrations under `sql/`.
//! Tenant-scoped methods take the `TenantId` first and never see a row of another
//! tenant: a user of tenant A asked for under tenant B is `NotFound`.

mod accounts;
mod api_tokens;
mod call_log;
mod contacts;
mod devices;
mod numbers;
mod policy;
mod postgres;
mod quota;
mod registrations;
mod sessions;
mod sql;
mod sqlite;
mod tenants;
mod trunks;
mod users;

pub use accounts::{
    Accounts, LoginCandidate, OperatorAccount, OperatorCandidate, UserAccount, UserRole,
};
pub use api_tokens::{ApiToken, ApiTokenId, ApiTokens};
pub use call_log::{CallHistoryQuery, CallLog, CallSide};
pub use contacts::Contacts;
pub use devices::Devices;
pub use numbers::Numbers;
pub use policy::{PolicyMode, UserPolicy};
pub use postgres::PgStore;
pub use quota::{Quotas, TenantQuotas};
pub use registrations::Registrations;
pub use sessions::{SessionAccount, SessionRecord, SessionSubject, Sessions};
pub use sqlite::SqliteStore;
pub use tenants::Tenants;
pub use trunks::Trunks;
pub use users::Users;

use std::sync::Arc;
use tsps_actors::{Directory, TenantId};

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

/// Everything tsps keeps durably: the aggregates' repositories in one object, which
/// each backend is (through the blanket impl) once it implements all of them.
/// Tenant-scoped calls take the `TenantId` first.
pub trait Store:
    Registrations
    + CallLog
    + Tenants
    + Users
    + Accounts
    + Sessions
    + ApiTokens
    + Devices
    + Numbers
    + Trunks
    + Contacts
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Registrations
        + CallLog
        + Tenants
        + Users
        + Accounts
        + Sessions
        + ApiTokens
        + Devices
        + Numbers
        + Trunks
        + Contacts
        + Send
        + Sync
        + 'static
{
}

/// The aggregate traits, unnamed: `use crate::store::prelude::*;` makes their methods
/// callable on a backend (`PgStore`, `SqliteStore`) without naming the trait each comes
/// from. (A `dyn Store` needs no import: a trait object carries its supertraits' methods.)
pub mod prelude {
    pub use super::{
        Accounts as _, ApiTokens as _, CallLog as _, Contacts as _, Devices as _, Numbers as _,
        Registrations as _, Sessions as _, Tenants as _, Trunks as _, Users as _,
    };
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
