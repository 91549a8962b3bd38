//! Snapshots' devices and status, from the directory and the live user actor. The
//! devices are the user's SIP devices, then the user's external phones (mobiles rung
//! through the trunk, always reachable: `registered`).

use super::{DeviceView, StatusView, UserState, UserStateSource};
use crate::store::SharedDirectory;
use std::sync::Arc;
use tsps_actors::feature::Target;
use tsps_actors::platform::Platform;
use tsps_actors::ports::BoxFuture;
use tsps_actors::user::GetUserSnapshot;
use tsps_actors::{DeviceId, TenantId, UserId};

pub struct PlatformSource {
    pub platform: Arc<Platform>,
    pub directory: SharedDirectory,
}

impl UserStateSource for PlatformSource {
    fn user_state(&self, tenant: TenantId, user: UserId) -> BoxFuture<Option<UserState>> {
        let dir = self.directory.get();
        let known = dir.user(user).is_some_and(|u| u.tenant_id == tenant);
        let devices: Vec<(DeviceId, String, bool)> = dir
            .devices_of_user(user)
            .map(|d| (d.id, d.sip_username.clone(), d.remote_answer))
            .collect();
        let phones: Vec<DeviceView> = dir
            .external_phones_of_user(user)
            .map(|p| DeviceView {
                device_id: p.id,
                name: phone_name(p),
                registered: true,
                contacts: 0,
                remote_answer: false,
            })
            .collect();
        let addr = self.platform.registry.user(user);
        Box::pin(async move {
            if !known {
                return None;
            }
            let snap = addr?.send(GetUserSnapshot).await.ok()?;
            let devices = devices
                .into_iter()
                .map(|(id, name, remote_answer)| {
                    let contacts = snap.bindings.iter().filter(|b| b.device_id == id).count();
                    DeviceView {
                        device_id: id,
                        name,
                        registered: contacts > 0,
                        contacts,
                        remote_answer,
                    }
                })
                .chain(phones)
                .collect();
            Some(UserState {
                devices,
                status: StatusView {
                    presence: snap.presence,
                    hook: snap.status,
                    registered: !snap.bindings.is_empty(),
                    dnd: snap.dnd,
                },
            })
        })
    }

    /// From the user actor's loaded profile: a watch list of hundreds of colleagues
    /// (every portal page load) costs actor messages, not database reads.
    fn attendant_of(&self, tenant: TenantId, user: UserId) -> BoxFuture<Option<UserId>> {
        let directory = self.directory.clone();
        let known = directory
            .get()
            .user(user)
            .is_some_and(|u| u.tenant_id == tenant);
        let addr = self.platform.registry.user(user);
        Box::pin(async move {
            if !known {
                return None;
            }
            let snap = addr?.send(GetUserSnapshot).await.ok()?;
            match snap.attendant? {
                Target::Extension(ext) => directory
                    .get()
                    .user_by_extension(tenant, &ext)
                    .map(|u| u.id),
                _ => None,
            }
        })
    }

    fn may_watch(&self, tenant: TenantId, watcher: UserId, watched: UserId) -> bool {
        let dir = self.directory.get();
        dir.user(watcher).is_some_and(|w| w.tenant_id == tenant)
            && tsps_actors::presence::may_watch_ids(&dir, watcher, watched)
    }

    fn device_name(&self, device: DeviceId) -> Option<String> {
        let dir = self.directory.get();
        dir.device(device)
            .map(|d| d.sip_username.clone())
            .or_else(|| dir.external_phone(device).map(phone_name))
    }

    fn remote_answer(&self, device: DeviceId) -> bool {
        self.directory
            .get()
            .device(device)
            .is_some_and(|d| d.remote_answer)
    }
}

/// `Mobile +41791234567`, or the number alone without a label.
fn phone_name(p: &tsps_actors::model::ExternalPhone) -> String {
    format!("{} {}", p.label, p.number).trim().to_string()
}
