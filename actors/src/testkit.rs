//! Test support: a platform on the current Arbiter, a scripted SIP side that records
//! leg commands, and a persistence port that keeps call records in memory.

use crate::directory::Directory;
use crate::events::EventBus;
use crate::ids::{DeviceId, TenantId, UserId};
use crate::model::{Binding, CallRecord, Tenant, User};
use crate::platform::{Platform, PlatformConfig};
use crate::ports::{LegCommand, Persistence, SystemClock};
use crate::tenant::DirectorySource;
use actix::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct FixedDirectory(pub Arc<Directory>);

impl DirectorySource for FixedDirectory {
    fn current(&self) -> Arc<Directory> {
        self.0.clone()
    }
}

#[derive(Default)]
pub struct MemoryPersistence {
    pub records: Mutex<Vec<CallRecord>>,
    pub saved: Mutex<Vec<Binding>>,
}

impl Persistence for MemoryPersistence {
    fn binding_saved(&self, b: &Binding) {
        self.saved.lock().unwrap().push(b.clone());
    }
    fn binding_removed(&self, _: TenantId, _: UserId, _: &Binding) {}
    fn call_ended(&self, record: CallRecord) {
        self.records.lock().unwrap().push(record);
    }
}

/// Stands in for the SIP layer: every command is forwarded to the test.
pub struct FakeSip(pub mpsc::UnboundedSender<LegCommand>);

impl Actor for FakeSip {
    type Context = Context<Self>;
}

impl Handler<LegCommand> for FakeSip {
    type Result = ();
    fn handle(&mut self, cmd: LegCommand, _: &mut Context<Self>) {
        let _ = self.0.send(cmd);
    }
}

pub const TENANT: TenantId = TenantId(uuid::Uuid::from_u128(1));
pub const ALICE: UserId = UserId(uuid::Uuid::from_u128(1001));
pub const BOB: UserId = UserId(uuid::Uuid::from_u128(1002));
pub const CAROL: UserId = UserId(uuid::Uuid::from_u128(1003));

/// Per-user features for tests; users not listed get the default profile.
#[derive(Default)]
pub struct MapFeatures(pub std::collections::HashMap<UserId, crate::ports::UserFeatures>);

impl crate::ports::FeatureSource for MapFeatures {
    fn load(
        &self,
        _: TenantId,
        user: UserId,
    ) -> crate::ports::BoxFuture<Result<crate::ports::UserFeatures, crate::ports::FeatureError>>
    {
        let f = self.0.get(&user).cloned().unwrap_or_default();
        Box::pin(async move { Ok(f) })
    }
}

/// Tenant `a.test` with 1001 Alice and 1002 Bob; Bob has `bob_contacts` registered.
pub fn platform(bob_contacts: &[&str]) -> (Arc<Platform>, Arc<MemoryPersistence>, EventBus) {
    let bindings = bob_contacts.iter().map(|c| (BOB, *c)).collect::<Vec<_>>();
    platform_with(MapFeatures::default(), &bindings)
}

/// Tenant `a.test` with 1001 Alice, 1002 Bob and 1003 Carol, these features and these
/// registered contacts (user, contact URI; each contact its own device).
pub fn platform_with(
    features: MapFeatures,
    bindings: &[(UserId, &str)],
) -> (Arc<Platform>, Arc<MemoryPersistence>, EventBus) {
    platform_with_extras(features, bindings, Extras::default())
}

/// More of the directory than the three users: device records (the registered
/// contacts' devices are `DeviceId::for_test(1..)` in their order), trunks and
/// external phones.
#[derive(Default)]
pub struct Extras {
    pub devices: Vec<crate::model::Device>,
    pub trunks: Vec<crate::model::Trunk>,
    pub phones: Vec<crate::model::ExternalPhone>,
    /// The conference bridges (none: [`crate::ports::NoMedia`]).
    pub media: Option<Arc<dyn crate::ports::Media>>,
}

