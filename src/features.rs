//! The feature server's edges: user and tenant actors load profiles, presence,
//! contacts and tenant policies from the store, and API writes tell the live actors
//! to load them again.

use crate::notify::ChangeNotifier;
use crate::sip::shard::PlaceCall;
use crate::store::{DynStore, PolicyMode, SharedDirectory, StoreError};
use crate::web::live::{LiveCall, LiveCallError, LiveCalls};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tsps_actors::call::{
    Control, ControlAction, ControlError, DeviceReach, OverrideAction, OverrideError,
};
use tsps_actors::platform::Platform;
use tsps_actors::ports::Clock;
use tsps_actors::ports::PartyInfo;
use tsps_actors::ports::{BoxFuture, FeatureError, FeatureSource, TenantPolicy, UserFeatures};
use tsps_actors::routing::{route_dialled, Route};
use tsps_actors::tenant::CallOrigin;
use tsps_actors::tenant::ReloadPolicies;
use tsps_actors::user::GetBindings;
use tsps_actors::user::ReloadFeatures;
use tsps_actors::CallId;
use tsps_actors::DeviceId;
use tsps_actors::{TenantId, UserId};

pub struct StoreFeatures(pub DynStore);

impl FeatureSource for StoreFeatures {
    fn load(
        &self,
        tenant: TenantId,
        user: UserId,
    ) -> BoxFuture<Result<UserFeatures, FeatureError>> {
        let store = self.0.clone();
        Box::pin(async move {
            let (profile, presence) = store
                .get_profile(tenant, user)
                .await
                .map_err(feature_error)?;
            let contacts = store
                .contact_lookup_table(tenant, user)
                .await
                .map_err(feature_error)?
                .into_iter()
                .map(Into::into)
                .collect();
            Ok(UserFeatures {
                profile,
                presence,
                contacts,
            })
        })
    }

    fn tenant_policies(
        &self,
        tenant: TenantId,
    ) -> BoxFuture<Result<HashMap<UserId, TenantPolicy>, FeatureError>> {
        let store = self.0.clone();
        Box::pin(async move {
            let rows = store
                .list_user_policies(tenant)
                .await
                .map_err(feature_error)?;
            Ok(rows
                .into_iter()
                .filter_map(|(user, p)| {
                    let policy = match p.mode {
                        PolicyMode::Accept => return None,
                        PolicyMode::Reject => TenantPolicy::Reject,
                        PolicyMode::External => TenantPolicy::External(p.external_uri?),
                    };
                    Some((user, policy))
                })
                .collect())
        })
    }
}

/// A store failure as the feature server's port names it: rows that do not decode are
/// unusable, anything else means the store could not be asked.
fn feature_error(e: StoreError) -> FeatureError {
    match e {
        StoreError::Invalid(_) | StoreError::NotFound { .. } => {
            FeatureError::Invalid(e.to_string())
        }
        _ => FeatureError::Unavailable(e.to_string()),
    }
}

/// Tells the live actors that what they loaded changed.
pub struct ActorNotifier {
    pub platform: Arc<Platform>,
    pub directory: SharedDirectory,
}

impl ChangeNotifier for ActorNotifier {
    fn user_changed(&self, tenant: TenantId, user: UserId) {
        if let Some(u) = self.platform.registry.user(user) {
            u.do_send(ReloadFeatures);
        }
        // A policy write concerns the tenant tier too.
        if let Some(t) = self.platform.registry.tenant(tenant) {
            t.do_send(ReloadPolicies);
        }
    }

    fn tenant_changed(&self, tenant: TenantId) {
        if let Some(t) = self.platform.registry.tenant(tenant) {
            t.do_send(ReloadPolicies);
        }
        let dir = self.directory.get();
        for u in dir.users().filter(|u| u.tenant_id == tenant) {
            if let Some(a) = self.platform.registry.user(u.id) {
                a.do_send(ReloadFeatures);
            }
        }
    }
}

/// The wall clock, shifted by an offset that tests may set (`testing.clock_api`).
#[derive(Default)]
pub struct AdjustableClock {
    offset_ms: AtomicI64,
}

impl AdjustableClock {
    pub fn set(&self, now: DateTime<Utc>) {
        let offset = (now - Utc::now()).num_milliseconds();
        self.offset_ms.store(offset, Ordering::Relaxed);
    }
}

impl Clock for AdjustableClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }
}

/// Live calls on the running platform.
pub struct PlatformCalls {
    pub platform: Arc<Platform>,
    /// Present only when the test clock is enabled.
    pub clock: Option<Arc<AdjustableClock>>,
    /// The SIP shards that start calls tsps places itself (click-to-dial).
    pub dialers: Vec<Recipient<PlaceCall>>,
}

