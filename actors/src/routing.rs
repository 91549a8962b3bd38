//! The routing decision for a dialled string: pure, no I/O.

use crate::directory::Directory;
use crate::ids::{TenantId, TrunkId, UserId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Another user of the same tenant.
    User(UserId),
    /// An outside number through this trunk; `number` is normalised (`+` kept).
    Outside { trunk: TrunkId, number: String },
    /// Nothing matches: the caller gets this SIP-neutral reason.
    NotFound,
    /// A number, but the tenant has no trunk.
    NoTrunk,
}

/// Decides where a call dialled by a user of `tenant` goes. Extensions win over
/// numbers; a number is `+` followed by digits, or at least five digits.
pub fn route_dialled(dir: &Directory, tenant: TenantId, dialled: &str) -> Route {
    let dialled = dialled.trim();
    if let Some(user) = dir.user_by_extension(tenant, dialled) {
        return Route::User(user.id);
    }
    if is_number(dialled) {
        return match dir
            .trunks_of_tenant(tenant)
            .min_by(|a, b| a.name.cmp(&b.name))
        {
            Some(trunk) => Route::Outside {
                trunk: trunk.id,
                number: dialled.to_string(),
            },
            None => Route::NoTrunk,
        };
    }
    Route::NotFound
}

fn is_number(s: &str) -> bool {
    let digits = s.strip_prefix('+').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (s.starts_with('+') || digits.len() >= 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tenant, TransportKind, Trunk, User};

    fn dir(with_trunk: bool) -> Directory {
        let t = TenantId::for_test(1);
        let other = TenantId::for_test(2);
        let tenants = vec![
            Tenant {
                id: t,
                domain: "a.test".into(),
                name: "A".into(),
                time_zone: "UTC".into(),
            },
            Tenant {
                id: other,
                domain: "b.test".into(),
                name: "B".into(),
                time_zone: "UTC".into(),
            },
        ];
        let users = vec![
            User {
                id: UserId::for_test(1),
                tenant_id: t,
                extension: "1001".into(),
                display_name: "A".into(),
                portal_login: None,
            },
            User {
                id: UserId::for_test(9),
                tenant_id: other,
                extension: "2002".into(),
                display_name: "B".into(),
                portal_login: None,
            },
        ];
        let trunks = if with_trunk {
            vec![Trunk {
                id: TrunkId::for_test(1),
                tenant_id: t,
                name: "carrier".into(),
                peer_host: "127.0.0.2".into(),
                peer_port: 5070,
                transport: TransportKind::Udp,
                username: None,
                password: None,
                inbound_sources: vec![],
            }]
        } else {
            vec![]
        };
        Directory::new(tenants, users, vec![], vec![], trunks)
    }

    #[test]
    fn decisions() {
        let t = TenantId::for_test(1);
        let d = dir(true);
        assert_eq!(
            route_dialled(&d, t, "1001"),
            Route::User(UserId::for_test(1))
        );
        // Another tenant's extension is not visible.
        assert_eq!(route_dialled(&d, t, "2002"), Route::NotFound);
        assert_eq!(
            route_dialled(&d, t, "+41445550199"),
            Route::Outside {
                trunk: TrunkId::for_test(1),
                number: "+41445550199".into()
            }
        );
        assert_eq!(
            route_dialled(&d, t, "0445550199"),
            Route::Outside {
                trunk: TrunkId::for_test(1),
                number: "0445550199".into()
            }
        );
        assert_eq!(route_dialled(&d, t, "99"), Route::NotFound);
        assert_eq!(route_dialled(&d, t, "alice"), Route::NotFound);
        assert_eq!(route_dialled(&d, t, "+"), Route::NotFound);
        assert_eq!(
            route_dialled(&dir(false), t, "+41445550199"),
            Route::NoTrunk
        );
    }
}
