//! The statements of users, their profiles and presence, policies and watch rules.

use crate::store::{PolicyMode, StoreError, StoreResult, UserPolicy};
use tsps_actors::feature::{Presence, Profile};

pub(crate) fn presence_str(p: Presence) -> &'static str {
    match p {
        Presence::Available => "available",
        Presence::Busy => "busy",
        Presence::Away => "away",
        Presence::InMeeting => "in_meeting",
        Presence::DoNotDisturb => "do_not_disturb",
    }
}

pub(crate) fn parse_presence(s: &str) -> StoreResult<Presence> {
    [
        Presence::Available,
        Presence::Busy,
        Presence::Away,
        Presence::InMeeting,
        Presence::DoNotDisturb,
    ]
    .into_iter()
    .find(|p| presence_str(*p) == s)
    .ok_or_else(|| StoreError::Invalid(format!("unknown presence {s:?}")))
}

/// Profiles are stored as the JSON of [`Profile`], so a profile gains fields without
/// a migration (they take their serde defaults when read from older rows).
pub(crate) fn encode_profile(p: &Profile) -> StoreResult<String> {
    serde_json::to_string(p).map_err(|e| StoreError::Invalid(format!("profile not encodable: {e}")))
}

pub(crate) fn decode_profile(text: &str) -> StoreResult<Profile> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Invalid(format!("stored profile unreadable: {e}")))
}

pub(crate) fn parse_policy_mode(s: &str) -> StoreResult<PolicyMode> {
    PolicyMode::parse(s).ok_or_else(|| StoreError::Invalid(format!("unknown policy mode {s:?}")))
}

/// The rule behind the `user_policies` check constraint, said before the database does.
pub(crate) fn check_policy(p: &UserPolicy) -> StoreResult<()> {
    match (p.mode, &p.external_uri) {
        (PolicyMode::External, None) => Err(StoreError::Invalid(
            "policy external needs an external_uri".into(),
        )),
        (PolicyMode::Accept | PolicyMode::Reject, Some(_)) => Err(StoreError::Invalid(format!(
            "policy {} takes no external_uri",
            p.mode.as_str()
        ))),
        _ => Ok(()),
    }
}

