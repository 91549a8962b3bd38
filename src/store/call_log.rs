//! The call log: a record of every call when it ends (with its legs, one per party
//! dialled or transferred to), read by tenant and by user (the user's history).

use super::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tsps_actors::model::{CallOutcome, CallRecord};
use tsps_actors::{TenantId, UserId};
use utoipa::ToSchema;

/// Which of a user's calls: those it placed or those it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CallSide {
    /// The user is the caller.
    Outgoing,
    /// The user is the callee.
    Incoming,
}

/// A page of one user's call history, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallHistoryQuery {
    pub limit: u32,
    /// Only calls that started before this instant (the next page).
    pub before: Option<DateTime<Utc>>,
    /// Only calls whose caller or callee contains this text.
    pub search: Option<String>,
    pub side: Option<CallSide>,
    pub outcome: Option<CallOutcome>,
}

impl CallHistoryQuery {
    pub fn latest(limit: u32) -> Self {
        Self {
            limit,
            before: None,
            search: None,
            side: None,
            outcome: None,
        }
    }
}

/// `text` as a LIKE pattern matching any value that contains it: `\`, `%` and `_`
/// are escaped with `\` (the statements say `ESCAPE '\'`).
pub(crate) fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Call records (CDRs) with their legs.
#[async_trait]
pub trait CallLog: Send + Sync {
    async fn insert_call_record(&self, record: &CallRecord) -> StoreResult<()>;
    /// Several records in one transaction: all or none.
    async fn insert_call_records(&self, records: &[CallRecord]) -> StoreResult<()>;
    /// Newest first.
    async fn list_call_records(&self, tenant: TenantId, limit: u32)
        -> StoreResult<Vec<CallRecord>>;

    /// One user's calls (as caller or callee), newest first, filtered by `query`; the
    /// same records as [`CallLog::list_call_records`], legs included.
    async fn list_user_call_records(
        &self,
        tenant: TenantId,
        user: UserId,
        query: &CallHistoryQuery,
    ) -> StoreResult<Vec<CallRecord>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("+4144"), "%+4144%");
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
    }
}
