//! One contract for every `Store` backend: each test below is a plain async fn over
//! `&dyn Store`, and `contract!` runs it against SQLite (a temp file) and against the
//! real PostgreSQL at `TSPS_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), in a fresh database per test that is
//! dropped afterwards, pass or fail.

use chrono::{DateTime, TimeZone, Utc};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use tsps::sip::digest::{ha1_md5, ha1_sha256};
use tsps::store::{self, DynStore, Store, StoreError};
use tsps_actors::model::{
    Binding, CallDirection, CallOutcome, CallRecord, Device, Did, LegRecord, Party, Tenant,
    TransportKind, Trunk, User,
};
use tsps_actors::{CallId, DeviceId, LegId, TenantId, TrunkId, UserId};

const DEFAULT_PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

async fn with_sqlite<F, Fut>(test: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tsps.db").display());
    let store = store::open(&url, 4).await.expect("open sqlite store");
    test(store).await;
}

/// `postgres://user@host:port/db?x` with the database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("url has a scheme");
    let authority = rest.split(['/', '?']).next().unwrap_or(rest);
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{scheme}://{authority}/{db}{query}")
}

async fn with_postgres<F, Fut>(test: F)
where
    F: FnOnce(DynStore) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use sqlx::Connection;
    let admin_url =
        std::env::var("TSPS_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_ADMIN_URL.to_string());
    let db = format!("tsps_contract_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL (set TSPS_TEST_PG_URL)");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut admin)
        .await
        .unwrap();
    let store = store::PgStore::open(&with_database(&admin_url, &db), 4)
        .await
        .expect("open postgres store");
    let store = std::sync::Arc::new(store);
    let result = AssertUnwindSafe(test(store.clone())).catch_unwind().await;
    store.close().await;
    sqlx::query(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_sqlite(|s| async move { super::$name(&*s).await }).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    super::with_postgres(|s| async move { super::$name(&*s).await }).await;
                }
            )*
        }
    };
}

contract!(
    tenant_crud,
    users_are_unique_per_tenant,
    devices_are_unique_per_tenant_and_stay_inside_it,
    domain_change_is_refused_while_devices_depend_on_it,
    dids_are_global_numbers_routed_inside_a_tenant,
    trunk_crud,
    directory_holds_everything,
    bindings_save_refresh_remove_and_expire,
    call_records_newest_first_with_legs,
    call_records_are_tenant_isolated,
    deleting_a_user_cascades,
    deleting_a_tenant_cascades,
);

// ---------------------------------------------------------------- fixtures

/// A timestamp at whole microseconds (both backends keep microseconds).
fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + secs, 123_456_000)
        .unwrap()
}

fn tenant(n: u128, domain: &str) -> Tenant {
    Tenant {
        id: TenantId::for_test(n),
        domain: domain.into(),
        name: format!("Tenant {domain}"),
        time_zone: "Europe/Zurich".into(),
    }
}

fn user(n: u128, tenant: &Tenant, extension: &str) -> User {
    User {
        id: UserId::for_test(n),
        tenant_id: tenant.id,
        extension: extension.into(),
        display_name: format!("User {extension}"),
        portal_login: None,
    }
}

fn device(n: u128, tenant: &Tenant, user: &User, username: &str) -> Device {
    Device {
        id: DeviceId::for_test(n),
        tenant_id: tenant.id,
        user_id: user.id,
        sip_username: username.into(),
        ha1_md5: ha1_md5(username, &tenant.domain, "pw"),
        ha1_sha256: ha1_sha256(username, &tenant.domain, "pw"),
    }
}

fn trunk(n: u128, tenant: &Tenant, name: &str) -> Trunk {
    Trunk {
        id: TrunkId::for_test(n),
        tenant_id: tenant.id,
        name: name.into(),
        peer_host: "127.0.0.2".into(),
        peer_port: 5070,
        transport: TransportKind::Udp,
        username: Some("tsps".into()),
        password: Some("trunkpw".into()),
        inbound_sources: vec!["127.0.0.2".into(), "127.0.1.0/24".into()],
    }
}

fn binding(tenant: &Tenant, device: &Device, contact: &str, expires: i64, cseq: u32) -> Binding {
    Binding {
        tenant_id: tenant.id,
        user_id: device.user_id,
        device_id: device.id,
        contact: contact.into(),
        received: "udp:127.0.0.1:5062".into(),
        expires_at: at(expires),
        call_id: format!("reg-{contact}"),
        cseq,
    }
}

