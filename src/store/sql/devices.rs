//! The statements of devices and external phones.

use tsps_actors::model::DigestAlgorithm;

/// The stored names of digest algorithms.
pub(crate) fn algorithm_names(list: &[DigestAlgorithm]) -> Vec<String> {
    list.iter().map(|a| a.name().to_string()).collect()
}

/// Implements [`Devices`](crate::store::Devices) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_devices {
    ($store:ident) => {
        mod devices {
            use super::*;
            use super::shared::{read_err, rows, DeviceRow, ExternalPhoneRow};
            use $crate::store::sql::devices::algorithm_names;
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{same_tenant, Devices, StoreResult};
            use chrono::Utc;
            use tsps_actors::model::{Device, ExternalPhone};
            use tsps_actors::{DeviceId, TenantId, UserId};

            #[async_trait::async_trait]
            impl Devices for $store {
                async fn create_device(&self, tenant: TenantId, d: &Device) -> StoreResult<()> {
                    same_tenant(tenant, d.tenant_id, "device")?;
                    let id = d.id.to_string();
                    let user = d.user_id.to_string();
                    sqlx::query(
                        "INSERT INTO devices (id, tenant_id, user_id, sip_username, ha1_md5, \
                         ha1_sha256, created_at, remote_answer, digest_algorithms) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(enc_id(d.id.0))
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(d.user_id.0))
                    .bind(&d.sip_username)
                    .bind(&d.ha1_md5)
                    .bind(&d.ha1_sha256)
                    .bind(enc_ts(Utc::now()))
                    .bind(d.remote_answer)
                    .bind(enc_list(&algorithm_names(&d.digest_algorithms)))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[
                                    ("sip_username", "sip username", &d.sip_username),
                                    ("id", "device", &id),
                                ],
                                // The key is (tenant, user): a user of another tenant is missing here.
                                parent: Some(("user", &user)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn get_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<Device> {
                    let row: Option<DeviceRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, sip_username, ha1_md5, ha1_sha256, remote_answer, digest_algorithms \
                         FROM devices WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("device", id))?.try_into()
                }

                async fn find_device_by_username(
                    &self,
                    tenant: TenantId,
                    sip_username: &str,
                ) -> StoreResult<Option<Device>> {
                    let row: Option<DeviceRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, sip_username, ha1_md5, ha1_sha256, remote_answer, digest_algorithms \
                         FROM devices WHERE tenant_id = $1 AND sip_username = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(sip_username)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(Device::try_from).transpose()
                }

                async fn list_devices(
                    &self,
                    tenant: TenantId,
                    user: Option<UserId>,
                ) -> StoreResult<Vec<Device>> {
                    let found: Vec<DeviceRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, sip_username, ha1_md5, ha1_sha256, remote_answer, digest_algorithms \
                         FROM devices WHERE tenant_id = $1 AND ($2 IS NULL OR user_id = $2) \
                         ORDER BY sip_username",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(user.map(|u| enc_id(u.0)))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_device(&self, tenant: TenantId, d: &Device) -> StoreResult<()> {
                    same_tenant(tenant, d.tenant_id, "device")?;
                    let user = d.user_id.to_string();
                    let done = sqlx::query(
                        "UPDATE devices SET user_id = $3, sip_username = $4, ha1_md5 = $5, \
                         ha1_sha256 = $6, remote_answer = $7, digest_algorithms = $8 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(d.id.0))
                    .bind(enc_id(d.user_id.0))
                    .bind(&d.sip_username)
                    .bind(&d.ha1_md5)
                    .bind(&d.ha1_sha256)
                    .bind(d.remote_answer)
                    .bind(enc_list(&algorithm_names(&d.digest_algorithms)))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("sip_username", "sip username", &d.sip_username)],
                                parent: Some(("user", &user)),
                            },
                        )
                    })?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("device", d.id));
                    }
                    Ok(())
                }

                async fn delete_device(&self, tenant: TenantId, id: DeviceId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM devices WHERE tenant_id = $1 AND id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(id.0))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("device", id));
                    }
                    Ok(())
                }

                async fn create_external_phone(
                    &self,
                    tenant: TenantId,
                    p: &ExternalPhone,
                ) -> StoreResult<()> {
                    same_tenant(tenant, p.tenant_id, "external phone")?;
                    let id = p.id.to_string();
                    let user = p.user_id.to_string();
                    sqlx::query(
                        "INSERT INTO external_phones (id, tenant_id, user_id, number, label, \
                         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(enc_id(p.id.0))
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(p.user_id.0))
                    .bind(&p.number)
                    .bind(&p.label)
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[
                                    ("number", "external phone", &p.number),
                                    ("id", "external phone", &id),
                                ],
                                // The key is (tenant, user): a user of another tenant is missing here.
                                parent: Some(("user", &user)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn list_external_phones(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                ) -> StoreResult<Vec<ExternalPhone>> {
                    let found: Vec<ExternalPhoneRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, number, label FROM external_phones \
                         WHERE tenant_id = $1 AND user_id = $2 ORDER BY number",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_external_phone(
                    &self,
                    tenant: TenantId,
                    p: &ExternalPhone,
                ) -> StoreResult<()> {
                    same_tenant(tenant, p.tenant_id, "external phone")?;
                    let done = sqlx::query(
                        "UPDATE external_phones SET number = $4, label = $5 \
                         WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(p.user_id.0))
                    .bind(enc_id(p.id.0))
                    .bind(&p.number)
                    .bind(&p.label)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("number", "external phone", &p.number)],
                                parent: None,
                            },
                        )
                    })?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("external phone", p.id));
                    }
                    Ok(())
                }

                async fn delete_external_phone(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    id: DeviceId,
                ) -> StoreResult<()> {
                    let done = sqlx::query(
                        "DELETE FROM external_phones \
                         WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(enc_id(id.0))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("external phone", id));
                    }
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_devices;
