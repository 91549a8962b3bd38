//! The embedded default: SQLite through sqlx, one file, WAL mode.
//!
//! UUIDs are stored as hyphenated TEXT and timestamps as RFC 3339 TEXT in UTC with a
//! fixed microsecond width, so that text comparison (`expires_at > $1`) and text
//! order (`ORDER BY started_at`) are time comparison and time order.

use super::sql::{sql_store, Ctx};
use super::{StoreError, StoreResult};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::error::ErrorKind;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;

/// How long a writer waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` and runs the migrations.
    pub async fn open(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // Every connection to `:memory:` is a database of its own: keep exactly one,
        // and keep it forever, or the data vanishes with the connection.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if in_memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(max_connections)
        }
        .connect_with(options)
        .await
        .map_err(|e| translate(e, &Ctx::READ))?;
        sqlx::migrate!("./sql/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

/// A SQLite read transaction sees one snapshot already.
const SNAPSHOT: Option<&str> = None;

type Db = sqlx::Sqlite;
type DbId = String;
type DbTs = String;
/// JSON array of strings.
type DbList = String;

fn enc_id(id: Uuid) -> DbId {
    id.hyphenated().to_string()
}

fn dec_id(text: DbId) -> StoreResult<Uuid> {
    Uuid::parse_str(&text).map_err(|e| StoreError::Invalid(format!("bad uuid {text:?}: {e}")))
}

fn enc_ts(t: DateTime<Utc>) -> DbTs {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn dec_ts(text: DbTs) -> StoreResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Invalid(format!("bad timestamp {text:?}: {e}")))
}

fn enc_list(items: &[String]) -> DbList {
    serde_json::Value::from(items.to_vec()).to_string()
}

fn dec_list(text: DbList) -> StoreResult<Vec<String>> {
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Invalid(format!("bad string list {text:?}: {e}")))
}

/// The one place SQLite errors become [`StoreError`]s. SQLite names the columns of a
/// violated unique key in its message: `UNIQUE constraint failed: users.tenant_id,
/// users.extension`.
fn translate(e: sqlx::Error, ctx: &Ctx<'_>) -> StoreError {
    if let sqlx::Error::Database(db) = &e {
        let message = db.message();
        match db.kind() {
            ErrorKind::UniqueViolation => {
                let last_column = message
                    .rsplit([',', ' '])
                    .next()
                    .and_then(|c| c.rsplit('.').next())
                    .unwrap_or("");
                return ctx.already_exists(|column| column == last_column, message);
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

sql_store!(SqliteStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_sort_as_text() {
        let a = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let b = a + chrono::Duration::microseconds(1);
        let c = a + chrono::Duration::seconds(1);
        assert!(enc_ts(a) < enc_ts(b) && enc_ts(b) < enc_ts(c));
        assert_eq!(enc_ts(a).len(), enc_ts(c).len());
        assert_eq!(dec_ts(enc_ts(b)).unwrap(), b);
    }

    #[test]
    fn lists_round_trip() {
        let l = vec!["127.0.0.1".to_string(), "10.0.0.0/8".to_string()];
        assert_eq!(dec_list(enc_list(&l)).unwrap(), l);
        assert!(dec_list("not json".into()).is_err());
    }
}
