//! The statements of contacts and their numbers.

/// Implements [`Contacts`](crate::store::Contacts) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_contacts {
    ($store:ident) => {
        mod contacts {
            use super::*;
            use super::shared::{read_err, rows};
            use $crate::contacts::{Contact, ContactId, ContactNumber, ContactOwner, ContactPhone};
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{same_tenant, Contacts, StoreError, StoreResult};
            use chrono::Utc;
            use std::collections::HashMap;
            use tsps_actors::{TenantId, UserId};

            #[derive(sqlx::FromRow)]
            struct ContactRow {
                id: DbId,
                tenant_id: DbId,
                owner_user_id: Option<DbId>,
                name: String,
                company: Option<String>,
                email: Option<String>,
                handling_code: Option<String>,
            }

            impl TryFrom<ContactRow> for Contact {
                type Error = StoreError;
                fn try_from(r: ContactRow) -> StoreResult<Contact> {
                    Ok(Contact {
                        id: ContactId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        owner: match r.owner_user_id {
                            Some(u) => ContactOwner::User(UserId(dec_id(u)?)),
                            None => ContactOwner::Shared,
                        },
                        name: r.name,
                        company: r.company,
                        email: r.email,
                        handling_code: r.handling_code,
                        numbers: Vec::new(),
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            struct ContactNumberRow {
                contact_id: DbId,
                number_e164: String,
                label: Option<String>,
            }

            #[derive(sqlx::FromRow)]
            struct LookupRow {
                number_e164: String,
                name: String,
                handling_code: Option<String>,
                owner_user_id: Option<DbId>,
            }

            /// Attaches numbers (ordered by contact, then position) to their contacts.
            fn with_numbers(
                contacts: Vec<ContactRow>,
                numbers: Vec<ContactNumberRow>,
            ) -> StoreResult<Vec<Contact>> {
                let mut contacts: Vec<Contact> = rows(contacts)?;
                let index: HashMap<ContactId, usize> =
                    contacts.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                for n in numbers {
                    let id = ContactId(dec_id(n.contact_id)?);
                    // A contact written between the two reads may bring numbers of its own.
                    if let Some(&i) = index.get(&id) {
                        contacts[i].numbers.push(ContactPhone {
                            number: n.number_e164,
                            label: n.label,
                        });
                    }
                }
                Ok(contacts)
            }

            /// Inserts the numbers of `c` inside the caller's transaction.
            async fn insert_numbers(
                tx: &mut sqlx::Transaction<'static, Db>,
                c: &Contact,
            ) -> StoreResult<()> {
                let contact = c.id.to_string();
                for (position, n) in c.numbers.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO contact_numbers (contact_id, tenant_id, position, \
                         number_e164, label) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(enc_id(c.id.0))
                    .bind(enc_id(c.tenant_id.0))
                    .bind(i32::try_from(position).unwrap_or(i32::MAX))
                    .bind(&n.number)
                    .bind(&n.label)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[("number_e164", "contact number", &n.number)],
                                parent: Some(("contact", &contact)),
                            },
                        )
                    })?;
                }
                Ok(())
            }

            #[async_trait::async_trait]
            impl Contacts for $store {
                async fn create_contact(&self, tenant: TenantId, c: &Contact) -> StoreResult<()> {
                    self.create_contacts(tenant, std::slice::from_ref(c)).await
                }

                async fn create_contacts(&self, tenant: TenantId, contacts: &[Contact]) -> StoreResult<()> {
                    for c in contacts {
                        same_tenant(tenant, c.tenant_id, "contact")?;
                    }
                    let tenant_key = tenant.to_string();
                    let now = enc_ts(Utc::now());
                    let mut tx = self.pool.begin().await.map_err(read_err)?;
                    for c in contacts {
                        let id = c.id.to_string();
                        let owner_key = c.owner.user().map(|u| u.to_string());
                        let parent = match &owner_key {
                            Some(u) => ("user", u.as_str()),
                            None => ("tenant", tenant_key.as_str()),
                        };
                        sqlx::query(
                            "INSERT INTO contacts (id, tenant_id, owner_user_id, name, company, \
                             email, handling_code, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
                        )
                        .bind(enc_id(c.id.0))
                        .bind(enc_id(tenant.0))
                        .bind(c.owner.user().map(|u| enc_id(u.0)))
                        .bind(&c.name)
                        .bind(&c.company)
                        .bind(&c.email)
                        .bind(&c.handling_code)
                        .bind(now.clone())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            translate(e, &Ctx { unique: &[("id", "contact", &id)], parent: Some(parent) })
                        })?;
                        insert_numbers(&mut tx, c).await?;
                    }
                    tx.commit().await.map_err(read_err)?;
                    Ok(())
                }

                async fn get_contact(
                    &self,
                    tenant: TenantId,
                    owner: ContactOwner,
                    id: ContactId,
                ) -> StoreResult<Contact> {
                    let owner_id = owner.user().map(|u| enc_id(u.0));
                    let row: Option<ContactRow> = sqlx::query_as(
                        "SELECT id, tenant_id, owner_user_id, name, company, email, handling_code \
                         FROM contacts WHERE tenant_id = $1 AND id = $2 \
                         AND (($3 IS NULL AND owner_user_id IS NULL) OR owner_user_id = $3)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .bind(owner_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let row = row.ok_or_else(|| not_found("contact", id))?;
                    let numbers: Vec<ContactNumberRow> = sqlx::query_as(
                        "SELECT contact_id, number_e164, label FROM contact_numbers \
                         WHERE tenant_id = $1 AND contact_id = $2 ORDER BY position",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    with_numbers(vec![row], numbers)?
                        .pop()
                        .ok_or_else(|| not_found("contact", id))
                }

                async fn list_contacts(
                    &self,
                    tenant: TenantId,
                    owner: ContactOwner,
                ) -> StoreResult<Vec<Contact>> {
                    let owner_id = owner.user().map(|u| enc_id(u.0));
                    let contacts: Vec<ContactRow> = sqlx::query_as(
                        "SELECT id, tenant_id, owner_user_id, name, company, email, handling_code \
                         FROM contacts WHERE tenant_id = $1 \
                         AND (($2 IS NULL AND owner_user_id IS NULL) OR owner_user_id = $2) \
                         ORDER BY name, id",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(owner_id.clone())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if contacts.is_empty() {
                        return Ok(Vec::new());
                    }
                    let numbers: Vec<ContactNumberRow> = sqlx::query_as(
                        "SELECT n.contact_id, n.number_e164, n.label FROM contact_numbers n \
                         JOIN contacts c ON c.tenant_id = n.tenant_id AND c.id = n.contact_id \
                         WHERE n.tenant_id = $1 \
                         AND (($2 IS NULL AND c.owner_user_id IS NULL) OR c.owner_user_id = $2) \
                         ORDER BY n.contact_id, n.position",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(owner_id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    with_numbers(contacts, numbers)
                }

                async fn update_contact(&self, tenant: TenantId, c: &Contact) -> StoreResult<()> {
                    same_tenant(tenant, c.tenant_id, "contact")?;
                    let mut tx = self.pool.begin().await.map_err(read_err)?;
                    let done = sqlx::query(
                        "UPDATE contacts SET name = $4, company = $5, email = $6, \
                         handling_code = $7, updated_at = $8 \
                         WHERE tenant_id = $1 AND id = $2 \
                         AND (($3 IS NULL AND owner_user_id IS NULL) OR owner_user_id = $3)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(c.id.0))
                    .bind(c.owner.user().map(|u| enc_id(u.0)))
                    .bind(&c.name)
                    .bind(&c.company)
                    .bind(&c.email)
                    .bind(&c.handling_code)
                    .bind(enc_ts(Utc::now()))
                    .execute(&mut *tx)
                    .await
                    .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("contact", c.id));
                    }
                    sqlx::query("DELETE FROM contact_numbers WHERE tenant_id = $1 AND contact_id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(c.id.0))
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err)?;
                    insert_numbers(&mut tx, c).await?;
                    tx.commit().await.map_err(read_err)?;
                    Ok(())
                }

                async fn delete_contact(
                    &self,
                    tenant: TenantId,
                    owner: ContactOwner,
                    id: ContactId,
                ) -> StoreResult<()> {
                    let done = sqlx::query(
                        "DELETE FROM contacts WHERE tenant_id = $1 AND id = $2 \
                         AND (($3 IS NULL AND owner_user_id IS NULL) OR owner_user_id = $3)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .bind(owner.user().map(|u| enc_id(u.0)))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("contact", id));
                    }
                    Ok(())
                }

                async fn contact_lookup_table(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                ) -> StoreResult<Vec<ContactNumber>> {
                    let found: Vec<LookupRow> = sqlx::query_as(
                        "SELECT n.number_e164, c.name, c.handling_code, c.owner_user_id \
                         FROM contact_numbers n \
                         JOIN contacts c ON c.tenant_id = n.tenant_id AND c.id = n.contact_id \
                         WHERE n.tenant_id = $1 AND (c.owner_user_id IS NULL OR c.owner_user_id = $2) \
                         ORDER BY CASE WHEN c.owner_user_id IS NULL THEN 1 ELSE 0 END, \
                         n.number_e164, c.name",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(found
                        .into_iter()
                        .map(|r| ContactNumber {
                            number_e164: r.number_e164,
                            name: r.name,
                            handling_code: r.handling_code,
                            shared: r.owner_user_id.is_none(),
                        })
                        .collect())
                }
            }
        }
    };
}

pub(crate) use sql_contacts;
