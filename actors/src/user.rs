//! The user actor: one per user. Owns the user's registrations (bindings), the calls
//! it takes part in, and its status. Lower tier under the tenant actor.
//!
//! With several nodes (`src/cluster`), every node runs an actor for every user: the
//! bindings made on other nodes are merged in ([`RemoteBindings`]), and the user's
//! hook state on other nodes ([`RemoteHook`]) counts for the status shown here and for
//! the busy decision. The actor announces its own part (its calls only) to the other
//! nodes and shows the combined state here.

use crate::events::{DeviceEvent, Event, EventBus, StatusEvent};
use crate::feature::{decide, CallContext, Caller, ContactMatch, Decision, Plan, Presence, Target};
use crate::ids::{CallId, DeviceId, TenantId, UserId};
use crate::model::Binding;
use crate::ports::{Clock, FeatureSource, Persistence, UserFeatures};
use actix::prelude::*;
use chrono::Duration;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tracing::warn;

pub use crate::events::UserStatus;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallPhase {
    Ringing,
    Active,
}

/// What watchers see of a user: set presence, hook state, whether a phone is
/// registered, and do not disturb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Shown {
    presence: Presence,
    hook: UserStatus,
    registered: bool,
    dnd: bool,
}

pub struct UserActor {
    tenant: TenantId,
    user: UserId,
    bindings: Vec<Binding>,
    calls: HashMap<CallId, CallPhase>,
    persistence: Arc<dyn Persistence>,
    clock: Arc<dyn Clock>,
    features_source: Arc<dyn FeatureSource>,
    features: UserFeatures,
    /// Caller number (E.164) → contact; personal contacts shadow tenant-shared ones.
    contacts: HashMap<String, ContactMatch>,
    /// Where device and status changes are published (None in unit tests of logic).
    bus: Option<EventBus>,
    /// The status last published here (combined with other nodes), so only changes go out.
    published: Option<Shown>,
    /// The status (this node's calls only) last announced to other nodes.
    announced: Option<Shown>,
    /// The user's hook state on the other nodes (the highest of them).
    remote_hook: UserStatus,
    /// Wakes the actor when the next binding expires (to publish the device's change).
    expiry_timer: Option<SpawnHandle>,
}

/// How long loading a user's features may take before calls proceed on what is known.
const LOAD_BUDGET: StdDuration = StdDuration::from_secs(2);

impl UserActor {
    pub fn new(
        tenant: TenantId,
        user: UserId,
        restored: Vec<Binding>,
        persistence: Arc<dyn Persistence>,
        clock: Arc<dyn Clock>,
        features_source: Arc<dyn FeatureSource>,
    ) -> Self {
        Self {
            tenant,
            user,
            bindings: restored,
            calls: HashMap::new(),
            persistence,
            clock,
            features_source,
            features: UserFeatures::default(),
            contacts: HashMap::new(),
            bus: None,
            published: None,
            announced: None,
            remote_hook: UserStatus::Idle,
            expiry_timer: None,
        }
    }

    /// Publishes device registration and status changes on `bus`.
    pub fn with_bus(mut self, bus: EventBus) -> Self {
        self.bus = Some(bus);
        self
    }

    fn contacts_of(&self, device: DeviceId) -> usize {
        self.bindings
            .iter()
            .filter(|b| b.device_id == device)
            .count()
    }

    fn publish_device(&self, device: DeviceId) {
        if let Some(bus) = &self.bus {
            bus.publish(Event::Device(DeviceEvent {
                tenant: self.tenant,
                user: self.user,
                device,
                contacts: self.contacts_of(device),
                at: self.clock.now(),
            }));
        }
    }

