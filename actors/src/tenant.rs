//! The tenant actor: the higher tier. Every call reaches its tenant first, which
//! decides whether and to whom it goes (a user of the tenant, or out through a
//! trunk). Nothing of another tenant is reachable from here.

use crate::directory::Directory;
use crate::ids::{CallId, TenantId, TrunkId, UserId};
use crate::model::{CallDirection, CallOutcome};
use crate::ports::{FeatureSource, TenantPolicy};
use crate::routing::{route_dialled, Route};
use actix::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// Where the directory snapshot comes from (implemented by the store layer).
pub trait DirectorySource: Send + Sync + 'static {
    fn current(&self) -> Arc<Directory>;
}

pub struct TenantActor {
    tenant: TenantId,
    directory: Arc<dyn DirectorySource>,
    features: Arc<dyn FeatureSource>,
    policies: HashMap<UserId, TenantPolicy>,
    live_calls: HashSet<CallId>,
    /// Personal mode: this tenant's trunk is the upstream tenant, above its one user.
    upstream: bool,
}

impl TenantActor {
    pub fn new(
        tenant: TenantId,
        directory: Arc<dyn DirectorySource>,
        features: Arc<dyn FeatureSource>,
    ) -> Self {
        Self {
            tenant,
            directory,
            features,
            policies: HashMap::new(),
            live_calls: HashSet::new(),
            upstream: false,
        }
    }

    /// Personal mode (a tsps that is itself a device at an upstream tenant): whatever
    /// a user dials that is not local goes out through the trunk (the upstream decides,
    /// extensions included), and the trunk's calls name the user by extension.
    pub fn with_upstream(mut self, upstream: bool) -> Self {
        self.upstream = upstream;
        self
    }

    /// Loads the per-user policies (the first load holds the mailbox, within a budget).
    fn reload(&mut self, ctx: &mut Context<Self>, first: bool) {
        let tenant = self.tenant;
        let work = tokio::time::timeout(
            Duration::from_secs(2),
            self.features.tenant_policies(tenant),
        )
        .into_actor(self)
        .map(move |res, act, ctx| match res {
            Ok(Ok(p)) => act.policies = p,
            Ok(Err(e)) => {
                warn!(%tenant, error = %e, "cannot load tenant policies; retrying");
                ctx.run_later(Duration::from_secs(5), |act, ctx| act.reload(ctx, false));
            }
            Err(_) => {
                warn!(%tenant, "loading tenant policies took too long; retrying");
                ctx.run_later(Duration::from_secs(5), |act, ctx| act.reload(ctx, false));
            }
        });
        if first {
            ctx.wait(work);
        } else {
            ctx.spawn(work);
        }
    }
}

impl Actor for TenantActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.reload(ctx, true);
    }
}

/// The tenant's policies changed in the store: load them again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReloadPolicies;

