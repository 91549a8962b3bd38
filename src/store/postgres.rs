//! PostgreSQL through sqlx: native `uuid`, `timestamptz` (microsecond precision) and
//! `text[]` columns.

use super::sql::{sql_store, Ctx};
use super::{StoreError, StoreResult};
use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// How long a caller waits for a free pooled connection before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` and runs the migrations.
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(|e| translate(e, &Ctx::READ))?;
        sqlx::migrate!("./sql/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes every pooled connection (tests drop their database afterwards).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// PostgreSQL's default (read committed) takes a new snapshot per statement.
const SNAPSHOT: Option<&str> = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");

type Db = sqlx::Postgres;
type DbId = Uuid;
type DbTs = DateTime<Utc>;
type DbList = Vec<String>;

fn enc_id(id: Uuid) -> DbId {
    id
}

fn dec_id(id: DbId) -> StoreResult<Uuid> {
    Ok(id)
}

fn enc_ts(t: DateTime<Utc>) -> DbTs {
    t
}

fn dec_ts(t: DbTs) -> StoreResult<DateTime<Utc>> {
    Ok(t)
}

fn enc_list(items: &[String]) -> DbList {
    items.to_vec()
}

fn dec_list(items: DbList) -> StoreResult<Vec<String>> {
    Ok(items)
}

/// The one place PostgreSQL errors become [`StoreError`]s (SQLSTATE 23505 unique,
/// 23503 foreign key, 23514 check, 23502 not null). Constraint names follow
/// PostgreSQL's defaults: `users_tenant_id_extension_key`, `tenants_pkey`.
fn translate(e: sqlx::Error, ctx: &Ctx<'_>) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let message = db.message();
        let constraint = db.constraint().unwrap_or("");
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return ctx.already_exists(
                    |column| {
                        constraint.ends_with(&format!("_{column}_key"))
                            || (column == "id" && constraint.ends_with("_pkey"))
                    },
                    message,
                )
            }
            ErrorKind::ForeignKeyViolation => return ctx.missing_parent(message),
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                return StoreError::Invalid(message.to_string())
            }
            _ => {}
        }
    }
    StoreError::Db(e)
}

sql_store!(PgStore);
