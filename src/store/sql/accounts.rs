//! The statements of portal accounts: users' roles and password hashes, operators.

/// Implements [`Accounts`](crate::store::Accounts) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_accounts {
    ($store:ident) => {
        mod accounts {
            use super::*;
            use super::shared::{read_err, AccountRow, OperatorRow, ACCOUNT_COLUMNS};
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{
                Accounts, LoginCandidate, OperatorAccount, OperatorCandidate, StoreResult, UserAccount,
                UserRole,
            };
            use tsps_actors::{TenantId, UserId};

            #[async_trait::async_trait]
            impl Accounts for $store {
                async fn get_user_account(&self, tenant: TenantId, id: UserId) -> StoreResult<UserAccount> {
                    let row: Option<AccountRow> = sqlx::query_as(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.tenant_id = $1 AND u.id = $2"
                    ))
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("user", id))?.into_account()
                }

                async fn list_user_accounts(&self, tenant: TenantId) -> StoreResult<Vec<UserAccount>> {
                    let found: Vec<AccountRow> = sqlx::query_as(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.tenant_id = $1 \
                         ORDER BY u.extension"
                    ))
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    found.into_iter().map(AccountRow::into_account).collect()
                }

                async fn find_login(
                    &self,
                    tenant: TenantId,
                    login: &str,
                ) -> StoreResult<Option<LoginCandidate>> {
                    // An extension wins over a portal login that happens to spell the same.
                    let row: Option<AccountRow> = sqlx::query_as(&format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM users u WHERE u.tenant_id = $1 \
                         AND (u.extension = $2 OR u.portal_login = $2) \
                         ORDER BY CASE WHEN u.extension = $2 THEN 0 ELSE 1 END LIMIT 1"
                    ))
                    .bind(enc_id(tenant.0))
                    .bind(login)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(AccountRow::into_candidate).transpose()
                }

                async fn set_user_role(
                    &self,
                    tenant: TenantId,
                    id: UserId,
                    role: UserRole,
                ) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE users SET role = $3 WHERE tenant_id = $1 AND id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(id.0))
                        .bind(role.as_str())
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("user", id));
                    }
                    Ok(())
                }

                async fn get_password_hash(
                    &self,
                    tenant: TenantId,
                    id: UserId,
                ) -> StoreResult<Option<String>> {
                    let row: Option<(Option<String>,)> = sqlx::query_as(
                        "SELECT password_hash FROM users WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(row.ok_or_else(|| not_found("user", id))?.0)
                }

                async fn set_password_hash(
                    &self,
                    tenant: TenantId,
                    id: UserId,
                    hash: Option<&str>,
                ) -> StoreResult<()> {
                    let done = sqlx::query(
                        "UPDATE users SET password_hash = $3 WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .bind(hash)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("user", id));
                    }
                    Ok(())
                }

                async fn create_operator(
                    &self,
                    o: &OperatorAccount,
                    password_hash: &str,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "INSERT INTO operators (login, password_hash, created_at) \
                         VALUES ($1, $2, $3)",
                    )
                    .bind(&o.login)
                    .bind(password_hash)
                    .bind(enc_ts(o.created_at))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("login", "operator", &o.login)],
                                parent: None,
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn find_operator(&self, login: &str) -> StoreResult<Option<OperatorCandidate>> {
                    let row: Option<OperatorRow> = sqlx::query_as(
                        "SELECT login, password_hash, created_at FROM operators WHERE login = $1",
                    )
                    .bind(login)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(OperatorRow::into_candidate).transpose()
                }

                async fn list_operators(&self) -> StoreResult<Vec<OperatorAccount>> {
                    let found: Vec<OperatorRow> = sqlx::query_as(
                        "SELECT login, password_hash, created_at FROM operators ORDER BY login",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    found
                        .into_iter()
                        .map(|r| Ok(r.into_candidate()?.account))
                        .collect()
                }

                async fn delete_operator(&self, login: &str) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM operators WHERE login = $1")
                        .bind(login)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("operator", login));
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_accounts;