fn call(n: u128, tenant: &Tenant, caller: Option<&User>, started: i64) -> CallRecord {
    CallRecord {
        id: CallId::for_test(n),
        tenant_id: tenant.id,
        direction: CallDirection::Internal,
        caller: "1001".into(),
        callee: "1002".into(),
        caller_user_id: caller.map(|u| u.id),
        callee_user_id: None,
        started_at: at(started),
        answered_at: Some(at(started + 2)),
        ended_at: at(started + 30),
        outcome: CallOutcome::Answered,
        hangup_by: Some(Party::Callee),
        legs: vec![
            LegRecord {
                id: LegId::for_test(n * 10 + 1),
                role: Party::Caller,
                target: "sip:1001@a.test".into(),
                started_at: at(started),
                answered_at: Some(at(started + 2)),
                ended_at: Some(at(started + 30)),
                status_code: Some(200),
            },
            LegRecord {
                id: LegId::for_test(n * 10 + 2),
                role: Party::Callee,
                target: "sip:1002@127.0.0.1:5062".into(),
                started_at: at(started + 1),
                answered_at: None,
                ended_at: Some(at(started + 3)),
                status_code: Some(486),
            },
        ],
    }
}

fn assert_already_exists<T: std::fmt::Debug>(r: Result<T, StoreError>, want_entity: &str) {
    match r {
        Err(StoreError::AlreadyExists { entity, .. }) => assert_eq!(entity, want_entity),
        other => panic!("expected AlreadyExists({want_entity}), got {other:?}"),
    }
}

fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, want_entity: &str) {
    match r {
        Err(StoreError::NotFound { entity, .. }) => assert_eq!(entity, want_entity),
        other => panic!("expected NotFound({want_entity}), got {other:?}"),
    }
}

/// Tenants A and B, one user 1001 in each.
async fn two_tenants(s: &dyn Store) -> (Tenant, Tenant, User, User) {
    let a = tenant(1, "a.test");
    let b = tenant(2, "b.test");
    s.create_tenant(&a).await.unwrap();
    s.create_tenant(&b).await.unwrap();
    let ua = user(11, &a, "1001");
    let ub = user(21, &b, "1001");
    s.create_user(a.id, &ua).await.unwrap();
    s.create_user(b.id, &ub).await.unwrap();
    (a, b, ua, ub)
}

// ---------------------------------------------------------------- the contract

async fn tenant_crud(s: &dyn Store) {
    let a = tenant(1, "a.test");
    s.create_tenant(&a).await.unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), a);
    assert_eq!(
        s.find_tenant_by_domain("a.test").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(s.find_tenant_by_domain("nope.test").await.unwrap(), None);

    let mut same_domain = tenant(2, "a.test");
    assert_already_exists(s.create_tenant(&same_domain).await, "tenant");
    same_domain.domain = "b.test".into();
    s.create_tenant(&same_domain).await.unwrap();
    let domains: Vec<_> = s
        .list_tenants()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.domain)
        .collect();
    assert_eq!(domains, ["a.test", "b.test"]);

    let mut changed = a.clone();
    changed.name = "Renamed".into();
    changed.time_zone = "UTC".into();
    s.update_tenant(&changed).await.unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), changed);
    changed.domain = "b.test".into();
    assert_already_exists(s.update_tenant(&changed).await, "tenant");
    assert_not_found(s.update_tenant(&tenant(9, "z.test")).await, "tenant");

    s.delete_tenant(a.id).await.unwrap();
    assert_not_found(s.get_tenant(a.id).await, "tenant");
    assert_not_found(s.delete_tenant(a.id).await, "tenant");
}

