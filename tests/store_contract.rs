//! One contract for every `Store` backend: each test below is a plain async fn over
//! `&dyn Store`, and `contract!` runs it against SQLite (a temp file) and against the
//! real PostgreSQL at `TSPS_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), in a fresh database per test that is
//! dropped afterwards, pass or fail.

use chrono::{DateTime, TimeZone, Utc};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use tsps::contacts::{
    Contact, ContactId, ContactNumber, ContactOwner, ContactPhone, DialingRules, TenantSettings,
};
use tsps::sip::digest::{ha1_md5, ha1_sha256};
use tsps::store::{
    self, ApiToken, ApiTokenId, CallHistoryQuery, CallSide, DynStore, OperatorAccount, PolicyMode,
    SessionAccount, SessionRecord, SessionSubject, Store, StoreError, TenantQuotas, UserAccount,
    UserPolicy, UserRole,
};
use tsps_actors::feature::{Handling, Presence, Profile, Target};
use tsps_actors::model::{
    Binding, CallDirection, CallOutcome, CallRecord, Device, Did, ExternalPhone, LegRecord, Party,
    Tenant, TransportKind, Trunk, User,
};
use tsps_actors::presence::WatchRule;
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
    profile_and_presence_default_and_round_trip,
    tenant_settings_default_and_round_trip,
    user_policies_default_round_trip_and_list,
    contacts_personal_and_shared_crud,
    contacts_are_tenant_and_owner_isolated,
    contact_import_is_all_or_none,
    contact_lookup_table_is_personal_first_then_shared,
    deleting_a_user_drops_its_feature_data_and_keeps_shared_contacts,
    deleting_a_tenant_drops_its_feature_data,
    user_accounts_roles_and_password_hashes,
    sessions_round_trip_touch_end_and_cascade,
    operators_and_their_sessions,
    user_call_history_filters_and_pages,
    api_tokens_round_trip_stay_in_their_tenant_and_cascade,
    external_phones_per_user_and_remote_answer,
    watch_rules_restrict_watchers_within_the_tenant,
    tenant_quotas_default_round_trip_and_counts,
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
        remote_answer: false,
        digest_algorithms: vec![],
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
        decision: vec!["1002: ring devices".into()],
        legs: vec![
            LegRecord {
                id: LegId::for_test(n * 10 + 1),
                role: Party::Caller,
                target: "sip:1001@a.test".into(),
                started_at: at(started),
                answered_at: Some(at(started + 2)),
                ended_at: Some(at(started + 30)),
                status_code: Some(200),
                user_id: None,
            },
            LegRecord {
                id: LegId::for_test(n * 10 + 2),
                role: Party::Callee,
                target: "sip:1002@127.0.0.1:5062".into(),
                started_at: at(started + 1),
                answered_at: None,
                ended_at: Some(at(started + 3)),
                status_code: Some(486),
                user_id: None,
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

// ---------------------------------------------------------------- feature server

fn contact(n: u128, tenant: &Tenant, owner: ContactOwner, name: &str, numbers: &[&str]) -> Contact {
    Contact {
        id: ContactId::for_test(n),
        tenant_id: tenant.id,
        owner,
        name: name.into(),
        company: Some("ACME".into()),
        email: Some(format!("{}@acme.test", name.to_lowercase())),
        handling_code: None,
        numbers: numbers
            .iter()
            .enumerate()
            .map(|(i, n)| ContactPhone {
                number: n.to_string(),
                label: (i == 0).then(|| "work".to_string()),
            })
            .collect(),
    }
}

fn vip_profile() -> Profile {
    let mut p = Profile {
        ring_seconds: 20,
        ..Default::default()
    };
    p.forwarding.busy = Some(Target::Number("+41445550199".into()));
    p.handling_codes
        .push(tsps_actors::feature::profile::HandlingCode {
            name: "VIP".into(),
            handling: Handling::Ring,
        });
    p.dnd.exceptions.push("VIP".into());
    p
}

async fn profile_and_presence_default_and_round_trip(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (Profile::default(), Presence::Available)
    );

    // Presence first: the profile stays the default.
    s.set_presence(a.id, ua.id, Presence::Away).await.unwrap();
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (Profile::default(), Presence::Away)
    );
    // A profile keeps the presence, and a presence keeps the profile.
    let p = vip_profile();
    s.put_profile(a.id, ua.id, &p).await.unwrap();
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (p.clone(), Presence::Away)
    );
    s.set_presence(a.id, ua.id, Presence::DoNotDisturb)
        .await
        .unwrap();
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (p.clone(), Presence::DoNotDisturb)
    );
    let mut p2 = p.clone();
    p2.call_waiting = false;
    s.put_profile(a.id, ua.id, &p2).await.unwrap();
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (p2, Presence::DoNotDisturb)
    );
    for presence in [Presence::Busy, Presence::InMeeting, Presence::Available] {
        s.set_presence(a.id, ua.id, presence).await.unwrap();
        assert_eq!(s.get_profile(a.id, ua.id).await.unwrap().1, presence);
    }

    // The other tenant's user with the same extension is untouched.
    assert_eq!(
        s.get_profile(b.id, ub.id).await.unwrap(),
        (Profile::default(), Presence::Available)
    );
    // Across the tenant wall, or for nobody: not found, and nothing written.
    assert_not_found(s.get_profile(b.id, ua.id).await, "user");
    assert_not_found(s.put_profile(b.id, ua.id, &p).await, "user");
    assert_not_found(s.set_presence(b.id, ua.id, Presence::Away).await, "user");
    assert_not_found(s.get_profile(a.id, UserId::for_test(99)).await, "user");
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap().1,
        Presence::Available
    );
}