    /// Publishes the status when it changed: the combined one for the consumers here,
    /// this node's own part for the other nodes (one event when they are the same,
    /// as on a single node).
    fn publish_status(&mut self) {
        // Registrations are merged from every node, the profile is the same on all.
        let (registered, dnd) = (!self.bindings.is_empty(), self.features.profile.dnd.enabled);
        let shown = Shown {
            presence: self.features.presence,
            hook: self.status(),
            registered,
            dnd,
        };
        let own = Shown {
            hook: self.local_status(),
            ..shown
        };
        let (show, tell) = (self.published != Some(shown), self.announced != Some(own));
        self.published = Some(shown);
        self.announced = Some(own);
        let Some(bus) = &self.bus else {
            return;
        };
        let at = self.clock.now();
        let event = |s: Shown| {
            Event::Status(StatusEvent {
                tenant: self.tenant,
                user: self.user,
                presence: s.presence,
                hook: s.hook,
                registered: s.registered,
                dnd: s.dnd,
                at,
            })
        };
        if show && tell && shown == own {
            bus.publish(event(shown));
            return;
        }
        if show {
            bus.publish_here(event(shown));
        }
        if tell {
            bus.announce(event(own));
        }
    }

    /// Drops expired bindings, publishing each device that lost contacts, and wakes
    /// the actor again at the next expiry.
    fn expire(&mut self, ctx: &mut Context<Self>) {
        let before = self.bindings.clone();
        self.prune_expired();
        self.publish_changed_devices(&before);
        self.arm_expiry(ctx);
    }

    /// Publishes every device whose contacts differ from `before` (a refresh of the
    /// same contacts is not a change), and the status if the user's reachability moved.
    fn publish_changed_devices(&mut self, before: &[Binding]) {
        let contacts = |bs: &[Binding], d: DeviceId| {
            bs.iter()
                .filter(|b| b.device_id == d)
                .map(|b| b.contact.clone())
                .collect::<Vec<_>>()
        };
        let mut devices: Vec<DeviceId> = before
            .iter()
            .chain(self.bindings.iter())
            .map(|b| b.device_id)
            .collect();
        devices.sort();
        devices.dedup();
        for d in devices {
            if contacts(before, d) != contacts(&self.bindings, d) {
                self.publish_device(d);
            }
        }
        self.publish_status();
    }

    fn arm_expiry(&mut self, ctx: &mut Context<Self>) {
        if let Some(t) = self.expiry_timer.take() {
            ctx.cancel_future(t);
        }
        if self.bus.is_none() {
            return;
        }
        let now = self.clock.now();
        if let Some(next) = self.bindings.iter().map(|b| b.expires_at).min() {
            let wait = (next - now).to_std().unwrap_or_default() + StdDuration::from_millis(50);
            self.expiry_timer = Some(ctx.run_later(wait, |act, ctx| act.expire(ctx)));
        }
    }

    /// Loads profile, presence and contacts, with a time budget; until it lands (or if
    /// it fails) calls are decided on what is already known. The first load holds the
    /// mailbox (at most the budget), so the first call sees the stored profile.
    fn reload(&mut self, ctx: &mut Context<Self>, first: bool) {
        let fut = self.features_source.load(self.tenant, self.user);
        let user = self.user;
        let work =
            tokio::time::timeout(LOAD_BUDGET, fut)
                .into_actor(self)
                .map(move |res, act, ctx| match res {
                    Ok(Ok(f)) => act.set_features(f),
                    Ok(Err(e)) => {
                        warn!(%user, error = %e, "cannot load user features; retrying");
                        ctx.run_later(StdDuration::from_secs(5), |act, ctx| act.reload(ctx, false));
                    }
                    Err(_) => {
                        warn!(%user, "loading user features took too long; retrying");
                        ctx.run_later(StdDuration::from_secs(5), |act, ctx| act.reload(ctx, false));
                    }
                });
        if first {
            ctx.wait(work);
        } else {
            ctx.spawn(work);
        }
    }

    fn set_features(&mut self, f: UserFeatures) {
        let mut contacts = HashMap::with_capacity(f.contacts.len());
        // Shared first, so that personal entries overwrite them.
        for c in f
            .contacts
            .iter()
            .filter(|c| c.shared)
            .chain(f.contacts.iter().filter(|c| !c.shared))
        {
            contacts.insert(
                c.number.clone(),
                ContactMatch {
                    name: c.name.clone(),
                    handling_code: c.handling_code.clone(),
                    shared: c.shared,
                },
            );
        }
        self.contacts = contacts;
        self.features = f;
        self.publish_status();
    }

    fn lookup(&self, number: &str) -> Option<&ContactMatch> {
        self.contacts.get(number).or_else(|| {
            if number.starts_with('+') {
                None
            } else {
                self.contacts.get(&format!("+{number}"))
            }
        })
    }