/// As [`platform_with`], with `extras` in the directory.
pub fn platform_with_extras(
    features: MapFeatures,
    bindings: &[(UserId, &str)],
    extras: Extras,
) -> (Arc<Platform>, Arc<MemoryPersistence>, EventBus) {
    let dir = directory(Extras {
        devices: extras.devices,
        trunks: extras.trunks,
        phones: extras.phones,
        media: None,
    });
    let persistence = Arc::new(MemoryPersistence::default());
    let bus = EventBus::new(256);
    let platform = Platform::new(
        vec![Arbiter::current()],
        Arc::new(FixedDirectory(dir.clone())),
        persistence.clone(),
        Arc::new(SystemClock),
        Arc::new(features),
        bus.clone(),
        PlatformConfig {
            ring_timeout: Duration::from_secs(60),
            upstream_tenant: None,
            media: extras
                .media
                .unwrap_or_else(|| Arc::new(crate::ports::NoMedia)),
        },
    );
    let restored = bindings
        .iter()
        .enumerate()
        .map(|(i, (user, c))| Binding {
            tenant_id: TENANT,
            user_id: *user,
            device_id: DeviceId::for_test(i as u128 + 1),
            contact: c.to_string(),
            received: "udp:127.0.0.1:5062".into(),
            expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
            call_id: "reg".into(),
            cseq: 1,
        })
        .collect();
    platform.sync(&dir, restored);
    (platform, persistence, bus)
}

/// Tenant `a.test` (UTC) with 1001 Alice, 1002 Bob and 1003 Carol, and the devices,
/// trunks and external phones of `extras` (its media is not used).
pub fn directory(extras: Extras) -> Arc<Directory> {
    let tenant = Tenant {
        id: TENANT,
        domain: "a.test".into(),
        name: "A".into(),
        time_zone: "UTC".into(),
    };
    let user = |id, ext: &str, name: &str| User {
        id,
        tenant_id: TENANT,
        extension: ext.into(),
        display_name: name.into(),
        portal_login: None,
    };
    Arc::new(
        Directory::new(
            vec![tenant],
            vec![
                user(ALICE, "1001", "Alice"),
                user(BOB, "1002", "Bob"),
                user(CAROL, "1003", "Carol"),
            ],
            extras.devices,
            vec![],
            extras.trunks,
        )
        .with_external_phones(extras.phones),
    )
}

/// Conference bridges that mix nothing: every call is written to `log` (`open`,
/// `offer <leg>`, `answer <leg>`, `reoffer <leg> <direction>`, `remove <leg>`, `close`).
#[derive(Clone, Default)]
pub struct FakeMedia {
    pub log: Arc<Mutex<Vec<String>>>,
}

impl FakeMedia {
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The offer the bridge makes to `leg`.
    pub fn offer_for(leg: crate::ids::LegId) -> crate::ports::Body {
        Arc::from(format!("v=0\r\no=bridge {leg}\r\nm=audio 40000 RTP/AVP 0 8 101\r\n").as_bytes())
    }
}

impl crate::ports::Media for FakeMedia {
    fn open_bridge(
        &self,
        _: TenantId,
        _: crate::ids::CallId,
    ) -> Result<Box<dyn crate::ports::Bridge>, crate::ports::MediaError> {
        self.log.lock().unwrap().push("open".into());
        Ok(Box::new(FakeBridge(self.log.clone())))
    }
}

struct FakeBridge(Arc<Mutex<Vec<String>>>);

impl crate::ports::Bridge for FakeBridge {
    fn offer(
        &mut self,
        leg: crate::ids::LegId,
    ) -> Result<crate::ports::Body, crate::ports::MediaError> {
        self.0.lock().unwrap().push(format!("offer {leg}"));
        Ok(FakeMedia::offer_for(leg))
    }

    fn answer(
        &mut self,
        leg: crate::ids::LegId,
        sdp: &[u8],
    ) -> Result<(), crate::ports::MediaError> {
        if !sdp.starts_with(b"v=0") {
            return Err(crate::ports::MediaError::BadSdp("not SDP".into()));
        }
        self.0.lock().unwrap().push(format!("answer {leg}"));
        Ok(())
    }

    fn reoffer(
        &mut self,
        leg: crate::ids::LegId,
        sdp: &[u8],
    ) -> Result<crate::ports::Body, crate::ports::MediaError> {
        let held = crate::call::sdp_is_hold(sdp);
        let direction = if held { "inactive" } else { "sendrecv" };
        self.0
            .lock()
            .unwrap()
            .push(format!("reoffer {leg} {direction}"));
        Ok(Arc::from(format!("v=0\r\na={direction}\r\n").as_bytes()))
    }

    fn remove(&mut self, leg: crate::ids::LegId) {
        self.0.lock().unwrap().push(format!("remove {leg}"));
    }
}

impl Drop for FakeBridge {
    fn drop(&mut self) {
        self.0.lock().unwrap().push("close".into());
    }
}
