//! The registry of live actors: typed handles to the tenants, users, live calls and
//! presence actors, and the worker Arbiters they run on (round-robin). Tenant and user
//! maps are immutable and swapped whole on change, so lookups never lock.
//!
//! A call is known by its [`CallHandle`] (defined beside the call's messages), not by
//! the call actor's address: the registry does not depend on the call actor's module,
//! which depends on the platform.

use crate::call::api::CallHandle;
use crate::directory::Directory;
use crate::ids::{CallId, TenantId, UserId};
use crate::model::Binding;
use crate::presence::PresenceActor;
use crate::services::Services;
use crate::tenant::TenantActor;
use crate::user::UserActor;
use actix::prelude::*;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A live call as the registry knows it.
#[derive(Clone)]
struct LiveCall {
    tenant: TenantId,
    handle: CallHandle,
    info: LiveCallInfo,
}

/// What can be listed of a live call without asking its actor.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LiveCallInfo {
    pub call: CallId,
    pub caller: String,
    pub dialled: String,
    pub started_at: chrono::DateTime<chrono::Utc>,
}

pub struct Registry {
    arbiters: Vec<ArbiterHandle>,
    next: AtomicUsize,
    tenants: ArcSwap<HashMap<TenantId, Addr<TenantActor>>>,
    users: ArcSwap<HashMap<UserId, Addr<UserActor>>>,
    /// Live calls, for commands from outside (per-call override, call control).
    calls: Mutex<HashMap<CallId, LiveCall>>,
    sync_lock: Mutex<()>,
    /// One presence actor per tenant, started on the tenant's first event or watch.
    presence: ArcSwap<HashMap<TenantId, Addr<PresenceActor>>>,
    presence_lock: Mutex<()>,
}

impl Registry {
    pub fn new(arbiters: Vec<ArbiterHandle>) -> Self {
        assert!(!arbiters.is_empty(), "at least one arbiter");
        Self {
            arbiters,
            next: AtomicUsize::new(0),
            tenants: ArcSwap::from_pointee(HashMap::new()),
            users: ArcSwap::from_pointee(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
            sync_lock: Mutex::new(()),
            presence: ArcSwap::from_pointee(HashMap::new()),
            presence_lock: Mutex::new(()),
        }
    }

    fn next_arbiter(&self) -> &ArbiterHandle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.arbiters.len();
        &self.arbiters[i]
    }

    pub fn tenant(&self, id: TenantId) -> Option<Addr<TenantActor>> {
        self.tenants.load().get(&id).cloned()
    }

    pub fn user(&self, id: UserId) -> Option<Addr<UserActor>> {
        self.users.load().get(&id).cloned()
    }

    /// Brings the actors in line with `dir`: starts actors for new tenants and users
    /// (giving users their `restored` bindings) and drops removed ones (an actor stops
    /// once the registry no longer holds its address and its live calls are over).
    pub fn sync(&self, services: &Services, dir: &Directory, restored: Vec<Binding>) {
        let _guard = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut by_user: HashMap<UserId, Vec<Binding>> = HashMap::new();
        for b in restored {
            by_user.entry(b.user_id).or_default().push(b);
        }
        let old_tenants = self.tenants.load_full();
        let mut tenants = HashMap::new();
        for t in dir.tenants() {
            let addr = match old_tenants.get(&t.id) {
                Some(a) if a.connected() => a.clone(),
                _ => {
                    let (id, source) = (t.id, services.directory.clone());
                    let features = services.features.clone();
                    let upstream = services.config.upstream_tenant == Some(t.id);
                    TenantActor::start_in_arbiter(self.next_arbiter(), move |_| {
                        TenantActor::new(id, source, features).with_upstream(upstream)
                    })
                }
            };
            tenants.insert(t.id, addr);
        }
        let old_users = self.users.load_full();
        let mut users = HashMap::new();
        for u in dir.users() {
            let addr = match old_users.get(&u.id) {
                Some(a) if a.connected() => a.clone(),
                _ => {
                    let (tenant, user) = (u.tenant_id, u.id);
                    let restored = by_user.remove(&u.id).unwrap_or_default();
                    let (p, c) = (services.persistence.clone(), services.clock.clone());
                    let (f, bus) = (services.features.clone(), services.bus.clone());
                    UserActor::start_in_arbiter(self.next_arbiter(), move |_| {
                        UserActor::new(tenant, user, restored, p, c, f).with_bus(bus)
                    })
                }
            };
            users.insert(u.id, addr);
        }
        self.tenants.store(Arc::new(tenants));
        self.users.store(Arc::new(users));
    }

    pub(crate) fn call_started(&self, tenant: TenantId, handle: CallHandle, info: LiveCallInfo) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).insert(
            info.call,
            LiveCall {
                tenant,
                handle,
                info,
            },
        );
    }

    pub(crate) fn call_ended(&self, call: CallId) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&call);
    }

    /// A live call of `tenant` (None for another tenant's call: tenants are walls).
    pub fn call(&self, tenant: TenantId, call: CallId) -> Option<CallHandle> {
        match self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&call)
        {
            Some(c) if c.tenant == tenant => Some(c.handle.clone()),
            _ => None,
        }
    }

    /// The live calls of `tenant`, oldest first.
    pub fn calls_of(&self, tenant: TenantId) -> Vec<LiveCallInfo> {
        let mut v: Vec<LiveCallInfo> = self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|c| c.tenant == tenant)
            .map(|c| c.info.clone())
            .collect();
        v.sort_by_key(|c| c.started_at);
        v
    }

    pub fn live_calls(&self) -> usize {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn user_count(&self) -> usize {
        self.users.load().len()
    }

    /// The presence actor of `tenant`, started on first use (lookups never lock).
    pub fn presence(&self, tenant: TenantId) -> Addr<PresenceActor> {
        if let Some(a) = self.presence.load().get(&tenant).filter(|a| a.connected()) {
            return a.clone();
        }
        let _guard = self.presence_lock.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.presence.load_full();
        if let Some(a) = current.get(&tenant).filter(|a| a.connected()) {
            return a.clone();
        }
        let addr = PresenceActor::start_in_arbiter(self.next_arbiter(), move |_| {
            PresenceActor::new(tenant)
        });
        let mut map = (*current).clone();
        map.insert(tenant, addr.clone());
        self.presence.store(Arc::new(map));
        addr
    }
}
