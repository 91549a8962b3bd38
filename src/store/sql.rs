//! SQL shared by both backends.
//!
//! The two schemas (`sql/sqlite`, `sql/postgres`) have the same tables, columns and
//! keys; only column types differ (TEXT UUIDs and timestamps in SQLite, `uuid` and
//! `timestamptz` in PostgreSQL). So the statements are written once, in
//! [`sql_store!`], and each backend module supplies the few things that differ:
//!
//! - `DbId`, `enc_id`, `dec_id`: how a UUID is bound and read;
//! - `DbTs`, `enc_ts`, `dec_ts`: how a timestamp is bound and read;
//! - `DbList`, `enc_list`, `dec_list`: how a list of strings is bound and read;
//! - `translate`: the one function that turns a driver error into a [`StoreError`];
//! - `SNAPSHOT`: the statement, if any, that makes a transaction read one snapshot;
//! - `Db`: the sqlx database type (for helpers that take a transaction).
//!
//! Placeholders are `$1`, `$2`, … which both PostgreSQL and SQLite understand.

use super::{PolicyMode, StoreError, StoreResult, UserPolicy};
use tsps_actors::feature::{Presence, Profile};
use tsps_actors::model::{CallDirection, CallOutcome, DigestAlgorithm, Party, TransportKind};

/// The stored names of digest algorithms.
pub(crate) fn algorithm_names(list: &[DigestAlgorithm]) -> Vec<String> {
    list.iter().map(|a| a.name().to_string()).collect()
}

/// Longest CDR page one call returns, whatever the caller asks for.
pub(crate) const MAX_CALL_RECORDS: u32 = 10_000;

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

pub(crate) fn party_str(p: Party) -> &'static str {
    match p {
        Party::Caller => "caller",
        Party::Callee => "callee",
        Party::System => "system",
    }
}

pub(crate) fn parse_party(s: &str) -> StoreResult<Party> {
    match s {
        "caller" => Ok(Party::Caller),
        "callee" => Ok(Party::Callee),
        "system" => Ok(Party::System),
        other => Err(StoreError::Invalid(format!("unknown party {other:?}"))),
    }
}

pub(crate) fn parse_direction(s: &str) -> StoreResult<CallDirection> {
    [
        CallDirection::Internal,
        CallDirection::Inbound,
        CallDirection::Outbound,
    ]
    .into_iter()
    .find(|d| d.as_str() == s)
    .ok_or_else(|| StoreError::Invalid(format!("unknown call direction {s:?}")))
}

pub(crate) fn parse_outcome(s: &str) -> StoreResult<CallOutcome> {
    [
        CallOutcome::Answered,
        CallOutcome::Busy,
        CallOutcome::NoAnswer,
        CallOutcome::Cancelled,
        CallOutcome::Unavailable,
        CallOutcome::Rejected,
        CallOutcome::Failed,
    ]
    .into_iter()
    .find(|o| o.as_str() == s)
    .ok_or_else(|| StoreError::Invalid(format!("unknown call outcome {s:?}")))
}

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

