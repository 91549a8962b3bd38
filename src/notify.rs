//! The port by which writes of stored feature-server data (profiles, status, contacts,
//! settings, policies) tell the running system: the API calls it, the feature actors
//! (`features::ActorNotifier`) and the cluster link (other nodes) implement it. A leaf:
//! it knows only ids.

use tsps_actors::{TenantId, UserId};

/// How a write tells the running system that stored feature-server data changed.
/// Called after the write is durable; must not block (queue or `do_send`).
pub trait ChangeNotifier: Send + Sync + 'static {
    /// Something of this user changed: profile, presence, personal contacts, or the
    /// tenant's policy for the user.
    fn user_changed(&self, tenant: TenantId, user: UserId);
    /// Something every user of the tenant sees changed: shared contacts, settings.
    fn tenant_changed(&self, tenant: TenantId);
}

/// Tells nobody: for tests and for a server without live feature actors.
pub struct NoopNotifier;

impl ChangeNotifier for NoopNotifier {
    fn user_changed(&self, _: TenantId, _: UserId) {}
    fn tenant_changed(&self, _: TenantId) {}
}
