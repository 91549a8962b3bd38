//! The path policy of the API: may this principal call this method on this path.
//!
//! [`decide`] is pure: `web::auth`'s middleware finds the [`Principal`] of every
//! matched route's request and asks it, so handlers stay unaware of authorization, and
//! a new route is covered by the path rules the moment it is added:
//!
//! - outside `/api/v1` (`/healthz`, the portal's pages), `POST /api/v1/auth/login` and
//!   the OpenAPI document (`/api/v1/openapi.json`): open;
//! - the operator (bearer token, or an operator's portal session): everything;
//! - `/api/v1/auth/...`: any session;
//! - `/api/v1/tenants/{t}/users/{u}` and below: the user `u` itself, or a tenant admin
//!   of `t`. The user itself may only read its own user record, its devices, the
//!   tenant's policy for it and who may watch it; everything else below (profile,
//!   status, contacts, password, calls, events, messages, ...) it may also write;
//! - `/api/v1/tenants/{t}/...` otherwise: a tenant admin of `t`; any user of `t` may
//!   read the tenant, its user directory, its shared contacts and its settings;
//! - an integration (API token of `t`, see `web::tokens`): for each user `u` in its
//!   scope (every user of `t`, or those the token lists) the user's call control,
//!   status, event stream and watch list, and reads of its record, devices, external
//!   phones, profile and call history; reads of `t` and its user directory; nothing
//!   else (no administration, no `/auth/...`);
//! - anything else (`/tenants`, `/provision`, `/testing/clock`, `/metrics`): the
//!   operator only.
//!
//! A session or integration asking for another tenant, or a user (an integration) for
//! a user not its own (not in its scope), gets 404 (the same answer as for an id that
//! does not exist), never 403; asking for something of its own tenant that its role
//! does not allow gets 403.

use super::principal::{in_scope, Principal};
use axum::http::Method;
use percent_encoding::percent_decode_str;
use std::borrow::Cow;
use tsps_actors::{TenantId, UserId};

/// The prefix every authorized route lives under.
pub const API: &str = "/api/v1";
const LOGIN: &str = "/api/v1/auth/login";
/// The OpenAPI document: public, like any API's description.
const OPENAPI: &str = "/api/v1/openapi.json";

/// The verdict of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Allow,
    /// No credentials where some are needed.
    Unauthorized,
    /// The principal's own tenant, but not for its role.
    Forbidden,
    /// Not the principal's to see: answered like a missing object, with this message.
    NotFound(String),
}

pub(super) fn is_read(method: &Method) -> bool {
    *method == Method::GET || *method == Method::HEAD
}

fn read_only(method: &Method) -> Access {
    if is_read(method) {
        Access::Allow
    } else {
        Access::Forbidden
    }
}

/// Whose request [`decide`] judges inside its tenant.
#[derive(Clone, Copy)]
enum Role<'a> {
    Admin,
    User(UserId),
    Integration(Option<&'a [UserId]>),
}

/// The authorization policy: `principal` (none: no credentials) × method × path.
pub fn decide(principal: Option<&Principal>, method: &Method, path: &str) -> Access {
    let Some(rest) = path.strip_prefix(API) else {
        return Access::Allow;
    };
    if !(rest.is_empty() || rest.starts_with('/')) {
        // `/api/v1x...`: not the API (and not routed).
        return Access::Allow;
    }
    if path == LOGIN || path == OPENAPI {
        return Access::Allow;
    }
    let Some(principal) = principal else {
        return Access::Unauthorized;
    };
    let (tenant, role) = match principal {
        Principal::Operator => return Access::Allow,
        Principal::TenantAdmin { tenant, .. } => (*tenant, Role::Admin),
        Principal::User { tenant, user } => (*tenant, Role::User(*user)),
        Principal::Integration { tenant, users, .. } => {
            (*tenant, Role::Integration(users.as_deref()))
        }
    };
    // Decoded as the router's path extractors decode them, so `%30...` is no way
    // around a comparison.
    let segments: Vec<Cow<'_, str>> = rest
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let segments: Vec<&str> = segments.iter().map(|s| s.as_ref()).collect();
    match (segments.as_slice(), &role) {
        // Sessions only: an integration has no session to log out of or look at.
        (["auth", ..], Role::Integration(_)) => Access::Forbidden,
        (["auth", ..], _) => Access::Allow,
        (["tenants", t, below @ ..], _) => {
            if t.parse::<TenantId>().ok() != Some(tenant) {
                return Access::NotFound(format!("tenant not found: {t}"));
            }
            match role {
                Role::Admin => Access::Allow,
                Role::User(me) => user_in_own_tenant(me, method, below),
                Role::Integration(users) => integration_in_own_tenant(users, method, below),
            }
        }
        _ => Access::Forbidden,
    }
}