async fn tenant_settings_default_and_round_trip(s: &dyn Store) {
    let (a, b, _, _) = two_tenants(s).await;
    assert_eq!(
        s.get_tenant_settings(a.id).await.unwrap(),
        TenantSettings::default()
    );
    let swiss = TenantSettings {
        dialing: DialingRules {
            country_code: "41".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        },
        notice: Some("Closed on Friday afternoon.".into()),
    };
    s.put_tenant_settings(a.id, &swiss).await.unwrap();
    assert_eq!(s.get_tenant_settings(a.id).await.unwrap(), swiss);
    let mut us = swiss.clone();
    us.dialing = DialingRules {
        country_code: "1".into(),
        national_prefix: String::new(),
        international_prefix: "011".into(),
    };
    s.put_tenant_settings(a.id, &us).await.unwrap();
    assert_eq!(s.get_tenant_settings(a.id).await.unwrap(), us);
    assert_eq!(
        s.get_tenant_settings(b.id).await.unwrap(),
        TenantSettings::default()
    );
    let nobody = TenantId::for_test(99);
    assert_not_found(s.get_tenant_settings(nobody).await, "tenant");
    assert_not_found(s.put_tenant_settings(nobody, &swiss).await, "tenant");
}

async fn user_policies_default_round_trip_and_list(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let ua2 = user(12, &a, "1002");
    s.create_user(a.id, &ua2).await.unwrap();
    assert_eq!(
        s.get_user_policy(a.id, ua.id).await.unwrap(),
        UserPolicy::default()
    );
    assert_eq!(UserPolicy::default().mode, PolicyMode::Accept);

    let external = UserPolicy {
        mode: PolicyMode::External,
        external_uri: Some("sip:alice@127.0.0.1:5080".into()),
    };
    s.put_user_policy(a.id, ua2.id, &external).await.unwrap();
    assert_eq!(s.get_user_policy(a.id, ua2.id).await.unwrap(), external);
    let reject = UserPolicy {
        mode: PolicyMode::Reject,
        external_uri: None,
    };
    s.put_user_policy(a.id, ua.id, &reject).await.unwrap();
    assert_eq!(
        s.list_user_policies(a.id).await.unwrap(),
        [(ua.id, reject.clone()), (ua2.id, external.clone())]
    );
    // Back to accept.
    s.put_user_policy(a.id, ua.id, &UserPolicy::default())
        .await
        .unwrap();
    assert_eq!(
        s.get_user_policy(a.id, ua.id).await.unwrap(),
        UserPolicy::default()
    );
    assert_eq!(
        s.list_user_policies(b.id).await.unwrap(),
        [(ub.id, UserPolicy::default())]
    );

    // external_uri exactly for external.
    let no_uri = UserPolicy {
        mode: PolicyMode::External,
        external_uri: None,
    };
    assert!(matches!(
        s.put_user_policy(a.id, ua.id, &no_uri).await,
        Err(StoreError::Invalid(_))
    ));
    let stray_uri = UserPolicy {
        mode: PolicyMode::Reject,
        external_uri: Some("sip:x@127.0.0.1".into()),
    };
    assert!(matches!(
        s.put_user_policy(a.id, ua.id, &stray_uri).await,
        Err(StoreError::Invalid(_))
    ));
    assert_not_found(s.get_user_policy(b.id, ua.id).await, "user");
    assert_not_found(s.put_user_policy(b.id, ua.id, &reject).await, "user");
    assert_eq!(
        s.get_user_policy(a.id, ua.id).await.unwrap(),
        UserPolicy::default()
    );
}

async fn contacts_personal_and_shared_crud(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    let mine = ContactOwner::User(ua.id);
    let mut zoe = contact(1, &a, mine, "Zoe", &["+41445550101", "+41795550101"]);
    zoe.handling_code = Some("VIP".into());
    let anna = contact(2, &a, mine, "Anna", &[]);
    let shared = contact(3, &a, ContactOwner::Shared, "Reception", &["+41445550100"]);
    s.create_contact(a.id, &zoe).await.unwrap();
    s.create_contact(a.id, &anna).await.unwrap();
    s.create_contact(a.id, &shared).await.unwrap();

    assert_eq!(s.get_contact(a.id, mine, zoe.id).await.unwrap(), zoe);
    assert_eq!(
        s.list_contacts(a.id, mine).await.unwrap(),
        [anna.clone(), zoe.clone()]
    );
    assert_eq!(
        s.list_contacts(a.id, ContactOwner::Shared).await.unwrap(),
        std::slice::from_ref(&shared)
    );
    // Personal and shared are different lists: asked under the other owner, not found.
    assert_not_found(
        s.get_contact(a.id, ContactOwner::Shared, zoe.id).await,
        "contact",
    );
    assert_not_found(s.get_contact(a.id, mine, shared.id).await, "contact");
    assert_already_exists(s.create_contact(a.id, &zoe).await, "contact");

    // Update replaces the fields and the numbers, in the order given.
    let mut changed = zoe.clone();
    changed.name = "Zoe Muster".into();
    changed.company = None;
    changed.handling_code = None;
    changed.numbers = vec![
        ContactPhone {
            number: "+41795550101".into(),
            label: Some("cell".into()),
        },
        ContactPhone {
            number: "+41445550109".into(),
            label: None,
        },
    ];
    s.update_contact(a.id, &changed).await.unwrap();
    assert_eq!(s.get_contact(a.id, mine, zoe.id).await.unwrap(), changed);
    let mut as_shared = changed.clone();
    as_shared.owner = ContactOwner::Shared;
    assert_not_found(s.update_contact(a.id, &as_shared).await, "contact");
    assert_not_found(
        s.update_contact(a.id, &contact(9, &a, mine, "Nobody", &[]))
            .await,
        "contact",
    );
    // A number twice in one contact is refused, and the contact stays as it was.
    let mut twice = changed.clone();
    twice.numbers.push(twice.numbers[0].clone());
    assert_already_exists(s.update_contact(a.id, &twice).await, "contact number");
    assert_eq!(s.get_contact(a.id, mine, zoe.id).await.unwrap(), changed);

    assert_not_found(
        s.delete_contact(a.id, ContactOwner::Shared, zoe.id).await,
        "contact",
    );
    s.delete_contact(a.id, mine, zoe.id).await.unwrap();
    assert_not_found(s.get_contact(a.id, mine, zoe.id).await, "contact");
    assert_not_found(s.delete_contact(a.id, mine, zoe.id).await, "contact");
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap(), [anna]);
    s.delete_contact(a.id, ContactOwner::Shared, shared.id)
        .await
        .unwrap();
    assert_eq!(
        s.list_contacts(a.id, ContactOwner::Shared).await.unwrap(),
        []
    );
}

