//! The statements of tenants, their settings, quotas and counts.

/// Implements [`Tenants`](crate::store::Tenants) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_tenants {
    ($store:ident) => {
        mod tenants {
            use super::*;
            use super::shared::{read_err, rows, TenantRow};
            use $crate::contacts::{DialingRules, TenantSettings};
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{StoreError, StoreResult, TenantQuotas, Tenants};
            use chrono::Utc;
            use tsps_actors::model::Tenant;
            use tsps_actors::{TenantId, UserId};

            #[async_trait::async_trait]
            impl Tenants for $store {
                async fn create_tenant(&self, t: &Tenant) -> StoreResult<()> {
                    let id = t.id.to_string();
                    sqlx::query(
                        "INSERT INTO tenants (id, domain, name, time_zone, created_at) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(enc_id(t.id.0))
                    .bind(&t.domain)
                    .bind(&t.name)
                    .bind(&t.time_zone)
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("domain", "tenant", &t.domain), ("id", "tenant", &id)],
                                parent: None,
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn get_tenant(&self, id: TenantId) -> StoreResult<Tenant> {
                    let row: Option<TenantRow> = sqlx::query_as(
                        "SELECT id, domain, name, time_zone FROM tenants WHERE id = $1",
                    )
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("tenant", id))?.try_into()
                }

                async fn find_tenant_by_domain(&self, domain: &str) -> StoreResult<Option<Tenant>> {
                    let row: Option<TenantRow> = sqlx::query_as(
                        "SELECT id, domain, name, time_zone FROM tenants WHERE domain = $1",
                    )
                    .bind(domain)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(Tenant::try_from).transpose()
                }

                async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
                    let found: Vec<TenantRow> = sqlx::query_as(
                        "SELECT id, domain, name, time_zone FROM tenants ORDER BY domain",
                    )
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_tenant(&self, t: &Tenant) -> StoreResult<()> {
                    // One statement, so the device check and the change cannot be split by
                    // another writer on SQLite; the domain only moves while no HA1 depends on it.
                    let done = sqlx::query(
                        "UPDATE tenants SET domain = $2, name = $3, time_zone = $4 \
                         WHERE id = $1 AND (domain = $2 OR \
                         (SELECT COUNT(*) FROM devices WHERE tenant_id = $1) = 0)",
                    )
                    .bind(enc_id(t.id.0))
                    .bind(&t.domain)
                    .bind(&t.name)
                    .bind(&t.time_zone)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("domain", "tenant", &t.domain)],
                                parent: None,
                            },
                        )
                    })?;
                    if done.rows_affected() == 1 {
                        return Ok(());
                    }
                    // Tell the two reasons apart: no such tenant, or the guarded domain change.
                    self.get_tenant(t.id).await?;
                    Err(StoreError::Conflict(format!(
                        "tenant {} has devices whose digest credentials depend on its domain; \
                         delete or re-create them before changing the domain",
                        t.id
                    )))
                }

                async fn delete_tenant(&self, id: TenantId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM tenants WHERE id = $1")
                        .bind(enc_id(id.0))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("tenant", id));
                    }
                    Ok(())
                }

                async fn get_tenant_settings(&self, tenant: TenantId) -> StoreResult<TenantSettings> {
                    type Row = (Option<String>, Option<String>, Option<String>, Option<String>);
                    let row: Option<Row> =
                        sqlx::query_as(
                            "SELECT s.country_code, s.national_prefix, s.international_prefix, \
                             s.notice FROM tenants t LEFT JOIN tenant_settings s ON s.tenant_id = t.id \
                             WHERE t.id = $1",
                        )
                        .bind(enc_id(tenant.0))
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(read_err)?;
                    match row.ok_or_else(|| not_found("tenant", tenant))? {
                        (Some(country_code), Some(national_prefix), Some(international_prefix), notice) => {
                            Ok(TenantSettings {
                                dialing: DialingRules {
                                    country_code,
                                    national_prefix,
                                    international_prefix,
                                },
                                notice,
                            })
                        }
                        _ => Ok(TenantSettings::default()),
                    }
                }

                async fn put_tenant_settings(
                    &self,
                    tenant: TenantId,
                    settings: &TenantSettings,
                ) -> StoreResult<()> {
                    let key = tenant.to_string();
                    let d = &settings.dialing;
                    sqlx::query(
                        "INSERT INTO tenant_settings (tenant_id, country_code, national_prefix, \
                         international_prefix, notice, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (tenant_id) DO UPDATE SET \
                         country_code = excluded.country_code, \
                         national_prefix = excluded.national_prefix, \
                         international_prefix = excluded.international_prefix, \
                         notice = excluded.notice, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(&d.country_code)
                    .bind(&d.national_prefix)
                    .bind(&d.international_prefix)
                    .bind(&settings.notice)
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("tenant", &key)) }))?;
                    Ok(())
                }

                async fn get_tenant_quotas(&self, tenant: TenantId) -> StoreResult<TenantQuotas> {
                    type Row = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);
                    let row: Option<Row> = sqlx::query_as(
                        "SELECT q.contacts, q.contacts_per_user, q.devices, q.subscriptions \
                         FROM tenants t LEFT JOIN tenant_quotas q ON q.tenant_id = t.id WHERE t.id = $1",
                    )
                    .bind(enc_id(tenant.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let (contacts, contacts_per_user, devices, subscriptions) =
                        row.ok_or_else(|| not_found("tenant", tenant))?;
                    let limit = |v: Option<i64>| v.and_then(|n| u32::try_from(n).ok());
                    Ok(TenantQuotas {
                        contacts: limit(contacts),
                        contacts_per_user: limit(contacts_per_user),
                        devices: limit(devices),
                        subscriptions: limit(subscriptions),
                    })
                }

                async fn put_tenant_quotas(
                    &self,
                    tenant: TenantId,
                    q: &TenantQuotas,
                ) -> StoreResult<()> {
                    let key = tenant.to_string();
                    let limit = |v: Option<u32>| v.map(i64::from);
                    sqlx::query(
                        "INSERT INTO tenant_quotas (tenant_id, contacts, contacts_per_user, devices, \
                         subscriptions) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (tenant_id) DO UPDATE SET contacts = excluded.contacts, \
                         contacts_per_user = excluded.contacts_per_user, devices = excluded.devices, \
                         subscriptions = excluded.subscriptions",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(limit(q.contacts))
                    .bind(limit(q.contacts_per_user))
                    .bind(limit(q.devices))
                    .bind(limit(q.subscriptions))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("tenant", &key)) }))?;
                    Ok(())
                }

                async fn count_contacts(
                    &self,
                    tenant: TenantId,
                    owner: Option<UserId>,
                ) -> StoreResult<u64> {
                    let (n,): (i64,) = sqlx::query_as(
                        "SELECT COUNT(*) FROM contacts WHERE tenant_id = $1 \
                         AND ($2 IS NULL OR owner_user_id = $2)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(owner.map(|u| enc_id(u.0)))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(n.max(0) as u64)
                }

                async fn count_devices(&self, tenant: TenantId) -> StoreResult<u64> {
                    let (n,): (i64,) =
                        sqlx::query_as("SELECT COUNT(*) FROM devices WHERE tenant_id = $1")
                            .bind(enc_id(tenant.0))
                            .fetch_one(&self.pool)
                            .await
                            .map_err(read_err)?;
                    Ok(n.max(0) as u64)
                }
            }
        }
    };
}

pub(crate) use sql_tenants;
