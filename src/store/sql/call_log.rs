//! The statements of the call log: call records with their legs, by tenant and by user.

use crate::store::{StoreError, StoreResult};
use tsps_actors::model::{CallDirection, CallOutcome, Party};

/// Longest CDR page one call returns, whatever the caller asks for.
pub(crate) const MAX_CALL_RECORDS: u32 = 10_000;

pub(crate) fn party_str(p: Party) -> &'static str {
    match p {
        Party::Caller => "caller",
        Party::Callee => "callee",
        Party::System => "system",
    }
}

pub(crate) fn parse_party(s: &str) -> StoreResult<Party> {
    match s {
        "caller" => Ok(Party::Caller),
        "callee" => Ok(Party::Callee),
        "system" => Ok(Party::System),
        other => Err(StoreError::Invalid(format!("unknown party {other:?}"))),
    }
}

pub(crate) fn parse_direction(s: &str) -> StoreResult<CallDirection> {
    [
        CallDirection::Internal,
        CallDirection::Inbound,
        CallDirection::Outbound,
    ]
    .into_iter()
    .find(|d| d.as_str() == s)
    .ok_or_else(|| StoreError::Invalid(format!("unknown call direction {s:?}")))
}

pub(crate) fn parse_outcome(s: &str) -> StoreResult<CallOutcome> {
    [
        CallOutcome::Answered,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Cancelled,
        CallOutcome::Unavailable,
        CallOutcome::Rejected,
        CallOutcome::Failed,
    ]
    .into_iter()
    .find(|o| o.as_str() == s)
    .ok_or_else(|| StoreError::Invalid(format!("unknown call outcome {s:?}")))
}