    fn prune_expired(&mut self) {
        let now = self.clock.now();
        self.bindings.retain(|b| b.expires_at > now);
    }

    /// The hook state over every node.
    fn status(&self) -> UserStatus {
        self.local_status().max(self.remote_hook)
    }

    /// The hook state from this node's calls.
    fn local_status(&self) -> UserStatus {
        if self.calls.values().any(|p| *p == CallPhase::Active) {
            UserStatus::Busy
        } else if self.calls.is_empty() {
            UserStatus::Idle
        } else {
            UserStatus::Ringing
        }
    }
}

impl Actor for UserActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Bounded mailbox: a flood of REGISTERs for one user waits at the sender.
        ctx.set_mailbox_capacity(256);
        self.reload(ctx, true);
        self.arm_expiry(ctx);
    }
}

/// One contact in a REGISTER: `expires == 0` removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    pub contact: String,
    pub received: String,
    pub expires: u32,
}

/// A REGISTER already authenticated for `device` (RFC 3261 §10.3 steps 6–8).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<(Binding, u32)>, RegisterError>")]
pub struct Register {
    pub device: DeviceId,
    pub call_id: String,
    pub cseq: u32,
    pub update: RegisterUpdate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterUpdate {
    /// Query only (no Contact header): returns the current bindings.
    Query,
    /// `Contact: *` with `Expires: 0`: remove every binding of the device.
    RemoveAll,
    Contacts(Vec<ContactUpdate>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// Same Call-ID with a CSeq not higher than the stored one (§10.3 step 7).
    #[error("register out of order: cseq {cseq} is not above {stored}")]
    OutOfOrder { cseq: u32, stored: u32 },
}

impl Handler<Register> for UserActor {
    type Result = Result<Vec<(Binding, u32)>, RegisterError>;

    fn handle(&mut self, msg: Register, ctx: &mut Self::Context) -> Self::Result {
        let before = (self.bus.is_some()).then(|| self.bindings.clone());
        self.prune_expired();
        let now = self.clock.now();
        match msg.update {
            RegisterUpdate::Query => {}
            RegisterUpdate::RemoveAll => {
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.bindings)
                    .into_iter()
                    .partition(|b| b.device_id == msg.device);
                self.bindings = kept;
                for b in &gone {
                    self.persistence.binding_removed(self.tenant, self.user, b);
                }
            }
            RegisterUpdate::Contacts(updates) => {
                for u in &updates {
                    if let Some(existing) = self
                        .bindings
                        .iter()
                        .find(|b| b.device_id == msg.device && b.contact == u.contact)
                    {
                        if existing.call_id == msg.call_id && msg.cseq <= existing.cseq {
                            return Err(RegisterError::OutOfOrder {
                                cseq: msg.cseq,
                                stored: existing.cseq,
                            });
                        }
                    }
                }
                for u in updates {
                    let pos = self
                        .bindings
                        .iter()
                        .position(|b| b.device_id == msg.device && b.contact == u.contact);
                    if u.expires == 0 {
                        if let Some(i) = pos {
                            let b = self.bindings.remove(i);
                            self.persistence.binding_removed(self.tenant, self.user, &b);
                        }
                        continue;
                    }
                    let binding = Binding {
                        tenant_id: self.tenant,
                        user_id: self.user,
                        device_id: msg.device,
                        contact: u.contact,
                        received: u.received,
                        expires_at: now + Duration::seconds(u.expires as i64),
                        call_id: msg.call_id.clone(),
                        cseq: msg.cseq,
                    };
                    self.persistence.binding_saved(&binding);
                    match pos {
                        Some(i) => self.bindings[i] = binding,
                        None => self.bindings.push(binding),
                    }
                }
            }
        }
        if let Some(before) = before {
            self.publish_changed_devices(&before);
            self.arm_expiry(ctx);
        }
        Ok(self
            .bindings
            .iter()
            .map(|b| {
                let left = (b.expires_at - now).num_seconds().max(0) as u32;
                (b.clone(), left)
            })
            .collect())
    }
}

/// A call offered to this user: the feature server decides (pure, on the actor's own
/// state) and the answer carries the plan and the devices to ring.
#[derive(Debug, Message)]
#[rtype(result = "Offer")]
pub struct OfferCall {
    pub call: CallId,
    pub caller: Caller,
    /// Now in the tenant's time zone (schedules are local).
    pub local_time: NaiveDateTime,
}

#[derive(Clone, Debug)]
pub struct Offer {
    pub decision: Decision,
    pub bindings: Vec<Binding>,
    pub contact: Option<ContactMatch>,
    /// Where "send to the attendant" goes for this user (per-call override).
    pub attendant: Option<Target>,
}

impl Handler<OfferCall> for UserActor {
    type Result = MessageResult<OfferCall>;