impl Handler<ReloadPolicies> for TenantActor {
    type Result = ();
    fn handle(&mut self, _: ReloadPolicies, ctx: &mut Self::Context) {
        self.reload(ctx, false);
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallOrigin {
    /// A user of this tenant dialled something.
    User { user: UserId, dialled: String },
    /// A carrier trunk of this tenant delivered a call for a DID.
    Trunk { trunk: TrunkId, did: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    ToUser {
        user: UserId,
        direction: CallDirection,
        /// What the callee side is shown as (extension and name of the called user).
        extension: String,
        display_name: String,
    },
    Outside {
        trunk: TrunkId,
        number: String,
    },
    /// The user's own feature server elsewhere takes the call.
    External {
        user: UserId,
        uri: String,
    },
    Reject {
        code: u16,
        outcome: CallOutcome,
        /// Why, for the call record (the tenant tier's word).
        reason: &'static str,
    },
}

#[derive(Debug, Message)]
#[rtype(result = "Admission")]
pub struct AdmitCall {
    pub call: CallId,
    pub origin: CallOrigin,
}

impl Handler<AdmitCall> for TenantActor {
    type Result = MessageResult<AdmitCall>;

    fn handle(&mut self, msg: AdmitCall, _: &mut Self::Context) -> Self::Result {
        let dir = self.directory.current();
        let reject = |code, outcome| Admission::Reject {
            code,
            outcome,
            reason: match code {
                404 => "tenant: no such extension or number",
                _ => "tenant: refused",
            },
        };
        let admission = match msg.origin {
            CallOrigin::User { user, dialled } => {
                // The caller must belong to this tenant: tenants are walls.
                match dir.user(user) {
                    Some(u) if u.tenant_id == self.tenant => {}
                    _ => return MessageResult(reject(403, CallOutcome::Rejected)),
                }
                match route_dialled(&dir, self.tenant, &dialled) {
                    Route::User(callee) => match dir.user(callee) {
                        Some(u) => Admission::ToUser {
                            user: callee,
                            direction: CallDirection::Internal,
                            extension: u.extension.clone(),
                            display_name: u.display_name.clone(),
                        },
                        None => reject(404, CallOutcome::Unavailable),
                    },
                    Route::Outside { trunk, number } => Admission::Outside { trunk, number },
                    Route::NotFound if self.upstream => {
                        match dir
                            .trunks_of_tenant(self.tenant)
                            .min_by(|a, b| a.name.cmp(&b.name))
                        {
                            Some(t) => Admission::Outside {
                                trunk: t.id,
                                number: dialled.trim().to_string(),
                            },
                            None => reject(404, CallOutcome::Unavailable),
                        }
                    }
                    Route::NotFound => reject(404, CallOutcome::Unavailable),
                    Route::NoTrunk => reject(403, CallOutcome::Rejected),
                }
            }
            CallOrigin::Trunk { trunk, did } => {
                match dir.trunk(trunk) {
                    Some(t) if t.tenant_id == self.tenant => {}
                    _ => return MessageResult(reject(403, CallOutcome::Rejected)),
                }
                let callee = match dir.did(&did) {
                    Some(d) if d.tenant_id == self.tenant => dir.user(d.user_id),
                    // Personal mode: the upstream's calls are for the user by extension.
                    _ if self.upstream => dir.user_by_extension(self.tenant, &did),
                    _ => None,
                };
                match callee {
                    Some(u) => Admission::ToUser {
                        user: u.id,
                        direction: CallDirection::Inbound,
                        extension: u.extension.clone(),
                        display_name: u.display_name.clone(),
                    },
                    None => reject(404, CallOutcome::Unavailable),
                }
            }
        };
        // The tenant's word on the user comes before the user's own feature server.
        let admission = match admission {
            Admission::ToUser { user, .. } => match self.policies.get(&user) {
                Some(TenantPolicy::Reject) => Admission::Reject {
                    code: 403,
                    outcome: CallOutcome::Rejected,
                    reason: "tenant: calls for this user are refused",
                },
                Some(TenantPolicy::External(uri)) => Admission::External {
                    user,
                    uri: uri.clone(),
                },
                _ => admission,
            },
            other => other,
        };
        if !matches!(admission, Admission::Reject { .. }) {
            self.live_calls.insert(msg.call);
        }
        MessageResult(admission)
    }
}

/// A call admitted by this tenant has ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct TenantCallEnded {
    pub call: CallId,
}

impl Handler<TenantCallEnded> for TenantActor {
    type Result = ();
    fn handle(&mut self, msg: TenantCallEnded, _: &mut Self::Context) {
        self.live_calls.remove(&msg.call);
    }
}

/// Number of live calls of the tenant (observable state).
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct LiveCalls;

impl Handler<LiveCalls> for TenantActor {
    type Result = usize;
    fn handle(&mut self, _: LiveCalls, _: &mut Self::Context) -> usize {
        self.live_calls.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Tenant, TransportKind, Trunk, User};
    use crate::ports::DefaultFeatures;
    use crate::testkit::FixedDirectory;

    const TENANT: TenantId = TenantId::for_test(1);

    fn directory() -> Arc<Directory> {
        let user = |n, ext: &str| User {
            id: UserId::for_test(n),
            tenant_id: TENANT,
            extension: ext.into(),
            display_name: format!("user {ext}"),
            portal_login: None,
        };
        Arc::new(Directory::new(
            vec![Tenant {
                id: TENANT,
                domain: "a.test".into(),
                name: "A".into(),
                time_zone: "UTC".into(),
            }],
            vec![user(1, "1002"), user(2, "1003")],
            vec![],
            vec![],
            vec![Trunk {
                id: TrunkId::for_test(1),
                tenant_id: TENANT,
                name: "upstream".into(),
                peer_host: "127.0.0.1".into(),
                peer_port: 5060,
                transport: TransportKind::Udp,
                username: Some("1002p".into()),
                password: Some("pw".into()),
                inbound_sources: vec![],
            }],
        ))
    }

    async fn admit(upstream: bool, origin: CallOrigin) -> Admission {
        let tenant = TenantActor::new(
            TENANT,
            Arc::new(FixedDirectory(directory())),
            Arc::new(DefaultFeatures),
        )
        .with_upstream(upstream)
        .start();
        tenant
            .send(AdmitCall {
                call: CallId::new(),
                origin,
            })
            .await
            .expect("the tenant actor answers")
    }

    fn dialled(what: &str) -> CallOrigin {
        CallOrigin::User {
            user: UserId::for_test(1),
            dialled: what.into(),
        }
    }

    fn from_trunk(did: &str) -> CallOrigin {
        CallOrigin::Trunk {
            trunk: TrunkId::for_test(1),
            did: did.into(),
        }
    }

    #[actix::test]
    async fn personal_mode_sends_what_is_not_local_upstream() {
        // An upstream extension is no number, yet it goes up the trunk.
        assert_eq!(
            admit(true, dialled("1001")).await,
            Admission::Outside {
                trunk: TrunkId::for_test(1),
                number: "1001".into()
            }
        );
        assert!(matches!(
            admit(true, dialled("1003")).await,
            Admission::ToUser { user, .. } if user == UserId::for_test(2)
        ));
        // On a platform an unknown extension stays unknown.
        assert!(matches!(
            admit(false, dialled("1001")).await,
            Admission::Reject { code: 404, .. }
        ));
    }

    #[actix::test]
    async fn personal_mode_takes_the_upstreams_calls_by_extension() {
        assert!(matches!(
            admit(true, from_trunk("1002")).await,
            Admission::ToUser { user, direction: CallDirection::Inbound, .. }
                if user == UserId::for_test(1)
        ));
        assert!(matches!(
            admit(true, from_trunk("1009")).await,
            Admission::Reject { code: 404, .. }
        ));
        // A carrier's call names a DID, never an extension.
        assert!(matches!(
            admit(false, from_trunk("1002")).await,
            Admission::Reject { code: 404, .. }
        ));
    }
}