async fn users_are_unique_per_tenant(s: &dyn Store) {
    // 1001 in A and in B: both fine.
    let (a, b, ua, ub) = two_tenants(s).await;
    assert_eq!(s.get_user(a.id, ua.id).await.unwrap(), ua);
    assert_eq!(s.get_user(b.id, ub.id).await.unwrap(), ub);

    // 1001 twice in A: refused.
    assert_already_exists(
        s.create_user(a.id, &user(12, &a, "1001")).await,
        "extension",
    );

    // Portal logins are unique per tenant too, and the error says which key collided.
    let mut alice = user(13, &a, "1002");
    alice.portal_login = Some("alice".into());
    s.create_user(a.id, &alice).await.unwrap();
    let mut other = user(14, &a, "1003");
    other.portal_login = Some("alice".into());
    assert_already_exists(s.create_user(a.id, &other).await, "portal login");
    let mut in_b = user(22, &b, "1002");
    in_b.portal_login = Some("alice".into());
    s.create_user(b.id, &in_b).await.unwrap();

    // Walls: A's user is not found under B, and cannot be written under B.
    assert_not_found(s.get_user(b.id, ua.id).await, "user");
    assert_not_found(s.delete_user(b.id, ua.id).await, "user");
    assert!(matches!(
        s.create_user(b.id, &user(15, &a, "1009")).await,
        Err(StoreError::Invalid(_))
    ));
    let mut moved = ua.clone();
    moved.tenant_id = b.id;
    assert_not_found(s.update_user(b.id, &moved).await, "user");

    // Unknown tenant.
    let ghost = tenant(99, "ghost.test");
    assert_not_found(
        s.create_user(ghost.id, &user(16, &ghost, "1001")).await,
        "tenant",
    );

    let mut renamed = alice.clone();
    renamed.display_name = "Alice Liddell".into();
    renamed.extension = "2002".into();
    renamed.portal_login = None;
    s.update_user(a.id, &renamed).await.unwrap();
    assert_eq!(
        s.find_user_by_extension(a.id, "2002").await.unwrap(),
        Some(renamed.clone())
    );
    assert_eq!(s.find_user_by_extension(a.id, "1002").await.unwrap(), None);
    renamed.extension = "1001".into();
    assert_already_exists(s.update_user(a.id, &renamed).await, "extension");

    let extensions: Vec<_> = s
        .list_users(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.extension)
        .collect();
    assert_eq!(extensions, ["1001", "2002"]);
    s.delete_user(a.id, ua.id).await.unwrap();
    assert_not_found(s.get_user(a.id, ua.id).await, "user");
    assert_eq!(s.list_users(b.id).await.unwrap().len(), 2);
}

async fn devices_are_unique_per_tenant_and_stay_inside_it(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let da = device(31, &a, &ua, "1001");
    let db = device(41, &b, &ub, "1001");
    s.create_device(a.id, &da).await.unwrap();
    s.create_device(b.id, &db).await.unwrap();
    assert_eq!(s.get_device(a.id, da.id).await.unwrap(), da);
    assert_already_exists(
        s.create_device(a.id, &device(32, &a, &ua, "1001")).await,
        "sip username",
    );

    // A device of tenant A cannot belong to a user of tenant B.
    let mut crossing = device(33, &a, &ua, "1001b");
    crossing.user_id = ub.id;
    assert_not_found(s.create_device(a.id, &crossing).await, "user");
    assert_not_found(s.get_device(b.id, da.id).await, "device");

    let ua2 = user(12, &a, "1002");
    s.create_user(a.id, &ua2).await.unwrap();
    let da2 = device(34, &a, &ua2, "1002");
    s.create_device(a.id, &da2).await.unwrap();
    assert_eq!(
        s.list_devices(a.id, None).await.unwrap(),
        [da.clone(), da2.clone()]
    );
    assert_eq!(
        s.list_devices(a.id, Some(ua2.id)).await.unwrap(),
        vec![da2.clone()]
    );
    assert_eq!(s.list_devices(a.id, Some(ub.id)).await.unwrap(), []);
    assert_eq!(
        s.find_device_by_username(a.id, "1002").await.unwrap(),
        Some(da2.clone())
    );

    let mut moved = da2.clone();
    moved.user_id = ua.id;
    moved.ha1_md5 = ha1_md5("1002", &a.domain, "new");
    s.update_device(a.id, &moved).await.unwrap();
    assert_eq!(s.get_device(a.id, da2.id).await.unwrap(), moved);
    moved.user_id = ub.id;
    assert_not_found(s.update_device(a.id, &moved).await, "user");
    moved.user_id = ua.id;
    moved.sip_username = "1001".into();
    assert_already_exists(s.update_device(a.id, &moved).await, "sip username");

    s.delete_device(a.id, da2.id).await.unwrap();
    assert_not_found(s.delete_device(a.id, da2.id).await, "device");
    assert_not_found(s.delete_device(a.id, db.id).await, "device");
    assert_eq!(s.get_device(b.id, db.id).await.unwrap(), db);
}

