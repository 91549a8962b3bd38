//! The user actor: one per user. Owns the user's registrations (bindings), the calls
//! it takes part in, and its status. Lower tier under the tenant actor.

use crate::ids::{CallId, DeviceId, TenantId, UserId};
use crate::model::Binding;
use crate::ports::{Clock, Persistence};
use actix::prelude::*;
use chrono::Duration;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

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
}

impl UserActor {
    pub fn new(
        tenant: TenantId,
        user: UserId,
        restored: Vec<Binding>,
        persistence: Arc<dyn Persistence>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            tenant,
            user,
            bindings: restored,
            calls: HashMap::new(),
            persistence,
            clock,
        }
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

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> Self::Result {
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

/// A call offered to this user: returns the contacts to ring (empty: unreachable).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Binding>")]
pub struct OfferCall {
    pub call: CallId,
}

impl Handler<OfferCall> for UserActor {
    type Result = MessageResult<OfferCall>;

    fn handle(&mut self, msg: OfferCall, _: &mut Self::Context) -> Self::Result {
        self.prune_expired();
        if !self.bindings.is_empty() {
            self.calls.entry(msg.call).or_insert(CallPhase::Ringing);
        }
        MessageResult(self.bindings.clone())
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
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct UserSnapshot {
    pub user: UserId,
    pub status: UserStatus,
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
            })
            .await
            .unwrap();
        assert!(offered.is_empty());
        let snap = user.send(GetUserSnapshot).await.unwrap();
        assert_eq!(snap.status, UserStatus::Idle);
    }
}