    fn handle(&mut self, msg: OfferCall, _: &mut Self::Context) -> Self::Result {
        self.prune_expired();
        // A call answered on another node counts; one ringing there does not, as here.
        let on_call = self.calls.values().any(|p| *p == CallPhase::Active)
            || self.remote_hook == UserStatus::Busy;
        let contact = msg
            .caller
            .number
            .as_deref()
            .and_then(|n| self.lookup(n))
            .cloned();
        let decision = decide(
            &self.features.profile,
            &CallContext {
                caller: &msg.caller,
                contact: contact.as_ref(),
                presence: self.features.presence,
                on_call,
                registered_devices: self.bindings.len(),
                local_time: msg.local_time,
            },
        );
        let rings_here = matches!(&decision.plan, Plan::Ring { steps, .. }
            if steps.iter().any(|s| s.targets.contains(&Target::Devices)));
        if rings_here {
            self.calls.entry(msg.call).or_insert(CallPhase::Ringing);
            self.publish_status();
        }
        MessageResult(Offer {
            decision,
            bindings: self.bindings.clone(),
            contact,
            attendant: self.features.profile.attendant.clone(),
        })
    }
}

/// The user's current contacts (to ring them as a target of another user's call).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Binding>")]
pub struct GetBindings;

impl Handler<GetBindings> for UserActor {
    type Result = MessageResult<GetBindings>;

    fn handle(&mut self, _: GetBindings, _: &mut Self::Context) -> Self::Result {
        self.prune_expired();
        MessageResult(self.bindings.clone())
    }
}

/// The user's profile, presence or contacts changed in the store: load them again.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ReloadFeatures;

impl Handler<ReloadFeatures> for UserActor {
    type Result = ();
    fn handle(&mut self, _: ReloadFeatures, ctx: &mut Self::Context) {
        self.reload(ctx, false);
    }
}

/// A call this user takes part in (as caller or callee) changed phase; `None` = ended.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CallPhaseChanged {
    pub call: CallId,
    pub phase: Option<CallPhase>,
}

impl Handler<CallPhaseChanged> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: CallPhaseChanged, _: &mut Self::Context) {
        match msg.phase {
            Some(p) => {
                self.calls.insert(msg.call, p);
            }
            None => {
                self.calls.remove(&msg.call);
            }
        }
        self.publish_status();
    }
}

/// A registration change made on another node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "binding", rename_all = "snake_case")]
pub enum BindingChange {
    Saved(Binding),
    Removed(Binding),
}

/// Applies one change from another node to `bindings`; true when they changed.
/// Bindings are keyed by device and contact. Of two versions from one REGISTER dialog
/// (same Call-ID) the higher CSeq wins, so a late copy never undoes a newer
/// registration; across dialogs the last one to arrive wins.
pub fn apply_binding_change(
    bindings: &mut Vec<Binding>,
    change: &BindingChange,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    let (BindingChange::Saved(b) | BindingChange::Removed(b)) = change;
    let pos = bindings
        .iter()
        .position(|x| x.device_id == b.device_id && x.contact == b.contact);
    let older = |x: &Binding| x.call_id != b.call_id || x.cseq <= b.cseq;
    match (change, pos) {
        (BindingChange::Saved(_), _) if b.expires_at <= now => false,
        (BindingChange::Saved(_), None) => {
            bindings.push(b.clone());
            true
        }
        (BindingChange::Saved(_), Some(i)) => {
            if bindings[i] == *b || !older(&bindings[i]) {
                return false;
            }
            bindings[i] = b.clone();
            true
        }
        (BindingChange::Removed(_), Some(i)) if older(&bindings[i]) => {
            bindings.remove(i);
            true
        }
        (BindingChange::Removed(_), _) => false,
    }
}