async fn domain_change_is_refused_while_devices_depend_on_it(s: &dyn Store) {
    let (a, b, ua, _) = two_tenants(s).await;
    // Without devices the domain may move.
    let mut moved_b = b.clone();
    moved_b.domain = "b2.test".into();
    s.update_tenant(&moved_b).await.unwrap();
    assert_eq!(s.get_tenant(b.id).await.unwrap().domain, "b2.test");

    let da = device(31, &a, &ua, "1001");
    s.create_device(a.id, &da).await.unwrap();
    let mut moved_a = a.clone();
    moved_a.domain = "a2.test".into();
    match s.update_tenant(&moved_a).await {
        Err(StoreError::Conflict(msg)) => assert!(msg.contains("domain"), "{msg}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.get_tenant(a.id).await.unwrap(), a);
    // Other fields still change while the domain stays.
    let mut renamed = a.clone();
    renamed.name = "Still A".into();
    s.update_tenant(&renamed).await.unwrap();
    assert_eq!(s.get_tenant(a.id).await.unwrap(), renamed);
}

async fn dids_are_global_numbers_routed_inside_a_tenant(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let did = Did {
        number: "+41445550100".into(),
        tenant_id: a.id,
        user_id: ua.id,
    };
    s.create_did(a.id, &did).await.unwrap();
    assert_eq!(s.get_did(a.id, &did.number).await.unwrap(), did);
    // The number is unique across tenants.
    let taken = Did {
        tenant_id: b.id,
        user_id: ub.id,
        ..did.clone()
    };
    assert_already_exists(s.create_did(b.id, &taken).await, "did");
    assert_not_found(s.get_did(b.id, &did.number).await, "did");
    assert_not_found(s.delete_did(b.id, &did.number).await, "did");
    // Routed to a user of another tenant: that user does not exist here.
    let crossing = Did {
        number: "+41445550101".into(),
        tenant_id: a.id,
        user_id: ub.id,
    };
    assert_not_found(s.create_did(a.id, &crossing).await, "user");

    let ua2 = user(12, &a, "1002");
    s.create_user(a.id, &ua2).await.unwrap();
    let rerouted = Did {
        user_id: ua2.id,
        ..did.clone()
    };
    s.update_did(a.id, &rerouted).await.unwrap();
    assert_eq!(s.get_did(a.id, &did.number).await.unwrap(), rerouted);
    let wrong = Did {
        user_id: ub.id,
        ..did.clone()
    };
    assert_not_found(s.update_did(a.id, &wrong).await, "user");
    let second = Did {
        number: "+41445550099".into(),
        ..rerouted.clone()
    };
    s.create_did(a.id, &second).await.unwrap();
    assert_eq!(s.list_dids(a.id).await.unwrap(), [second.clone(), rerouted]);
    assert_eq!(s.list_dids(b.id).await.unwrap(), []);
    s.delete_did(a.id, &second.number).await.unwrap();
    assert_eq!(s.list_dids(a.id).await.unwrap().len(), 1);
}

async fn trunk_crud(s: &dyn Store) {
    let (a, b, _, _) = two_tenants(s).await;
    let ta = trunk(51, &a, "carrier");
    s.create_trunk(a.id, &ta).await.unwrap();
    assert_eq!(s.get_trunk(a.id, ta.id).await.unwrap(), ta);
    assert_already_exists(
        s.create_trunk(a.id, &trunk(52, &a, "carrier")).await,
        "trunk",
    );
    // The same name in another tenant is fine.
    let tb = trunk(61, &b, "carrier");
    s.create_trunk(b.id, &tb).await.unwrap();
    assert_not_found(s.get_trunk(b.id, ta.id).await, "trunk");

    let mut changed = ta.clone();
    changed.transport = TransportKind::Tcp;
    changed.peer_port = 5080;
    changed.username = None;
    changed.password = None;
    changed.inbound_sources = vec![];
    s.update_trunk(a.id, &changed).await.unwrap();
    assert_eq!(
        s.find_trunk_by_name(a.id, "carrier").await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(s.find_trunk_by_name(a.id, "other").await.unwrap(), None);
    let backup = trunk(53, &a, "backup");
    s.create_trunk(a.id, &backup).await.unwrap();
    assert_eq!(s.list_trunks(a.id).await.unwrap(), [backup, changed]);

    assert_not_found(s.delete_trunk(b.id, ta.id).await, "trunk");
    s.delete_trunk(a.id, ta.id).await.unwrap();
    assert_not_found(s.get_trunk(a.id, ta.id).await, "trunk");
    assert_eq!(s.list_trunks(b.id).await.unwrap(), [tb]);
}

async fn directory_holds_everything(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let da = device(31, &a, &ua, "1001");
    s.create_device(a.id, &da).await.unwrap();
    s.create_device(b.id, &device(41, &b, &ub, "1001"))
        .await
        .unwrap();
    let did = Did {
        number: "+41445550100".into(),
        tenant_id: a.id,
        user_id: ua.id,
    };
    s.create_did(a.id, &did).await.unwrap();
    let ta = trunk(51, &a, "carrier");
    s.create_trunk(a.id, &ta).await.unwrap();

    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.tenants().count(), 2);
    assert_eq!(dir.tenant_by_domain("A.test").unwrap(), &a);
    assert_eq!(dir.user_by_extension(a.id, "1001").unwrap(), &ua);
    assert_eq!(dir.user_by_extension(b.id, "1001").unwrap(), &ub);
    assert_eq!(dir.device_by_username(a.id, "1001").unwrap(), &da);
    assert_eq!(dir.devices_of_user(ua.id).count(), 1);
    assert_eq!(dir.did("41445550100").unwrap(), &did);
    assert_eq!(
        dir.trunk_by_source("127.0.1.9".parse().unwrap()).unwrap(),
        &ta
    );
    assert_eq!(dir.trunks_of_tenant(b.id).count(), 0);
}

async fn bindings_save_refresh_remove_and_expire(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let da = device(31, &a, &ua, "1001");
    let db = device(41, &b, &ub, "1001");
    s.create_device(a.id, &da).await.unwrap();
    s.create_device(b.id, &db).await.unwrap();

    let first = binding(&a, &da, "sip:1001@127.0.0.1:5062", 100, 1);
    s.save_binding(&first).await.unwrap();
    // Refresh: same (tenant, device, contact), later expiry and CSeq: one binding.
    let refreshed = Binding {
        expires_at: at(200),
        cseq: 2,
        received: "udp:127.0.0.1:5063".into(),
        ..first.clone()
    };
    s.save_binding(&refreshed).await.unwrap();
    let second = binding(&a, &da, "sip:1001@127.0.0.1:5064", 50, 7);
    s.save_binding(&second).await.unwrap();
    let other = binding(&b, &db, "sip:1001@127.0.0.1:6000", 300, 1);
    s.save_binding(&other).await.unwrap();

    let mut live = s.load_bindings(at(0)).await.unwrap();
    live.sort_by(|x, y| x.contact.cmp(&y.contact));
    assert_eq!(live, [refreshed.clone(), second.clone(), other.clone()]);
    // Expiry: at t=60 the second contact is gone; at t=250 only B's binding remains.
    assert_eq!(s.load_bindings(at(60)).await.unwrap().len(), 2);
    assert_eq!(s.load_bindings(at(250)).await.unwrap(), vec![other.clone()]);
    // Tenant-scoped listing.
    assert_eq!(s.list_bindings(a.id, at(0)).await.unwrap().len(), 2);
    assert_eq!(
        s.list_bindings(b.id, at(0)).await.unwrap(),
        vec![other.clone()]
    );
    assert_eq!(
        s.list_bindings(a.id, at(60)).await.unwrap(),
        vec![refreshed.clone()]
    );

    // Removal is tenant-scoped too: B's id under A removes nothing.
    s.remove_binding(a.id, db.id, &other.contact).await.unwrap();
    assert_eq!(s.list_bindings(b.id, at(0)).await.unwrap().len(), 1);
    s.remove_binding(a.id, da.id, &first.contact).await.unwrap();
    assert_eq!(s.list_bindings(a.id, at(0)).await.unwrap(), [second]);
    s.remove_device_bindings(a.id, da.id).await.unwrap();
    assert_eq!(s.list_bindings(a.id, at(0)).await.unwrap(), []);

    // A binding for a device that does not exist is refused.
    let ghost = Device {
        id: DeviceId::for_test(999),
        ..da.clone()
    };
    assert_not_found(
        s.save_binding(&binding(&a, &ghost, "sip:x@127.0.0.1", 100, 1))
            .await,
        "device",
    );
}

async fn call_records_newest_first_with_legs(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    let old = call(1, &a, Some(&ua), 0);
    let newest = call(2, &a, None, 200);
    let mut middle = call(3, &a, Some(&ua), 100);
    middle.outcome = CallOutcome::Busy;
    middle.answered_at = None;
    middle.hangup_by = None;
    middle.direction = CallDirection::Outbound;
    middle.legs.truncate(1);
    middle.legs[0].status_code = None;
    for r in [&old, &newest, &middle] {
        s.insert_call_record(r).await.unwrap();
    }
    let listed = s.list_call_records(a.id, 10).await.unwrap();
    assert_eq!(listed, [newest.clone(), middle.clone(), old.clone()]);
    assert_eq!(listed[0].legs.len(), 2);
    assert_eq!(
        s.list_call_records(a.id, 2).await.unwrap(),
        [newest.clone(), middle]
    );
    assert_eq!(s.list_call_records(a.id, 0).await.unwrap(), []);
    assert_already_exists(s.insert_call_record(&old).await, "call record");
}

async fn call_records_are_tenant_isolated(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    s.insert_call_record(&call(1, &a, Some(&ua), 0))
        .await
        .unwrap();
    s.insert_call_record(&call(2, &b, Some(&ub), 10))
        .await
        .unwrap();
    let in_a = s.list_call_records(a.id, 10).await.unwrap();
    assert_eq!(in_a.len(), 1);
    assert_eq!(in_a[0].id, CallId::for_test(1));
    let in_b = s.list_call_records(b.id, 10).await.unwrap();
    assert_eq!(in_b.len(), 1);
    assert_eq!(in_b[0].id, CallId::for_test(2));
    assert!(in_b[0]
        .legs
        .iter()
        .all(|l| l.id.as_uuid().as_u128() / 10 == 2));
}

async fn deleting_a_user_cascades(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    let da = device(31, &a, &ua, "1001");
    s.create_device(a.id, &da).await.unwrap();
    s.save_binding(&binding(&a, &da, "sip:1001@127.0.0.1:5062", 100, 1))
        .await
        .unwrap();
    let did = Did {
        number: "+41445550100".into(),
        tenant_id: a.id,
        user_id: ua.id,
    };
    s.create_did(a.id, &did).await.unwrap();
    s.insert_call_record(&call(1, &a, Some(&ua), 0))
        .await
        .unwrap();

    s.delete_user(a.id, ua.id).await.unwrap();
    assert_not_found(s.get_device(a.id, da.id).await, "device");
    assert_not_found(s.get_did(a.id, &did.number).await, "did");
    assert_eq!(s.list_bindings(a.id, at(0)).await.unwrap(), []);
    // The CDR stays; it only loses the link to the deleted user.
    let calls = s.list_call_records(a.id, 10).await.unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].caller_user_id, None);
    assert_eq!(calls[0].legs.len(), 2);
}

