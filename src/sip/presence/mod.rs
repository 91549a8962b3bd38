//! SIP presence (RFC 6665 SUBSCRIBE/NOTIFY with the RFC 4235 `dialog` and RFC 3856
//! `presence` packages, RFC 3428 MESSAGE notifications): the sans-IO parts. The
//! request checks and the authorization decision here, the subscription state machine
//! in [`subscription`], the bodies in [`body`]; the shard (`shard/presence.rs`) does
//! the I/O, and the tenant's presence actor (`tsps_actors::presence`) decides who is
//! told what.

pub mod body;
pub mod stats;
pub mod subscription;

use super::timer::TimerQueue;
use super::Peer;
use std::collections::HashMap;
use tsps_actors::model::{Tenant, User};
use tsps_actors::presence::{Package, SubscriptionId};
use tsps_actors::Directory;

pub use stats::PresenceStats;
pub use subscription::Subscription;

/// The packages tsps serves, for `Allow-Events` (RFC 6665 §8.2.2).
pub const ALLOW_EVENTS: &str = "dialog, presence";

/// Limits of subscriptions, fixed at start (config `[presence]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceSettings {
    /// Shortest interval granted (423 Interval Too Brief below it).
    pub min_expires: u32,
    /// Longest interval granted (longer requests are shortened).
    pub max_expires: u32,
    /// Interval when the SUBSCRIBE has no Expires.
    pub default_expires: u32,
    /// Subscriptions one device may hold at once (403 beyond).
    pub max_per_device: usize,
    /// Subscriptions a tenant's devices may hold together on this node, unless the
    /// tenant has its own quota (403 beyond).
    pub max_per_tenant: usize,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        Self {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_per_device: 100,
            max_per_tenant: 10_000,
        }
    }
}

/// The package named by an `Event` header value (`dialog`, `presence;id=7`), and
/// its `id` parameter. None: an unknown package (489 Bad Event).
pub fn package_of(event: &str) -> Option<(Package, Option<&str>)> {
    let mut parts = event.split(';');
    let name = parts.next()?.trim();
    let package = if name.eq_ignore_ascii_case("dialog") {
        Package::Dialog
    } else if name.eq_ignore_ascii_case("presence") {
        Package::Presence
    } else {
        return None;
    };
    let id = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("id").then(|| v.trim())
    });
    Some((package, id))
}

pub fn content_type(package: Package) -> &'static str {
    match package {
        Package::Dialog => body::DIALOG_INFO,
        Package::Presence => body::PIDF,
    }
}

/// Whether the subscriber takes our body type: no `Accept` header means the package's
/// default type (RFC 6665 §7.2), which is ours.
pub fn accepts(accept: &[&str], package: Package) -> bool {
    let ours = content_type(package);
    accept.is_empty()
        || accept.iter().any(|a| {
            let t = a.split(';').next().unwrap_or("").trim();
            t.eq_ignore_ascii_case(ours) || t == "*/*" || t.eq_ignore_ascii_case("application/*")
        })
}

/// The interval granted for a requested one: `Err(min)` when too brief (423 with
/// Min-Expires), 0 stays 0 (unsubscribe or fetch).
pub fn grant(requested: Option<u32>, limits: &PresenceSettings) -> Result<u32, u32> {
    match requested {
        Some(0) => Ok(0),
        Some(e) if e < limits.min_expires => Err(limits.min_expires),
        Some(e) => Ok(e.min(limits.max_expires)),
        None => Ok(limits
            .default_expires
            .clamp(limits.min_expires, limits.max_expires)),
    }
}

/// Why a watcher may not subscribe to a URI. Neither answer tells anything about
/// another tenant: a URI outside the watcher's domain is refused before any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// 403: outside the watcher's tenant, or not allowed by the tenant.
    Forbidden,
    /// 404: no such user in the watcher's tenant.
    NotFound,
}

impl Refusal {
    pub fn code(self) -> u16 {
        match self {
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
        }
    }
}

/// Whom `watcher` (authenticated, a user of `tenant`) watches with a SUBSCRIBE to
/// `target` (its Request-URI): a user of the same tenant, by extension, at the
/// tenant's domain.
pub fn authorize<'d>(
    dir: &'d Directory,
    tenant: &Tenant,
    watcher: &User,
    target: &str,
) -> Result<&'d User, Refusal> {
    if watcher.tenant_id != tenant.id
        || !super::headers::uri_host(target).eq_ignore_ascii_case(&tenant.domain)
    {
        return Err(Refusal::Forbidden);
    }
    let ext = super::headers::uri_user(target).ok_or(Refusal::NotFound)?;
    let watched = dir
        .user_by_extension(tenant.id, ext)
        .ok_or(Refusal::NotFound)?;
    if may_watch(dir, watcher, watched) {
        Ok(watched)
    } else {
        Err(Refusal::Forbidden)
    }
}