async fn contacts_are_tenant_and_owner_isolated(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let ua2 = user(12, &a, "1002");
    s.create_user(a.id, &ua2).await.unwrap();
    let mine = ContactOwner::User(ua.id);
    let c = contact(1, &a, mine, "Zoe", &["+41445550101"]);
    let sh = contact(2, &a, ContactOwner::Shared, "Reception", &["+41445550100"]);
    s.create_contact(a.id, &c).await.unwrap();
    s.create_contact(a.id, &sh).await.unwrap();

    // Another user of the same tenant does not see the personal contact.
    let theirs = ContactOwner::User(ua2.id);
    assert_not_found(s.get_contact(a.id, theirs, c.id).await, "contact");
    assert_eq!(s.list_contacts(a.id, theirs).await.unwrap(), []);
    assert_not_found(s.delete_contact(a.id, theirs, c.id).await, "contact");

    // Tenant B sees nothing of A, by any owner.
    for owner in [ContactOwner::Shared, mine, ContactOwner::User(ub.id)] {
        assert_not_found(s.get_contact(b.id, owner, c.id).await, "contact");
        assert_not_found(s.get_contact(b.id, owner, sh.id).await, "contact");
        assert_not_found(s.delete_contact(b.id, owner, c.id).await, "contact");
        assert_eq!(s.list_contacts(b.id, owner).await.unwrap(), []);
    }
    let mut moved = sh.clone();
    moved.tenant_id = b.id;
    assert_not_found(s.update_contact(b.id, &moved).await, "contact");
    // A write that names another tenant than its path, or a user of another tenant.
    assert!(matches!(
        s.create_contact(b.id, &contact(3, &a, ContactOwner::Shared, "X", &[]))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_not_found(
        s.create_contact(b.id, &contact(4, &b, mine, "Smuggled", &[]))
            .await,
        "user",
    );
    assert_eq!(
        s.list_contacts(a.id, ContactOwner::Shared).await.unwrap(),
        [sh]
    );
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap(), [c]);
    assert_eq!(s.contact_lookup_table(b.id, ub.id).await.unwrap(), []);
}

async fn contact_import_is_all_or_none(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    let mine = ContactOwner::User(ua.id);
    let batch: Vec<Contact> = (1..=50)
        .map(|i| {
            contact(
                i,
                &a,
                mine,
                &format!("C{i:03}"),
                &[&format!("+4144555{i:04}")],
            )
        })
        .collect();
    s.create_contacts(a.id, &batch).await.unwrap();
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap(), batch);

    // One bad contact (an id already taken) and none of the batch is stored.
    let again = vec![
        contact(100, &a, mine, "New", &["+41445550999"]),
        contact(1, &a, mine, "Taken", &[]),
    ];
    assert_already_exists(s.create_contacts(a.id, &again).await, "contact");
    assert_not_found(
        s.get_contact(a.id, mine, ContactId::for_test(100)).await,
        "contact",
    );
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap().len(), 50);
    s.create_contacts(a.id, &[]).await.unwrap();
}

async fn contact_lookup_table_is_personal_first_then_shared(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let ua2 = user(12, &a, "1002");
    s.create_user(a.id, &ua2).await.unwrap();
    let mut vip = contact(
        1,
        &a,
        ContactOwner::User(ua.id),
        "Boss",
        &["+41445550200", "+41795550200"],
    );
    vip.handling_code = Some("VIP".into());
    s.create_contact(a.id, &vip).await.unwrap();
    // The same number as a shared contact: listed after the personal one.
    let mut front = contact(
        2,
        &a,
        ContactOwner::Shared,
        "Front desk",
        &["+41445550100", "+41445550200"],
    );
    front.handling_code = Some("Sales".into());
    s.create_contact(a.id, &front).await.unwrap();
    s.create_contact(
        a.id,
        &contact(
            3,
            &a,
            ContactOwner::User(ua2.id),
            "Other's",
            &["+41445550300"],
        ),
    )
    .await
    .unwrap();
    s.create_contact(
        b.id,
        &contact(4, &b, ContactOwner::Shared, "B shared", &["+41445550400"]),
    )
    .await
    .unwrap();
    s.create_contact(
        b.id,
        &contact(
            5,
            &b,
            ContactOwner::User(ub.id),
            "B personal",
            &["+41445550500"],
        ),
    )
    .await
    .unwrap();

    let row = |n: &str, name: &str, code: Option<&str>, shared: bool| ContactNumber {
        number_e164: n.into(),
        name: name.into(),
        handling_code: code.map(str::to_string),
        shared,
    };
    assert_eq!(
        s.contact_lookup_table(a.id, ua.id).await.unwrap(),
        [
            row("+41445550200", "Boss", Some("VIP"), false),
            row("+41795550200", "Boss", Some("VIP"), false),
            row("+41445550100", "Front desk", Some("Sales"), true),
            row("+41445550200", "Front desk", Some("Sales"), true),
        ]
    );
    assert_eq!(
        s.contact_lookup_table(a.id, ua2.id).await.unwrap(),
        [
            row("+41445550300", "Other's", None, false),
            row("+41445550100", "Front desk", Some("Sales"), true),
            row("+41445550200", "Front desk", Some("Sales"), true),
        ]
    );
    assert_eq!(
        s.contact_lookup_table(b.id, ub.id).await.unwrap(),
        [
            row("+41445550500", "B personal", None, false),
            row("+41445550400", "B shared", None, true),
        ]
    );
    // A's user asked under B: only B's shared contacts, never A's.
    assert_eq!(
        s.contact_lookup_table(b.id, ua.id).await.unwrap(),
        [row("+41445550400", "B shared", None, true)]
    );
}

