//! The statements of DIDs.

/// Implements [`Numbers`](crate::store::Numbers) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_numbers {
    ($store:ident) => {
        mod numbers {
            use super::shared::{read_err, rows, DidRow};
            use super::*;
            use chrono::Utc;
            use tsps_actors::model::Did;
            use tsps_actors::TenantId;
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{same_tenant, Numbers, StoreResult};

            #[async_trait::async_trait]
            impl Numbers for $store {
                async fn create_did(&self, tenant: TenantId, d: &Did) -> StoreResult<()> {
                    same_tenant(tenant, d.tenant_id, "did")?;
                    let user = d.user_id.to_string();
                    sqlx::query(
                        "INSERT INTO dids (number, tenant_id, user_id, created_at) \
                         VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&d.number)
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(d.user_id.0))
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("number", "did", &d.number)],
                                parent: Some(("user", &user)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn get_did(&self, tenant: TenantId, number: &str) -> StoreResult<Did> {
                    let row: Option<DidRow> = sqlx::query_as(
                        "SELECT number, tenant_id, user_id FROM dids \
                         WHERE tenant_id = $1 AND number = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(number)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("did", number))?.try_into()
                }

                async fn list_dids(&self, tenant: TenantId) -> StoreResult<Vec<Did>> {
                    let found: Vec<DidRow> = sqlx::query_as(
                        "SELECT number, tenant_id, user_id FROM dids WHERE tenant_id = $1 \
                         ORDER BY number",
                    )
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_did(&self, tenant: TenantId, d: &Did) -> StoreResult<()> {
                    same_tenant(tenant, d.tenant_id, "did")?;
                    let user = d.user_id.to_string();
                    let done = sqlx::query(
                        "UPDATE dids SET user_id = $3 WHERE tenant_id = $1 AND number = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(&d.number)
                    .bind(enc_id(d.user_id.0))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[],
                                parent: Some(("user", &user)),
                            },
                        )
                    })?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("did", &d.number));
                    }
                    Ok(())
                }

                async fn delete_did(&self, tenant: TenantId, number: &str) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM dids WHERE tenant_id = $1 AND number = $2")
                        .bind(enc_id(tenant.0))
                        .bind(number)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("did", number));
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_numbers;
