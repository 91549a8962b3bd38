//! The user actor: one per user. Owns the user's registrations (bindings), the calls
//! it takes part in, and its status. Lower tier under the tenant actor.

use crate::events::{DeviceEvent, Event, EventBus, StatusEvent};
use crate::feature::{decide, CallContext, Caller, ContactMatch, Decision, Plan, Presence, Target};
use crate::ids::{CallId, DeviceId, TenantId, UserId};
use crate::model::Binding;
use crate::ports::{Clock, FeatureSource, Persistence, UserFeatures};
use actix::prelude::*;
use chrono::Duration;
use chrono::NaiveDateTime;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;
use tracing::warn;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Idle,
    Ringing,
    Busy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallPhase {
    Ringing,
    Active,
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
    /// The status last published, so only changes go out.
    published: Option<(Presence, UserStatus)>,
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

    fn publish_status(&mut self) {
        let now = (self.features.presence, self.status());
        if self.published == Some(now) {
            return;
        }
        self.published = Some(now);
        if let Some(bus) = &self.bus {
            bus.publish(Event::Status(StatusEvent {
                tenant: self.tenant,
                user: self.user,
                presence: now.0,
                hook: now.1,
                at: self.clock.now(),
            }));
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
    /// same contacts is not a change).
    fn publish_changed_devices(&self, before: &[Binding]) {
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

    fn status(&self) -> UserStatus {
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
        let on_call = self.calls.values().any(|p| *p == CallPhase::Active);
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

#[derive(Clone, Debug, Serialize)]
pub struct UserSnapshot {
    pub user: UserId,
    pub status: UserStatus,
    /// What the user set (available, away, ...).
    pub presence: Presence,
    pub bindings: Vec<Binding>,
    pub calls: Vec<CallId>,
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
}