/// Implements [`CallLog`](crate::store::CallLog) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_call_log {
    ($store:ident) => {
        mod call_log {
            use super::*;
            use super::shared::{read_err, rows};
            use $crate::store::call_log::contains_pattern;
            use $crate::store::sql::call_log::{
                parse_direction, parse_outcome, parse_party, party_str, MAX_CALL_RECORDS,
            };
            use $crate::store::sql::Ctx;
            use $crate::store::{CallHistoryQuery, CallLog, CallSide, StoreError, StoreResult};
            use std::collections::HashMap;
            use tsps_actors::model::{CallRecord, LegRecord};
            use tsps_actors::{CallId, LegId, TenantId, UserId};

            /// The filter of `list_user_call_records` over `call_records`: $1 tenant,
            /// $2 user, $3 before, $4 LIKE pattern, $5 outcome, $6 side.
            // A user's calls: as caller or callee, or on a leg (a transfer or forward to them).
            const HISTORY_FILTER: &str = "tenant_id = $1 \
                AND (caller_user_id = $2 OR callee_user_id = $2 \
                     OR EXISTS (SELECT 1 FROM call_legs l \
                                WHERE l.call_id = call_records.id AND l.user_id = $2)) \
                AND ($3 IS NULL OR started_at < $3) \
                AND ($4 IS NULL OR caller LIKE $4 ESCAPE '\\' OR callee LIKE $4 ESCAPE '\\') \
                AND ($5 IS NULL OR outcome = $5) \
                AND ($6 IS NULL OR ($6 = 'outgoing' AND caller_user_id = $2) \
                     OR ($6 = 'incoming' AND (caller_user_id IS NULL OR caller_user_id <> $2)))";

            #[derive(sqlx::FromRow)]
            struct CallRow {
                id: DbId,
                tenant_id: DbId,
                direction: String,
                caller: String,
                callee: String,
                caller_user_id: Option<DbId>,
                callee_user_id: Option<DbId>,
                started_at: DbTs,
                answered_at: Option<DbTs>,
                ended_at: DbTs,
                outcome: String,
                hangup_by: Option<String>,
                decision: String,
            }

            impl TryFrom<CallRow> for CallRecord {
                type Error = StoreError;
                fn try_from(r: CallRow) -> StoreResult<CallRecord> {
                    Ok(CallRecord {
                        id: CallId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        direction: parse_direction(&r.direction)?,
                        caller: r.caller,
                        callee: r.callee,
                        caller_user_id: r.caller_user_id.map(dec_id).transpose()?.map(UserId),
                        callee_user_id: r.callee_user_id.map(dec_id).transpose()?.map(UserId),
                        started_at: dec_ts(r.started_at)?,
                        answered_at: r.answered_at.map(dec_ts).transpose()?,
                        ended_at: dec_ts(r.ended_at)?,
                        outcome: parse_outcome(&r.outcome)?,
                        hangup_by: r.hangup_by.as_deref().map(parse_party).transpose()?,
                        decision: serde_json::from_str(&r.decision)
                            .map_err(|e| StoreError::Invalid(format!("call decision: {e}")))?,
                        legs: Vec::new(),
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            struct LegRow {
                call_id: DbId,
                id: DbId,
                role: String,
                target: String,
                started_at: DbTs,
                answered_at: Option<DbTs>,
                ended_at: Option<DbTs>,
                status_code: Option<i32>,
                user_id: Option<DbId>,
            }

            impl LegRow {
                fn into_leg(self) -> StoreResult<(CallId, LegRecord)> {
                    let status_code = self
                        .status_code
                        .map(|c| {
                            u16::try_from(c)
                                .map_err(|_| StoreError::Invalid(format!("leg status out of range: {c}")))
                        })
                        .transpose()?;
                    Ok((
                        CallId(dec_id(self.call_id)?),
                        LegRecord {
                            id: LegId(dec_id(self.id)?),
                            role: parse_party(&self.role)?,
                            target: self.target,
                            started_at: dec_ts(self.started_at)?,
                            answered_at: self.answered_at.map(dec_ts).transpose()?,
                            ended_at: self.ended_at.map(dec_ts).transpose()?,
                            status_code,
                            user_id: self.user_id.map(dec_id).transpose()?.map(UserId),
                        },
                    ))
                }
            }

            #[async_trait::async_trait]
            impl CallLog for $store {
                async fn insert_call_record(&self, r: &CallRecord) -> StoreResult<()> {
                    self.insert_call_records(std::slice::from_ref(r)).await
                }

                async fn insert_call_records(&self, records: &[CallRecord]) -> StoreResult<()> {
                    // One transaction: a CDR is never visible without its legs, and a
                    // batch costs one commit.
                    let mut tx = self.pool.begin().await.map_err(read_err)?;
                    for r in records {
                    let id = r.id.to_string();
                    let tenant = r.tenant_id.to_string();
                    let ctx = Ctx {
                        unique: &[("id", "call record", &id)],
                        parent: Some(("tenant or user", &tenant)),
                    };
                    sqlx::query(
                        "INSERT INTO call_records (id, tenant_id, direction, caller, callee, \
                         caller_user_id, callee_user_id, started_at, answered_at, ended_at, \
                         outcome, hangup_by, decision) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(enc_id(r.id.0))
                    .bind(enc_id(r.tenant_id.0))
                    .bind(r.direction.as_str())
                    .bind(&r.caller)
                    .bind(&r.callee)
                    .bind(r.caller_user_id.map(|u| enc_id(u.0)))
                    .bind(r.callee_user_id.map(|u| enc_id(u.0)))
                    .bind(enc_ts(r.started_at))
                    .bind(r.answered_at.map(enc_ts))
                    .bind(enc_ts(r.ended_at))
                    .bind(r.outcome.as_str())
                    .bind(r.hangup_by.map(party_str))
                    .bind(serde_json::to_string(&r.decision).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| translate(e, &ctx))?;
                    for leg in &r.legs {
                        let leg_id = leg.id.to_string();
                        sqlx::query(
                            "INSERT INTO call_legs (call_id, id, role, target, started_at, \
                             answered_at, ended_at, status_code, user_id) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(enc_id(r.id.0))
                        .bind(enc_id(leg.id.0))
                        .bind(party_str(leg.role))
                        .bind(&leg.target)
                        .bind(enc_ts(leg.started_at))
                        .bind(leg.answered_at.map(enc_ts))
                        .bind(leg.ended_at.map(enc_ts))
                        .bind(leg.status_code.map(i32::from))
                        .bind(leg.user_id.map(|u| enc_id(u.0)))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            translate(
                                e,
                                &Ctx {
                                    unique: &[("id", "call leg", &leg_id)],
                                    parent: Some(("call record", &id)),
                                },
                            )
                        })?;
                    }
                    }
                    tx.commit().await.map_err(read_err)?;
                    Ok(())
                }

                async fn list_call_records(
                    &self,
                    tenant: TenantId,
                    limit: u32,
                ) -> StoreResult<Vec<CallRecord>> {
                    let limit = i64::from(limit.min(MAX_CALL_RECORDS));
                    let calls: Vec<CallRow> = sqlx::query_as(
                        "SELECT id, tenant_id, direction, caller, callee, caller_user_id, \
                         callee_user_id, started_at, answered_at, ended_at, outcome, hangup_by, \
                         decision FROM call_records WHERE tenant_id = $1 \
                         ORDER BY started_at DESC, id DESC LIMIT $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let mut calls: Vec<CallRecord> = rows(calls)?;
                    if calls.is_empty() {
                        return Ok(calls);
                    }
                    // The same page again as a subquery, so one statement fetches all legs.
                    let legs: Vec<LegRow> = sqlx::query_as(
                        "SELECT call_id, id, role, target, started_at, answered_at, ended_at, \
                         status_code, user_id FROM call_legs WHERE call_id IN (\
                         SELECT id FROM call_records WHERE tenant_id = $1 \
                         ORDER BY started_at DESC, id DESC LIMIT $2) \
                         ORDER BY started_at, id",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let index: HashMap<CallId, usize> =
                        calls.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                    for leg in legs {
                        let (call, leg) = leg.into_leg()?;
                        // A CDR inserted between the two statements may bring legs of a call
                        // outside this page: skip them.
                        if let Some(&i) = index.get(&call) {
                            calls[i].legs.push(leg);
                        }
                    }
                    Ok(calls)
                }

                async fn list_user_call_records(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    query: &CallHistoryQuery,
                ) -> StoreResult<Vec<CallRecord>> {
                    let limit = i64::from(query.limit.min(MAX_CALL_RECORDS));
                    let pattern = query.search.as_deref().map(contains_pattern);
                    let outcome = query.outcome.map(|o| o.as_str());
                    let side = query.side.map(|s| match s {
                        CallSide::Outgoing => "outgoing",
                        CallSide::Incoming => "incoming",
                    });
                    let page = format!(
                        "SELECT id, tenant_id, direction, caller, callee, caller_user_id, \
                         callee_user_id, started_at, answered_at, ended_at, outcome, hangup_by, \
                         decision FROM call_records WHERE {HISTORY_FILTER} \
                         ORDER BY started_at DESC, id DESC LIMIT $7"
                    );
                    let calls: Vec<CallRow> = sqlx::query_as(&page)
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(user.0))
                        .bind(query.before.map(enc_ts))
                        .bind(pattern.clone())
                        .bind(outcome)
                        .bind(side)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err)?;
                    let mut calls: Vec<CallRecord> = rows(calls)?;
                    if calls.is_empty() {
                        return Ok(calls);
                    }
                    // The same page again as a subquery, so one statement fetches all legs.
                    let legs_sql = format!(
                        "SELECT call_id, id, role, target, started_at, answered_at, ended_at, \
                         status_code, user_id FROM call_legs WHERE call_id IN (\
                         SELECT id FROM call_records WHERE {HISTORY_FILTER} \
                         ORDER BY started_at DESC, id DESC LIMIT $7) \
                         ORDER BY started_at, id"
                    );
                    let legs: Vec<LegRow> = sqlx::query_as(&legs_sql)
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(user.0))
                        .bind(query.before.map(enc_ts))
                        .bind(pattern)
                        .bind(outcome)
                        .bind(side)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err)?;
                    let index: HashMap<CallId, usize> =
                        calls.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                    for leg in legs {
                        let (call, leg) = leg.into_leg()?;
                        if let Some(&i) = index.get(&call) {
                            calls[i].legs.push(leg);
                        }
                    }
                    Ok(calls)
                }
            }
        }
    };
}

pub(crate) use sql_call_log;
