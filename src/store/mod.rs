//! Persistence: sqlx repositories for PostgreSQL and the embedded SQLite default.
//!
//! Only this module knows SQL. Both backends implement [`Store`]; one contract test
//! suite runs against each (see `tests/store_contract.rs`). Row types stay private and
//! are converted to the domain types of `tsps_actors::model`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tsps_actors::model::{Binding, CallRecord};
use tsps_actors::{DeviceId, Directory, TenantId};

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
    /// The whole provisioned directory (tenants, users, devices, DIDs, trunks).
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
    /// Newest first.
    async fn list_call_records(&self, tenant: TenantId, limit: u32) -> StoreResult<Vec<CallRecord>>;
}

pub type DynStore = Arc<dyn Store>;

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