async fn deleting_a_user_drops_its_feature_data_and_keeps_shared_contacts(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    s.put_profile(a.id, ua.id, &vip_profile()).await.unwrap();
    s.set_presence(a.id, ua.id, Presence::Away).await.unwrap();
    s.put_user_policy(
        a.id,
        ua.id,
        &UserPolicy {
            mode: PolicyMode::Reject,
            external_uri: None,
        },
    )
    .await
    .unwrap();
    let mine = ContactOwner::User(ua.id);
    s.create_contact(a.id, &contact(1, &a, mine, "Zoe", &["+41445550101"]))
        .await
        .unwrap();
    let sh = contact(2, &a, ContactOwner::Shared, "Reception", &["+41445550100"]);
    s.create_contact(a.id, &sh).await.unwrap();

    s.delete_user(a.id, ua.id).await.unwrap();
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap(), []);
    assert_eq!(
        s.list_contacts(a.id, ContactOwner::Shared).await.unwrap(),
        [sh]
    );
    // Re-created with the same id: a fresh start, nothing left over.
    s.create_user(a.id, &ua).await.unwrap();
    assert_eq!(
        s.get_profile(a.id, ua.id).await.unwrap(),
        (Profile::default(), Presence::Available)
    );
    assert_eq!(
        s.get_user_policy(a.id, ua.id).await.unwrap(),
        UserPolicy::default()
    );
    assert_eq!(s.list_contacts(a.id, mine).await.unwrap(), []);
}

async fn deleting_a_tenant_drops_its_feature_data(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let swiss = TenantSettings {
        dialing: DialingRules {
            country_code: "41".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        },
        notice: None,
    };
    for (t, u) in [(&a, &ua), (&b, &ub)] {
        s.put_tenant_settings(t.id, &swiss).await.unwrap();
        s.put_profile(t.id, u.id, &vip_profile()).await.unwrap();
        s.create_contact(
            t.id,
            &contact(
                u.id.0.as_u128() * 10,
                t,
                ContactOwner::Shared,
                "S",
                &["+41445550100"],
            ),
        )
        .await
        .unwrap();
    }
    s.delete_tenant(a.id).await.unwrap();
    assert_not_found(s.get_tenant_settings(a.id).await, "tenant");
    assert_eq!(
        s.list_contacts(a.id, ContactOwner::Shared).await.unwrap(),
        []
    );
    // Re-created: defaults again. B is untouched.
    s.create_tenant(&a).await.unwrap();
    assert_eq!(
        s.get_tenant_settings(a.id).await.unwrap(),
        TenantSettings::default()
    );
    assert_eq!(s.get_tenant_settings(b.id).await.unwrap(), swiss);
    assert_eq!(s.get_profile(b.id, ub.id).await.unwrap().0, vip_profile());
    assert_eq!(
        s.list_contacts(b.id, ContactOwner::Shared)
            .await
            .unwrap()
            .len(),
        1
    );
}

// ---------------------------------------------------------------- portal accounts

fn session(n: u8, tenant: &Tenant, user: &User, last_seen: i64, expires: i64) -> SessionRecord {
    SessionRecord {
        id_hash: format!("{n:064x}"),
        subject: SessionSubject::User {
            tenant: tenant.id,
            user: user.id,
        },
        csrf_token: format!("csrf-{n}").into(),
        created_at: at(0),
        last_seen_at: at(last_seen),
        expires_at: at(expires),
    }
}

async fn user_accounts_roles_and_password_hashes(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let mut alice = user(12, &a, "1002");
    alice.portal_login = Some("alice".into());
    s.create_user(a.id, &alice).await.unwrap();
    // Defaults: role user, no password.
    let account = s.get_user_account(a.id, ua.id).await.unwrap();
    assert_eq!(
        account,
        UserAccount {
            user: ua.clone(),
            role: UserRole::User
        }
    );
    assert_eq!(s.get_password_hash(a.id, ua.id).await.unwrap(), None);

    s.set_user_role(a.id, alice.id, UserRole::TenantAdmin)
        .await
        .unwrap();
    s.set_password_hash(a.id, alice.id, Some("$argon2id$fake"))
        .await
        .unwrap();
    assert_eq!(
        s.get_password_hash(a.id, alice.id)
            .await
            .unwrap()
            .as_deref(),
        Some("$argon2id$fake")
    );
    assert_eq!(
        s.list_user_accounts(a.id).await.unwrap(),
        [
            UserAccount {
                user: ua.clone(),
                role: UserRole::User
            },
            UserAccount {
                user: alice.clone(),
                role: UserRole::TenantAdmin
            },
        ]
    );
    // Updating the user's fields keeps role and password.
    let mut renamed = alice.clone();
    renamed.display_name = "Alice A.".into();
    s.update_user(a.id, &renamed).await.unwrap();
    let found = s.find_login(a.id, "alice").await.unwrap().unwrap();
    assert_eq!(found.account.user, renamed);
    assert_eq!(found.account.role, UserRole::TenantAdmin);
    assert_eq!(
        found.password_hash.as_ref().map(|h| h.expose()),
        Some("$argon2id$fake")
    );
    // A login by extension; an extension wins over a portal login spelled the same.
    assert_eq!(
        s.find_login(a.id, "1002")
            .await
            .unwrap()
            .unwrap()
            .account
            .user
            .id,
        alice.id
    );
    let mut tricky = user(13, &a, "1003");
    tricky.portal_login = Some("1001".into());
    s.create_user(a.id, &tricky).await.unwrap();
    assert_eq!(
        s.find_login(a.id, "1001")
            .await
            .unwrap()
            .unwrap()
            .account
            .user
            .id,
        ua.id
    );
    assert_eq!(s.find_login(a.id, "nobody").await.unwrap(), None);
    // Removing the password.
    s.set_password_hash(a.id, alice.id, None).await.unwrap();
    assert_eq!(s.get_password_hash(a.id, alice.id).await.unwrap(), None);

    // Tenants are walls.
    assert_eq!(s.find_login(b.id, "alice").await.unwrap(), None);
    assert_eq!(
        s.find_login(b.id, "1001")
            .await
            .unwrap()
            .unwrap()
            .account
            .user
            .id,
        ub.id
    );
    assert_not_found(s.get_user_account(b.id, alice.id).await, "user");
    assert_not_found(
        s.set_user_role(b.id, alice.id, UserRole::User).await,
        "user",
    );
    assert_not_found(s.set_password_hash(b.id, alice.id, Some("x")).await, "user");
    assert_not_found(s.get_password_hash(b.id, alice.id).await, "user");
    assert_eq!(s.list_user_accounts(b.id).await.unwrap().len(), 1);
}

