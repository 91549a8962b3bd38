//! The statements of API tokens.

/// Implements [`ApiTokens`](crate::store::ApiTokens) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_api_tokens {
    ($store:ident) => {
        mod api_tokens {
            use super::shared::{read_err, rows};
            use super::*;
            use tsps_actors::{TenantId, UserId};
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{
                same_tenant, ApiToken, ApiTokenId, ApiTokens, StoreError, StoreResult,
            };

            #[derive(sqlx::FromRow)]
            struct ApiTokenRow {
                id: DbId,
                tenant_id: DbId,
                name: String,
                secret_hash: String,
                user_ids: Option<DbList>,
                created_at: DbTs,
                expires_at: Option<DbTs>,
            }

            impl TryFrom<ApiTokenRow> for ApiToken {
                type Error = StoreError;
                fn try_from(r: ApiTokenRow) -> StoreResult<ApiToken> {
                    let users = r
                        .user_ids
                        .map(|list| {
                            dec_list(list)?
                                .iter()
                                .map(|u| {
                                    u.parse::<UserId>().map_err(|e| {
                                        StoreError::Invalid(format!("bad user id {u:?}: {e}"))
                                    })
                                })
                                .collect::<StoreResult<Vec<UserId>>>()
                        })
                        .transpose()?;
                    Ok(ApiToken {
                        id: ApiTokenId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        name: r.name,
                        secret_hash: $crate::secret::Secret(r.secret_hash),
                        users,
                        created_at: dec_ts(r.created_at)?,
                        expires_at: r.expires_at.map(dec_ts).transpose()?,
                    })
                }
            }

            const API_TOKEN_COLUMNS: &str =
                "id, tenant_id, name, secret_hash, user_ids, created_at, expires_at";

            #[async_trait::async_trait]
            impl ApiTokens for $store {
                async fn create_api_token(
                    &self,
                    tenant: TenantId,
                    t: &ApiToken,
                ) -> StoreResult<()> {
                    same_tenant(tenant, t.tenant_id, "api token")?;
                    let tenant_key = tenant.to_string();
                    let users = t.users.as_ref().map(|list| {
                        enc_list(&list.iter().map(UserId::to_string).collect::<Vec<_>>())
                    });
                    sqlx::query(&format!(
                        "INSERT INTO api_tokens ({API_TOKEN_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    ))
                    .bind(enc_id(t.id.0))
                    .bind(enc_id(tenant.0))
                    .bind(&t.name)
                    .bind(t.secret_hash.expose())
                    .bind(users)
                    .bind(enc_ts(t.created_at))
                    .bind(t.expires_at.map(enc_ts))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[
                                    ("name", "api token", &t.name),
                                    ("secret_hash", "api token", "(redacted)"),
                                ],
                                parent: Some(("tenant", &tenant_key)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn list_api_tokens(&self, tenant: TenantId) -> StoreResult<Vec<ApiToken>> {
                    let found: Vec<ApiTokenRow> = sqlx::query_as(&format!(
                        "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE tenant_id = $1 \
                         ORDER BY name"
                    ))
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn find_api_token(&self, secret_hash: &str) -> StoreResult<Option<ApiToken>> {
                    let row: Option<ApiTokenRow> = sqlx::query_as(&format!(
                        "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE secret_hash = $1"
                    ))
                    .bind(secret_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(ApiToken::try_from).transpose()
                }

                async fn delete_api_token(
                    &self,
                    tenant: TenantId,
                    id: ApiTokenId,
                ) -> StoreResult<()> {
                    let done =
                        sqlx::query("DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2")
                            .bind(enc_id(tenant.0))
                            .bind(enc_id(id.0))
                            .execute(&self.pool)
                            .await
                            .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("api token", id));
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_api_tokens;
