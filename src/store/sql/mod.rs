//! SQL shared by both backends.
//!
//! The two schemas (`sql/sqlite`, `sql/postgres`) have the same tables, columns and
//! keys; only column types differ (TEXT UUIDs and timestamps in SQLite, `uuid` and
//! `timestamptz` in PostgreSQL). So the statements are written once, in one macro per
//! aggregate (`sql_tenants!` in `tenants.rs`, …) that [`sql_store!`] invokes, and each
//! backend module supplies the few things that differ:
//!
//! - `DbId`, `enc_id`, `dec_id`: how a UUID is bound and read;
//! - `DbTs`, `enc_ts`, `dec_ts`: how a timestamp is bound and read;
//! - `DbList`, `enc_list`, `dec_list`: how a list of strings is bound and read;
//! - `translate`: the one function that turns a driver error into a [`StoreError`];
//! - `SNAPSHOT`: the statement, if any, that makes a transaction read one snapshot;
//! - `Db`: the sqlx database type (for helpers that take a transaction).
//!
//! Each macro expands into a module of its own inside the backend module, so that its
//! imports never clash with the backend's; the backend's helpers come in through the
//! glob (`use super::*`). Rows that several aggregates read (most are also read whole
//! into the directory snapshot) are here, in [`sql_shared!`]; a row read by one
//! aggregate only is in that aggregate's file, and so are its parsers and encoders.
//!
//! Placeholders are `$1`, `$2`, … which both PostgreSQL and SQLite understand.

pub(super) mod accounts;
pub(super) mod api_tokens;
pub(super) mod call_log;
pub(super) mod contacts;
pub(super) mod devices;
pub(super) mod numbers;
pub(super) mod registrations;
pub(super) mod sessions;
pub(super) mod tenants;
pub(super) mod trunks;
pub(super) mod users;

use super::{StoreError, StoreResult};
use tsps_actors::model::TransportKind;

/// What a failed write was about, so a constraint violation becomes a precise error.
pub(crate) struct Ctx<'a> {
    /// Unique keys the statement can collide with: (last column of the key, entity,
    /// key value). The first entry is used when the driver does not say which key.
    pub unique: &'a [(&'static str, &'static str, &'a str)],
    /// The parent row a foreign-key violation means is missing: (entity, key).
    pub parent: Option<(&'static str, &'a str)>,
}

impl<'a> Ctx<'a> {
    /// For statements that violate no constraint (reads): errors stay `Db`.
    pub const READ: Ctx<'static> = Ctx {
        unique: &[],
        parent: None,
    };

    /// A unique violation: `violated(column)` tells whether the driver named the key
    /// ending in `column`.
    pub fn already_exists(&self, violated: impl Fn(&str) -> bool, detail: &str) -> StoreError {
        let hit = self
            .unique
            .iter()
            .find(|(column, _, _)| violated(column))
            .or_else(|| self.unique.first());
        match hit {
            Some((_, entity, key)) => StoreError::AlreadyExists {
                entity,
                key: key.to_string(),
            },
            None => StoreError::Conflict(detail.to_string()),
        }
    }

    pub fn missing_parent(&self, detail: &str) -> StoreError {
        match self.parent {
            Some((entity, key)) => StoreError::NotFound {
                entity,
                key: key.to_string(),
            },
            None => StoreError::Conflict(detail.to_string()),
        }
    }
}

pub(crate) fn not_found(entity: &'static str, key: impl ToString) -> StoreError {
    StoreError::NotFound {
        entity,
        key: key.to_string(),
    }
}

pub(crate) fn transport_str(t: TransportKind) -> &'static str {
    match t {
        TransportKind::Udp => "udp",
        TransportKind::Tcp => "tcp",
    }
}

pub(crate) fn parse_transport(s: &str) -> StoreResult<TransportKind> {
    match s {
        "udp" => Ok(TransportKind::Udp),
        "tcp" => Ok(TransportKind::Tcp),
        other => Err(StoreError::Invalid(format!("unknown transport {other:?}"))),
    }
}