async fn sessions_round_trip_touch_end_and_cascade(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let one = session(1, &a, &ua, 0, 1000);
    s.create_session(&one).await.unwrap();
    let (got, account) = s.get_session(&one.id_hash).await.unwrap().unwrap();
    assert_eq!(got, one);
    assert_eq!(
        account,
        SessionAccount::User(UserAccount {
            user: ua.clone(),
            role: UserRole::User
        })
    );
    assert_eq!(s.get_session(&format!("{:064x}", 99)).await.unwrap(), None);
    assert_already_exists(s.create_session(&one).await, "session");
    // The account is read fresh: a role change shows at once.
    s.set_user_role(a.id, ua.id, UserRole::TenantAdmin)
        .await
        .unwrap();
    let (_, account) = s.get_session(&one.id_hash).await.unwrap().unwrap();
    assert!(
        matches!(&account, SessionAccount::User(a) if a.role == UserRole::TenantAdmin),
        "{account:?}"
    );
    s.touch_session(&one.id_hash, at(60)).await.unwrap();
    let (got, _) = s.get_session(&one.id_hash).await.unwrap().unwrap();
    assert_eq!(got.last_seen_at, at(60));
    // A session names a user of its own tenant.
    let mut cross = session(2, &a, &ua, 0, 1000);
    cross.subject = SessionSubject::User {
        tenant: a.id,
        user: ub.id,
    };
    assert_not_found(s.create_session(&cross).await, "user");

    // Deleting: one, idempotently; all of a user but one; expired ones.
    let two = session(2, &a, &ua, 0, 1000);
    let three = session(3, &a, &ua, 0, 1000);
    let other = session(4, &b, &ub, 0, 1000);
    for x in [&two, &three, &other] {
        s.create_session(x).await.unwrap();
    }
    s.delete_session(&two.id_hash).await.unwrap();
    s.delete_session(&two.id_hash).await.unwrap();
    assert_eq!(s.get_session(&two.id_hash).await.unwrap(), None);
    assert_eq!(
        s.delete_user_sessions(a.id, ua.id, Some(&three.id_hash))
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.get_session(&one.id_hash).await.unwrap(), None);
    assert!(s.get_session(&three.id_hash).await.unwrap().is_some());
    assert!(s.get_session(&other.id_hash).await.unwrap().is_some());
    // Another tenant's id does not reach B's sessions.
    assert_eq!(s.delete_user_sessions(a.id, ub.id, None).await.unwrap(), 0);

    let idle = session(5, &a, &ua, 10, 1000);
    let old = session(6, &a, &ua, 500, 400);
    let fresh = session(7, &a, &ua, 300, 1000);
    for x in [&idle, &old, &fresh] {
        s.create_session(x).await.unwrap();
    }
    // At 450, idle since 100: `idle` (last seen 10) and `old` (ended at 400) go; `three`
    // and `other` were last seen at 0 and go too.
    assert_eq!(
        s.delete_expired_sessions(at(450), at(100)).await.unwrap(),
        4
    );
    assert!(s.get_session(&fresh.id_hash).await.unwrap().is_some());
    assert_eq!(s.get_session(&idle.id_hash).await.unwrap(), None);

    // Sessions go with their user.
    s.delete_user(a.id, ua.id).await.unwrap();
    assert_eq!(s.get_session(&fresh.id_hash).await.unwrap(), None);
}

fn operator(login: &str) -> OperatorAccount {
    OperatorAccount {
        login: login.into(),
        created_at: at(5),
    }
}

fn operator_session(n: u8, login: &str, last_seen: i64, expires: i64) -> SessionRecord {
    SessionRecord {
        id_hash: format!("{n:064x}"),
        subject: SessionSubject::Operator {
            login: login.into(),
        },
        csrf_token: format!("csrf-{n}").into(),
        created_at: at(0),
        last_seen_at: at(last_seen),
        expires_at: at(expires),
    }
}

async fn operators_and_their_sessions(s: &dyn Store) {
    let (a, _, ua, _) = two_tenants(s).await;
    let (ops, root) = (operator("ops"), operator("root@example"));
    s.create_operator(&root, "$argon2id$root").await.unwrap();
    s.create_operator(&ops, "$argon2id$ops").await.unwrap();
    assert_already_exists(s.create_operator(&ops, "$argon2id$again").await, "operator");
    assert_eq!(
        s.list_operators().await.unwrap(),
        [ops.clone(), root.clone()]
    );
    let found = s.find_operator("ops").await.unwrap().unwrap();
    assert_eq!(
        (&found.account, found.password_hash.expose()),
        (&ops, "$argon2id$ops")
    );
    assert_eq!(s.find_operator("nobody").await.unwrap(), None);
    // Operators are no users: no tenant's login finds them, and they find no user.
    assert_eq!(s.find_login(a.id, "ops").await.unwrap(), None);
    assert_eq!(s.find_operator(&ua.extension).await.unwrap(), None);

    // Sessions: the same calls as a user's, told apart by their subject.
    let mine = operator_session(1, "ops", 0, 1000);
    let users = session(2, &a, &ua, 0, 1000);
    s.create_session(&mine).await.unwrap();
    s.create_session(&users).await.unwrap();
    let (got, account) = s.get_session(&mine.id_hash).await.unwrap().unwrap();
    assert_eq!(
        (got, account),
        (mine.clone(), SessionAccount::Operator(ops.clone()))
    );
    assert!(matches!(
        s.get_session(&users.id_hash).await.unwrap(),
        Some((_, SessionAccount::User(_)))
    ));
    assert_already_exists(s.create_session(&mine).await, "session");
    assert_not_found(
        s.create_session(&operator_session(3, "nobody", 0, 1000))
            .await,
        "operator",
    );
    s.touch_session(&mine.id_hash, at(60)).await.unwrap();
    let (got, _) = s.get_session(&mine.id_hash).await.unwrap().unwrap();
    assert_eq!(got.last_seen_at, at(60));
    // A user's password change ends none of the operator's sessions.
    s.delete_user_sessions(a.id, ua.id, None).await.unwrap();
    assert!(s.get_session(&mine.id_hash).await.unwrap().is_some());
    s.delete_session(&mine.id_hash).await.unwrap();
    s.delete_session(&mine.id_hash).await.unwrap();
    assert_eq!(s.get_session(&mine.id_hash).await.unwrap(), None);

    // Expiry sweeps operators' sessions too: at 450, idle since 100.
    let idle = operator_session(4, "ops", 10, 1000);
    let old = operator_session(5, "root@example", 500, 400);
    let fresh = operator_session(6, "ops", 300, 1000);
    let users_fresh = session(7, &a, &ua, 300, 1000);
    for x in [&idle, &old, &fresh, &users_fresh] {
        s.create_session(x).await.unwrap();
    }
    assert_eq!(
        s.delete_expired_sessions(at(450), at(100)).await.unwrap(),
        2
    );
    assert!(s.get_session(&fresh.id_hash).await.unwrap().is_some());
    assert_eq!(s.get_session(&idle.id_hash).await.unwrap(), None);
    assert_eq!(s.get_session(&old.id_hash).await.unwrap(), None);

    // Removing an operator ends its sessions; a tenant's deletion ends none of them.
    s.delete_tenant(a.id).await.unwrap();
    assert!(s.get_session(&fresh.id_hash).await.unwrap().is_some());
    assert_eq!(s.get_session(&users_fresh.id_hash).await.unwrap(), None);
    s.delete_operator("ops").await.unwrap();
    assert_not_found(s.delete_operator("ops").await, "operator");
    assert_eq!(s.get_session(&fresh.id_hash).await.unwrap(), None);
    assert_eq!(s.list_operators().await.unwrap(), [root]);
}

