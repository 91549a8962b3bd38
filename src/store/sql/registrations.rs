//! The statements of the directory snapshot and the registration bindings.

/// Implements [`Registrations`](crate::store::Registrations) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_registrations {
    ($store:ident) => {
        mod registrations {
            use super::*;
            use super::shared::{
                read_err, rows, user_ids, DeviceRow, DidRow, ExternalPhoneRow, TenantRow, TrunkRow, UserRow,
            };
            use $crate::store::sql::Ctx;
            use $crate::store::{Registrations, StoreError, StoreResult};
            use chrono::{DateTime, Utc};
            use tsps_actors::model::Binding;
            use tsps_actors::{DeviceId, Directory, TenantId, UserId};

            #[derive(sqlx::FromRow)]
            struct BindingRow {
                tenant_id: DbId,
                user_id: DbId,
                device_id: DbId,
                contact: String,
                received: String,
                expires_at: DbTs,
                call_id: String,
                cseq: i64,
            }

            impl TryFrom<BindingRow> for Binding {
                type Error = StoreError;
                fn try_from(r: BindingRow) -> StoreResult<Binding> {
                    Ok(Binding {
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        user_id: UserId(dec_id(r.user_id)?),
                        device_id: DeviceId(dec_id(r.device_id)?),
                        contact: r.contact,
                        received: r.received,
                        expires_at: dec_ts(r.expires_at)?,
                        call_id: r.call_id,
                        cseq: u32::try_from(r.cseq).map_err(|_| {
                            StoreError::Invalid(format!("binding cseq out of range: {}", r.cseq))
                        })?,
                    })
                }
            }

            #[async_trait::async_trait]
            impl Registrations for $store {
                async fn load_directory(&self) -> StoreResult<Directory> {
                    // One read transaction, so the five tables come from one snapshot
                    // (no device whose user is missing because it arrived in between).
                    let mut tx = self.pool.begin().await.map_err(read_err)?;
                    if let Some(statement) = SNAPSHOT {
                        sqlx::query(statement)
                            .execute(&mut *tx)
                            .await
                            .map_err(read_err)?;
                    }
                    let tenants: Vec<TenantRow> =
                        sqlx::query_as("SELECT id, domain, name, time_zone FROM tenants")
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(read_err)?;
                    let users: Vec<UserRow> = sqlx::query_as(
                        "SELECT id, tenant_id, extension, display_name, portal_login FROM users",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    let devices: Vec<DeviceRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, sip_username, ha1_md5, ha1_sha256, remote_answer, digest_algorithms \
                         FROM devices",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    let phones: Vec<ExternalPhoneRow> = sqlx::query_as(
                        "SELECT id, tenant_id, user_id, number, label FROM external_phones",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    let dids: Vec<DidRow> =
                        sqlx::query_as("SELECT number, tenant_id, user_id FROM dids")
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(read_err)?;
                    let trunks: Vec<TrunkRow> = sqlx::query_as(
                        "SELECT id, tenant_id, name, peer_host, peer_port, transport, username, \
                         password, inbound_sources FROM trunks",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    let watch: Vec<(DbId, DbList)> =
                        sqlx::query_as("SELECT user_id, watcher_ids FROM watch_rules")
                            .fetch_all(&mut *tx)
                            .await
                            .map_err(read_err)?;
                    let limits: Vec<(DbId, i64)> = sqlx::query_as(
                        "SELECT tenant_id, subscriptions FROM tenant_quotas \
                         WHERE subscriptions IS NOT NULL",
                    )
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    tx.commit().await.map_err(read_err)?;
                    let limits = limits
                        .into_iter()
                        .map(|(t, n)| Ok((TenantId(dec_id(t)?), n.clamp(0, i64::from(u32::MAX)) as u32)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    let watch = watch
                        .into_iter()
                        .map(|(u, list)| Ok((UserId(dec_id(u)?), user_ids(list)?)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    Ok(Directory::new(
                        rows(tenants)?,
                        rows(users)?,
                        rows(devices)?,
                        rows(dids)?,
                        rows(trunks)?,
                    )
                    .with_external_phones(rows(phones)?)
                    .with_watch_rules(watch)
                    .with_subscription_limits(limits))
                }

                async fn save_binding(&self, b: &Binding) -> StoreResult<()> {
                    let device = b.device_id.to_string();
                    sqlx::query(
                        "INSERT INTO bindings \
                         (tenant_id, user_id, device_id, contact, received, expires_at, call_id, cseq) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (tenant_id, device_id, contact) DO UPDATE SET \
                         user_id = excluded.user_id, received = excluded.received, \
                         expires_at = excluded.expires_at, call_id = excluded.call_id, \
                         cseq = excluded.cseq",
                    )
                    .bind(enc_id(b.tenant_id.0))
                    .bind(enc_id(b.user_id.0))
                    .bind(enc_id(b.device_id.0))
                    .bind(&b.contact)
                    .bind(&b.received)
                    .bind(enc_ts(b.expires_at))
                    .bind(&b.call_id)
                    .bind(i64::from(b.cseq))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[],
                                parent: Some(("device", &device)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn remove_binding(
                    &self,
                    tenant: TenantId,
                    device: DeviceId,
                    contact: &str,
                ) -> StoreResult<()> {
                    sqlx::query(
                        "DELETE FROM bindings WHERE tenant_id = $1 AND device_id = $2 AND contact = $3",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(device.0))
                    .bind(contact)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(())
                }

                async fn remove_device_bindings(
                    &self,
                    tenant: TenantId,
                    device: DeviceId,
                ) -> StoreResult<()> {
                    sqlx::query("DELETE FROM bindings WHERE tenant_id = $1 AND device_id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(device.0))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    Ok(())
                }

                async fn load_bindings(&self, now: DateTime<Utc>) -> StoreResult<Vec<Binding>> {
                    let found: Vec<BindingRow> = sqlx::query_as(
                        "SELECT tenant_id, user_id, device_id, contact, received, expires_at, \
                         call_id, cseq FROM bindings WHERE expires_at > $1 \
                         ORDER BY tenant_id, device_id, contact",
                    )
                    .bind(enc_ts(now))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn list_bindings(
                    &self,
                    tenant: TenantId,
                    now: DateTime<Utc>,
                ) -> StoreResult<Vec<Binding>> {
                    let found: Vec<BindingRow> = sqlx::query_as(
                        "SELECT tenant_id, user_id, device_id, contact, received, expires_at, \
                         call_id, cseq FROM bindings WHERE tenant_id = $1 AND expires_at > $2 \
                         ORDER BY device_id, contact",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_ts(now))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }
            }
        }
    };
}

pub(crate) use sql_registrations;