async fn deleting_a_tenant_cascades(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let da = device(31, &a, &ua, "1001");
    s.create_device(a.id, &da).await.unwrap();
    s.create_device(b.id, &device(41, &b, &ub, "1001"))
        .await
        .unwrap();
    s.save_binding(&binding(&a, &da, "sip:1001@127.0.0.1:5062", 100, 1))
        .await
        .unwrap();
    s.create_did(
        a.id,
        &Did {
            number: "+41445550100".into(),
            tenant_id: a.id,
            user_id: ua.id,
        },
    )
    .await
    .unwrap();
    s.create_trunk(a.id, &trunk(51, &a, "carrier"))
        .await
        .unwrap();
    s.insert_call_record(&call(1, &a, Some(&ua), 0))
        .await
        .unwrap();
    s.insert_call_record(&call(2, &b, Some(&ub), 0))
        .await
        .unwrap();

    s.delete_tenant(a.id).await.unwrap();
    assert_eq!(s.list_users(a.id).await.unwrap(), []);
    assert_eq!(s.list_devices(a.id, None).await.unwrap(), []);
    assert_eq!(s.list_dids(a.id).await.unwrap(), []);
    assert_eq!(s.list_trunks(a.id).await.unwrap(), []);
    assert_eq!(s.list_bindings(a.id, at(0)).await.unwrap(), []);
    assert_eq!(s.list_call_records(a.id, 10).await.unwrap(), []);
    // Tenant B is untouched.
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.tenants().count(), 1);
    assert_eq!(dir.users().count(), 1);
    assert_eq!(s.list_call_records(b.id, 10).await.unwrap().len(), 1);
    // The freed domain and number can be used again.
    s.create_tenant(&tenant(3, "a.test")).await.unwrap();
}