// ---------------------------------------------------------------- API tokens

fn api_token(n: u8, tenant: &Tenant, name: &str, users: Option<Vec<UserId>>) -> ApiToken {
    ApiToken {
        id: ApiTokenId::for_test(u128::from(n)),
        tenant_id: tenant.id,
        name: name.into(),
        secret_hash: format!("{n:064x}").into(),
        users,
        created_at: at(0),
        expires_at: None,
    }
}

async fn api_tokens_round_trip_stay_in_their_tenant_and_cascade(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let bob = user(12, &a, "1002");
    s.create_user(a.id, &bob).await.unwrap();
    let mut crm = api_token(1, &a, "crm", Some(vec![ua.id, bob.id]));
    crm.expires_at = Some(at(3600));
    let console = api_token(2, &a, "console", None);
    let theirs = api_token(3, &b, "crm", Some(vec![ub.id]));
    for t in [&crm, &console, &theirs] {
        s.create_api_token(t.tenant_id, t).await.unwrap();
    }
    // Found by the hash of the secret, with the user list in its order; listed by name.
    assert_eq!(
        s.find_api_token(crm.secret_hash.expose()).await.unwrap(),
        Some(crm.clone())
    );
    assert_eq!(
        s.find_api_token(console.secret_hash.expose())
            .await
            .unwrap(),
        Some(console.clone())
    );
    assert_eq!(
        s.find_api_token(&format!("{:064x}", 99)).await.unwrap(),
        None
    );
    assert_eq!(
        s.list_api_tokens(a.id).await.unwrap(),
        [console.clone(), crm.clone()]
    );
    assert!(!crm.is_expired(at(3599)) && crm.is_expired(at(3600)));
    assert!(!console.is_expired(at(1_000_000)));

    // Names are unique per tenant, secrets everywhere.
    let mut again = api_token(4, &a, "crm", None);
    assert_already_exists(s.create_api_token(a.id, &again).await, "api token");
    again.name = "other".into();
    again.secret_hash = theirs.secret_hash.clone();
    assert_already_exists(s.create_api_token(a.id, &again).await, "api token");
    // Written under another tenant than it names; a tenant that does not exist.
    assert!(matches!(
        s.create_api_token(b.id, &api_token(5, &a, "x", None)).await,
        Err(StoreError::Invalid(_))
    ));
    let ghost = tenant(9, "ghost.test");
    assert_not_found(
        s.create_api_token(ghost.id, &api_token(6, &ghost, "x", None))
            .await,
        "tenant",
    );

    // Revoking: only inside its tenant, once.
    assert_not_found(s.delete_api_token(b.id, crm.id).await, "api token");
    s.delete_api_token(a.id, crm.id).await.unwrap();
    assert_not_found(s.delete_api_token(a.id, crm.id).await, "api token");
    assert_eq!(
        s.find_api_token(crm.secret_hash.expose()).await.unwrap(),
        None
    );
    assert_eq!(
        s.list_api_tokens(a.id).await.unwrap(),
        std::slice::from_ref(&console)
    );

    // Tokens go with their tenant.
    s.delete_tenant(a.id).await.unwrap();
    assert_eq!(
        s.find_api_token(console.secret_hash.expose())
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.list_api_tokens(b.id).await.unwrap(), [theirs]);
}

