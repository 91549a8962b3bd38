//! The statements of portal sessions, of users and of operators (one table each).

/// Implements [`Sessions`](crate::store::Sessions) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_sessions {
    ($store:ident) => {
        mod sessions {
            use super::*;
            use super::shared::{read_err, AccountRow, OperatorRow, ACCOUNT_COLUMNS};
            use $crate::store::sql::Ctx;
            use $crate::store::{SessionAccount, SessionRecord, SessionSubject, Sessions, StoreResult};
            use chrono::{DateTime, Utc};
            use tsps_actors::{TenantId, UserId};

            #[derive(sqlx::FromRow)]
            struct SessionRow {
                id_hash: String,
                csrf_token: String,
                created_at: DbTs,
                last_seen_at: DbTs,
                expires_at: DbTs,
                #[sqlx(flatten)]
                account: AccountRow,
            }

            impl SessionRow {
                fn into_session(self) -> StoreResult<(SessionRecord, SessionAccount)> {
                    let account = self.account.into_account()?;
                    Ok((
                        SessionRecord {
                            id_hash: self.id_hash,
                            subject: SessionSubject::User {
                                tenant: account.user.tenant_id,
                                user: account.user.id,
                            },
                            csrf_token: $crate::secret::Secret(self.csrf_token),
                            created_at: dec_ts(self.created_at)?,
                            last_seen_at: dec_ts(self.last_seen_at)?,
                            expires_at: dec_ts(self.expires_at)?,
                        },
                        SessionAccount::User(account),
                    ))
                }
            }

            #[derive(sqlx::FromRow)]
            struct OperatorSessionRow {
                id_hash: String,
                csrf_token: String,
                session_created_at: DbTs,
                last_seen_at: DbTs,
                expires_at: DbTs,
                #[sqlx(flatten)]
                operator: OperatorRow,
            }

            impl OperatorSessionRow {
                fn into_session(self) -> StoreResult<(SessionRecord, SessionAccount)> {
                    let account = self.operator.into_candidate()?.account;
                    Ok((
                        SessionRecord {
                            id_hash: self.id_hash,
                            subject: SessionSubject::Operator {
                                login: account.login.clone(),
                            },
                            csrf_token: $crate::secret::Secret(self.csrf_token),
                            created_at: dec_ts(self.session_created_at)?,
                            last_seen_at: dec_ts(self.last_seen_at)?,
                            expires_at: dec_ts(self.expires_at)?,
                        },
                        SessionAccount::Operator(account),
                    ))
                }
            }

            #[async_trait::async_trait]
            impl Sessions for $store {
                async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
                    let (query, parent, key) = match &s.subject {
                        SessionSubject::User { tenant, user } => (
                            sqlx::query(
                                "INSERT INTO user_sessions (id_hash, tenant_id, user_id, csrf_token, \
                                 created_at, last_seen_at, expires_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(&s.id_hash)
                            .bind(enc_id(tenant.0))
                            .bind(enc_id(user.0)),
                            "user",
                            user.to_string(),
                        ),
                        SessionSubject::Operator { login } => (
                            sqlx::query(
                                "INSERT INTO operator_sessions (id_hash, login, csrf_token, \
                                 created_at, last_seen_at, expires_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(&s.id_hash)
                            .bind(login.as_str()),
                            "operator",
                            login.clone(),
                        ),
                    };
                    query
                        .bind(s.csrf_token.expose())
                        .bind(enc_ts(s.created_at))
                        .bind(enc_ts(s.last_seen_at))
                        .bind(enc_ts(s.expires_at))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| {
                            translate(
                                e,
                                &Ctx {
                                    unique: &[("id_hash", "session", "(redacted)")],
                                    parent: Some((parent, &key)),
                                },
                            )
                        })?;
                    Ok(())
                }

                async fn get_session(
                    &self,
                    id_hash: &str,
                ) -> StoreResult<Option<(SessionRecord, SessionAccount)>> {
                    let row: Option<SessionRow> = sqlx::query_as(&format!(
                        "SELECT s.id_hash, s.csrf_token, s.created_at, s.last_seen_at, \
                         s.expires_at, {ACCOUNT_COLUMNS} FROM user_sessions s \
                         JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id \
                         WHERE s.id_hash = $1"
                    ))
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if let Some(row) = row {
                        return row.into_session().map(Some);
                    }
                    // Not a user's: perhaps an operator's (a second read only for those and
                    // for unknown ids; a node caches the sessions it has read).
                    let row: Option<OperatorSessionRow> = sqlx::query_as(
                        "SELECT s.id_hash, s.csrf_token, s.created_at AS session_created_at, \
                         s.last_seen_at, s.expires_at, o.login, o.password_hash, o.created_at \
                         FROM operator_sessions s JOIN operators o ON o.login = s.login \
                         WHERE s.id_hash = $1",
                    )
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(OperatorSessionRow::into_session).transpose()
                }

                async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                    // The id is in one of the two tables; updating none of the other's rows
                    // costs an index lookup.
                    for table in ["user_sessions", "operator_sessions"] {
                        sqlx::query(&format!(
                            "UPDATE {table} SET last_seen_at = $2 WHERE id_hash = $1"
                        ))
                        .bind(id_hash)
                        .bind(enc_ts(at))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    }
                    Ok(())
                }

                async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                    for table in ["user_sessions", "operator_sessions"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE id_hash = $1"))
                            .bind(id_hash)
                            .execute(&self.pool)
                            .await
                            .map_err(read_err)?;
                    }
                    Ok(())
                }

                async fn delete_user_sessions(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    keep: Option<&str>,
                ) -> StoreResult<u64> {
                    let done = sqlx::query(
                        "DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2 \
                         AND ($3 IS NULL OR id_hash <> $3)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(keep)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(done.rows_affected())
                }

                async fn delete_expired_sessions(
                    &self,
                    now: DateTime<Utc>,
                    idle_since: DateTime<Utc>,
                ) -> StoreResult<u64> {
                    let mut deleted = 0;
                    for table in ["user_sessions", "operator_sessions"] {
                        let done = sqlx::query(&format!(
                            "DELETE FROM {table} WHERE expires_at <= $1 OR last_seen_at <= $2"
                        ))
                        .bind(enc_ts(now))
                        .bind(enc_ts(idle_since))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                        deleted += done.rows_affected();
                    }
                    Ok(deleted)
                }
            }
        }
    };
}

pub(crate) use sql_sessions;