/// Implements [`Users`](crate::store::Users) for `$store`; expanded by
/// [`sql_store!`](super::sql_store) in each backend module.
macro_rules! sql_users {
    ($store:ident) => {
        mod users {
            use super::*;
            use super::shared::{read_err, rows, user_ids, UserRow};
            use $crate::store::sql::users::{
                check_policy, decode_profile, encode_profile, parse_policy_mode, parse_presence, presence_str,
            };
            use $crate::store::sql::{not_found, Ctx};
            use $crate::store::{same_tenant, StoreError, StoreResult, UserPolicy, Users};
            use chrono::Utc;
            use tsps_actors::feature::{Presence, Profile};
            use tsps_actors::model::User;
            use tsps_actors::presence::WatchRule;
            use tsps_actors::{TenantId, UserId};

            #[derive(sqlx::FromRow)]
            struct PolicyRow {
                user_id: DbId,
                mode: Option<String>,
                external_uri: Option<String>,
            }

            impl PolicyRow {
                fn into_policy(self) -> StoreResult<(UserId, UserPolicy)> {
                    let policy = match self.mode {
                        Some(mode) => UserPolicy {
                            mode: parse_policy_mode(&mode)?,
                            external_uri: self.external_uri,
                        },
                        None => UserPolicy::default(),
                    };
                    Ok((UserId(dec_id(self.user_id)?), policy))
                }
            }

            impl $store {
                /// The ids of the tenant's users (to check a list of users against).
                async fn tenant_user_ids(
                    &self,
                    tenant: TenantId,
                ) -> StoreResult<std::collections::HashSet<UserId>> {
                    let ids: Vec<(DbId,)> = sqlx::query_as("SELECT id FROM users WHERE tenant_id = $1")
                        .bind(enc_id(tenant.0))
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err)?;
                    ids.into_iter().map(|(id,)| Ok(UserId(dec_id(id)?))).collect()
                }
            }

            #[async_trait::async_trait]
            impl Users for $store {
                async fn create_user(&self, tenant: TenantId, u: &User) -> StoreResult<()> {
                    same_tenant(tenant, u.tenant_id, "user")?;
                    let tenant_key = tenant.to_string();
                    let id = u.id.to_string();
                    let login = u.portal_login.clone().unwrap_or_default();
                    sqlx::query(
                        "INSERT INTO users (id, tenant_id, extension, display_name, portal_login, \
                         created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(enc_id(u.id.0))
                    .bind(enc_id(tenant.0))
                    .bind(&u.extension)
                    .bind(&u.display_name)
                    .bind(&u.portal_login)
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[
                                    ("extension", "extension", &u.extension),
                                    ("portal_login", "portal login", &login),
                                    ("id", "user", &id),
                                ],
                                parent: Some(("tenant", &tenant_key)),
                            },
                        )
                    })?;
                    Ok(())
                }

                async fn get_user(&self, tenant: TenantId, id: UserId) -> StoreResult<User> {
                    let row: Option<UserRow> = sqlx::query_as(
                        "SELECT id, tenant_id, extension, display_name, portal_login FROM users \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(id.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.ok_or_else(|| not_found("user", id))?.try_into()
                }

                async fn find_user_by_extension(
                    &self,
                    tenant: TenantId,
                    extension: &str,
                ) -> StoreResult<Option<User>> {
                    let row: Option<UserRow> = sqlx::query_as(
                        "SELECT id, tenant_id, extension, display_name, portal_login FROM users \
                         WHERE tenant_id = $1 AND extension = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(extension)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(User::try_from).transpose()
                }

                async fn list_users(&self, tenant: TenantId) -> StoreResult<Vec<User>> {
                    let found: Vec<UserRow> = sqlx::query_as(
                        "SELECT id, tenant_id, extension, display_name, portal_login FROM users \
                         WHERE tenant_id = $1 ORDER BY extension",
                    )
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    rows(found)
                }

                async fn update_user(&self, tenant: TenantId, u: &User) -> StoreResult<()> {
                    same_tenant(tenant, u.tenant_id, "user")?;
                    let login = u.portal_login.clone().unwrap_or_default();
                    let done = sqlx::query(
                        "UPDATE users SET extension = $3, display_name = $4, portal_login = $5 \
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(u.id.0))
                    .bind(&u.extension)
                    .bind(&u.display_name)
                    .bind(&u.portal_login)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| {
                        translate(
                            e,
                            &Ctx {
                                unique: &[
                                    ("extension", "extension", &u.extension),
                                    ("portal_login", "portal login", &login),
                                ],
                                parent: None,
                            },
                        )
                    })?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("user", u.id));
                    }
                    Ok(())
                }

                async fn delete_user(&self, tenant: TenantId, id: UserId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(id.0))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    if done.rows_affected() == 0 {
                        return Err(not_found("user", id));
                    }
                    Ok(())
                }

                async fn get_profile(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                ) -> StoreResult<(Profile, Presence)> {
                    // From users, so that "no such user" and "nothing stored" differ.
                    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                        "SELECT p.profile, p.presence FROM users u \
                         LEFT JOIN user_profiles p ON p.tenant_id = u.tenant_id AND p.user_id = u.id \
                         WHERE u.tenant_id = $1 AND u.id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let (profile, presence) = row.ok_or_else(|| not_found("user", user))?;
                    Ok((
                        profile.as_deref().map(decode_profile).transpose()?.unwrap_or_default(),
                        presence.as_deref().map(parse_presence).transpose()?.unwrap_or_default(),
                    ))
                }

                async fn put_profile(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    profile: &Profile,
                ) -> StoreResult<()> {
                    let key = user.to_string();
                    sqlx::query(
                        "INSERT INTO user_profiles (tenant_id, user_id, profile, presence, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                         profile = excluded.profile, updated_at = excluded.updated_at",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(encode_profile(profile)?)
                    .bind(presence_str(Presence::default()))
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("user", &key)) }))?;
                    Ok(())
                }

                async fn set_presence(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    presence: Presence,
                ) -> StoreResult<()> {
                    let key = user.to_string();
                    sqlx::query(
                        "INSERT INTO user_profiles (tenant_id, user_id, profile, presence, updated_at) \
                         VALUES ($1, $2, NULL, $3, $4) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                         presence = excluded.presence, updated_at = excluded.updated_at",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(presence_str(presence))
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("user", &key)) }))?;
                    Ok(())
                }

                async fn get_user_policy(&self, tenant: TenantId, user: UserId) -> StoreResult<UserPolicy> {
                    let row: Option<PolicyRow> = sqlx::query_as(
                        "SELECT u.id AS user_id, p.mode, p.external_uri FROM users u \
                         LEFT JOIN user_policies p ON p.tenant_id = u.tenant_id AND p.user_id = u.id \
                         WHERE u.tenant_id = $1 AND u.id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(row.ok_or_else(|| not_found("user", user))?.into_policy()?.1)
                }

                async fn put_user_policy(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    policy: &UserPolicy,
                ) -> StoreResult<()> {
                    check_policy(policy)?;
                    let key = user.to_string();
                    sqlx::query(
                        "INSERT INTO user_policies (tenant_id, user_id, mode, external_uri, updated_at) \
                         VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                         mode = excluded.mode, external_uri = excluded.external_uri, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(policy.mode.as_str())
                    .bind(&policy.external_uri)
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("user", &key)) }))?;
                    Ok(())
                }

                async fn list_user_policies(
                    &self,
                    tenant: TenantId,
                ) -> StoreResult<Vec<(UserId, UserPolicy)>> {
                    let found: Vec<PolicyRow> = sqlx::query_as(
                        "SELECT u.id AS user_id, p.mode, p.external_uri FROM users u \
                         LEFT JOIN user_policies p ON p.tenant_id = u.tenant_id AND p.user_id = u.id \
                         WHERE u.tenant_id = $1 ORDER BY u.extension",
                    )
                    .bind(enc_id(tenant.0))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    found.into_iter().map(PolicyRow::into_policy).collect()
                }

                async fn get_watch_rule(&self, tenant: TenantId, user: UserId) -> StoreResult<WatchRule> {
                    // From users, so that "no such user" and "no rule" differ.
                    let row: Option<(Option<DbList>,)> = sqlx::query_as(
                        "SELECT w.watcher_ids FROM users u \
                         LEFT JOIN watch_rules w ON w.tenant_id = u.tenant_id AND w.user_id = u.id \
                         WHERE u.tenant_id = $1 AND u.id = $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let Some(list) = row.ok_or_else(|| not_found("user", user))?.0 else {
                        return Ok(WatchRule::Anyone);
                    };
                    let members = self.tenant_user_ids(tenant).await?;
                    let mut allowed = user_ids(list)?;
                    allowed.retain(|u| members.contains(u));
                    Ok(WatchRule::Only(allowed))
                }

                async fn put_watch_rule(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    rule: &WatchRule,
                ) -> StoreResult<()> {
                    let key = user.to_string();
                    let members = self.tenant_user_ids(tenant).await?;
                    if !members.contains(&user) {
                        return Err(not_found("user", user));
                    }
                    let list = match rule {
                        WatchRule::Anyone => {
                            sqlx::query("DELETE FROM watch_rules WHERE tenant_id = $1 AND user_id = $2")
                                .bind(enc_id(tenant.0))
                                .bind(enc_id(user.0))
                                .execute(&self.pool)
                                .await
                                .map_err(read_err)?;
                            return Ok(());
                        }
                        WatchRule::Only(list) => list,
                    };
                    let mut ids: Vec<String> = Vec::with_capacity(list.len());
                    for w in list {
                        if !members.contains(w) {
                            return Err(StoreError::Invalid(format!(
                                "watcher {w} is not a user of tenant {tenant}"
                            )));
                        }
                        let w = w.to_string();
                        if !ids.contains(&w) {
                            ids.push(w);
                        }
                    }
                    sqlx::query(
                        "INSERT INTO watch_rules (tenant_id, user_id, watcher_ids, updated_at) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tenant_id, user_id) DO UPDATE SET \
                         watcher_ids = excluded.watcher_ids, updated_at = excluded.updated_at",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(enc_list(&ids))
                    .bind(enc_ts(Utc::now()))
                    .execute(&self.pool)
                    .await
                    .map_err(|e| translate(e, &Ctx { unique: &[], parent: Some(("user", &key)) }))?;
                    Ok(())
                }
            }
        }
    };
}

pub(crate) use sql_users;