/// The tenant's subscriber table (who may watch whom): the one decision, shared with
/// the portal's watch list (`push::Hub::watch`). Any user of the tenant by default; a
/// user restricted by the tenant admin only by the users on their list.
pub use tsps_actors::presence::may_watch;

/// Whether the SUBSCRIBE asks for instant messages on hook changes: `im=1` (or
/// `yes`, `true`) as a parameter of the Request-URI, e.g. `sip:1002@a.test;im=1`.
pub fn wants_im(target: &str) -> bool {
    super::headers::uri_param(target, "im").is_some_and(|v| {
        ["1", "yes", "true"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
    })
}

/// The SIP dialog of a subscription (tsps is the notifier: the UAS of the SUBSCRIBE).
#[derive(Debug)]
pub struct SubDialog {
    pub call_id: String,
    /// Our To tag.
    pub local_tag: String,
    pub remote_tag: String,
    /// The SUBSCRIBE's To without tag (the From of our NOTIFYs).
    pub local_party: String,
    /// The SUBSCRIBE's From without tag.
    pub remote_party: String,
    pub local_cseq: u32,
    pub remote_cseq: u32,
    /// The subscriber's Contact: where NOTIFYs and MESSAGEs go.
    pub remote_target: String,
    pub route_set: Vec<String>,
    pub peer: Peer,
    /// The Event header value our NOTIFYs carry (package and its id).
    pub event: String,
    /// The watched user's address of record, `sip:<extension>@<domain>`.
    pub entity: String,
    pub domain: String,
    pub watched_name: String,
    pub watched_extension: String,
    /// The watcher: instant messages go to this user's registered devices.
    pub watcher: tsps_actors::UserId,
    /// The watcher's address of record (the To of instant messages).
    pub watcher_aor: String,
}

pub struct SubEntry {
    pub dialog: SubDialog,
    pub machine: Subscription,
    /// The tenant whose presence actor holds the watch.
    pub tenant: tsps_actors::TenantId,
}

/// A shard's subscriptions: by id, by dialog, by NOTIFY transaction, and their expiry
/// timers (never cancelled: the state machine ignores a stale one).
#[derive(Default)]
pub struct ShardSubscriptions {
    pub subs: HashMap<SubscriptionId, SubEntry>,
    pub by_dialog: HashMap<(String, String), SubscriptionId>,
    /// Branch of each NOTIFY in flight → its subscription.
    pub notifies: HashMap<String, SubscriptionId>,
    pub timers: TimerQueue<SubscriptionId>,
    /// Instant messages decided but not sent yet (their recipients are looked up).
    pub pending_im: Vec<(
        SubscriptionId,
        std::sync::Arc<tsps_actors::presence::WatchedState>,
    )>,
}

impl ShardSubscriptions {
    pub fn insert(&mut self, id: SubscriptionId, entry: SubEntry) {
        let d = &entry.dialog;
        self.by_dialog
            .insert((d.call_id.clone(), d.local_tag.clone()), id);
        self.subs.insert(id, entry);
    }

    pub fn remove(&mut self, id: SubscriptionId) {
        if let Some(e) = self.subs.remove(&id) {
            self.by_dialog
                .remove(&(e.dialog.call_id, e.dialog.local_tag));
        }
    }

    pub fn of_dialog(&self, call_id: &str, local_tag: &str) -> Option<SubscriptionId> {
        self.by_dialog
            .get(&(call_id.to_string(), local_tag.to_string()))
            .copied()
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::{TenantId, UserId};

    #[test]
    fn event_packages_are_recognised_with_their_id() {
        assert_eq!(package_of("dialog"), Some((Package::Dialog, None)));
        assert_eq!(
            package_of("Presence ; id=42"),
            Some((Package::Presence, Some("42")))
        );
        assert_eq!(package_of("foo"), None);
        assert_eq!(package_of("message-summary"), None);
        assert_eq!(package_of(""), None);
    }

    #[test]
    fn accept_must_include_the_package_type_when_present() {
        assert!(accepts(&[], Package::Dialog));
        assert!(accepts(&["application/dialog-info+xml"], Package::Dialog));
        assert!(!accepts(&["application/pidf+xml"], Package::Dialog));
        assert!(accepts(
            &["application/xpidf+xml", "application/pidf+xml;q=0.5"],
            Package::Presence
        ));
    }

    #[test]
    fn expires_is_granted_within_limits() {
        let l = PresenceSettings {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_per_device: 10,
            ..Default::default()
        };
        assert_eq!(grant(Some(0), &l), Ok(0));
        assert_eq!(grant(Some(30), &l), Err(60));
        assert_eq!(grant(Some(60), &l), Ok(60));
        assert_eq!(grant(Some(86_400), &l), Ok(3600));
        assert_eq!(grant(None, &l), Ok(600));
    }

    #[test]
    fn im_is_asked_for_on_the_request_uri() {
        assert!(wants_im("sip:1002@a.test;im=1"));
        assert!(wants_im("sip:1002@a.test;transport=udp;IM=yes"));
        assert!(!wants_im("sip:1002@a.test"));
        assert!(!wants_im("sip:1002@a.test;im=0"));
    }

    fn dir() -> (Directory, Tenant, Tenant) {
        let t = |n, d: &str| Tenant {
            id: TenantId::for_test(n),
            domain: d.into(),
            name: d.into(),
            time_zone: "UTC".into(),
        };
        let (a, b) = (t(1, "a.test"), t(2, "b.test"));
        let u = |n, tenant: &Tenant, ext: &str| User {
            id: UserId::for_test(n),
            tenant_id: tenant.id,
            extension: ext.into(),
            display_name: format!("User {ext}"),
            portal_login: None,
        };
        let users = vec![
            u(1, &a, "1001"),
            u(2, &a, "1002"),
            u(3, &a, "1003"),
            u(11, &b, "1001"),
            u(13, &b, "1003"),
        ];
        (
            Directory::new(vec![a.clone(), b.clone()], users, vec![], vec![], vec![]),
            a,
            b,
        )
    }

    #[test]
    fn a_watcher_watches_users_of_its_own_tenant_only() {
        let (dir, a, b) = dir();
        let watcher_a = dir.user(UserId::for_test(3)).unwrap().clone();
        let watcher_b = dir.user(UserId::for_test(13)).unwrap().clone();
        let ok = authorize(&dir, &a, &watcher_a, "sip:1002@a.test").unwrap();
        assert_eq!(ok.id, UserId::for_test(2));
        assert_eq!(
            authorize(&dir, &a, &watcher_a, "sip:1002@A.TEST;im=1")
                .unwrap()
                .id,
            UserId::for_test(2)
        );
        assert_eq!(
            authorize(&dir, &a, &watcher_a, "sip:1009@a.test"),
            Err(Refusal::NotFound)
        );
        // Tenant B's watcher asking for A's user: refused before any lookup in A, the
        // same answer whether the user exists there or not.
        assert_eq!(
            authorize(&dir, &b, &watcher_b, "sip:1002@a.test"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(
            authorize(&dir, &b, &watcher_b, "sip:1009@a.test"),
            Err(Refusal::Forbidden)
        );
        // B has no 1002: not found in B (A's 1002 is not visible).
        assert_eq!(
            authorize(&dir, &b, &watcher_b, "sip:1002@b.test"),
            Err(Refusal::NotFound)
        );
        // A watcher presented with the wrong tenant (never happens after digest, but
        // the decision does not rely on it).
        assert_eq!(
            authorize(&dir, &a, &watcher_b, "sip:1002@a.test"),
            Err(Refusal::Forbidden)
        );
        assert_eq!(Refusal::Forbidden.code(), 403);
        assert_eq!(Refusal::NotFound.code(), 404);
    }

    #[test]
    fn a_restricted_user_is_watched_only_by_the_users_on_the_list() {
        let (dir, a, _) = dir();
        // Bob (1002) may be watched by Alice (1001) only.
        let dir = dir.with_watch_rules(vec![(UserId::for_test(2), vec![UserId::for_test(1)])]);
        let alice = dir.user(UserId::for_test(1)).unwrap().clone();
        let carol = dir.user(UserId::for_test(3)).unwrap().clone();
        assert_eq!(
            authorize(&dir, &a, &alice, "sip:1002@a.test").map(|u| u.id),
            Ok(UserId::for_test(2))
        );
        assert_eq!(
            authorize(&dir, &a, &carol, "sip:1002@a.test"),
            Err(Refusal::Forbidden)
        );
        // Carol still watches unrestricted users, and unknown ones are still 404.
        assert!(authorize(&dir, &a, &carol, "sip:1001@a.test").is_ok());
        assert_eq!(
            authorize(&dir, &a, &carol, "sip:1009@a.test"),
            Err(Refusal::NotFound)
        );
    }
}