/// Implements [`Store`](super::Store) for `$store` (a struct with a `pool` field) with
/// the statements below. Expanded once per backend; see the module docs for the names
/// the backend module must define.
macro_rules! sql_store {
    ($store:ident) => {
        // A module of its own, so that these imports never clash with the backend's;
        // the backend's helpers come in through the glob.
        mod statements {
            use super::*;
            use $crate::store::sql::{
                algorithm_names, check_policy, decode_profile, encode_profile, not_found, parse_direction,
                parse_outcome, parse_party, parse_policy_mode, parse_presence, parse_transport,
                party_str, presence_str, transport_str, Ctx, MAX_CALL_RECORDS,
            };
            use $crate::contacts::{
                Contact, ContactId, ContactNumber, ContactOwner, ContactPhone, DialingRules,
                TenantSettings,
            };
            use $crate::store::{TenantQuotas, UserPolicy};
            use $crate::store::account::contains_pattern;
            use $crate::store::{
                ApiToken, ApiTokenId, CallHistoryQuery, CallSide, LoginCandidate, OperatorAccount,
                OperatorCandidate, SessionAccount, SessionRecord, SessionSubject, UserAccount,
                UserRole,
            };
            use tsps_actors::feature::{Presence, Profile};
            use $crate::store::{same_tenant, Store, StoreError, StoreResult};
            use chrono::{DateTime, Utc};
            use std::collections::HashMap;
            use tsps_actors::model::{
                Binding, CallRecord, Device, DigestAlgorithm, Did, ExternalPhone, LegRecord, Tenant, Trunk,
                User,
            };
            use tsps_actors::{CallId, DeviceId, Directory, LegId, TenantId, TrunkId, UserId};
            use tsps_actors::presence::WatchRule;

            #[derive(sqlx::FromRow)]
            struct TenantRow {
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
            struct UserRow {
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
            struct AccountRow {
                #[sqlx(flatten)]
                user: UserRow,
                role: String,
                password_hash: Option<String>,
            }

            impl AccountRow {
                fn into_candidate(self) -> StoreResult<LoginCandidate> {
                    let role = UserRole::parse(&self.role).ok_or_else(|| {
                        StoreError::Invalid(format!("unknown user role {:?}", self.role))
                    })?;
                    Ok(LoginCandidate {
                        account: UserAccount {
                            user: self.user.try_into()?,
                            role,
                        },
                        password_hash: self.password_hash,
                    })
                }

                fn into_account(self) -> StoreResult<UserAccount> {
                    Ok(self.into_candidate()?.account)
                }
            }

            #[derive(sqlx::FromRow)]
            struct SessionRow {
                id_hash: String,
                csrf_token: String,
                created_at: DbTs,
                last_seen_at: DbTs,
                expires_at: DbTs,
                #[sqlx(flatten)]
                account: AccountRow,
            }

            impl SessionRow {
                fn into_session(self) -> StoreResult<(SessionRecord, SessionAccount)> {
                    let account = self.account.into_account()?;
                    Ok((
                        SessionRecord {
                            id_hash: self.id_hash,
                            subject: SessionSubject::User {
                                tenant: account.user.tenant_id,
                                user: account.user.id,
                            },
                            csrf_token: self.csrf_token,
                            created_at: dec_ts(self.created_at)?,
                            last_seen_at: dec_ts(self.last_seen_at)?,
                            expires_at: dec_ts(self.expires_at)?,
                        },
                        SessionAccount::User(account),
                    ))
                }
            }

            #[derive(sqlx::FromRow)]
            struct OperatorRow {
                login: String,
                password_hash: String,
                created_at: DbTs,
            }

            impl OperatorRow {
                fn into_candidate(self) -> StoreResult<OperatorCandidate> {
                    Ok(OperatorCandidate {
                        account: OperatorAccount {
                            login: self.login,
                            created_at: dec_ts(self.created_at)?,
                        },
                        password_hash: self.password_hash,
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            struct OperatorSessionRow {
                id_hash: String,
                csrf_token: String,
                session_created_at: DbTs,
                last_seen_at: DbTs,
                expires_at: DbTs,
                #[sqlx(flatten)]
                operator: OperatorRow,
            }

            impl OperatorSessionRow {
                fn into_session(self) -> StoreResult<(SessionRecord, SessionAccount)> {
                    let account = self.operator.into_candidate()?.account;
                    Ok((
                        SessionRecord {
                            id_hash: self.id_hash,
                            subject: SessionSubject::Operator {
                                login: account.login.clone(),
                            },
                            csrf_token: self.csrf_token,
                            created_at: dec_ts(self.session_created_at)?,
                            last_seen_at: dec_ts(self.last_seen_at)?,
                            expires_at: dec_ts(self.expires_at)?,
                        },
                        SessionAccount::Operator(account),
                    ))
                }
            }

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
                        secret_hash: r.secret_hash,
                        users,
                        created_at: dec_ts(r.created_at)?,
                        expires_at: r.expires_at.map(dec_ts).transpose()?,
                    })
                }
            }

            const API_TOKEN_COLUMNS: &str =
                "id, tenant_id, name, secret_hash, user_ids, created_at, expires_at";

            /// The columns of [`AccountRow`], for a `users` table aliased `u`.
            const ACCOUNT_COLUMNS: &str = "u.id, u.tenant_id, u.extension, u.display_name, \
                u.portal_login, u.role, u.password_hash";

            /// The filter of `list_user_call_records` over `call_records`: $1 tenant,
            /// $2 user, $3 before, $4 LIKE pattern, $5 outcome, $6 side.
            // A user's calls: as caller or callee, or on a leg (a transfer or forward to them).
            const HISTORY_FILTER: &str = "tenant_id = $1 \
                AND (caller_user_id = $2 OR callee_user_id = $2 \
                     OR EXISTS (SELECT 1 FROM call_legs l \
                                WHERE l.call_id = call_records.id AND l.user_id = $2)) \
                AND ($3 IS NULL OR started_at < $3) \
                AND ($4 IS NULL OR caller LIKE $4 ESCAPE '\\' OR callee LIKE $4 ESCAPE '\\') \
                AND ($5 IS NULL OR outcome = $5) \
                AND ($6 IS NULL OR ($6 = 'outgoing' AND caller_user_id = $2) \
                     OR ($6 = 'incoming' AND (caller_user_id IS NULL OR caller_user_id <> $2)))";

            #[derive(sqlx::FromRow)]
            struct DeviceRow {
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
            struct ExternalPhoneRow {
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
            struct DidRow {
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
            struct TrunkRow {
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
                        password: r.password,
                        inbound_sources: dec_list(r.inbound_sources)?,
                    })
                }
            }

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

            #[derive(sqlx::FromRow)]
            struct CallRow {
                id: DbId,
                tenant_id: DbId,
                direction: String,
                caller: String,
                callee: String,
                caller_user_id: Option<DbId>,
                callee_user_id: Option<DbId>,
                started_at: DbTs,
                answered_at: Option<DbTs>,
                ended_at: DbTs,
                outcome: String,
                hangup_by: Option<String>,
                decision: String,
            }

            impl TryFrom<CallRow> for CallRecord {
                type Error = StoreError;
                fn try_from(r: CallRow) -> StoreResult<CallRecord> {
                    Ok(CallRecord {
                        id: CallId(dec_id(r.id)?),
                        tenant_id: TenantId(dec_id(r.tenant_id)?),
                        direction: parse_direction(&r.direction)?,
                        caller: r.caller,
                        callee: r.callee,
                        caller_user_id: r.caller_user_id.map(dec_id).transpose()?.map(UserId),
                        callee_user_id: r.callee_user_id.map(dec_id).transpose()?.map(UserId),
                        started_at: dec_ts(r.started_at)?,
                        answered_at: r.answered_at.map(dec_ts).transpose()?,
                        ended_at: dec_ts(r.ended_at)?,
                        outcome: parse_outcome(&r.outcome)?,
                        hangup_by: r.hangup_by.as_deref().map(parse_party).transpose()?,
                        decision: serde_json::from_str(&r.decision)
                            .map_err(|e| StoreError::Invalid(format!("call decision: {e}")))?,
                        legs: Vec::new(),
                    })
                }
            }

            #[derive(sqlx::FromRow)]
            struct LegRow {
                call_id: DbId,
                id: DbId,
                role: String,
                target: String,
                started_at: DbTs,
                answered_at: Option<DbTs>,
                ended_at: Option<DbTs>,
                status_code: Option<i32>,
                user_id: Option<DbId>,
            }

            impl LegRow {
                fn into_leg(self) -> StoreResult<(CallId, LegRecord)> {
                    let status_code = self
                        .status_code
                        .map(|c| {
                            u16::try_from(c)
                                .map_err(|_| StoreError::Invalid(format!("leg status out of range: {c}")))
                        })
                        .transpose()?;
                    Ok((
                        CallId(dec_id(self.call_id)?),
                        LegRecord {
                            id: LegId(dec_id(self.id)?),
                            role: parse_party(&self.role)?,
                            target: self.target,
                            started_at: dec_ts(self.started_at)?,
                            answered_at: self.answered_at.map(dec_ts).transpose()?,
                            ended_at: self.ended_at.map(dec_ts).transpose()?,
                            status_code,
                            user_id: self.user_id.map(dec_id).transpose()?.map(UserId),
                        },
                    ))
                }
            }

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

            fn rows<R, T>(rows: Vec<R>) -> StoreResult<Vec<T>>
            where
                T: TryFrom<R, Error = StoreError>,
            {
                rows.into_iter().map(T::try_from).collect()
            }

            fn read_err(e: sqlx::Error) -> StoreError {
                translate(e, &Ctx::READ)
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

            fn user_ids(list: DbList) -> StoreResult<Vec<UserId>> {
                dec_list(list)?
                    .iter()
                    .map(|u| {
                        u.parse::<UserId>()
                            .map_err(|e| StoreError::Invalid(format!("bad user id {u:?}: {e}")))
                    })
                    .collect()
            }

            #[async_trait::async_trait]
            impl Store for $store {
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

                async fn insert_call_record(&self, r: &CallRecord) -> StoreResult<()> {
                    self.insert_call_records(std::slice::from_ref(r)).await
                }

                async fn insert_call_records(&self, records: &[CallRecord]) -> StoreResult<()> {
                    // One transaction: a CDR is never visible without its legs, and a
                    // batch costs one commit.
                    let mut tx = self.pool.begin().await.map_err(read_err)?;
                    for r in records {
                    let id = r.id.to_string();
                    let tenant = r.tenant_id.to_string();
                    let ctx = Ctx {
                        unique: &[("id", "call record", &id)],
                        parent: Some(("tenant or user", &tenant)),
                    };
                    sqlx::query(
                        "INSERT INTO call_records (id, tenant_id, direction, caller, callee, \
                         caller_user_id, callee_user_id, started_at, answered_at, ended_at, \
                         outcome, hangup_by, decision) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(enc_id(r.id.0))
                    .bind(enc_id(r.tenant_id.0))
                    .bind(r.direction.as_str())
                    .bind(&r.caller)
                    .bind(&r.callee)
                    .bind(r.caller_user_id.map(|u| enc_id(u.0)))
                    .bind(r.callee_user_id.map(|u| enc_id(u.0)))
                    .bind(enc_ts(r.started_at))
                    .bind(r.answered_at.map(enc_ts))
                    .bind(enc_ts(r.ended_at))
                    .bind(r.outcome.as_str())
                    .bind(r.hangup_by.map(party_str))
                    .bind(serde_json::to_string(&r.decision).unwrap_or_else(|_| "[]".into()))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| translate(e, &ctx))?;
                    for leg in &r.legs {
                        let leg_id = leg.id.to_string();
                        sqlx::query(
                            "INSERT INTO call_legs (call_id, id, role, target, started_at, \
                             answered_at, ended_at, status_code, user_id) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(enc_id(r.id.0))
                        .bind(enc_id(leg.id.0))
                        .bind(party_str(leg.role))
                        .bind(&leg.target)
                        .bind(enc_ts(leg.started_at))
                        .bind(leg.answered_at.map(enc_ts))
                        .bind(leg.ended_at.map(enc_ts))
                        .bind(leg.status_code.map(i32::from))
                        .bind(leg.user_id.map(|u| enc_id(u.0)))
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| {
                            translate(
                                e,
                                &Ctx {
                                    unique: &[("id", "call leg", &leg_id)],
                                    parent: Some(("call record", &id)),
                                },
                            )
                        })?;
                    }
                    }
                    tx.commit().await.map_err(read_err)?;
                    Ok(())
                }

                async fn list_call_records(
                    &self,
                    tenant: TenantId,
                    limit: u32,
                ) -> StoreResult<Vec<CallRecord>> {
                    let limit = i64::from(limit.min(MAX_CALL_RECORDS));
                    let calls: Vec<CallRow> = sqlx::query_as(
                        "SELECT id, tenant_id, direction, caller, callee, caller_user_id, \
                         callee_user_id, started_at, answered_at, ended_at, outcome, hangup_by, \
                         decision FROM call_records WHERE tenant_id = $1 \
                         ORDER BY started_at DESC, id DESC LIMIT $2",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let mut calls: Vec<CallRecord> = rows(calls)?;
                    if calls.is_empty() {
                        return Ok(calls);
                    }
                    // The same page again as a subquery, so one statement fetches all legs.
                    let legs: Vec<LegRow> = sqlx::query_as(
                        "SELECT call_id, id, role, target, started_at, answered_at, ended_at, \
                         status_code, user_id FROM call_legs WHERE call_id IN (\
                         SELECT id FROM call_records WHERE tenant_id = $1 \
                         ORDER BY started_at DESC, id DESC LIMIT $2) \
                         ORDER BY started_at, id",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err)?;
                    let index: HashMap<CallId, usize> =
                        calls.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                    for leg in legs {
                        let (call, leg) = leg.into_leg()?;
                        // A CDR inserted between the two statements may bring legs of a call
                        // outside this page: skip them.
                        if let Some(&i) = index.get(&call) {
                            calls[i].legs.push(leg);
                        }
                    }
                    Ok(calls)
                }

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
                    .bind(&t.password)
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
                    .bind(&t.password)
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

                async fn list_user_call_records(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    query: &CallHistoryQuery,
                ) -> StoreResult<Vec<CallRecord>> {
                    let limit = i64::from(query.limit.min(MAX_CALL_RECORDS));
                    let pattern = query.search.as_deref().map(contains_pattern);
                    let outcome = query.outcome.map(|o| o.as_str());
                    let side = query.side.map(|s| match s {
                        CallSide::Outgoing => "outgoing",
                        CallSide::Incoming => "incoming",
                    });
                    let page = format!(
                        "SELECT id, tenant_id, direction, caller, callee, caller_user_id, \
                         callee_user_id, started_at, answered_at, ended_at, outcome, hangup_by, \
                         decision FROM call_records WHERE {HISTORY_FILTER} \
                         ORDER BY started_at DESC, id DESC LIMIT $7"
                    );
                    let calls: Vec<CallRow> = sqlx::query_as(&page)
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(user.0))
                        .bind(query.before.map(enc_ts))
                        .bind(pattern.clone())
                        .bind(outcome)
                        .bind(side)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err)?;
                    let mut calls: Vec<CallRecord> = rows(calls)?;
                    if calls.is_empty() {
                        return Ok(calls);
                    }
                    // The same page again as a subquery, so one statement fetches all legs.
                    let legs_sql = format!(
                        "SELECT call_id, id, role, target, started_at, answered_at, ended_at, \
                         status_code, user_id FROM call_legs WHERE call_id IN (\
                         SELECT id FROM call_records WHERE {HISTORY_FILTER} \
                         ORDER BY started_at DESC, id DESC LIMIT $7) \
                         ORDER BY started_at, id"
                    );
                    let legs: Vec<LegRow> = sqlx::query_as(&legs_sql)
                        .bind(enc_id(tenant.0))
                        .bind(enc_id(user.0))
                        .bind(query.before.map(enc_ts))
                        .bind(pattern)
                        .bind(outcome)
                        .bind(side)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err)?;
                    let index: HashMap<CallId, usize> =
                        calls.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
                    for leg in legs {
                        let (call, leg) = leg.into_leg()?;
                        if let Some(&i) = index.get(&call) {
                            calls[i].legs.push(leg);
                        }
                    }
                    Ok(calls)
                }

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

                async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
                    let (query, parent, key) = match &s.subject {
                        SessionSubject::User { tenant, user } => (
                            sqlx::query(
                                "INSERT INTO user_sessions (id_hash, tenant_id, user_id, csrf_token, \
                                 created_at, last_seen_at, expires_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            )
                            .bind(&s.id_hash)
                            .bind(enc_id(tenant.0))
                            .bind(enc_id(user.0)),
                            "user",
                            user.to_string(),
                        ),
                        SessionSubject::Operator { login } => (
                            sqlx::query(
                                "INSERT INTO operator_sessions (id_hash, login, csrf_token, \
                                 created_at, last_seen_at, expires_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6)",
                            )
                            .bind(&s.id_hash)
                            .bind(login.as_str()),
                            "operator",
                            login.clone(),
                        ),
                    };
                    query
                        .bind(&s.csrf_token)
                        .bind(enc_ts(s.created_at))
                        .bind(enc_ts(s.last_seen_at))
                        .bind(enc_ts(s.expires_at))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| {
                            translate(
                                e,
                                &Ctx {
                                    unique: &[("id_hash", "session", "(redacted)")],
                                    parent: Some((parent, &key)),
                                },
                            )
                        })?;
                    Ok(())
                }

                async fn get_session(
                    &self,
                    id_hash: &str,
                ) -> StoreResult<Option<(SessionRecord, SessionAccount)>> {
                    let row: Option<SessionRow> = sqlx::query_as(&format!(
                        "SELECT s.id_hash, s.csrf_token, s.created_at, s.last_seen_at, \
                         s.expires_at, {ACCOUNT_COLUMNS} FROM user_sessions s \
                         JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.user_id \
                         WHERE s.id_hash = $1"
                    ))
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    if let Some(row) = row {
                        return row.into_session().map(Some);
                    }
                    // Not a user's: perhaps an operator's (a second read only for those and
                    // for unknown ids; a node caches the sessions it has read).
                    let row: Option<OperatorSessionRow> = sqlx::query_as(
                        "SELECT s.id_hash, s.csrf_token, s.created_at AS session_created_at, \
                         s.last_seen_at, s.expires_at, o.login, o.password_hash, o.created_at \
                         FROM operator_sessions s JOIN operators o ON o.login = s.login \
                         WHERE s.id_hash = $1",
                    )
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err)?;
                    row.map(OperatorSessionRow::into_session).transpose()
                }

                async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                    // The id is in one of the two tables; updating none of the other's rows
                    // costs an index lookup.
                    for table in ["user_sessions", "operator_sessions"] {
                        sqlx::query(&format!(
                            "UPDATE {table} SET last_seen_at = $2 WHERE id_hash = $1"
                        ))
                        .bind(id_hash)
                        .bind(enc_ts(at))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                    }
                    Ok(())
                }

                async fn delete_session(&self, id_hash: &str) -> StoreResult<()> {
                    for table in ["user_sessions", "operator_sessions"] {
                        sqlx::query(&format!("DELETE FROM {table} WHERE id_hash = $1"))
                            .bind(id_hash)
                            .execute(&self.pool)
                            .await
                            .map_err(read_err)?;
                    }
                    Ok(())
                }

                async fn delete_user_sessions(
                    &self,
                    tenant: TenantId,
                    user: UserId,
                    keep: Option<&str>,
                ) -> StoreResult<u64> {
                    let done = sqlx::query(
                        "DELETE FROM user_sessions WHERE tenant_id = $1 AND user_id = $2 \
                         AND ($3 IS NULL OR id_hash <> $3)",
                    )
                    .bind(enc_id(tenant.0))
                    .bind(enc_id(user.0))
                    .bind(keep)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err)?;
                    Ok(done.rows_affected())
                }

                async fn delete_expired_sessions(
                    &self,
                    now: DateTime<Utc>,
                    idle_since: DateTime<Utc>,
                ) -> StoreResult<u64> {
                    let mut deleted = 0;
                    for table in ["user_sessions", "operator_sessions"] {
                        let done = sqlx::query(&format!(
                            "DELETE FROM {table} WHERE expires_at <= $1 OR last_seen_at <= $2"
                        ))
                        .bind(enc_ts(now))
                        .bind(enc_ts(idle_since))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err)?;
                        deleted += done.rows_affected();
                    }
                    Ok(deleted)
                }

                async fn create_api_token(&self, tenant: TenantId, t: &ApiToken) -> StoreResult<()> {
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
                    .bind(&t.secret_hash)
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

                async fn delete_api_token(&self, tenant: TenantId, id: ApiTokenId) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM api_tokens WHERE tenant_id = $1 AND id = $2")
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

pub(crate) use sql_store;
