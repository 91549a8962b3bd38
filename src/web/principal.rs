//! Who a request acts as ([`Principal`]), what opened it ([`Credential`]) and from
//! where ([`ClientIp`]): the request extensions `web::auth` leaves for the handlers,
//! and what a principal may act for. A leaf: it knows the store's accounts and
//! nothing of sessions, tokens or the path policy that judges a principal
//! (`web::access`).

use crate::store::{ApiTokenId, SessionAccount, UserRole};
use std::net::IpAddr;
use std::sync::Arc;
use tsps_actors::{TenantId, UserId};

/// Who a request acts as. Handlers that need it (event push, call commands) read it
/// with `Extension<Principal>`; it is present on every route under `/api/v1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The platform operator: the API token (or no token configured), or the portal
    /// session of an operator account (`tsps operator add`).
    Operator,
    /// A portal session of a tenant admin (`user` is the admin's own user).
    TenantAdmin { tenant: TenantId, user: UserId },
    /// A portal session of a user.
    User { tenant: TenantId, user: UserId },
    /// An integration (CTI client) with an API token of `tenant`: acts for the users
    /// in `users`, or for every user of the tenant (`None`). It is no user itself.
    Integration {
        tenant: TenantId,
        token: ApiTokenId,
        users: Option<Arc<[UserId]>>,
    },
}

impl Principal {
    /// The tenant of a session or integration; none for the operator.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Self::Operator => None,
            Self::TenantAdmin { tenant, .. }
            | Self::User { tenant, .. }
            | Self::Integration { tenant, .. } => Some(*tenant),
        }
    }

    /// The user of a session; none for the operator and for an integration.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Self::Operator | Self::Integration { .. } => None,
            Self::TenantAdmin { user, .. } | Self::User { user, .. } => Some(*user),
        }
    }

    /// May act on everything of `tenant`: the operator or a tenant admin of it.
    pub fn administers(&self, tenant: TenantId) -> bool {
        match self {
            Self::Operator => true,
            Self::TenantAdmin { tenant: t, .. } => *t == tenant,
            Self::User { .. } | Self::Integration { .. } => false,
        }
    }

    /// May act for `user` of `tenant`: an administrator of the tenant, the user, or an
    /// integration of the tenant with the user in its scope.
    pub fn acts_for(&self, tenant: TenantId, user: UserId) -> bool {
        match self {
            Self::Integration {
                tenant: t, users, ..
            } => *t == tenant && in_scope(users.as_deref(), user),
            _ => {
                self.administers(tenant)
                    || (self.tenant() == Some(tenant) && self.user() == Some(user))
            }
        }
    }

    /// The principal of a portal session's account: the operator, or the user in its
    /// role.
    pub fn of_account(account: &SessionAccount) -> Self {
        match account {
            SessionAccount::Operator(_) => Self::Operator,
            SessionAccount::User(a) => {
                let (tenant, user) = (a.user.tenant_id, a.user.id);
                match a.role {
                    UserRole::TenantAdmin => Self::TenantAdmin { tenant, user },
                    UserRole::User => Self::User { tenant, user },
                }
            }
        }
    }
}

/// What opened a request (a request extension beside the [`Principal`]), kept so that
/// an event stream can ask later whether it still does. Only hashes: no secret stays
/// in memory longer than the request that presented it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The operator's configured token, or no credentials where none are configured:
    /// valid as long as the configuration.
    Standing,
    /// An integration's API token: the SHA-256 of its secret, as the store keeps it.
    ApiToken { secret_hash: String },
    /// A portal session: the SHA-256 of its id, as the store keeps it.
    Session { id_hash: String },
}

/// The client's address as the socket saw it (none when the server was started
/// without connect info, as in some tests).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub Option<IpAddr>);

/// An integration's scope: the listed users, or all (`None`).
pub(super) fn in_scope(users: Option<&[UserId]>, user: UserId) -> bool {
    users.is_none_or(|list| list.contains(&user))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: TenantId = TenantId::for_test(1);
    const OTHER_T: TenantId = TenantId::for_test(2);
    const ME: UserId = UserId::for_test(10);
    const PEER: UserId = UserId::for_test(11);

    fn integration(users: Option<&[UserId]>) -> Principal {
        Principal::Integration {
            tenant: T,
            token: ApiTokenId::for_test(1),
            users: users.map(Into::into),
        }
    }

    #[test]
    fn principals_say_what_they_may_act_for() {
        let admin = Principal::TenantAdmin {
            tenant: T,
            user: PEER,
        };
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        assert!(Principal::Operator.acts_for(OTHER_T, ME));
        assert!(admin.acts_for(T, ME) && !admin.acts_for(OTHER_T, ME));
        assert!(user.acts_for(T, ME) && !user.acts_for(T, PEER));
        assert!(!user.acts_for(OTHER_T, ME));
        assert_eq!(user.tenant(), Some(T));
        assert_eq!(Principal::Operator.user(), None);
        let cti = integration(Some(&[ME]));
        assert!(cti.acts_for(T, ME) && !cti.acts_for(T, PEER) && !cti.acts_for(OTHER_T, ME));
        assert!(!cti.administers(T));
        assert_eq!((cti.tenant(), cti.user()), (Some(T), None));
        let all = integration(None);
        assert!(all.acts_for(T, PEER) && !all.acts_for(OTHER_T, PEER));
    }

    #[test]
    fn an_operators_session_is_the_operator_and_a_users_is_its_role() {
        use crate::store::{OperatorAccount, UserAccount};
        let operator = SessionAccount::Operator(OperatorAccount {
            login: "ops".into(),
            created_at: chrono::Utc::now(),
        });
        assert_eq!(Principal::of_account(&operator), Principal::Operator);
        let user = |role| {
            SessionAccount::User(UserAccount {
                user: tsps_actors::model::User {
                    id: ME,
                    tenant_id: T,
                    extension: "1001".into(),
                    display_name: "Alice".into(),
                    portal_login: None,
                },
                role,
            })
        };
        assert_eq!(
            Principal::of_account(&user(UserRole::TenantAdmin)),
            Principal::TenantAdmin {
                tenant: T,
                user: ME
            }
        );
        assert_eq!(
            Principal::of_account(&user(UserRole::User)),
            Principal::User {
                tenant: T,
                user: ME
            }
        );
    }
}
