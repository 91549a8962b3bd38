//! The statements of trunks.

/// Implements [`Trunks`](crate::store::Trunks) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_trunks {
    ($store:ident) => {
        mod trunks {
            use super::*;
            use super::shared::{read_err, rows, TrunkRow};
            use $crate::store::sql::{not_found, transport_str, Ctx};
            use $crate::store::{same_tenant, StoreResult, Trunks};
            use chrono::Utc;
            use tsps_actors::model::Trunk;
            use tsps_actors::{TenantId, TrunkId};

            #[async_trait::async_trait]
            impl Trunks for $store {
                async fn create_trunk(&self, tenant: TenantId, t: &Trunk) -> StoreResult<()> {
                    same_tenant(tenant, t.tenant_id, "trunk")?;
                    let id = t.id.to_string();
                    let tenant_key = tenant.to_string();
                    sqlx::query(
                        "INSERT INTO trunks (id, tenant_id, name, peer_host, peer_port, transport, \
                         username, password, inbound_sources, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(enc_id(t.id.0))
                    .bind(enc_id(tenant.0))
                    .bind(&t.name)
                    .bind(&t.peer_host)
                    .bind(i32::from(t.peer_port))
                    .bind(transport_str(t.transport))
                    .bind(&t.username)
                    .bind(t.password.as_ref().map(|p| p.expose()))
                    .bind(enc_list(&t.inbound_sources))
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("name", "trunk", &t.name), ("id", "trunk", &id)],
                                parent: Some(("tenant", &tenant_key)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn get_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<Trunk> {
                    let row: Option<TrunkRow> = sqlx::query_as(
                        "SELECT id, tenant_id, name, peer_host, peer_port, transport, username, \
                         password, inbound_sources FROM trunks WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("trunk", id))?.try_into()
                }

                async fn find_trunk_by_name(
                    &self,
                    tenant: TenantId,
                    name: &str,
                ) -> StoreResult<Option<Trunk>> {
                    let row: Option<TrunkRow> = sqlx::query_as(
                        "SELECT id, tenant_id, name, peer_host, peer_port, transport, username, \
                         password, inbound_sources FROM trunks WHERE tenant_id = $1 AND name = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(Trunk::try_from).transpose()
                }

                async fn list_trunks(&self, tenant: TenantId) -> StoreResult<Vec<Trunk>> {
                    let found: Vec<TrunkRow> = sqlx::query_as(
                        "SELECT id, tenant_id, name, peer_host, peer_port, transport, username, \
                         password, inbound_sources FROM trunks WHERE tenant_id = $1 ORDER BY name",
                    )
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_trunk(&self, tenant: TenantId, t: &Trunk) -> StoreResult<()> {
                    same_tenant(tenant, t.tenant_id, "trunk")?;
                    let done = sqlx::query(
                        "UPDATE trunks SET name = $3, peer_host = $4, peer_port = $5, \
                         transport = $6, username = $7, password = $8, inbound_sources = $9 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(t.id.0))
                    .bind(&t.name)
                    .bind(&t.peer_host)
                    .bind(i32::from(t.peer_port))
                    .bind(transport_str(t.transport))
                    .bind(&t.username)
                    .bind(t.password.as_ref().map(|p| p.expose()))
                    .bind(enc_list(&t.inbound_sources))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("name", "trunk", &t.name)],
                                parent: None,
                            },
                        )
                    })?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("trunk", t.id));
                    }
                    Ok(())
                }

                async fn delete_trunk(&self, tenant: TenantId, id: TrunkId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM trunks WHERE tenant_id = $1 AND id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(id.0))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("trunk", id));
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_trunks;
