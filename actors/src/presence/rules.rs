//! The subscriber table: who may watch whom inside a tenant. One decision,
//! [`may_watch`], serves both SIP SUBSCRIBE (busy lamps, presence) and the portal's
//! watch list (status lights), so a phone and a browser never disagree.
//!
//! By default (no rule) any user of a tenant may watch any user of the same tenant. A
//! tenant admin may restrict a user to a list of watchers (`PUT .../watchers`); the
//! rules travel in the directory snapshot, so the check is a lookup, never I/O.

use crate::directory::Directory;
use crate::ids::UserId;
use crate::model::User;
use serde::{Deserialize, Serialize};

/// Who may watch one user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WatchRule {
    /// Any user of the tenant (the default: no rule stored).
    #[default]
    Anyone,
    /// Only these users of the tenant (an empty list: nobody).
    Only(Vec<UserId>),
}

/// Whether `watcher` may watch `watched`: same tenant always, and, when `watched` is
/// restricted, `watcher` is on the list. A user may always watch themselves (a phone's
/// busy lamp on its own line).
pub fn may_watch(dir: &Directory, watcher: &User, watched: &User) -> bool {
    watcher.tenant_id == watched.tenant_id
        && (watcher.id == watched.id
            || dir
                .allowed_watchers(watched.id)
                .is_none_or(|allowed| allowed.contains(&watcher.id)))
}

/// [`may_watch`] by ids: false when either user is not in the directory.
pub fn may_watch_ids(dir: &Directory, watcher: UserId, watched: UserId) -> bool {
    match (dir.user(watcher), dir.user(watched)) {
        (Some(a), Some(b)) => may_watch(dir, a, b),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;
    use crate::model::Tenant;

    fn user(n: u128, tenant: TenantId) -> User {
        User {
            id: UserId::for_test(n),
            tenant_id: tenant,
            extension: format!("100{n}"),
            display_name: format!("User {n}"),
            portal_login: None,
        }
    }

    /// Tenant A: users 1, 2, 3 (2 restricted to 1); tenant B: user 11.
    fn dir(rules: Rules) -> Directory {
        let (a, b) = (TenantId::for_test(1), TenantId::for_test(2));
        let tenant = |id, d: &str| Tenant {
            id,
            domain: d.into(),
            name: d.into(),
            time_zone: "UTC".into(),
        };
        Directory::new(
            vec![tenant(a, "a.test"), tenant(b, "b.test")],
            vec![user(1, a), user(2, a), user(3, a), user(11, b)],
            vec![],
            vec![],
            vec![],
        )
        .with_watch_rules(rules)
    }

    type Rules = Vec<(UserId, Vec<UserId>)>;

    #[test]
    fn the_subscriber_table_decides_who_watches_whom() {
        let u = UserId::for_test;
        // (rules, watcher, watched, allowed)
        let only_1 = vec![(u(2), vec![u(1)])];
        let nobody = vec![(u(2), vec![])];
        let cases: Vec<(Rules, u128, u128, bool)> = vec![
            // No rule: anyone of the tenant, both ways.
            (vec![], 3, 2, true),
            (vec![], 2, 3, true),
            // Never across tenants, with or without rules.
            (vec![], 11, 2, false),
            (vec![], 2, 11, false),
            (vec![(u(2), vec![u(11)])], 11, 2, false),
            // Restricted to 1: 1 may, 3 may not; 2 still watches others freely.
            (only_1.clone(), 1, 2, true),
            (only_1.clone(), 3, 2, false),
            (only_1.clone(), 2, 3, true),
            // Restricted to nobody; a user always watches themselves.
            (nobody.clone(), 1, 2, false),
            (nobody, 2, 2, true),
            // Unknown users watch nothing and are not watched.
            (vec![], 9, 2, false),
            (vec![], 1, 9, false),
        ];
        for (rules, watcher, watched, allowed) in cases {
            let d = dir(rules.clone());
            assert_eq!(
                may_watch_ids(&d, u(watcher), u(watched)),
                allowed,
                "{watcher} watching {watched} under {rules:?}"
            );
        }
    }
}