/// The rows (and their conversions) that several aggregates read, in the module
/// `shared` of the backend module; its items are `pub(super)` for the aggregates'
/// modules beside it.
macro_rules! sql_shared {
    () => {
        mod shared {
            use super::*;
            use tsps_actors::model::{
                Device, Did, DigestAlgorithm, ExternalPhone, Tenant, Trunk, User,
            };
            use tsps_actors::{DeviceId, TenantId, TrunkId, UserId};
            use $crate::store::sql::{parse_transport, Ctx};
            use $crate::store::{
                LoginCandidate, OperatorAccount, OperatorCandidate, StoreError, StoreResult,
                UserAccount, UserRole,
            };

            #[derive(sqlx::FromRow)]
            pub(super) struct TenantRow {
                id: DbId,
                domain: String,
                name: String,
                time_zone: String,
            }

            impl TryFrom<TenantRow> for Tenant {
                type Error = StoreError;
                fn try_from(r: TenantRow) -> StoreResult<Tenant> {
                    Ok(Tenant {
                        id: TenantId(dec_id(r.id)?),
                        domain: r.domain,
                        name: r.name,
                        time_zone: r.time_zone,
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct UserRow {
                id: DbId,
                tenant_id: DbId,
                extension: String,
                display_name: String,
                portal_login: Option<String>,
            }

            impl TryFrom<UserRow> for User {
                type Error = StoreError;
                fn try_from(r: UserRow) -> StoreResult<User> {
                    Ok(User {
                        id: UserId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        extension: r.extension,
                        display_name: r.display_name,
                        portal_login: r.portal_login,
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct AccountRow {
                #[sqlx(flatten)]
                user: UserRow,
                role: String,
                password_hash: Option<String>,
            }

            impl AccountRow {
                pub(super) fn into_candidate(self) -> StoreResult<LoginCandidate> {
                    let role = UserRole::parse(&self.role).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown user role {:?}", self.role))
                    })?;
                    Ok(LoginCandidate {
                        account: UserAccount {
                            user: self.user.try_into()?,
                            role,
                        },
                        password_hash: self.password_hash.map($crate::secret::Secret),
                    })
                }

                pub(super) fn into_account(self) -> StoreResult<UserAccount> {
                    Ok(self.into_candidate()?.account)
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct OperatorRow {
                login: String,
                password_hash: String,
                created_at: DbTs,
            }

            impl OperatorRow {
                pub(super) fn into_candidate(self) -> StoreResult<OperatorCandidate> {
                    Ok(OperatorCandidate {
                        account: OperatorAccount {
                            login: self.login,
                            created_at: dec_ts(self.created_at)?,
                        },
                        password_hash: $crate::secret::Secret(self.password_hash),
                    })
                }
            }

            /// The columns of [`AccountRow`], for a `users` table aliased `u`.
            pub(super) const ACCOUNT_COLUMNS: &str =
                "u.id, u.tenant_id, u.extension, u.display_name, \
                u.portal_login, u.role, u.password_hash";

            #[derive(sqlx::FromRow)]
            pub(super) struct DeviceRow {
                id: DbId,
                tenant_id: DbId,
                user_id: DbId,
                sip_username: String,
                ha1_md5: String,
                ha1_sha256: String,
                remote_answer: bool,
                digest_algorithms: DbList,
            }

            impl TryFrom<DeviceRow> for Device {
                type Error = StoreError;
                fn try_from(r: DeviceRow) -> StoreResult<Device> {
                    Ok(Device {
                        id: DeviceId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        user_id: UserId(dec_id(r.user_id)?),
                        sip_username: r.sip_username,
                        ha1_md5: r.ha1_md5,
                        ha1_sha256: r.ha1_sha256,
                        remote_answer: r.remote_answer,
                        digest_algorithms: dec_list(r.digest_algorithms)?
                            .iter()
                            .map(|a| {
                                DigestAlgorithm::parse(a).ok_or_else(|| {
                                    StoreError::Invalid(format!("unknown digest algorithm {a:?}"))
                                })
                            })
                            .collect::<StoreResult<_>>()?,
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct ExternalPhoneRow {
                id: DbId,
                tenant_id: DbId,
                user_id: DbId,
                number: String,
                label: String,
            }

            impl TryFrom<ExternalPhoneRow> for ExternalPhone {
                type Error = StoreError;
                fn try_from(r: ExternalPhoneRow) -> StoreResult<ExternalPhone> {
                    Ok(ExternalPhone {
                        id: DeviceId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        user_id: UserId(dec_id(r.user_id)?),
                        number: r.number,
                        label: r.label,
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct DidRow {
                number: String,
                tenant_id: DbId,
                user_id: DbId,
            }

            impl TryFrom<DidRow> for Did {
                type Error = StoreError;
                fn try_from(r: DidRow) -> StoreResult<Did> {
                    Ok(Did {
                        number: r.number,
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        user_id: UserId(dec_id(r.user_id)?),
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            pub(super) struct TrunkRow {
                id: DbId,
                tenant_id: DbId,
                name: String,
                peer_host: String,
                peer_port: i32,
                transport: String,
                username: Option<String>,
                password: Option<String>,
                inbound_sources: DbList,
            }

            impl TryFrom<TrunkRow> for Trunk {
                type Error = StoreError;
                fn try_from(r: TrunkRow) -> StoreResult<Trunk> {
                    Ok(Trunk {
                        id: TrunkId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        name: r.name,
                        peer_host: r.peer_host,
                        peer_port: u16::try_from(r.peer_port).map_err(|_| {
                            StoreError::Invalid(format!("trunk port out of range: {}", r.peer_port))
                        })?,
                        transport: parse_transport(&r.transport)?,
                        username: r.username,
                        password: r.password.map(tsps_actors::secret::Secret),
                        inbound_sources: dec_list(r.inbound_sources)?,
                    })
                }
            }

            pub(super) fn rows<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
            where
                T: TryFrom<R, Error = StoreError>,
            {
                rows.into_iter().map(T::try_from).collect()
            }

            pub(super) fn read_err(e: sqlx::Error) -> StoreError {
                translate(e, &Ctx::READ)
            }

            pub(super) fn user_ids(list: DbList) -> StoreResult<Vec<UserId>> {
                dec_list(list)?
                    .iter()
                    .map(|u| {
                        u.parse::<UserId>()
                            .map_err(|e| StoreError::Invalid(format!("bad user id {u:?}: {e}")))
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use sql_shared;

/// Implements every aggregate trait, and so [`Store`](super::Store), for `$store` (a
/// struct with a `pool` field). Expanded once per backend; see the module docs for the
/// names the backend module must define.
macro_rules! sql_store {
    ($store:ident) => {
        $crate::store::sql::sql_shared!();
        $crate::store::sql::registrations::sql_registrations!($store);
        $crate::store::sql::call_log::sql_call_log!($store);
        $crate::store::sql::tenants::sql_tenants!($store);
        $crate::store::sql::users::sql_users!($store);
        $crate::store::sql::accounts::sql_accounts!($store);
        $crate::store::sql::sessions::sql_sessions!($store);
        $crate::store::sql::api_tokens::sql_api_tokens!($store);
        $crate::store::sql::devices::sql_devices!($store);
        $crate::store::sql::numbers::sql_numbers!($store);
        $crate::store::sql::trunks::sql_trunks!($store);
        $crate::store::sql::contacts::sql_contacts!($store);
    };
}

pub(crate) use sql_store;