async fn user_call_history_filters_and_pages(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    let bob = user(12, &a, "1002");
    s.create_user(a.id, &bob).await.unwrap();
    // ua calls bob (answered), bob calls ua (busy), bob calls 100% (no answer, not ua's),
    // an outside number calls ua (no answer).
    let mut out = call(1, &a, Some(&ua), 0);
    out.callee_user_id = Some(bob.id);
    let mut back = call(2, &a, Some(&bob), 100);
    back.caller = "1002".into();
    back.callee = "1001".into();
    back.callee_user_id = Some(ua.id);
    back.outcome = CallOutcome::Busy;
    let mut others = call(3, &a, Some(&bob), 200);
    others.callee = "100%".into();
    others.outcome = CallOutcome::NoAnswer;
    let mut inbound = call(4, &a, None, 300);
    inbound.direction = CallDirection::Inbound;
    inbound.caller = "+41445551234".into();
    inbound.callee = "1001".into();
    inbound.callee_user_id = Some(ua.id);
    inbound.outcome = CallOutcome::NoAnswer;
    let elsewhere = call(5, &b, Some(&ub), 400);
    for r in [&out, &back, &others, &inbound, &elsewhere] {
        s.insert_call_record(r).await.unwrap();
    }
    let q = CallHistoryQuery::latest;
    let ids = |v: Vec<CallRecord>| {
        v.into_iter()
            .map(|c| c.id.as_uuid().as_u128())
            .collect::<Vec<_>>()
    };

    let all = s.list_user_call_records(a.id, ua.id, &q(50)).await.unwrap();
    assert_eq!(all, [inbound.clone(), back.clone(), out.clone()]);
    assert_eq!(all[2].legs.len(), 2, "legs come along");
    assert_eq!(
        ids(s.list_user_call_records(a.id, ua.id, &q(2)).await.unwrap()),
        [4, 2]
    );
    let page2 = CallHistoryQuery {
        before: Some(at(100)),
        ..q(2)
    };
    assert_eq!(
        ids(s.list_user_call_records(a.id, ua.id, &page2).await.unwrap()),
        [1]
    );
    let outgoing = CallHistoryQuery {
        side: Some(CallSide::Outgoing),
        ..q(50)
    };
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &outgoing)
            .await
            .unwrap()),
        [1]
    );
    let incoming = CallHistoryQuery {
        side: Some(CallSide::Incoming),
        ..q(50)
    };
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &incoming)
            .await
            .unwrap()),
        [4, 2]
    );
    let missed = CallHistoryQuery {
        outcome: Some(CallOutcome::NoAnswer),
        ..incoming.clone()
    };
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &missed)
            .await
            .unwrap()),
        [4]
    );
    let search = |text: &str| CallHistoryQuery {
        search: Some(text.into()),
        ..q(50)
    };
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &search("5551"))
            .await
            .unwrap()),
        [4]
    );
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &search("1002"))
            .await
            .unwrap()),
        [2, 1]
    );
    // Wildcards are literal: "100%" matches only a callee that has a percent sign.
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, bob.id, &search("100%"))
            .await
            .unwrap()),
        [3]
    );
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, bob.id, &search("_"))
            .await
            .unwrap()),
        []
    );
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, bob.id, &q(50))
            .await
            .unwrap()),
        [3, 2, 1]
    );
    // Walls: B's user id under A, A's user under B.
    assert_eq!(
        s.list_user_call_records(a.id, ub.id, &q(50)).await.unwrap(),
        []
    );
    assert_eq!(
        s.list_user_call_records(b.id, ua.id, &q(50)).await.unwrap(),
        []
    );
    assert_eq!(
        ids(s.list_user_call_records(b.id, ub.id, &q(50)).await.unwrap()),
        [5]
    );

    // A call that reached Carol only by a transfer (or a forward): her phone's leg
    // names her. It is hers, incoming; not outgoing; and her leg says so.
    let carol = user(13, &a, "1003");
    s.create_user(a.id, &carol).await.unwrap();
    let mut transferred = call(6, &a, Some(&ua), 500);
    transferred.callee_user_id = Some(bob.id);
    transferred.legs[1].user_id = Some(bob.id);
    let mut to_carol = transferred.legs[1].clone();
    to_carol.id = LegId::for_test(699);
    to_carol.user_id = Some(carol.id);
    transferred.legs.push(to_carol);
    s.insert_call_record(&transferred).await.unwrap();
    let hers = s
        .list_user_call_records(a.id, carol.id, &q(50))
        .await
        .unwrap();
    assert_eq!(ids(hers.clone()), [6]);
    assert_eq!(hers[0].legs[2].user_id, Some(carol.id));
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, carol.id, &incoming)
            .await
            .unwrap()),
        [6]
    );
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, carol.id, &outgoing)
            .await
            .unwrap()),
        []
    );
    // She is not in the others' calls, and the caller's outgoing list has it once.
    assert_eq!(
        ids(s
            .list_user_call_records(a.id, ua.id, &outgoing)
            .await
            .unwrap()),
        [6, 1]
    );
    // A user deleted later leaves the record and the leg, without the user.
    s.delete_user(a.id, carol.id).await.unwrap();
    let kept = s.list_user_call_records(a.id, ua.id, &q(1)).await.unwrap();
    assert_eq!(kept[0].legs[2].user_id, None);
}

async fn external_phones_per_user_and_remote_answer(s: &dyn Store) {
    let (a, b, ua, ub) = two_tenants(s).await;
    // The remote answer flag round-trips with the device.
    let mut da = device(31, &a, &ua, "1001");
    da.remote_answer = true;
    s.create_device(a.id, &da).await.unwrap();
    assert_eq!(s.get_device(a.id, da.id).await.unwrap(), da);
    da.remote_answer = false;
    s.update_device(a.id, &da).await.unwrap();
    assert!(!s.get_device(a.id, da.id).await.unwrap().remote_answer);
    // So do the digest algorithms, in their order, into the directory too.
    use tsps_actors::model::DigestAlgorithm::{Md5, Sha256};
    da.digest_algorithms = vec![Md5, Sha256];
    s.update_device(a.id, &da).await.unwrap();
    assert_eq!(s.get_device(a.id, da.id).await.unwrap(), da);
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.device(da.id).unwrap().digest_algorithms, [Md5, Sha256]);

    let phone = |n: u128, user: &User, number: &str| ExternalPhone {
        id: DeviceId::for_test(n),
        tenant_id: user.tenant_id,
        user_id: user.id,
        number: number.into(),
        label: "Mobile".into(),
    };
    let pa = phone(61, &ua, "+41790000002");
    let pa2 = phone(62, &ua, "+41790000001");
    s.create_external_phone(a.id, &pa).await.unwrap();
    s.create_external_phone(a.id, &pa2).await.unwrap();
    // Unique per user and number; another user (of another tenant) may have it.
    assert_already_exists(
        s.create_external_phone(a.id, &phone(63, &ua, "+41790000001"))
            .await,
        "external phone",
    );
    s.create_external_phone(b.id, &phone(64, &ub, "+41790000001"))
        .await
        .unwrap();
    // A user of tenant B cannot get a phone under tenant A.
    let mut crossing = phone(65, &ub, "+41790000009");
    crossing.tenant_id = a.id;
    assert_not_found(s.create_external_phone(a.id, &crossing).await, "user");
    assert_eq!(
        s.list_external_phones(a.id, ua.id).await.unwrap(),
        [pa2.clone(), pa.clone()],
        "by number"
    );
    assert_eq!(s.list_external_phones(a.id, ub.id).await.unwrap(), []);

    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.external_phone(pa.id), Some(&pa));
    assert_eq!(dir.external_phones_of_user(ua.id).count(), 2);
    assert_eq!(dir.device(da.id).map(|d| d.remote_answer), Some(false));

    let mut renamed = pa.clone();
    renamed.label = "Work mobile".into();
    renamed.number = "+41790000003".into();
    s.update_external_phone(a.id, &renamed).await.unwrap();
    renamed.number = "+41790000001".into();
    assert_already_exists(
        s.update_external_phone(a.id, &renamed).await,
        "external phone",
    );
    assert_not_found(
        s.update_external_phone(b.id, &phone(61, &ub, "+41790000007"))
            .await,
        "external phone",
    );
    assert_not_found(
        s.delete_external_phone(a.id, ub.id, pa.id).await,
        "external phone",
    );
    s.delete_external_phone(a.id, ua.id, pa.id).await.unwrap();
    assert_not_found(
        s.delete_external_phone(a.id, ua.id, pa.id).await,
        "external phone",
    );
    // They go with their user.
    s.delete_user(a.id, ua.id).await.unwrap();
    let dir = s.load_directory().await.unwrap();
    assert_eq!(dir.external_phones_of_user(ua.id).count(), 0);
}