impl LiveCalls for PlatformCalls {
    fn list(&self, tenant: TenantId) -> Vec<LiveCall> {
        self.platform
            .registry
            .calls_of(tenant)
            .into_iter()
            .map(|c| LiveCall {
                id: c.call,
                caller: c.caller,
                dialled: c.dialled,
                started_at: c.started_at,
            })
            .collect()
    }

    fn override_call(
        &self,
        tenant: TenantId,
        call: CallId,
        action: OverrideAction,
    ) -> BoxFuture<Result<(), LiveCallError>> {
        let addr = self.platform.registry.call(tenant, call);
        Box::pin(async move {
            let addr = addr.ok_or(LiveCallError::NotFound)?;
            match addr.send(tsps_actors::call::Override(action)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(OverrideError::NotRinging)) => Err(LiveCallError::NotRinging),
                Ok(Err(OverrideError::UnknownDevice)) => Err(LiveCallError::UnknownDevice),
                Ok(Err(OverrideError::NoAttendant)) => Err(LiveCallError::NoAttendant),
                // The call ended meanwhile.
                Err(_) => Err(LiveCallError::NotFound),
            }
        })
    }

    fn place_call(
        &self,
        tenant: TenantId,
        user: UserId,
        device: DeviceId,
        destination: String,
    ) -> BoxFuture<Result<CallId, ControlError>> {
        let dir = self.platform.services.directory.current();
        let checked = (|| {
            let u = dir
                .user(user)
                .filter(|u| u.tenant_id == tenant)
                .ok_or(ControlError::NotFound)?;
            let t = dir.tenant(tenant).ok_or(ControlError::NotFound)?;
            // A SIP device of the user, or one of the user's external phones.
            let phone = dir
                .external_phone(device)
                .filter(|p| p.user_id == user)
                .map(|p| p.number.clone());
            if phone.is_none() && dir.device(device).is_none_or(|d| d.user_id != user) {
                return Err(ControlError::UnknownDevice);
            }
            if phone.is_some() && dir.trunks_of_tenant(tenant).next().is_none() {
                return Err(ControlError::WrongState(
                    "the tenant has no trunk to reach the external phone",
                ));
            }
            ControlError::check_dialled(&destination)?;
            match route_dialled(&dir, tenant, &destination) {
                Route::User(_) | Route::Outside { .. } => {}
                Route::NotFound => return Err(ControlError::bad_target(&destination)),
                Route::NoTrunk => return Err(ControlError::NoTrunk),
            }
            let caller = PartyInfo {
                user: u.extension.clone(),
                display_name: Some(u.display_name.clone()),
                domain: t.domain.clone(),
            };
            let addr = self
                .platform
                .registry
                .user(user)
                .ok_or(ControlError::NotFound)?;
            Ok((caller, addr, phone))
        })();
        let call = CallId::new();
        // Spread over the shards; the call's legs all live on the chosen one.
        let dialer = match self.dialers.len() {
            0 => None,
            n => Some(self.dialers[call.as_uuid().as_u128() as usize % n].clone()),
        };
        Box::pin(async move {
            let (caller, addr, phone) = checked?;
            let dialer = dialer.ok_or(ControlError::WrongState("sip is not running"))?;
            let reach = match phone {
                Some(number) => DeviceReach::Number(number),
                None => {
                    let bindings: Vec<_> = addr
                        .send(GetBindings)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|b| b.device_id == device)
                        .collect();
                    if bindings.is_empty() {
                        return Err(ControlError::WrongState("the device is not registered"));
                    }
                    DeviceReach::Contacts(bindings)
                }
            };
            dialer
                .send(PlaceCall {
                    call,
                    tenant,
                    origin: CallOrigin::User {
                        user,
                        dialled: destination.clone(),
                    },
                    caller,
                    dialled: destination,
                    device,
                    reach,
                })
                .await
                .map_err(|_| ControlError::WrongState("sip is not running"))?;
            Ok(call)
        })
    }

    fn control(
        &self,
        tenant: TenantId,
        user: UserId,
        call: CallId,
        action: ControlAction,
    ) -> BoxFuture<Result<(), ControlError>> {
        let member = self
            .platform
            .services
            .directory
            .current()
            .user(user)
            .is_some_and(|u| u.tenant_id == tenant);
        // Tenants are walls: another tenant's call is not found.
        let addr = self.platform.registry.call(tenant, call).filter(|_| member);
        Box::pin(async move {
            let addr = addr.ok_or(ControlError::NotFound)?;
            // A call that ended meanwhile is not found either.
            addr.send(Control { user, action })
                .await
                .unwrap_or(Err(ControlError::NotFound))
        })
    }

    fn send_message(&self, msg: tsps_actors::presence::message::MessageEvent) -> bool {
        tsps_actors::presence::message::send(&self.platform.services.bus, msg);
        true
    }

    fn set_clock(&self, now: DateTime<Utc>) -> bool {
        match &self.clock {
            Some(c) => {
                c.set(now);
                true
            }
            None => false,
        }
    }
}