/// An integration, under `/tenants/{its tenant}`: what a CTI client needs to follow
/// and control its users' calls, and nothing of administration.
fn integration_in_own_tenant(users: Option<&[UserId]>, method: &Method, below: &[&str]) -> Access {
    match below {
        // The tenant (name) and its user directory.
        [] | ["users"] => read_only(method),
        ["users", u, own @ ..] => {
            if !u.parse::<UserId>().is_ok_and(|u| in_scope(users, u)) {
                return Access::NotFound(format!("user not found: {u}"));
            }
            match own {
                // What the user's calls look like and how they are routed: read only.
                []
                | ["devices", ..]
                | ["external-phones", ..]
                | ["profile"]
                | ["calls", "history"] => read_only(method),
                // The CTI services: call control, status, events, watching colleagues.
                ["calls", ..] | ["status"] | ["events", ..] | ["watch"] => Access::Allow,
                // Password, contacts, policy: the user's or the admin's.
                _ => Access::Forbidden,
            }
        }
        _ => Access::Forbidden,
    }
}

/// A plain user, under `/tenants/{its tenant}`.
fn user_in_own_tenant(me: UserId, method: &Method, below: &[&str]) -> Access {
    match below {
        // The tenant (name), its user directory, shared contacts and dialing rules.
        [] | ["users"] | ["settings"] | ["contacts", ..] => read_only(method),
        ["users", u, own @ ..] => {
            if u.parse::<UserId>().ok() != Some(me) {
                return Access::NotFound(format!("user not found: {u}"));
            }
            match own {
                // Its record (role, extension) and devices are the admin's to change;
                // so are the tenant tier's policy for it and who may watch it.
                [] | ["devices", ..] | ["policy", ..] | ["watchers"] => read_only(method),
                _ => Access::Allow,
            }
        }
        _ => Access::Forbidden,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ApiTokenId;

    const T: TenantId = TenantId::for_test(1);
    const OTHER_T: TenantId = TenantId::for_test(2);
    const ME: UserId = UserId::for_test(10);
    const PEER: UserId = UserId::for_test(11);

    fn check(principal: Option<&Principal>, method: Method, path: &str, want: &str) {
        let got = match decide(principal, &method, path) {
            Access::Allow => "allow".to_string(),
            Access::Unauthorized => "401".to_string(),
            Access::Forbidden => "403".to_string(),
            Access::NotFound(m) => format!("404 {m}"),
        };
        assert!(
            got == want || (want == "404" && got.starts_with("404")),
            "{principal:?} {method} {path}: got {got}, want {want}"
        );
    }

    #[test]
    fn the_policy_table() {
        let (op, admin, user) = (
            Principal::Operator,
            Principal::TenantAdmin {
                tenant: T,
                user: PEER,
            },
            Principal::User {
                tenant: T,
                user: ME,
            },
        );
        let (op, admin, user) = (Some(&op), Some(&admin), Some(&user));
        let t = format!("/api/v1/tenants/{T}");
        let other = format!("/api/v1/tenants/{OTHER_T}");
        let me = format!("{t}/users/{ME}");
        let peer = format!("{t}/users/{PEER}");
        use Method as M;
        #[rustfmt::skip]
        let table: Vec<(Option<&Principal>, Method, String, &str)> = vec![
            // Open to anyone.
            (None, M::GET, "/healthz".into(), "allow"),
            (None, M::GET, "/portal/index.html".into(), "allow"),
            (None, M::POST, "/api/v1/auth/login".into(), "allow"),
            (None, M::GET, "/api/v1/openapi.json".into(), "allow"),
            (user, M::GET, "/api/v1/openapi.json".into(), "allow"),
            // ... but only that path: not one below or beside it.
            (None, M::GET, "/api/v1/openapi.json/x".into(), "401"),
            (None, M::GET, "/api/v1/openapi.jso".into(), "401"),
            // Everything else of the API needs credentials.
            (None, M::GET, "/api/v1/tenants".into(), "401"),
            (None, M::GET, "/api/v1/auth/me".into(), "401"),
            (None, M::GET, me.clone(), "401"),
            // The operator may do anything: with the API token or a portal session (the
            // same principal). What the portal's Platform page does:
            (op, M::GET, "/api/v1/auth/me".into(), "allow"),
            (op, M::POST, "/api/v1/auth/logout".into(), "allow"),
            (op, M::POST, "/api/v1/tenants".into(), "allow"),
            (op, M::GET, format!("{other}/users"), "allow"),
            (op, M::POST, format!("{other}/users"), "allow"),
            (op, M::PUT, format!("{other}/settings"), "allow"),
            (op, M::GET, format!("{other}/trunks"), "allow"),
            // ... and the rest of the platform.
            (op, M::GET, "/api/v1/tenants".into(), "allow"),
            (op, M::PUT, "/api/v1/provision".into(), "allow"),
            (op, M::PUT, "/api/v1/testing/clock".into(), "allow"),
            (op, M::DELETE, other.clone(), "allow"),
            (op, M::PUT, format!("{me}/policy"), "allow"),
            // A user: itself, read and write where it is its own business.
            (user, M::GET, "/api/v1/auth/me".into(), "allow"),
            (user, M::POST, "/api/v1/auth/logout".into(), "allow"),
            (user, M::GET, me.clone(), "allow"),
            (user, M::PUT, me.clone(), "403"),
            (user, M::DELETE, me.clone(), "403"),
            (user, M::GET, format!("{me}/profile"), "allow"),
            (user, M::PUT, format!("{me}/profile"), "allow"),
            (user, M::PUT, format!("{me}/status"), "allow"),
            (user, M::POST, format!("{me}/contacts"), "allow"),
            (user, M::DELETE, format!("{me}/contacts/x"), "allow"),
            (user, M::PUT, format!("{me}/password"), "allow"),
            (user, M::GET, format!("{me}/calls/history"), "allow"),
            (user, M::GET, format!("{me}/events/ws"), "allow"),
            (user, M::POST, format!("{me}/calls"), "allow"),
            (user, M::POST, format!("{me}/calls/c1/hold"), "allow"),
            (user, M::GET, format!("{me}/devices"), "allow"),
            (user, M::POST, format!("{me}/devices"), "403"),
            (user, M::PUT, format!("{me}/devices/d"), "403"),
            (user, M::GET, format!("{me}/policy"), "allow"),
            (user, M::PUT, format!("{me}/policy"), "403"),
            (user, M::GET, format!("{me}/watchers"), "allow"),
            (user, M::PUT, format!("{me}/watchers"), "403"),
            (user, M::POST, format!("{me}/messages"), "allow"),
            // ... its tenant's read-only allowlist ...
            (user, M::GET, t.clone(), "allow"),
            (user, M::PUT, t.clone(), "403"),
            (user, M::DELETE, t.clone(), "403"),
            (user, M::GET, format!("{t}/users"), "allow"),
            (user, M::POST, format!("{t}/users"), "403"),
            (user, M::GET, format!("{t}/contacts"), "allow"),
            (user, M::GET, format!("{t}/contacts/c1"), "allow"),
            (user, M::GET, format!("{t}/contacts/export"), "allow"),
            (user, M::POST, format!("{t}/contacts"), "403"),
            (user, M::POST, format!("{t}/contacts/import"), "403"),
            (user, M::GET, format!("{t}/settings"), "allow"),
            (user, M::PUT, format!("{t}/settings"), "403"),
            (user, M::GET, format!("{t}/calls"), "403"),
            (user, M::GET, format!("{t}/calls/live"), "403"),
            (user, M::GET, format!("{t}/registrations"), "403"),
            (user, M::GET, format!("{t}/dids"), "403"),
            (user, M::GET, format!("{t}/trunks"), "403"),
            (user, M::GET, format!("{t}/policies"), "403"),
            // ... not another user's, not another tenant's: 404, as if absent ...
            (user, M::GET, peer.clone(), "404"),
            (user, M::GET, format!("{peer}/profile"), "404"),
            (user, M::POST, format!("{peer}/calls/c1/release"), "404"),
            (user, M::PUT, format!("{peer}/password"), "404"),
            (user, M::GET, format!("{t}/users/not-a-uuid/profile"), "404"),
            (user, M::GET, other.clone(), "404"),
            (user, M::GET, format!("{other}/users"), "404"),
            (user, M::GET, format!("{other}/users/{ME}/profile"), "404"),
            (user, M::GET, "/api/v1/tenants/nonsense".into(), "404"),
            // ... and nothing of the platform.
            (user, M::GET, "/api/v1/tenants".into(), "403"),
            (user, M::POST, "/api/v1/tenants".into(), "403"),
            (user, M::PUT, "/api/v1/provision".into(), "403"),
            (user, M::PUT, "/api/v1/testing/clock".into(), "403"),
            (user, M::GET, "/api/v1/metrics".into(), "403"),
            (admin, M::GET, "/api/v1/metrics".into(), "403"),
            (user, M::GET, "/api/v1".into(), "403"),
            // A tenant admin: all of its tenant, nothing of another's or the platform's.
            (admin, M::GET, format!("{t}/users"), "allow"),
            (admin, M::POST, format!("{t}/users"), "allow"),
            (admin, M::PUT, me.clone(), "allow"),
            (admin, M::DELETE, me.clone(), "allow"),
            (admin, M::PUT, format!("{me}/policy"), "allow"),
            (admin, M::PUT, format!("{me}/watchers"), "allow"),
            (admin, M::PUT, format!("{me}/password"), "allow"),
            (admin, M::GET, format!("{t}/calls"), "allow"),
            (admin, M::PUT, format!("{t}/settings"), "allow"),
            (admin, M::POST, format!("{t}/trunks"), "allow"),
            (admin, M::GET, other.clone(), "404"),
            (admin, M::POST, format!("{other}/users"), "404"),
            (admin, M::GET, "/api/v1/tenants".into(), "403"),
            (admin, M::PUT, "/api/v1/provision".into(), "403"),
        ];
        for (p, m, path, want) in table {
            check(p, m, &path, want);
        }
    }

    const OTHER: UserId = UserId::for_test(12);

    fn integration(users: Option<&[UserId]>) -> Principal {
        Principal::Integration {
            tenant: T,
            token: ApiTokenId::for_test(1),
            users: users.map(Into::into),
        }
    }

    #[test]
    fn the_integration_policy_table() {
        // Scoped to ME and PEER; OTHER is a user of the tenant outside the scope.
        let (cti, all) = (integration(Some(&[ME, PEER])), integration(None));
        let (cti, all) = (Some(&cti), Some(&all));
        let t = format!("/api/v1/tenants/{T}");
        let other_t = format!("/api/v1/tenants/{OTHER_T}");
        let me = format!("{t}/users/{ME}");
        let peer = format!("{t}/users/{PEER}");
        let out = format!("{t}/users/{OTHER}");
        use Method as M;
        #[rustfmt::skip]
        let table: Vec<(Option<&Principal>, Method, String, &str)> = vec![
            // The CTI services for a user in scope: call control, status, events, watch.
            (cti, M::POST, format!("{me}/calls"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/hold"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/resume"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/transfer"), "allow"),
            (cti, M::POST, format!("{me}/calls/c1/release"), "allow"),
            (cti, M::POST, format!("{peer}/calls/c1/answer"), "allow"),
            (cti, M::GET, format!("{me}/status"), "allow"),
            (cti, M::PUT, format!("{me}/status"), "allow"),
            (cti, M::GET, format!("{me}/events/ws"), "allow"),
            (cti, M::GET, format!("{peer}/events/sse"), "allow"),
            (cti, M::PUT, format!("{me}/watch"), "allow"),
            // ... reads of what the user's calls need ...
            (cti, M::GET, me.clone(), "allow"),
            (cti, M::GET, format!("{me}/devices"), "allow"),
            (cti, M::GET, format!("{me}/devices/d"), "allow"),
            (cti, M::GET, format!("{me}/external-phones"), "allow"),
            (cti, M::GET, format!("{me}/profile"), "allow"),
            (cti, M::GET, format!("{me}/calls/history"), "allow"),
            // ... and of the tenant's directory.
            (cti, M::GET, t.clone(), "allow"),
            (cti, M::GET, format!("{t}/users"), "allow"),
            // Not the user's own business or the admin's.
            (cti, M::PUT, me.clone(), "403"),
            (cti, M::DELETE, me.clone(), "403"),
            (cti, M::PUT, format!("{me}/profile"), "403"),
            (cti, M::PUT, format!("{me}/password"), "403"),
            (cti, M::GET, format!("{me}/contacts"), "403"),
            (cti, M::POST, format!("{me}/contacts"), "403"),
            (cti, M::GET, format!("{me}/policy"), "403"),
            (cti, M::PUT, format!("{me}/watchers"), "403"),
            (cti, M::POST, format!("{me}/messages"), "403"),
            (cti, M::POST, format!("{me}/devices"), "403"),
            (cti, M::PUT, format!("{me}/external-phones/p"), "403"),
            (cti, M::PUT, t.clone(), "403"),
            (cti, M::POST, format!("{t}/users"), "403"),
            (cti, M::GET, format!("{t}/api-tokens"), "403"),
            (cti, M::POST, format!("{t}/api-tokens"), "403"),
            (cti, M::GET, format!("{t}/calls"), "403"),
            (cti, M::GET, format!("{t}/calls/live"), "403"),
            (cti, M::GET, format!("{t}/contacts"), "403"),
            (cti, M::GET, format!("{t}/settings"), "403"),
            (cti, M::GET, format!("{t}/trunks"), "403"),
            (cti, M::GET, "/api/v1/auth/me".into(), "403"),
            (cti, M::POST, "/api/v1/auth/logout".into(), "403"),
            // A user out of scope, another tenant: 404, as if absent.
            (cti, M::GET, out.clone(), "404"),
            (cti, M::GET, format!("{out}/events/ws"), "404"),
            (cti, M::POST, format!("{out}/calls/c1/release"), "404"),
            (cti, M::PUT, format!("{out}/status"), "404"),
            (cti, M::GET, format!("{t}/users/not-a-uuid/status"), "404"),
            (cti, M::GET, other_t.clone(), "404"),
            (cti, M::GET, format!("{other_t}/users"), "404"),
            (cti, M::GET, format!("{other_t}/users/{ME}/events/ws"), "404"),
            (cti, M::GET, format!("{other_t}/api-tokens"), "404"),
            // Never the operator's paths.
            (cti, M::GET, "/api/v1/tenants".into(), "403"),
            (cti, M::PUT, "/api/v1/provision".into(), "403"),
            (cti, M::PUT, "/api/v1/testing/clock".into(), "403"),
            (cti, M::GET, "/api/v1/metrics".into(), "403"),
            (cti, M::GET, "/api/v1/openapi.json".into(), "allow"),
            // A token for every user of the tenant: any of them, still nothing more.
            (all, M::POST, format!("{out}/calls"), "allow"),
            (all, M::GET, format!("{out}/events/ws"), "allow"),
            (all, M::GET, format!("{t}/users/not-a-uuid/status"), "404"),
            (all, M::PUT, format!("{out}/password"), "403"),
            (all, M::GET, format!("{other_t}/users/{OTHER}/status"), "404"),
            (all, M::POST, format!("{t}/api-tokens"), "403"),
        ];
        for (p, m, path, want) in table {
            check(p, m, &path, want);
        }
        // Encoded paths are judged decoded for integrations too.
        let encoded = OTHER.to_string().replacen('0', "%30", 1);
        check(
            cti,
            Method::GET,
            &format!("{t}/users/{encoded}/status"),
            "404",
        );
        check(cti, Method::PUT, &format!("{me}/%70assword"), "403");
    }

    #[test]
    fn encoded_paths_are_judged_decoded() {
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        let user = Some(&user);
        let me = format!("/api/v1/tenants/{T}/users/{ME}");
        // `%70olicy` is `policy`: still read-only.
        check(user, Method::PUT, &format!("{me}/%70olicy"), "403");
        // An encoded id is the same id.
        let encoded = T.to_string().replacen('0', "%30", 1);
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{encoded}"),
            "allow",
        );
        // Odd shapes of another user's path stay 404.
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{T}/users//profile"),
            "404",
        );
        check(
            user,
            Method::GET,
            &format!("/api/v1/tenants/{T}/users/%ff"),
            "404",
        );
    }

    #[test]
    fn the_404_message_matches_a_missing_object() {
        let user = Principal::User {
            tenant: T,
            user: ME,
        };
        assert_eq!(
            decide(
                Some(&user),
                &Method::GET,
                &format!("/api/v1/tenants/{OTHER_T}")
            ),
            Access::NotFound(format!("tenant not found: {OTHER_T}"))
        );
        assert_eq!(
            decide(
                Some(&user),
                &Method::GET,
                &format!("/api/v1/tenants/{T}/users/{PEER}")
            ),
            Access::NotFound(format!("user not found: {PEER}"))
        );
    }
}