async fn watch_rules_restrict_watchers_within_the_tenant(s: &dyn Store) {
    let (a, b, alice, dave) = two_tenants(s).await;
    let bob = user(12, &a, "1002");
    let carol = user(13, &a, "1003");
    s.create_user(a.id, &bob).await.unwrap();
    s.create_user(a.id, &carol).await.unwrap();
    // Nothing stored: anyone of the tenant.
    assert_eq!(
        s.get_watch_rule(a.id, bob.id).await.unwrap(),
        WatchRule::Anyone
    );
    assert_not_found(s.get_watch_rule(b.id, bob.id).await, "user");

    // Bob may be watched by Alice only (a duplicate is dropped).
    let only_alice = WatchRule::Only(vec![alice.id, alice.id]);
    s.put_watch_rule(a.id, bob.id, &only_alice).await.unwrap();
    assert_eq!(
        s.get_watch_rule(a.id, bob.id).await.unwrap(),
        WatchRule::Only(vec![alice.id])
    );
    // Carol may be watched by nobody.
    s.put_watch_rule(a.id, carol.id, &WatchRule::Only(vec![]))
        .await
        .unwrap();
    let dir = s.load_directory().await.unwrap();
    assert_eq!(
        dir.allowed_watchers(bob.id).map(|w| w.len()),
        Some(1),
        "the directory carries the rules"
    );
    assert!(dir.allowed_watchers(bob.id).unwrap().contains(&alice.id));
    assert!(dir.allowed_watchers(carol.id).unwrap().is_empty());
    assert_eq!(dir.allowed_watchers(alice.id), None);

    // Tenant walls: a watcher of tenant B, or a user asked for under tenant B.
    match s
        .put_watch_rule(a.id, bob.id, &WatchRule::Only(vec![dave.id]))
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("a watcher of another tenant is invalid, got {other:?}"),
    }
    assert_not_found(
        s.put_watch_rule(b.id, bob.id, &WatchRule::Anyone).await,
        "user",
    );
    assert_eq!(
        s.get_watch_rule(a.id, bob.id).await.unwrap(),
        WatchRule::Only(vec![alice.id]),
        "a refused write changes nothing"
    );

    // A deleted watcher drops out of the list; anyone again removes the rule.
    s.delete_user(a.id, alice.id).await.unwrap();
    assert_eq!(
        s.get_watch_rule(a.id, bob.id).await.unwrap(),
        WatchRule::Only(vec![])
    );
    s.put_watch_rule(a.id, bob.id, &WatchRule::Anyone)
        .await
        .unwrap();
    assert_eq!(
        s.get_watch_rule(a.id, bob.id).await.unwrap(),
        WatchRule::Anyone
    );
    // Rules go with their user.
    s.delete_user(a.id, carol.id).await.unwrap();
    assert_eq!(
        s.load_directory().await.unwrap().allowed_watchers(carol.id),
        None
    );
}

async fn tenant_quotas_default_round_trip_and_counts(s: &dyn Store) {
    let (a, b, ua, _) = two_tenants(s).await;
    assert_eq!(
        s.get_tenant_quotas(a.id).await.unwrap(),
        TenantQuotas::default()
    );
    let own = TenantQuotas {
        contacts: Some(100),
        contacts_per_user: None,
        devices: Some(3),
        subscriptions: Some(0),
    };
    s.put_tenant_quotas(a.id, &own).await.unwrap();
    assert_eq!(s.get_tenant_quotas(a.id).await.unwrap(), own);
    assert_eq!(
        s.get_tenant_quotas(b.id).await.unwrap(),
        TenantQuotas::default()
    );
    let nobody = TenantId::for_test(99);
    assert_not_found(s.get_tenant_quotas(nobody).await, "tenant");
    assert_not_found(s.put_tenant_quotas(nobody, &own).await, "tenant");

    // What the quotas are counted against.
    let mine = ContactOwner::User(ua.id);
    s.create_contact(a.id, &contact(1, &a, mine, "Zoe", &[]))
        .await
        .unwrap();
    s.create_contact(a.id, &contact(2, &a, ContactOwner::Shared, "Desk", &[]))
        .await
        .unwrap();
    assert_eq!(s.count_contacts(a.id, None).await.unwrap(), 2);
    assert_eq!(s.count_contacts(a.id, Some(ua.id)).await.unwrap(), 1);
    assert_eq!(s.count_contacts(b.id, None).await.unwrap(), 0);
    assert_eq!(s.count_devices(a.id).await.unwrap(), 0);
    s.create_device(a.id, &device(1, &a, &ua, "1001"))
        .await
        .unwrap();
    assert_eq!(s.count_devices(a.id).await.unwrap(), 1);
    assert_eq!(s.count_devices(b.id).await.unwrap(), 0);
    // They go with their tenant.
    s.delete_tenant(a.id).await.unwrap();
    assert_not_found(s.get_tenant_quotas(a.id).await, "tenant");
}