/// Registration changes made on other nodes (through the cluster bridge). Not
/// persisted here: the node that took the REGISTER did that.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteBindings {
    pub changes: Vec<BindingChange>,
}

impl Handler<RemoteBindings> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteBindings, ctx: &mut Self::Context) {
        self.prune_expired();
        let before = self.bindings.clone();
        let now = self.clock.now();
        let mut changed = false;
        for c in &msg.changes {
            changed |= apply_binding_change(&mut self.bindings, c, now);
        }
        if changed {
            self.publish_changed_devices(&before);
            self.arm_expiry(ctx);
        }
    }
}

/// The user's hook state on the other nodes: the highest of them (the cluster bridge
/// keeps one per node and forgets a node that falls silent).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteHook {
    pub hook: UserStatus,
}

impl Handler<RemoteHook> for UserActor {
    type Result = ();

    fn handle(&mut self, msg: RemoteHook, _: &mut Self::Context) {
        self.remote_hook = msg.hook;
        self.publish_status();
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UserSnapshot {
    pub user: UserId,
    pub status: UserStatus,
    /// What the user set (available, away, ...).
    pub presence: Presence,
    pub bindings: Vec<Binding>,
    pub calls: Vec<CallId>,
    /// Who takes calls sent to the user's attendant (from the loaded profile).
    pub attendant: Option<Target>,
    /// Do not disturb is on in the loaded profile.
    pub dnd: bool,
}

/// Observable state, for tests and admin pages.
#[derive(Debug, Message)]
#[rtype(result = "UserSnapshot")]
pub struct GetUserSnapshot;

impl Handler<GetUserSnapshot> for UserActor {
    type Result = MessageResult<GetUserSnapshot>;

    fn handle(&mut self, _: GetUserSnapshot, _: &mut Self::Context) -> Self::Result {
        self.prune_expired();
        MessageResult(UserSnapshot {
            user: self.user,
            status: self.status(),
            presence: self.features.presence,
            bindings: self.bindings.clone(),
            calls: self.calls.keys().copied().collect(),
            attendant: self.features.profile.attendant.clone(),
            dnd: self.features.profile.dnd.enabled,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::NoPersistence;
    use chrono::{DateTime, Utc};
    use std::sync::Mutex;

    struct FixedClock(Mutex<DateTime<Utc>>);
    impl Clock for FixedClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().unwrap()
        }
    }

    fn contact(c: &str, expires: u32) -> ContactUpdate {
        ContactUpdate {
            contact: c.into(),
            received: "udp:127.0.0.1:5062".into(),
            expires,
        }
    }

    #[actix::test]
    async fn bindings_add_refresh_expire_and_remove() {
        let clock = Arc::new(FixedClock(Mutex::new(Utc::now())));
        let user = UserActor::new(
            TenantId::for_test(1),
            UserId::for_test(1),
            vec![],
            Arc::new(NoPersistence),
            clock.clone(),
            Arc::new(crate::ports::DefaultFeatures),
        )
        .start();
        let dev = DeviceId::for_test(1);
        let reg = |cseq, update| Register {
            device: dev,
            call_id: "c1".into(),
            cseq,
            update,
        };
        let r = user
            .send(reg(
                1,
                RegisterUpdate::Contacts(vec![contact("sip:a@h:1", 60), contact("sip:b@h:2", 120)]),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 2);
        // Out of order CSeq on the same Call-ID is refused.
        let e = user
            .send(reg(
                1,
                RegisterUpdate::Contacts(vec![contact("sip:a@h:1", 60)]),
            ))
            .await
            .unwrap();
        assert_eq!(e, Err(RegisterError::OutOfOrder { cseq: 1, stored: 1 }));
        // Time passes: the 60 s contact expires, the 120 s one stays.
        *clock.0.lock().unwrap() += Duration::seconds(61);
        let r = user
            .send(reg(2, RegisterUpdate::Query))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0.contact, "sip:b@h:2");
        assert_eq!(r[0].1, 59);
        let r = user
            .send(reg(3, RegisterUpdate::RemoveAll))
            .await
            .unwrap()
            .unwrap();
        assert!(r.is_empty());
        let offered = user
            .send(OfferCall {
                call: CallId::for_test(1),
                caller: Caller::default(),
                local_time: Utc::now().naive_utc(),
            })
            .await
            .unwrap();
        assert!(offered.bindings.is_empty());
        assert_eq!(offered.decision.plan, Plan::Reject { code: 480 });
        let snap = user.send(GetUserSnapshot).await.unwrap();
        assert_eq!(snap.status, UserStatus::Idle);
    }

    fn binding(contact: &str, call_id: &str, cseq: u32, expires_at: DateTime<Utc>) -> Binding {
        Binding {
            tenant_id: TenantId::for_test(1),
            user_id: UserId::for_test(1),
            device_id: DeviceId::for_test(1),
            contact: contact.into(),
            received: "udp:127.0.0.1:5062".into(),
            expires_at,
            call_id: call_id.into(),
            cseq,
        }
    }

    #[test]
    fn remote_binding_changes_keep_the_newest_version() {
        let now = Utc::now();
        let later = now + Duration::seconds(60);
        let mut bs = Vec::new();
        let saved = |c, id, cseq| BindingChange::Saved(binding(c, id, cseq, later));
        let removed = |c, id, cseq| BindingChange::Removed(binding(c, id, cseq, later));
        assert!(apply_binding_change(&mut bs, &saved("sip:a", "c1", 2), now));
        // The same again is no change; an older CSeq of the same dialog is ignored.
        assert!(!apply_binding_change(
            &mut bs,
            &saved("sip:a", "c1", 2),
            now
        ));
        assert!(!apply_binding_change(
            &mut bs,
            &saved("sip:a", "c1", 1),
            now
        ));
        assert!(!apply_binding_change(
            &mut bs,
            &removed("sip:a", "c1", 1),
            now
        ));
        assert_eq!(bs[0].cseq, 2);
        // A newer CSeq refreshes; another dialog (the phone restarted) replaces.
        assert!(apply_binding_change(&mut bs, &saved("sip:a", "c1", 3), now));
        assert!(apply_binding_change(&mut bs, &saved("sip:a", "c2", 1), now));
        assert_eq!((bs.len(), bs[0].call_id.as_str()), (1, "c2"));
        // An expired copy is not taken; another contact is added beside.
        let stale = BindingChange::Saved(binding("sip:b", "c3", 1, now));
        assert!(!apply_binding_change(&mut bs, &stale, now));
        assert!(apply_binding_change(&mut bs, &saved("sip:b", "c3", 1), now));
        assert_eq!(bs.len(), 2);
        // Removal of an unknown contact changes nothing; of a known one removes it.
        assert!(!apply_binding_change(
            &mut bs,
            &removed("sip:x", "c3", 1),
            now
        ));
        assert!(apply_binding_change(
            &mut bs,
            &removed("sip:a", "c2", 2),
            now
        ));
        assert_eq!(bs.len(), 1);
        assert_eq!(bs[0].contact, "sip:b");
    }

    fn start_user(bus: &EventBus) -> Addr<UserActor> {
        UserActor::new(
            TenantId::for_test(1),
            UserId::for_test(1),
            vec![],
            Arc::new(NoPersistence),
            Arc::new(crate::ports::SystemClock),
            Arc::new(crate::ports::DefaultFeatures),
        )
        .with_bus(bus.clone())
        .start()
    }

    fn hooks(rx: &mut tokio::sync::broadcast::Receiver<Arc<Event>>) -> Vec<UserStatus> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            if let Event::Status(s) = &*e {
                v.push(s.hook);
            }
        }
        v
    }

    #[actix::test]
    async fn bindings_from_another_node_are_rung_here() {
        let bus = EventBus::new(64);
        let user = start_user(&bus);
        let mut here = bus.subscribe();
        let b = binding(
            "sip:1001@127.0.0.1:5070",
            "r1",
            1,
            Utc::now() + Duration::seconds(60),
        );
        user.send(RemoteBindings {
            changes: vec![BindingChange::Saved(b.clone())],
        })
        .await
        .unwrap();
        let offered = user
            .send(OfferCall {
                call: CallId::for_test(1),
                caller: Caller::default(),
                local_time: Utc::now().naive_utc(),
            })
            .await
            .unwrap();
        assert_eq!(offered.bindings, vec![b.clone()]);
        // The device's registration shows here like a local one.
        let devices: Vec<usize> = std::iter::from_fn(|| here.try_recv().ok())
            .filter_map(|e| match &*e {
                Event::Device(d) => Some(d.contacts),
                _ => None,
            })
            .collect();
        assert_eq!(devices, [1]);
        user.send(RemoteBindings {
            changes: vec![BindingChange::Removed(b)],
        })
        .await
        .unwrap();
        assert!(user.send(GetBindings).await.unwrap().is_empty());
    }

    #[actix::test]
    async fn a_call_on_another_node_makes_the_user_busy_here() {
        let bus = EventBus::new(64);
        let user = start_user(&bus);
        let mut here = bus.subscribe();
        let mut out = bus.subscribe_outbound();
        user.send(GetUserSnapshot).await.unwrap(); // features loaded, status published
        assert_eq!(hooks(&mut here), [UserStatus::Idle]);
        assert_eq!(hooks(&mut out), [UserStatus::Idle]);
        user.send(RemoteHook {
            hook: UserStatus::Busy,
        })
        .await
        .unwrap();
        let snap = user.send(GetUserSnapshot).await.unwrap();
        assert_eq!(snap.status, UserStatus::Busy);
        // Shown here, not echoed to the other nodes.
        assert_eq!(hooks(&mut here), [UserStatus::Busy]);
        assert_eq!(hooks(&mut out), []);
        // Call waiting is on by default: the call rings here, and the decision knows
        // the user is on a call (presence shows busy).
        let offered = user
            .send(OfferCall {
                call: CallId::for_test(7),
                caller: Caller::default(),
                local_time: Utc::now().naive_utc(),
            })
            .await
            .unwrap();
        assert!(
            offered
                .decision
                .reasons
                .iter()
                .all(|r| !r.contains("call waiting")),
            "{:?}",
            offered.decision
        );
        // This node's own ringing call is announced as ringing; the combined state
        // stays busy here.
        assert_eq!(hooks(&mut out), []);
        user.send(CallPhaseChanged {
            call: CallId::for_test(7),
            phase: Some(CallPhase::Ringing),
        })
        .await
        .unwrap();
        assert_eq!(hooks(&mut out), [UserStatus::Ringing]);
        assert_eq!(hooks(&mut here), []);
        // The other node's call ends: ringing here now, for both.
        user.send(RemoteHook {
            hook: UserStatus::Idle,
        })
        .await
        .unwrap();
        user.send(GetUserSnapshot).await.unwrap();
        assert_eq!(hooks(&mut here), [UserStatus::Ringing]);
        assert_eq!(hooks(&mut out), []);
    }

    struct NoCallWaiting;

    impl FeatureSource for NoCallWaiting {
        fn load(
            &self,
            _: TenantId,
            _: UserId,
        ) -> crate::ports::BoxFuture<Result<UserFeatures, crate::ports::FeatureError>> {
            let mut f = UserFeatures::default();
            f.profile.call_waiting = false;
            Box::pin(async move { Ok(f) })
        }
    }

    #[actix::test]
    async fn call_waiting_off_is_busy_for_a_call_answered_on_another_node() {
        let user = UserActor::new(
            TenantId::for_test(1),
            UserId::for_test(1),
            vec![],
            Arc::new(NoPersistence),
            Arc::new(crate::ports::SystemClock),
            Arc::new(NoCallWaiting),
        )
        .start();
        // Ringing elsewhere is not "on a call" (as for a call ringing here).
        for (hook, busy) in [
            (UserStatus::Ringing, false),
            (UserStatus::Busy, true),
            (UserStatus::Idle, false),
        ] {
            user.send(RemoteHook { hook }).await.unwrap();
            let offered = user
                .send(OfferCall {
                    call: CallId::new(),
                    caller: Caller::default(),
                    local_time: Utc::now().naive_utc(),
                })
                .await
                .unwrap();
            let said_busy = offered
                .decision
                .reasons
                .iter()
                .any(|r| r.contains("call waiting is off"));
            assert_eq!(said_busy, busy, "{hook:?}: {:?}", offered.decision);
        }
    }
}
